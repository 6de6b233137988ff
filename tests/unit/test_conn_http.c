/* The connection state machine, fed bytes the way a socket would. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core_fixture.h"

TestSuite(conn_http, .init = fixture_setup, .fini = fixture_teardown);

/* Feed `req` whole, then split at every byte boundary: same output. */
static char *answer(const char *req)
{
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, req);
    char *out = drain(&c);
    conn_free(&c);
    return out;
}

static void assert_split_invariant(const char *req)
{
    char *whole = answer(req);
    size_t n = strlen(req);
    for (size_t cut = 1; cut < n; cut++) {
        struct conn c;
        conn_init(&c, &test_app);
        conn_feed(&c, req, cut);
        conn_feed(&c, req + cut, n - cut);
        char *out = drain(&c);
        cr_assert_str_eq(out, whole, "split at %zu of %zu", cut, n);
        free(out);
        conn_free(&c);
    }
    /* and one byte at a time */
    struct conn c;
    conn_init(&c, &test_app);
    for (size_t i = 0; i < n; i++)
        conn_feed(&c, req + i, 1);
    char *out = drain(&c);
    cr_assert_str_eq(out, whole);
    free(out);
    conn_free(&c);
    free(whole);
}

Test(conn_http, hello)
{
    char *out = answer("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", out);
    cr_assert(strstr(out, "\r\nServer: c10k-lab/test\r\n"));
    cr_assert(strstr(out, "\r\nContent-Length: 14\r\n"));
    cr_assert(strstr(out, "\r\nDate: "));
    cr_assert(strstr(out, "\r\n\r\nHello, world!\n"));
    cr_assert_null(strstr(out, "Connection:"));
    free(out);
}

Test(conn_http, every_split_point_parses_the_same)
{
    assert_split_invariant("GET /hello HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n");
    assert_split_invariant("GET /sleep?ms=abc HTTP/1.1\r\nHost: h\r\n\r\n"
                           "GET /nope HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_split_invariant("POST /logout HTTP/1.1\r\nHost: a:1\r\nOrigin: http://b:1\r\n"
                           "Content-Length: 4\r\n\r\nabcd");
    assert_split_invariant("PATCH /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    /* the head's and the chunked body's framing checks (http_head.c,
     * http_chunks.c), well formed and not, with a request behind */
    assert_split_invariant("POST /logout HTTP/1.1\r\nHost: a:1\r\nTransfer-Encoding: chunked\r\n"
                           "\r\n3;x=y\r\nabc\r\n0\r\nHost: b\r\n\r\n"
                           "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_split_invariant("POST /logout HTTP/1.1\r\nHost: a:1\r\nTransfer-Encoding: chunked\r\n"
                           "\r\n3\r\nabcXY0\r\n\r\nGET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_split_invariant("GET /hello HTTQ/1.1\r\nHost: h\r\n\r\n");
    assert_split_invariant("GET /hello HTTP/2.0\r\nHost: h\r\n\r\n");
}

Test(conn_http, pipelined_answers_in_order)
{
    char *out = answer("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n"
                       "GET /missing HTTP/1.1\r\nHost: h\r\n\r\n"
                       "HEAD /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    char *a = strstr(out, "200 OK"), *b = strstr(out, "404 Not Found");
    char *c = a ? strstr(a + 1, "200 OK") : NULL;
    cr_assert(a && b && c && a < b && b < c, "%s", out);
    /* HEAD: the length of the GET body, and no body */
    cr_assert(strstr(c, "Content-Length: 14\r\n"));
    cr_assert_str_eq(strstr(c, "\r\n\r\n"), "\r\n\r\n");
    free(out);
}

Test(conn_http, deferred_action_holds_the_pipeline)
{
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, "GET /sleep?ms=20 HTTP/1.1\r\nHost: h\r\n\r\nGET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    struct action *a = conn_action_to_start(&c);
    cr_assert_not_null(a);
    cr_assert_eq(a->kind, ACTION_SLEEP);
    cr_assert_eq(a->sleep.ms, 20);
    cr_assert(outq_empty(&c.out), "nothing may be answered before the sleep");
    a->started = true;
    cr_assert_eq(conn_deadline(&c), 0, "no timeout runs while an action is in progress");
    conn_resume(&c);
    char *out = drain(&c);
    char *s = strstr(out, "slept 20 ms\n"), *h = strstr(out, "Hello, world!");
    cr_assert(s && h && s < h, "%s", out);
    free(out);
    conn_free(&c);
}

Test(conn_http, cpu_action_result)
{
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, "GET /cpu?n=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct action *a = conn_action_to_start(&c);
    cr_assert_not_null(a);
    action_run(a);
    conn_resume(&c);
    char *out = drain(&c);
    cr_assert(strstr(out, "\r\n\r\n66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925\n"),
              "%s", out);
    free(out);
    conn_free(&c);
}

static void assert_status(const char *req, const char *status_line)
{
    char *out = answer(req);
    cr_assert(strncmp(out, status_line, strlen(status_line)) == 0, "want %s, got: %.80s",
              status_line, out);
    free(out);
}

Test(conn_http, statuses)
{
    assert_status("GET /nope HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 404");
    assert_status("POST /hello HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405");
    assert_status("PATCH /nope HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 501");
    assert_status("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 501");
    assert_status("PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 501");
    assert_status("\x16\x03\x01\x02 junk\r\n\r\n", "HTTP/1.1 400");
    assert_status("GET /hello HTTP/1.1\r\n\r\n", "HTTP/1.1 400"); /* 1.1 needs Host */
    assert_status("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400");
    assert_status("GET /hello HTTP/1.1\r\nHost h\r\n\r\n", "HTTP/1.1 400");
    assert_status("GET /sleep?ms=60001 HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400");
    assert_status("GET /sleep?ms=-1 HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400");
    assert_status("GET /sleep HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400");
    assert_status("GET /cpu?n=0 HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400");
    assert_status("GET /cpu?n=10000001 HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400");
    assert_status("GET /search?wd=x HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 503");
    assert_status("GET /logout HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 405");
    assert_status("GET http://h/hello HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 200");
}

Test(conn_http, method_not_allowed_names_the_allowed_ones)
{
    char *out = answer("DELETE /login HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert(strstr(out, "405") && strstr(out, "\r\nAllow: GET, HEAD, POST\r\n"), "%s", out);
    free(out);
    out = answer("PUT /logout HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    cr_assert(strstr(out, "\r\nAllow: POST\r\n"), "%s", out);
    free(out);
}

Test(conn_http, head_over_8k_is_431_and_closes)
{
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, "GET /hello HTTP/1.1\r\nHost: h\r\nX-Big: ");
    char big[9000];
    memset(big, 'a', sizeof big);
    conn_feed(&c, big, sizeof big);
    char *out = drain(&c);
    cr_assert(strncmp(out, "HTTP/1.1 431", 12) == 0, "%.60s", out);
    cr_assert(strstr(out, "Connection: close\r\n"));
    cr_assert_eq(c.close, CLOSE_FLUSHED);
    free(out);
    conn_free(&c);
}

Test(conn_http, head_just_under_8k_is_fine)
{
    char req[8192 + 64];
    int n = snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nHost: h\r\nX-Pad: ");
    memset(req + n, 'a', 8000 - (size_t)n);
    strcpy(req + 8000, "\r\n\r\n");
    char *out = answer(req);
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%.60s", out);
    free(out);
}

Test(conn_http, body_over_64k_is_413)
{
    assert_status("POST /login HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n",
                  "HTTP/1.1 413");
    /* chunked: no length up front, caught while the body arrives */
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, "POST /login HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[8192 + 16];
    int hn = snprintf(chunk, sizeof chunk, "2000\r\n");
    memset(chunk + hn, 'x', 8192);
    memcpy(chunk + hn + 8192, "\r\n", 2);
    for (int i = 0; i < 9 && c.close == CLOSE_NO; i++)
        conn_feed(&c, chunk, (size_t)hn + 8194);
    char *out = drain(&c);
    cr_assert(strncmp(out, "HTTP/1.1 413", 12) == 0, "%.60s", out);
    free(out);
    conn_free(&c);
}

Test(conn_http, keep_alive_rules)
{
    char *out = answer("GET /hello HTTP/1.0\r\n\r\n");
    cr_assert(strstr(out, "Connection: close\r\n"), "1.0 closes by default");
    free(out);
    out = answer("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cr_assert(strstr(out, "Connection: keep-alive\r\n"), "1.0 keep-alive is echoed");
    free(out);
    out = answer("GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    cr_assert(strstr(out, "Connection: close\r\n"));
    free(out);

    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, "GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    out = drain(&c);
    cr_assert_eq(c.close, CLOSE_FLUSHED);
    cr_assert_null(strstr(strstr(out, "Hello") + 1, "HTTP/1.1"), "nothing after a close");
    free(out);
    conn_free(&c);
}

Test(conn_http, timeouts)
{
    struct conn c;
    /* a new connection that says nothing: closed silently after 10 s */
    conn_init(&c, &test_app);
    cr_assert_eq(conn_deadline(&c), fake_now + 10000);
    fake_now += 9999;
    conn_on_timeout(&c);
    cr_assert_eq(c.close, CLOSE_NO);
    fake_now += 1;
    conn_on_timeout(&c);
    cr_assert_eq(c.close, CLOSE_NOW);
    cr_assert(outq_empty(&c.out));
    conn_free(&c);

    /* a head still incomplete 10 s after its first byte: 408 */
    conn_init(&c, &test_app);
    feed(&c, "GET /hello HTTP/1.1\r\nHo");
    fake_now += 5000;
    feed(&c, "st: h\r\n");
    fake_now += 5000;
    cr_assert_eq(conn_timer_kind(&c), TIMER_HEAD);
    conn_on_timeout(&c);
    char *out = drain(&c);
    cr_assert(strncmp(out, "HTTP/1.1 408", 12) == 0, "%.40s", out);
    cr_assert_eq(c.close, CLOSE_FLUSHED);
    free(out);
    conn_free(&c);

    /* a body not complete 10 s after the head: 408 */
    conn_init(&c, &test_app);
    feed(&c, "POST /login HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab");
    cr_assert_eq(conn_timer_kind(&c), TIMER_BODY);
    fake_now += 10000;
    conn_on_timeout(&c);
    out = drain(&c);
    cr_assert(strncmp(out, "HTTP/1.1 408", 12) == 0, "%.40s", out);
    free(out);
    conn_free(&c);

    /* keep-alive idle 15 s after the response went out: closed silently */
    conn_init(&c, &test_app);
    feed(&c, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    free(drain(&c));
    cr_assert_eq(conn_timer_kind(&c), TIMER_IDLE);
    cr_assert_eq(conn_deadline(&c), fake_now + 15000);
    fake_now += 15000;
    conn_on_timeout(&c);
    cr_assert_eq(c.close, CLOSE_NOW);
    cr_assert(outq_empty(&c.out));
    conn_free(&c);
}

Test(conn_http, eof_after_a_complete_request_still_answers)
{
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, "GET /sleep?ms=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    conn_eof(&c);
    cr_assert_eq(c.close, CLOSE_NO, "the answer is still owed");
    conn_action_to_start(&c)->started = true;
    conn_resume(&c);
    char *out = drain(&c);
    cr_assert(strstr(out, "slept 1 ms"));
    cr_assert(strstr(out, "Connection: close"));
    cr_assert_eq(c.close, CLOSE_FLUSHED);
    free(out);
    conn_free(&c);
}

Test(conn_http, eof_mid_head_closes)
{
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, "GET /hel");
    conn_eof(&c);
    cr_assert_neq(c.close, CLOSE_NO);
    conn_free(&c);
}

Test(conn_http, abort_drops_what_is_queued)
{
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_not(outq_empty(&c.out));
    conn_abort(&c);
    cr_assert_eq(c.close, CLOSE_NOW);
    cr_assert_not(conn_want_read(&c));
    cr_assert_eq(conn_deadline(&c), 0);
    feed(&c, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n"); /* ignored now */
    conn_free(&c);
}

Test(conn_http, refused_gets_its_answer_then_the_close)
{
    struct conn c;
    conn_init(&c, &test_app);
    conn_refuse(&c, app_busy_response(&test_app));
    cr_assert_eq(c.close, CLOSE_FLUSHED);
    cr_assert_not(conn_want_read(&c));
    char *out = drain(&c);
    cr_assert(strncmp(out, "HTTP/1.1 503 ", 13) == 0, "%s", out);
    free(out);
    conn_free(&c);

    conn_init(&c, &test_app);
    conn_refuse(&c, NULL); /* out of memory for the answer */
    cr_assert_eq(c.close, CLOSE_NOW);
    conn_free(&c);
}

Test(conn_http, query_is_percent_decoded_and_plus_is_space)
{
    char *out = answer("GET /sleep?x=a+b&ms=1%30 HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_str_eq(out, "", "a sleep is deferred, not answered");
    free(out);
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, "GET /sleep?x=a+b&ms=1%30 HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(conn_action_to_start(&c)->sleep.ms, 10);
    conn_free(&c);

    conn_init(&c, &test_app);
    test_app.cfg.upstream = "http://127.0.0.1:1/s?q=";
    feed(&c, "GET /search?wd=a+b%2Fc%C3%A9 HTTP/1.1\r\nHost: h\r\n\r\n");
    struct action *a = conn_action_to_start(&c);
    cr_assert_not_null(a);
    cr_assert_str_eq(a->fetch.url, "http://127.0.0.1:1/s?q=a%20b%2Fc%C3%A9");
    test_app.cfg.upstream = NULL;
    conn_free(&c);
}

Test(conn_http, search_results_map_to_statuses)
{
    struct conn c;
    test_app.cfg.upstream = "http://127.0.0.1:1/?q=";
    const struct { CURLcode rc; bool big; const char *status; } cases[] = {
        {CURLE_OPERATION_TIMEDOUT, false, "HTTP/1.1 504"},
        {CURLE_COULDNT_CONNECT, false, "HTTP/1.1 502"},
        {CURLE_WRITE_ERROR, true, "HTTP/1.1 502"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conn_init(&c, &test_app);
        feed(&c, "GET /search?wd=x HTTP/1.1\r\nHost: h\r\n\r\n");
        struct action *a = conn_action_to_start(&c);
        a->started = true;
        a->fetch.too_big = cases[i].big;
        a->fetch.result = cases[i].rc;
        conn_resume(&c);
        char *out = drain(&c);
        cr_assert(strncmp(out, cases[i].status, 12) == 0, "%zu: %.40s", i, out);
        free(out);
        conn_free(&c);
    }
    test_app.cfg.upstream = NULL;
}

Test(conn_http, whitespace_in_a_field_name_is_400)
{
    char *out = answer("GET /hello HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n");
    cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%.40s", out);
    free(out);
    out = answer("GET /hello HTTP/1.1\r\nHost : t\r\n\r\n");
    cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%.40s", out);
    free(out);
}

/* Found by tests/fuzz (regressions/http/method_token_33_chars_*): a method
 * token of 33 characters that ended a read made the scan look one byte past
 * it (the read is its own heap block here so that ASan sees that), and the
 * same token followed by a space was 501 in one read but 400 split. */
Test(conn_http, overlong_method_is_400_however_split)
{
    assert_split_invariant("NNzNNNNNS^c-WebTCT^ansf-rnEnkedge / HTTP/1.1\r\nHost: h\r\n\r\n");
    char *whole = answer("NNzNNNNNS^c-WebTCT^ansf-rnEnkedge / HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert(strncmp(whole, "HTTP/1.1 400", 12) == 0, "%.40s", whole);
    free(whole);
    whole = answer("NNzNNNNNS^c-WebTCT^ansf-rnEnkedg / HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert(strncmp(whole, "HTTP/1.1 501", 12) == 0, "32 characters: %.40s", whole);
    free(whole);

    static const char tok[] = "NNzNNNNNS^c-WebTCT^ansf-rnEnkedge"; /* 33 tchars */
    struct conn c;
    conn_init(&c, &test_app);
    char *p = malloc(sizeof tok - 1);
    cr_assert_not_null(p);
    memcpy(p, tok, sizeof tok - 1);
    conn_feed(&c, p, sizeof tok - 1);
    free(p);
    char *out = drain(&c);
    cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%.40s", out);
    free(out);
    conn_free(&c);
}

/* Found by tests/fuzz (regressions/http/cookie_lines_over_the_arena): each
 * further Cookie line copied the value so far within the head's arena, so
 * long Cookie lines in a head well under 8 KiB got 431. Kept headers in
 * between must keep their values when the cookie moves past them. */
Test(conn_http, long_cookie_lines_fold_without_431)
{
    char session[256], filler[3001], req[8192];
    cookie_for("ann", session, sizeof session);
    memset(filler, 'x', 3000);
    filler[3000] = '\0';
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nCookie: a=%s\r\nHost: h\r\nCookie: b=%s\r\n%s\r\n",
             filler, filler, session);
    char *out = answer(req);
    cr_assert(strncmp(out, "HTTP/1.1 302", 12) == 0, "%.40s", out);
    cr_assert(strstr(out, "\r\nLocation: /chat\r\n"), "the session cookie was lost");
    free(out);
    snprintf(req, sizeof req,
             "POST /logout HTTP/1.1\r\nCookie: a=%s\r\nHost: h:1\r\nOrigin: http://h:1\r\n"
             "Cookie: b=%s\r\nContent-Length: 0\r\n\r\n", filler, filler);
    out = answer(req);
    cr_assert(strncmp(out, "HTTP/1.1 303", 12) == 0, "Host or Origin moved: %.40s", out);
    free(out);
}

/* Found by tests/fuzz (regressions/http/malformed_past_the_head_limit): a
 * head over 8 KiB with a bad byte past the limit got 400 in one read (the
 * parser scanned past the limit before counting) but 431 byte by byte. */
Test(conn_http, past_the_head_limit_is_431_however_read)
{
    static char req[9000];
    int n = snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nHost: h\r\nX-Long: ");
    memset(req + n, 'a', 8300);
    strcpy(req + n + 8300, "\x01\r\n\r\n");
    char *out = answer(req);
    cr_assert(strncmp(out, "HTTP/1.1 431", 12) == 0, "one read: %.40s", out);
    free(out);
    struct conn c;
    conn_init(&c, &test_app);
    for (size_t i = 0; req[i]; i++)
        conn_feed(&c, req + i, 1);
    out = drain(&c);
    cr_assert(strncmp(out, "HTTP/1.1 431", 12) == 0, "byte by byte: %.40s", out);
    free(out);
    conn_free(&c);
}
