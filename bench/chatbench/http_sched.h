/* The open-loop schedule of `chatbench http -r RATE`.
 *
 * Pure functions of (start, rate, i or now), inline in a header so that the
 * unit tests can check every boundary without a clock and without linking
 * the libuv half of chatbench (the unit-tests binary links only
 * chatbench_hist).
 */
#ifndef C10K_HTTP_SCHED_H
#define C10K_HTTP_SCHED_H

#include <stdint.h>

/* Rates outside this range are refused by run_http: below it a run of any
 * length sends nothing, above it no loopback test can keep up, and within it
 * i * 1e9 / rate stays far from overflowing a uint64_t ns clock. */
#define HTTP_RATE_MIN 0.001
#define HTTP_RATE_MAX 1e8

/* Request i (counted from 0) falls due at start + floor(i * 1e9 / rate) ns.
 * Long double: i * 1e9 is exact up to 2^64 on x86-64, so for rates whose
 * period is a whole number of ns (1000, 20000, 1e6 ...) every due time is
 * exact, however long the run. */
static inline uint64_t http_due_ns(uint64_t start_ns, double rate, uint64_t i)
{
    long double off = (long double)i * 1e9L / (long double)rate;
    return off >= 1.8e19L ? UINT64_MAX : start_ns + (uint64_t)off;
}

/* How many requests are due at at_ns: the number of i with
 * http_due_ns(start_ns, rate, i) <= at_ns, so request 0 is due at start_ns
 * itself. 0 before start_ns or without a rate. */
static inline uint64_t http_due_count(uint64_t start_ns, double rate, uint64_t at_ns)
{
    if (!(rate > 0) || at_ns < start_ns)
        return 0;
    long double est = (long double)(at_ns - start_ns) * (long double)rate / 1e9L;
    uint64_t k = est >= 1.8e19L ? UINT64_MAX - 1 : (uint64_t)est + 1;
    /* The estimate rounds differently from http_due_ns near a boundary; the
     * answer is defined by http_due_ns, so step onto it (at most a step or
     * two either way). */
    while (k > 0 && http_due_ns(start_ns, rate, k - 1) > at_ns)
        k--;
    while (k < UINT64_MAX && http_due_ns(start_ns, rate, k) <= at_ns)
        k++;
    return k;
}

#endif
