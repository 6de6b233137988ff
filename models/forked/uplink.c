/* A chat-forked child's end of its socketpair to the hub (see forked.h for
 * the messages both ways).
 *
 * The child never blocks on the hub while it serves. It used to: a blocking
 * send per message, and the hub's frames read only while the child's own
 * queue was short. With both, a client sending as fast as its socket took
 * it was read on and on while the events it caused piled up in the hub,
 * until the hub took it for a slow reader and cut it off mid-flood, and a
 * cut-off client whose socket stayed full never heard of its 1008. Now the
 * hub's frames are always read, so everything waiting for the client waits
 * here, where the 1 MiB rule and conn_want_read() see it; and after each
 * read from the client that sent anything, the child asks HUB_SYNC and reads
 * its client again only once the hub has answered — by then every event its
 * messages caused is in its queue, as it would be at once in chat-threaded.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forked.h"

#define UPLINK_FAIL_MS 1000 /* writing what waits after a failure, at most */

static void fail(struct uplink *u)
{
    u->failed = true;
    uplink_close(u, UPLINK_FAIL_MS);
}

void uplink_send(struct uplink *u, int type, const void *payload, size_t len)
{
    if (u->fd < 0)
        return;
    unsigned char head[HUB_HEAD] = {(unsigned char)type, (unsigned char)(len >> 8),
                                    (unsigned char)len};
    size_t before = u->out.len;
    if (len > HUB_PAYLOAD_MAX || buf_append(&u->out, head, sizeof head, UPLINK_OUT_MAX) < 0 ||
        buf_append(&u->out, payload, len, UPLINK_OUT_MAX) < 0) {
        u->out.len = before; /* never half a message */
        fail(u);
        return;
    }
    u->unsynced = true;
}

void uplink_flush(struct uplink *u)
{
    while (u->fd >= 0 && u->out.len) {
        ssize_t n = send(u->fd, u->out.data, u->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&u->out, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else {
            /* The hub is gone, or dropped this link: it said our leave. */
            u->failed = true;
            buf_free(&u->out);
            uplink_close(u, 0);
            return;
        }
    }
    if (u->out.len == 0)
        buf_free(&u->out);
}

#define DEPTH_EVERY_MS 50 /* while deep, the hub hears of progress this often */

static void send_depth(struct uplink *u, size_t bytes)
{
    if (bytes > ROOM_MAX_BACKLOG)
        bytes = ROOM_MAX_BACKLOG;
    unsigned char d[5] = {(unsigned char)(bytes >> 24), (unsigned char)(bytes >> 16),
                          (unsigned char)(bytes >> 8), (unsigned char)bytes, u->drained};
    bool unsynced = u->unsynced;
    uplink_send(u, HUB_DEPTH, d, sizeof d);
    u->unsynced = unsynced; /* a report is not news to sync on */
    u->told = bytes;
    u->drained = false;
    u->depth_ms = app_now_ms();
    u->taken = 0;
}

void uplink_depth(struct uplink *u, size_t bytes)
{
    u->drained = true;
    /* The hub counts what we last told it plus all it wrote to us since:
     * while that may be over ROOM_SHALLOW_BACKLOG it must hear how we
     * drain (now and then while deep, at once when we are not). */
    bool hub_sees_deep = u->told + u->taken > ROOM_SHALLOW_BACKLOG;
    bool deep = bytes > ROOM_SHALLOW_BACKLOG;
    if (!hub_sees_deep && !deep)
        return;
    if (deep && hub_sees_deep && app_now_ms() - u->depth_ms < DEPTH_EVERY_MS)
        return;
    send_depth(u, bytes);
}

void uplink_sync(struct uplink *u)
{
    if (u->unsynced && u->fd >= 0) {
        uplink_send(u, HUB_SYNC, "", 0);
        u->unsynced = false; /* a sync is not news to sync on */
        if (u->fd >= 0)
            u->syncs++;
    }
    uplink_flush(u);
}

/* The frame at p[0..n) as the hub may send it: its length in *whole, its
 * opcode and where its payload starts. Returns 1 for a complete frame, 0
 * when more is needed, -1 for anything the hub never sends. */
static int hub_frame(const unsigned char *p, size_t n, size_t *whole, int *op, size_t *hl)
{
    if (n < 2)
        return 0;
    if ((p[0] & 0xf0) != 0x80 || (p[1] & 0x80))
        return -1; /* the hub sends whole (FIN), plain (no RSV), unmasked frames */
    *op = p[0] & 0x0f;
    uint64_t len;
    *hl = ws_frame_head(p, n, &len);
    if (*hl == 0)
        return 0;
    if (len > HUB_FRAME_MAX - *hl)
        return -1;
    *whole = *hl + (size_t)len;
    if (n < *whole)
        return 0;
    const unsigned char *pl = p + *hl;
    bool ok = *op == WS_OP_TEXT ||
              (*op == WS_OP_CLOSE && len == 2 && (pl[0] << 8 | pl[1]) == 1008) ||
              (*op == HUB_OP_SYNCED && len == 0);
    return ok ? 1 : -1;
}

/* One frame from the hub, checked: forward it, or act on it. */
static void take_frame(struct uplink *u, struct conn *c, const unsigned char *p, size_t n, int op)
{
    bool open = c->ws && c->ws->phase == WS_OPEN;
    if (op == HUB_OP_SYNCED) {
        if (u->syncs == 0)
            fail(u); /* an answer to no question: the stream is out of step */
        else
            u->syncs--;
    } else if (op == WS_OP_CLOSE) {
        u->joined = false; /* the hub already took us out of the room */
        conn_ws_cut_off(c);
    } else if (open) {
        struct rbuf *r = rbuf_from(p, n);
        if (!r || outq_push(&c->out, r) < 0) {
            fail(u); /* an event lost: the client's stream would have a gap */
            return;
        }
        if (c->out.bytes > ROOM_DEEP_BACKLOG && u->told <= ROOM_DEEP_BACKLOG &&
            c->out.bytes <= ROOM_MAX_BACKLOG)
            send_depth(u, c->out.bytes); /* the room holds its posters back */
        if (c->out.bytes > ROOM_MAX_BACKLOG) {
            /* Its client does not read: the contract's cut-off, decided here
             * because this is where its backlog is. Leave first, so the room
             * hears it at once. */
            if (u->joined)
                uplink_send(u, HUB_LEAVE, "", 0);
            u->joined = false;
            conn_ws_cut_off(c);
        }
    }
    /* Events for a client already closing are dropped, as its backlog is. */
}

void uplink_take(struct uplink *u, struct conn *c)
{
    char buf[64 * 1024];
    ssize_t n = recv(u->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || buf_append(&u->in, buf, (size_t)n, HUB_FRAME_MAX + sizeof buf) < 0) {
        fail(u); /* EOF: the hub dropped us, or the server is gone */
        return;
    }
    u->taken += (size_t)n;
    size_t off = 0;
    while (u->fd >= 0) {
        size_t whole, hl;
        int op, r = hub_frame((const unsigned char *)u->in.data + off, u->in.len - off, &whole,
                              &op, &hl);
        if (r < 0)
            fail(u);
        if (r <= 0)
            break;
        take_frame(u, c, (const unsigned char *)u->in.data + off, whole, op);
        off += whole;
    }
    if (u->fd < 0)
        return; /* closed, buffers freed */
    buf_consume(&u->in, off);
    /* The hub counts what it wrote to us as waiting until we say how much
     * still does: say so now and then, or its figure would only grow. */
    if (u->taken >= HUB_DEPTH_EVERY && u->joined)
        send_depth(u, c->out.bytes);
    if (u->in.len == 0)
        buf_free(&u->in);
}

void uplink_close(struct uplink *u, int ms)
{
    if (u->fd < 0)
        return;
    uint64_t end = app_now_ms() + (uint64_t)ms;
    uplink_flush(u);
    for (uint64_t now; u->fd >= 0 && u->out.len && (now = app_now_ms()) < end;) {
        struct pollfd p = {u->fd, POLLIN | POLLOUT, 0};
        if (poll(&p, 1, (int)(end - now)) < 0 && errno != EINTR)
            break;
        if (p.revents & POLLIN) {
            char junk[16 * 1024]; /* the hub's frames, for a client we are leaving */
            ssize_t got = recv(u->fd, junk, sizeof junk, MSG_DONTWAIT);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
                break;
        }
        if (p.revents & (POLLOUT | POLLERR | POLLHUP))
            uplink_flush(u);
    }
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    u->joined = false;
    u->syncs = 0;
    u->unsynced = false;
    buf_free(&u->in);
    buf_free(&u->out);
}
