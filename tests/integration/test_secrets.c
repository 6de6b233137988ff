/* Issue 7, secrets and auth, against every model: session cookies forged
 * with the project's own signer (common/session.c) under a known --secret —
 * expired, moved to another user, signed with another key — are refused
 * on both doors (/chat and /chat/ws), while the same cookie made right is
 * accepted (so the refusals are not an accident); passwords and the key
 * never reach the server's output; a users file others can read is loaded
 * with a warning, a private one without. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "session.h"

TestSuite(secrets, SUITE_CFG);

#define KEY_A "an-integration-test-key-of-40-bytes-AAAA"
#define KEY_B "an-integration-test-key-of-40-bytes-BBBB"

/* "session=VALUE" for user, signed with key, expiring at `expires`. */
static char *signed_cookie(const char *key, const char *user, time_t expires)
{
    struct session_key k;
    memset(&k, 0, sizeof k);
    k.len = strlen(key);
    memcpy(k.bytes, key, k.len);
    char value[SESSION_COOKIE_MAX + 1];
    cr_assert(session_sign(&k, user, expires, value, sizeof value) > 0);
    return xasprintf("session=%s", value);
}

/* What the server makes of a cookie: true if both /chat and /chat/ws take
 * it (200 naming the user, 101), false if both refuse it (302 to /login,
 * 401). Any mix of the two is a failure: the two doors disagree. */
static bool accepted(int port, const char *cookie, const char *user)
{
    char *h = cookie_header(cookie);
    struct http_resp r;
    http_get(&r, port, "/chat", HDRS(h));
    cr_assert(r.status == 200 || r.status == 302, "/chat answered %d", r.status);
    bool page = r.status == 200;
    if (page)
        cr_assert(strstr(r.body, user) != NULL, "/chat does not name %s", user);
    resp_free(&r);
    char *req = xasprintf("GET /chat/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n%s\r\n\r\n",
                          port, h);
    struct tsock c;
    tsock_open(&c, port);
    cr_assert(tsock_sends(&c, req));
    tsock_expect_response(&c, false, &r);
    tsock_close(&c);
    cr_assert(r.status == 101 || r.status == 401, "/chat/ws answered %d", r.status);
    bool ws = r.status == 101;
    resp_free(&r);
    free(req);
    free(h);
    cr_assert_eq(page, ws, "/chat %s the cookie, /chat/ws %s it", page ? "took" : "refused",
                 ws ? "took" : "refused");
    return page;
}

static void start_with_key(struct server *s, const char *key)
{
    char *path = temp_file(key, strlen(key));
    server_start(s, ARGS("--secret", path));
    free(path);
}

/* The control: a cookie this test signs with the server's key is taken,
 * so each refusal below is about the one thing changed. */
Test(secrets, cookie_signed_here_with_the_servers_key_accepted)
{
    struct server s;
    start_with_key(&s, KEY_A);
    char *c = signed_cookie(KEY_A, "coco", time(NULL) + 3600);
    cr_assert(accepted(s.port, c, "coco"), "a well-made cookie was refused");
    free(c);
    server_stop(&s);
}

/* A cookie replayed after its expiry: signed right, expired a second ago
 * (and long ago). */
Test(secrets, expired_cookie_replayed_refused)
{
    struct server s;
    start_with_key(&s, KEY_A);
    time_t now = time(NULL);
    char *c = signed_cookie(KEY_A, "coco", now - 2);
    cr_assert(!accepted(s.port, c, "coco"), "an expired cookie was accepted");
    free(c);
    c = signed_cookie(KEY_A, "coco", 1);
    cr_assert(!accepted(s.port, c, "coco"), "a cookie expired in 1970 was accepted");
    free(c);
    server_stop(&s);
}

/* A real login cookie with its name part changed to another user, the
 * expiry and MAC kept: a user trying to become someone else. */
Test(secrets, cookie_moved_to_another_user_refused)
{
    struct server s;
    start_with_key(&s, KEY_A);
    char *real = login(s.port, "coco", "123456");
    cr_assert(accepted(s.port, real, "coco"));
    static const char *const others[] = {"cc", "aa", "Coco", "coco2", "cocO"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        char *bar = strstr(real, "|coco|");
        cr_assert(bar != NULL, "the cookie does not look like 1|EXPIRY|NAME|MAC: %s", real);
        char *moved = xasprintf("%.*s|%s|%s", (int)(bar - real), real, others[i], bar + 6);
        cr_assert(!accepted(s.port, moved, others[i]), "coco's cookie was taken as %s: %s",
                  others[i], moved);
        free(moved);
    }
    free(real);
    server_stop(&s);
}

/* Signed with another key: a cookie from another deployment, or forged by
 * someone who guessed the format. A login on a server with another key
 * gives one too. */
Test(secrets, cookie_signed_with_another_key_refused)
{
    struct server a, b;
    start_with_key(&a, KEY_A);
    start_with_key(&b, KEY_B);
    char *c = signed_cookie(KEY_B, "coco", time(NULL) + 3600);
    cr_assert(!accepted(a.port, c, "coco"), "a cookie signed with another key was accepted");
    free(c);
    char *from_b = login(b.port, "coco", "123456");
    cr_assert(accepted(b.port, from_b, "coco"));
    cr_assert(!accepted(a.port, from_b, "coco"), "a cookie from a server with another key "
                                                 "was accepted");
    free(from_b);
    server_stop(&a);
    server_stop(&b);
}

/* Everything the server wrote, stdout and stderr, until its exit. */
static char *all_output_until_exit(struct server *s)
{
    int out = dup(s->out_fd);
    int err = open(s->errpath, O_RDONLY | O_CLOEXEC);
    cr_assert(out >= 0 && err >= 0);
    server_stop(s); /* closes its copy of stdout and removes the stderr file */
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    char chunk[4096];
    ssize_t n;
    while ((n = read(out, chunk, sizeof chunk)) > 0)
        fwrite(chunk, 1, (size_t)n, m);
    while ((n = read(err, chunk, sizeof chunk)) > 0)
        fwrite(chunk, 1, (size_t)n, m);
    fclose(m);
    close(out);
    close(err);
    return text;
}

/* Logins right and wrong, a password in a malformed body, in a query
 * string, in a too-large body: none of the passwords, nor the secret key,
 * appears anywhere in what the server printed. */
Test(secrets, passwords_and_key_never_printed)
{
    static const char right[] = "Right-Horse-Battery-7781";
    static const char wrong[] = "Wrong-Staple-Guess-2209";
    char *users = users_file(ARGS("alice", right), NULL);
    char *key = temp_file(KEY_A, strlen(KEY_A));
    struct server s;
    server_start(&s, ARGS("--users", users, "--secret", key));
    cr_assert_eq(login_try(s.port, "alice", wrong, NULL), 401);
    cr_assert_eq(login_try(s.port, "nobody", wrong, NULL), 401);
    free(login(s.port, "alice", right));
    struct http_resp r;
    static const char *const bodies[] = {
        "username=alice&password=Wrong-Staple-Guess-2209&password=%zz",
        "password=Wrong-Staple-Guess-2209",
        "\x01\x02password=Wrong-Staple-Guess-2209\xff",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        http_do(&r, s.port, "POST", "/login",
                HDRS("Content-Type: application/x-www-form-urlencoded"), bodies[i],
                strlen(bodies[i]));
        cr_assert(r.status >= 400 && r.status < 500, "malformed login %zu answered %d", i,
                  r.status);
        resp_free(&r);
    }
    http_get(&r, s.port, "/login?username=alice&password=Wrong-Staple-Guess-2209", NULL);
    resp_free(&r);
    size_t big = 70 * 1024;
    char *body = malloc(big + 1);
    int n = snprintf(body, big + 1, "username=alice&password=%s&pad=", wrong);
    memset(body + n, 'p', big - (size_t)n);
    body[big] = '\0';
    http_do(&r, s.port, "POST", "/login", HDRS("Content-Type: application/x-www-form-urlencoded"),
            body, big);
    cr_assert_eq(r.status, 413);
    resp_free(&r);
    free(body);

    char *out = all_output_until_exit(&s);
    cr_assert(strstr(out, right) == NULL, "the right password was printed:\n%s", out);
    cr_assert(strstr(out, wrong) == NULL, "a wrong password was printed:\n%s", out);
    cr_assert(strstr(out, KEY_A) == NULL, "the secret key was printed:\n%s", out);
    free(out);
    free(users);
    free(key);
}

/* "the users file is read with safe permissions and a warning if it is
 * world-readable": loaded either way (the contract lets it start), with a
 * warning naming the file only when group or others can read it. */
Test(secrets, users_file_readable_by_others_warns)
{
    char *path = users_file(ARGS("alice", "pw"), NULL);
    static const mode_t modes[] = {0600, 0400, 0640, 0644, 0604};
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        cr_assert(chmod(path, modes[i]) == 0);
        struct server s;
        server_start(&s, ARGS("--users", path));
        free(login(s.port, "alice", "pw"));
        char *err = server_stderr(&s);
        bool warned = false;
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            warned = warned || (strstr(line, path) && strstr(line, "warning"));
        bool readable = modes[i] & 044;
        cr_assert_eq(warned, readable, "users file mode %03o: %s", (unsigned)modes[i],
                     readable ? "no warning" : "a warning");
        free(err);
        server_stop(&s);
    }
    free(path);
}
