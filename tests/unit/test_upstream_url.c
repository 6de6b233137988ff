/* --upstream prefixes (common/upstream_url.c): refused where a word could
 * land in the authority, accepted where it lands in the path, query or
 * fragment. */
#include <criterion/criterion.h>

#include "upstream_url.h"

static int check(const char *prefix)
{
    char err[512] = "";
    int rc = upstream_prefix_check(prefix, err, sizeof err);
    cr_assert((rc == 0) == (err[0] == '\0'), "%s: rc %d with message \"%s\"", prefix, rc, err);
    return rc;
}

Test(upstream_url, authority_left_open_refused)
{
    static const char *const bad[] = {
        "http://search.internal", /* wd=.attacker.example picks the host */
        "http://10.0.0.5:80",     /* wd=80 picks port 8080 */
        "http://10.0.0.5:",       /* wd=8080 picks the port */
        "http://user@search.internal",
        "https://[::1]",
        "http://",
        "http:///x",              /* curl reads the host as x */
        "http:/search.internal/", /* curl takes one slash too; we do not */
        "search.internal/",
        "ftp://search.internal/",
        "file:///etc/passwd?",
        "http://bad host/",
        "http://search.internal\\x/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(check(bad[i]), -1, "%s was accepted", bad[i]);
}

Test(upstream_url, authority_closed_accepted)
{
    static const char *const good[] = {
        "http://search.internal/",
        "http://search.internal/lookup?q=",
        "http://search.internal?q=",
        "http://search.internal#",
        "http://10.0.0.5:80/",
        "HTTPS://search.internal/w/",
        "http://[::1]:8080/find?x=1&q=",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_expect_eq(check(good[i]), 0, "%s was refused", good[i]);
}

Test(upstream_url, message_names_the_prefix_and_the_fix)
{
    char err[512];
    cr_assert_eq(upstream_prefix_check("http://10.0.0.5:80", err, sizeof err), -1);
    cr_assert(strstr(err, "http://10.0.0.5:80") && strstr(err, "host or port"), "%s", err);
}
