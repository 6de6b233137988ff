/* Issue 7, hostile clients: what real networks send, against every model.
 * Slowloris and silent connections, half-closes, clients that vanish with a
 * reset in the middle of a response, a WebSocket flooder, frames that lie
 * about their length, and descriptors over a soak. (The connection storm
 * is tests/storm, run once per model.)
 * Every test ends with the server still answering and exiting 0 (under
 * ASan: without a leak). docs/hardening.md lists what each one showed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "jsonv.h"
#include "upstream.h"
#include "ws_client.h"

TestSuite(hostile, SUITE_CFG);

/* Close with SO_LINGER 0: the peer gets a RST, as from a client that
 * vanished (a crashed browser, a NAT that dropped the flow). */
static void reset_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Reads and throws away until EOF or reset; false if neither came. */
static bool drain_until_closed(int fd)
{
    int64_t deadline = now_ms() + CAP_MS;
    char sink[16384];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, remaining_ms(deadline)) <= 0)
            return false;
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
}

/* ---- slowloris and silence ---- */

/* Slowloris: six connections send a header byte every 2 s, so each is never
 * idle, and the head never completes; beside them, connections that send
 * nothing at all. The pacing is the poll timeout: whenever the server has
 * been quiet for 2 s every slow client sends its next byte. Meanwhile fresh
 * clients are served each round, and at the head timeout (10 s after the
 * first byte) every slow client gets 408 and a close, every silent one a
 * close without a byte. */
Test(hostile, slowloris_and_silent_clients_dropped_others_served)
{
    enum { LORIS = 6, SILENT = 6, N = LORIS + SILENT };
    struct server s;
    server_start(&s, NULL);
    struct tsock c[N];
    bool done[N] = {false};
    for (int i = 0; i < N; i++) {
        tsock_open(&c[i], s.port);
        if (i < LORIS)
            cr_assert(tsock_sends(&c[i], "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: "));
    }
    int left = N, served = 0, rounds = 0;
    int64_t deadline = now_ms() + CAP_MS;
    while (left > 0 && remaining_ms(deadline) > 0) {
        /* Someone else is served while the slow ones hold their sockets. */
        cr_assert_eq(http_status(s.port, "/hello"), 200, "a normal client was refused during slowloris");
        served++;
        struct pollfd p[N];
        for (int i = 0; i < N; i++)
            p[i] = (struct pollfd){done[i] ? -1 : c[i].fd, POLLIN, 0};
        int n = poll(p, N, 2000);
        if (n == 0) {
            rounds++;
            for (int i = 0; i < LORIS; i++)
                if (!done[i])
                    tsock_send(&c[i], "a", 1);
            continue;
        }
        for (int i = 0; i < N; i++) {
            if (done[i] || !p[i].revents)
                continue;
            if (i < LORIS) {
                struct http_resp r;
                enum rd got = tsock_read_response(&c[i], false, &r, CAP_MS);
                cr_assert(got == RD_OK, "slow client %d got %s, not a 408", i, rd_name(got));
                cr_assert_eq(r.status, 408, "slow client %d got %d", i, r.status);
                resp_free(&r);
                enum rd end = tsock_wait_eof(&c[i], CAP_MS, NULL);
                cr_assert(end == RD_EOF || end == RD_RESET, "slow client %d not closed: %s", i,
                          rd_name(end));
            } else {
                size_t extra = 0;
                enum rd end = tsock_wait_eof(&c[i], CAP_MS, &extra);
                cr_assert(end == RD_EOF, "silent client %d: %s", i, rd_name(end));
                cr_assert_eq(extra, 0, "silent client %d was sent %zu bytes", i, extra);
            }
            done[i] = true;
            left--;
        }
    }
    cr_assert_eq(left, 0, "%d slow or silent clients were never dropped", left);
    /* The head timeout counts from the first byte: the trickle went on for
     * several rounds, so the drop came from the timeout, not the first byte. */
    cr_assert(rounds >= 2, "the slow clients were dropped after %d trickled bytes", rounds);
    cr_log_info("slowloris: %d normal requests served meanwhile, %d trickle rounds", served,
                rounds);
    for (int i = 0; i < N; i++)
        tsock_close(&c[i]);
    cr_assert_eq(http_status(s.port, "/hello"), 200);
    cr_assert_eq(server_await_children(&s, 0), 0, "children left after their clients did");
    server_stop(&s);
}

/* ---- half-close ---- */

/* A client that sends its requests and shuts down its sending side (as
 * `nc -q`, or an HTTP/1.0 tool, does) still gets every answer; then the
 * server closes. A half-close in the middle of a head ends the connection
 * (with or without a 400), it does not leave it hanging. */
Test(hostile, half_closed_client_still_answered)
{
    struct server s;
    server_start(&s, NULL);
    struct tsock c;
    tsock_open(&c, s.port);
    cr_assert(tsock_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                             "GET /cpu?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"));
    cr_assert(shutdown(c.fd, SHUT_WR) == 0);
    struct http_resp r;
    enum rd got = tsock_read_response(&c, false, &r, CAP_MS);
    cr_assert(got == RD_OK, "after a half-close the first request got %s", rd_name(got));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "Hello, world!\n");
    resp_free(&r);
    got = tsock_read_response(&c, false, &r, CAP_MS);
    cr_assert(got == RD_OK, "after a half-close the second request got %s", rd_name(got));
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    size_t extra = 0;
    enum rd end = tsock_wait_eof(&c, CAP_MS, &extra);
    cr_assert(end == RD_EOF || end == RD_RESET, "not closed after a half-close: %s", rd_name(end));
    cr_assert_eq(extra, 0);
    tsock_close(&c);

    tsock_open(&c, s.port);
    cr_assert(tsock_sends(&c, "GET /hel"));
    cr_assert(shutdown(c.fd, SHUT_WR) == 0);
    end = tsock_wait_eof(&c, CAP_MS, &extra);
    cr_assert(end == RD_EOF || end == RD_RESET, "a half-closed partial head: %s", rd_name(end));
    if (extra)
        cr_assert(strncmp(c.buf, "HTTP/1.1 4", 10) == 0, "a half-closed partial head got: %.80s",
                  c.buf);
    tsock_close(&c);
    cr_assert_eq(http_status(s.port, "/hello"), 200);
    server_stop(&s);
}

/* A WebSocket client that shuts down its sending side without a close
 * frame has left: the room hears its leave and the server closes. */
Test(hostile, websocket_half_close_is_a_leave)
{
    struct server s;
    server_start(&s, NULL);
    char *coco = login(s.port, "coco", "123456"), *cc = login(s.port, "cc", "123456");
    struct ws *stay = chat_join(s.port, coco, "coco", NULL, NULL);
    struct ws *quit = chat_join(s.port, cc, "cc", NULL, NULL);
    expect_event_by(stay, "join", "cc");
    cr_assert(shutdown(quit->fd, SHUT_WR) == 0);
    expect_event_by(stay, "leave", "cc");
    cr_assert(drain_until_closed(quit->fd), "the server kept a half-closed WebSocket open");
    ws_free(quit);
    chat_round_trip(stay, "still here");
    ws_free(stay);
    free(coco);
    free(cc);
    server_stop(&s);
}

/* ---- clients that vanish ---- */

/* Mid-response resets: an HTTP client pipelines 400 requests for the login
 * page on a 4 KiB receive window, reads a little and resets; a WebSocket
 * client with a backlog of chat frames resets. A server that writes to a
 * reset socket without MSG_NOSIGNAL/SIGPIPE ignored dies of SIGPIPE (the
 * exit-status check of server_stop catches that); one that mishandles the
 * error stalls the room or leaks the connection. */
Test(hostile, client_reset_mid_response_no_sigpipe)
{
    struct server s;
    server_start(&s, NULL);

    int fd = tcp_connect(s.port, 4096);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    const char *req = "GET /login HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t rl = strlen(req);
    for (int i = 0; i < 400; i++) {
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 2000) <= 0)
            break; /* the server stopped reading: its output is stuck, as wanted */
        if (send(fd, req, rl, MSG_NOSIGNAL) != (ssize_t)rl)
            break;
    }
    struct pollfd p = {fd, POLLIN, 0};
    cr_assert(poll(&p, 1, CAP_MS) == 1, "no response to 400 pipelined requests");
    char some[512];
    cr_assert(recv(fd, some, sizeof some, 0) > 0);
    reset_close(fd);

    char *coco = login(s.port, "coco", "123456"), *aa = login(s.port, "aa", "123456");
    struct ws *poster = chat_join(s.port, coco, "coco", NULL, NULL);
    struct ws *gone = ws_connect_rcvbuf(s.port, aa, 4096);
    expect_event_by(poster, "join", "aa");
    enum { MSGS = 64, TEXT = 4000 };
    char *text = malloc(TEXT);
    memset(text, 'r', TEXT);
    for (int i = 0; i < MSGS; i++)
        ws_queue_text(poster, text, TEXT);
    ws_flush(poster);
    for (int i = 0; i < MSGS; i++)
        jv_free(expect_event(poster, "message"));
    struct linger lg = {1, 0};
    setsockopt(gone->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ws_free(gone); /* unread frames in its buffer, linger 0: a reset */
    expect_event_by(poster, "leave", "aa");
    chat_round_trip(poster, "after the reset");
    ws_free(poster);
    free(text);
    free(coco);
    free(aa);
    cr_assert_eq(http_status(s.port, "/hello"), 200);
    server_stop(&s); /* asserts exit 0: not killed by SIGPIPE */
}

/* ---- the WebSocket flooder ---- */

/* A client writes 600 messages of 4000 bytes as fast as its socket takes
 * them and never reads (its own echoes pile up: it is also a slow reader).
 * The room cannot deliver that fast to it; it must not stall or corrupt the
 * stream of the reader next to it: the reader sees the flooder's messages
 * in order without a gap or a duplicate, up to the flooder's leave if the
 * server cut it off (1 MiB), or all of them. Nothing of the flooder's comes
 * after its leave. */
Test(hostile, websocket_flooder_cannot_break_the_room)
{
    struct server s;
    server_start(&s, NULL);
    char *coco = login(s.port, "coco", "123456"), *aa = login(s.port, "aa", "123456");
    long long next;
    struct ws *reader = chat_join(s.port, coco, "coco", &next, NULL);
    next++;
    struct ws *flood = ws_connect_rcvbuf(s.port, aa, 4096);
    cr_assert_eq(expect_event_by(reader, "join", "aa"), next++);

    enum { MSGS = 600, TEXT = 4000 };
    size_t frame_max = TEXT + 14, cap = (size_t)MSGS * frame_max, len = 0, sent = 0;
    uint8_t *wire = malloc(cap);
    char *text = malloc(TEXT);
    for (int i = 0; i < MSGS; i++) {
        int n = snprintf(text, TEXT, "f%05d|", i);
        memset(text + n, 'f', (size_t)(TEXT - n));
        len += ws_frame(wire + len, true, 0, 0x1, true, text, TEXT);
    }
    int got = 0;
    bool cut = false, write_failed = false;
    int64_t deadline = now_ms() + CAP_MS * 2;
    while (!cut && got < MSGS && remaining_ms(deadline) > 0) {
        struct pollfd p[2] = {{reader->fd, POLLIN, 0},
                              {sent < len && !write_failed ? flood->fd : -1, POLLOUT, 0}};
        poll(p, 2, remaining_ms(deadline));
        if (p[1].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t w = send(flood->fd, wire + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                write_failed = true; /* the server closed it */
        }
        for (struct ws_msg *m; !cut && (m = ws_recv(reader, 0))->kind != WS_TIMEOUT;) {
            cr_assert_eq(m->kind, WS_TEXT, "the reader got %s %u after %d messages, %zu bytes sent",
                         ws_kind_name(m->kind), m->code, got, sent);
            struct jv *v = jv_parse(m->data, m->len);
            ws_msg_free(m);
            cr_assert(v != NULL);
            long long seq;
            cr_assert(jv_int(v, "seq", &seq));
            cr_assert_eq(seq, next, "the reader got seq %lld, expected %lld", seq, next);
            next++;
            const char *type = jv_str(v, "type"), *user = jv_str(v, "user");
            cr_assert_str_eq(user, "aa", "%s from %s during the flood", type, user);
            if (strcmp(type, "leave") == 0) {
                cut = true;
            } else {
                cr_assert_str_eq(type, "message");
                char want[16];
                snprintf(want, sizeof want, "f%05d|", got);
                const char *t = jv_str(v, "text");
                cr_assert(t && strncmp(t, want, 7) == 0 && strlen(t) == TEXT,
                          "the reader expected %s, got %.12s", want, t ? t : "-");
                got++;
            }
            jv_free(v);
        }
    }
    cr_assert(cut || got == MSGS, "the flood stalled the room: %d of %d messages, no leave", got,
              MSGS);
    cr_log_info("flood: %zu of %zu bytes written, %d messages delivered, %s", sent, len, got,
                cut ? "flooder cut off" : "all delivered");
    ws_free(flood);
    if (!cut)
        expect_event_by(reader, "leave", "aa");
    /* Whatever the flooder still had in flight goes nowhere after its leave. */
    ws_send_texts(reader, "after the flood");
    struct jv *v = expect_event(reader, "message");
    cr_assert_str_eq(jv_str(v, "user"), "coco");
    cr_assert_str_eq(jv_str(v, "text"), "after the flood");
    jv_free(v);
    ws_free(reader);
    free(wire);
    free(text);
    free(coco);
    free(aa);
    server_stop(&s);
}

/* ---- frames that lie about their length ---- */

/* A frame header announcing 2^40 bytes, and one with the 64-bit length's
 * most significant bit set (forbidden by RFC 6455 5.2): the server must
 * decide from the header — 1009 or 1002, or a plain close — and not wait
 * for, or allocate, the payload. */
Test(hostile, frame_lengths_beyond_limits_closed_at_the_header)
{
    static const uint64_t lengths[] = {(uint64_t)1 << 40, (uint64_t)1 << 63, UINT64_MAX};
    static const uint16_t codes[] = {1009, 1002};
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        struct ws *w = chat_join(s.port, cookie, "coco", NULL, NULL);
        uint8_t h[14 + 16] = {0x81, 0x80 | 127};
        for (int b = 0; b < 8; b++)
            h[2 + b] = (uint8_t)(lengths[i] >> (56 - 8 * b));
        memcpy(h + 10, "\x11\x22\x33\x44", 4);
        memset(h + 14, 'z', 16); /* a little of the "payload" */
        cr_assert(ws_send_raw(w, h, sizeof h));
        expect_close(w, codes, 2, true);
        ws_free(w);
    }
    free(cookie);
    cr_assert_eq(http_status(s.port, "/hello"), 200);
    server_stop(&s);
}

/* ---- descriptors over a soak ---- */

/* One round of most of what a server does and of what goes wrong:
 * keep-alive and HTTP/1.0 requests, a login, a chat join/post/leave, a
 * /search through the upstream and one to nowhere, a request cut short by
 * a reset, a WebSocket upgrade refused. */
static void soak_round(int port, const char *cookie)
{
    struct tsock c;
    tsock_open(&c, port);
    struct http_resp r;
    for (int i = 0; i < 3; i++) {
        cr_assert(tsock_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
        tsock_expect_response(&c, false, &r);
        resp_free(&r);
    }
    tsock_close(&c);
    raw_request(port, "GET /cpu?n=10 HTTP/1.0\r\n\r\n", false, &r);
    resp_free(&r);
    free(login(port, "cc", "123456"));
    struct ws *w = chat_join(port, cookie, "coco", NULL, NULL);
    ws_send_texts(w, "soak");
    jv_free(expect_event(w, "message"));
    ws_close_handshake(w, 1000);
    ws_free(w);
    cr_assert_eq(http_status(port, "/search?wd=soak"), 200);
    int fd = tcp_connect(port, 0);
    cr_assert(send(fd, "GET /sleep?ms=10 HTTP/1.1\r\nHo", 29, MSG_NOSIGNAL) == 29);
    reset_close(fd);
    cr_assert_eq(http_status(port, "/chat/ws"), 401);
}

/* 12 rounds, about 100 connections (each a process in chat-forked, which
 * under ASan also runs LeakSanitizer as it exits): a descriptor lost per
 * request, per WebSocket or per error path shows as 12 or more. */
#define SOAK_ROUNDS 12

Test(hostile, descriptors_do_not_grow_over_a_soak)
{
    struct upstream u;
    upstream_start(&u, UP_ECHO);
    struct server s;
    server_start_upstream(&s, &u);
    char *cookie = login(s.port, "coco", "123456");
    /* A first round opens what a server opens once (caches, pools). */
    soak_round(s.port, cookie);
    int base = server_await_fds(&s, server_fd_count(&s));
    for (int i = 0; i < SOAK_ROUNDS; i++)
        soak_round(s.port, cookie);
    int fds = server_await_fds(&s, base);
    cr_assert(fds <= base, "descriptors grew over the soak: %d before, %d after", base, fds);
    cr_log_info("soak: %d descriptors before and after %d rounds", base, SOAK_ROUNDS);
    free(cookie);
    cr_assert_eq(server_await_children(&s, 0), 0, "children left after their clients did");
    server_stop(&s);
    upstream_stop(&u);
}
