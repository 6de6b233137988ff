/* The login budget (common/login_limit.c): checks in flight per server,
 * failed attempts per source address; alone, and through a connection. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core_fixture.h"
#include "login_limit.h"

static struct login_peer peer_v4(const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    struct login_peer p;
    login_peer_from(&p, (struct sockaddr *)&sa);
    return p;
}

Test(login_limit, checks_in_flight_are_bounded)
{
    struct login_limit *l = login_limit_new();
    cr_assert_not_null(l);
    struct login_peer p = peer_v4("127.0.0.1");
    int slot[LOGIN_MAX_INFLIGHT + 1];
    unsigned retry = 0;
    for (int i = 0; i < LOGIN_MAX_INFLIGHT; i++)
        cr_assert_eq(login_limit_enter(l, &p, 1000, &slot[i], &retry), LOGIN_GO, "check %d", i);
    cr_assert_eq(login_limit_enter(l, &p, 1000, &slot[LOGIN_MAX_INFLIGHT], &retry), LOGIN_BUSY);
    cr_assert_eq(retry, 1);
    login_limit_leave(l, slot[2], &p, false, 1000);
    cr_assert_eq(login_limit_enter(l, &p, 1000, &slot[2], &retry), LOGIN_GO);
    login_limit_free(l);
}

/* chat-forked: a child killed between enter and leave must not keep its
 * slot; the limiter lives in shared memory, the child really holds it. */
Test(login_limit, a_dead_process_slot_is_taken_back)
{
    struct login_limit *l = login_limit_new();
    struct login_peer p = peer_v4("127.0.0.1");
    int slot;
    unsigned retry;
    for (int i = 0; i < LOGIN_MAX_INFLIGHT - 1; i++)
        cr_assert_eq(login_limit_enter(l, &p, 1000, &slot, &retry), LOGIN_GO);
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0)
        _exit(login_limit_enter(l, &p, 1000, &slot, &retry) == LOGIN_GO ? 0 : 1);
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child got no slot");
    /* Full: three of ours and the dead child's, which is free again. */
    cr_assert_eq(login_limit_enter(l, &p, 1000, &slot, &retry), LOGIN_GO);
    cr_assert_eq(login_limit_enter(l, &p, 1000, &slot, &retry), LOGIN_BUSY);
    login_limit_free(l);
}

Test(login_limit, failures_are_counted_per_address_per_window)
{
    struct login_limit *l = login_limit_new();
    struct login_peer a = peer_v4("127.0.0.1"), b = peer_v4("127.0.0.2");
    int slot;
    unsigned retry = 0;
    for (int i = 0; i < LOGIN_MAX_FAILURES; i++) {
        cr_assert_eq(login_limit_enter(l, &a, 1000 + i, &slot, &retry), LOGIN_GO, "attempt %d", i);
        login_limit_leave(l, slot, &a, true, 1000 + i);
    }
    cr_assert_eq(login_limit_enter(l, &a, 1030, &slot, &retry), LOGIN_REFUSED);
    cr_assert_eq(retry, LOGIN_WINDOW_S - 30, "Retry-After %u", retry);
    /* Another address is not punished for this one. */
    cr_assert_eq(login_limit_enter(l, &b, 1030, &slot, &retry), LOGIN_GO);
    login_limit_leave(l, slot, &b, false, 1030);
    /* Successes do not count; the window ends. */
    cr_assert_eq(login_limit_enter(l, &a, 1000 + LOGIN_WINDOW_S - 1, &slot, &retry),
                 LOGIN_REFUSED);
    cr_assert_eq(login_limit_enter(l, &a, 1000 + LOGIN_WINDOW_S, &slot, &retry), LOGIN_GO);
    login_limit_free(l);
}

/* More addresses than the table holds: the oldest window is forgotten,
 * the newest are kept, nothing grows. */
Test(login_limit, a_full_table_forgets_the_oldest)
{
    struct login_limit *l = login_limit_new();
    int slot;
    unsigned retry;
    char ip[32];
    for (int i = 0; i <= LOGIN_ADDRS; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.1", i / 256, i % 256);
        struct login_peer p = peer_v4(ip);
        for (int k = 0; k < LOGIN_MAX_FAILURES; k++) {
            cr_assert_eq(login_limit_enter(l, &p, 1000 + i, &slot, &retry), LOGIN_GO);
            login_limit_leave(l, slot, &p, true, 1000 + i);
        }
    }
    struct login_peer first = peer_v4("10.0.0.1"), last = peer_v4(ip);
    cr_assert_eq(login_limit_enter(l, &first, 1000 + LOGIN_ADDRS, &slot, &retry), LOGIN_GO);
    login_limit_leave(l, slot, &first, false, 1000 + LOGIN_ADDRS);
    cr_assert_eq(login_limit_enter(l, &last, 1000 + LOGIN_ADDRS, &slot, &retry), LOGIN_REFUSED);
    login_limit_free(l);
}

/* ---- through a connection: POST /login answers ---- */

TestSuite(login_routes, .init = fixture_setup, .fini = fixture_teardown);

static void post_login(struct conn *c, const char *peer_ip, const char *password)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, peer_ip, &sa.sin_addr);
    conn_init(c, &test_app);
    conn_set_peer(c, (struct sockaddr *)&sa);
    char req[256];
    snprintf(req, sizeof req,
             "POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n"
             "username=ann&password=%s", strlen("username=ann&password=") + strlen(password),
             password);
    feed(c, req);
}

static char *finish(struct conn *c)
{
    struct action *a;
    while ((a = conn_action_to_start(c))) {
        a->started = true;
        action_run(a);
        conn_resume(c);
    }
    char *out = drain(c);
    conn_free(c);
    return out;
}

/* Checks are deferred actions: until the model runs them they hold their
 * slot, so the one past the budget is answered at once, unhashed. */
Test(login_routes, past_the_checks_in_flight_503_retry_after)
{
    struct conn c[LOGIN_MAX_INFLIGHT + 1];
    for (int i = 0; i < LOGIN_MAX_INFLIGHT; i++) {
        post_login(&c[i], "127.0.0.1", "secret-pw");
        cr_assert_not_null(conn_action_to_start(&c[i]), "login %d is not a deferred check", i);
    }
    post_login(&c[LOGIN_MAX_INFLIGHT], "127.0.0.1", "secret-pw");
    cr_assert_null(conn_action_to_start(&c[LOGIN_MAX_INFLIGHT]));
    char *out = finish(&c[LOGIN_MAX_INFLIGHT]);
    cr_assert(strncmp(out, "HTTP/1.1 503", 12) == 0, "%.80s", out);
    cr_assert(strstr(out, "\r\nRetry-After: 1\r\n"), "%s", out);
    free(out);
    /* A client that leaves before its check ran gives the slot back. */
    conn_free(&c[0]);
    post_login(&c[0], "127.0.0.1", "secret-pw");
    cr_assert_not_null(conn_action_to_start(&c[0]));
    for (int i = 0; i < LOGIN_MAX_INFLIGHT; i++) {
        out = finish(&c[i]);
        cr_assert(strncmp(out, "HTTP/1.1 303", 12) == 0, "login %d: %.80s", i, out);
        free(out);
    }
}

Test(login_routes, past_the_failures_429_even_with_the_right_password)
{
    struct conn c;
    for (int i = 0; i < LOGIN_MAX_FAILURES; i++) {
        post_login(&c, "192.0.2.7", "wrong");
        char *out = finish(&c);
        cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0, "attempt %d: %.80s", i, out);
        free(out);
    }
    post_login(&c, "192.0.2.7", "secret-pw");
    char *out = finish(&c);
    cr_assert(strncmp(out, "HTTP/1.1 429", 12) == 0, "%.80s", out);
    cr_assert(strstr(out, "\r\nRetry-After: "), "%s", out);
    cr_assert_null(strstr(out, "Set-Cookie"));
    free(out);
    post_login(&c, "192.0.2.8", "secret-pw");
    out = finish(&c);
    cr_assert(strncmp(out, "HTTP/1.1 303", 12) == 0, "another address: %.80s", out);
    free(out);
}
