/* Contract rules that no other black-box test checked (docs/contract-coverage.md).
 *
 * This file uses only harness.h's public API; raw sockets are plain
 * descriptors from tcp_connect(), read with poll()/recv() here. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "ws_client.h"

TestSuite(contract_gaps, SUITE_CFG);

#define FORM "Content-Type: application/x-www-form-urlencoded"

/* ---- raw descriptors ---- */

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        cr_assert(w > 0, "send: %s", strerror(errno));
        s += w;
        n -= (size_t)w;
    }
}

/* Has the server sent anything (or closed) on fd yet? Never waits. */
static bool answered(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 0);
    cr_assert(r >= 0, "poll: %s", strerror(errno));
    return r > 0;
}

/* ---- "Password checks are bounded: at most a few in flight per server
 * (excess: 503 with Retry-After)" ----
 *
 * A check is held in flight from outside by the users file itself: a record
 * may ask for up to 10 000 000 PBKDF2 iterations (common/users.c
 * MAX_ITERATIONS), a large part of a second of a core per 10^6. Four wrong
 * passwords for such a user are sent and left unanswered; then a login that
 * costs next to nothing (1000 iterations, right password) is retried, each
 * attempt answered before the next is sent, until the server answers it 503.
 * That 503 is the event waited for: the cheap logins never overlap, so the
 * checks it counted are the slow ones. A server with no bound answers 303
 * every time and the test fails at CAP_MS. After the 503 every slow login
 * must still be unanswered (they were in flight when it came), the server
 * must still serve other routes, and once the slow checks have answered
 * (401) the cheap login must go through again: the slots come back.
 *
 * No duration is assumed: if a slow check ends before the 503 is seen (a
 * very fast machine, or a test process starved of CPU), the round proves
 * nothing and is run again with more iterations, up to the file's limit. */

#define SLOW_LOGINS 4 /* common/login_limit.h LOGIN_MAX_INFLIGHT ("a few") */
#define MAX_FILE_ITERATIONS 10000000u /* common/users.c MAX_ITERATIONS */

/* A record no password matches (all-zero hash), and none needs to. */
static char *slow_user_line(unsigned iterations)
{
    return xasprintf("slow:pbkdf2-sha256:%u:000102030405060708090a0b0c0d0e0f:"
                     "0000000000000000000000000000000000000000000000000000000000000000\n",
                     iterations);
}

static int slow_login(int port)
{
    int fd = tcp_connect(port, 0);
    const char *body = "username=slow&password=not-it";
    char *req = xasprintf("POST /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" FORM "\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                          port, strlen(body), body);
    send_all(fd, req);
    free(req);
    return fd;
}

/* The status of the one response on fd (Connection: close: read to EOF),
 * waiting at most until the deadline; 0 if none came. */
static int read_status(int fd, int64_t deadline)
{
    char buf[4096];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        char tmp[4096];
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t keep = (size_t)n < sizeof buf - 1 - len ? (size_t)n : sizeof buf - 1 - len;
        memcpy(buf + len, tmp, keep);
        len += keep;
    }
    buf[len] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*1[01] %3d ", &status) != 1)
        return 0;
    return status;
}

static void cheap_login(struct http_resp *r, int port)
{
    static const char body[] = "username=ann&password=ann-pw";
    char *host = xasprintf("Host: 127.0.0.1:%d", port);
    http_do(r, port, "POST", "/login", HDRS(FORM, host), body, sizeof body - 1);
    free(host);
}

static bool delta_seconds(const char *v)
{
    if (!v || !*v || strlen(v) > 9)
        return false;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return atoi(v) >= 1;
}

/* Every slow login ends with 401 (a wrong password), each within CAP_MS. */
static void slow_logins_end(int *slow, int n)
{
    for (int i = 0; i < n; i++) {
        if (slow[i] < 0)
            continue;
        int st = read_status(slow[i], now_ms() + CAP_MS);
        cr_assert_eq(st, 401, "slow login %d (wrong password) answered %d", i, st);
        close(slow[i]);
    }
}

/* A server whose users file has ann (cheap) and the slow record. */
static void start_with_slow_user(struct server *s, unsigned iterations)
{
    char *line = slow_user_line(iterations);
    char *users = users_file(ARGS("ann", "ann-pw"), line);
    free(line);
    server_start(s, ARGS("--users", users));
}

/* Send SLOW_LOGINS slow logins and retry the cheap one until it is refused
 * with 503, which it returns (the caller frees it); every slow login is then
 * still unanswered. NULL-status (r->status == 0) if that proved nothing: a
 * slow check ended first (the slow logins are then over and closed). */
static void hold_slow_checks(struct server *s, int *slow, unsigned iterations,
                             struct http_resp *r)
{
    for (int i = 0; i < SLOW_LOGINS; i++)
        slow[i] = slow_login(s->port);
    int64_t deadline = now_ms() + CAP_MS;
    int through = 0;
    for (;;) {
        cheap_login(r, s->port);
        if (r->status == 503)
            break;
        cr_assert_eq(r->status, 303, "cheap login %d answered %d", through + 1, r->status);
        resp_free(r);
        through++;
        for (int i = 0; i < SLOW_LOGINS; i++) {
            if (!answered(slow[i]))
                continue;
            int st = read_status(slow[i], now_ms() + CAP_MS);
            close(slow[i]);
            if (st == 503) {
                /* It came after a cheap login had taken the fourth slot
                 * (chat-forked's child for it started late): send it again. */
                slow[i] = slow_login(s->port);
                continue;
            }
            cr_assert_eq(st, 401, "slow login %d (wrong password) answered %d", i, st);
            cr_log_info("%u iterations: a slow check ended before any 503", iterations);
            slow[i] = -1;
            slow_logins_end(slow, SLOW_LOGINS);
            r->status = 0;
            return;
        }
        cr_assert(remaining_ms(deadline) > 0,
                  "%d logins went through while %d slow checks were in flight: no bound on "
                  "password checks in flight",
                  through, SLOW_LOGINS);
    }
    for (int i = 0; i < SLOW_LOGINS; i++)
        if (answered(slow[i])) { /* ended between the 503 and now: proves nothing */
            resp_free(r);
            slow_logins_end(slow, SLOW_LOGINS);
            r->status = 0;
            return;
        }
}

/* One round with the slow record at `iterations`. False if it proved
 * nothing: a slow check ended before the 503 came. */
static bool inflight_round(unsigned iterations)
{
    struct server s;
    start_with_slow_user(&s, iterations);
    struct http_resp r;
    cheap_login(&r, s.port);
    cr_assert_eq(r.status, 303, "cheap login before the slow ones answered %d", r.status);
    resp_free(&r);

    int slow[SLOW_LOGINS];
    hold_slow_checks(&s, slow, iterations, &r);
    if (r.status == 0) {
        server_stop(&s);
        return false;
    }
    const char *retry = resp_header(&r, "Retry-After");
    cr_assert(delta_seconds(retry), "503 to a login without a valid Retry-After: %s",
              retry ? retry : "(none)");
    check_common_headers(&s, &r, false);
    resp_free(&r);

    /* Other routes answer beside the checks. */
    expect_hello(s.port);

    /* The checks end, their slots come back. */
    slow_logins_end(slow, SLOW_LOGINS);
    cheap_login(&r, s.port);
    cr_assert_eq(r.status, 303, "cheap login after the slow checks ended answered %d",
                 r.status);
    resp_free(&r);
    server_stop(&s);
    return true;
}

Test(contract_gaps, login_checks_in_flight_bounded_503_retry_after)
{
    for (unsigned it = 1000000;; it = it * 4 < MAX_FILE_ITERATIONS ? it * 4 : MAX_FILE_ITERATIONS) {
        if (inflight_round(it))
            return;
        cr_assert(it < MAX_FILE_ITERATIONS,
                  "no 503 while %d checks of %u iterations were in flight, each round: "
                  "logins went through (no bound on checks in flight?)",
                  SLOW_LOGINS, MAX_FILE_ITERATIONS);
    }
}

/* "SIGINT/SIGTERM: ... finish the responses in flight that can finish in
 * time, drop the rest, and exit 0 within 5 s". Password checks in flight
 * are responses in flight: with the costliest record the users file accepts
 * (10^7 iterations, seconds of a core each) they cannot finish in time and
 * must be dropped. Four are held in flight as above, then SIGTERM:
 * server_stop asserts the exit (status 0) within its cap, STOP_CAP_MS, which
 * is already twice the contract's 5 s. chat-async and chat-threaded drop
 * such a check by exiting without waiting for the thread that runs it
 * (common/timing.h ABANDON_AFTER_MS); chat-forked's parent SIGKILLs the
 * children still busy at the end of its grace period. */
Test(contract_gaps, sigterm_with_password_checks_in_flight_exits_in_time)
{
    struct server s;
    start_with_slow_user(&s, MAX_FILE_ITERATIONS);
    int slow[SLOW_LOGINS];
    struct http_resp r;
    hold_slow_checks(&s, slow, MAX_FILE_ITERATIONS, &r);
    cr_assert_neq(r.status, 0, "%u-iteration checks ended before a fifth login was refused: "
                  "nothing was held in flight", MAX_FILE_ITERATIONS);
    resp_free(&r);
    int64_t t0 = now_ms();
    server_stop(&s);
    cr_log_info("exited %lld ms after SIGTERM", (long long)(now_ms() - t0));
    for (int i = 0; i < SLOW_LOGINS; i++)
        close(slow[i]);
}

/* "--gil ... All three accept it: in chat-forked each process has its own
 * lock ... so it changes nothing there; in chat-async it covers the loop
 * thread and the --cpu-pool workers". ctest runs the whole suite with --gil
 * for chat-threaded and chat-async (with --cpu-pool) only: here every model
 * and variant takes it and still answers HTTP, /cpu, a login and the chat. */
Test(contract_gaps, gil_flag_accepted_by_every_model)
{
    struct server s;
    server_start(&s, ARGS("--gil"));
    expect_hello(s.port);
    char want[66];
    cpu_expected(1000, want);
    struct http_resp r;
    http_get(&r, s.port, "/cpu?n=1000", NULL);
    cr_assert_eq(r.status, 200, "/cpu under --gil answered %d", r.status);
    cr_assert_str_eq(r.body, want);
    resp_free(&r);
    char *cookie = login(s.port, "coco", "123456");
    char *h = cookie_header(cookie);
    http_get(&r, s.port, "/chat", HDRS(h));
    cr_assert_eq(r.status, 200, "/chat with a session under --gil answered %d", r.status);
    resp_free(&r);
    free(h);
    free(cookie);
    server_stop(&s);
}

/* "--users FILE | none: the seed's demo accounts coco, cc, aa, password
 * 123456, with a warning on stderr": the warning names them; with --users
 * there is none. */
Test(contract_gaps, demo_accounts_warned_on_stderr)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "cc", "123456");
    free(cookie);
    char *err = server_stderr(&s);
    bool warned = false;
    for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
        warned = warned || (strstr(line, "warning") && strstr(line, "demo"));
    cr_assert(warned, "no warning about the demo accounts on stderr");
    free(err);
    server_stop(&s);

    char *users = users_file(ARGS("ann", "ann-pw"), NULL);
    server_start(&s, ARGS("--users", users));
    err = server_stderr(&s);
    cr_assert(!strstr(err, "demo"), "demo accounts mentioned with --users: %s", err);
    free(err);
    server_stop(&s);
}

/* "SIGINT/SIGTERM: stop accepting, ...". A /sleep of 2 s (it can finish in
 * time) keeps the server busy after the signal; a WebSocket member's close
 * 1001 is the event that says the shutdown has begun. A connection made
 * after it must not be served: refused, or closed (or reset) without a
 * response. */
Test(contract_gaps, sigterm_stops_accepting)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    struct ws *w = chat_join(s.port, cookie, "coco", NULL, NULL);

    /* Pipelined: once /hello is answered the server holds the /sleep. */
    int busy = tcp_connect(s.port, 0);
    send_all(busy, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /sleep?ms=2000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    struct pollfd p = {.fd = busy, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, CAP_MS), 1, "no answer to /hello");

    cr_assert(kill(s.pid, SIGTERM) == 0);
    struct ws_msg *m;
    while ((m = ws_recv(w, CAP_MS))->kind == WS_TEXT)
        ws_msg_free(m);
    cr_assert_eq(m->kind, WS_CLOSE, "got %s instead of close 1001", ws_kind_name(m->kind));
    ws_msg_free(m);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) == 0) {
        const char *req = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
        (void)!send(fd, req, strlen(req), MSG_NOSIGNAL);
        int st = read_status(fd, now_ms() + STOP_CAP_MS);
        cr_assert_eq(st, 0, "a connection made after SIGTERM was answered %d", st);
    } else {
        cr_assert_eq(errno, ECONNREFUSED, "connect after SIGTERM: %s", strerror(errno));
    }
    close(fd);
    close(busy);
    server_wait_exit(&s, STOP_CAP_MS);
    ws_free(w);
    free(cookie);
}
