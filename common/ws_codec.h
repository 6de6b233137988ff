/* The WebSocket (RFC 6455) frame codec of the server side, sans-I/O.
 *
 * Why our own and not wslay: one wslay_event_context keeps 4 KiB input and
 * 4 KiB output buffers inside (8.6 KB resident per connection, measured),
 * more than a whole connection may cost in the C10K demo. This decoder keeps
 * only what a half-received frame needs; a message being reassembled from
 * fragments is the only thing that allocates (at most WS_MAX_MESSAGE bytes),
 * and it is freed as soon as the message is complete. wslay remains the test
 * oracle: tests/unit/test_ws_codec.c feeds both the same bytes.
 *
 * Decoding is pull-style: call ws_decode() repeatedly over the input; each
 * call consumes some bytes and returns at most one event.
 */
#ifndef C10K_WS_CODEC_H
#define C10K_WS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define WS_MAX_MESSAGE 4096  /* contract: larger text messages close with 1009 */
#define WS_MAX_CONTROL 125   /* RFC 6455 5.5 */

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum ws_event_type {
    WS_EV_NONE,   /* all input consumed, nothing complete yet */
    WS_EV_TEXT,   /* a complete, valid UTF-8 text message: data/len */
    WS_EV_PING,   /* data/len = payload to echo in a pong */
    WS_EV_PONG,
    WS_EV_CLOSE,  /* peer's close: code (1005 when none), data/len = reason.
                     An invalid code or reason yields WS_EV_ERROR instead. */
    WS_EV_ERROR,  /* protocol violation: close with `code` and stop reading.
                     1002 framing, 1003 binary, 1007 bad UTF-8, 1009 too big,
                     1011 out of memory */
};

struct ws_event {
    enum ws_event_type type;
    uint16_t code;
    const char *data; /* valid until the next ws_decode/ws_decoder_free */
    size_t len;
};

struct ws_decoder {
    /* the frame being read */
    uint8_t hdr[14];
    uint8_t hdr_len;
    uint8_t opcode;
    bool fin;
    bool in_payload;
    uint8_t mask[4];
    uint8_t mask_pos;
    uint64_t left;        /* payload bytes of this frame still to come */
    /* the data message being reassembled (only while one is open) */
    uint8_t msg_opcode;   /* 0 when no message is open */
    uint32_t utf8_state;  /* incremental validator state, across fragments */
    uint32_t utf8_cp;
    struct buf msg;       /* heap, <= WS_MAX_MESSAGE; freed when delivered */
    /* a control frame's payload (never fragmented, <= 125 bytes) */
    uint8_t ctrl[WS_MAX_CONTROL];
    uint8_t ctrl_len;
    bool failed;          /* after WS_EV_ERROR every call returns WS_EV_NONE */
    bool closed;          /* likewise after WS_EV_CLOSE: nothing may follow a
                             close (RFC 6455 5.5.1), and wslay reads no further */
};

void ws_decoder_init(struct ws_decoder *d);
void ws_decoder_free(struct ws_decoder *d);

/* Decode from data[0..len). Sets *used to the bytes consumed (always all of
 * them unless an event is returned early; call again with the rest). Client
 * frames must be masked (RFC 6455 5.1): an unmasked frame is a 1002 error.
 * Keep calling until it returns WS_EV_NONE, with len 0 if the input is used
 * up: the call after a WS_EV_TEXT is where that message's buffer is freed,
 * so a connection idle between messages holds no heap memory. */
struct ws_event ws_decode(struct ws_decoder *d, const uint8_t *data, size_t len,
                          size_t *used);

/* The header of one frame at p[0..n), from either side: returns its size in
 * bytes (2..14, the extended length and a mask key included) and stores the
 * payload length it announces in *payload; returns 0 while p holds too
 * little to tell. It checks nothing (minimal length encoding, limits, who
 * must mask): that is the caller's. */
size_t ws_frame_head(const uint8_t *p, size_t n, uint64_t *payload);

/* Server-to-client frames: unmasked, FIN set, one frame per message.
 * ws_frame_header writes 2..10 bytes into out and returns the count. */
size_t ws_frame_header(uint8_t out[10], enum ws_opcode op, size_t payload_len);
/* A whole frame as one rbuf (refs = 1), or NULL on ENOMEM. */
struct rbuf *ws_frame_new(enum ws_opcode op, const void *payload, size_t len);
/* A close frame with code (and no reason). code 0 means "no status code". */
struct rbuf *ws_close_frame_new(uint16_t code);

/* Incremental UTF-8 validation (Hoehrmann's DFA semantics).
 * state starts at 0 (UTF8_ACCEPT); returns the new state, 1 = reject. */
#define UTF8_ACCEPT 0u
#define UTF8_REJECT 1u
uint32_t utf8_validate(uint32_t state, const uint8_t *p, size_t n);

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)), 28 chars
 * + NUL into out. Returns 0, or -1 if key is not the base64 of 16 bytes. */
int ws_accept_key(const char *key, char out[29]);

#endif
