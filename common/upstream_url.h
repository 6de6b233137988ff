/* The --upstream prefix, checked once at start.
 *
 * /search fetches PREFIX + urlencode(word). The word is the client's, so the
 * prefix must fix everything but the part the word is meant to fill: with
 * "http://search.internal" the word ".attacker.example" would pick the host,
 * with "http://10.0.0.5:80" the word "80" would pick port 8080. A prefix is
 * accepted only if its authority (host and port) is closed: a '/', '?' or '#'
 * follows it, so that every escaped word lands in the path, query or
 * fragment. curl_easy_escape leaves only [A-Za-z0-9._~-] and %XX, none of
 * which can reopen an authority, and curl's own parser is asked to agree.
 */
#ifndef C10K_UPSTREAM_URL_H
#define C10K_UPSTREAM_URL_H

#include <stddef.h>

/* 0 if PREFIX is a usable upstream prefix; else -1 with the reason in err. */
int upstream_prefix_check(const char *prefix, char *err, size_t errlen);

#endif
