#include "ws_client.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

const char *ws_kind_name(enum ws_kind k)
{
    switch (k) {
    case WS_TEXT: return "text";
    case WS_BINARY: return "binary";
    case WS_PONG: return "pong";
    case WS_CLOSE: return "close";
    case WS_EOF: return "EOF";
    case WS_TIMEOUT: return "nothing (safety cap reached)";
    }
    return "?";
}

static void push(struct ws *w, enum ws_kind kind, uint16_t code, const void *p, size_t n)
{
    struct ws_msg *m = calloc(1, sizeof *m);
    m->kind = kind;
    m->code = code;
    m->data = malloc(n + 1);
    if (n)
        memcpy(m->data, p, n);
    m->data[n] = '\0';
    m->len = n;
    if (w->tail)
        w->tail->next = m;
    else
        w->head = m;
    w->tail = m;
}

/* ---- wslay callbacks ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    (void)flags;
    struct ws *w = ud;
    if (w->pre_off < w->pre_len) {
        size_t n = w->pre_len - w->pre_off;
        if (n > len)
            n = len;
        memcpy(buf, w->pre + w->pre_off, n);
        w->pre_off += n;
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t n = recv(w->fd, buf, len, 0);
        if (n > 0)
            return n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            w->eof_seen = true;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    (void)flags;
    struct ws *w = ud;
    for (;;) {
        ssize_t n = send(w->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        else
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
    (void)ctx;
    (void)ud;
    return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

static void on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *ud)
{
    (void)ctx;
    struct ws *w = ud;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        push(w, WS_TEXT, 0, arg->msg, arg->msg_length);
        break;
    case WSLAY_BINARY_FRAME:
        push(w, WS_BINARY, 0, arg->msg, arg->msg_length);
        break;
    case WSLAY_PONG:
        push(w, WS_PONG, 0, arg->msg, arg->msg_length);
        break;
    case WSLAY_CONNECTION_CLOSE:
        w->close_received = true;
        push(w, WS_CLOSE, arg->status_code, arg->msg, arg->msg_length);
        break;
    default:
        break; /* pings: wslay queues the pong itself */
    }
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .genmask_callback = genmask_cb,
    .on_msg_recv_callback = on_msg_cb,
};

/* ---- the upgrade ---- */

static void base64(const unsigned char *in, int n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, n);
}

/* A 503 from --max-conns can mean only that the server has not yet seen an
 * earlier connection's close; tests of that limit set this to retry. */
bool ws_retry_busy;

struct ws *ws_connect_rcvbuf(int port, const char *cookie, int rcvbuf)
{
    int64_t busy_deadline = now_ms() + CAP_MS;
retry:;
    unsigned char raw[16];
    cr_assert(getrandom(raw, sizeof raw, 0) == sizeof raw);
    char key[32], accept_want[32];
    base64(raw, 16, key);
    char concat[96];
    snprintf(concat, sizeof concat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char sha[SHA_DIGEST_LENGTH];
    EVP_Digest(concat, strlen(concat), sha, NULL, EVP_sha1(), NULL);
    base64(sha, SHA_DIGEST_LENGTH, accept_want);

    struct tsock c = {0};
    c.fd = tcp_connect(port, rcvbuf);
    char *req = xasprintf("GET /chat/ws HTTP/1.1\r\n"
                          "Host: 127.0.0.1:%d\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: %s\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "Cookie: %s\r\n\r\n",
                          port, key, cookie);
    cr_assert(tsock_sends(&c, req));
    free(req);
    struct http_resp r;
    enum rd got = tsock_read_response(&c, true, &r, CAP_MS);
    cr_assert(got == RD_OK, "WebSocket upgrade: got %s", rd_name(got));
    if (r.status == 503 && ws_retry_busy && remaining_ms(busy_deadline) > 0) {
        resp_free(&r);
        tsock_close(&c);
        struct timespec pace = {0, 20 * 1000 * 1000};
        nanosleep(&pace, NULL); /* retry pacing, not synchronisation */
        goto retry;
    }
    cr_assert_eq(r.status, 101, "WebSocket upgrade answered %d, not 101", r.status);
    const char *up = resp_header(&r, "Upgrade");
    cr_assert(up && strcasecmp(up, "websocket") == 0, "101 without Upgrade: websocket");
    const char *conn_hdr = resp_header(&r, "Connection");
    cr_assert(conn_hdr && strcasestr(conn_hdr, "upgrade"), "101 without Connection: Upgrade");
    const char *acc = resp_header(&r, "Sec-WebSocket-Accept");
    cr_assert(acc != NULL, "101 without Sec-WebSocket-Accept");
    cr_assert_str_eq(acc, accept_want, "wrong Sec-WebSocket-Accept");
    resp_free(&r);

    struct ws *w = calloc(1, sizeof *w);
    w->fd = c.fd;
    /* Frames that came in the same read as the 101 belong to wslay. */
    w->pre = c.buf;
    w->pre_len = c.len;
    int fl = fcntl(w->fd, F_GETFL);
    fcntl(w->fd, F_SETFL, fl | O_NONBLOCK);
    cr_assert(wslay_event_context_client_init(&w->ctx, &callbacks, w) == 0);
    /* The server may send large frames (history); no limit on our side. */
    wslay_event_config_set_max_recv_msg_length(w->ctx, 64u << 20);
    return w;
}

struct ws *ws_connect(int port, const char *cookie)
{
    return ws_connect_rcvbuf(port, cookie, 0);
}

void ws_msg_free(struct ws_msg *m)
{
    if (m) {
        free(m->data);
        free(m);
    }
}

void ws_free(struct ws *w)
{
    if (!w)
        return;
    while (w->head) {
        struct ws_msg *m = w->head;
        w->head = m->next;
        ws_msg_free(m);
    }
    wslay_event_context_free(w->ctx);
    close(w->fd);
    free(w->pre);
    free(w);
}

/* ---- driving wslay ---- */

/* One round of I/O, waiting at most `wait` ms. */
static void pump(struct ws *w, int wait)
{
    if (w->dead)
        return;
    if (w->pre_off < w->pre_len && wslay_event_want_read(w->ctx)) {
        if (wslay_event_recv(w->ctx) != 0)
            w->dead = true;
        return;
    }
    short ev = 0;
    if (wslay_event_want_read(w->ctx))
        ev |= POLLIN;
    if (wslay_event_want_write(w->ctx))
        ev |= POLLOUT;
    if (!ev)
        return;
    struct pollfd p = {w->fd, ev, 0};
    if (poll(&p, 1, wait) <= 0)
        return;
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && wslay_event_want_read(w->ctx)) {
        if (wslay_event_recv(w->ctx) != 0) {
            w->dead = true;
            return;
        }
    }
    if ((p.revents & (POLLOUT | POLLERR | POLLHUP)) && wslay_event_want_write(w->ctx)) {
        if (wslay_event_send(w->ctx) != 0)
            w->dead = true;
    }
}

struct ws_msg *ws_recv(struct ws *w, int cap_ms)
{
    int64_t deadline = now_ms() + cap_ms;
    for (;;) {
        if (w->head) {
            struct ws_msg *m = w->head;
            w->head = m->next;
            if (!w->head)
                w->tail = NULL;
            m->next = NULL;
            return m;
        }
        if (w->dead || w->eof_seen) {
            w->dead = true;
            push(w, WS_EOF, 0, NULL, 0);
            continue;
        }
        if (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx)) {
            /* The close handshake is over on our side: only the TCP close
             * is left to see. */
            struct pollfd p = {w->fd, POLLIN, 0};
            if (poll(&p, 1, remaining_ms(deadline)) > 0) {
                char junk[4096];
                ssize_t n = recv(w->fd, junk, sizeof junk, 0);
                if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN)))
                    w->eof_seen = true;
            }
        } else {
            pump(w, remaining_ms(deadline));
        }
        if (!w->head && !w->dead && !w->eof_seen && remaining_ms(deadline) == 0) {
            struct ws_msg *m = calloc(1, sizeof *m);
            m->kind = WS_TIMEOUT;
            m->data = calloc(1, 1);
            return m;
        }
    }
}

void ws_flush(struct ws *w)
{
    int64_t deadline = now_ms() + CAP_MS;
    while (!w->dead && wslay_event_want_write(w->ctx)) {
        cr_assert(remaining_ms(deadline) > 0, "could not send to the server within the cap");
        pump(w, remaining_ms(deadline));
    }
}

void ws_queue_text(struct ws *w, const char *s, size_t n)
{
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)s, n};
    int r = wslay_event_queue_msg(w->ctx, &msg);
    cr_assert(r == 0, "wslay_event_queue_msg: %d", r);
}

void ws_send_text(struct ws *w, const char *s, size_t n)
{
    ws_queue_text(w, s, n);
    ws_flush(w);
}

void ws_send_texts(struct ws *w, const char *s)
{
    ws_send_text(w, s, strlen(s));
}

void ws_send_ping(struct ws *w, const char *payload)
{
    struct wslay_event_msg msg = {WSLAY_PING, (const uint8_t *)payload, strlen(payload)};
    cr_assert(wslay_event_queue_msg(w->ctx, &msg) == 0);
    ws_flush(w);
}

uint16_t ws_close_handshake(struct ws *w, uint16_t code)
{
    cr_assert(wslay_event_queue_close(w->ctx, code, NULL, 0) == 0);
    ws_flush(w);
    for (;;) {
        struct ws_msg *m = ws_recv(w, CAP_MS);
        enum ws_kind k = m->kind;
        uint16_t got = m->code;
        ws_msg_free(m);
        if (k == WS_CLOSE)
            return got;
        cr_assert(k == WS_TEXT, "waiting for the server's close frame, got %s", ws_kind_name(k));
    }
}

bool ws_wait_tcp_close(struct ws *w, int cap_ms)
{
    int64_t deadline = now_ms() + cap_ms;
    for (;;) {
        struct ws_msg *m = ws_recv(w, remaining_ms(deadline));
        enum ws_kind k = m->kind;
        ws_msg_free(m);
        if (k == WS_EOF)
            return true;
        if (k == WS_TIMEOUT)
            return false;
    }
}

/* ---- hand-made frames ---- */

size_t ws_frame(uint8_t *out, bool fin, int rsv, int opcode, bool mask, const void *payload,
                size_t n)
{
    size_t i = 0;
    out[i++] = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f));
    uint8_t mbit = mask ? 0x80 : 0;
    if (n < 126) {
        out[i++] = (uint8_t)(mbit | n);
    } else if (n < 65536) {
        out[i++] = mbit | 126;
        out[i++] = (uint8_t)(n >> 8);
        out[i++] = (uint8_t)n;
    } else {
        out[i++] = mbit | 127;
        for (int s = 56; s >= 0; s -= 8)
            out[i++] = (uint8_t)((uint64_t)n >> s);
    }
    uint8_t key[4] = {0};
    if (mask) {
        cr_assert(getrandom(key, 4, 0) == 4);
        memcpy(out + i, key, 4);
        i += 4;
    }
    const uint8_t *p = payload;
    for (size_t j = 0; j < n; j++)
        out[i + j] = p[j] ^ key[j & 3];
    return i + n;
}

bool ws_send_raw(struct ws *w, const void *data, size_t n)
{
    ws_flush(w);
    const uint8_t *p = data;
    int64_t deadline = now_ms() + CAP_MS;
    while (n) {
        ssize_t s = send(w->fd, p, n, MSG_NOSIGNAL);
        if (s > 0) {
            p += s;
            n -= (size_t)s;
            continue;
        }
        if (s < 0 && errno == EINTR)
            continue;
        if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            cr_assert(remaining_ms(deadline) > 0, "could not send to the server within the cap");
            /* Keep reading while we wait, so neither side blocks the other. */
            struct pollfd pf = {w->fd, POLLOUT | POLLIN, 0};
            poll(&pf, 1, remaining_ms(deadline));
            if ((pf.revents & POLLIN) && !w->dead && wslay_event_want_read(w->ctx))
                if (wslay_event_recv(w->ctx) != 0)
                    w->dead = true;
            continue;
        }
        return false;
    }
    return true;
}

bool ws_send_frame(struct ws *w, bool fin, int rsv, int opcode, bool mask, const void *payload,
                   size_t n)
{
    uint8_t *buf = malloc(n + 14);
    size_t len = ws_frame(buf, fin, rsv, opcode, mask, payload, n);
    bool ok = ws_send_raw(w, buf, len);
    free(buf);
    return ok;
}

/* ---- chat helpers ---- */

struct jv *ws_recv_event(struct ws *w, int cap_ms)
{
    struct ws_msg *m = ws_recv(w, cap_ms);
    cr_assert(m->kind == WS_TEXT, "expected a chat event, got %s (close code %u)",
              ws_kind_name(m->kind), m->code);
    struct jv *v = jv_parse(m->data, m->len);
    cr_assert(v != NULL, "the server sent a text frame that is not JSON: %s", m->data);
    cr_assert(v->t == J_OBJ && jv_str(v, "type"), "event is not an object with a type: %s",
              m->data);
    ws_msg_free(m);
    return v;
}

struct jv *expect_event(struct ws *w, const char *type)
{
    struct jv *v = ws_recv_event(w, CAP_MS);
    const char *t = jv_str(v, "type");
    const char *u = jv_str(v, "user");
    long long seq = -1;
    jv_int(v, "seq", &seq);
    cr_assert_str_eq(t, type, "expected a %s event, got %s (user %s, seq %lld)", type, t,
                     u ? u : "-", seq);
    return v;
}

long long expect_event_by(struct ws *w, const char *type, const char *user)
{
    struct jv *v = expect_event(w, type);
    const char *u = jv_str(v, "user");
    cr_assert(u != NULL, "%s event without user", type);
    cr_assert_str_eq(u, user, "%s event by %s, expected %s", type, u, user);
    long long seq, ts;
    cr_assert(jv_int(v, "seq", &seq) && seq >= 1, "%s event without a valid seq", type);
    cr_assert(jv_int(v, "ts", &ts), "%s event without ts", type);
    jv_free(v);
    return seq;
}

void expect_close(struct ws *w, const uint16_t *codes, int ncodes, bool allowed_eof)
{
    struct ws_msg *m = ws_recv(w, CAP_MS);
    enum ws_kind k = m->kind;
    uint16_t code = m->code;
    char *data = m->data;
    m->data = NULL;
    ws_msg_free(m);
    if (k == WS_EOF) {
        cr_assert(allowed_eof, "connection closed without a close frame (expected close %u)",
                  codes[0]);
        free(data);
        return;
    }
    cr_assert(k == WS_CLOSE, "expected close %u, got %s: %.200s", codes[0], ws_kind_name(k), data);
    free(data);
    bool ok = code == 0 && allowed_eof;
    for (int i = 0; i < ncodes; i++)
        ok = ok || code == codes[i];
    cr_assert(ok, "close code %u, expected %u", code, codes[0]);
    /* Then the server must end the TCP connection (we echoed the close). */
    cr_assert(ws_wait_tcp_close(w, CAP_MS), "the server kept the connection open after its close");
}

void chat_round_trip(struct ws *w, const char *text)
{
    ws_send_texts(w, text);
    struct jv *v = expect_event(w, "message");
    cr_assert_str_eq(jv_str(v, "text"), text);
    jv_free(v);
}

struct ws *chat_join(int port, const char *cookie, const char *user, long long *join_seq,
                     struct jv **welcome)
{
    struct ws *w = ws_connect(port, cookie);
    struct jv *wel = expect_event(w, "welcome");
    const char *u = jv_str(wel, "user");
    cr_assert(u && strcmp(u, user) == 0, "welcome names %s, expected %s", u ? u : "nobody", user);
    const struct jv *users = jv_get(wel, "users");
    cr_assert(users && users->t == J_ARR, "welcome without a users array");
    const struct jv *hist = jv_get(wel, "history");
    cr_assert(hist && hist->t == J_ARR, "welcome without a history array");
    long long seq = expect_event_by(w, "join", user);
    if (join_seq)
        *join_seq = seq;
    if (welcome)
        *welcome = wel;
    else
        jv_free(wel);
    return w;
}
