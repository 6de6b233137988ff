#include "log_limit.h"

bool log_limit_pass(struct log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                    unsigned long *held)
{
    if (l->next_ms != 0 && now_ms < l->next_ms) {
        l->held++;
        return false;
    }
    *held = l->held;
    l->held = 0;
    l->next_ms = now_ms + interval_ms;
    return true;
}
