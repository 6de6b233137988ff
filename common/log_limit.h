/* A log line per cause, not per occurrence: input from outside the process
 * that is refused over and over must not flood stderr (or the disk behind
 * it). The first occurrence is logged at once; later ones at most once per
 * interval, saying how many were held back meanwhile. */
#ifndef C10K_LOG_LIMIT_H
#define C10K_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct log_limit {
    uint64_t next_ms;   /* no line before this */
    unsigned long held; /* occurrences since the last line */
};

/* An occurrence at now_ms: true if it is to be logged, with *held set to
 * the occurrences not logged since the last line. */
bool log_limit_pass(struct log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                    unsigned long *held);

#endif
