/* The chat fan-out across servers: one room shared through Redis.
 *
 * A model's connections always talk to its local room (room.h, through
 * app->chat). Without --redis that room is the whole room: it orders events
 * and fans them out. With --redis the model also opens a backplane on the
 * room (backplane_new): the room then publishes what its members do and
 * applies the events that come back from Redis in one shared order — the
 * same on every server, whatever its model. The model does not know which of
 * the two it runs on; it only drives the backplane's connections on its own
 * loop:
 *
 *   - chat-async: hiredis contexts attached to the libuv loop
 *     (models/async/redis_uv.c), backplane_tick from a uv_timer;
 *   - chat-threaded: one backplane thread waiting in poll() on
 *     redis_epoll_fd() (models/blocking/redis_epoll.h) and
 *     backplane_wake_fd() (models/threaded/main.c);
 *   - chat-forked: the parent's epoll loop watches redis_epoll_fd() — the
 *     parent is the one subscriber and fans out to its children through the
 *     hub's socketpairs, never a Redis connection per child.
 *
 * Design, guarantees and what can be lost: docs/scaling-out.md.
 */
#ifndef C10K_BACKPLANE_H
#define C10K_BACKPLANE_H

#include <stdbool.h>

#include <hiredis/async.h>

#include "room.h"

#define BACKPLANE_TICK_MS 100 /* call backplane_tick at least this often */

/* How the model drives hiredis: attach an async context to its loop (set
 * ac->ev). Returns 0, or -1 (the backplane frees the context). */
struct backplane_loop {
    int (*attach)(void *loop, redisAsyncContext *ac);
    void *loop;
};

struct backplane;

/* Put `room` in remote mode behind Redis at url (redis_url.h; AUTH with its
 * password, SELECT its db, on every connection) and start connecting.
 * threaded: room_* calls come from other threads than the one driving the
 * loop; they then only queue and wake the loop through backplane_wake_fd.
 * Returns NULL with a message in err on a bad URL or no memory (the message
 * never holds the password). */
struct backplane *backplane_new(const char *url, struct room *room,
                                const struct backplane_loop *loop, bool threaded, char *err,
                                size_t errlen);
/* Timeouts, reconnection with back-off, heartbeats: from the loop's thread,
 * every BACKPLANE_TICK_MS or so. */
void backplane_tick(struct backplane *bp);
/* threaded only: an eventfd that turns readable when room_* queued
 * something; the loop's thread then calls backplane_flush. -1 otherwise. */
int backplane_wake_fd(const struct backplane *bp);
void backplane_flush(struct backplane *bp);
/* Is the backplane connected and in sync? (tests, /stats) */
bool backplane_up(const struct backplane *bp);
/* Has everything this server published come back (or can nothing more come,
 * Redis being away)? On SIGTERM a model waits for this, briefly, before
 * room_close: a member that left just before must still reach the others,
 * who are connected until their close 1001 — as without Redis. */
bool backplane_settled(struct backplane *bp);
#define BACKPLANE_SETTLE_MS 1500 /* of the 5 s SIGTERM allows */
/* Stop: the room goes back to local mode, the loop connections are freed,
 * and what is still unpublished (the leaves of room_close) is sent on one
 * blocking connection, waiting at most about a second. Call on the loop's
 * thread after the loop has stopped using the backplane, before room_free. */
void backplane_free(struct backplane *bp);

/* In a child forked by the process that drives bp (chat-forked): close the
 * child's copies of the Redis sockets, touching nothing else, so that a
 * connection the parent drops really closes. The loop's own descriptors
 * (redis_epoll_fd) are the model's to close. */
void backplane_close_in_child(struct backplane *bp);

#endif
