/* The worker pool behind chat-threaded, without sockets: items are ints. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include "pool.h"

/* Items block on a gate until the test opens it, so "every worker busy" is a
 * state the test controls, not a timing guess. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static unsigned entered;
static atomic_int served[256];

static void serve_gated(int item, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_lock);
    entered++;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    atomic_fetch_add(&served[item], 1);
}

static void wait_entered(unsigned n)
{
    pthread_mutex_lock(&gate_lock);
    while (entered < n)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

Test(pool, full_queue_refuses_and_nothing_is_lost)
{
    struct pool *p = pool_new(2, 3, serve_gated, NULL);
    cr_assert_not_null(p);
    cr_assert_eq(pool_submit(p, 0), 0);
    cr_assert_eq(pool_submit(p, 1), 0);
    wait_entered(2); /* both workers busy */
    for (int i = 2; i < 5; i++)
        cr_assert_eq(pool_submit(p, i), 0, "queue slot %d", i);
    struct pool_stats st = pool_stats(p);
    cr_assert_eq(st.busy, 2);
    cr_assert_eq(st.queued, 3);
    cr_assert_eq(st.threads, 2);
    cr_assert_eq(pool_submit(p, 5), -1, "workers busy and queue full: refused");
    open_gate();
    pool_stop(p);
    pool_join(p);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(atomic_load(&served[i]), 1, "item %d served exactly once", i);
    cr_assert_eq(atomic_load(&served[5]), 0);
    cr_assert_eq(pool_submit(p, 6), -1, "a stopped pool takes nothing");
    pool_free(p);
}

Test(pool, zero_queue_still_hands_over_to_idle_workers)
{
    struct pool *p = pool_new(3, 0, serve_gated, NULL);
    /* Until all three are waiting, a hand-over may be refused; wait for it. */
    while (pool_stats(p).threads < 3)
        sched_yield();
    for (;;) { /* the workers reach their wait on their own time */
        struct pool_stats s = pool_stats(p);
        if (s.busy == 0 && s.queued == 0 && pool_submit(p, 10) == 0)
            break;
        sched_yield();
    }
    wait_entered(1);
    open_gate();
    pool_stop(p);
    pool_join(p);
    cr_assert_eq(atomic_load(&served[10]), 1);
    pool_free(p);
}

Test(pool, stop_drains_the_queue)
{
    struct pool *p = pool_new(1, 100, serve_gated, NULL);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(pool_submit(p, 100 + i), 0);
    pool_stop(p);
    open_gate();
    pool_join(p);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(atomic_load(&served[100 + i]), 1, "item %d", 100 + i);
    pool_free(p);
}

Test(pool, thread_per_item_without_a_pool)
{
    struct pool *p = pool_new(0, 0, serve_gated, NULL);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(pool_submit(p, 200 + i), 0);
    wait_entered(20); /* twenty items at once: twenty threads */
    cr_assert_eq(pool_stats(p).threads, 20);
    open_gate();
    pool_stop(p);
    pool_join(p);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(atomic_load(&served[200 + i]), 1);
    cr_assert_eq(pool_stats(p).threads, 0);
    pool_free(p);
}
