"""The variants ./lab bench runs, one list for bench/lab_bench.py (which runs
them) and bench/report.py (which reports them)."""

# The six builds of the three models.
MODELS = ["async", "async-cpu-pool", "threaded", "threaded-unpooled", "threaded-gil", "forked"]
# The peers: other servers measured for reference (bench/peers).
REFERENCES = ["nginx", "tornado"]

# variant -> (model, extra flags); nginx and tornado are peers.
VARIANTS = {
    "async": ("async", []),
    "async-cpu-pool": ("async", ["--cpu-pool"]),
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
