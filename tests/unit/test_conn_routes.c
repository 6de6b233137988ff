/* Routes and the WebSocket side of the connection, through conn_feed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_fixture.h"

TestSuite(conn_routes, .init = fixture_setup, .fini = fixture_teardown);

static char *answer(const char *req)
{
    struct conn c;
    conn_init(&c, &test_app);
    feed(&c, req);
    struct action *a;
    while ((a = conn_action_to_start(&c))) {
        a->started = true;
        action_run(a);
        conn_resume(&c);
    }
    char *out = drain(&c);
    conn_free(&c);
    return out;
}

static char *request(const char *method, const char *path, const char *extra_headers,
                     const char *body)
{
    static char req[4096];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: chat.example:8080\r\n%sContent-Length: %zu\r\n\r\n%s",
             method, path, extra_headers, strlen(body), body);
    return answer(req);
}

Test(conn_routes, login_right_password_sets_the_cookie)
{
    char *out = request("POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n",
                        "username=ann&password=secret-pw");
    cr_assert(strncmp(out, "HTTP/1.1 303", 12) == 0, "%.200s", out);
    cr_assert(strstr(out, "\r\nLocation: /chat\r\n"));
    char *sc = strstr(out, "\r\nSet-Cookie: session=1|");
    cr_assert_not_null(sc);
    cr_assert(strstr(sc, "; HttpOnly; SameSite=Lax; Path=/; Max-Age=604800\r\n"));
    free(out);
}

Test(conn_routes, login_wrong_or_unknown_is_401_with_the_page)
{
    const char *bodies[] = {"username=ann&password=nope", "username=zed&password=secret-pw",
                            "username=b%7Cad&password=x", "password=secret-pw", ""};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char *out = request("POST", "/login", "", bodies[i]);
        cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0, "%s: %.60s", bodies[i], out);
        cr_assert(strstr(out, "Wrong user name or password."));
        cr_assert(strstr(out, "text/html"));
        cr_assert_null(strstr(out, "Set-Cookie"));
        free(out);
    }
}

Test(conn_routes, origin_checks)
{
    const struct { const char *origin; const char *status; } cases[] = {
        {"Origin: http://chat.example:8080\r\n", "HTTP/1.1 303"},
        {"Origin: HTTPS://CHAT.EXAMPLE:8080\r\n", "HTTP/1.1 303"}, /* scheme ignored, case too */
        {"", "HTTP/1.1 303"},                                     /* no Origin passes */
        {"Origin: http://evil.example:8080\r\n", "HTTP/1.1 403"},
        {"Origin: http://chat.example:8081\r\n", "HTTP/1.1 403"},
        {"Origin: http://chat.example\r\n", "HTTP/1.1 403"},      /* port 80 != 8080 */
        {"Origin: null\r\n", "HTTP/1.1 403"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = request("POST", "/logout", cases[i].origin, "");
        cr_assert(strncmp(out, cases[i].status, 12) == 0, "%s-> %.40s", cases[i].origin, out);
        free(out);
    }
}

Test(conn_routes, logout_clears_the_cookie)
{
    char *out = request("POST", "/logout", "", "");
    cr_assert(strstr(out, "\r\nSet-Cookie: session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0\r\n"));
    cr_assert(strstr(out, "\r\nLocation: /login\r\n"));
    free(out);
}

Test(conn_routes, root_and_chat_follow_the_session)
{
    char cookie[256];
    cookie_for("ann", cookie, sizeof cookie);
    char *out = request("GET", "/", "", "");
    cr_assert(strstr(out, "302") && strstr(out, "Location: /login\r\n"));
    free(out);
    out = request("GET", "/", cookie, "");
    cr_assert(strstr(out, "302") && strstr(out, "Location: /chat\r\n"));
    free(out);
    out = request("GET", "/chat", "", "");
    cr_assert(strstr(out, "302") && strstr(out, "Location: /login\r\n"));
    free(out);
    out = request("GET", "/chat", cookie, "");
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0);
    cr_assert(strstr(out, "ann"));
    cr_assert(strstr(out, "chat-test"));
    cr_assert_null(strstr(out, "{{"), "every placeholder is filled");
    free(out);
    /* a tampered cookie is no session */
    cookie[strlen(cookie) - 3] ^= 1;
    out = request("GET", "/chat", cookie, "");
    cr_assert(strstr(out, "302"));
    free(out);
}

Test(conn_routes, ws_checks_in_contract_order)
{
    char cookie[256], h[512];
    cookie_for("ann", cookie, sizeof cookie);
    const char *up = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    snprintf(h, sizeof h, "Origin: http://evil\r\n%s", up);
    char *out = request("GET", "/chat/ws", h, "");
    cr_assert(strncmp(out, "HTTP/1.1 403", 12) == 0, "bad origin first, even without a session");
    free(out);
    out = request("GET", "/chat/ws", up, "");
    cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0);
    free(out);
    out = request("GET", "/chat/ws", cookie, "");
    cr_assert(strncmp(out, "HTTP/1.1 426", 12) == 0, "%.30s", out);
    free(out);
}

/* CONTRACT.md: "A session is valid only while its user is in the users
 * file the server loaded." A cookie with the server's own MAC for a name the
 * server did not load (removed from the file, or a demo account of another
 * run) opens nothing. */
Test(conn_routes, session_of_a_user_not_loaded_refused)
{
    char cookie[256], h[512];
    cookie_for("zed", cookie, sizeof cookie);
    char *out = request("GET", "/", cookie, "");
    cr_assert(strstr(out, "Location: /login\r\n"), "%.80s", out);
    free(out);
    out = request("GET", "/chat", cookie, "");
    cr_assert(strstr(out, "302") && strstr(out, "Location: /login\r\n"), "%.80s", out);
    free(out);
    snprintf(h, sizeof h,
             "%sUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
             cookie);
    out = request("GET", "/chat/ws", h, "");
    cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0, "%.30s", out);
    free(out);
}

/* A masked client frame. */
static size_t client_frame(uint8_t *out, int op, const char *payload, size_t n)
{
    static const uint8_t mask[4] = {1, 2, 3, 4};
    size_t i = 0;
    out[i++] = (uint8_t)(0x80 | op);
    if (n < 126) {
        out[i++] = (uint8_t)(0x80 | n);
    } else {
        out[i++] = 0x80 | 126;
        out[i++] = (uint8_t)(n >> 8);
        out[i++] = (uint8_t)n;
    }
    memcpy(out + i, mask, 4);
    i += 4;
    for (size_t k = 0; k < n; k++)
        out[i + k] = (uint8_t)payload[k] ^ mask[k % 4];
    return i + n;
}

static void upgrade(struct conn *c, const char *user)
{
    char cookie[256], req[1024];
    cookie_for(user, cookie, sizeof cookie);
    snprintf(req, sizeof req,
             "GET /chat/ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n",
             cookie);
    conn_init(c, &test_app);
    feed(c, req);
}

/* ann and bob in the room, their welcomes and joins read. */
static void two_members(struct conn *a, struct conn *b)
{
    upgrade(a, "ann");
    upgrade(b, "bob");
    free(drain(a));
    free(drain(b));
}

Test(conn_routes, upgrade_then_welcome_then_join)
{
    struct conn c;
    upgrade(&c, "ann");
    char *out = drain(&c);
    cr_assert(strncmp(out, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0, "%.60s", out);
    cr_assert(strstr(out, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    char *w = strstr(out, "{\"type\":\"welcome\""), *j = strstr(out, "{\"type\":\"join\",\"seq\":1,");
    cr_assert(w && j && w < j, "%s", out);
    cr_assert_eq(atomic_load(&test_app.n->ws_clients), 1);
    free(out);

    uint8_t f[256];
    size_t n = client_frame(f, 1, "hi \"you\"", 8);
    conn_feed(&c, (char *)f, n);
    out = drain(&c);
    cr_assert(strstr(out, "\"type\":\"message\",\"seq\":2,") && strstr(out, "\"text\":\"hi \\\"you\\\"\""),
              "%s", out + 2);
    free(out);

    n = client_frame(f, 9, "png", 3); /* ping: pong with the same payload */
    conn_feed(&c, (char *)f, n);
    out = drain(&c);
    cr_assert_eq(out[0], (char)0x8A);
    cr_assert_eq(out[1], 3);
    cr_assert(memcmp(out + 2, "png", 3) == 0);
    free(out);

    n = client_frame(f, 8, "\x03\xe8", 2); /* close 1000: echoed, then close */
    conn_feed(&c, (char *)f, n);
    out = drain(&c);
    cr_assert_eq((uint8_t)out[0], 0x88);
    cr_assert_eq(out[1], 2);
    cr_assert(memcmp(out + 2, "\x03\xe8", 2) == 0);
    cr_assert_eq(c.close, CLOSE_FLUSHED);
    cr_assert(conn_peer_done(&c), "after its close frame the peer may send nothing: no linger");
    free(out);
    conn_free(&c);
    cr_assert_eq(atomic_load(&test_app.n->ws_clients), 0);
}

Test(conn_routes, protocol_errors_close_with_their_codes)
{
    const struct { int op; const char *payload; size_t n; uint16_t code; } cases[] = {
        {2, "bin", 3, 1003},
        {1, "\xff\xfe", 2, 1007},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct conn c;
        upgrade(&c, "ann");
        free(drain(&c));
        uint8_t f[64];
        size_t n = client_frame(f, cases[i].op, cases[i].payload, cases[i].n);
        conn_feed(&c, (char *)f, n);
        char *out = drain(&c);
        cr_assert_eq((uint8_t)out[0], 0x88, "case %zu", i);
        cr_assert_eq(((uint8_t)out[2] << 8 | (uint8_t)out[3]), cases[i].code, "case %zu", i);
        cr_assert_eq(c.close, CLOSE_FLUSHED, "a failed connection closes after its close frame");
        cr_assert_not(conn_peer_done(&c), "case %zu: a broken stream may still be sending: linger",
                      i);
        free(out);
        conn_free(&c);
    }
}

Test(conn_routes, oversized_message_is_1009)
{
    struct conn c;
    upgrade(&c, "ann");
    free(drain(&c));
    static char big[4097];
    memset(big, 'a', sizeof big);
    uint8_t f[4200];
    size_t n = client_frame(f, 1, big, sizeof big);
    conn_feed(&c, (char *)f, n);
    char *out = drain(&c);
    cr_assert_eq((uint8_t)out[0], 0x88);
    cr_assert_eq(((uint8_t)out[2] << 8 | (uint8_t)out[3]), 1009);
    free(out);
    conn_free(&c);
}

Test(conn_routes, slow_reader_is_cut_off_and_the_room_goes_on)
{
    struct conn slow, fast;
    two_members(&slow, &fast);
    static char text[4000];
    memset(text, 'x', sizeof text);
    uint8_t f[4100];
    size_t n = client_frame(f, 1, text, sizeof text);
    /* fast reads everything, slow nothing. Past ROOM_DEEP_BACKLOG queued
     * for slow, the room holds fast's messages back (slow might be reading);
     * once slow has drained nothing for ROOM_STALL_MS, fast goes on, and
     * past 1 MiB slow is cut off. */
    int holds = 0;
    for (int i = 0; i < 300 && slow.ws->phase == WS_OPEN; i++) {
        if (fast.ws->held) {
            holds++;
            cr_assert_not(conn_want_read(&fast), "a held poster is not read");
            cr_assert_eq(conn_timer_kind(&fast), TIMER_ROOM_WAIT);
            fake_now = conn_deadline(&fast);
            conn_on_timeout(&fast);
        }
        conn_feed(&fast, (char *)f, n);
        free(drain(&fast));
    }
    cr_assert_eq(holds, 1, "fast was held %d times (once, until slow had stalled)", holds);
    cr_assert_eq(slow.ws->phase, WS_CLOSE_SENT, "cut off");
    cr_assert_lt(slow.out.bytes, 8192, "its backlog was dropped");
    /* the last thing queued for it is close 1008 */
    struct outq_node *last = slow.out.tail;
    cr_assert_eq((uint8_t)last->buf->data[0], 0x88);
    cr_assert_eq(((uint8_t)last->buf->data[2] << 8 | (uint8_t)last->buf->data[3]), 1008);
    conn_feed(&fast, (char *)f, n);
    char *out = drain(&fast);
    cr_assert(strstr(out, "\"type\":\"message\""), "the room goes on");
    free(out);
    conn_free(&slow);
    conn_free(&fast);
}

Test(conn_routes, shutdown_closes_websockets_with_1001)
{
    struct conn c;
    upgrade(&c, "ann");
    free(drain(&c));
    conn_shutdown(&c);
    char *out = drain(&c);
    cr_assert_eq((uint8_t)out[0], 0x88);
    cr_assert_eq(((uint8_t)out[2] << 8 | (uint8_t)out[3]), 1001);
    cr_assert_not(conn_peer_done(&c), "its answer has not come");
    /* the peer has 2 s to answer the close, then it is dropped */
    cr_assert_eq(conn_timer_kind(&c), TIMER_WS_CLOSE);
    fake_now += CONN_WS_CLOSE_MS;
    conn_on_timeout(&c);
    cr_assert_eq(c.close, CLOSE_NOW);
    free(out);
    conn_free(&c);
}

/* At a shutdown the 1001 waits behind what was fanned out before it, for
 * CONN_SHUTDOWN_DRAIN_MS; then the rest of that backlog is dropped — a
 * frame partly written is finished — and the 1001 goes next, with the
 * peer's CONN_WS_CLOSE_MS starting then. */
Test(conn_routes, shutdown_drops_a_backlog_that_holds_the_close_back)
{
    struct conn a, b;
    two_members(&a, &b);
    static const char *const texts[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        uint8_t f[64];
        size_t n = client_frame(f, 1, texts[i], strlen(texts[i]));
        conn_feed(&a, (char *)f, n);
    }
    free(drain(&a));
    size_t first = b.out.head->buf->len;
    conn_sent(&b, 3); /* the first message is partly written */
    room_close(test_app.room);
    conn_shutdown(&a);
    conn_shutdown(&b);
    cr_assert_eq(conn_deadline(&b), fake_now + CONN_SHUTDOWN_DRAIN_MS);

    fake_now += CONN_SHUTDOWN_DRAIN_MS;
    conn_on_timeout(&b);
    cr_assert_eq(b.close, CLOSE_NO);
    char *out = drain(&b);
    size_t len = strlen(out);
    cr_assert_eq(len, first - 3 + 4, "the rest of the first message, then the close: %zu bytes",
                 len);
    cr_assert(strstr(out, "\"one\""), "the message partly written is finished");
    cr_assert_null(strstr(out, "\"two\""), "the rest of the backlog is dropped");
    const uint8_t *close = (const uint8_t *)out + len - 4;
    cr_assert(close[0] == 0x88 && close[1] == 2 && (close[2] << 8 | close[3]) == 1001);
    free(out);

    cr_assert_eq(conn_deadline(&b), fake_now + CONN_WS_CLOSE_MS, "the peer's 2 s start now");
    fake_now += CONN_WS_CLOSE_MS;
    conn_on_timeout(&b);
    cr_assert_eq(b.close, CLOSE_NOW);
    free(drain(&a));
    conn_free(&a);
    conn_free(&b);
}

Test(conn_routes, shutdown_close_answered_needs_no_linger)
{
    struct conn c;
    upgrade(&c, "ann");
    free(drain(&c));
    conn_shutdown(&c);
    free(drain(&c));
    uint8_t f[16];
    size_t n = client_frame(f, 8, "\x03\xe9", 2); /* the member answers 1001 */
    conn_feed(&c, (char *)f, n);
    free(drain(&c));
    cr_assert_eq(c.close, CLOSE_FLUSHED);
    cr_assert(conn_peer_done(&c), "a member that answered the close is closed at once");
    conn_free(&c);
}

Test(conn_routes, stats_is_json_with_every_field)
{
    char *out = request("GET", "/stats", "", "");
    const char *fields[] = {"\"model\":\"test\"", "\"pid\":", "\"uptime_ms\":", "\"connections\":1",
                            "\"ws_clients\":0", "\"requests\":1", "\"rss_bytes\":", "\"pss_bytes\":",
                            "\"threads\":", "\"processes\":"};
    cr_assert(strstr(out, "Content-Type: application/json\r\n"));
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        cr_assert(strstr(out, fields[i]), "missing %s in %s", fields[i], out);
    free(out);
}

Test(conn_routes, shutdown_sends_no_leaves)
{
    struct conn a, b;
    two_members(&a, &b);
    room_close(test_app.room);
    conn_shutdown(&a);
    conn_shutdown(&b);
    char *out = drain(&b);
    /* b gets its own 1001 and nothing else: no `leave` for a */
    cr_assert_eq((uint8_t)out[0], 0x88, "first byte %02x", (uint8_t)out[0]);
    cr_assert_eq(((uint8_t)out[2] << 8 | (uint8_t)out[3]), 1001);
    cr_assert_eq(room_stats(test_app.room).members, 0);
    free(out);
    free(drain(&a));
    conn_free(&a);
    conn_free(&b);
}

Test(conn_routes, unblock_queue_holds_each_connection_once_until_taken_or_freed)
{
    struct conn a, b, c;
    upgrade(&a, "ann");
    upgrade(&b, "ann");
    upgrade(&c, "ann");
    struct conn_queue q = {0};
    conn_unblock_later(&q, &a);
    conn_unblock_later(&q, &b);
    conn_unblock_later(&q, &a); /* the room may let a go twice in one turn */
    conn_unblock_later(&q, &c);
    conn_unblock_drop(&b);      /* closed by the model before the turn ends */
    conn_free(&c);              /* freed: off the queue too */
    cr_assert_eq(conn_unblock_next(&q), &a);
    cr_assert_null(conn_unblock_next(&q), "b was dropped, c freed, a taken once");
    conn_unblock_later(&q, &a); /* taken: it may be queued again */
    cr_assert_eq(conn_unblock_next(&q), &a);
    conn_free(&a);
    conn_free(&b);
}
