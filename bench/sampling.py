"""Reading /proc: the server's process tree (CPU, RSS, PSS, threads,
processes, open connections) sampled while a run lasts, and the machine's
load and busy time. bench/lab_bench.py's docstring says what each figure
means and how it is taken."""
import os
import re
import threading
import time

SAMPLE_S = 0.2
CLK_TCK = os.sysconf("SC_CLK_TCK")


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def meminfo():
    out = {}
    for line in (read("/proc/meminfo") or "").splitlines():
        k, _, v = line.partition(":")
        try:
            out[k] = int(v.split()[0])
        except (ValueError, IndexError):
            pass
    return out


def proc_table():
    """pid -> (ppid, cpu ticks incl. reaped children, reaped children's
    ticks, threads) for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        s = read("/proc/%s/stat" % name)
        if not s:
            continue
        rest = s[s.rfind(")") + 2:].split()
        # rest[0] = state (field 3); ppid field 4; utime..cstime fields 14..17;
        # num_threads field 20
        try:
            kids = int(rest[13]) + int(rest[14])
            table[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]) + kids, kids,
                                int(rest[17]))
        except (IndexError, ValueError):
            pass
    return table


def tree_cpu_s(pids, table):
    """The CPU seconds of these processes, reaped children included.

    /proc/PID/stat gives a process's CPU in whole clock ticks (10 ms),
    rounded down, once per process: summed over 10 000 chat-forked children
    that lost up to a tick each, the tree's CPU read up to 100 s short, and
    the difference showed up as "others' CPU", flagging the run disturbed.
    For a process of one thread /proc/PID/schedstat has the same run time
    in nanoseconds; it holds the live thread only, so a process whose other
    threads have ended may have more in stat: the larger of the two is
    taken. Reaped children (cutime + cstime) are rounded once for all of
    them, and threaded processes once for all their threads."""
    total = 0.0
    for p in pids:
        _, ticks, kids, threads = table[p]
        own = (ticks - kids) / CLK_TCK
        if threads == 1:
            ns = (read("/proc/%d/schedstat" % p) or "").split()
            if ns and ns[0].isdigit():
                own = max(own, int(ns[0]) / 1e9)
        total += own + kids / CLK_TCK
    return total


def tcp_on(port, states=("01",)):
    """TCP connections whose local port is `port`, in one of `states` (the
    kernel's hex codes in /proc/net/tcp: 01 ESTABLISHED, 08 CLOSE_WAIT)."""
    want = ":%04X" % port
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    fields = line.split(None, 4)
                    if len(fields) > 3 and fields[3] in states and fields[1].endswith(want):
                        n += 1
        except OSError:
            pass
    return n


def established_on(port):
    """Established TCP connections whose local port is `port`: the server's
    ends of the connections actually open (the kernel's count, the same for
    every server, peers included). Connections still in the accept queue
    count too: the kernel holds them open."""
    return tcp_on(port) if port else None


def _cpu_line():
    for line in (read("/proc/stat") or "").splitlines():
        if line.startswith("cpu "):
            # user nice system idle iowait irq softirq steal (guest is in user)
            return [int(x) for x in line.split()[1:]]
    return [0] * 8


def machine_busy_s():
    """CPU seconds the whole machine has spent busy in tasks (all CPUs; steal
    included: on a shared host that is other tenants' time), from /proc/stat.
    Interrupt and softirq time is left out, and counted by machine_irq_s:
    it is charged to no process, so the run's own loopback traffic (a TCP
    segment is received in softirq on the sender's core) would read as
    someone else's CPU. It was 3-6 % of a core in chat-forked's seat runs
    (2026-12-03): not what flags those runs (see bench/report.py:disturbed)."""
    v = _cpu_line()
    return (v[0] + v[1] + v[2] + v[7]) / CLK_TCK


def machine_irq_s():
    """CPU seconds in interrupts and softirqs, all CPUs (see machine_busy_s)."""
    v = _cpu_line()
    return (v[5] + v[6]) / CLK_TCK


def loadavg():
    return [float(x) for x in read("/proc/loadavg", "0 0 0").split()[:3]]


def tree_of(root, table):
    kids = {}
    for pid, row in table.items():
        kids.setdefault(row[0], []).append(pid)
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
        cpu = tree_cpu_s(pids, table)
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


def proc_state(pid):
    s = read("/proc/%d/stat" % pid) or ""
    return s[s.rfind(")") + 2:].split(" ", 1)[0] if s else "gone"


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
