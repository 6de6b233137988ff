#include "pidset.h"

#include <stdint.h>
#include <stdlib.h>

static unsigned home(const struct pidset *s, pid_t pid)
{
    /* Fibonacci hashing: pids come in runs, the multiply spreads them. */
    return (unsigned)(((uint32_t)pid * 2654435769u) >> 7) & (s->cap - 1);
}

static void put(struct pidset *s, pid_t pid)
{
    unsigned i = home(s, pid);
    while (s->slot[i])
        i = (i + 1) & (s->cap - 1);
    s->slot[i] = pid;
}

static bool grow(struct pidset *s)
{
    unsigned cap = s->cap ? s->cap * 2 : 256;
    pid_t *old = s->slot;
    unsigned oldcap = s->cap;
    s->slot = calloc(cap, sizeof *s->slot);
    if (!s->slot) {
        s->slot = old;
        return false;
    }
    s->cap = cap;
    for (unsigned i = 0; i < oldcap; i++)
        if (old[i])
            put(s, old[i]);
    free(old);
    return true;
}

bool pidset_add(struct pidset *s, pid_t pid)
{
    if (2 * (s->count + 1) > s->cap && !grow(s))
        return false;
    put(s, pid);
    s->count++;
    return true;
}

bool pidset_contains(const struct pidset *s, pid_t pid)
{
    if (!s->cap)
        return false;
    for (unsigned i = home(s, pid); s->slot[i]; i = (i + 1) & (s->cap - 1))
        if (s->slot[i] == pid)
            return true;
    return false;
}

bool pidset_remove(struct pidset *s, pid_t pid)
{
    if (!s->cap)
        return false;
    unsigned i = home(s, pid);
    while (s->slot[i] != pid) {
        if (!s->slot[i])
            return false;
        i = (i + 1) & (s->cap - 1);
    }
    /* Backward-shift deletion: pull later entries of the same run into the
     * hole, so that no lookup ever stops early at it (no tombstones). */
    for (unsigned j = (i + 1) & (s->cap - 1); s->slot[j]; j = (j + 1) & (s->cap - 1)) {
        unsigned h = home(s, s->slot[j]);
        /* Move slot j into the hole at i unless its home lies in (i, j]. */
        bool home_after_hole = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (!home_after_hole) {
            s->slot[i] = s->slot[j];
            i = j;
        }
    }
    s->slot[i] = 0;
    s->count--;
    return true;
}

void pidset_free(struct pidset *s)
{
    free(s->slot);
    *s = (struct pidset){0};
}
