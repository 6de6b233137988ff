/* libFuzzer target: what the backplane reads from Redis (issue 16).
 *
 * The input is a program of operations, each building a hiredis redisReply
 * tree from the next input bytes and handing it to the read side of a
 * detached backplane (common/backplane_internal.h) on a room with one member
 * of its own ("ann", whose join is published as op 1 of server "7.7"):
 *   - a stream entry, shaped [id, [field, value...]] or any tree at all,
 *     to backplane_apply_entry; when it answers HOLD, a GET c10k:seq reply
 *     to backplane_take_ceiling and the same entry again;
 *   - a whole XREAD reply, shaped or not, through rx_read_reply, its
 *     entries in turn as on_read applies them;
 *   - a hello reply, shaped or not, to backplane_load_snapshot.
 * Strings come from a table of the words the protocol uses, or from the
 * input, or are long runs of one byte (names and texts of thousands of
 * bytes). Checked, beyond ASan + UBSan:
 *   - every frame the member receives is valid UTF-8, every "user" in it is
 *     1..32 of [A-Za-z0-9_.-], and the seqs it sees strictly increase;
 *   - the room's seq never goes back, and never jumps past the next one
 *     beyond what c10k:seq (the GET replies and the hello) confirmed: no
 *     entry can freeze the room;
 *   - an entry is never held twice in a row once the ceiling is read.
 */
#include <stdbool.h>
#include <string.h>

#include "backplane_internal.h"
#include "fuzz.h"
#include "redis_entry.h"
#include "users.h"
#include "ws_codec.h"

struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t byte(struct in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static const char *const words[] = {
    "seq", "ts", "type", "user", "text", "sid", "tok", "join", "message", "leave", "system",
    "ann", "bob", "7.7", "8.8", "1", "2", "3", "4", "0", "-1", "99999999", "9223372036854775807",
    "9223372036854775808", "18446744073709551616", "1-0", "1-1", "2-0", "0-0", "00", " 1",
    "1700000000000-5", "", " ", "\xff", "caf\xc3\xa9", "\xc3", "c10k:room", "12abc", "hi", "a b",
    "12345678901234567890123456789012", "123456789012345678901234567890123", "253402300799999",
    "253402300800000"};
#define NWORDS (sizeof words / sizeof *words)

static redisReply *reply_new(int type)
{
    redisReply *r = calloc(1, sizeof *r);
    CHECK(r);
    r->type = type;
    return r;
}

static redisReply *string_of(int type, const char *s, size_t len)
{
    redisReply *r = reply_new(type);
    r->str = malloc(len + 1);
    CHECK(r->str);
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

/* A word, bytes of the input, or a run of one byte up to 8 KiB. */
static redisReply *string(struct in *in, int type)
{
    uint8_t c = byte(in);
    if (c < 0xa0)
        return string_of(type, words[c % NWORDS], strlen(words[c % NWORDS]));
    if (c < 0xe0) {
        size_t len = byte(in) % 64;
        if (len > in->n)
            len = in->n;
        redisReply *r = string_of(type, (const char *)in->p, len);
        in->p += len;
        in->n -= len;
        return r;
    }
    size_t len = ((size_t)byte(in) << 8 | byte(in)) % 8192;
    uint8_t fillc = byte(in);
    char *buf = malloc(len + 1);
    CHECK(buf);
    memset(buf, fillc, len);
    redisReply *r = string_of(type, buf, len);
    free(buf);
    return r;
}

static redisReply *array_of(size_t n)
{
    redisReply *r = reply_new(REDIS_REPLY_ARRAY);
    r->elements = n;
    r->element = calloc(n + 1, sizeof *r->element);
    CHECK(r->element);
    return r;
}

/* Any tree: what a broken or fake server could send. */
static redisReply *any(struct in *in, int depth)
{
    uint8_t c = byte(in);
    switch (c % 8) {
    case 0:
        return reply_new(REDIS_REPLY_NIL);
    case 1: {
        redisReply *r = reply_new(REDIS_REPLY_INTEGER);
        r->integer = (long long)((uint64_t)byte(in) << 56 | (uint64_t)byte(in) << 8 | byte(in));
        return r;
    }
    case 2:
        return string(in, REDIS_REPLY_STATUS);
    case 3:
        return string(in, REDIS_REPLY_ERROR);
    case 4:
    case 5:
        return string(in, REDIS_REPLY_STRING);
    default: {
        size_t n = depth < 4 ? byte(in) % 16 : 0;
        redisReply *r = array_of(n);
        for (size_t i = 0; i < n; i++)
            r->element[i] = any(in, depth + 1);
        return r;
    }
    }
}

static redisReply *decimal(uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    return string_of(REDIS_REPLY_STRING, s, strlen(s));
}

/* ---- the room's one member ------------------------------------------------- */

struct seen {
    struct room_member m;
    uint64_t last_seq;
    size_t frames;
};

static struct seen ann;
static bool dump; /* C10K_FUZZ_DUMP: show log lines and frames */

/* Every "user":"..." in the JSON names a valid user. */
static void check_users(const char *json, size_t n)
{
    static const char key[] = "\"user\":\"";
    const char *end = json + n;
    for (const char *p = json; (p = memmem(p, (size_t)(end - p), key, sizeof key - 1)) != NULL;) {
        p += sizeof key - 1;
        const char *q = memchr(p, '"', (size_t)(end - p));
        CHECK(q && user_name_valid(p, (size_t)(q - p)));
    }
}

static size_t deliver(struct room_member *m, struct rbuf *ev)
{
    struct seen *s = (struct seen *)m;
    const uint8_t *d = (const uint8_t *)ev->data;
    CHECK(ev->len >= 2 && d[0] == (0x80 | WS_OP_TEXT));
    size_t len = d[1] & 0x7f, off = 2;
    if (len == 126) {
        len = (size_t)d[2] << 8 | d[3];
        off = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | d[2 + i];
        off = 10;
    }
    CHECK(off + len == ev->len);
    const char *json = ev->data + off;
    if (dump)
        fprintf(stderr, "frame: %.*s\n", (int)(len > 200 ? 200 : len), json);
    CHECK(utf8_validate(UTF8_ACCEPT, (const uint8_t *)json, len) == UTF8_ACCEPT);
    check_users(json, len);
    /* "seq" of a join/message/leave is the first number after "seq":. */
    const char *sp = memmem(json, len, "\"seq\":", 6);
    if (sp && strncmp(json, "{\"type\":\"welcome\"", 17) != 0) {
        uint64_t seq = strtoull(sp + 6, NULL, 10);
        CHECK(seq > s->last_seq);
        s->last_seq = seq;
    }
    s->frames++;
    return ev->len;
}

static void cut_off(struct room_member *m) { (void)m; }

static const struct room_sink sink = {deliver, cut_off, NULL, NULL};

/* ---- the program ------------------------------------------------------------- */

struct run {
    struct backplane *bp;
    struct room *room;
    uint64_t confirmed; /* the highest seq c10k:seq has vouched for */
    uint64_t next_ms;   /* stream ids that keep increasing */
    bool loaded;        /* a hello was taken: later ones leave the room alone */
};

static redisReply *entry(struct in *in, struct run *run)
{
    redisReply *e = array_of(2);
    uint8_t c = byte(in);
    if (c & 1) {
        char id[48];
        snprintf(id, sizeof id, "%llu-%u", (unsigned long long)++run->next_ms, c >> 5);
        e->element[0] = string_of(REDIS_REPLY_STRING, id, strlen(id));
    } else {
        e->element[0] = string(in, REDIS_REPLY_STRING);
    }
    if (c & 2) { /* the fields the script writes, in its order, values fuzzed */
        static const char *const names[] = {"seq", "ts", "type", "user", "text", "sid", "tok"};
        redisReply *fv = array_of(14);
        uint64_t seq = room_stats(run->room).seq;
        for (size_t i = 0; i < 7; i++) {
            fv->element[2 * i] = string_of(REDIS_REPLY_STRING, names[i], strlen(names[i]));
            uint8_t how = byte(in);
            /* seq: the next one, or a little or far ahead */
            uint64_t ahead = how < 0x60 ? 0 : how % 4 * (how & 1 ? 1 : 1000000);
            if (i == 0 && how < 0x80)
                fv->element[1] = decimal(seq + 1 + ahead);
            else
                fv->element[2 * i + 1] = string(in, REDIS_REPLY_STRING);
        }
        e->element[1] = fv;
    } else {
        e->element[1] = any(in, 1);
    }
    return e;
}

static redisReply *hello(struct in *in)
{
    redisReply *h = array_of(5);
    for (size_t i = 0; i < 3; i++)
        h->element[i] = i == 2 ? reply_new(REDIS_REPLY_INTEGER) : string(in, REDIS_REPLY_STRING);
    size_t nu = 2 * (byte(in) % 8), nh = 4 * (byte(in) % 6);
    h->element[3] = array_of(nu);
    for (size_t i = 0; i < nu; i++)
        h->element[3]->element[i] = string(in, REDIS_REPLY_STRING);
    h->element[4] = array_of(nh);
    for (size_t i = 0; i < nh; i++)
        h->element[4]->element[i] = string(in, REDIS_REPLY_STRING);
    return h;
}

static bool take_ceiling(struct run *run, struct in *in)
{
    uint8_t c = byte(in);
    redisReply *g = c < 0x40 ? reply_new(REDIS_REPLY_NIL)
                  : c < 0xc0 ? decimal(room_stats(run->room).seq + c % 8 * (c & 1 ? 1 : 1000))
                             : any(in, 0);
    bool ok = backplane_take_ceiling(run->bp, g);
    if (ok) {
        uint64_t v = g->type == REDIS_REPLY_NIL ? 0 : strtoull(g->str, NULL, 10);
        if (v > run->confirmed)
            run->confirmed = v;
    }
    freeReplyObject(g);
    return ok;
}

/* One entry, and on HOLD the GET reply and the same entry again. */
static enum bp_entry apply_one(struct run *run, struct in *in, const redisReply *e)
{
    uint64_t before = room_stats(run->room).seq;
    enum bp_entry done = backplane_apply_entry(run->bp, e);
    if (done == BP_ENTRY_HOLD) {
        CHECK(room_stats(run->room).seq == before);
        /* A good GET reply decides the entry; a bad one leaves it held. */
        bool read = take_ceiling(run, in);
        done = backplane_apply_entry(run->bp, e);
        CHECK(!read || done != BP_ENTRY_HOLD);
    }
    uint64_t after = room_stats(run->room).seq;
    CHECK(after >= before);
    CHECK(after <= before + 1 || after <= run->confirmed);
    return done;
}

static void apply(struct run *run, struct in *in, redisReply *e)
{
    apply_one(run, in, e);
    freeReplyObject(e);
}

/* A whole XREAD reply, as on_read takes it: entries in order until one is
 * bad or held (then the ceiling, and that entry again, as the re-read
 * would start with it). */
static void read_reply(struct run *run, struct in *in)
{
    redisReply *r;
    if (byte(in) & 1) {
        size_t n = byte(in) % 6;
        redisReply *entries = array_of(n);
        for (size_t i = 0; i < n; i++)
            entries->element[i] = entry(in, run);
        redisReply *stream = array_of(2);
        stream->element[0] = string_of(REDIS_REPLY_STRING, "c10k:room", 9);
        stream->element[1] = entries;
        r = array_of(1);
        r->element[0] = stream;
    } else {
        r = any(in, 0);
    }
    const redisReply *entries;
    if (rx_read_reply(r, &entries)) {
        for (size_t i = 0; entries && i < entries->elements; i++)
            if (apply_one(run, in, entries->element[i]) != BP_ENTRY_DONE)
                break;
    }
    freeReplyObject(r);
}

static void load(struct run *run, redisReply *h)
{
    uint64_t before = room_stats(run->room).seq;
    int rc = backplane_load_snapshot(run->bp, h);
    CHECK(rc == RX_OK || rc == RX_SHAPE || rc == RX_SEQ || rc == RX_ID || rc == -1);
    if (rc == RX_OK) {
        uint64_t v = strtoull(h->element[0]->str, NULL, 10);
        if (v > run->confirmed)
            run->confirmed = v;
        CHECK(room_stats(run->room).seq == (run->loaded ? before : v));
        run->loaded = true;
    } else {
        CHECK(room_stats(run->room).seq == before);
    }
    freeReplyObject(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size};
    struct run run = {0};
    run.room = room_new(&sink, false);
    CHECK(run.room);
    run.bp = backplane_new_detached(run.room, "7.7", dump ? stderr : NULL);
    CHECK(run.bp);
    memset(&ann, 0, sizeof ann);
    CHECK(room_join(run.room, &ann.m, "ann") == 0); /* published as op 1, pending */
    run.next_ms = 1;

    for (int ops = 0; in.n > 0 && ops < 64; ops++) {
        switch (byte(&in) % 6) {
        case 0:
        case 1:
        case 2:
            apply(&run, &in, entry(&in, &run));
            break;
        case 3:
            apply(&run, &in, any(&in, 0));
            break;
        case 5:
            read_reply(&run, &in);
            break;
        default:
            load(&run, byte(&in) & 1 ? hello(&in) : any(&in, 0));
            break;
        }
    }
    room_leave(run.room, &ann.m);
    backplane_free(run.bp);
    room_free(run.room);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dump = getenv("C10K_FUZZ_DUMP") != NULL;
    return 0;
}
