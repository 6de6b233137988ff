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

/* ---- sessions: valid only while the user is loaded ---- */

#define SECRET "trust-test-secret-0123456789abcdef-0123456789"

/* The two doors a session opens: GET /chat (200, else 302) and the upgrade
 * (101, else 401). Both must agree; returns whether they let it in. */
static bool session_opens(int port, const char *cookie)
{
    char *h = cookie_header(cookie);
    struct http_resp r;
    http_get(&r, port, "/chat", HDRS(h));
    cr_assert(r.status == 200 || r.status == 302, "/chat answered %d", r.status);
    bool page = r.status == 200;
    resp_free(&r);
    char *req = xasprintf("GET /chat/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n\r\n",
                          port, h);
    raw_request(port, req, false, &r);
    cr_assert(r.status == 101 || r.status == 401, "/chat/ws answered %d", r.status);
    bool ws = r.status == 101;
    resp_free(&r);
    free(req);
    free(h);
    cr_assert_eq(page, ws, "/chat and /chat/ws disagree about the cookie");
    return page;
}

static void start_with(struct server *s, const char *secret_path, const char *users_path)
{
    if (users_path)
        server_start(s, ARGS("--secret", secret_path, "--users", users_path));
    else
        server_start(s, ARGS("--secret", secret_path));
}

/* The case: a coco cookie from a demo-accounts run, same --secret,
 * then a run with a users file that has no coco. */
Test(trust, demo_cookie_refused_after_restart_with_users)
{
    char *secret = temp_file(SECRET, strlen(SECRET));
    struct server s;
    start_with(&s, secret, NULL);
    char *cookie = login(s.port, "coco", "123456");
    cr_assert(session_opens(s.port, cookie), "the control: the cookie works where it was made");
    server_stop(&s);

    char *without_coco = users_file(ARGS("bob", "bob-password"), NULL);
    start_with(&s, secret, without_coco);
    cr_assert(!session_opens(s.port, cookie), "coco's demo cookie opened a server without coco");
    struct http_resp r;
    char *h = cookie_header(cookie);
    http_get(&r, s.port, "/", HDRS(h));
    cr_assert_eq(r.status, 302);
    cr_assert_str_eq(resp_location_path(&r), "/login");
    resp_free(&r);
    free(h);
    server_stop(&s);

    /* And the refusal is about the name, not the key: with a coco in the
     * file (another password even) the same cookie is coco's session. */
    char *with_coco = users_file(ARGS("coco", "another-password"), NULL);
    start_with(&s, secret, with_coco);
    cr_assert(session_opens(s.port, cookie), "with coco loaded the cookie was refused");
    server_stop(&s);
    free(cookie);
    free(secret);
    free(without_coco);
    free(with_coco);
}

/* A user removed from the users file loses the session at the next start. */
Test(trust, removed_user_loses_the_session)
{
    char *secret = temp_file(SECRET, strlen(SECRET));
    char *both = users_file(ARGS("alice", "alice-password", "bob", "bob-password"), NULL);
    char *bob_only = users_file(ARGS("bob", "bob-password"), NULL);
    struct server s;
    start_with(&s, secret, both);
    char *alice = login(s.port, "alice", "alice-password");
    char *bob = login(s.port, "bob", "bob-password");
    server_stop(&s);
    start_with(&s, secret, bob_only);
    cr_assert(!session_opens(s.port, alice), "alice, removed, kept her session");
    cr_assert(session_opens(s.port, bob), "bob, still there, lost his");
    server_stop(&s);
    free(alice);
    free(bob);
    free(secret);
    free(both);
    free(bob_only);
}

/* ---- demo accounts stay on loopback unless --demo ---- */

Test(trust, demo_accounts_on_a_public_address_refused)
{
    char *err = server_start_must_fail(ARGS("--listen", "0.0.0.0:0"));
    cr_assert(strstr(err, "demo accounts") && strstr(err, "--demo") && strstr(err, "--users"),
              "the refusal does not say why or what to do:\n%s", err);
    free(err);
}

Test(trust, demo_flag_serves_them_on_a_public_address)
{
    struct server s;
    server_start(&s, ARGS("--listen", "0.0.0.0:0", "--demo"));
    char *cookie = login(s.port, "coco", "123456");
    free(cookie);
    server_stop(&s);
}

/* With a users file there are no demo accounts to protect. */
Test(trust, users_file_on_a_public_address_served)
{
    char *users = users_file(ARGS("bob", "bob-password"), NULL);
    struct server s;
    server_start(&s, ARGS("--listen", "0.0.0.0:0", "--users", users));
    cr_assert_eq(login_try(s.port, "coco", "123456", NULL), 401);
    char *cookie = login(s.port, "bob", "bob-password");
    free(cookie);
    server_stop(&s);
    free(users);
}
