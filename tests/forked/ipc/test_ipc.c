/* chat-forked's IPC, fed bytes through a socketpair with no server around
 * it: the hub (hub.c) and a child's end (uplink.c) must take what the other
 * side sends whole and in order at every split, and treat anything else as
 * the end of that one connection — its leave, its link closed — never as
 * bytes to skip or half-apply. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forked.h"

/* hub.c and uplink.c belong to chat-forked's parent and children; the
 * globals main.c would define: */
struct app app;
static struct forked_shared shared_page;
struct forked_shared *shared = &shared_page;

TestSuite(ipc, .timeout = 60);

static void pair(int sv[2])
{
    cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
}

/* Everything readable now on fd (non-blocking), appended to out; true at EOF. */
static bool drain(int fd, struct buf *out)
{
    char tmp[64 * 1024];
    for (;;) {
        ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0)
            cr_assert(buf_append(out, tmp, (size_t)n, 64 << 20) == 0);
        else
            return n == 0;
    }
}

static void send_all(int fd, const void *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* ---- the hub ---- */

/* Let the hub handle what its links sent, and flush what it queued. */
static void hub_pump(struct hub *h, int ep)
{
    struct epoll_event ev[16];
    int n;
    while ((n = epoll_wait(ep, ev, 16, 0)) > 0) {
        for (int i = 0; i < n; i++)
            hub_on_event(h, ev[i].data.ptr, ev[i].events);
        hub_flush(h);
    }
}

/* The hub tells the parent which child's link ended; here, the last. */
static pid_t last_ended;
static void note_ended(pid_t pid) { last_ended = pid; }

/* Two children in the room: coco on a[], cc on b[]. */
static struct hub *two_members(int *ep, int a[2], int b[2], struct buf *seen_by_b)
{
    *ep = epoll_create1(EPOLL_CLOEXEC);
    struct hub *h = hub_new(*ep, note_ended);
    cr_assert(h);
    pair(a);
    pair(b);
    cr_assert(hub_add_child(h, a[0], 1) == 0 && hub_add_child(h, b[0], 2) == 0);
    send_all(a[1], "J\0\4coco", 7);
    hub_pump(h, *ep);
    send_all(b[1], "J\0\2cc", 5);
    hub_pump(h, *ep);
    drain(b[1], seen_by_b);
    cr_assert(strstr(seen_by_b->data, "\"type\":\"join\"") != NULL);
    seen_by_b->len = 0;
    return h;
}

static void two_members_free(struct hub *h, int ep, int a[2], int b[2], struct buf *x,
                             struct buf *y)
{
    hub_free(h);
    close(ep);
    close(a[1]);
    close(b[1]);
    buf_free(x);
    buf_free(y);
}

static void hub_drops_link_on(const char *bad, size_t n, const char *what)
{
    int ep, a[2], b[2];
    struct buf seen = {0}, at_a = {0};
    struct hub *h = two_members(&ep, a, b, &seen);
    send_all(a[1], bad, n);
    hub_pump(h, ep);
    cr_assert(drain(a[1], &at_a), "%s: the hub kept the link open", what);
    drain(b[1], &seen);
    cr_assert(seen.data && strstr(seen.data, "\"type\":\"leave\"") &&
                  strstr(seen.data, "\"user\":\"coco\""),
              "%s: the others did not get the leave", what);
    cr_assert_eq(hub_links(h), 1);
    cr_assert_eq(last_ended, 1, "%s: the parent was not told child 1's link ended", what);
    last_ended = 0;
    two_members_free(h, ep, a, b, &seen, &at_a);
}

#define BAD(lit, what) hub_drops_link_on(lit, sizeof lit - 1, what)

Test(ipc, hub_drops_a_child_that_breaks_the_protocol)
{
    BAD("X\0\0", "an unknown type");
    BAD("L\0\1x", "a leave with a payload");
    BAD("S\0\1x", "a sync with a payload");
    BAD("J\0\3a b", "a join with a name no user can have");
    BAD("J\0\2cc", "a second join");
    BAD("P\0\2\xc3\x28", "a post that is not UTF-8");
    BAD("P\x10\x01", "a length over WS_MAX_MESSAGE");
}

/* A message split anywhere is taken whole, and a sync is answered after the
 * events the messages before it caused. */
Test(ipc, hub_takes_messages_at_every_split)
{
    const char msgs[] = "P\0\5hello" "S\0\0";
    for (size_t k = 1; k < sizeof msgs - 1; k++) {
        int ep, a[2], b[2];
        struct buf seen = {0}, at_a = {0};
        struct hub *h = two_members(&ep, a, b, &seen);
        drain(a[1], &at_a);
        at_a.len = 0;
        send_all(a[1], msgs, k);
        hub_pump(h, ep);
        send_all(a[1], msgs + k, sizeof msgs - 1 - k);
        hub_pump(h, ep);
        drain(a[1], &at_a);
        drain(b[1], &seen);
        cr_assert(seen.data && strstr(seen.data, "\"text\":\"hello\""), "split at %zu", k);
        const char *text = strstr(at_a.data, "\"text\":\"hello\"");
        cr_assert(text, "split at %zu: no echo", k);
        cr_assert(at_a.len >= 2 && (unsigned char)at_a.data[at_a.len - 2] == (0x80 | HUB_OP_SYNCED) &&
                      at_a.data[at_a.len - 1] == 0,
                  "split at %zu: the sync answer is not last", k);
        two_members_free(h, ep, a, b, &seen, &at_a);
    }
}

/* ---- a child's end ---- */

struct child_end {
    struct uplink u;
    struct conn c;
    int hub; /* the hub's end, for the test to write to */
};

static void child_open(struct child_end *e)
{
    static struct app_counters counters;
    app.n = &counters;
    int sv[2];
    pair(sv);
    memset(e, 0, sizeof *e);
    e->u.fd = sv[0];
    e->u.joined = true;
    e->hub = sv[1];
    conn_init(&e->c, &app);
    e->c.ws = calloc(1, sizeof *e->c.ws); /* a member, as conn_upgrade leaves it */
    e->c.ws->phase = WS_OPEN;
}

static void child_close(struct child_end *e)
{
    uplink_close(&e->u, 0);
    free(e->c.ws);
    e->c.ws = NULL;
    conn_free(&e->c);
    close(e->hub);
}

/* The frames in the client's queue, concatenated. */
static void queued(const struct conn *c, struct buf *out)
{
    out->len = 0;
    for (struct outq_node *n = c->out.head; n; n = n->next)
        cr_assert(buf_append(out, n->buf->data, n->buf->len, 64 << 20) == 0);
}

Test(ipc, child_takes_frames_at_every_split)
{
    struct rbuf *f1 = ws_frame_new(WS_OP_TEXT, "{\"a\":1}", 7);
    char big[300];
    memset(big, 'b', sizeof big);
    struct rbuf *f2 = ws_frame_new(WS_OP_TEXT, big, sizeof big); /* 16-bit length */
    struct buf stream = {0}, got = {0};
    buf_append(&stream, f1->data, f1->len, 1 << 20);
    buf_append(&stream, f2->data, f2->len, 1 << 20);
    for (size_t k = 1; k < stream.len; k++) {
        struct child_end e;
        child_open(&e);
        send_all(e.hub, stream.data, k);
        uplink_take(&e.u, &e.c);
        send_all(e.hub, stream.data + k, stream.len - k);
        uplink_take(&e.u, &e.c);
        cr_assert(!e.u.failed, "split at %zu", k);
        queued(&e.c, &got);
        cr_assert(got.len == stream.len && memcmp(got.data, stream.data, got.len) == 0,
                  "split at %zu: the client's queue differs", k);
        child_close(&e);
    }
    rbuf_unref(f1);
    rbuf_unref(f2);
    buf_free(&stream);
    buf_free(&got);
}

static void child_fails_on(const unsigned char *bad, size_t n, const char *what)
{
    struct child_end e;
    child_open(&e);
    uplink_send(&e.u, HUB_POST, "hi", 2); /* read from the client before the failure */
    send_all(e.hub, bad, n);
    uplink_take(&e.u, &e.c);
    cr_assert(e.u.failed && e.u.fd < 0, "%s: the link is still open", what);
    cr_assert(outq_empty(&e.c.out), "%s: something was queued for the client", what);
    struct buf at_hub = {0};
    cr_assert(drain(e.hub, &at_hub), "%s: no EOF at the hub", what);
    cr_assert(at_hub.len == 5 && memcmp(at_hub.data, "P\0\2hi", 5) == 0,
              "%s: the message before the failure was not written first", what);
    buf_free(&at_hub);
    child_close(&e);
}

#define CHILD_BAD(what, ...)                                                                       \
    do {                                                                                           \
        const unsigned char bad[] = {__VA_ARGS__};                                                 \
        child_fails_on(bad, sizeof bad, what);                                                     \
    } while (0)

Test(ipc, child_closes_the_link_on_a_frame_the_hub_never_sends)
{
    CHILD_BAD("RSV1 set", 0xc1, 0x01, 'a');
    CHILD_BAD("no FIN", 0x01, 0x01, 'a');
    CHILD_BAD("masked", 0x81, 0x81, 1, 2, 3, 4, 'a');
    CHILD_BAD("binary", 0x82, 0x01, 'a');
    CHILD_BAD("a close other than 1008", 0x88, 0x02, 0x03, 0xe8);
    CHILD_BAD("a sync answer nobody asked for", 0x8f, 0x00);
    CHILD_BAD("a frame over HUB_FRAME_MAX", 0x81, 0x7f, 0, 0, 0, 0, 0, 0x20, 0, 0);
}

/* More than ROOM_MAX_BACKLOG waiting for a client that does not read: the
 * child says its leave and cuts its client off with 1008. */
Test(ipc, child_cuts_off_its_client_past_the_backlog)
{
    struct child_end e;
    child_open(&e);
    enum { TEXT = 60000 };
    char *text = malloc(TEXT);
    memset(text, 'x', TEXT);
    struct rbuf *f = ws_frame_new(WS_OP_TEXT, text, TEXT);
    for (int i = 0; i * TEXT <= ROOM_MAX_BACKLOG; i++) {
        send_all(e.hub, f->data, f->len);
        do
            uplink_take(&e.u, &e.c); /* the whole frame was sent: it is there to read */
        while (!e.u.failed && e.u.in.len);
    }
    cr_assert(!e.u.failed);
    cr_assert_eq(e.c.ws->phase, WS_CLOSE_SENT, "not cut off");
    cr_assert(!e.u.joined);
    struct rbuf *last = e.c.out.tail->buf;
    cr_assert(last->len == 4 && (unsigned char)last->data[0] == 0x88 &&
              (unsigned char)last->data[2] == 0x03 && (unsigned char)last->data[3] == 0xf0,
              "the client's queue does not end with close 1008");
    uplink_flush(&e.u);
    struct buf at_hub = {0};
    drain(e.hub, &at_hub);
    /* First how deep it is getting (every HUB_DEPTH_EVERY bytes from the
     * hub, and once past ROOM_DEEP_BACKLOG: the room holds its posters back
     * on that), its client having taken nothing; then the leave. */
    const unsigned char *h = (const unsigned char *)at_hub.data;
    size_t off = 0, told = 0;
    int reports = 0;
    while (at_hub.len - off > 3 && h[off] == 'D') {
        cr_assert(h[off + 1] == 0 && h[off + 2] == 5 && at_hub.len - off >= 8, "a bad HUB_DEPTH");
        size_t depth = (size_t)h[off + 3] << 24 | (size_t)h[off + 4] << 16 |
                       (size_t)h[off + 5] << 8 | h[off + 6];
        cr_assert(depth >= told && depth <= ROOM_MAX_BACKLOG, "depth %zu after %zu", depth, told);
        cr_assert_eq(h[off + 7], 0, "the client took nothing, yet the child says it did");
        told = depth;
        reports++;
        off += 8;
    }
    cr_assert(reports >= 1 && told > ROOM_DEEP_BACKLOG, "%d reports, the last %zu", reports, told);
    cr_assert(at_hub.len - off == 3 && memcmp(at_hub.data + off, "L\0\0", 3) == 0,
              "no leave for the hub after the reports");
    buf_free(&at_hub);
    rbuf_unref(f);
    free(text);
    child_close(&e);
}
