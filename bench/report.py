#!/usr/bin/env python3
"""Turn one `./lab bench` run into a report.

    python3 bench/report.py RESULTS_DIR

reads RESULTS_DIR/results.json (the contract is bench/RESULTS.md) and writes
RESULTS_DIR/report.md and the plots next to it: one PNG per HTTP scenario,
fanout-latency.png, memory-per-connection.png and headline.png (the one figure
for the README). Plots need gnuplot (Debian gnuplot-nox); without it the report
is still written, says so, and the exit status is 1.

Every figure is the median of the repetitions that completed, with their
min–max. A run that failed, was cut off or did not finish (`failure()`) is
never a number or a ratio: tables, goals and plots say so in words ("failed:
…", "not finished: k of n seated at t s"), and it is not counted in "reps
ok". A run that started on a disturbed machine (`disturbed` in results.json)
keeps its figures and is flagged. A scenario, case or variant the profile did
not run is named as such. Standard library only.
"""
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from variants import CROSS_TOOLS, MODELS, REFERENCES, cross_target  # noqa: E402
from variants import cross_tool as variant_tool  # noqa: E402

# ---- what the orchestrator runs (bench/RESULTS.md) ---------------------------

ORDER = MODELS + REFERENCES

# One colour per variant, the same in every plot.
COLOURS = {
    "async": "#1f77b4", "async-cpu-pool": "#9ecae1", "uring": "#17becf", "threaded": "#d62728",
    "threaded-unpooled": "#ff9896", "threaded-gil": "#8c564b", "forked": "#2ca02c",
    "nginx": "#7f7f7f", "tornado": "#ff7f0e",
}
SPARE_COLOURS = ["#9467bd", "#e377c2", "#bcbd22", "#c5b0d5", "#dbdb8d"]
SPARE_COLOURS_FROM = dict(COLOURS)


class Scenario:
    def __init__(self, name, title, cases, variants, unit):
        self.name, self.title, self.cases, self.variants, self.unit = (
            name, title, cases, variants, unit)


SCENARIOS = [
    Scenario("hello-keepalive", "`GET /hello` on keep-alive connections", ["c=50"],
             MODELS + REFERENCES, "req/s"),
    Scenario("hello-close", "`GET /hello`, a new connection per request", ["c=50"],
             MODELS + ["nginx"], "req/s"),
    Scenario("sleep", "`GET /sleep?ms=100` on keep-alive connections: waiting", ["c=100", "c=1000"],
             MODELS + ["tornado"], "req/s"),
    Scenario("cpu", "`GET /cpu?n=20000`, server unpinned; the `-hello` twin is `/hello` "
             "at 50 req/s (open loop) during the same run",
             ["c=2", "c=2-hello", "c=4", "c=4-hello"],
             ["async", "async-cpu-pool", "uring", "threaded", "threaded-gil", "forked"], "req/s"),
    Scenario("search", "`GET /search?wd=x` through an upstream answering in 50 ms", ["c=200"],
             ["async", "uring", "threaded", "threaded-unpooled", "forked"], "req/s"),
    Scenario("fanout", "chat fan-out: one sender at 10 messages/s (5 s; 1–2 s in --quick), "
             "every member receives", ["n=100", "n=1000", "n=10000"],
             ["async", "uring", "threaded-unpooled", "forked", "tornado"], "receipts/s"),
    Scenario("chat-rate", "chat throughput: 1000 members, 20 of them sending 10 messages/s "
             "each for 3 s (200 000 receipts/s offered); chatbench's own CPU per receipt "
             "shows what one core of it can take in", ["n=1000"],
             ["async", "uring", "threaded-unpooled", "forked"], "receipts/s"),
    Scenario("seat", "seat n members in the chat room: every one a WebSocket that joins, "
             "n(n+1)/2 join frames in all; the time to seat them all, then a short stay "
             "for the settled memory", ["n=300", "n=1000", "n=3000", "n=10000"],
             ["async", "uring", "threaded-unpooled", "forked", "tornado"], "seats/s"),
    Scenario("idle", "hold n idle keep-alive connections (C10K): each asks `GET /hello` once, "
             "then stays quiet, asking again inside the 15 s idle rule; held = connections "
             "that still answer at the end of the hold (verified by one more request each)",
             ["n=100", "n=1000", "n=3000", "n=10000"], MODELS + ["tornado"], "opens/s"),
    Scenario("shutdown", "SIGTERM with n members in the chat room (or as many as were seated "
             "by the seating's bound), a tenth of them leaving at that moment; the contract: "
             "close the WebSockets with 1001, exit 0 within 5 s. Run once: a check of a "
             "rule, not a speed", ["n=50", "n=1000", "n=10000"],
             ["async", "uring", "threaded-unpooled", "forked"], "members"),
]
KNOWN = {s.name: s for s in SCENARIOS}
# Scenarios renamed since: results.json files recorded before still use the
# old name, and are read under the new one (their data is not rewritten).
# `seat` was `hold`: it seats members in the room, it does not hold idle
# connections (that is `idle`).
OLD_NAMES = {"hold": "seat"}

GOAL_PSS_PER_CONN = 3 * 1024  # bytes: goal (c)'s "3 KB per connection"


# ---- reading the runs --------------------------------------------------------

def get(d, *keys):
    """d[k1][k2]... or None when any level is missing or null."""
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def cross_tool(run):
    """"wrk" or "ab" for a cross-check run (variant wrk-vs-X, ab-vs-X), else None."""
    t = variant_tool(run.get("variant", ""))
    if t:
        return t
    t = get(run, "generator", "tool")
    return t if t in CROSS_TOOLS else None


def is_wrk(run):
    """Any run not made by chatbench (the name predates ab)."""
    return cross_tool(run) is not None


def wrk_target(run):
    """The server a cross-check run measured: X in wrk-vs-X or ab-vs-X."""
    return cross_target(run.get("variant", ""))


def case_n(case):
    """The number in "n=10000" or "c=2-hello", or None."""
    try:
        return int(case.split("=", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def fmt_s(t):
    """Seconds in words: 2.4, 13.6, 245."""
    return "?" if t is None else (f"{t:.0f}" if t >= 100 else f"{t:.3g}")


def failure(run):
    """None for a run that completed; else what went wrong, in words. A run
    fails when it did not run (ok false), when it was cut off (the harness
    stopped the server at its deadline: cut_off_s), when it measured nothing
    (no request answered, no receipt), or, for the seating scenario, when not
    every member was seated. Such a run is never a number or a ratio."""
    if not run.get("ok"):
        return f"failed: {run.get('error') or 'no reason recorded'}"
    res = run.get("result")
    if not isinstance(res, dict):
        return "failed: no result recorded"
    sc, n = run.get("scenario"), case_n(run.get("case", ""))
    done, expected = res.get("completed") or 0, res.get("expected") or 0
    cut = run.get("cut_off_s")
    if sc == "seat":
        k = res.get("seated", done)
        if cut is not None:
            return f"not finished: {k} of {n} seated at {fmt_s(cut)} s"
        if n and k < n:
            return f"not finished: {k} of {n} seated at {fmt_s(res.get('seat_s'))} s"
        return None
    if cut is not None:
        if sc == "idle":
            return f"not finished: cut off at {fmt_s(cut)} s"
        if expected:
            k = res.get("seated")
            if k is not None and n and k < n:
                return f"not finished: {k} of {n} seated at {fmt_s(cut)} s"
            return f"not finished: cut off at {fmt_s(cut)} s, {done} of {expected} receipts"
        return f"not finished: cut off at {fmt_s(cut)} s with requests in flight"
    if done == 0:
        if sc == "idle":
            return f"failed: none of {n} connections held at the end"
        if expected:
            return f"failed: 0 of {expected} receipts delivered"
        return "failed: no request answered"
    return None


def completed(run):
    return failure(run) is None


def disturbed(run):
    """Why the run's machine was not quiet, in words, or None (its figures
    stand). Where others' CPU was measured (others_cpu), a reason from the
    1-minute load alone, as runs recorded before 2026-12-03 gave, is not
    one: that average counts the bench's own previous runs (see
    bench/machine.py:disturbance)."""
    why = run.get("disturbed") or []
    if "others_cpu" in run:
        why = [w for w in why if not w.startswith("1-min load")]
    # "Others" is what /proc/stat counts busy beyond the run's processes: a
    # neighbour, or kernel work charged to no process (softirqs, RCU
    # callbacks, kworkers) — or CPU lost to the per-process accounting:
    # /proc/PID/stat counts whole clock ticks, rounded down for each
    # process, so a server of thousands of processes (chat-forked) loses
    # up to a tick each and reads as disturbed (every flag in the
    # 2026-12-03 --full run was chat-forked's; irq was 3-6 % of a core).
    # Runs recorded since read single-threaded processes in nanoseconds
    # (bench/sampling.py:tree_cpu_s), which removes that loss.
    why = [w.replace("other processes used", "others (processes, or kernel work charged to "
                     "no process) used") for w in why]
    return "; ".join(why) if why else None


def delivered_pct(run):
    expected = get(run, "result", "expected")
    completed = get(run, "result", "completed")
    if not expected or completed is None:
        return None
    return 100.0 * completed / expected


def open_at_end(run):
    """Connections open once the load settled, as the generator reports them,
    for runs recorded before the samples counted them (open_conns): the seat
    scenario's members opened less those dropped; a fan-out that delivered
    every receipt had all n members; else unknown (None)."""
    res, n = run.get("result") or {}, case_n(run.get("case", ""))
    if run.get("scenario") == "seat":
        opened = res.get("seated", res.get("completed"))
        return None if opened is None else opened - (res.get("failed_by") or {}).get("dropped", 0)
    if run.get("scenario") == "idle":
        return res.get("completed")
    pct = delivered_pct(run)
    return n if pct is not None and pct >= 100 else None


def pss_per_conn(run):
    """What one connection costs once the room has settled: the whole server
    tree's PSS less the PSS of the idle server just before the load (code,
    libraries, the listening socket), divided by the connections actually
    open when that sample was taken (open_conns: the kernel's count of
    established connections on the server's port), median over the samples
    taken after every client was in (seat_s, + 0.3 s) and before the clients
    left (the last sample is taken after the generator exits). Never over the
    target n: a server that holds half of them would look twice as thrifty.
    Runs recorded before samples carried open_conns divide by what the
    generator says was open (open_at_end); without settled samples or the
    idle PSS: peak PSS over that, an upper bound. None when nothing is known
    to have been open."""
    peak = get(run, "server_usage", "peak_pss_bytes")
    if peak is None:
        return None
    idle = get(run, "server_usage", "idle_pss_bytes")
    seat = get(run, "result", "seat_s")
    samples = run.get("samples") or []
    settled = [s for s in samples[:-1]
               if seat and s.get("pss") and s.get("t", 0) >= seat + 0.3]
    counted = [s for s in settled if s.get("open_conns")]
    if idle is not None and counted:
        return statistics.median(max(0, s["pss"] - idle) / s["open_conns"] for s in counted)
    if any("open_conns" in s for s in samples):
        return None     # counted, and nothing was open in the settled samples
    n = open_at_end(run)
    if not n:
        return None
    if idle is None or not settled:
        return peak / n
    return max(0, statistics.median(s["pss"] for s in settled) - idle) / n


def gen_busy(run):
    """The generator's CPU over its elapsed time, in % of one core."""
    cpu, el = get(run, "result", "cpu"), get(run, "result", "elapsed")
    if not cpu or not el:
        return None
    return 100.0 * ((cpu.get("user_s") or 0) + (cpu.get("sys_s") or 0)) / el


def rate(run):
    """Throughput: chatbench's rate_in_t (the responses received within the T
    seconds of the run, over the time to the last of them) where it gives
    one; else the completed count over the elapsed time."""
    r = get(run, "result", "rate_in_t")
    return r if r is not None else get(run, "result", "rate")


def wakeups_per_join(run):
    """seat: the server's wake-ups (voluntary context switches of its whole
    tree, over its life: wait4's rusage) per join frame sent, k(k+1)/2
    for k members seated. Near 1 or more: a wake-up for every frame (a
    thread or a process per member); far below 1: many frames per wake-up
    (one loop writing every member's queue in one turn)."""
    csw, k = get(run, "server_usage", "csw_voluntary"), get(run, "result", "completed")
    if csw is None or not k:
        return None
    return csw / (k * (k + 1) / 2)


# Each metric: how to read it from a run.
METRICS = {
    "rate": rate,
    "p50": lambda r: get(r, "result", "latency_ms", "p50"),
    "p99": lambda r: get(r, "result", "latency_ms", "p99"),
    "delivered": delivered_pct,
    "server_cpu": lambda r: get(r, "server_usage", "cpu_us_per_op"),
    "gen_cpu": lambda r: get(r, "result", "cpu", "us_per_op"),
    "gen_busy": gen_busy,
    "peak_pss": lambda r: get(r, "server_usage", "peak_pss_bytes"),
    "pss_conn": pss_per_conn,
    "completed": lambda r: get(r, "result", "completed"),
    "seat_s": lambda r: get(r, "result", "seat_s"),
    "open_all_s": lambda r: get(r, "result", "open_all_s"),
    "opened": lambda r: get(r, "result", "opened"),
    "threads": lambda r: get(r, "server_usage", "peak_threads"),
    "processes": lambda r: get(r, "server_usage", "peak_processes"),
    "server_cpu_s": lambda r: get(r, "server_usage", "cpu_s"),
    "exit_s": lambda r: get(r, "shutdown", "exit_s"),
    "last_close_s": lambda r: get(r, "shutdown", "last_close_s"),
    "wakeups": lambda r: get(r, "server_usage", "csw_voluntary"),
    "wakeups_per_join": lambda r: wakeups_per_join(r),
    "failed": lambda r: get(r, "result", "failed"),
}


class Spread:
    """Median and min–max of one metric over the repetitions that have it."""

    def __init__(self, values):
        values = sorted(v for v in values if v is not None)
        self.n = len(values)
        self.median = statistics.median(values) if values else None
        self.lo = values[0] if values else None
        self.hi = values[-1] if values else None


class Results:
    def __init__(self, doc):
        self.doc = doc
        self.runs = [dict(r, scenario=OLD_NAMES[r["scenario"]]) if r.get("scenario") in OLD_NAMES
                     else r for r in doc.get("runs") or []]
        self.anchors = doc.get("anchors") or {}
        self.profile = doc.get("profile") or "?"
        # variant -> why the bench did not run it ("chat-uring not run: ...")
        self.skipped = doc.get("variants_skipped") or {}

    def ok_runs(self, scenario, case, variant, wrk=False):
        """wrk: False for chatbench's runs, True or "wrk" for wrk's, "ab" for ab's."""
        tool = "wrk" if wrk is True else (wrk or None)
        return [r for r in self.runs if completed(r) and r.get("scenario") == scenario
                and r.get("case") == case and cross_tool(r) == tool
                and (wrk_target(r) if tool else r.get("variant")) == variant]

    def failed_runs(self, scenario=None, case=None, variant=None):
        """Runs that failed, were cut off or did not finish (failure())."""
        return [r for r in self.runs if not completed(r)
                and scenario in (None, r.get("scenario")) and case in (None, r.get("case"))
                and variant in (None, r.get("variant"))]

    def failure_list(self, scenario, case, variant):
        """What went wrong in the variant's failed repetitions, in words, one
        entry per kind: "not finished: 2056 of 10000 seated at 73 s; 2016 of …"."""
        kinds = {}
        for r in self.failed_runs(scenario, case, variant):
            head, _, rest = failure(r).partition(": ")
            kinds.setdefault(head, [])
            if rest not in kinds[head]:
                kinds[head].append(rest)
        return [f"{head}: {'; '.join(rests)}" for head, rests in kinds.items()]

    def failures(self, scenario, case, variant):
        return "; ".join(self.failure_list(scenario, case, variant))

    def spread(self, scenario, case, variant, metric, wrk=False):
        return Spread(METRICS[metric](r) for r in self.ok_runs(scenario, case, variant, wrk))

    def median(self, scenario, case, variant, metric, wrk=False):
        return self.spread(scenario, case, variant, metric, wrk).median

    def worst(self, scenario, case, variant, metric):
        """The lowest value over the repetitions (for "in every repetition" goals)."""
        return self.spread(scenario, case, variant, metric).lo

    def scenarios(self):
        """The known scenarios in their order, then any others in the data."""
        seen = {r.get("scenario") for r in self.runs}
        extra = sorted(s for s in seen if s and s not in KNOWN)
        return SCENARIOS + [Scenario(s, s, [], [], "ops/s") for s in extra]

    def cases(self, sc):
        seen = {r.get("case") for r in self.runs if r.get("scenario") == sc.name}
        return sc.cases + sorted((c for c in seen if c and c not in sc.cases), key=natural)

    def variants(self, scenario, case):
        """Server variants (not wrk runs) with any run, failed or not, in ORDER."""
        seen = {r.get("variant") for r in self.runs if r.get("scenario") == scenario
                and r.get("case") == case and not is_wrk(r)}
        return [v for v in ORDER if v in seen] + sorted(v for v in seen if v and v not in ORDER)

    def has(self, scenario, case=None):
        return any(r.get("scenario") == scenario and case in (None, r.get("case"))
                   for r in self.runs)

    def write_floor(self, n):
        return get(self.anchors, "write_floor_ms", str(n))


def natural(s):
    n = case_n(s)
    return (s.split("=")[0], n if n is not None else 0, s)


# ---- formatting --------------------------------------------------------------

def num(x):
    """About three significant digits, never scientific notation."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:.{digits}f}"


def whole(x):
    """A count: 10000, never 1.00e4 or 20.0 (a median of two may end in .5)."""
    return "—" if x is None else (f"{x:.0f}" if x == int(x) else f"{x:.1f}")


def pct(x):
    """A percentage that never rounds up to 100: 99.996 shows as 99.99."""
    if x is None:
        return "—"
    if x == 100:
        return "100"
    return f"{math.floor(x * 100) / 100:.2f}"


def spread_text(s, fmt=num, scale=1.0):
    """"median (min–max)", or just the value when the repetitions agree."""
    if s.median is None:
        return "—"
    med, lo, hi = (fmt(v * scale) for v in (s.median, s.lo, s.hi))
    return med if s.n == 1 or lo == hi else f"{med} ({lo}–{hi})"


def ratio(x):
    if x is None:
        return "—"
    return f"{x:.2f}×" if x < 10 else f"{num(x)}×"


def bold_failure(text):
    """"**failed**: why" from "failed: why" (and "not finished: ...")."""
    head, sep, rest = text.partition(": ")
    return f"**{head}**{sep}{rest}" if sep else f"**{text}**"


def md_row(cells):
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def md_table(head, rows):
    return [md_row(head), md_row(["---"] * len(head))] + [md_row(r) for r in rows]


# ---- the per-scenario tables -------------------------------------------------

def primary(scenario, case):
    """What "best" means in a table: (metric, higher is better, words)."""
    if scenario == "fanout" or case.endswith("-hello"):
        return "p99", False, "p99 latency"
    if scenario == "seat":
        return "seat_s", False, "seat time"
    return "rate", True, "throughput"


def ideal(res, scenario, case):
    """(column head, per-variant function of the median figures, note) or None."""
    n = case_n(case)
    if scenario == "sleep" and n:
        target = n / 0.1
        return ("of ideal", lambda m: None if m["rate"] is None else m["rate"] / target,
                f"Ideal: {n} clients each finishing one 100 ms request every 100 ms = "
                f"{num(target)} req/s; *of ideal* is the median throughput over that.")
    if scenario == "fanout" and n:
        floor = res.write_floor(n)
        if floor is None:
            return ("p99 / write floor", lambda m: None,
                    f"Ideal: 100 % delivered; no write floor anchor for n={n} in this run.")
        return ("p99 / write floor", lambda m: None if m["p99"] is None else m["p99"] / floor,
                f"Ideal: 100 % delivered, and p99 near the write floor: one small write to "
                f"{n} loopback sockets takes {num(floor)} ms on this machine "
                f"(anchors.write_floor_ms).")
    return None


def shutdown_table(res, sc, case):
    """The shutdown check: each run's members at SIGTERM and whether the
    server closed them and exited within the contract's 5 s. A run that
    failed, or a server that did not exit, is said in words."""
    n = case_n(case)
    head = ["variant", "members at SIGTERM (of n)", "leaving then", "closed by the server "
            "(1001)", "last close s", "exit after SIGTERM s", "exit status", "within 5 s"]
    rows = []
    for v in res.variants(sc.name, case):
        for r in res.ok_runs(sc.name, case, v) + res.failed_runs(sc.name, case, v):
            f = r.get("shutdown") or {}
            if not r.get("ok") or not f.get("measured"):
                rows.append([v, bold_failure(failure(r) if not r.get("ok") else
                                             "SIGTERM was not sent")] + [""] * (len(head) - 2))
                continue
            members = f"{f['members']} of {n}" + ("" if f.get("seated_all") else
                                                  " (seating not finished)")
            exit_s = ("**did not exit**" if f.get("exit_s") is None else fmt_s(f["exit_s"]))
            rows.append([v, members, f["leaving"], f"{f['closed_by_server']} "
                         f"({f['closed_1001']})", fmt_s(f["last_close_s"]), exit_s,
                         f.get("exit_status"), "yes" if f.get("within_5s") else "**no**"])
    return md_table(head, rows) + table_notes(res, sc, case, [])


def idle_table(res, sc, case):
    """The idle scenario: what holding n quiet connections cost each server."""
    n = case_n(case)
    head = ["variant", "reps ok", f"held at the end (of {n})", "time to open all s",
            "PSS/conn KiB", "peak threads", "peak processes", "server CPU s",
            "chatbench CPU s"]
    rows, notes = [], []
    for v in res.variants(sc.name, case):
        ok, bad = res.ok_runs(sc.name, case, v), res.failed_runs(sc.name, case, v)
        reps = f"{len(ok)} of {len(ok) + len(bad)}"
        if any(disturbed(r) for r in ok):
            reps += " (disturbed)"
        for r in bad:
            if ok:
                notes.append(f"{v} rep {r.get('rep', '?')}: {failure(r)}.")
        if not ok:
            rows.append([v, reps, "; ".join(bold_failure(w) for w in
                                            res.failure_list(sc.name, case, v))]
                        + [""] * (len(head) - 3))
            continue
        s = lambda name, v=v: res.spread(sc.name, case, v, name)
        # Time to open all is a figure only where every connection answered.
        partial = [r for r in ok if get(r, "result", "open_all_s") is None]
        if partial:
            opened = ", ".join(str(get(r, "result", "opened")) for r in partial)
            open_all = (f"not all: {opened} of {n} answered within "
                        f"{fmt_s(get(partial[0], 'result', 'seat_s'))} s")
            if len(partial) < len(ok):
                open_all = f"{spread_text(s('open_all_s'))}; {open_all}"
        else:
            open_all = spread_text(s("open_all_s"))
        rows.append([v, reps, spread_text(s("completed"), whole), open_all,
                     spread_text(s("pss_conn"), scale=1 / 1024), spread_text(s("threads"), whole),
                     spread_text(s("processes"), whole), spread_text(s("server_cpu_s")),
                     spread_text(Spread(get_cpu_s(r) for r in ok))])
        reasons = failed_by(ok)
        if reasons:
            notes.append(f"{v}: connections not held, by reason, over all repetitions: "
                         f"{reasons}.")
    lines = md_table(head, rows) + not_run(res, sc, res.variants(sc.name, case))
    lines += ["", "Held: connections that answered one more request sent after the hold "
              "(chatbench idle verifies each). PSS/conn: the server's PSS less the idle "
              "server's, divided by the connections open (established on its port) at each "
              "sample during the hold, median over the samples. Server CPU: the whole tree's "
              "over the run, exited threads and reaped children included."]
    return lines + table_notes(res, sc, case, notes)


def not_run(res, sc, variants):
    """The lines after a table naming the scenario's variants that did not
    run: skipped by the bench, with its reason, or left out by the profile."""
    missing = [v for v in sc.variants if v not in variants]
    lines = []
    left_out = [v for v in missing if v not in res.skipped]
    if left_out:
        lines += ["", f"Not run in this profile: {', '.join(left_out)}."]
    for v in missing:
        if v in res.skipped:
            lines += ["", f"**{v}**: {res.skipped[v]}."]
    return lines


def table_notes(res, sc, case, notes):
    """The lines after a table: its notes, then the generator's command."""
    lines = []
    for note in notes:
        lines += ["", note]
    cmd = first_command(res, sc.name, case)
    if cmd:
        lines += ["", f"Generator: {cmd}"]
    return lines


def get_cpu_s(run):
    c = get(run, "result", "cpu")
    return None if not c else (c.get("user_s") or 0) + (c.get("sys_s") or 0)


def scenario_table(res, sc, case):
    """The markdown lines of one scenario/case table, with its notes."""
    if sc.name == "idle":
        return idle_table(res, sc, case)
    if sc.name == "shutdown":
        return shutdown_table(res, sc, case)
    variants = res.variants(sc.name, case)
    metric, higher, words = primary(sc.name, case)
    ws = sc.name in ("fanout", "seat", "chat-rate") or any(
        get(r, "result", "expected") for r in res.runs
        if r.get("scenario") == sc.name and r.get("case") == case)
    per_conn = sc.name in ("fanout", "seat")
    ideal_col = ideal(res, sc.name, case)

    medians = {v: {m: res.median(sc.name, case, v, m) for m in METRICS} for v in variants}
    candidates = [m[metric] for m in medians.values() if m[metric] is not None]
    best = (max if higher else min)(candidates) if candidates else None

    head = ["variant", "reps ok", f"throughput {sc.unit}", f"vs best ({words})"]
    if ideal_col:
        head.append(ideal_col[0])
    if sc.name == "seat":
        head.append("seat s")
    head += ["p50 ms", "p99 ms"]
    if ws:
        head.append("seated %" if sc.name == "seat" else "delivered %")
    head += ["server CPU µs/op", "chatbench CPU µs/op", "peak PSS MiB"]
    if per_conn:
        head.append("PSS/conn KiB")
    wakeups = sc.name == "seat" and any(medians[v]["wakeups"] is not None for v in variants)
    if wakeups:
        head += ["server wake-ups", "wake-ups per join frame"]
    any_failed_ops = any((medians[v]["failed"] or 0) > 0 for v in variants)
    if any_failed_ops:
        head.append("failed ops")

    rows, notes = [], []
    for v in variants:
        ok = res.ok_runs(sc.name, case, v)
        bad = res.failed_runs(sc.name, case, v)
        reps = f"{len(ok)} of {len(ok) + len(bad)}"
        for r in bad:
            if ok:      # the figures are of the others; this one is said in words
                notes.append(f"{v} rep {r.get('rep', '?')}: {failure(r)}.")
        flagged = [r for r in ok if disturbed(r)]
        if flagged:
            notes.append(f"{v}: {len(flagged)} of {len(ok)} completed repetitions ran on a "
                         f"disturbed machine ({disturbed(flagged[0])}).")
            reps += " (disturbed)"
        if not ok:
            words = res.failure_list(sc.name, case, v)
            rows.append([v, reps, "; ".join(bold_failure(w) for w in words)]
                        + [""] * (len(head) - 3))
            continue
        def s(name, v=v):
            return res.spread(sc.name, case, v, name)
        m = medians[v]
        rel = None
        if best and m[metric] is not None:
            rel = m[metric] / best
        row = [v, reps, spread_text(s("rate")), ratio(rel)]
        if ideal_col:
            x = ideal_col[1](m)
            row.append("—" if x is None else
                       (f"{pct(100 * x)} %" if sc.name == "sleep" else ratio(x)))
        if sc.name == "seat":
            row.append(spread_text(s("seat_s")))
        row += [spread_text(s("p50")), spread_text(s("p99"))]
        if ws:
            row.append(spread_text(s("delivered"), pct))
        row += [spread_text(s("server_cpu")), spread_text(s("gen_cpu")),
                spread_text(s("peak_pss"), scale=1 / (1024 * 1024))]
        if per_conn:
            row.append(spread_text(s("pss_conn"), scale=1 / 1024))
        if wakeups:
            row += [spread_text(s("wakeups"), whole), spread_text(s("wakeups_per_join"))]
        if any_failed_ops:
            failed = sum(METRICS["failed"](r) or 0 for r in ok)
            row.append(str(failed))
            reasons = failed_by(ok)
            if reasons:
                notes.append(f"{v}: failed ops by reason over all repetitions: {reasons}.")
        rows.append(row)

    lines = md_table(head, rows) + not_run(res, sc, variants)
    if ideal_col:
        lines += ["", ideal_col[2]]
    if per_conn:
        lines += ["", "PSS/conn: PSS of the whole server (all its processes) once every "
                  "client is in, less the idle server's PSS measured just before the load, "
                  "divided by the connections open at that sample (median over the samples "
                  "until the clients leave); never by the target n."]
    if wakeups:
        lines += ["", "Server wake-ups: the voluntary context switches of the server's whole "
                  "tree over its life (wait4's rusage when it was reaped: every thread that "
                  "ended and every child it reaped included; its start and stop too); per "
                  "join frame: over the k(k+1)/2 join frames that seating k members sends."]
    return lines + table_notes(res, sc, case, notes)


def failed_by(runs):
    total = {}
    for r in runs:
        for reason, count in (get(r, "result", "failed_by") or {}).items():
            total[reason] = total.get(reason, 0) + count
    return ", ".join(f"{k} {v}" for k, v in sorted(total.items()))


def first_command(res, scenario, case):
    """The generator's command line of the case's first run, with the pinning."""
    for r in res.runs:
        if r.get("scenario") == scenario and r.get("case") == case and not is_wrk(r):
            cmd = get(r, "generator", "cmd")
            if cmd:
                text = "`" + " ".join(str(c) for c in cmd) + "`"
                gpin, spin = get(r, "generator", "pinned_cpus"), get(r, "server", "pinned_cpus")
                if gpin or spin:
                    text += f" (generator on CPU {gpin or 'any'}, server on CPU {spin or 'any'})"
                return text
    return None


# ---- chatbench vs wrk --------------------------------------------------------

def wrk_pairs(res):
    """(scenario, case, target) for every cross-check run's target, in order."""
    pairs = []
    for r in res.runs:
        if is_wrk(r):
            key = (r.get("scenario"), r.get("case"), wrk_target(r))
            if key not in pairs:
                pairs.append(key)
    return pairs


def wrk_table(res):
    pairs = wrk_pairs(res)
    if not pairs:
        return ["No wrk or ab runs in this profile."]
    tools = [t for t in CROSS_TOOLS if any(cross_tool(r) == t for r in res.runs)]
    rows = []
    for scenario, case, target in pairs:
        cb_rate = res.median(scenario, case, target, "rate")
        row = [f"{scenario} {case}", target, spread_text(res.spread(scenario, case, target, "rate"))]
        for t in tools:
            t_rate = res.median(scenario, case, target, "rate", wrk=t)
            agree = cb_rate / t_rate * 100 if cb_rate is not None and t_rate else None
            row += [spread_text(res.spread(scenario, case, target, "rate", wrk=t)),
                    "—" if agree is None else f"{agree:.1f} %"]
        row.append(spread_text(res.spread(scenario, case, target, "gen_cpu")))
        row += [spread_text(res.spread(scenario, case, target, "gen_cpu", wrk=t)) for t in tools]
        row.append(spread_text(res.spread(scenario, case, target, "server_cpu")))
        row += [spread_text(res.spread(scenario, case, target, "server_cpu", wrk=t))
                for t in tools]
        rows.append(row)
    head = ["scenario", "server", "chatbench req/s"]
    for t in tools:
        head += [f"{t} req/s", f"chatbench / {t}"]
    head += ["chatbench CPU µs/req"] + [f"{t} CPU µs/req" for t in tools]
    head += ["server CPU µs/req (chatbench)"] + [f"server CPU µs/req ({t})" for t in tools]
    return md_table(head, rows)


# ---- goals -------------------------------------------------------------------

MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured"


def div(a, b):
    """a / b, or None when a figure is missing (an ok run may lack one)."""
    return None if a is None or not b else a / b


def mul(k, x):
    return None if x is None else k * x


class Goals:
    """The issue's goals, evaluated from the data: each one a row with its status
    and the figures behind it. Medians over repetitions unless a goal says
    "every repetition"; a goal without data is "not measured", never guessed."""

    def __init__(self, res):
        self.res = res
        self.rows = []

    def add(self, goal, status, figures):
        self.rows.append((goal, status, figures))

    def missing(self, goal, scenario, case, *variants):
        """Settle the goal when a variant has no completed run; True if it did.
        The first variant is the goal's subject: when its every repetition
        failed the goal is not met, said in words; a reference variant that
        failed, or anything not run, leaves the goal not measured."""
        absent = [v for v in variants if not self.res.ok_runs(scenario, case, v)]
        if not absent:
            return False
        why = []
        for v in absent:
            words = self.res.failures(scenario, case, v) or self.res.skipped.get(v)
            why.append(f"{v} {scenario} {case}: " + (words or "not run in this profile"))
        subject_failed = variants[0] in absent and self.res.failed_runs(scenario, case,
                                                                         variants[0])
        self.add(goal, NOT_MET if subject_failed else NOT_MEASURED, "; ".join(why))
        return True

    def every_rep(self, goal, scenario, case, variant):
        """For "in every repetition" goals: a repetition that failed fails the
        goal, in words; True if one did (or none ran)."""
        if self.missing(goal, scenario, case, variant):
            return True
        bad = self.res.failed_runs(scenario, case, variant)
        if bad:
            self.add(goal, NOT_MET, f"{variant}: {len(bad)} of "
                     f"{len(bad) + len(self.res.ok_runs(scenario, case, variant))} "
                     f"repetitions did not complete: {self.res.failures(scenario, case, variant)}")
            return True
        return False

    def compare(self, goal, left, right, words):
        """Status of `left <= right` with None as not measured."""
        if left is None or right is None:
            self.add(goal, NOT_MEASURED, words + " (a figure is missing)")
        else:
            self.add(goal, MET if left <= right else NOT_MET, words)

    def evaluate(self):
        self.hello()
        self.sleep()
        self.fanout()
        self.cpu()
        self.seat()
        self.idle()
        self.shutdown()
        self.generator()
        self.uring()
        return self.rows

    def hello(self):
        res, sc, case = self.res, "hello-keepalive", "c=50"
        g = "(a) /hello keep-alive: chat-async ≥ 0.95× nginx's throughput"
        if not self.missing(g, sc, case, "async", "nginx"):
            a, n = res.median(sc, case, "async", "rate"), res.median(sc, case, "nginx", "rate")
            self.compare(g, mul(0.95, n), a, f"async {num(a)} req/s, nginx {num(n)} req/s: "
                         f"{ratio(div(a, n))} (need ≥ 0.95×)")
        g = "(a) /hello keep-alive: chat-async server CPU per request ≤ nginx's"
        if not self.missing(g, sc, case, "async", "nginx"):
            a = res.median(sc, case, "async", "server_cpu")
            n = res.median(sc, case, "nginx", "server_cpu")
            self.compare(g, a, n, f"async {num(a)} µs/req, nginx {num(n)} µs/req")
        g = "(a) /hello keep-alive: chat-async ≥ 15× tornado's throughput"
        if not self.missing(g, sc, case, "async", "tornado"):
            a, t = res.median(sc, case, "async", "rate"), res.median(sc, case, "tornado", "rate")
            self.compare(g, mul(15, t), a, f"async {num(a)} req/s, tornado {num(t)} req/s: "
                         f"{ratio(div(a, t))} (need ≥ 15×)")

    def sleep(self):
        res, sc, case = self.res, "sleep", "c=1000"
        target = 1000 / 0.1
        g = "(b) /sleep c=1000: chat-async ≥ 95 % of ideal (10000 req/s)"
        if not self.missing(g, sc, case, "async"):
            a = res.median(sc, case, "async", "rate")
            self.compare(g, 0.95 * target, a,
                         f"async {num(a)} req/s = {pct(mul(100, div(a, target)))} % "
                         f"of {num(target)}")
        g = "(b) /sleep c=1000: chat-async p99 ≤ 120 ms"
        if not self.missing(g, sc, case, "async"):
            p = res.median(sc, case, "async", "p99")
            self.compare(g, p, 120, f"async p99 {num(p)} ms")

    def fanout(self):
        res, sc, case = self.res, "fanout", "n=10000"
        g = "(c) fan-out n=10000: chat-async delivers 100 % (every repetition)"
        if not self.every_rep(g, sc, case, "async"):
            d = res.worst(sc, case, "async", "delivered")
            self.compare(g, 100, d, f"async worst repetition {pct(d)} % delivered")
        g = "(c) fan-out n=10000: chat-async p99 ≤ 1.5× the write floor"
        if not self.missing(g, sc, case, "async"):
            p, floor = res.median(sc, case, "async", "p99"), res.write_floor(10000)
            if floor is None:
                self.add(g, NOT_MEASURED, f"async p99 {num(p)} ms; no write floor anchor "
                         "for n=10000 in this run")
            else:
                self.compare(g, p, 1.5 * floor, f"async p99 {num(p)} ms, write floor "
                             f"{num(floor)} ms: {ratio(div(p, floor))} (need ≤ 1.50×)")
        g = "(c) fan-out n=10000: chat-async ≤ 3 KiB PSS per connection"
        if not self.missing(g, sc, case, "async"):
            b = res.median(sc, case, "async", "pss_conn")
            self.compare(g, b, GOAL_PSS_PER_CONN,
                         f"async {num(div(b, 1024))} KiB per connection "
                         "(settled PSS less idle, / 10000)")

    def cpu(self):
        res, sc = self.res, "cpu"
        cases = [c for c in res.cases(KNOWN[sc]) if not c.endswith("-hello") and res.has(sc, c)]
        scaling = get(res.anchors, "two_core_scaling")
        if not cases:
            cases = ["c=2"]
        for case in cases:
            for v in ("threaded", "forked"):
                g = f"(d) cpu {case}: chat-{v} ≥ 0.9× two-core scaling over chat-async"
                if self.missing(g, sc, case, v, "async"):
                    continue
                a, x = res.median(sc, case, "async", "rate"), res.median(sc, case, v, "rate")
                if scaling is None:
                    self.add(g, NOT_MEASURED, f"{v}/async = {ratio(div(x, a))}; "
                             "no two_core_scaling anchor in this run")
                    continue
                self.compare(g, 0.9 * scaling, div(x, a),
                             f"{v} {num(x)} req/s, async {num(a)} req/s: {ratio(div(x, a))} "
                             f"(need ≥ 0.9 × {scaling:.2f} = {ratio(0.9 * scaling)})")
            g = f"(d) cpu {case}: chat-threaded --gil ≤ 1.1× chat-async"
            if self.missing(g, sc, case, "threaded-gil", "async"):
                continue
            a = res.median(sc, case, "async", "rate")
            x = res.median(sc, case, "threaded-gil", "rate")
            self.compare(g, x, mul(1.1, a), f"threaded-gil {num(x)} req/s, async {num(a)} req/s: "
                         f"{ratio(div(x, a))} (need ≤ 1.10×)")

    def idle(self):
        res, sc, case = self.res, "idle", "n=10000"
        for v in ("async", "threaded-unpooled", "forked"):
            g = f"(e) idle: chat-{v} holds 10000 idle keep-alive connections (every repetition)"
            if self.every_rep(g, sc, case, v):
                continue
            held = res.worst(sc, case, v, "completed")
            figures = f"worst repetition held {num(held)} of 10000"
            why = failed_by(res.ok_runs(sc, case, v))
            if why:
                figures += f"; not held: {why}"
            self.compare(g, 10000, held, figures)
        g = "(e) idle: chat-forked opens 10000 idle connections in ≤ 30 s (every repetition)"
        if not self.every_rep(g, sc, case, "forked"):
            runs = res.ok_runs(sc, case, "forked")
            slow = [r for r in runs if get(r, "result", "open_all_s") is None]
            if slow:
                self.add(g, NOT_MET, f"{len(slow)} of {len(runs)} repetitions never had all "
                         f"10000 open at once")
            else:
                worst = max(get(r, "result", "open_all_s") for r in runs)
                self.compare(g, worst, 30.0, f"slowest repetition opened all in {num(worst)} s")

    def shutdown(self):
        """SIGTERM with 10000 members in the room, a tenth leaving: every C
        model exits 0 within the contract's 5 s (one run each)."""
        res, sc, case = self.res, "shutdown", "n=10000"
        for v in ("async", "uring", "threaded-unpooled", "forked"):
            g = f"(e) shutdown n=10000: chat-{v} exits 0 within 5 s of SIGTERM"
            if not any(r.get("scenario") == sc and r.get("case") == case and
                       r.get("variant") == v for r in res.runs):
                self.add(g, NOT_MEASURED, f"{v} {sc} {case}: not run in this profile")
                continue
            if self.every_rep(g, sc, case, v):
                continue
            for r in res.ok_runs(sc, case, v)[:1]:
                f = r.get("shutdown") or {}
                if not f.get("measured"):
                    self.add(g, NOT_MET, "SIGTERM was not sent")
                elif f.get("exit_s") is None:
                    self.add(g, NOT_MET, "did not exit before the harness gave up")
                else:
                    words = (f"{f['members']} members in, {f['leaving']} leaving: exit "
                             f"{num(f['exit_s'])} s after SIGTERM, status {f.get('exit_status')}")
                    if not f.get("seated_all"):
                        # Fewer members than the goal's: no verdict on 10000.
                        self.add(g, NOT_MEASURED, "seating not finished by its bound; " + words)
                    else:
                        floor = exit_floor_s(res, 10000) if v == "forked" else None
                        if floor is not None and not f.get("within_5s"):
                            words += (f"; the kernel alone took {num(floor)} s to end 10000 "
                                      f"bare children on one core in this run "
                                      f"(anchors.exit_live_us)")
                        self.add(g, MET if f.get("within_5s") else NOT_MET, words)

    def seat(self):
        res, case = self.res, "n=10000"
        sc = "seat"
        for v in ("async", "threaded-unpooled", "forked"):
            g = f"(e) seat: chat-{v} seats 10000 members in the room (every repetition)"
            if self.every_rep(g, sc, case, v):
                continue
            seat = res.spread(sc, case, v, "seat_s")
            self.add(g, MET, f"all 10000 seated in {spread_text(seat)} s")

    def generator(self):
        res = self.res
        pairs = wrk_pairs(res)
        if not pairs:
            self.add("(f) chatbench CPU per request ≤ wrk's; throughput within 15 % of wrk's "
                     "and ab's", NOT_MEASURED, "no wrk or ab run in this profile")
        for scenario, case, target in pairs:
            where = f"{scenario} {case} against {target}"
            cb = res.median(scenario, case, target, "gen_cpu")
            wk = res.median(scenario, case, target, "gen_cpu", wrk="wrk")
            if wk is not None:
                g = f"(f) {where}: chatbench CPU per request ≤ wrk's"
                self.compare(g, cb, wk, f"chatbench {num(cb)} µs/req, wrk {num(wk)} µs/req")
            cb = res.median(scenario, case, target, "rate")
            for t in CROSS_TOOLS:
                if not res.ok_runs(scenario, case, target, wrk=t) and not any(
                        cross_tool(r) == t and wrk_target(r) == target
                        and r.get("scenario") == scenario for r in res.runs):
                    continue
                tr = res.median(scenario, case, target, "rate", wrk=t)
                g = f"(f) {where}: chatbench throughput within 15 % of {t}'s"
                if cb is None or not tr:
                    self.add(g, NOT_MEASURED, f"chatbench {num(cb)} req/s, {t} {num(tr)} req/s")
                else:
                    self.add(g, MET if abs(cb / tr - 1) <= 0.15 else NOT_MET,
                             f"chatbench {num(cb)} req/s, {t} {num(tr)} req/s: "
                             f"{cb / tr * 100:.1f} %")
        self.ws_generator()

    def ws_generator(self):
        """chatbench ws keeps up with 150 000 receipts/s on one core: measured
        as the receipts it took in per second of the chat-rate scenario (its
        own core pinned), with its CPU per receipt beside."""
        res, sc, case = self.res, "chat-rate", "n=1000"
        g = "(f) chatbench ws takes in ≥ 150 000 receipts/s on one core (chat-rate, chat-async)"
        if self.missing(g, sc, case, "async"):
            return
        r = res.median(sc, case, "async", "rate")
        c = res.median(sc, case, "async", "gen_cpu")
        busy = res.median(sc, case, "async", "gen_busy")
        self.compare(g, 150000, r, f"{num(r)} receipts/s at {num(c)} µs of chatbench CPU each "
                     f"(its core {num(busy)} % busy; {num(div(1e6, c))} receipts/s would fill it)")


    def largest(self, scenario, default):
        """The largest case of the scenario in the data ("n=1000"), else default."""
        cases = [c for c in self.res.cases(KNOWN[scenario]) if self.res.has(scenario, c)
                 and case_n(c)]
        return max(cases, key=case_n) if cases else default

    def uring(self):
        """Issue 18: chat-uring against chat-async, both measured in this run.
        Ratios of medians; a repetition that failed is said in words."""
        res = self.res
        sc, case = "hello-keepalive", "c=50"
        g = "(18) /hello keep-alive: chat-uring server CPU per request ≤ 0.85× chat-async's"
        if not self.missing(g, sc, case, "uring", "async"):
            u = res.median(sc, case, "uring", "server_cpu")
            a = res.median(sc, case, "async", "server_cpu")
            self.compare(g, u, mul(0.85, a), f"uring {num(u)} µs/req, async {num(a)} µs/req: "
                         f"{ratio(div(u, a))} (need ≤ 0.85×)")
        sc = "fanout"
        case = self.largest(sc, "n=10000")
        where = f"(18) fan-out {case} (the largest run)"
        g = f"{where}: chat-uring delivers 100 % (every repetition)"
        if not self.every_rep(g, sc, case, "uring"):
            d = res.worst(sc, case, "uring", "delivered")
            self.compare(g, 100, d, f"uring worst repetition {pct(d)} % delivered")
        g = f"{where}: chat-uring p99 ≤ chat-async's"
        if not self.missing(g, sc, case, "uring", "async"):
            u, a = res.median(sc, case, "uring", "p99"), res.median(sc, case, "async", "p99")
            self.compare(g, u, a, f"uring p99 {num(u)} ms, async p99 {num(a)} ms: "
                         f"{ratio(div(u, a))} (need ≤ 1.00×)")
        g = f"{where}: chat-uring server CPU per receipt ≤ 0.85× chat-async's"
        if not self.missing(g, sc, case, "uring", "async"):
            u = res.median(sc, case, "uring", "server_cpu")
            a = res.median(sc, case, "async", "server_cpu")
            self.compare(g, u, mul(0.85, a), f"uring {num(u)} µs/receipt, async {num(a)} "
                         f"µs/receipt: {ratio(div(u, a))} (need ≤ 0.85×)")
        sc = "idle"
        case = self.largest(sc, "n=10000")
        g = (f"(18) idle {case} (the largest run): chat-uring PSS per held connection "
             "≤ chat-async's")
        if not self.missing(g, sc, case, "uring", "async"):
            u, a = res.median(sc, case, "uring", "pss_conn"), res.median(sc, case, "async",
                                                                         "pss_conn")
            self.compare(g, u, a, f"uring {num(div(u, 1024))} KiB, async {num(div(a, 1024))} "
                         f"KiB per connection (PSS less idle, / connections open during the "
                         f"hold): {ratio(div(u, a))} (need ≤ 1.00×)")


def goals_section(res):
    rows = Goals(res).evaluate()
    shown = {MET: "**met**", NOT_MET: "**NOT MET**", NOT_MEASURED: "not measured"}
    count = {s: sum(1 for r in rows if r[1] == s) for s in shown}
    lines = [f"{count[MET]} met, {count[NOT_MET]} not met, {count[NOT_MEASURED]} not measured.",
             ""]
    for v, why in sorted(res.skipped.items()):
        lines += [f"**{why}**: the {v} column is empty and its goals are not measured.", ""]
    return lines + md_table(["goal", "status", "figures"],
                            [[g, shown[s], f] for g, s, f in rows])


# ---- plots -------------------------------------------------------------------

def colour(variant):
    """The variant's colour; a variant outside COLOURS gets the next spare one."""
    if variant not in COLOURS:
        spare = len(COLOURS) - len(SPARE_COLOURS_FROM)
        COLOURS[variant] = SPARE_COLOURS[spare % len(SPARE_COLOURS)]
    return COLOURS[variant]


class Panel:
    """One bar chart: groups of bars (one group per case), one bar per variant with
    its min–max as an error bar, and optional reference marks per group."""

    def __init__(self, title, ylabel, log=False):
        self.title, self.ylabel, self.log = title, ylabel, log
        self.groups = []      # (label, {variant: Spread}, reference value or None)
        self.ref_title = None
        self.failed = {}      # (group index, variant) -> "failed" or "not finished"

    def group(self, label, spreads, ref=None, failed=None):
        """failed: {variant: words} for variants none of whose runs completed;
        they get a slot with the words in red instead of a bar."""
        spreads = {v: s for v, s in spreads.items() if s.median is not None}
        failed = {v: w for v, w in (failed or {}).items() if v not in spreads}
        if spreads or failed:
            for v, w in failed.items():
                self.failed[(len(self.groups), v)] = w
            self.groups.append((label, spreads, ref))

    def gnuplot(self, name):
        """Commands drawing this panel; datablocks are prefixed with `name`."""
        if not self.groups:
            return ["unset key; unset border; unset tics; unset xlabel; unset ylabel",
                    f"set title {q(self.title)}",
                    f"set label 1 {q('not run in this profile')} at graph 0.5, 0.5 center",
                    "plot [0:1][0:1] NaN notitle", "unset label 1; set border; set tics"]
        shown = {v for g in self.groups for v in g[1]} | {v for _, v in self.failed}
        variants = [v for v in ORDER if v in shown] + sorted(shown - set(ORDER))
        width = len(variants) + 1
        single = len(self.groups) == 1
        out, plots, ticks = [], [], []
        values = [x for g in self.groups for s in g[1].values() for x in (s.lo, s.median)]
        values = values or [1]
        values += [g[2] for g in self.groups if g[2]]
        values += [s.hi for g in self.groups for s in g[1].values()]
        lo = min(v for v in values if v > 0) if any(v > 0 for v in values) else 1
        hi = max(values) if values else 1
        for vi, v in enumerate(variants):
            block = f"${name}_{vi}"
            rows = []
            for gi, (label, spreads, _) in enumerate(self.groups):
                s = spreads.get(v)
                x = gi * width + vi
                if s:
                    rows.append(f"{x} {s.median!r} {s.lo!r} {s.hi!r}")
                if single and (s or (gi, v) in self.failed):
                    ticks.append(f"{q(v)} {x}")
            if not rows:        # failed everywhere: its words stand in the slot
                continue
            out += [f"{block} << EOD"] + rows + ["EOD"]
            key = "notitle" if single else f"title {q(v)}"
            plots.append(f"{block} using 1:2 with boxes lc rgb {q(colour(v))} {key}")
            # min–max as a capped vertical bar, none when the repetitions agree
            plots.append(f"{block} using 1:($4 > $3 ? $3 : NaN):(0):($4 - $3) with vectors "
                         "heads size screen 0.006,90 lc rgb 'black' notitle")
        refs = [(gi, g[2]) for gi, g in enumerate(self.groups) if g[2]]
        if refs:
            out.append(f"${name}_ref << EOD")
            for gi, y in refs:
                out.append(f"{gi * width + (len(variants) - 1) / 2} {y!r} {len(variants) / 2}")
            out.append("EOD")
            plots.append(f"${name}_ref using ($1 - $3):2:(2 * $3):(0) with vectors nohead "
                         "lc rgb 'black' lw 2 dt 2 "
                         f"title {q(self.ref_title or 'ideal')}")
        if not single:
            ticks = [f"{q(g[0])} {gi * width + (len(variants) - 1) / 2}"
                     for gi, g in enumerate(self.groups)]
        # A variant that failed is a word where its bar would be, never a bar.
        for k, ((gi, v), words) in enumerate(sorted(self.failed.items())):
            out.append(f"set label {k + 10} {q(words)} at {gi * width + variants.index(v)}, "
                       "graph 0.03 rotate by 90 left textcolor rgb 'red' front")
        out += [
            f"set title {q(self.title)}", f"set ylabel {q(self.ylabel)}",
            "set style fill solid 0.85 border -1", "set boxwidth 0.85",
            f"set xtics ({', '.join(ticks)}) rotate by -30 nomirror" if single
            else f"set xtics ({', '.join(ticks)}) norotate nomirror",
            f"set xrange [-1:{len(self.groups) * width - 1}]",
            "set key top left" if not single or refs else "unset key",
            "set grid ytics",
        ]
        # Boxes start at the bottom of the axis; on a log axis that must be
        # below the smallest value, or the smallest bar vanishes.
        out += [f"set logscale y; set yrange [{lo / 3!r}:*]" if self.log
                else f"unset logscale y; set yrange [0:{hi * 1.15!r}]"]
        if not plots:           # only failures: an empty axis under their words
            out.append("set yrange [1:10]" if self.log else "set yrange [0:1]")
        out.append("plot " + ", \\\n     ".join(plots or ["NaN notitle"]))
        return out


class LinePanel:
    """Lines against n on log–log axes: one line per variant through the
    medians, min–max as error bars; a case where a variant has no completed
    run is a red word at its n, never a point."""

    def __init__(self, title, ylabel, xlabel="connections n"):
        self.title, self.ylabel, self.xlabel = title, ylabel, xlabel
        self.series = {}      # variant -> [(n, Spread)]
        self.failed = []      # (n, variant, words)

    def point(self, variant, n, spread, failed=None):
        if spread.median is not None and spread.median > 0:
            self.series.setdefault(variant, []).append((n, spread))
        elif failed:
            self.failed.append((n, variant, failed))

    def gnuplot(self, name):
        if not self.series and not self.failed:
            return Panel(self.title, self.ylabel).gnuplot(name)
        ns = [n for pts in self.series.values() for n, _ in pts] + [n for n, _, _ in self.failed]
        ys = [x for pts in self.series.values() for _, sp in pts for x in (sp.lo, sp.hi)
              if x and x > 0] or [1]
        out, plots = [], []
        variants = [v for v in ORDER if v in self.series]
        variants += sorted(set(self.series) - set(variants))
        for vi, v in enumerate(variants):
            block = f"${name}_{vi}"
            out += [f"{block} << EOD"] + [f"{n} {sp.median!r} {sp.lo!r} {sp.hi!r}"
                                          for n, sp in sorted(self.series[v], key=lambda p: p[0])]
            out.append("EOD")
            plots.append(f"{block} using 1:2:3:4 with yerrorlines lc rgb {q(colour(v))} "
                         f"pt 7 title {q(v)}")
        for k, (n, v, words) in enumerate(self.failed):
            out.append(f"set label {k + 10} {q(v + ': ' + words)} at {n}, graph "
                       f"{0.05 + 0.06 * k} center textcolor rgb 'red' front")
        out += [f"set title {q(self.title)}", f"set ylabel {q(self.ylabel)}",
                f"set xlabel {q(self.xlabel)}", "set logscale xy", "set key top left",
                "set grid xtics ytics",
                f"set xrange [{min(ns) / 1.5!r}:{max(ns) * 1.5!r}]",
                f"set yrange [{min(ys) / 2!r}:{max(ys) * 2!r}]"]
        out.append("plot " + ", \\\n     ".join(plots or ["NaN notitle"]))
        return out


def line_panel(res, scenario, cases, metric, title, ylabel, scale=1.0):
    """metric of each variant against n over the scenario's cases."""
    p = LinePanel(title, ylabel)
    for case in cases:
        n, marks = case_n(case), failed_marks(res, scenario, case)
        for v in res.variants(scenario, case):
            sp = res.spread(scenario, case, v, metric)
            if sp.median is not None:
                sp.median, sp.lo, sp.hi = sp.median * scale, sp.lo * scale, sp.hi * scale
            p.point(v, n, sp, marks.get(v))
    return p


def idle_panels(res, cases):
    return [line_panel(res, "idle", cases, "pss_conn", "idle: PSS per open connection, "
                       "log–log", "KiB", scale=1 / 1024),
            line_panel(res, "idle", cases, "open_all_s", "idle: time to open all n "
                       "(first answers), log–log", "seconds")]


def seat_panel(res, cases):
    return line_panel(res, "seat", cases, "seat_s", "seat: time to seat n members "
                      "(n(n+1)/2 join frames), log–log", "seconds")


def q(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def plot(path, panels, layout=(1, 1), size=(900, 500)):
    rows, cols = layout
    script = [f"set terminal pngcairo size {size[0]},{size[1]} font 'DejaVu Sans,10'",
              f"set output {q(path)}"]
    if len(panels) > 1:
        script.append(f"set multiplot layout {rows},{cols}")
    for i, p in enumerate(panels):
        script += ["reset", "set border; set tics"] if i else []
        script += p.gnuplot(f"p{i}")
    if len(panels) > 1:
        script.append("unset multiplot")
    script.append("set output")
    run = subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True,
                         capture_output=True)
    if run.returncode != 0 or not os.path.exists(path):
        raise RuntimeError(f"gnuplot failed on {os.path.basename(path)}: {run.stderr.strip()}")


def spreads(res, scenario, case, metric, variants=None, scale=1.0):
    out = {}
    for v in variants or res.variants(scenario, case):
        s = res.spread(scenario, case, v, metric)
        if scale != 1.0 and s.median is not None:
            s.median, s.lo, s.hi = s.median * scale, s.lo * scale, s.hi * scale
        out[v] = s
    return out


def failed_marks(res, scenario, case):
    """{variant: "failed" or "not finished"} for the variants with runs in the
    case none of which completed: what a plot shows instead of their bar."""
    out = {}
    for v in res.variants(scenario, case):
        if not res.ok_runs(scenario, case, v):
            words = res.failures(scenario, case, v)
            if words:
                out[v] = words.split(":", 1)[0]
    return out


def throughput_panel(res, sc, cases, title=None):
    p = Panel(title or f"{sc.name}: throughput (median, min–max)", sc.unit)
    for case in cases:
        p.group(case, spreads(res, sc.name, case, "rate"), failed=failed_marks(res, sc.name, case))
    return p


def sleep_panel(res, cases, title="sleep: throughput, % of ideal (c / 0.1 s)"):
    p = Panel(title, "% of ideal")
    p.ref_title = "ideal"
    for case in cases:
        n = case_n(case)
        if n:
            p.group(case, spreads(res, "sleep", case, "rate", scale=100 / (n / 0.1)), ref=100,
                    failed=failed_marks(res, "sleep", case))
    return p


def fanout_panel(res, cases, title="fan-out: p99 latency per receipt (log scale)"):
    p = Panel(title, "ms", log=True)
    p.ref_title = "write floor"
    for case in cases:
        p.group(case, spreads(res, "fanout", case, "p99"), ref=res.write_floor(case_n(case)),
                failed=failed_marks(res, "fanout", case))
    return p


def memory_panel(res, keys, title="memory per connection: settled PSS less idle / n (log scale)", ref=None):
    p = Panel(title, "KiB per connection", log=True)
    for scenario, case in keys:
        label = case if len({s for s, _ in keys}) == 1 else f"{scenario} {case}"
        p.group(label, spreads(res, scenario, case, "pss_conn", scale=1 / 1024), ref=ref,
                failed=failed_marks(res, scenario, case))
    return p


def make_plots(res, outdir):
    """Write every plot the data allows; returns {scenario or role: file name}."""
    made = {}
    present = lambda name: [c for c in res.cases(KNOWN[name]) if res.has(name, c)]
    for sc in res.scenarios():
        cases = [c for c in res.cases(sc) if res.has(sc.name, c)]
        if not cases or sc.name in ("fanout", "seat", "idle", "shutdown"):
            continue
        if sc.name == "sleep":
            panels = [sleep_panel(res, cases)]
        elif sc.name == "cpu":
            load = [c for c in cases if not c.endswith("-hello")]
            twins = [c for c in cases if c.endswith("-hello")]
            lat = Panel("/hello at 50 req/s during the /cpu load: p99 (log scale)", "ms", log=True)
            for c in twins:
                lat.group(c[:-len("-hello")], spreads(res, "cpu", c, "p99"),
                          failed=failed_marks(res, "cpu", c))
            panels = [throughput_panel(res, sc, load, "cpu: /cpu?n=20000 throughput"), lat]
        else:
            panels = [throughput_panel(res, sc, cases)]
        name = f"{sc.name}.png"
        plot(os.path.join(outdir, name), panels, (1, len(panels)), (450 * len(panels) + 450, 500))
        made[sc.name] = name
    fan = present("fanout")
    if fan:
        plot(os.path.join(outdir, "fanout-latency.png"), [fanout_panel(res, fan)])
        made["fanout"] = "fanout-latency.png"
    idle = present("idle")
    if idle:
        plot(os.path.join(outdir, "idle.png"), idle_panels(res, idle), (1, 2), (1300, 500))
        made["idle"] = "idle.png"
    seat = present("seat")
    if seat:
        plot(os.path.join(outdir, "seat.png"), [seat_panel(res, seat)])
        made["seat"] = "seat.png"
    mem = [("fanout", c) for c in fan] + [("seat", c) for c in seat]
    if mem:
        plot(os.path.join(outdir, "memory-per-connection.png"), [memory_panel(res, mem)])
        made["memory"] = "memory-per-connection.png"
    plot(os.path.join(outdir, "headline.png"), headline_panels(res), (2, 2), (1200, 900))
    made["headline"] = "headline.png"
    return made


def headline_panels(res):
    """The story in four panels: plain throughput, waiting, fan-out, memory."""
    hello = Panel("GET /hello, keep-alive, c=50: req/s", "req/s")
    hello.group("c=50", spreads(res, "hello-keepalive", "c=50", "rate"),
                failed=failed_marks(res, "hello-keepalive", "c=50"))
    sleep_case = next((c for c in ("c=1000", "c=100") if res.has("sleep", c)), "c=1000")
    sleep = sleep_panel(res, [sleep_case], f"GET /sleep?ms=100, {sleep_case}: % of ideal")
    fan = [c for c in res.cases(KNOWN["fanout"]) if res.has("fanout", c)]
    big = fan[-1] if fan else "n=10000"
    fanout = fanout_panel(res, [big], f"chat fan-out, {big}: p99 ms (log), write floor")
    memory = memory_panel(res, [("fanout", big)], f"chat fan-out, {big}: KiB of PSS per "
                          "connection (log)", ref=GOAL_PSS_PER_CONN / 1024)
    memory.ref_title = "goal (c) for chat-async"
    return [hello, sleep, fanout, memory]


# ---- the report --------------------------------------------------------------

def machine_section(res):
    m = res.doc.get("machine") or {}
    mem = m.get("mem_total_kb")
    ports = m.get("ip_local_port_range")
    lines = [f"- profile: **{res.profile}**, started {res.doc.get('started', '?')}, "
             f"finished {res.doc.get('finished', '?')}",
             f"- CPU: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores; "
             f"kernel {m.get('kernel', '?')}; memory "
             f"{'?' if mem is None else f'{mem / 1024 / 1024:.1f} GiB'}",
             f"- limits: nofile {m.get('nofile_soft', '?')}/{m.get('nofile_hard', '?')}, "
             f"somaxconn {m.get('somaxconn', '?')}, pid_max {m.get('pid_max', '?')}, "
             f"local ports {'?' if not ports else f'{ports[0]}–{ports[1]}'}"]
    virt = m.get("virtualization")
    if virt is not None:
        lines.append(f"- virtualization: {virt.get('hypervisor') or 'none seen (bare metal)'}; "
                     f"Meltdown: {virt.get('meltdown') or '?'}")
    for note in m.get("notes") or []:
        lines.append(f"- note: {note}")
    return lines


def anchors_section(res):
    a = res.anchors
    floors = get(a, "write_floor_ms") or {}
    lines = [f"- fork + _exit + waitpid: {num(a.get('fork_us'))} µs",
             f"- two-core scaling (two processes vs one, same SHA-256 chain): "
             f"{ratio(a.get('two_core_scaling'))}"]
    for n in sorted(floors, key=lambda k: int(k) if str(k).isdigit() else 0):
        lines.append(f"- write floor, one small write to {n} loopback sockets: "
                     f"{num(floors[n])} ms")
    return lines + [""] + fork_live_table(res) + [""] + wait_table(res)


def fork_live_table(res):
    """fork + _exit + waitpid from a parent with k live children: bare, and
    with one socketpair end per child held by the parent (lab-anchors
    fork-live), µs per fork."""
    live = get(res.anchors, "fork_live_us")
    if not live or not any(live.values()):
        return ["- fork with k live children: not measured in this run"]
    ks = sorted({int(k) for kind in live.values() for k in kind})
    labels = {"bare": "children only", "fds": "and one descriptor per child"}
    rows = [[labels.get(kind, kind)] + [num(live[kind].get(str(k))) if str(k) in live[kind]
                                        else "—" for k in ks]
            for kind in ("bare", "fds") if kind in live]
    out = (["fork + _exit + waitpid from a parent with k live children, µs per fork "
            "(lab-anchors fork-live):", ""] + md_table(["parent holds"] + [f"k={k}" for k in ks],
                                                     rows))
    return out + exit_live_lines(res)


def exit_live_lines(res):
    """The k live children of fork-live ended at once: µs per child until
    the last was reaped, and the whole, on one core (anchors.exit_live_us)."""
    ex = get(res.anchors, "exit_live_us")
    if not ex or not any(ex.values()):
        return []
    ks = sorted({int(k) for kind in ex.values() for k in kind})
    labels = {"bare": "children only", "fds": "and one descriptor per child"}
    rows = [[labels.get(kind, kind)] + [f"{num(ex[kind][str(k)])} µs ({num(ex[kind][str(k)] * k / 1e6)} s)"
                                        if str(k) in ex[kind] else "—" for k in ks]
            for kind in ("bare", "fds") if kind in ex]
    return (["", "Then the k children ended at once, on one core: µs per child until the "
             "last was reaped (all k, s). They map libc and libcrypto only: a lower bound "
             "on tearing down k chat-forked children, the kernel's floor under its "
             "shutdown:", ""] + md_table(["parent holds"] + [f"k={k}" for k in ks], rows))


def exit_floor_s(res, n):
    """Seconds the kernel took to end n bare children on one core in this
    run's anchor (the lower of the two kinds), or None."""
    ex = get(res.anchors, "exit_live_us") or {}
    got = [kind[str(n)] for kind in ex.values() if isinstance(kind, dict) and str(n) in kind]
    return min(got) * n / 1e6 if got else None


WAIT_METHODS = ["select", "poll", "epoll"]


def wait_table(res):
    """The select / poll / epoll anchor: one wait call with n idle descriptors
    and one ready (bench/waitcost.c), µs per call."""
    wait = get(res.anchors, "wait_ns")
    if not wait:
        return ["- one wait call with n idle descriptors (select / poll / epoll): "
                "not measured in this run"]
    ns = sorted({int(n) for m in wait.values() for n in m}, key=int)
    rows = []
    for m in WAIT_METHODS + sorted(set(wait) - set(WAIT_METHODS)):
        if m in wait:
            rows.append([m] + [num(div(wait[m].get(str(n)), 1000)) if str(n) in wait[m]
                               else ("over FD_SETSIZE" if m == "select" else "—") for n in ns])
    return (["One wait call with n idle descriptors and one ready, µs per call "
             "(bench/waitcost.c: select and poll scan all n, epoll returns its ready list):",
             ""] + md_table(["call"] + [f"n={n}" for n in ns], rows))


SYSCALL_TOP = 5     # the most frequent calls of each model get a row


def syscalls_section(res):
    """System calls per answered request of each C model (bench/syscalls.py):
    the most frequent calls of each, the rest as "other", and the total. A
    model whose count failed says why in words, never a number."""
    doc = res.doc.get("syscalls")
    if not doc or not doc.get("models"):
        lines = ["Not measured in this run."]
    else:
        models = doc["models"]
        names = [m for m in ORDER if m in models] + sorted(set(models) - set(ORDER))
        ok = {m: models[m] for m in names if models[m].get("ok")}
        per = {m: {c["name"]: c for c in d.get("syscalls") or []} for m, d in ok.items()}
        calls = []
        for d in ok.values():
            for c in (d.get("syscalls") or [])[:SYSCALL_TOP]:
                if c["name"] not in calls:
                    calls.append(c["name"])
        calls.sort(key=lambda k: -max(per[m][k]["per_request"] if k in per[m] else 0
                                      for m in ok))
        rows = [["requests answered"] + [whole(ok[m]["answered"]) if m in ok else
                                         bold_failure("failed: " + (models[m].get("error") or
                                                                    "no reason recorded"))
                                         for m in names]]
        for k in calls:
            cells = []
            for m in names:
                c = per.get(m, {}).get(k)
                if m not in ok:
                    cells.append("")
                elif c is None:
                    cells.append("0")
                else:
                    err = div(c.get("errors"), ok[m]["answered"])
                    cells.append(num(c["per_request"]) + (f" ({num(err)} failed)" if err else ""))
            rows.append([f"`{k}`"] + cells)
        rows.append(["other"] + [
            "" if m not in ok else num(max(0.0, round(ok[m]["per_request"] - sum(
                per[m][k]["per_request"] for k in calls if k in per[m]), 6))) for m in names])
        rows.append(["**total**"] + ["" if m not in ok else f"**{num(ok[m]['per_request'])}**"
                                     for m in names])
        lines = [f"GET /hello on {doc.get('conns', '?')} keep-alive connections, "
                 f"{doc.get('requests', '?')} requests asked; each cell is system calls per "
                 "request answered (in parentheses: how many of them returned an error, such "
                 "as EAGAIN). Method: " + doc.get("method", "?") + ".", ""]
        lines += md_table(["system call"] + names, rows)
        lines += ["", "`io_uring_enter` counts one system call for many operations: chat-uring "
                  "submits its accepts, receives and sends as ring entries and reaps their "
                  "completions, a batch per call, so its column counts entries into the "
                  "kernel, not I/O operations (these run inside the kernel, unseen by "
                  "strace). strace slows every server many times over, so more is ready at "
                  "each wake-up than at full speed: the waiting calls (epoll_wait, ppoll, "
                  "io_uring_enter) are fewer per request here than in the timed runs. The "
                  "per-connection calls (accept, socket options, close) are spread over the "
                  "requests of each connection."]
    for v, why in sorted(res.skipped.items()):
        lines += ["", f"**{why}**."]
    return lines


def failed_section(res):
    bad = res.failed_runs()
    if not bad:
        return ["None: every run completed."]
    return md_table(["scenario", "case", "variant", "rep", "what happened"],
                    [[r.get("scenario"), r.get("case"), r.get("variant"), r.get("rep"),
                      failure(r)] for r in bad])


def disturbed_section(res):
    """Runs that completed on a machine that was not quiet: their figures
    stand, flagged (lab_bench.py records why in `disturbed`)."""
    flagged = [r for r in res.runs if completed(r) and disturbed(r)]
    if not flagged:
        if any("disturbed" in r for r in res.runs):
            return ["None: every completed run started on a quiet machine."]
        return ["Not recorded in this results.json (recorded before runs were checked "
                "for a quiet machine)."]
    return md_table(["scenario", "case", "variant", "rep", "load at start, end", "why"],
                    [[r.get("scenario"), r.get("case"), r.get("variant"), r.get("rep"),
                      loads(r), disturbed(r)] for r in flagged])


def loads(run):
    a, b = run.get("loadavg_start"), run.get("loadavg_end")
    if a and b:
        return f"{a[0]:.2f}, {b[0]:.2f}"
    return "—" if run.get("loadavg_1m") is None else f"{run['loadavg_1m']:.2f}, ?"


def report(res, plots, plot_error=None):
    out = ["# c10k-lab benchmark report", ""]
    if "headline" in plots:
        out += [f"![headline]({plots['headline']})", ""]
    elif plot_error:
        out += [f"Plots were not made: {plot_error}", ""]
    out += ["## Machine and profile", ""] + machine_section(res)
    out += ["", "## Anchors", "", "Measured in the same run; the ratios below use them.", ""]
    out += anchors_section(res)
    out += ["", "## How to read the tables", "",
            "Each cell is the median over the repetitions, with min–max in parentheses "
            "when they differ. *vs best* divides by the best variant's median of the "
            "figure named in the column head. Server CPU is the whole server's user + "
            "system time over the run per completed operation; chatbench CPU is the "
            "generator's own, shown next to it so that every figure comes with what it "
            "cost to produce. PSS counts every process of the server."]
    out += ["", "## Goals", ""] + goals_section(res)
    for sc in res.scenarios():
        out += ["", f"## {sc.name}", "", sc.title + ".", ""]
        if sc.name in plots:
            out += [f"![{sc.name}]({plots[sc.name]})", ""]
        if sc.name == "fanout" and "memory" in plots:
            out += [f"![memory per connection]({plots['memory']})", ""]
        if not res.has(sc.name):
            out.append("Not run in this profile.")
            continue
        for case in res.cases(sc):
            out += [f"### {sc.name} {case}", ""]
            if not res.has(sc.name, case):
                out.append("Not run in this profile.")
            else:
                out += scenario_table(res, sc, case)
            out.append("")
        if out[-1] == "":
            out.pop()
    out += ["", "## System calls per request", ""] + syscalls_section(res)
    out += ["", "## chatbench vs wrk and ab", "",
            "The same server and case measured by each generator in this run, each pinned "
            "to the same core in turn. rate is chatbench's rate_in_t (responses within the "
            "window); wrk's and ab's are their own Requests/sec.", ""]
    out += wrk_table(res)
    out += ["", "## Runs that failed, were cut off or did not finish", "",
            "None of these is a figure above: a table, goal or plot says them in words.",
            ""] + failed_section(res)
    out += ["", "## Runs on a disturbed machine", ""] + disturbed_section(res)
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print("usage: python3 bench/report.py RESULTS_DIR", file=sys.stderr)
        return 2
    outdir = argv[1]
    with open(os.path.join(outdir, "results.json"), encoding="utf-8") as f:
        res = Results(json.load(f))
    plots, plot_error = {}, None
    if shutil.which("gnuplot") is None:
        plot_error = "gnuplot not found (Debian package gnuplot-nox)"
    else:
        try:
            plots = make_plots(res, outdir)
        except RuntimeError as e:
            plot_error = str(e)
    with open(os.path.join(outdir, "report.md"), "w", encoding="utf-8") as f:
        f.write(report(res, plots, plot_error))
    print(os.path.join(outdir, "report.md"))
    if plot_error:
        print(f"report.py: {plot_error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
