/* The parent's set of live connection processes, by pid.
 *
 * Every reap looks a pid up and every shutdown walks them all. With a plain
 * array the lookup was a scan, and a shutdown of 10 000 children — each
 * reaped and looked up in turn — scanned 50 million entries on the core the
 * children needed for their own exits. Open addressing with linear probing:
 * O(1) to add, find and remove, and the walk is over one array. */
#ifndef C10K_FORKED_PIDSET_H
#define C10K_FORKED_PIDSET_H

#include <stdbool.h>
#include <sys/types.h>

struct pidset {
    pid_t *slot; /* 0: empty (no process has pid 0) */
    unsigned cap, count; /* cap: a power of two, kept at least twice count */
};

bool pidset_add(struct pidset *s, pid_t pid); /* false: out of memory */
bool pidset_remove(struct pidset *s, pid_t pid); /* false: not there */
bool pidset_contains(const struct pidset *s, pid_t pid);
void pidset_free(struct pidset *s);

/* Walk: for (unsigned i = 0; i < s->cap; i++) if (s->slot[i]) ... */

#endif
