/* CONTRACT.md, the paragraphs under "HTTP routes": versions and keep-alive,
 * pipelining, HEAD, the headers every response has, Origin, and bad input
 * (400/404/405/501/431/413/408, silent closes). Raw sockets throughout. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "harness.h"
#include "ws_client.h"

TestSuite(http_rules, SUITE_CFG);

static void exchange(struct tsock *c, const char *req, bool head, struct http_resp *r)
{
    cr_assert(tsock_sends(c, req), "the server closed before the request was sent");
    tsock_expect_response(c, head, r);
}

static void expect_closed(struct tsock *c, const char *why)
{
    size_t extra = 0;
    enum rd end = tsock_wait_eof(c, CAP_MS, &extra);
    cr_assert(end == RD_EOF, "%s: expected the server to close, got %s", why, rd_name(end));
    cr_assert_eq(extra, 0, "%s: %zu unexpected bytes before the close", why, extra);
}

/* The connection is still open: a further request is answered. */
static void expect_open(struct tsock *c, const char *why)
{
    struct http_resp r;
    cr_assert(tsock_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), "%s: closed", why);
    enum rd got = tsock_read_response(c, false, &r, CAP_MS);
    cr_assert(got == RD_OK, "%s: the connection was not kept alive (%s)", why, rd_name(got));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
}

static bool header_has_token(const struct http_resp *r, const char *name, const char *token)
{
    for (int i = 0; i < r->nhdrs; i++) {
        if (strcasecmp(r->hdrs[i].name, name) != 0)
            continue;
        char *copy = xstrdup(r->hdrs[i].value), *save;
        for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
            if (strcasecmp(t, token) == 0) {
                free(copy);
                return true;
            }
        free(copy);
    }
    return false;
}

/* ---- versions and keep-alive ---- */

Test(http_rules, http10_closes_by_default)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    struct http_resp r;
    exchange(&c, "GET /hello HTTP/1.0\r\n\r\n", false, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "Hello, world!\n");
    cr_assert(!header_has_token(&r, "Connection", "keep-alive"));
    check_common_headers(&s, &r, false);
    resp_free(&r);
    expect_closed(&c, "HTTP/1.0 without keep-alive");
    tsock_close(&c);
    server_stop(&s);
}

Test(http_rules, http10_keep_alive_when_asked_and_echoed)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    struct http_resp r;
    for (int i = 0; i < 2; i++) {
        exchange(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false, &r);
        cr_assert_eq(r.status, 200);
        cr_assert(header_has_token(&r, "Connection", "keep-alive"),
                  "HTTP/1.0 keep-alive is not echoed");
        resp_free(&r);
    }
    /* The last one without keep-alive closes. */
    exchange(&c, "GET /hello HTTP/1.0\r\n\r\n", false, &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    expect_closed(&c, "HTTP/1.0 without keep-alive");
    tsock_close(&c);
    server_stop(&s);
}

Test(http_rules, http11_keeps_alive_by_default)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    for (int i = 0; i < 3; i++)
        expect_open(&c, "HTTP/1.1");
    tsock_close(&c);
    server_stop(&s);
}

Test(http_rules, http11_connection_close_closes)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    /* The request after the "close" one must not be answered. */
    struct http_resp r;
    exchange(&c,
             "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
             "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
             false, &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    expect_closed(&c, "Connection: close");
    tsock_close(&c);
    server_stop(&s);
}

/* "pipelined requests answered in order", a slow one among fast ones. */
Test(http_rules, pipelined_requests_answered_in_order)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    cr_assert(tsock_sends(&c, "GET /sleep?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n"
                             "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                             "GET /sleep?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n"
                             "GET /cpu?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                             "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                             "GET /nonexistent HTTP/1.1\r\nHost: t\r\n\r\n"
                             "GET /sleep?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n"
                             "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
    static const struct {
        bool head;
        int status;
        const char *body;
    } want[] = {
        {false, 200, "slept 300 ms\n"},
        {false, 200, "Hello, world!\n"},
        {false, 200, "slept 0 ms\n"},
        {false, 200, "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925\n"},
        {true, 200, ""},
        {false, 404, NULL},
        {false, 200, "slept 100 ms\n"},
        {false, 200, "Hello, world!\n"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        struct http_resp r;
        enum rd got = tsock_read_response(&c, want[i].head, &r, CAP_MS);
        cr_assert(got == RD_OK, "pipelined response %zu: %s", i, rd_name(got));
        cr_assert_eq(r.status, want[i].status, "pipelined response %zu: status %d", i, r.status);
        if (want[i].body)
            cr_assert_str_eq(r.body, want[i].body, "pipelined response %zu out of order", i);
        resp_free(&r);
    }
    expect_open(&c, "after the pipeline");
    tsock_close(&c);
    server_stop(&s);
}

/* "HEAD everywhere GET is": same status and headers, no body. A GET /hello
 * pipelined after each HEAD proves no body bytes followed it (or, when the
 * server chose to close after the response, that only EOF followed). */
Test(http_rules, head_on_every_get_route)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    struct {
        const char *path;
        bool with_cookie;
        bool fixed_length; /* /stats changes between two requests */
    } routes[] = {
        {"/", false, true},          {"/", true, true},
        {"/login", false, true},     {"/chat", false, true},
        {"/chat", true, true},       {"/chat/ws", true, true},
        {"/chat/ws", false, true},   {"/hello", false, true},
        {"/sleep?ms=1", false, true}, {"/cpu?n=3", false, true},
        {"/search?wd=x", false, true}, {"/stats", false, false},
        {"/nonexistent", false, true},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        const char *path = routes[i].path;
        char *ck = routes[i].with_cookie ? xasprintf("Cookie: %s\r\n", cookie) : xstrdup("");
        char *get = xasprintf("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, ck);
        char *head = xasprintf("HEAD %s HTTP/1.1\r\nHost: t\r\n%s\r\n"
                               "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
                               path, ck);
        struct http_resp g, h, after;
        raw_request(s.port, get, false, &g);
        struct tsock c;
        tsock_open(&c, s.port);
        exchange(&c, head, true, &h);
        if (header_has_token(&h, "Connection", "close")) {
            size_t extra = 0;
            enum rd end = tsock_wait_eof(&c, CAP_MS, &extra);
            cr_assert(end == RD_EOF || end == RD_RESET, "HEAD %s: Connection: close but %s", path,
                      rd_name(end));
            cr_assert_eq(extra, 0, "HEAD %s was followed by %zu body bytes", path, extra);
        } else {
            enum rd got = tsock_read_response(&c, false, &after, CAP_MS);
            cr_assert(got == RD_OK && after.status == 200 &&
                          strcmp(after.body, "Hello, world!\n") == 0,
                      "HEAD %s was followed by body bytes (the next response is garbled: %s)",
                      path, rd_name(got));
            resp_free(&after);
        }
        tsock_close(&c);
        cr_assert_eq(h.status, g.status, "HEAD %s: %d, GET: %d", path, h.status, g.status);
        const char *gl = resp_header(&g, "Content-Length"), *hl = resp_header(&h, "Content-Length");
        cr_assert(hl != NULL, "HEAD %s without Content-Length", path);
        if (routes[i].fixed_length)
            cr_assert_str_eq(hl, gl, "HEAD %s Content-Length %s, GET %s", path, hl, gl);
        const char *gt = resp_header(&g, "Content-Type"), *ht = resp_header(&h, "Content-Type");
        cr_assert((gt == NULL) == (ht == NULL) && (!gt || strcmp(gt, ht) == 0),
                  "HEAD %s Content-Type differs", path);
        const char *gloc = resp_header(&g, "Location"), *hloc = resp_header(&h, "Location");
        cr_assert((gloc == NULL) == (hloc == NULL) && (!gloc || strcmp(gloc, hloc) == 0),
                  "HEAD %s Location differs", path);
        check_common_headers(&s, &h, true);
        resp_free(&g);
        resp_free(&h);
        free(get);
        free(head);
        free(ck);
    }
    server_stop(&s);
    free(cookie);
}

/* "Every response but 101, 204 and 304 has Content-Length; every response
 * has Date and Server: c10k-lab/<model>" — across statuses. */
Test(http_rules, every_response_has_length_date_server)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    char *big = malloc(9001);
    memset(big, 'a', 9000);
    big[9000] = '\0';
    char *requests[] = {
        xasprintf("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"),
        xasprintf("GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
        xasprintf("POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: "
                  "application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\n"
                  "username=coco&password=123456"),
        xasprintf("POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: "
                  "application/x-www-form-urlencoded\r\nContent-Length: 24\r\n\r\n"
                  "username=coco&password=x"),
        xasprintf("POST /login HTTP/1.1\r\nHost: t\r\nOrigin: http://evil.example\r\n"
                  "Content-Length: 0\r\n\r\n"),
        xasprintf("GET /nonexistent HTTP/1.1\r\nHost: t\r\n\r\n"),
        xasprintf("POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"),
        xasprintf("PATCH /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"),
        xasprintf("GET /sleep?ms=x HTTP/1.1\r\nHost: t\r\n\r\n"),
        xasprintf("GET /search?wd=x HTTP/1.1\r\nHost: t\r\n\r\n"),
        xasprintf("GET /chat/ws HTTP/1.1\r\nHost: t\r\n\r\n"),
        xasprintf("GET /chat/ws HTTP/1.1\r\nHost: t\r\nCookie: %s\r\n\r\n", cookie),
        xasprintf("GET /hello HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n"),
        xasprintf("GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", big),
        xasprintf("POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n"),
        xasprintf("GET /stats HTTP/1.1\r\nHost: t\r\n\r\n"),
    };
    static const int want[] = {200, 302, 303, 401, 403, 404, 405, 501,
                               400, 503, 401, 426, 400, 431, 413, 200};
    for (size_t i = 0; i < sizeof requests / sizeof *requests; i++) {
        struct http_resp r;
        raw_request(s.port, requests[i], false, &r);
        cr_assert_eq(r.status, want[i], "request %zu answered %d, expected %d", i, r.status,
                     want[i]);
        check_common_headers(&s, &r, false);
        resp_free(&r);
        free(requests[i]);
    }
    free(big);
    server_stop(&s);
    free(cookie);
}

/* ---- bad input ---- */

/* "malformed 400" — and the connection is not left hanging. */
Test(http_rules, malformed_request_400)
{
    struct server s;
    server_start(&s, NULL);
    static const char *const bad[] = {
        "GET /hello HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /hello HTTP/x.y\r\n\r\n",
        "GET /he llo HTTP/1.1\r\nHost: t\r\n\r\n",
        "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: t\r\n\x01\x02: x\r\n\r\n",
    };
    /* Every case is checked (cr_expect), so one run lists all that fail. */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct tsock c;
        tsock_open(&c, s.port);
        cr_assert(tsock_sends(&c, bad[i]));
        struct http_resp r;
        enum rd got = tsock_read_response(&c, false, &r, CAP_MS);
        cr_expect(got == RD_OK, "malformed request %zu got %s, not a 400", i, rd_name(got));
        if (got == RD_OK) {
            cr_expect_eq(r.status, 400, "malformed request %zu (%.40s...) answered %d", i, bad[i],
                         r.status);
            if (r.status == 400) {
                enum rd end = tsock_wait_eof(&c, CAP_MS, NULL);
                cr_expect(end == RD_EOF || end == RD_RESET,
                          "after the 400 for request %zu the connection stays open (%s)", i,
                          rd_name(end));
            }
            resp_free(&r);
        }
        tsock_close(&c);
    }
    /* Still healthy. */
    cr_assert_eq(http_status(s.port, "/hello"), 200);
    server_stop(&s);
}

Test(http_rules, unknown_path_404)
{
    struct server s;
    server_start(&s, NULL);
    static const char *const paths[] = {"/nonexistent", "/hello/", "/hello/x", "/chatty",
                                        "/HELLO", "/stats/x"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        struct http_resp r;
        http_get(&r, s.port, paths[i], NULL);
        cr_assert_eq(r.status, 404, "%s answered %d", paths[i], r.status);
        resp_free(&r);
    }
    server_stop(&s);
}

/* "a method the route does not take 405 with Allow" */
Test(http_rules, method_not_allowed_405_with_allow)
{
    struct server s;
    server_start(&s, NULL);
    static const struct {
        const char *method, *path;
        const char *allow[3];
    } cases[] = {
        {"POST", "/hello", {"GET", "HEAD", NULL}},
        {"PUT", "/hello", {"GET", "HEAD", NULL}},
        {"DELETE", "/stats", {"GET", "HEAD", NULL}},
        {"PUT", "/login", {"GET", "HEAD", "POST"}},
        {"GET", "/logout", {"POST", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct http_resp r;
        http_do(&r, s.port, cases[i].method, cases[i].path, NULL, "", 0);
        cr_assert_eq(r.status, 405, "%s %s answered %d", cases[i].method, cases[i].path, r.status);
        cr_assert(resp_header(&r, "Allow") != NULL, "405 without Allow");
        for (int k = 0; k < 3 && cases[i].allow[k]; k++)
            cr_assert(header_has_token(&r, "Allow", cases[i].allow[k]),
                      "%s %s: Allow '%s' lacks %s", cases[i].method, cases[i].path,
                      resp_header(&r, "Allow"), cases[i].allow[k]);
        check_common_headers(&s, &r, false);
        resp_free(&r);
    }
    server_stop(&s);
}

/* "a method outside RFC 9110's and PATCH 501 (whatever the path)" */
Test(http_rules, patch_and_unknown_methods_501)
{
    struct server s;
    server_start(&s, NULL);
    static const char *const cases[][2] = {
        {"PATCH", "/hello"}, {"PATCH", "/nonexistent"}, {"FROBNICATE", "/hello"},
        {"FROBNICATE", "/nonexistent"}, {"PROPFIND", "/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *req = xasprintf("%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
                              cases[i][0], cases[i][1]);
        struct http_resp r;
        raw_request(s.port, req, false, &r);
        cr_assert_eq(r.status, 501, "%s %s answered %d", cases[i][0], cases[i][1], r.status);
        check_common_headers(&s, &r, false);
        resp_free(&r);
        free(req);
    }
    server_stop(&s);
}

/* "request line and headers over 8 KiB 431" — and just under passes. */
Test(http_rules, head_over_8k_431)
{
    struct server s;
    server_start(&s, NULL);
    char pad[9001];
    memset(pad, 'a', 9000);
    pad[9000] = '\0';
    struct http_resp r;

    char *req = xasprintf("GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", pad);
    raw_request(s.port, req, false, &r);
    cr_assert_eq(r.status, 431, "a 9000-byte header answered %d", r.status);
    resp_free(&r);
    free(req);

    req = xasprintf("GET /hello?%s HTTP/1.1\r\nHost: t\r\n\r\n", pad);
    raw_request(s.port, req, false, &r);
    cr_assert_eq(r.status, 431, "a 9000-byte request line answered %d", r.status);
    resp_free(&r);
    free(req);

    /* Many small headers add up. */
    char *many = calloc(1, 12000);
    for (int i = 0; i < 100; i++)
        sprintf(many + strlen(many), "X-H%03d: %.80s\r\n", i, pad);
    req = xasprintf("GET /hello HTTP/1.1\r\nHost: t\r\n%s\r\n", many);
    raw_request(s.port, req, false, &r);
    cr_assert_eq(r.status, 431, "100 headers of 90 bytes answered %d", r.status);
    resp_free(&r);
    free(req);
    free(many);

    pad[7000] = '\0';
    req = xasprintf("GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", pad);
    raw_request(s.port, req, false, &r);
    cr_assert_eq(r.status, 200, "a 7000-byte header answered %d", r.status);
    resp_free(&r);
    free(req);
    server_stop(&s);
}

/* "body over 64 KiB 413": decided from Content-Length, before the body. */
Test(http_rules, body_over_64k_413)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    raw_request(s.port,
                "POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: "
                "application/x-www-form-urlencoded\r\nContent-Length: 70000\r\n\r\n",
                false, &r);
    cr_assert_eq(r.status, 413);
    resp_free(&r);
    server_stop(&s);
}

/* Exactly 64 KiB is not "over": it is read and judged (a wrong login). */
Test(http_rules, body_of_exactly_64k_accepted)
{
    struct server s;
    server_start(&s, NULL);
    size_t n = 65536;
    char *body = malloc(n + 1);
    const char *start = "username=nobody&password=";
    memcpy(body, start, strlen(start));
    memset(body + strlen(start), 'p', n - strlen(start));
    body[n] = '\0';
    struct http_resp r;
    http_do(&r, s.port, "POST", "/login", HDRS("Content-Type: application/x-www-form-urlencoded"),
            body, n);
    cr_assert_eq(r.status, 401, "a 65536-byte login body answered %d", r.status);
    resp_free(&r);
    free(body);
    server_stop(&s);
}

/* Where the contract is silent, RFC 9112: a chunked request body is read. */
Test(http_rules, chunked_request_body_is_read)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    raw_request(s.port,
                "POST /login HTTP/1.1\r\nHost: t\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
                "d\r\nusername=coco\r\n10\r\n&password=123456\r\n0\r\n\r\n",
                false, &r);
    cr_assert_eq(r.status, 303, "a chunked login answered %d", r.status);
    resp_free(&r);
    server_stop(&s);
}

/* A head sent one byte per write parses the same. */
Test(http_rules, head_split_into_single_bytes)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    const char *req = "GET /sleep?ms=1&x=y HTTP/1.1\r\nHost: t\r\nX-A: b\r\n\r\n";
    for (size_t i = 0; req[i]; i++)
        cr_assert(tsock_send(&c, req + i, 1));
    struct http_resp r;
    tsock_expect_response(&c, false, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "slept 1 ms\n");
    resp_free(&r);
    /* And a body one byte at a time, too. */
    const char *login = "POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: "
                        "application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\n"
                        "username=coco&password=123456";
    for (size_t i = 0; login[i]; i++)
        cr_assert(tsock_send(&c, login + i, 1));
    tsock_expect_response(&c, false, &r);
    cr_assert_eq(r.status, 303);
    resp_free(&r);
    tsock_close(&c);
    server_stop(&s);
}

/* Sends one byte of `more` each second (pacing, so the connection is never
 * idle) until the server answers. Returns what it answered. */
static enum rd trickle_until_answer(struct tsock *c, const char *more, struct http_resp *r)
{
    int64_t deadline = now_ms() + CAP_MS;
    size_t i = 0;
    while (remaining_ms(deadline) > 0) {
        struct pollfd p = {c->fd, POLLIN, 0};
        int n = poll(&p, 1, 1000);
        if (n > 0)
            return tsock_read_response(c, false, r, CAP_MS);
        if (more[i])
            tsock_send(c, more + i++, 1);
    }
    return RD_TIMEOUT;
}

/* "A request head whose first byte came more than 10 s ago and is still not
 * complete: 408 and close" — bytes keep arriving, so only the head's age
 * can trigger it. */
Test(http_rules, incomplete_head_408_and_close)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    cr_assert(tsock_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Pad: "));
    struct http_resp r;
    enum rd got = trickle_until_answer(&c, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &r);
    cr_assert(got == RD_OK, "an unfinished head got %s, not a 408", rd_name(got));
    cr_assert_eq(r.status, 408);
    check_common_headers(&s, &r, false);
    resp_free(&r);
    enum rd end = tsock_wait_eof(&c, CAP_MS, NULL);
    cr_assert(end == RD_EOF || end == RD_RESET, "not closed after the 408 (%s)", rd_name(end));
    tsock_close(&c);
    server_stop(&s);
}

/* "a body not complete 10 s after its head: 408 and close" */
Test(http_rules, incomplete_body_408_and_close)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    cr_assert(tsock_sends(&c, "POST /login HTTP/1.1\r\nHost: t\r\n"
                             "Content-Type: application/x-www-form-urlencoded\r\n"
                             "Content-Length: 100\r\n\r\nusername=coco"));
    struct http_resp r;
    enum rd got = trickle_until_answer(&c, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", &r);
    cr_assert(got == RD_OK, "an unfinished body got %s, not a 408", rd_name(got));
    cr_assert_eq(r.status, 408);
    resp_free(&r);
    enum rd end = tsock_wait_eof(&c, CAP_MS, NULL);
    cr_assert(end == RD_EOF || end == RD_RESET, "not closed after the 408 (%s)", rd_name(end));
    tsock_close(&c);
    server_stop(&s);
}

/* "A new connection that sends nothing for 10 s ... is closed silently" */
Test(http_rules, silent_new_connection_closed_without_bytes)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    size_t extra = 0;
    enum rd end = tsock_wait_eof(&c, CAP_MS, &extra);
    cr_assert(end == RD_EOF, "a silent connection was not closed with EOF (%s)", rd_name(end));
    cr_assert_eq(extra, 0, "the server sent %zu bytes to a silent connection: %.100s", extra,
                 c.buf);
    tsock_close(&c);
    server_stop(&s);
}

/* "... or a keep-alive connection idle for 15 s between requests, is closed
 * silently" */
Test(http_rules, idle_keepalive_closed_silently)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    struct http_resp r;
    exchange(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", false, &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    size_t extra = 0;
    enum rd end = tsock_wait_eof(&c, CAP_MS + 10000, &extra);
    cr_assert(end == RD_EOF, "an idle keep-alive connection was not closed with EOF (%s)",
              rd_name(end));
    cr_assert_eq(extra, 0, "the server sent %zu bytes before closing: %.100s", extra, c.buf);
    tsock_close(&c);
    server_stop(&s);
}
