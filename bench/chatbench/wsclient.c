/* The WebSocket client pool of chatbench: see wsclient.h. */
#include "wsclient.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "ws_codec.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define HS_MAX 2048 /* a 101 answer is a few hundred bytes */

/* One read buffer for every client: libuv calls alloc_cb and then read_cb
 * for one stream before it touches another, and read_cb consumes all of it. */
static uint8_t rbuf[64 * 1024];

uint64_t wsc_rand(void)
{
    /* xorshift64*: a handful of instructions, seeded once from the kernel. */
    static uint64_t s;
    if (s == 0) {
        if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s)
            s = now_ns();
        s |= 1;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
}

uint64_t wsc_prepare_process(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

size_t wsc_frame(uint8_t *out, unsigned op, const void *payload, size_t len)
{
    size_t h;
    out[0] = (uint8_t)(0x80 | op);
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
        h = 2;
    } else if (len < 65536) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    uint32_t m32 = (uint32_t)wsc_rand();
    uint8_t *mask = out + h;
    memcpy(mask, &m32, 4);
    const uint8_t *in = payload;
    uint8_t *o = out + h + 4;
    for (size_t i = 0; i < len; i++)
        o[i] = in[i] ^ mask[i & 3];
    return h + 4 + len;
}

/* ---- reporting ---------------------------------------------------------- */

/* The first failure of each run is explained on stderr; the rest are only
 * counted (thousands of identical lines would hide the summary). */
static void explain(const struct wsc *c, const char *what, const char *detail)
{
    static bool told;
    if (told)
        return;
    told = true;
    fprintf(stderr, "chatbench: client %u: %s%s%s (further failures only counted)\n", c->idx,
            what, detail ? ": " : "", detail ? detail : "");
}

static const char *close_reason(uint16_t code)
{
    switch (code) {
    case 1000: return "closed 1000";
    case 1001: return "closed 1001";
    case 1002: return "closed 1002";
    case 1003: return "closed 1003";
    case 1007: return "closed 1007";
    case 1008: return "closed 1008";
    case 1009: return "closed 1009";
    case 1011: return "closed 1011";
    default: return "closed";
    }
}

/* ---- life cycle ----------------------------------------------------------- */

static void pump(struct wsc_pool *p);

void wsc_close(struct wsc *c)
{
    if (c->has_handle) {
        c->has_handle = false;
        uv_close((uv_handle_t *)&c->tcp, NULL);
    }
    free(c->hs);
    c->hs = NULL;
    c->state = WSC_DEAD;
}

/* A client that never opened. */
static void hs_fail(struct wsc *c, const char *why, const char *detail)
{
    struct wsc_pool *p = c->pool;
    explain(c, why, detail);
    c->why = why;
    wsc_close(c);
    p->inflight--;
    p->done++;
    p->ops.fail(c);
    pump(p);
}

/* An open client the server closed (or that broke the protocol). */
static void gone(struct wsc *c, const char *why)
{
    c->why = why;
    wsc_close(c);
    c->pool->ops.closed(c);
}

static const char *connect_reason(int status)
{
    switch (status) {
    case UV_ECONNRESET: return "reset";
    case UV_ETIMEDOUT: return "timeout";
    default: return "connect";
    }
}

/* ---- frames --------------------------------------------------------------- */

/* A server frame's header at p[0..n): 1 with *hl and *len, 0 when more
 * bytes are needed, -1 for a frame RFC 6455 forbids a server to send. */
static int frame_head(const uint8_t *p, size_t n, size_t *hl, uint64_t *len)
{
    if (n < 2)
        return 0;
    unsigned op = p[0] & 0x0f;
    if ((p[0] & 0x70) || (op > 2 && op < 8) || op > 10 || (p[1] & 0x80))
        return -1; /* RSV bits without an extension, reserved opcode, masked */
    uint64_t l = p[1] & 0x7f;
    if (l < 126) {
        *hl = 2;
    } else if (l == 126) {
        if (n < 4)
            return 0;
        l = (uint64_t)p[2] << 8 | p[3];
        *hl = 4;
    } else {
        if (n < 10)
            return 0;
        l = 0;
        for (int i = 2; i < 10; i++)
            l = l << 8 | p[i];
        if (l >> 63)
            return -1;
        *hl = 10;
    }
    if (op >= 8 && (l > 125 || !(p[0] & 0x80)))
        return -1; /* control frames are short and never fragmented */
    *len = l;
    return 1;
}

static void deliver(struct wsc *c, uint8_t b0, const uint8_t *payload, size_t have, uint64_t len)
{
    unsigned op = b0 & 0x0f;
    switch (op) {
    case WS_OP_CLOSE:
        c->close_code = have >= 2 ? (uint16_t)(payload[0] << 8 | payload[1]) : 1005;
        /* We do not echo the close: counting stops here, and the server
         * drops a peer that does not answer after 2 s anyway. */
        gone(c, close_reason(c->close_code));
        return;
    case WS_OP_PING: {
        uint8_t f[WS_MAX_CONTROL + 14];
        uv_buf_t b = uv_buf_init((char *)f, (unsigned)wsc_frame(f, WS_OP_PONG, payload, have));
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1); /* best effort */
        return;
    }
    case WS_OP_PONG:
        return;
    default:
        c->pool->ops.frame(c, op, payload, have, len);
    }
}

/* Split p[0..n) into frames. Whole frames are delivered where they lie;
 * only a frame cut by the end of the read is copied (its first WSC_PART
 * bytes; the rest of a larger one is skipped). */
static void feed(struct wsc *c, const uint8_t *p, size_t n)
{
    while (n > 0 && c->state == WSC_OPEN) {
        if (c->skip) {
            size_t k = n < c->skip ? n : (size_t)c->skip;
            c->skip -= k;
            p += k;
            n -= k;
            continue;
        }
        size_t hl;
        uint64_t len;
        int r;
        if (c->plen == 0) {
            r = frame_head(p, n, &hl, &len);
            if (r < 0) {
                gone(c, "protocol");
                return;
            }
            if (r > 0 && len <= n - hl) {
                deliver(c, p[0], p + hl, (size_t)len, len);
                p += hl + len;
                n -= hl + (size_t)len;
                continue;
            }
        }
        /* The header may itself be cut: take it a byte at a time (<= 10). */
        while ((r = frame_head(c->part, c->plen, &hl, &len)) == 0) {
            if (n == 0)
                return;
            c->part[c->plen++] = *p++;
            n--;
        }
        if (r < 0) {
            gone(c, "protocol");
            return;
        }
        uint64_t total = hl + len;
        size_t keep = total < WSC_PART ? (size_t)total : WSC_PART;
        size_t k = keep - c->plen;
        if (k > n)
            k = n;
        memcpy(c->part + c->plen, p, k);
        c->plen = (uint16_t)(c->plen + k);
        p += k;
        n -= k;
        if (c->plen < keep)
            return; /* input used up; the frame continues in the next read */
        c->skip = total - keep;
        c->plen = 0;
        deliver(c, c->part[0], c->part + hl, keep - hl, len);
    }
}

/* ---- handshake -------------------------------------------------------------- */

/* The value of header `name` in the response head h[0..n), or NULL. */
static const char *header(const char *h, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *end = h + n, *line = memchr(h, '\n', n);
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

/* Take handshake bytes; returns how many of p[0..n) belonged to the head
 * (the rest are frames), or -1 when not done yet or failed. */
static long handshake(struct wsc *c, const uint8_t *p, size_t n)
{
    size_t old = c->hs_len, k = HS_MAX - 1 - old;
    if (k > n)
        k = n;
    memcpy(c->hs + old, p, k);
    c->hs_len = (uint16_t)(old + k);
    size_t from = old > 3 ? old - 3 : 0;
    const char *e = memmem(c->hs + from, c->hs_len - from, "\r\n\r\n", 4);
    if (!e) {
        if (c->hs_len == HS_MAX - 1)
            hs_fail(c, "handshake", "response head too long");
        return -1;
    }
    size_t head = (size_t)(e + 4 - c->hs);
    c->hs[head] = 0;
    int status = 0;
    if (strncmp(c->hs, "HTTP/1.", 7) != 0 || sscanf(c->hs + 8, " %3d", &status) != 1) {
        hs_fail(c, "handshake", "not an HTTP response");
        return -1;
    }
    if (status != 101) {
        char line[80];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(c->hs, "\r\n"), c->hs);
        hs_fail(c, status == 503 ? "refused" : "status", line);
        return -1;
    }
    size_t al;
    const char *a = header(c->hs, head, "Sec-WebSocket-Accept", &al);
    if (!a || al != 28 || memcmp(a, c->accept, 28) != 0) {
        hs_fail(c, "handshake", "bad or missing Sec-WebSocket-Accept");
        return -1;
    }
    struct wsc_pool *pl = c->pool;
    free(c->hs);
    c->hs = NULL;
    c->state = WSC_OPEN;
    pl->inflight--;
    pl->done++;
    pl->opened++;
    pl->ops.open(c);
    pump(pl);
    return (long)(head - old);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    *b = uv_buf_init((char *)rbuf, sizeof rbuf);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct wsc *c = (struct wsc *)(void *)s; /* tcp is the first member */
    if (nread == 0)
        return;
    if (nread < 0) {
        const char *why = nread == UV_EOF ? "closed" : "reset";
        if (c->state == WSC_HANDSHAKE)
            hs_fail(c, why, uv_strerror((int)nread));
        else if (c->state == WSC_OPEN)
            gone(c, c->close_code ? close_reason(c->close_code) : why);
        return;
    }
    const uint8_t *p = (const uint8_t *)b->base;
    size_t n = (size_t)nread;
    if (c->state == WSC_HANDSHAKE) {
        long used = handshake(c, p, n);
        if (used < 0)
            return;
        p += used;
        n -= (size_t)used;
    }
    if (c->state == WSC_OPEN && n)
        feed(c, p, n);
}

static void req_write_cb(uv_write_t *w, int status)
{
    (void)status; /* a failure shows up as a read error or the timeout */
    free(w);
}

static void base64_16(const uint8_t in[16], char out[25])
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = t[(v >> 6) & 63];
        out[o++] = t[v & 63];
    }
    out[o++] = t[in[15] >> 2];
    out[o++] = t[(in[15] & 3) << 4];
    out[o++] = '=';
    out[o++] = '=';
    out[o] = 0;
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct wsc *c = (struct wsc *)((char *)req - offsetof(struct wsc, conn));
    if (c->state != WSC_CONNECTING)
        return; /* timed out and closed meanwhile (UV_ECANCELED) */
    if (status < 0) {
        hs_fail(c, status == UV_ECONNREFUSED ? "connect" : connect_reason(status),
                uv_strerror(status));
        return;
    }
    struct wsc_pool *p = c->pool;
    uint8_t raw[16];
    uint64_t r1 = wsc_rand(), r2 = wsc_rand();
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    char key[25];
    base64_16(raw, key);
    if (ws_accept_key(key, c->accept) < 0) {
        hs_fail(c, "handshake", "cannot compute the accept key");
        return;
    }
    char req_buf[sizeof p->req + 32];
    memcpy(req_buf, p->req, p->req_len);
    size_t len = p->req_len;
    memcpy(req_buf + len, key, 24);
    len += 24;
    memcpy(req_buf + len, "\r\n\r\n", 4);
    len += 4;
    /* A fresh socket takes a few hundred bytes at once; uv_write with a
     * copy is only the fallback. */
    uv_buf_t b = uv_buf_init(req_buf, (unsigned)len);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w == UV_EAGAIN)
        w = 0;
    if (w < 0) {
        hs_fail(c, connect_reason(w), uv_strerror(w));
        return;
    }
    if ((size_t)w < len) {
        uv_write_t *wr = malloc(sizeof *wr + len - (size_t)w);
        if (!wr) {
            hs_fail(c, "memory", NULL);
            return;
        }
        char *copy = (char *)(wr + 1);
        memcpy(copy, req_buf + w, len - (size_t)w);
        b = uv_buf_init(copy, (unsigned)(len - (size_t)w));
        int e = uv_write(wr, (uv_stream_t *)&c->tcp, &b, 1, req_write_cb);
        if (e < 0) {
            free(wr);
            hs_fail(c, connect_reason(e), uv_strerror(e));
            return;
        }
    }
    int e = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (e < 0) {
        hs_fail(c, "connect", uv_strerror(e));
        return;
    }
    c->state = WSC_HANDSHAKE;
}

static void start(struct wsc_pool *p, struct wsc *c)
{
    uint64_t t = now_ns();
    c->t_start = t;
    if (!p->t_first)
        p->t_first = t;
    p->inflight++;
    c->state = WSC_CONNECTING;
    int e = uv_tcp_init_ex(p->loop, &c->tcp, AF_INET);
    if (e < 0) {
        hs_fail(c, "connect", uv_strerror(e)); /* EMFILE, ENOBUFS */
        return;
    }
    c->has_handle = true;
    c->hs = malloc(HS_MAX);
    if (!c->hs) {
        hs_fail(c, "memory", NULL);
        return;
    }
    if (p->o->sources > 1) {
        /* Let connect() pick the port per 4-tuple instead of bind()
         * reserving one per address: the full range for every source. */
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000000u | (2 + c->idx % p->o->sources));
        e = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0);
        if (e < 0) {
            hs_fail(c, "connect", uv_strerror(e));
            return;
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    const struct sockaddr_in *dst = p->has_dst2 && c->idx % 2 ? &p->dst2 : &p->dst;
    e = uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)dst, connect_cb);
    if (e < 0)
        hs_fail(c, connect_reason(e), uv_strerror(e));
}

/* Start connects while fewer than WSC_MAX_INFLIGHT handshakes are open.
 * Failures inside start() call back here: the flag keeps it one loop. */
static void pump(struct wsc_pool *p)
{
    if (p->pumping)
        return;
    p->pumping = true;
    while (p->inflight < WSC_MAX_INFLIGHT && p->next < p->n)
        start(p, wsc_at(p, p->next++));
    p->pumping = false;
    if (p->done == p->n && !p->connected_called) {
        p->connected_called = true;
        if (p->sweep_on) {
            uv_timer_stop(&p->sweep);
            p->sweep_on = false;
        }
        p->ops.connected(p);
    }
}

static void sweep_cb(uv_timer_t *t)
{
    struct wsc_pool *p = t->data;
    uint64_t now = now_ns();
    bool phase_over = now - p->t_first > WSC_CONNECT_PHASE_NS;
    if (phase_over) {
        /* Nothing more starts; what has not started fails now. */
        p->pumping = true;
        for (unsigned i = p->next; i < p->n; i++) {
            struct wsc *c = wsc_at(p, i);
            c->why = "timeout";
            c->state = WSC_DEAD;
            p->done++;
            p->ops.fail(c);
        }
        p->next = p->n;
        p->pumping = false;
    }
    /* Only those started before this sweep: a failure starts the next
     * client, whose t_start is after `now`. */
    unsigned started = p->next;
    for (unsigned i = 0; i < started; i++) {
        struct wsc *c = wsc_at(p, i);
        if ((c->state == WSC_CONNECTING || c->state == WSC_HANDSHAKE) &&
            (phase_over || c->t_start + WSC_HANDSHAKE_NS < now))
            hs_fail(c, "timeout", "no 101 within 10 s");
    }
    pump(p);
}

int wsc_pool_init(struct wsc_pool *p, uv_loop_t *loop, const struct opts *o,
                  const char *cookie, unsigned n, size_t size, const struct wsc_ops *ops,
                  void *user)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    p->o = o;
    p->ops = *ops;
    p->user = user;
    p->n = n;
    p->size = size;
    p->clients = calloc(n, size);
    if (!p->clients)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        struct wsc *c = wsc_at(p, i);
        c->pool = p;
        c->idx = i;
    }
    uv_ip4_addr(o->target.host, o->target.port, &p->dst);
    p->has_dst2 = o->also.port != 0;
    if (p->has_dst2)
        uv_ip4_addr(o->also.host, o->also.port, &p->dst2);
    /* The target's path is ignored: the chat socket is always /chat/ws. No
     * Origin header: a request without one passes the server's check. */
    int len = snprintf(p->req, sizeof p->req,
                       "GET /chat/ws HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nCookie: %s\r\n"
                       "Sec-WebSocket-Key: ",
                       o->target.host, o->target.port, cookie);
    if (len < 0 || (size_t)len >= sizeof p->req) {
        free(p->clients);
        p->clients = NULL;
        return -1;
    }
    p->req_len = (size_t)len;
    uv_timer_init(loop, &p->sweep);
    p->sweep.data = p;
    return 0;
}

void wsc_pool_start(struct wsc_pool *p)
{
    uv_timer_start(&p->sweep, sweep_cb, 250, 250);
    p->sweep_on = true;
    pump(p);
}

void wsc_pool_close_all(struct wsc_pool *p)
{
    p->next = p->n; /* nothing more starts */
    for (unsigned i = 0; i < p->n; i++)
        wsc_close(wsc_at(p, i));
    if (!uv_is_closing((uv_handle_t *)&p->sweep))
        uv_close((uv_handle_t *)&p->sweep, NULL);
}

void wsc_pool_free(struct wsc_pool *p)
{
    free(p->clients);
    p->clients = NULL;
}
