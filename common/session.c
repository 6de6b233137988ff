#include "session.h"

#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "users.h"

#define MAC_LEN 32
#define MAC_HEX (2 * MAC_LEN)
/* 11 digits reach year 5138: room for any real expiry, and it keeps the
 * value far from time_t overflow whatever a forged cookie says. */
#define EXPIRY_MAX_DIGITS 11
#define EXPIRY_MAX 99999999999LL
/* The cookie's name goes into the MAC: see session.h. */
#define MAC_PREFIX "session|"


int session_key_load(struct session_key *k, const char *path, char *err, size_t errlen)
{
    memset(k, 0, sizeof *k);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, "secret file %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "secret file %s: is a directory", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & (S_IRGRP | S_IROTH))
        fprintf(stderr, "warning: secret file %s is readable by others; chmod 600 it\n", path);

    /* Up to the longest acceptable file (key + "\r\n") plus one byte, so
     * "too long" is detected without reading an unbounded file. */
    unsigned char buf[SESSION_KEY_MAX + 3];
    size_t n = 0;
    while (n < sizeof buf) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            set_err(err, errlen, "secret file %s: %s", path, strerror(errno));
            OPENSSL_cleanse(buf, sizeof buf);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);

    if (n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n')
        n -= 2;
    else if (n >= 1 && buf[n - 1] == '\n')
        n -= 1;
    if (n > SESSION_KEY_MAX || n < SESSION_KEY_MIN) {
        if (n > SESSION_KEY_MAX)
            set_err(err, errlen, "secret file %s: key is longer than %d bytes", path,
                     SESSION_KEY_MAX);
        else
            set_err(err, errlen, "secret file %s: key is %zu bytes, need at least %d", path, n,
                     SESSION_KEY_MIN);
        OPENSSL_cleanse(buf, sizeof buf);
        return -1;
    }
    memcpy(k->bytes, buf, n);
    k->len = n;
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

int session_key_random(struct session_key *k)
{
    memset(k, 0, sizeof *k);
    if (RAND_bytes(k->bytes, SESSION_KEY_MIN) != 1)
        return -1;
    k->len = SESSION_KEY_MIN;
    return 0;
}

static bool key_usable(const struct session_key *k)
{
    /* A zeroed key (len 0) would make every MAC forgeable by anyone. */
    return k != NULL && k->len >= SESSION_KEY_MIN && k->len <= SESSION_KEY_MAX;
}

/* HMAC-SHA256(key, "session|" + body). body is "1|EXPIRY|NAME". */
static bool compute_mac(const struct session_key *k, const char *body, size_t blen,
                        unsigned char mac[MAC_LEN])
{
    char msg[sizeof MAC_PREFIX + 2 + EXPIRY_MAX_DIGITS + 1 + 32];
    size_t plen = sizeof MAC_PREFIX - 1;
    if (blen > sizeof msg - plen)
        return false;
    memcpy(msg, MAC_PREFIX, plen);
    memcpy(msg + plen, body, blen);
    unsigned mlen = 0;
    if (HMAC(EVP_sha256(), k->bytes, (int)k->len, (const unsigned char *)msg, plen + blen, mac,
             &mlen) == NULL ||
        mlen != MAC_LEN)
        return false;
    return true;
}

int session_sign(const struct session_key *k, const char *user, time_t expires, char *out,
                 size_t outlen)
{
    if (out != NULL && outlen > 0)
        out[0] = '\0';
    if (!key_usable(k) || user == NULL || out == NULL || expires < 0 ||
        (long long)expires > EXPIRY_MAX)
        return -1;
    size_t ulen = strnlen(user, 33);
    if (!user_name_valid(user, ulen))
        return -1;

    char body[2 + EXPIRY_MAX_DIGITS + 1 + 32 + 1];
    int blen = snprintf(body, sizeof body, "1|%lld|%s", (long long)expires, user);
    if (blen < 0 || (size_t)blen >= sizeof body)
        return -1;
    unsigned char mac[MAC_LEN];
    if (!compute_mac(k, body, (size_t)blen, mac))
        return -1;
    static const char digits[] = "0123456789abcdef";
    char hex[MAC_HEX + 1];
    for (size_t i = 0; i < MAC_LEN; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 15];
    }
    hex[MAC_HEX] = '\0';
    int n = snprintf(out, outlen, "%s|%s", body, hex);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        return -1;
    }
    return n;
}

static int lowerhex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool session_verify(const struct session_key *k, const char *value, size_t len, time_t now,
                    char user[33])
{
    if (!key_usable(k) || value == NULL || len > SESSION_COOKIE_MAX)
        return false;
    const char *p = value, *end = value + len;

    if (end - p < 2 || p[0] != '1' || p[1] != '|')
        return false;
    p += 2;

    /* Canonical decimal only: exactly what session_sign writes, so there is
     * one spelling per MAC and nothing to overflow. */
    const char *exp_start = p;
    long long expires = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (p - exp_start == EXPIRY_MAX_DIGITS)
            return false;
        expires = expires * 10 + (*p - '0');
        p++;
    }
    size_t exp_len = (size_t)(p - exp_start);
    if (exp_len == 0 || (exp_len > 1 && exp_start[0] == '0') || p == end || *p != '|')
        return false;
    p++;

    const char *name = p;
    const char *bar = memchr(p, '|', (size_t)(end - p));
    if (bar == NULL || !user_name_valid(name, (size_t)(bar - name)))
        return false;
    size_t name_len = (size_t)(bar - name);
    p = bar + 1;

    if (end - p != MAC_HEX)
        return false;
    unsigned char got[MAC_LEN];
    for (size_t i = 0; i < MAC_LEN; i++) {
        int hi = lowerhex((unsigned char)p[2 * i]), lo = lowerhex((unsigned char)p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        got[i] = (unsigned char)(hi << 4 | lo);
    }

    unsigned char want[MAC_LEN];
    if (!compute_mac(k, value, (size_t)(bar - value), want))
        return false;
    bool mac_ok = CRYPTO_memcmp(got, want, MAC_LEN) == 0;
    OPENSSL_cleanse(want, sizeof want);
    if (!mac_ok || (long long)now >= expires)
        return false;

    memcpy(user, name, name_len);
    user[name_len] = '\0';
    return true;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

const char *cookie_find(const char *header, const char *name, size_t *len)
{
    if (len != NULL)
        *len = 0;
    if (header == NULL || name == NULL)
        return NULL;
    size_t nlen = strlen(name);
    if (nlen == 0)
        return NULL;

    const char *p = header;
    while (*p != '\0') {
        while (*p == ';' || is_ows(*p))
            p++;
        const char *start = p;
        const char *semi = strchr(p, ';');
        const char *end = semi ? semi : p + strlen(p);
        p = end;

        const char *eq = memchr(start, '=', (size_t)(end - start));
        if (eq == NULL)
            continue;
        const char *kend = eq;
        while (kend > start && is_ows(kend[-1]))
            kend--;
        if ((size_t)(kend - start) != nlen || memcmp(start, name, nlen) != 0)
            continue;

        const char *v = eq + 1, *vend = end;
        while (v < vend && is_ows(*v))
            v++;
        while (vend > v && is_ows(vend[-1]))
            vend--;
        /* RFC 6265 cookie-value may be wrapped in DQUOTEs; they are not part
         * of the value. */
        if (vend - v >= 2 && v[0] == '"' && vend[-1] == '"') {
            v++;
            vend--;
        }
        if (len != NULL)
            *len = (size_t)(vend - v);
        return v;
    }
    return NULL;
}
