/* One client connection as a state machine that never touches a socket.
 *
 * The model owns the socket and calls in with what happened:
 *
 *   conn_feed(c, bytes)    bytes arrived
 *   conn_eof(c)            the peer will send no more
 *   conn_resume(c)         the deferred action is done (results in c->action)
 *   conn_sent(c, n)        n bytes of the outq were written (it consumes them)
 *   conn_flushed(c)        the outq was written out completely
 *   conn_unblock(c)        the room lets this held poster post again
 *   conn_on_timeout(c)     the deadline from conn_deadline() passed
 *   conn_shutdown(c)       the server is stopping
 *   conn_abort(c)          the connection must end now (reset, I/O error)
 *   conn_refuse(c, answer) the server turns it away with this answer
 *
 * After each call the model looks at the connection and acts:
 *
 *   c->out non-empty            write it (writev of outq_iov)
 *   conn_action_to_start(c)     an action to carry out, then conn_resume()
 *   conn_want_read(c)           keep reading, or pause reading (backpressure)
 *   conn_deadline(c)            (re)arm its one timer; 0 = none
 *   c->close == CLOSE_NOW       close the socket now, dropping output
 *   c->close == CLOSE_FLUSHED   close once the outq is empty
 *
 * and finally conn_free() before freeing its own wrapper. The model reads
 * c->close but never writes it: it says what happened, the core decides. One thread at a
 * time per connection; chat deliveries from other threads go through the
 * model's room sink, never straight into c->out.
 */
#ifndef C10K_CONN_H
#define C10K_CONN_H

#include <http_parser.h>
#include <stdbool.h>
#include <stdint.h>

#include "action.h"
#include "buf.h"
#include "http_request.h"
#include "http_response.h"
#include "room.h"
#include "ws_codec.h"

#define CONN_FIRST_BYTE_MS 10000 /* a new connection that sends nothing */
#define CONN_HEAD_MS 10000       /* head not complete 10 s after its first byte: 408 */
#define CONN_BODY_MS 10000       /* body not complete 10 s after the head: 408 */
#define CONN_IDLE_MS 15000       /* keep-alive idle between requests */
#define CONN_WS_CLOSE_MS 2000    /* our close frame unanswered */
/* At a shutdown, how long a member's backlog may hold its close 1001 back:
 * then the rest of the backlog is dropped and the 1001 goes next (see
 * conn_on_timeout), and the peer has CONN_WS_CLOSE_MS to answer it. Both
 * fit SHUTDOWN_GRACE_MS (timing.h). */
#define CONN_SHUTDOWN_DRAIN_MS 1500
#define CONN_IN_MAX (HTTP_MAX_HEAD + 2048) /* buffered input while busy */
#define CONN_OUT_HIGH (256 * 1024) /* stop taking requests/messages above */

struct app;

enum conn_close { CLOSE_NO, CLOSE_FLUSHED, CLOSE_NOW };

enum conn_timer {
    TIMER_NONE,
    TIMER_FIRST_BYTE, /* silent close */
    TIMER_IDLE,       /* silent close */
    TIMER_HEAD,       /* 408 */
    TIMER_BODY,       /* 408 */
    TIMER_WS_CLOSE,   /* drop */
    TIMER_ROOM_WAIT,  /* a held poster asks the room again (ROOM_STALL_MS) */
};

enum ws_phase { WS_OPEN, WS_CLOSE_SENT, WS_CLOSED };

struct ws_session {
    struct ws_decoder dec;
    struct room_member member;
    enum ws_phase phase;
    uint64_t close_sent_ms;
    /* The room held this poster back (room_post): the rest of its input
     * waits in conn.in, unread further, until conn_unblock(). */
    bool held, no_hold; /* no_hold: the peer's EOF came, take what is left */
    bool close_heard; /* the peer's close frame came: it may send nothing more */
    bool close_hurried; /* shutdown: the backlog ahead of our 1001 was dropped */
    uint64_t held_ms;
};

struct conn_queue {
    struct conn *head;
};

struct conn {
    struct app *app;
    http_parser parser;
    struct http_req *req;   /* the request being read or answered */
    struct buf in;          /* received but not yet parsed (only while busy) */
    struct outq out;
    struct action *action;  /* deferred work for the current request */
    struct ws_session *ws;  /* after the upgrade */
    uint64_t since_ms;      /* start of the current idle / first-byte wait */
    enum conn_close close;
    bool peer_eof;
    bool keep_alive;        /* after the current response */
    bool shutting_down;
    unsigned requests;
    struct login_peer peer; /* the client's address, for the login limits */
    struct conn_queue *unblock_queue; /* queued there (conn_unblock_later) */
    struct conn *next_unblock;
};

void conn_init(struct conn *c, struct app *app);
/* The client's address, as accept() or getpeername() gave it: failed
 * logins are counted per address. Unset, the connection counts as ::. */
void conn_set_peer(struct conn *c, const struct sockaddr *sa);
void conn_free(struct conn *c); /* leaves the room; the model cancelled the action */

void conn_feed(struct conn *c, const char *data, size_t len);
void conn_eof(struct conn *c);
void conn_resume(struct conn *c);
void conn_flushed(struct conn *c);
/* Consumes n written bytes from c->out, tells the room how a deep member
 * drains, and calls conn_flushed() once the queue is empty. */
void conn_sent(struct conn *c, size_t n);
void conn_unblock(struct conn *c);
/* For a model with one loop thread (chat-async, chat-uring). The room calls
 * a sink's unblock from inside another connection's room call, where
 * unblocking at once would re-enter the room: the sink queues the member
 * here instead (once; again is a no-op), and at the end of its turn the
 * model takes them one by one with conn_unblock_next(), which calls
 * conn_unblock() on each, then acts on it. A connection the model closes
 * leaves its queue with conn_unblock_drop(); conn_free() does it too. */
void conn_unblock_later(struct conn_queue *q, struct conn *c);
struct conn *conn_unblock_next(struct conn_queue *q); /* NULL: none left */
void conn_unblock_drop(struct conn *c);
void conn_on_timeout(struct conn *c);
void conn_shutdown(struct conn *c);
/* The connection cannot go on: the socket failed (a reset, a read or write
 * error), or the server must drop it now (out of memory for its own
 * bookkeeping, out of time at shutdown). Output still queued is dropped:
 * c->close becomes CLOSE_NOW, and the model closes without lingering. */
void conn_abort(struct conn *c);
/* A new connection the server will not serve (--max-conns): `answer`, the
 * whole response (app_busy_response; the reference moves in), is all it
 * gets, then the close. NULL (out of memory) aborts it instead. */
void conn_refuse(struct conn *c, struct rbuf *answer);

bool conn_want_read(const struct conn *c);
/* Nothing more can come from the peer for a close to race with: its EOF
 * came, or its WebSocket close frame (after which RFC 6455 lets it send
 * nothing). A model then closes at once instead of lingering for the
 * peer's FIN: at a shutdown that wait was one more wake-up per member. */
bool conn_peer_done(const struct conn *c);
uint64_t conn_deadline(const struct conn *c); /* app_now_ms() clock; 0 = none */
enum conn_timer conn_timer_kind(const struct conn *c);
static inline struct action *conn_action_to_start(struct conn *c)
{
    return c->action && !c->action->started ? c->action : NULL;
}

/* For room sinks: the member's connection is over its backlog. Drops what
 * was not started, queues close 1008, stops reading, arms the 2 s close. */
void conn_ws_cut_off(struct conn *c);
/* The model can no longer carry this member's chat (chat-forked: its link
 * to the hub failed): leave the room, queue close `code` behind what is
 * already queued, close after the handshake or 2 s. A no-op unless open. */
void conn_ws_close(struct conn *c, uint16_t code);

/* The connection a room member belongs to. */
static inline struct conn *conn_of_member(struct room_member *m) { return m->owner; }

/* --- For the routes (app.c): how a handler answers. ---------------------- */

/* Answer the current request; keep-alive or close follows the request and
 * the server's state. */
void conn_respond(struct conn *c, const struct response *r);
/* Answer later: the model carries `a` out, then conn_resume(). */
void conn_defer(struct conn *c, struct action *a);
/* Answer 101 with this accept key and become a room member as `user`. */
void conn_upgrade(struct conn *c, const char *accept_key, const char *user);

#endif
