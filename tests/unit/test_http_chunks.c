/* The chunked-body scanner (common/http_chunks.c): RFC 9112 7.1's framing
 * where non-strict http-parser takes any byte for a CR or LF, with the same
 * verdict and end however the body is split. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_chunks.h"
#include "http_request.h"

/* Verdict for p[0..n) given whole, checked against one byte per call; *end
 * as chunks_scan sets it (the byte after the body, when it ended). */
static int scan(const char *p, size_t n, size_t *end)
{
    struct chunk_scan whole = {0}, bytewise = {0};
    size_t e = 0;
    int w = chunks_scan(&whole, p, n, &e);
    int b = CHUNKS_MORE;
    size_t k = 0;
    for (; k < n && b == CHUNKS_MORE; k++) {
        size_t one = 0;
        b = chunks_scan(&bytewise, p + k, 1, &one);
    }
    cr_assert_eq(w, b, "whole %d, byte by byte %d: %.40s", w, b, p);
    if (w == CHUNKS_DONE)
        cr_assert_eq(e, k, "ends at %zu whole, %zu byte by byte", e, k);
    if (end)
        *end = e;
    return w;
}

static int scan_str(const char *s) { return scan(s, strlen(s), NULL); }

Test(http_chunks, well_formed_bodies_end_where_they_end)
{
    static const char *const ok[] = {
        "5\r\nhello\r\n0\r\n\r\n",
        "5;name=value\r\nhello\r\n0\r\n\r\n",
        "5 ;x\r\nhello\r\n000\r\n\r\n",
        "A\r\n0123456789\r\n1\r\n!\r\n0\r\nX-Trailer: yes\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t end;
        cr_expect_eq(scan(ok[i], strlen(ok[i]), &end), CHUNKS_DONE, "%s", ok[i]);
        cr_expect_eq(end, strlen(ok[i]), "%s", ok[i]);
    }
    /* what follows the body is not examined: the next request */
    static const char next[] = "0\r\n\r\nGET / HTTP/1.1\r\n";
    size_t end;
    cr_assert_eq(scan(next, strlen(next), &end), CHUNKS_DONE);
    cr_assert_eq(end, 5);
    cr_assert_eq(scan_str("5\r\nhello\r\n"), CHUNKS_MORE);
    cr_assert_eq(scan_str("5\r\nhel"), CHUNKS_MORE);
}

Test(http_chunks, framing_http_parser_lets_through_400)
{
    static const char *const bad[] = {
        "5\r\nhelloXY0\r\n\r\n",       /* any two bytes taken for the CRLF */
        "5\r\nhello\n0\r\n\r\n",       /* bare LF after the data */
        "5\rXhello\r\n0\r\n\r\n",      /* any byte taken for the size line's LF */
        "5\nhello\r\n0\r\n\r\n",       /* bare LF ending the size line */
        "5;a\nb\r\nhello\r\n0\r\n\r\n", /* LF inside an extension */
        "5;\x01\r\nhello\r\n0\r\n\r\n", /* control byte in an extension */
        "x\r\n",
        "\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "0\r\nX-T: a\n\r\n",           /* trailer: bare LF */
        "0\r\n X-T: a\r\n\r\n",        /* trailer: leading whitespace */
        "0\r\nX T: a\r\n\r\n",         /* trailer: space in the name */
        "0\r\n\rX",                    /* the final CRLF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(scan_str(bad[i]), 400, "case %zu: %s", i, bad[i]);
}

/* The body limit, decided by the scan at the byte that passes it. */
Test(http_chunks, data_over_the_body_limit_413)
{
    cr_assert_eq(scan_str("10001\r\n"), 413);
    cr_assert_eq(scan_str("FFFFFFFFFFFFFFFFFFFF\r\n"), 413);
    char *body = malloc(HTTP_MAX_BODY + 64);
    size_t n = (size_t)sprintf(body, "%x\r\n", HTTP_MAX_BODY);
    memset(body + n, 'a', HTTP_MAX_BODY);
    n += HTTP_MAX_BODY;
    memcpy(body + n, "\r\n0\r\n\r\n", 7);
    size_t end;
    cr_assert_eq(scan(body, n + 7, &end), CHUNKS_DONE, "exactly the limit is read");
    memcpy(body + n, "\r\n1\r\nb\r\n0\r\n\r\n", 13);
    cr_assert_eq(scan(body, n + 13, &end), 413, "one byte more is not");
    free(body);
}
