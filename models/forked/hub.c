/* The chat hub of chat-forked: one room, in the parent, for every child.
 *
 * Processes share no memory, so the room cannot be a data structure that
 * every child touches. It lives in one place and children talk to it over
 * explicit IPC — the seed's "processes must communicate through pipes,
 * sockets or queues". The designs real systems use (PITFALLS B5):
 *
 *   - a shared queue in shared memory with a cursor per reader and a signal
 *     to wake them (PostgreSQL's LISTEN/NOTIFY),
 *   - a shared store plus small alerts over socketpairs (nginx/nchan),
 *   - the parent as a relay over one socketpair per child.
 *
 * We use the relay. Each child gets a Unix socketpair when it is forked, so
 * no rendezvous address is needed and a child that dies — even by SIGKILL —
 * is noticed at once: the kernel closes its end and the hub reads EOF and
 * says `leave` for it. The hub runs the very same room as the other models
 * (common/room.c): seq, presence and history are owned here, events are
 * encoded once, and each child's share is one reference to the same bytes.
 * What a child reads from the hub is nothing but WebSocket frames, ready to
 * forward to its client.
 *
 * The relay's trap is the slow consumer: the hub is an event loop and must
 * never block on one child. So every write to a child is non-blocking, what
 * does not fit waits in that child's queue, and a child whose queue passes
 * 1 MiB (its client stopped reading, its child stopped draining the
 * socketpair) is cut off: its backlog is dropped and it gets close 1008.
 * The shared-memory ring would spare the copies through the socketpairs, but
 * needs a robust process-shared mutex and per-reader cursors to survive a
 * child killed while holding the lock — more machinery than this lesson
 * needs, and the relay makes the cost of crossing processes visible.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "forked.h"
#include "net.h"
#include "stop_signal.h"

struct link {
    enum epoll_tag kind; /* TAG_LINK, first: the parent's loop reads it (forked.h) */
    int fd;
    pid_t pid;
    struct room_member member;
    struct outq out;
    struct buf in;     /* a partial message from the child */
    bool counted;      /* in shared->members */
    bool gone;         /* the child closed its end: nothing more goes to it */
    struct link *prev, *next;
    /* Doubly linked: at a shutdown every link is dirty (the last events
     * still on their way to the children) while the children exit, and a
     * link dropped from the middle of a singly linked list cost a walk of
     * it: 9 000 exits walked ~40 million entries, 2-3 s of the parent's
     * time at 10 000 members, with the exited children waiting unreaped. */
    struct link *prev_dirty, *next_dirty;
    bool dirty, want_out;
    /* Backpressure (room_post): a held poster's messages wait in `in`
     * until the room unblocks it. */
    size_t child_backlog;   /* as the child last said (HUB_DEPTH) */
    size_t sent_since;      /* written to the child since it said so */
    bool held, unblocked;
    uint64_t held_ms;
    struct link *next_held, *next_unblocked;
};

struct hub {
    int epoll_fd;
    struct room *room;
    struct rbuf *synced; /* HUB_SYNC's answer, one shared frame */
    struct link *links, *dirty, *held, *unblocked;
    unsigned count;
    void (*link_ended)(pid_t pid);
};

static void mark_dirty(struct hub *h, struct link *l)
{
    if (!l->dirty) {
        l->dirty = true;
        l->prev_dirty = NULL;
        l->next_dirty = h->dirty;
        if (h->dirty)
            h->dirty->prev_dirty = l;
        h->dirty = l;
    }
}

static void unmark_dirty(struct hub *h, struct link *l)
{
    if (!l->dirty)
        return;
    if (l->prev_dirty)
        l->prev_dirty->next_dirty = l->next_dirty;
    else
        h->dirty = l->next_dirty;
    if (l->next_dirty)
        l->next_dirty->prev_dirty = l->prev_dirty;
    l->dirty = false;
}

static struct hub *the_hub; /* the sink gets members, not the hub */

/* What waits for this child's client inside the server, as far as the hub
 * knows: here, on the way (written since the child's last word), and in
 * the child. Handing bytes on to the child does not change it. */
static size_t link_backlog(const struct link *l)
{
    return l->out.bytes + l->sent_since + l->child_backlog;
}

static size_t sink_deliver(struct room_member *m, struct rbuf *ev)
{
    struct link *l = m->owner;
    /* A child that has closed its end reads nothing more; what it sent
     * before, up to its leave, is still being read and must not make it
     * look like a slow reader. */
    if (l->gone)
        return 0;
    if (outq_push(&l->out, rbuf_ref(ev)) < 0)
        return SIZE_MAX;
    mark_dirty(the_hub, l);
    /* What waits here, plus what the child last said waits there, is what
     * the room sees for backpressure; but the child's figure may be stale,
     * so it alone never makes a cut-off (the child decides that, exactly,
     * on its own queue). */
    if (l->out.bytes > ROOM_MAX_BACKLOG)
        return l->out.bytes;
    size_t total = link_backlog(l);
    return total > ROOM_MAX_BACKLOG ? ROOM_MAX_BACKLOG : total;
}

static void sink_cut_off(struct room_member *m)
{
    struct link *l = m->owner;
    if (l->gone)
        return;
    /* The child forwards our close 1008 and takes it as its cue. */
    outq_drop_unsent(&l->out);
    struct rbuf *close = ws_close_frame_new(1008);
    if (close)
        outq_push(&l->out, close);
    mark_dirty(the_hub, l);
}

static void list_remove(struct link **head, struct link *l, size_t next_off)
{
    for (struct link **p = head; *p; p = (struct link **)((char *)*p + next_off))
        if (*p == l) {
            *p = *(struct link **)((char *)l + next_off);
            return;
        }
}

/* Inside a room call: only take note; hub_flush feeds the held messages. */
static void sink_unblock(struct room_member *m)
{
    struct link *l = m->owner;
    struct hub *h = the_hub;
    if (!l->held)
        return;
    l->held = false;
    list_remove(&h->held, l, offsetof(struct link, next_held));
    if (l->unblocked)
        return; /* already on a list to run */
    l->unblocked = true;
    l->next_unblocked = h->unblocked;
    h->unblocked = l;
}

static const struct room_sink hub_sink = {
    .deliver = sink_deliver,
    .cut_off = sink_cut_off,
    .unblock = sink_unblock,
    .stopping = stop_signal_requested,
};

struct hub *hub_new(int epoll_fd, void (*link_ended)(pid_t pid))
{
    struct hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->epoll_fd = epoll_fd;
    h->link_ended = link_ended;
    h->room = room_new(&hub_sink, false);
    h->synced = rbuf_from((const unsigned char[]){0x80 | HUB_OP_SYNCED, 0}, 2);
    if (!h->room || !h->synced) {
        room_free(h->room);
        rbuf_unref(h->synced);
        free(h);
        return NULL;
    }
    the_hub = h;
    return h;
}

int hub_add_child(struct hub *h, int fd, pid_t pid)
{
    struct link *l = calloc(1, sizeof *l);
    if (!l)
        return -1;
    l->kind = TAG_LINK;
    l->fd = fd;
    l->pid = pid;
    l->member.owner = l;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    if (epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(l);
        return -1;
    }
    l->next = h->links;
    if (l->next)
        l->next->prev = l;
    h->links = l;
    h->count++;
    return 0;
}

static void set_member(struct link *l, bool member)
{
    if (member != l->counted)
        atomic_fetch_add(&shared->members, member ? 1 : -1);
    l->counted = member;
}

static void drop_link(struct hub *h, struct link *l)
{
    h->link_ended(l->pid);
    room_leave(h->room, &l->member); /* a clean `leave`, however it died */
    set_member(l, false);
    unmark_dirty(h, l);
    if (l->held)
        list_remove(&h->held, l, offsetof(struct link, next_held));
    if (l->unblocked)
        list_remove(&h->unblocked, l, offsetof(struct link, next_unblocked));
    if (l->prev)
        l->prev->next = l->next;
    else
        h->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    h->count--;
    /* Out of the epoll set explicitly: a child forked a moment ago may still
     * hold a copy of this descriptor, and epoll watches the open file, not
     * our number for it — closing alone would leave events coming for a
     * link we freed. */
    epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    outq_clear(&l->out);
    buf_free(&l->in);
    free(l);
}

/* Is this a message a child may send? Its payload is checked here, once,
 * before anything acts on it: a child is another process, and what it
 * says is input like a client's. */
static bool message_valid(int type, const char *p, size_t len)
{
    switch (type) {
    case HUB_JOIN:
        return len <= ROOM_MAX_USER && user_name_valid(p, len);
    case HUB_POST:
        return len <= WS_MAX_MESSAGE &&
               utf8_validate(UTF8_ACCEPT, (const uint8_t *)p, len) == UTF8_ACCEPT;
    case HUB_LEAVE:
    case HUB_SYNC:
        return len == 0;
    case HUB_DEPTH:
        return len == 5 && (p[4] == 0 || p[4] == 1);
    }
    return false;
}

static void take_depth(struct hub *h, struct link *l, const unsigned char *d)
{
    l->child_backlog = (size_t)d[0] << 24 | (size_t)d[1] << 16 | (size_t)d[2] << 8 | d[3];
    if (l->child_backlog > ROOM_MAX_BACKLOG)
        l->child_backlog = ROOM_MAX_BACKLOG; /* the child cuts itself off past it */
    l->sent_since = 0;
    room_backlog(h->room, &l->member, link_backlog(l), d[4] != 0);
}

/* Whole messages in l->in: act on each. Returns -1 when the child broke
 * the protocol: the caller drops the link (its leave, then EOF for the
 * child), since nothing after a bad message can be trusted to be in step. */
/* A held poster's HUB_DEPTH reports are taken at once, out of turn: they
 * say how its own client drains, which may be what it waits for; every
 * other message keeps its place. Returns -1 as handle_messages does. */
static int take_held_reports(struct hub *h, struct link *l, size_t off)
{
    while (l->in.len - off >= HUB_HEAD) {
        unsigned char *p = (unsigned char *)l->in.data + off;
        size_t len = (size_t)p[1] << 8 | p[2];
        if (len > HUB_PAYLOAD_MAX)
            return -1;
        if (l->in.len - off < HUB_HEAD + len)
            break;
        if (p[0] != HUB_DEPTH) {
            off += HUB_HEAD + len; /* checked when its turn comes */
            continue;
        }
        if (!message_valid(p[0], (const char *)p + HUB_HEAD, len))
            return -1;
        take_depth(h, l, p + HUB_HEAD);
        memmove(p, p + HUB_HEAD + len, l->in.len - off - HUB_HEAD - len);
        l->in.len -= HUB_HEAD + len;
    }
    return 0;
}

static int handle_messages(struct hub *h, struct link *l)
{
    size_t off = 0;
    while (l->in.len - off >= HUB_HEAD) {
        /* A child that is gone cannot be slowed down: what it sent is taken. */
        if (l->held && !l->gone) {
            if (take_held_reports(h, l, off) < 0)
                return -1;
            break;
        }
        const unsigned char *p = (const unsigned char *)l->in.data + off;
        size_t len = (size_t)p[1] << 8 | p[2];
        if (len > HUB_PAYLOAD_MAX)
            return -1;
        if (l->in.len - off < HUB_HEAD + len)
            break;
        const char *payload = (const char *)p + HUB_HEAD;
        if (!message_valid(p[0], payload, len))
            return -1;
        char user[ROOM_MAX_USER + 1];
        switch (p[0]) {
        case HUB_JOIN:
            if (l->member.joined)
                return -1; /* one member per child */
            memcpy(user, payload, len);
            user[len] = '\0';
            if (room_join(h->room, &l->member, user) == 0)
                set_member(l, true);
            break;
        case HUB_POST: /* ignored after a cut-off */
            if (!room_post(h->room, &l->member, payload, len) && !l->held) {
                l->held = true; /* the rest waits; see room_post */
                l->held_ms = app_now_ms();
                l->next_held = h->held;
                h->held = l;
            }
            break;
        case HUB_DEPTH:
            take_depth(h, l, (const unsigned char *)payload);
            break;
        case HUB_LEAVE:
            room_leave(h->room, &l->member);
            set_member(l, false);
            break;
        case HUB_SYNC:
            /* Behind every event its earlier messages caused, in order. */
            if (!l->gone) {
                if (outq_push(&l->out, rbuf_ref(h->synced)) < 0)
                    return -1;
                mark_dirty(h, l);
            }
            break;
        }
        off += HUB_HEAD + len;
    }
    buf_consume(&l->in, off);
    return 0;
}

void hub_on_event(struct hub *h, void *tag, uint32_t events)
{
    struct link *l = tag;
    if (events & EPOLLOUT)
        mark_dirty(h, l);
    if (events & EPOLLHUP) {
        l->gone = true; /* its end is closed: read the rest, send nothing */
        outq_clear(&l->out);
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        char buf[16 * 1024]; /* bounded per turn: one busy child cannot starve the rest */
        ssize_t n = recv(l->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            /* The child exited or was killed. Messages it sent while held
             * are still here: they go first, then its leave. */
            l->gone = true;
            handle_messages(h, l);
            drop_link(h, l);
            return;
        }
        if (n > 0) {
            /* Bounded by the protocol: a partial message and one read, or,
             * held, what the child may send before it waits (and its
             * reports, taken out at once). */
            if (buf_append(&l->in, buf, (size_t)n, UPLINK_OUT_MAX + HUB_MSG_MAX + sizeof buf) < 0 ||
                handle_messages(h, l) < 0) {
                drop_link(h, l);
                return;
            }
        }
    }
}

/* What epoll watches for l: always its input (a held poster's messages
 * wait in l->in, bounded, while its reports are taken), its output while
 * some waits. */
static void link_interest(struct hub *h, struct link *l)
{
    bool want_out = !outq_empty(&l->out);
    if (want_out != l->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data.ptr = l};
        epoll_ctl(h->epoll_fd, EPOLL_CTL_MOD, l->fd, &ev);
        l->want_out = want_out;
    }
}

static void flush_link(struct hub *h, struct link *l)
{
    size_t before = l->out.bytes;
    if (net_write_outq(l->fd, &l->out) < 0)
        outq_clear(&l->out); /* the child is gone; its EOF will come */
    else
        l->sent_since += before - l->out.bytes;
    link_interest(h, l);
}

static void flush_dirty(struct hub *h)
{
    while (h->dirty) {
        struct link *l = h->dirty;
        unmark_dirty(h, l);
        flush_link(h, l);
    }
}

/* Posters the room let go: their waiting messages, once per turn. A
 * poster let go here may be held and let go again within the same turn
 * (its own reports, taken out of turn, can end its wait): it then waits
 * for the next turn, after epoll, so the hub never loops on one link. */
static void run_unblocked(struct hub *h)
{
    struct link *batch = h->unblocked;
    h->unblocked = NULL;
    while (batch) {
        struct link *l = batch;
        batch = l->next_unblocked;
        l->unblocked = false;
        if (l->held)
            continue; /* held again since (read in this turn): its turn comes */
        if (handle_messages(h, l) < 0)
            drop_link(h, l);
        else
            link_interest(h, l);
    }
}

void hub_flush(struct hub *h)
{
    /* Writing to the children may end a hold (a leave or a cut-off does,
     * at once), and what the posters then send goes out before the hub
     * sleeps. */
    flush_dirty(h);
    run_unblocked(h);
    flush_dirty(h);
}

bool hub_busy(const struct hub *h) { return h->unblocked != NULL || h->dirty != NULL; }

void hub_tick(struct hub *h)
{
    uint64_t now = app_now_ms();
    for (struct link *l = h->held, *next; l; l = next) {
        next = l->next_held;
        if (now - l->held_ms >= ROOM_STALL_MS) /* ask the room again */
            sink_unblock(&l->member);
    }
}

uint64_t hub_next_deadline(const struct hub *h)
{
    uint64_t next = 0;
    for (const struct link *l = h->held; l; l = l->next_held)
        if (!next || l->held_ms + ROOM_STALL_MS < next)
            next = l->held_ms + ROOM_STALL_MS;
    return next;
}

unsigned hub_links(const struct hub *h) { return h->count; }

struct room *hub_room(struct hub *h) { return h->room; }

void hub_close_room(struct hub *h) { room_close(h->room); }

void hub_free(struct hub *h)
{
    while (h->links)
        drop_link(h, h->links);
    room_free(h->room);
    rbuf_unref(h->synced);
    free(h);
}
