#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t work;  /* an item was queued, or stopping */
    pthread_cond_t idle;  /* a thread ended (pool_join waits on it) */
    void (*serve)(int item, void *arg);
    void *arg;
    unsigned nthreads;    /* 0: a thread per item */
    pthread_t *tids;
    unsigned started;     /* pool threads actually running */
    int *ring;
    unsigned queue, cap, head, len;
    unsigned live, busy, waiting;
    bool stopping;
};

static void *worker(void *argp)
{
    struct pool *p = argp;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->len == 0 && !p->stopping) {
            p->waiting++;
            pthread_cond_wait(&p->work, &p->lock);
            p->waiting--;
        }
        if (p->len == 0)
            break; /* stopping, and the queue is drained */
        int item = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->len--;
        p->busy++;
        pthread_mutex_unlock(&p->lock);
        p->serve(item, p->arg);
        pthread_mutex_lock(&p->lock);
        p->busy--;
    }
    p->live--;
    pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct pool *pool_new(unsigned threads, unsigned queue, void (*serve)(int, void *), void *arg)
{
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    p->serve = serve;
    p->arg = arg;
    p->nthreads = threads;
    if (threads == 0)
        return p;
    p->queue = queue;
    p->cap = queue + threads; /* the queue proper, plus hand-overs to idle workers */
    p->ring = malloc(sizeof *p->ring * p->cap);
    p->tids = malloc(sizeof *p->tids * threads);
    if (!p->ring || !p->tids) {
        pool_free(p);
        return NULL;
    }
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->tids[i], NULL, worker, p) != 0)
            break;
        p->started++;
        p->live++;
    }
    pthread_mutex_unlock(&p->lock);
    if (p->started == 0) {
        pool_free(p);
        return NULL;
    }
    return p;
}

struct item_thread {
    struct pool *p;
    int item;
};

static void *item_thread(void *argp)
{
    struct item_thread *t = argp;
    struct pool *p = t->p;
    int item = t->item;
    free(t);
    p->serve(item, p->arg);
    pthread_mutex_lock(&p->lock);
    p->live--;
    p->busy--;
    pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int pool_submit(struct pool *p, int item)
{
    pthread_mutex_lock(&p->lock);
    int rc = -1;
    if (p->stopping) {
        /* refused */
    } else if (p->nthreads == 0) {
        struct item_thread *t = malloc(sizeof *t);
        pthread_attr_t attr;
        pthread_t tid;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (t) {
            *t = (struct item_thread){p, item};
            if (pthread_create(&tid, &attr, item_thread, t) == 0) {
                p->live++;
                p->busy++;
                rc = 0;
            } else {
                free(t);
            }
        }
        pthread_attr_destroy(&attr);
    } else if (p->len < p->queue + p->waiting) {
        /* Each waiting worker will take one item at once; `queue` more may
         * wait for a worker to become free. */
        p->ring[(p->head + p->len) % p->cap] = item;
        p->len++;
        pthread_cond_signal(&p->work);
        rc = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void pool_stop(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
}

void pool_join(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->live > 0)
        pthread_cond_wait(&p->idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->tids[i], NULL);
    p->started = 0;
}

void pool_abandon(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < p->started; i++)
        pthread_detach(p->tids[i]);
    p->started = 0;
    pthread_mutex_unlock(&p->lock);
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    free(p->ring);
    free(p->tids);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    free(p);
}

struct pool_stats pool_stats(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    struct pool_stats s = {p->live, p->busy, p->len};
    pthread_mutex_unlock(&p->lock);
    return s;
}
