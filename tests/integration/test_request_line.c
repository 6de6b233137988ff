/* CONTRACT.md "Bad input gets a status": the request line and the header
 * section where Debian's non-strict http-parser is lenient (issue 16, item 7).
 * A malformed head is 400 and a well-formed version other than 1.0 and 1.1 is
 * 505, each followed by the close (the stream cannot be trusted after it);
 * what RFC 9112 allows is still served. Raw sockets throughout. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

TestSuite(request_line, SUITE_CFG);

struct bad_head {
    const char *why;
    const char *bytes;
};

/* Each head on its own connection must get `status` and then the close.
 * cr_expect throughout, so that one run lists every case that fails. */
static void expect_refused(int port, const struct bad_head *cases, size_t n, int status)
{
    for (size_t i = 0; i < n; i++) {
        struct tsock c;
        tsock_open(&c, port);
        cr_assert(tsock_sends(&c, cases[i].bytes));
        struct http_resp r;
        enum rd got = tsock_read_response(&c, false, &r, CAP_MS);
        cr_expect(got == RD_OK, "%s: no response (%s)", cases[i].why, rd_name(got));
        if (got == RD_OK) {
            cr_expect_eq(r.status, status, "%s: answered %d, not %d", cases[i].why, r.status,
                         status);
            enum rd end = tsock_wait_eof(&c, CAP_MS, NULL);
            cr_expect(end == RD_EOF || end == RD_RESET, "%s: the connection stays open (%s)",
                      cases[i].why, rd_name(end));
            resp_free(&r);
        }
        tsock_close(&c);
    }
}
#define EXPECT_REFUSED(port, cases, status)                                                    \
    expect_refused(port, cases, sizeof cases / sizeof cases[0], status)

/* The same on a server of its own, stopped after. */
#define SERVER_REFUSES(cases, status)                                                          \
    do {                                                                                       \
        struct server s_;                                                                      \
        server_start(&s_, NULL);                                                               \
        EXPECT_REFUSED(s_.port, cases, status);                                                \
        server_stop(&s_);                                                                      \
    } while (0)

Test(request_line, protocol_name_and_version_shape_400)
{
    static const struct bad_head bad[] = {
        {"HTTQ for HTTP", "GET /hello HTTQ/1.1\r\nHost: t\r\n\r\n"},
        {"HXXX for HTTP", "GET /hello HXXX/1.1\r\nHost: t\r\n\r\n"},
        {"lower-case http", "GET /hello http/1.1\r\nHost: t\r\n\r\n"},
        {"no version (HTTP/0.9 style)", "GET /hello\r\n\r\n"},
        {"major without minor", "GET /hello HTTP/1\r\nHost: t\r\n\r\n"},
        {"two-digit major", "GET /hello HTTP/11.1\r\nHost: t\r\n\r\n"},
        {"space after the version", "GET /hello HTTP/1.1 \r\nHost: t\r\n\r\n"},
        {"two spaces before the target", "GET  /hello HTTP/1.1\r\nHost: t\r\n\r\n"},
        {"two spaces before the version", "GET /hello  HTTP/1.1\r\nHost: t\r\n\r\n"},
        {"tab in the target", "GET /hel\tlo HTTP/1.1\r\nHost: t\r\n\r\n"},
        {"non-ASCII in the target", "GET /hel\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n"},
    };
    struct server s;
    server_start(&s, NULL);
    EXPECT_REFUSED(s.port, bad, 400);
    expect_hello(s.port);
    server_stop(&s);
}

Test(request_line, other_versions_505)
{
    static const struct bad_head other[] = {
        {"HTTP/2.0", "GET /hello HTTP/2.0\r\nHost: t\r\n\r\n"},
        {"HTTP/1.2", "GET /hello HTTP/1.2\r\nHost: t\r\n\r\n"},
        {"HTTP/0.9", "GET /hello HTTP/0.9\r\n\r\n"},
    };
    struct server s;
    server_start(&s, NULL);
    EXPECT_REFUSED(s.port, other, 505);
    /* and it is a whole response like any other */
    struct http_resp r;
    raw_request(s.port, "GET /hello HTTP/3.0\r\nHost: t\r\n\r\n", false, &r);
    cr_assert_eq(r.status, 505);
    check_common_headers(&s, &r, false);
    resp_free(&r);
    server_stop(&s);
}

/* Every line ends in CRLF: http-parser takes a bare LF as a line end and
 * anything after a CR as its LF; a proxy in front may not. */
Test(request_line, bare_lf_and_bare_cr_400)
{
    static const struct bad_head bad[] = {
        {"bare LF ending the request line", "GET /hello HTTP/1.1\nHost: t\r\n\r\n"},
        {"bare LF ending a field", "GET /hello HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n"},
        {"bare LF ending the head", "GET /hello HTTP/1.1\r\nHost: t\r\n\n"},
        {"only LFs", "GET /hello HTTP/1.0\n\n"},
        {"bare CR in the request line", "GET /hello HTTP/1.1\rHost: t\r\n\r\n"},
        {"bare CR in a field value", "GET /hello HTTP/1.1\r\nHost: t\rX-A: b\r\n\r\n"},
        {"bare CR after an empty value", "GET /hello HTTP/1.1\r\nHost: t\r\nX-A:\rX\r\n\r\n"},
        {"CR then not LF ending the head", "GET /hello HTTP/1.1\r\nHost: t\r\n\rX"},
    };
    SERVER_REFUSES(bad, 400);
}

Test(request_line, field_syntax_400)
{
    static const struct bad_head bad[] = {
        {"space before the colon", "GET /hello HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n"},
        {"empty field name", "GET /hello HTTP/1.1\r\nHost: t\r\n: b\r\n\r\n"},
        {"whitespace before the first field", "GET /hello HTTP/1.1\r\n Host: t\r\n\r\n"},
        {"obs-fold", "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n"},
        {"control byte first in a value", "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: \x01\r\n\r\n"},
        {"DEL in a value", "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: b\x7f\r\n\r\n"},
        {"escape in a value", "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: \x1b[2J\r\n\r\n"},
    };
    SERVER_REFUSES(bad, 400);
}

/* RFC 9110 8.6: Content-Length = 1*DIGIT. A list, a sign, a second field or
 * a folded one can mean different lengths to two parsers: 400. */
Test(request_line, content_length_forms_400)
{
    static const struct bad_head bad[] = {
        {"+5", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nabcde"},
        {"-5", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\nabcde"},
        {"0x5", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 0x5\r\n\r\nabcde"},
        {"5, 5", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nabcde"},
        {"5 5", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 5 5\r\n\r\nabcde"},
        {"empty", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\nabcde"},
        {"two fields", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                       "Content-Length: 5\r\n\r\nabcde"},
        {"two different fields", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                                 "Content-Length: 3\r\n\r\nabcde"},
        {"folded", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n 5\r\n\r\nabcde"},
        {"space in the name", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nabcde"},
        {"with chunked", "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
    };
    SERVER_REFUSES(bad, 400);
}

/* What RFC 9112 allows stays served: whitespace around a value (OWS), leading
 * zeros in a length, blank lines before a request, obs-text in a value, both
 * versions. The length is really used: the request pipelined behind each body
 * is answered too. */
Test(request_line, lenient_where_the_rfc_allows)
{
    static const char *const good[] = {
        "GET /hello HTTP/1.1\r\nHost: t\r\nContent-Length:  5\r\n\r\nabcde",
        "GET /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 5  \r\n\r\nabcde",
        "GET /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 005\r\n\r\nabcde",
        "\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\nX-A: caf\xc3\xa9\r\nX-B:\r\n\r\n",
        "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    };
    struct server s;
    server_start(&s, NULL);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct tsock c;
        tsock_open(&c, s.port);
        char *two = xasprintf("%sGET /hello HTTP/1.1\r\nHost: t\r\n\r\n", good[i]);
        cr_assert(tsock_sends(&c, two));
        for (int k = 0; k < 2; k++) {
            struct http_resp r;
            enum rd got = tsock_read_response(&c, false, &r, CAP_MS);
            cr_expect(got == RD_OK, "case %zu, response %d: %s", i, k, rd_name(got));
            if (got != RD_OK)
                break;
            cr_expect_eq(r.status, 200, "case %zu, response %d: %d", i, k, r.status);
            cr_expect_str_eq(r.body, "Hello, world!\n", "case %zu, response %d", i, k);
            resp_free(&r);
        }
        free(two);
        tsock_close(&c);
    }
    server_stop(&s);
}

/* A chunked body's framing: http-parser takes any byte after a chunk's data
 * for its CRLF, any byte after a size line's CR for its LF, and control
 * bytes or LFs in an extension. RFC 9112 7.1: 400. */
#define CHUNKED_LOGIN "POST /login HTTP/1.1\r\nHost: t\r\n"                                  \
                      "Content-Type: application/x-www-form-urlencoded\r\n"                 \
                      "Transfer-Encoding: chunked\r\n\r\n"

Test(request_line, chunked_framing_400)
{
    static const struct bad_head bad[] = {
        {"two bytes for the data's CRLF",
         CHUNKED_LOGIN "d\r\nusername=cocoXY10\r\n&password=123456\r\n0\r\n\r\n"},
        {"bare LF after the data", CHUNKED_LOGIN "d\r\nusername=coco\n0\r\n\r\n"},
        {"a byte for the size line's LF", CHUNKED_LOGIN "d\rXusername=coco\r\n0\r\n\r\n"},
        {"bare LF ending the size line", CHUNKED_LOGIN "d\nusername=coco\r\n0\r\n\r\n"},
        {"control byte in an extension", CHUNKED_LOGIN "d;\x01\r\nusername=coco\r\n0\r\n\r\n"},
        {"bare LF in a trailer", CHUNKED_LOGIN "d\r\nusername=coco\r\n0\r\nX-T: a\n\r\n"},
        {"obs-fold in a trailer", CHUNKED_LOGIN "d\r\nusername=coco\r\n0\r\nX-T: a\r\n b\r\n\r\n"},
    };
    SERVER_REFUSES(bad, 400);
}

/* Well-formed framing is read, extensions and trailers included; trailer
 * fields are dropped, not taken for headers (a second Host among them used
 * to make the request 400, a Cookie would have joined the head's). */
Test(request_line, chunked_extensions_and_trailers_read)
{
    static const char *const good[] = {
        CHUNKED_LOGIN "d;name=value\r\nusername=coco\r\n10 ;x\r\n&password=123456\r\n0\r\n\r\n",
        CHUNKED_LOGIN "d\r\nusername=coco\r\n10\r\n&password=123456\r\n0\r\n"
                      "Host: elsewhere\r\nCookie: session=forged\r\n\r\n",
    };
    struct server s;
    server_start(&s, NULL);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct http_resp r;
        raw_request(s.port, good[i], false, &r);
        cr_expect_eq(r.status, 303, "case %zu answered %d", i, r.status);
        resp_free(&r);
    }
    server_stop(&s);
}
