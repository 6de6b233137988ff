/* Issue 16, "every trust boundary checked", items 3-5, against every model:
 * what the operator's flags may and may not let a client do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "upstream.h"

TestSuite(trust, SUITE_CFG);

/* ---- --upstream: the word never reaches the authority ---- */

/* "A prefix where the word could change the host or port (no path after the
 * authority) is refused at start." */
Test(trust, upstream_prefix_open_to_the_word_refused)
{
    static const char *const open_prefixes[] = {"http://search.internal", "http://10.0.0.5:80"};
    for (size_t i = 0; i < sizeof open_prefixes / sizeof open_prefixes[0]; i++) {
        char *err = server_start_must_fail(ARGS("--upstream", open_prefixes[i]));
        cr_expect(strstr(err, open_prefixes[i]) && strstr(err, "host or port"),
                  "refusing %s, the server said:\n%s", open_prefixes[i], err);
        free(err);
    }
}

/* A prefix that ends the authority with '?' is enough: the word, even one
 * that looks like a host, goes into the query. */
Test(trust, upstream_prefix_with_only_a_query_accepted)
{
    struct upstream u;
    upstream_start(&u, UP_ECHO);
    char *prefix = xasprintf("http://127.0.0.1:%d?q=", u.port);
    struct server s;
    server_start(&s, ARGS("--upstream", prefix));
    struct http_resp r;
    http_get(&r, s.port, "/search?wd=.attacker.example", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "/?q=.attacker.example");
    resp_free(&r);
    server_stop(&s);
    upstream_stop(&u);
    free(prefix);
}
