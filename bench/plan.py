"""The plan of a bench: which scenario cases run, with which variants, and
how long each run is expected to take (for the progress line)."""
import statistics

from profiles import shutdown_by
from variants import MODELS, VARIANTS, cross_target, cross_tool


class PlanMixin:
    """Bench's plan. Uses the Bench's p (the profile), profile_name, args,
    models, wrk, ab, walls and overhead."""

    def tool_path(self, tool):
        return {"wrk": self.wrk, "ab": self.ab}.get(tool)

    def variant_ok(self, v):
        return VARIANTS[v][0] in self.models

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
            add("cpu", "c=%d" % c, ["async", "async-cpu-pool", "uring", "threaded", "threaded-gil",
                                    "forked"],
                path="/cpu?n=20000", c=c, keep=True, t=T, unpinned=True, twin=True)
        add("search", "c=%d" % P["search_c"], ["async", "uring", "threaded", "threaded-unpooled",
                                                "forked"],
            path="/search?wd=x", c=P["search_c"], keep=True, t=P["sleep_t"], upstream=True)
        # seat: n members join the room, n(n+1)/2 join frames; the time to
        # seat them against n, then a short stay for the settled PSS.
        # Before the fan-out: a fan-out to n needs n seated first, and where
        # seat n was not finished it is not run (lab_bench.py).
        for n in P["seat_ns"]:
            add("seat", "n=%d" % n, ["async", "uring", "threaded-unpooled", "forked", "tornado"],
                seat=True, c=n, t=P["seat_t"], sources=P["sources"])
        for n in P["fanout_ns"]:
            add("fanout", "n=%d" % n, ["async", "uring", "threaded-unpooled", "forked", "tornado"],
                ws=True, c=n, m=P["fanout_m"], t=P["fanout_m"] / 10.0 + 1 + n / 2000.0)
        # chatbench ws's own ceiling: 20 senders x 10/s x 1000 members offer
        # 200 000 receipts/s; the server pinned, chatbench on its own core.
        smoke, full = self.profile_name == "smoke", self.profile_name == "full"
        n, m = (50, 5) if smoke else (1000, 30)
        add("chat-rate", "n=%d" % n,
            ["async", "uring"] + (["threaded-unpooled", "forked"] if full else []),
            ws=True, c=n, s=20, m=m, t=m / 10.0 + 1 + n / 2000.0)
        # idle: the C10K experiment proper. n keep-alive connections, one
        # GET /hello each, then quiet (re-asking inside the 15 s idle rule)
        # for idle_t; held = those that still answer at the end.
        for n in P["idle_ns"]:
            add("idle", "n=%d" % n, MODELS + ["tornado"], idle=True, c=n, t=P["idle_t"],
                sources=P["sources"])
        # shutdown: SIGTERM with n members in the room (or as many as were
        # seated by shutdown_by(n)), a tenth of them leaving at that moment;
        # the contract's 5 s, measured. Once per profile: a check, not a speed.
        for n in P.get("shutdown_ns", []):
            add("shutdown", "n=%d" % n, ["async", "uring", "threaded-unpooled", "forked"],
                seat=True, shutdown=True, once=True, c=n, t=shutdown_by(n), leave=max(1, n // 10),
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
