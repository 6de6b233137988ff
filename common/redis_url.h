/* --redis URL: redis://[:PASSWORD@]HOST[:PORT][/DB]
 *
 * HOST is a name, an IPv4 address or an IPv6 address in brackets; PORT
 * 1..65535 (default 6379); DB 0..1000 (default 0; Redis itself has 16
 * unless configured). PASSWORD (1..512 bytes, percent-encoded where it
 * holds '@', '/', ':' or '%') is sent with AUTH on every connection. A user
 * name (Redis 6 ACLs) is not supported: the part before ':' must be empty.
 *
 * The password is a secret: no message made here contains it, and callers
 * must print the URL only through redis_url_redacted.
 */
#ifndef C10K_REDIS_URL_H
#define C10K_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

#define REDIS_URL_MAX_PASSWORD 512

struct redis_url {
    char host[256];
    int port, db;
    char password[REDIS_URL_MAX_PASSWORD + 1]; /* "" when none */
    size_t password_len;
};

/* Returns 0, or -1 with a one-line reason in err (never the password). */
int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen);

/* HOST is this machine: localhost, 127.0.0.0/8 or ::1 (no name lookup: any
 * other name counts as remote). */
bool redis_url_loopback(const struct redis_url *u);

/* url with its password, if it has one, replaced by "***" (for messages
 * about a URL that may not even parse). */
void redis_url_redacted(const char *url, char *out, size_t outlen);

/* Where the secret part of url (the userinfo before '@') is: false if it
 * has none. For hiding it in argv. */
bool redis_url_secret_span(const char *url, size_t *off, size_t *len);

/* Wipe the password from memory that is about to be freed or reused. */
void redis_url_wipe(struct redis_url *u);

#endif
