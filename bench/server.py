"""Processes the bench starts: a server in its own session (started, made
ready, stopped, its whole tree waited for or killed) and the bounded wait
for a generator."""
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

from sampling import CLK_TCK, proc_state, read, session_members


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


def exited(p):
    """Has child p exited? (without reaping it: its rusage is still to come)"""
    try:
        return os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


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
        # The whole tree's context switches over its life, from wait4 when
        # it is reaped: voluntary (it blocked, so something woke it: a
        # wake-up) and involuntary (preempted). rusage holds every thread
        # that ended and every child the server reaped, as cutime does.
        self.csw = None

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
        # exited(), not poll(): poll() would reap it, and its rusage with it.
        if self.p.returncode is None and not exited(self.p):
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
        elif self.p.returncode is None and self.total_cpu_s is None:
            self.exited_cpu(0.1)  # gone by itself: its CPU while it is a zombie
        if self.p.returncode is None:
            _, ru, timed_out = wait_bounded(self.p, 5)
            if ru is not None:
                self.csw = {"voluntary": ru.ru_nvcsw, "involuntary": ru.ru_nivcsw}
            if self.p.returncode is None:
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
