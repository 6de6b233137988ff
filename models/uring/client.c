/* One connection in chat-uring: completions in, core calls, and
 * client_sync() to turn the core's wishes into requests on the ring.
 *
 * The shape is chat-async's (models/async/client.c), and the core is called
 * the same way; what changes is what a "wish" becomes. In chat-async,
 * "keep reading" is a registration with epoll and every read is ours to
 * do; here it is one multishot receive that the kernel completes again and
 * again, each time into a buffer it picked from the shared buffer ring.
 * "Write this" is a send the kernel finishes by itself, however long the
 * peer takes. Nothing here decides anything about HTTP or WebSocket.
 *
 * The one rule that shapes this file: memory the kernel may still touch
 * (a send's bytes, the client struct whose address is in user_data) lives
 * until the kernel says it is done with it — the completion without
 * IORING_CQE_F_MORE. A closed client is cancelled, then freed only once
 * `inflight` is back to 0 (reap_closed_clients, at the end of a turn).
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gil.h"
#include "stop_signal.h"
#include "timing.h"
#include "uring.h"

/* Fed to the core per client per turn before the rest waits for the next
 * turn, after this turn's output is out: chat-async's flooder guard (a
 * read that filled its 64 KiB buffer), in bytes rather than reads. */
#define TURN_READ_MAX (64 * 1024)
/* What a stash may hold. The receive is cancelled as soon as a stash is
 * started, so only what was already on its way lands there; this bounds
 * a kernel that keeps completing faster than the cancel. */
#define STASH_MAX (4 * 1024 * 1024)
/* Frames per send, at most: IOV_MAX, what one sendmsg takes. There is one
 * send in flight per socket, so one per turn of the loop: at 64 frames a
 * send, a room filling up (each join a frame for every member) produced
 * frames faster than they left, and 10 000 members were seated with 14
 * million frames (889 MB) still queued. chat-async writes until the socket
 * is full in each turn. The request is allocated as big as its frames
 * need: a send of a few frames stays in glibc's per-thread cache. */
#define SEND_IOV 1024

/* One send in flight: the message header and iovecs the kernel reads, and
 * a reference to every event buffer they point into. The references keep
 * the bytes alive even if the connection is freed (conn_free clears its
 * queue) before the cancelled send reports back. */
struct send_req {
    struct msghdr msg;
    unsigned n;
    struct rbuf **held;  /* n references, stored right after iov[n] */
    struct iovec iov[];
};
_Static_assert(SEND_IOV <= IOV_MAX, "one sendmsg takes them all");

static void ms_to_ts(uint64_t ms, struct __kernel_timespec *ts)
{
    ts->tv_sec = (long long)(ms / 1000);
    ts->tv_nsec = (long long)(ms % 1000) * 1000000;
}

/* --- reading: one multishot receive, and the stash ---------------------- */

static void arm_recv(struct client *cl)
{
    struct io_uring_sqe *sqe = ring_sqe();
    if (!sqe) {
        conn_abort(&cl->conn);
        return;
    }
    /* Length 0 and IOSQE_BUFFER_SELECT: the kernel picks a buffer from
     * group BUF_GROUP only when data has arrived. Until then this
     * connection holds no read buffer at all — the point, for 10 000 idle
     * connections. Without provided buffers multishot receive is EINVAL
     * (liburing#1331). */
    io_uring_prep_recv_multishot(sqe, cl->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data(sqe, &cl->recv_op);
    cl->recv = RECV_ARMED;
    cl->inflight++;
}

/* Cancel by user_data: the receive ends with -ECANCELED (no F_MORE), and
 * only then may another be armed — two receives on one socket could hand
 * us its bytes out of order. */
static void cancel_recv(struct client *cl)
{
    struct io_uring_sqe *sqe = ring_sqe();
    if (!sqe) {
        conn_abort(&cl->conn);
        return;
    }
    io_uring_prep_cancel(sqe, &cl->recv_op, 0);
    io_uring_sqe_set_data(sqe, NULL);
    cl->recv = RECV_CANCELLING;
}

/* Bytes fed to the core in this turn of the loop. */
static size_t fed_this_turn(struct client *cl)
{
    if (cl->fed_turn != server.turn) {
        cl->fed_turn = server.turn;
        cl->fed_bytes = 0;
    }
    return cl->fed_bytes;
}

static void pause_until_next_turn(struct client *cl)
{
    if (cl->paused)
        return;
    cl->paused = true;
    cl->next_paused = server.paused;
    server.paused = cl;
}

/* Bytes the kernel received for us. The core takes them only while it
 * wants input (conn_want_read: backpressure on a full outbox, a poster the
 * room holds back); but a multishot receive cannot be paused, only
 * cancelled, and completions already on their way still come. Those wait
 * in the stash, fed before anything newer, once the core wants input. */
static void handle_input(struct client *cl, const char *data, size_t len)
{
    struct conn *c = &cl->conn;
    if (cl->lingering)
        return; /* discarding until the peer's FIN */
    if (cl->stash.len || !conn_want_read(c) || fed_this_turn(cl) >= TURN_READ_MAX) {
        if (buf_append(&cl->stash, data, len, STASH_MAX) < 0)
            conn_abort(c);
        if (fed_this_turn(cl) >= TURN_READ_MAX)
            pause_until_next_turn(cl);
        return;
    }
    cl->fed_bytes += len;
    conn_feed(c, data, len);
    if (fed_this_turn(cl) >= TURN_READ_MAX)
        pause_until_next_turn(cl); /* its receive is cancelled, re-armed next turn */
}

/* Feed the stash while the core wants it, at most TURN_READ_MAX a turn. */
static void drain_stash(struct client *cl)
{
    struct conn *c = &cl->conn;
    while (cl->stash.len && conn_want_read(c) && fed_this_turn(cl) < TURN_READ_MAX &&
           c->close == CLOSE_NO) {
        size_t n = cl->stash.len < BUF_SIZE ? cl->stash.len : BUF_SIZE;
        cl->fed_bytes += n;
        /* conn_feed keeps what it cannot use yet: the bytes are its now. */
        char chunk[BUF_SIZE];
        memcpy(chunk, cl->stash.data, n);
        buf_consume(&cl->stash, n);
        conn_feed(c, chunk, n);
    }
    if (cl->stash.len == 0) {
        buf_free(&cl->stash);
        if (cl->eof_pending) { /* the EOF came after the stashed bytes */
            cl->eof_pending = false;
            conn_eof(c);
        }
    } else if (fed_this_turn(cl) >= TURN_READ_MAX) {
        pause_until_next_turn(cl);
    }
}

/* Start of a turn: the flooders held back last turn go on. */
void resume_paused_clients(void)
{
    struct client *list = server.paused;
    server.paused = NULL;
    while (list) {
        struct client *cl = list;
        list = cl->next_paused;
        cl->paused = false;
        if (!cl->closing) {
            drain_stash(cl);
            client_sync(cl);
        }
    }
}

static void on_recv(struct client *cl, int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE)) {
        /* The multishot receive is over: an error, EOF, our cancel, an
         * empty buffer ring (-ENOBUFS), or the kernel's own reasons
         * (liburing#805). client_sync re-arms it if the core still wants
         * input; forgetting this leaves a connection deaf, without error. */
        cl->recv = RECV_OFF;
        cl->inflight--;
    }
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && !cl->closing)
            handle_input(cl, server.bufs + (size_t)bid * BUF_SIZE, (size_t)res);
        /* The bytes are in the core (or the stash) now: the buffer goes
         * straight back, so the ring is full again before the next wait. */
        buf_recycle(bid);
    }
    if (cl->closing)
        return;
    struct conn *c = &cl->conn;
    if (res == 0) {
        if (cl->lingering) {
            client_close(cl); /* the peer's FIN: the close is clean */
            return;
        }
        if (cl->stash.len)
            cl->eof_pending = true;
        else
            conn_eof(c);
    } else if (res == -ENOBUFS) {
        /* Every buffer was in use when data came: this connection's
         * receive ended. The buffers come back as each completion is
         * handled, so re-arming at the end of this turn finds them
         * (liburing#1275: multishot may report it even with no data). */
        server.enobufs++;
    } else if (res < 0 && res != -ECANCELED) {
        if (cl->lingering) {
            client_close(cl);
            return;
        }
        conn_abort(c); /* reset or worse */
    }
    client_sync(cl);
}

/* --- writing: one send in flight per socket ----------------------------- */

static void mark_dirty(struct client *cl)
{
    if (cl->dirty || cl->closing)
        return;
    cl->dirty = true;
    cl->next_dirty = server.dirty;
    server.dirty = cl;
}

static void free_send(struct send_req *sr)
{
    for (unsigned i = 0; i < sr->n; i++)
        rbuf_unref(sr->held[i]);
    free(sr);
}

/* Hand what is queued to the kernel, as one sendmsg. Only one at a time:
 * a second send submitted behind a short first one could put its bytes on
 * the wire before the first one's rest. The kernel may complete it short
 * (on_send resubmits the rest); until then the nodes it reads are pinned,
 * so a cut-off (outq_drop_unsent) cannot free them under it. */
static void start_send(struct client *cl)
{
    struct conn *c = &cl->conn;
    if (cl->sending || outq_empty(&c->out) || c->close == CLOSE_NOW)
        return;
    unsigned want = 0;
    for (const struct outq_node *q = c->out.head; q && want < SEND_IOV; q = q->next)
        want++;
    struct send_req *sr =
        malloc(sizeof *sr + want * (sizeof(struct iovec) + sizeof(struct rbuf *)));
    struct io_uring_sqe *sqe = sr ? ring_sqe() : NULL;
    if (!sqe) {
        free(sr);
        conn_abort(c);
        return;
    }
    sr->held = (struct rbuf **)(sr->iov + want);
    int n = outq_iov(&c->out, sr->iov, (int)want);
    struct outq_node *nd = c->out.head;
    for (int i = 0; i < n; i++, nd = nd->next)
        sr->held[i] = rbuf_ref(nd->buf);
    sr->n = (unsigned)n;
    memset(&sr->msg, 0, sizeof sr->msg);
    sr->msg.msg_iov = sr->iov;
    sr->msg.msg_iovlen = (size_t)n;
    io_uring_prep_sendmsg(sqe, cl->fd, &sr->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, &cl->send_op);
    c->out.pinned = (unsigned)n;
    cl->sending = sr;
    cl->inflight++;
}

/* A member was cut off while a send was in flight: the kernel holds
 * frames we must no longer deliver ("its backlog is dropped ... after any
 * frame already partly written"). The send was cancelled (sink_cut_off);
 * now that it reported how far it got, drop what it did not send of the
 * nodes it was given — all but a frame it stopped in the middle of. The
 * close 1008 queued behind them stays. (The nodes are the outq's front:
 * pinned, outq_drop_unsent kept them.) */
static void drop_rest_of_send(struct outq *q, const struct send_req *sr, size_t sent)
{
    unsigned k = 0;
    while (k < sr->n && sent >= sr->iov[k].iov_len)
        sent -= sr->iov[k++].iov_len;
    unsigned remaining = sr->n - k;
    struct outq_node **pp = &q->head;
    if (remaining && q->head && q->head_off > 0) {
        pp = &q->head->next; /* partly written: it goes out whole */
        remaining--;
    }
    while (remaining-- && *pp) {
        struct outq_node *nd = *pp;
        *pp = nd->next;
        if (q->tail == nd)
            q->tail = pp == &q->head ? NULL : container_of(pp, struct outq_node, next);
        q->bytes -= nd->buf->len;
        rbuf_unref(nd->buf);
        free(nd);
    }
}

static void on_send(struct client *cl, int res)
{
    struct send_req *sr = cl->sending;
    bool cut = cl->cut_pending;
    cl->sending = NULL;
    cl->cut_pending = false;
    cl->inflight--;
    if (cl->closing) {
        free_send(sr);
        return;
    }
    struct conn *c = &cl->conn;
    c->out.pinned = 0;
    if (res < 0 && !(cut && res == -ECANCELED)) {
        conn_abort(c);
    } else {
        size_t sent = res > 0 ? (size_t)res : 0;
        conn_sent(c, sent); /* may be short: client_sync sends the rest */
        if (cut)
            drop_rest_of_send(&c->out, sr, sent);
    }
    free_send(sr);
    client_sync(cl);
}

/* Right before the ring is entered: everything this turn queued —
 * responses, and chat events fanned out to thousands of members — becomes
 * one send per client, and the whole batch goes to the kernel in the same
 * io_uring_enter that waits for the next completions. */
void flush_dirty_clients(void)
{
    while (server.dirty) {
        struct client *cl = server.dirty;
        server.dirty = cl->next_dirty;
        cl->dirty = false;
        if (!cl->closing)
            client_sync(cl);
    }
}

/* --- the room's sink: chat events for this client ----------------------- */

static struct client *client_of(struct room_member *m)
{
    return container_of(conn_of_member(m), struct client, conn);
}

static size_t sink_deliver(struct room_member *m, struct rbuf *ev)
{
    struct client *cl = client_of(m);
    struct conn *c = &cl->conn;
    if (outq_push(&c->out, rbuf_ref(ev)) < 0)
        return (size_t)-1; /* out of memory counts as over the limit */
    mark_dirty(cl);
    /* Bytes handed to a send in flight still count until it completes:
     * the kernel has not said how much of them left. */
    return c->out.bytes;
}

static void sink_cut_off(struct room_member *m)
{
    struct client *cl = client_of(m);
    conn_ws_cut_off(&cl->conn);
    if (cl->sending && !cl->cut_pending) {
        /* A send blocked on a full socket has sent nothing yet: cancel it,
         * and on_send drops the frames it was given (drop_rest_of_send). */
        struct io_uring_sqe *sqe = ring_sqe();
        if (sqe) {
            io_uring_prep_cancel(sqe, &cl->send_op, 0);
            io_uring_sqe_set_data(sqe, NULL);
            cl->cut_pending = true;
        }
    }
    mark_dirty(cl);
}

/* Inside a room call: only take note, act at the end of the turn. */
static void sink_unblock(struct room_member *m)
{
    struct client *cl = client_of(m);
    if (!cl->closing)
        conn_unblock_later(&server.unblocked, &cl->conn);
}

bool run_unblocked_clients(void)
{
    bool any = server.unblocked.head != NULL;
    for (struct conn *c; (c = conn_unblock_next(&server.unblocked));)
        client_sync(container_of(c, struct client, conn));
    return any;
}

const struct room_sink uring_sink = {
    .deliver = sink_deliver,
    .cut_off = sink_cut_off,
    .unblock = sink_unblock,
    .stopping = stop_signal_requested,
};

/* --- deferred actions: how this model waits ----------------------------- */

static void on_sleep(struct client *cl)
{
    cl->sleeping = false;
    cl->inflight--;
    if (cl->closing)
        return;
    conn_resume(&cl->conn);
    client_sync(cl);
}

void fetch_done(struct action *a)
{
    struct client *cl = a->owner;
    conn_resume(&cl->conn);
    client_sync(cl);
}

static void start_action(struct client *cl, struct action *a)
{
    struct conn *c = &cl->conn;
    a->started = true;
    a->owner = cl;
    switch (a->kind) {
    case ACTION_SLEEP: {
        /* /sleep is a timeout request on the ring: no timer wheel of ours. */
        struct io_uring_sqe *sqe = ring_sqe();
        if (!sqe) {
            conn_abort(c);
            return;
        }
        ms_to_ts(a->sleep.ms, &cl->sleep_ts);
        io_uring_prep_timeout(sqe, &cl->sleep_ts, 0, 0);
        io_uring_sqe_set_data(sqe, &cl->sleep_op);
        cl->sleeping = true;
        cl->inflight++;
        return;
    }
    case ACTION_FETCH:
        if (!server.curl || curl_ring_start(server.curl, a) < 0) {
            action_fetch_done(a, CURLE_OUT_OF_MEMORY);
            conn_resume(c);
        }
        return;
    case ACTION_CPU:
        if (!server.app.cfg.cpu_pool) {
            /* The lesson of a single-threaded server, kept from chat-async:
             * CPU work on the ring's thread stops every other client. */
            action_run(a);
            conn_resume(c);
            return;
        }
        break;
    case ACTION_PASSWORD:
        break; /* PBKDF2 takes tens of ms: never on the ring's thread */
    }
    struct pool_job *job = malloc(sizeof *job);
    if (!job) {
        conn_abort(c);
        return;
    }
    job->cl = cl;
    job->a = a;
    if (pool_submit(server.pool, job) < 0) {
        free(job);
        conn_abort(c);
        return;
    }
    cl->inflight++; /* the client struct must outlive the job */
}

/* A job done on the pool (main.c drains the eventfd). */
void pool_job_done(struct pool_job *job)
{
    struct client *cl = job->cl;
    struct action *a = job->a;
    free(job);
    cl->inflight--;
    if (cl->orphan == a) { /* the client left while we computed */
        action_free(a);
        cl->orphan = NULL;
        return;
    }
    if (cl->closing)
        return;
    conn_resume(&cl->conn);
    client_sync(cl);
}

/* --- timers: the core's deadline as one absolute timeout ---------------- */

static void on_timer(struct client *cl)
{
    cl->timer_armed = false;
    cl->armed_deadline = 0;
    cl->inflight--;
    if (cl->closing)
        return;
    if (cl->lingering) {
        server.linger_timeouts++; /* the peer's FIN never came, or went unseen */
        client_close(cl);
        return;
    }
    conn_on_timeout(&cl->conn); /* a no-op if the deadline moved later */
    client_sync(cl);
}

/* One timeout request per connection, on CLOCK_MONOTONIC in absolute
 * time (the core's app_now_ms clock), so a deadline is just a number.
 * A deadline that moves later (every request resets the idle rule) costs
 * nothing: the timeout fires early, the core sees the deadline moved, and
 * we arm it again. Only a deadline that moves earlier needs an update. */
static void arm_deadline(struct client *cl, uint64_t deadline)
{
    if (!deadline || deadline == cl->armed_deadline)
        return;
    if (cl->timer_armed && deadline > cl->armed_deadline)
        return;
    struct io_uring_sqe *sqe = ring_sqe();
    if (!sqe) {
        conn_abort(&cl->conn);
        return;
    }
    if (cl->timer_armed) {
        /* -ENOENT if it already fired: then its completion is on its
         * way, and on_timer arms the new deadline. */
        ms_to_ts(deadline, &cl->update_ts);
        io_uring_prep_timeout_update(sqe, &cl->update_ts, (__u64)(uintptr_t)&cl->timer_op,
                                     IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data(sqe, NULL);
    } else {
        ms_to_ts(deadline, &cl->timer_ts);
        io_uring_prep_timeout(sqe, &cl->timer_ts, 0, IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data(sqe, &cl->timer_op);
        cl->timer_armed = true;
        cl->inflight++;
    }
    cl->armed_deadline = deadline;
}

/* --- the one place that maps the core's wishes onto the ring ------------ */

/* Closing after the last response: send our FIN, then read and discard
 * until the peer's, so that unread request bytes do not turn our close
 * into a reset that could destroy the response in flight. */
static void linger(struct client *cl)
{
    if (conn_peer_done(&cl->conn)) {
        client_close(cl);
        return;
    }
    /* A plain syscall: shutdown() does not wait, nothing to gain from
     * the ring. */
    if (shutdown(cl->fd, SHUT_WR) < 0) {
        client_close(cl);
        return;
    }
    cl->lingering = true;
    buf_free(&cl->stash);
    if (cl->recv == RECV_OFF)
        arm_recv(cl);
    arm_deadline(cl, app_now_ms() + CLOSE_LINGER_MS);
}

void client_sync(struct client *cl)
{
    struct conn *c = &cl->conn;
    if (cl->closing)
        return;
    if (cl->lingering) {
        /* Discarding until the peer's FIN: a receive that ended (-ENOBUFS,
         * a cancel under way when the linger began, the kernel's own
         * reasons) is armed again, or the FIN would go unseen until the
         * linger's deadline — 2 s of a shutdown spent waiting for nothing. */
        if (cl->recv == RECV_OFF)
            arm_recv(cl);
        return;
    }
    /* Input stashed while the core wanted none goes first, before any
     * receive is armed again: bytes keep their order. */
    if (cl->stash.len || cl->eof_pending)
        drain_stash(cl);
    struct action *a;
    while (c->close != CLOSE_NOW && (a = conn_action_to_start(c)))
        start_action(cl, a);
    if (c->close != CLOSE_NOW)
        start_send(cl);
    if (c->close == CLOSE_NOW) {
        client_close(cl);
        return;
    }
    if (c->close == CLOSE_FLUSHED && outq_empty(&c->out) && !cl->sending && !c->action) {
        linger(cl);
        return;
    }
    bool want = conn_want_read(c) && cl->stash.len == 0 && !cl->eof_pending &&
                fed_this_turn(cl) < TURN_READ_MAX;
    if (want && cl->recv == RECV_OFF)
        arm_recv(cl);
    else if (!want && cl->recv == RECV_ARMED)
        cancel_recv(cl);
    /* RECV_CANCELLING: on_recv sees its end and calls us again. */
    arm_deadline(cl, conn_deadline(c));
}

/* --- birth and death ---------------------------------------------------- */

static void unlink_from(struct client **head, struct client *cl, size_t next_off)
{
    struct client **p = head;
    while (*p && *p != cl)
        p = (struct client **)((char *)*p + next_off);
    if (*p)
        *p = *(struct client **)((char *)cl + next_off);
}

void client_close(struct client *cl)
{
    if (cl->closing)
        return;
    cl->closing = true;
    if (cl->dirty) {
        unlink_from(&server.dirty, cl, offsetof(struct client, next_dirty));
        cl->dirty = false;
    }
    conn_unblock_drop(&cl->conn);
    if (cl->paused) {
        unlink_from(&server.paused, cl, offsetof(struct client, next_paused));
        cl->paused = false;
    }
    struct conn *c = &cl->conn;
    struct action *a = c->action;
    if (a && a->started) {
        if (a->kind == ACTION_FETCH && server.curl) {
            curl_ring_cancel(server.curl, a);
        } else if (a->kind == ACTION_CPU || a->kind == ACTION_PASSWORD) {
            /* A pool job cannot be stopped: it finishes into the void,
             * and pool_job_done frees its action. */
            cl->orphan = a;
            c->action = NULL;
        }
    }
    if (cl->counted)
        server.live--;
    conn_free(c); /* leaves the room: the others get our `leave` */
    buf_free(&cl->stash);

    /* Cancel every request that names this connection before its memory
     * goes: a receive or send still armed would otherwise complete into a
     * freed struct (and close() alone does not cancel them: the ring holds
     * its own reference to the socket). Each is cancelled by the
     * user_data it was armed with, which the kernel finds in a hash table.
     * Not by descriptor (IORING_ASYNC_CANCEL_FD, one request for both): the
     * kernel has no index by descriptor and walks every armed request for
     * it, so closing 10 000 members at a shutdown was 10 000 walks of up to
     * 10 000 (perf: io_cancel_req_match, 38 % of the server's time, 7.8 s
     * to exit). */
    struct io_uring_sqe *sqe;
    if (cl->recv == RECV_ARMED && (sqe = ring_sqe())) {
        io_uring_prep_cancel(sqe, &cl->recv_op, 0);
        io_uring_sqe_set_data(sqe, NULL);
    }
    if (cl->sending && (sqe = ring_sqe())) {
        io_uring_prep_cancel(sqe, &cl->send_op, 0);
        io_uring_sqe_set_data(sqe, NULL);
    }
    if (cl->timer_armed && (sqe = ring_sqe())) {
        io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&cl->timer_op, 0);
        io_uring_sqe_set_data(sqe, NULL);
    }
    if (cl->sleeping && (sqe = ring_sqe())) {
        io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&cl->sleep_op, 0);
        io_uring_sqe_set_data(sqe, NULL);
    }
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        server.clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    cl->next_closed = server.closed;
    server.closed = cl;
}

/* End of a turn: free the closed clients the kernel is done with. The
 * descriptor is closed only now, so its number cannot be reused by a new
 * connection while a request naming it could still be cancelled. */
void reap_closed_clients(void)
{
    struct client **p = &server.closed;
    while (*p) {
        struct client *cl = *p;
        if (cl->inflight) {
            p = &cl->next_closed;
            continue;
        }
        *p = cl->next_closed;
        close(cl->fd);
        free(cl);
    }
}

void client_complete(struct op *op, int res, unsigned flags)
{
    switch (op->kind) {
    case OP_RECV:
        on_recv(container_of(op, struct client, recv_op), res, flags);
        break;
    case OP_SEND:
        on_send(container_of(op, struct client, send_op), res);
        break;
    case OP_TIMER:
        on_timer(container_of(op, struct client, timer_op));
        break;
    case OP_SLEEP:
        on_sleep(container_of(op, struct client, sleep_op));
        break;
    default:
        break;
    }
}

void client_accepted(int fd)
{
    struct client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        close(fd); /* the peer sees a reset, not a hang */
        return;
    }
    cl->fd = fd;
    cl->recv_op.kind = OP_RECV;
    cl->send_op.kind = OP_SEND;
    cl->timer_op.kind = OP_TIMER;
    cl->sleep_op.kind = OP_SLEEP;
    cl->next = server.clients;
    if (cl->next)
        cl->next->prev = cl;
    server.clients = cl;
    conn_init(&cl->conn, &server.app);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Multishot accept gives no address per connection; failed logins
     * are counted per address, so ask. */
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) == 0)
        conn_set_peer(&cl->conn, (struct sockaddr *)&peer);
    if (server.live >= server.app.cfg.max_conns || server.stopping) {
        /* --max-conns: say so and close, never queue without bound. */
        conn_refuse(&cl->conn, app_busy_response(&server.app));
    } else {
        server.live++;
        cl->counted = true;
    }
    client_sync(cl);
}
