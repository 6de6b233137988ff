/* One connection in chat-async: libuv callbacks in, core calls, and
 * client_sync() to turn the core's wishes into libuv calls.
 *
 * Every callback ends in client_sync(), which asks the core what it wants
 * now — write, read or pause, a timer, an action, a close — and makes libuv
 * do exactly that. Nothing here decides anything about HTTP or WebSocket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "async.h"
#include "container_of.h"
#include "gil.h"
#include "stop_signal.h"
#include "timing.h"

/* All reads land in one buffer owned by the loop: the core copies what it
 * must keep, so an idle connection holds no read buffer at all. One thread,
 * one read at a time: sharing it is safe. */
static char read_buf[64 * 1024];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

/* A read that filled the whole buffer means the client has more waiting:
 * a flooder. libuv would read it again up to 32 times in this turn, and the
 * core would fan all of it out (2 MiB of chat) before this turn's output
 * goes out, putting members who read promptly over the 1 MiB cut-off.
 * Such a client is read again only next turn, after the flush. */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void pause_until_next_turn(struct client *cl)
{
    if (cl->paused || !cl->reading)
        return;
    uv_read_stop((uv_stream_t *)&cl->tcp);
    cl->paused = true;
    cl->next_paused = server.paused;
    server.paused = cl;
}

void resume_paused_clients(void)
{
    while (server.paused) {
        struct client *cl = server.paused;
        server.paused = cl->next_paused;
        cl->paused = false;
        if (!cl->closing && cl->reading)
            uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct client *cl = s->data;
    if (cl->lingering) { /* discarding until the peer's FIN */
        if (n < 0)
            client_close(cl);
        return;
    }
    if (n > 0)
        conn_feed(&cl->conn, buf->base, (size_t)n);
    else if (n == UV_EOF)
        conn_eof(&cl->conn);
    else if (n < 0)
        conn_abort(&cl->conn); /* reset or worse */
    if (n == (ssize_t)sizeof read_buf)
        pause_until_next_turn(cl);
    client_sync(cl);
}

/* --- writing: queued now, written once per loop turn -------------------- */

static void mark_dirty(struct client *cl)
{
    if (cl->dirty || cl->closing)
        return;
    cl->dirty = true;
    cl->next_dirty = server.dirty;
    server.dirty = cl;
}

static void on_write(uv_write_t *req, int status)
{
    struct client *cl = req->data;
    struct conn *c = &cl->conn;
    cl->writing = false;
    if (cl->closing)
        return;
    if (status < 0) {
        conn_abort(c);
    } else {
        /* uv_write finishes all or nothing: the pinned piece is out. */
        c->out.pinned = 0;
        conn_sent(c, cl->pinned_bytes);
    }
    client_sync(cl);
}

/* Write what is queued: try the socket directly first (most writes fit in
 * the kernel's buffer and finish here, no request needed); only the rest
 * goes to uv_write, which waits for the socket to drain. */
static void flush(struct client *cl)
{
    struct conn *c = &cl->conn;
    while (!cl->writing && !outq_empty(&c->out) && c->close != CLOSE_NOW) {
        struct iovec iov[64];
        int n = outq_iov(&c->out, iov, 64);
        uv_buf_t bufs[64];
        for (int i = 0; i < n; i++)
            bufs[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
        int w = uv_try_write((uv_stream_t *)&cl->tcp, bufs, (unsigned)n);
        if (w > 0) {
            conn_sent(c, (size_t)w); /* may queue the next pipelined answer */
            continue;
        }
        if (w != UV_EAGAIN) {
            conn_abort(c);
            return;
        }
        /* The socket is full: uv_write waits for it. It gets only the rest
         * of a frame already started, or the first byte of the next one:
         * what is handed to libuv cannot be taken back, and a member cut
         * off meanwhile must get nothing more than the frame it is in the
         * middle of (its backlog is dropped). Once that piece is out,
         * on_write goes back to uv_try_write for the rest. */
        if (c->out.head_off == 0)
            bufs[0].len = 1;
        c->out.pinned = 1;
        cl->pinned_bytes = bufs[0].len;
        cl->writing = true;
        cl->write_req.data = cl;
        if (uv_write(&cl->write_req, (uv_stream_t *)&cl->tcp, bufs, 1, on_write) < 0) {
            cl->writing = false;
            c->out.pinned = 0;
            conn_abort(c);
        }
    }
}

/* The prepare handle calls this right before the loop blocks in epoll:
 * everything this turn queued — responses, and chat events fanned out to
 * thousands of members — leaves in one writev per client. */
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

static size_t sink_deliver(struct room_member *m, struct rbuf *ev)
{
    struct client *cl = container_of(conn_of_member(m), struct client, conn);
    struct conn *c = &cl->conn;
    if (outq_push(&c->out, rbuf_ref(ev)) < 0)
        return (size_t)-1; /* out of memory counts as over the limit */
    mark_dirty(cl);
    /* What waits unsent. The nodes handed to a uv_write stay in the outq
     * until it completes, but libuv may have written part of them already:
     * it knows how much is left (the 1 MiB rule counts exactly). */
    if (cl->writing)
        return c->out.bytes - cl->pinned_bytes +
               uv_stream_get_write_queue_size((uv_stream_t *)&cl->tcp);
    return c->out.bytes;
}

static void sink_cut_off(struct room_member *m)
{
    struct client *cl = container_of(conn_of_member(m), struct client, conn);
    conn_ws_cut_off(&cl->conn);
    mark_dirty(cl);
}

/* Inside some room call, maybe another client's write: only take note.
 * before_poll feeds the held input, then writes what it caused. */
static void sink_unblock(struct room_member *m)
{
    struct client *cl = container_of(conn_of_member(m), struct client, conn);
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

const struct room_sink async_sink = {
    .deliver = sink_deliver,
    .cut_off = sink_cut_off,
    .unblock = sink_unblock,
    .stopping = stop_signal_requested,
};

/* --- deferred actions: how this model waits ----------------------------- */

static struct client *owner_of(struct action *a) { return a->owner; }

static void on_sleep_done(uv_timer_t *t)
{
    struct client *cl = t->data;
    cl->armed_deadline = 0;
    conn_resume(&cl->conn);
    client_sync(cl);
}

void fetch_done(struct action *a)
{
    struct client *cl = owner_of(a);
    conn_resume(&cl->conn);
    client_sync(cl);
}

struct pool_job {
    uv_work_t req;
    struct client *cl;
    struct action *a;
};

/* On a pool thread. A /cpu job holds the GIL while it computes (the
 * emulation of Python code running in an executor); a password hash does
 * not, as hashlib releases it around PBKDF2. */
static void pool_work(uv_work_t *req)
{
    struct pool_job *job = req->data;
    bool gil = job->a->kind == ACTION_CPU;
    if (gil)
        gil_acquire();
    action_run(job->a);
    if (gil)
        gil_release();
}

static void free_client_if_done(struct client *cl);

/* Back on the loop thread. */
static void pool_done(uv_work_t *req, int status)
{
    struct pool_job *job = req->data;
    struct client *cl = job->cl;
    (void)status;
    if (cl->orphan == job->a) { /* the client left while we computed */
        action_free(job->a);
        cl->orphan = NULL;
        free(job);
        free_client_if_done(cl);
        return;
    }
    free(job);
    conn_resume(&cl->conn);
    client_sync(cl);
}

static void start_action(struct client *cl, struct action *a)
{
    a->started = true;
    a->owner = cl;
    switch (a->kind) {
    case ACTION_SLEEP:
        cl->armed_deadline = 0;
        uv_timer_start(&cl->timer, on_sleep_done, a->sleep.ms, 0);
        return;
    case ACTION_FETCH:
        if (curl_uv_start(server.curl, a) < 0) {
            action_fetch_done(a, CURLE_OUT_OF_MEMORY);
            conn_resume(&cl->conn);
        }
        return;
    case ACTION_CPU:
        if (!server.app.cfg.cpu_pool) {
            /* The lesson of this model: CPU work on the loop blocks every
             * other client until it is done. */
            action_run(a);
            conn_resume(&cl->conn);
            return;
        }
        break;
    case ACTION_PASSWORD:
        break; /* PBKDF2 takes tens of ms: never on the loop */
    }
    struct pool_job *job = malloc(sizeof *job);
    if (!job) {
        conn_abort(&cl->conn);
        return;
    }
    /* Filled in before queueing: a pool thread may start on it at once. */
    job->req.data = job;
    job->cl = cl;
    job->a = a;
    if (uv_queue_work(server.loop, &job->req, pool_work, pool_done) < 0) {
        free(job);
        conn_abort(&cl->conn);
    }
}

/* --- timers ------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    struct client *cl = t->data;
    cl->armed_deadline = 0;
    if (cl->lingering) {
        client_close(cl);
        return;
    }
    conn_on_timeout(&cl->conn);
    client_sync(cl);
}

/* --- the one place that maps the core's wishes onto libuv --------------- */

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

/* Closing after the last response: send our FIN, then read and discard until
 * the peer's, so that unread request bytes do not turn our close into a
 * reset that could destroy the response in flight. */
static void linger(struct client *cl)
{
    if (conn_peer_done(&cl->conn)) { /* nothing more can come: no need to drain */
        client_close(cl);
        return;
    }
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&cl->tcp, on_shutdown_done) < 0) {
        free(req);
        client_close(cl);
        return;
    }
    cl->lingering = true;
    if (!cl->reading && !cl->paused) /* paused: resumed before the next poll */
        uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read);
    cl->reading = true;
    uv_timer_start(&cl->timer, on_deadline, CLOSE_LINGER_MS, 0);
}

void client_sync(struct client *cl)
{
    struct conn *c = &cl->conn;
    if (cl->closing || cl->lingering)
        return;
    struct action *a;
    while (c->close != CLOSE_NOW && (a = conn_action_to_start(c)))
        start_action(cl, a);
    if (c->close != CLOSE_NOW)
        flush(cl);
    if (c->close == CLOSE_NOW) {
        client_close(cl);
        return;
    }
    if (c->close == CLOSE_FLUSHED && outq_empty(&c->out) && !cl->writing && !c->action) {
        linger(cl);
        return;
    }
    bool want = conn_want_read(c);
    if (cl->paused)
        ; /* resume_paused_clients starts reading again if still wanted */
    else if (want && !cl->reading)
        uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read);
    else if (!want && cl->reading)
        uv_read_stop((uv_stream_t *)&cl->tcp);
    cl->reading = want;
    /* The timer serves the core's deadline except while a /sleep uses it. */
    if (c->action && c->action->kind == ACTION_SLEEP)
        return;
    uint64_t deadline = conn_deadline(c);
    if (deadline != cl->armed_deadline) {
        cl->armed_deadline = deadline;
        if (deadline) {
            uint64_t now = app_now_ms();
            uv_timer_start(&cl->timer, on_deadline, deadline > now ? deadline - now : 0, 0);
        } else {
            uv_timer_stop(&cl->timer);
        }
    }
}

/* --- birth and death ---------------------------------------------------- */

static void free_client_if_done(struct client *cl)
{
    if (cl->open_handles || cl->orphan)
        return;
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        server.clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    free(cl);
    server_maybe_finished();
}

static void on_handle_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    cl->open_handles--;
    free_client_if_done(cl);
}

void client_close(struct client *cl)
{
    if (cl->closing)
        return;
    cl->closing = true;
    if (cl->dirty) { /* it will be freed before the next flush */
        struct client **p = &server.dirty;
        while (*p != cl)
            p = &(*p)->next_dirty;
        *p = cl->next_dirty;
        cl->dirty = false;
    }
    conn_unblock_drop(&cl->conn);
    if (cl->paused) {
        struct client **p = &server.paused;
        while (*p != cl)
            p = &(*p)->next_paused;
        *p = cl->next_paused;
        cl->paused = false;
    }
    struct conn *c = &cl->conn;
    struct action *a = c->action;
    if (a && a->started) {
        if (a->kind == ACTION_FETCH) {
            curl_uv_cancel(server.curl, a);
        } else if (a->kind == ACTION_CPU || a->kind == ACTION_PASSWORD) {
            /* A pool job cannot be stopped: it finishes into the void. */
            cl->orphan = a;
            c->action = NULL;
        }
    }
    if (cl->counted)
        server.live--;
    conn_free(c); /* leaves the room: the others get our `leave` */
    uv_close((uv_handle_t *)&cl->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&cl->timer, on_handle_closed);
}

void client_accept(uv_stream_t *listener)
{
    struct client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return; /* the connection waits in the backlog; we retry next time */
    uv_tcp_init(server.loop, &cl->tcp);
    uv_timer_init(server.loop, &cl->timer);
    cl->tcp.data = cl->timer.data = cl;
    cl->open_handles = 2;
    cl->next = server.clients;
    if (cl->next)
        cl->next->prev = cl;
    server.clients = cl;
    conn_init(&cl->conn, &server.app);
    if (uv_accept(listener, (uv_stream_t *)&cl->tcp) < 0) {
        client_close(cl);
        return;
    }
    uv_tcp_nodelay(&cl->tcp, 1);
    struct sockaddr_storage peer;
    int peer_len = sizeof peer;
    if (uv_tcp_getpeername(&cl->tcp, (struct sockaddr *)&peer, &peer_len) == 0)
        conn_set_peer(&cl->conn, (struct sockaddr *)&peer); /* failed logins count per address */
    if (server.live >= server.app.cfg.max_conns || server.stopping) {
        /* --max-conns: say so and close, never queue without bound. */
        conn_refuse(&cl->conn, app_busy_response(&server.app));
    } else {
        server.live++;
        cl->counted = true;
    }
    client_sync(cl);
}
