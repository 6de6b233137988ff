/* chat-forked's set of live children (models/forked/pidset.c), against a
 * plain array kept alongside: random adds and removes, with the removals
 * that shift a probe run back into a hole (the one subtle part). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "../../models/forked/pidset.h"

Test(pidset, matches_an_array_through_random_adds_and_removes)
{
    enum { N = 20000 };
    static pid_t model[N];
    unsigned n = 0;
    struct pidset s = {0};
    srand(7);
    pid_t next = 300;
    for (int step = 0; step < 200000; step++) {
        if (n < N && (n == 0 || rand() % 3 != 0)) {
            /* pids come in runs, with gaps: like a busy machine's */
            next += 1 + (rand() % 4 == 0 ? rand() % 50 : 0);
            cr_assert(pidset_add(&s, next));
            model[n++] = next;
        } else {
            unsigned k = (unsigned)rand() % n;
            cr_assert(pidset_contains(&s, model[k]), "step %d: %d not found", step, model[k]);
            cr_assert(pidset_remove(&s, model[k]), "step %d: %d missing", step, model[k]);
            cr_assert_not(pidset_contains(&s, model[k]), "step %d: %d still found", step, model[k]);
            cr_assert_not(pidset_remove(&s, model[k]), "removed twice");
            model[k] = model[--n];
        }
        cr_assert_eq(s.count, n);
        cr_assert_leq(2 * s.count, s.cap);
        if (step % 9973 == 0)
            for (unsigned i = 0; i < n; i++)
                cr_assert(pidset_contains(&s, model[i]), "step %d: %d lost", step, model[i]);
    }
    unsigned walked = 0;
    for (unsigned i = 0; i < s.cap; i++)
        walked += s.slot[i] != 0;
    cr_assert_eq(walked, n, "the walk sees every member once");
    for (unsigned i = 0; i < n; i++)
        cr_assert(pidset_remove(&s, model[i]));
    cr_assert_eq(s.count, 0);
    cr_assert_not(pidset_remove(&s, 12345));
    pidset_free(&s);
}

Test(pidset, an_empty_set_finds_nothing)
{
    struct pidset s = {0};
    cr_assert_not(pidset_remove(&s, 1));
    pidset_free(&s);
}
