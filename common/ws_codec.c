/* The WebSocket frame codec (RFC 6455), server side. ws_codec.h says why it
 * is ours and not wslay's; tests/unit/test_ws_codec.c checks it against
 * wslay byte for byte. */
#include "ws_codec.h"

#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

/* ------------------------------------------------------------------------
 * UTF-8: Bjoern Hoehrmann's DFA (http://bjoern.hoehrmann.de/utf-8/decoder/dfa/)
 * in its first form, where 0 accepts and 1 rejects, as ws_codec.h promises.
 *
 * Each byte falls in a class; (state, class) gives the next state. The
 * continuation bytes 80..BF are split into three classes because the rules
 * against overlong forms (after E0, F0), surrogates (after ED) and code
 * points past U+10FFFF (after F4) cut that range at 8F/90 and 9F/A0. The
 * state therefore remembers exactly what the next byte may be, and nothing
 * else: validation can stop and resume at any byte, which is what frames
 * split across reads and fragments need. */

enum {
    U8_TAIL1 = 2, /* one continuation byte to go */
    U8_TAIL2 = 3, /* two to go */
    U8_E0 = 4,    /* after E0: A0..BF next, else overlong */
    U8_ED = 5,    /* after ED: 80..9F next, else a surrogate */
    U8_F0 = 6,    /* after F0: 90..BF next, else overlong */
    U8_TAIL3 = 7, /* after F1..F3: three to go */
    U8_F4 = 8,    /* after F4: 80..8F next, else past U+10FFFF */
};

static const uint8_t utf8_class[256] = {
    /* 00..7F: ASCII */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F: class 1, 90..9F: class 9 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
    /* A0..BF: class 7 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    /* C0, C1: never valid (overlong); C2..DF: two-byte leads */
    8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* E0 | E1..EC | ED | EE..EF || F0 | F1..F3 | F4 | F5..FF never valid */
    10, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3, 11, 6, 6, 6, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
};

static const uint8_t utf8_next[9][12] = {
    /* class:     0  1  2  3  4  5  6  7  8  9 10 11 */
    [UTF8_ACCEPT] = {0, 1, U8_TAIL1, U8_TAIL2, U8_ED, U8_F4, U8_TAIL3, 1, 1, 1, U8_E0, U8_F0},
    [UTF8_REJECT] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    [U8_TAIL1] = {1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1},
    [U8_TAIL2] = {1, U8_TAIL1, 1, 1, 1, 1, 1, U8_TAIL1, 1, U8_TAIL1, 1, 1},
    [U8_E0] = {1, 1, 1, 1, 1, 1, 1, U8_TAIL1, 1, 1, 1, 1},
    [U8_ED] = {1, U8_TAIL1, 1, 1, 1, 1, 1, 1, 1, U8_TAIL1, 1, 1},
    [U8_F0] = {1, 1, 1, 1, 1, 1, 1, U8_TAIL2, 1, U8_TAIL2, 1, 1},
    [U8_TAIL3] = {1, U8_TAIL2, 1, 1, 1, 1, 1, U8_TAIL2, 1, U8_TAIL2, 1, 1},
    [U8_F4] = {1, U8_TAIL2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
};

uint32_t utf8_validate(uint32_t state, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && state != UTF8_REJECT; i++)
        state = utf8_next[state][utf8_class[p[i]]];
    return state;
}

/* ------------------------------------------------------------------------
 * Decoder. One frame at a time: gather its header (2..14 bytes, byte by
 * byte so a header split anywhere needs no special case), then stream its
 * payload, unmasking on the way, into ctrl (control frames) or msg (text). */

static bool is_control(uint8_t op) { return op & 0x8; }

static bool is_known(uint8_t op)
{
    return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY || op == WS_OP_CLOSE ||
           op == WS_OP_PING || op == WS_OP_PONG;
}

static struct ws_event no_event(void) { return (struct ws_event){.type = WS_EV_NONE}; }

/* No event will follow: a message left half-assembled never completes. */
static void stop(struct ws_decoder *d)
{
    d->msg_opcode = 0;
    buf_free(&d->msg);
}

static struct ws_event fail(struct ws_decoder *d, uint16_t code)
{
    d->failed = true;
    stop(d);
    return (struct ws_event){.type = WS_EV_ERROR, .code = code};
}

/* What the first two bytes alone can already refuse; 0 if nothing. */
static uint16_t check_first_bytes(const struct ws_decoder *d)
{
    uint8_t op = d->hdr[0] & 0x0F;
    if (d->hdr[0] & 0x70)
        return 1002; /* RSV1-3: meaningful only with an extension, and we negotiate none */
    if (!is_known(op))
        return 1002;
    if (!(d->hdr[1] & 0x80))
        return 1002; /* a client's frames must be masked (5.1) */
    if (is_control(op) && (!(d->hdr[0] & 0x80) || (d->hdr[1] & 0x7F) > WS_MAX_CONTROL))
        return 1002; /* control frames are short and never fragmented (5.5) */
    return 0;
}

static uint64_t read_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

size_t ws_frame_head(const uint8_t *p, size_t n, uint64_t *payload)
{
    if (n < 2)
        return 0;
    uint8_t len7 = p[1] & 0x7F;
    size_t field = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t size = 2 + field + (p[1] & 0x80 ? 4 : 0);
    if (n < size)
        return 0;
    *payload = field ? read_be(p + 2, field) : len7;
    return size;
}

/* The header (d->hdr_len bytes, the mask key last) is complete and announces
 * len payload bytes: check it against the message state. The checks run in
 * wslay's order (length encoding, sequence, size, binary) so the oracle test
 * can expect the same close code. */
static struct ws_event start_frame(struct ws_decoder *d, uint64_t len)
{
    uint8_t len7 = d->hdr[1] & 0x7F;
    if (len7 == 126 && len < 126)
        return fail(d, 1002); /* 5.2: "the minimal number of bytes MUST be used" */
    if (len7 == 127 && (len < 0x10000 || len >> 63))
        return fail(d, 1002); /* likewise, and the top bit MUST be 0 */
    memcpy(d->mask, d->hdr + d->hdr_len - 4, 4);
    d->mask_pos = 0;
    d->opcode = d->hdr[0] & 0x0F;
    d->fin = d->hdr[0] & 0x80;
    d->left = len;
    d->hdr_len = 0;

    if (is_control(d->opcode)) {
        d->ctrl_len = 0; /* may interleave with a fragmented message: msg is left alone */
    } else {
        if (d->opcode == WS_OP_CONT && !d->msg_opcode)
            return fail(d, 1002); /* nothing to continue */
        if (d->opcode != WS_OP_CONT && d->msg_opcode)
            return fail(d, 1002); /* a new message before the last one ended */
        /* From the header, before buffering a byte: a peer cannot make us
         * hold more than WS_MAX_MESSAGE. */
        if (d->msg.len + len > WS_MAX_MESSAGE)
            return fail(d, 1009);
        if (d->opcode == WS_OP_BINARY)
            return fail(d, 1003); /* the chat speaks text only (contract) */
        if (d->opcode == WS_OP_TEXT) {
            d->msg_opcode = WS_OP_TEXT;
            d->utf8_state = UTF8_ACCEPT;
        }
    }
    d->in_payload = true;
    return no_event();
}

static void unmask(struct ws_decoder *d, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] ^= d->mask[d->mask_pos];
        d->mask_pos = (d->mask_pos + 1) & 3;
    }
}

static struct ws_event take_payload(struct ws_decoder *d, const uint8_t *p, size_t n)
{
    if (is_control(d->opcode)) {
        memcpy(d->ctrl + d->ctrl_len, p, n); /* n <= left <= WS_MAX_CONTROL - ctrl_len */
        unmask(d, d->ctrl + d->ctrl_len, n);
        d->ctrl_len += (uint8_t)n;
        return no_event();
    }
    size_t old = d->msg.len;
    if (buf_append(&d->msg, p, n, WS_MAX_MESSAGE) < 0)
        return fail(d, 1011); /* out of memory: the size was checked already */
    uint8_t *text = (uint8_t *)d->msg.data + old;
    unmask(d, text, n);
    /* Validate as bytes arrive, so a bad message is refused at its first
     * bad byte rather than after 4 KiB of buffering. */
    d->utf8_state = utf8_validate(d->utf8_state, text, n);
    if (d->utf8_state == UTF8_REJECT)
        return fail(d, 1007);
    return no_event();
}

static bool close_code_valid(uint16_t code)
{
    /* 7.4: 1004-1006 and 1015 are reserved and must never be sent; the
     * rest of 1000-2999 is for future RFCs, 3000-4999 for applications.
     * 1012-1014 (IANA-registered later) are refused as wslay does. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

static struct ws_event close_event(struct ws_decoder *d)
{
    uint16_t code = 1005; /* "no status code was present" (7.4.1); never sent */
    size_t skip = 0;
    if (d->ctrl_len == 1)
        return fail(d, 1002); /* half a status code */
    if (d->ctrl_len >= 2) {
        /* The reason is checked before the code only to agree with wslay,
         * which validates it as it streams in; RFC 6455 sets no order. */
        if (utf8_validate(UTF8_ACCEPT, d->ctrl + 2, d->ctrl_len - 2u) != UTF8_ACCEPT)
            return fail(d, 1007);
        code = (uint16_t)read_be(d->ctrl, 2);
        if (!close_code_valid(code))
            return fail(d, 1002);
        skip = 2;
    }
    d->closed = true;
    stop(d);
    return (struct ws_event){.type = WS_EV_CLOSE,
                             .code = code,
                             .data = (const char *)d->ctrl + skip,
                             .len = d->ctrl_len - skip};
}

static struct ws_event end_frame(struct ws_decoder *d)
{
    d->in_payload = false;
    switch (d->opcode) {
    case WS_OP_PING:
    case WS_OP_PONG:
        return (struct ws_event){.type = d->opcode == WS_OP_PING ? WS_EV_PING : WS_EV_PONG,
                                 .data = (const char *)d->ctrl,
                                 .len = d->ctrl_len};
    case WS_OP_CLOSE:
        return close_event(d);
    default: /* text or its continuation */
        if (!d->fin)
            return no_event();
        if (d->utf8_state != UTF8_ACCEPT)
            return fail(d, 1007); /* the message ends inside a code point */
        d->msg_opcode = 0;
        /* msg stays allocated until the next call: the event points into it */
        return (struct ws_event){.type = WS_EV_TEXT,
                                 .data = d->msg.data ? d->msg.data : "",
                                 .len = d->msg.len};
    }
}

void ws_decoder_init(struct ws_decoder *d) { *d = (struct ws_decoder){0}; }

void ws_decoder_free(struct ws_decoder *d)
{
    buf_free(&d->msg);
    ws_decoder_init(d);
}

struct ws_event ws_decode(struct ws_decoder *d, const uint8_t *data, size_t len, size_t *used)
{
    struct ws_event ev = no_event();
    size_t off = 0;

    if (d->failed || d->closed) {
        *used = len;
        return ev;
    }
    /* A message handed out by the previous call was promised only until
     * now; with none open, an idle connection keeps no heap memory. */
    if (!d->msg_opcode)
        buf_free(&d->msg);

    while (ev.type == WS_EV_NONE && off < len) {
        if (!d->in_payload) {
            d->hdr[d->hdr_len++] = data[off++];
            if (d->hdr_len < 2)
                continue;
            uint16_t code = d->hdr_len == 2 ? check_first_bytes(d) : 0;
            uint64_t payload;
            if (code) {
                ev = fail(d, code);
            } else if (ws_frame_head(d->hdr, d->hdr_len, &payload)) {
                /* check_first_bytes refused an unmasked frame: the header
                 * ends with its mask key. */
                ev = start_frame(d, payload);
                if (ev.type == WS_EV_NONE && d->left == 0)
                    ev = end_frame(d);
            }
        } else {
            size_t n = len - off < d->left ? len - off : (size_t)d->left;
            ev = take_payload(d, data + off, n);
            off += n;
            d->left -= n;
            if (ev.type == WS_EV_NONE && d->left == 0)
                ev = end_frame(d);
        }
    }
    *used = off;
    return ev;
}

/* ------------------------------------------------------------------------
 * Encoder: the server's frames are never masked (5.1) and never fragmented
 * (one frame per chat event keeps the output queue a list of whole frames). */

size_t ws_frame_header(uint8_t out[10], enum ws_opcode op, size_t payload_len)
{
    uint64_t len = payload_len;
    out[0] = (uint8_t)(0x80 | op);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    int n = len <= 0xFFFF ? 2 : 8;
    out[1] = n == 2 ? 126 : 127;
    for (int i = 0; i < n; i++)
        out[2 + i] = (uint8_t)(len >> (8 * (n - 1 - i)));
    return 2 + (size_t)n;
}

struct rbuf *ws_frame_new(enum ws_opcode op, const void *payload, size_t len)
{
    uint8_t hdr[10];
    size_t hlen = ws_frame_header(hdr, op, len);
    if (len > SIZE_MAX - hlen)
        return NULL;
    struct rbuf *r = rbuf_new(hlen + len);
    if (!r)
        return NULL;
    memcpy(r->data, hdr, hlen);
    if (len)
        memcpy(r->data + hlen, payload, len);
    return r;
}

struct rbuf *ws_close_frame_new(uint16_t code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    return ws_frame_new(WS_OP_CLOSE, p, code ? 2 : 0);
}

int ws_accept_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    enum { KEY_LEN = 24, GUID_LEN = sizeof guid - 1 };

    if (!key || strnlen(key, KEY_LEN + 1) != KEY_LEN)
        return -1;
    /* EVP_DecodeBlock decodes the "==" padding as zero bytes and forgives
     * stray blanks and non-zero padding bits, so the strict test is the
     * round trip: the first 16 bytes must encode back to the key itself. */
    unsigned char raw[18], again[KEY_LEN + 1];
    if (EVP_DecodeBlock(raw, (const unsigned char *)key, KEY_LEN) != 18)
        return -1;
    EVP_EncodeBlock(again, raw, 16);
    if (memcmp(again, key, KEY_LEN) != 0)
        return -1;

    unsigned char in[KEY_LEN + GUID_LEN], md[EVP_MAX_MD_SIZE];
    unsigned int md_len;
    memcpy(in, key, KEY_LEN);
    memcpy(in + KEY_LEN, guid, GUID_LEN);
    if (!EVP_Digest(in, sizeof in, md, &md_len, EVP_sha1(), NULL) || md_len != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, (int)md_len); /* 28 chars + NUL */
    return 0;
}
