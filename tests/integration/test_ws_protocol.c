/* CONTRACT.md "Chat over /chat/ws", client to server: ping/pong,
 * fragmentation, the close handshake, and every way to break a frame
 * (1003, 1007, 1009, 1002). Hostile frames are written by hand. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "jsonv.h"
#include "ws_client.h"

TestSuite(ws_protocol, SUITE_CFG);

enum { OP_CONT = 0x0, OP_TEXT = 0x1, OP_BINARY = 0x2, OP_CLOSE = 0x8, OP_PING = 0x9 };

/* One logged-in client in a fresh room, past its welcome and join. */
struct fixture {
    struct server s;
    struct ws *w;
};

static void setup(struct fixture *f)
{
    server_start(&f->s, NULL);
    char *cookie = login(f->s.port, "coco", "123456");
    f->w = chat_join(f->s.port, cookie, "coco", NULL, NULL);
    free(cookie);
}

/* The server is still healthy, then stops cleanly. */
static void teardown(struct fixture *f)
{
    ws_free(f->w);
    struct http_resp r;
    http_get(&r, f->s.port, "/hello", NULL);
    cr_assert_eq(r.status, 200, "the server is not healthy after the test");
    resp_free(&r);
    server_stop(&f->s);
}

static long long expect_text(struct ws *w, const char *text, size_t len)
{
    struct jv *v = expect_event(w, "message");
    const struct jv *t = jv_get(v, "text");
    cr_assert(t && t->t == J_STR && t->slen == len && memcmp(t->s, text, len) == 0,
              "message text \"%.200s\" (%zu bytes), expected %zu bytes", t ? t->s : "-",
              t ? t->slen : 0, len);
    long long seq = 0;
    jv_int(v, "seq", &seq);
    jv_free(v);
    return seq;
}

static const uint16_t C1002[] = {1002};

/* "Ping is answered with pong" (same payload, RFC 6455 5.5.3). */
Test(ws_protocol, ping_answered_with_pong)
{
    struct fixture f;
    setup(&f);
    ws_send_ping(f.w, "are you there?");
    struct ws_msg *m = ws_recv(f.w, CAP_MS);
    cr_assert_eq(m->kind, WS_PONG, "got %s instead of a pong", ws_kind_name(m->kind));
    cr_assert_str_eq(m->data, "are you there?");
    ws_msg_free(m);
    /* The chat still works. */
    ws_send_texts(f.w, "after ping");
    expect_text(f.w, "after ping", 10);
    teardown(&f);
}

/* "fragmented messages are reassembled", with a ping between fragments. */
Test(ws_protocol, fragmented_message_with_ping_between_reassembled)
{
    struct fixture f;
    setup(&f);
    cr_assert(ws_send_frame(f.w, false, 0, OP_TEXT, true, "Hel", 3));
    cr_assert(ws_send_frame(f.w, true, 0, OP_PING, true, "mid", 3));
    cr_assert(ws_send_frame(f.w, false, 0, OP_CONT, true, "lo, ", 4));
    cr_assert(ws_send_frame(f.w, false, 0, OP_CONT, true, "", 0));
    cr_assert(ws_send_frame(f.w, true, 0, OP_CONT, true, "world", 5));
    bool pong = false, text = false;
    while (!pong || !text) {
        struct ws_msg *m = ws_recv(f.w, CAP_MS);
        if (m->kind == WS_PONG) {
            cr_assert_str_eq(m->data, "mid");
            pong = true;
            ws_msg_free(m);
            continue;
        }
        cr_assert_eq(m->kind, WS_TEXT, "got %s", ws_kind_name(m->kind));
        struct jv *v = jv_parse(m->data, m->len);
        cr_assert(v && jv_str(v, "text"), "not a message: %s", m->data);
        cr_assert_str_eq(jv_str(v, "text"), "Hello, world");
        text = true;
        jv_free(v);
        ws_msg_free(m);
    }
    teardown(&f);
}

/* A multi-byte character split across fragments is still valid UTF-8. */
Test(ws_protocol, utf8_split_across_fragments_is_valid)
{
    struct fixture f;
    setup(&f);
    cr_assert(ws_send_frame(f.w, false, 0, OP_TEXT, true, "caf\xc3", 4));
    cr_assert(ws_send_frame(f.w, false, 0, OP_CONT, true, "\xa9 \xf0\x9f", 4));
    cr_assert(ws_send_frame(f.w, true, 0, OP_CONT, true, "\x98\x80", 2));
    expect_text(f.w, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    teardown(&f);
}

/* "Binary message: close 1003" */
Test(ws_protocol, binary_message_closes_1003)
{
    struct fixture f;
    setup(&f);
    ws_send_frame(f.w, true, 0, OP_BINARY, true, "\x00\x01\x02", 3);
    const uint16_t c[] = {1003};
    expect_close(f.w, c, 1, false);
    teardown(&f);
}

/* "Invalid UTF-8: close 1007" */
Test(ws_protocol, invalid_utf8_closes_1007)
{
    static const char *const bad[] = {"\xff\xfe", "ab\xc3", "\xc0\xaf", "\xed\xa0\x80",
                                      "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct fixture f;
        setup(&f);
        ws_send_frame(f.w, true, 0, OP_TEXT, true, bad[i], strlen(bad[i]));
        const uint16_t c[] = {1007};
        expect_close(f.w, c, 1, false);
        teardown(&f);
    }
}

Test(ws_protocol, invalid_utf8_split_across_fragments_closes_1007)
{
    struct fixture f;
    setup(&f);
    ws_send_frame(f.w, false, 0, OP_TEXT, true, "ab\xe2\x82", 4);
    ws_send_frame(f.w, true, 0, OP_CONT, true, "\x28z", 2);
    const uint16_t c[] = {1007};
    expect_close(f.w, c, 1, false);
    teardown(&f);
}

/* "Larger than 4096 bytes: close 1009" — and exactly 4096 is fine. */
Test(ws_protocol, payload_over_4096_closes_1009)
{
    struct fixture f;
    setup(&f);
    char *big = malloc(4097);
    memset(big, 'y', 4097);
    ws_send_frame(f.w, true, 0, OP_TEXT, true, big, 4097);
    free(big);
    const uint16_t c[] = {1009};
    expect_close(f.w, c, 1, false);
    teardown(&f);
}

Test(ws_protocol, fragments_over_4096_in_total_close_1009)
{
    struct fixture f;
    setup(&f);
    char *part = malloc(3000);
    memset(part, 'z', 3000);
    ws_send_frame(f.w, false, 0, OP_TEXT, true, part, 3000);
    ws_send_frame(f.w, true, 0, OP_CONT, true, part, 1200);
    free(part);
    const uint16_t c[] = {1009};
    expect_close(f.w, c, 1, false);
    teardown(&f);
}

Test(ws_protocol, exactly_4096_bytes_accepted)
{
    struct fixture f;
    setup(&f);
    char *text = malloc(4096);
    memset(text, 'x', 4096);
    ws_send_text(f.w, text, 4096);
    expect_text(f.w, text, 4096);
    /* Bytes, not characters: 1024 four-byte emoji. */
    for (int i = 0; i < 1024; i++)
        memcpy(text + 4 * i, "\xf0\x9f\x98\x80", 4);
    ws_send_text(f.w, text, 4096);
    expect_text(f.w, text, 4096);
    /* And as fragments adding up to exactly 4096. */
    memset(text, 'w', 4096);
    ws_send_frame(f.w, false, 0, OP_TEXT, true, text, 2048);
    ws_send_frame(f.w, true, 0, OP_CONT, true, text + 2048, 2048);
    expect_text(f.w, text, 4096);
    free(text);
    teardown(&f);
}

/* "A frame that breaks RFC 6455 framing: close 1002, or close the
 * connection without a code." One case per violation. */
Test(ws_protocol, unmasked_frame_closes_1002)
{
    struct fixture f;
    setup(&f);
    ws_send_frame(f.w, true, 0, OP_TEXT, false, "not masked", 10);
    expect_close(f.w, C1002, 1, true);
    teardown(&f);
}

Test(ws_protocol, rsv_bit_closes_1002)
{
    struct fixture f;
    setup(&f);
    ws_send_frame(f.w, true, 4, OP_TEXT, true, "rsv1", 4); /* no extension negotiated */
    expect_close(f.w, C1002, 1, true);
    teardown(&f);
}

Test(ws_protocol, reserved_opcode_closes_1002)
{
    struct fixture f;
    setup(&f);
    ws_send_frame(f.w, true, 0, 0x3, true, "op3", 3);
    expect_close(f.w, C1002, 1, true);
    teardown(&f);
}

Test(ws_protocol, control_frame_over_125_closes_1002)
{
    struct fixture f;
    setup(&f);
    char payload[126];
    memset(payload, 'p', sizeof payload);
    ws_send_frame(f.w, true, 0, OP_PING, true, payload, sizeof payload);
    expect_close(f.w, C1002, 1, true);
    teardown(&f);
}

Test(ws_protocol, fragmented_control_frame_closes_1002)
{
    struct fixture f;
    setup(&f);
    ws_send_frame(f.w, false, 0, OP_PING, true, "frag", 4);
    expect_close(f.w, C1002, 1, true);
    teardown(&f);
}

Test(ws_protocol, continuation_without_start_closes_1002)
{
    struct fixture f;
    setup(&f);
    ws_send_frame(f.w, true, 0, OP_CONT, true, "orphan", 6);
    expect_close(f.w, C1002, 1, true);
    teardown(&f);
}

Test(ws_protocol, new_message_inside_fragmented_one_closes_1002)
{
    struct fixture f;
    setup(&f);
    ws_send_frame(f.w, false, 0, OP_TEXT, true, "first", 5);
    ws_send_frame(f.w, true, 0, OP_TEXT, true, "second", 6);
    expect_close(f.w, C1002, 1, true);
    teardown(&f);
}

/* RFC 6455 7.4.1: 1005 is never sent on the wire; an invalid close code is a
 * protocol error. */
Test(ws_protocol, invalid_close_code_closes_1002)
{
    struct fixture f;
    setup(&f);
    uint8_t code[2] = {0x03, 0xed}; /* 1005 */
    ws_send_frame(f.w, true, 0, OP_CLOSE, true, code, 2);
    expect_close(f.w, C1002, 1, true);
    teardown(&f);
}

/* "the close handshake is completed": the server echoes our close. */
Test(ws_protocol, close_handshake_echoed)
{
    struct fixture f;
    setup(&f);
    uint16_t code = ws_close_handshake(f.w, 4001);
    cr_assert(code == 4001 || code == 1000 || code == 0, "our close 4001 answered with %u", code);
    cr_assert(ws_wait_tcp_close(f.w, CAP_MS), "no TCP close after the close handshake");
    teardown(&f);
}
