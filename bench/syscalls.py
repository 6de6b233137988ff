"""System calls per request of each model, counted with `strace -c -f` on a
short, bounded GET /hello keep-alive load, outside the timed runs (strace
slows a traced server many times over: none of its figures is a speed).

For each model: the server starts as in a run (pinned to the server's CPU);
strace attaches to every process of its tree, all threads (-p PID -f), and
follows what they fork (chat-forked's connection processes); once the kernel
says every thread is traced (TracerPid), `chatbench http -k -c C -n N` asks N
requests (pinned to the generator's CPU); then strace is interrupted, which
detaches it and writes its summary. The count is every system call of the
tree between attach and detach, divided by the requests actually answered.
Each connection's set-up and close (C of each) are in it, spread over the
requests; the server's start and stop are not.
"""
import json
import os
import signal
import subprocess
import tempfile
import time

from sampling import proc_table, tcp_on, tree_of
from server import ALL_CPUS, Server, wait_bounded

SYSCALL_MODELS = ("async", "threaded", "forked", "uring")
METHOD = ("strace -c -f attached (-p) to the whole server tree, all threads, for "
          "`chatbench http -k -c C -n N` on GET /hello; calls between attach and detach "
          "over the requests answered; outside the timed runs")


def parse_strace_c(text):
    """strace -c's table: [(syscall, calls, errors)] and the total calls, or
    (None, None) when there is no table."""
    rows, total = [], None
    for line in text.splitlines():
        f = line.split()
        if len(f) < 5 or not f[3].isdigit():
            continue            # the head, the rules, strace's own messages
        try:
            float(f[0])
        except ValueError:
            continue
        name = f[-1]
        errors = int(f[4]) if len(f) == 6 else 0
        if name == "total":
            total = int(f[3])
        else:
            rows.append((name, int(f[3]), errors))
    if total is None:
        return None, None
    return sorted(rows, key=lambda r: -r[1]), total


def server_ends_open(port):
    """Server-side connections on `port` not yet closed by the server:
    ESTABLISHED (01), or CLOSE_WAIT (08: the client has gone, the server has
    yet to close its end)."""
    return tcp_on(port, ("01", "08"))


def traced(pids, tracer):
    """Is every thread of every pid traced by `tracer`?"""
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue            # gone: nothing of it to trace
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    line = next((ln for ln in f if ln.startswith("TracerPid:")), "")
            except OSError:
                continue
            if line.split()[1:] != [str(tracer)]:
                return False
    return True


class SyscallsMixin:
    """Bench's syscall count. Uses the Bench's bin, users, chatbench, models,
    pin_server, pin_gen, p (syscall_c, syscall_n) and tmp."""

    def syscall_counts(self, say):
        c, n = self.p.get("syscall_c", 50), self.p.get("syscall_n", 5000)
        doc = {"method": METHOD, "conns": c, "requests": n, "models": {}}
        strace = self.which_strace()
        for m in SYSCALL_MODELS:
            if m not in self.models:
                continue
            say("syscalls: %s (strace -c, %d requests)" % (m, n))
            doc["models"][m] = (self.count_one(m, c, n, strace) if strace else
                                {"ok": False, "error": "strace is not installed"})
        return doc

    @staticmethod
    def which_strace():
        for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
            if os.access(os.path.join(d, "strace"), os.X_OK):
                return os.path.join(d, "strace")
        return None

    def count_one(self, model, c, n, strace):
        srv = Server([self.bin[model], "--listen", "127.0.0.1:0", "--users", self.users],
                     self.pin_server)
        tracer = None
        errf = tempfile.TemporaryFile()   # a file, not a pipe: strace says a line a process
        out = tempfile.NamedTemporaryFile(prefix="strace-", dir=self.tmp, delete=False)
        out.close()
        try:
            if not srv.wait_ready():
                return {"ok": False, "error": "server did not start: " + srv.stderr_tail(200)}
            pids = tree_of(srv.p.pid, proc_table())
            cmd = [strace, "-c", "-f", "-o", out.name]
            for pid in pids:
                cmd += ["-p", str(pid)]
            tracer = subprocess.Popen(["taskset", "-c", self.pin_server or ALL_CPUS] + cmd,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=errf, start_new_session=True)
            deadline = time.monotonic() + 10
            while not traced(pids, tracer.pid):
                if tracer.poll() is not None or time.monotonic() > deadline:
                    errf.seek(0)
                    why = errf.read().decode("utf-8", "replace").strip()[-200:]
                    return {"ok": False, "error": "strace did not attach: " +
                            (why or "not every thread traced within 10 s")}
                time.sleep(0.02)
            gen = subprocess.Popen(
                ["taskset", "-c", self.pin_gen or ALL_CPUS, self.chatbench, "http",
                 "http://127.0.0.1:%d/hello" % srv.port, "-c", str(c), "-n", str(n), "-k",
                 "--json"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, start_new_session=True)
            rc, _, timed_out = wait_bounded(gen, 60 + n / 100.0)
            text = gen.stdout.read().decode("utf-8", "replace")
            gen.stdout.close()
            # Count each connection's close too: wait (bounded) until the
            # server has closed its ends of chatbench's connections.
            deadline = time.monotonic() + 5
            while server_ends_open(srv.port) and time.monotonic() < deadline:
                time.sleep(0.02)
            tracer.send_signal(signal.SIGINT)    # detach, write the summary
            if wait_bounded(tracer, 10)[2]:
                return {"ok": False, "error": "strace did not exit within 10 s of SIGINT"}
            if timed_out:
                return {"ok": False, "error": "chatbench killed after %.0f s" % (60 + n / 100.0)}
            try:
                answered = json.loads(text.strip().splitlines()[-1]).get("completed") or 0
            except (ValueError, IndexError):
                return {"ok": False, "error": "chatbench exit %s, no JSON" % rc}
            with open(out.name, encoding="utf-8", errors="replace") as f:
                rows, total = parse_strace_c(f.read())
            if total is None:
                return {"ok": False, "error": "no strace -c summary"}
            if not answered:
                return {"ok": False, "error": "no request answered"}
            return {"ok": True, "error": None, "answered": answered, "total_calls": total,
                    "per_request": round(total / answered, 3),
                    "syscalls": [{"name": s, "calls": k, "errors": e,
                                  "per_request": round(k / answered, 3)} for s, k, e in rows]}
        finally:
            if tracer is not None and tracer.poll() is None:
                tracer.kill()
                tracer.wait()
            errf.close()
            srv.stop()
            os.unlink(out.name)
