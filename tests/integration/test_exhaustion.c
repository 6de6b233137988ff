/* Issue 7, exhaustion, against every model: more clients than the server
 * has descriptors (a low RLIMIT_NOFILE it cannot raise), and more than
 * --max-conns. The server must refuse or delay cleanly, never crash, never
 * spin while saturated, and recover when the clients leave.
 *
 * "Never spin" is measured, not timed: over a window in which the server
 * has nothing it can do, its threads' runnable time (server_runnable_ms:
 * on a CPU or waiting for one) must stay far below the window. A busy loop
 * — an accept() failing with EMFILE forever, a listener left readable —
 * is runnable the whole window however loaded the machine is; an idle
 * server is runnable for almost none of it. The margin (half the window)
 * is about that difference, not about speed. */
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(exhaustion, SUITE_CFG);

#define WINDOW_MS 2000

enum state { PENDING, SERVED, REFUSED };

/* Reads what came for the PENDING clients: a 200 makes one SERVED (the
 * connection stays open, keep-alive), a 503 or a close REFUSED. Waits at
 * most wait_ms for something to come; returns how many changed state. */
static int collect(struct tsock *c, enum state *st, int n, int wait_ms)
{
    struct pollfd *p = calloc((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){st[i] == PENDING ? c[i].fd : -1, POLLIN, 0};
    int changed = 0;
    if (poll(p, (nfds_t)n, wait_ms) > 0) {
        for (int i = 0; i < n; i++) {
            if (!p[i].revents)
                continue;
            struct http_resp r;
            enum rd got = tsock_read_response(&c[i], false, &r, CAP_MS);
            if (got == RD_OK) {
                cr_assert(r.status == 200 || r.status == 503, "client %d got %d", i, r.status);
                st[i] = r.status == 200 ? SERVED : REFUSED;
                resp_free(&r);
            } else {
                cr_assert(got == RD_EOF || got == RD_RESET, "client %d got %s", i, rd_name(got));
                st[i] = REFUSED;
            }
            changed++;
        }
    }
    free(p);
    return changed;
}

/* First lets the server settle: until every client is served or refused,
 * or nothing has changed for a second (the rest wait in the backlog).
 * Then windows of WINDOW_MS in which the server has nothing it can do,
 * until one finds it runnable for less than half the window; returns the
 * least runnable ms seen. A spinning server is runnable in every window
 * (runnable counts the wait for a CPU too, so a busy machine does not hide
 * a spin); an idle one fails a window only while it is still finishing
 * work that started before it — admitting, forking, refusing, slowed by
 * the run queue of a loaded machine — and the next window finds it idle.
 * So the number of windows is about the machine, the verdict is not. */
static int64_t watch(struct server *s, struct tsock *c, enum state *st, int n)
{
    int64_t deadline = now_ms() + CAP_MS;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < n; i++)
            pending += st[i] == PENDING;
        if (!pending || remaining_ms(deadline) == 0 || collect(c, st, n, 1000) == 0)
            break;
    }
    int64_t least = INT64_MAX;
    deadline = now_ms() + CAP_MS;
    do {
        int64_t busy0 = server_runnable_ms(s);
        int64_t end = now_ms() + WINDOW_MS;
        while (remaining_ms(end) > 0)
            collect(c, st, n, remaining_ms(end));
        int64_t busy = server_runnable_ms(s) - busy0;
        if (busy < least)
            least = busy;
        if (least < WINDOW_MS / 2)
            break;
        cr_log_info("runnable %lld ms of a %d ms window; watching another", (long long)busy,
                    WINDOW_MS);
    } while (remaining_ms(deadline) > 0);
    return least;
}

static void count(const enum state *st, int n, int out[3])
{
    out[PENDING] = out[SERVED] = out[REFUSED] = 0;
    for (int i = 0; i < n; i++)
        out[st[i]]++;
}

/* A fresh client is served again, retrying while the server still refuses
 * (it may not have seen every close yet). */
static void expect_recovered(int port)
{
    int64_t deadline = now_ms() + CAP_MS;
    for (;;) {
        struct tsock c;
        tsock_open(&c, port);
        struct http_resp r;
        enum rd got = RD_BAD;
        if (tsock_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
            got = tsock_read_response(&c, false, &r, CAP_MS);
        tsock_close(&c);
        if (got == RD_OK && r.status == 200) {
            resp_free(&r);
            return;
        }
        if (got == RD_OK)
            resp_free(&r);
        cr_assert(remaining_ms(deadline) > 0, "the server never recovered: last %s", rd_name(got));
        poll(NULL, 0, 50);
    }
}

/* RLIMIT_NOFILE 40, soft and hard (so the server cannot raise it), and 90
 * clients each sending a keep-alive request. Each is served, refused (503,
 * or the reset of an accept-and-close) or left waiting in the backlog;
 * none crashes the server or makes it spin. When they all leave, the
 * server serves again and its descriptors are back where they were. */
Test(exhaustion, more_clients_than_descriptors)
{
    enum { NOFILE = 40, N = 90 };
    struct server s;
    server_start_nofile(&s, NULL, NOFILE);
    server_model(&s);
    int base = server_fd_count(&s);
    cr_assert(base < NOFILE, "the server already holds %d descriptors", base);
    struct tsock c[N];
    enum state st[N];
    for (int i = 0; i < N; i++) {
        tsock_open(&c[i], s.port);
        st[i] = PENDING;
        tsock_sends(&c[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    int64_t busy = watch(&s, c, st, N);
    int n[3];
    count(st, N, n);
    cr_log_info("%d descriptors, %d clients: %d served, %d refused, %d waiting; runnable %lld ms "
                "of %d", NOFILE, N, n[SERVED], n[REFUSED], n[PENDING], (long long)busy, WINDOW_MS);
    cr_assert(kill(s.pid, 0) == 0, "the server died");
    cr_assert(n[SERVED] > 0, "out of descriptors, the server served nobody");
    cr_assert(busy < WINDOW_MS / 2, "the server spun while out of descriptors: runnable at least "
              "%lld ms in every %d ms window for %d ms", (long long)busy, WINDOW_MS, CAP_MS);
    for (int i = 0; i < N; i++)
        tsock_close(&c[i]);
    expect_recovered(s.port);
    int fds = server_await_fds(&s, base);
    cr_assert(fds <= base, "%d descriptors after the clients left, %d before", fds, base);
    cr_assert_eq(server_await_children(&s, 0), 0, "children left after their clients did");
    server_stop(&s);
}

/* --max-conns 4 held by keep-alive clients, and 40 more knocking and
 * staying connected after their 503: each gets its 503 and close, the
 * server does not spin while full, and serves again when the four leave. */
Test(exhaustion, max_conns_reached_refuses_without_spinning)
{
    enum { MAX = 4, N = 44 };
    struct server s;
    server_start(&s, ARGS("--max-conns", "4"));
    server_model(&s);
    struct tsock c[N];
    enum state st[N];
    for (int i = 0; i < MAX; i++) {
        /* One at a time: the server may not yet have seen the /stats
         * connection close, so the first ones may be refused and retried. */
        for (;;) {
            tsock_open(&c[i], s.port);
            struct http_resp r;
            tsock_sends(&c[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
            enum rd got = tsock_read_response(&c[i], false, &r, CAP_MS);
            int status = got == RD_OK ? r.status : 0;
            if (got == RD_OK)
                resp_free(&r);
            if (status == 200)
                break;
            tsock_close(&c[i]);
            poll(NULL, 0, 20);
        }
        st[i] = SERVED;
    }
    for (int i = MAX; i < N; i++) {
        tsock_open(&c[i], s.port);
        st[i] = PENDING;
        tsock_sends(&c[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    int64_t busy = watch(&s, c, st, N);
    int n[3];
    count(st, N, n);
    cr_log_info("max-conns %d, %d clients: %d refused, %d waiting; runnable %lld ms of %d", MAX,
                N, n[REFUSED], n[PENDING], (long long)busy, WINDOW_MS);
    cr_assert_eq(n[SERVED], MAX, "%d served beyond --max-conns %d", n[SERVED], MAX);
    cr_assert_eq(n[REFUSED], N - MAX, "%d of %d clients beyond --max-conns were not refused",
                 n[PENDING], N - MAX);
    cr_assert(busy < WINDOW_MS / 2, "the server spun at --max-conns: runnable at least %lld ms "
              "in every %d ms window for %d ms", (long long)busy, WINDOW_MS, CAP_MS);
    for (int i = 0; i < N; i++)
        tsock_close(&c[i]);
    expect_recovered(s.port);
    cr_assert_eq(server_await_children(&s, 0), 0, "children left after their clients did");
    server_stop(&s);
}
