"""The anchors: figures of the machine itself, measured in the same run by
two C helpers built with chatbench (BUILD/bench/lab-anchors from
bench/anchors.c, BUILD/bench/waitcost from bench/waitcost.c).
bench/lab_bench.py's docstring says what each one means."""
import os
import subprocess
import time


class AnchorsMixin:
    """Bench's anchors. Uses the Bench's build, p (the profile), cores,
    notes and pin_self."""

    def anchors(self, prog):
        out = {"fork_us": None, "two_core_scaling": None, "write_floor_ms": {}, "wait_ns": {},
               "fork_live_us": {"bare": {}, "fds": {}}, "exit_live_us": {"bare": {}, "fds": {}},
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
        # After the two-core scaling, never before it: exiting thousands of
        # children leaves the kernel work to do for seconds (in the run of
        # 2026-12-03 the scaling measured just after fork-live k=10000 read
        # 1.17x, where chat-threaded's /cpu ran 1.92x chat-async's).
        self.fork_live_anchor(exe, out, prog)
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

    def fork_live_anchor(self, exe, out, prog):
        """fork + exit + wait from a parent with k live children, bare and
        with one socketpair end per child held in the parent (as chat-forked's
        parent held its hub links before the spawner): what of a fork's cost
        grows with the children alive is the kernel's. Then the k children
        are ended at once: exit_live_us is the time from then until the last
        is reaped, per child, on the one core the helper is pinned to: the
        kernel's floor under a shutdown with k connection processes."""
        for k in self.p["fork_live_ks"]:
            for kind in ("bare", "fds"):
                prog("anchors", "fork with %d live children (%s)" % (k, kind))
                try:
                    x = subprocess.run([exe, "fork-live", str(k), str(self.p["fork_live_n"])]
                                       + (["fds"] if kind == "fds" else []),
                                       capture_output=True, text=True, timeout=180)
                    out["fork_live_us"][kind][str(k)] = float(x.stdout.split()[0])
                    if k > 0:
                        out["exit_live_us"][kind][str(k)] = float(x.stdout.split()[1])
                except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
                    self.notes.append("fork_live_us %s k=%d not measured: %s" % (kind, k, e))

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
