/* Signed, expiring session cookies and the server's secret key.
 *
 * Cookie value:  1|EXPIRY|NAME|HEXMAC
 *   1       format/key version (room for key rotation)
 *   EXPIRY  Unix seconds, decimal
 *   NAME    the user name (never contains '|')
 *   HEXMAC  lowercase hex HMAC-SHA256(key, "session|1|EXPIRY|NAME")
 * The cookie's own name is inside the MAC, so the value cannot be replayed
 * under another cookie. Stateless: any server with the same key accepts it
 * (for a user that server loaded: app.c's session_user checks the users), and
 * logout cannot revoke a copy before it expires.
 */
#ifndef C10K_SESSION_H
#define C10K_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SESSION_MAX_AGE 604800 /* seconds; matches Set-Cookie Max-Age */
#define SESSION_KEY_MIN 32
#define SESSION_KEY_MAX 1024
#define SESSION_COOKIE_MAX 160 /* longest value session_sign can make */

struct session_key {
    unsigned char bytes[SESSION_KEY_MAX];
    size_t len;
};

/* --secret FILE: the file's bytes less one trailing "\n" or "\r\n"; at least
 * 32 bytes. Returns 0, or -1 with a reason in err. */
int session_key_load(struct session_key *k, const char *path, char *err, size_t errlen);
/* No --secret: 32 random bytes from the OS. Returns 0 or -1. */
int session_key_random(struct session_key *k);

/* Write the cookie value for `user` expiring at `expires` into out (NUL-
 * terminated). Returns its length, or -1 if it does not fit. */
int session_sign(const struct session_key *k, const char *user, time_t expires, char *out,
                 size_t outlen);
/* Check a cookie value: well formed, MAC right (CRYPTO_memcmp), not expired
 * at `now`, a valid user name. On success copies the name into user[33]. */
bool session_verify(const struct session_key *k, const char *value, size_t len, time_t now,
                    char user[33]);

/* Find cookie `name` in a Cookie header value ("a=1; session=...; b=2").
 * Returns a pointer into header and sets *len, or NULL. */
const char *cookie_find(const char *header, const char *name, size_t *len);

#endif
