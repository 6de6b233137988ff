/* CONTRACT.md, GET /search: the upstream's content never runs as the chat's
 * origin (issue 16, item 2). Every /search answer says nosniff and sandbox;
 * an upstream status the chat cannot pass on as its own becomes 502. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "harness.h"
#include "upstream.h"

TestSuite(search_origin, SUITE_CFG);

static void expect_contained(const struct http_resp *r, const char *what)
{
    const char *nosniff = resp_header(r, "X-Content-Type-Options");
    const char *csp = resp_header(r, "Content-Security-Policy");
    cr_expect(nosniff && strcasecmp(nosniff, "nosniff") == 0,
              "%s: X-Content-Type-Options is %s", what, nosniff ? nosniff : "missing");
    cr_expect(csp && strcasecmp(csp, "sandbox") == 0, "%s: Content-Security-Policy is %s", what,
              csp ? csp : "missing");
}

/* GET /search?wd=x from a server whose upstream answers `response`
 * verbatim; both stopped before returning, the answer left in r. */
static void search_through(const char *response, struct http_resp *r)
{
    struct upstream u;
    upstream_start_raw(&u, response);
    struct server s;
    server_start_upstream(&s, &u);
    http_get(r, s.port, "/search?wd=x", NULL);
    check_common_headers(&s, r, false);
    server_stop(&s);
    upstream_stop(&u);
}

/* The attack: an upstream that echoes the word back as a page. */
Test(search_origin, html_from_the_upstream_is_sandboxed)
{
    static const char page[] = "<script>fetch('/chat').then(r=>r.text()).then(alert)</script>";
    char *response = xasprintf("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                               "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                               strlen(page), page);
    struct http_resp r;
    search_through(response, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, page);
    expect_contained(&r, "an HTML answer");
    resp_free(&r);
    free(response);
}

/* A Content-Type with a control byte is not copied into our head. */
Test(search_origin, content_type_with_control_bytes_not_relayed)
{
    static const char response[] = "HTTP/1.1 200 OK\r\nContent-Type: text/html\x01\x1b\r\n"
                                   "Content-Length: 2\r\nConnection: close\r\n\r\nhi";
    struct http_resp r;
    search_through(response, &r);
    cr_assert_eq(r.status, 200);
    const char *ct = resp_header(&r, "Content-Type");
    cr_assert(ct && strcmp(ct, "application/octet-stream") == 0, "Content-Type %s", ct);
    expect_contained(&r, "a bad Content-Type");
    resp_free(&r);
}

/* 101, 204, 304 and statuses outside 200-599 cannot be framed (or meant) as
 * the chat's own answer: 502. Any other final status passes through. */
Test(search_origin, unrelayable_upstream_statuses_502)
{
    static const struct {
        const char *word;
        int status;
    } cases[] = {
        {"101", 502}, {"204", 502}, {"304", 502}, {"600", 502}, {"999", 502},
        {"200", 200}, {"201", 201}, {"302", 302}, {"418", 418}, {"599", 599},
    };
    struct upstream u;
    upstream_start(&u, UP_STATUS);
    struct server s;
    server_start_upstream(&s, &u);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/search?wd=%s", cases[i].word);
        struct http_resp r;
        http_get(&r, s.port, path, NULL);
        cr_expect_eq(r.status, cases[i].status, "upstream %s: answered %d, not %d",
                     cases[i].word, r.status, cases[i].status);
        expect_contained(&r, path);
        check_common_headers(&s, &r, false);
        resp_free(&r);
    }
    server_stop(&s);
    upstream_stop(&u);
}

/* The chat's own /search answers (no upstream, no word, unreachable) say so
 * too: nothing on this path runs as the chat. */
Test(search_origin, own_answers_carry_the_headers)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    http_get(&r, s.port, "/search?wd=x", NULL);
    cr_assert_eq(r.status, 503);
    expect_contained(&r, "no upstream");
    resp_free(&r);
    server_stop(&s);

    char *prefix = unreachable_prefix();
    server_start(&s, ARGS("--upstream", prefix));
    http_get(&r, s.port, "/search", NULL);
    cr_assert_eq(r.status, 400);
    expect_contained(&r, "no word");
    resp_free(&r);
    http_get(&r, s.port, "/search?wd=x", NULL);
    cr_assert_eq(r.status, 502);
    expect_contained(&r, "unreachable");
    resp_free(&r);
    server_stop(&s);
    free(prefix);
}
