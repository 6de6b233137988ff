/* chatbench http: ab-style HTTP/1.1 load on one libuv loop.
 *
 * What a run does, precisely:
 *
 * - Closed loop (no -r): CONC slots, each with at most one request in flight;
 *   a slot sends its next request as soon as the previous response is
 *   complete (or failed). Latency runs from the send, or from the connect
 *   when the request needs a new connection.
 * - Open loop (-r RATE): request i falls due at t0 + i/RATE (http_sched.h).
 *   A due request goes to an idle slot; if none is idle it waits in a FIFO
 *   of due times (at most HTTP_BACKLOG_MAX; beyond that a newly due request
 *   is counted failed 'backlog'). Latency runs from the due time, whatever
 *   the request waited for (no coordinated omission). A timerfd wakes the
 *   loop at each due time to the ns: a 1 ms uv_timer tick would add a mean
 *   0.5 ms to every latency, more than /hello costs on loopback.
 * - -n N: at most N requests are issued. -t T: no request is issued (closed
 *   loop) or falls due (open loop) at or after t0 + T. Requests in flight
 *   when issuing stops are let finish and are counted, with their latency.
 * - The run ends by itself once nothing is in flight or waiting and nothing
 *   more will be issued. Hard caps, so it always ends: with -t, at
 *   t0 + T + 10 s; with -n alone, once 10 s pass with requests outstanding
 *   and none finishing. Then everything in flight or waiting counts failed
 *   'timeout', and with -n alone so do the requests never issued, so that
 *   completed + failed == N.
 * - -k: the connections are opened before the clock starts (for at most
 *   10 s) and reused. One the server closes (Connection: close, its idle
 *   timeout, an error) is reopened for the slot's next request, whose
 *   latency then includes the connect. Without -k every request opens a new
 *   connection and says Connection: close; its latency includes the
 *   connect, as ab's does.
 * - elapsed: from t0 (the first send, or the first connect without -k) to
 *   the last request that finished, failed ones included. rate divides by
 *   it. With -t, rate_in_t counts only the responses received by t0 + T,
 *   over the time from t0 to the last of them: the throughput of the window,
 *   whatever the drain after it took (a server that queues connections
 *   behind a full pool is judged by what it answered in the window, not by
 *   how long its queue took to fail), and without the edge a window that is
 *   not a multiple of the latency would add (1000 clients of /sleep?ms=100
 *   finish 5 rounds by 0.6 s: 5000 in 0.5 s, not in 0.6).
 * - failed, by reason: connect (the connect failed), reset (a read or write
 *   error), eof (closed before the response was complete), parse (not
 *   HTTP), status (>= 400), timeout, backlog.
 *
 * Cost: the request bytes are built once, all connections read into one
 * static buffer (one thread: a read is parsed before the next one), no
 * allocation per request, uv_try_write first (one write syscall per
 * request, no epoll_ctl), and latency goes into the fixed histogram.
 */
#include <http_parser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <uv.h>

#include "chatbench.h"
#include "http_sched.h"

#define SEC_NS 1000000000ull
#define GRACE_NS (10 * SEC_NS)      /* -t cap beyond T; -n stall limit; pre-connect limit */
#define HTTP_BACKLOG_MAX (1u << 20) /* due requests waiting for a slot (8 MiB of due times) */
#define WATCH_MS 100                /* how often the caps are checked */

enum cstate { C_DOWN, C_CONNECTING, C_OPEN, C_CLOSING };

/* A slot: one connection at a time (uv handles are reused after close). */
struct hconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    http_parser parser;
    uint64_t t_start; /* when the clock of the request in flight started */
    enum cstate state;
    bool has_req;     /* a request is assigned: sent, or waiting for the connection */
    bool parked;      /* waiting for work (open loop: in the idle FIFO) */
    bool writing;     /* wreq is in use */
    bool done, keep;  /* response complete, and the connection may be reused */
};

static struct {
    uv_loop_t loop;
    const struct opts *o;
    struct result *r;
    struct sockaddr_in addr;
    char req[1024];
    size_t req_len;
    struct hconn *conns;
    enum { P_PRE, P_RUN, P_DONE } phase;
    uint64_t t0, deadline, cap, pre_start, last_done, last_progress;
    uint64_t issued;   /* closed loop: requests started */
    uint64_t inflight; /* slots with a request */
    unsigned pre_pending;
    uv_timer_t watch;
    /* open loop */
    uint64_t limit, gen; /* requests in the schedule; those fallen due so far */
    uint64_t *backlog;   /* FIFO of due times */
    uint32_t bq_head, bq_len;
    struct hconn **idle; /* FIFO of parked slots: every connection stays warm */
    unsigned id_head, id_len;
    int tfd;
    uv_poll_t tpoll;
    uint64_t armed;
} B;

static char rbuf[64 * 1024];

static void slot_ready(struct hconn *c);
static void open_conn(struct hconn *c);

/* Count n failures at once (result_fail counts one). */
static void fail_many(const char *why, uint64_t n)
{
    if (n == 0)
        return;
    result_fail(B.r, why);
    B.r->failed += n - 1;
    for (unsigned i = 0; i < B.r->nwhy; i++)
        if (strcmp(B.r->why[i].reason, why) == 0)
            B.r->why[i].count += n - 1;
}

/* Outstanding work goes from none to some: the stall clock starts here, not
 * at the last response of a quiet period (open loop at a low rate). */
static void outstanding_up(void)
{
    if (B.inflight + B.bq_len == 0)
        B.last_progress = now_ns();
}

static void finish_request(struct hconn *c, const char *why)
{
    uint64_t t = now_ns();
    c->has_req = false;
    B.inflight--;
    if (why) {
        result_fail(B.r, why);
    } else {
        B.r->completed++;
        if (B.deadline && t <= B.deadline) {
            B.r->completed_in_t++;
            B.r->window_s = (double)(t - B.t0) / 1e9;
        }
        hist_record(&B.r->lat, (t - c->t_start + 500) / 1000);
    }
    B.last_done = B.last_progress = t;
}

static void on_close(uv_handle_t *h)
{
    struct hconn *c = h->data;
    c->state = C_DOWN;
    c->writing = false;
    if (B.phase == P_DONE)
        return;
    if (c->has_req) /* assigned while closing (open loop) */
        open_conn(c);
    else if (!c->parked)
        slot_ready(c);
}

static void close_conn(struct hconn *c)
{
    if (c->state != C_CONNECTING && c->state != C_OPEN)
        return;
    c->state = C_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* The connection is done for; its request, if any, failed for `why`.
 * The slot comes back through on_close, never recursively from here: a
 * connect that fails at once, again and again, cannot grow the stack. */
static void fail_conn(struct hconn *c, const char *why)
{
    if (c->has_req)
        finish_request(c, why);
    close_conn(c);
}

static void on_write(uv_write_t *w, int status)
{
    struct hconn *c = w->handle->data;
    c->writing = false;
    if (status < 0 && B.phase != P_DONE)
        fail_conn(c, "reset");
}

static void send_request(struct hconn *c)
{
    uv_buf_t b = uv_buf_init(B.req, (unsigned)B.req_len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)B.req_len)
        return;
    /* A request still being written means the previous exchange did not
     * follow HTTP (an answer before the whole request): don't follow it. */
    if ((n < 0 && n != UV_EAGAIN) || c->writing) {
        fail_conn(c, "reset");
        return;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
    }
    c->writing = true;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        c->writing = false;
        fail_conn(c, "reset");
    }
}

static int on_message_complete(http_parser *p)
{
    struct hconn *c = p->data;
    c->done = true;
    c->keep = http_should_keep_alive(p);
    /* Stop right after this response: bytes beyond it answer nothing we
     * sent, and the caller must see them. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {.on_message_complete = on_message_complete};

static void response_done(struct hconn *c, bool must_close)
{
    bool keep = B.o->keepalive && c->keep && !must_close;
    finish_request(c, c->parser.status_code >= 400 ? "status" : NULL);
    if (!keep) {
        close_conn(c); /* the slot goes on from on_close */
        return;
    }
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->done = false;
    slot_ready(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct hconn *c = s->data;
    if (n > 0) {
        if (!c->has_req) { /* unasked-for bytes on an idle connection */
            close_conn(c);
            return;
        }
        size_t used = http_parser_execute(&c->parser, &parser_settings, buf->base, (size_t)n);
        if (c->done)
            response_done(c, used < (size_t)n);
        else if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
            fail_conn(c, "parse");
        return;
    }
    if (n == 0)
        return;
    if (n == UV_EOF && c->has_req) {
        /* A response without a length ends at EOF; any other is cut short. */
        http_parser_execute(&c->parser, &parser_settings, NULL, 0);
        if (c->done)
            response_done(c, true);
        else
            fail_conn(c, "eof");
        return;
    }
    fail_conn(c, "reset"); /* counts only if a request was on it */
}

static void on_connect(uv_connect_t *req, int status)
{
    struct hconn *c = req->data;
    if (B.phase == P_DONE || c->state != C_CONNECTING) /* closed meanwhile */
        return;
    if (status < 0) {
        fail_conn(c, "connect");
        return;
    }
    c->state = C_OPEN;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        fail_conn(c, "connect");
        return;
    }
    if (c->has_req)
        send_request(c);
    else
        slot_ready(c);
}

static void open_conn(struct hconn *c)
{
    uv_tcp_init(&B.loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    c->state = C_CONNECTING;
    c->done = false;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    /* Before the socket exists libuv keeps the flag and applies it when
     * connect creates the socket: no extra call per connection later. */
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&B.addr, on_connect) < 0)
        fail_conn(c, "connect");
}

/* Start a request on slot c, timed from t. */
static void start_request(struct hconn *c, uint64_t t)
{
    outstanding_up();
    c->has_req = true;
    c->parked = false;
    c->t_start = t;
    B.inflight++;
    switch (c->state) {
    case C_OPEN:
        send_request(c);
        break;
    case C_DOWN:
        open_conn(c);
        break;
    case C_CONNECTING: /* on_connect sends it */
    case C_CLOSING:    /* on_close reconnects */
        break;
    }
}

/* Closed loop: may one more request be issued at time t? */
static bool may_issue(uint64_t t)
{
    return (!B.o->requests || B.issued < B.o->requests) && (!B.deadline || t < B.deadline);
}

static void finish(void)
{
    B.phase = P_DONE;
    B.r->elapsed_s = B.last_done > B.t0 ? (double)(B.last_done - B.t0) / 1e9 : 0;
    for (unsigned i = 0; i < B.o->conc; i++)
        close_conn(&B.conns[i]);
    uv_close((uv_handle_t *)&B.watch, NULL);
    if (B.tfd >= 0)
        uv_close((uv_handle_t *)&B.tpoll, NULL);
}

static void maybe_finish(void)
{
    if (B.phase != P_RUN || B.inflight || B.bq_len)
        return;
    if (B.o->rate > 0 ? B.gen < B.limit : may_issue(now_ns()))
        return;
    finish();
}

/* A cap is reached: what is still outstanding will never be counted done. */
static void hard_stop(void)
{
    uint64_t n = B.inflight + B.bq_len;
    if (B.o->requests && !B.o->seconds)
        n += B.o->rate > 0 ? B.limit - B.gen : B.o->requests - B.issued;
    fail_many("timeout", n);
    B.inflight = 0;
    B.bq_len = 0;
    for (unsigned i = 0; i < B.o->conc; i++)
        B.conns[i].has_req = false;
    finish();
}

/* ---- open loop ---- */

static void arm(uint64_t t)
{
    if (t == B.armed)
        return;
    /* Absolute time on the same clock as now_ns(). Re-arming also clears
     * an expiry not yet read, so the fd is never read: one syscall a tick. */
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(t / SEC_NS), .tv_nsec = (long)(t % SEC_NS)}};
    timerfd_settime(B.tfd, TFD_TIMER_ABSTIME, &its, NULL);
    B.armed = t;
}

static void dispatch(uint64_t due)
{
    if (B.id_len) {
        struct hconn *c = B.idle[B.id_head];
        B.id_head = (B.id_head + 1) % B.o->conc;
        B.id_len--;
        start_request(c, due);
    } else if (B.bq_len < HTTP_BACKLOG_MAX) {
        outstanding_up();
        B.backlog[(B.bq_head + B.bq_len) % HTTP_BACKLOG_MAX] = due;
        B.bq_len++;
    } else {
        result_fail(B.r, "backlog");
    }
}

/* Issue every request due by now, then sleep until the next one. */
static void pump(void)
{
    if (B.phase != P_RUN)
        return;
    uint64_t due = http_due_count(B.t0, B.o->rate, now_ns());
    if (due > B.limit)
        due = B.limit;
    if (!B.id_len && B.bq_len == HTTP_BACKLOG_MAX && due > B.gen) {
        fail_many("backlog", due - B.gen); /* full: don't count them one by one */
        B.gen = due;
    }
    while (B.gen < due)
        dispatch(http_due_ns(B.t0, B.o->rate, B.gen++));
    if (B.gen < B.limit) {
        arm(http_due_ns(B.t0, B.o->rate, B.gen));
    } else {
        arm(0); /* it_value 0 disarms */
        maybe_finish();
    }
}

static void on_tick(uv_poll_t *p, int status, int events)
{
    (void)p;
    (void)status;
    (void)events;
    pump();
}

/* ---- both loops ---- */

static void run_start(void);

/* Slot c has no request and wants one (its connection, if any, is open). */
static void slot_ready(struct hconn *c)
{
    if (B.phase == P_PRE) {
        c->parked = true;
        if (--B.pre_pending == 0)
            run_start();
        return;
    }
    if (B.phase != P_RUN)
        return;
    if (B.o->rate > 0) {
        if (B.bq_len) {
            uint64_t due = B.backlog[B.bq_head];
            B.bq_head = (B.bq_head + 1) % HTTP_BACKLOG_MAX;
            B.bq_len--;
            start_request(c, due);
            return;
        }
        c->parked = true;
        B.idle[(B.id_head + B.id_len) % B.o->conc] = c;
        B.id_len++;
    } else {
        uint64_t t = now_ns(); /* one clock read for the check and the timing */
        if (may_issue(t)) {
            B.issued++;
            start_request(c, t);
            return;
        }
        c->parked = true;
    }
    maybe_finish();
}

static void run_start(void)
{
    B.phase = P_RUN;
    B.t0 = B.last_done = B.last_progress = now_ns();
    if (B.o->seconds > 0) {
        B.deadline = B.t0 + (uint64_t)(B.o->seconds * 1e9);
        B.cap = B.deadline + GRACE_NS;
    }
    if (B.o->rate > 0) {
        B.limit = B.o->requests ? B.o->requests : UINT64_MAX;
        if (B.deadline) {
            uint64_t by_time = http_due_count(B.t0, B.o->rate, B.deadline - 1);
            if (by_time < B.limit)
                B.limit = by_time;
        }
    }
    for (unsigned i = 0; i < B.o->conc && B.phase == P_RUN; i++) {
        struct hconn *c = &B.conns[i];
        if (c->parked) {
            c->parked = false;
            slot_ready(c);
        }
    }
    if (B.o->rate > 0)
        pump();
}

static void on_watch(uv_timer_t *t)
{
    (void)t;
    uint64_t now = now_ns();
    if (B.phase == P_PRE) {
        if (now - B.pre_start < GRACE_NS)
            return;
        /* Connects still pending after 10 s: start without them, and retry
         * them as the requests' own connects, timed and counted. */
        run_start();
        for (unsigned i = 0; i < B.o->conc; i++)
            if (B.conns[i].state == C_CONNECTING && !B.conns[i].has_req)
                close_conn(&B.conns[i]);
        return;
    }
    if (B.phase != P_RUN)
        return;
    if (B.cap && now >= B.cap)
        hard_stop();
    else if (B.o->requests && !B.o->seconds && B.inflight + B.bq_len > 0 &&
             now - B.last_progress >= GRACE_NS)
        hard_stop();
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int run_http(const struct opts *o, struct result *r)
{
    memset(&B, 0, sizeof B);
    B.o = o;
    B.r = r;
    B.tfd = -1;
    if (o->rate > 0 && (o->rate < HTTP_RATE_MIN || o->rate > HTTP_RATE_MAX)) {
        fprintf(stderr, "chatbench: -r must be within %g..%g\n", HTTP_RATE_MIN, HTTP_RATE_MAX);
        return -1;
    }
    if (uv_ip4_addr(o->target.host, o->target.port, &B.addr) < 0)
        return -1;
    int len = snprintf(B.req, sizeof B.req, "GET %s HTTP/1.1\r\nHost: %s:%u\r\n%s\r\n",
                       o->target.path, o->target.host, (unsigned)o->target.port,
                       o->keepalive ? "" : "Connection: close\r\n");
    if (len < 0 || (size_t)len >= sizeof B.req)
        return -1;
    B.req_len = (size_t)len;

    /* A peer that resets while we write must be an error count, not a
     * death by SIGPIPE (libuv writes with write(2), not MSG_NOSIGNAL). */
    signal(SIGPIPE, SIG_IGN);
    /* One descriptor per connection: -c 10000 needs more than the usual
     * soft limit of 1024. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int rc = -1;
    B.conns = calloc(o->conc, sizeof *B.conns);
    if (!B.conns || uv_loop_init(&B.loop) < 0)
        goto out;
    if (o->rate > 0) {
        /* Pages of the backlog are touched only if it is ever used. */
        B.backlog = malloc(HTTP_BACKLOG_MAX * sizeof *B.backlog);
        B.idle = malloc(o->conc * sizeof *B.idle);
        B.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (!B.backlog || !B.idle || B.tfd < 0 || uv_poll_init(&B.loop, &B.tpoll, B.tfd) < 0 ||
            uv_poll_start(&B.tpoll, UV_READABLE, on_tick) < 0) {
            perror("chatbench: timer");
            goto out_loop;
        }
    }
    uv_timer_init(&B.loop, &B.watch);
    uv_timer_start(&B.watch, on_watch, WATCH_MS, WATCH_MS);

    if (o->keepalive) {
        /* Connect everything first: the clock measures requests, not the
         * handshake storm of the first moment. */
        B.phase = P_PRE;
        B.pre_start = now_ns();
        B.pre_pending = o->conc;
        for (unsigned i = 0; i < o->conc; i++)
            open_conn(&B.conns[i]);
    } else {
        for (unsigned i = 0; i < o->conc; i++)
            B.conns[i].parked = true;
        run_start();
    }
    uv_run(&B.loop, UV_RUN_DEFAULT);
    rc = 0;
out_loop:
    if (rc < 0) { /* handles made so far must be closed before the loop is */
        uv_walk(&B.loop, close_any, NULL);
        uv_run(&B.loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&B.loop);
out:
    if (B.tfd >= 0)
        close(B.tfd);
    free(B.backlog);
    free(B.idle);
    free(B.conns);
    return rc;
}
