"""The machine under the bench: its limits checked (and, as root, raised)
before any scenario, what it had recorded in results.json (machine), and
whether it was quiet during each run (others' CPU, the load: a run's
`disturbed` reasons)."""
import os
import platform
import resource
import subprocess
import sys

from sampling import meminfo, read


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


def virtualization():
    """What the machine runs under, as the kernel said at boot: the
    hypervisor's name ("Hypervisor detected: PVM" in the kernel log), or the
    cpuinfo flag alone when the log cannot be read, or None on bare metal.
    It changes what a system call, a fork and a context switch cost (under
    PVM the guest kernel's page tables are shadowed: a fork costs about a
    millisecond), so the figures of two runs compare only on the same kind.
    Also the Meltdown mitigation (PTI), which taxes every system call."""
    name = None
    try:
        log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
        for line in log.splitlines():
            if "Hypervisor detected:" in line:
                name = line.split("Hypervisor detected:", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    flags = next((ln for ln in (read("/proc/cpuinfo") or "").splitlines()
                  if ln.startswith("flags")), "")
    if name is None and " hypervisor" in flags:
        name = "a hypervisor (the kernel log, which names it, is not readable)"
    return {"hypervisor": name,
            "meltdown": read("/sys/devices/system/cpu/vulnerabilities/meltdown", "").strip() or None}


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
        "virtualization": virtualization(),
        "notes": notes,
    }


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
    """Why a run's machine was not quiet, in words (empty: it was): other
    processes' CPU, measured directly just before the load and during it
    (what /proc/stat counts busy beyond the run's own processes, so kernel
    work charged to no process counts too: softirqs, RCU callbacks).
    The 1-minute load average is recorded (loadavg_start, loadavg_end) but
    flags nothing: it is a minute-long damped count of runnable tasks that
    includes this bench's own previous runs — chat-threaded's workers count
    one each, and a c=50 HTTP run of it left the load at 7 for the next run
    of ./lab bench --full on a machine with nothing else running."""
    del load_start, cores  # recorded by the caller; see above
    why = []
    if before_pct > DISTURBED_PCT:
        why.append("other processes used %.0f %% of a core just before the load"
                   % before_pct)
    if during_pct > DISTURBED_PCT:
        why.append("other processes used %.0f %% of a core during the run" % during_pct)
    return why
