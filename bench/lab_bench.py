#!/usr/bin/env python3
"""./lab bench: run the side-by-side comparison of the three chat models.

usage: lab_bench.py [--quick | --full] [--models async,threaded,forked,nginx,tornado]
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
    taken as it ends.) Resolution: the kernel's clock tick (10 ms).
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
  * every run is bounded (Bench.run_bound): past what the generator takes by
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
    script's). A run is flagged (disturbed: reasons) when others used over
    25 % of a core before or during it, or the 1-minute load exceeded
    cores + 0.5 at start (the bench's own previous run counts about 2 in it
    for a minute, so a lower mark would flag every run); its figures stand.
  * samples count the connections actually open (open_conns: established TCP
    connections on the server's port in /proc/net/tcp), read with the PSS,
    so that memory per connection divides by what was open, not by n.
  * search: the upstream is one chat-async answering /sleep?ms=50, started
    once for the scenario and pinned to CPU 1 with the generator (its CPU is
    not the server's).
  * each run also records wall_s and the 1-minute load average when it
    started (loadavg_1m, as loadavg_start[0]).

Anchors (measured in the same run, by two small C helpers built with
chatbench: bench/anchors.c as BUILD/bench/lab-anchors, and
bench/waitcost.c as BUILD/bench/waitcost):
  * fork_us: fork() + _exit(0) in the child + waitpid() in the parent, in a
    tiny process, median of several batches, in microseconds.
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
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from variants import MODELS, VARIANTS, cross_target, cross_tool  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_S = 0.2
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# ---------------------------------------------------------------- profiles --
# http_t: seconds per HTTP run; fanout_m: messages of the one sender at 10/s.
PROFILES = {
    "smoke":   dict(reps=1, http_t=0.6, sleep_t=0.6, sleep_cs=[100], cpu_cs=[2], search_c=50,
                    fanout_ns=[20], fanout_m=5, seat_ns=[50], seat_t=1, sources=1,
                    idle_ns=[20], idle_t=1,
                    fork_n=300, sha_n=50000, write_ns=[100], wait_ns=[10, 100]),
    "quick":   dict(reps=1, http_t=0.5, sleep_t=0.6, sleep_cs=[1000], cpu_cs=[2, 4], search_c=200,
                    fanout_ns=[1000], fanout_m=10, seat_ns=[300, 1000], seat_t=3,
                    sources=8, idle_ns=[100, 1000], idle_t=5, fork_n=1000, sha_n=200000,
                    write_ns=[100, 1000], wait_ns=[10, 100, 1000, 10000]),
    "default": dict(reps=3, http_t=0.8, sleep_t=1.0, sleep_cs=[100, 1000], cpu_cs=[2, 4], search_c=200,
                    fanout_ns=[100, 1000], fanout_m=50, seat_ns=[], seat_t=3,
                    sources=8, idle_ns=[], idle_t=20, fork_n=2000, sha_n=500000,
                    write_ns=[100, 1000, 10000], wait_ns=[10, 100, 1000, 10000]),
    "full":    dict(reps=5, http_t=5.0, sleep_t=5.0, sleep_cs=[100, 1000, 10000], cpu_cs=[2, 4],
                    search_c=200, fanout_ns=[100, 1000, 10000], fanout_m=50,
                    seat_ns=[1000, 3000, 10000], seat_t=3, sources=8,
                    idle_ns=[1000, 3000, 10000], idle_t=20, fork_n=5000,
                    sha_n=2000000, write_ns=[100, 1000, 10000], wait_ns=[10, 100, 1000, 10000]),
}


# ------------------------------------------------------------------ output --
class Progress:
    def __init__(self, total_s):
        self.tty = sys.stdout.isatty()
        self.start = time.monotonic()
        self.total_s = total_s
        self.width = 0

    def line(self, text, left_s):
        el = time.monotonic() - self.start
        s = "[%s elapsed, ~%s left] %s" % (fmt_dur(el), fmt_dur(max(0, left_s)), text)
        if self.tty:
            cols = shutil.get_terminal_size((100, 20)).columns - 1
            s = s[:cols]
            sys.stdout.write("\r" + s.ljust(self.width) + "\r" + s if self.width > len(s) else "\r" + s)
            self.width = len(s)
        else:
            sys.stdout.write(s + "\n")
        sys.stdout.flush()

    def say(self, text):
        if self.tty and self.width:
            sys.stdout.write("\r" + " " * self.width + "\r")
            self.width = 0
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def end(self):
        if self.tty and self.width:
            sys.stdout.write("\n")
            self.width = 0


def fmt_dur(s):
    s = int(round(s))
    return "%d:%02d" % (s // 60, s % 60)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


# ---------------------------------------------------------------- machine --
def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def prepare_machine(notes, want_ports):
    """Raise the descriptor limit, check (and when root set) the kernel's
    limits the scenarios need. What could not be done goes to notes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    root = os.geteuid() == 0
    # Root may raise the hard limit too (up to fs.nr_open): 65536 leaves room
    # for 10 000 connections plus the descriptors around them in each process.
    want = 65536
    nr_open = int(read("/proc/sys/fs/nr_open", "0") or 0)
    if root and hard < want and (not nr_open or nr_open >= want):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            notes.append("could not raise RLIMIT_NOFILE to %d: %s" % (hard, e))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # server and generator are separate processes: each holds one end
    if soft < want_ports + 500:
        notes.append("descriptor limit %d < %d: the %d-connection cases will fail "
                     "(raise the hard limit: ulimit -Hn, /etc/security/limits.conf)"
                     % (soft, want_ports + 500, want_ports))

    def sysctl(name, path, ok, value):
        cur = read(path, "").strip()
        if cur and ok(cur):
            return
        if root:
            try:
                with open(path, "w") as f:
                    f.write(value)
                return
            except OSError as e:
                notes.append("could not set %s=%s (now %s): %s" % (name, value, cur or "?", e))
        else:
            notes.append("%s is %s; as root run: sysctl -w %s=%s" % (name, cur or "?", name, value))

    sysctl("net.core.somaxconn", "/proc/sys/net/core/somaxconn",
           lambda v: int(v) >= 4096, "4096")
    sysctl("net.ipv4.tcp_max_syn_backlog", "/proc/sys/net/ipv4/tcp_max_syn_backlog",
           lambda v: int(v) >= 4096, "4096")
    pr = read("/proc/sys/net/ipv4/ip_local_port_range", "0 0").split()
    if int(pr[1]) - int(pr[0]) < want_ports + 1000:
        notes.append("ip_local_port_range %s-%s is narrow for %d connections (chatbench seat and idle "
                     "uses several source addresses for that)" % (pr[0], pr[1], want_ports))
    pm = int(read("/proc/sys/kernel/pid_max", "0") or 0)
    if pm and pm < want_ports + 2000:
        notes.append("kernel.pid_max %d is low for %d processes (chat-forked)" % (pm, want_ports))
    tm = int(read("/proc/sys/kernel/threads-max", "0") or 0)
    if tm and tm < want_ports + 2000:
        notes.append("kernel.threads-max %d is low for %d threads" % (tm, want_ports))


def machine_info(notes):
    cpu = "?"
    for line in (read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = meminfo()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    pr = [int(x) for x in read("/proc/sys/net/ipv4/ip_local_port_range", "0 0").split()]
    return {
        "cpu_model": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "mem_total_kb": mem.get("MemTotal"), "nofile_soft": soft, "nofile_hard": hard,
        "somaxconn": int(read("/proc/sys/net/core/somaxconn", "0")),
        "pid_max": int(read("/proc/sys/kernel/pid_max", "0")),
        "ip_local_port_range": pr,
        "loadavg_start": [float(x) for x in read("/proc/loadavg", "0 0 0").split()[:3]],
        "python": sys.version.split()[0],
        "notes": notes,
    }


def meminfo():
    out = {}
    for line in (read("/proc/meminfo") or "").splitlines():
        k, _, v = line.partition(":")
        try:
            out[k] = int(v.split()[0])
        except (ValueError, IndexError):
            pass
    return out


# ---------------------------------------------------------------- sampler --
def proc_table():
    """pid -> (ppid, cpu ticks incl. reaped children) for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        s = read("/proc/%s/stat" % name)
        if not s:
            continue
        rest = s[s.rfind(")") + 2:].split()
        # rest[0] = state (field 3); ppid field 4; utime..cstime fields 14..17
        try:
            table[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14]))
        except (IndexError, ValueError):
            pass
    return table


def established_on(port):
    """Established TCP connections whose local port is `port`: the server's
    ends of the connections actually open (the kernel's count, the same for
    every server, peers included). Connections still in the accept queue
    count too: the kernel holds them open."""
    if not port:
        return None
    want = ":%04X" % port
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    fields = line.split(None, 4)
                    if len(fields) > 3 and fields[3] == "01" and fields[1].endswith(want):
                        n += 1
        except OSError:
            pass
    return n


def machine_busy_s():
    """CPU seconds the whole machine has spent busy (all CPUs; steal included:
    on a shared host that is other tenants' time), from /proc/stat."""
    for line in (read("/proc/stat") or "").splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal (guest is in user)
            return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK
    return 0.0


def loadavg():
    return [float(x) for x in read("/proc/loadavg", "0 0 0").split()[:3]]


def tree_of(root, table):
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in table:
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


class Sampler(threading.Thread):
    def __init__(self, root, port=None):
        super().__init__(daemon=True)
        self.root, self.port = root, port
        self.last_open = None
        self.samples = []
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.last_pss = {}
        self.n = 0

    def take(self, force_pss=False):
        table = proc_table()
        pids = tree_of(self.root, table)
        cpu = sum(table[p][1] for p in pids) / CLK_TCK
        rss = threads = 0
        for p in pids:
            st = read("/proc/%d/status" % p) or ""
            m = re.search(r"^VmRSS:\s+(\d+)", st, re.M)
            rss += int(m.group(1)) * 1024 if m else 0
            m = re.search(r"^Threads:\s+(\d+)", st, re.M)
            threads += int(m.group(1)) if m else 0
        self.n += 1
        if force_pss or len(pids) <= 64 or self.n % 5 == 0:
            pss = {}
            for p in pids:
                sm = read("/proc/%d/smaps_rollup" % p) or ""
                m = re.search(r"^Pss:\s+(\d+)", sm, re.M)
                pss[p] = int(m.group(1)) * 1024 if m else 0
            self.last_pss = pss
            # Counted with the PSS, so that PSS per connection divides by the
            # connections open when the PSS was read, not by the target n.
            self.last_open = established_on(self.port)
        pss = sum(self.last_pss.get(p, 0) for p in pids)
        smp = {"t": round(time.monotonic() - self.t0, 3), "cpu_s": round(cpu, 3), "rss": rss,
               "pss": pss, "threads": threads, "processes": len(pids),
               "mem_available_kb": meminfo().get("MemAvailable")}
        if self.last_open is not None:
            smp["open_conns"] = self.last_open
        with self.lock:
            self.samples.append(smp)
        return smp

    def run(self):
        while not self.stop_ev.wait(SAMPLE_S):
            try:
                self.take()
            except Exception:  # a vanished process: the next sample will do
                pass

    def mark(self):
        """Restart the clock: t of later samples counts from the load's start."""
        with self.lock:
            self.samples = []
            self.t0 = time.monotonic()
        return self.take(force_pss=True)

    def finish(self):
        self.stop_ev.set()
        self.join(2)
        return self.take(force_pss=True)


# ---------------------------------------------------------------- processes --
def wait_bounded(p, timeout):
    """Wait for Popen p with os.wait4 (for its rusage); kill it at timeout.
    Returns (returncode, rusage or None, timed_out)."""
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        try:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        except ChildProcessError:
            return p.returncode, None, timed_out
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, ru, timed_out
        if time.monotonic() > deadline and not timed_out:
            timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            deadline = time.monotonic() + 5
        elif timed_out and time.monotonic() > deadline:
            return None, None, True
        time.sleep(0.02)


def proc_state(pid):
    s = read("/proc/%d/stat" % pid) or ""
    return s[s.rfind(")") + 2:].split(" ", 1)[0] if s else "gone"


def exited(p):
    """Has child p exited? (without reaping it: its rusage is still to come)"""
    try:
        return os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def session_members(sid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = read("/proc/%s/stat" % name)
            if s:
                rest = s[s.rfind(")") + 2:].split()
                if len(rest) > 3 and int(rest[3]) == sid and rest[0] != "Z":
                    out.append(int(name))
    return out


def idle_bound(n, hold_s):
    """The longest `chatbench idle -c n -t hold_s` runs by itself: its open
    phase (10 s + 2 ms a connection), the hold, and the verification (5 s +
    0.5 ms a connection); the same constants as bench/chatbench/idle.c."""
    return 10.0 + n / 500.0 + hold_s + 5.0 + n / 2000.0


# ------------------------------------------------------------- disturbance --
QUIET_S = 0.3           # the look at the machine before each run's load
DISTURBED_PCT = 25.0    # others' CPU, % of one core, that flags a run


def own_cpu_s():
    t = os.times()
    return t.user + t.system


def get_cpu(res):
    c = (res or {}).get("cpu") or {}
    return (c.get("user_s") or 0.0) + (c.get("sys_s") or 0.0)


def others_cpu(a, b, gen_cpu):
    """% of one core that processes other than ours used between two looks
    (time, machine busy s, this script's CPU, the server tree's, the
    upstream's): the machine's busy time less the server's, the
    generators', this script's and the search upstream's."""
    wall = b[0] - a[0]
    if wall <= 0:
        return 0.0
    other = (b[1] - a[1]) - (b[2] - a[2]) - (b[3] - a[3]) - (b[4] - a[4]) - gen_cpu
    return max(0.0, 100.0 * other / wall)


def disturbance(load_start, before_pct, during_pct, cores):
    """Why a run's machine was not quiet, in words (empty: it was). The
    1-minute load counts this bench's own previous run too (server and
    generator, two runnable tasks for a minute), so it flags only above
    cores + 0.5; others' CPU is measured directly, before and during."""
    why = []
    if load_start[0] > cores + 0.5:
        why.append("1-min load %.2f at start (over %.1f on %d cores)"
                   % (load_start[0], cores + 0.5, cores))
    if before_pct > DISTURBED_PCT:
        why.append("other processes used %.0f %% of a core just before the load"
                   % before_pct)
    if during_pct > DISTURBED_PCT:
        why.append("other processes used %.0f %% of a core during the run" % during_pct)
    return why


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# "Unpinned" must be said explicitly: this script pins itself to the
# generator's CPU, and a child inherits its parent's affinity.
ALL_CPUS = "0-%d" % ((os.cpu_count() or 1) - 1)


class Server:
    """One server process (and its tree) in its own session."""

    def __init__(self, cmd, pin, env=None, port=None):
        self.cmd, self.pin = cmd, pin
        full = ["taskset", "-c", pin or ALL_CPUS] + cmd
        self.errf = tempfile.TemporaryFile()
        self.p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=self.errf,
                                  stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        self.port = port
        self.lines = []
        self.total_cpu_s = None

    def wait_ready(self, timeout=10.0, listening_line=True):
        deadline = time.monotonic() + timeout
        if listening_line:
            buf = b""
            fd = self.p.stdout.fileno()
            while time.monotonic() < deadline:
                r, _, _ = select.select([fd], [], [], 0.05)
                if r:
                    chunk = os.read(fd, 4096)
                    if not chunk:
                        break
                    buf += chunk
                    m = re.search(rb"listening on http://[^\s:]+:(\d+)", buf)
                    if m:
                        self.port = int(m.group(1))
                        threading.Thread(target=self._drain, daemon=True).start()
                        return True
                if self.p.poll() is not None:
                    break
            return False
        while time.monotonic() < deadline:          # a peer without the line: connect
            if self.p.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                threading.Thread(target=self._drain, daemon=True).start()
                return True
            except OSError:
                time.sleep(0.03)
        return False

    def _drain(self):
        try:
            while os.read(self.p.stdout.fileno(), 65536):
                pass
        except OSError:
            pass

    def stderr_tail(self, n=400):
        self.errf.seek(0)
        return self.errf.read()[-n:].decode("utf-8", "replace")

    def exited_cpu(self, timeout):
        """Wait up to timeout for the server to exit, without reaping it, and
        read its lifetime CPU while it is a zombie: utime + stime + cutime +
        cstime, which hold every child it reaped (chat-forked's connections)
        and every thread that ended. True if it exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if exited(self.p):
                s = read("/proc/%d/stat" % self.p.pid) or ""
                f = s[s.rfind(")") + 2:].split()
                if len(f) > 14:
                    self.total_cpu_s = round(sum(int(x) for x in f[11:15]) / CLK_TCK, 3)
                return True
            time.sleep(0.02)
        return False

    def stop(self, wait=6.0):
        """SIGTERM, 6 s, then SIGKILL to the group; then wait (bounded) until
        every process of its session is gone. Returns an error or None."""
        err = None
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
            except OSError:
                pass
            if not self.exited_cpu(wait):
                err = "did not exit within %g s of SIGTERM" % wait
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                err = (err + "; " if err else "") + \
                    "still there 5 s after SIGKILL (state %s)" % proc_state(self.p.pid)
        if self.p.returncode not in (0, None, -signal.SIGTERM) and err is None:
            err = "exit status %s after SIGTERM" % self.p.returncode
        left = session_members(self.p.pid)
        if left:
            time.sleep(0.5)
            left = session_members(self.p.pid)
            kill_all(left)
            if left:
                err = (err + "; " if err else "") + "%d process(es) left behind, killed" % len(left)
        gone = self.wait_gone(10.0)
        if gone:
            err = (err + "; " if err else "") + gone
        self.errf.close()
        return err

    def wait_gone(self, timeout):
        """Bounded wait until no process of the server's session is left
        (thousands of chat-forked children take a while to exit); what is
        still there then is killed. Returns what happened, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not session_members(self.p.pid):
                return None
            time.sleep(0.05)
        left = session_members(self.p.pid)
        kill_all(left)
        return "%d process(es) of its tree still alive %g s after it exited, killed" % (
            len(left), timeout) if left else None


# ----------------------------------------------------------------- parsing --
def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def parse_wrk(out, ru):
    lat = {}
    for q, key in (("50", "p50"), ("90", "p90"), ("99", "p99")):
        m = re.search(r"^\s+%s%%\s+(\S+)" % q, out, re.M)
        lat[key] = to_ms(m.group(1)) if m else None
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    lat["mean"] = to_ms(m.group(1)) if m else None
    lat["max"] = to_ms(m.group(3)) if m else None
    lat["p999"] = None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    completed = int(m.group(1)) if m else 0
    elapsed = (to_ms(m.group(2) + m.group(3)) or 0) / 1e3 if m else 0
    failed_by = {}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(v):
                failed_by[k] = int(v)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        failed_by["status"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rate = float(m.group(1)) if m else (completed / elapsed if elapsed else 0)
    user = ru.ru_utime if ru else 0.0
    sys_ = ru.ru_stime if ru else 0.0
    good = completed - failed_by.get("status", 0)
    return {"mode": "http", "completed": good, "failed": sum(failed_by.values()),
            "expected": 0, "elapsed": elapsed, "rate": rate, "seat_s": 0,
            "latency_ms": lat,
            "cpu": {"user_s": user, "sys_s": sys_,
                    "us_per_op": (user + sys_) * 1e6 / good if good else 0},
            "failed_by": failed_by}


def parse_ab(out, ru):
    """ab's summary: its rate, and its percentiles (whole milliseconds)."""
    def field(name, conv=float):
        m = re.search(r"^%s:\s+([\d.]+)" % re.escape(name), out, re.M)
        return conv(m.group(1)) if m else None
    lat = {}
    for q, key in (("50", "p50"), ("90", "p90"), ("99", "p99")):
        m = re.search(r"^\s+%s%%\s+(\d+)" % q, out, re.M)
        lat[key] = float(m.group(1)) if m else None
    m = re.search(r"^\s+100%\s+(\d+)", out, re.M)
    lat["max"] = float(m.group(1)) if m else None
    lat["p999"] = None
    lat["mean"] = field("Time per request")  # the first one: mean over concurrent requests
    completed = field("Complete requests", int) or 0
    failed = field("Failed requests", int) or 0
    non2xx = field("Non-2xx responses", int) or 0
    elapsed = field("Time taken for tests") or 0
    rate = field("Requests per second") or (completed / elapsed if elapsed else 0)
    user = ru.ru_utime if ru else 0.0
    sys_ = ru.ru_stime if ru else 0.0
    good = completed - failed - non2xx
    failed_by = {k: v for k, v in (("failed", failed), ("status", non2xx)) if v}
    return {"mode": "http", "completed": good, "failed": failed + non2xx,
            "expected": 0, "elapsed": elapsed, "rate": rate, "seat_s": 0,
            "latency_ms": lat,
            "cpu": {"user_s": user, "sys_s": sys_,
                    "us_per_op": (user + sys_) * 1e6 / good if good else 0},
            "failed_by": failed_by}


# ------------------------------------------------------------------ bench --
class Bench:
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
                    for m in ("async", "threaded", "forked")}
        self.chatbench = os.path.join(self.build, "bench", "chatbench")
        self.tmp = tempfile.mkdtemp(prefix="lab-bench-")
        self.users = os.path.join(self.tmp, "users")
        self.overhead = []          # seconds per run beyond the generator's own time
        self.walls = {}             # (scenario, case, variant) -> wall seconds of its runs
        self.stop_errors = []       # servers that did not stop cleanly on SIGTERM

    # ---- what is there
    def detect(self):
        want = set(self.args.models.split(",")) if self.args.models else \
            {"async", "threaded", "forked", "nginx", "tornado"}
        unknown = want - {"async", "threaded", "forked", "nginx", "tornado"}
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
        self.nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
        if "nginx" in want and not self.nginx:
            self.notes.append("nginx not installed (Debian nginx-light): no nginx ceiling")
            self.models.discard("nginx")
        self.tornado_py = None
        if "tornado" in want:
            peer = os.path.join(ROOT, "bench", "peers", "tornado_chat.py")
            for py in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
                if os.path.exists(peer) and py and subprocess.run(
                        [py, "-c", "import tornado"], capture_output=True).returncode == 0:
                    self.tornado_py = py
                    break
            if not self.tornado_py:
                self.notes.append("tornado peer not run: %s" % (
                    "bench/peers/tornado_chat.py missing" if not os.path.exists(peer)
                    else "python3-tornado not installed"))
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

    def tool_path(self, tool):
        return {"wrk": self.wrk, "ab": self.ab}.get(tool)

    def variant_ok(self, v):
        return VARIANTS[v][0] in self.models

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
                      self.bin[sorted(self.models & {"async", "threaded", "forked"})[0]],
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

    # ---- the plan: a list of (scenario, case, variant, kind, params)
    def plan(self):
        P, out = self.p, []
        T = P["http_t"]

        def add(sc, case, variants, **kw):
            vs = [v for v in variants if (cross_tool(v) and self.tool_path(cross_tool(v)) and
                                          self.variant_ok(cross_target(v))) or
                  (v in VARIANTS and self.variant_ok(v))]
            if vs and (not self.args.scenarios or sc in self.args.scenarios.split(",")):
                out.append(dict(scenario=sc, case=case, variants=vs, **kw))

        add("hello-keepalive", "c=50", MODELS + ["nginx", "tornado", "wrk-vs-async", "wrk-vs-nginx",
                                               "ab-vs-async"],
            path="/hello", c=50, keep=True, t=T)
        add("hello-close", "c=50", MODELS + ["nginx"], path="/hello", c=50, keep=False, t=T)
        for c in P["sleep_cs"]:
            add("sleep", "c=%d" % c, MODELS + ["tornado"], path="/sleep?ms=100", c=c, keep=True,
                t=P["sleep_t"])
        for c in P["cpu_cs"]:
            add("cpu", "c=%d" % c, ["async", "async-cpu-pool", "threaded", "threaded-gil", "forked"],
                path="/cpu?n=20000", c=c, keep=True, t=T, unpinned=True, twin=True)
        add("search", "c=%d" % P["search_c"], ["async", "threaded", "threaded-unpooled", "forked"],
            path="/search?wd=x", c=P["search_c"], keep=True, t=P["sleep_t"], upstream=True)
        for n in P["fanout_ns"]:
            add("fanout", "n=%d" % n, ["async", "threaded-unpooled", "forked", "tornado"],
                ws=True, c=n, m=P["fanout_m"], t=P["fanout_m"] / 10.0 + 1 + n / 2000.0)
        # chatbench ws's own ceiling: 20 senders x 10/s x 1000 members offer
        # 200 000 receipts/s; the server pinned, chatbench on its own core.
        smoke, full = self.profile_name == "smoke", self.profile_name == "full"
        n, m = (50, 5) if smoke else (1000, 30)
        add("chat-rate", "n=%d" % n, ["async"] + (["threaded-unpooled", "forked"] if full else []),
            ws=True, c=n, s=20, m=m, t=m / 10.0 + 1 + n / 2000.0)
        # seat: n members join the room, n(n+1)/2 join frames; the time to
        # seat them against n, then a short stay for the settled PSS.
        for n in P["seat_ns"]:
            add("seat", "n=%d" % n, ["async", "threaded-unpooled", "forked", "tornado"], seat=True,
                c=n, t=P["seat_t"], sources=P["sources"])
        # idle: the C10K experiment proper. n keep-alive connections, one
        # GET /hello each, then quiet (re-asking inside the 15 s idle rule)
        # for idle_t; held = those that still answer at the end.
        for n in P["idle_ns"]:
            add("idle", "n=%d" % n, MODELS + ["tornado"], idle=True, c=n, t=P["idle_t"],
                sources=P["sources"])
        return out

    def est_run(self, item, variant=None):
        """Seconds one run will take: what this case and variant took before,
        else its T plus the median overhead so far, plus seating the room for
        ws and seat (every join goes to every member: O(n^2), about 50 s at
        10 000 here)."""
        walls = self.walls.get((item["scenario"], item["case"], variant))
        if walls:
            return statistics.mean(walls)
        est = item["t"] + (statistics.median(self.overhead) if self.overhead else 0.5)
        if item.get("ws") or item.get("seat"):
            est += 0.5 * (item["c"] / 1000.0) ** 2
        if item.get("idle"):
            est += 1 + item["c"] / 2000.0
        return est

    # ---- one run
    def server_cmd(self, variant, item):
        model, flags = VARIANTS[variant]
        if model == "nginx":
            return None
        if model == "tornado":
            return [self.tornado_py, os.path.join(ROOT, "bench", "peers", "tornado_chat.py"),
                    "--listen", "127.0.0.1:0"]
        cmd = [self.bin[model], "--listen", "127.0.0.1:0", "--users", self.users] + flags
        if item.get("upstream"):
            cmd += ["--upstream", "http://127.0.0.1:%d/sleep?ms=50&x=" % self.upstream_port]
        if item["c"] >= 10000:
            cmd += ["--max-conns", str(item["c"] + 1000)]
        return cmd

    def start_server(self, variant, item, pin):
        if VARIANTS[variant][0] == "nginx":
            prefix = tempfile.mkdtemp(prefix="nginx-", dir=self.tmp)
            port = free_port()
            with open(os.path.join(ROOT, "bench", "peers", "nginx.conf")) as f:
                conf = f.read().replace("@PORT@", str(port)).replace("@PREFIX@", prefix)
            with open(os.path.join(prefix, "nginx.conf"), "w") as f:
                f.write(conf)
            cmd = [self.nginx, "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"),
                   "-e", os.path.join(prefix, "error.log")]
            srv = Server(cmd, pin, port=port)
            ok = srv.wait_ready(listening_line=False)
        else:
            srv = Server(self.server_cmd(variant, item), pin)
            ok = srv.wait_ready(timeout=15 if variant == "tornado" else 10)
        return srv, ok

    def gen_cmd(self, item, port, tool):
        base = "127.0.0.1:%d" % port
        if tool == "ab":
            # -n after -t: -t alone would cap the run at 50 000 requests.
            return [self.ab, "-q", "-c%d" % item["c"], "-t%d" % max(1, round(item["t"])),
                    "-n", "100000000"] + (["-k"] if item.get("keep", True) else []) + [
                    "http://%s%s" % (base, item["path"])]
        if tool == "wrk":
            cmd = [self.wrk, "-t1", "-c%d" % item["c"], "-d%ds" % max(1, round(item["t"])), "--latency",
                   "--timeout", "10s"]
            if not item.get("keep", True):
                cmd += ["-H", "Connection: close"]
            return cmd + ["http://%s%s" % (base, item["path"])]
        if item.get("idle"):
            return [self.chatbench, "idle", "http://%s/hello" % base, "-c", str(item["c"]),
                    "-t", "%g" % item["t"], "--sources", str(item["sources"]), "--json"]
        if item.get("seat"):
            return [self.chatbench, "seat", "ws://%s/chat/ws" % base, "-c", str(item["c"]),
                    "-t", "%g" % item["t"], "--sources", str(item["sources"]), "--json"]
        if item.get("ws"):
            return [self.chatbench, "ws", "ws://%s/chat/ws" % base, "-c", str(item["c"]),
                    "-s", str(item.get("s", 1)), "-m", str(item["m"]), "-r", "10", "--json"]
        return [self.chatbench, "http", "http://%s%s" % (base, item["path"]), "-c", str(item["c"]),
                "-t", "%g" % item["t"]] + (["-k"] if item.get("keep") else []) + ["--json"]

    def spawn_gen(self, cmd, pin):
        full = ["taskset", "-c", pin or ALL_CPUS] + cmd
        out = tempfile.TemporaryFile()
        err = tempfile.TemporaryFile()
        p = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        return p, out, err

    def collect_gen(self, p, out, err, tool, timeout):
        rc, ru, to = wait_bounded(p, timeout)
        out.seek(0)
        err.seek(0)
        text = out.read().decode("utf-8", "replace")
        etext = err.read().decode("utf-8", "replace")
        out.close()
        err.close()
        if to:
            return None, "generator killed after %.0f s" % timeout
        if tool in ("wrk", "ab"):
            if rc != 0:
                return None, "%s exit %s: %s" % (tool, rc, (etext or text).strip()[-300:])
            return (parse_wrk if tool == "wrk" else parse_ab)(text, ru), None
        try:
            res = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None, "chatbench exit %s, no JSON: %s" % (rc, (etext or text).strip()[-300:])
        if rc not in (0, 1) and not res.get("completed"):
            return res, "chatbench exit %s: %s" % (rc, etext.strip()[-300:])
        return res, None

    def one_run(self, item, variant, rep):
        unpinned = item.get("unpinned")
        pin_s = None if unpinned else self.pin_server
        pin_g = None if unpinned else self.pin_gen
        tool = cross_tool(variant) or "chatbench"
        target = cross_target(variant)
        need = ("seat" if item.get("seat") else "ws" if item.get("ws") else
                "idle" if item.get("idle") else "http")
        if tool == "chatbench" and not self.modes[need]:
            if need == "http" and self.wrk:
                tool = "wrk"
            else:
                return self.record(item, variant, rep, None, pin_s, None, pin_g, tool, None,
                                   "chatbench %s mode unavailable" % need)
        disturbed = self.settle_previous()
        mem0 = meminfo().get("MemAvailable")
        srv, ok = self.start_server(target, item, pin_s)
        if not ok:          # once more: a stalled vCPU on a shared host has been seen
            srv.stop()
            time.sleep(1)
            srv, ok = self.start_server(target, item, pin_s)
        if not ok:
            err = "server did not start: " + srv.stderr_tail()
            srv.stop()
            return self.record(item, variant, rep, srv.cmd, pin_s, None, pin_g, tool, None, err)
        self.prev_server = srv
        load_start = loadavg()
        sampler = Sampler(srv.p.pid, srv.port)
        sampler.start()
        # A quiet look before the load: the server idle, no generator; what
        # the machine does meanwhile is someone else's.
        q0 = (time.monotonic(), machine_busy_s(), own_cpu_s(), sampler.take()["cpu_s"],
              self.upstream_cpu())
        time.sleep(QUIET_S)
        base = sampler.mark()
        q1 = (time.monotonic(), machine_busy_s(), own_cpu_s(), base["cpu_s"], self.upstream_cpu())
        others_before = others_cpu(q0, q1, 0.0)
        gcmd = self.gen_cmd(item, srv.port, tool)
        g = self.spawn_gen(gcmd, pin_g)
        gens = [g[0]]
        twin = None
        if item.get("twin") and self.modes["http"]:
            tcmd = [self.chatbench, "http", "http://127.0.0.1:%d/hello" % srv.port, "-c", "1",
                    "-r", "50", "-t", "%g" % item["t"], "-k", "--json"]
            twin = (tcmd, self.spawn_gen(tcmd, pin_g))
            gens.append(twin[1][0])
        deadline = time.monotonic() + self.run_bound(item, need)
        while time.monotonic() < deadline and not all(exited(p) for p in gens):
            time.sleep(0.02)
        cut = not all(exited(p) for p in gens)
        end = sampler.finish()
        q2 = (time.monotonic(), machine_busy_s(), own_cpu_s(), end["cpu_s"], self.upstream_cpu())
        # The C models must exit within 5 s of SIGTERM (CONTRACT.md); the peers
        # are not held to that, and get 2 s.
        swait = 2.0 if target in ("nginx", "tornado") else 6.0
        stop_err = srv.stop(swait) if cut else None
        res, err = self.collect_gen(*g, tool, 20)
        twin_res = twin_err = None
        if twin:
            twin_res, twin_err = self.collect_gen(*twin[1], "chatbench", 20)
        if not cut:
            stop_err = srv.stop(swait)
        if stop_err:        # the run did run: its figures stand, the shutdown is noted
            self.stop_errors.append("%s %s %s rep %d: %s" % (item["scenario"], item["case"],
                                                            variant, rep, stop_err))
        samples = [s for s in sampler.samples if s is not base]
        usage = self.usage(base, end, samples, res, mem0)
        usage["cpu_total_s"] = srv.total_cpu_s
        gen_cpu = sum(get_cpu(x) for x in (res, twin_res))
        others_during = others_cpu(q1, q2, gen_cpu)
        load_end = loadavg()
        disturbed += disturbance(load_start, others_before, others_during, self.cores)
        extra = {"loadavg_1m": load_start[0], "loadavg_start": load_start,
                 "loadavg_end": load_end, "others_cpu": {
                     "before_pct": round(others_before, 1), "during_pct": round(others_during, 1)},
                 "disturbed": disturbed, "stop_error": stop_err,
                 "cut_off_s": round(self.run_bound(item, need), 2) if cut else None}
        r = self.record(item, variant, rep, srv.cmd, pin_s, gcmd, pin_g, tool, res, err,
                        usage, samples, extra)
        if twin:
            tu = dict(usage, cpu_us_per_op=None,
                      note="the server's usage is shared with case %s" % item["case"])
            self.record(dict(item, case=item["case"] + "-hello"), variant, rep, srv.cmd, pin_s,
                        twin[0], pin_g, "chatbench", twin_res, twin_err, tu, [], extra)
        return r

    def run_bound(self, item, need):
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
        return item["t"] + 5.0 + min(20.0 * (n / 1000.0) ** 2, 240.0)

    def settle_previous(self):
        """Before a run: the previous server's whole tree must be gone (its
        stop() waited already; this catches what escaped it). Returns the
        run's disturbance notes."""
        prev, self.prev_server = getattr(self, "prev_server", None), None
        if prev is None:
            return []
        gone = prev.wait_gone(10.0)
        return ["previous server's tree: " + gone] if gone else []

    def upstream_cpu(self):
        """CPU of the search upstream's tree (ours, not a disturbance)."""
        if getattr(self, "upstream", None) is None:
            return 0.0
        table = proc_table()
        return sum(table[p][1] for p in tree_of(self.upstream.p.pid, table)) / CLK_TCK

    @staticmethod
    def usage(base, end, samples, res, mem0):
        allp = [base] + samples + [end]
        cpu = max(0.0, end["cpu_s"] - base["cpu_s"])
        done = (res or {}).get("completed") or 0
        mems = [s["mem_available_kb"] for s in allp if s.get("mem_available_kb")]
        for s in samples + ([] if any(s is end for s in samples) else [end]):
            s["cpu_s"] = round(s["cpu_s"] - base["cpu_s"], 3)
        return {"cpu_s": round(cpu, 3),
                "cpu_us_per_op": round(cpu * 1e6 / done, 3) if done else None,
                "idle_pss_bytes": base["pss"], "idle_rss_bytes": base["rss"],
                "peak_rss_bytes": max(s["rss"] for s in allp),
                "peak_pss_bytes": max(s["pss"] for s in allp),
                "end_rss_bytes": end["rss"], "end_pss_bytes": end["pss"],
                "peak_threads": max(s["threads"] for s in allp),
                "peak_processes": max(s["processes"] for s in allp),
                "mem_available_drop_kb": (mem0 - min(mems)) if mem0 and mems else None}

    def record(self, item, variant, rep, scmd, pin_s, gcmd, pin_g, tool, res, err,
               usage=None, samples=None, extra=None):
        ok = err is None and res is not None
        r = {"scenario": item["scenario"], "case": item["case"], "variant": variant,
             "server": {"cmd": [rel(x) for x in scmd] if scmd else None, "pinned_cpus": pin_s},
             "generator": {"cmd": [rel(x) for x in gcmd] if gcmd else None, "pinned_cpus": pin_g,
                           "tool": tool},
             "rep": rep, "ok": ok, "error": err, "result": res,
             "server_usage": usage, "samples": samples or []}
        r.update(extra or {})
        self.runs.append(r)
        return r

    # ---- anchors
    def anchors(self, prog):
        out = {"fork_us": None, "two_core_scaling": None, "write_floor_ms": {}, "wait_ns": {},
               "method": "bench/lab_bench.py docstring: C helper BUILD/bench/lab-anchors"}
        exe = os.path.join(self.build, "bench", "lab-anchors")
        if not os.access(exe, os.X_OK):
            self.notes.append("anchors not measured: %s is not built" % exe)
            return out
        prog("anchors", "fork")
        try:
            x = subprocess.run([exe, "fork", str(self.p["fork_n"])], capture_output=True,
                               text=True, timeout=60)
            out["fork_us"] = float(x.stdout.split()[0])
        except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
            self.notes.append("fork_us not measured: %s" % e)
        prog("anchors", "two-core scaling")
        try:
            def sha(k):
                t0 = time.monotonic()
                ps = [subprocess.Popen([exe, "sha", str(self.p["sha_n"])], stdout=subprocess.PIPE)
                      for _ in range(k)]
                for p in ps:
                    p.communicate(timeout=120)
                return time.monotonic() - t0
            os.sched_setaffinity(0, range(self.cores))   # the helpers inherit: unpinned
            t1 = min(sha(1), sha(1))
            t2 = min(sha(2), sha(2))
            out["two_core_scaling"] = round(2 * t1 / t2, 3)
            out["sha_chain"] = {"rounds": self.p["sha_n"], "one_s": round(t1, 4),
                                "two_s": round(t2, 4)}
        except (subprocess.TimeoutExpired, OSError) as e:
            self.notes.append("two_core_scaling not measured: %s" % e)
        finally:
            self.pin_self()
        for n in self.p["write_ns"]:
            prog("anchors", "write floor n=%d" % n)
            try:
                x = subprocess.run([exe, "write", str(n)], capture_output=True, text=True,
                                   timeout=60)
                out["write_floor_ms"][str(n)] = float(x.stdout.split()[0])
            except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
                self.notes.append("write_floor_ms n=%d not measured: %s" % (n, e))
        self.wait_anchor(out, prog)
        return out

    def wait_anchor(self, out, prog):
        """select / poll / epoll: ns per wait call with n idle descriptors and
        one ready (bench/waitcost.c, built with chatbench), pinned to the
        generator's core like the other anchors' helpers."""
        exe = os.path.join(self.build, "bench", "waitcost")
        if not os.access(exe, os.X_OK):
            self.notes.append("wait_ns not measured: %s is not built" % exe)
            return
        prog("anchors", "select / poll / epoll")
        try:
            x = subprocess.run([exe] + [str(n) for n in self.p["wait_ns"]], capture_output=True,
                               text=True, timeout=120)
            for line in x.stdout.splitlines():
                method, n, ns = line.split()
                out["wait_ns"].setdefault(method, {})[n] = float(ns)
            if x.returncode != 0:
                self.notes.append("wait_ns: waitcost exit %d: %s" % (x.returncode,
                                                                     x.stderr.strip()[-200:]))
        except (subprocess.TimeoutExpired, ValueError) as e:
            self.notes.append("wait_ns not measured: %s" % e)

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
        # The 10 000-connection cases take a minute or more each (seating the
        # room, spawning 10 000 threads or processes): 3 repetitions, the
        # least that gives a median and a spread, instead of the profile's 5.
        def reps_of(item):
            return min(reps, 3) if item["c"] >= 10000 else reps
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
        for k, (item, rep, v) in enumerate(runs):
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
            if not r["ok"] or r.get("cut_off_s") is not None:
                prog.say("  %s: %s %s %s rep %d: %s" % (
                    "failed" if not r["ok"] else "not finished", item["scenario"], item["case"],
                    v, rep, r["error"] or "cut off at %g s" % r["cut_off_s"]))
            if r.get("disturbed"):
                prog.say("  disturbed: %s" % "; ".join(r["disturbed"]))
        if self.upstream is not None:
            self.upstream.stop()
        prog.end()
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
               "profile_params": dict(self.p, sample_interval_s=SAMPLE_S,
                                      note=PROFILE_NOTES[self.profile_name]),
               "machine": dict(machine, loadavg_end=[float(x) for x in
                                                      read("/proc/loadavg", "0 0 0").split()[:3]]),
               "anchors": anchors, "runs": self.runs}
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


PROFILE_NOTES = {
    "smoke": "one short run per scenario against the given build: checks the harness, not speed",
    "quick": "1 repetition, 0.5 s HTTP runs (0.6 s for sleep and search), only the larger sleep (c=1000) and fan-out (n=1000) cases, fan-out of 10 messages, seat n=300 and 1000, idle n=100 and 1000 held 5 s: a first look, noisy",
    "default": "3 repetitions, 0.8 s HTTP runs (1 s for sleep and search), fan-out of 50 "
               "messages (5 s), chat-rate with chat-async only: about 6 to 7 minutes on 2 cores",
    "full": "5 repetitions (3 for the 10 000-connection cases: sleep, fan-out, seat, idle), "
            "seat and idle at n=1000, 3000, 10000 (idle held 20 s, past the 15 s idle rule), 5 s HTTP "
            "runs, fan-out of 50 messages (5 s), chat-rate for all three models: about an hour "
            "on 2 cores",
}


def rel(x):
    if isinstance(x, str) and x.startswith(ROOT + os.sep):
        return os.path.relpath(x, ROOT)
    return x


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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
    ap.add_argument("--models", help="comma list of async,threaded,forked,nginx,tornado")
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
