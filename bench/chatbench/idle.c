/* chatbench idle: the C10K experiment. Open CONNS keep-alive connections,
 * each asks `GET PATH` once, then stays quiet, asking again every
 * IDLE_REASK_S so that the server's 15 s idle rule (CONTRACT.md) never
 * closes it, for SECONDS; then every connection still open asks once more,
 * and those answered are the ones held. Reports
 *   completed    held at the end: answered the last request (verified)
 *   failed       CONNS - held, by reason: connect, refused (503), status,
 *                reset, closed (EOF), timeout (no answer in its phase)
 *   opened       connections whose first request was answered
 *   open_all_s   first connect until every connection had its first answer
 *                (-1: not all did before the open phase ended)
 *   seat_s       the open phase: until every one answered or failed, at
 *                most IDLE_OPEN_S(n); elapsed_s is the same, rate = opened/s
 *   latency      per connection, connect() to its first answer.
 *
 * Unlike `seat`, no connection joins anything: what is measured is what an
 * open, idle connection costs the server, not the chat room.
 *
 * Plain epoll, no libuv: one array of small structs, one static read buffer,
 * no allocation after the start. Bounded in count (the descriptor limit,
 * at most IDLE_MAX), in time (open phase + SECONDS + verification, each
 * bounded), and in place (127.0.0.0/8 only: this is a load generator for a
 * server on the same machine). With --sources N the connections come from
 * 127.0.0.2 .. 127.0.0.N+1 (the kernel picks the port per 4-tuple), so the
 * ~28 000 ephemeral ports of one address and its TIME_WAITs are no limit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatbench.h"

#define IDLE_MAX 19000u            /* 20 000 descriptors per process here */
#define IDLE_INFLIGHT 200u         /* TCP handshakes in progress at once */
#define IDLE_REASK_S 10.0          /* inside the contract's 15 s idle rule */
#define IDLE_HEAD 1024             /* bytes of a response head kept */
#define NS 1000000000ull

/* The phase bounds, also in bench/profiles.py:idle_bound. */
static double idle_open_s(unsigned n) { return 10.0 + n / 500.0; }
static double idle_verify_s(unsigned n) { return 5.0 + n / 2000.0; }

enum ic_state {
    IC_NEW,        /* not started */
    IC_CONNECTING, /* connect() in progress */
    IC_ASKING,     /* a request is out, its answer not complete */
    IC_QUIET,      /* answered; waiting for the next ask */
    IC_DEAD,       /* failed or closed */
};

struct ic {
    int fd;
    uint8_t state;
    bool answered_once;
    bool verified;        /* answered a request sent at or after the end */
    uint16_t head_len;
    uint64_t body_left;   /* body bytes of the current answer still to read */
    bool in_body;
    uint64_t t_start;     /* connect began */
    uint64_t t_asked;     /* current request sent */
    uint64_t t_next;      /* next ask due (IC_QUIET) */
    char head[IDLE_HEAD];
};

struct idle {
    const struct opts *o;
    struct result *r;
    struct ic *c;
    unsigned n, next, connecting, opened, dead;
    unsigned dead_unopened; /* failed before their first answer */
    int ep;
    struct sockaddr_in dst;
    char req[600];
    size_t req_len;
    uint64_t t0, t_open_end, t_end, t_verify_end;
    bool verifying;
};

static void kill_conn(struct idle *I, struct ic *c, const char *why)
{
    if (c->state == IC_DEAD)
        return;
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
    if (c->state == IC_CONNECTING)
        I->connecting--;
    c->state = IC_DEAD;
    I->dead++;
    if (!c->answered_once)
        I->dead_unopened++;
    result_fail(I->r, why);
}

static void ask(struct idle *I, struct ic *c, uint64_t now)
{
    ssize_t w = send(c->fd, I->req, I->req_len, MSG_NOSIGNAL);
    if (w != (ssize_t)I->req_len) {
        /* 60 bytes into an idle socket's empty send buffer: anything else
         * means the peer is gone. */
        kill_conn(I, c, w < 0 && errno == EPIPE ? "closed" : "reset");
        return;
    }
    c->state = IC_ASKING;
    c->t_asked = now;
    c->head_len = 0;
    c->in_body = false;
}

static void start_one(struct idle *I, struct ic *c, unsigned idx)
{
    c->t_start = now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = IC_CONNECTING;
        I->connecting++;
        kill_conn(I, c, "socket");
        return;
    }
    if (I->o->sources > 1) {
        int one = 1;
        (void)setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000000u | (2 + idx % I->o->sources));
        (void)bind(c->fd, (const struct sockaddr *)&src, sizeof src);
    }
    c->state = IC_CONNECTING;
    I->connecting++;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = idx};
    if (epoll_ctl(I->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        kill_conn(I, c, "epoll");
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&I->dst, sizeof I->dst) < 0 &&
        errno != EINPROGRESS)
        kill_conn(I, c, "connect");
}

static void connected(struct idle *I, struct ic *c, unsigned idx)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        kill_conn(I, c, "connect");
        return;
    }
    I->connecting--;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = idx};
    (void)epoll_ctl(I->ep, EPOLL_CTL_MOD, c->fd, &ev);
    ask(I, c, now_ns());
}

/* A complete answer: its status decides. */
static void answered(struct idle *I, struct ic *c, int status, uint64_t now)
{
    if (status != 200) {
        kill_conn(I, c, status == 503 ? "refused" : "status");
        return;
    }
    if (!c->answered_once) {
        c->answered_once = true;
        I->opened++;
        hist_record(&I->r->lat, (now - c->t_start) / 1000);
    }
    if (I->verifying && c->t_asked >= I->t_end)
        c->verified = true;
    c->state = IC_QUIET;
    c->t_next = now + (uint64_t)(IDLE_REASK_S * NS);
}

/* The head is complete in c->head: status and Content-Length. */
static int parse_head(struct ic *c, uint64_t *body)
{
    int status = 0;
    if (sscanf(c->head, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    *body = 0;
    for (const char *p = c->head; (p = strchr(p, '\n')) != NULL;) {
        p++;
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            *body = strtoull(p + 15, NULL, 10);
    }
    return status;
}

static void readable(struct idle *I, struct ic *c)
{
    static char buf[65536];
    for (;;) {
        ssize_t got = recv(c->fd, buf, sizeof buf, 0);
        if (got == 0) {
            kill_conn(I, c, "closed");
            return;
        }
        if (got < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            kill_conn(I, c, "reset");
            return;
        }
        if (c->state != IC_ASKING) { /* nothing was asked: a protocol error */
            kill_conn(I, c, "unasked");
            return;
        }
        const char *p = buf, *e = buf + got;
        while (p < e && c->state == IC_ASKING) {
            if (c->in_body) {
                uint64_t take = (uint64_t)(e - p) < c->body_left ? (uint64_t)(e - p)
                                                                 : c->body_left;
                p += take;
                c->body_left -= take;
                if (c->body_left == 0)
                    answered(I, c, 200, now_ns());
                continue;
            }
            /* Copy head bytes until the blank line. */
            while (p < e && c->head_len < IDLE_HEAD - 1) {
                c->head[c->head_len++] = *p++;
                if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0)
                    break;
            }
            c->head[c->head_len] = '\0';
            if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0) {
                uint64_t body;
                int status = parse_head(c, &body);
                if (status != 200) {
                    answered(I, c, status, now_ns());
                    return;
                }
                c->body_left = body;
                c->in_body = true;
                if (body == 0)
                    answered(I, c, 200, now_ns());
            } else if (c->head_len >= IDLE_HEAD - 1) {
                kill_conn(I, c, "status");
                return;
            }
        }
        if (c->state == IC_DEAD)
            return;
        if (p < e) { /* bytes after a whole answer, nothing asked */
            kill_conn(I, c, "unasked");
            return;
        }
    }
}

/* Due asks and timeouts, once per wakeup: a scan of n small structs.
 * A connection is re-asked from its first answer on, during the open phase
 * as well as the hold: an open phase longer than the server's 15 s idle
 * rule (chat-forked's at 10 000 once took 31 s) must not close the first
 * connections for silence, which would be our doing, not the server's. */
static void tick(struct idle *I, uint64_t now)
{
    bool asking = !I->verifying && (!I->t_end || now < I->t_end);
    for (unsigned i = 0; i < I->next; i++) {
        struct ic *c = &I->c[i];
        if (c->state == IC_CONNECTING && now > c->t_start + 10 * NS)
            kill_conn(I, c, "timeout");
        else if (c->state == IC_QUIET && asking && now >= c->t_next)
            ask(I, c, now);
        else if (c->state == IC_QUIET && I->verifying && !c->verified)
            ask(I, c, now);
    }
}

int run_idle(const struct opts *o, struct result *r)
{
    struct in_addr a;
    if (inet_pton(AF_INET, o->target.host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "chatbench idle: only 127.0.0.0/8 targets\n");
        return -1;
    }
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) < 0)
        nofile.rlim_cur = 1024;
    if (o->conc > IDLE_MAX || (uint64_t)o->conc + 32 > (uint64_t)nofile.rlim_cur) {
        fprintf(stderr, "chatbench idle: %u connections: the limit is %u and the descriptor "
                "limit %llu less 32\n", o->conc, IDLE_MAX, (unsigned long long)nofile.rlim_cur);
        return -1;
    }
    struct idle I = {.o = o, .r = r, .n = o->conc};
    I.c = calloc(I.n, sizeof *I.c);
    I.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!I.c || I.ep < 0) {
        free(I.c);
        if (I.ep >= 0)
            close(I.ep);
        return -1;
    }
    for (unsigned i = 0; i < I.n; i++)
        I.c[i].fd = -1;
    I.dst.sin_family = AF_INET;
    I.dst.sin_port = htons(o->target.port);
    I.dst.sin_addr = a;
    I.req_len = (size_t)snprintf(I.req, sizeof I.req, "GET %s HTTP/1.1\r\nHost: %s:%u\r\n\r\n",
                                 o->target.path, o->target.host, o->target.port);
    r->expected = I.n;

    I.t0 = now_ns();
    I.t_open_end = I.t0 + (uint64_t)(idle_open_s(I.n) * NS);
    uint64_t t_all = 0;
    struct epoll_event ev[256];
    for (;;) {
        uint64_t now = now_ns();
        /* Start connects, a bounded number in flight (the listen backlog
         * and the SYN queue are not what is measured). */
        while (I.next < I.n && I.connecting < IDLE_INFLIGHT && now < I.t_open_end) {
            start_one(&I, &I.c[I.next], I.next);
            I.next++;
        }
        if (!t_all && I.opened == I.n)
            t_all = now;
        /* Every connection answered once or failed before its answer (one
         * that was answered and then closed counts once, as opened). */
        bool open_done = I.opened + I.dead_unopened >= I.n || now >= I.t_open_end;
        if (open_done && !I.t_end) {
            /* The hold starts when the open phase ends, by itself or at its bound. */
            I.t_open_end = now;
            r->seat_s = (double)(now - I.t0) / 1e9;
            I.t_end = now + (uint64_t)(o->seconds * NS);
            fprintf(stderr, "chatbench idle: %u of %u answered after %.3f s; holding %.1f s\n",
                    I.opened, I.n, r->seat_s, o->seconds);
        }
        if (I.t_end && now >= I.t_end && !I.verifying) {
            I.verifying = true;
            I.t_verify_end = now + (uint64_t)(idle_verify_s(I.n) * NS);
        }
        if (I.verifying) {
            unsigned pending = 0;
            for (unsigned i = 0; i < I.next; i++)
                pending += I.c[i].state != IC_DEAD && !I.c[i].verified;
            if (pending == 0 || now >= I.t_verify_end)
                break;
        }
        tick(&I, now);
        int k = epoll_wait(I.ep, ev, 256, 50);
        for (int i = 0; i < k; i++) {
            unsigned idx = ev[i].data.u32;
            struct ic *c = &I.c[idx];
            if (c->state == IC_CONNECTING) {
                if (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    connected(&I, c, idx);
                continue;
            }
            if (c->state != IC_DEAD)
                readable(&I, c);
        }
    }

    /* Held: answered a request sent after the hold. The rest failed, by why. */
    uint64_t held = 0, unanswered = 0, never = I.n - I.next;
    for (unsigned i = 0; i < I.next; i++) {
        struct ic *c = &I.c[i];
        if (c->state != IC_DEAD && c->verified)
            held++;
        else if (c->state != IC_DEAD)
            unanswered++;
        if (c->fd >= 0)
            close(c->fd);
    }
    if (unanswered)
        result_fail_n(r, "timeout", unanswered);
    if (never)
        result_fail_n(r, "not started", never);
    r->completed = held;
    r->opened = I.opened;
    r->open_all_s = t_all ? (double)(t_all - I.t0) / 1e9 : -1;
    r->is_idle = true;
    r->elapsed_s = r->seat_s;
    fprintf(stderr, "chatbench idle: %u answered at first, %llu held at the end, of %u\n",
            I.opened, (unsigned long long)held, I.n);
    close(I.ep);
    free(I.c);
    return held > 0 ? 0 : -1;
}
