/* CONTRACT.md "HTTP routes": one or more tests per row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "harness.h"
#include "jsonv.h"
#include "upstream.h"
#include "ws_client.h"

TestSuite(routes, SUITE_CFG);

static void get_cookie(struct http_resp *r, int port, const char *path, const char *cookie)
{
    char *h = cookie_header(cookie);
    http_get(r, port, path, HDRS(h));
    free(h);
}

static void expect_redirect(const struct http_resp *r, int status, const char *path)
{
    cr_assert_eq(r->status, status, "expected %d, got %d", status, r->status);
    const char *loc = resp_location_path(r);
    cr_assert(loc != NULL, "%d without Location", status);
    cr_assert_str_eq(loc, path, "redirected to %s, expected %s", loc, path);
}

static bool content_type_is(const struct http_resp *r, const char *type)
{
    const char *ct = resp_header(r, "Content-Type");
    return ct && strncasecmp(ct, type, strlen(type)) == 0 &&
           (ct[strlen(type)] == '\0' || ct[strlen(type)] == ';' || ct[strlen(type)] == ' ');
}

/* GET path with that cookie must redirect (status) to `to`. */
static void expect_cookie_redirect(int port, const char *path, const char *cookie, int status,
                                   const char *to)
{
    struct http_resp r;
    get_cookie(&r, port, path, cookie);
    expect_redirect(&r, status, to);
    resp_free(&r);
}

/* Flip the last character of a cookie value: a tampered MAC. */
static char *tampered(const char *cookie)
{
    char *t = xstrdup(cookie);
    size_t n = strlen(t);
    t[n - 1] = t[n - 1] == '0' ? '1' : '0';
    return t;
}

/* ---- GET / ---- */

Test(routes, root_without_session_302_to_login)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    http_get(&r, s.port, "/", NULL);
    expect_redirect(&r, 302, "/login");
    check_common_headers(&s, &r, false);
    resp_free(&r);
    expect_cookie_redirect(s.port, "/", "session=1|99999999999|coco|00", 302, "/login");
    server_stop(&s);
}

Test(routes, root_with_session_302_to_chat)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    expect_cookie_redirect(s.port, "/", cookie, 302, "/chat");
    char *bad = tampered(cookie);
    expect_cookie_redirect(s.port, "/", bad, 302, "/login");
    free(bad);
    free(cookie);
    server_stop(&s);
}

/* ---- GET /login ---- */

Test(routes, login_page_200_html_with_fields)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    http_get(&r, s.port, "/login", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(content_type_is(&r, "text/html"), "Content-Type %s", resp_header(&r, "Content-Type"));
    cr_assert(html_has_field(r.body, "username"), "no username field in:\n%s", r.body);
    cr_assert(html_has_field(r.body, "password"), "no password field in:\n%s", r.body);
    check_common_headers(&s, &r, false);
    resp_free(&r);
    server_stop(&s);
}

/* ---- POST /login ---- */

static void check_session_cookie(const char *set_cookie)
{
    cr_assert(strncmp(set_cookie, "session=", 8) == 0 && set_cookie[8] != ';' && set_cookie[8],
              "Set-Cookie without a session value: %s", set_cookie);
    bool http_only = false, lax = false, path = false, max_age = false;
    char *copy = xstrdup(set_cookie);
    char *save;
    strtok_r(copy, ";", &save); /* session=... */
    for (char *a = strtok_r(NULL, ";", &save); a; a = strtok_r(NULL, ";", &save)) {
        while (*a == ' ')
            a++;
        if (strcasecmp(a, "HttpOnly") == 0)
            http_only = true;
        else if (strcasecmp(a, "SameSite=Lax") == 0)
            lax = true;
        else if (strcasecmp(a, "Path=/") == 0)
            path = true;
        else if (strcasecmp(a, "Max-Age=604800") == 0)
            max_age = true;
    }
    free(copy);
    cr_assert(http_only, "no HttpOnly in %s", set_cookie);
    cr_assert(lax, "no SameSite=Lax in %s", set_cookie);
    cr_assert(path, "no Path=/ in %s", set_cookie);
    cr_assert(max_age, "no Max-Age=604800 in %s", set_cookie);
}

static void post_login(struct http_resp *r, int port, const char *body, const char *const *extra)
{
    const char *hdrs[8] = {"Content-Type: application/x-www-form-urlencoded"};
    size_t n = 1;
    for (size_t i = 0; extra && extra[i] && n < 7; i++)
        hdrs[n++] = extra[i];
    hdrs[n] = NULL;
    http_do(r, port, "POST", "/login", hdrs, body, strlen(body));
}

/* POST /login with that body and those extra headers must log in: 303 to
 * /chat. */
static void expect_login_passes(int port, const char *body, const char *const *extra)
{
    struct http_resp r;
    post_login(&r, port, body, extra);
    expect_redirect(&r, 303, "/chat");
    resp_free(&r);
}

Test(routes, login_right_credentials_303_with_cookie)
{
    struct server s;
    server_start(&s, NULL);
    static const char *const users[] = {"coco", "cc", "aa"};
    for (int i = 0; i < 3; i++) {
        char *body = xasprintf("username=%s&password=123456", users[i]);
        struct http_resp r;
        post_login(&r, s.port, body, NULL);
        free(body);
        expect_redirect(&r, 303, "/chat");
        const char *sc = resp_header(&r, "Set-Cookie");
        cr_assert(sc != NULL, "303 without Set-Cookie");
        check_session_cookie(sc);
        check_common_headers(&s, &r, false);
        resp_free(&r);
    }
    server_stop(&s);
}

/* "Wrong: 401 with the login page and an error message" */
Test(routes, login_wrong_password_401_with_login_page)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp page, r;
    http_get(&page, s.port, "/login", NULL);
    post_login(&r, s.port, "username=coco&password=1234567", NULL);
    cr_assert_eq(r.status, 401);
    cr_assert(resp_header(&r, "Set-Cookie") == NULL, "a failed login set a cookie");
    cr_assert(content_type_is(&r, "text/html"));
    cr_assert(html_has_field(r.body, "username") && html_has_field(r.body, "password"),
              "the 401 is not the login page:\n%s", r.body);
    cr_assert(r.body_len != page.body_len || memcmp(r.body, page.body, r.body_len) != 0,
              "the 401 page carries no error message (identical to GET /login)");
    check_common_headers(&s, &r, false);
    resp_free(&r);
    resp_free(&page);
    server_stop(&s);
}

Test(routes, login_unknown_user_401)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    post_login(&r, s.port, "username=nobody&password=123456", NULL);
    cr_assert_eq(r.status, 401);
    cr_assert(resp_header(&r, "Set-Cookie") == NULL);
    resp_free(&r);
    /* Missing fields are wrong credentials too, never a crash. */
    post_login(&r, s.port, "username=coco", NULL);
    cr_assert(r.status == 401 || r.status == 400, "missing password answered %d", r.status);
    resp_free(&r);
    post_login(&r, s.port, "", NULL);
    cr_assert(r.status == 401 || r.status == 400, "empty form answered %d", r.status);
    resp_free(&r);
    server_stop(&s);
}

/* "An Origin header that does not match Host: 403" */
Test(routes, login_origin_mismatch_403)
{
    struct server s;
    server_start(&s, NULL);
    char *other_port = xasprintf("Origin: http://127.0.0.1:%d", s.port + 1);
    const char *const origins[] = {"Origin: http://evil.example", other_port,
                                   "Origin: http://evil.example:80", "Origin: http://127.0.0.1"};
    for (int i = 0; i < 4; i++) {
        struct http_resp r;
        post_login(&r, s.port, "username=coco&password=123456", HDRS(origins[i]));
        cr_assert_eq(r.status, 403, "%s answered %d", origins[i], r.status);
        cr_assert(resp_header(&r, "Set-Cookie") == NULL, "%s still logged in", origins[i]);
        check_common_headers(&s, &r, false);
        resp_free(&r);
    }
    server_stop(&s);
}

/* "null never matches" */
Test(routes, login_origin_null_403)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    post_login(&r, s.port, "username=coco&password=123456", HDRS("Origin: null"));
    cr_assert_eq(r.status, 403);
    resp_free(&r);
    server_stop(&s);
}

/* "Origin matches when its host and port equal Host's, case-insensitively
 * (scheme ignored)" */
Test(routes, login_origin_matching_host_passes)
{
    struct server s;
    server_start(&s, NULL);
    char *same = xasprintf("Origin: http://127.0.0.1:%d", s.port);
    char *https = xasprintf("Origin: https://127.0.0.1:%d", s.port);
    char *host = xasprintf("Host: Chat.Example.ORG:%d", s.port);
    char *mixed = xasprintf("Origin: HTTP://chat.EXAMPLE.org:%d", s.port);
    expect_login_passes(s.port, "username=coco&password=123456", HDRS(same));
    expect_login_passes(s.port, "username=coco&password=123456", HDRS(https));
    expect_login_passes(s.port, "username=coco&password=123456", HDRS(host, mixed));
    server_stop(&s);
}

/* "a request without Origin passes" */
Test(routes, login_without_origin_passes)
{
    struct server s;
    server_start(&s, NULL);
    expect_login_passes(s.port, "username=aa&password=123456", NULL);
    server_stop(&s);
}

/* ---- POST /logout ---- */

Test(routes, logout_clears_cookie_303_to_login)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    char *h = cookie_header(cookie);
    struct http_resp r;
    http_do(&r, s.port, "POST", "/logout", HDRS(h), "", 0);
    expect_redirect(&r, 303, "/login");
    const char *sc = resp_header(&r, "Set-Cookie");
    cr_assert(sc != NULL, "logout does not clear the cookie");
    cr_assert(strncmp(sc, "session=", 8) == 0, "logout sets another cookie: %s", sc);
    const char *ma = strcasestr(sc, "Max-Age=");
    const char *ex = strcasestr(sc, "Expires=");
    bool cleared = (ma && atol(ma + 8) <= 0) || (ex && strstr(ex, "1970"));
    cr_assert(cleared, "the logout cookie does not expire: %s", sc);
    check_common_headers(&s, &r, false);
    resp_free(&r);
    /* "stateless: a copied cookie stays valid until it expires" */
    get_cookie(&r, s.port, "/chat", cookie);
    cr_assert_eq(r.status, 200, "a copied cookie stopped working after logout");
    resp_free(&r);
    free(h);
    server_stop(&s);
    free(cookie);
}

Test(routes, logout_origin_mismatch_403)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    char *h = cookie_header(cookie);
    struct http_resp r;
    http_do(&r, s.port, "POST", "/logout", HDRS(h, "Origin: http://evil.example"), "", 0);
    cr_assert_eq(r.status, 403);
    cr_assert(resp_header(&r, "Set-Cookie") == NULL, "a cross-origin logout cleared the cookie");
    resp_free(&r);
    http_do(&r, s.port, "POST", "/logout", HDRS(h, "Origin: null"), "", 0);
    cr_assert_eq(r.status, 403);
    resp_free(&r);
    free(h);
    server_stop(&s);
    free(cookie);
}

/* ---- GET /chat ---- */

Test(routes, chat_page_with_session_names_user)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    struct http_resp r;
    get_cookie(&r, s.port, "/chat", cookie);
    cr_assert_eq(r.status, 200);
    cr_assert(content_type_is(&r, "text/html"));
    cr_assert(strstr(r.body, "coco") != NULL, "the chat page does not name coco");
    check_common_headers(&s, &r, false);
    resp_free(&r);
    char *cc = login(s.port, "cc", "123456");
    get_cookie(&r, s.port, "/chat", cc);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "coco") == NULL, "cc's chat page names coco");
    resp_free(&r);
    server_stop(&s);
    free(cookie);
    free(cc);
}

/* "The page's script opens the WebSocket at /chat/ws on the page's own host
 * and scheme ... and never inserts chat text as HTML" — checked on the page
 * as served: no HTML-parsing sinks at all. */
Test(routes, chat_page_script_uses_own_host_and_no_html_sinks)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    struct http_resp r;
    get_cookie(&r, s.port, "/chat", cookie);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "/chat/ws") != NULL, "the chat page never opens /chat/ws");
    cr_assert(strstr(r.body, "location.host") != NULL,
              "the chat page does not build its WebSocket URL from location.host");
    static const char *const sinks[] = {"innerHTML", "outerHTML", "insertAdjacentHTML",
                                        "document.write", "createContextualFragment"};
    for (size_t i = 0; i < sizeof sinks / sizeof *sinks; i++)
        cr_assert(strstr(r.body, sinks[i]) == NULL, "the chat page uses %s", sinks[i]);
    resp_free(&r);
    server_stop(&s);
    free(cookie);
}

Test(routes, chat_page_without_session_302_to_login)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    http_get(&r, s.port, "/chat", NULL);
    expect_redirect(&r, 302, "/login");
    resp_free(&r);
    char *cookie = login(s.port, "coco", "123456");
    char *bad = tampered(cookie);
    expect_cookie_redirect(s.port, "/chat", bad, 302, "/login");
    expect_cookie_redirect(s.port, "/chat", "session=garbage", 302, "/login");
    server_stop(&s);
    free(cookie);
    free(bad);
}

/* ---- GET /chat/ws: Origin 403, then session 401, then Upgrade 426 ---- */

static int upgrade_status(int port, const char *extra_headers, struct http_resp *out)
{
    char *req = xasprintf("GET /chat/ws HTTP/1.1\r\n"
                          "Host: 127.0.0.1:%d\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "%s\r\n",
                          port, extra_headers);
    struct http_resp r;
    raw_request(port, req, false, &r);
    free(req);
    int status = r.status;
    if (out)
        *out = r;
    else
        resp_free(&r);
    return status;
}

Test(routes, ws_bad_origin_403_even_without_session)
{
    struct server s;
    server_start(&s, NULL);
    cr_assert_eq(upgrade_status(s.port, "Origin: http://evil.example\r\n", NULL), 403);
    char *cookie = login(s.port, "coco", "123456");
    char *h = xasprintf("Cookie: %s\r\nOrigin: http://evil.example\r\n", cookie);
    cr_assert_eq(upgrade_status(s.port, h, NULL), 403);
    free(h);
    cr_assert_eq(upgrade_status(s.port, "Origin: null\r\n", NULL), 403);
    server_stop(&s);
    free(cookie);
}

Test(routes, ws_without_session_401)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    cr_assert_eq(upgrade_status(s.port, "", &r), 401);
    cr_assert(resp_header(&r, "Sec-WebSocket-Accept") == NULL);
    check_common_headers(&s, &r, false);
    resp_free(&r);
    /* A same-origin request without a session is still 401. */
    char *o = xasprintf("Origin: http://127.0.0.1:%d\r\n", s.port);
    cr_assert_eq(upgrade_status(s.port, o, NULL), 401);
    free(o);
    server_stop(&s);
}

Test(routes, ws_forged_or_tampered_cookie_401)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    char *bad = tampered(cookie);
    char *h = xasprintf("Cookie: %s\r\n", bad);
    cr_assert_eq(upgrade_status(s.port, h, NULL), 401, "a tampered cookie was accepted");
    free(h);
    cr_assert_eq(upgrade_status(s.port,
                                "Cookie: session=1|9999999999|coco|"
                                "0000000000000000000000000000000000000000000000000000000000000000\r\n",
                                NULL),
                 401, "a forged cookie was accepted");
    cr_assert_eq(upgrade_status(s.port, "Cookie: session=coco\r\n", NULL), 401);
    server_stop(&s);
    free(cookie);
    free(bad);
}

Test(routes, ws_session_without_upgrade_426)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    char *h = cookie_header(cookie);
    struct http_resp r;
    http_get(&r, s.port, "/chat/ws", HDRS(h));
    cr_assert_eq(r.status, 426);
    check_common_headers(&s, &r, false);
    resp_free(&r);
    http_do(&r, s.port, "HEAD", "/chat/ws", HDRS(h), NULL, 0);
    cr_assert_eq(r.status, 426);
    resp_free(&r);
    /* Without a session the 401 comes first, and a bad Origin before that. */
    cr_assert_eq(http_status(s.port, "/chat/ws"), 401);
    http_get(&r, s.port, "/chat/ws", HDRS(h, "Origin: http://evil.example"));
    cr_assert_eq(r.status, 403, "bad Origin without Upgrade answered %d", r.status);
    resp_free(&r);
    free(h);
    server_stop(&s);
    free(cookie);
}

/* A same-origin upgrade with a session succeeds (101, checked in ws_connect). */
Test(routes, ws_same_origin_upgrade_101)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    char *h = xasprintf("Cookie: %s\r\nOrigin: http://127.0.0.1:%d\r\n", cookie, s.port);
    struct http_resp r;
    cr_assert_eq(upgrade_status(s.port, h, &r), 101);
    /* RFC 6455 4.2.2: the accept for the RFC's sample key. */
    const char *acc = resp_header(&r, "Sec-WebSocket-Accept");
    cr_assert(acc && strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "Accept %s", acc);
    cr_assert(resp_header(&r, "Content-Length") == NULL ||
                  strcmp(resp_header(&r, "Content-Length"), "0") == 0,
              "a 101 with a body length");
    check_common_headers(&s, &r, false); /* Date and Server on the 101 too */
    resp_free(&r);
    free(h);
    server_stop(&s);
    free(cookie);
}

/* Where the contract is silent, RFC 6455 4.2.2: a handshake without
 * Sec-WebSocket-Key is refused (400), an unsupported version gets an error
 * with Sec-WebSocket-Version: 13. */
Test(routes, ws_bad_handshake_refused_per_rfc6455)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    char *req = xasprintf("GET /chat/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Version: 13\r\nCookie: %s\r\n\r\n",
                          s.port, cookie);
    struct http_resp r;
    raw_request(s.port, req, false, &r);
    cr_assert_eq(r.status, 400, "no Sec-WebSocket-Key answered %d", r.status);
    resp_free(&r);
    free(req);
    req = xasprintf("GET /chat/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 8\r\nCookie: %s\r\n\r\n",
                    s.port, cookie);
    raw_request(s.port, req, false, &r);
    cr_assert(r.status == 426 || r.status == 400, "version 8 answered %d", r.status);
    const char *v = resp_header(&r, "Sec-WebSocket-Version");
    cr_assert(v && strstr(v, "13"), "no Sec-WebSocket-Version: 13 in the refusal");
    resp_free(&r);
    free(req);
    server_stop(&s);
    free(cookie);
}

/* ---- GET /hello ---- */

Test(routes, hello_exact_body_text_plain)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    http_get(&r, s.port, "/hello", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 14);
    cr_assert_str_eq(r.body, "Hello, world!\n");
    cr_assert(content_type_is(&r, "text/plain"), "Content-Type %s", resp_header(&r, "Content-Type"));
    check_common_headers(&s, &r, false);
    resp_free(&r);
    /* Query strings do not change the route. */
    http_get(&r, s.port, "/hello?x=1", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "Hello, world!\n");
    resp_free(&r);
    server_stop(&s);
}

/* ---- GET /sleep?ms=N ---- */

static void expect_body(int port, const char *path, int status, const char *body)
{
    struct http_resp r;
    http_get(&r, port, path, NULL);
    cr_assert_eq(r.status, status, "%s answered %d, expected %d", path, r.status, status);
    if (body)
        cr_assert_str_eq(r.body, body, "%s", path);
    resp_free(&r);
}

Test(routes, sleep_answers_slept_n_ms)
{
    struct server s;
    server_start(&s, NULL);
    expect_body(s.port, "/sleep?ms=0", 200, "slept 0 ms\n");
    expect_body(s.port, "/sleep?ms=25", 200, "slept 25 ms\n");
    expect_body(s.port, "/sleep?x=1&ms=7&y=2", 200, "slept 7 ms\n");
    expect_body(s.port, "/sleep?ms=3&wd=zzz", 200, "slept 3 ms\n");
    server_stop(&s);
}

/* "without holding up other clients beyond what the model allows": every
 * configuration under test allows more than one request at a time (a pool
 * of 64, a thread or a process per connection, an event loop; --gil lets go
 * of its lock around the sleep), so while one client's /sleep is in
 * flight, other clients are answered, and the sleeper is not. */
Test(routes, sleep_does_not_hold_up_other_clients)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock sleeper;
    tsock_open(&sleeper, s.port);
    /* The /hello ahead of it, answered, says the server has the
     * connection's bytes in hand: the sleep comes next, on the same path. */
    cr_assert(tsock_sends(&sleeper, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                                    "GET /sleep?ms=30000 HTTP/1.1\r\nHost: t\r\n\r\n"));
    struct http_resp r;
    tsock_expect_response(&sleeper, false, &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    for (int i = 0; i < 3; i++)
        expect_hello(s.port); /* each on a connection of its own */
    enum rd got = tsock_fill(&sleeper, 0);
    cr_assert(got == RD_TIMEOUT && sleeper.len == 0,
              "the sleeping client got %zu bytes (%s) before its 30 s were up", sleeper.len,
              rd_name(got));
    tsock_close(&sleeper);
    server_stop(&s);
}

Test(routes, sleep_out_of_range_or_missing_400)
{
    struct server s;
    server_start(&s, NULL);
    const char *bad[] = {"/sleep?ms=60001", "/sleep?ms=-1", "/sleep?ms=abc", "/sleep",
                         "/sleep?ms=", "/sleep?other=5", "/sleep?ms=1.5", "/sleep?ms=99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct http_resp r;
        http_get(&r, s.port, bad[i], NULL);
        cr_assert_eq(r.status, 400, "%s answered %d", bad[i], r.status);
        check_common_headers(&s, &r, false);
        resp_free(&r);
    }
    server_stop(&s);
}

/* ---- GET /cpu?n=N ---- */

Test(routes, cpu_rounds_of_sha256)
{
    struct server s;
    server_start(&s, NULL);
    expect_body(s.port, "/cpu?n=1", 200,
                "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925\n");
    char want[66];
    cpu_expected(2, want);
    expect_body(s.port, "/cpu?n=2", 200, want);
    cpu_expected(1000, want);
    expect_body(s.port, "/cpu?n=1000", 200, want);
    cpu_expected(5, want);
    expect_body(s.port, "/cpu?foo=bar&n=5", 200, want);
    server_stop(&s);
}

Test(routes, cpu_out_of_range_400)
{
    struct server s;
    server_start(&s, NULL);
    const char *bad[] = {"/cpu?n=0", "/cpu?n=10000001", "/cpu?n=-1", "/cpu?n=abc", "/cpu",
                         "/cpu?n="};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_body(s.port, bad[i], 400, NULL);
    server_stop(&s);
}

/* ---- GET /search?wd=W ---- */

static void search_with(enum upstream_mode mode, const char *path, int status, const char *body)
{
    struct upstream u;
    upstream_start(&u, mode);
    struct server s;
    server_start_upstream(&s, &u);
    struct http_resp r;
    http_get(&r, s.port, path, NULL);
    cr_assert_eq(r.status, status, "%s answered %d, expected %d (body %.200s)", path, r.status,
                 status, r.body);
    if (body)
        cr_assert_str_eq(r.body, body);
    check_common_headers(&s, &r, false);
    resp_free(&r);
    server_stop(&s);
    upstream_stop(&u);
}

Test(routes, search_passes_upstream_status_and_body)
{
    search_with(UP_ECHO, "/search?wd=hello", 200, "/lookup?q=hello");
}

Test(routes, search_passes_upstream_404)
{
    search_with(UP_NOT_FOUND, "/search?wd=hello", 404, UPSTREAM_404_BODY);
}

/* "The word is escaped as curl_easy_escape does"; "In a query string + is
 * a space". */
Test(routes, search_urlencodes_word)
{
    struct upstream u;
    upstream_start(&u, UP_ECHO);
    struct server s;
    server_start_upstream(&s, &u);
    static const char *const cases[][2] = {
        {"/search?wd=a+b%2Fc", "/lookup?q=a%20b%2Fc"},
        {"/search?wd=%E2%82%AC~._-AZaz09", "/lookup?q=%E2%82%AC~._-AZaz09"},
        {"/search?wd=x%26y%3Dz%3F%23", "/lookup?q=x%26y%3Dz%3F%23"},
        {"/search?other=1&wd=%2B%25", "/lookup?q=%2B%25"},
        {"/search?wd=%21%27%28%29%2A", "/lookup?q=%21%27%28%29%2A"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct http_resp r;
        http_get(&r, s.port, cases[i][0], NULL);
        cr_assert_eq(r.status, 200, "%s answered %d", cases[i][0], r.status);
        cr_assert_str_eq(r.body, cases[i][1], "%s reached the upstream as %s", cases[i][0], r.body);
        resp_free(&r);
    }
    server_stop(&s);
    upstream_stop(&u);
}

Test(routes, search_unreachable_upstream_502)
{
    char *prefix = unreachable_prefix();
    struct server s;
    server_start(&s, ARGS("--upstream", prefix));
    expect_body(s.port, "/search?wd=x", 502, NULL);
    server_stop(&s);
    free(prefix);
}

Test(routes, search_upstream_closing_without_answer_502)
{
    search_with(UP_RESET, "/search?wd=x", 502, NULL);
}

Test(routes, search_body_over_1mib_502)
{
    search_with(UP_HUGE, "/search?wd=x", 502, NULL);
}

Test(routes, search_without_upstream_503)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    http_get(&r, s.port, "/search?wd=x", NULL);
    cr_assert_eq(r.status, 503);
    check_common_headers(&s, &r, false);
    resp_free(&r);
    server_stop(&s);
}

/* "over 10 s 504" — a slow case: the upstream accepts and never answers. */
Test(routes, search_upstream_never_answers_504)
{
    search_with(UP_HANG, "/search?wd=x", 504, NULL);
}

/* ---- GET /stats ---- */

Test(routes, stats_has_all_fields)
{
    struct server s;
    server_start(&s, NULL);
    struct http_resp r;
    http_get(&r, s.port, "/stats", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(content_type_is(&r, "application/json"), "Content-Type %s",
              resp_header(&r, "Content-Type"));
    struct jv *v = jv_parse(r.body, r.body_len);
    cr_assert(v && v->t == J_OBJ, "not a JSON object: %s", r.body);
    const char *model = jv_str(v, "model");
    cr_assert(model && *model, "no model");
    static const char *const counts[] = {"pid", "uptime_ms", "connections", "ws_clients",
                                         "requests", "rss_bytes", "pss_bytes", "threads",
                                         "processes"};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        long long x;
        cr_assert(jv_int(v, counts[i], &x), "%s missing or not an integer: %s", counts[i], r.body);
        cr_assert(x >= 0, "%s is negative", counts[i]);
    }
    long long pid, rss, pss, threads, procs, conns, ws;
    jv_int(v, "pid", &pid);
    jv_int(v, "rss_bytes", &rss);
    jv_int(v, "pss_bytes", &pss);
    jv_int(v, "threads", &threads);
    jv_int(v, "processes", &procs);
    jv_int(v, "connections", &conns);
    jv_int(v, "ws_clients", &ws);
    cr_assert_eq(pid, s.pid, "/stats pid %lld, the server is %d", pid, (int)s.pid);
    cr_assert(rss > 0 && pss > 0, "rss %lld pss %lld", rss, pss);
    cr_assert(threads >= 1 && procs >= 1);
    cr_assert(conns >= 1, "connections %lld while this request is open", conns);
    cr_assert_eq(ws, 0);
    check_common_headers(&s, &r, false);
    jv_free(v);
    resp_free(&r);
    server_stop(&s);
}

Test(routes, stats_counts_websockets_and_requests)
{
    struct server s;
    server_start(&s, NULL);
    struct jv *before = stats_get(s.port);
    long long req0, req1, ws;
    cr_assert(jv_int(before, "requests", &req0));
    for (int i = 0; i < 3; i++)
        expect_body(s.port, "/hello", 200, "Hello, world!\n");
    char *cookie = login(s.port, "coco", "123456");
    struct ws *w = chat_join(s.port, cookie, "coco", NULL, NULL);
    struct jv *during = stats_get(s.port);
    cr_assert(jv_int(during, "ws_clients", &ws));
    cr_assert_eq(ws, 1, "ws_clients %lld with one WebSocket open", ws);
    cr_assert(jv_int(during, "requests", &req1));
    cr_assert(req1 >= req0 + 3, "requests went from %lld to %lld after 3 /hello", req0, req1);
    long long conns;
    cr_assert(jv_int(during, "connections", &conns) && conns >= 2,
              "connections %lld with a WebSocket and a request open", conns);
    jv_free(before);
    jv_free(during);

    ws_close_handshake(w, 1000);
    ws_free(w);
    /* The count drops once the server has closed its side. */
    int64_t deadline = now_ms() + 20000;
    for (;;) {
        struct jv *after = stats_get(s.port);
        jv_int(after, "ws_clients", &ws);
        jv_free(after);
        if (ws == 0)
            break;
        cr_assert(remaining_ms(deadline) > 0, "ws_clients stays %lld after the close", ws);
        struct timespec backoff = {0, 20 * 1000 * 1000};
        nanosleep(&backoff, NULL); /* retry pacing, not synchronisation */
    }
    server_stop(&s);
    free(cookie);
}
