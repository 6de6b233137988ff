/* The room in remote mode (room.h): what it publishes, and what it makes of
 * the sequenced events that come back (room_apply), without Redis. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "room.h"

/* ---- a sink that keeps each member's frames as JSON ----------------------- */

struct rm {
    struct room_member m;
    char *json[32];
    size_t n;
    int cutoffs;
};

static struct rm *rm_of(struct room_member *m)
{
    return (struct rm *)((char *)m - offsetof(struct rm, m));
}

/* Room frames are small here: a 7-bit length, unmasked. */
static size_t deliver(struct room_member *m, struct rbuf *ev)
{
    struct rm *r = rm_of(m);
    const unsigned char *p = (const unsigned char *)ev->data;
    size_t off = (p[1] & 0x7f) == 126 ? 4 : 2;
    if (r->n < 32)
        r->json[r->n++] = strndup(ev->data + off, ev->len - off);
    return ev->len;
}

static void cut_off(struct room_member *m) { rm_of(m)->cutoffs++; }

static const struct room_sink sink = {deliver, cut_off, NULL, NULL};

static void rm_free(struct rm *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->json[i]);
    memset(r, 0, sizeof *r);
}

/* ---- a fake backplane that records what is published ---------------------- */

struct pub {
    char type[8], user[40], text[64];
    uint64_t token;
};
static struct pub pubs[32];
static size_t npubs;   /* recorded: the first 32 */
static uint64_t ntotal; /* published */

static uint64_t publish(void *ctx, const char *type, const char *user, const char *text,
                        size_t len)
{
    (void)ctx;
    uint64_t token = 100 + ntotal++;
    if (npubs == 32)
        return token;
    struct pub *p = &pubs[npubs];
    snprintf(p->type, sizeof p->type, "%s", type);
    snprintf(p->user, sizeof p->user, "%s", user);
    snprintf(p->text, sizeof p->text, "%.*s", (int)len, text ? text : "");
    p->token = token;
    npubs++;
    return p->token;
}

static uint64_t fixed_clock(void) { return 1700000000123ull; }

static struct room *remote_room(void)
{
    room_clock_ms = fixed_clock;
    npubs = 0;
    ntotal = 0;
    struct room *r = room_new(&sink, false);
    cr_assert(r);
    room_set_remote(r, &(struct room_remote){publish, NULL});
    return r;
}

static void apply(struct room *r, const char *type, uint64_t seq, const char *user,
                  const char *text, bool mine, uint64_t token)
{
    struct room_event ev = {type, seq, 5000 + seq, user, text, text ? strlen(text) : 0,
                            mine, token};
    room_apply(r, &ev);
}

/* A newcomer's welcome lists these users (JSON array body), carol among
 * them: she joins, her join comes back at seq, and she leaves again. */
static void expect_users_for_carol(struct room *r, uint64_t seq, const char *users)
{
    struct rm c = {0};
    room_join(r, &c.m, "carol");
    apply(r, "join", seq, "carol", NULL, true, pubs[npubs - 1].token);
    char want[256];
    snprintf(want, sizeof want, "\"users\":[%s]", users);
    cr_assert(c.n > 0 && strstr(c.json[0], want), "want %s in %s", want, c.n ? c.json[0] : "");
    room_leave(r, &c.m);
    rm_free(&c);
}

TestSuite(room_remote);

Test(room_remote, a_join_waits_for_its_own_event_and_gets_welcome_then)
{
    struct room *r = remote_room();
    const char *names[] = {"bob"};
    unsigned counts[] = {1};
    struct room_event hist[] = {{"message", 7, 4000, "bob", "hi", 2, false, 0}};
    room_load(r, 7, names, counts, 1, hist, 1);

    struct rm a = {0};
    cr_assert_eq(room_join(r, &a.m, "alice"), 0);
    cr_assert_eq(npubs, 1);
    cr_assert_str_eq(pubs[0].type, "join");
    cr_assert_eq(a.n, 0, "nothing before its join is back");

    apply(r, "join", 8, "alice", NULL, true, pubs[0].token);
    cr_assert_eq(a.n, 2);
    cr_assert_str_eq(a.json[0], "{\"type\":\"welcome\",\"user\":\"alice\",\"users\":[\"alice\","
                                "\"bob\"],\"history\":[{\"type\":\"message\",\"seq\":7,"
                                "\"ts\":4000,\"user\":\"bob\",\"text\":\"hi\"}]}");
    cr_assert_str_eq(a.json[1], "{\"type\":\"join\",\"seq\":8,\"ts\":5008,\"user\":\"alice\"}");

    /* Someone else's events: fanned out with their seq and ts. */
    apply(r, "message", 9, "bob", "yo", false, 0);
    cr_assert_str_eq(a.json[2], "{\"type\":\"message\",\"seq\":9,\"ts\":5009,\"user\":\"bob\","
                                "\"text\":\"yo\"}");
    room_leave(r, &a.m);
    room_set_remote(r, NULL);
    room_free(r);
    rm_free(&a);
}

Test(room_remote, posts_and_leaves_are_published_not_applied)
{
    struct room *r = remote_room();
    struct rm a = {0}, b = {0};
    room_join(r, &a.m, "alice");
    apply(r, "join", 1, "alice", NULL, true, pubs[0].token);
    room_join(r, &b.m, "bob");
    apply(r, "join", 2, "bob", NULL, true, pubs[1].token);

    size_t before = b.n;
    room_post(r, &a.m, "hello", 5);
    room_post(r, &a.m, "  ", 2); /* blank: ignored, as ever */
    cr_assert_eq(npubs, 3);
    cr_assert_str_eq(pubs[2].type, "message");
    cr_assert_str_eq(pubs[2].text, "hello");
    cr_assert_eq(b.n, before, "a post reaches nobody until it comes back");

    room_leave(r, &a.m);
    cr_assert_eq(npubs, 4);
    cr_assert_str_eq(pubs[3].type, "leave");
    cr_assert_str_eq(pubs[3].user, "alice");
    apply(r, "message", 3, "alice", "hello", true, pubs[2].token);
    apply(r, "leave", 4, "alice", NULL, true, pubs[3].token);
    cr_assert_eq(b.n, before + 2);
    cr_assert_str_eq(b.json[b.n - 1], "{\"type\":\"leave\",\"seq\":4,\"ts\":5004,\"user\":\"alice\"}");
    cr_assert_eq(a.n, 3, "alice, gone, receives nothing more: welcome, 2 joins");

    room_close(r); /* bob is still in: his leave is published */
    cr_assert_eq(npubs, 5);
    cr_assert_str_eq(pubs[4].type, "leave");
    cr_assert_str_eq(pubs[4].user, "bob");
    room_set_remote(r, NULL);
    room_free(r);
    rm_free(&a);
    rm_free(&b);
}

Test(room_remote, redeliveries_are_dropped_and_gaps_are_told)
{
    struct room *r = remote_room();
    struct rm a = {0};
    room_join(r, &a.m, "alice");
    apply(r, "join", 1, "alice", NULL, true, pubs[0].token);
    apply(r, "message", 2, "bob", "one", false, 0);
    apply(r, "message", 2, "bob", "one", false, 0); /* at-least-once below */
    cr_assert_eq(a.n, 3);
    apply(r, "message", 5, "bob", "four", false, 0); /* 3 and 4 never came */
    cr_assert_eq(a.n, 5);
    cr_assert(strstr(a.json[3], "\"type\":\"system\""), "%s", a.json[3]);
    cr_assert(strstr(a.json[3], "2 chat events were lost"), "%s", a.json[3]);
    cr_assert_null(strstr(a.json[3], "\"seq\""), "system events have no seq");
    cr_assert(strstr(a.json[4], "\"seq\":5"));

    room_system(r, "Redis is back");
    cr_assert_eq(a.n, 6);
    cr_assert_str_eq(a.json[5], "{\"type\":\"system\",\"ts\":1700000000123,\"text\":"
                                "\"Redis is back\"}");
    room_leave(r, &a.m);
    room_set_remote(r, NULL);
    room_free(r);
    rm_free(&a);
}

Test(room_remote, a_member_that_leaves_before_its_join_is_back_is_forgotten)
{
    struct room *r = remote_room();
    struct rm a = {0}, b = {0};
    room_join(r, &b.m, "bob");
    apply(r, "join", 1, "bob", NULL, true, pubs[0].token);
    room_join(r, &a.m, "alice");
    uint64_t tok = pubs[1].token;
    room_leave(r, &a.m);
    cr_assert_str_eq(pubs[2].type, "leave");
    apply(r, "join", 2, "alice", NULL, true, tok);
    apply(r, "leave", 3, "alice", NULL, true, pubs[2].token);
    cr_assert_eq(a.n, 0, "never linked: nothing delivered to freed memory");
    cr_assert_eq(b.n, 4); /* welcome, its join, alice's join and leave */

    /* Presence came back to bob alone. */
    expect_users_for_carol(r, 4, "\"bob\",\"carol\"");
    room_leave(r, &b.m);
    room_set_remote(r, NULL);
    room_free(r);
    rm_free(&a);
    rm_free(&b);
}

/* Issue 16: a name from Redis reached presence_add unchecked and was copied
 * into its 33-byte slot. The room now refuses it itself, before the event
 * takes a seq, so the next real event is neither lost nor seen as a gap. */
Test(room_remote, an_event_with_a_name_the_room_cannot_hold_is_dropped_without_its_seq)
{
    struct room *r = remote_room();
    struct rm a = {0};
    room_join(r, &a.m, "alice");
    apply(r, "join", 1, "alice", NULL, true, pubs[0].token);
    cr_assert_eq(a.n, 2);

    char huge[4097];
    memset(huge, 'A', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    const char *bad[] = {huge, "123456789012345678901234567890123", "", "a b", "<b>", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        apply(r, "join", 2, bad[i], NULL, false, 0);
        apply(r, "message", 2, bad[i], "hi", false, 0);
        apply(r, "leave", 2, bad[i], NULL, false, 0);
    }
    apply(r, "system", 2, "bob", "hi", false, 0);    /* not a room event */
    apply(r, "message", 2, "bob", "", false, 0);     /* blank */
    apply(r, "message", 2, "bob", "\xff", false, 0); /* not UTF-8 */
    char big[4098];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    apply(r, "message", 2, "bob", big, false, 0); /* 4097 bytes */
    cr_assert_eq(a.n, 2, "nothing of the refused events reached the member");
    cr_assert_eq(room_stats(r).seq, 1, "no refused event took a seq");

    apply(r, "join", 2, "bob", NULL, false, 0);
    cr_assert_eq(a.n, 3);
    cr_assert_str_eq(a.json[2], "{\"type\":\"join\",\"seq\":2,\"ts\":5002,\"user\":\"bob\"}",
                     "the next real event follows without a gap note");
    big[4096] = '\0';
    apply(r, "message", 3, "bob", big, false, 0); /* 4096 bytes: the limit itself */
    cr_assert_eq(a.n, 4);

    expect_users_for_carol(r, 4, "\"alice\",\"bob\",\"carol\"");
    room_leave(r, &a.m);
    room_set_remote(r, NULL);
    room_free(r);
    rm_free(&a);
}

Test(room_remote, load_leaves_out_bad_names_and_takes_counts_without_looping)
{
    struct room *r = remote_room();
    char huge[4097];
    memset(huge, 'A', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    const char *names[] = {huge, "bob", "a b", "zed", "nobody"};
    /* zed's count would take 4 billion presence_add calls if it were
     * counted one by one; nobody's 0 is no presence at all. */
    unsigned counts[] = {1, 2, 1, 4000000000u, 0};
    struct room_event hist[] = {{"message", 5, 4000, huge, "hi", 2, false, 0},
                                {"message", 6, 4001, "bob", "\xc3", 1, false, 0},
                                {"message", 7, 4002, "bob", "ok", 2, false, 0}};
    room_load(r, 7, names, counts, 5, hist, 3);

    struct rm a = {0};
    room_join(r, &a.m, "alice");
    apply(r, "join", 8, "alice", NULL, true, pubs[0].token);
    cr_assert_eq(a.n, 2);
    cr_assert_str_eq(a.json[0], "{\"type\":\"welcome\",\"user\":\"alice\",\"users\":[\"alice\","
                                "\"bob\",\"zed\"],\"history\":[{\"type\":\"message\",\"seq\":7,"
                                "\"ts\":4002,\"user\":\"bob\",\"text\":\"ok\"}]}");
    /* bob had 2 connections: one leave keeps him online. */
    apply(r, "leave", 9, "bob", NULL, false, 0);
    expect_users_for_carol(r, 10, "\"alice\",\"bob\",\"carol\",\"zed\"");
    room_leave(r, &a.m);
    room_set_remote(r, NULL);
    room_free(r);
    rm_free(&a);
}

Test(room_remote, a_local_join_with_a_name_outside_the_alphabet_is_refused)
{
    struct room *r = room_new(&sink, false);
    struct rm a = {0};
    errno = 0;
    cr_assert_eq(room_join(r, &a.m, "a b"), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(a.n, 0);
    cr_assert_eq(room_stats(r).members, 0);
    room_free(r);
}

/* A server that publishes faster than its events come back from the
 * backplane (the stream is read in batches, and keeps only so many) would
 * have its readers miss what was trimmed: its posters wait once
 * ROOM_REMOTE_IN_FLIGHT events are out, and go on when their own come back. */
static int unblocked;
static void count_unblock(struct room_member *m)
{
    (void)m;
    unblocked++;
}

Test(room_remote, a_poster_waits_while_too_many_of_its_events_are_on_the_way)
{
    static const struct room_sink counting = {deliver, cut_off, count_unblock, NULL};
    room_clock_ms = fixed_clock;
    npubs = ntotal = 0;
    unblocked = 0;
    struct room *r = room_new(&counting, false);
    room_set_remote(r, &(struct room_remote){publish, NULL});
    struct rm a = {0};
    cr_assert_eq(room_join(r, &a.m, "ann"), 0);
    room_apply(r, &(struct room_event){.type = "join", .seq = 1, .ts = 1, .user = "ann",
                                       .mine = true, .token = pubs[0].token});
    int posted = 0;
    while (room_post(r, &a.m, "x", 1))
        posted++;
    cr_assert_eq(posted, ROOM_REMOTE_IN_FLIGHT, "held after %d posts", posted + 1);
    cr_assert_eq(unblocked, 0);
    /* Its first message comes back: room for one more, then it waits again. */
    room_apply(r, &(struct room_event){.type = "message", .seq = 2, .ts = 1, .user = "ann",
                                       .text = "x", .text_len = 1, .mine = true,
                                       .token = pubs[1].token});
    cr_assert_eq(unblocked, 1);
    cr_assert_not(room_post(r, &a.m, "x", 1));
    /* The last one comes back (those between may have been trimmed: the
     * room is told of the gap, and the poster goes on). */
    room_apply(r, &(struct room_event){.type = "message", .seq = 3 + ROOM_REMOTE_IN_FLIGHT, .ts = 1,
                                       .user = "ann", .text = "x", .text_len = 1, .mine = true,
                                       .token = 100 + ntotal - 1});
    cr_assert_eq(unblocked, 2);
    cr_assert(room_post(r, &a.m, "x", 1));
    room_leave(r, &a.m);
    room_free(r);
    rm_free(&a);
}
