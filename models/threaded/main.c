/* chat-threaded: a thread per connection, taken from a pool.
 *
 * How it works, in the order this file sets it up:
 *
 *  1. The main thread only accepts. Each accepted connection goes into a
 *     bounded queue; a pool of worker threads takes them one at a time and
 *     serves each to the end with ordinary blocking calls (serve.c).
 *  2. A worker that waits — for a slow client, a /sleep, an upstream — just
 *     blocks, and the kernel runs another thread. That is the appeal: code
 *     that reads top to bottom. The cost is that every waiting connection
 *     holds a whole thread, stack and all.
 *  3. So the pool size is the concurrency: with 64 workers, the 65th
 *     connection waits in the queue until one finishes — and a WebSocket
 *     never finishes while its user is chatting. When the queue is full
 *     too, new connections get 503 and are closed.
 *  4. --threads 0 drops the pool for a new thread per connection, without
 *     bound: nothing waits, until the machine runs out of threads (pid_max,
 *     memory for stacks) — the C10K problem in its original form.
 *
 * Defaults: 64 workers (enough to keep 2 cores busy through blocking calls
 * and to show the limit with a modest load; Apache's worker MPM uses 25 per
 * child) and a queue of 1024 (a second of backlog at a few hundred
 * requests/s, bounded so that overload is refused, not hoarded).
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "backplane.h"
#include "blocking.h"
#include "gil.h"
#include "net.h"
#include "pool.h"
#include "proc_memory.h"
#include "redis_epoll.h"
#include "refuser.h"
#include "threaded.h"
#include "stop_signal.h"
#include "timing.h"

struct app app;
atomic_uint live_conns;
static struct pool *pool;

static void stats(struct app *a, struct stats_view *v)
{
    proc_stats(a, v); /* memory; threads and processes are the pool's */
    struct pool_stats s = pool_stats(pool);
    v->threads = (long)s.threads;
    v->processes = 1;
    /* A WebSocket holds its worker for as long as it is open: `busy` at the
     * pool size means the next chatter waits in the queue. */
    snprintf(v->extra, sizeof v->extra, "\"pool\":%u,\"busy\":%u,\"queued\":%u",
             app.cfg.threads, s.busy, s.queued);
}

/* --redis: the room is one server's replica of a room shared through Redis.
 * One thread drives the backplane's connections — the process's one
 * subscriber — and applies what comes back to the room, under its lock, as
 * any worker would; workers only queue what their members do and poke it. */
static struct redis_epoll *bp_loop;
static struct backplane *bp;
static pthread_t bp_thread;
static atomic_bool bp_stop;

static void *backplane_main(void *arg)
{
    (void)arg;
    struct pollfd fds[2] = {{redis_epoll_fd(bp_loop), POLLIN, 0},
                            {backplane_wake_fd(bp), POLLIN, 0}};
    while (!atomic_load(&bp_stop)) {
        if (poll(fds, 2, BACKPLANE_TICK_MS) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            redis_epoll_dispatch(bp_loop);
        if (fds[1].revents)
            backplane_flush(bp);
        backplane_tick(bp);
    }
    return NULL;
}

static int backplane_start(void)
{
    char err[256];
    bp_loop = redis_epoll_new();
    if (!bp_loop)
        return -1;
    bp = backplane_new(app.cfg.redis, app.room, &(struct backplane_loop){redis_epoll_attach, bp_loop},
                       true, err, sizeof err);
    if (!bp) {
        fprintf(stderr, "chat-threaded: %s\n", err);
        return -1;
    }
    return pthread_create(&bp_thread, NULL, backplane_main, NULL) == 0 ? 0 : -1;
}

static void backplane_stop(void)
{
    if (!bp)
        return;
    atomic_store(&bp_stop, true);
    pthread_join(bp_thread, NULL);
    backplane_free(bp);
    redis_epoll_free(bp_loop);
}

/* Wait for the workers, at most until the grace period ends; then make the
 * rest give up (sleeps wake, curl aborts, /cpu stops) and wait for that,
 * briefly. A worker still busy after that is inside a call that cannot be
 * interrupted (one PBKDF2 of a users-file record with millions of
 * iterations), or one of thousands still waiting for a core to run its
 * exit: the contract says drop it, so it is not joined. Returns how many
 * were dropped; the process exits with them still running. */
static unsigned stop_workers(void)
{
    pool_stop(pool);
    wake_all_workers();
    uint64_t end = atomic_load(&blocking_deadline_ms);
    while (pool_stats(pool).threads > 0 && app_now_ms() < end)
        poll(NULL, 0, 20); /* re-nudge: a worker may have been between checks */
    atomic_store(&blocking_hard_stop, true);
    action_cancel_all();
    wake_all_workers();
    end = app_now_ms() + ABANDON_AFTER_MS;
    while (pool_stats(pool).threads > 0 && app_now_ms() < end)
        poll(NULL, 0, 20);
    unsigned left = pool_stats(pool).threads;
    if (left == 0)
        pool_join(pool);
    return left;
}

int main(int argc, char **argv)
{
    int rc = app_init(&app, "threaded", argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;

    /* Signals: every thread inherits this mask. SIGINT/SIGTERM are read by
     * the main thread from a signalfd; SIGUSR1 is the workers' wake-up, let
     * through only inside their ppoll. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    serve_init();
    sigdelset(&mask, SIGUSR1);
    int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);

    app_set_room(&app, room_new(&threaded_sink, true));
    app.stats = stats;
    int listener = net_listen(&app.cfg, "threaded");
    if (sigfd < 0 || !app.room || listener < 0)
        return 1;
    if (app.cfg.redis && backplane_start() < 0)
        return 1;
    pool = pool_new(app.cfg.threads, app.cfg.queue, serve_connection, NULL);
    if (!pool || refuser_start() < 0) {
        fprintf(stderr, "chat-threaded: cannot start worker threads\n");
        return 1;
    }

    struct pollfd fds[2] = {{listener, POLLIN, 0}, {sigfd, POLLIN, 0}};
    uint64_t trimmed = app_now_ms();
    while (!atomic_load(&blocking_stopping)) {
        if (poll(fds, 2, 1000) < 0 && errno != EINTR)
            break;
        /* Give freed heap pages back once a second, as chat-async does (see
         * its main.c): RSS should show what the connections hold. */
        if (app_now_ms() - trimmed >= 1000) {
            malloc_trim(0);
            trimmed = app_now_ms();
        }
        if (fds[1].revents & POLLIN) {
            /* --redis: a leave published a moment ago must still reach the
             * members here, before the workers start closing them. */
            uint64_t settle_end = app_now_ms() + BACKPLANE_SETTLE_MS;
            while (bp && !backplane_settled(bp) && app_now_ms() < settle_end)
                poll(NULL, 0, 5);
            atomic_store(&blocking_deadline_ms, app_now_ms() + SHUTDOWN_GRACE_MS);
            atomic_store(&blocking_stopping, true);
            stop_signal_taken(); /* never read: it stays pending anyway */
            break;
        }
        if (!(fds[0].revents & POLLIN))
            continue;
        int fd = net_accept(listener);
        if (fd < 0)
            continue;
        /* --max-conns, or every worker busy and the queue full: say so. */
        if (atomic_load(&live_conns) >= app.cfg.max_conns) {
            refuser_add(fd, app_busy_response(&app));
            continue;
        }
        atomic_fetch_add(&live_conns, 1);
        if (pool_submit(pool, fd) < 0) {
            atomic_fetch_sub(&live_conns, 1);
            refuser_add(fd, app_busy_response(&app));
        }
    }
    close(listener);
    room_close(app.room); /* everyone is leaving: no N^2 leaves */
    unsigned dropped = stop_workers();
    if (dropped) {
        /* Those workers still read the room, the users and their
         * connections, and may be inside OpenSSL: nothing is freed, and
         * _exit, not exit, ends them with the process — exit() would run
         * OpenSSL's own cleanup under a worker still hashing with it. */
        fprintf(stderr, "chat-threaded: %u workers still busy at the deadline: dropped\n", dropped);
        pool_abandon(pool);
        backplane_stop();
        fflush(NULL);
        _exit(0);
    }
    backplane_stop(); /* sends the leaves of room_close */
    refuser_stop();
    pool_free(pool);
    close(sigfd);
    room_free(app.room);
    app_free(&app);
    return 0;
}
