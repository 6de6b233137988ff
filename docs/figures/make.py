#!/usr/bin/env python3
"""Every figure in docs/ comes from here: no number in the guide is typed by hand.

    python3 docs/figures/make.py [RESULTS_DIR ...]   import runs, then regenerate
    python3 docs/figures/make.py --check              are the docs in sync? (exit 1 if not)

A RESULTS_DIR is what `./lab bench` writes (bench/results/<timestamp>/ or
bench/results/latest): results.json, report.md and the PNG plots. Importing
copies the whole run into docs/figures/<profile>/ (default, full, ...),
replacing the run of the same profile that was there. Without arguments the
committed runs are used as they are.

A partial run (`./lab bench --full --scenarios shutdown`: only those
scenarios) goes to docs/figures/<profile>-<scenarios>/ beside the whole run
of its profile, and is preferred for its own scenarios only: it re-measures
them after a change, it does not stand for the rest. Anchors, the machine
figures, plots and the headline come from whole runs.

Then, from the committed runs only:

  * docs/figures/<name>.md: the table fragments. Each starts with where its
    figures come from (date, machine, the command, the results file).
  * docs/figures/headline.png: the README's chart, from the preferred run.
  * in docs/*.md, three kinds of marker blocks are rewritten in place:

      <!-- fig:NAME -->...<!-- /fig -->       the fragment docs/figures/NAME.md
      <!-- plot:FILE.png -->...<!-- /plot --> an image link to the plot FILE.png
      <!-- num:KEY -->...<!-- /num -->        one number (keys: see resolve())

When several runs have a case, the figure comes from the first profile in
PREFERENCE that has it: a --full run repeats each HTTP case five times for 3 s,
the default profile three times for about a second. A case no committed run
has reads "not measured in this run".

Standard library only; the medians and formatting are bench/report.py's, so a
figure here reads exactly as in the run's own report.md.
"""
import difflib
import importlib.util
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.dirname(HERE)
ROOT = os.path.dirname(DOCS)

_spec = importlib.util.spec_from_file_location("report", os.path.join(ROOT, "bench", "report.py"))
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

PREFERENCE = ["full", "default", "quick"]
COMMANDS = {"default": "./lab bench", "full": "./lab bench --full", "quick": "./lab bench --quick"}
ABSENT = "not measured in this run"

FIG_RE = re.compile(r"<!-- fig:([\w-]+) -->.*?<!-- /fig -->", re.S)
PLOT_RE = re.compile(r"<!-- plot:([\w.-]+\.png) -->.*?<!-- /plot -->", re.S)
NUM_RE = re.compile(r"<!-- num:([^ ]+) -->(.*?)<!-- /num -->")


def rel(path):
    return os.path.relpath(path, ROOT)


# ---- the committed runs ------------------------------------------------------

class Run:
    def __init__(self, profile, path):
        self.profile, self.dir = profile, path
        self.results_path = os.path.join(path, "results.json")
        with open(self.results_path, encoding="utf-8") as f:
            self.res = report.Results(json.load(f))
        self.doc = self.res.doc
        self.scenarios = self.doc.get("scenarios") or []
        self.partial = bool(self.scenarios)
        base = self.doc.get("profile") or profile
        self.command = COMMANDS.get(base, "./lab bench --" + base)
        if self.partial:
            self.command += " --scenarios " + ",".join(self.scenarios)

    def has(self, scenario, case):
        """Has the run any repetition of the case, completed or not? A case
        whose every repetition failed is still that run's finding: the page
        says the failure in words rather than fall back to another run."""
        return any(r.get("scenario") == scenario and r.get("case") == case
                   for r in self.res.runs)

    def source_line(self):
        """Where a fragment's figures come from: date, machine, command, file."""
        m = self.doc.get("machine") or {}
        mem = m.get("mem_total_kb")
        mem = f", {mem / 1024 / 1024:.1f} GiB" if mem else ""
        virt = (m.get("virtualization") or {}).get("hypervisor")
        virt = f", under {virt}" if virt else ""
        return (f"*Measured {self.doc.get('started', '?')} on {m.get('cpu_model', '?')}, "
                f"{m.get('cores', '?')} cores, kernel {m.get('kernel', '?')}{mem}{virt}, by "
                f"`{self.command}`; "
                f"results: `{rel(self.results_path)}`.*")


def load_runs():
    runs = {}
    for name in sorted(os.listdir(HERE)):
        if os.path.isfile(os.path.join(HERE, name, "results.json")):
            runs[name] = Run(name, os.path.join(HERE, name))
    partial = [p for p in runs if runs[p].partial]
    order = partial + [p for p in PREFERENCE if p in runs and p not in partial] + \
        [p for p in runs if p not in PREFERENCE and p not in partial]
    return [runs[p] for p in order]


def whole(runs):
    """The runs of every scenario: partial runs speak only for theirs."""
    return [r for r in runs if not r.partial]


def pick(runs, scenario, case):
    return next((r for r in runs if r.has(scenario, case)), None)


def import_run(src):
    with open(os.path.join(src, "results.json"), encoding="utf-8") as f:
        head = json.load(f)
    profile = head.get("profile") or "unknown"
    if profile == "smoke":
        raise SystemExit(f"make.py: {src} is a --smoke run; the guide needs a real one")
    if head.get("scenarios"):
        profile += "-" + "+".join(head["scenarios"])
    dst = os.path.join(HERE, profile)
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    for name in sorted(os.listdir(src)):
        # A partial run's plots and headline would stand for scenarios it
        # did not run: only its report comes along.
        if name == "report.md" or (name.endswith(".png") and not head.get("scenarios")):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    # The same data without the indentation: a --full run's samples are
    # megabytes, and they are what the settled PSS per connection is read from.
    with open(os.path.join(src, "results.json"), encoding="utf-8") as f:
        doc = json.load(f)
    with open(os.path.join(dst, "results.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"imported {src} as {rel(dst)}")


# ---- fragments ---------------------------------------------------------------

def with_sources(used, body):
    """A fragment: one source line per run its figures come from, then the body."""
    seen = []
    for r in used:
        if r is not None and r not in seen:
            seen.append(r)
    head = [r.source_line() for r in seen] or [f"*No committed run has these figures: "
                                               f"{ABSENT}.*"]
    return "\n\n".join(head) + "\n\n" + "\n".join(body).rstrip() + "\n"


def scenario_fragment(runs, scenario, cases, absent_hint):
    sc = report.KNOWN[scenario]
    body, used = [], []
    for case in cases:
        run = pick(runs, scenario, case)
        body += [f"**{scenario} {case}**", ""]
        if run is None:
            body += [f"Not measured in this run ({absent_hint}).", ""]
            continue
        used.append(run)
        if len(runs) > 1:
            body += [f"From the `{run.profile}` run.", ""]
        body += report.scenario_table(run.res, sc, case) + [""]
    return with_sources(used, body)


def machine_fragment(runs):
    body = []
    for r in runs:
        body += [f"- `{r.profile}` run: " + "; ".join(
            line[2:] for line in report.machine_section(r.res)[1:3])]
    return with_sources(runs, body)


def anchors_fragment(runs):
    runs = whole(runs)
    body = []
    for r in runs:
        if len(runs) > 1:
            body += [f"From the `{r.profile}` run:", ""]
        body += report.anchors_section(r.res) + [""]
    return with_sources(runs, body)


def wrk_fragment(runs):
    run = next((r for r in runs if report.wrk_pairs(r.res)), None)
    if run is None:
        return with_sources([], [f"No wrk or ab run: {ABSENT}."])
    return with_sources([run], report.wrk_table(run.res))


def redis_fragment(runs):
    """The fanout-redis table (bench/redis_fanout.py, run by lab_bench.py)."""
    run = next((r for r in runs if (r.doc.get("fanout_redis") or {}).get("markdown")), None)
    if run is None:
        return with_sources([], [f"No fanout-redis run: {ABSENT}."])
    return with_sources([run], run.doc["fanout_redis"]["markdown"].rstrip("\n").split("\n"))


C10K_MODELS = ["async", "uring", "threaded-unpooled", "forked"]


def c10k_fragment(runs):
    """Per model and size: what holding n connections cost — idle ones
    (`idle`: one request each, then quiet) and members of a chat room
    that is broadcast to (`fanout`) — and the broadcast latency."""
    head = ["model", "connections", "scenario", "held or delivered %", "time to open all s",
            "peak threads", "peak processes", "peak PSS MiB", "PSS/conn KiB",
            "broadcast p99 ms", "p99 / write floor"]
    rows, used = [], []
    for scenario, sizes in (("idle", (1000, 3000, 10000)), ("fanout", (100, 1000, 10000))):
        for n in sizes:
            for v in C10K_MODELS:
                case = f"n={n}"
                run = pick(runs, scenario, case)
                if run is None or not run.res.ok_runs(scenario, case, v):
                    why = (run.res.failures(scenario, case, v) if run else "") or ABSENT
                    rows.append([v, n, scenario, why] + [""] * (len(head) - 4))
                    continue
                used.append(run)
                res = run.res
                med = lambda metric: res.median(scenario, case, v, metric)
                threads = report.Spread(report.get(r, "server_usage", "peak_threads")
                                        for r in res.ok_runs(scenario, case, v))
                procs = report.Spread(report.get(r, "server_usage", "peak_processes")
                                      for r in res.ok_runs(scenario, case, v))
                if scenario == "idle":
                    done = report.div(med("completed"), n)
                    done = None if done is None else 100 * done
                    p99 = floor = None
                    opened = report.num(med("open_all_s"))
                else:
                    done = med("delivered")
                    floor = res.write_floor(n)
                    p99 = med("p99")
                    opened = "—"
                rows.append([v, n, scenario, report.pct(done), opened,
                             fmt_int(threads.median), fmt_int(procs.median),
                             report.num(report.div(med("peak_pss"), 1024 * 1024)),
                             report.num(report.div(med("pss_conn"), 1024)),
                             report.num(p99), report.ratio(report.div(p99, floor))])
    return with_sources(used, report.md_table(head, rows) + [
        "", "Medians over the repetitions that finished. `idle`: n keep-alive connections, "
        "one `GET /hello` each, then quiet (asked again within the 15 s idle rule); held = "
        "still answering at the end of the hold. `fanout`: n members seated in the chat room, "
        "then one message every 100 ms broadcast to all of them. PSS/conn as in the scenario "
        "tables (`bench/report.py:pss_per_conn`: over the connections open at the sample, "
        "never over n); threads and processes are peak counts over the server's whole "
        "process tree."])


def fragments(runs):
    full = "needs `./lab bench --full`"
    return {
        "machine": machine_fragment(runs),
        "anchors": anchors_fragment(runs),
        "hello": scenario_fragment(runs, "hello-keepalive", ["c=50"], full)
        + "\n" + scenario_fragment(runs, "hello-close", ["c=50"], full),
        "sleep": scenario_fragment(runs, "sleep", ["c=100", "c=1000", "c=10000"], full),
        "cpu": scenario_fragment(runs, "cpu", ["c=2", "c=2-hello", "c=4", "c=4-hello"], full),
        "search": scenario_fragment(runs, "search", ["c=200"], full),
        "fanout": scenario_fragment(runs, "fanout", ["n=100", "n=1000", "n=10000"], full),
        "seat": scenario_fragment(runs, "seat", ["n=1000", "n=3000", "n=10000"], full),
        "idle": scenario_fragment(runs, "idle", ["n=1000", "n=3000", "n=10000"], full),
        "shutdown": scenario_fragment(runs, "shutdown", ["n=10000"], full),
        "crosscheck": wrk_fragment(runs),
        "chat-rate": scenario_fragment(runs, "chat-rate", ["n=1000"], full),
        "fanout-redis": redis_fragment(runs),
        "c10k": c10k_fragment(runs),
    }


# ---- inline numbers ----------------------------------------------------------

def fmt_int(x):
    return "—" if x is None else f"{round(x):,}".replace(",", " ")


NUM_METRICS = {
    # metric: (how to read it from a median, how to format it)
    "rate": ("rate", report.num), "p50": ("p50", report.num), "p99": ("p99", report.num),
    "server_cpu": ("server_cpu", report.num), "gen_cpu": ("gen_cpu", report.num),
    "delivered": ("delivered", lambda x: report.pct(x) + " %"), "failed": ("failed", fmt_int),
    "completed": ("completed", fmt_int),
    "pss_mib": ("peak_pss", lambda x: report.num(x / 1024 / 1024)),
    "pss_conn_kib": ("pss_conn", lambda x: report.num(x / 1024)),
    "seat_s": ("seat_s", report.num), "open_all_s": ("open_all_s", report.num),
    "server_cpu_s": ("server_cpu_s", report.num), "exit_s": ("exit_s", report.num),
    "last_close_s": ("last_close_s", report.num),
    "wakeups": ("wakeups", fmt_int), "wakeups_per_join": ("wakeups_per_join", report.num),
}
USAGE_METRICS = {"threads": "peak_threads", "processes": "peak_processes",
                 "rss_mib": "peak_rss_bytes", "memdrop_gib": "mem_available_drop_kb"}


def resolve(runs, key):
    """The text of one number, or None for an unknown key.

    SCENARIO/CASE/VARIANT/METRIC   median over the repetitions, e.g.
                                   sleep/c=1000/async/rate; METRIC is one of
                                   NUM_METRICS or USAGE_METRICS
    ratio:KEY:KEY                  the first over the second, "2.04×"
    anchor/fork_us, anchor/two_core_scaling, anchor/write_floor_ms/N,
    anchor/fork_live_us/KIND/K, anchor/exit_live_us/KIND/K,
    anchor/exit_live_s/KIND/K (all K, in s), anchor/wait_ns/METHOD/N
                                   from the first run that has it; with
                                   @SCENARIO/CASE appended, from the run that
                                   case's figures come from ("the same run")
    machine/FIELD                  a field of results.json's machine (mem_gib too)
    """
    if key.startswith("ratio:"):
        parts = key.split(":")
        if len(parts) != 3:
            return None
        # A figure over an anchor: the anchor of the run the figure is from.
        keys = parts[1:]
        for i, j in ((0, 1), (1, 0)):
            if (keys[j].startswith("anchor/") and "@" not in keys[j]
                    and keys[i].split("/")[0] in report.KNOWN):
                keys[j] += "@" + "/".join(keys[i].split("/")[:2])
        a, b = (value(runs, k) for k in keys)
        if a is False or b is False:
            return None
        for x in (a, b):
            if isinstance(x, Failed):
                return str(x)
        return ABSENT if a is None or b is None else report.ratio(report.div(a, b))
    x = value(runs, key)
    if x is False:
        return None
    if x is None:
        return ABSENT
    if isinstance(x, Failed):
        return str(x)
    parts = key.split("/")
    if parts[0] == "machine":
        if parts[1] == "mem_gib":
            return f"{x:.1f}"
        if isinstance(x, list):
            return "–".join(str(v) for v in x)
        return fmt_int(x) if isinstance(x, int) and x >= 10000 else str(x)
    if parts[0] == "anchor":
        return report.ratio(x) if parts[1].startswith("two_core_scaling") else report.num(x)
    metric = parts[3]
    if metric in USAGE_METRICS:
        if metric == "memdrop_gib":
            return report.num(x / 1024 / 1024)
        return fmt_int(x) if metric != "rss_mib" else report.num(x / 1024 / 1024)
    return NUM_METRICS[metric][1](x)


class Failed(str):
    """The value of a case whose every repetition failed or did not finish:
    the guide says so in words, never a number (bench/report.py:failure)."""


def failed_value(res, scenario, case, variant):
    words = res.failures(scenario, case, variant)
    if not words or res.ok_runs(scenario, case, variant):
        return None
    return Failed(words.split(":", 1)[0] + " in this run")


def anchor_value(anchors, path):
    """One anchor figure; exit_live_s/KIND/K is exit_live_us's K children
    in seconds, all of them (µs per child x K)."""
    if path[0] == "exit_live_s" and len(path) == 3 and path[2].isdigit():
        us = report.get(anchors, "exit_live_us", *path[1:])
        return None if us is None else us * int(path[2]) / 1e6
    return report.get(anchors, *path)


def value(runs, key):
    """The raw value of a key; None when no run has it, False for a bad key,
    a Failed when every repetition of it failed."""
    parts = key.split("/")
    if parts[0] == "machine" and len(parts) == 2:
        run = next(iter(whole(runs)), None)
        if run is None:
            return None
        m = run.doc.get("machine") or {}
        if parts[1] == "mem_gib":
            return None if not m.get("mem_total_kb") else m["mem_total_kb"] / 1024 / 1024
        if parts[1] not in m:
            return False
        return m[parts[1]]
    if parts[0] == "anchor":
        # anchor/NAME@SCENARIO/CASE: the anchor of the run that the figures
        # of SCENARIO/CASE come from, so that "measured in the same run" is
        # true; without @, the first run (in PREFERENCE) that has it.
        parts, _, at = key.partition("@")
        parts = parts.split("/")
        if len(parts) not in (2, 3, 4):
            return False
        if at:
            where = at.split("/")
            if len(where) != 2 or where[0] not in report.KNOWN:
                return False
            run = pick(runs, *where)
            return None if run is None else anchor_value(run.res.anchors, parts[1:])
        for run in whole(runs):
            x = anchor_value(run.res.anchors, parts[1:])
            if x is not None:
                return x
        return None
    if len(parts) != 4 or parts[0] not in report.KNOWN:
        return False
    scenario, case, variant, metric = parts
    if metric not in NUM_METRICS and metric not in USAGE_METRICS:
        return False
    run = pick(runs, scenario, case)
    if run is None:
        return None
    failed = failed_value(run.res, scenario, case, variant)
    if failed:
        return failed
    if metric in USAGE_METRICS:
        return report.Spread(report.get(r, "server_usage", USAGE_METRICS[metric])
                             for r in run.res.ok_runs(scenario, case, variant)).median
    return run.res.median(scenario, case, variant, NUM_METRICS[metric][0])


# ---- rewriting the docs ------------------------------------------------------

def plot_link(runs, name):
    run = next((r for r in whole(runs) if os.path.isfile(os.path.join(r.dir, name))), None)
    if run is None:
        return f"*Plot `{name}`: {ABSENT}.*"
    return f"![{name} from `{COMMANDS.get(run.profile, run.profile)}`]" \
           f"({os.path.relpath(os.path.join(run.dir, name), DOCS)})"


def render(text, runs, frags, errors, where):
    def fig(m):
        name = m.group(1)
        if name not in frags:
            errors.append(f"{where}: unknown fragment fig:{name} (known: {', '.join(frags)})")
            return m.group(0)
        return f"<!-- fig:{name} -->\n{frags[name]}<!-- /fig -->"

    def plot(m):
        return f"<!-- plot:{m.group(1)} -->{plot_link(runs, m.group(1))}<!-- /plot -->"

    def num(m):
        text = resolve(runs, m.group(1))
        if text is None:
            errors.append(f"{where}: unknown number key num:{m.group(1)}")
            return m.group(0)
        return f"<!-- num:{m.group(1)} -->{text}<!-- /num -->"

    return NUM_RE.sub(num, PLOT_RE.sub(plot, FIG_RE.sub(fig, text)))


def outputs(runs):
    """{path: bytes} of everything this script writes, from the committed runs."""
    frags = fragments(runs)
    out, errors = {}, []
    for name, text in frags.items():
        out[os.path.join(HERE, f"{name}.md")] = text.encode()
    for name in sorted(os.listdir(DOCS)):
        if name.endswith(".md"):
            path = os.path.join(DOCS, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            out[path] = render(text, runs, frags, errors, rel(path)).encode()
    head = next((r for r in whole(runs) if os.path.isfile(os.path.join(r.dir, "headline.png"))),
                None)
    if head:
        with open(os.path.join(head.dir, "headline.png"), "rb") as f:
            out[os.path.join(HERE, "headline.png")] = f.read()
    return out, errors


def current(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def main(argv):
    check = "--check" in argv
    args = [a for a in argv[1:] if a != "--check"]
    if any(a.startswith("-") for a in args):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if check and args:
        print("make.py: --check takes no results directory", file=sys.stderr)
        return 2
    for src in args:
        import_run(src)
    runs = load_runs()
    if not runs:
        print("make.py: no committed run under docs/figures/*/results.json", file=sys.stderr)
        return 1
    out, errors = outputs(runs)
    for e in errors:
        print(e, file=sys.stderr)
    stale = [p for p, data in out.items() if current(p) != data]
    if check:
        for p in stale:
            print(f"out of date: {rel(p)}", file=sys.stderr)
            old = current(p)
            if p.endswith(".md") and old is not None:
                diff = difflib.unified_diff(old.decode().splitlines(), out[p].decode().splitlines(),
                                            rel(p), "regenerated", lineterm="", n=1)
                print("\n".join(list(diff)[:20]), file=sys.stderr)
        if stale:
            print("run: python3 docs/figures/make.py", file=sys.stderr)
        return 1 if stale or errors else 0
    for p in stale:
        with open(p, "wb") as f:
            f.write(out[p])
        print(f"wrote {rel(p)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
