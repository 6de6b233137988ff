/* libFuzzer target: the WebSocket frame decoder (ws_decode).
 *
 * Input: one byte that seeds the split points, then the client's bytes.
 * Checked:
 *  - differential: the stream decoded in one piece, one byte at a time and
 *    in pseudo-random pieces gives the same events, byte for byte; each
 *    piece is its own exact-size heap block, so an over-read is an ASan error;
 *  - oracle: the same events as a plain whole-buffer decoder written here
 *    from RFC 6455 and the contract (text only, 4096-byte messages, masked
 *    client frames, minimal lengths, the UTF-8 check with its own validator);
 *  - the API's promises: used <= len, all input used when no event, at most
 *    one error or close and nothing after it, text is valid UTF-8 and at
 *    most WS_MAX_MESSAGE bytes, control payloads at most 125 bytes, close
 *    codes valid, and no heap held between messages;
 *  - round trip: every text message, re-sent as masked client fragments
 *    with a ping between them, decodes to the same text;
 *  - ws_accept_key takes exactly the canonical base64 of 16 bytes (the
 *    input's first bytes as a key).
 */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "ws_codec.h"

/* --- UTF-8, written from RFC 3629's table rather than as a DFA ---------- */

enum u8 { U8_VALID, U8_PARTIAL, U8_INVALID }; /* PARTIAL: a valid prefix */

static enum u8 ref_utf8(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the first continuation byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F; /* past U+10FFFF */
        } else {
            return U8_INVALID;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n)
                return U8_PARTIAL;
            uint8_t t = p[i + k];
            if (k == 1 ? t < lo || t > hi : t < 0x80 || t > 0xBF)
                return U8_INVALID;
        }
        i += need + 1;
    }
    return U8_VALID;
}

/* --- transcripts --------------------------------------------------------- */

struct transcript {
    uint8_t *p;
    size_t len, cap;
    unsigned events;
};

static void put(struct transcript *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = 2 * (t->len + n) + 256;
        t->p = realloc(t->p, t->cap);
        CHECK(t->p);
    }
    if (n)
        memcpy(t->p + t->len, p, n);
    t->len += n;
}

static void record(struct transcript *t, enum ws_event_type type, uint16_t code,
                   const void *data, size_t len)
{
    uint8_t h[7] = {(uint8_t)type, (uint8_t)(code >> 8), (uint8_t)code, (uint8_t)(len >> 24),
                    (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    put(t, h, sizeof h);
    put(t, data, len);
    t->events++;
}

static bool same(const struct transcript *a, const struct transcript *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static bool code_valid(uint16_t c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

/* --- the decoder under test, fed in pieces -------------------------------- */

struct feeder {
    struct ws_decoder d;
    struct transcript t;
    bool ended; /* an error or a close was reported */
};

static void feed(struct feeder *f, const uint8_t *src, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    CHECK(p);
    if (len)
        memcpy(p, src, len);
    size_t off = 0;
    for (unsigned guard = 0;; guard++) {
        CHECK(guard <= len + 2);
        size_t used = 999999;
        struct ws_event ev = ws_decode(&f->d, p + off, len - off, &used);
        CHECK(used <= len - off);
        off += used;
        CHECK(f->d.msg.len <= WS_MAX_MESSAGE);
        if (ev.type == WS_EV_NONE) {
            CHECK(off == len);
            /* No message open: the last one's buffer is gone. */
            if (!f->d.msg_opcode)
                CHECK(f->d.msg.data == NULL);
            break;
        }
        CHECK(!f->ended);
        switch (ev.type) {
        case WS_EV_TEXT:
            CHECK(ev.len <= WS_MAX_MESSAGE && ev.data);
            CHECK(ref_utf8((const uint8_t *)ev.data, ev.len) == U8_VALID);
            break;
        case WS_EV_PING:
        case WS_EV_PONG:
            CHECK(ev.len <= WS_MAX_CONTROL);
            break;
        case WS_EV_CLOSE:
            CHECK(ev.code == 1005 ? ev.len == 0 : code_valid(ev.code));
            CHECK(ev.len <= WS_MAX_CONTROL - 2);
            CHECK(ref_utf8((const uint8_t *)ev.data, ev.len) == U8_VALID);
            f->ended = true;
            break;
        case WS_EV_ERROR:
            CHECK(ev.code == 1002 || ev.code == 1003 || ev.code == 1007 || ev.code == 1009 ||
                  ev.code == 1011);
            CHECK(ev.len == 0);
            f->ended = true;
            break;
        case WS_EV_NONE:
            break;
        }
        record(&f->t, ev.type, ev.code, ev.data, ev.len);
    }
    free(p);
}

/* Split by `next` sizes (0 = all at once). */
static void decode_split(struct feeder *f, const uint8_t *s, size_t n, uint64_t seed,
                         size_t max_piece)
{
    ws_decoder_init(&f->d);
    for (size_t off = 0; off < n;) {
        size_t k = max_piece ? fuzz_chunk(&seed, max_piece) : n;
        if (k > n - off)
            k = n - off;
        feed(f, s + off, k);
        off += k;
    }
    feed(f, s + n, 0); /* the call that frees a delivered message */
    ws_decoder_free(&f->d);
}

/* --- the oracle: whole-buffer, frame by frame ----------------------------- */

static void reference(struct transcript *t, const uint8_t *p, size_t n)
{
    uint8_t *msg = malloc(WS_MAX_MESSAGE + 1);
    CHECK(msg);
    size_t mlen = 0;
    bool open = false;
    size_t pos = 0;
    while (n - pos >= 2) {
        uint8_t b0 = p[pos], b1 = p[pos + 1], op = b0 & 15, len7 = b1 & 127;
        bool fin = b0 & 0x80, control = op & 8;
        bool known = op <= 2 || (op >= 8 && op <= 10);
        if ((b0 & 0x70) || !known || !(b1 & 0x80) || (control && (!fin || len7 > 125))) {
            record(t, WS_EV_ERROR, 1002, NULL, 0);
            break;
        }
        size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0, hlen = 2 + ext + 4;
        if (n - pos < hlen)
            break;
        uint64_t len = len7;
        if (ext) {
            len = 0;
            for (size_t i = 0; i < ext; i++)
                len = len << 8 | p[pos + 2 + i];
            if ((ext == 2 && len < 126) || (ext == 8 && (len < 65536 || len >> 63))) {
                record(t, WS_EV_ERROR, 1002, NULL, 0);
                break;
            }
        }
        const uint8_t *mask = p + pos + 2 + ext;
        if (!control) {
            uint16_t e = op == 0 && !open ? 1002
                         : op != 0 && open ? 1002
                         : (open ? mlen : 0) + len > WS_MAX_MESSAGE ? 1009
                         : op == 2 ? 1003
                                   : 0;
            if (e) {
                record(t, WS_EV_ERROR, e, NULL, 0);
                break;
            }
            if (op == 1) {
                open = true;
                mlen = 0;
            }
        }
        size_t avail = n - pos - hlen < len ? n - pos - hlen : (size_t)len;
        uint8_t ctrl[125];
        uint8_t *dst = control ? ctrl : msg + mlen;
        for (size_t i = 0; i < avail; i++)
            dst[i] = p[pos + hlen + i] ^ mask[i & 3];
        if (!control) {
            mlen += avail;
            if (ref_utf8(msg, mlen) == U8_INVALID) {
                record(t, WS_EV_ERROR, 1007, NULL, 0);
                break;
            }
        }
        if (avail < len)
            break; /* the frame is cut short: nothing more to say */
        pos += hlen + avail;
        if (op == 9 || op == 10) {
            record(t, op == 9 ? WS_EV_PING : WS_EV_PONG, 0, ctrl, avail);
        } else if (op == 8) {
            if (avail == 1) {
                record(t, WS_EV_ERROR, 1002, NULL, 0);
            } else if (avail >= 2 && ref_utf8(ctrl + 2, avail - 2) != U8_VALID) {
                record(t, WS_EV_ERROR, 1007, NULL, 0);
            } else if (avail >= 2 && !code_valid((uint16_t)(ctrl[0] << 8 | ctrl[1]))) {
                record(t, WS_EV_ERROR, 1002, NULL, 0);
            } else {
                uint16_t code = avail ? (uint16_t)(ctrl[0] << 8 | ctrl[1]) : 1005;
                record(t, WS_EV_CLOSE, code, ctrl + (avail ? 2 : 0), avail ? avail - 2 : 0);
            }
            break;
        } else if (fin) {
            if (ref_utf8(msg, mlen) != U8_VALID) {
                record(t, WS_EV_ERROR, 1007, NULL, 0);
                break;
            }
            record(t, WS_EV_TEXT, 0, msg, mlen);
            open = false;
            mlen = 0;
        }
    }
    free(msg);
}

/* --- round trip of each text message ---------------------------------------- */

static void client_frame(struct transcript *s, uint8_t b0, const uint8_t *payload, size_t n,
                         uint64_t *seed)
{
    uint8_t h[14];
    size_t hl = ws_frame_header(h, (enum ws_opcode)(b0 & 15), n);
    CHECK(hl >= 2 && hl <= 10);
    h[0] = b0;
    h[1] |= 0x80;
    uint64_t m = fuzz_rand(seed);
    uint8_t mask[4] = {(uint8_t)m, (uint8_t)(m >> 8), (uint8_t)(m >> 16), (uint8_t)(m >> 24)};
    memcpy(h + hl, mask, 4);
    put(s, h, hl + 4);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = payload[i] ^ mask[i & 3];
        put(s, &c, 1);
    }
}

static void round_trip(const uint8_t *text, size_t n, uint64_t seed)
{
    struct transcript s = {0};
    size_t off = 0;
    bool first = true;
    do {
        size_t k = n - off ? fuzz_chunk(&seed, n - off) : 0;
        if (fuzz_rand(&seed) & 1)
            k = n - off;
        bool fin = off + k == n;
        client_frame(&s, (uint8_t)((fin ? 0x80 : 0) | (first ? WS_OP_TEXT : WS_OP_CONT)),
                     text + off, k, &seed);
        if (!fin)
            client_frame(&s, 0x80 | WS_OP_PING, (const uint8_t *)"p", 1, &seed);
        off += k;
        first = false;
    } while (off < n);

    struct feeder f = {0};
    decode_split(&f, s.p, s.len, seed, 7);
    struct transcript want = {0};
    size_t pings = 0;
    for (size_t i = 0; i < s.len;) { /* count the pings put in above */
        size_t hl = (s.p[i + 1] & 127) == 126 ? 4 : (s.p[i + 1] & 127) == 127 ? 10 : 2;
        size_t len = hl == 2 ? s.p[i + 1] & 127 : hl == 4 ? (size_t)(s.p[i + 2] << 8 | s.p[i + 3]) : 0;
        if ((s.p[i] & 15) == WS_OP_PING) {
            record(&want, WS_EV_PING, 0, "p", 1);
            pings++;
        }
        i += hl + 4 + len;
    }
    record(&want, WS_EV_TEXT, 0, text, n);
    /* The text event comes last; pings arrive before it, in order. */
    CHECK(f.t.events == pings + 1);
    CHECK(same(&f.t, &want));
    free(want.p);
    free(f.t.p);
    free(s.p);
}

/* 16 bytes in base64: 21 full characters, one whose low 4 bits are padding
 * (so zero), then "==". */
static void check_accept_key(const uint8_t *s, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char key[32], out[29];
    size_t k = n < sizeof key - 1 ? n : sizeof key - 1;
    memcpy(key, s, k);
    key[k] = '\0';
    bool canonical = strlen(key) == 24 && key[22] == '=' && key[23] == '=';
    for (size_t i = 0; canonical && i < 22; i++) {
        const char *c = key[i] ? strchr(b64, key[i]) : NULL;
        canonical = c && (i < 21 || (c - b64) % 16 == 0);
    }
    memset(out, 'x', sizeof out);
    int rc = ws_accept_key(key, out);
    CHECK((rc == 0) == canonical);
    if (rc == 0)
        CHECK(strlen(out) == 28 && out[27] == '=' && out[26] != '=');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint64_t seed = data[0];
    const uint8_t *s = data + 1;
    size_t n = size - 1;

    struct feeder whole = {0}, bytes = {0}, pieces = {0};
    decode_split(&whole, s, n, seed, 0);
    decode_split(&bytes, s, n, seed, 1);
    decode_split(&pieces, s, n, seed, 1 + data[0] % 32);
    CHECK(same(&whole.t, &bytes.t));
    CHECK(same(&whole.t, &pieces.t));

    struct transcript ref = {0};
    reference(&ref, s, n);
    CHECK(same(&ref, &whole.t));

    /* Walk the transcript for text events and send each back round. */
    for (size_t i = 0; i < whole.t.len;) {
        const uint8_t *h = whole.t.p + i;
        size_t len = (size_t)h[3] << 24 | (size_t)h[4] << 16 | (size_t)h[5] << 8 | h[6];
        if (h[0] == WS_EV_TEXT)
            round_trip(h + 7, len, seed + i);
        i += 7 + len;
    }
    check_accept_key(s, n);
    free(ref.p);
    free(whole.t.p);
    free(bytes.t.p);
    free(pieces.t.p);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
