/* The test socket: a raw TCP connection from a test to the server, with
 * the bytes received and not yet consumed. It knows nothing of HTTP
 * (harness_http.c reads responses from it) and exists for what libcurl
 * cannot do: half a request, a flood, a slow reader, a peer that resets. */
#include "harness_tsock.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const char *rd_name(enum rd r)
{
    switch (r) {
    case RD_OK: return "a response";
    case RD_EOF: return "EOF";
    case RD_RESET: return "a reset";
    case RD_TIMEOUT: return "nothing (safety cap reached)";
    case RD_BAD: return "a malformed or truncated response";
    }
    return "?";
}

int tcp_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r;
    do
        r = connect(fd, (struct sockaddr *)&a, sizeof a);
    while (r < 0 && errno == EINTR);
    cr_assert(r == 0, "connect to port %d: %s", port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void tsock_open(struct tsock *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = tcp_connect(port, 0);
}

void tsock_close(struct tsock *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

bool tsock_send(struct tsock *c, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

bool tsock_sends(struct tsock *c, const char *s)
{
    return tsock_send(c, s, strlen(s));
}

/* Reads more bytes into c->buf. RD_OK when some came. */
enum rd tsock_fill(struct tsock *c, int64_t deadline)
{
    if (c->eof)
        return RD_EOF;
    if (c->reset)
        return RD_RESET;
    for (;;) {
        struct pollfd p = {c->fd, POLLIN, 0};
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return RD_TIMEOUT;
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap + 1);
            cr_assert(c->buf != NULL);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            c->eof = true;
            return RD_EOF;
        }
        if (n < 0) {
            c->reset = true;
            return RD_RESET;
        }
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        return RD_OK;
    }
}

void tsock_consume(struct tsock *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

enum rd tsock_wait_eof(struct tsock *c, int cap_ms, size_t *extra)
{
    int64_t deadline = now_ms() + cap_ms;
    enum rd f;
    while ((f = tsock_fill(c, deadline)) == RD_OK)
        ;
    if (extra)
        *extra = c->len;
    return f;
}
