/* The chat room: who is in it, the order of events, the history.
 *
 * The room knows nothing of sockets. It encodes each event once — JSON inside
 * a complete WebSocket text frame — and hands the same rbuf to every member
 * through the sink the model provides. The sink queues it however the model
 * queues output (chat-async: the connection's outq; chat-threaded: a locked
 * inbox the owning worker drains; chat-forked's hub: a child's IPC socket).
 *
 * Ordering: every event gets the next `seq` (1, 2, 3 ... no gaps) and is
 * delivered to all current members before room_* returns, under the room's
 * lock when it has one, so every member sees one total order.
 *
 * Slow readers: after each delivery the sink reports how many bytes now wait
 * for that member. Past ROOM_MAX_BACKLOG the room removes the member, calls
 * sink->cut_off (the model drops the backlog and sends close 1008) and
 * broadcasts its `leave` — after the current fan-out, never inside it.
 */
#ifndef C10K_ROOM_H
#define C10K_ROOM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define ROOM_MAX_BACKLOG (1024 * 1024) /* contract: cut off past 1 MiB unsent */
/* Backpressure (see room_post): posters wait while a member that reads has
 * more than ROOM_DEEP_BACKLOG waiting, until it is down to
 * ROOM_SHALLOW_BACKLOG; a deep member whose backlog has not gone down for
 * ROOM_STALL_MS is taken for one that does not read, and holds nobody. */
#define ROOM_DEEP_BACKLOG (256 * 1024)
#define ROOM_SHALLOW_BACKLOG (64 * 1024)
#define ROOM_STALL_MS 2000
/* Remote mode: this server's events published and not yet back from the
 * backplane, past which its posters wait too (room.c, remote_publish). */
#define ROOM_REMOTE_IN_FLIGHT 1000
#define ROOM_HISTORY 50
#define ROOM_MAX_USER 32
#define ROOM_MAX_TEXT 4096 /* contract: a chat message is at most 4096 bytes */

struct room_member {
    struct room_member *prev, *next; /* intrusive list; the room owns links */
    char user[ROOM_MAX_USER + 1];
    bool joined;
    bool pending;   /* remote room: join published, not yet back (room_apply) */
    uint64_t token; /* remote room: the id of its published join */
    void *owner; /* the model's connection (or child, in the forked hub) */

    /* Backpressure, the room's alone (under its lock). */
    size_t backlog;         /* bytes waiting for m, as last delivered or reported */
    uint64_t progress_ms;   /* when m went deep, or its backlog last went down */
    bool deep, waiting;     /* on the deep list / on the list of held posters */
    struct room_member *deep_prev, *deep_next, *wait_next;
};

struct room_sink {
    /* Queue ev (take a reference with rbuf_ref if you keep it) for m.
     * Return the bytes now waiting for m inside the server, ev included. */
    size_t (*deliver)(struct room_member *m, struct rbuf *ev);
    /* m was over the limit and is no longer a member: drop its backlog,
     * queue close 1008, stop reading from it, close within 2 s. */
    void (*cut_off)(struct room_member *m);
    /* m, a poster that room_post held back, may post again. Runs inside a
     * room_* call (under the lock): note it and act after, never call back
     * into the room from here. */
    void (*unblock)(struct room_member *m);
    /* Has the server been asked to stop (stop_signal.h)? Then a leave is
     * not announced: the member is only removed. Every member is about to
     * get close 1001, and a thousand leaves told to 9 000 others are nine
     * million frames, written (or dropped) inside the 5 s a shutdown has.
     * A leave the room took before the stop was asked is announced, so a
     * member that said goodbye and was answered is never lost. NULL: never
     * (the unit tests, and chat-forked's children, which have no room). */
    bool (*stopping)(void);
};

struct room;

/* threaded = true gives the room a mutex taken by every room_* call
 * (chat-threaded); a single-threaded model passes false and pays nothing. */
struct room *room_new(const struct room_sink *sink, bool threaded);
void room_free(struct room *r); /* members must have left; drops history */

/* Add m as `user` (the caller validated the name): m alone receives
 * `welcome`, then everyone, m included, receives `join`. Returns 0, or -1
 * on ENOMEM (m is not a member then). */
int room_join(struct room *r, struct room_member *m, const char *user);
/* A text message from m (valid UTF-8, <= 4096 bytes). Empty or all-ASCII-
 * whitespace text is ignored, as is a message from a non-member.
 *
 * Backpressure: one read from a client can hold thousands of messages, and
 * each is fanned out to every member at once, far faster than members'
 * sockets take it. Returns false when, after this message, a member that
 * reads is over ROOM_DEEP_BACKLOG: the poster must stop (keep the rest of
 * its input unread) until sink->unblock(m), which comes once every such
 * member is down to ROOM_SHALLOW_BACKLOG, has gone, or has stalled. The
 * model should also retry after ROOM_STALL_MS on its own: stalling is a
 * matter of time, and the room has no clock that wakes it. So flooders are
 * slowed to the pace of the members that read, and only a member that does
 * not read meets the 1 MiB cut-off. */
bool room_post(struct room *r, struct room_member *m, const char *text, size_t len);
/* `bytes` now wait for m. `drained`: its client took some since the last
 * figure — that is progress, which keeps a deep member counted as one that
 * reads; a figure that only moved between the server's own queues (the
 * forked hub's and a child's) is not. Models call it after writes while m's
 * backlog was over ROOM_SHALLOW_BACKLOG (cheaper than always, and all the
 * room needs): it is how deep members are seen to drain. */
void room_backlog(struct room *r, struct room_member *m, size_t bytes, bool drained);
/* m leaves (closed, errored, shut down): everyone left receives `leave`,
 * unless the server is stopping (room_sink.stopping). Safe to call for a
 * member that was cut off or never joined (no-op). */
void room_leave(struct room *r, struct room_member *m);

/* The server is stopping: every member leaves at once, and no `leave` is
 * sent. Each of them is about to get close 1001; telling every one of N
 * members that each of the others left would be N^2/2 frames — 50 million
 * for a room of 10 000 — spent on a shutdown that must end within 5 s. */
void room_close(struct room *r);

struct room_stats {
    unsigned members;
    uint64_t seq;
};
struct room_stats room_stats(struct room *r);

/* ---- remote mode: the room as one server's replica of a shared room ----
 *
 * With a backplane (common/backplane.h) the room no longer decides the order
 * of events: room_join/post/leave publish what happened through `remote`,
 * and the events come back, sequenced by the backplane, through room_apply —
 * the same events, in the same order, on every server. The room then keeps
 * presence and history as a replica of the shared room and only fans out.
 * A joining member stays `pending` (it receives nothing) until its own join
 * comes back; then it gets `welcome`, built from the replica at exactly that
 * point of the shared order, and from there on every event. */
struct room_remote {
    /* Publish an event of this server (type "join", "message" or "leave").
     * Returns the id the event will carry back (room_event.token). Runs
     * under the room's lock: must not call back into the room. */
    uint64_t (*publish)(void *ctx, const char *type, const char *user, const char *text,
                        size_t len);
    void *ctx;
};
/* NULL: back to a local room. Before any member joins, or at shutdown. */
void room_set_remote(struct room *r, const struct room_remote *remote);

struct room_event {
    const char *type; /* "join", "message", "leave" */
    uint64_t seq, ts;
    const char *user; /* NUL-terminated, 1..ROOM_MAX_USER bytes */
    const char *text; /* message only */
    size_t text_len;
    bool mine;        /* published by this server, with `token` */
    uint64_t token;
};
/* One sequenced event from the backplane. An event with a seq already seen
 * is dropped (at-least-once delivery below); a seq past the next one tells
 * the members, with a `system` event, how many were lost. An event the room
 * could not show (unknown type, a user that is not 1..32 of [A-Za-z0-9_.-],
 * text that is blank, over ROOM_MAX_TEXT or not UTF-8) is dropped before its
 * seq is taken: the caller validates, this is the room's own guard. */
void room_apply(struct room *r, const struct room_event *ev);
/* The shared room's state when this server first connects: seq so far,
 * presence (names with their connection counts) and the last messages,
 * oldest first. Replaces presence, history and seq; members are kept.
 * Names and messages room_apply would refuse are left out. */
void room_load(struct room *r, uint64_t seq, const char *const *names, const unsigned *counts,
               size_t nnames, const struct room_event *history, size_t nhistory);
/* Calls fn for each distinct user among this server's own members (linked,
 * not pending), with its connection count. */
void room_own_presence(struct room *r, void (*fn)(void *arg, const char *user, unsigned n),
                       void *arg);
/* A `system` event ({"type":"system","ts":...,"text":...}, no seq: it is
 * this server speaking, not the room) to every member of this server. */
void room_system(struct room *r, const char *text);

/* Milliseconds since the Unix epoch, for `ts`; tests may replace it. */
extern uint64_t (*room_clock_ms)(void);
/* A monotonic millisecond clock, for ROOM_STALL_MS; tests may replace it. */
extern uint64_t (*room_mono_ms)(void);

#endif
