/* A WebSocket client for the tests: wslay in CLIENT mode over a non-blocking
 * socket driven with poll(), the HTTP upgrade done by hand.
 *
 * Everything the server sends is queued as a struct ws_msg and handed out in
 * order by ws_recv(): text, binary, pong, close (with its status code), and
 * finally EOF. Pings are answered by wslay on its own. For hostile input,
 * ws_send_frame() writes hand-made frames straight to the socket.
 */
#ifndef C10K_INTEG_WS_CLIENT_H
#define C10K_INTEG_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wslay/wslay.h>

#include "jsonv.h"

enum ws_kind { WS_TEXT, WS_BINARY, WS_PONG, WS_CLOSE, WS_EOF, WS_TIMEOUT };

struct ws_msg {
    enum ws_kind kind;
    uint16_t code; /* WS_CLOSE: the status code, 0 when the frame had none */
    char *data;    /* payload, NUL-terminated */
    size_t len;
    struct ws_msg *next;
};

struct ws {
    int fd;
    wslay_event_context_ptr ctx;
    char *pre; /* bytes that arrived with the 101 response */
    size_t pre_len, pre_off;
    struct ws_msg *head, *tail;
    bool dead;      /* wslay gave up (EOF, reset or a protocol error) */
    bool eof_seen;  /* the socket reached EOF or reset */
    bool close_received;
};

const char *ws_kind_name(enum ws_kind k);

/* Upgrade GET /chat/ws with that cookie ("session=..."); asserts 101 and the
 * Sec-WebSocket-Accept. rcvbuf > 0 shrinks SO_RCVBUF before connecting. */
struct ws *ws_connect(int port, const char *cookie);
/* Retry an upgrade answered 503 (for --max-conns tests): the server may not
 * have seen an earlier connection's close yet. */
extern bool ws_retry_busy;
struct ws *ws_connect_rcvbuf(int port, const char *cookie, int rcvbuf);
/* Frees everything and closes the socket (no close frame: callers that want
 * the handshake use ws_close_handshake). */
void ws_free(struct ws *w);

/* Queue a message and flush it (reading what arrives meanwhile). */
void ws_send_text(struct ws *w, const char *s, size_t n);
void ws_send_texts(struct ws *w, const char *s); /* strlen */
void ws_send_ping(struct ws *w, const char *payload);
/* Queue several text messages and flush them in one go. */
void ws_queue_text(struct ws *w, const char *s, size_t n);
void ws_flush(struct ws *w);

/* The next message, waiting at most cap_ms (WS_TIMEOUT then). Never NULL.
 * The caller frees it with ws_msg_free. */
struct ws_msg *ws_recv(struct ws *w, int cap_ms);
void ws_msg_free(struct ws_msg *m);

/* Send a close (code) through wslay and wait for the server's close frame;
 * returns its code (asserts one came). */
uint16_t ws_close_handshake(struct ws *w, uint16_t code);
/* After a close: read until the server closes the TCP connection. True on
 * EOF/reset within the cap. */
bool ws_wait_tcp_close(struct ws *w, int cap_ms);

/* Build one frame into out (at least n + 14 bytes). mask: client frames must
 * be masked; an unmasked one is a protocol violation. Returns its length. */
size_t ws_frame(uint8_t *out, bool fin, int rsv, int opcode, bool mask, const void *payload,
                size_t n);
/* Write a hand-made frame straight to the socket (wslay's queue must be
 * empty). Returns false if the server already closed. */
bool ws_send_frame(struct ws *w, bool fin, int rsv, int opcode, bool mask, const void *payload,
                   size_t n);
bool ws_send_raw(struct ws *w, const void *p, size_t n);

/* ---- chat helpers ---- */

/* The next message must be a text frame holding a JSON object: returns it
 * parsed (the caller frees it). */
struct jv *ws_recv_event(struct ws *w, int cap_ms);
/* The next event must be of `type`; returns it. */
struct jv *expect_event(struct ws *w, const char *type);
/* The next event must be `type` by `user`; returns its seq. */
long long expect_event_by(struct ws *w, const char *type, const char *user);
/* Send text; the next event must be a message with exactly that text (the
 * room still works). */
void chat_round_trip(struct ws *w, const char *text);
/* The next message must be a close with one of the codes (0 = EOF, a close
 * without a code, or a reset also passes when allowed_eof). */
void expect_close(struct ws *w, const uint16_t *codes, int ncodes, bool allowed_eof);

/* Log in (cookie) and connect; consume the welcome (checking its user) and the
 * client's own join. *join_seq gets the join's seq when not NULL. The welcome
 * is returned through *welcome when not NULL (caller frees). */
struct ws *chat_join(int port, const char *cookie, const char *user, long long *join_seq,
                     struct jv **welcome);

#endif
