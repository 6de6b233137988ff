/* An HDR-style latency histogram: log-linear buckets, fixed size.
 *
 * Values (microseconds) are bucketed by their power of two, and each power
 * of two is split into HIST_SUB linear sub-buckets, so every recorded value
 * is known to within 1/HIST_SUB of itself (1.6 % with 64): exact enough for
 * p99.9, and recording is a few instructions with no allocation. Values up
 * to 2^HIST_TOP us (about 18 hours) are kept; larger ones count as the max.
 */
#ifndef C10K_HIST_H
#define C10K_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_TOP 36
/* a row of HIST_SUB for values below HIST_SUB, then one per power of two */
#define HIST_BUCKETS ((HIST_TOP - HIST_SUB_BITS + 2) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t min, max;
    double sum;
    uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t value_us);
void hist_merge(struct hist *into, const struct hist *from);
/* The value at quantile q (0..1): the upper edge of the bucket holding it,
 * clamped to [min, max], so it never reports less than a real sample. */
uint64_t hist_quantile(const struct hist *h, double q);
double hist_mean(const struct hist *h);

#endif
