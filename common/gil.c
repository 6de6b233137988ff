#include "gil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static bool enabled;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;        /* "released" */
static pthread_cond_t switch_cond = PTHREAD_COND_INITIALIZER; /* "taken" */
static bool locked;
static uint64_t switch_number; /* how many times the GIL changed hands */
static atomic_bool drop_request;

void gil_enable(void) { enabled = true; }
bool gil_enabled(void) { return enabled; }

static void deadline_in(struct timespec *ts, long us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += us * 1000;
    ts->tv_sec += ts->tv_nsec / 1000000000;
    ts->tv_nsec %= 1000000000;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void init_conds(void)
{
    /* Waits are timed on the monotonic clock so a clock change cannot turn
     * the 5 ms interval into minutes. */
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_destroy(&cond);
    pthread_cond_init(&cond, &a);
    pthread_condattr_destroy(&a);
}

void gil_acquire(void)
{
    if (!enabled)
        return;
    pthread_once(&once, init_conds);
    pthread_mutex_lock(&mutex);
    while (locked) {
        uint64_t seen = switch_number;
        struct timespec ts;
        deadline_in(&ts, GIL_INTERVAL_US);
        int rc = pthread_cond_timedwait(&cond, &mutex, &ts);
        /* A whole interval passed and nobody else got it either: ask the
         * holder to drop it at its next tick, as CPython does. */
        if (rc == ETIMEDOUT && locked && switch_number == seen)
            atomic_store(&drop_request, true);
    }
    locked = true;
    switch_number++;
    atomic_store(&drop_request, false);
    pthread_cond_signal(&switch_cond);
    pthread_mutex_unlock(&mutex);
}

void gil_release(void)
{
    if (!enabled)
        return;
    pthread_mutex_lock(&mutex);
    locked = false;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mutex);
}

void gil_tick(void)
{
    if (!enabled || !atomic_load_explicit(&drop_request, memory_order_relaxed))
        return;
    pthread_mutex_lock(&mutex);
    uint64_t seen = switch_number;
    locked = false;
    pthread_cond_signal(&cond);
    /* FORCE_SWITCHING: do not race the waiter for the lock we just dropped. */
    while (switch_number == seen && atomic_load(&drop_request))
        pthread_cond_wait(&switch_cond, &mutex);
    pthread_mutex_unlock(&mutex);
    gil_acquire();
}
