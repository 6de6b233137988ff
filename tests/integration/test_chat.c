/* CONTRACT.md "Chat over /chat/ws": the room — welcome, join, message,
 * leave, seq, history, presence, and the slow reader. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "jsonv.h"
#include "ws_client.h"

#define ROOM_MAX_BACKLOG_BYTES (1024 * 1024) /* the contract's 1 MiB */

TestSuite(chat, SUITE_CFG);

static void expect_users(const struct jv *welcome, const char *const *names)
{
    const struct jv *users = jv_get(welcome, "users");
    cr_assert(users && users->t == J_ARR, "welcome without users");
    size_t n = 0;
    while (names[n])
        n++;
    char got[512] = "";
    for (size_t i = 0; i < users->n; i++) {
        cr_assert(users->items[i]->t == J_STR, "users holds a non-string");
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s ", users->items[i]->s);
    }
    cr_assert_eq(users->n, n, "users is [%s], expected %zu names", got, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(users->items[i]->s, names[i], "users is [%s]: position %zu", got, i);
}

/* The next event must be a message by user with exactly that text; returns
 * its seq. */
static long long expect_message(struct ws *w, const char *user, const char *text, size_t len)
{
    struct jv *v = expect_event(w, "message");
    const char *u = jv_str(v, "user");
    cr_assert(u && strcmp(u, user) == 0, "message by %s, expected %s", u ? u : "-", user);
    const struct jv *t = jv_get(v, "text");
    cr_assert(t && t->t == J_STR, "message without text");
    cr_assert(t->slen == len && memcmp(t->s, text, len) == 0,
              "text came back as \"%s\" (%zu bytes), sent \"%s\" (%zu bytes)", t->s, t->slen, text,
              len);
    long long seq, ts;
    cr_assert(jv_int(v, "seq", &seq), "message without seq");
    cr_assert(jv_int(v, "ts", &ts), "message without ts");
    jv_free(v);
    return seq;
}

/* chat_join, whose welcome must list exactly `names` as users. */
static struct ws *join_seeing(int port, const char *cookie, const char *user, long long *join_seq,
                              const char *const *names)
{
    struct jv *wel;
    struct ws *w = chat_join(port, cookie, user, join_seq, &wel);
    expect_users(wel, names);
    jv_free(wel);
    return w;
}

/* The room most tests start from: a fresh server, coco joined (a), then cc
 * (b), and a has seen cc's join; the next event is seq 3. */
struct duo {
    struct server s;
    struct ws *a, *b;
};

static void duo_start(struct duo *d)
{
    server_start(&d->s, NULL);
    char *coco = login(d->s.port, "coco", "123456"), *cc = login(d->s.port, "cc", "123456");
    d->a = chat_join(d->s.port, coco, "coco", NULL, NULL);
    d->b = chat_join(d->s.port, cc, "cc", NULL, NULL);
    expect_event_by(d->a, "join", "cc");
    free(coco);
    free(cc);
}

/* Closes what is left of a and b (a test that closed one sets it NULL),
 * then stops the server. */
static void duo_stop(struct duo *d)
{
    ws_free(d->a);
    ws_free(d->b);
    server_stop(&d->s);
}

/* ---- welcome, join, users ---- */

/* "welcome: to the new client only, first: user, users, history" */
Test(chat, welcome_first_with_user_users_history)
{
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    struct ws *w = ws_connect(s.port, cookie);
    struct jv *wel = expect_event(w, "welcome");
    cr_assert_str_eq(jv_str(wel, "user"), "coco");
    expect_users(wel, ARGS("coco"));
    const struct jv *hist = jv_get(wel, "history");
    cr_assert(hist && hist->t == J_ARR && hist->n == 0, "a fresh room has history");
    jv_free(wel);
    /* "seq counts the room's events from 1" */
    cr_assert_eq(expect_event_by(w, "join", "coco"), 1);
    ws_free(w);
    server_stop(&s);
    free(cookie);
}

/* "users lists the distinct names online in byte order, the newcomer
 * included" — 'Z' sorts before 'a' in byte order. */
Test(chat, users_sorted_distinct_including_newcomer)
{
    char *path = users_file(ARGS("coco", "pw", "Zed", "pw", "b_9", "pw", "aa", "pw"), NULL);
    struct server s;
    server_start(&s, ARGS("--users", path));
    char *coco = login(s.port, "coco", "pw"), *zed = login(s.port, "Zed", "pw"),
         *b9 = login(s.port, "b_9", "pw"), *aa = login(s.port, "aa", "pw");
    struct ws *w1 = join_seeing(s.port, coco, "coco", NULL, ARGS("coco"));
    struct ws *w2 = join_seeing(s.port, zed, "Zed", NULL, ARGS("Zed", "coco"));
    struct ws *w3 = join_seeing(s.port, coco, "coco", NULL, ARGS("Zed", "coco"));
    struct ws *w4 = join_seeing(s.port, b9, "b_9", NULL, ARGS("Zed", "b_9", "coco"));
    struct ws *w5 = join_seeing(s.port, aa, "aa", NULL, ARGS("Zed", "aa", "b_9", "coco"));
    ws_free(w1);
    ws_free(w2);
    ws_free(w3);
    ws_free(w4);
    ws_free(w5);
    server_stop(&s);
    free(coco);
}

/* "join: to everyone, including the one who joined" */
Test(chat, join_goes_to_everyone_including_joiner)
{
    struct server s;
    server_start(&s, NULL);
    char *coco = login(s.port, "coco", "123456"), *cc = login(s.port, "cc", "123456");
    long long s1, s2;
    struct ws *a = chat_join(s.port, coco, "coco", &s1, NULL);
    struct ws *b = join_seeing(s.port, cc, "cc", &s2, ARGS("cc", "coco"));
    cr_assert_eq(s1, 1);
    cr_assert_eq(s2, 2);
    cr_assert_eq(expect_event_by(a, "join", "cc"), 2);
    ws_free(a);
    ws_free(b);
    server_stop(&s);
    free(coco);
}

/* "message: to everyone, including the sender" */
Test(chat, message_goes_to_everyone_including_sender)
{
    struct duo d;
    duo_start(&d);
    ws_send_texts(d.a, "hello from coco");
    cr_assert_eq(expect_message(d.a, "coco", "hello from coco", 15), 3);
    cr_assert_eq(expect_message(d.b, "coco", "hello from coco", 15), 3);
    ws_send_texts(d.b, "and back");
    cr_assert_eq(expect_message(d.b, "cc", "and back", 8), 4);
    cr_assert_eq(expect_message(d.a, "cc", "and back", 8), 4);
    duo_stop(&d);
}

/* Text round-trips exactly through the server's JSON: quotes, backslashes,
 * control characters, markup, non-ASCII, U+2028/9, a NUL byte. */
Test(chat, tricky_texts_round_trip_exactly)
{
    struct duo d;
    duo_start(&d);
    static const struct {
        const char *s;
        size_t n;
    } texts[] = {
#define T(lit) {lit, sizeof lit - 1}
        T("he said \"hi\" and 'bye'"),
        T("back\\slash \\n \\u0041 \\\" not escapes"),
        T("ctrl \x01\x02\x1b\x1f\x7f tab\tnl\ncr\r bs\b ff\f end"),
        T("<img src=x onerror=alert(1)>"),
        T("</script><script>alert(1)</script>&amp;&lt;"),
        T("h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe2\x9c\x93 \xe4\xb8\xad\xe6\x96\x87 "
          "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd"),
        T("line\xe2\x80\xa8sep\xe2\x80\xa9para"),
        T("  spaces kept around  "),
        T("{\"type\":\"join\",\"seq\":999,\"user\":\"admin\"}"),
        T("%s %n %x %%"),
        T("\xef\xbb\xbf" "bom"),
        T("nul\0byte"),
        T("/"),
#undef T
    };
    long long seq = 3;
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        ws_send_text(d.a, texts[i].s, texts[i].n);
        cr_assert_eq(expect_message(d.a, "coco", texts[i].s, texts[i].n), seq);
        cr_assert_eq(expect_message(d.b, "coco", texts[i].s, texts[i].n), seq);
        seq++;
    }
    duo_stop(&d);
}

/* "ts is milliseconds since the Unix epoch" (a unit check, not timing). */
Test(chat, ts_is_epoch_milliseconds)
{
    struct server s;
    server_start(&s, NULL);
    char *coco = login(s.port, "coco", "123456");
    struct ws *w = ws_connect(s.port, coco);
    jv_free(expect_event(w, "welcome"));
    struct jv *join = expect_event(w, "join");
    long long ts;
    cr_assert(jv_int(join, "ts", &ts));
    int64_t now = wall_ms();
    cr_assert(ts > now - 3600000 && ts < now + 3600000, "ts %lld is not near now (%lld ms)", ts,
              (long long)now);
    jv_free(join);
    ws_free(w);
    server_stop(&s);
    free(coco);
}

/* "seq counts the room's events from 1, without gaps" across joins,
 * messages and leaves. */
Test(chat, seq_from_1_without_gaps)
{
    struct server s;
    server_start(&s, NULL);
    char *coco = login(s.port, "coco", "123456"), *cc = login(s.port, "cc", "123456"),
         *aa = login(s.port, "aa", "123456");
    long long seq;
    struct ws *a = chat_join(s.port, coco, "coco", &seq, NULL);
    cr_assert_eq(seq, 1);
    for (int i = 0; i < 5; i++) {
        char t[16];
        snprintf(t, sizeof t, "m%d", i);
        ws_send_texts(a, t);
        cr_assert_eq(expect_message(a, "coco", t, strlen(t)), 2 + i);
    }
    struct ws *b = chat_join(s.port, cc, "cc", &seq, NULL);
    cr_assert_eq(seq, 7);
    cr_assert_eq(expect_event_by(a, "join", "cc"), 7);
    ws_free(a);
    cr_assert_eq(expect_event_by(b, "leave", "coco"), 8);
    struct ws *c = chat_join(s.port, aa, "aa", &seq, NULL);
    cr_assert_eq(seq, 9);
    cr_assert_eq(expect_event_by(b, "join", "aa"), 9);
    ws_send_texts(c, "last");
    cr_assert_eq(expect_message(b, "aa", "last", 4), 10);
    cr_assert_eq(expect_message(c, "aa", "last", 4), 10);
    ws_free(b);
    ws_free(c);
    server_stop(&s);
    free(coco);
}

/* "After welcome a client receives exactly the events from its own join on,
 * in seq order ...: one total order, nothing lost, nothing twice" — with
 * four clients posting at the same time. */
#define NCLIENTS 4
#define NPOSTS 25
Test(chat, concurrent_posters_see_one_total_order)
{
    struct server s;
    server_start(&s, NULL);
    const char *names[NCLIENTS] = {"coco", "cc", "aa", "coco"};
    char *cookies[3] = {login(s.port, "coco", "123456"), login(s.port, "cc", "123456"),
                        login(s.port, "aa", "123456")};
    struct ws *w[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        long long seq;
        w[i] = chat_join(s.port, cookies[i == 3 ? 0 : i], names[i], &seq, NULL);
        cr_assert_eq(seq, i + 1);
    }
    for (int i = 0; i < NCLIENTS; i++)
        for (int j = i + 1; j < NCLIENTS; j++)
            cr_assert_eq(expect_event_by(w[i], "join", names[j]), j + 1);

    /* Everyone posts at once. */
    char text[32];
    for (int i = 0; i < NCLIENTS; i++)
        for (int k = 0; k < NPOSTS; k++) {
            snprintf(text, sizeof text, "p%d-%d", i, k);
            ws_queue_text(w[i], text, strlen(text));
        }
    for (int i = 0; i < NCLIENTS; i++)
        ws_flush(w[i]);

    /* order[i][n] = the text of seq NCLIENTS+1+n as client i saw it. */
    static char order[NCLIENTS][NCLIENTS * NPOSTS][32];
    for (int i = 0; i < NCLIENTS; i++) {
        int next_k[NCLIENTS] = {0};
        for (int n = 0; n < NCLIENTS * NPOSTS; n++) {
            struct jv *v = expect_event(w[i], "message");
            long long seq;
            cr_assert(jv_int(v, "seq", &seq));
            cr_assert_eq(seq, NCLIENTS + 1 + n, "client %d: seq %lld after %d messages", i, seq, n);
            const char *t = jv_str(v, "text"), *u = jv_str(v, "user");
            int from, k;
            cr_assert(t && sscanf(t, "p%d-%d", &from, &k) == 2 && from >= 0 && from < NCLIENTS,
                      "unexpected text %s", t);
            cr_assert_str_eq(u, names[from], "p%d-%d posted by %s", from, k, u);
            /* One connection's messages keep their order. */
            cr_assert_eq(k, next_k[from]++, "client %d saw p%d-%d out of order", i, from, k);
            snprintf(order[i][n], sizeof order[i][n], "%s", t);
            jv_free(v);
        }
        for (int from = 0; from < NCLIENTS; from++)
            cr_assert_eq(next_k[from], NPOSTS);
    }
    for (int i = 1; i < NCLIENTS; i++)
        for (int n = 0; n < NCLIENTS * NPOSTS; n++)
            cr_assert_str_eq(order[i][n], order[0][n], "seq %d: client %d saw %s, client 0 saw %s",
                             NCLIENTS + 1 + n, i, order[i][n], order[0][n]);
    for (int i = 0; i < NCLIENTS; i++)
        ws_free(w[i]);
    server_stop(&s);
}

/* "history (up to the last 50 message events, oldest first)" */
Test(chat, history_last_50_messages_oldest_first)
{
    struct server s;
    server_start(&s, NULL);
    char *coco = login(s.port, "coco", "123456"), *cc = login(s.port, "cc", "123456");
    struct ws *a = chat_join(s.port, coco, "coco", NULL, NULL);
    char text[32];
    for (int k = 0; k < 60; k++) {
        snprintf(text, sizeof text, "h%d", k);
        ws_queue_text(a, text, strlen(text));
    }
    ws_flush(a);
    for (int k = 0; k < 60; k++) {
        snprintf(text, sizeof text, "h%d", k);
        cr_assert_eq(expect_message(a, "coco", text, strlen(text)), 2 + k);
    }
    struct jv *wel;
    long long join_seq;
    struct ws *b = chat_join(s.port, cc, "cc", &join_seq, &wel);
    cr_assert_eq(join_seq, 62);
    const struct jv *hist = jv_get(wel, "history");
    cr_assert_eq(hist->n, 50, "history holds %zu messages, expected the last 50", hist->n);
    for (size_t i = 0; i < 50; i++) {
        const struct jv *m = hist->items[i];
        snprintf(text, sizeof text, "h%zu", i + 10);
        const char *type = jv_str(m, "type");
        cr_assert(type && strcmp(type, "message") == 0, "history item %zu is not a message", i);
        cr_assert_str_eq(jv_str(m, "text"), text, "history item %zu", i);
        cr_assert_str_eq(jv_str(m, "user"), "coco");
        long long seq, ts;
        cr_assert(jv_int(m, "seq", &seq) && seq == (long long)i + 12, "history item %zu seq", i);
        cr_assert(jv_int(m, "ts", &ts));
    }
    jv_free(wel);
    cr_assert_eq(expect_event_by(a, "join", "cc"), 62);
    ws_free(a);
    ws_free(b);
    server_stop(&s);
    free(coco);
}

/* Fewer than 50: all of them; joins and leaves are not history. */
Test(chat, history_holds_only_messages)
{
    struct server s;
    server_start(&s, NULL);
    char *coco = login(s.port, "coco", "123456"), *cc = login(s.port, "cc", "123456");
    struct ws *a = chat_join(s.port, coco, "coco", NULL, NULL);
    struct ws *x = chat_join(s.port, cc, "cc", NULL, NULL);
    ws_free(x);
    expect_event_by(a, "join", "cc");
    expect_event_by(a, "leave", "cc");
    ws_send_texts(a, "one");
    expect_message(a, "coco", "one", 3);
    ws_send_texts(a, "two");
    expect_message(a, "coco", "two", 3);
    struct jv *wel;
    struct ws *b = chat_join(s.port, cc, "cc", NULL, &wel);
    const struct jv *hist = jv_get(wel, "history");
    cr_assert_eq(hist->n, 2);
    cr_assert_str_eq(jv_str(hist->items[0], "text"), "one");
    cr_assert_str_eq(jv_str(hist->items[1], "text"), "two");
    jv_free(wel);
    ws_free(a);
    ws_free(b);
    server_stop(&s);
    free(coco);
}

/* "a user connected twice joins twice and leaves twice; users lists the
 * distinct names" */
Test(chat, same_user_twice_joins_and_leaves_twice)
{
    struct server s;
    server_start(&s, NULL);
    char *coco = login(s.port, "coco", "123456"), *cc = login(s.port, "cc", "123456"),
         *aa = login(s.port, "aa", "123456");
    struct ws *obs = chat_join(s.port, cc, "cc", NULL, NULL);
    struct ws *c1 = chat_join(s.port, coco, "coco", NULL, NULL);
    struct ws *c2 = join_seeing(s.port, coco, "coco", NULL, ARGS("cc", "coco"));
    cr_assert_eq(expect_event_by(obs, "join", "coco"), 2);
    cr_assert_eq(expect_event_by(obs, "join", "coco"), 3);
    cr_assert_eq(expect_event_by(c1, "join", "coco"), 3);

    ws_free(c1);
    cr_assert_eq(expect_event_by(obs, "leave", "coco"), 4);
    cr_assert_eq(expect_event_by(c2, "leave", "coco"), 4);
    /* coco is still online through c2. */
    struct ws *late = join_seeing(s.port, aa, "aa", NULL, ARGS("aa", "cc", "coco"));
    ws_free(late);
    expect_event_by(obs, "join", "aa");
    expect_event_by(obs, "leave", "aa");
    ws_free(c2);
    cr_assert_eq(expect_event_by(obs, "leave", "coco"), 7);
    late = join_seeing(s.port, aa, "aa", NULL, ARGS("aa", "cc"));
    ws_free(late);
    ws_free(obs);
    server_stop(&s);
    free(coco);
}

/* "empty or all ASCII whitespace is ignored" */
Test(chat, empty_and_whitespace_messages_ignored)
{
    struct duo d;
    duo_start(&d);
    ws_send_text(d.a, "", 0);
    ws_send_texts(d.a, " ");
    ws_send_texts(d.a, "   \t\r\n  ");
    ws_send_texts(d.b, "\n");
    ws_send_texts(d.a, "real");
    cr_assert_eq(expect_message(d.a, "coco", "real", 4), 3, "an ignorable message took a seq");
    cr_assert_eq(expect_message(d.b, "coco", "real", 4), 3);
    /* Non-ASCII whitespace (U+00A0) is text. */
    ws_send_texts(d.a, "\xc2\xa0");
    cr_assert_eq(expect_message(d.b, "coco", "\xc2\xa0", 2), 4);
    duo_stop(&d);
}

/* "leave: to everyone still connected" — on an abrupt disconnect (FIN, and
 * RST) as well as on a close handshake. */
Test(chat, leave_broadcast_on_abrupt_disconnect)
{
    struct duo d;
    duo_start(&d);
    ws_free(d.b); /* FIN without a close frame */
    d.b = NULL;
    cr_assert_eq(expect_event_by(d.a, "leave", "cc"), 3);

    char *aa = login(d.s.port, "aa", "123456");
    struct ws *c = chat_join(d.s.port, aa, "aa", NULL, NULL);
    expect_event_by(d.a, "join", "aa");
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ws_free(c); /* RST */
    cr_assert_eq(expect_event_by(d.a, "leave", "aa"), 5);
    ws_send_texts(d.a, "still here");
    cr_assert_eq(expect_message(d.a, "coco", "still here", 10), 6);
    free(aa);
    duo_stop(&d);
}

/* "the close handshake is completed" — the server answers our close with
 * its own, closes the TCP connection, and the others see the leave. */
Test(chat, client_close_handshake_completed)
{
    struct duo d;
    duo_start(&d);
    uint16_t code = ws_close_handshake(d.b, 1000);
    cr_assert(code == 1000 || code == 0, "the server answered close 1000 with %u", code);
    cr_assert(ws_wait_tcp_close(d.b, CAP_MS), "the server did not close TCP after the handshake");
    cr_assert_eq(expect_event_by(d.a, "leave", "cc"), 3);
    duo_stop(&d);
}

/* ---- the slow reader ---- */

/* One unmasked server frame at p; 0 when incomplete. */
static size_t server_frame(const uint8_t *p, size_t n, int *opcode, bool *fin,
                           const uint8_t **payload, size_t *plen)
{
    if (n < 2)
        return 0;
    cr_assert((p[0] & 0x70) == 0, "server frame with RSV bits");
    cr_assert((p[1] & 0x80) == 0, "server frame is masked");
    *fin = p[0] & 0x80;
    *opcode = p[0] & 0x0f;
    size_t hl = 2;
    uint64_t len = p[1] & 0x7f;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        hl = 10;
    }
    if (n < hl + len)
        return 0;
    *payload = p + hl;
    *plen = (size_t)len;
    return hl + (size_t)len;
}

struct slow_result {
    int events;        /* chat events it received */
    long long last_seq;
    bool closed_1008;  /* it saw the close frame */
    bool tail_partial; /* EOF came in the middle of a frame */
    size_t bytes;      /* wire bytes of the event frames with seq >= count_from */
};

/* Reads everything the server sends to the slow client, raw: whole frames of
 * events in seq order, then close 1008 (or EOF). When the close comes, the
 * client tries to post (it must be ignored) and then answers the close. */
static struct slow_result drain_slow_reader(struct ws *w, long long leave_seq,
                                            long long count_from)
{
    struct slow_result res = {0};
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    len = w->pre_len - w->pre_off;
    memcpy(buf, w->pre + w->pre_off, len);
    size_t off = 0;
    bool eof = false;
    int64_t deadline = now_ms() + CAP_MS;
    for (;;) {
        int opcode;
        bool fin;
        const uint8_t *pl;
        size_t plen;
        size_t used = server_frame(buf + off, len - off, &opcode, &fin, &pl, &plen);
        if (used) {
            off += used;
            cr_assert(!res.closed_1008, "a frame after the close frame");
            if (opcode == 0x8) {
                uint16_t code = plen >= 2 ? (uint16_t)(pl[0] << 8 | pl[1]) : 0;
                cr_assert_eq(code, 1008, "the slow reader was closed with %u, not 1008", code);
                res.closed_1008 = true;
                /* Cut off: whatever it posts now must go nowhere. */
                ws_send_frame(w, true, 0, 0x1, true, "posted after the cut-off", 24);
                uint8_t reply[2] = {0x03, 0xf0}; /* 1008 */
                ws_send_frame(w, true, 0, 0x8, true, reply, 2);
                continue;
            }
            cr_assert(opcode == 0x1 && fin, "the slow reader got opcode %d fin %d", opcode, fin);
            struct jv *v = jv_parse((const char *)pl, plen);
            cr_assert(v != NULL, "a frame to the slow reader is not JSON: %.100s", pl);
            const char *type = jv_str(v, "type");
            if (res.events == 0) {
                cr_assert_str_eq(type, "welcome");
            } else {
                long long seq;
                cr_assert(jv_int(v, "seq", &seq), "%s without seq", type);
                if (res.events == 1)
                    cr_assert_str_eq(type, "join");
                else
                    cr_assert_eq(seq, res.last_seq + 1, "slow reader: seq %lld after %lld", seq,
                                 res.last_seq);
                cr_assert(seq < leave_seq, "the slow reader got seq %lld, after its leave %lld",
                          seq, leave_seq);
                res.last_seq = seq;
                if (seq >= count_from)
                    res.bytes += used;
            }
            res.events++;
            jv_free(v);
            continue;
        }
        if (eof)
            break;
        if (len == cap) {
            memmove(buf, buf + off, len - off);
            len -= off;
            off = 0;
            if (len == cap) {
                cap *= 2;
                buf = realloc(buf, cap);
            }
        }
        struct pollfd p = {w->fd, POLLIN, 0};
        int r = poll(&p, 1, remaining_ms(deadline));
        cr_assert(r > 0, "the slow reader's connection was neither closed nor finished");
        ssize_t n = recv(w->fd, buf + len, cap - len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            eof = true;
        else
            len += (size_t)n;
    }
    res.tail_partial = off != len;
    cr_assert(!(res.closed_1008 && res.tail_partial), "bytes after the close frame");
    free(buf);
    return res;
}

/* coco and cc join, in that order, and see everything up to cc's join:
 * next[] is the seq each of them expects next. */
static void join_two_readers(int port, const char *coco, const char *cc, struct ws *readers[2],
                             long long next[2])
{
    readers[0] = chat_join(port, coco, "coco", &next[0], NULL);
    readers[1] = chat_join(port, cc, "cc", &next[1], NULL);
    next[0]++;
    next[1]++;
    cr_assert_eq(expect_event_by(readers[0], "join", "cc"), next[0]++);
}

/* "A client that does not read is cut off once more than 1 MiB of frames
 * waits unsent for it inside the server: ... close 1008 ..., its leave goes
 * to the room at once, it can post nothing more ... One slow reader never
 * ... stalls the others." */
Test(chat, slow_reader_cut_off_others_unaffected)
{
    struct server s;
    server_start(&s, NULL);
    char *aa = login(s.port, "aa", "123456"), *coco = login(s.port, "coco", "123456"),
         *cc = login(s.port, "cc", "123456");
    /* The slow reader: a small receive buffer, and it never reads. */
    struct ws *slow = ws_connect_rcvbuf(s.port, aa, 4096);
    struct ws *readers[2];
    long long next[2];
    join_two_readers(s.port, coco, cc, readers, next); /* readers[0] is the poster */

    enum { BATCH = 16, TEXT = 4000, MAX_BATCHES = 500 };
    char *text = malloc(TEXT + 1);
    bool saw_leave[2] = {false, false};
    long long leave_seq = 0;
    int batch;
    for (batch = 0; batch < MAX_BATCHES && !saw_leave[0] && !saw_leave[1]; batch++) {
        for (int i = 0; i < BATCH; i++) {
            int n = snprintf(text, TEXT + 1, "b%d-%d|", batch, i);
            memset(text + n, 'x', (size_t)(TEXT - n));
            ws_queue_text(readers[0], text, TEXT);
        }
        ws_flush(readers[0]);
        /* Both readers get the whole batch, in order, promptly. */
        for (int r = 0; r < 2; r++) {
            for (int got = 0; got < BATCH;) {
                struct jv *v = ws_recv_event(readers[r], CAP_MS);
                const char *type = jv_str(v, "type");
                long long seq;
                cr_assert(jv_int(v, "seq", &seq));
                cr_assert_eq(seq, next[r], "reader %d: seq %lld, expected %lld", r, seq, next[r]);
                next[r]++;
                if (strcmp(type, "leave") == 0) {
                    cr_assert_str_eq(jv_str(v, "user"), "aa");
                    cr_assert(!saw_leave[r], "two leaves");
                    saw_leave[r] = true;
                    leave_seq = seq;
                } else {
                    cr_assert_str_eq(type, "message", "unexpected %s event", type);
                    char want[32];
                    int n = snprintf(want, sizeof want, "b%d-%d|", batch, got);
                    const char *t = jv_str(v, "text");
                    cr_assert(t && strlen(t) == TEXT && strncmp(t, want, (size_t)n) == 0,
                              "reader %d: expected message %s", r, want);
                    got++;
                }
                jv_free(v);
            }
        }
    }
    cr_assert(saw_leave[0] || saw_leave[1],
              "the slow reader was not cut off after %d messages of %d bytes", batch * BATCH, TEXT);
    for (int r = 0; r < 2; r++)
        if (!saw_leave[r]) {
            cr_assert_eq(expect_event_by(readers[r], "leave", "aa"), leave_seq);
            next[r]++;
        }
    free(text);

    /* The slow reader finally reads: whole frames, then 1008 (or EOF). */
    struct slow_result res = drain_slow_reader(slow, leave_seq, 0);
    cr_assert(res.events >= 2, "the slow reader did not even get its welcome and join");
    if (!res.closed_1008)
        cr_log_info("slow reader: EOF without the close frame (its socket stayed full)%s",
                    res.tail_partial ? ", after a partial frame" : "");
    ws_free(slow);

    /* The others chat on, and nothing from the slow reader ever appears. */
    ws_send_texts(readers[0], "after the cut-off");
    for (int r = 0; r < 2; r++)
        cr_assert_eq(expect_message(readers[r], "coco", "after the cut-off", 17), next[r]++,
                     "reader %d: something came between the leave and the next message", r);
    ws_free(readers[0]);
    ws_free(readers[1]);
    server_stop(&s);
    free(aa);
}

/* The TCP state of the server's end of the connection whose client end is
 * fd, from /proc/net/tcp (1 ESTABLISHED, 4 FIN_WAIT1, ...), or 0 when the
 * server's end is gone. Seen from the server's side because a client whose
 * receive buffer is full cannot see a FIN behind the data it has not read. */
static int server_end_tcp_state(int server_port, int fd)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    unsigned client_port = ntohs(a.sin_port);
    FILE *f = fopen("/proc/net/tcp", "r");
    cr_assert(f != NULL);
    char line[512];
    int state = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned lport, rport, st;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x", &lport, &rport, &st) == 3 &&
            lport == (unsigned)server_port && rport == client_port) {
            state = (int)st;
            break;
        }
    }
    fclose(f);
    return state;
}

/* "... it is sent close 1008 (... a client whose socket stays full may never
 * see it), its leave goes to the room at once, ... and its socket is closed
 * after the close handshake or 2 s." Here the client never reads and never
 * answers: the server must close its end anyway (checked with the safety
 * cap, far above the 2 s). */
Test(chat, cut_off_reader_that_never_answers_is_closed)
{
    struct server s;
    server_start(&s, NULL);
    char *aa = login(s.port, "aa", "123456"), *coco = login(s.port, "coco", "123456");
    struct ws *slow = ws_connect_rcvbuf(s.port, aa, 4096);
    long long next;
    struct ws *poster = chat_join(s.port, coco, "coco", &next, NULL);
    next++;

    enum { BATCH = 16, TEXT = 4000, MAX_BATCHES = 500 };
    char *text = malloc(TEXT);
    memset(text, 'x', TEXT);
    bool left = false;
    for (int batch = 0; batch < MAX_BATCHES && !left; batch++) {
        for (int i = 0; i < BATCH; i++)
            ws_queue_text(poster, text, TEXT);
        ws_flush(poster);
        for (int got = 0; got < BATCH;) {
            struct jv *v = ws_recv_event(poster, CAP_MS);
            const char *type = jv_str(v, "type");
            if (strcmp(type, "leave") == 0) {
                cr_assert_str_eq(jv_str(v, "user"), "aa");
                left = true;
            } else {
                cr_assert_str_eq(type, "message", "unexpected %s event", type);
                got++;
            }
            jv_free(v);
        }
    }
    cr_assert(left, "the reader that never reads was not cut off");
    free(text);

    int64_t deadline = now_ms() + CAP_MS;
    int state;
    while ((state = server_end_tcp_state(s.port, slow->fd)) == 1 && remaining_ms(deadline) > 0)
        poll(NULL, 0, 20); /* re-read /proc: the server's close cannot be waited on here */
    cr_assert_neq(state, 1, "the server's end is still ESTABLISHED %d ms after the leave",
                  CAP_MS);

    ws_send_texts(poster, "after the cut-off"); /* the room goes on */
    expect_message(poster, "coco", "after the cut-off", 17);
    ws_free(slow);
    ws_free(poster);
    free(aa);
    free(coco);
    server_stop(&s);
}

/* ---- flood, then close ---- */

/* One reader's view of the flood: the flooder's messages in order, then its
 * leave. Returns true when the leave came. */
static bool read_flood(struct ws *w, long long *next, int *got, int msgs, const char *text_tail)
{
    for (struct ws_msg *m; (m = ws_recv(w, 0))->kind != WS_TIMEOUT;) {
        cr_assert_eq(m->kind, WS_TEXT, "a reader got %s %u after %d of %d messages",
                     ws_kind_name(m->kind), m->code, *got, msgs);
        struct jv *v = jv_parse(m->data, m->len);
        ws_msg_free(m);
        cr_assert(v != NULL);
        long long seq;
        cr_assert(jv_int(v, "seq", &seq));
        cr_assert_eq(seq, *next, "a reader got seq %lld, expected %lld", seq, *next);
        (*next)++;
        const char *type = jv_str(v, "type"), *user = jv_str(v, "user");
        cr_assert_str_eq(user, "aa", "%s from %s during the flood", type, user);
        if (strcmp(type, "leave") == 0) {
            cr_assert_eq(*got, msgs, "the flooder's leave came after %d of its %d messages", *got,
                         msgs);
            jv_free(v);
            return true;
        }
        cr_assert_str_eq(type, "message");
        char want[8];
        snprintf(want, sizeof want, "%05d", *got);
        const char *t = jv_str(v, "text");
        cr_assert(t && strncmp(t, want, 5) == 0 && strcmp(t + 5, text_tail) == 0,
                  "a reader expected message %s, got %.5s", want, t ? t : "-");
        (*got)++;
        jv_free(v);
    }
    return false;
}

/* "Every message read before a client's close is delivered before its
 * leave." A client writes MSGS messages as fast as its socket takes them,
 * then close 1000. Two members read continuously: each must receive all of
 * them, in order, then the flooder's leave. The texts are control characters,
 * which JSON escapes to six times their size: each 60-byte message comes
 * back as a ~400-byte event, so the server's fan-out is heavier than what it
 * reads. The flooder reads its own echoes too, but never ahead of the
 * slower reader: the members are not slower than the flooder, and none of
 * them may be cut off as a slow reader. */
Test(chat, flood_then_close_every_message_before_the_leave)
{
    struct server s;
    server_start(&s, NULL);
    char *aa = login(s.port, "aa", "123456"), *coco = login(s.port, "coco", "123456"),
         *cc = login(s.port, "cc", "123456");
    struct ws *readers[2];
    long long next[2];
    join_two_readers(s.port, coco, cc, readers, next);
    long long flood_join;
    struct ws *flood = chat_join(s.port, aa, "aa", &flood_join, NULL);
    for (int r = 0; r < 2; r++)
        cr_assert_eq(expect_event_by(readers[r], "join", "aa"), next[r]++);

    enum { MSGS = 4000, TEXT = 60 };
    char tail[TEXT - 5 + 1];
    memset(tail, '\x01', sizeof tail - 1);
    tail[sizeof tail - 1] = '\0';
    size_t cap = (size_t)MSGS * (TEXT + 14) + 16, len = 0, sent = 0;
    uint8_t *wire = malloc(cap);
    char text[TEXT + 1];
    for (int i = 0; i < MSGS; i++) {
        snprintf(text, sizeof text, "%05d%s", i, tail);
        len += ws_frame(wire + len, true, 0, 0x1, true, text, TEXT);
    }
    uint8_t bye[2] = {0x03, 0xe8}; /* 1000 */
    len += ws_frame(wire + len, true, 0, 0x8, true, bye, 2);

    int got[2] = {0, 0}, echoes = 0;
    bool left[2] = {false, false}, flood_closed = false;
    int64_t deadline = now_ms() + CAP_MS * 2;
    while (!(left[0] && left[1]) && remaining_ms(deadline) > 0) {
        int slowest = got[0] < got[1] ? got[0] : got[1];
        bool flood_reads = !flood_closed && echoes <= slowest;
        struct pollfd p[4] = {{readers[0]->fd, POLLIN, 0},
                              {readers[1]->fd, POLLIN, 0},
                              {sent < len ? flood->fd : -1, POLLOUT, 0},
                              {flood_reads ? flood->fd : -1, POLLIN, 0}};
        poll(p, 4, remaining_ms(deadline));
        if (p[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t w = send(flood->fd, wire + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            cr_assert(w > 0 || errno == EAGAIN || errno == EINTR,
                      "the server closed the flooder after %zu of %zu bytes", sent, len);
            if (w > 0)
                sent += (size_t)w;
        }
        for (int r = 0; r < 2; r++)
            if (!left[r])
                left[r] = read_flood(readers[r], &next[r], &got[r], MSGS, tail);
        /* The flooder's own stream: its echoes, then close 1000, then EOF. */
        for (struct ws_msg *m; flood_reads && echoes <= slowest &&
                               (m = ws_recv(flood, 0))->kind != WS_TIMEOUT;) {
            enum ws_kind k = m->kind;
            cr_assert(k == WS_TEXT || k == WS_CLOSE || k == WS_EOF,
                      "the flooder got %s after %d echoes", ws_kind_name(k), echoes);
            cr_assert(k != WS_CLOSE || m->code == 1000, "the flooder was closed with %u",
                      m->code);
            ws_msg_free(m);
            if (k != WS_TEXT) {
                flood_closed = true;
                break;
            }
            echoes++;
        }
    }
    cr_assert(left[0] && left[1], "after %zu of %zu bytes: readers got %d and %d of %d messages",
              sent, len, got[0], got[1], MSGS);
    cr_log_info("flood then close: %d messages to each reader, %d echoes before the close", MSGS,
                echoes);

    /* The room goes on, and nothing of the flooder's comes after its leave. */
    ws_send_texts(readers[0], "after the flood");
    for (int r = 0; r < 2; r++)
        cr_assert_eq(expect_message(readers[r], "coco", "after the flood", 15), next[r]++);
    ws_free(flood);
    ws_free(readers[0]);
    ws_free(readers[1]);
    free(wire);
    free(aa);
    free(coco);
    free(cc);
    server_stop(&s);
}

/* ---- flooders and readers ---- */

/* "A client that sends faster than the room can deliver is slowed down
 * (the server stops reading from it for a while), never answered by cutting
 * off members that read: a member that reads continuously is never cut off,
 * whatever other clients send."
 *
 * nflood connections (all "aa") each write `bytes` of 1-byte text frames
 * (7 bytes on the wire, ~9 300 messages in one 64 KiB read, each fanned out
 * as a ~75-byte event to every member) as fast as their sockets take them,
 * while two readers and the flooders themselves read continuously. Every
 * member must get every message, in seq order and in each flooder's order,
 * and nothing else: no 1008, no leave. A flooder's text is one printable
 * character: which flooder sent it (chars / FLOOD_ALPHABET) and its index
 * modulo FLOOD_ALPHABET. */
#define FLOOD_MAX 10
#define FLOOD_ALPHABET 9

struct flood_member {
    struct ws *w;
    long long next;          /* the seq it expects next */
    int got[FLOOD_MAX];      /* messages received from each flooder */
    uint8_t *wire;           /* flooders: what they write, and how far */
    size_t len, sent;
};

/* Everything that has arrived for m; false once it has all it expects. */
static void flood_read(struct flood_member *m, int nflood, int msgs, const char *who)
{
    for (struct ws_msg *x; (x = ws_recv(m->w, 0))->kind != WS_TIMEOUT;) {
        int total = 0;
        for (int k = 0; k < nflood; k++)
            total += m->got[k];
        cr_assert_eq(x->kind, WS_TEXT, "%s got %s %u after %d of %d messages", who,
                     ws_kind_name(x->kind), x->code, total, nflood * msgs);
        struct jv *v = jv_parse(x->data, x->len);
        cr_assert(v != NULL);
        long long seq;
        cr_assert(jv_int(v, "seq", &seq), "%s got an event without seq: %.300s", who, x->data);
        ws_msg_free(x);
        cr_assert_eq(seq, m->next, "%s got seq %lld, expected %lld", who, seq, m->next);
        m->next++;
        const char *type = jv_str(v, "type"), *text = jv_str(v, "text");
        cr_assert_str_eq(type, "message", "%s got a %s event by %s during the flood", who, type,
                         jv_str(v, "user"));
        cr_assert(text && strlen(text) == 1 && text[0] > ' ', "%s: unexpected text", who);
        int c = text[0] - '!', k = c / FLOOD_ALPHABET;
        cr_assert(k < nflood, "%s: text %s from no flooder", who, text);
        cr_assert_eq(c % FLOOD_ALPHABET, m->got[k] % FLOOD_ALPHABET,
                     "%s: flooder %d's message %d out of order", who, k, m->got[k]);
        m->got[k]++;
        jv_free(v);
    }
}

static bool flood_member_done(const struct flood_member *m, int nflood, int msgs)
{
    for (int k = 0; k < nflood; k++)
        if (m->got[k] < msgs)
            return false;
    return true;
}

static void flooders_against_readers(int nflood, size_t bytes)
{
    struct server s;
    server_start(&s, NULL);
    char *aa = login(s.port, "aa", "123456"), *coco = login(s.port, "coco", "123456"),
         *cc = login(s.port, "cc", "123456");
    int n = 2 + nflood;
    struct flood_member m[2 + FLOOD_MAX];
    memset(m, 0, sizeof m);
    struct ws *readers[2];
    long long next[2];
    join_two_readers(s.port, coco, cc, readers, next);
    for (int r = 0; r < 2; r++) {
        m[r].w = readers[r];
        m[r].next = next[r];
    }
    /* The flooders join; everyone already in sees each join. */
    for (int k = 0; k < nflood; k++) {
        long long seq;
        m[2 + k].w = chat_join(s.port, aa, "aa", &seq, NULL);
        m[2 + k].next = seq + 1;
        for (int i = 0; i < 2 + k; i++)
            cr_assert_eq(expect_event_by(m[i].w, "join", "aa"), m[i].next++);
    }
    int msgs = (int)(bytes / 7);
    for (int k = 0; k < nflood; k++) {
        struct flood_member *f = &m[2 + k];
        f->wire = malloc((size_t)msgs * 7);
        for (int i = 0; i < msgs; i++) {
            char c = (char)('!' + k * FLOOD_ALPHABET + i % FLOOD_ALPHABET);
            f->len += ws_frame(f->wire + f->len, true, 0, 0x1, true, &c, 1);
        }
    }

    int64_t deadline = now_ms() + CAP_MS * 2;
    bool done = false;
    while (!done && remaining_ms(deadline) > 0) {
        struct pollfd p[2 + FLOOD_MAX];
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd){m[i].w->fd, (short)(POLLIN | (m[i].sent < m[i].len ? POLLOUT : 0)), 0};
        poll(p, (nfds_t)n, remaining_ms(deadline));
        for (int i = 0; i < n; i++) {
            struct flood_member *f = &m[i];
            if (f->sent < f->len && (p[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
                ssize_t w = send(f->w->fd, f->wire + f->sent, f->len - f->sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                cr_assert(w > 0 || errno == EAGAIN || errno == EINTR,
                          "the server closed flooder %d after %zu of %zu bytes", i - 2, f->sent,
                          f->len);
                if (w > 0)
                    f->sent += (size_t)w;
            }
        }
        done = true;
        for (int i = 0; i < n; i++) {
            char who[32];
            snprintf(who, sizeof who, i < 2 ? "reader %d" : "flooder %d", i < 2 ? i : i - 2);
            flood_read(&m[i], nflood, msgs, who);
            done = done && flood_member_done(&m[i], nflood, msgs);
        }
    }
    for (int i = 0; i < n; i++) {
        int total = 0;
        for (int k = 0; k < nflood; k++)
            total += m[i].got[k];
        cr_assert(flood_member_done(&m[i], nflood, msgs),
                  "%s %d got %d of %d messages within the cap", i < 2 ? "reader" : "flooder",
                  i < 2 ? i : i - 2, total, nflood * msgs);
    }
    cr_log_info("%d flooder(s): %d messages each, all delivered to %d members", nflood, msgs, n);

    /* The room goes on. */
    ws_send_texts(m[0].w, "after the flood");
    for (int i = 0; i < n; i++)
        cr_assert_eq(expect_message(m[i].w, "coco", "after the flood", 15), m[i].next++);
    for (int i = 0; i < n; i++) {
        free(m[i].wire);
        ws_free(m[i].w);
    }
    free(aa);
    free(coco);
    free(cc);
    server_stop(&s);
}

Test(chat, one_flooder_is_slowed_and_no_reader_is_cut_off)
{
    flooders_against_readers(1, 64 * 1024);
}

Test(chat, two_flooders_are_slowed_and_no_reader_is_cut_off)
{
    flooders_against_readers(2, 64 * 1024);
}

Test(chat, ten_flooders_are_slowed_and_no_reader_is_cut_off)
{
    flooders_against_readers(10, 16 * 1024);
}

/* "A client that does not read is cut off once more than 1 MiB of frames
 * waits unsent for it inside the server (bytes the server has queued, not
 * the kernel's socket buffers)" — exactly, on every model.
 *
 * The poster sees every event the slow member was sent, byte for byte the
 * same frames, so the test knows G, the bytes generated for the slow member
 * from the first message up to the one that cut it off (the event right
 * before its leave). Reading afterwards, the slow member gets R of them:
 * all the server had written before the cut, plus the rest of a frame it
 * was in the middle of. So what was queued at the cut lies in
 * (G - R, G - R + one frame]: more than 1 MiB must fit in that window, and
 * one event fewer must not have been more than 1 MiB. */
Test(chat, cut_off_exactly_when_more_than_one_mebibyte_is_queued)
{
    struct server s;
    server_start(&s, NULL);
    char *aa = login(s.port, "aa", "123456"), *coco = login(s.port, "coco", "123456");
    struct ws *slow = ws_connect_rcvbuf(s.port, aa, 4096);
    long long join_seq;
    struct ws *poster = chat_join(s.port, coco, "coco", &join_seq, NULL);
    long long first = join_seq + 1;

    enum { BATCH = 16, TEXT = 1000, MAX_EVENTS = 4000 };
    size_t *size = calloc(MAX_EVENTS, sizeof *size); /* frame bytes, by seq - first */
    char text[TEXT];
    long long leave_seq = 0;
    for (int sent = 0; !leave_seq && sent + BATCH < MAX_EVENTS; sent += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            memset(text, 'a' + (sent + i) % 26, TEXT);
            ws_queue_text(poster, text, TEXT);
        }
        ws_flush(poster);
        for (int got = 0; got < BATCH;) {
            struct ws_msg *m = ws_recv(poster, CAP_MS);
            cr_assert_eq(m->kind, WS_TEXT, "the poster got %s", ws_kind_name(m->kind));
            struct jv *v = jv_parse(m->data, m->len);
            long long seq;
            cr_assert(v && jv_int(v, "seq", &seq) && seq >= first && seq - first < MAX_EVENTS);
            size[seq - first] = (m->len < 126 ? 2 : m->len < 65536 ? 4 : 10) + m->len;
            if (strcmp(jv_str(v, "type"), "leave") == 0) {
                cr_assert_str_eq(jv_str(v, "user"), "aa");
                leave_seq = seq;
            } else {
                got++;
            }
            jv_free(v);
            ws_msg_free(m);
        }
    }
    cr_assert(leave_seq > first, "the reader that never reads was not cut off");

    size_t generated = 0, largest = 0, trigger = size[leave_seq - 1 - first];
    for (long long q = first; q < leave_seq; q++) {
        generated += size[q - first];
        if (size[q - first] > largest)
            largest = size[q - first];
    }
    struct slow_result res = drain_slow_reader(slow, leave_seq, first);
    cr_assert(res.closed_1008, "the close 1008 did not reach the slow reader after %zu bytes",
              res.bytes);
    size_t queued_at_least = generated - res.bytes, queued_at_most = queued_at_least + largest;
    cr_log_info("cut off with %zu..%zu bytes queued (limit %d)", queued_at_least, queued_at_most,
                ROOM_MAX_BACKLOG_BYTES);
    cr_assert_gt(queued_at_most, ROOM_MAX_BACKLOG_BYTES,
                 "cut off with at most %zu bytes queued: not more than 1 MiB", queued_at_most);
    /* Where the leave cannot be "at once" in the room's order, events
     * already on their way come before it: chat-forked decides in the child,
     * on what waits there, and the hub hears of it with the child's leave;
     * with --redis (the contract run, tests/redis/with_redis.sh) the leave is
     * published and takes its place in the stream behind what was published
     * before. Which event cut the member off is then not the one before its
     * leave, and how many come between depends on how the processes were
     * scheduled (a batch on a quiet machine, more under load): there the
     * test holds the server to "never before 1 MiB" and to a bounded queue
     * (another ROOM_DEEP_BACKLOG at most), not to the event. */
    bool leave_later = strcmp(server_model(&s), "forked") == 0 || getenv("C10K_REAL_SERVER");
    size_t slack = leave_later ? 256 * 1024 : 0;
    cr_assert_leq(queued_at_least - trigger, ROOM_MAX_BACKLOG_BYTES + slack,
                  "%zu bytes were queued an event before the cut-off (1 MiB + %zu allowed)",
                  queued_at_least - trigger, slack);
    free(size);
    ws_free(slow);
    ws_free(poster);
    free(aa);
    free(coco);
    server_stop(&s);
}
