#include "urlcode.h"

#include "text.h"

#include <limits.h>
#include <string.h>


/* One decoded byte from s[*i..n), advancing *i. Shared by url_decode and the
 * key comparison in form_get so both agree on what a key decodes to. */
static unsigned char next_byte(const char *s, size_t n, size_t *i, bool plus_is_space)
{
    unsigned char c = (unsigned char)s[*i];
    if (c == '%' && n - *i >= 3) {
        int hi = hex_digit((unsigned char)s[*i + 1]);
        int lo = hex_digit((unsigned char)s[*i + 2]);
        if (hi >= 0 && lo >= 0) {
            *i += 3;
            return (unsigned char)(hi << 4 | lo);
        }
    }
    *i += 1;
    if (c == '+' && plus_is_space)
        return ' ';
    return c;
}

long url_decode(const char *src, size_t n, char *out, size_t outlen, bool plus_is_space)
{
    if (outlen == 0)
        return -1;
    /* Decoding only shrinks, so o <= i always: out may alias src. */
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned char b = next_byte(src, n, &i, plus_is_space);
        /* A NUL would silently truncate every C string built from this value
         * (user names, chat text), so it is refused rather than passed on. */
        if (b == 0 || o + 1 >= outlen || o >= (size_t)LONG_MAX) {
            out[0] = '\0';
            return -1;
        }
        out[o++] = (char)b;
    }
    out[o] = '\0';
    return (long)o;
}

/* Does the encoded key k[0..kn) decode to exactly `key`? Streams instead of
 * decoding into a buffer, so no key length is too long to compare. */
static bool key_matches(const char *k, size_t kn, const char *key, size_t keylen)
{
    size_t i = 0, j = 0;
    while (i < kn) {
        if (j == keylen)
            return false;
        unsigned char b = next_byte(k, kn, &i, true);
        if (b == 0 || b != (unsigned char)key[j])
            return false;
        j++;
    }
    return j == keylen;
}

long form_get(const char *s, size_t n, const char *key, char *out, size_t outlen)
{
    if (s == NULL || key == NULL)
        return -1;
    size_t keylen = strlen(key);
    size_t pos = 0;
    while (pos < n) {
        const char *pair = s + pos;
        const char *amp = memchr(pair, '&', n - pos);
        size_t plen = amp ? (size_t)(amp - pair) : n - pos;
        pos += plen + 1; /* may step past n on the last pair; the loop ends */

        if (plen == 0)
            continue; /* "a=1&&b=2" */
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        if (!key_matches(pair, klen, key, keylen))
            continue;
        /* WHATWG urlencoded: a pair without '=' is a name with an empty value. */
        const char *val = eq ? eq + 1 : pair + plen;
        size_t vlen = (size_t)(pair + plen - val);
        if (outlen == 0)
            return -2;
        long r = url_decode(val, vlen, out, outlen, true);
        return r < 0 ? -2 : r;
    }
    return -1;
}
