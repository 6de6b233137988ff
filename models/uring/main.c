/* chat-uring: the whole server on one thread, around one io_uring.
 *
 * chat-async is a *readiness* reactor: epoll says "this socket is ready",
 * and then the program does the read or the write itself, one system call
 * each. This model is a *completion* reactor, the tutorial's fifth I/O
 * model made real: we hand the kernel whole operations — receive into a
 * buffer, send these bytes, wake me at this time — in a shared submission
 * queue, and the kernel reports each one *done* in a completion queue. One
 * io_uring_enter() per turn of the loop submits everything the turn queued
 * (a whole chat fan-out) and waits for the next completions.
 *
 * How a turn goes (the loop in main):
 *
 *  1. Completions are read off the ring and dispatched by kind (uring.h:
 *     every request's user_data is the address of a `struct op` embedded
 *     in its owner). Bytes received go to the core's state machine
 *     (conn_feed), exactly as in chat-async; client_sync() then turns what
 *     the core wants into new requests.
 *  2. Before entering the kernel again, what the turn queued for writing
 *     becomes one send per client (flush_dirty_clients), closed clients the
 *     kernel is done with are freed, and the whole batch is submitted by
 *     the same io_uring_enter that waits.
 *
 * What liburing's docs and issue tracker taught, and how this model obeys:
 *
 *  - Multishot accept: one request accepts every connection until it ends;
 *    a completion without IORING_CQE_F_MORE means it ended (an error, or
 *    our cancel) and must be submitted again (liburing wiki "io_uring and
 *    networking in 2023"). Out of descriptors (EMFILE) it is re-armed after
 *    a pause, not at once, so the loop does not spin on a full backlog.
 *  - Multishot receive needs provided buffers: length 0 and
 *    IOSQE_BUFFER_SELECT, or it fails with EINVAL (liburing#1331). We
 *    register one buffer ring (io_uring_register_buf_ring, kernel >= 5.19)
 *    that every connection draws from, so an idle connection holds no read
 *    buffer; each buffer goes back to the ring as soon as its bytes are in
 *    the core (client.c, on_recv).
 *  - A multishot receive can end at any time without an error (liburing#805:
 *    the kernel's own reasons, a full CQ) — and always when the buffer ring
 *    is empty (-ENOBUFS), which multishot may report at once even with no
 *    data waiting (liburing#1275). client_sync re-arms whenever the core
 *    wants input and no receive is armed; forgetting it leaves a connection
 *    deaf without any error. Whole buffers only: incremental buffers
 *    (IOU_PBUF_RING_INC, IORING_CQE_F_BUF_MORE) postdate liburing 2.3 and
 *    have surprised their users at EOF (liburing#1545, #1433).
 *  - A receive cannot be paused, only cancelled: backpressure (the core's
 *    conn_want_read) cancels it, and what was already on its way waits in a
 *    per-connection stash until the core wants it (client.c, handle_input).
 *  - Sends complete short when the socket buffer fills: one send in flight
 *    per socket, its rest resubmitted on completion, so bytes never pass
 *    each other (client.c, start_send).
 *  - Cancellation before freeing: close() does not cancel requests (the
 *    ring holds its own reference to the socket), and a completion naming a
 *    freed struct is a use-after-free. A closed connection's requests are
 *    cancelled, each by its user_data (the kernel's hash table finds it;
 *    a cancel by descriptor walks every armed request), and timeouts
 *    removed; the struct and descriptor go only when the last
 *    completion naming them has come (client.c, reap_closed_clients).
 *  - CQ overflow: a fan-out to 10 000 members completes 10 000 sends at
 *    once. The CQ is sized well beyond the SQ (IORING_SETUP_CQSIZE), and
 *    the kernel must have IORING_FEAT_NODROP, so a completion is never lost:
 *    an overflow is held in the kernel (older kernels also refuse
 *    submissions with -EBUSY meanwhile), and liburing's peek flushes it
 *    back into the CQ as this loop reaps (liburing#1063, man
 *    io_uring_enter "EBUSY"). tests/uring runs 48 receives into a CQ of 4.
 *  - tests/uring makes each trap here happen, through real sockets; the
 *    environment knobs C10K_URING_BUFS and C10K_URING_CQ (test_knob) shrink
 *    the buffer ring and the CQ for it. They are not user-facing options.
 *  - Timeouts are requests too (IORING_OP_TIMEOUT): each connection's core
 *    deadline is one absolute timeout on CLOCK_MONOTONIC, moved earlier
 *    with a timeout update, left alone when it moves later (it fires early
 *    and is re-armed); /sleep is one relative timeout.
 *  - Signals: SIGINT and SIGTERM are blocked in every thread and come
 *    through a signalfd. The ring polls it (IORING_OP_POLL_ADD) and the
 *    loop reads it itself: a read request would have the kernel take the
 *    signal the moment it comes, and a batch of a thousand leaves could be
 *    announced before the loop met that completion. Left pending until the
 *    loop reads it, the stop can be asked for (stop_signal.h).
 *  - Where io_uring is not permitted (seccomp, kernel.io_uring_disabled),
 *    io_uring_queue_init fails with EPERM or ENOSYS: we say so in one line
 *    and exit 1.
 *
 * With --redis, the backplane's two Redis connections are on the ring too
 * (redis_ring.c): a poll request per socket and direction says when
 * hiredis can read or write without blocking, and its timeouts are checked
 * by a timer request every BACKPLANE_TICK_MS.
 *
 * The price is the same as chat-async's: anything slow that runs *on* this
 * thread stops every client. /cpu does exactly that (unless --cpu-pool);
 * password checks go to a small pool that completes through the ring.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backplane.h"
#include "gil.h"
#include "proc_memory.h"
#include "stop_signal.h"
#include "timing.h"
#include "uring.h"

#define LISTEN_BACKLOG 4096
#define SQ_ENTRIES 4096
#define CQ_ENTRIES 65536
#define POOL_THREADS 4
#define ACCEPT_RETRY_MS 100
#define TRIM_EVERY_MS 1000 /* see chat-async's main.c: freed heap back to the OS */
/* Completions handled before this turn's output goes out: a starvation
 * guard, like libuv's 32 reads per wake-up. */
#define COMPLETIONS_PER_TURN 4096

struct server server;

/* --- the ring ----------------------------------------------------------- */

struct io_uring_sqe *ring_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&server.ring);
    if (sqe)
        return sqe;
    /* The submission queue is full: hand what is there to the kernel now
     * (a big fan-out can queue more than SQ_ENTRIES sends in one turn).
     * With completions overflowed, kernels of this project's era (checked
     * on 6.18: 100 NOPs into a CQ of 4, all 100 reaped after) accept the
     * submission and hold the overflow; only old ones say -EBUSY here
     * (liburing#1063), and then the NULL below makes the caller give up
     * that one request (a client is aborted) — a completion is never lost. */
    io_uring_submit(&server.ring);
    return io_uring_get_sqe(&server.ring);
}

void buf_recycle(unsigned bid)
{
    io_uring_buf_ring_add(server.br, server.bufs + (size_t)bid * BUF_SIZE, BUF_SIZE,
                          (unsigned short)bid, io_uring_buf_ring_mask(server.buf_count), 0);
    io_uring_buf_ring_advance(server.br, 1);
}

/* Test knobs, not options: the environment variables C10K_URING_BUFS and
 * C10K_URING_CQ shrink the buffer ring and the completion queue so that
 * tests/uring can make -ENOBUFS and CQ overflow happen with a handful of
 * connections (a power of two from 1 to the default; anything else is
 * ignored). With either set, the server reports on stderr, when SIGINT or
 * SIGTERM asks it to stop, how often it met them. */
static unsigned test_knob(const char *name, unsigned dflt)
{
    const char *v = getenv(name);
    if (!v)
        return dflt;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*end || n == 0 || n > dflt || (n & (n - 1))) {
        fprintf(stderr, "chat-uring: %s=%s ignored (a power of two up to %u)\n", name, v, dflt);
        return dflt;
    }
    server.test_knobs = true;
    return (unsigned)n;
}

static int ring_init(void)
{
    struct io_uring_params p;
    server.buf_count = test_knob("C10K_URING_BUFS", BUF_COUNT);
    unsigned cq_entries = test_knob("C10K_URING_CQ", CQ_ENTRIES);
    /* The kernel wants at least as many CQ entries as SQ entries. */
    unsigned sq_entries = cq_entries < SQ_ENTRIES ? cq_entries : SQ_ENTRIES;
    memset(&p, 0, sizeof p);
    p.cq_entries = cq_entries;
    /* SUBMIT_ALL: one bad request does not stop the rest of the batch.
     * COOP_TASKRUN, SINGLE_ISSUER: only this thread uses the ring, so the
     * kernel need not interrupt it to post completions. */
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_SINGLE_ISSUER;
    int rc = io_uring_queue_init_params(sq_entries, &server.ring, &p);
    if (rc == -EINVAL) { /* an older kernel: the flags are optimisations */
        memset(&p, 0, sizeof p);
        p.cq_entries = cq_entries;
        p.flags = IORING_SETUP_CQSIZE;
        rc = io_uring_queue_init_params(sq_entries, &server.ring, &p);
    }
    if (rc < 0) {
        if (rc == -EPERM || rc == -ENOSYS || rc == -EACCES)
            fprintf(stderr, "chat-uring: io_uring is not permitted here (%s: seccomp or "
                            "kernel.io_uring_disabled)\n", strerror(-rc));
        else
            fprintf(stderr, "chat-uring: io_uring_queue_init: %s\n", strerror(-rc));
        return -1;
    }
    if (!(p.features & IORING_FEAT_NODROP)) {
        fprintf(stderr, "chat-uring: this kernel's io_uring may drop completions "
                        "(no IORING_FEAT_NODROP); needs Linux >= 5.5\n");
        return -1;
    }

    /* The buffer ring: its entries must be page-aligned memory we share
     * with the kernel. The buffers themselves are ordinary heap. */
    void *mem;
    if (posix_memalign(&mem, (size_t)sysconf(_SC_PAGESIZE),
                       server.buf_count * sizeof(struct io_uring_buf)) != 0)
        return -1;
    server.br = mem;
    server.bufs = malloc((size_t)server.buf_count * BUF_SIZE);
    if (!server.bufs)
        return -1;
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)server.br, .ring_entries = server.buf_count, .bgid = BUF_GROUP};
    io_uring_buf_ring_init(server.br);
    rc = io_uring_register_buf_ring(&server.ring, &reg, 0);
    if (rc < 0) {
        fprintf(stderr, "chat-uring: io_uring_register_buf_ring: %s (needs Linux >= 5.19)\n",
                strerror(-rc));
        return -1;
    }
    for (unsigned i = 0; i < server.buf_count; i++)
        io_uring_buf_ring_add(server.br, server.bufs + (size_t)i * BUF_SIZE, BUF_SIZE,
                              (unsigned short)i, io_uring_buf_ring_mask(server.buf_count), (int)i);
    io_uring_buf_ring_advance(server.br, server.buf_count);
    return 0;
}

/* --- the server's own timeouts ------------------------------------------ */

void server_timer_arm(struct server_timer *t, uint64_t ms)
{
    if (t->armed)
        return;
    struct io_uring_sqe *sqe = ring_sqe();
    if (!sqe)
        return;
    t->ts.tv_sec = (long long)(ms / 1000);
    t->ts.tv_nsec = (long long)(ms % 1000) * 1000000;
    t->op.kind = OP_SERVER_TIMER;
    io_uring_prep_timeout(sqe, &t->ts, 0, 0);
    io_uring_sqe_set_data(sqe, &t->op);
    t->armed = true;
}

static void on_trim(struct server_timer *t)
{
    malloc_trim(0);
    if (!server.stopping)
        server_timer_arm(t, TRIM_EVERY_MS);
}

/* --- accepting ----------------------------------------------------------- */

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = ring_sqe();
    if (!sqe) {
        server_timer_arm(&server.accept_retry, ACCEPT_RETRY_MS);
        return;
    }
    /* One request for every connection to come. SOCK_CLOEXEC: curl's
     * resolver threads must not hold client sockets across an exec. */
    io_uring_prep_multishot_accept(sqe, server.listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &server.accept_op);
    server.accepting = true;
}

static void on_accept_retry(struct server_timer *t)
{
    (void)t;
    if (!server.stopping && !server.accepting)
        arm_accept();
}

static void on_accept(int res, unsigned flags)
{
    if (res >= 0) {
        if (server.stopping)
            close(res); /* accepted just as we stopped: not served */
        else
            client_accepted(res);
    }
    if (flags & IORING_CQE_F_MORE)
        return;
    server.accepting = false;
    if (server.stopping) {
        /* Our cancel came back: nothing can be accepted any more, and the
         * connections still in the backlog are reset by this close. */
        close(server.listen_fd);
        server.listen_fd = -1;
        return;
    }
    if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
        /* Out of descriptors: the connection stays in the backlog, and
         * re-arming now would fail again at once. Wait for closes. */
        static uint64_t last_warned;
        uint64_t now = app_now_ms();
        if (now - last_warned > 5000) {
            fprintf(stderr, "chat-uring: accept: %s\n", strerror(-res));
            last_warned = now;
        }
        server_timer_arm(&server.accept_retry, ACCEPT_RETRY_MS);
        return;
    }
    arm_accept();
}

/* --- shutdown ------------------------------------------------------------ */

/* Past the grace period and ABANDON_AFTER_MS more, with clients still
 * there: all that can keep one is a pool job inside a call that cannot be
 * interrupted (one PBKDF2 of a costly users-file record). The contract says
 * drop it: exit without waiting for the pool (as chat-async does). */
static void on_abandon(struct server_timer *t)
{
    (void)t;
    if (!server.clients && !server.closed)
        return;
    fprintf(stderr, "chat-uring: dropped work still running at the deadline (a password "
                    "check of a costly users-file record)\n");
    fflush(NULL);
    _exit(0);
}

static void on_hard_stop(struct server_timer *t)
{
    /* Whatever could not finish in time is dropped. */
    action_cancel_all();
    while (server.clients)
        client_close(server.clients);
    t->fire = on_abandon;
    server_timer_arm(t, ABANDON_AFTER_MS);
}

/* Everyone is leaving: the core closes WebSockets with 1001 and finishes
 * what can finish. */
static void close_room(void)
{
    room_close(server.app.room); /* no N^2 leaves */
    for (struct client *cl = server.clients, *next; cl; cl = next) {
        next = cl->next;
        conn_shutdown(&cl->conn);
        client_sync(cl);
    }
}

/* --redis: a leave published a moment ago must still reach the members
 * here before they are closed; wait for it, briefly (as chat-async). */
static void on_bp_settle(struct server_timer *t)
{
    if (!backplane_settled(server.bp) && app_now_ms() < server.settle_end) {
        server_timer_arm(t, 5);
        return;
    }
    close_room();
}

/* SIGINT/SIGTERM: stop accepting, close the room (once the backplane has
 * settled), and give it all SHUTDOWN_GRACE_MS. */
static void begin_shutdown(void)
{
    if (server.stopping)
        return;
    server.stopping = true;
    if (server.test_knobs) /* read by tests/uring before the exit */
        fprintf(stderr, "chat-uring: test knobs: %lu receives found no buffer, %lu turns found "
                        "the CQ overflowed, %lu lingers ran out of time\n", server.enobufs,
                server.cq_overflows, server.linger_timeouts);
    if (server.accepting) {
        struct io_uring_sqe *sqe = ring_sqe();
        if (sqe) {
            io_uring_prep_cancel(sqe, &server.accept_op, 0);
            io_uring_sqe_set_data(sqe, NULL);
        }
    } else if (server.listen_fd >= 0) {
        close(server.listen_fd);
        server.listen_fd = -1;
    }
    server.hard_stop.fire = on_hard_stop;
    server_timer_arm(&server.hard_stop, SHUTDOWN_GRACE_MS);
    if (server.bp && !backplane_settled(server.bp)) {
        server.settle_end = app_now_ms() + BACKPLANE_SETTLE_MS;
        server.bp_settle.fire = on_bp_settle;
        server_timer_arm(&server.bp_settle, 5);
        return;
    }
    close_room();
}

static void arm_signal_poll(void)
{
    struct io_uring_sqe *sqe = ring_sqe();
    if (!sqe)
        return;
    io_uring_prep_poll_add(sqe, server.signal_fd, POLLIN);
    io_uring_sqe_set_data(sqe, &server.signal_op);
}

/* --- the pool's completions ---------------------------------------------- */

static int pool_eventfd = -1;

static void arm_pool_read(void)
{
    struct io_uring_sqe *sqe = ring_sqe();
    if (!sqe)
        return;
    io_uring_prep_read(sqe, pool_eventfd, &server.pool_count, sizeof server.pool_count, 0);
    io_uring_sqe_set_data(sqe, &server.pool_op);
}

static void on_pool(void)
{
    struct pool_job *list = pool_take_done(server.pool);
    while (list) {
        struct pool_job *job = list;
        list = job->next;
        pool_job_done(job);
    }
    arm_pool_read();
}

/* --- the loop ------------------------------------------------------------ */

static void dispatch(struct op *op, int res, unsigned flags)
{
    switch (op->kind) {
    case OP_ACCEPT:
        on_accept(res, flags);
        break;
    case OP_SIGNAL:
        stop_signal_read(server.signal_fd);
        begin_shutdown();
        arm_signal_poll();
        break;
    case OP_POOL:
        on_pool();
        break;
    case OP_SERVER_TIMER: {
        struct server_timer *t = container_of(op, struct server_timer, op);
        t->armed = false;
        if (res != -ECANCELED && t->fire)
            t->fire(t);
        break;
    }
    case OP_CURL_POLL:
    case OP_CURL_TIMER:
        if (server.curl)
            curl_ring_complete(server.curl, op, res);
        break;
    case OP_REDIS_READ:
    case OP_REDIS_WRITE:
        redis_ring_complete(server.redis, op, res);
        break;
    default:
        client_complete(op, res, flags);
        break;
    }
}

static void handle_completions(void)
{
    struct io_uring_cqe *cqe;
    unsigned n = 0;
    while (n++ < COMPLETIONS_PER_TURN && io_uring_peek_cqe(&server.ring, &cqe) == 0) {
        /* Copy it out and give the slot back first: a handler may submit,
         * and the kernel needs CQ room to post the answers. */
        struct op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        unsigned flags = cqe->flags;
        io_uring_cqe_seen(&server.ring, cqe);
        if (op)
            dispatch(op, res, flags);
    }
}

/* Everything a turn queued, before the ring is entered again. */
static void end_turn(void)
{
    flush_dirty_clients();
    /* Writing may have drained the member the room's posters waited for:
     * they go on now, and what they post is written before we wait. */
    while (run_unblocked_clients())
        flush_dirty_clients();
    if (server.curl)
        curl_ring_sync(server.curl);
    /* After everything that can publish to the room (and so queue a
     * command for Redis) this turn. */
    if (server.redis)
        redis_ring_sync(server.redis);
    reap_closed_clients();
}

static bool finished(void)
{
    return server.stopping && !server.clients && !server.closed;
}

static void run(void)
{
    for (;;) {
        end_turn();
        if (finished())
            return;
        /* --gil: the loop thread holds the GIL while it runs handlers and
         * drops it while it waits in the kernel, as CPython around select(). */
        gil_release();
        int rc;
        if (server.paused) /* stashed input to feed: look, do not wait */
            rc = io_uring_submit_and_get_events(&server.ring);
        else
            rc = io_uring_submit_and_wait(&server.ring, 1);
        gil_acquire();
        /* -EBUSY: completions overflowed and must be reaped before more
         * can be submitted; what was not submitted stays queued. */
        if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN && rc != -ETIME) {
            fprintf(stderr, "chat-uring: io_uring_enter: %s\n", strerror(-rc));
            exit(1);
        }
        /* Only counted, for the test knobs' report: the kernel holds what
         * did not fit, and handle_completions' peeks flush it back into
         * the CQ as slots free up (liburing's cq_ring_needs_flush). */
        if (rc == -EBUSY || (IO_URING_READ_ONCE(*server.ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW))
            server.cq_overflows++;
        server.turn++;
        resume_paused_clients();
        handle_completions();
    }
}

/* --- the backplane (--redis) ------------------------------------------- */

/* Timeouts, reconnection with back-off, heartbeats: the backplane's own
 * clock. It runs until the loop ends, shutdown included, so the last
 * leaves still reach Redis and come back. */
static void on_bp_tick(struct server_timer *t)
{
    backplane_tick(server.bp);
    server_timer_arm(t, BACKPLANE_TICK_MS);
}

/* This loop drives the process's one Redis subscriber. Connecting starts
 * here and goes on on the ring: nothing waits for Redis. */
static int backplane_start(void)
{
    char err[256];
    server.redis = redis_ring_new();
    if (!server.redis) {
        fprintf(stderr, "chat-uring: out of memory\n");
        return -1;
    }
    server.bp = backplane_new(server.app.cfg.redis, server.app.room,
                              &(struct backplane_loop){redis_ring_attach, server.redis}, false,
                              err, sizeof err);
    if (!server.bp) {
        fprintf(stderr, "chat-uring: %s\n", err);
        return -1;
    }
    server.bp_tick.fire = on_bp_tick;
    server_timer_arm(&server.bp_tick, BACKPLANE_TICK_MS);
    return 0;
}

/* --- start --------------------------------------------------------------- */

static int listen_on(const struct config *cfg)
{
    struct sockaddr_storage addr;
    socklen_t len;
    memset(&addr, 0, sizeof addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, cfg->listen_host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(cfg->listen_port);
        len = sizeof *a4;
    } else if (inet_pton(AF_INET6, cfg->listen_host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(cfg->listen_port);
        len = sizeof *a6;
    } else {
        fprintf(stderr, "chat-uring: --listen: bad address %s\n", cfg->listen_host);
        return -1;
    }
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&addr, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        fprintf(stderr, "chat-uring: listen on %s:%u: %s\n", cfg->listen_host, cfg->listen_port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    server.listen_fd = fd;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    char host[INET6_ADDRSTRLEN];
    if (bound.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&bound)->sin6_addr, host, sizeof host);
        printf("listening on http://[%s]:%d\n", host,
               ntohs(((struct sockaddr_in6 *)&bound)->sin6_port));
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&bound)->sin_addr, host, sizeof host);
        printf("listening on http://%s:%d\n", host,
               ntohs(((struct sockaddr_in *)&bound)->sin_port));
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = app_init(&server.app, "uring", argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    server.app.stats = proc_stats;
    server.listen_fd = -1;

    /* Before any thread exists (the pool, curl's resolver). */
    server.signal_fd = stop_signal_fd();
    if (server.signal_fd < 0) {
        perror("chat-uring: signalfd");
        return 1;
    }

    if (ring_init() < 0)
        return 1;
    app_set_room(&server.app, room_new(&uring_sink, false));
    int efd = -1;
    server.pool = pool_new(POOL_THREADS, &efd);
    server.curl = curl_ring_new(fetch_done);
    if (!server.app.room || !server.pool || !server.curl) {
        fprintf(stderr, "chat-uring: out of memory\n");
        return 1;
    }
    pool_eventfd = efd;
    server.accept_op.kind = OP_ACCEPT;
    server.signal_op.kind = OP_SIGNAL;
    server.pool_op.kind = OP_POOL;
    server.trim.fire = on_trim;
    server.accept_retry.fire = on_accept_retry;
    gil_acquire(); /* the loop thread runs holding it, see run() */

    if (listen_on(&server.app.cfg) < 0)
        return 1;
    if (server.app.cfg.redis && backplane_start() < 0)
        return 1;
    arm_accept();
    arm_signal_poll();
    arm_pool_read();
    server_timer_arm(&server.trim, TRIM_EVERY_MS);

    run();

    /* Every client is gone. A pool job still running would be a client
     * still closing, so the pool is idle and can be joined. */
    gil_release();
    backplane_free(server.bp); /* sends the leaves of room_close */
    curl_ring_free(server.curl);
    pool_free(server.pool);
    io_uring_queue_exit(&server.ring); /* cancels the reads and timeouts left */
    redis_ring_free(server.redis); /* no request can name its structs now */
    free(server.bufs);
    free(server.br);
    close(server.signal_fd);
    room_free(server.app.room);
    app_free(&server.app);
    return 0;
}
