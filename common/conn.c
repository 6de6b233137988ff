/* The connection state machine (see conn.h for how a model drives it).
 *
 * HTTP: bytes go to http-parser, which pauses after each complete request
 * so that requests are answered strictly in order. Input that arrives while
 * a request is being answered waits in c->in (bounded), and reading pauses
 * when it fills: that is how pipelining meets backpressure.
 *
 * WebSocket: after the upgrade the same bytes go to the frame decoder, and
 * complete messages go to the room.
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "gil.h"
#include "http_response.h"

static size_t ws_feed(struct conn *c, const char *data, size_t len);
static void leave_room(struct conn *c);
static void end_hold(struct conn *c);

void conn_init(struct conn *c, struct app *app)
{
    memset(c, 0, sizeof *c);
    c->app = app;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->since_ms = app_now_ms();
    atomic_fetch_add(&app->n->connections, 1);
}

void conn_set_peer(struct conn *c, const struct sockaddr *sa)
{
    login_peer_from(&c->peer, sa);
}

void conn_unblock_drop(struct conn *c)
{
    if (!c->unblock_queue)
        return;
    struct conn **p = &c->unblock_queue->head;
    while (*p != c)
        p = &(*p)->next_unblock;
    *p = c->next_unblock;
    c->unblock_queue = NULL;
}

void conn_free(struct conn *c)
{
    conn_unblock_drop(c);
    if (c->ws) {
        leave_room(c);
        ws_decoder_free(&c->ws->dec);
        free(c->ws);
        atomic_fetch_sub(&c->app->n->ws_clients, 1);
    }
    http_req_free(c->req);
    action_free(c->action);
    buf_free(&c->in);
    outq_clear(&c->out);
    atomic_fetch_sub(&c->app->n->connections, 1);
    c->req = NULL;
    c->action = NULL;
    c->ws = NULL;
}

/* --- answering ---------------------------------------------------------- */

static void queue(struct conn *c, struct rbuf *r)
{
    if (!r || outq_push(&c->out, r) < 0)
        c->close = CLOSE_NOW; /* out of memory: the peer sees a reset, not a lie */
}

void conn_respond(struct conn *c, const struct response *r)
{
    struct http_req *req = c->req;
    bool head = req && req->method == HTTP_HEAD;
    bool keep = req && req->keep_alive && !req->error && !c->shutting_down && !c->peer_eof &&
                r->status != 408 && r->status < 500;
    enum conn_mode mode = MODE_CLOSE;
    if (keep)
        mode = req->major == 1 && req->minor == 0 ? MODE_KEEP_ECHO : MODE_KEEP;
    queue(c, http_response_build(r, c->app->model, mode, head));
    if (mode == MODE_CLOSE && c->close == CLOSE_NO)
        c->close = CLOSE_FLUSHED;
    http_req_free(c->req);
    c->req = NULL;
    c->requests++;
    c->since_ms = app_now_ms();
}

/* A request the parser refused: say why and close, since the stream cannot be
 * trusted to be in step any more. */
static void fail(struct conn *c, int status)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, http_status_text(status));
    if (c->req)
        c->req->error = status;
    conn_respond(c, &(struct response){status, "text/plain; charset=utf-8", NULL, body, (size_t)n});
    c->close = c->close == CLOSE_NOW ? CLOSE_NOW : CLOSE_FLUSHED;
}

void conn_defer(struct conn *c, struct action *a)
{
    if (!a) {
        fail(c, 500);
        return;
    }
    c->action = a;
}

void conn_upgrade(struct conn *c, const char *accept_key, const char *user)
{
    struct app *app = c->app;
    char headers[160];
    snprintf(headers, sizeof headers,
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
             accept_key);
    struct ws_session *w = calloc(1, sizeof *w);
    if (!w) {
        fail(c, 500);
        return;
    }
    queue(c, http_response_build(&(struct response){101, NULL, headers, NULL, 0}, app->model,
                                 MODE_UPGRADE, false));
    http_req_free(c->req);
    c->req = NULL;
    c->requests++;
    ws_decoder_init(&w->dec);
    w->member.owner = c;
    c->ws = w;
    atomic_fetch_add(&app->n->ws_clients, 1);
    /* welcome and join go through the sink into c->out, after the 101. */
    if (app->chat->join(app->chat_ctx, &w->member, user) < 0) {
        w->phase = WS_CLOSE_SENT;
        w->close_sent_ms = app_now_ms();
        queue(c, ws_close_frame_new(1011));
    }
}

void conn_resume(struct conn *c)
{
    struct action *a = c->action;
    c->action = NULL;
    if (a && c->req)
        app_finish_action(c, c->req, a);
    action_free(a);
    conn_flushed(c); /* carry on with what was pipelined behind it */
}

/* --- reading HTTP ------------------------------------------------------- */

static void dispatch(struct conn *c)
{
    struct http_req *req = c->req;
    atomic_fetch_add(&c->app->n->requests, 1);
    if (req->error) {
        fail(c, req->error);
        return;
    }
    app_route(c, req);
}

/* Parse and answer as many requests from p[0..n) as can be answered now;
 * returns the bytes used. Stops at a deferred action, an upgrade, a close,
 * or when too much output waits for a client that is not reading. */
static size_t process(struct conn *c, const char *p, size_t n)
{
    size_t used = 0;
    while (used < n && c->close == CLOSE_NO && !c->action && !c->ws &&
           c->out.bytes < CONN_OUT_HIGH) {
        if (!c->req) {
            c->req = http_req_new(app_now_ms());
            if (!c->req) {
                c->close = CLOSE_NOW;
                break;
            }
        }
        struct http_req *req = c->req;
        if (!req->head_checked) {
            /* RFC 9112 2.2: ignore empty lines before a request line. */
            if (req->scan.pos == 0)
                while (used < n && (p[used] == '\r' || p[used] == '\n'))
                    used++;
            /* The head stays unparsed (buffered in c->in) until it is all
             * here and well formed: see http_head.h for why. */
            int v = head_scan(&req->scan, p + used, n - used);
            if (v == HEAD_NEED_MORE)
                break;
            if (v != HEAD_DONE) {
                fail(c, v);
                break;
            }
            req->head_checked = true;
        }
        c->parser.data = req;
        size_t give = n - used;
        if (!req->head_done) {
            /* The checked head alone first (at most HTTP_MAX_HEAD bytes, so
             * 431 and 400 were decided by the scan, whatever the reads):
             * then the parser knows whether a chunked body follows before it
             * sees a byte of it. */
            size_t head_left = req->scan.pos - req->head_fed;
            if (head_left == 0) {
                fail(c, 400); /* the parser wants more head than the scan saw */
                break;
            }
            if (give > head_left)
                give = head_left;
        } else if (req->chunked) {
            size_t end;
            int v = chunks_scan(&req->chunks, p + used, give, &end);
            if (v != CHUNKS_MORE && v != CHUNKS_DONE) {
                fail(c, v);
                break;
            }
            give = end;
        }
        bool head_bytes = !req->head_done;
        size_t k = http_parser_execute(&c->parser, &http_req_settings, p + used, give);
        if (head_bytes)
            req->head_fed = (uint16_t)(req->head_fed + k);
        used += k;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (req->head_done && !req->head_done_ms)
            req->head_done_ms = app_now_ms();
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            dispatch(c);
        } else if (e != HPE_OK) {
            fail(c, req->error ? req->error : e == HPE_HEADER_OVERFLOW ? 431 : 400);
        } else if (k == 0) {
            break; /* cannot happen with HPE_OK, but never spin */
        }
    }
    return used;
}

/* Work through input buffered while the connection was busy. */
static void pump(struct conn *c)
{
    if (c->in.len == 0)
        return;
    size_t used = c->ws ? 0 : process(c, c->in.data, c->in.len);
    if (c->ws && used < c->in.len)
        used += ws_feed(c, c->in.data + used, c->in.len - used);
    buf_consume(&c->in, used);
    if (c->in.len == 0)
        buf_free(&c->in); /* an idle connection keeps no buffer */
}

/* After the peer's EOF nothing new can arrive: once what is complete has
 * been answered, a request still half-read can never finish, so close. */
static void settle(struct conn *c)
{
    if (c->peer_eof && !c->ws && !c->action && c->close == CLOSE_NO &&
        (c->in.len == 0 || c->out.bytes < CONN_OUT_HIGH))
        c->close = CLOSE_FLUSHED;
}

/* Keep what could not be taken now behind what already waits. A read may
 * overshoot CONN_IN_MAX by one read's worth; past that the model ignored
 * conn_want_read(). */
static bool keep_input(struct conn *c, const char *data, size_t len)
{
    if (buf_append(&c->in, data, len, CONN_IN_MAX + 65536) < 0) {
        c->close = CLOSE_NOW;
        return false;
    }
    return true;
}

void conn_feed(struct conn *c, const char *data, size_t len)
{
    if (c->close == CLOSE_NOW || len == 0)
        return;
    if (c->ws) {
        if (c->in.len) { /* held input goes first: messages keep their order */
            if (keep_input(c, data, len) && !c->ws->held)
                pump(c);
            return;
        }
        size_t used = ws_feed(c, data, len);
        if (used < len)
            keep_input(c, data + used, len - used);
        return;
    }
    size_t used = 0;
    if (c->in.len == 0)
        used = process(c, data, len); /* the common case: nothing buffered */
    if (used < len) {
        if (c->ws) {
            used += ws_feed(c, data + used, len - used); /* frames right behind the upgrade */
            if (used < len)
                keep_input(c, data + used, len - used);
        } else if (c->close == CLOSE_NO) {
            if (keep_input(c, data + used, len - used))
                pump(c);
        }
    }
    settle(c);
}

void conn_eof(struct conn *c)
{
    c->peer_eof = true;
    if (c->ws && c->in.len && c->ws->phase == WS_OPEN) {
        /* Input held back by the room came before this EOF: it goes to the
         * room first, held or not (there is no more to slow down). */
        c->ws->held = false;
        c->ws->no_hold = true;
        pump(c);
    }
    if (c->ws) {
        /* A WebSocket peer that vanished without a close frame. */
        leave_room(c);
        c->ws->phase = WS_CLOSED;
        c->close = CLOSE_NOW;
        return;
    }
    settle(c);
}

void conn_sent(struct conn *c, size_t n)
{
    size_t before = c->out.bytes;
    outq_consume(&c->out, n);
    /* Only a member that may be deep: the room then sees it drain, and a
     * poster it holds back goes on (see room_post). */
    if (c->ws && c->ws->phase == WS_OPEN && before > ROOM_SHALLOW_BACKLOG)
        c->app->chat->backlog(c->app->chat_ctx, &c->ws->member, c->out.bytes);
    if (outq_empty(&c->out))
        conn_flushed(c);
}

void conn_unblock(struct conn *c)
{
    if (!c->ws || !c->ws->held)
        return;
    c->ws->held = false;
    pump(c); /* may be held again at once */
}

void conn_unblock_later(struct conn_queue *q, struct conn *c)
{
    if (c->unblock_queue)
        return;
    c->unblock_queue = q;
    c->next_unblock = q->head;
    q->head = c;
}

struct conn *conn_unblock_next(struct conn_queue *q)
{
    struct conn *c = q->head;
    if (!c)
        return NULL;
    q->head = c->next_unblock;
    c->unblock_queue = NULL;
    conn_unblock(c);
    return c;
}

void conn_flushed(struct conn *c)
{
    if (!c->req && !c->ws && !c->action)
        c->since_ms = app_now_ms(); /* keep-alive idle time starts now */
    pump(c);
    settle(c);
}

void conn_abort(struct conn *c)
{
    c->close = CLOSE_NOW;
}

void conn_refuse(struct conn *c, struct rbuf *answer)
{
    queue(c, answer);
    if (c->close == CLOSE_NO)
        c->close = CLOSE_FLUSHED;
}

/* --- time --------------------------------------------------------------- */

enum conn_timer conn_timer_kind(const struct conn *c)
{
    if (c->close == CLOSE_NOW)
        return TIMER_NONE;
    if (c->ws)
        return c->ws->phase == WS_CLOSE_SENT ? TIMER_WS_CLOSE
               : c->ws->held                ? TIMER_ROOM_WAIT
                                            : TIMER_NONE;
    if (c->action || c->close == CLOSE_FLUSHED)
        return TIMER_NONE;
    if (c->req)
        return !c->req->head_done ? TIMER_HEAD : !c->req->complete ? TIMER_BODY : TIMER_NONE;
    if (!outq_empty(&c->out) || c->in.len)
        return TIMER_NONE; /* still answering: idle time starts when flushed */
    return c->requests ? TIMER_IDLE : TIMER_FIRST_BYTE;
}

/* At a shutdown, our 1001 still waits behind the member's backlog: the
 * leaves and messages fanned out to it before the stop. Usually that goes
 * out in milliseconds. But when many members left just before the stop,
 * each of thousands of members has a thousand leaves to read first, and the
 * close would only be seen when the peer's 2 s were already over. */
static bool backlog_holds_close(const struct conn *c)
{
    return c->shutting_down && c->ws->phase == WS_CLOSE_SENT && !c->ws->close_hurried &&
           !outq_empty(&c->out);
}

/* The drain time is over: drop what has not started to go out (a frame
 * partly written, or handed to the kernel, is finished, or the stream would
 * be garbage) and send the 1001 next — unless it is itself among what is
 * already going out. The peer's CONN_WS_CLOSE_MS start now: it can answer
 * only what it has received. "Finish what can finish in time, drop the
 * rest" (the contract, at SIGTERM). */
static void hurry_close(struct conn *c)
{
    c->ws->close_hurried = true;
    outq_drop_unsent(&c->out);
    for (const struct outq_node *n = c->out.head; n; n = n->next)
        if (n->buf->len >= 2 && (uint8_t)n->buf->data[0] == (0x80 | WS_OP_CLOSE))
            return; /* already going out: its 2 s run from when it was queued */
    c->ws->close_sent_ms = app_now_ms();
    queue(c, ws_close_frame_new(1001));
}

uint64_t conn_deadline(const struct conn *c)
{
    switch (conn_timer_kind(c)) {
    case TIMER_FIRST_BYTE: return c->since_ms + CONN_FIRST_BYTE_MS;
    case TIMER_IDLE: return c->since_ms + CONN_IDLE_MS;
    case TIMER_HEAD: return c->req->head_started_ms + CONN_HEAD_MS;
    case TIMER_BODY: return c->req->head_done_ms + CONN_BODY_MS;
    case TIMER_WS_CLOSE:
        if (backlog_holds_close(c))
            return c->ws->close_sent_ms + CONN_SHUTDOWN_DRAIN_MS;
        return c->ws->close_sent_ms + CONN_WS_CLOSE_MS;
    case TIMER_ROOM_WAIT: return c->ws->held_ms + ROOM_STALL_MS;
    case TIMER_NONE: break;
    }
    return 0;
}

void conn_on_timeout(struct conn *c)
{
    uint64_t deadline = conn_deadline(c);
    if (!deadline || app_now_ms() < deadline)
        return; /* the deadline moved since the timer was armed */
    switch (conn_timer_kind(c)) {
    case TIMER_HEAD:
    case TIMER_BODY:
        fail(c, 408);
        break;
    case TIMER_WS_CLOSE:
        if (backlog_holds_close(c)) {
            hurry_close(c);
            break;
        }
        c->close = CLOSE_NOW; /* silently, as the contract says */
        break;
    case TIMER_FIRST_BYTE:
    case TIMER_IDLE:
        c->close = CLOSE_NOW; /* silently, as the contract says */
        break;
    case TIMER_ROOM_WAIT:
        conn_unblock(c); /* ask again: the member we waited for may have stalled */
        break;
    case TIMER_NONE:
        break;
    }
}

bool conn_peer_done(const struct conn *c)
{
    return c->peer_eof || (c->ws && c->ws->close_heard);
}

bool conn_want_read(const struct conn *c)
{
    if (c->close != CLOSE_NO || c->peer_eof)
        return false;
    if (c->ws)
        return c->ws->phase != WS_CLOSED && c->out.bytes < CONN_OUT_HIGH && !c->ws->held;
    return c->in.len < CONN_IN_MAX;
}

void conn_shutdown(struct conn *c)
{
    c->shutting_down = true;
    if (c->ws) {
        if (c->ws->phase == WS_OPEN) {
            leave_room(c);
            end_hold(c);
            c->ws->phase = WS_CLOSE_SENT;
            c->ws->close_sent_ms = app_now_ms();
            queue(c, ws_close_frame_new(1001));
        }
        return;
    }
    if (c->action)
        return; /* its response goes out with Connection: close */
    if (c->close == CLOSE_NO)
        c->close = CLOSE_FLUSHED;
}

/* --- WebSocket ---------------------------------------------------------- */

/* The member is leaving the room: nothing holds its input back any more.
 * What waits in c->in is taken with the next read, or dropped with the
 * connection when the close handshake times out; pumping here could
 * re-enter a feed of this very connection (a poster cut off by its own
 * fan-out). */
static void end_hold(struct conn *c)
{
    c->ws->held = false;
}

static void leave_room(struct conn *c)
{
    /* A no-op for a member already gone (cut off, or left before): only the
     * room may read `joined`, under its lock in chat-threaded. */
    if (c->ws)
        c->app->chat->leave(c->app->chat_ctx, &c->ws->member);
}

/* Start the close handshake from our side with `code`. */
static void ws_close(struct conn *c, uint16_t code)
{
    struct ws_session *w = c->ws;
    if (w->phase != WS_OPEN)
        return;
    leave_room(c);
    end_hold(c);
    w->phase = WS_CLOSE_SENT;
    w->close_sent_ms = app_now_ms();
    queue(c, ws_close_frame_new(code));
}

void conn_ws_close(struct conn *c, uint16_t code)
{
    if (c->ws)
        ws_close(c, code);
}

void conn_ws_cut_off(struct conn *c)
{
    struct ws_session *w = c->ws;
    if (!w || w->phase != WS_OPEN)
        return;
    /* The room has already removed the member; its backlog goes, but a frame
     * already partly written must be finished or the close would be garbage. */
    outq_drop_unsent(&c->out);
    end_hold(c);
    w->phase = WS_CLOSE_SENT;
    w->close_sent_ms = app_now_ms();
    queue(c, ws_close_frame_new(1008));
}

/* Returns the bytes taken: all of them, unless the room held this poster
 * back (then the caller keeps the rest, unread, for conn_unblock). */
static size_t ws_feed(struct conn *c, const char *data, size_t len)
{
    struct ws_session *w = c->ws;
    size_t off = 0;
    if (w->held)
        return 0;
    /* Until the decoder says "nothing more": that last call, even with no
     * input left, is where it frees a delivered message's buffer, so an idle
     * member holds no heap memory. */
    for (;;) {
        size_t used = 0;
        struct ws_event ev =
            ws_decode(&w->dec, (const uint8_t *)data + off, len - off, &used);
        off += used;
        switch (ev.type) {
        case WS_EV_NONE:
            return off;
        case WS_EV_PONG:
            break;
        case WS_EV_TEXT:
            if (w->phase == WS_OPEN &&
                !c->app->chat->post(c->app->chat_ctx, &w->member, ev.data, ev.len) &&
                !w->no_hold) {
                /* Backpressure: the rest waits until the room's readers have
                 * caught up. The message just posted is in the room. */
                w->held = true;
                w->held_ms = app_now_ms();
                gil_tick();
                return off;
            }
            /* One read can hold thousands of messages, each fanned out to
             * every member. Under --gil the members' threads need the lock
             * to write that out; CPython's eval loop would see a drop
             * request between any two of them, so do we (a no-op without
             * --gil or when nobody waits). Without it a flooder's read was
             * fanned out whole while the readers' queues passed 1 MiB. */
            gil_tick();
            break;
        case WS_EV_PING:
            if (w->phase == WS_OPEN)
                queue(c, ws_frame_new(WS_OP_PONG, ev.data, ev.len));
            break;
        case WS_EV_CLOSE:
            /* Echo the peer's code (none if it sent none), then the server
             * closes the TCP connection first (RFC 6455 7.1.1). */
            w->close_heard = true;
            if (w->phase == WS_OPEN) {
                leave_room(c);
                queue(c, ws_close_frame_new(ev.code == 1005 ? 0 : ev.code));
            }
            w->phase = WS_CLOSED;
            c->close = CLOSE_FLUSHED;
            break;
        case WS_EV_ERROR:
            /* RFC 6455 7.1.7, "Fail the WebSocket Connection": send the
             * close frame and close the TCP connection after it, without
             * waiting for an answer the broken stream may never carry. */
            ws_close(c, ev.code);
            w->phase = WS_CLOSED;
            c->close = CLOSE_FLUSHED;
            break;
        }
    }
}
