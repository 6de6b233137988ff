#!/usr/bin/env python3
"""bench/sampling.py's tree_cpu_s: the CPU of a server's process tree,
from /proc/PID/stat's clock ticks and, for a process of one thread,
/proc/PID/schedstat's nanoseconds (the larger of the two).

    python3 tests/bench/test_sampling.py      (or ctest -R bench-sampling)
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import sampling  # noqa: E402

TICK = 1.0 / sampling.CLK_TCK


class TreeCpu(unittest.TestCase):
    def with_proc(self, files):
        real = sampling.read
        sampling.read = lambda path, default=None: files.get(path, default)
        self.addCleanup(setattr, sampling, "read", real)

    def test_a_single_thread_counts_in_nanoseconds(self):
        # 10 000 children of 1 tick and a bit each: stat says 1 tick, the
        # run time was 1.9 ticks; summed, stat would lose 9 000 ticks.
        table = {1: (0, 0, 0, 1)}
        files = {}
        for pid in range(2, 10002):
            table[pid] = (1, 1, 0, 1)
            files["/proc/%d/schedstat" % pid] = "%d 0 0\n" % round(1.9 * TICK * 1e9)
        self.with_proc(files)
        self.assertAlmostEqual(sampling.tree_cpu_s(list(table), table), 10000 * 1.9 * TICK,
                               places=6)

    def test_the_larger_of_the_two(self):
        # A process whose other threads ended: stat holds their time too,
        # schedstat only the live thread's.
        table = {1: (0, 50, 0, 1)}
        self.with_proc({"/proc/1/schedstat": "%d 0 0\n" % round(20 * TICK * 1e9)})
        self.assertAlmostEqual(sampling.tree_cpu_s([1], table), 50 * TICK, places=6)

    def test_reaped_children_and_threads_stay_in_ticks(self):
        # cutime + cstime (30 ticks) are added once; a process of 4 threads
        # is read from stat alone (its schedstat is one thread's).
        table = {1: (0, 40, 30, 1), 2: (1, 70, 0, 4)}
        self.with_proc({"/proc/1/schedstat": "%d 0 0\n" % round(12.5 * TICK * 1e9),
                        "/proc/2/schedstat": "1 0 0\n"})
        self.assertAlmostEqual(sampling.tree_cpu_s([1, 2], table), (12.5 + 30 + 70) * TICK,
                               places=6)

    def test_no_schedstat_falls_back_to_ticks(self):
        table = {1: (0, 8, 0, 1)}
        self.with_proc({})
        self.assertAlmostEqual(sampling.tree_cpu_s([1], table), 8 * TICK, places=6)

    def test_the_real_proc_of_this_process(self):
        # On this machine's own /proc: a figure no smaller than stat's.
        table = sampling.proc_table()
        me = os.getpid()
        self.assertIn(me, table)
        self.assertGreaterEqual(sampling.tree_cpu_s([me], table) + 1e-9,
                                (table[me][1]) * TICK)


if __name__ == "__main__":
    unittest.main()
