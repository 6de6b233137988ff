/* CONTRACT.md "Programs": the listening line, --secret, --users, --upstream
 * (see test_routes.c for /search), --max-conns, and SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "jsonv.h"
#include "ws_client.h"

TestSuite(programs, SUITE_CFG);

/* GET /chat with that cookie: 200 naming the user, or the status. */
static int chat_page_status(int port, const char *cookie, const char *user)
{
    char *h = cookie_header(cookie);
    struct http_resp r;
    http_get(&r, port, "/chat", HDRS(h));
    free(h);
    int status = r.status;
    if (status == 200)
        cr_assert(strstr(r.body, user) != NULL, "/chat page does not name %s", user);
    resp_free(&r);
    return status;
}

/* "listening on http://HOST:PORT (the real port when 0 was asked)" */
Test(programs, listening_line_names_the_real_port)
{
    struct server s;
    server_start(&s, NULL); /* asserts the line and a non-zero port */
    cr_assert_eq(http_status(s.port, "/hello"), 200);
    server_stop(&s);
}

/* "Each server raises its descriptor soft limit to the hard limit and
 * listens with a backlog of at least 4096." The test lowers its own soft
 * limit first, so the server inherits a low one and must raise it itself. */
Test(programs, raises_nofile_and_listens_with_backlog_4096)
{
    struct rlimit rl, low;
    cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    low = rl;
    low.rlim_cur = rl.rlim_max > 256 ? 256 : rl.rlim_max;
    cr_assert(setrlimit(RLIMIT_NOFILE, &low) == 0);
    struct server s;
    server_start(&s, NULL);
    setrlimit(RLIMIT_NOFILE, &rl);

    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)s.pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    unsigned long long soft = 0, hard = 1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Max open files", 14) == 0)
            sscanf(line + 14, "%llu %llu", &soft, &hard);
    fclose(f);
    cr_assert_eq(soft, hard, "descriptor soft limit %llu, hard %llu", soft, hard);

    /* For a listening socket, ss reports the backlog as Send-Q (capped by
     * net.core.somaxconn, 4096 by default). */
    char *cmd = xasprintf("ss -ltnH 'sport = :%d'", s.port);
    FILE *p = popen(cmd, "r");
    free(cmd);
    cr_assert_not_null(p);
    char state[32];
    unsigned long recvq = 0, backlog = 0;
    cr_assert(fgets(line, sizeof line, p), "ss shows no listener on port %d", s.port);
    pclose(p);
    cr_assert_eq(sscanf(line, "%31s %lu %lu", state, &recvq, &backlog), 3, "ss said: %s", line);
    cr_assert_geq(backlog, 4096, "listen backlog %lu", backlog);
    server_stop(&s);
}

/* "SIGINT/SIGTERM: ... exit 0" */
Test(programs, sigint_exits_0)
{
    struct server s;
    server_start(&s, NULL);
    cr_assert(kill(s.pid, SIGINT) == 0);
    server_wait_exit(&s, STOP_CAP_MS);
}

/* --secret: "any of the three models accepts a cookie another made with the
 * same --secret" — and a server with another key does not. */
Test(programs, secret_file_shared_by_two_servers)
{
    const char key[] = "0123456789abcdef0123456789abcdef-shared-secret";
    char *path = temp_file(key, strlen(key));
    struct server a, b, other;
    server_start(&a, ARGS("--secret", path));
    server_start(&b, ARGS("--secret", path));
    server_start(&other, NULL);

    char *cookie = login(a.port, "coco", "123456");
    cr_assert_eq(chat_page_status(b.port, cookie, "coco"), 200,
                 "a cookie made by a server with the same secret was refused");
    /* The WebSocket accepts it too. */
    struct ws *w = chat_join(b.port, cookie, "coco", NULL, NULL);
    ws_free(w);
    cr_assert_eq(chat_page_status(other.port, cookie, "coco"), 302,
                 "a server with another (random) key accepted the cookie");

    server_stop(&a);
    server_stop(&b);
    server_stop(&other);
    free(cookie);
}

/* "--secret FILE: the file's bytes less one trailing \n or \r\n" */
Test(programs, secret_trailing_newline_is_stripped)
{
    const char key[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"; /* exactly 32 bytes */
    cr_assert_eq(strlen(key), 32);
    char *plain = temp_file(key, 32);
    char *lf = temp_file("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\n", 33);
    char *crlf = temp_file("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\r\n", 34);
    struct server a, b, c;
    server_start(&a, ARGS("--secret", plain));
    server_start(&b, ARGS("--secret", lf));
    server_start(&c, ARGS("--secret", crlf));

    char *cookie = login(b.port, "cc", "123456");
    cr_assert_eq(chat_page_status(a.port, cookie, "cc"), 200, "key+\\n is not the same key");
    cr_assert_eq(chat_page_status(c.port, cookie, "cc"), 200, "key+\\r\\n is not the same key");

    server_stop(&a);
    server_stop(&b);
    server_stop(&c);
    free(cookie);
}

/* "at least 32 bytes, else the server refuses to start" */
Test(programs, secret_under_32_bytes_refused)
{
    free(server_start_must_fail(ARGS("--secret", temp_file("0123456789abcdef0123456789abcde", 31))));
    /* The newline does not count. */
    free(server_start_must_fail(
        ARGS("--secret", temp_file("0123456789abcdef0123456789abcde\n", 32))));
    free(server_start_must_fail(
        ARGS("--secret", temp_file("0123456789abcdef0123456789abcd\r\n", 32))));
    free(server_start_must_fail(ARGS("--secret", temp_file("", 0))));
}

Test(programs, secret_missing_file_refused)
{
    free(server_start_must_fail(ARGS("--secret", "/nonexistent/c10k-secret")));
}

/* --users FILE: its users log in, the demo accounts are gone; blank and #
 * lines are ignored. The password has a space, sent as '+' in the form. */
Test(programs, users_file_replaces_demo_accounts)
{
    char *path = users_file(ARGS("zed", "s3cret pw", "Bob.Smith-2_x", "pw2"), "\n# trailing\n");
    struct server s;
    server_start(&s, ARGS("--users", path));

    /* '+' in an x-www-form-urlencoded body is a space. */
    const char *body = "username=zed&password=s3cret+pw";
    struct http_resp r;
    http_do(&r, s.port, "POST", "/login", HDRS("Content-Type: application/x-www-form-urlencoded"),
            body, strlen(body));
    cr_assert_eq(r.status, 303, "login zed with 's3cret+pw' answered %d", r.status);
    resp_free(&r);

    char *cookie = login(s.port, "Bob.Smith-2_x", "pw2");
    cr_assert_eq(chat_page_status(s.port, cookie, "Bob.Smith-2_x"), 200);
    cr_assert_eq(login_try(s.port, "zed", "wrong", NULL), 401);
    cr_assert_eq(login_try(s.port, "coco", "123456", NULL), 401,
                 "demo account coco exists despite --users");
    cr_assert_eq(login_try(s.port, "aa", "123456", NULL), 401,
                 "demo account aa exists despite --users");
    server_stop(&s);
    free(cookie);
}

/* "a malformed line ... stops the server at start" */
Test(programs, users_file_malformed_line_refused)
{
    static const char *const bad[] = {
        "this is not a user line\n",
        "bad name:pbkdf2-sha256:1000:00112233445566778899aabbccddeeff:"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "x:md5:1000:00112233445566778899aabbccddeeff:"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "x:pbkdf2-sha256:many:00112233445566778899aabbccddeeff:"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "x:pbkdf2-sha256:1000:not-hex:"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "x:pbkdf2-sha256:1000:00112233445566778899aabbccddeeff\n",
        "abcdefghijklmnopqrstuvwxyz0123456:pbkdf2-sha256:1000:00112233445566778899aabbccddeeff:"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *path = users_file(ARGS("good", "pw"), bad[i]);
        char *err = server_start_must_fail(ARGS("--users", path));
        free(err);
    }
}

/* "a repeated name stops the server at start" */
Test(programs, users_file_repeated_name_refused)
{
    char *path = users_file(ARGS("twin", "one", "other", "x", "twin", "two"), NULL);
    free(server_start_must_fail(ARGS("--users", path)));
}

Test(programs, users_file_missing_refused)
{
    free(server_start_must_fail(ARGS("--users", "/nonexistent/c10k-users")));
}

/* GET /hello on a fresh connection; returns the status, or 0 when the
 * connection ended without a response. */
static int hello_status(struct tsock *c)
{
    /* The send may fail on a refused connection; the read tells. */
    (void)tsock_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    struct http_resp r;
    enum rd got = tsock_read_response(c, false, &r, CAP_MS);
    if (got != RD_OK)
        return 0;
    int status = r.status;
    resp_free(&r);
    return status;
}

/* Retries a new connection until it is served 200 (the server may need a
 * moment to notice a close); fails at the cap. */
static void expect_served_again(struct server *s)
{
    int64_t deadline = now_ms() + 20000;
    int last = -1;
    while (remaining_ms(deadline) > 0) {
        struct tsock d;
        tsock_open(&d, s->port);
        last = hello_status(&d);
        tsock_close(&d);
        if (last == 200)
            return;
        struct timespec backoff = {0, 20 * 1000 * 1000};
        nanosleep(&backoff, NULL); /* retry pacing, not synchronisation */
    }
    cr_assert_fail("a new connection was not served after a slot freed (last status %d)", last);
}

/* Open a connection that the server serves: a 503 can mean only that the
 * server has not yet seen an earlier connection's close (retried). */
static void open_admitted(struct tsock *c, int port)
{
    int64_t deadline = now_ms() + 20000;
    int last = -1;
    while (remaining_ms(deadline) > 0) {
        tsock_open(c, port);
        if ((last = hello_status(c)) == 200)
            return;
        tsock_close(c);
        struct timespec backoff = {0, 20 * 1000 * 1000};
        nanosleep(&backoff, NULL); /* retry pacing, not synchronisation */
    }
    cr_assert_fail("no connection was admitted (last status %d)", last);
}

/* "--max-conns N: open client connections of any kind beyond this are refused
 * cleanly (503 + close)" — idle keep-alive connections count. */
Test(programs, max_conns_refuses_beyond_limit_with_503)
{
    struct server s;
    server_start(&s, ARGS("--max-conns", "2"));
    server_model(&s); /* fetch it now: it takes a connection */

    struct tsock a, b, c;
    open_admitted(&a, s.port);
    open_admitted(&b, s.port);
    /* Both stay open and idle (keep-alive). A third is refused. */
    tsock_open(&c, s.port);
    tsock_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    struct http_resp r;
    enum rd got = tsock_read_response(&c, false, &r, CAP_MS);
    cr_assert(got == RD_OK, "the third connection got %s, not a 503", rd_name(got));
    cr_assert_eq(r.status, 503, "the third connection got %d", r.status);
    check_common_headers(&s, &r, false);
    resp_free(&r);
    enum rd end = tsock_wait_eof(&c, CAP_MS, NULL);
    cr_assert(end == RD_EOF || end == RD_RESET, "the refused connection was not closed (%s)",
              rd_name(end));
    tsock_close(&c);

    /* The kept connections still work. */
    cr_assert_eq(hello_status(&a), 200);
    /* Free a slot: a new connection is served again. */
    tsock_close(&b);
    expect_served_again(&s);
    tsock_close(&a);
    server_stop(&s);
}

/* WebSockets count against --max-conns too. */
Test(programs, max_conns_counts_websockets)
{
    struct server s;
    server_start(&s, ARGS("--max-conns", "2"));
    server_model(&s);
    char *cookie = login(s.port, "coco", "123456");
    ws_retry_busy = true;
    struct ws *w1 = chat_join(s.port, cookie, "coco", NULL, NULL);
    struct ws *w2 = chat_join(s.port, cookie, "coco", NULL, NULL);
    expect_event_by(w1, "join", "coco"); /* w2's join */

    struct tsock c;
    tsock_open(&c, s.port);
    cr_assert_eq(hello_status(&c), 503, "a third connection beside two WebSockets was served");
    tsock_close(&c);

    ws_free(w2);
    expect_event_by(w1, "leave", "coco");
    expect_served_again(&s);
    ws_free(w1);
    server_stop(&s);
    free(cookie);
}

/* "SIGINT/SIGTERM: stop accepting, close WebSockets with 1001 ... exit 0" */
Test(programs, sigterm_closes_websockets_with_1001)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    struct ws *w1 = chat_join(s.port, cookie, "coco", NULL, NULL);
    struct ws *w2 = chat_join(s.port, cookie, "coco", NULL, NULL);
    expect_event_by(w1, "join", "coco");

    cr_assert(kill(s.pid, SIGTERM) == 0);
    /* Chat events (e.g. the other's leave) may come before the close. */
    struct ws *both[2] = {w1, w2};
    for (int i = 0; i < 2; i++) {
        struct ws_msg *m;
        while ((m = ws_recv(both[i], CAP_MS))->kind == WS_TEXT)
            ws_msg_free(m);
        cr_assert_eq(m->kind, WS_CLOSE, "client %d got %s instead of close 1001", i,
                     ws_kind_name(m->kind));
        cr_assert_eq(m->code, 1001, "client %d: close %u instead of 1001", i, m->code);
        ws_msg_free(m);
        cr_assert(ws_wait_tcp_close(both[i], CAP_MS), "client %d: no TCP close", i);
    }
    server_wait_exit(&s, STOP_CAP_MS);
    ws_free(w1);
    ws_free(w2);
    free(cookie);
}

/* "a peer that does not answer the close within 2 s is dropped" and the
 * server still exits 0 in time. The client here never reads nor answers. */
Test(programs, sigterm_drops_websocket_that_never_answers_close)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    struct ws *w = chat_join(s.port, cookie, "coco", NULL, NULL);
    cr_assert(kill(s.pid, SIGTERM) == 0);
    server_wait_exit(&s, STOP_CAP_MS);
    ws_free(w);
    free(cookie);
}

/* "finish the responses in flight that can finish in time": a /sleep of 1 s
 * already received when SIGTERM comes is answered, then the server exits 0. */
Test(programs, sigterm_finishes_sleep_in_flight)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    /* Pipelined: when /hello is answered the server holds the /sleep. */
    tsock_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /sleep?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct http_resp r;
    tsock_expect_response(&c, false, &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);

    cr_assert(kill(s.pid, SIGTERM) == 0);
    enum rd got = tsock_read_response(&c, false, &r, CAP_MS);
    cr_assert(got == RD_OK, "the /sleep in flight got %s instead of its response", rd_name(got));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "slept 1000 ms\n");
    resp_free(&r);
    server_wait_exit(&s, STOP_CAP_MS);
    tsock_close(&c);
}

/* "drop the rest, and exit 0 within 5 s": a 30 s /sleep cannot finish. */
Test(programs, sigterm_drops_long_sleep_and_exits)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    tsock_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /sleep?ms=30000 HTTP/1.1\r\nHost: t\r\n\r\n");
    struct http_resp r;
    tsock_expect_response(&c, false, &r);
    resp_free(&r);

    cr_assert(kill(s.pid, SIGTERM) == 0);
    server_wait_exit(&s, STOP_CAP_MS);
    /* Whatever the server said last, the connection is over and it is not
     * a "slept 30000 ms". */
    enum rd got = tsock_read_response(&c, false, &r, CAP_MS);
    if (got == RD_OK) {
        cr_assert_neq(r.status, 200, "a 30 s sleep was answered 200 within the shutdown");
        resp_free(&r);
        got = tsock_wait_eof(&c, CAP_MS, NULL);
    }
    cr_assert(got == RD_EOF || got == RD_RESET, "connection not closed: %s", rd_name(got));
    tsock_close(&c);
}
