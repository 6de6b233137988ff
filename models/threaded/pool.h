/* A pool of worker threads fed from a bounded queue of connections.
 *
 * This is the part of chat-threaded that does not touch sockets, so it can
 * be tested on its own: items are plain ints (descriptors, in the server).
 *
 *   threads > 0  a fixed pool; up to `queue` items wait for a free worker;
 *                beyond that pool_submit refuses (the server answers 503).
 *   threads == 0 no pool: every item gets a new detached thread, without
 *                bound — "a thread per connection" — until the system
 *                refuses to make another (pid_max, memory).
 */
#ifndef C10K_POOL_H
#define C10K_POOL_H

#include <stdbool.h>

struct pool;

/* serve(item, arg) runs on a worker thread. NULL if no thread could start. */
struct pool *pool_new(unsigned threads, unsigned queue, void (*serve)(int item, void *arg),
                      void *arg);
/* Hand over an item: 0 if taken (queued or given to a new thread), -1 if the
 * queue is full, the pool is stopping, or no thread could be made. */
int pool_submit(struct pool *p, int item);
/* No more submits; idle workers exit; queued items are still served. */
void pool_stop(struct pool *p);
/* Wait until every worker (and every per-item thread) has finished. */
void pool_join(struct pool *p);
/* The process is about to _exit with workers still running (dropped at the
 * shutdown deadline): none will be joined, say so (ThreadSanitizer would
 * otherwise report each as a leaked thread). */
void pool_abandon(struct pool *p);
void pool_free(struct pool *p);

struct pool_stats {
    unsigned threads; /* live worker threads */
    unsigned busy;    /* of which serving an item */
    unsigned queued;  /* items waiting for a worker */
};
struct pool_stats pool_stats(struct pool *p);

#endif
