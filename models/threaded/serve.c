/* One connection, served start to finish by one worker thread.
 *
 * The worker does what a thread-per-connection server does: it waits in a
 * blocking call until its client has something for it, handles it, writes,
 * and waits again. /sleep sleeps in the worker, /search waits for curl in
 * the worker, /cpu computes in the worker: while it does, this thread serves
 * no one else, which is why the pool size is the limit of concurrency.
 *
 * The loop itself is the one chat-forked's children run too,
 * models/blocking/blocking.c:blocking_serve. What is this model's own is
 * how chat from other threads reaches the worker: the hooks below.
 *
 * Chat fan-out across threads — the design:
 *
 *   The room is shared by every worker, under the room's mutex. A message
 *   posted by one worker is encoded once, and, still under that mutex, the
 *   room hands the same bytes to every member's INBOX: a tiny queue per
 *   connection with its own mutex. Handing over never touches a socket, so
 *   a broadcast never blocks on a slow client while it holds the room lock.
 *
 *   Only the connection's own worker writes to its socket. It moves its
 *   inbox into its outbox and writes with non-blocking sends, then sleeps in
 *   ppoll() on "socket readable", "socket writable" (when output is
 *   pending) and "my inbox got something". The last one is a signal,
 *   SIGUSR1, sent with pthread_kill by whoever filled the inbox: it is
 *   blocked except inside ppoll, which unblocks it atomically, so a wake-up
 *   sent just before the worker sleeps stays pending instead of being lost.
 *   A signal costs no descriptor; an eventfd per connection would halve the
 *   connections the 20 000-descriptor limit allows.
 *
 *   A reader that stops reading fills its own outbox, not anyone else's:
 *   inbox + outbox bytes are counted at each delivery, and past 1 MiB the
 *   room cuts the member off. The deliverer (another thread) only marks the
 *   connection cut, drops its inbox and wakes it; the owner itself drops
 *   its unsent output and sends close 1008.
 *
 * --gil: the worker holds the global lock while it runs the core (parsing,
 * routing, the room) and drops it around every call that can block — ppoll,
 * read, write, sleep, curl, a password hash — as CPython does.
 */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "blocking.h"
#include "container_of.h"
#include "gil.h"
#include "stop_signal.h"
#include "net.h"
#include "threaded.h"
#include "timing.h"

struct tconn {
    struct conn conn;          /* the owner's alone */
    int fd;
    pthread_t thread;
    struct tconn *prev, *next; /* every live connection, for shutdown */
    pthread_mutex_t lock;      /* guards what follows */
    struct outq inbox;
    size_t out_bytes;          /* the outbox size as last published */
    bool cut, unblocked, sleeping, signalled;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tconn *registry;

void serve_init(void) { blocking_init(SIGUSR1); }

/* Under t->lock. */
static void wake_locked(struct tconn *t)
{
    if (t->sleeping && !t->signalled) {
        t->signalled = true;
        pthread_kill(t->thread, SIGUSR1);
    }
}

void wake_all_workers(void)
{
    pthread_mutex_lock(&registry_lock);
    /* Unconditionally: a worker inside a blocking action (a sleep) is not
     * "sleeping" in the inbox sense but must hear the news too. A spare
     * signal costs one spurious wake-up. The registry lock keeps each
     * thread alive (registered) while we signal it. */
    for (struct tconn *t = registry; t; t = t->next)
        pthread_kill(t->thread, SIGUSR1);
    pthread_mutex_unlock(&registry_lock);
}

/* --- the room's sink: runs on whichever thread is fanning out ---------- */

static struct tconn *tconn_of(struct room_member *m)
{
    return container_of(conn_of_member(m), struct tconn, conn);
}

static size_t sink_deliver(struct room_member *m, struct rbuf *ev)
{
    struct tconn *t = tconn_of(m);
    pthread_mutex_lock(&t->lock);
    size_t backlog = SIZE_MAX; /* out of memory counts as over the limit */
    if (outq_push(&t->inbox, rbuf_ref(ev)) == 0)
        backlog = t->inbox.bytes + t->out_bytes;
    wake_locked(t);
    pthread_mutex_unlock(&t->lock);
    return backlog;
}

static void sink_cut_off(struct room_member *m)
{
    struct tconn *t = tconn_of(m);
    pthread_mutex_lock(&t->lock);
    t->cut = true;
    outq_clear(&t->inbox);
    wake_locked(t);
    pthread_mutex_unlock(&t->lock);
}

/* A poster the room held back may go on: its own worker feeds the held
 * input, never the thread that drained the member it waited for. */
static void sink_unblock(struct room_member *m)
{
    struct tconn *t = tconn_of(m);
    pthread_mutex_lock(&t->lock);
    t->unblocked = true;
    wake_locked(t);
    pthread_mutex_unlock(&t->lock);
}

const struct room_sink threaded_sink = {
    .deliver = sink_deliver,
    .cut_off = sink_cut_off,
    .unblock = sink_unblock,
    .stopping = stop_signal_requested,
};

/* --- the worker's part of the blocking loop (blocking_serve) ----------- */

/* Move what other threads queued for us into our outbox. First in every
 * turn: events delivered before the shutdown (a leave, say) go out before
 * the close 1001, not after it. */
static void take_inbox(void *arg, struct conn *c)
{
    struct tconn *t = arg;
    pthread_mutex_lock(&t->lock);
    bool cut = t->cut, unblocked = t->unblocked;
    t->cut = t->unblocked = false;
    struct outq in = t->inbox;
    t->inbox = (struct outq){0};
    t->out_bytes += in.bytes; /* still waiting, now in the outbox: the 1 MiB rule counts it */
    pthread_mutex_unlock(&t->lock);
    /* Nothing may follow a close frame (RFC 6455 5.5.1): what was delivered
     * after ours was queued goes nowhere. */
    if (c->ws && c->ws->phase != WS_OPEN)
        outq_clear(&in);
    outq_splice(&c->out, &in);
    if (cut)
        conn_ws_cut_off(c);
    if (unblocked)
        conn_unblock(c);
}

/* After each write: the deliverers count what still waits in the outbox
 * towards the member's 1 MiB. */
static void publish_out_bytes(void *arg, struct conn *c, size_t before)
{
    struct tconn *t = arg;
    (void)before;
    pthread_mutex_lock(&t->lock);
    t->out_bytes = c->out.bytes;
    pthread_mutex_unlock(&t->lock);
}

/* The no-lost-wake-up handshake: say "asleep" only after checking the
 * inbox under the same lock the deliverers take. One who delivers after
 * this sees `sleeping` and signals; the signal stays pending until ppoll
 * lets it through. */
static bool may_sleep(void *arg)
{
    struct tconn *t = arg;
    pthread_mutex_lock(&t->lock);
    bool pending = !outq_empty(&t->inbox) || t->cut || t->unblocked;
    t->sleeping = !pending;
    pthread_mutex_unlock(&t->lock);
    return !pending;
}

static void woke(void *arg)
{
    struct tconn *t = arg;
    pthread_mutex_lock(&t->lock);
    t->sleeping = t->signalled = false;
    pthread_mutex_unlock(&t->lock);
}

static const struct blocking_hooks worker_hooks = {
    .take = take_inbox,
    .after_flush = publish_out_bytes,
    .may_sleep = may_sleep,
    .woke = woke,
};

static void registry_add(struct tconn *t)
{
    pthread_mutex_lock(&registry_lock);
    t->next = registry;
    if (registry)
        registry->prev = t;
    registry = t;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(struct tconn *t)
{
    pthread_mutex_lock(&registry_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        registry = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&registry_lock);
}

void serve_connection(int fd, void *arg)
{
    (void)arg;
    struct tconn *t = calloc(1, sizeof *t);
    if (!t) {
        close(fd);
        atomic_fetch_sub(&live_conns, 1);
        return;
    }
    t->fd = fd;
    t->thread = pthread_self();
    pthread_mutex_init(&t->lock, NULL);
    registry_add(t);
    struct conn *c = &t->conn;

    gil_acquire();
    conn_init(c, &app);
    net_conn_peer(c, t->fd);
    blocking_serve(fd, c, &worker_hooks, t);
    bool linger = c->close == CLOSE_FLUSHED && !conn_peer_done(c);
    conn_free(c); /* leaves the room: the others get our `leave` */
    gil_release();

    registry_remove(t);
    outq_clear(&t->inbox); /* after leaving: nobody delivers to us now */
    pthread_mutex_destroy(&t->lock);
    free(t);
    if (linger)
        net_linger_close(fd, atomic_load(&blocking_stopping) ? SHUTDOWN_LINGER_MS : CLOSE_LINGER_MS);
    else
        close(fd);
    atomic_fetch_sub(&live_conns, 1);
}
