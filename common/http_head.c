#include "http_head.h"

#include <string.h>

#include "http_request.h"

enum {
    S_METHOD,
    S_TARGET_START,
    S_TARGET,
    S_VERSION,
    S_LINE_CR,
    S_FIELD_START,
    S_NAME,
    S_VALUE,
    S_FIELD_CR,
    S_END_CR,
    S_DONE,
};

#define METHOD_MAX 32 /* longer than any method: refused on the next byte */

bool http_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_vchar(unsigned char c) { return c > 0x20 && c < 0x7f; }

/* 0 for a method we serve (RFC 9110 9.3's), else the status: PATCH (RFC 5789)
 * and other tokens are 501. */
static int method_status(const char *m, size_t n)
{
    static const char *const rfc9110[] = {"GET",    "HEAD",    "POST",    "PUT",
                                          "DELETE", "CONNECT", "OPTIONS", "TRACE"};
    if (n == 0)
        return 400;
    for (size_t k = 0; k < sizeof rfc9110 / sizeof rfc9110[0]; k++)
        if (strlen(rfc9110[k]) == n && memcmp(m, rfc9110[k], n) == 0)
            return 0;
    return 501;
}

/* One byte of the version "HTTP/" DIGIT "." DIGIT, at position s->vpos. */
static bool version_char(struct head_scan *s, unsigned char c)
{
    static const char shape[] = "HTTP/9.9";
    char want = shape[s->vpos];
    if (want != '9')
        return c == (unsigned char)want;
    if (c < '0' || c > '9')
        return false;
    if (s->vpos == 5)
        s->major = (uint8_t)(c - '0');
    else
        s->minor = (uint8_t)(c - '0');
    return true;
}

/* The next state after byte c, or a status (>= 100) that ends the scan. */
static int step(struct head_scan *s, const char *p, unsigned char c)
{
    switch (s->state) {
    case S_METHOD:
        if (c == ' ') {
            /* p is NULL only from head_scan_byte, which never scans a
             * request line; a method with nothing to read it from is not
             * one we serve (and the optimiser sees the case covered). */
            int status = p ? method_status(p, s->pos) : 400;
            return status ? status : S_TARGET_START;
        }
        return http_is_tchar(c) && s->pos < METHOD_MAX ? S_METHOD : 400;
    case S_TARGET_START:
    case S_TARGET:
        if (is_vchar(c))
            return S_TARGET;
        /* One SP between the parts (RFC 9112 3); no version is HTTP/0.9, which
         * the contract calls malformed. */
        return c == ' ' && s->state == S_TARGET ? S_VERSION : 400;
    case S_VERSION:
        if (s->vpos == 8)
            return c == '\r' ? S_LINE_CR : 400;
        if (!version_char(s, c))
            return 400;
        s->vpos++;
        return S_VERSION;
    case S_LINE_CR:
        if (c != '\n')
            return 400;
        return s->major == 1 && s->minor <= 1 ? S_FIELD_START : 505;
    case S_FIELD_START:
        if (c == '\r')
            return S_END_CR;
        return http_is_tchar(c) ? S_NAME : 400;
    case S_NAME:
        if (c == ':')
            return S_VALUE;
        return http_is_tchar(c) ? S_NAME : 400;
    case S_VALUE:
        if (c == '\r')
            return S_FIELD_CR;
        return c == '\t' || c == ' ' || is_vchar(c) || c >= 0x80 ? S_VALUE : 400;
    case S_FIELD_CR:
        return c == '\n' ? S_FIELD_START : 400;
    case S_END_CR:
        return c == '\n' ? S_DONE : 400;
    }
    return 400;
}

/* One more byte at s->pos; p is the head from its start (for the method). */
static int advance(struct head_scan *s, const char *p, unsigned char c)
{
    /* A head may be HTTP_MAX_HEAD bytes long, its final CRLF included. */
    if (s->pos >= HTTP_MAX_HEAD)
        return 431;
    int next = step(s, p, c);
    if (next >= 100)
        return next;
    s->state = (uint8_t)next;
    s->pos++;
    return s->state == S_DONE ? HEAD_DONE : HEAD_NEED_MORE;
}

int head_scan(struct head_scan *s, const char *p, size_t n)
{
    int v = s->state == S_DONE ? HEAD_DONE : HEAD_NEED_MORE;
    while (v == HEAD_NEED_MORE && s->pos < n)
        v = advance(s, p, (unsigned char)p[s->pos]);
    return v;
}

void head_scan_trailers(struct head_scan *s)
{
    *s = (struct head_scan){.state = S_FIELD_START};
}

int head_scan_byte(struct head_scan *s, unsigned char c)
{
    if (s->state == S_DONE)
        return HEAD_DONE;
    return advance(s, NULL, c); /* past the request line: p is never read */
}
