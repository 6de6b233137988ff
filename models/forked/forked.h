/* chat-forked: what the parent (main.c, hub.c) and a child (child.c) share. */
#ifndef C10K_FORKED_H
#define C10K_FORKED_H

#include <stdint.h>
#include <sys/types.h>

#include "app.h"

extern struct app app;

/* One page shared by the whole process tree. The children update the
 * request counter as they work; the parent alone keeps the counts of live
 * children and of WebSocket members, because a child killed by SIGKILL never
 * gets to say that it is gone — only its parent sees it (reaped, or EOF on
 * its socketpair). */
struct forked_shared {
    struct app_counters n;
    atomic_long children; /* forked and not yet reaped: one per connection */
    atomic_long members;  /* children whose WebSocket is in the room */
};
extern struct forked_shared *shared;

/* Messages from a child to the hub, on the child's socketpair:
 *   [type: 1 byte][length: 2 bytes, big-endian][payload]
 * The hub answers with nothing but WebSocket frames, ready to send. */
enum hub_msg { HUB_JOIN = 'J', HUB_POST = 'P', HUB_LEAVE = 'L' };
#define HUB_MSG_MAX (3 + 4096)

/* --- the parent's side ---------------------------------------------------- */
struct hub;
struct hub *hub_new(int epoll_fd);
/* A new child's end of its socketpair; the hub owns fd from now on. */
int hub_add_child(struct hub *h, int fd, pid_t pid);
/* An epoll event for one of the hub's descriptors (data.ptr from hub_add). */
void hub_on_event(struct hub *h, void *tag, uint32_t events);
/* Write what this turn queued, one writev per child, before epoll again. */
void hub_flush(struct hub *h);
unsigned hub_links(const struct hub *h);
/* The hub's room, for --redis: the parent is the one Redis subscriber. */
struct room *hub_room(struct hub *h);
/* Shutdown: everyone leaves at once, without N^2 `leave` events. */
void hub_close_room(struct hub *h);
void hub_free(struct hub *h);

/* --- a child's side ------------------------------------------------------ */
/* Serve one client connection on fd, chat through hub_fd; never returns. */
void child_main(int fd, int hub_fd) __attribute__((noreturn));

#endif
