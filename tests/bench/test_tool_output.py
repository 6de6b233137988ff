#!/usr/bin/env python3
"""bench/tool_output.py's parse_wrk and parse_ab on real wrk and ab output.

The files in tests/bench/tool-output/ were captured from wrk 4.1.0 and
ApacheBench 2.3 (Debian 12) run as ./lab bench runs them (bench/runner.py's
gen_cmd: wrk -t1 --latency --timeout 10s; ab -q -t -n 100000000 -k) against
chat-async on 127.0.0.1:
  wrk-hello.txt     GET /hello, 10 connections, 2 s
  wrk-404.txt       GET /no-such-page: every response a 404
  wrk-timeout.txt   GET /sleep?ms=1500 with --timeout 1s: every request timed out
  wrk-refused.txt   the server stopped: connection refused
  ab-hello.txt, ab-404.txt, ab-refused.txt: the same with ab
Every expectation below is a figure read off those files.

    python3 tests/bench/test_tool_output.py      (or ctest -R bench-tool-output)
"""
import collections
import importlib.util
import os
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tool-output")
spec = importlib.util.spec_from_file_location(
    "tool_output", os.path.join(HERE, "..", "..", "bench", "tool_output.py"))
tool_output = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool_output)

Rusage = collections.namedtuple("Rusage", "ru_utime ru_stime")
RU = Rusage(0.5, 0.25)  # 0.75 s of the generator's CPU


def read(name):
    with open(os.path.join(OUT, name)) as f:
        return f.read()


def assert_clean_run(t, r, completed, elapsed, rate):
    """An http result with no failure: its counts, time and rate."""
    t.assertEqual((r["mode"], r["completed"], r["failed"], r["failed_by"]),
                  ("http", completed, 0, {}))
    t.assertAlmostEqual(r["elapsed"], elapsed)
    t.assertAlmostEqual(r["rate"], rate)


class ToMs(unittest.TestCase):
    def test_units(self):
        self.assertAlmostEqual(tool_output.to_ms("151.00us"), 0.151)
        self.assertAlmostEqual(tool_output.to_ms("2.04ms"), 2.04)
        self.assertAlmostEqual(tool_output.to_ms("1.50s"), 1500.0)
        self.assertAlmostEqual(tool_output.to_ms("2.00m"), 120000.0)
        self.assertIsNone(tool_output.to_ms("-nan%"))
        self.assertIsNone(tool_output.to_ms("12"))


class Wrk(unittest.TestCase):
    def test_hello(self):
        r = tool_output.parse_wrk(read("wrk-hello.txt"), RU)
        assert_clean_run(self, r, 79219, 2.0, 39545.59)
        lat = r["latency_ms"]
        self.assertAlmostEqual(lat["p50"], 0.151)    # 151.00us
        self.assertAlmostEqual(lat["p90"], 29.67)    # 29.67ms
        self.assertAlmostEqual(lat["p99"], 181.38)
        self.assertAlmostEqual(lat["mean"], 10.77)   # Latency Avg
        self.assertAlmostEqual(lat["max"], 207.84)   # Latency Max, not Stdev
        self.assertIsNone(lat["p999"])               # wrk has no 99.9 %
        self.assertAlmostEqual(r["cpu"]["user_s"], 0.5)
        self.assertAlmostEqual(r["cpu"]["sys_s"], 0.25)
        self.assertAlmostEqual(r["cpu"]["us_per_op"], 0.75e6 / 79219)

    def test_non_2xx_are_failures(self):
        r = tool_output.parse_wrk(read("wrk-404.txt"), RU)
        self.assertEqual(r["completed"], 0)          # 86890 requests, 86890 of them 404
        self.assertEqual(r["failed"], 86890)
        self.assertEqual(r["failed_by"], {"status": 86890})
        self.assertAlmostEqual(r["elapsed"], 2.12)
        self.assertAlmostEqual(r["rate"], 40892.68)
        self.assertAlmostEqual(r["latency_ms"]["p50"], 0.143)
        self.assertAlmostEqual(r["latency_ms"]["p90"], 2.04)
        self.assertEqual(r["cpu"]["us_per_op"], 0)   # no good request to share it

    def test_socket_errors(self):
        r = tool_output.parse_wrk(read("wrk-timeout.txt"), None)
        self.assertEqual(r["failed_by"], {"timeout": 8})  # the zero counts are left out
        self.assertEqual(r["failed"], 8)
        self.assertEqual(r["completed"], 8)
        self.assertAlmostEqual(r["elapsed"], 3.01)
        self.assertAlmostEqual(r["rate"], 2.66)
        self.assertEqual(r["latency_ms"]["p99"], 0.0)     # "0.00us"
        self.assertEqual(r["cpu"], {"user_s": 0.0, "sys_s": 0.0, "us_per_op": 0.0})

    def test_refused(self):
        r = tool_output.parse_wrk(read("wrk-refused.txt"), RU)
        self.assertEqual((r["completed"], r["elapsed"], r["rate"]), (0, 0, 0))
        self.assertEqual(r["latency_ms"], {"p50": None, "p90": None, "p99": None,
                                           "mean": None, "max": None, "p999": None})


class Ab(unittest.TestCase):
    def test_hello(self):
        r = tool_output.parse_ab(read("ab-hello.txt"), RU)
        assert_clean_run(self, r, 83971, 2.0, 41985.23)
        lat = r["latency_ms"]
        self.assertEqual((lat["p50"], lat["p90"], lat["p99"]), (0.0, 0.0, 1.0))  # whole ms
        self.assertEqual(lat["max"], 36.0)           # the 100% line, not the 95% or 98%
        self.assertAlmostEqual(lat["mean"], 0.238)   # the first "Time per request"
        self.assertIsNone(lat["p999"])
        self.assertAlmostEqual(r["cpu"]["us_per_op"], 0.75e6 / 83971)

    def test_non_2xx_are_failures(self):
        r = tool_output.parse_ab(read("ab-404.txt"), RU)
        self.assertEqual(r["completed"], 0)          # 137654 complete, all of them 404
        self.assertEqual(r["failed"], 137654)
        self.assertEqual(r["failed_by"], {"status": 137654})
        self.assertAlmostEqual(r["rate"], 68826.17)
        self.assertEqual(r["latency_ms"]["max"], 86.0)
        self.assertAlmostEqual(r["latency_ms"]["mean"], 0.145)

    def test_refused(self):
        r = tool_output.parse_ab(read("ab-refused.txt"), RU)
        self.assertEqual((r["completed"], r["failed"], r["elapsed"], r["rate"]), (0, 0, 0, 0))
        self.assertEqual(set(r["latency_ms"].values()), {None})


if __name__ == "__main__":
    unittest.main()
