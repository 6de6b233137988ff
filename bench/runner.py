"""One run of one variant in one scenario case: the server started fresh
and pinned, the generator (chatbench, wrk or ab) run against it under a
bound, the server's tree sampled meanwhile, the server stopped and its tree
waited for before the next run, and the run recorded as results.json's
runs[] has it. bench/lab_bench.py's docstring describes the method."""
import json
import os
import subprocess
import tempfile
import time

from machine import QUIET_S, disturbance, get_cpu, others_cpu, own_cpu_s
from peer_servers import start_nginx, tornado_cmd
from profiles import run_bound
from sampling import (Sampler, loadavg, machine_busy_s, machine_irq_s, meminfo,
                      proc_table, tree_cpu_s, tree_of)
from server import ALL_CPUS, Server, exited, wait_bounded
from tool_output import parse_ab, parse_wrk
from variants import VARIANTS, cross_target, cross_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunMixin:
    """Bench's runs. Uses the Bench's binaries (bin, chatbench, wrk, ab,
    nginx, tornado_py), users, tmp, modes, pin_server, pin_gen, cores, and
    upstream / upstream_port (the search upstream, started by Bench.run);
    appends to runs and stop_errors."""

    def server_cmd(self, variant, item):
        model, flags = VARIANTS[variant]
        if model == "nginx":
            return None
        if model == "tornado":
            return tornado_cmd(self.tornado_py)
        cmd = [self.bin[model], "--listen", "127.0.0.1:0", "--users", self.users] + flags
        if item.get("upstream"):
            cmd += ["--upstream", "http://127.0.0.1:%d/sleep?ms=50&x=" % self.upstream_port]
        if item["c"] >= 10000:
            cmd += ["--max-conns", str(item["c"] + 1000)]
        return cmd

    def start_server(self, variant, item, pin):
        if VARIANTS[variant][0] == "nginx":
            return start_nginx(self.nginx, self.tmp, pin)
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
        if item.get("shutdown"):
            return [self.chatbench, "seat", "ws://%s/chat/ws" % base, "-c", str(item["c"]),
                    "--sigterm", str(self.server_pid), "--leave", str(item["leave"]),
                    "--by", "%g" % item["t"], "--sources", str(item.get("sources", 1)), "--json"]
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
        irq1 = machine_irq_s()
        others_before = others_cpu(q0, q1, 0.0)
        self.server_pid = srv.p.pid
        gcmd = self.gen_cmd(item, srv.port, tool)
        g = self.spawn_gen(gcmd, pin_g)
        gens = [g[0]]
        twin = None
        if item.get("twin") and self.modes["http"]:
            tcmd = [self.chatbench, "http", "http://127.0.0.1:%d/hello" % srv.port, "-c", "1",
                    "-r", "50", "-t", "%g" % item["t"], "-k", "--json"]
            twin = (tcmd, self.spawn_gen(tcmd, pin_g))
            gens.append(twin[1][0])
        deadline = time.monotonic() + run_bound(item, need)
        server_exit = None  # shutdown: when the server was seen gone (20 ms steps)
        while time.monotonic() < deadline and not all(exited(p) for p in gens):
            if item.get("shutdown") and server_exit is None and exited(srv.p):
                server_exit = time.monotonic()
            time.sleep(0.02)
        if item.get("shutdown") and server_exit is None and exited(srv.p):
            server_exit = time.monotonic()
        cut = not all(exited(p) for p in gens)
        end = sampler.finish()
        q2 = (time.monotonic(), machine_busy_s(), own_cpu_s(), end["cpu_s"], self.upstream_cpu())
        irq_pct = 100.0 * (machine_irq_s() - irq1) / max(q2[0] - q1[0], 1e-9)
        # The C models must exit within 5 s of SIGTERM (CONTRACT.md); the peers
        # are not held to that, and get 2 s.
        swait = 2.0 if target in ("nginx", "tornado") else 6.0
        stop_err = srv.stop(swait) if cut else None
        res, err = self.collect_gen(*g, tool, 20)
        twin_res = twin_err = None
        if twin:
            twin_res, twin_err = self.collect_gen(*twin[1], "chatbench", 20)
        if item.get("shutdown") and server_exit is not None:
            srv.exited_cpu(0.5)  # gone already: read its CPU while it is a zombie
        if item.get("shutdown") and not cut and server_exit is None:
            # Told by chatbench; not gone yet: wait for it, as long as stop would.
            if srv.exited_cpu(swait):
                server_exit = time.monotonic()
        if not cut:
            stop_err = srv.stop(swait)
        if stop_err:        # the run did run: its figures stand, the shutdown is noted
            self.stop_errors.append("%s %s %s rep %d: %s" % (item["scenario"], item["case"],
                                                            variant, rep, stop_err))
        samples = [s for s in sampler.samples if s is not base]
        usage = self.usage(base, end, samples, res, mem0)
        usage["cpu_total_s"] = srv.total_cpu_s
        if srv.csw is not None:  # over the server's life: start and stop included
            usage["csw_voluntary"] = srv.csw["voluntary"]
            usage["csw_involuntary"] = srv.csw["involuntary"]
        gen_cpu = sum(get_cpu(x) for x in (res, twin_res))
        others_during = others_cpu(q1, q2, gen_cpu)
        load_end = loadavg()
        disturbed += disturbance(load_start, others_before, others_during, self.cores)
        extra = {"loadavg_1m": load_start[0], "loadavg_start": load_start,
                 "loadavg_end": load_end, "others_cpu": {
                     "before_pct": round(others_before, 1), "during_pct": round(others_during, 1),
                     "irq_during_pct": round(irq_pct, 1)},
                 "disturbed": disturbed, "stop_error": stop_err,
                 "cut_off_s": round(run_bound(item, need), 2) if cut else None}
        if item.get("shutdown"):
            extra["shutdown"] = self.shutdown_figures(res, server_exit, srv.p.returncode)
        r = self.record(item, variant, rep, srv.cmd, pin_s, gcmd, pin_g, tool, res, err,
                        usage, samples, extra)
        if twin:
            tu = dict(usage, cpu_us_per_op=None,
                      note="the server's usage is shared with case %s" % item["case"])
            self.record(dict(item, case=item["case"] + "-hello"), variant, rep, srv.cmd, pin_s,
                        twin[0], pin_g, "chatbench", twin_res, twin_err, tu, [], extra)
        return r

    @staticmethod
    def shutdown_figures(res, server_exit, status):
        """The shutdown measure: members in the room when chatbench sent
        SIGTERM, how many were leaving, how long until the server had closed
        the rest and until its process was gone (both clocks are
        CLOCK_MONOTONIC), its exit status. exit_s is None when it did not
        exit before the harness gave up: a failure, never a number."""
        term = (res or {}).get("term")
        if not term:
            return {"measured": False}
        exit_s = None if server_exit is None else round(server_exit - term["mono_s"], 3)
        return {"measured": True, "members": term["members"], "leaving": term["leaving"],
                "seated_all": (res.get("seated") == res.get("expected")),
                "closed_by_server": term["closed_by_server"], "closed_1001": term["closed_1001"],
                "last_close_s": term["last_close_s"], "exit_s": exit_s, "exit_status": status,
                "within_5s": exit_s is not None and exit_s <= 5.0 and status == 0}

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
        return tree_cpu_s(tree_of(self.upstream.p.pid, table), table)

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


def rel(x):
    if isinstance(x, str) and x.startswith(ROOT + os.sep):
        return os.path.relpath(x, ROOT)
    return x
