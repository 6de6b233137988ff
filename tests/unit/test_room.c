#include <criterion/criterion.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "room.h"

/* ---- a fake sink that records what each member was sent ---------------- */

struct fake {
    struct room_member m;
    char **json;        /* the JSON of each frame received, in order */
    struct rbuf **ev;   /* the frames themselves, one reference each */
    size_t n, cap;
    /* Backlog model: a member that keeps up has only ev waiting; `pending`
     * adds unsent bytes, `accumulate` makes nothing ever drain, and
     * slow_on_type makes it fall behind on the first event of that type. */
    size_t pending;
    bool accumulate;
    size_t queued;
    const char *slow_on_type;
    int cutoffs;
    int unblocks; /* times the room let this poster go on */
};

#define TS "1700000000123"
#define BIG (16u << 20) /* limit for the expected-output buffers */
static uint64_t fixed_clock(void) { return 1700000000123ull; }

static struct fake *fake_of(struct room_member *m)
{
    return (struct fake *)((char *)m - offsetof(struct fake, m));
}

/* The JSON of a server text frame, or a marker that fails any comparison.
 * No cr_assert here: deliver runs on the posting threads in one test. */
static char *frame_json(const struct rbuf *ev)
{
    const unsigned char *p = (const unsigned char *)ev->data;
    if (ev->len < 2 || p[0] != 0x81 || (p[1] & 0x80))
        return strdup("<not an unmasked FIN text frame>");
    size_t len = p[1] & 0x7f, off = 2;
    if (len == 126) {
        len = (size_t)p[2] << 8 | p[3];
        off = 4;
        if (len < 126)
            return strdup("<non-minimal 16-bit length>");
    } else if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | p[i];
        off = 10;
        if (len < 65536)
            return strdup("<non-minimal 64-bit length>");
    }
    if (off + len != ev->len)
        return strdup("<frame length does not match the rbuf>");
    return strndup(ev->data + off, len);
}

static size_t fake_deliver(struct room_member *m, struct rbuf *ev)
{
    struct fake *f = fake_of(m);
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->json = realloc(f->json, f->cap * sizeof *f->json);
        f->ev = realloc(f->ev, f->cap * sizeof *f->ev);
    }
    char *json = frame_json(ev);
    f->json[f->n] = json;
    f->ev[f->n++] = rbuf_ref(ev);
    if (f->slow_on_type) {
        char needle[64];
        snprintf(needle, sizeof needle, "{\"type\":\"%s\"", f->slow_on_type);
        if (strncmp(json, needle, strlen(needle)) == 0)
            f->pending = 2 * ROOM_MAX_BACKLOG;
    }
    if (f->accumulate) {
        f->queued += ev->len;
        return f->queued + f->pending;
    }
    return ev->len + f->pending;
}

static void fake_cut_off(struct room_member *m)
{
    fake_of(m)->cutoffs++;
}

static void fake_unblock(struct room_member *m) { fake_of(m)->unblocks++; }

static const struct room_sink sink = {fake_deliver, fake_cut_off, fake_unblock, NULL};

static uint64_t mono_now = 5000;
static uint64_t fake_mono(void) { return mono_now; }

static void fake_free(struct fake *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->json[i]);
        rbuf_unref(f->ev[i]);
    }
    free(f->json);
    free(f->ev);
    memset(f, 0, sizeof *f);
}

static void setup(void)
{
    room_clock_ms = fixed_clock;
    room_mono_ms = fake_mono;
}

TestSuite(room, .init = setup);

/* ---- expected events ---------------------------------------------------- */

static char expbuf[8][65536];
static int expslot;

static const char *ev_join(unsigned seq, const char *user)
{
    char *s = expbuf[expslot++ % 8];
    snprintf(s, sizeof expbuf[0], "{\"type\":\"join\",\"seq\":%u,\"ts\":" TS ",\"user\":\"%s\"}", seq, user);
    return s;
}

static const char *ev_leave(unsigned seq, const char *user)
{
    char *s = expbuf[expslot++ % 8];
    snprintf(s, sizeof expbuf[0], "{\"type\":\"leave\",\"seq\":%u,\"ts\":" TS ",\"user\":\"%s\"}", seq, user);
    return s;
}

/* text is the already-escaped JSON string body */
static const char *ev_msg(unsigned seq, const char *user, const char *text)
{
    char *s = expbuf[expslot++ % 8];
    snprintf(s, sizeof expbuf[0],
             "{\"type\":\"message\",\"seq\":%u,\"ts\":" TS ",\"user\":\"%s\",\"text\":\"%s\"}", seq,
             user, text);
    return s;
}

static uint64_t seq_of(const char *json)
{
    const char *p = strstr(json, "\"seq\":");
    cr_assert_not_null(p, "no seq in %s", json);
    return strtoull(p + 6, NULL, 10);
}

static void join(struct room *r, struct fake *f, const char *user)
{
    cr_assert_eq(room_join(r, &f->m, user), 0);
}

static void post(struct room *r, struct fake *f, const char *text)
{
    room_post(r, &f->m, text, strlen(text));
}

/* The welcome a new member would get now (the probe joins and leaves). */
static char *probe_welcome(struct room *r, const char *user)
{
    struct fake p = {0};
    join(r, &p, user);
    char *w = strdup(p.json[0]);
    room_leave(r, &p.m);
    fake_free(&p);
    return w;
}

static bool stop_asked;
static bool fake_stopping(void) { return stop_asked; }
static const struct room_sink stopping_sink = {fake_deliver, fake_cut_off, fake_unblock,
                                               fake_stopping};

/* ---- tests -------------------------------------------------------------- */

Test(room, welcome_first_then_join_to_everyone)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0}, b = {0};

    join(r, &a, "alice");
    cr_assert_eq(a.n, 2);
    cr_assert_str_eq(a.json[0], "{\"type\":\"welcome\",\"user\":\"alice\",\"users\":[\"alice\"],\"history\":[]}");
    cr_assert_str_eq(a.json[1], ev_join(1, "alice"));
    cr_assert(a.m.joined);
    cr_assert_str_eq(a.m.user, "alice");

    join(r, &b, "bob");
    cr_assert_eq(a.n, 3, "the welcome went to the newcomer only");
    cr_assert_str_eq(a.json[2], ev_join(2, "bob"));
    cr_assert_eq(b.n, 2);
    cr_assert_str_eq(b.json[0],
                     "{\"type\":\"welcome\",\"user\":\"bob\",\"users\":[\"alice\",\"bob\"],\"history\":[]}");
    cr_assert_str_eq(b.json[1], ev_join(2, "bob"));

    struct room_stats st = room_stats(r);
    cr_assert_eq(st.members, 2);
    cr_assert_eq(st.seq, 2);

    room_leave(r, &a.m);
    cr_assert_eq(b.n, 3);
    cr_assert_str_eq(b.json[2], ev_leave(3, "alice"));
    cr_assert_eq(a.n, 3, "a leaving member gets nothing more");
    room_leave(r, &b.m);
    cr_assert_eq(room_stats(r).members, 0);
    room_free(r);
    fake_free(&a);
    fake_free(&b);
}

Test(room, seq_counts_every_event_without_gaps)
{
    struct room *r = room_new(&sink, false);
    struct fake obs = {0}, x = {0}, y = {0}, late = {0};

    join(r, &obs, "obs");
    join(r, &x, "x");
    post(r, &x, "one");
    join(r, &y, "y");
    post(r, &obs, "two");
    room_leave(r, &x.m);
    post(r, &y, "three");
    join(r, &late, "late");
    post(r, &late, "four");
    room_leave(r, &y.m);
    post(r, &obs, "five");

    cr_assert_eq(obs.n, 1 + 11);
    for (size_t i = 1; i < obs.n; i++)
        cr_assert_eq(seq_of(obs.json[i]), i, "frame %zu: %s", i, obs.json[i]);
    cr_assert_eq(room_stats(r).seq, 11);

    /* The late joiner sees exactly the events from its own join on. */
    cr_assert_eq(late.n, 1 + 4);
    cr_assert_str_eq(late.json[1], ev_join(8, "late"));
    for (size_t i = 1; i < late.n; i++)
        cr_assert_str_eq(late.json[i], obs.json[7 + i]);

    room_leave(r, &obs.m);
    room_leave(r, &late.m);
    room_free(r);
    fake_free(&obs);
    fake_free(&x);
    fake_free(&y);
    fake_free(&late);
}

Test(room, presence_is_sorted_distinct_and_counts_connections)
{
    struct room *r = room_new(&sink, false);
    struct fake f[5];
    memset(f, 0, sizeof f);
    const char *names[] = {"zed", "amy", "zed", "Bob", "amy"};
    for (int i = 0; i < 5; i++)
        join(r, &f[i], names[i]);

    /* byte order: uppercase before lowercase */
    char *w = probe_welcome(r, "carl");
    cr_assert_str_eq(w, "{\"type\":\"welcome\",\"user\":\"carl\",\"users\":[\"Bob\",\"amy\",\"carl\",\"zed\"],"
                        "\"history\":[]}");
    free(w);

    /* a user connected twice joins twice and leaves twice */
    cr_assert_str_eq(f[1].json[2], ev_join(3, "zed"));
    room_leave(r, &f[0].m);
    w = probe_welcome(r, "dan");
    cr_assert(strstr(w, "\"users\":[\"Bob\",\"amy\",\"dan\",\"zed\"]"), "%s", w);
    free(w);
    room_leave(r, &f[2].m);
    w = probe_welcome(r, "dan");
    cr_assert(strstr(w, "\"users\":[\"Bob\",\"amy\",\"dan\"]"), "%s", w);
    free(w);

    /* the newcomer is listed even when its name is already online */
    w = probe_welcome(r, "amy");
    cr_assert(strstr(w, "\"users\":[\"Bob\",\"amy\"]"), "%s", w);
    free(w);

    room_leave(r, &f[1].m);
    room_leave(r, &f[3].m);
    room_leave(r, &f[4].m);
    w = probe_welcome(r, "eve");
    cr_assert(strstr(w, "\"users\":[\"eve\"]"), "%s", w);
    free(w);
    room_free(r);
    for (int i = 0; i < 5; i++)
        fake_free(&f[i]);
}

Test(room, history_keeps_last_50_oldest_first_as_broadcast)
{
    struct room *r = room_new(&sink, false);
    struct fake obs = {0}, late = {0};
    join(r, &obs, "obs");
    char text[32];
    for (int i = 1; i <= 60; i++) {
        snprintf(text, sizeof text, "msg %d", i);
        post(r, &obs, text);
    }
    join(r, &late, "late");

    /* obs.json[2 + k] is message k + 1; history holds messages 11..60 */
    struct buf want = {0};
    buf_appendf(&want, BIG, "{\"type\":\"welcome\",\"user\":\"late\",\"users\":[\"late\",\"obs\"],\"history\":[");
    for (int k = 10; k < 60; k++)
        buf_appendf(&want, BIG, "%s%s", k > 10 ? "," : "", obs.json[2 + k]);
    buf_appendf(&want, BIG, "]}");
    cr_assert_str_eq(late.json[0], want.data);
    cr_assert_str_eq(obs.json[2 + 10], ev_msg(12, "obs", "msg 11"));
    buf_free(&want);

    room_leave(r, &obs.m);
    room_leave(r, &late.m);
    room_free(r);
    fake_free(&obs);
    fake_free(&late);
}

Test(room, blank_text_and_non_members_are_ignored)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0}, stranger = {0};
    join(r, &a, "a");

    post(r, &a, "");
    post(r, &a, " \t\n\r\f\v  ");
    room_post(r, &a.m, NULL, 0);
    post(r, &stranger, "hello?");
    room_leave(r, &stranger.m); /* never joined: nothing happens */
    cr_assert_eq(a.n, 2);
    cr_assert_eq(stranger.n, 0);
    cr_assert_eq(room_stats(r).seq, 1);
    cr_assert_eq(room_stats(r).members, 1);

    /* only ASCII whitespace counts as blank */
    post(r, &a, " x ");
    post(r, &a, "\xc2\xa0"); /* U+00A0 NO-BREAK SPACE */
    cr_assert_eq(a.n, 4);
    cr_assert_str_eq(a.json[2], ev_msg(2, "a", " x "));
    cr_assert_str_eq(a.json[3], ev_msg(3, "a", "\xc2\xa0"));

    room_leave(r, &a.m);
    room_free(r);
    fake_free(&a);
    fake_free(&stranger);
}

Test(room, message_text_is_json_escaped)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0};
    join(r, &a, "a");
    post(r, &a, "say \"hi\" \\ \x01\n\t\x1f caf\xc3\xa9 \xe2\x9c\x93 \xe2\x80\xa8 \xf0\x9f\x98\x80 </script>");
    cr_assert_str_eq(a.json[2], ev_msg(2, "a",
                                       "say \\\"hi\\\" \\\\ \\u0001\\n\\t\\u001f caf\xc3\xa9 \xe2\x9c\x93 "
                                       "\\u2028 \xf0\x9f\x98\x80 </script>"));
    room_leave(r, &a.m);
    room_free(r);
    fake_free(&a);
}

Test(room, one_event_one_rbuf_shared_by_all_members)
{
    struct room *r = room_new(&sink, false);
    struct fake f[5];
    memset(f, 0, sizeof f);
    char name[8];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "u%d", i);
        join(r, &f[i], name);
    }
    struct rbuf *join5 = f[0].ev[f[0].n - 1];
    post(r, &f[2], "shared");
    struct rbuf *msg = f[0].ev[f[0].n - 1];
    for (int i = 1; i < 5; i++) {
        cr_assert_eq(f[i].ev[f[i].n - 1], msg, "member %d got a copy", i);
        cr_assert_eq(f[i].ev[f[i].n - 2], join5);
    }
    /* The room keeps no reference to a join, one (history) to a message. */
    cr_assert_eq(atomic_load(&join5->refs), 5);
    cr_assert_eq(atomic_load(&msg->refs), 5 + 1);

    for (int i = 0; i < 5; i++)
        room_leave(r, &f[i].m);
    room_free(r);
    cr_assert_eq(atomic_load(&msg->refs), 5, "room_free drops the history");
    for (int i = 0; i < 5; i++)
        fake_free(&f[i]);
}

Test(room, slow_member_is_cut_off_and_its_leave_follows)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0}, b = {0}, c = {0};
    join(r, &a, "a");
    join(r, &b, "b");
    join(r, &c, "c");

    b.pending = ROOM_MAX_BACKLOG; /* the next frame puts b over the limit */
    post(r, &a, "hello");
    cr_assert_eq(b.cutoffs, 1);
    cr_assert_not(b.m.joined);
    cr_assert_eq(b.n, 2 + 2, "b got the message that tipped it over, and no leave");
    cr_assert_str_eq(b.json[3], ev_msg(4, "a", "hello"));
    struct fake *rest[] = {&a, &c};
    for (int i = 0; i < 2; i++) {
        struct fake *f = rest[i];
        cr_assert_str_eq(f->json[f->n - 2], ev_msg(4, "a", "hello"));
        cr_assert_str_eq(f->json[f->n - 1], ev_leave(5, "b"));
    }
    cr_assert_eq(room_stats(r).members, 2);

    /* the room goes on without b; b can post nothing, and its leave is a no-op */
    post(r, &b, "am I here?");
    post(r, &c, "go on");
    room_leave(r, &b.m);
    cr_assert_eq(b.n, 4);
    cr_assert_eq(b.cutoffs, 1);
    cr_assert_str_eq(a.json[a.n - 1], ev_msg(6, "c", "go on"));
    cr_assert_eq(room_stats(r).seq, 6);

    char *w = probe_welcome(r, "d");
    cr_assert(strstr(w, "\"users\":[\"a\",\"c\",\"d\"]"), "b left presence: %s", w);
    free(w);

    room_leave(r, &a.m);
    room_leave(r, &c.m);
    room_free(r);
    fake_free(&a);
    fake_free(&b);
    fake_free(&c);
}

Test(room, two_members_cut_in_one_fan_out)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0}, b = {0}, c = {0}, d = {0};
    join(r, &a, "a");
    join(r, &b, "b");
    join(r, &c, "c");
    join(r, &d, "d");
    size_t bn = b.n, cn = c.n;

    b.pending = c.pending = ROOM_MAX_BACKLOG;
    post(r, &d, "x");
    cr_assert_eq(b.cutoffs, 1);
    cr_assert_eq(c.cutoffs, 1);
    cr_assert_eq(b.n, bn + 1, "neither slow member gets a leave");
    cr_assert_eq(c.n, cn + 1);
    struct fake *rest[] = {&a, &d};
    for (int i = 0; i < 2; i++) {
        struct fake *f = rest[i];
        cr_assert_str_eq(f->json[f->n - 3], ev_msg(5, "d", "x"));
        cr_assert_str_eq(f->json[f->n - 2], ev_leave(6, "b"));
        cr_assert_str_eq(f->json[f->n - 1], ev_leave(7, "c"));
    }
    cr_assert_eq(room_stats(r).members, 2);

    room_leave(r, &a.m);
    room_leave(r, &b.m);
    room_leave(r, &c.m);
    room_leave(r, &d.m);
    cr_assert_eq(room_stats(r).seq, 9);
    room_free(r);
    fake_free(&a);
    fake_free(&b);
    fake_free(&c);
    fake_free(&d);
}

Test(room, a_leave_that_cuts_off_another_member_is_settled_too)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0}, b = {0}, c = {0}, d = {0};
    join(r, &a, "a");
    join(r, &b, "b");
    join(r, &c, "c");
    join(r, &d, "d");

    b.slow_on_type = "message";
    c.slow_on_type = "leave";
    post(r, &a, "hi");
    /* message cuts b; b's leave cuts c; c's leave goes to a and d */
    cr_assert_eq(b.cutoffs, 1);
    cr_assert_eq(c.cutoffs, 1);
    cr_assert_str_eq(b.json[b.n - 1], ev_msg(5, "a", "hi"));
    cr_assert_str_eq(c.json[c.n - 1], ev_leave(6, "b"));
    struct fake *rest[] = {&a, &d};
    for (int i = 0; i < 2; i++) {
        struct fake *f = rest[i];
        cr_assert_str_eq(f->json[f->n - 3], ev_msg(5, "a", "hi"));
        cr_assert_str_eq(f->json[f->n - 2], ev_leave(6, "b"));
        cr_assert_str_eq(f->json[f->n - 1], ev_leave(7, "c"));
    }
    room_leave(r, &a.m);
    room_leave(r, &d.m);
    room_free(r);
    fake_free(&a);
    fake_free(&b);
    fake_free(&c);
    fake_free(&d);
}

Test(room, sender_cut_off_by_its_own_message)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0}, b = {0};
    join(r, &a, "a");
    join(r, &b, "b");
    a.pending = ROOM_MAX_BACKLOG;
    post(r, &a, "last words");
    cr_assert_eq(a.cutoffs, 1);
    cr_assert_str_eq(b.json[b.n - 2], ev_msg(3, "a", "last words"));
    cr_assert_str_eq(b.json[b.n - 1], ev_leave(4, "a"));
    /* the message stays in history even though its sender is gone */
    char *w = probe_welcome(r, "c");
    cr_assert(strstr(w, ev_msg(3, "a", "last words")), "%s", w);
    free(w);
    room_leave(r, &b.m);
    room_free(r);
    fake_free(&a);
    fake_free(&b);
}

Test(room, newcomer_over_the_limit_is_cut_off_after_its_join)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0}, b = {0};
    join(r, &a, "a");
    b.pending = ROOM_MAX_BACKLOG;
    join(r, &b, "b"); /* still returns 0: b joined, then was cut off */
    cr_assert_eq(b.cutoffs, 1);
    cr_assert_eq(b.n, 2);
    cr_assert_str_eq(a.json[a.n - 2], ev_join(2, "b"));
    cr_assert_str_eq(a.json[a.n - 1], ev_leave(3, "b"));
    cr_assert_eq(room_stats(r).members, 1);
    room_leave(r, &a.m);
    room_free(r);
    fake_free(&a);
    fake_free(&b);
}

Test(room, joining_twice_is_a_no_op)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0};
    join(r, &a, "a");
    join(r, &a, "a");
    cr_assert_eq(a.n, 2);
    cr_assert_eq(room_stats(r).members, 1);
    cr_assert_eq(room_stats(r).seq, 1);
    room_leave(r, &a.m);
    room_free(r);
    fake_free(&a);
}

Test(room, bad_user_names_are_refused)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0};
    cr_assert_eq(room_join(r, &a.m, ""), -1);
    cr_assert_eq(room_join(r, &a.m, "123456789012345678901234567890123"), -1); /* 33 */
    cr_assert_eq(a.n, 0);
    cr_assert_eq(room_join(r, &a.m, "12345678901234567890123456789012"), 0); /* 32 */
    room_leave(r, &a.m);
    room_free(r);
    fake_free(&a);
}

Test(room, an_event_too_big_to_encode_is_dropped_without_using_a_seq)
{
    struct room *r = room_new(&sink, false);
    struct fake a = {0};
    join(r, &a, "a");
    /* 300 000 control bytes escape to 1.8 MB: more than any member may be
     * sent at once (the codec never lets such a message through) */
    size_t n = 300000;
    char *big = malloc(n);
    memset(big, 1, n);
    room_post(r, &a.m, big, n);
    free(big);
    cr_assert_eq(a.n, 2);
    cr_assert_eq(room_stats(r).seq, 1);
    post(r, &a, "next");
    cr_assert_str_eq(a.json[2], ev_msg(2, "a", "next"));
    room_leave(r, &a.m);
    room_free(r);
    fake_free(&a);
}

Test(room, welcome_history_is_capped_in_bytes_so_newcomers_are_not_cut_off)
{
    struct room *r = room_new(&sink, false);
    struct fake obs = {0}, late = {0};
    join(r, &obs, "obs");
    /* 50 messages of 4096 control bytes: ~24.6 KB each once escaped */
    char text[4096];
    memset(text, 0x01, sizeof text);
    for (int i = 0; i < 50; i++) {
        text[0] = (char)('A' + i % 26);
        room_post(r, &obs.m, text, sizeof text);
    }
    cr_assert_eq(obs.n, 2 + 50);
    late.accumulate = true;
    join(r, &late, "late");
    cr_assert_eq(late.cutoffs, 0);
    cr_assert(late.ev[0]->len < ROOM_MAX_BACKLOG / 2, "welcome is %zu bytes", late.ev[0]->len);

    /* what is there is the newest messages, oldest first, byte for byte */
    const char *h = strstr(late.json[0], "\"history\":[") + strlen("\"history\":[");
    size_t k = 0;
    for (const char *p = h; (p = strstr(p, "{\"type\":\"message\"")); p++)
        k++;
    cr_assert(k > 0 && k < 50, "%zu messages in the welcome", k);
    struct buf want = {0};
    for (size_t i = 50 - k; i < 50; i++)
        buf_appendf(&want, BIG, "%s%s", i > 50 - k ? "," : "", obs.json[2 + i]);
    buf_appendf(&want, BIG, "]}");
    cr_assert_str_eq(h, want.data);
    buf_free(&want);

    room_leave(r, &obs.m);
    room_leave(r, &late.m);
    room_free(r);
    fake_free(&obs);
    fake_free(&late);
}

/* ---- threads ------------------------------------------------------------ */

#define THREADS 4
#define POSTS 250

struct poster {
    struct room *r;
    struct fake f;
    int id;
};

static void *poster_main(void *arg)
{
    struct poster *p = arg;
    char text[32], name[16];
    for (int i = 0; i < POSTS; i++) {
        snprintf(text, sizeof text, "t%d-%d", p->id, i);
        room_post(p->r, &p->f.m, text, strlen(text));
        if (i % 50 == 0) { /* joins and leaves interleave with the posts */
            struct fake visitor = {0};
            snprintf(name, sizeof name, "v%d", p->id);
            room_join(p->r, &visitor.m, name);
            room_leave(p->r, &visitor.m);
            fake_free(&visitor);
        }
    }
    return NULL;
}

Test(room, threads_posting_at_once_see_one_total_order)
{
    struct room *r = room_new(&sink, true);
    struct fake obs[3];
    memset(obs, 0, sizeof obs);
    struct poster p[THREADS];
    memset(p, 0, sizeof p);
    char name[16];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "obs%d", i);
        join(r, &obs[i], name);
    }
    for (int i = 0; i < THREADS; i++) {
        p[i].r = r;
        p[i].id = i;
        snprintf(name, sizeof name, "p%d", i);
        join(r, &p[i].f, name);
    }
    /* from here on, events from seq 3 + THREADS + 1 */
    size_t start = obs[0].n;

    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, poster_main, &p[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);

    size_t events = (size_t)THREADS * (POSTS + 2 * (POSTS / 50));
    cr_assert_eq(obs[0].n - start, events);
    cr_assert_eq(room_stats(r).seq, 3 + THREADS + events);

    /* every member, observer or poster, holds the same frames in the same order */
    struct fake *all[3 + THREADS];
    for (int i = 0; i < 3; i++)
        all[i] = &obs[i];
    for (int i = 0; i < THREADS; i++)
        all[3 + i] = &p[i].f;
    for (int m = 0; m < 3 + THREADS; m++) {
        size_t skip = all[m]->n - events;
        for (size_t i = 0; i < events; i++) {
            cr_assert_eq(all[m]->ev[skip + i], obs[0].ev[start + i], "member %d event %zu", m, i);
            cr_assert_eq(seq_of(all[m]->json[skip + i]), 3 + THREADS + 1 + i);
        }
    }
    /* and each thread's messages arrive in the order it posted them */
    int next[THREADS] = {0};
    for (size_t i = start; i < obs[0].n; i++) {
        const char *t0 = strstr(obs[0].json[i], "\"text\":\"t");
        if (!t0)
            continue;
        int id, k;
        cr_assert_eq(sscanf(t0, "\"text\":\"t%d-%d\"", &id, &k), 2);
        cr_assert_eq(k, next[id]++);
    }
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(next[i], POSTS);

    for (int i = 0; i < 3; i++)
        room_leave(r, &obs[i].m);
    for (int i = 0; i < THREADS; i++)
        room_leave(r, &p[i].f.m);
    room_free(r);
    for (int i = 0; i < 3; i++)
        fake_free(&obs[i]);
    for (int i = 0; i < THREADS; i++)
        fake_free(&p[i].f);
}

/* ---- backpressure -------------------------------------------------------- */

/* A member that reads, fallen behind: its queue holds `queued` bytes. The
 * model reports what a write left; the fake's accumulate stands for the
 * queue between writes. */
static void drained_to(struct room *r, struct fake *f, size_t bytes)
{
    f->queued = bytes;
    room_backlog(r, &f->m, bytes, true);
}

/* Posts until the room says wait; returns how many it took. */
static int post_until_held(struct room *r, struct fake *poster, int max)
{
    for (int i = 1; i <= max; i++)
        if (!room_post(r, &poster->m, "0123456789012345678901234567890123456789", 40))
            return i;
    return 0;
}

/* A reader that has fallen past ROOM_DEEP_BACKLOG and a poster the room
 * holds back because of it: where each test below starts. */
struct held_room {
    struct room *r;
    struct fake reader, poster;
    int posted; /* posts until the room said wait */
};

static void held_room_open(struct held_room *h)
{
    *h = (struct held_room){.r = room_new(&sink, false), .reader = {.accumulate = true}};
    join(h->r, &h->reader, "reader");
    join(h->r, &h->poster, "poster");
    h->posted = post_until_held(h->r, &h->poster, 100000);
    cr_assert_gt(h->posted, 0, "the room never held the poster back");
}

static void held_room_close(struct held_room *h)
{
    room_leave(h->r, &h->reader.m); /* no-ops for a member already gone */
    room_leave(h->r, &h->poster.m);
    room_free(h->r);
    fake_free(&h->reader);
    fake_free(&h->poster);
}

Test(room, a_poster_waits_while_a_reader_is_deep_and_goes_on_once_it_drains)
{
    struct held_room h;
    held_room_open(&h);
    cr_assert_gt(h.reader.queued, ROOM_DEEP_BACKLOG);
    cr_assert_leq(h.reader.queued, ROOM_DEEP_BACKLOG + 200, "held %zu bytes past the mark",
                  h.reader.queued - ROOM_DEEP_BACKLOG);
    cr_assert_eq(h.reader.cutoffs, 0);

    /* It drains, but not yet far enough: still holding, no unblock. */
    drained_to(h.r, &h.reader, ROOM_SHALLOW_BACKLOG + 1);
    cr_assert_eq(h.poster.unblocks, 0);
    /* Down to the low mark: the poster goes on, once. */
    drained_to(h.r, &h.reader, ROOM_SHALLOW_BACKLOG);
    cr_assert_eq(h.poster.unblocks, 1);
    cr_assert(room_post(h.r, &h.poster.m, "again", 5), "still held after the reader drained");
    held_room_close(&h);
}

/* "One slow reader never ... stalls the others": a deep member whose queue
 * does not go down for ROOM_STALL_MS holds nobody, and is cut off at 1 MiB
 * like any member that does not read. */
Test(room, a_deep_member_that_does_not_drain_holds_nobody_after_the_stall_time)
{
    struct held_room h;
    held_room_open(&h);
    mono_now += ROOM_STALL_MS - 1;
    cr_assert_not(room_post(h.r, &h.poster.m, "x", 1), "let go before the stall time");
    mono_now += 1;
    int posted = 0;
    while (h.reader.cutoffs == 0 && posted < 100000) {
        cr_assert(room_post(h.r, &h.poster.m, "0123456789", 10), "held by a member that stalled");
        posted++;
    }
    cr_assert_eq(h.reader.cutoffs, 1, "the stalled member was not cut off at 1 MiB");
    cr_assert_eq(h.poster.cutoffs, 0);
    held_room_close(&h);
}

/* A member that drains keeps holding posters, however long that takes:
 * every report of progress restarts its stall time. */
Test(room, progress_keeps_a_slow_reader_counted)
{
    struct held_room h;
    held_room_open(&h);
    for (int i = 0; i < 5; i++) {
        mono_now += ROOM_STALL_MS - 1;
        drained_to(h.r, &h.reader, h.reader.queued - 1000);
        cr_assert_not(room_post(h.r, &h.poster.m, "x", 1), "round %d: let go while it drains", i);
    }
    cr_assert_eq(h.poster.unblocks, 0);
    cr_assert_eq(h.reader.cutoffs, 0);
    room_leave(h.r, &h.reader.m); /* a deep member that leaves ends the wait */
    cr_assert_eq(h.poster.unblocks, 1);
    held_room_close(&h);
}

/* A poster that leaves while held is forgotten: nothing unblocks a member
 * that is gone (its connection may be freed right after). */
Test(room, a_held_poster_that_leaves_is_not_unblocked)
{
    struct room *r = room_new(&sink, false);
    struct fake reader = {.accumulate = true}, poster = {0}, other = {0};
    join(r, &reader, "reader");
    join(r, &poster, "poster");
    join(r, &other, "other");
    cr_assert_gt(post_until_held(r, &poster, 100000), 0);
    cr_assert_not(room_post(r, &other.m, "me too", 6));
    room_leave(r, &poster.m);
    drained_to(r, &reader, 0);
    cr_assert_eq(poster.unblocks, 0);
    cr_assert_eq(other.unblocks, 1);
    room_leave(r, &reader.m);
    room_leave(r, &other.m);
    room_free(r);
    fake_free(&reader);
    fake_free(&poster);
    fake_free(&other);
}

/* Once the server is asked to stop, a leave is not told to anyone (every
 * member is about to get close 1001): the member is gone from the room and
 * from presence, and no seq is spent. Before that, a leave is announced. */
Test(room, a_leave_after_the_stop_is_asked_is_not_announced)
{
    struct room *r = room_new(&stopping_sink, false);
    struct fake a = {0}, b = {0}, c = {0};
    stop_asked = false;
    join(r, &a, "alice");
    join(r, &b, "bob");
    join(r, &c, "carol");
    room_leave(r, &c.m);
    cr_assert_str_eq(a.json[a.n - 1], ev_leave(4, "carol"), "before the stop: announced");
    size_t a_had = a.n, b_had = b.n;

    stop_asked = true;
    room_leave(r, &b.m);
    cr_assert_eq(a.n, a_had, "after the stop: alice got %s", a.json[a.n - 1]);
    cr_assert_eq(b.n, b_had);
    cr_assert_not(b.m.joined);
    struct room_stats st = room_stats(r);
    cr_assert_eq(st.members, 1);
    cr_assert_eq(st.seq, 4, "no seq spent on an unannounced leave");

    stop_asked = false; /* (a stop never ends; this only shows presence) */
    char *w = probe_welcome(r, "dave");
    cr_assert(strstr(w, "\"users\":[\"alice\",\"dave\"]"), "bob is still present: %s", w);
    free(w);
    room_leave(r, &a.m);
    room_free(r);
    fake_free(&a);
    fake_free(&b);
    fake_free(&c);
}
