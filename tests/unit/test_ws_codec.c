/* The WebSocket codec, tested three ways:
 *  - by example: each RFC 6455 rule and contract rule, with the events it
 *    must produce;
 *  - by splitting: every example stream is also fed one byte at a time and
 *    cut in two at every offset, and must give the same events, because a
 *    socket may hand us any prefix;
 *  - against wslay: the same bytes go through wslay's server context, the
 *    library we replaced, and the two must agree (PITFALLS B2), on the
 *    examples, on a few hundred random valid streams and on mutated ones.
 *    Framing errors wslay answers with a close without a code count as our
 *    1002 (PITFALLS B2). Where wslay really differs, a test pins it down:
 *    close_with_one_byte_differs_from_wslay and
 *    wslay_misjudges_a_close_reason_read_in_pieces.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "ws_codec.h"

/* ------------------------------------------------------------------------
 * Byte streams and client frames */

struct stream {
    uint8_t *p;
    size_t len, cap;
};

static void put(struct stream *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = 2 * (s->len + n) + 64;
        s->p = realloc(s->p, s->cap);
        cr_assert_not_null(s->p);
    }
    if (n)
        memcpy(s->p + s->len, p, n);
    s->len += n;
}

static void stream_free(struct stream *s)
{
    free(s->p);
    *s = (struct stream){0};
}

enum { FIN = 0x80, RSV1 = 0x40, RSV2 = 0x20, RSV3 = 0x10 };
enum { LEN_AUTO = -1, LEN_7 = 0, LEN_16 = 126, LEN_64 = 127 };

static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d}; /* RFC 6455 5.7 */

/* Append a client frame. b0 is its first byte (FIN, RSV, opcode); mask NULL
 * sends it unmasked; len_form forces a length encoding, minimal or not;
 * declared is the length the header claims, which may exceed the n payload
 * bytes actually sent. */
static void raw_frame(struct stream *s, uint8_t b0, const uint8_t *mask, int len_form,
                      uint64_t declared, const void *payload, size_t n)
{
    uint8_t h[14];
    size_t hl = 0;
    uint8_t mbit = mask ? 0x80 : 0;
    if (len_form == LEN_AUTO)
        len_form = declared < 126 ? LEN_7 : declared <= 0xFFFF ? LEN_16 : LEN_64;
    h[hl++] = b0;
    if (len_form == LEN_7) {
        h[hl++] = (uint8_t)(mbit | declared);
    } else {
        int k = len_form == LEN_16 ? 2 : 8;
        h[hl++] = (uint8_t)(mbit | len_form);
        for (int i = 0; i < k; i++)
            h[hl++] = (uint8_t)(declared >> (8 * (k - 1 - i)));
    }
    if (mask) {
        memcpy(h + hl, mask, 4);
        hl += 4;
    }
    put(s, h, hl);
    const uint8_t *p = payload;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i] ^ (mask ? mask[i & 3] : 0);
        put(s, &b, 1);
    }
}

static void frame(struct stream *s, uint8_t b0, const void *p, size_t n)
{
    raw_frame(s, b0, rfc_mask, LEN_AUTO, n, p, n);
}

static void text(struct stream *s, const char *str) { frame(s, FIN | WS_OP_TEXT, str, strlen(str)); }

static void close_frame(struct stream *s, uint16_t code, const char *reason)
{
    uint8_t p[WS_MAX_CONTROL] = {(uint8_t)(code >> 8), (uint8_t)code};
    size_t n = strlen(reason);
    memcpy(p + 2, reason, n);
    frame(s, FIN | WS_OP_CLOSE, p, 2 + n);
}

/* ------------------------------------------------------------------------
 * Events, as expected and as recorded */

struct ev {
    enum ws_event_type type;
    uint16_t code;
    size_t len;
    const char *data;
};

#define TEXT(s) {WS_EV_TEXT, 0, sizeof(s) - 1, s}
#define PING(s) {WS_EV_PING, 0, sizeof(s) - 1, s}
#define PONG(s) {WS_EV_PONG, 0, sizeof(s) - 1, s}
#define CLOSE(c, s) {WS_EV_CLOSE, c, sizeof(s) - 1, s}
#define ERR(c) {WS_EV_ERROR, c, 0, NULL}

struct evlog {
    size_t n, cap;
    struct ev *ev; /* data owned: copied out of the decoder */
};

static void log_add(struct evlog *l, enum ws_event_type type, uint16_t code, const void *data,
                    size_t len)
{
    cr_assert(l->n == 0 || l->ev[l->n - 1].type != WS_EV_ERROR, "an event after an error");
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->ev = realloc(l->ev, l->cap * sizeof *l->ev);
        cr_assert_not_null(l->ev);
    }
    char *copy = malloc(len + 1);
    cr_assert_not_null(copy);
    if (len)
        memcpy(copy, data, len);
    l->ev[l->n++] = (struct ev){type, code, len, copy};
}

static void log_free(struct evlog *l)
{
    for (size_t i = 0; i < l->n; i++)
        free((char *)l->ev[i].data);
    free(l->ev);
    *l = (struct evlog){0};
}

static const char *type_name(enum ws_event_type t)
{
    static const char *names[] = {"NONE", "TEXT", "PING", "PONG", "CLOSE", "ERROR"};
    return names[t];
}

/* wslay closes without a status code where we send 1002 (PITFALLS B2):
 * with `lenient`, an expected 1002 also matches a recorded code 0. */
static bool ev_eq(const struct ev *got, const struct ev *want, bool lenient)
{
    if (got->type != want->type)
        return false;
    if (got->type == WS_EV_ERROR)
        return got->code == want->code || (lenient && got->code == 0 && want->code == 1002);
    return got->code == want->code && got->len == want->len &&
           memcmp(got->data, want->data, got->len) == 0;
}

static bool log_matches(const struct evlog *got, const struct ev *want, size_t nwant, bool lenient)
{
    if (got->n != nwant)
        return false;
    for (size_t i = 0; i < nwant; i++)
        if (!ev_eq(&got->ev[i], &want[i], lenient))
            return false;
    return true;
}

/* For a failing random stream: the bytes, to turn into an example. */
static void dump_stream(const struct stream *s)
{
    for (size_t i = 0; i < s->len; i += 32) {
        char line[3 * 32 + 1] = "";
        for (size_t j = i; j < s->len && j < i + 32; j++)
            snprintf(line + 3 * (j - i), 4, "%02x ", s->p[j]);
        cr_log_error("%04zx: %s", i, line);
    }
}

static void assert_log(const struct evlog *got, const struct ev *want, size_t nwant, bool lenient,
                       const char *how)
{
    for (size_t i = 0; i < got->n || i < nwant; i++) {
        cr_assert(i < got->n, "%s: event %zu missing: want %s %u (%zu bytes)", how, i,
                  type_name(want[i].type), want[i].code, want[i].len);
        cr_assert(i < nwant, "%s: extra event %zu: %s %u (%zu bytes)", how, i,
                  type_name(got->ev[i].type), got->ev[i].code, got->ev[i].len);
        cr_assert(ev_eq(&got->ev[i], &want[i], lenient),
                  "%s: event %zu: got %s %u (%zu bytes), want %s %u (%zu bytes)", how, i,
                  type_name(got->ev[i].type), got->ev[i].code, got->ev[i].len,
                  type_name(want[i].type), want[i].code, want[i].len);
    }
}

/* ------------------------------------------------------------------------
 * Our decoder, fed in chunks */

/* Pull every event out of one chunk, as a model's read loop does: call
 * again after each event, until the decoder says it wants more input. */
static void feed(struct ws_decoder *d, const uint8_t *p, size_t n, struct evlog *out)
{
    for (;;) {
        size_t used = SIZE_MAX;
        struct ws_event ev = ws_decode(d, p, n, &used);
        cr_assert_leq(used, n);
        p += used;
        n -= used;
        if (ev.type == WS_EV_NONE) {
            cr_assert_eq(n, 0, "WS_EV_NONE must consume all the input");
            break;
        }
        log_add(out, ev.type, ev.code, ev.data, ev.len);
    }
    /* Between messages a connection holds no heap memory (ws_codec.h). */
    if (!d->msg_opcode)
        cr_assert_null(d->msg.data, "message buffer kept while no message is open");
}

/* Decode s cut at the ascending offsets cuts[0..ncuts). */
static void decode_cut(const struct stream *s, const size_t *cuts, size_t ncuts,
                       struct evlog *out)
{
    struct ws_decoder d;
    ws_decoder_init(&d);
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : s->len;
        feed(&d, s->p + from, to - from, out);
        from = to;
    }
    ws_decoder_free(&d);
}

static void decode_whole(const struct stream *s, struct evlog *out) { decode_cut(s, NULL, 0, out); }

/* The first event from s alone, and how many bytes it took. */
static struct ws_event first_event(const struct stream *s, size_t *used)
{
    static struct ws_decoder d; /* the event may point into it */
    ws_decoder_free(&d);
    return ws_decode(&d, s->p, s->len, used);
}

/* ------------------------------------------------------------------------
 * The oracle: wslay's server context over the same bytes */

struct wslay_run {
    const uint8_t *in;
    size_t len, off, chunk;
    const size_t *bounds; /* if set, no read crosses these offsets */
    size_t nbounds;
    struct evlog *out;
};

static ssize_t oracle_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                           void *user)
{
    (void)ctx;
    (void)flags;
    struct wslay_run *r = user;
    size_t n = r->len - r->off;
    if (n > len)
        n = len;
    if (n > r->chunk)
        n = r->chunk;
    for (size_t i = 0; i < r->nbounds; i++)
        if (r->bounds[i] > r->off && r->bounds[i] - r->off < n)
            n = r->bounds[i] - r->off;
    memcpy(buf, r->in + r->off, n);
    r->off += n;
    return (ssize_t)n; /* 0 when drained: wslay stops without failing (PITFALLS B2) */
}

static ssize_t oracle_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                           void *user)
{
    (void)ctx;
    (void)data;
    (void)flags;
    (void)user;
    return (ssize_t)len;
}

/* What the app must do itself with wslay (PITFALLS B2): refuse binary. */
static void oracle_frame_start(wslay_event_context_ptr ctx,
                               const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    (void)user;
    if (arg->opcode == WSLAY_BINARY_FRAME) {
        wslay_event_queue_close(ctx, 1003, NULL, 0);
        wslay_event_shutdown_read(ctx);
    }
}

static void oracle_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                       void *user)
{
    (void)ctx;
    struct wslay_run *r = user;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        log_add(r->out, WS_EV_TEXT, 0, arg->msg, arg->msg_length);
        break;
    case WSLAY_PING:
        log_add(r->out, WS_EV_PING, 0, arg->msg, arg->msg_length);
        break;
    case WSLAY_PONG:
        log_add(r->out, WS_EV_PONG, 0, arg->msg, arg->msg_length);
        break;
    case WSLAY_CONNECTION_CLOSE: {
        bool has_code = arg->msg_length >= 2;
        log_add(r->out, WS_EV_CLOSE, has_code ? arg->status_code : 1005,
                has_code ? arg->msg + 2 : NULL, has_code ? arg->msg_length - 2 : 0);
        break;
    }
    default: /* binary: already refused in oracle_frame_start */
        break;
    }
}

/* Run s through wslay, recv handing it at most `chunk` bytes at a time and
 * never reading across bounds[]. Its refusal is logged as an ERROR with the
 * code of the close it queued (0 for a close without a status code). */
static void wslay_decode_ex(const struct stream *s, size_t chunk, const size_t *bounds,
                            size_t nbounds, struct evlog *out)
{
    struct wslay_run run = {
        .in = s->p, .len = s->len, .chunk = chunk, .bounds = bounds, .nbounds = nbounds, .out = out};
    struct wslay_event_callbacks cb = {
        .recv_callback = oracle_recv,
        .send_callback = oracle_send,
        .on_frame_recv_start_callback = oracle_frame_start,
        .on_msg_recv_callback = oracle_msg,
    };
    wslay_event_context_ptr ctx;
    cr_assert_eq(wslay_event_context_server_init(&ctx, &cb, &run), 0);
    wslay_event_config_set_max_recv_msg_length(ctx, WS_MAX_MESSAGE);
    /* wslay_event_recv returns when recv runs dry with a frame header still
     * incomplete, so a chunked feed needs calling again while it progresses. */
    size_t before;
    do {
        before = run.off;
        wslay_event_recv(ctx); /* a failure shows as the close it queues */
    } while (wslay_event_get_read_enabled(ctx) && run.off != before);
    wslay_event_send(ctx);
    if (!wslay_event_get_close_received(ctx) && !wslay_event_get_read_enabled(ctx)) {
        uint16_t code = wslay_event_get_status_code_sent(ctx);
        log_add(out, WS_EV_ERROR, code == WSLAY_CODE_NO_STATUS_RCVD ? 0 : code, NULL, 0);
    }
    wslay_event_context_free(ctx);
}

static void wslay_decode(const struct stream *s, struct evlog *out)
{
    wslay_decode_ex(s, SIZE_MAX, NULL, 0, out);
}

static void wslay_decode_chunked(const struct stream *s, size_t chunk, struct evlog *out)
{
    wslay_decode_ex(s, chunk, NULL, 0, out);
}

/* ------------------------------------------------------------------------
 * The check every example goes through */

static void expect_ours(const struct stream *s, const struct ev *want, size_t nwant)
{
    struct evlog got = {0};
    decode_whole(s, &got);
    assert_log(&got, want, nwant, false, "whole");
    log_free(&got);

    size_t *cuts = malloc((s->len + 1) * sizeof *cuts);
    cr_assert_not_null(cuts);
    for (size_t i = 1; i < s->len; i++)
        cuts[i - 1] = i;
    decode_cut(s, cuts, s->len ? s->len - 1 : 0, &got);
    assert_log(&got, want, nwant, false, "one byte at a time");
    log_free(&got);
    free(cuts);

    for (size_t k = 0; k <= s->len; k++) {
        decode_cut(s, &k, 1, &got);
        char how[64];
        snprintf(how, sizeof how, "split at %zu", k);
        assert_log(&got, want, nwant, false, how);
        log_free(&got);
    }
}

static void expect_wslay(const struct stream *s, const struct ev *want, size_t nwant)
{
    struct evlog got = {0};
    wslay_decode(s, &got);
    assert_log(&got, want, nwant, true, "wslay");
    log_free(&got);
}

#define EVENTS(...) (const struct ev[]){__VA_ARGS__}, sizeof((const struct ev[]){__VA_ARGS__}) / sizeof(struct ev)

/* Ours, whole and split every way, and wslay, must all give `want`. */
#define EXPECT(s, ...)                         \
    do {                                       \
        expect_ours((s), EVENTS(__VA_ARGS__)); \
        expect_wslay((s), EVENTS(__VA_ARGS__)); \
    } while (0)

/* ------------------------------------------------------------------------
 * Handshake and encoder */

Test(ws_accept_key, rfc6455_vector)
{
    char out[29];
    cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 1.3 */
    cr_assert_eq(ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out), 0);
    cr_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

Test(ws_accept_key, refuses_what_is_not_base64_of_16_bytes)
{
    static const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",    /* 23 chars */
        "dGhlIHNhbXBsZSBub25jZQ===",  /* 25 chars */
        "dGhlIHNhbXBsZSBub25jZQ",     /* no padding */
        "dGhlIHNhbXBsZSBub25jZR==",   /* padding bits set: not what encoding 16 bytes gives */
        "dGhlIHNhbXBsZSBub25j!Q==",   /* not base64 */
        "dGhlIHNhbXBsZSBub25jZQ ",    /* blank instead of padding */
        " GhlIHNhbXBsZSBub25jZQ==",   /* leading blank */
        "AAAAAAAAAAAAAAAAAAAAAAA=",   /* 17 bytes */
        "AAAAAAAAAAAAAAAAAAAAAAAA",   /* 18 bytes */
        "dGhlIHNhbXBsZSBub25jZQ==x",  /* trailing garbage */
        "dGhlIHNhbXBsZSBu=25jZQ==",   /* padding in the middle */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char out[29] = "unchanged";
        cr_assert_eq(ws_accept_key(bad[i], out), -1, "accepted key \"%s\"", bad[i]);
    }
    char out[29];
    cr_assert_eq(ws_accept_key(NULL, out), -1);
    cr_assert_eq(ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", out), 0, "16 zero bytes is a key");
}

static void assert_header(enum ws_opcode op, size_t len, const uint8_t *want, size_t want_len)
{
    uint8_t out[10];
    size_t n = ws_frame_header(out, op, len);
    cr_assert_eq(n, want_len, "header length for a %zu-byte payload", len);
    cr_assert_arr_eq(out, want, n, "header bytes for a %zu-byte payload", len);
}

Test(ws_encoder, header_lengths_are_minimal)
{
    /* RFC 6455 5.7 examples, and each boundary of the three encodings */
    assert_header(WS_OP_TEXT, 5, (const uint8_t[]){0x81, 0x05}, 2);
    assert_header(WS_OP_BINARY, 256, (const uint8_t[]){0x82, 0x7E, 0x01, 0x00}, 4);
    assert_header(WS_OP_BINARY, 65536, (const uint8_t[]){0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}, 10);
    assert_header(WS_OP_TEXT, 0, (const uint8_t[]){0x81, 0x00}, 2);
    assert_header(WS_OP_TEXT, 125, (const uint8_t[]){0x81, 125}, 2);
    assert_header(WS_OP_TEXT, 126, (const uint8_t[]){0x81, 0x7E, 0x00, 126}, 4);
    assert_header(WS_OP_TEXT, 65535, (const uint8_t[]){0x81, 0x7E, 0xFF, 0xFF}, 4);
    assert_header(WS_OP_PONG, 1, (const uint8_t[]){0x8A, 0x01}, 2);
}

/* ws_frame_head reads back what the encoder writes, whatever prefix it is
 * given, and counts a mask key when the frame has one. */
Test(ws_frame_head, sizes_and_lengths_of_every_encoding)
{
    const size_t lengths[] = {0, 5, 125, 126, 65535, 65536, (size_t)1 << 40};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        uint8_t h[14];
        size_t n = ws_frame_header(h, WS_OP_TEXT, lengths[i]);
        uint64_t len = 0;
        for (size_t k = 0; k < n; k++)
            cr_assert_eq(ws_frame_head(h, k, &len), 0, "a prefix of %zu bytes", k);
        cr_assert_eq(ws_frame_head(h, n, &len), n);
        cr_assert_eq(len, lengths[i]);
        h[1] |= 0x80; /* masked, as a client's: the 4 key bytes follow */
        memset(h + n, 0xAA, 4);
        cr_assert_eq(ws_frame_head(h, n + 3, &len), 0);
        cr_assert_eq(ws_frame_head(h, n + 4, &len), n + 4);
        cr_assert_eq(len, lengths[i]);
    }
}

Test(ws_encoder, frames_and_close_frames)
{
    struct rbuf *r = ws_frame_new(WS_OP_PING, "Hello", 5);
    cr_assert_not_null(r);
    cr_assert_eq(r->len, 7);
    cr_assert_arr_eq(r->data, "\x89\x05Hello", 7); /* RFC 6455 5.7 */
    rbuf_unref(r);

    r = ws_close_frame_new(1000);
    cr_assert_eq(r->len, 4);
    cr_assert_arr_eq(r->data, "\x88\x02\x03\xe8", 4);
    rbuf_unref(r);

    r = ws_close_frame_new(0);
    cr_assert_eq(r->len, 2);
    cr_assert_arr_eq(r->data, "\x88\x00", 2);
    rbuf_unref(r);
}

/* Our server frames through wslay's client context: a client must read
 * them back as sent, for each length encoding. */
Test(ws_encoder, wslay_client_reads_our_frames)
{
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    struct stream s = {0};
    char *payload = malloc(70000);
    cr_assert_not_null(payload);
    for (size_t i = 0; i < 70000; i++)
        payload[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        struct rbuf *r = ws_frame_new(WS_OP_TEXT, payload, sizes[i]);
        put(&s, r->data, r->len);
        rbuf_unref(r);
    }
    struct rbuf *r = ws_frame_new(WS_OP_PING, "ping", 4);
    put(&s, r->data, r->len);
    rbuf_unref(r);
    r = ws_close_frame_new(1001);
    put(&s, r->data, r->len);
    rbuf_unref(r);

    struct evlog got = {0};
    struct wslay_run run = {.in = s.p, .len = s.len, .chunk = SIZE_MAX, .out = &got};
    struct wslay_event_callbacks cb = {
        .recv_callback = oracle_recv,
        .send_callback = oracle_send,
        .on_msg_recv_callback = oracle_msg,
    };
    wslay_event_context_ptr ctx;
    cr_assert_eq(wslay_event_context_client_init(&ctx, &cb, &run), 0);
    wslay_event_recv(ctx);
    cr_assert(wslay_event_get_close_received(ctx), "wslay refused our frames");
    wslay_event_context_free(ctx);

    size_t n = sizeof sizes / sizeof *sizes;
    cr_assert_eq(got.n, n + 2);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(got.ev[i].type, WS_EV_TEXT);
        cr_assert_eq(got.ev[i].len, sizes[i]);
        cr_assert_arr_eq(got.ev[i].data, payload, sizes[i]);
    }
    cr_assert_eq(got.ev[n].type, WS_EV_PING);
    cr_assert_eq(got.ev[n + 1].type, WS_EV_CLOSE);
    cr_assert_eq(got.ev[n + 1].code, 1001);
    log_free(&got);
    free(payload);
    stream_free(&s);
}

/* ------------------------------------------------------------------------
 * UTF-8 */

/* RFC 3629's grammar written out branch by branch: an implementation
 * independent of the DFA's tables, to check them against. */
static bool utf8_ref(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t tail;
        uint8_t lo = 0x80, hi = 0xBF; /* the range allowed for the 2nd byte */
        if (b <= 0x7F) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            tail = 1;
        } else if (b == 0xE0) {
            tail = 2, lo = 0xA0;
        } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
            tail = 2;
        } else if (b == 0xED) {
            tail = 2, hi = 0x9F;
        } else if (b == 0xF0) {
            tail = 3, lo = 0x90;
        } else if (b >= 0xF1 && b <= 0xF3) {
            tail = 3;
        } else if (b == 0xF4) {
            tail = 3, hi = 0x8F;
        } else {
            return false;
        }
        if (n - i - 1 < tail || p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= tail; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF)
                return false;
        i += 1 + tail;
    }
    return true;
}

static bool dfa_accepts(const uint8_t *p, size_t n)
{
    return utf8_validate(UTF8_ACCEPT, p, n) == UTF8_ACCEPT;
}

Test(utf8, dfa_matches_rfc3629_on_every_string_up_to_3_bytes)
{
    uint8_t p[3];
    for (unsigned a = 0; a < 256; a++) {
        p[0] = (uint8_t)a;
        cr_assert_eq(dfa_accepts(p, 1), utf8_ref(p, 1), "%02x", a);
        for (unsigned b = 0; b < 256; b++) {
            p[1] = (uint8_t)b;
            cr_assert_eq(dfa_accepts(p, 2), utf8_ref(p, 2), "%02x %02x", a, b);
            for (unsigned c = 0; c < 256; c++) {
                p[2] = (uint8_t)c;
                uint32_t whole = utf8_validate(UTF8_ACCEPT, p, 3);
                if ((whole == UTF8_ACCEPT) != utf8_ref(p, 3))
                    cr_assert_fail("%02x %02x %02x", a, b, c);
                /* resumable at any byte: this is what lets frames split anywhere */
                if (utf8_validate(utf8_validate(UTF8_ACCEPT, p, 1), p + 1, 2) != whole ||
                    utf8_validate(utf8_validate(UTF8_ACCEPT, p, 2), p + 2, 1) != whole)
                    cr_assert_fail("not resumable: %02x %02x %02x", a, b, c);
            }
        }
    }
}

Test(utf8, dfa_matches_rfc3629_on_4_byte_strings)
{
    /* every first and second byte; third and fourth from each class edge */
    static const uint8_t edge[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    uint8_t p[4];
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++)
            for (size_t c = 0; c < sizeof edge; c++)
                for (size_t d = 0; d < sizeof edge; d++) {
                    p[0] = (uint8_t)a, p[1] = (uint8_t)b, p[2] = edge[c], p[3] = edge[d];
                    if (dfa_accepts(p, 4) != utf8_ref(p, 4))
                        cr_assert_fail("%02x %02x %02x %02x", a, b, p[2], p[3]);
                }
}

static size_t encode_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

Test(utf8, every_code_point_but_the_surrogates)
{
    uint8_t p[4];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = encode_utf8(p, cp);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (dfa_accepts(p, n) == surrogate)
            cr_assert_fail("U+%04X", cp);
    }
    /* one past the top, encoded the same way */
    cr_assert_not(dfa_accepts((const uint8_t *)"\xf4\x90\x80\x80", 4));
    cr_assert_eq(utf8_validate(UTF8_REJECT, (const uint8_t *)"a", 1), UTF8_REJECT,
                 "reject is final");
}

/* ------------------------------------------------------------------------
 * Decoding: valid streams */

Test(ws_decode, rfc6455_hello)
{
    static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct stream s = {0};
    put(&s, hello, sizeof hello);
    EXPECT(&s, TEXT("Hello"));
    stream_free(&s);
}

Test(ws_decode, messages_and_control_frames_in_a_row)
{
    struct stream s = {0};
    text(&s, "");
    text(&s, "second");
    frame(&s, FIN | WS_OP_PING, "are you there", 13);
    frame(&s, FIN | WS_OP_PONG, "", 0);
    frame(&s, FIN | WS_OP_PING, "", 0);
    text(&s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"); /* 2-, 3- and 4-byte code points */
    close_frame(&s, 1000, "bye");
    EXPECT(&s, TEXT(""), TEXT("second"), PING("are you there"), PONG(""), PING(""),
           TEXT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), CLOSE(1000, "bye"));
    stream_free(&s);
}

Test(ws_decode, fragments_with_control_frames_between)
{
    struct stream s = {0};
    frame(&s, WS_OP_TEXT, "Hel", 3);
    frame(&s, FIN | WS_OP_PING, "p", 1);
    frame(&s, WS_OP_CONT, "", 0);
    frame(&s, WS_OP_CONT, "lo ", 3);
    frame(&s, FIN | WS_OP_PONG, "q", 1);
    frame(&s, FIN | WS_OP_CONT, "world", 5);
    text(&s, "next");
    EXPECT(&s, PING("p"), PONG("q"), TEXT("Hello world"), TEXT("next"));
    stream_free(&s);
}

Test(ws_decode, close_in_the_middle_of_a_message)
{
    struct stream s = {0};
    frame(&s, WS_OP_TEXT, "unfinished", 10);
    close_frame(&s, 1001, "");
    frame(&s, FIN | WS_OP_CONT, "ignored: nothing may follow a close", 35);
    text(&s, "ignored too");
    EXPECT(&s, CLOSE(1001, ""));
    stream_free(&s);
}

Test(ws_decode, code_point_split_across_fragments)
{
    struct stream s = {0};
    frame(&s, WS_OP_TEXT, "\xe2", 1);
    frame(&s, WS_OP_CONT, "\x82", 1);
    frame(&s, FIN | WS_OP_CONT, "\xac", 1);
    EXPECT(&s, TEXT("\xe2\x82\xac"));
    stream_free(&s);
}

Test(ws_decode, extended_lengths_up_to_the_limit)
{
    static char big[WS_MAX_MESSAGE + 1];
    memset(big, 'x', WS_MAX_MESSAGE);
    struct stream s = {0};
    frame(&s, FIN | WS_OP_TEXT, big, 126); /* smallest 16-bit length */
    frame(&s, FIN | WS_OP_TEXT, big, WS_MAX_MESSAGE);
    frame(&s, WS_OP_TEXT, big, 4000);
    frame(&s, FIN | WS_OP_CONT, big, 96);
    struct ev want[] = {
        {WS_EV_TEXT, 0, 126, big},
        {WS_EV_TEXT, 0, WS_MAX_MESSAGE, big},
        {WS_EV_TEXT, 0, WS_MAX_MESSAGE, big},
    };
    expect_ours(&s, want, 3);
    expect_wslay(&s, want, 3);
    stream_free(&s);
}

Test(ws_decode, close_codes_accepted)
{
    static const uint16_t ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        struct stream s = {0};
        close_frame(&s, ok[i], "r\xc3\xa9");
        EXPECT(&s, {WS_EV_CLOSE, ok[i], 3, "r\xc3\xa9"});
        stream_free(&s);
    }
    struct stream s = {0};
    frame(&s, FIN | WS_OP_CLOSE, "", 0);
    EXPECT(&s, CLOSE(1005, ""));
    stream_free(&s);
}

Test(ws_decode, text_is_released_on_the_next_call)
{
    struct stream s = {0};
    text(&s, "hello");
    struct ws_decoder d;
    ws_decoder_init(&d);
    size_t used;
    struct ws_event ev = ws_decode(&d, s.p, s.len, &used);
    cr_assert_eq(ev.type, WS_EV_TEXT);
    cr_assert_eq(used, s.len);
    cr_assert_str_eq(ev.data, "hello", "NUL-terminated, a convenience of struct buf");
    ev = ws_decode(&d, NULL, 0, &used);
    cr_assert_eq(ev.type, WS_EV_NONE);
    cr_assert_null(d.msg.data);
    ws_decoder_free(&d);
    stream_free(&s);
}

/* ------------------------------------------------------------------------
 * Decoding: refusals */

Test(ws_decode, binary_refused_1003_at_its_header)
{
    struct stream s = {0};
    text(&s, "before");
    frame(&s, FIN | WS_OP_BINARY, "\x00\x01", 2);
    text(&s, "after");
    EXPECT(&s, TEXT("before"), ERR(1003));
    stream_free(&s);

    frame(&s, WS_OP_BINARY, "first fragment", 14);
    EXPECT(&s, ERR(1003));
    stream_free(&s);

    /* nothing of the payload is needed */
    raw_frame(&s, FIN | WS_OP_BINARY, rfc_mask, LEN_AUTO, 100, NULL, 0);
    size_t used;
    struct ws_event ev = first_event(&s, &used);
    cr_assert_eq(ev.type, WS_EV_ERROR);
    cr_assert_eq(ev.code, 1003);
    cr_assert_eq(used, 6);
    stream_free(&s);
}

Test(ws_decode, oversize_binary_is_1009_as_in_wslay)
{
    struct stream s = {0};
    raw_frame(&s, FIN | WS_OP_BINARY, rfc_mask, LEN_AUTO, WS_MAX_MESSAGE + 1, "ab", 2);
    EXPECT(&s, ERR(1009));
    stream_free(&s);
}

Test(ws_decode, oversize_refused_1009_from_the_header)
{
    struct stream s = {0};
    /* one frame over the limit: refused before a payload byte is read */
    raw_frame(&s, FIN | WS_OP_TEXT, rfc_mask, LEN_AUTO, WS_MAX_MESSAGE + 1, NULL, 0);
    size_t used;
    struct ws_event ev = first_event(&s, &used);
    cr_assert_eq(ev.type, WS_EV_ERROR);
    cr_assert_eq(ev.code, 1009);
    cr_assert_eq(used, 8);
    put(&s, "abc", 3); /* wslay needs a payload byte before it looks at a header */
    EXPECT(&s, ERR(1009));
    stream_free(&s);

    /* the sum of the fragments over the limit */
    static char big[4000];
    memset(big, 'y', sizeof big);
    text(&s, "fine");
    frame(&s, WS_OP_TEXT, big, 4000);
    frame(&s, FIN | WS_OP_PING, "", 0);
    frame(&s, WS_OP_CONT, big, 96);
    raw_frame(&s, FIN | WS_OP_CONT, rfc_mask, LEN_AUTO, 1, "z", 1);
    EXPECT(&s, TEXT("fine"), PING(""), ERR(1009));
    stream_free(&s);
}

Test(ws_decode, sixty_four_bit_lengths)
{
    struct stream s = {0};
    raw_frame(&s, FIN | WS_OP_TEXT, rfc_mask, LEN_64, 0x10000, "ab", 2);
    EXPECT(&s, ERR(1009));
    stream_free(&s);

    raw_frame(&s, FIN | WS_OP_TEXT, rfc_mask, LEN_64, UINT64_MAX >> 1, "ab", 2);
    EXPECT(&s, ERR(1009));
    stream_free(&s);

    raw_frame(&s, FIN | WS_OP_TEXT, rfc_mask, LEN_64, 1ull << 63, "ab", 2); /* MSB set */
    EXPECT(&s, ERR(1002));
    stream_free(&s);

    raw_frame(&s, FIN | WS_OP_TEXT, rfc_mask, LEN_64, 0xFFFF, "ab", 2); /* fits in 16 bits */
    EXPECT(&s, ERR(1002));
    stream_free(&s);

    raw_frame(&s, FIN | WS_OP_TEXT, rfc_mask, LEN_64, 5, "hello", 5); /* fits in 7 */
    EXPECT(&s, ERR(1002));
    stream_free(&s);

    raw_frame(&s, FIN | WS_OP_TEXT, rfc_mask, LEN_16, 125, "hello", 5);
    EXPECT(&s, ERR(1002));
    stream_free(&s);
}

Test(ws_decode, invalid_utf8_refused_1007)
{
    static const char *bad[] = {
        "\xff",                 /* never valid */
        "ok\x80",               /* lone continuation */
        "\xc0\xaf",             /* overlong '/' */
        "\xe0\x80\xaf",         /* overlong, 3 bytes */
        "\xf0\x80\x80\xaf",     /* overlong, 4 bytes */
        "\xed\xa0\x80",         /* surrogate U+D800 */
        "\xed\xbf\xbf",         /* surrogate U+DFFF */
        "\xf4\x90\x80\x80",     /* U+110000 */
        "\xe2\x82",             /* message ends inside a code point */
        "\xf0\x9f\x98",
        "a\xe2\x28\xa1",        /* lead byte followed by ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct stream s = {0};
        text(&s, "valid first");
        text(&s, bad[i]);
        EXPECT(&s, TEXT("valid first"), ERR(1007));
        stream_free(&s);
    }
}

Test(ws_decode, invalid_utf8_across_fragments)
{
    struct stream s = {0};
    frame(&s, WS_OP_TEXT, "ok \xe2", 4);
    frame(&s, FIN | WS_OP_PING, "", 0);
    frame(&s, FIN | WS_OP_CONT, "\x28", 1); /* a lead byte's tail must be 80..BF */
    EXPECT(&s, PING(""), ERR(1007));
    stream_free(&s);

    /* truncated at FIN after fragments that were each fine so far */
    frame(&s, WS_OP_TEXT, "\xf0", 1);
    frame(&s, WS_OP_CONT, "\x9f", 1);
    frame(&s, FIN | WS_OP_CONT, "\x98", 1);
    EXPECT(&s, ERR(1007));
    stream_free(&s);
}

Test(ws_decode, invalid_utf8_refused_before_the_frame_ends)
{
    struct stream s = {0};
    raw_frame(&s, FIN | WS_OP_TEXT, rfc_mask, LEN_AUTO, 100, "ab\xff", 3);
    size_t used;
    struct ws_event ev = first_event(&s, &used);
    cr_assert_eq(ev.type, WS_EV_ERROR);
    cr_assert_eq(ev.code, 1007);
    EXPECT(&s, ERR(1007));
    stream_free(&s);
}

Test(ws_decode, close_codes_refused)
{
    static const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 2000,
                                   2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct stream s = {0};
        close_frame(&s, bad[i], "");
        EXPECT(&s, ERR(1002));
        stream_free(&s);
    }
    struct stream s = {0};
    close_frame(&s, 1000, "\xc3"); /* reason cut inside a code point */
    EXPECT(&s, ERR(1007));
    stream_free(&s);

    close_frame(&s, 1000, "\xed\xa0\x80");
    EXPECT(&s, ERR(1007));
    stream_free(&s);
}

/* A close payload of one byte is half a status code: a protocol error
 * (RFC 6455 5.5.1). wslay takes it for a close without a code. */
Test(ws_decode, close_with_one_byte_differs_from_wslay)
{
    struct stream s = {0};
    frame(&s, FIN | WS_OP_CLOSE, "\x03", 1);
    expect_ours(&s, EVENTS(ERR(1002)));
    expect_wslay(&s, EVENTS(CLOSE(1005, "")));
    stream_free(&s);
}

Test(ws_decode, control_frame_rules)
{
    static char p[126];
    memset(p, 'p', sizeof p);
    struct stream s = {0};
    raw_frame(&s, FIN | WS_OP_PING, rfc_mask, LEN_AUTO, 126, p, 126); /* too long */
    EXPECT(&s, ERR(1002));
    stream_free(&s);

    raw_frame(&s, FIN | WS_OP_PONG, rfc_mask, LEN_16, 10, p, 10); /* even when encoded long */
    EXPECT(&s, ERR(1002));
    stream_free(&s);

    frame(&s, WS_OP_PING, "frag", 4); /* fragmented */
    EXPECT(&s, ERR(1002));
    stream_free(&s);

    close_frame(&s, 1000, "");
    s.p[0] &= (uint8_t)~FIN;
    EXPECT(&s, ERR(1002));
    stream_free(&s);

    frame(&s, FIN | WS_OP_PING, p, 125); /* the longest allowed */
    struct ev want[] = {{WS_EV_PING, 0, 125, p}};
    expect_ours(&s, want, 1);
    expect_wslay(&s, want, 1);
    stream_free(&s);
}

Test(ws_decode, unmasked_frames_refused)
{
    struct stream s = {0};
    text(&s, "masked");
    raw_frame(&s, FIN | WS_OP_TEXT, NULL, LEN_AUTO, 5, "plain", 5);
    EXPECT(&s, TEXT("masked"), ERR(1002));
    stream_free(&s);

    raw_frame(&s, FIN | WS_OP_PING, NULL, LEN_AUTO, 0, NULL, 0);
    EXPECT(&s, ERR(1002));
    stream_free(&s);
}

Test(ws_decode, rsv_bits_refused)
{
    static const uint8_t rsv[] = {RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3};
    for (size_t i = 0; i < sizeof rsv / sizeof *rsv; i++) {
        struct stream s = {0};
        frame(&s, FIN | rsv[i] | WS_OP_TEXT, "x", 1);
        EXPECT(&s, ERR(1002));
        stream_free(&s);
        frame(&s, FIN | rsv[i] | WS_OP_PING, "", 0);
        EXPECT(&s, ERR(1002));
        stream_free(&s);
    }
}

Test(ws_decode, unknown_opcodes_refused)
{
    for (uint8_t op = 3; op <= 0xF; op++) {
        if (op >= WS_OP_CLOSE && op <= WS_OP_PONG)
            continue;
        struct stream s = {0};
        frame(&s, FIN | op, "x", 1);
        EXPECT(&s, ERR(1002));
        stream_free(&s);

        frame(&s, WS_OP_TEXT, "open", 4); /* and in the middle of a message */
        frame(&s, FIN | op, "x", 1);
        EXPECT(&s, ERR(1002));
        stream_free(&s);
    }
}

Test(ws_decode, fragment_sequence_errors)
{
    struct stream s = {0};
    frame(&s, FIN | WS_OP_CONT, "orphan", 6);
    EXPECT(&s, ERR(1002));
    stream_free(&s);

    text(&s, "done");
    frame(&s, WS_OP_CONT, "orphan", 6); /* the previous message is over */
    EXPECT(&s, TEXT("done"), ERR(1002));
    stream_free(&s);

    frame(&s, WS_OP_TEXT, "open", 4);
    text(&s, "new");
    EXPECT(&s, ERR(1002));
    stream_free(&s);

    frame(&s, WS_OP_TEXT, "open", 4);
    frame(&s, FIN | WS_OP_BINARY, "new", 3);
    EXPECT(&s, ERR(1002));
    stream_free(&s);
}

Test(ws_decode, stays_failed)
{
    struct stream s = {0};
    frame(&s, FIN | WS_OP_BINARY, "b", 1);
    size_t bad_len = s.len;
    text(&s, "ignored");
    struct ws_decoder d;
    ws_decoder_init(&d);
    size_t used;
    struct ws_event ev = ws_decode(&d, s.p, s.len, &used);
    cr_assert_eq(ev.type, WS_EV_ERROR);
    cr_assert_leq(used, bad_len);
    size_t rest = s.len - used;
    ev = ws_decode(&d, s.p + used, rest, &used);
    cr_assert_eq(ev.type, WS_EV_NONE, "a failed decoder reports nothing more");
    cr_assert_eq(used, rest, "and swallows whatever comes");
    cr_assert_null(d.msg.data);
    ws_decoder_free(&d);
    stream_free(&s);
}

/* ------------------------------------------------------------------------
 * Random streams against wslay */

static uint64_t rng;

static uint32_t rnd(void) /* xorshift64, seeded by each test: the same streams every run */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static uint32_t below(uint32_t n) { return rnd() % n; }

static uint32_t random_code_point(void)
{
    static const uint32_t edge[] = {0x00,   0x7F,   0x80,   0x7FF,   0x800,   0xD7FF,
                                    0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF};
    switch (below(6)) {
    case 0:
        return edge[below(sizeof edge / sizeof *edge)];
    case 1:
        return 0x80 + below(0x800 - 0x80);
    case 2: { /* 0x800..0xFFFF without the surrogates */
        uint32_t cp = 0x800 + below(0x10000 - 0x800 - 0x800);
        return cp < 0xD800 ? cp : cp + 0x800;
    }
    case 3:
        return 0x10000 + below(0x110000 - 0x10000);
    default:
        return 0x20 + below(0x7F - 0x20);
    }
}

/* Exactly n bytes of valid UTF-8. */
static void random_text(uint8_t *o, size_t n)
{
    for (size_t len = 0; len < n;) {
        uint8_t cp[4];
        size_t k = encode_utf8(cp, random_code_point());
        if (len + k > n) {
            k = 1;
            cp[0] = (uint8_t)('a' + below(26));
        }
        memcpy(o + len, cp, k);
        len += k;
    }
}

static size_t frame_starts[512], nframes; /* where random_stream put each header */

static void random_frame(struct stream *s, uint8_t b0, const void *p, size_t n)
{
    uint8_t mask[4] = {0};
    if (below(8)) /* now and then the all-zero mask, which masks nothing */
        for (int i = 0; i < 4; i++)
            mask[i] = (uint8_t)rnd();
    if (nframes < sizeof frame_starts / sizeof *frame_starts)
        frame_starts[nframes++] = s->len;
    raw_frame(s, b0, mask, LEN_AUTO, n, p, n);
}

static void random_control(struct stream *s, struct evlog *want)
{
    uint8_t p[WS_MAX_CONTROL];
    size_t n = below(WS_MAX_CONTROL + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd(); /* ping payloads are bytes, not text */
    bool ping = below(2);
    random_frame(s, FIN | (ping ? WS_OP_PING : WS_OP_PONG), p, n);
    log_add(want, ping ? WS_EV_PING : WS_EV_PONG, 0, p, n);
}

/* 1-5 text messages, some near the size limit, each in 1-4 fragments cut
 * at random bytes (inside code points too), pings and pongs between
 * fragments, sometimes a close at the end; `want` gets the events. */
static void random_stream(struct stream *s, struct evlog *want)
{
    static uint8_t msg[WS_MAX_MESSAGE];
    nframes = 0;
    for (uint32_t m = 1 + below(5); m > 0; m--) {
        if (below(4) == 0)
            random_control(s, want);
        size_t len = below(8) == 0 ? WS_MAX_MESSAGE - below(200) : below(300);
        random_text(msg, len);
        size_t nfrag = 1 + below(4), cut[5] = {0};
        cut[nfrag] = len;
        for (size_t i = 1; i < nfrag; i++) { /* insertion sort of the cut points */
            size_t c = below((uint32_t)len + 1), j = i;
            for (; j > 1 && cut[j - 1] > c; j--)
                cut[j] = cut[j - 1];
            cut[j] = c;
        }
        for (size_t f = 0; f < nfrag; f++) {
            uint8_t b0 = (uint8_t)((f == 0 ? WS_OP_TEXT : WS_OP_CONT) | (f == nfrag - 1 ? FIN : 0));
            random_frame(s, b0, msg + cut[f], cut[f + 1] - cut[f]);
            if (f < nfrag - 1 && below(3) == 0)
                random_control(s, want);
        }
        log_add(want, WS_EV_TEXT, 0, msg, len);
    }
    if (below(4) == 0) {
        static const uint16_t codes[] = {1000, 1001, 1003, 1007, 1008, 1011, 3000, 4999};
        uint16_t code = codes[below(sizeof codes / sizeof *codes)];
        uint8_t p[WS_MAX_CONTROL] = {(uint8_t)(code >> 8), (uint8_t)code};
        size_t n = below(WS_MAX_CONTROL - 2 + 1);
        random_text(p + 2, n);
        random_frame(s, FIN | WS_OP_CLOSE, p, 2 + n);
        log_add(want, WS_EV_CLOSE, code, p + 2, n);
    }
}

static void decode_random_cuts(const struct stream *s, struct evlog *out)
{
    size_t cuts[8], n = below(9);
    for (size_t i = 0; i < n; i++) {
        size_t c = below((uint32_t)s->len + 1), j = i;
        for (; j > 0 && cuts[j - 1] > c; j--)
            cuts[j] = cuts[j - 1];
        cuts[j] = c;
    }
    decode_cut(s, cuts, n, out);
}

Test(ws_oracle, random_valid_streams)
{
    rng = 0x2545F4914F6CDD1Du;
    for (int i = 0; i < 400; i++) {
        struct stream s = {0};
        struct evlog want = {0}, got = {0};
        random_stream(&s, &want);
        char how[64];

        decode_whole(&s, &got);
        snprintf(how, sizeof how, "stream %d whole", i);
        assert_log(&got, want.ev, want.n, false, how);
        log_free(&got);

        decode_random_cuts(&s, &got);
        snprintf(how, sizeof how, "stream %d in random pieces", i);
        assert_log(&got, want.ev, want.n, false, how);
        log_free(&got);

        /* Reads end at frame boundaries, as they would with a client that
         * writes one frame at a time: wslay misjudges a close reason that
         * takes two reads (wslay_misjudges_a_close_reason_read_in_pieces). */
        wslay_decode_ex(&s, SIZE_MAX, frame_starts, nframes, &got);
        snprintf(how, sizeof how, "stream %d through wslay", i);
        if (!log_matches(&got, want.ev, want.n, false))
            dump_stream(&s);
        assert_log(&got, want.ev, want.n, false, how);
        log_free(&got);

        log_free(&want);
        stream_free(&s);
    }
}

/* Where each frame ends as our decoder sees it, for wslay's reads to stop
 * there. How bytes are cut cannot change what a correct decoder makes of
 * them, so this only keeps wslay's one cut-dependent bug out of the way. */
static size_t frame_ends(const struct stream *s, size_t *ends, size_t max)
{
    struct ws_decoder d;
    ws_decoder_init(&d);
    size_t n = 0, used;
    for (size_t i = 0; i < s->len && n < max && !d.failed && !d.closed; i++) {
        ws_decode(&d, s->p + i, 1, &used);
        if (!d.in_payload && d.hdr_len == 0)
            ends[n++] = i + 1;
    }
    ws_decoder_free(&d);
    return n;
}

/* Did our decoder refuse s over a one-byte close payload, the one case
 * where wslay answers differently (close_with_one_byte_differs_from_wslay)? */
static bool refused_one_byte_close(const struct stream *s)
{
    struct ws_decoder d;
    ws_decoder_init(&d);
    size_t off = 0, used;
    struct ws_event ev;
    do {
        ev = ws_decode(&d, s->p + off, s->len - off, &used);
        off += used;
    } while (ev.type != WS_EV_NONE && ev.type != WS_EV_ERROR);
    bool yes = ev.type == WS_EV_ERROR && d.opcode == WS_OP_CLOSE && d.ctrl_len == 1;
    ws_decoder_free(&d);
    return yes;
}

/* Valid streams with 1-3 bytes flipped or replaced, half of them in frame
 * headers: both decoders must deliver the same messages and refuse alike. */
Test(ws_oracle, mutated_streams)
{
    enum { N = 1000 };
    rng = 0x9E3779B97F4A7C15u;
    unsigned outcome[5] = {0}; /* accepted, 1002, 1003, 1007, 1009 */
    unsigned one_byte_close = 0;
    for (int i = 0; i < N; i++) {
        struct stream s = {0};
        struct evlog want = {0}, ours = {0}, again = {0}, theirs = {0};
        random_stream(&s, &want);
        log_free(&want);
        for (uint32_t m = 1 + below(3); m > 0; m--) {
            size_t start = frame_starts[below((uint32_t)nframes)];
            size_t at = below(2) ? start + below(14) : below((uint32_t)s.len);
            if (at >= s.len)
                at = s.len - 1;
            switch (below(3)) {
            case 0:
                s.p[at] ^= (uint8_t)(1u << below(8));
                break;
            case 1:
                s.p[at] = (uint8_t)rnd();
                break;
            default: /* another opcode: a bit flip rarely makes a binary frame */
                s.p[start] = (uint8_t)((s.p[start] & 0xF0) | below(16));
                break;
            }
        }
        /* wslay looks at a header only once a payload byte follows it; zero
         * bytes after the stream make sure one does (and then parse as an
         * unmasked frame, refused by both). */
        static const uint8_t zeros[16];
        put(&s, zeros, sizeof zeros);

        char how[64];
        decode_whole(&s, &ours);
        decode_random_cuts(&s, &again);
        snprintf(how, sizeof how, "mutated stream %d in random pieces", i);
        assert_log(&again, ours.ev, ours.n, false, how);

        static size_t ends[1024];
        wslay_decode_ex(&s, SIZE_MAX, ends, frame_ends(&s, ends, 1024), &theirs);
        snprintf(how, sizeof how, "mutated stream %d through wslay", i);
        if (refused_one_byte_close(&s)) {
            one_byte_close++;
            cr_assert_eq(theirs.n, ours.n);
            cr_assert_eq(theirs.ev[theirs.n - 1].type, WS_EV_CLOSE);
            theirs.ev[theirs.n - 1] = (struct ev){WS_EV_ERROR, 1002, 0, theirs.ev[theirs.n - 1].data};
        }
        if (!log_matches(&theirs, ours.ev, ours.n, true))
            dump_stream(&s);
        assert_log(&theirs, ours.ev, ours.n, true, how);

        const struct ev *last = ours.n ? &ours.ev[ours.n - 1] : NULL;
        if (!last || last->type != WS_EV_ERROR)
            outcome[0]++;
        else
            outcome[last->code == 1002 ? 1 : last->code == 1003 ? 2 : last->code == 1007 ? 3 : 4]++;
        log_free(&ours);
        log_free(&again);
        log_free(&theirs);
        stream_free(&s);
    }
    /* the mutations must reach every kind of refusal, or this proves little */
    cr_log_info("mutated: %u ended without error, 1002 %u, 1003 %u, 1007 %u, 1009 %u, "
                "one-byte close %u", outcome[0], outcome[1], outcome[2], outcome[3], outcome[4],
                one_byte_close);
    for (int k = 1; k < 5; k++)
        cr_assert_gt(outcome[k], 0, "no mutated stream ended in outcome %d", k);
}

/* wslay checks a close reason's UTF-8 per read, from offset 2 of each piece
 * as if every piece began with the status code: reasons that arrive in
 * several reads are misjudged. Ours does not depend on how bytes arrive. */
Test(ws_oracle, wslay_misjudges_a_close_reason_read_in_pieces)
{
    struct stream s = {0};
    close_frame(&s, 1000, "\xff"); /* invalid */
    expect_ours(&s, EVENTS(ERR(1007)));
    struct evlog got = {0};
    wslay_decode_chunked(&s, SIZE_MAX, &got);
    assert_log(&got, EVENTS(ERR(1007)), true, "wslay, one read");
    log_free(&got);
    wslay_decode_chunked(&s, 2, &got); /* the 0xff comes alone and goes unchecked */
    assert_log(&got, EVENTS(CLOSE(1000, "\xff")), true, "wslay, 2-byte reads");
    log_free(&got);
    stream_free(&s);

    close_frame(&s, 1000, "ab\xc3\xa9"); /* valid */
    expect_ours(&s, EVENTS(CLOSE(1000, "ab\xc3\xa9")));
    wslay_decode_chunked(&s, SIZE_MAX, &got);
    assert_log(&got, EVENTS(CLOSE(1000, "ab\xc3\xa9")), true, "wslay, one read");
    log_free(&got);
    wslay_decode_chunked(&s, 3, &got); /* reads "\x03\xe8a", "b\xc3\xa9": only 0xa9 is checked */
    assert_log(&got, EVENTS(ERR(1007)), true, "wslay, 3-byte reads");
    log_free(&got);
    stream_free(&s);
}
