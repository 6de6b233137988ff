/* A chat-forked child: one process for one client connection.
 *
 * It serves its client the way a chat-threaded worker does — blocking
 * calls, one connection, until it closes — and then exits. Its chat goes
 * through the hub in the parent (hub.c): join, post and leave are small
 * messages on its socketpair, and what comes back is WebSocket frames that
 * it forwards to its client.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blocking.h"
#include "forked.h"
#include "gil.h"
#include "net.h"

#define CLIENT_FD 3
#define HUB_FD 4
#define HUB_READ_BELOW (64 * 1024) /* read the hub only while our queue is short */
#define LINGER_MS 2000

/* --- chat through the hub ------------------------------------------------ */

static bool joined;

static void hub_send(int type, const char *payload, size_t len)
{
    unsigned char head[3] = {(unsigned char)type, (unsigned char)(len >> 8), (unsigned char)len};
    struct iovec iov[2] = {{head, 3}, {(void *)payload, len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    /* Blocking is fine here: the hub always reads, and if it is gone the
     * send fails and the child soon follows. */
    gil_release();
    ssize_t n = sendmsg(HUB_FD, &msg, MSG_NOSIGNAL);
    gil_acquire();
    (void)n;
}

static int proxy_join(void *ctx, struct room_member *m, const char *user)
{
    (void)ctx, (void)m;
    joined = true;
    hub_send(HUB_JOIN, user, strlen(user));
    return 0;
}

static void proxy_post(void *ctx, struct room_member *m, const char *text, size_t len)
{
    (void)ctx, (void)m;
    hub_send(HUB_POST, text, len);
}

static void proxy_leave(void *ctx, struct room_member *m)
{
    (void)ctx, (void)m;
    if (joined)
        hub_send(HUB_LEAVE, "", 0);
    joined = false;
}

static const struct chat_ops hub_proxy = {proxy_join, proxy_post, proxy_leave};

/* Frames from the hub: queue each complete one for the client. A close frame
 * is the hub cutting us off (our client is too slow): drop what waits and
 * send close 1008 ourselves. */
static void take_from_hub(struct conn *c, struct buf *in)
{
    char buf[64 * 1024];
    ssize_t n = recv(HUB_FD, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c->close = CLOSE_NOW; /* the hub is gone: the server is */
        return;
    }
    if (n < 0 || buf_append(in, buf, (size_t)n, 4 << 20) < 0)
        return;
    size_t off = 0;
    while (in->len - off >= 2) {
        const unsigned char *p = (const unsigned char *)in->data + off;
        size_t hl = 2, len = p[1] & 0x7f;
        if (len == 126) {
            hl = 4;
            if (in->len - off < hl)
                break;
            len = (size_t)p[2] << 8 | p[3];
        } else if (len == 127) {
            hl = 10;
            if (in->len - off < hl)
                break;
            len = 0;
            for (int i = 2; i < 10; i++)
                len = len << 8 | p[i];
        }
        if (in->len - off < hl + len)
            break;
        if ((p[0] & 0x0f) == WS_OP_CLOSE) {
            joined = false; /* the hub already took us out of the room */
            conn_ws_cut_off(c);
        } else if (c->ws && c->ws->phase == WS_OPEN) {
            struct rbuf *r = rbuf_from(p, hl + len);
            if (!r || outq_push(&c->out, r) < 0)
                c->close = CLOSE_NOW;
        }
        off += hl + len;
    }
    buf_consume(in, off);
    if (in->len == 0)
        buf_free(in);
}

/* --- the child's life ----------------------------------------------------- */

static void on_sigterm(int sig)
{
    (void)sig;
    atomic_store(&blocking_stopping, true);
}

void child_main(int fd, int hub_fd)
{
    /* Keep the client and the hub, close everything else we inherited: the
     * listener, the parent's epoll and signalfd, other children's hub ends. */
    if (dup2(fd, CLIENT_FD) < 0 || dup2(hub_fd, HUB_FD) < 0)
        _exit(1);
    close_range(HUB_FD + 1, ~0U, 0);

    /* SIGTERM from the parent means "shut down": it is also our wake-up, let
     * through only inside ppoll so it cannot be lost. SIGINT (Ctrl-C in a
     * terminal reaches the whole group) is the parent's to act on. */
    signal(SIGINT, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    struct sigaction sa = {.sa_handler = on_sigterm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    blocking_wake_mask = (sigset_t){0};
    sigemptyset(&blocking_wake_mask);

    app.chat = &hub_proxy;
    app.chat_ctx = NULL;
    struct conn c;
    struct buf hub_in = {0};
    bool shutdown_seen = false;
    gil_acquire();
    conn_init(&c, &app);
    net_conn_peer(&c, CLIENT_FD);
    for (;;) {
        if (!shutdown_seen && atomic_load(&blocking_stopping)) {
            shutdown_seen = true;
            atomic_store(&blocking_deadline_ms, app_now_ms() + 4000);
            /* What the hub sent before the parent signalled us — a leave,
             * say — goes out before our close 1001, never after it. */
            struct pollfd hub = {HUB_FD, POLLIN, 0};
            for (int i = 0; joined && i < 64 && poll(&hub, 1, 0) == 1; i++)
                take_from_hub(&c, &hub_in);
            conn_shutdown(&c);
        }
        blocking_flush(CLIENT_FD, &c);
        if (c.close == CLOSE_NOW)
            break;
        struct action *a = conn_action_to_start(&c);
        if (a) {
            blocking_run_action(&c, a);
            continue;
        }
        if (c.close == CLOSE_FLUSHED && outq_empty(&c.out))
            break;

        struct pollfd p[2] = {
            {CLIENT_FD, (short)((conn_want_read(&c) ? POLLIN : 0) | (outq_empty(&c.out) ? 0 : POLLOUT)), 0},
            {HUB_FD, (short)(joined && c.out.bytes < HUB_READ_BELOW ? POLLIN : 0), 0},
        };
        uint64_t deadline = conn_deadline(&c), now = app_now_ms();
        uint64_t left = deadline ? (deadline > now ? deadline - now : 0) : 0;
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000};
        gil_release();
        int n = ppoll(p, 2, deadline ? &ts : NULL, &blocking_wake_mask);
        gil_acquire();
        if (n > 0 && (p[0].revents & POLLIN))
            blocking_read(CLIENT_FD, &c);
        else if (n > 0 && (p[0].revents & (POLLERR | POLLHUP)))
            c.close = CLOSE_NOW;
        if (n > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            take_from_hub(&c, &hub_in);
        if (deadline && app_now_ms() >= deadline)
            conn_on_timeout(&c);
    }
    bool linger = c.close == CLOSE_FLUSHED && !c.peer_eof;
    conn_free(&c); /* sends our leave to the hub */
    gil_release();
    buf_free(&hub_in);
    if (linger)
        net_linger_close(CLIENT_FD, shutdown_seen ? 200 : LINGER_MS);
    else
        close(CLIENT_FD);
    close(HUB_FD);
    users_free(app.users);
    app.users = NULL;
    exit(0);
}
