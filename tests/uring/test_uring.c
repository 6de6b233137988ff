/* What only chat-uring has: the traps of a completion reactor (issue 18),
 * each made to happen through real sockets and checked from outside.
 *
 *  - short sends: a send completes short when the socket fills; the rest
 *    must follow, and nothing may pass it (one send in flight per socket);
 *  - -ENOBUFS: a multishot receive that found the buffer ring empty ends,
 *    and must be armed again, or the connection goes deaf without error;
 *  - CQ overflow: completions beyond the CQ are held by the kernel
 *    (IORING_FEAT_NODROP) and must all be reaped, none lost;
 *  - cancel before free: a connection that vanishes with requests in flight
 *    is freed only after the kernel has reported on every one (ASan build:
 *    a completion into freed memory is a use-after-free and a failed exit);
 *  - SIGTERM with a send blocked on a full socket: cancelled, exit 0.
 *
 * Buffer ring and CQ are shrunk with the server's test knobs
 * (C10K_URING_BUFS, C10K_URING_CQ: models/uring/main.c), inherited through
 * the environment; the server then reports at exit how often it met each
 * trap, so a test can tell that it did happen.
 *
 * To have every connection's data arrive while the server cannot look, the
 * server is stopped (SIGSTOP, awaited in /proc), the clients send, and it
 * is continued: the kernel then completes all their receives at once. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "jsonv.h"
#include "upstream.h"
#include "ws_client.h"

TestSuite(uring, SUITE_CFG);

#define BURST 48 /* connections whose data arrives at once */

/* ---- small helpers ---- */

/* Poll /proc until the server's main thread is in state `want` ('T' once
 * stopped, anything else once running). An event wait with a cap. */
static void await_state(const struct server *s, bool stopped)
{
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)s->pid);
    int64_t deadline = now_ms() + CAP_MS;
    for (;;) {
        struct proc_stat st;
        cr_assert(proc_stat_read(pid, &st, NULL, 0), "the server is gone");
        if ((st.state == 'T') == stopped)
            return;
        cr_assert(now_ms() < deadline, "server never %s", stopped ? "stopped" : "continued");
        usleep(1000);
    }
}

static void server_freeze(const struct server *s)
{
    cr_assert(kill(s->pid, SIGSTOP) == 0);
    await_state(s, true);
}

static void server_thaw(const struct server *s)
{
    cr_assert(kill(s->pid, SIGCONT) == 0);
    await_state(s, false);
}

static void expect_hello_on(struct tsock *c)
{
    struct http_resp r;
    tsock_expect_response(c, false, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 14);
    cr_assert(memcmp(r.body, "Hello, world!\n", 14) == 0);
    resp_free(&r);
}

/* Stop the server; the counts of its test-knob report (printed to stderr
 * when SIGTERM comes, read before the harness removes the file). */
static void stop_with_report(struct server *s, unsigned long *enobufs, unsigned long *overflows,
                             unsigned long *lingers_timed_out)
{
    cr_assert(kill(s->pid, SIGTERM) == 0);
    char *err;
    const char *line;
    int64_t deadline = now_ms() + CAP_MS;
    for (;;) {
        err = server_stderr(s);
        line = strstr(err, "chat-uring: test knobs: ");
        if (line && strchr(line, '\n'))
            break;
        cr_assert(now_ms() < deadline, "no test-knob report in the server's stderr:\n%s", err);
        free(err);
        usleep(1000);
    }
    cr_log_info("%.*s", (int)(strchr(line, '\n') - line), line);
    server_wait_exit(s, STOP_CAP_MS);
    cr_assert_eq(sscanf(line,
                        "chat-uring: test knobs: %lu receives found no buffer, %lu turns found "
                        "the CQ overflowed, %lu lingers",
                        enobufs, overflows, lingers_timed_out),
                 3, "%s", line);
    free(err);
}

/* SIGTERM and a clean exit, and no request left in flight at the end:
 * with a closed client still waiting for a completion, chat-uring would
 * exit 0 all the same, by its deadline's abandon path (main.c,
 * on_abandon), which says so on stderr. The harness removes the stderr
 * file at the exit: an open descriptor still reads it. */
static void stop_nothing_abandoned(struct server *s)
{
    int errfd = open(s->errpath, O_RDONLY | O_CLOEXEC);
    cr_assert(errfd >= 0);
    cr_assert(kill(s->pid, SIGTERM) == 0);
    server_wait_exit(s, STOP_CAP_MS);
    static char err[1 << 16];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof err - 1 && (n = read(errfd, err + len, sizeof err - 1 - len)) > 0)
        len += (size_t)n;
    err[len] = 0;
    close(errfd);
    cr_assert(strstr(err, "dropped work") == NULL,
              "the server abandoned requests still in flight:\n%s", err);
}

/* Bytes the server's end of the connection whose client end is `fd` holds
 * unacknowledged (tx_queue in /proc/net/tcp): on loopback, bytes that wait
 * because the client's receive window is closed. */
static long server_unsent(int server_port, int fd)
{
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    cr_assert(getsockname(fd, (struct sockaddr *)&me, &len) == 0);
    unsigned client_port = ntohs(me.sin_port);
    FILE *f = fopen("/proc/net/tcp", "r");
    cr_assert(f);
    char line[512];
    long found = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned lport, rport;
        unsigned long tx;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %*x %lx:%*x", &lport, &rport, &tx) == 3 &&
            (int)lport == server_port && rport == client_port) {
            found = (long)tx;
            break;
        }
    }
    fclose(f);
    return found;
}

/* ---- short sends: one in flight per socket, the rest after it ---- */

/* The upstream's body: 8-byte lines numbering their own offsets, so a byte
 * lost, repeated or moved shows where. Under /search's 1 MiB limit. */
#define BODY_LINES 125000
#define BODY_LEN (BODY_LINES * 8)
#define PIPELINED 6 /* 6 MB: more than tcp_wmem's 4 MiB and the client's window */

static char *numbered_body(void)
{
    char *b = malloc(BODY_LEN + 1);
    cr_assert(b);
    for (unsigned i = 0; i < BODY_LINES; i++)
        snprintf(b + (size_t)i * 8, 9, "%07u\n", i);
    return b;
}

static char *big_response(const char *body)
{
    return xasprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s",
                     BODY_LEN, body);
}

static void send_big_searches(struct tsock *c)
{
    for (int i = 0; i < PIPELINED; i++)
        cr_assert(tsock_sends(c, "GET /search?wd=x HTTP/1.1\r\nHost: t\r\n\r\n"));
}

/* Wait until the server's end of c holds what the client has not taken:
 * its receive window is closed, the server's sends are meeting a full
 * socket. */
static void await_backed_up(int port, struct tsock *c)
{
    int64_t deadline = now_ms() + CAP_MS;
    while (server_unsent(port, c->fd) < 256 * 1024) {
        cr_assert(now_ms() < deadline, "the server's socket never filled");
        usleep(1000);
    }
}

/* A client with a small window asks for six 1 MB answers and reads nothing
 * until the server's socket is backed up: whatever the kernel's buffers,
 * 6 MB cannot fit, so sends complete short and the rest must follow. Then
 * every answer must come whole and in order, byte for byte. */
Test(uring, short_sends_arrive_whole_and_in_order)
{
    char *body = numbered_body();
    char *response = big_response(body);
    struct upstream u;
    upstream_start_raw(&u, response);
    struct server s;
    server_start_upstream(&s, &u);

    struct tsock c;
    memset(&c, 0, sizeof c);
    c.fd = tcp_connect(s.port, 16384);
    send_big_searches(&c);
    await_backed_up(s.port, &c);
    for (int i = 0; i < PIPELINED; i++) {
        struct http_resp r;
        tsock_expect_response(&c, false, &r);
        cr_assert_eq(r.status, 200, "answer %d", i);
        cr_assert_eq(r.body_len, BODY_LEN, "answer %d: %zu bytes", i, r.body_len);
        for (size_t off = 0; off < BODY_LEN; off += 8)
            cr_assert(memcmp(r.body + off, body + off, 8) == 0,
                      "answer %d: at byte %zu came %.8s, not %.8s", i, off, r.body + off,
                      body + off);
        resp_free(&r);
    }
    tsock_close(&c);
    expect_hello(s.port);
    server_stop(&s);
    upstream_stop(&u);
    free(response);
    free(body);
}

/* ---- -ENOBUFS: the multishot receive ends and is armed again ---- */

/* BURST keep-alive connections, each known to the server with its receive
 * armed (one /hello answered); then, with the server stopped, each sends
 * `per_conn` more requests; the server is continued and every one of them
 * must be answered. */
static void burst_of_requests(struct server *s, int per_conn)
{
    static struct tsock c[BURST];
    for (int i = 0; i < BURST; i++) {
        tsock_open(&c[i], s->port);
        cr_assert(tsock_sends(&c[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
        expect_hello_on(&c[i]);
    }
    server_freeze(s);
    for (int i = 0; i < BURST; i++)
        for (int k = 0; k < per_conn; k++)
            cr_assert(tsock_sends(&c[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
    server_thaw(s);
    for (int i = 0; i < BURST; i++) {
        for (int k = 0; k < per_conn; k++)
            expect_hello_on(&c[i]);
        tsock_close(&c[i]);
    }
    /* Still serving, and /stats agrees. */
    expect_hello(s->port);
    struct jv *st = stats_get(s->port);
    long long requests = 0;
    cr_assert(jv_int(st, "requests", &requests));
    cr_assert_geq(requests, BURST * (1 + per_conn) + 1);
    jv_free(st);
}

/* Two buffers for 48 connections whose requests all arrive at once: the
 * kernel completes two receives and ends the other 46 with -ENOBUFS. Each
 * must be armed again (client_sync), or its requests are never answered. */
Test(uring, enobufs_ends_the_receive_and_it_is_armed_again)
{
    cr_assert(setenv("C10K_URING_BUFS", "2", 1) == 0);
    struct server s;
    server_start(&s, NULL);
    burst_of_requests(&s, 3);
    unsigned long enobufs, overflows, lingers;
    stop_with_report(&s, &enobufs, &overflows, &lingers);
    cr_assert_gt(enobufs, 0, "the buffer ring never ran dry: the test tested nothing");
}

/* After a "Connection: close" answer the server lingers: its FIN sent, it
 * reads and throws away what the client still sends until the client's
 * FIN. A lingering receive that ends — here -ENOBUFS, two buffers for 32
 * clients sending at once — must be armed again, or the client's FIN goes
 * unseen and the linger waits out its deadline (2 s; at a shutdown of
 * 1 000 that was the whole exit time). Every linger must end by the
 * client's FIN, and the server's report counts those that did not. */
Test(uring, a_lingering_receive_that_ends_is_armed_again)
{
    cr_assert(setenv("C10K_URING_BUFS", "2", 1) == 0);
    struct server s;
    server_start(&s, NULL);
    enum { N = 32 };
    struct tsock c[N];
    for (int i = 0; i < N; i++) {
        tsock_open(&c[i], s.port);
        cr_assert(tsock_sends(&c[i], "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    }
    for (int i = 0; i < N; i++) {
        struct http_resp r;
        tsock_expect_response(&c[i], false, &r);
        cr_assert_eq(r.status, 200);
        resp_free(&r);
        enum rd got = tsock_wait_eof(&c[i], CAP_MS, NULL);
        cr_assert_eq(got, RD_EOF, "client %d: the server's FIN, got %s", i, rd_name(got));
    }
    /* Every server end lingers now: all send at once, then their FINs. */
    static char junk[16384];
    memset(junk, 'j', sizeof junk);
    for (int i = 0; i < N; i++)
        cr_assert(tsock_send(&c[i], junk, sizeof junk));
    for (int i = 0; i < N; i++)
        cr_assert(shutdown(c[i].fd, SHUT_WR) == 0);
    /* Closed once the server has seen each FIN (or each deadline passed):
     * /stats counts its own connection only. */
    int64_t deadline = now_ms() + CAP_MS;
    for (long long open = -1; open != 1;) {
        struct jv *st = stats_get(s.port);
        cr_assert(jv_int(st, "connections", &open));
        jv_free(st);
        cr_assert(now_ms() < deadline, "%lld connections still open", open);
        if (open != 1)
            poll(NULL, 0, 10); /* the server closes them; nothing to wait on here */
    }
    for (int i = 0; i < N; i++)
        tsock_close(&c[i]);
    unsigned long enobufs, overflows, lingers;
    stop_with_report(&s, &enobufs, &overflows, &lingers);
    cr_assert_gt(enobufs, 0, "the buffer ring never ran dry: the test tested nothing");
    cr_assert_eq(lingers, 0,
                 "%lu lingers waited out their deadline: a receive that ended while lingering "
                 "was not armed again",
                 lingers);
}

/* A CQ of 4 entries (and so an SQ of 4) for 48 receives completing at
 * once: the kernel holds the rest (IORING_FEAT_NODROP) until the loop
 * reaps; nothing may be lost, and a full SQ must not drop a request. */
Test(uring, cq_overflow_loses_no_completion)
{
    cr_assert(setenv("C10K_URING_CQ", "4", 1) == 0);
    struct server s;
    server_start(&s, NULL);
    burst_of_requests(&s, 2);
    unsigned long enobufs, overflows, lingers;
    stop_with_report(&s, &enobufs, &overflows, &lingers);
    cr_assert_gt(overflows, 0, "the CQ never overflowed: the test tested nothing");
}

/* ---- cancel before free ---- */

static void reset_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Clients vanish (RST) while the server has, for each, a send blocked on a
 * full socket, a /sleep timeout, a half-read request, or a WebSocket with
 * fan-out sends: every request is cancelled and reported before the client
 * is freed. The server keeps serving, its connections drain to the one
 * asking, and (ASan build) its exit is clean. */
Test(uring, vanished_clients_are_cancelled_before_they_are_freed)
{
    char *body = numbered_body();
    char *response = big_response(body);
    struct upstream u;
    upstream_start_raw(&u, response);
    struct server s;
    server_start_upstream(&s, &u);

    enum { N = 4 };
    struct tsock big[N], sleepy[N], half[N];
    for (int i = 0; i < N; i++) {
        memset(&big[i], 0, sizeof big[i]);
        big[i].fd = tcp_connect(s.port, 16384);
        send_big_searches(&big[i]);
        tsock_open(&sleepy[i], s.port);
        cr_assert(tsock_sends(&sleepy[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                                          "GET /sleep?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n"));
        tsock_open(&half[i], s.port);
        cr_assert(tsock_sends(&half[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hel"));
    }
    char *cookie = login(s.port, "coco", "123456");
    struct ws *stay = chat_join(s.port, cookie, "coco", NULL, NULL);
    struct ws *ws[N];
    for (int i = 0; i < N; i++) {
        ws[i] = chat_join(s.port, cookie, "coco", NULL, NULL);
        struct jv *join = expect_event(stay, "join");
        cr_assert_str_eq(jv_str(join, "user"), "coco");
        jv_free(join);
    }
    for (int i = 0; i < N; i++) {
        await_backed_up(s.port, &big[i]);
        expect_hello_on(&sleepy[i]); /* the /sleep is now the server's */
        expect_hello_on(&half[i]);
    }
    /* Each vanishing member's leave is fanned out to the others still
     * there, sends in flight to sockets about to be reset. */
    char text[1000];
    memset(text, 'v', sizeof text);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 20; k++)
            ws_queue_text(ws[i], text, sizeof text);
        ws_flush(ws[i]);
    }
    for (int i = 0; i < N; i++) {
        reset_close(big[i].fd);
        big[i].fd = -1;
        tsock_close(&big[i]);
        reset_close(sleepy[i].fd);
        sleepy[i].fd = -1;
        tsock_close(&sleepy[i]);
        reset_close(half[i].fd);
        half[i].fd = -1;
        tsock_close(&half[i]);
        reset_close(ws[i]->fd);
        ws[i]->fd = -1;
        ws_free(ws[i]);
    }
    /* The member that stayed sees the room go on: every vanished member's
     * leave comes, and its own message comes back (in whichever order the
     * server noticed the resets). */
    ws_send_texts(stay, "still here");
    int leaves = 0;
    bool mine = false;
    while (leaves < N || !mine) {
        struct jv *ev = ws_recv_event(stay, CAP_MS);
        const char *type = jv_str(ev, "type");
        cr_assert(type);
        if (strcmp(type, "leave") == 0)
            leaves++;
        if (strcmp(type, "message") == 0 && strcmp(jv_str(ev, "text"), "still here") == 0)
            mine = true;
        jv_free(ev);
    }
    /* Every vanished connection is gone from the server's count. */
    int64_t deadline = now_ms() + CAP_MS;
    for (;;) {
        struct jv *st = stats_get(s.port);
        long long conns = -1;
        cr_assert(jv_int(st, "connections", &conns));
        jv_free(st);
        if (conns == 2) /* the member that stayed, and this /stats */
            break;
        cr_assert(now_ms() < deadline, "%lld connections left", conns);
        usleep(1000);
    }
    expect_hello(s.port);
    ws_free(stay);
    free(cookie);
    stop_nothing_abandoned(&s);
    upstream_stop(&u);
    free(response);
    free(body);
}

/* The server closes a connection whose peer is still there: a member that
 * never reads is cut off (1 MiB unsent) and closed 2 s later, its send
 * still blocked on the full socket and its receive still armed. Nothing
 * the peer does will end them: only the cancels can (sink_cut_off,
 * client_close), and the struct must wait for their completions. The
 * peer keeps its socket open until the server has exited. */
Test(uring, a_member_closed_by_the_server_is_cancelled_before_it_is_freed)
{
    struct server s;
    server_start(&s, NULL);
    char *aa = login(s.port, "aa", "123456"), *coco = login(s.port, "coco", "123456");
    struct ws *slow = ws_connect_rcvbuf(s.port, aa, 4096);
    struct ws *poster = chat_join(s.port, coco, "coco", NULL, NULL);

    enum { BATCH = 16, TEXT = 4000, MAX_BATCHES = 500 };
    char *text = malloc(TEXT);
    cr_assert(text);
    memset(text, 'x', TEXT);
    bool left = false;
    for (int batch = 0; batch < MAX_BATCHES && !left; batch++) {
        for (int i = 0; i < BATCH; i++)
            ws_queue_text(poster, text, TEXT);
        ws_flush(poster);
        for (int got = 0; got < BATCH;) {
            struct jv *v = ws_recv_event(poster, CAP_MS);
            const char *type = jv_str(v, "type");
            cr_assert(type);
            if (strcmp(type, "leave") == 0) {
                cr_assert_str_eq(jv_str(v, "user"), "aa");
                left = true;
            } else {
                cr_assert_str_eq(type, "message", "unexpected %s event", type);
                got++;
            }
            jv_free(v);
        }
    }
    cr_assert(left, "the member that never reads was not cut off");
    free(text);
    /* The server closes it (2 s after the close frame it cannot send). */
    int64_t deadline = now_ms() + CAP_MS;
    for (;;) {
        struct jv *st = stats_get(s.port);
        long long conns = -1;
        cr_assert(jv_int(st, "connections", &conns));
        jv_free(st);
        if (conns == 2) /* the poster, and this /stats */
            break;
        cr_assert(now_ms() < deadline, "%lld connections left", conns);
        usleep(1000);
    }
    chat_round_trip(poster, "after the cut-off");
    ws_free(poster);
    stop_nothing_abandoned(&s);
    ws_free(slow);
    free(aa);
    free(coco);
}

/* ---- SIGTERM with a send blocked on a full socket ---- */

/* The faults suite's SIGTERM test has /sleeps and WebSockets in flight;
 * here a client that never reads holds a send the kernel cannot finish.
 * The core gives up on it within the grace period, the connection is
 * closed with its send cancelled (client_close: cancel_fd), and the server
 * exits 0 only once the kernel has reported the cancelled send. */
Test(uring, sigterm_with_a_send_blocked_on_a_full_socket)
{
    char *body = numbered_body();
    char *response = big_response(body);
    struct upstream u;
    upstream_start_raw(&u, response);
    struct server s;
    server_start_upstream(&s, &u);
    struct tsock c;
    memset(&c, 0, sizeof c);
    c.fd = tcp_connect(s.port, 16384);
    send_big_searches(&c);
    await_backed_up(s.port, &c);
    stop_nothing_abandoned(&s);
    tsock_close(&c);
    upstream_stop(&u);
    free(response);
    free(body);
}
