"""wrk's and ab's output, read into the result chatbench gives as JSON (the
wrk-vs-* and ab-vs-* cross-checks). tests/bench/test_tool_output.py checks
them on captured output."""
import re


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
