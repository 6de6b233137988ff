#!/usr/bin/env python3
"""Chat fan-out through Redis (--redis) against one server alone.

    python3 bench/redis_fanout.py [--build build-release] [--models async,async]
                                  [--clients 100] [--reps 3] [--json OUT]

Starts a throwaway redis-server (loopback, free port, no RDB/AOF, its own
empty directory, removed afterwards) and measures, with `chatbench ws`, the
latency from a message's send to each of its receipts, in three setups:

  single   one server, no Redis: the in-process room (the reference);
  redis-1  the same server with --redis: every event goes to Redis and back;
  redis-2  two servers with --redis sharing one room (--models), chatbench's
           clients split between them (`chatbench ws --also`): half of the
           receipts cross servers.

Same load in each: CLIENTS members, SENDERS of them sending MESSAGES texts at
RATE/s each. Servers, Redis and chatbench share the machine's cores
unpinned, so this is the cost of the extra hops, not a capacity figure.
./lab bench runs it as its `fanout-redis` scenario (see lab_bench.py).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_line(proc, needle, timeout):
    """Read proc's stdout until a line contains needle; returns that line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if needle in line:
            return line
    raise RuntimeError("no %r from %s" % (needle, proc.args[0]))


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="c10k-bench-redis-")
        self.port = free_port()
        self.p = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", ""],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_line(self.p, "Ready to accept connections", 20)
        self.url = "redis://127.0.0.1:%d/0" % self.port

    def flush(self):
        subprocess.run(["redis-cli", "-p", str(self.port), "FLUSHALL"], capture_output=True,
                       timeout=10, check=True)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    def __init__(self, binary, secret, redis_url=None):
        argv = [binary, "--listen", "127.0.0.1:0", "--secret", secret]
        if "threaded" in binary:
            argv += ["--threads", "0"]  # a member holds a worker: no pool limit here
        if redis_url:
            argv += ["--redis", redis_url]
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
        line = wait_line(self.p, "listening on http://", 20)
        self.port = int(line.strip().rsplit(":", 1)[1])

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def chatbench(cb, ports, a):
    argv = [cb, "ws", "http://127.0.0.1:%d/" % ports[0], "-c", str(a.clients), "-m",
            str(a.messages), "-s", str(a.senders), "-r", str(a.rate), "--json"]
    if len(ports) > 1:
        argv += ["--also", "http://127.0.0.1:%d/" % ports[1]]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    out = r.stdout.strip().splitlines()
    if r.returncode != 0 or not out:
        raise RuntimeError("chatbench failed: " + (r.stderr.strip() or "no output")[-300:])
    return json.loads(out[-1])


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def run(build, models, a):
    """Returns a list of {setup, models, p50, p90, p99, completed, expected}."""
    binary = {m: os.path.join(build, "models", m, "chat-" + m) for m in models}
    cb = os.path.join(build, "bench", "chatbench")
    tmp = tempfile.mkdtemp(prefix="c10k-bench-secret-")
    secret = os.path.join(tmp, "secret.key")
    with open(secret, "w") as f:
        f.write(os.urandom(32).hex())
    redis = Redis()
    rows = []
    try:
        setups = [("single", [models[0]], False), ("redis-1", [models[0]], True),
                  ("redis-2", models[:2], True)]
        for name, ms, through_redis in setups:
            runs = []
            for _ in range(a.reps):
                if through_redis:
                    redis.flush()  # each run starts a fresh room, seq from 1
                servers = [Server(binary[m], secret, redis.url if through_redis else None)
                           for m in ms]
                try:
                    runs.append(chatbench(cb, [s.port for s in servers], a))
                finally:
                    for s in servers:
                        s.stop()
            lat = [r["latency_ms"] for r in runs]
            rows.append({"setup": name, "models": "+".join(ms),
                         "p50": median([x["p50"] for x in lat]),
                         "p90": median([x["p90"] for x in lat]),
                         "p99": median([x["p99"] for x in lat]),
                         "completed": sum(r["completed"] for r in runs),
                         "expected": sum(r["expected"] for r in runs)})
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def markdown(rows, a):
    base = rows[0]["p50"] or 1e-9
    out = ["Fan-out latency, send to each receipt: %d members, %d senders x %d messages at %g/s, "
           "median of %d runs (ms)" % (a.clients, a.senders, a.messages, a.rate, a.reps), "",
           "| setup | servers | p50 | p90 | p99 | p50 vs single | receipts |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append("| %s | %s | %.2f | %.2f | %.2f | %.2fx | %d/%d |" % (
            r["setup"], r["models"], r["p50"], r["p90"], r["p99"], r["p50"] / base,
            r["completed"], r["expected"]))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--models", default="async,async",
                    help="the two servers of redis-2 (the first is also single/redis-1)")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--senders", type=int, default=10)
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()
    models = a.models.split(",")
    if len(models) != 2 or not all(m in ("async", "threaded", "forked") for m in models):
        sys.exit("redis_fanout: --models takes two of async, threaded, forked")
    if not shutil.which("redis-server"):
        sys.exit("redis_fanout: redis-server is not installed (Debian: redis-server)")
    rows = run(a.build, models, a)
    sys.stdout.write(markdown(rows, a))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"params": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
