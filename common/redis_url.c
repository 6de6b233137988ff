#include "redis_url.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "text.h"
#include "urlcode.h"

#define SCHEME "redis://"

int redis_url_parse(const char *url, struct redis_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (strncmp(url, SCHEME, strlen(SCHEME)) != 0) {
        set_err(err, errlen, "want redis://[:PASSWORD@]HOST[:PORT][/DB] (no TLS: rediss:// is "
                             "not supported)");
        return -1;
    }
    const char *p = url + strlen(SCHEME);
    /* The authority ends at the first '/'; userinfo at the last '@' in it,
     * so that a password may hold an unencoded '@'. */
    const char *auth_end = p + strcspn(p, "/");
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        if (*p != ':') {
            set_err(err, errlen, "a user name in the URL is not supported: write :PASSWORD@");
            return -1;
        }
        long n = url_decode(p + 1, (size_t)(at - p - 1), u->password, sizeof u->password, false);
        if (n <= 0) {
            set_err(err, errlen, "the password must be 1..%d bytes (percent-encoded), without NUL",
                    REDIS_URL_MAX_PASSWORD);
            redis_url_wipe(u);
            return -1;
        }
        u->password_len = (size_t)n;
        p = at + 1;
    }

    const char *host = p, *host_end;
    if (*p == '[') { /* [IPv6] */
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (!host_end) {
            set_err(err, errlen, "unclosed '[' in the host");
            goto fail;
        }
        p = host_end + 1;
    } else {
        host_end = host + strcspn(host, ":/");
        p = host_end;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof u->host) {
        set_err(err, errlen, "the host must be 1..%zu bytes", sizeof u->host - 1);
        goto fail;
    }
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c >= 0x7f || c == '@' || c == '[' || c == ']') {
            set_err(err, errlen, "bad character in the host");
            goto fail;
        }
    }
    memcpy(u->host, host, hl);
    u->host[hl] = '\0';

    unsigned long v;
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/");
        if (!parse_decimal(p + 1, n, 5, 65535, &v) || v == 0) {
            set_err(err, errlen, "the port must be 1..65535");
            goto fail;
        }
        u->port = (int)v;
        p += 1 + n;
    } else if (p != auth_end) {
        set_err(err, errlen, "unexpected text after the host");
        goto fail;
    }
    if (*p == '/' && p[1]) {
        if (!parse_decimal(p + 1, strlen(p + 1), 4, 1000, &v)) {
            set_err(err, errlen, "the database must be a number 0..1000");
            goto fail;
        }
        u->db = (int)v;
    }
    return 0;

fail:
    redis_url_wipe(u);
    return -1;
}

bool redis_url_loopback(const struct redis_url *u)
{
    if (strcasecmp(u->host, "localhost") == 0)
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, u->host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    return inet_pton(AF_INET6, u->host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

bool redis_url_secret_span(const char *url, size_t *off, size_t *len)
{
    size_t skip = strncmp(url, SCHEME, strlen(SCHEME)) == 0 ? strlen(SCHEME) : 0;
    const char *auth = url + skip, *auth_end = auth + strcspn(auth, "/");
    const char *at = NULL;
    for (const char *q = auth; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (!at)
        return false;
    /* Whatever stands before the '@' may be (or hold) the password. */
    *off = skip;
    *len = (size_t)(at - auth);
    return true;
}

void redis_url_redacted(const char *url, char *out, size_t outlen)
{
    size_t off, len;
    if (redis_url_secret_span(url, &off, &len))
        set_err(out, outlen, "%.*s***%s", (int)off, url, url + off + len);
    else
        set_err(out, outlen, "%s", url);
}

void redis_url_wipe(struct redis_url *u)
{
    /* volatile: a plain memset of memory that is never read again may be
     * removed by the compiler. */
    volatile char *p = u->password;
    for (size_t i = 0; i < sizeof u->password; i++)
        p[i] = 0;
    u->password_len = 0;
}
