/* The spawner: a small process whose only job is to fork the connection
 * processes, so that the parent never forks once it has grown.
 *
 * Why. fork() copies the calling process's descriptor table and its page
 * tables, and the child then closes what it inherited: both are O(what the
 * caller holds). The parent holds one hub link per live child, so a fork
 * from the parent costs more with every connection open — measured here
 * (lab-anchors fork-live, docs/c10k.md) from 0.2 ms with no children to
 * several ms with 10 000 links, and opening 10 000 connections slowed down
 * as it went. The spawner is forked at start, before the parent has a
 * listener, an epoll set or a single link: what it copies per fork stays the
 * size of a fresh process whatever the load.
 *
 * How. The parent sends the accepted client socket over a SOCK_SEQPACKET
 * socketpair (SCM_RIGHTS: the descriptor itself crosses processes). The
 * spawner makes the hub link (a socketpair) and forks twice:
 *
 *   spawner ── fork ──> go-between ── fork ──> connection process
 *                       sends {pid, link} to the parent, exits
 *
 * The go-between exits at once, so the connection process is orphaned and
 * the kernel hands it to the nearest "child subreaper" above it: the parent
 * (PR_SET_CHILD_SUBREAPER, set in main.c). So every connection process is,
 * as before, the parent's own child: it gets SIGCHLD, reaps it with
 * waitpid(), sees its exit status, counts its CPU, signals it at shutdown.
 * The go-between also sends the parent its end of the hub link and the pid,
 * over the same socket (one message each: SEQPACKET keeps them whole).
 *
 * The parent keeps at most SPAWN_IN_FLIGHT requests outstanding, so neither
 * side's socket buffer can fill and neither can block the other.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forked.h"

struct spawn_reply {
    pid_t pid; /* the connection process, or -1 */
    int err;   /* errno when pid is -1 */
};

/* One message, with at most one descriptor riding along (fd < 0: none). */
static ssize_t send_with_fd(int sock, const void *p, size_t n, int fd)
{
    struct iovec iov = {(void *)p, n};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    if (fd >= 0) {
        memset(&u, 0, sizeof u);
        m.msg_control = u.buf;
        m.msg_controllen = sizeof u.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    ssize_t w;
    do
        w = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    return w;
}

/* One message of exactly n bytes, and the descriptor it carried (or -1).
 * Anything else — a short or long message, a descriptor where none was
 * expected, two descriptors — is refused: descriptors that came with it are
 * closed, not leaked. Returns 1, 0 on end of file, -1 on error (errno). */
static int recv_with_fd(int sock, void *p, size_t n, int *fd, int flags)
{
    struct iovec iov = {p, n};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
    *fd = -1;
    ssize_t r;
    do
        r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | flags);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return (int)r;
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
                int d;
                memcpy(&d, CMSG_DATA(c) + k * sizeof(int), sizeof d);
                if (got++ == 0)
                    *fd = d;
                else
                    close(d);
            }
    if ((size_t)r != n || got > 1 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        /* Whole, but the descriptor was dropped for want of a slot: the
         * caller may still act on the bytes. */
        errno = (size_t)r == n && got == 0 && (m.msg_flags & MSG_CTRUNC) ? EMSGSIZE : EPROTO;
        return -1;
    }
    return 1;
}

static char server_name[16]; /* the comm the connection processes keep */

/* In the go-between: the connection process, then tell the parent. */
static void go_between(int ctl, int client, int pair[2]) __attribute__((noreturn));
static void go_between(int ctl, int client, int pair[2])
{
    prctl(PR_SET_NAME, server_name);
    pid_t pid = fork();
    if (pid == 0) {
        close(ctl);
        close(pair[0]);
        child_main(client, pair[1]); /* never returns */
    }
    struct spawn_reply r = {pid, pid < 0 ? errno : 0};
    if (send_with_fd(ctl, &r, sizeof r, pid < 0 ? -1 : pair[0]) < 0 && pid > 0)
        kill(pid, SIGKILL); /* the parent will never know of it: it must not live */
    _exit(0);
}

static void spawner_main(int ctl) __attribute__((noreturn));
static void spawner_main(int ctl)
{
    /* The parent gone (killed, crashed) means nobody to spawn for. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != shared->server)
        _exit(1); /* it is gone already: PDEATHSIG came too late to tell us */
    prctl(PR_GET_NAME, server_name);
    prctl(PR_SET_NAME, "forked-spawner"); /* what `ps` and the tests see */
    for (;;) {
        int client;
        char ask;
        int got = recv_with_fd(ctl, &ask, 1, &client, 0);
        if (got == 0)
            _exit(0); /* the parent closed its end: shutdown */
        if (got < 0 && errno != EPROTO && errno != EMSGSIZE)
            _exit(1);
        if (got < 0 || client < 0) {
            /* No client came with it: still one request, so one answer. */
            struct spawn_reply r = {-1, got < 0 && errno == EMSGSIZE ? EMFILE : EPROTO};
            send_with_fd(ctl, &r, sizeof r, -1);
            continue;
        }
        int pair[2];
        pid_t mid = -1;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) {
            mid = fork();
            if (mid == 0)
                go_between(ctl, client, pair);
            int err = errno;
            close(pair[0]);
            close(pair[1]);
            errno = err;
        }
        if (mid < 0) {
            struct spawn_reply r = {-1, errno};
            send_with_fd(ctl, &r, sizeof r, -1);
        }
        close(client);
        /* The go-between exits as soon as it has forked and written: its
         * child is then the parent's, and nothing of it is ours to wait for. */
        while (mid > 0 && waitpid(mid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
}

pid_t spawner_start(int *ctl)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return -1;
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid == 0) {
        close(pair[0]);
        spawner_main(pair[1]);
    }
    close(pair[1]);
    if (pid < 0) {
        close(pair[0]);
        return -1;
    }
    *ctl = pair[0];
    return pid;
}

int spawner_request(int ctl, int client)
{
    char ask = 'S';
    return send_with_fd(ctl, &ask, 1, client) == 1 ? 0 : -1;
}

int spawner_reply(int ctl, pid_t *pid, int *link)
{
    struct spawn_reply r;
    int got = recv_with_fd(ctl, &r, sizeof r, link, MSG_DONTWAIT);
    if (got < 0 && errno == EMSGSIZE) {
        /* The answer came whole but its link could not be installed here
         * (out of descriptors: MSG_CTRUNC). The child has no hub and
         * nobody to tell: it is ended, its client sees the close. */
        if (r.pid > 0)
            kill(r.pid, SIGKILL);
        *pid = -1;
        errno = EMFILE;
        return 2;
    }
    if (got <= 0)
        return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    /* From our own go-between, but checked like any peer's bytes: a pid
     * without a link, or a link without a pid, is not a connection. */
    if (r.pid > 0 && *link >= 0) {
        *pid = r.pid;
        return 1;
    }
    if (*link >= 0)
        close(*link);
    *link = -1;
    *pid = -1;
    errno = r.pid < 0 && r.err > 0 ? r.err : EPROTO;
    return 2; /* a failed spawn: the connection is gone, the count must drop */
}
