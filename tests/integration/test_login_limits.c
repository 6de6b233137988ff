/* "Password checks are bounded: ... failed attempts per source address over
 * time (excess: 429)". Twenty wrong passwords from 127.0.0.1, then the right
 * one from there is refused unchecked, and the right one from 127.0.0.2 is
 * not. (The bound on checks in flight, 503 + Retry-After, needs checks held
 * in flight at will: tests/unit/test_login_limit.c drives it through the
 * core, where a check waits until the test runs it.) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

TestSuite(login_limits, SUITE_CFG);

#define FAILURES_ALLOWED 20 /* common/login_limit.h LOGIN_MAX_FAILURES */
#define FORM "Content-Type: application/x-www-form-urlencoded"

/* POST /login from source address `from` (a 127.0.0.0/8 address). */
static void login_from(struct http_resp *r, int port, const char *from, const char *password)
{
    struct tsock c = {.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    cr_assert(c.fd >= 0);
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, from, &src.sin_addr), 1);
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dst.sin_port = htons((uint16_t)port);
    cr_assert(bind(c.fd, (struct sockaddr *)&src, sizeof src) == 0, "bind %s: %s", from,
              strerror(errno));
    cr_assert(connect(c.fd, (struct sockaddr *)&dst, sizeof dst) == 0, "connect: %s",
              strerror(errno));
    char *body = xasprintf("username=ann&password=%s", password);
    char *req = xasprintf("POST /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" FORM "\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                          port, strlen(body), body);
    cr_assert(tsock_sends(&c, req));
    tsock_expect_response(&c, false, r);
    tsock_close(&c);
    free(req);
    free(body);
}

Test(login_limits, failed_attempts_per_address_then_429)
{
    char *users = users_file(ARGS("ann", "right-pw"), NULL);
    struct server s;
    server_start(&s, ARGS("--users", users));
    struct http_resp r;
    for (int i = 0; i < FAILURES_ALLOWED; i++) {
        login_from(&r, s.port, "127.0.0.1", "wrong");
        cr_assert_eq(r.status, 401, "wrong password %d answered %d", i + 1, r.status);
        resp_free(&r);
    }
    login_from(&r, s.port, "127.0.0.1", "right-pw");
    cr_assert_eq(r.status, 429, "attempt %d (right password) answered %d", FAILURES_ALLOWED + 1,
                 r.status);
    const char *retry = resp_header(&r, "Retry-After");
    cr_assert(retry && atoi(retry) >= 1 && atoi(retry) <= 60, "Retry-After: %s",
              retry ? retry : "(none)");
    cr_assert_null(resp_header(&r, "Set-Cookie"));
    resp_free(&r);
    /* Another source address is not refused for the first one's failures. */
    login_from(&r, s.port, "127.0.0.2", "right-pw");
    cr_assert_eq(r.status, 303, "from 127.0.0.2: %d", r.status);
    resp_free(&r);
    server_stop(&s);
}
