/* How long a server gives the end of things: its own shutdown, and the
 * close of one connection. The three models must behave alike here (the
 * integration suite holds each to the same contract), so the figures live
 * in one place; each model maps them onto its own timers.
 *
 * The core's per-request timeouts are in conn.h (CONN_*_MS), the room's in
 * room.h: those are decisions the core makes, these are the models'.
 */
#ifndef C10K_TIMING_H
#define C10K_TIMING_H

/* From SIGINT/SIGTERM to the last connection dropped. The contract allows
 * 5 s to exit; the rest is for freeing and exiting. */
#define SHUTDOWN_GRACE_MS 4500

/* After the grace period, the time the dropped work gets to notice (a
 * /cpu between chunks, a curl transfer aborting). Work still running after
 * it is inside a call nothing can interrupt — one PBKDF2 of a users-file
 * record with millions of iterations — and is dropped with the process. */
#define ABANDON_AFTER_MS 200

/* chat-forked: a child hears of the shutdown (SIGTERM) only after the
 * parent has started it, and must be gone before the parent, at the end of
 * its own grace period, sends SIGKILL: a /sleep that cannot finish by then
 * is dropped rather than killed half-answered. */
#define SHUTDOWN_CHILD_GRACE_MS (SHUTDOWN_GRACE_MS - 500)

/* After our FIN, how long a connection is drained (read and discarded)
 * waiting for the peer's: request bytes still arriving would otherwise turn
 * the close into a reset that destroys the response in flight. */
#define CLOSE_LINGER_MS 2000

/* The same during a shutdown: the grace period cannot wait 2 s for each
 * client, only long enough for a FIN already on its way. */
#define SHUTDOWN_LINGER_MS 200

/* A refused connection (503: --max-conns, or a full queue) got its whole
 * answer at once; it lingers only until the rest of its request has been
 * read and dropped, or this passes (refuser.c, chat-forked's loop). */
#define REFUSED_LINGER_MS 1000

#endif
