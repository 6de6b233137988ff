"""The variants ./lab bench runs, one list for bench/lab_bench.py (which runs
them) and bench/report.py (which reports them)."""

# The seven builds of the four models. chat-uring (issue 18) stands next to
# chat-async, the other single-threaded event loop it is measured against; it
# is built only where liburing is found, and bench/lab_bench.py skips it, and
# says why, where it is missing or io_uring is not permitted.
MODELS = ["async", "async-cpu-pool", "uring", "threaded", "threaded-unpooled", "threaded-gil",
          "forked"]
# The peers: other servers measured for reference (bench/peers).
REFERENCES = ["nginx", "tornado"]

# variant -> (model, extra flags); nginx and tornado are peers.
VARIANTS = {
    "async": ("async", []),
    "async-cpu-pool": ("async", ["--cpu-pool"]),
    "uring": ("uring", []),
    "threaded": ("threaded", []),
    "threaded-unpooled": ("threaded", ["--threads", "0"]),
    "threaded-gil": ("threaded", ["--gil"]),
    "forked": ("forked", []),
    "nginx": ("nginx", []),
    "tornado": ("tornado", []),
}

CROSS_TOOLS = ("wrk", "ab")  # the generators chatbench is checked against


def cross_tool(variant):
    """wrk-vs-X and ab-vs-X: the same server X measured by wrk or ab. Returns
    "wrk" or "ab" for such a variant, else None."""
    for t in CROSS_TOOLS:
        if variant.startswith(t + "-vs-"):
            return t
    return None


def cross_target(variant):
    """The server a variant measures: X in wrk-vs-X or ab-vs-X, else itself."""
    t = cross_tool(variant)
    return variant[len(t) + 4:] if t else variant
