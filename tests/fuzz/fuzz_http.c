/* libFuzzer target: a whole connection of the core, bytes in and bytes out,
 * driven the way a model drives it (conn.h), with a fake clock and the
 * deferred actions carried out at once and faked where they would sleep,
 * burn CPU or go to the network.
 *
 * Input: one byte of choices (enum below), then what the client sends:
 * pipelined requests, bodies, an upgrade and WebSocket frames. "$COOKIE" in
 * it becomes a valid session cookie value for "ann" (a MAC the fuzzer could
 * never guess), so the signed-in routes and the upgrade are reachable.
 *
 * Checked, after every call into the core:
 *  - each HTTP response (one outq node) is well formed: "HTTP/1.1 NNN ",
 *    CRLF-only line ends, no NUL in the head, one Content-Length equal to
 *    the body (or an empty body, for HEAD), none for 101/204/304, Connection:
 *    close on 408 and 5xx, and nothing at all after a Connection: close;
 *  - after a 101 only WebSocket frames: unmasked, FIN, minimal length equal
 *    to the node, text / pong / close only, text valid UTF-8 JSON, nothing
 *    after a close;
 *  - bounds: queued output consistent with its nodes and under
 *    CONN_OUT_HIGH (HTTP) or the room's backlog limit (WebSocket) plus one
 *    answer; buffered input under CONN_IN_MAX plus one read;
 *  - liveness: a connection that will not read has something to write, an
 *    action to run, or is closing; after EOF it closes; a timer that fired
 *    moved or closed it; in the end it is closed or an open WebSocket;
 *    freeing it leaves no counted connection (and ASan no leak);
 *  - differential: the same input fed in one read and written eagerly
 *    produces the same bytes (Date and Set-Cookie values aside) as fed in
 *    the pieces and with the partial, lazy writes the choice byte asks for.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "fuzz.h"

enum {
    F_SPLIT = 3,      /* reads: 0 one, 1 a byte each, 2 pieces of 1..16, 3 of 1..700 */
    F_LAZY = 4,       /* write only part of the output, and late */
    F_EOF = 8,        /* the client shuts down its side at the end */
    F_SHUTDOWN = 16,  /* the server stops: at the first action, or at the end */
    F_CLOCK = 32,     /* time passes between reads and timers fire (no differential) */
    F_NO_UPSTREAM = 128, /* no --upstream: /search is 503 */
};

#define READ_MAX 65536       /* a model's read buffer */
#define ANSWER_MAX 65536     /* more than any one answer here (pages are ~13 KB) */

static struct app app;
static uint64_t now_ms;
static char cookie[SESSION_COOKIE_MAX];
static bool dump; /* C10K_FUZZ_DUMP=1: print what each input gets back */

static uint64_t fake_clock(void) { return now_ms; }
static uint64_t fake_wall_ms(void) { return 1700000000000ull; }

/* /stats would read /proc: keep its answer the same from run to run. */
static void fake_stats(struct app *a, struct stats_view *v)
{
    (void)a;
    v->pid = 1;
    v->rss_bytes = v->pss_bytes = 0;
    v->threads = v->processes = 1;
    v->requests = 1;
}

static size_t sink_deliver(struct room_member *m, struct rbuf *ev)
{
    struct conn *c = conn_of_member(m);
    if (outq_push(&c->out, rbuf_ref(ev)) < 0)
        conn_abort(c);
    return c->out.bytes;
}

static void sink_cut_off(struct room_member *m) { conn_ws_cut_off(conn_of_member(m)); }

static const struct room_sink sink = {sink_deliver, sink_cut_off, NULL, NULL};

/* --- the actions, carried out at once ----------------------------------- */

static void fake_action(struct action *a)
{
    switch (a->kind) {
    case ACTION_SLEEP:
        break;
    case ACTION_CPU:
        if (a->cpu.rounds > 16)
            a->cpu.rounds = 16;
        action_run(a);
        break;
    case ACTION_PASSWORD: /* the users file has 1 iteration: cheap */
        action_run(a);
        break;
    case ACTION_FETCH: {
        /* The upstream's answer, picked by the URL. */
        uint64_t h = 0;
        for (const char *p = a->fetch.url; *p; p++)
            h = h * 31 + (unsigned char)*p;
        static const long statuses[] = {200, 404, 503, 204};
        switch (h % 4) {
        case 0:
        case 1:
            a->fetch.result = CURLE_OK;
            a->fetch.status = statuses[(h >> 2) % 4];
            if (h & 64)
                strcpy(a->fetch.content_type, "text/plain");
            CHECK(buf_append(&a->fetch.body, a->fetch.url, strlen(a->fetch.url),
                             FETCH_MAX_BODY) == 0);
            break;
        case 2:
            a->fetch.result = CURLE_OPERATION_TIMEDOUT;
            break;
        default:
            a->fetch.result = CURLE_WRITE_ERROR;
            a->fetch.too_big = true;
            break;
        }
        break;
    }
    }
}

/* --- what comes out ------------------------------------------------------ */

struct run {
    struct conn c;
    struct buf out;  /* every byte written */
    uint64_t seed;
    unsigned flags;
    bool upgraded;   /* a 101 went out */
    bool http_done;  /* a Connection: close response went out */
    bool ws_done;    /* a close frame went out */
    bool shut;       /* conn_shutdown was called */
};

static const char *find(const char *p, size_t n, const char *s)
{
    return memmem(p, n, s, strlen(s));
}

static void check_http_response(struct run *r, const char *p, size_t n)
{
    CHECK(!r->http_done);
    CHECK(n >= 17 && memcmp(p, "HTTP/1.1 ", 9) == 0);
    int status = 0;
    for (int i = 9; i < 12; i++) {
        CHECK(p[i] >= '0' && p[i] <= '9');
        status = status * 10 + (p[i] - '0');
    }
    CHECK(status >= 100 && status <= 599 && p[12] == ' ');
    const char *end = find(p, n, "\r\n\r\n");
    CHECK(end);
    size_t head = (size_t)(end - p) + 4, body = n - head;
    for (size_t i = 0; i < head; i++) {
        CHECK(p[i] != '\0');
        if (p[i] == '\r')
            CHECK(i + 1 < head && p[i + 1] == '\n');
        if (p[i] == '\n')
            CHECK(i > 0 && p[i - 1] == '\r');
    }
    int lengths = 0, dates = 0;
    bool close = false;
    unsigned long long cl = 0;
    /* Header lines: from after the status line to the blank line. */
    for (const char *l = find(p, head, "\r\n") + 2; l < end;) {
        const char *e = find(l, (size_t)(end + 2 - l), "\r\n");
        const char *colon = memchr(l, ':', (size_t)(e - l));
        CHECK(colon && colon > l && colon + 1 < e && colon[1] == ' ');
        size_t nl = (size_t)(colon - l);
        if (nl == 14 && strncasecmp(l, "Content-Length", 14) == 0) {
            lengths++;
            for (const char *d = colon + 2; d < e; d++) {
                CHECK(*d >= '0' && *d <= '9');
                cl = cl * 10 + (unsigned long long)(*d - '0');
            }
        } else if (nl == 4 && strncasecmp(l, "Date", 4) == 0) {
            dates++;
        } else if (nl == 10 && strncasecmp(l, "Connection", 10) == 0) {
            close |= (size_t)(e - colon - 2) == 5 && strncasecmp(colon + 2, "close", 5) == 0;
        }
        l = e + 2;
    }
    CHECK(dates == 1);
    if (status == 101 || status == 204 || status == 304 || status < 200) {
        CHECK(lengths == 0 && body == 0);
    } else {
        CHECK(lengths == 1 && (body == cl || body == 0));
    }
    if (status >= 500 || status == 408)
        CHECK(close);
    if (status == 101) {
        CHECK(!close && find(p, head, "\r\nSec-WebSocket-Accept: "));
        r->upgraded = true;
    }
    r->http_done = close;
}

static void check_ws_frame(struct run *r, const uint8_t *p, size_t n)
{
    CHECK(!r->ws_done);
    CHECK(n >= 2 && (p[0] & 0xF0) == 0x80 && !(p[1] & 0x80));
    uint8_t op = p[0] & 15, len7 = p[1] & 127;
    size_t hl = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
    CHECK(n >= hl);
    uint64_t len = len7;
    if (hl > 2) {
        len = 0;
        for (size_t i = 2; i < hl; i++)
            len = len << 8 | p[i];
        CHECK(len >= (hl == 4 ? 126u : 65536u));
    }
    CHECK(len == n - hl);
    const uint8_t *pl = p + hl;
    switch (op) {
    case WS_OP_TEXT:
        CHECK(len >= 2 && pl[0] == '{' && pl[len - 1] == '}');
        CHECK(utf8_validate(UTF8_ACCEPT, pl, len) == UTF8_ACCEPT);
        break;
    case WS_OP_PONG:
        CHECK(len <= WS_MAX_CONTROL);
        break;
    case WS_OP_CLOSE:
        CHECK(len == 0 || (len == 2 && (pl[0] << 8 | pl[1]) >= 1000));
        r->ws_done = true;
        break;
    default:
        CHECK(!"a server frame other than text, pong or close");
    }
}

static void check_bounds(struct run *r)
{
    const struct conn *c = &r->c;
    size_t sum = 0;
    for (const struct outq_node *q = c->out.head; q; q = q->next)
        sum += q->buf->len;
    CHECK(sum - c->out.head_off == c->out.bytes);
    CHECK(c->out.bytes <= (c->ws ? ROOM_MAX_BACKLOG : CONN_OUT_HIGH) + ANSWER_MAX);
    CHECK(c->in.len <= CONN_IN_MAX + READ_MAX);
    CHECK(!c->ws || !c->req);
}

/* Write up to max bytes, as a model's writev would, checking each answer
 * or frame when its first byte goes. */
static void write_out(struct run *r, size_t max)
{
    struct outq *q = &r->c.out;
    size_t done = 0;
    while (q->head && done < max) {
        struct rbuf *b = q->head->buf;
        size_t off = q->head_off;
        CHECK(b->len > off);
        if (off == 0) {
            if (r->upgraded)
                check_ws_frame(r, (const uint8_t *)b->data, b->len);
            else
                check_http_response(r, b->data, b->len);
        }
        size_t k = b->len - off < max - done ? b->len - off : max - done;
        CHECK(buf_append(&r->out, b->data + off, k, (size_t)1 << 30) == 0);
        outq_consume(q, k);
        done += k;
    }
    if (done && outq_empty(q))
        conn_flushed(&r->c);
    check_bounds(r);
}

/* Run actions and write until nothing is left to do without new input. */
static void drive(struct run *r)
{
    bool lazy = r->flags & F_LAZY;
    for (unsigned guard = 0;; guard++) {
        CHECK(guard < 1000000);
        if (r->c.close == CLOSE_NOW)
            return;
        struct action *a = conn_action_to_start(&r->c);
        if (a && (r->flags & F_SHUTDOWN) && !r->shut) {
            /* The same moment however the input was split: the first
             * action belongs to the same request in every run. */
            conn_shutdown(&r->c);
            r->shut = true;
        }
        if (a) {
            a->started = true;
            fake_action(a);
            conn_resume(&r->c);
            check_bounds(r);
        } else if (!outq_empty(&r->c.out)) {
            write_out(r, lazy ? fuzz_chunk(&r->seed, 3000) : SIZE_MAX);
        } else {
            return;
        }
    }
}

static void fire_timer(struct run *r)
{
    uint64_t d = conn_deadline(&r->c);
    if (!d || r->c.close == CLOSE_NOW)
        return;
    if (now_ms < d)
        now_ms = d;
    conn_on_timeout(&r->c);
    CHECK(r->c.close != CLOSE_NO || conn_deadline(&r->c) != d);
    drive(r);
}

static void run(struct run *r, const uint8_t *s, size_t n, unsigned flags)
{
    memset(r, 0, sizeof *r);
    r->flags = flags;
    r->seed = flags * 0x100000001ull + n;
    now_ms = 1000000;
    app.started_ms = now_ms;
    app.cfg.upstream = flags & F_NO_UPSTREAM ? NULL : "http://upstream.invalid/s?wd=";
    app_set_room(&app, room_new(&sink, false));
    CHECK(app.room);
    /* A fresh login budget per run: whole and split deliveries of one input
     * must meet the same limits to give the same answers. */
    app.logins = login_limit_new();
    CHECK(app.logins);
    struct conn *c = &r->c;
    conn_init(c, &app);

    size_t off = 0;
    while (off < n && c->close != CLOSE_NOW) {
        if (!conn_want_read(c)) {
            if (conn_action_to_start(c) || !outq_empty(&c->out)) {
                drive(r);
                continue;
            }
            /* Nothing to write, nothing to run, and it will not read:
             * only a closing connection may be in that state. */
            CHECK(c->close != CLOSE_NO);
            break;
        }
        size_t k;
        switch (flags & F_SPLIT) {
        case 0: k = READ_MAX; break;
        case 1: k = 1; break;
        case 2: k = fuzz_chunk(&r->seed, 16); break;
        default: k = fuzz_chunk(&r->seed, 700); break;
        }
        if (k > n - off)
            k = n - off;
        /* Each read in its own block of exactly its size: a read past it
         * is an ASan report, not a silent look at the next bytes. */
        char *piece = malloc(k);
        CHECK(piece);
        memcpy(piece, s + off, k);
        conn_feed(c, piece, k);
        free(piece);
        off += k;
        check_bounds(r);
        if (!(flags & F_CLOCK))
            CHECK(c->close != CLOSE_NOW);
        if (!(flags & F_LAZY) || (fuzz_rand(&r->seed) & 3) == 0)
            drive(r);
        if (flags & F_CLOCK) {
            now_ms += fuzz_rand(&r->seed) % 4000;
            uint64_t d = conn_deadline(c);
            if (d && now_ms >= d)
                fire_timer(r);
        }
    }
    drive(r);
    if ((flags & F_SHUTDOWN) && !r->shut) {
        conn_shutdown(c);
        r->shut = true;
        drive(r);
    }
    if (flags & F_EOF) {
        conn_eof(c);
        drive(r);
        CHECK(c->close != CLOSE_NO);
    }
    for (int i = 0; i < 6; i++)
        fire_timer(r);
    CHECK(c->close != CLOSE_NO || (c->ws && c->ws->phase == WS_OPEN));

    conn_free(c);
    CHECK(atomic_load(&app.n->connections) == 0 && atomic_load(&app.n->ws_clients) == 0);
    room_free(app.room);
    app.room = NULL;
    login_limit_free(app.logins);
    app.logins = NULL;
}

/* Blank what differs from run to run: the Date and the cookie's expiry. */
static void normalize(struct buf *b)
{
    static const char *const lines[] = {"\r\nDate: ", "\r\nSet-Cookie: "};
    for (size_t k = 0; k < 2; k++) {
        size_t ll = strlen(lines[k]);
        for (char *p = b->data; p && (p = memmem(p, b->len - (size_t)(p - b->data), lines[k], ll));) {
            p += ll;
            while (p < b->data + b->len && *p != '\r')
                *p++ = 'x';
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    /* The client's bytes, with each "$COOKIE" made a real cookie. */
    static const char token[] = "$COOKIE";
    size_t tl = sizeof token - 1, cl = strlen(cookie), n = 0;
    uint8_t *s = malloc((size - 1) / tl * cl + size);
    CHECK(s);
    for (size_t i = 1; i < size;) {
        if (size - i >= tl && memcmp(data + i, token, tl) == 0) {
            memcpy(s + n, cookie, cl);
            n += cl;
            i += tl;
        } else {
            s[n++] = data[i++];
        }
    }

    struct run a, b;
    run(&a, s, n, flags);
    if (dump)
        fprintf(stderr, "--- flags 0x%02x, %zu bytes out:\n%.*s\n", flags, a.out.len,
                (int)a.out.len, a.out.data);
    unsigned plain = flags & ~(unsigned)(F_SPLIT | F_LAZY);
    if (!(flags & F_CLOCK) && plain != flags) {
        run(&b, s, n, plain);
        normalize(&a.out);
        normalize(&b.out);
        if (a.out.len != b.out.len || (a.out.len && memcmp(a.out.data, b.out.data, a.out.len))) {
            fprintf(stderr, "--- in pieces (%zu bytes):\n%.*s\n--- in one read (%zu bytes):\n%.*s\n",
                    a.out.len, (int)a.out.len, a.out.data, b.out.len, (int)b.out.len, b.out.data);
            CHECK(!"the output depends on how the input was split");
        }
        buf_free(&b.out);
    }
    buf_free(&a.out);
    free(s);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[] = "/tmp/c10k-fuzz-users-XXXXXX", err[256], line[512];
    struct user_record rec;
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(user_record_make(&rec, "ann", "secret-pw", 1) == 0);
    CHECK(user_record_format(&rec, line, sizeof line) == 0);
    CHECK(write(fd, line, strlen(line)) == (ssize_t)strlen(line));
    close(fd);
    app.users = users_load(path, err, sizeof err);
    unlink(path);
    CHECK(app.users);
    app.model = "fuzz";
    app.n = &app.own;
    app.cfg.max_conns = 10;
    app.stats = fake_stats;
    for (size_t i = 0; i < SESSION_KEY_MIN; i++)
        app.key.bytes[i] = (unsigned char)(0xa5 ^ i);
    app.key.len = SESSION_KEY_MIN;
    CHECK(session_sign(&app.key, "ann", (time_t)4102444800LL, cookie, sizeof cookie) > 0);
    dump = getenv("C10K_FUZZ_DUMP") != NULL;
    http_req_global_init();
    app_clock = fake_clock;
    room_clock_ms = fake_wall_ms;
    return 0;
}
