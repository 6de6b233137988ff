#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "app.h"

#define LISTEN_BACKLOG 4096

int net_listen(const struct config *cfg, const char *model)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "chat-%s: --listen %s: %s\n", model, cfg->listen_host, gai_strerror(rc));
        return -1;
    }
    /* Non-blocking: an accept loop must stop when the queue is empty. */
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        fprintf(stderr, "chat-%s: listen on %s:%u: %s\n", model, cfg->listen_host,
                cfg->listen_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    char host[INET6_ADDRSTRLEN];
    getsockname(fd, (struct sockaddr *)&a, &len);
    if (a.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        printf("listening on http://[%s]:%u\n", host, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        printf("listening on http://%s:%u\n", host, ntohs(s4->sin_port));
    }
    fflush(stdout);
    return fd;
}

int net_accept(int listener)
{
    static int spare = -1;
    if (spare < 0)
        spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if ((errno == EMFILE || errno == ENFILE) && spare >= 0) {
            /* Give the spare descriptor up for a moment to take the waiting
             * connection off the queue and close it: the client sees a
             * reset instead of waiting, and we do not spin on a listener
             * that stays readable. */
            close(spare);
            int victim = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            if (victim >= 0)
                close(victim);
            spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
            errno = EAGAIN;
        }
        return -1;
    }
}

void net_send_refusal(int fd, struct rbuf *response)
{
    if (response) {
        ssize_t n = send(fd, response->data, response->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)n; /* nothing more to do for a client we are turning away */
        rbuf_unref(response);
    }
    shutdown(fd, SHUT_WR);
}

ssize_t net_write_outq(int fd, struct outq *q)
{
    ssize_t total = 0;
    while (!outq_empty(q)) {
        struct iovec iov[64];
        int n = outq_iov(q, iov, 64);
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? total : -1;
        outq_consume(q, (size_t)w);
        total += w;
    }
    return total;
}

void net_linger_close(int fd, int ms)
{
    char sink[4096];
    shutdown(fd, SHUT_WR);
    /* What has already arrived is read at once even when we cannot wait. */
    while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
    /* One deadline for the whole linger: a client trickling bytes cannot
     * keep the socket (and this thread) forever. */
    struct pollfd p = {fd, POLLIN, 0};
    uint64_t end = app_now_ms() + (uint64_t)(ms > 0 ? ms : 0);
    for (uint64_t now; (now = app_now_ms()) < end && poll(&p, 1, (int)(end - now)) > 0;) {
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
    close(fd);
}

void net_conn_peer(struct conn *c, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        conn_set_peer(c, (struct sockaddr *)&ss);
}
