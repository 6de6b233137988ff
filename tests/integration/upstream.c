#include "upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* Waits for fd (events) or the stop pipe. False when stopping or on error. */
static bool wait_fd(struct upstream *u, int fd, short events)
{
    struct pollfd p[2] = {{fd, events, 0}, {u->stop_pipe[0], POLLIN, 0}};
    for (;;) {
        int r = poll(p, 2, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || p[1].revents)
            return false;
        return true;
    }
}

static bool write_all(struct upstream *u, int fd, const char *b, size_t n)
{
    while (n) {
        if (!wait_fd(u, fd, POLLOUT))
            return false;
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads the request head; copies the request target into target. */
static bool read_head(struct upstream *u, int fd, char *target, size_t tlen)
{
    char buf[8192];
    size_t len = 0;
    while (!memmem(buf, len, "\r\n\r\n", 4)) {
        if (len == sizeof buf || !wait_fd(u, fd, POLLIN))
            return false;
        ssize_t n = recv(fd, buf + len, sizeof buf - len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return false;
        len += (size_t)n;
    }
    const char *sp1 = memchr(buf, ' ', len);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - buf)) : NULL;
    if (!sp2 || (size_t)(sp2 - sp1 - 1) >= tlen)
        return false;
    memcpy(target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    target[sp2 - sp1 - 1] = '\0';
    return true;
}

static void serve(struct upstream *u, int fd)
{
    char target[4096];
    if (!read_head(u, fd, target, sizeof target)) {
        close(fd);
        return;
    }
    __atomic_add_fetch(&u->requests, 1, __ATOMIC_SEQ_CST);
    char head[256];
    switch (u->mode) {
    case UP_ECHO: {
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         strlen(target));
        if (write_all(u, fd, head, (size_t)n))
            write_all(u, fd, target, strlen(target));
        break;
    }
    case UP_NOT_FOUND: {
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         strlen(UPSTREAM_404_BODY));
        if (write_all(u, fd, head, (size_t)n))
            write_all(u, fd, UPSTREAM_404_BODY, strlen(UPSTREAM_404_BODY));
        break;
    }
    case UP_STATUS: {
        const char *word = strrchr(target, '=');
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 %.3s Whatever\r\nContent-Type: text/plain\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n",
                         word ? word + 1 : "200");
        write_all(u, fd, head, (size_t)n);
        break;
    }
    case UP_RAW:
        write_all(u, fd, u->raw, strlen(u->raw));
        break;
    case UP_HANG:
        if (u->nheld < 16) {
            u->held[u->nheld++] = fd;
            return;
        }
        break;
    case UP_RESET: {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        break;
    }
    case UP_HUGE:
    case UP_5MB: {
        unsigned len = u->mode == UP_HUGE ? UPSTREAM_HUGE_LEN : UPSTREAM_5MB_LEN;
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         "Content-Length: %u\r\nConnection: close\r\n\r\n",
                         len);
        char *body = malloc(len);
        memset(body, 'x', len);
        /* The server is expected to give up after 1 MiB: a failed write
         * here is the normal outcome. */
        if (write_all(u, fd, head, (size_t)n))
            write_all(u, fd, body, len);
        free(body);
        break;
    }
    }
    close(fd);
}

static void *upstream_main(void *arg)
{
    struct upstream *u = arg;
    for (;;) {
        if (!wait_fd(u, u->listen_fd, POLLIN))
            break;
        int fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        serve(u, fd);
    }
    return NULL;
}

static int listen_any(int *port, bool do_listen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t al = sizeof a;
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    *port = ntohs(a.sin_port);
    if (do_listen)
        cr_assert(listen(fd, 64) == 0);
    return fd;
}

/* raw is set before the thread starts, which reads it. */
static void start(struct upstream *u, enum upstream_mode mode, const char *raw)
{
    memset(u, 0, sizeof *u);
    u->mode = mode;
    u->raw = raw;
    u->listen_fd = listen_any(&u->port, true);
    cr_assert(pipe2(u->stop_pipe, O_CLOEXEC) == 0);
    cr_assert(pthread_create(&u->thread, NULL, upstream_main, u) == 0);
}

void upstream_start(struct upstream *u, enum upstream_mode mode) { start(u, mode, NULL); }

void upstream_start_raw(struct upstream *u, const char *response) { start(u, UP_RAW, response); }

void upstream_stop(struct upstream *u)
{
    cr_assert(write(u->stop_pipe[1], "x", 1) == 1);
    pthread_join(u->thread, NULL);
    for (int i = 0; i < u->nheld; i++)
        close(u->held[i]);
    close(u->listen_fd);
    close(u->stop_pipe[0]);
    close(u->stop_pipe[1]);
}

char *upstream_prefix(const struct upstream *u)
{
    return xasprintf("http://127.0.0.1:%d/lookup?q=", u->port);
}

void server_start_upstream(struct server *s, const struct upstream *u)
{
    char *prefix = upstream_prefix(u);
    server_start(s, ARGS("--upstream", prefix));
    free(prefix); /* the server has its own copy of its argv */
}

char *unreachable_prefix(void)
{
    /* A bound socket that never listens: connects to it are refused, and the
     * port cannot be taken by anyone else while the test runs. The socket is
     * deliberately kept open until the test process exits. */
    int port;
    listen_any(&port, false);
    return xasprintf("http://127.0.0.1:%d/lookup?q=", port);
}
