"""The bench's profiles (smoke, quick, default, full) and the time bounds
derived from them: how long a run may take before the harness stops it.

The method itself is described in bench/lab_bench.py's docstring."""

# http_t: seconds per HTTP run; fanout_m: messages of the one sender at 10/s;
# syscall_c, syscall_n: the GET /hello load that strace counts (bench/syscalls.py).
PROFILES = {
    "smoke":   dict(reps=1, http_t=0.6, sleep_t=0.6, sleep_cs=[100], cpu_cs=[2], search_c=50,
                    fanout_ns=[20], fanout_m=5, seat_ns=[50], seat_t=1, sources=1,
                    idle_ns=[20], idle_t=1, shutdown_ns=[50], fork_n=300, fork_live_ks=[0, 100], fork_live_n=90,
                    sha_n=50000, write_ns=[100], wait_ns=[10, 100],
                    syscall_c=50, syscall_n=500),
    "quick":   dict(reps=1, http_t=0.5, sleep_t=0.6, sleep_cs=[1000], cpu_cs=[2, 4], search_c=200,
                    fanout_ns=[1000], fanout_m=10, seat_ns=[300, 1000], seat_t=3,
                    sources=8, idle_ns=[100, 1000], idle_t=5, shutdown_ns=[1000], fork_n=1000,
                    fork_live_ks=[0, 1000], fork_live_n=450, sha_n=200000,
                    write_ns=[100, 1000], wait_ns=[10, 100, 1000, 10000],
                    syscall_c=50, syscall_n=3000),
    "default": dict(reps=3, http_t=0.8, sleep_t=1.0, sleep_cs=[100, 1000], cpu_cs=[2, 4], search_c=200,
                    fanout_ns=[100, 1000], fanout_m=50, seat_ns=[], seat_t=3,
                    sources=8, idle_ns=[], idle_t=20, shutdown_ns=[], fork_n=2000,
                    fork_live_ks=[0, 1000, 3000], fork_live_n=900, sha_n=500000,
                    write_ns=[100, 1000, 10000], wait_ns=[10, 100, 1000, 10000],
                    syscall_c=50, syscall_n=5000),
    "full":    dict(reps=5, long_reps=3, http_t=3.0, sleep_t=3.0, sleep_cs=[100, 1000, 10000], cpu_cs=[2, 4],
                    search_c=200, fanout_ns=[100, 1000, 10000], fanout_m=50,
                    seat_ns=[1000, 3000, 10000], seat_t=3, sources=8,
                    idle_ns=[1000, 3000, 10000], idle_t=16, shutdown_ns=[10000], fork_n=5000,
                    fork_live_ks=[0, 1000, 3000, 10000], fork_live_n=1800,
                    sha_n=2000000, write_ns=[100, 1000, 10000], wait_ns=[10, 100, 1000, 10000],
                    syscall_c=50, syscall_n=20000),
}


PROFILE_NOTES = {
    "smoke": "one short run per scenario against the given build: checks the harness, not speed",
    "quick": "1 repetition, 0.5 s HTTP runs (0.6 s for sleep and search), only the larger sleep (c=1000) and fan-out (n=1000) cases, fan-out of 10 messages, seat n=300 and 1000, idle n=100 and 1000 held 5 s: a first look, noisy",
    "default": "3 repetitions, 0.8 s HTTP runs (1 s for sleep and search), fan-out of 50 "
               "messages (5 s), chat-rate with chat-async only: about 6 to 7 minutes on 2 cores",
    "full": "5 repetitions of the HTTP cases (3 s runs), 3 of the long ones (fan-out, seat, "
            "idle, and sleep at 10 000), a case cut off at its bound not repeated; seat and idle "
            "at n=1000, 3000, 10000 (idle held 16 s, past the 15 s idle rule), fan-out of 50 "
            "messages (5 s), chat-rate for all the models: about two hours on 2 cores",
}


def idle_bound(n, hold_s):
    """The longest `chatbench idle -c n -t hold_s` runs by itself: its open
    phase (10 s + 2 ms a connection), the hold, and the verification (5 s +
    0.5 ms a connection); the same constants as bench/chatbench/idle.c."""
    return 10.0 + n / 500.0 + hold_s + 5.0 + n / 2000.0


def shutdown_by(n):
    """shutdown: when chatbench sends SIGTERM if the room is not seated yet
    (then with the members seated so far, which the report says)."""
    return 5.0 + min(20.0 * (n / 1000.0) ** 2, 200.0)


def run_bound(item, need):
    """Seconds from the generator's start until the harness stops the
    server and the run counts as cut off (not finished). Each bound is
    beyond what the generator takes by itself, so that no model fails for
    want of time: http: chatbench's own drain after -t (up to 10 s for
    requests still in flight, e.g. keep-alive connections queued behind a
    full thread pool) + 2 s + 1 ms a connection; ws and seat: seating n
    members costs n(n+1)/2 join frames (chat-threaded --threads 0 and
    tornado took 8-11 s for 1000, chat-async 50 s for 10 000), so
    5 s + 20 s x (n/1000)^2, at most 240 s; idle: chatbench's own phases
    (idle_bound) + 5 s."""
    n = item["c"]
    if need == "http":
        return item["t"] + 12.0 + n / 1000.0
    if need == "idle":
        return idle_bound(n, item["t"]) + 5.0
    if item.get("shutdown"):
        # chatbench seat --by: SIGTERM at the seating's bound at the latest,
        # then at most 10 s for the server to close every member.
        return shutdown_by(n) + 10.0 + 5.0
    return item["t"] + 5.0 + min(20.0 * (n / 1000.0) ** 2, 240.0)
