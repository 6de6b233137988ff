/* chat-uring's worker pool: a few threads for the work that must not run
 * on the ring's thread (PBKDF2 password checks, and /cpu with --cpu-pool).
 *
 * The ring's thread never waits for a worker. A worker that finishes a job
 * puts it on the done list and adds 1 to an eventfd; the ring has a read of
 * that eventfd in flight all the time, so "a job is done" arrives as one
 * more completion among the sockets' (main.c, OP_POOL). This is libuv's
 * uv_queue_work / uv_async_send pair, built on the ring.
 *
 * Workers touch only their job's action (action_run), never a connection,
 * the room or the ring: one owner per connection (STYLE.md, habit 3).
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gil.h"
#include "uring.h"

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct pool_job *todo, **todo_tail;
    struct pool_job *done, **done_tail;
    unsigned busy;  /* queued or running */
    bool quit;
    int efd;
    unsigned nthreads;
    pthread_t threads[];
};

static void *worker(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->todo && !p->quit)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->quit)
            break;
        struct pool_job *job = p->todo;
        p->todo = job->next;
        if (!p->todo)
            p->todo_tail = &p->todo;
        pthread_mutex_unlock(&p->lock);

        /* A /cpu job holds the GIL while it computes (Python code in an
         * executor); a password hash does not, as hashlib releases it. */
        bool gil = job->a->kind == ACTION_CPU;
        if (gil)
            gil_acquire();
        action_run(job->a);
        if (gil)
            gil_release();

        pthread_mutex_lock(&p->lock);
        job->next = NULL;
        *p->done_tail = job;
        p->done_tail = &job->next;
        uint64_t one = 1;
        /* An eventfd write never blocks short of 2^64-1 pending. */
        if (write(p->efd, &one, sizeof one) < 0) {
            /* nothing to do: the counter cannot overflow here */
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct pool *pool_new(unsigned threads, int *eventfd_out)
{
    struct pool *p = calloc(1, sizeof *p + threads * sizeof(pthread_t));
    if (!p)
        return NULL;
    p->efd = eventfd(0, EFD_CLOEXEC);
    if (p->efd < 0) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->todo_tail = &p->todo;
    p->done_tail = &p->done;
    /* Workers inherit the caller's signal mask: main.c blocks SIGINT and
     * SIGTERM before this, so the signalfd on the ring sees them all. */
    for (; p->nthreads < threads; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) != 0)
            break;
    if (p->nthreads == 0) {
        close(p->efd);
        free(p);
        return NULL;
    }
    *eventfd_out = p->efd;
    return p;
}

int pool_submit(struct pool *p, struct pool_job *job)
{
    pthread_mutex_lock(&p->lock);
    job->next = NULL;
    *p->todo_tail = job;
    p->todo_tail = &job->next;
    p->busy++;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

struct pool_job *pool_take_done(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    struct pool_job *list = p->done;
    p->done = NULL;
    p->done_tail = &p->done;
    for (struct pool_job *j = list; j; j = j->next)
        p->busy--;
    pthread_mutex_unlock(&p->lock);
    return list;
}

unsigned pool_busy(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    unsigned n = p->busy;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void pool_free(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    close(p->efd);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
