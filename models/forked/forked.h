/* chat-forked: what the parent (main.c, hub.c) and a child (child.c) share. */
#ifndef C10K_FORKED_H
#define C10K_FORKED_H

#include <stdint.h>
#include <sys/types.h>

#include "app.h"
#include "room.h"
#include "ws_codec.h"

extern struct app app;

/* One page shared by the whole process tree. The children update the
 * request counter as they work; the parent alone keeps the counts of live
 * children and of WebSocket members, because a child killed by SIGKILL never
 * gets to say that it is gone — only its parent sees it (reaped, or EOF on
 * its socketpair). */
struct forked_shared {
    struct app_counters n;
    pid_t server; /* the parent: /stats adds up its whole tree */
    atomic_long children; /* forked and not yet reaped: one per connection */
    atomic_long exiting;  /* of those, the ones whose link has closed: done
                             with their client, still tearing down (an
                             exit can take a while: a sanitized child's
                             took tens of ms) */
    atomic_long members;  /* children whose WebSocket is in the room */
};
extern struct forked_shared *shared;

/* The IPC between a child and the hub, one Unix socketpair per child. Both
 * ends check everything they read from the other: a message or frame that
 * breaks these rules ends that connection (with its leave), never the
 * server, and is never half-applied.
 *
 * Child to hub: [type: 1 byte][length: 2 bytes, big-endian][payload]
 *   HUB_JOIN   the user name (1..ROOM_MAX_USER bytes, user_name_valid)
 *   HUB_POST   one chat message (0..WS_MAX_MESSAGE bytes of valid UTF-8)
 *   HUB_LEAVE  empty
 *   HUB_SYNC   empty: "tell me when you have done everything before this"
 *   HUB_DEPTH  5 bytes: the bytes waiting in the child for its client (4,
 *              big-endian), and 1 if the client took some since the last
 *              HUB_DEPTH, else 0. Sent when that passes ROOM_DEEP_BACKLOG,
 *              as it drains, and after every HUB_DEPTH_EVERY bytes read from
 *              the hub (the room's backpressure, room_post, needs to know)
 * Hub to child: nothing but whole WebSocket frames — text frames (events,
 * ready to forward), close 1008 (cut off), and HUB_SYNC's answer, a frame
 * with a reserved control opcode that never reaches a client. */
enum hub_msg { HUB_JOIN = 'J', HUB_POST = 'P', HUB_LEAVE = 'L', HUB_SYNC = 'S', HUB_DEPTH = 'D' };
#define HUB_HEAD 3
#define HUB_PAYLOAD_MAX WS_MAX_MESSAGE
#define HUB_MSG_MAX (HUB_HEAD + HUB_PAYLOAD_MAX)
_Static_assert(HUB_PAYLOAD_MAX <= 0xffff, "a hub message's length field is 2 bytes");
_Static_assert(ROOM_MAX_USER <= HUB_PAYLOAD_MAX, "a user name fits a hub message");

#define HUB_DEPTH_EVERY (64 * 1024)
/* What a child may have sent the hub that the hub has not taken: what one
 * read from the client can make (blocking.c reads 64 KiB at a time, and a
 * message is never longer than its frame), a message completed from earlier
 * fragments, a leave and a sync, with room to spare. The child reads its
 * client only once the hub has taken all of it and answered HUB_SYNC: more
 * is a bug, not a load. */
#define UPLINK_OUT_MAX (256 * 1024)
#define HUB_OP_SYNCED 0xF /* RFC 6455 reserves 0xB-0xF: no client frame is one */
/* The largest frame the hub sends: an event is at most the backlog that
 * would cut its recipient off (room.c), plus a frame header. */
#define HUB_FRAME_MAX (10 + ROOM_MAX_BACKLOG)

/* --- the parent's side ---------------------------------------------------- */
/* What the parent's epoll set watches. Each descriptor's data.ptr points at
 * a struct whose first member is its kind, so the loop can tell them apart:
 * main.c's tags, and hub.c's struct link for a child's socketpair. */
enum epoll_tag { TAG_LISTENER, TAG_SIGNALS, TAG_REFUSED, TAG_REDIS, TAG_SPAWNER, TAG_LINK };

/* spawner.c: the small process that forks the connection processes, so
 * the parent never forks once it holds links (why: spawner.c). */
pid_t spawner_start(int *ctl);
/* Ask for a connection process serving client (still ours to close). */
int spawner_request(int ctl, int client);
/* One answer, without blocking: 1 with the new child's pid and the
 * parent's end of its hub link; 2 a spawn that failed (errno says why);
 * 0 none yet; -1 the spawner is gone or broke the protocol. */
int spawner_reply(int ctl, pid_t *pid, int *link);
/* Requests outstanding at most: the replies always fit the socket's buffer. */
#define SPAWN_IN_FLIGHT 64

struct hub;
/* link_ended(pid): the child's link closed, so it is exiting (the parent
 * reaps it by pid, see main.c:reap_children). */
struct hub *hub_new(int epoll_fd, void (*link_ended)(pid_t pid));
/* A new child's end of its socketpair; the hub owns fd from now on. */
int hub_add_child(struct hub *h, int fd, pid_t pid);
/* An epoll event for one of the hub's descriptors (data.ptr from hub_add). */
void hub_on_event(struct hub *h, void *tag, uint32_t events);
/* Write what this turn queued, one writev per child, before epoll again. */
void hub_flush(struct hub *h);
/* Posters the room held back (room_post) past ROOM_STALL_MS ask again; and
 * when the next one will. */
void hub_tick(struct hub *h);
uint64_t hub_next_deadline(const struct hub *h);
/* Work left for the next turn: do not sleep in epoll. */
bool hub_busy(const struct hub *h);
unsigned hub_links(const struct hub *h);
/* The hub's room, for --redis: the parent is the one Redis subscriber. */
struct room *hub_room(struct hub *h);
/* Shutdown: everyone leaves at once, without N^2 `leave` events. */
void hub_close_room(struct hub *h);
void hub_free(struct hub *h);

/* --- a child's side ------------------------------------------------------ */
/* Serve one client connection on fd, chat through hub_fd; never returns. */
void child_main(int fd, int hub_fd) __attribute__((noreturn));

/* The child's end of its socketpair (uplink.c). Never blocks while the
 * child serves: what the hub cannot take yet waits in `out`, and the child
 * reads nothing more from its client meanwhile (that is how a fast sender
 * is slowed down). */
struct uplink {
    int fd;            /* -1 once closed */
    struct buf out;    /* messages not yet written to the hub */
    struct buf in;     /* a partial frame from the hub */
    bool joined;       /* a member, as far as the child knows */
    bool unsynced;     /* sent something since the last HUB_SYNC */
    unsigned syncs;    /* HUB_SYNCs not yet answered */
    size_t told;       /* the queue as the hub last heard of it (HUB_DEPTH) */
    bool drained;      /* the client took bytes since the last HUB_DEPTH */
    uint64_t depth_ms; /* when it last heard how deep */
    size_t taken;      /* bytes read from the hub since the last HUB_DEPTH */
    bool failed;       /* the link broke or carried garbage */
};
/* Queue a message and write what the hub takes now. */
void uplink_send(struct uplink *u, int type, const void *payload, size_t len);
/* The client took bytes and `bytes` still wait: tell the hub when it must
 * know (rate-limited; see HUB_DEPTH). */
void uplink_depth(struct uplink *u, size_t bytes);
/* HUB_SYNC, if anything was sent since the last one. */
void uplink_sync(struct uplink *u);
/* Write what waits, without blocking (on POLLOUT). */
void uplink_flush(struct uplink *u);
/* Until the hub answers every HUB_SYNC, the events caused by what the child
 * sent may still be on their way: it reads nothing new from its client. */
static inline bool uplink_settled(const struct uplink *u)
{
    return u->out.len == 0 && u->syncs == 0;
}
/* Read what the hub sent (on POLLIN) and act on it: queue events for the
 * client, cut the client off on close 1008 or when more than
 * ROOM_MAX_BACKLOG waits for it, count HUB_SYNC's answers. On any IPC
 * failure, u->failed is set and the link is closed. */
void uplink_take(struct uplink *u, struct conn *c);
/* The end: write what waits (still draining the hub, so that neither side
 * waits for the other), for at most ms, then close the link. The hub then
 * reads what is left, leave included, and says `leave` itself if we could
 * not. */
void uplink_close(struct uplink *u, int ms);
/* How long a child that is done gives the hub to take its last messages
 * (its leave among them) before closing the link. */
#define UPLINK_CLOSE_MS 2000

#endif
