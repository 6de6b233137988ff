#!/usr/bin/env python3
"""./lab bench: run the side-by-side comparison of the four chat models.

usage: lab_bench.py [--quick | --full] [--models async,uring,threaded,forked,nginx,tornado]
                    [--scenarios fanout,seat,idle,...] [--build DIR] [--out DIR] [--reps N]
                    [--smoke]

Writes OUT/<UTC timestamp>/results.json (the contract is bench/RESULTS.md),
then runs bench/report.py on it (report.md and the PNG plots) and points
OUT/latest at it. Standard library only.

How a run is measured (one server variant, one scenario case, one repetition):
  * the server starts fresh on 127.0.0.1 (port 0, the real port read from its
    `listening on` line), pinned with taskset to CPU 0; the generator
    (chatbench, or wrk / ab for the wrk-vs-* / ab-vs-* cross-checks) is
    pinned to CPU 1, and so
    is this script (its /proc sampler must not steal the server's core). The
    `cpu` scenario leaves server and generator unpinned.
  * the C models get a users file with the demo accounts (coco, cc, aa,
    password 123456) hashed beforehand with the default 100 000 iterations, so
    that a server is ready in milliseconds instead of hashing them at start.
  * a sampler thread reads the server's whole process tree every 200 ms from
    /proc: the tree is found by parent pid (a scan of /proc/*/stat; this
    kernel may lack /proc/PID/task/TID/children). CPU is utime+stime+cutime+
    cstime summed over the live processes of the tree. utime/stime cover all
    threads of a process, dead threads included; cutime/cstime hold what the
    process's reaped children used, so a chat-forked child that exits during
    the run is not lost: while it is alive (or a zombie) its own fields count,
    once its parent has reaped it, its parent's cutime/cstime carry it. Nothing
    is counted twice, because a reaped process is no longer in the tree. (A
    process that exits in the few microseconds between the reads of one sample
    can be missed or counted twice in that one sample; the run's figure is the
    difference between the sample taken as the generator starts and the one
    taken as it ends.) Resolution: the kernel's clock tick (10 ms), rounded
    down once per process, except that a process of one thread is read from
    /proc/PID/schedstat in nanoseconds when that is larger
    (sampling.py:tree_cpu_s): 10 000 chat-forked children no longer lose up to
    a tick each (runs recorded before 2026-12-03 21:00 UTC did, and read as
    disturbed for it).
    Memory: VmRSS and Threads from /proc/PID/status, Pss from
    /proc/PID/smaps_rollup (read every sample while the tree has at most 64
    processes, else every 5th sample, since a walk of 1000 page tables every
    200 ms would itself load the machine), MemAvailable from /proc/meminfo.
    The sample taken as the generator starts is the idle server
    (server_usage.idle_pss_bytes): the report subtracts it from the PSS of
    the settled room to give the memory of one connection.
  * the server is stopped with SIGTERM, given 6 s, then its process group is
    killed; a process left behind is killed. Such a run keeps its figures
    (ok stays true) and says what went wrong in stop_error; machine.notes
    counts them.
  * every run is bounded (profiles.run_bound): past what the generator takes by
    itself (chatbench's 10 s drain after -t for http; seating n members,
    n(n+1)/2 join frames, for ws and seat) the server is stopped, which fails
    what is in flight at once; the run then says cut_off_s and the report
    calls it "not finished", never a figure. A generator still running 20 s
    later is killed and the run fails.
  * between runs: the previous server's whole tree (its session) must have
    exited; the wait is bounded (10 s), then what is left is killed and the
    next run is flagged disturbed. The server's lifetime CPU is read from
    /proc/PID/stat while it is a zombie, before it is reaped
    (server_usage.cpu_total_s: utime + stime + cutime + cstime, so every
    child it reaped and every thread that ended is in it).
  * a disturbed machine: each run records the load average at start and end
    (loadavg_start, loadavg_end) and the CPU that processes other than the
    bench's own used in a 0.3 s look just before the load (server idle) and
    during the run (others_cpu, % of one core: the machine's busy time from
    /proc/stat, steal included, less the server's, the generators' and this
    script's; interrupt and softirq time apart, in irq_during_pct, since
    it is charged to no process and includes the run's own loopback
    traffic). A run is flagged (disturbed: reasons) when others used over
    25 % of a core before or during it; the load average is recorded, not
    used to flag (it counts the bench's own previous runs: see
    machine.py:disturbance); its figures stand.
  * samples count the connections actually open (open_conns: established TCP
    connections on the server's port in /proc/net/tcp), read with the PSS,
    so that memory per connection divides by what was open, not by n.
  * search: the upstream is one chat-async answering /sleep?ms=50, started
    once for the scenario and pinned to CPU 1 with the generator (its CPU is
    not the server's).
  * each run also records wall_s and the 1-minute load average when it
    started (loadavg_1m, as loadavg_start[0]).
  * chat-uring (the `uring` variant, issue 18) runs wherever chat-async does,
    pinned the same way, when it is built (only where liburing was found) and
    io_uring is permitted: before the runs it is started once and asked
    GET /hello (bench/uring_check.py). Otherwise the variant is skipped and
    results.json says why (variants_skipped.uring), as the report does.

System calls per request (bench/syscalls.py), after the timed runs and
outside them: each C model (async, threaded, forked, uring) under
`strace -c -f` attached to its whole tree for a bounded GET /hello keep-alive
load (`chatbench http -k -c C -n N`); every call between attach and detach
over the requests answered, by system call (results.json: syscalls).

Anchors (measured in the same run, by two small C helpers built with
chatbench: bench/anchors.c as BUILD/bench/lab-anchors, and
bench/waitcost.c as BUILD/bench/waitcost):
  * fork_us: fork() + _exit(0) in the child + waitpid() in the parent, in a
    tiny process, median of several batches, in microseconds.
  * fork_live_us: the same from a parent with k live children (k from the
    profile, up to 10 000), "bare" (the children hold nothing of the
    parent's) and "fds" (the parent keeps one socketpair end per child, as
    chat-forked's parent keeps its hub links): the fork's cost that grows
    with the children alive, and which part of it is the descriptor table.
  * exit_live_us: then those k children are ended at once (the pipe they
    wait on is closed) and reaped, on the helper's one core: microseconds per
    child from the close to the last one reaped. These children map libc and
    libcrypto only, so k of them is a lower bound on tearing down k
    chat-forked children (which map libcurl and its libraries too): the
    kernel's floor under chat-forked's shutdown with k connections.
  * two_core_scaling: the /cpu SHA-256 chain (OpenSSL, 32 zero bytes, each
    round hashing the previous digest) run in one process, then in two
    processes at once (unpinned); scaling = 2 * t(one) / t(two, wall).
    2.0 is perfect, 1.0 means one core.
  * write_floor_ms: N established TCP loopback connections (the peer is another
    process that does not read), one write() of a 64-byte frame to each of the
    N sockets, timed from the first to the last write; the median of 5 rounds.
    This is the floor under a fan-out of one message to N WebSocket clients.
  * wait_ns: one select() / poll() / epoll_wait() call with n idle descriptors
    (socketpairs) and one ready, ns per call, median of 7 batches
    (bench/waitcost.c, BUILD/bench/waitcost; select only below FD_SETSIZE).
"""
import argparse
import datetime
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anchors import AnchorsMixin  # noqa: E402
from machine import machine_info, prepare_machine  # noqa: E402
from peer_servers import find_nginx, find_tornado  # noqa: E402
from plan import PlanMixin  # noqa: E402
from profiles import PROFILE_NOTES, PROFILES  # noqa: E402
from progress import Progress, fmt_dur  # noqa: E402
from runner import RunMixin  # noqa: E402
from sampling import SAMPLE_S, read  # noqa: E402
from server import Server  # noqa: E402
from syscalls import SyscallsMixin  # noqa: E402
from uring_check import uring_unavailable  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_MODELS = ("async", "uring", "threaded", "forked")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


# ------------------------------------------------------------------ bench --
class Bench(PlanMixin, RunMixin, AnchorsMixin, SyscallsMixin):
    """One ./lab bench: what is there (detect), the plan (plan.py), the
    anchors (anchors.py), every run (runner.py), the system calls
    (syscalls.py), then results.json and the report."""

    def __init__(self, args):
        self.args = args
        self.profile_name = "smoke" if args.smoke else ("quick" if args.quick else
                                                      "full" if args.full else "default")
        self.p = dict(PROFILES[self.profile_name])
        if args.reps:
            self.p["reps"] = args.reps
        self.build = os.path.abspath(args.build)
        self.notes = []
        self.runs = []
        self.cores = os.cpu_count() or 1
        self.pin_server, self.pin_gen = ("0", "1") if self.cores >= 2 else (None, None)
        if self.cores < 2:
            self.notes.append("only one CPU: server and generator share it (nothing pinned)")
        self.bin = {m: os.path.join(self.build, "models", m, "chat-" + m)
                    for m in C_MODELS}
        self.skipped = {}           # variant -> why it was not run (results.json)
        self.chatbench = os.path.join(self.build, "bench", "chatbench")
        self.tmp = tempfile.mkdtemp(prefix="lab-bench-")
        self.users = os.path.join(self.tmp, "users")
        self.overhead = []          # seconds per run beyond the generator's own time
        self.walls = {}             # (scenario, case, variant) -> wall seconds of its runs
        self.stop_errors = []       # servers that did not stop cleanly on SIGTERM

    # ---- what is there
    def detect(self):
        known = set(C_MODELS) | {"nginx", "tornado"}
        want = set(self.args.models.split(",")) if self.args.models else known
        unknown = want - known
        if unknown:
            sys.exit("lab_bench: unknown model(s): %s" % ",".join(sorted(unknown)))
        if self.args.smoke:
            want -= {"nginx", "tornado"}
        self.models = want
        for m in ("async", "threaded", "forked"):
            if m in want and not os.access(self.bin[m], os.X_OK):
                sys.exit("lab_bench: %s is not built (%s)" % (m, self.bin[m]))
        if not os.access(self.chatbench, os.X_OK):
            sys.exit("lab_bench: chatbench is not built (%s)" % self.chatbench)
        if "uring" in want:
            # Optional: built only with liburing, and a machine may forbid
            # io_uring. Skipped then, in words, never a silent empty column.
            why = uring_unavailable(self.bin["uring"], self.users, self.pin_server)
            if why:
                self.skipped["uring"] = "chat-uring not run: " + why
                self.notes.append(self.skipped["uring"])
                self.models.discard("uring")
        self.nginx = find_nginx()
        if "nginx" in want and not self.nginx:
            self.notes.append("nginx not installed (Debian nginx-light): no nginx ceiling")
            self.models.discard("nginx")
        self.tornado_py = None
        if "tornado" in want:
            self.tornado_py, why = find_tornado()
            if not self.tornado_py:
                self.notes.append("tornado peer not run: %s" % why)
                self.models.discard("tornado")
        self.wrk = shutil.which("wrk")
        if not self.wrk and not self.args.smoke:
            self.notes.append("wrk not installed: no wrk-vs-* cross-check")
        self.ab = shutil.which("ab")
        if not self.ab and not self.args.smoke:
            self.notes.append("ab (apache2-utils) not installed: no ab-vs-* cross-check")
        # Which chatbench modes work? (they were being written when this was)
        self.modes = self.probe_chatbench()
        for m in ("http", "ws", "seat", "idle"):
            if not self.modes[m]:
                self.notes.append("chatbench %s mode failed its probe: %s" % (m, self.modes_err[m])
                                  + ("; wrk stands in for it" if m == "http" and self.wrk else ""))

    def fanout_redis(self):
        """The `fanout-redis` scenario (bench/redis_fanout.py, docs/scaling-out.md):
        chat fan-out latency through Redis with two servers sharing one room,
        against one server alone. Unpinned, after the other scenarios."""
        if not shutil.which("redis-server"):
            return {"error": "redis-server is not installed"}
        import redis_fanout
        smoke = self.profile_name == "smoke"
        a = argparse.Namespace(clients=10 if smoke else 100, senders=2 if smoke else 10,
                               messages=2 if smoke else 20, rate=20.0,
                               reps=1 if self.profile_name in ("smoke", "quick") else 3)
        ms = [m for m in ("async", "threaded", "forked") if m in self.models] or ["async"]
        try:
            rows = redis_fanout.run(os.path.abspath(self.args.build), [ms[0], ms[0]], a)
        except Exception as e:  # a broken extra scenario must not lose the whole run
            return {"error": str(e)[:300]}
        return {"params": vars(a), "rows": rows, "markdown": redis_fanout.markdown(rows, a)}

    def write_users(self):
        lines = []
        for name in ("coco", "cc", "aa"):
            salt = os.urandom(16)
            h = hashlib.pbkdf2_hmac("sha256", b"123456", salt, 100000)
            lines.append("%s:pbkdf2-sha256:100000:%s:%s\n" % (name, salt.hex(), h.hex()))
        with open(self.users, "w") as f:
            f.writelines(lines)
        os.chmod(self.users, 0o600)

    def probe_chatbench(self):
        self.modes_err = {}
        ok = {}
        srv = Server([self.bin["async"] if "async" in self.models else
                      self.bin[sorted(self.models & set(C_MODELS))[0]],
                      "--listen", "127.0.0.1:0", "--users", self.users], None)
        if not srv.wait_ready():
            srv.stop()
            sys.exit("lab_bench: the probe server did not start: " + srv.stderr_tail())
        base = "127.0.0.1:%d" % srv.port
        for mode, argv in (("http", ["http", "http://%s/hello" % base, "-c", "1", "-n", "3", "-k"]),
                           ("ws", ["ws", "ws://%s/chat/ws" % base, "-c", "2", "-m", "1", "-s", "1"]),
                           ("seat", ["seat", "ws://%s/chat/ws" % base, "-c", "2", "-t", "0.3"]),
                           ("idle", ["idle", "http://%s/hello" % base, "-c", "2", "-t", "0.3"])):
            try:
                r = subprocess.run([self.chatbench] + argv + ["--json"], capture_output=True,
                                   timeout=10, text=True)
                res = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else None
                ok[mode] = r.returncode == 0 and res is not None and res.get("completed", 0) > 0
                self.modes_err[mode] = None if ok[mode] else (
                    "exit %d: %s" % (r.returncode, (r.stderr.strip() or r.stdout.strip())[-200:]))
            except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
                ok[mode] = False
                self.modes_err[mode] = str(e)[:200]
        srv.stop()
        return ok

    def pin_self(self):
        if self.pin_gen:
            try:
                os.sched_setaffinity(0, {int(self.pin_gen)})
            except OSError:
                pass

    # ---- all
    def run(self):
        started = utcnow()
        max_c = max([1000] + self.p["sleep_cs"] + self.p["fanout_ns"] + self.p["seat_ns"] + self.p["idle_ns"])
        prepare_machine(self.notes, max_c)
        self.write_users()
        self.detect()
        machine = machine_info(self.notes)
        self.pin_self()
        plan = self.plan()
        reps = self.p["reps"]
        # The long cases (fan-out, seat and idle, each seating a room or
        # opening thousands of connections, and every 10 000-connection case)
        # take from half a minute to the run's bound each: long_reps
        # repetitions (3 in --full, the least that gives a median and a
        # spread), instead of the profile's 5.
        def reps_of(item):
            if item.get("once"):
                return 1
            long = item.get("ws") or item.get("seat") or item.get("idle") or item["c"] >= 10000
            return min(reps, self.p.get("long_reps", reps)) if long else reps
        runs = [(item, rep, v) for item in plan for rep in range(1, reps_of(item) + 1)
                for v in item["variants"]]
        total_est = sum(self.est_run(i, v) for i, _, v in runs) + 10
        prog = Progress(total_est)
        for n in self.notes:
            prog.say("note: " + n)
        prog.say("%s profile: %d runs (%d scenario cases x %d reps, 3 at 10 000 connections), "
                 "about %s; server on CPU %s, "
                 "load on CPU %s" % (self.profile_name, len(runs), len(plan), reps,
                                     fmt_dur(total_est), self.pin_server, self.pin_gen))
        left = lambda k: sum(self.est_run(i, v) for i, _, v in runs[k:])
        anchors = self.anchors(lambda a, b: prog.line("%s: %s" % (a, b), left(0) + 5))
        self.upstream = None
        # A run cut off at its bound measured the bound, not the server: its
        # other repetitions would only measure it again (a blocking model
        # seating 10 000 takes the whole 4 minutes each time). They are not
        # run, and the case reads "not finished" from the one that was. A
        # fan-out to n members needs the room seated first, so where the
        # seat scenario (planned before it) could not seat n members in its
        # bound, the fan-out is recorded as not run, with that reason.
        cut = {}
        for k, (item, rep, v) in enumerate(runs):
            key = (item["scenario"], item["case"], v)
            if key in cut:
                prog.say("  skipped: %s %s %s rep %d (rep %d was not finished)" % (
                    item["scenario"], item["case"], v, rep, cut[key][0]))
                continue
            seat_cut = cut.get(("seat", "n=%d" % item["c"], v)) if item["scenario"] == "fanout" else None
            if seat_cut:
                cut[key] = (rep, seat_cut[1])
                self.record(item, v, rep, None, self.pin_server, None, self.pin_gen, "chatbench",
                            None, "not run: the seat scenario could not seat %d members (cut off "
                            "at %g s), so there is no room to fan out to" % (item["c"], seat_cut[1]))
                prog.say("  not run: fanout %s %s (seat %s was not finished)" % (
                    item["case"], v, item["case"]))
                continue
            if item.get("upstream") and self.upstream is None:
                self.upstream = Server([self.bin["async"], "--listen", "127.0.0.1:0",
                                        "--users", self.users], self.pin_gen)
                if not self.upstream.wait_ready():
                    self.notes.append("search upstream did not start")
                self.upstream_port = self.upstream.port or 1
            if not item.get("upstream") and self.upstream is not None:
                self.upstream.stop()
                self.upstream = None
            prog.line("%s %s %s rep %d/%d" % (item["scenario"], item["case"], v, rep,
                                              reps_of(item)),
                      left(k))
            t0 = time.monotonic()
            r = self.one_run(item, v, rep)
            r["wall_s"] = round(time.monotonic() - t0, 2)
            self.walls.setdefault((item["scenario"], item["case"], v), []).append(r["wall_s"])
            if not (item.get("ws") or item.get("seat") or item.get("idle")):
                self.overhead.append(max(0.0, time.monotonic() - t0 - item["t"]))
            if r.get("cut_off_s") is not None:
                cut[key] = (rep, r["cut_off_s"])
            if not r["ok"] or r.get("cut_off_s") is not None:
                prog.say("  %s: %s %s %s rep %d: %s" % (
                    "failed" if not r["ok"] else "not finished", item["scenario"], item["case"],
                    v, rep, r["error"] or "cut off at %g s" % r["cut_off_s"]))
            if r.get("disturbed"):
                prog.say("  disturbed: %s" % "; ".join(r["disturbed"]))
        if self.upstream is not None:
            self.upstream.stop()
        prog.end()
        syscalls = self.syscall_counts(prog.say)
        if self.stop_errors:
            self.notes.append("%d run(s) whose server did not stop cleanly on SIGTERM (runs[]."
                              "stop_error; their figures stand): %s" % (
                                  len(self.stop_errors), "; ".join(self.stop_errors[:6])
                                  + (" ..." if len(self.stop_errors) > 6 else "")))
        finished = utcnow()
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        outdir = os.path.join(self.args.out, stamp)
        os.makedirs(outdir, exist_ok=True)
        doc = {"schema": 1, "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "finished": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "duration_s": round((finished - started).total_seconds(), 1),
               "profile": self.profile_name,
               # --scenarios: a run of only these, which the docs can take
               # for them alone (docs/figures/make.py, "partial runs").
               "scenarios": (self.args.scenarios.split(",") if self.args.scenarios else None),
               "profile_params": dict(self.p, sample_interval_s=SAMPLE_S,
                                      note=PROFILE_NOTES[self.profile_name]),
               "machine": dict(machine, loadavg_end=[float(x) for x in
                                                      read("/proc/loadavg", "0 0 0").split()[:3]]),
               "anchors": anchors, "runs": self.runs, "variants_skipped": self.skipped,
               "syscalls": syscalls}
        if not self.args.scenarios or "fanout-redis" in self.args.scenarios.split(","):
            doc["fanout_redis"] = self.fanout_redis()
        with open(os.path.join(outdir, "results.json"), "w") as f:
            json.dump(doc, f, indent=1)
        shutil.rmtree(self.tmp, ignore_errors=True)
        report = os.path.join(ROOT, "bench", "report.py")
        rep_ok = False
        if os.path.exists(report):
            r = subprocess.run([sys.executable, report, outdir])
            rep_ok = r.returncode == 0 and os.path.exists(os.path.join(outdir, "report.md"))
            if not rep_ok:
                print("lab_bench: bench/report.py failed (exit %d); writing a plain summary"
                      % r.returncode)
        if not rep_ok:
            fallback_report(doc, os.path.join(outdir, "report.md"))
        with open(os.path.join(outdir, "report.md"), "a") as f:
            fr = doc.get("fanout_redis") or {"error": "not in --scenarios"}
            f.write("\n## fanout-redis: one room across two servers through Redis\n\n" +
                    (fr.get("markdown") or "not run: %s\n" % fr.get("error")))
        if not self.args.smoke:
            latest = os.path.join(self.args.out, "latest")
            try:
                if os.path.islink(latest) or os.path.exists(latest):
                    os.remove(latest)
                os.symlink(stamp, latest)
            except OSError as e:
                print("lab_bench: could not update %s: %s" % (latest, e))
        bad = sum(1 for r in self.runs if not r["ok"] or r.get("cut_off_s") is not None)
        noisy = sum(1 for r in self.runs if r.get("disturbed"))
        print("%d runs (%d failed or not finished, %d on a disturbed machine) in %s. Report: %s"
              % (len(self.runs), bad, noisy, fmt_dur(doc["duration_s"]),
                 os.path.join(outdir, "report.md")))
        for n in self.notes:
            print("note: " + n)
        return outdir


def fallback_report(doc, path):
    """A plain report.md when bench/report.py is missing or failed."""
    lines = ["# c10k-lab bench (%s profile, %s)" % (doc["profile"], doc["started"]), "",
             "bench/report.py was not available; this is lab_bench.py's plain summary.", ""]
    keys = []
    for r in doc["runs"]:
        k = (r["scenario"], r["case"])
        if k not in keys:
            keys.append(k)
    for sc, case in keys:
        lines += ["## %s %s" % (sc, case), "",
                  "| variant | runs ok | rate median (min-max) | p99 ms median | server µs/op |",
                  "|---|---|---|---|---|"]
        vs = []
        for r in doc["runs"]:
            if r["scenario"] == sc and r["case"] == case and r["variant"] not in vs:
                vs.append(r["variant"])
        for v in vs:
            rs = [r for r in doc["runs"] if (r["scenario"], r["case"], r["variant"]) == (sc, case, v)]
            ok = [r for r in rs if r["ok"] and r.get("cut_off_s") is None
                  and (r["result"] or {}).get("completed")]
            rates = [r["result"]["rate"] for r in ok]
            p99 = [r["result"]["latency_ms"]["p99"] for r in ok
                   if r["result"]["latency_ms"].get("p99") is not None]
            cpu = [r["server_usage"]["cpu_us_per_op"] for r in ok
                   if r["server_usage"] and r["server_usage"].get("cpu_us_per_op") is not None]
            med = lambda xs, f="%.1f": (f % statistics.median(xs)) if xs else "-"
            lines.append("| %s | %d/%d | %s (%s-%s) | %s | %s |" % (
                v, len(ok), len(rs), med(rates), "%.1f" % min(rates) if rates else "-",
                "%.1f" % max(rates) if rates else "-", med(p99, "%.2f"), med(cpu)))
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def ensure_built(build):
    """Configure and build the release binaries when BUILD is ours to make."""
    targets = ["chat-async", "chat-threaded", "chat-forked", "chatbench", "waitcost",
               "lab-anchors"]
    if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release"],
                       check=True, stdout=subprocess.DEVNULL)
    if os.path.isdir(os.path.join(build, "models", "uring")):    # configured with liburing
        targets.append("chat-uring")
    r = subprocess.run(["cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target"]
                       + targets, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("lab_bench: build failed in %s:\n%s" % (build, r.stdout[-3000:] + r.stderr[-2000:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="about 1 minute, 1 repetition")
    g.add_argument("--full", action="store_true", help="adds the 10 000-connection cases")
    ap.add_argument("--smoke", action="store_true",
                    help="each scenario once, briefly, against --build as it is (for ./lab test)")
    ap.add_argument("--models", help="comma list of async,uring,threaded,forked,nginx,tornado")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--reps", type=int)
    ap.add_argument("--scenarios", help="comma list: only these scenarios (e.g. fanout,seat)")
    ap.add_argument("--no-build", action="store_true", help="use --build as it is")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    if not args.smoke and not args.no_build:
        ensure_built(os.path.abspath(args.build))
    b = Bench(args)
    try:
        b.run()
    except KeyboardInterrupt:
        print("\nlab_bench: interrupted")
        sys.exit(130)
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)
        if getattr(b, "upstream", None) is not None:
            b.upstream.stop()


if __name__ == "__main__":
    main()
