/* What the backplane reads from Redis (common/redis_entry.c), and its read
 * side without a connection (backplane_internal.h): reply trees built here
 * as hiredis would build them. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "backplane_internal.h"
#include "redis_entry.h"

/* ---- building replies --------------------------------------------------- */

static redisReply *str_n(const char *s, size_t n)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_STRING;
    r->str = malloc(n + 1);
    memcpy(r->str, s, n);
    r->str[n] = '\0';
    r->len = n;
    return r;
}

static redisReply *str(const char *s) { return str_n(s, strlen(s)); }

static redisReply *integer(long long v)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *nil(void)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_NIL;
    return r;
}

/* An array of n replies (taken over). */
static redisReply *arr(size_t n, ...)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n + 1, sizeof *r->element);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

/* [id, [seq, ts, type, user, text, sid, tok]] as the script writes it. */
static redisReply *entry(const char *id, const char *seq, const char *type, const char *user,
                         const char *text, const char *sid, const char *tok)
{
    return arr(2, str(id),
               arr(14, str("seq"), str(seq), str("ts"), str("1700000000000"), str("type"),
                   str(type), str("user"), str(user), str("text"), str(text), str("sid"), str(sid),
                   str("tok"), str(tok)));
}

static enum rx_cause parse(redisReply *r)
{
    struct rx_entry e;
    enum rx_cause c = rx_entry_parse(r, &e);
    freeReplyObject(r);
    return c;
}

static char huge[4097], long_text[4098];

static void fill(void)
{
    memset(huge, 'A', sizeof huge - 1);
    memset(long_text, 'x', sizeof long_text - 1);
}

TestSuite(redis_entry, .init = fill);

Test(redis_entry, a_real_entry_is_taken_as_written)
{
    redisReply *r = entry("1700000000000-3", "42", "message", "coco", "h\xc3\xa9", "12.34", "7");
    struct rx_entry e;
    cr_assert_eq(rx_entry_parse(r, &e), RX_OK);
    cr_assert_str_eq(e.id, "1700000000000-3");
    cr_assert_eq(e.sid_id.ms, 1700000000000ull);
    cr_assert_eq(e.sid_id.seq, 3);
    cr_assert_str_eq(e.ev.type, "message");
    cr_assert_eq(e.ev.seq, 42);
    cr_assert_eq(e.ev.ts, 1700000000000ull);
    cr_assert_str_eq(e.ev.user, "coco");
    cr_assert_eq(e.ev.text_len, 3);
    cr_assert_str_eq(e.server, "12.34");
    cr_assert_eq(e.tok, 7);
    freeReplyObject(r);
    cr_assert_eq(parse(entry("1-1", "1", "join", "a.b-C_9", "", "1", "1")), RX_OK);
    cr_assert_eq(parse(entry("1-1", "1", "leave", "12345678901234567890123456789012", "", "1", "1")),
                 RX_OK);
    long_text[4096] = '\0';
    cr_assert_eq(parse(entry("1-1", "1", "message", "a", long_text, "1", "1")), RX_OK,
                 "4096 bytes is the limit itself");
}

Test(redis_entry, each_bad_field_is_refused_with_its_cause)
{
    cr_assert_eq(parse(entry("1-1", "1", "join", huge, "", "1", "1")), RX_USER);
    cr_assert_eq(parse(entry("1-1", "1", "join", "123456789012345678901234567890123", "", "1", "1")),
                 RX_USER);
    cr_assert_eq(parse(entry("1-1", "1", "join", "", "", "1", "1")), RX_USER);
    cr_assert_eq(parse(entry("1-1", "1", "join", "a b", "", "1", "1")), RX_USER);
    cr_assert_eq(parse(entry("1-1", "1", "evil", "a", "", "1", "1")), RX_TYPE);
    cr_assert_eq(parse(entry("1-1", "1", "system", "a", "hi", "1", "1")), RX_TYPE,
                 "nothing publishes system events; one would take a seq no client sees");
    cr_assert_eq(parse(entry("1-1", "1", "message", "a", "\xff", "1", "1")), RX_TEXT);
    cr_assert_eq(parse(entry("1-1", "1", "message", "a", "\xc3", "1", "1")), RX_TEXT);
    cr_assert_eq(parse(entry("1-1", "1", "message", "a", " \t\r\n", "1", "1")), RX_TEXT);
    cr_assert_eq(parse(entry("1-1", "1", "message", "a", long_text, "1", "1")), RX_TEXT);
    cr_assert_eq(parse(entry("1-1", "1", "join", "a", "text on a join", "1", "1")), RX_TEXT);
    const char *bad_seq[] = {"", "0", "-1", "+1", " 1", "1 ", "12abc", "0x10", "9223372036854775808",
                             "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_seq / sizeof *bad_seq; i++)
        cr_assert_eq(parse(entry("1-1", bad_seq[i], "join", "a", "", "1", "1")), RX_SEQ, "%s",
                     bad_seq[i]);
    cr_assert_eq(parse(entry("1-1", "9223372036854775807", "join", "a", "", "1", "1")), RX_OK);
    cr_assert_eq(parse(entry("1-1", "1", "join", "a", "", "1.2/3", "1")), RX_SID);
    cr_assert_eq(parse(entry("1-1", "1", "join", "a", "", "", "1")), RX_SID);
    cr_assert_eq(parse(entry("1-1", "1", "join", "a", "", "1", "0")), RX_TOK);
    cr_assert_eq(parse(entry("1-1", "1", "join", "a", "", "1", "x")), RX_TOK);
}

Test(redis_entry, a_name_with_a_nul_inside_is_refused)
{
    redisReply *r = entry("1-1", "1", "join", "ab", "", "1", "1");
    redisReply *user = r->element[1]->element[7];
    free(user->str);
    user->str = malloc(4);
    memcpy(user->str, "a\0b", 4);
    user->len = 3;
    cr_assert_eq(parse(r), RX_USER);
}

Test(redis_entry, shapes_and_ids)
{
    cr_assert_eq(parse(str("x")), RX_SHAPE);
    cr_assert_eq(parse(arr(1, str("1-1"))), RX_SHAPE);
    cr_assert_eq(parse(arr(2, integer(1), arr(0))), RX_SHAPE);
    cr_assert_eq(parse(entry("abc", "1", "join", "a", "", "1", "1")), RX_ID);
    cr_assert_eq(parse(entry("1-", "1", "join", "a", "", "1", "1")), RX_ID);
    cr_assert_eq(parse(entry("99999999999999999999-1", "1", "join", "a", "", "1", "1")), RX_ID);
    /* With an id, a bad body is an entry to skip, not a bad reply. */
    cr_assert_eq(parse(arr(2, str("1-1"), str("x"))), RX_TYPE);
    cr_assert_eq(parse(arr(2, str("1-1"), arr(3, str("type"), str("join"), str("user")))), RX_TYPE);
    cr_assert_eq(parse(arr(2, str("1-1"), arr(2, str("type"), integer(1)))), RX_TYPE);
    cr_assert_eq(parse(arr(2, str("1-1"), arr(0))), RX_TYPE);

    const redisReply *entries;
    redisReply *r = nil();
    cr_assert(rx_read_reply(r, &entries) && entries == NULL);
    freeReplyObject(r);
    r = arr(1, arr(2, str("c10k:room"), arr(0)));
    cr_assert(rx_read_reply(r, &entries) && entries == r->element[0]->element[1]);
    freeReplyObject(r);
    redisReply *bad[] = {str("x"), arr(0), arr(1, str("x")), arr(1, arr(2, str("k"), str("v"))),
                         arr(1, arr(2, integer(1), arr(0))), arr(2, arr(0), arr(0))};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_not(rx_read_reply(bad[i], &entries), "shape %zu", i);
        freeReplyObject(bad[i]);
    }

    struct stream_id a, b;
    cr_assert(stream_id_parse("5-10", 4, &a) && stream_id_parse("6-0", 3, &b));
    cr_assert(stream_id_cmp(a, b) < 0 && stream_id_cmp(b, a) > 0 && stream_id_cmp(a, a) == 0);
}

static redisReply *hello(const char *seq, redisReply *users, redisReply *hist)
{
    return arr(5, str(seq), str("1700000000000-0"), integer(0), users, hist);
}

Test(redis_entry, the_hello_snapshot_keeps_only_what_passes)
{
    redisReply *r = hello("9",
                          arr(12, str("coco"), str("2"), str(huge), str("1"), str("zed"),
                              str("99999999999999999999999"), str("nan"), str("abc"), str("z0"),
                              str("0"), str("eve"), str("10000000")),
                          arr(16, str("3"), str("1"), str("coco"), str("one"),  /* ok */
                              str("4"), str("1"), str(huge), str("x"),         /* user */
                              str("5"), str("1"), str("cc"), str("\xff"),      /* text */
                              str("10"), str("1"), str("cc"), str("ten")));   /* seq > 9 */
    struct rx_hello h;
    cr_assert_eq(rx_hello_parse(r, &h), RX_OK);
    cr_assert_eq(h.seq, 9);
    cr_assert_str_eq(h.last_id, "1700000000000-0");
    cr_assert_eq(h.nnames, 2);
    cr_assert_str_eq(h.names[0], "coco");
    cr_assert_eq(h.counts[0], 2);
    cr_assert_str_eq(h.names[1], "eve");
    cr_assert_eq(h.counts[1], RX_MAX_COUNT);
    cr_assert_eq(h.nhistory, 1);
    cr_assert_eq(h.history[0].seq, 3);
    cr_assert_str_eq(h.history[0].text, "one");
    cr_assert_eq(h.refused, 7);
    cr_assert_eq(h.first_cause, RX_USER);
    rx_hello_free(&h);
    freeReplyObject(r);

    struct {
        redisReply *r;
        int want;
    } whole[] = {
        {str("x"), RX_SHAPE},
        {arr(4, str("1"), str("1-1"), integer(0), arr(0)), RX_SHAPE},
        {hello("1", arr(1, str("a")), arr(0)), RX_SHAPE},
        {hello("1", arr(0), arr(3, str("1"), str("1"), str("a"))), RX_SHAPE},
        {hello("1", str("a"), arr(0)), RX_SHAPE},
        {hello("x", arr(0), arr(0)), RX_SEQ},
        {arr(5, integer(1), str("1-1"), integer(0), arr(0), arr(0)), RX_SEQ},
        {arr(5, str("1"), str("junk"), integer(0), arr(0), arr(0)), RX_ID},
    };
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++) {
        cr_assert_eq(rx_hello_parse(whole[i].r, &h), whole[i].want, "case %zu", i);
        freeReplyObject(whole[i].r);
    }
}

/* ---- the backplane's read side, detached ------------------------------ */

static size_t deliver(struct room_member *m, struct rbuf *ev)
{
    (void)m;
    return ev->len;
}
static void cut_off(struct room_member *m) { (void)m; }
static const struct room_sink sink = {deliver, cut_off, NULL, NULL};

static enum bp_entry apply(struct backplane *bp, redisReply *e)
{
    enum bp_entry done = backplane_apply_entry(bp, e);
    freeReplyObject(e);
    return done;
}

Test(redis_entry, a_seq_jump_is_applied_only_once_c10k_seq_confirms_it)
{
    struct room *room = room_new(&sink, false);
    struct backplane *bp = backplane_new_detached(room, "1.5", stderr);
    cr_assert_eq(apply(bp, entry("1800000000000-0", "1", "join", "a", "", "9.9", "1")),
                 BP_ENTRY_BAD, "no entry before the snapshot (found by fuzz-redis)");
    redisReply *h = hello("2", arr(0), arr(0));
    cr_assert_eq(backplane_load_snapshot(bp, h), RX_OK);
    freeReplyObject(h);
    cr_assert_eq(room_stats(room).seq, 2);

    cr_assert_eq(apply(bp, entry("1800000000000-1", "3", "join", "a", "", "9.9", "1")), BP_ENTRY_DONE);
    cr_assert_eq(room_stats(room).seq, 3);
    /* The hostile entry of issue 16: far ahead of c10k:seq. */
    redisReply *e = entry("1800000000000-2", "99999999", "join", "b", "", "9.9", "1");
    cr_assert_eq(backplane_apply_entry(bp, e), BP_ENTRY_HOLD);
    redisReply *g = str("3");
    cr_assert(backplane_take_ceiling(bp, g));
    freeReplyObject(g);
    cr_assert_eq(apply(bp, e), BP_ENTRY_DONE);
    cr_assert_eq(room_stats(room).seq, 3, "refused: the room is not frozen at 99999999");
    cr_assert_eq(apply(bp, entry("1800000000000-3", "4", "join", "c", "", "9.9", "1")), BP_ENTRY_DONE);
    cr_assert_eq(room_stats(room).seq, 4);

    /* A real gap (events trimmed while away): c10k:seq has passed it. */
    e = entry("1800000000000-4", "20", "join", "d", "", "9.9", "1");
    cr_assert_eq(backplane_apply_entry(bp, e), BP_ENTRY_HOLD);
    g = str("25");
    cr_assert(backplane_take_ceiling(bp, g));
    freeReplyObject(g);
    cr_assert_eq(apply(bp, e), BP_ENTRY_DONE);
    cr_assert_eq(room_stats(room).seq, 20);
    /* Up to the ceiling already read, no need to ask again. */
    cr_assert_eq(apply(bp, entry("1800000000000-5", "23", "join", "e", "", "9.9", "1")), BP_ENTRY_DONE);
    cr_assert_eq(room_stats(room).seq, 23);

    /* Entries must come after the last one; a bad GET reply is refused. */
    cr_assert_eq(apply(bp, entry("1800000000000-5", "24", "join", "f", "", "9.9", "1")), BP_ENTRY_BAD);
    cr_assert_eq(apply(bp, arr(1, str("x"))), BP_ENTRY_BAD);
    g = arr(0);
    cr_assert_not(backplane_take_ceiling(bp, g));
    freeReplyObject(g);
    /* Our own sid with an op id we never issued. */
    cr_assert_eq(apply(bp, entry("1800000000000-6", "24", "join", "f", "", "1.5", "1")), BP_ENTRY_DONE);
    cr_assert_eq(room_stats(room).seq, 23);

    backplane_free(bp);
    room_free(room);
}
