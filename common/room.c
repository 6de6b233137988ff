#include "room.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "text.h"
#include "users.h"
#include "ws_codec.h"

/* No event may be larger than the backlog that cuts a member off: it would
 * cut off everyone it reached. An event over this is treated like ENOMEM. */
#define EVENT_LIMIT ROOM_MAX_BACKLOG

/* The history inside `welcome` is capped in bytes as well as in count.
 * 50 messages of 4096 plain bytes fit easily (~210 KB), but text made of
 * control characters escapes to six times its size: 50 of those (~1.2 MB)
 * would put every newcomer over ROOM_MAX_BACKLOG with its welcome alone, and
 * one user could lock everybody else out of the room. The oldest messages are
 * left out instead ("up to the last 50"). With `users` (10 000 distinct names
 * of <= 32 bytes is ~350 KB) a welcome stays well under the limit. */
#define WELCOME_HISTORY_BYTES (256 * 1024)

/* A big welcome can grow the scratch buffer to hundreds of KB; rather than
 * hold that forever, it is given back past this size. */
#define SCRATCH_KEEP (64 * 1024)

struct presence {
    char name[ROOM_MAX_USER + 1];
    unsigned count; /* this user's connections in the room */
};

struct history_entry {
    struct rbuf *ev; /* the very frame that was broadcast; one reference */
    size_t json_off; /* where its JSON starts, past the frame header */
};

struct room {
    struct room_sink sink;
    bool threaded;
    pthread_mutex_t lock;

    struct room_member *head, *tail;
    unsigned members;
    uint64_t seq;

    /* Distinct names online with their connection counts, sorted by strcmp:
     * join/leave cost a binary search and a memmove, and welcome walks
     * distinct users, never members (10 000 connections as three users). */
    struct presence *users;
    size_t nusers, users_cap;

    struct history_entry history[ROOM_HISTORY]; /* ring, oldest at hist_first */
    unsigned hist_first, hist_len;

    /* Members cut off during a fan-out, waiting for cut_off and their leave.
     * They are linked through their own next pointers, which the member list
     * no longer uses, so cutting off never allocates. */
    struct room_member *cut_head, *cut_tail;

    /* Backpressure (room_post): members over ROOM_DEEP_BACKLOG, and the
     * posters held back until none of them that still reads is. */
    struct room_member *deep_head, *wait_head;
    /* Remote mode: the last op id this server published, and the last of
     * its own that came back. The stream a server reads is bounded (and
     * read in batches), so a poster that runs ahead of it by more than
     * ROOM_REMOTE_IN_FLIGHT events is held like one ahead of a reader. */
    uint64_t remote_published, remote_applied;

    struct buf scratch; /* JSON of the event being encoded */

    /* Remote mode (room.h): where this server's events are published, and
     * the members whose join is published but not back yet. */
    struct room_remote remote;
    bool has_remote;
    struct room_member *pend_head;
};

static uint64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t (*room_clock_ms)(void) = realtime_ms;

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t (*room_mono_ms)(void) = monotonic_ms;

/* One lock around each whole room_* call, fan-out included: holding it while
 * delivering is what makes every member see one total order. The sink runs
 * under it, so a sink must never call back into the room. */
static void room_lock(struct room *r)
{
    if (r->threaded)
        pthread_mutex_lock(&r->lock);
}

static void room_unlock(struct room *r)
{
    if (r->threaded)
        pthread_mutex_unlock(&r->lock);
}

/* ---- presence ---------------------------------------------------------- */

/* The index of name, or where it would go; *found tells which. */
static size_t presence_find(const struct room *r, const char *name, bool *found)
{
    size_t lo = 0, hi = r->nusers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->users[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Adds n connections of name. The name is checked here, not only where it
 * came in: a remote room takes names from Redis (room_apply, room_load), and
 * the slot is a fixed ROOM_MAX_USER + 1 bytes, so a name that slipped past a
 * caller would overflow the heap. Returns -1 with errno EINVAL (bad name) or
 * ENOMEM. */
static int presence_add_n(struct room *r, const char *name, unsigned n)
{
    size_t len = strnlen(name, ROOM_MAX_USER + 1);
    if (!user_name_valid(name, len) || n == 0) {
        errno = EINVAL;
        return -1;
    }
    bool found;
    size_t i = presence_find(r, name, &found);
    if (found) {
        /* Saturate: a count from Redis must not wrap to a small number. */
        r->users[i].count = n > UINT_MAX - r->users[i].count ? UINT_MAX : r->users[i].count + n;
        return 0;
    }
    if (r->nusers == r->users_cap) {
        size_t cap = r->users_cap ? r->users_cap * 2 : 16;
        struct presence *p = realloc(r->users, cap * sizeof *p);
        if (!p) {
            errno = ENOMEM;
            return -1;
        }
        r->users = p;
        r->users_cap = cap;
    }
    memmove(&r->users[i + 1], &r->users[i], (r->nusers - i) * sizeof *r->users);
    memcpy(r->users[i].name, name, len + 1);
    r->users[i].count = n;
    r->nusers++;
    return 0;
}

static int presence_add(struct room *r, const char *name) { return presence_add_n(r, name, 1); }

/* Never allocates: a leave must always be able to update presence, even
 * when its event cannot be encoded. */
static void presence_remove(struct room *r, const char *name)
{
    bool found;
    size_t i = presence_find(r, name, &found);
    if (!found || --r->users[i].count > 0)
        return;
    r->nusers--;
    memmove(&r->users[i], &r->users[i + 1], (r->nusers - i) * sizeof *r->users);
}

/* ---- history ----------------------------------------------------------- */

static struct history_entry *history_at(struct room *r, unsigned i)
{
    return &r->history[(r->hist_first + i) % ROOM_HISTORY];
}

/* Takes over the caller's reference to ev. */
static void history_push(struct room *r, struct rbuf *ev, size_t json_off)
{
    if (r->hist_len == ROOM_HISTORY) {
        rbuf_unref(r->history[r->hist_first].ev);
        r->hist_first = (r->hist_first + 1) % ROOM_HISTORY;
        r->hist_len--;
    }
    *history_at(r, r->hist_len++) = (struct history_entry){ev, json_off};
}

/* ---- encoding ---------------------------------------------------------- */

static void scratch_reset(struct room *r)
{
    r->scratch.len = 0;
    if (r->scratch.cap > SCRATCH_KEEP)
        buf_free(&r->scratch);
}

/* The JSON in scratch becomes one complete WebSocket text frame, so every
 * recipient's queue can hold the very same bytes. NULL on ENOMEM. */
static struct rbuf *frame_scratch(struct room *r, size_t *json_off)
{
    uint8_t hdr[10];
    size_t hl = ws_frame_header(hdr, WS_OP_TEXT, r->scratch.len);
    struct rbuf *ev = rbuf_new(hl + r->scratch.len);
    if (ev) {
        memcpy(ev->data, hdr, hl);
        memcpy(ev->data + hl, r->scratch.data, r->scratch.len);
        if (json_off)
            *json_off = hl;
    }
    scratch_reset(r);
    return ev;
}

static int append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s), EVENT_LIMIT);
}

static int append_json_str(struct buf *b, const char *s, size_t n)
{
    return json_append_string(b, s, n, EVENT_LIMIT);
}

/* join / message / leave. text is NULL for all but message. */
static struct rbuf *encode_event_at(struct room *r, const char *type, uint64_t seq,
                                    uint64_t ts, const char *user, const char *text,
                                    size_t text_len, size_t *json_off)
{
    struct buf *b = &r->scratch;
    b->len = 0;
    if (buf_appendf(b, EVENT_LIMIT, "{\"type\":\"%s\",\"seq\":%" PRIu64 ",\"ts\":%" PRIu64 ",\"user\":",
                    type, seq, ts) < 0 ||
        append_json_str(b, user, strlen(user)) < 0 ||
        (text && (append_str(b, ",\"text\":") < 0 || append_json_str(b, text, text_len) < 0)) ||
        append_str(b, "}") < 0) {
        scratch_reset(r);
        return NULL;
    }
    return frame_scratch(r, json_off);
}

static struct rbuf *encode_event(struct room *r, const char *type, uint64_t seq,
                                 const char *user, const char *text, size_t text_len,
                                 size_t *json_off)
{
    return encode_event_at(r, type, seq, room_clock_ms(), user, text, text_len, json_off);
}

static struct rbuf *encode_welcome(struct room *r, const char *user)
{
    struct buf *b = &r->scratch;
    b->len = 0;
    if (append_str(b, "{\"type\":\"welcome\",\"user\":") < 0 ||
        append_json_str(b, user, strlen(user)) < 0 || append_str(b, ",\"users\":[") < 0)
        goto fail;
    for (size_t i = 0; i < r->nusers; i++) {
        const char *name = r->users[i].name;
        if ((i > 0 && append_str(b, ",") < 0) || append_json_str(b, name, strlen(name)) < 0)
            goto fail;
    }
    if (append_str(b, "],\"history\":[") < 0)
        goto fail;

    /* The newest messages that fit the byte budget, then oldest first. */
    unsigned first = r->hist_len;
    size_t bytes = 0;
    while (first > 0) {
        const struct history_entry *e = history_at(r, first - 1);
        size_t n = e->ev->len - e->json_off + 1; /* + the comma */
        if (bytes + n > WELCOME_HISTORY_BYTES)
            break;
        bytes += n;
        first--;
    }
    for (unsigned i = first; i < r->hist_len; i++) {
        const struct history_entry *e = history_at(r, i);
        /* The broadcast bytes themselves: a history entry is never
         * re-encoded, so welcome shows exactly what members were sent. */
        if ((i > first && append_str(b, ",") < 0) ||
            buf_append(b, e->ev->data + e->json_off, e->ev->len - e->json_off, EVENT_LIMIT) < 0)
            goto fail;
    }
    if (append_str(b, "]}") < 0)
        goto fail;
    return frame_scratch(r, NULL);

fail:
    scratch_reset(r);
    return NULL;
}

/* ---- backpressure ------------------------------------------------------ */

static uint64_t remote_publish(struct room *r, const char *type, const char *user,
                               const char *text, size_t len)
{
    uint64_t token = r->remote.publish(r->remote.ctx, type, user, text, len);
    if (token > r->remote_published)
        r->remote_published = token;
    return token;
}

static void deep_link(struct room *r, struct room_member *m, uint64_t now)
{
    m->deep = true;
    m->progress_ms = now;
    m->deep_prev = NULL;
    m->deep_next = r->deep_head;
    if (m->deep_next)
        m->deep_next->deep_prev = m;
    r->deep_head = m;
}

static void deep_unlink(struct room *r, struct room_member *m)
{
    if (!m->deep)
        return;
    if (m->deep_prev)
        m->deep_prev->deep_next = m->deep_next;
    else
        r->deep_head = m->deep_next;
    if (m->deep_next)
        m->deep_next->deep_prev = m->deep_prev;
    m->deep_prev = m->deep_next = NULL;
    m->deep = false;
}

/* A new figure for what waits for m: from a delivery, or from the model's
 * report (room_backlog). Only a report that the client took bytes is
 * progress: a figure can go down between deliveries without the client
 * reading anything (chat-forked's hub hands bytes on to a child). */
static void backlog_seen(struct room *r, struct room_member *m, size_t bytes, bool drained,
                         uint64_t now)
{
    bool down = drained && bytes < m->backlog;
    m->backlog = bytes;
    if (!m->deep) {
        if (bytes > ROOM_DEEP_BACKLOG)
            deep_link(r, m, now);
    } else if (bytes <= ROOM_SHALLOW_BACKLOG) {
        deep_unlink(r, m);
    } else if (down) {
        m->progress_ms = now;
    }
}

/* Is a member that still reads over ROOM_DEEP_BACKLOG? The deep list is
 * short (members that fall behind by a quarter of the cut-off), and the
 * first member that is draining ends the walk. */
static bool congested(const struct room *r, uint64_t now)
{
    if (r->has_remote && r->remote_published > r->remote_applied + ROOM_REMOTE_IN_FLIGHT)
        return true; /* events lost on the way still let go: a later one comes back */
    for (const struct room_member *m = r->deep_head; m; m = m->deep_next)
        if (now - m->progress_ms < ROOM_STALL_MS)
            return true;
    return false;
}

static void hold_poster(struct room *r, struct room_member *m)
{
    if (m->waiting)
        return;
    m->waiting = true;
    m->wait_next = r->wait_head;
    r->wait_head = m;
}

static void unhold_poster(struct room *r, struct room_member *m)
{
    if (!m->waiting)
        return;
    struct room_member **p = &r->wait_head;
    while (*p != m)
        p = &(*p)->wait_next;
    *p = m->wait_next;
    m->wait_next = NULL;
    m->waiting = false;
}

/* At the end of a room_* call that may have ended the congestion: let the
 * held posters go. Each is unlinked before its unblock (the model may free
 * it later, never here: unblock only takes note). */
static void release_posters(struct room *r)
{
    if (!r->wait_head || congested(r, room_mono_ms()))
        return;
    while (r->wait_head) {
        struct room_member *m = r->wait_head;
        r->wait_head = m->wait_next;
        m->wait_next = NULL;
        m->waiting = false;
        if (r->sink.unblock)
            r->sink.unblock(m);
    }
}

/* m is no longer a member (left, cut off, or its pending join dropped). */
static void forget_pressure(struct room *r, struct room_member *m)
{
    deep_unlink(r, m);
    unhold_poster(r, m);
    m->backlog = 0;
}

/* ---- members and fan-out ----------------------------------------------- */

static void link_member(struct room *r, struct room_member *m)
{
    m->next = NULL;
    m->prev = r->tail;
    if (r->tail)
        r->tail->next = m;
    else
        r->head = m;
    r->tail = m;
    r->members++;
}

static void unlink_member(struct room *r, struct room_member *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        r->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        r->tail = m->prev;
    m->prev = m->next = NULL;
    m->joined = false; /* from now on room_post and room_leave ignore m */
    r->members--;
    forget_pressure(r, m);
}

static void link_pending(struct room *r, struct room_member *m)
{
    m->prev = NULL;
    m->next = r->pend_head;
    if (m->next)
        m->next->prev = m;
    r->pend_head = m;
    m->pending = true;
}

static void unlink_pending(struct room *r, struct room_member *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        r->pend_head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
    m->pending = false;
    forget_pressure(r, m);
}

/* Deliver ev to every member. A member whose backlog goes over the limit is
 * unlinked on the spot, so the rest of this fan-out and every later one skip
 * it, and it is queued on the cut list. Unlinking touches only m's
 * neighbours' pointers, so the `next` saved before delivering stays a live
 * member. cut_off and the leave wait until the loop is over: the loop never
 * re-enters itself, and m is not touched after cut_off (a model may free the
 * member right there). */
static void fan_out(struct room *r, struct rbuf *ev)
{
    struct room_member *next;
    uint64_t now = room_mono_ms();
    for (struct room_member *m = r->head; m; m = next) {
        next = m->next;
        size_t backlog = r->sink.deliver(m, ev);
        if (backlog <= ROOM_MAX_BACKLOG) {
            backlog_seen(r, m, backlog, false, now);
            continue;
        }
        unlink_member(r, m);
        if (r->cut_tail)
            r->cut_tail->next = m;
        else
            r->cut_head = m;
        r->cut_tail = m;
    }
}

/* Encode and deliver the next sequenced event. The seq number is taken only
 * once the event exists: an event lost to ENOMEM reaches nobody and leaves
 * no gap. Returns the caller's reference, or NULL. */
static struct rbuf *broadcast(struct room *r, const char *type, const char *user,
                              const char *text, size_t text_len, size_t *json_off)
{
    struct rbuf *ev = encode_event(r, type, r->seq + 1, user, text, text_len, json_off);
    if (!ev)
        return NULL;
    r->seq++;
    fan_out(r, ev);
    return ev;
}

/* Presence first, so it is right even when the event is lost to ENOMEM;
 * the clients then miss this one leave, nothing else. */
static void announce_leave(struct room *r, const char *user)
{
    presence_remove(r, user);
    rbuf_unref(broadcast(r, "leave", user, NULL, 0, NULL));
}

/* Announce the members cut off so far. Each leave is a fan-out of its own
 * that may cut off more members; they join the queue and are handled by the
 * same loop, never by recursion. */
static void settle_cut_offs(struct room *r)
{
    while (r->cut_head) {
        struct room_member *m = r->cut_head;
        r->cut_head = m->next;
        if (!r->cut_head)
            r->cut_tail = NULL;
        m->next = NULL;
        char user[ROOM_MAX_USER + 1];
        memcpy(user, m->user, sizeof user);
        r->sink.cut_off(m);
        if (r->has_remote) /* presence changes when the leave comes back */
            remote_publish(r, "leave", user, NULL, 0);
        else
            announce_leave(r, user);
    }
}

/* ---- API ---------------------------------------------------------------- */

struct room *room_new(const struct room_sink *sink, bool threaded)
{
    struct room *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->sink = *sink;
    r->threaded = threaded;
    if (threaded && pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void room_free(struct room *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < r->hist_len; i++)
        rbuf_unref(history_at(r, i)->ev);
    free(r->users);
    buf_free(&r->scratch);
    if (r->threaded)
        pthread_mutex_destroy(&r->lock);
    free(r);
}

int room_join(struct room *r, struct room_member *m, const char *user)
{
    size_t ulen = strnlen(user, ROOM_MAX_USER + 1);
    if (!user_name_valid(user, ulen)) {
        errno = EINVAL;
        return -1;
    }
    room_lock(r);
    if (m->joined || m->pending) { /* already in: joining twice would corrupt the list */
        room_unlock(r);
        return 0;
    }
    if (r->has_remote) {
        /* Nothing is delivered yet: welcome and join wait for the join to
         * come back in the shared order (room_apply). */
        memcpy(m->user, user, ulen + 1);
        link_pending(r, m);
        m->token = remote_publish(r, "join", user, NULL, 0);
        room_unlock(r);
        return 0;
    }
    /* Everything that can fail comes before anything is delivered or any
     * seq is taken, so a failed join leaves no trace. The newcomer is in
     * presence before the welcome is encoded: "users" includes it. */
    struct rbuf *welcome = NULL, *join = NULL;
    if (presence_add(r, user) < 0)
        goto nomem;
    welcome = encode_welcome(r, user);
    if (welcome)
        join = encode_event(r, "join", r->seq + 1, user, NULL, 0, NULL);
    if (!join) {
        rbuf_unref(welcome);
        presence_remove(r, user);
        goto nomem;
    }
    r->seq++;
    memcpy(m->user, user, ulen + 1);
    m->joined = true;

    /* Before m is linked, so it reaches m alone. Its backlog is not checked:
     * a new connection's queue holds nothing else, and the join that follows
     * checks the total anyway, under the same rule as everyone's. */
    r->sink.deliver(m, welcome);
    rbuf_unref(welcome);
    link_member(r, m);
    fan_out(r, join);
    rbuf_unref(join);
    settle_cut_offs(r);
    room_unlock(r);
    return 0;

nomem:
    room_unlock(r);
    errno = ENOMEM;
    return -1;
}

bool room_post(struct room *r, struct room_member *m, const char *text, size_t len)
{
    if (text_is_blank(text, len))
        return true;
    room_lock(r);
    /* joined is read under the lock: another thread's fan-out may have cut
     * m off a moment ago. A pending member may post: its message is
     * published after its join, on the same ordered channel. */
    if (r->has_remote) {
        if (m->joined || m->pending)
            remote_publish(r, "message", m->user, text, len);
    } else if (m->joined) {
        size_t json_off;
        struct rbuf *ev = broadcast(r, "message", m->user, text, len, &json_off);
        if (ev)
            history_push(r, ev, json_off);
        settle_cut_offs(r);
    }
    /* In remote mode the fan-out comes later (room_apply); the deep members
     * it made are what holds the next post back. */
    bool go = true;
    if ((m->joined || m->pending) && congested(r, room_mono_ms())) {
        hold_poster(r, m);
        go = false;
    }
    release_posters(r); /* a cut-off may have ended someone else's wait */
    room_unlock(r);
    return go;
}

void room_backlog(struct room *r, struct room_member *m, size_t bytes, bool drained)
{
    room_lock(r);
    if (m->joined) {
        backlog_seen(r, m, bytes, drained, room_mono_ms());
        release_posters(r);
    }
    room_unlock(r);
}

void room_leave(struct room *r, struct room_member *m)
{
    room_lock(r);
    if (r->has_remote) {
        /* m goes now (its connection is about to be freed); the others see
         * its leave when it comes back in the shared order. */
        if (m->joined || m->pending) {
            if (m->joined)
                unlink_member(r, m);
            else
                unlink_pending(r, m);
            remote_publish(r, "leave", m->user, NULL, 0);
        }
    } else if (m->joined) {
        unlink_member(r, m);
        if (r->sink.stopping && r->sink.stopping()) {
            presence_remove(r, m->user); /* as room_close: no frame */
        } else {
            announce_leave(r, m->user);
            settle_cut_offs(r);
        }
    }
    release_posters(r);
    room_unlock(r);
}

void room_close(struct room *r)
{
    room_lock(r);
    /* In a shared room the other servers must hear that these members are
     * gone: one leave each, published (backplane_free sends what is left). */
    while (r->has_remote && r->pend_head) {
        struct room_member *m = r->pend_head;
        unlink_pending(r, m);
        remote_publish(r, "leave", m->user, NULL, 0);
    }
    while (r->head) {
        if (r->has_remote)
            remote_publish(r, "leave", r->head->user, NULL, 0);
        presence_remove(r, r->head->user);
        unlink_member(r, r->head);
    }
    /* Every member is gone, so every list is empty: nobody waits now. */
    room_unlock(r);
}

struct room_stats room_stats(struct room *r)
{
    room_lock(r);
    struct room_stats s = {.members = r->members, .seq = r->seq};
    room_unlock(r);
    return s;
}

/* ---- remote mode -------------------------------------------------------- */

void room_set_remote(struct room *r, const struct room_remote *remote)
{
    room_lock(r);
    r->has_remote = remote != NULL;
    if (remote)
        r->remote = *remote;
    room_unlock(r);
}

static struct room_member *find_pending(struct room *r, uint64_t token)
{
    for (struct room_member *m = r->pend_head; m; m = m->next)
        if (m->token == token)
            return m;
    return NULL;
}

/* Our own member's join is back: it gets welcome (the replica as of this
 * very point in the shared order), then it is linked and sees its join. */
static void apply_own_join(struct room *r, struct room_member *m, struct rbuf *join)
{
    unlink_pending(r, m);
    struct rbuf *welcome = encode_welcome(r, m->user);
    if (!welcome) { /* ENOMEM: it cannot start right; treat as cut off */
        r->sink.cut_off(m);
        remote_publish(r, "leave", m->user, NULL, 0);
        fan_out(r, join);
        return;
    }
    m->joined = true;
    r->sink.deliver(m, welcome);
    rbuf_unref(welcome);
    link_member(r, m);
    fan_out(r, join);
}

static void system_locked(struct room *r, const char *text)
{
    struct buf *b = &r->scratch;
    b->len = 0;
    if (buf_appendf(b, EVENT_LIMIT, "{\"type\":\"system\",\"ts\":%" PRIu64 ",\"text\":",
                    room_clock_ms()) < 0 ||
        append_json_str(b, text, strlen(text)) < 0 || append_str(b, "}") < 0) {
        scratch_reset(r);
        return;
    }
    struct rbuf *ev = frame_scratch(r, NULL);
    if (ev) {
        fan_out(r, ev);
        rbuf_unref(ev);
    }
}

/* What room_apply can take. The backplane validates every entry it reads
 * (common/redis_entry.c); this is the room's own last line: an event it
 * cannot show must not consume a seq either, or members would see a gap
 * that nothing explains. */
static bool event_ok(const struct room_event *e)
{
    bool message = strcmp(e->type, "message") == 0;
    if (!message && strcmp(e->type, "join") != 0 && strcmp(e->type, "leave") != 0)
        return false;
    if (!e->user || !user_name_valid(e->user, strnlen(e->user, ROOM_MAX_USER + 1)))
        return false;
    if (!message)
        return true;
    return e->text && e->text_len <= ROOM_MAX_TEXT && !text_is_blank(e->text, e->text_len) &&
           utf8_validate(UTF8_ACCEPT, (const uint8_t *)e->text, e->text_len) == UTF8_ACCEPT;
}

void room_apply(struct room *r, const struct room_event *e)
{
    if (!event_ok(e))
        return;
    room_lock(r);
    if (e->seq <= r->seq) { /* seen already: a redelivery */
        room_unlock(r);
        return;
    }
    if (r->seq > 0 && e->seq > r->seq + 1) {
        char note[160];
        snprintf(note, sizeof note,
                 "%" PRIu64 " chat events were lost while this server was cut off from the room",
                 e->seq - r->seq - 1);
        system_locked(r, note);
    }
    r->seq = e->seq;
    if (e->mine && e->token > r->remote_applied)
        r->remote_applied = e->token;
    bool join = strcmp(e->type, "join") == 0, leave = strcmp(e->type, "leave") == 0;
    bool message = strcmp(e->type, "message") == 0;
    struct room_member *own = join && e->mine ? find_pending(r, e->token) : NULL;
    if (join && presence_add(r, e->user) < 0) {
        room_unlock(r);
        return;
    }
    if (leave)
        presence_remove(r, e->user);
    size_t json_off;
    struct rbuf *ev = NULL;
    if (join || leave || message)
        ev = encode_event_at(r, e->type, e->seq, e->ts, e->user, message ? e->text : NULL,
                             e->text_len, &json_off);
    if (ev) {
        if (own)
            apply_own_join(r, own, ev);
        else
            fan_out(r, ev);
        if (message)
            history_push(r, ev, json_off);
        else
            rbuf_unref(ev);
    }
    settle_cut_offs(r);
    release_posters(r);
    room_unlock(r);
}

void room_load(struct room *r, uint64_t seq, const char *const *names, const unsigned *counts,
               size_t nnames, const struct room_event *history, size_t nhistory)
{
    room_lock(r);
    r->nusers = 0;
    for (size_t i = 0; i < nnames; i++)
        presence_add_n(r, names[i], counts[i]); /* a bad name is left out */
    for (unsigned i = 0; i < r->hist_len; i++)
        rbuf_unref(history_at(r, i)->ev);
    r->hist_first = r->hist_len = 0;
    for (size_t i = 0; i < nhistory; i++) {
        const struct room_event *e = &history[i];
        if (!event_ok(e))
            continue;
        size_t json_off;
        struct rbuf *ev = encode_event_at(r, "message", e->seq, e->ts, e->user, e->text,
                                          e->text_len, &json_off);
        if (ev)
            history_push(r, ev, json_off);
    }
    r->seq = seq;
    room_unlock(r);
}

void room_own_presence(struct room *r, void (*fn)(void *arg, const char *user, unsigned n),
                       void *arg)
{
    room_lock(r);
    /* Members are few per user in the cases that matter; a quadratic count
     * over this server's members keeps this allocation-free. */
    for (struct room_member *m = r->head; m; m = m->next) {
        bool earlier = false;
        unsigned n = 0;
        for (struct room_member *o = r->head; o; o = o->next) {
            if (strcmp(o->user, m->user) != 0)
                continue;
            if (o == m)
                break;
            earlier = true;
            break;
        }
        if (earlier)
            continue;
        for (struct room_member *o = m; o; o = o->next)
            n += strcmp(o->user, m->user) == 0;
        fn(arg, m->user, n);
    }
    room_unlock(r);
}

void room_system(struct room *r, const char *text)
{
    room_lock(r);
    system_locked(r, text);
    settle_cut_offs(r);
    room_unlock(r);
}
