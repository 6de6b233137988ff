/* A chat-forked child: one process for one client connection.
 *
 * It serves its client the way a chat-threaded worker does — blocking
 * calls, one connection, until it closes — and then exits. Its chat goes
 * through the hub in the parent (hub.c): join, post and leave are small
 * messages on its socketpair (uplink.c), and what comes back is WebSocket
 * frames that it forwards to its client.
 *
 * The loop is a worker's, models/blocking/blocking.c:blocking_serve; the
 * hooks below add the hub: its link is a second descriptor to wait on, and
 * the client is read only once the hub has answered for what it sent.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "timing.h"

#define CLIENT_FD 3
#define HUB_FD 4

/* --- chat through the hub ------------------------------------------------ */

static struct uplink up = {.fd = HUB_FD};

static int proxy_join(void *ctx, struct room_member *m, const char *user)
{
    (void)ctx, (void)m;
    if (up.fd < 0)
        return -1; /* no hub to join: the client gets close 1011 */
    up.joined = true;
    uplink_send(&up, HUB_JOIN, user, strlen(user));
    return 0;
}

/* Never holds: the hub does, by answering HUB_SYNC only once the room
 * takes this child's messages again (the child reads its client only when
 * synced). */
static bool proxy_post(void *ctx, struct room_member *m, const char *text, size_t len)
{
    (void)ctx, (void)m;
    if (up.joined)
        uplink_send(&up, HUB_POST, text, len);
    return true;
}

static void proxy_leave(void *ctx, struct room_member *m)
{
    (void)ctx, (void)m;
    if (up.joined)
        uplink_send(&up, HUB_LEAVE, "", 0);
    up.joined = false;
}

static void proxy_backlog(void *ctx, struct room_member *m, size_t bytes)
{
    (void)ctx, (void)m;
    if (up.joined)
        uplink_depth(&up, bytes);
}

static const struct chat_ops hub_proxy = {proxy_join, proxy_post, proxy_leave, proxy_backlog};

/* --- the child's part of the blocking loop (blocking_serve) ------------- */

static bool shutdown_seen;

static void hub_shutdown(void *ctx, struct conn *c)
{
    (void)ctx;
    shutdown_seen = true;
    atomic_store(&blocking_deadline_ms, app_now_ms() + SHUTDOWN_CHILD_GRACE_MS);
    /* What the hub sent before the parent signalled us — a leave, say —
     * goes out before our close 1001, never after it. */
    struct pollfd hub = {up.fd, POLLIN, 0};
    for (int i = 0; up.joined && i < 64 && poll(&hub, 1, 0) == 1; i++)
        uplink_take(&up, c);
}

static void hub_before_flush(void *ctx, struct conn *c)
{
    (void)ctx;
    uplink_sync(&up);
    if (up.failed)
        conn_ws_close(c, 1011); /* no chat without the hub; the hub said our leave */
}

static void hub_after_flush(void *ctx, struct conn *c, size_t before)
{
    (void)ctx;
    if (c->out.bytes < before && up.joined)
        uplink_depth(&up, c->out.bytes); /* the client took some */
}

/* A client's close is answered only once the hub has answered for the
 * leave it caused (HUB_SYNC): then "the server answered my close" means the
 * room has told everyone that I left, as in the one-process models, where
 * the leave is announced before the answer is even queued. A stop asked
 * after that answer cannot lose the leave; the hub announces none once a
 * stop is asked (stop_signal.h). During our own shutdown there is nothing
 * to wait for: the room is closing. */
static bool hub_may_write(void *ctx, const struct conn *c)
{
    (void)ctx;
    if (!c->ws || !c->ws->close_heard || shutdown_seen)
        return true;
    return uplink_settled(&up);
}

/* The client is read only once the hub has answered for what it sent
 * before (see uplink.c); the hub is always read. */
static bool hub_settled(void *ctx)
{
    (void)ctx;
    return uplink_settled(&up);
}

static bool hub_link_fd(void *ctx, struct pollfd *p)
{
    (void)ctx;
    *p = (struct pollfd){up.fd, (short)(POLLIN | (up.out.len ? POLLOUT : 0)), 0};
    return true; /* once the link is closed, up.fd is -1: ppoll skips it */
}

static void hub_ready(void *ctx, struct conn *c, short revents)
{
    (void)ctx;
    if (revents & POLLOUT)
        uplink_flush(&up);
    if (up.fd >= 0 && (revents & (POLLIN | POLLHUP | POLLERR)))
        uplink_take(&up, c);
}

static const struct blocking_hooks child_hooks = {
    .shutdown = hub_shutdown,
    .before_flush = hub_before_flush,
    .after_flush = hub_after_flush,
    .may_read = hub_settled,
    .may_write = hub_may_write,
    .extra_fd = hub_link_fd,
    .extra_ready = hub_ready,
};

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
    if (hub_fd == CLIENT_FD) /* the first dup2 would close it: move it out of the way */
        hub_fd = fcntl(hub_fd, F_DUPFD_CLOEXEC, HUB_FD + 1);
    if (hub_fd < 0 || dup2(fd, CLIENT_FD) < 0 || dup2(hub_fd, HUB_FD) < 0)
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
    gil_acquire();
    conn_init(&c, &app);
    net_conn_peer(&c, CLIENT_FD);
    blocking_serve(CLIENT_FD, &c, &child_hooks, NULL);
    bool linger = c.close == CLOSE_FLUSHED && !conn_peer_done(&c);
    conn_free(&c); /* queues our leave for the hub */
    gil_release();
    /* Everything for the hub goes before the client's socket is closed or
     * lingers: once the link is closed the hub drops what it would send
     * here, so a long flood still in the pipe cannot make us look slow. */
    uplink_close(&up, UPLINK_CLOSE_MS);
    if (linger)
        net_linger_close(CLIENT_FD, shutdown_seen ? SHUTDOWN_LINGER_MS : CLOSE_LINGER_MS);
    else
        close(CLIENT_FD);
#if defined(__SANITIZE_ADDRESS__)
    /* LeakSanitizer checks each child as it exits: free what we own. */
    users_free(app.users);
    app.users = NULL;
    exit(0);
#else
    /* The end of the process frees everything at once. Freeing first — the
     * users, then OpenSSL's and the loader's exit handlers — writes to pages
     * this process still shares copy-on-write with the spawner, so each
     * write copies a page only to free what is on it: with 10 000 children
     * told to stop at once, that was most of a shutdown's time (perf:
     * do_wp_page under _int_free, OPENSSL_LH_flush, _dl_fini). */
    _exit(0);
#endif
}
