/* The head scanner (common/http_head.c): RFC 9112's grammar where Debian's
 * non-strict http-parser is lenient, with the same verdict however the head is
 * split into reads. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "http_head.h"
#include "http_request.h"

/* The verdict for p[0..n) given whole, checked against the same bytes given
 * one more byte per call (the way a connection re-offers its buffer). */
static int scan(const char *p, size_t n)
{
    struct head_scan whole = {0}, bytewise = {0};
    int w = head_scan(&whole, p, n);
    int b = HEAD_NEED_MORE;
    for (size_t k = 1; k <= n && b == HEAD_NEED_MORE; k++)
        b = head_scan(&bytewise, p, k);
    cr_assert_eq(w, b, "whole %d, byte by byte %d: %.60s", w, b, p);
    return w;
}

static int scan_str(const char *s) { return scan(s, strlen(s)); }

struct want {
    const char *head;
    int verdict;
};

static void check_all(const struct want *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(scan_str(cases[i].head), cases[i].verdict, "case %zu \"%s\": got %d, want %d",
                     i, cases[i].head, scan_str(cases[i].head), cases[i].verdict);
}
#define CHECK_ALL(cases) check_all(cases, sizeof cases / sizeof cases[0])

Test(http_head, well_formed_heads_pass)
{
    static const struct want ok[] = {
        {"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n", HEAD_DONE},
        {"GET /hello HTTP/1.0\r\n\r\n", HEAD_DONE},
        {"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", HEAD_DONE},
        {"GET http://h/x?a=b#c HTTP/1.1\r\nHost: h\r\n\r\n", HEAD_DONE},
        /* OWS around values, an empty value, obs-text (UTF-8) in a value */
        {"GET / HTTP/1.1\r\nHost:h\r\nX-A: \t v \t\r\nX-E:\r\nX-U: caf\xc3\xa9\r\n\r\n", HEAD_DONE},
        {"GET /hello HTTP/1.1\r\nHost: h\r\n", HEAD_NEED_MORE},
        {"GET /hello HTTP/1.1\r\nHost: h\r\n\r", HEAD_NEED_MORE},
        {"GET", HEAD_NEED_MORE},
    };
    CHECK_ALL(ok);
}

/* The request line: the protocol name, the version's shape, one SP between
 * the parts, and a version at all (http-parser reads none as HTTP/0.9). */
Test(http_head, request_line_shape)
{
    static const struct want bad[] = {
        {"GET /hello HTTQ/1.1\r\n", 400},
        {"GET /hello HXXX/1.1\r\n", 400},
        {"GET /hello http/1.1\r\n", 400}, /* HTTP-name is case-sensitive (RFC 9112 2.3) */
        {"GET /hello HTTP/1\r\n", 400},
        {"GET /hello HTTP/11.1\r\n", 400},
        {"GET /hello HTTP/1.1x\r\n", 400},
        {"GET /hello HTTP/1.1 \r\n", 400},
        {"GET /hello\r\n\r\n", 400},
        {"GET /hello \r\n\r\n", 400},
        {"GET  /hello HTTP/1.1\r\n", 400},
        {"GET /hello  HTTP/1.1\r\n", 400},
        {"GET /a\tb HTTP/1.1\r\n", 400},
        {"GET /a\fb HTTP/1.1\r\n", 400},
        {"GET /caf\xc3\xa9 HTTP/1.1\r\n", 400},
        {"GET\t/ HTTP/1.1\r\n", 400},
        {"G@T / HTTP/1.1\r\n", 400},
        {" GET / HTTP/1.1\r\n", 400},
        {"PATCH / HTTP/1.1\r\n", 501},
        {"BREW /pot HTTP/1.1\r\n", 501},
        {"BREW /pot HTTQ/1.1\r\n", 501}, /* the method is decided first, as before */
    };
    CHECK_ALL(bad);
}

Test(http_head, well_formed_versions_other_than_1x_505)
{
    static const struct want v[] = {
        {"GET / HTTP/2.0\r\n\r\n", 505},
        {"GET / HTTP/0.9\r\n\r\n", 505},
        {"GET / HTTP/1.2\r\n\r\n", 505},
        {"GET / HTTP/9.9\r\n", 505},
        {"GET / HTTP/2.0\r\r", 400}, /* malformed before it is well formed */
    };
    CHECK_ALL(v);
}

/* Line ends: CRLF only. */
Test(http_head, bare_lf_and_bare_cr_400)
{
    static const struct want bad[] = {
        {"GET / HTTP/1.1\n\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\n\n", 400},
        {"GET / HTTP/1.1\rHost: h\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: \rX\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\n\rX", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\r", 400},
    };
    CHECK_ALL(bad);
}

Test(http_head, field_lines)
{
    static const struct want bad[] = {
        {"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX-A : x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX-\x01: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX-A: \x01\r\n\r\n", 400}, /* the parser skips a value's first byte */
        {"GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX-A: a\x1b[0m\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400},                /* space before the first field */
        {"GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", 400},           /* obs-fold */
        {"GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", 400},          /* obs-fold */
        {"GET / HTTP/1.1\r\nContent-Length: 5\r\n 5\r\n\r\n", 400}, /* a folded length */
    };
    static const char nul_value[] = "GET / HTTP/1.1\r\nX-A: \0\r\n\r\n";
    CHECK_ALL(bad);
    cr_expect_eq(scan(nul_value, sizeof nul_value - 1), 400);
}

/* The scan ends at the empty line: what follows (a body, frames, the next
 * request) is not the head's. */
Test(http_head, stops_at_the_end_of_the_head)
{
    static const char req[] = "POST /login HTTP/1.1\r\nContent-Length: 3\r\n\r\n\x01\n\r";
    struct head_scan s = {0};
    cr_assert_eq(head_scan(&s, req, sizeof req - 1), HEAD_DONE);
    cr_assert_eq(s.pos, sizeof req - 1 - 3);
}

/* A head of HTTP_MAX_HEAD bytes, its final CRLF included, passes; one more
 * byte is 431, decided at that byte whatever comes after. */
Test(http_head, head_limit_431)
{
    char *h = malloc(HTTP_MAX_HEAD + 64);
    const char *start = "GET / HTTP/1.1\r\nX: ";
    size_t n = strlen(start);
    memcpy(h, start, n);
    memset(h + n, 'a', HTTP_MAX_HEAD - n - 4);
    memcpy(h + HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
    cr_assert_eq(scan(h, HTTP_MAX_HEAD), HEAD_DONE);
    memset(h + n, 'a', HTTP_MAX_HEAD - n - 3);
    memcpy(h + HTTP_MAX_HEAD - 3, "\r\n\r\n", 4);
    cr_assert_eq(scan(h, HTTP_MAX_HEAD + 1), 431);
    /* malformed inside the limit is 400 however long the rest */
    h[10] = '\x01';
    cr_assert_eq(scan(h, HTTP_MAX_HEAD + 1), 400);
    free(h);
}

/* The method token: at most 32 characters, decided on the 33rd. */
Test(http_head, long_method_token)
{
    char m[64];
    memset(m, 'A', 32);
    strcpy(m + 32, " / HTTP/1.1\r\n");
    cr_expect_eq(scan_str(m), 501);
    memset(m, 'A', 33);
    strcpy(m + 33, " / HTTP/1.1\r\n");
    cr_expect_eq(scan_str(m), 400);
}
