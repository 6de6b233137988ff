/* Percent-decoding of query strings and x-www-form-urlencoded bodies. */
#ifndef C10K_URLCODE_H
#define C10K_URLCODE_H

#include <stdbool.h>
#include <stddef.h>

/* Decode src[0..n) into out (at most outlen-1 bytes + NUL): %XX becomes the
 * byte, and '+' a space when plus_is_space (always, for query and form). A
 * '%' not followed by two hex digits is kept literally. Returns the decoded
 * length, or -1 if it does not fit or it decodes to a NUL byte. */
long url_decode(const char *src, size_t n, char *out, size_t outlen, bool plus_is_space);

/* Find `key` in "a=1&b=2" (query or form body, keys compared after
 * decoding) and decode its value into out. Returns the value's length, -1
 * when absent, -2 when present but undecodable or too long for out. */
long form_get(const char *s, size_t n, const char *key, char *out, size_t outlen);

#endif
