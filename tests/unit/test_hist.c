/* chatbench's latency histogram (bench/chatbench/hist.h) against exact
 * answers, and the open-loop schedule of `chatbench http -r` (http_sched.h).
 *
 * Every reference is computed independently of the code under test: the
 * quantiles from a sorted copy of the samples with integer nearest-rank
 * arithmetic, the schedule from whole-ns periods.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "http_sched.h"

/* ---- samples: a fixed-seed PRNG, so a failure reproduces ---- */

static uint64_t rng_state;

static uint64_t rng(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n) { return rng() % n; }

/* Uniform over 0..99 999 us: every sub-bucket width up to 2^11. */
static uint64_t gen_uniform(void) { return below(100000); }

/* Exponential-ish: a uniform mantissa scaled by a geometric power of two
 * (P(k) = 2^-(k+1)), so most samples are small and the tail spans many
 * powers of two, as latencies do. No libm needed. */
static uint64_t gen_expish(void)
{
    unsigned k = (unsigned)__builtin_ctzll(rng() | (1ull << 20));
    return below(1024) << k;
}

/* Bimodal: 90 % near 200 us (a fast path), 10 % near 40 ms (a slow one):
 * p90 and p99 fall on either side of the gap. */
static uint64_t gen_bimodal(void)
{
    return below(10) ? 150 + below(100) : 35000 + below(10000);
}

/* Log-uniform over 0 .. 2^30: every power of two gets its share. */
static uint64_t gen_loguniform(void) { return below(1ull << below(31)); }

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Quantiles in per mille, so the reference rank is exact integer math. */
static const unsigned qs_pm[] = {500, 900, 990, 999, 1000};

/* Record n samples of gen, then check every quantile against the sorted
 * copy: never below the true nearest-rank value (it reports a bucket's
 * upper edge) and at most 1/64 of it above (the bucket width). */
static void check_against_sorted(uint64_t (*gen)(void), size_t n, uint64_t seed)
{
    rng_state = seed;
    uint64_t *v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    struct hist h;
    hist_init(&h);
    for (size_t i = 0; i < n; i++) {
        v[i] = gen();
        hist_record(&h, v[i]);
    }
    qsort(v, n, sizeof *v, cmp_u64);
    cr_assert_eq(h.count, n);
    cr_assert_eq(h.min, v[0], "min %llu, want %llu", (unsigned long long)h.min,
                 (unsigned long long)v[0]);
    cr_assert_eq(h.max, v[n - 1], "max %llu, want %llu", (unsigned long long)h.max,
                 (unsigned long long)v[n - 1]);
    cr_assert_eq(hist_quantile(&h, 0), v[0]);
    for (size_t i = 0; i < sizeof qs_pm / sizeof qs_pm[0]; i++) {
        size_t rank = (n * qs_pm[i] + 999) / 1000; /* ceil(q n), 1-based */
        uint64_t exact = v[rank - 1];
        uint64_t got = hist_quantile(&h, qs_pm[i] / 1000.0);
        cr_assert_geq(got, exact, "q %.3f of %zu: %llu below the exact %llu", qs_pm[i] / 1000.0,
                      n, (unsigned long long)got, (unsigned long long)exact);
        cr_assert_leq(got - exact, exact / 64, "q %.3f of %zu: %llu, exact %llu: more than 1/64 above",
                      qs_pm[i] / 1000.0, n, (unsigned long long)got, (unsigned long long)exact);
    }
    free(v);
}

Test(hist, quantiles_uniform)
{
    check_against_sorted(gen_uniform, 5000, 1);
    check_against_sorted(gen_uniform, 4099, 2);
}

Test(hist, quantiles_exponentialish)
{
    check_against_sorted(gen_expish, 5000, 3);
    check_against_sorted(gen_expish, 4099, 4);
}

Test(hist, quantiles_bimodal)
{
    check_against_sorted(gen_bimodal, 5000, 5);
    check_against_sorted(gen_bimodal, 4099, 6);
}

Test(hist, quantiles_loguniform)
{
    check_against_sorted(gen_loguniform, 5000, 7);
    check_against_sorted(gen_loguniform, 4099, 8);
}

/* Merging two histograms must be indistinguishable from having recorded
 * everything into one: the bucket counts, count, sum, min and max. */
static void assert_same(const struct hist *a, const struct hist *b)
{
    cr_assert_eq(a->count, b->count);
    cr_assert_eq(a->min, b->min);
    cr_assert_eq(a->max, b->max);
    cr_assert_eq(a->sum, b->sum); /* integers far below 2^53: exact in any order */
    cr_assert(memcmp(a->b, b->b, sizeof a->b) == 0, "bucket counts differ");
    for (size_t i = 0; i < sizeof qs_pm / sizeof qs_pm[0]; i++)
        cr_assert_eq(hist_quantile(a, qs_pm[i] / 1000.0), hist_quantile(b, qs_pm[i] / 1000.0));
}

Test(hist, merge_equals_recording_all)
{
    struct hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    rng_state = 42;
    /* Different ranges on each side, so min comes from one and max from
     * the other. */
    for (int i = 0; i < 3000; i++) {
        uint64_t x = gen_bimodal(), y = 10 + gen_loguniform();
        hist_record(&a, x);
        hist_record(&b, y);
        hist_record(&all, x);
        hist_record(&all, y);
    }
    hist_merge(&a, &b);
    assert_same(&a, &all);
}

Test(hist, merge_with_empty)
{
    struct hist empty, h, copy;
    hist_init(&empty);
    hist_init(&h);
    for (uint64_t v = 100; v < 200; v++)
        hist_record(&h, v);
    copy = h;
    hist_merge(&h, &empty); /* nothing changes, min above all: not 0 */
    assert_same(&h, &copy);
    hist_merge(&empty, &h); /* into an empty one: min from the other */
    assert_same(&empty, &copy);
    cr_assert_eq(empty.min, 100);
}

Test(hist, empty_returns_zero)
{
    struct hist h;
    hist_init(&h);
    cr_assert_eq(h.count, 0);
    for (size_t i = 0; i < sizeof qs_pm / sizeof qs_pm[0]; i++)
        cr_assert_eq(hist_quantile(&h, qs_pm[i] / 1000.0), 0);
    cr_assert_eq(hist_quantile(&h, 0), 0);
    cr_assert_eq(hist_mean(&h), 0);
}

/* Below HIST_SUB each value has a bucket of its own: quantiles are exact. */
Test(hist, values_0_to_63_exact)
{
    struct hist all;
    hist_init(&all);
    for (uint64_t v = 0; v < 64; v++) {
        struct hist one;
        hist_init(&one);
        hist_record(&one, v);
        cr_assert_eq(hist_quantile(&one, 0.5), v);
        cr_assert_eq(hist_quantile(&one, 1.0), v);
        hist_record(&all, v);
        hist_record(&all, v);
    }
    /* Each value twice: the rank 2(v+1) sample is v exactly; k/64 is exact
     * in binary, so the rank is too. */
    for (uint64_t v = 0; v < 64; v++)
        cr_assert_eq(hist_quantile(&all, (double)(v + 1) / 64), v, "q %llu/64",
                     (unsigned long long)v + 1);
    cr_assert_eq(hist_mean(&all), 31.5);
}

/* Values from 2^HIST_TOP up are not resolved any more: they share the last
 * bucket, and the top quantile must still be the real max. The histogram
 * sits in a struct with a guard after it, so a write past its buckets is a
 * failed assertion, not silent memory corruption. */
struct guarded {
    struct hist h;
    uint64_t guard[64];
};

static void check_huge(uint64_t huge)
{
    static struct guarded g; /* 16 KiB: not on Criterion's stack */
    memset(&g, 0, sizeof g);
    hist_init(&g.h);
    hist_record(&g.h, 63); /* exact (a bucket of its own): q 0.5 must be it */
    hist_record(&g.h, huge);
    for (size_t i = 0; i < sizeof g.guard / sizeof g.guard[0]; i++)
        cr_assert_eq(g.guard[i], 0, "%llu was written %zu words past the buckets",
                     (unsigned long long)huge, i + 1);
    cr_assert_eq(g.h.b[HIST_BUCKETS - 1], 1, "%llu is not in the top bucket",
                 (unsigned long long)huge);
    cr_assert_eq(g.h.max, huge);
    cr_assert_eq(g.h.count, 2);
    cr_assert_eq(hist_quantile(&g.h, 1.0), huge, "q 1.0 of {63, %llu} is %llu",
                 (unsigned long long)huge, (unsigned long long)hist_quantile(&g.h, 1.0));
    cr_assert_eq(hist_quantile(&g.h, 0.5), 63);
}

Test(hist, huge_values_land_in_top_and_max_exact)
{
    check_huge((1ull << HIST_TOP) + 5); /* the first power of two not kept */
    check_huge((1ull << 40) + 12345);
    check_huge(UINT64_MAX);
}

Test(hist, largest_kept_value_within_1_64)
{
    struct hist h;
    hist_init(&h);
    uint64_t v = (1ull << HIST_TOP) - 1000;
    hist_record(&h, 1);
    hist_record(&h, v);
    hist_record(&h, v);
    uint64_t got = hist_quantile(&h, 0.5);
    cr_assert_geq(got, v);
    cr_assert_leq(got - v, v / 64);
}

/* ---- the open-loop schedule ---- */

/* Whole-ns periods: request i is due at start + i * period exactly, so the
 * count steps from i to i + 1 at that very ns and not one before. */
static void check_period(double rate, uint64_t period)
{
    const uint64_t start = 123456789;
    cr_assert_eq(http_due_count(start, rate, 0), 0);
    cr_assert_eq(http_due_count(start, rate, start - 1), 0);
    uint64_t is[] = {0, 1, 2, 3, 999, 1000, 123457, 1000000, 1234567891};
    for (size_t k = 0; k < sizeof is / sizeof is[0]; k++) {
        uint64_t i = is[k], at = start + i * period;
        cr_assert_eq(http_due_ns(start, rate, i), at, "rate %g: request %llu", rate,
                     (unsigned long long)i);
        cr_assert_eq(http_due_count(start, rate, at), i + 1, "rate %g at request %llu's due time",
                     rate, (unsigned long long)i);
        if (i > 0)
            cr_assert_eq(http_due_count(start, rate, at - 1), i, "rate %g 1 ns before request %llu",
                         rate, (unsigned long long)i);
        cr_assert_eq(http_due_count(start, rate, at + period - 1), i + 1);
    }
}

Test(sched, whole_ns_periods)
{
    check_period(1, 1000000000);
    check_period(1000, 1000000);
    check_period(20000, 50000);
    check_period(1e6, 1000);
    check_period(0.5, 2000000000);
    check_period(1e8, 10); /* HTTP_RATE_MAX */
}

/* 3/s: periods of 333 333 333.3 ns; request i is due at floor(i * 1e9 / 3). */
Test(sched, fractional_period)
{
    const uint64_t s = 5;
    cr_assert_eq(http_due_count(s, 3, s), 1);
    cr_assert_eq(http_due_count(s, 3, s + 333333332), 1);
    cr_assert_eq(http_due_count(s, 3, s + 333333333), 2);
    cr_assert_eq(http_due_count(s, 3, s + 666666665), 2);
    cr_assert_eq(http_due_count(s, 3, s + 666666666), 3);
    cr_assert_eq(http_due_count(s, 3, s + 999999999), 3);
    cr_assert_eq(http_due_count(s, 3, s + 1000000000), 4);
    /* 7 per s over an hour: no drift from summing rounded periods. */
    cr_assert_eq(http_due_count(s, 7, s + 3600 * 1000000000ull - 1), 7 * 3600);
    cr_assert_eq(http_due_count(s, 7, s + 3600 * 1000000000ull), 7 * 3600 + 1);
}

/* The count and the due times agree at every step, at awkward rates. */
Test(sched, count_agrees_with_due_times)
{
    const double rates[] = {HTTP_RATE_MIN, 0.3, 7, 333.3, 20000, 29999.7, 1234567.8};
    for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
        uint64_t prev = 0;
        for (uint64_t i = 0; i < 5000; i++) {
            uint64_t due = http_due_ns(1000, rates[k], i);
            cr_assert_geq(due, prev, "rate %g: due times go back", rates[k]);
            cr_assert_eq(http_due_count(1000, rates[k], due), i + 1, "rate %g, request %llu",
                         rates[k], (unsigned long long)i);
            if (due > prev || i == 0)
                cr_assert_eq(http_due_count(1000, rates[k], due - 1), i);
            prev = due;
        }
    }
}

Test(sched, no_rate_no_schedule)
{
    cr_assert_eq(http_due_count(0, 0, 1000000000), 0);
    cr_assert_eq(http_due_count(0, -5, 1000000000), 0);
}
