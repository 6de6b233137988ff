#include "redis_entry.h"

#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "users.h"
#include "ws_codec.h"

static const char *const cause_names[RX_NCAUSES] = {
    [RX_OK] = "ok",
    [RX_SHAPE] = "malformed reply",
    [RX_ID] = "bad entry id",
    [RX_TYPE] = "unknown type",
    [RX_USER] = "bad user name",
    [RX_TEXT] = "bad text",
    [RX_SEQ] = "bad seq",
    [RX_TS] = "bad ts",
    [RX_SID] = "bad server id",
    [RX_TOK] = "bad op id",
    [RX_COUNT] = "bad presence count",
    [RX_SEQ_AHEAD] = "seq ahead of c10k:seq",
};

const char *rx_cause_str(enum rx_cause c)
{
    return (unsigned)c < RX_NCAUSES ? cause_names[c] : "?";
}

/* A bulk string: in RESP2 stream fields and script results are bulk
 * strings; a status, an integer or an array where one is expected is a
 * reply we do not understand. */
static bool is_bulk(const redisReply *r) { return r && r->type == REDIS_REPLY_STRING && r->str; }

static bool u64_parse(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    unsigned long v; /* 64 bits on every target of this project (LP64) */
    _Static_assert(sizeof v == sizeof *out, "unsigned long is 64 bits");
    if (!parse_decimal(s, n, 19, (unsigned long)max, &v)) /* 19 digits cannot overflow */
        return false;
    *out = v;
    return true;
}

bool rx_decimal(const redisReply *r, uint64_t max, uint64_t *out)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str &&
           u64_parse(r->str, r->len, max, out);
}

bool stream_id_parse(const char *s, size_t len, struct stream_id *out)
{
    const char *dash = memchr(s, '-', len);
    return dash && u64_parse(s, (size_t)(dash - s), UINT64_MAX, &out->ms) &&
           u64_parse(dash + 1, len - (size_t)(dash - s) - 1, UINT64_MAX, &out->seq);
}

int stream_id_cmp(struct stream_id a, struct stream_id b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    return a.seq < b.seq ? -1 : a.seq > b.seq;
}

/* The value of field `name`, or NULL. Names and values were checked to be
 * bulk strings by the caller. */
static const redisReply *field(const redisReply *fv, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + 1 < fv->elements; i += 2)
        if (fv->element[i]->len == nl && memcmp(fv->element[i]->str, name, nl) == 0)
            return fv->element[i + 1];
    return NULL;
}

static bool name_ok(const redisReply *u)
{
    /* The length from the reply, not strlen: a NUL inside would hide the
     * rest of the name from the check. */
    return is_bulk(u) && u->len <= ROOM_MAX_USER && user_name_valid(u->str, u->len);
}

static bool text_ok(const redisReply *t)
{
    return is_bulk(t) && t->len <= ROOM_MAX_TEXT && !text_is_blank(t->str, t->len) &&
           utf8_validate(UTF8_ACCEPT, (const uint8_t *)t->str, t->len) == UTF8_ACCEPT;
}

static bool sid_ok(const redisReply *s)
{
    if (!is_bulk(s) || s->len == 0 || s->len > RX_MAX_SID)
        return false;
    for (size_t i = 0; i < s->len; i++)
        if (!(s->str[i] == '.' || (s->str[i] >= '0' && s->str[i] <= '9')))
            return false;
    return true;
}

enum rx_cause rx_entry_parse(const redisReply *r, struct rx_entry *e)
{
    memset(e, 0, sizeof *e);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_bulk(r->element[0]))
        return RX_SHAPE;
    const redisReply *id = r->element[0];
    if (id->len > RX_MAX_ID || !stream_id_parse(id->str, id->len, &e->sid_id))
        return RX_ID;
    e->id = id->str;
    /* From here on the entry has an id: a bad one is skipped, not fatal. */
    const redisReply *fv = r->element[1];
    if (!fv || fv->type != REDIS_REPLY_ARRAY || fv->elements % 2 != 0 ||
        fv->elements > 2 * RX_MAX_FIELDS)
        return RX_TYPE;
    for (size_t i = 0; i < fv->elements; i++)
        if (!is_bulk(fv->element[i]))
            return RX_TYPE;

    const redisReply *type = field(fv, "type"), *user = field(fv, "user"),
                     *text = field(fv, "text"), *server = field(fv, "sid");
    static const char *const types[] = {"join", "message", "leave"};
    for (size_t i = 0; type && i < sizeof types / sizeof *types; i++)
        if (type->len == strlen(types[i]) && memcmp(type->str, types[i], type->len) == 0)
            e->ev.type = types[i];
    if (!e->ev.type)
        return RX_TYPE;
    if (!name_ok(user))
        return RX_USER;
    bool message = strcmp(e->ev.type, "message") == 0;
    if (message ? !text_ok(text) : text && text->len != 0)
        return RX_TEXT;
    if (!rx_decimal(field(fv, "seq"), RX_MAX_SEQ, &e->ev.seq) || e->ev.seq == 0)
        return RX_SEQ;
    if (!rx_decimal(field(fv, "ts"), RX_MAX_TS, &e->ev.ts))
        return RX_TS;
    if (!sid_ok(server))
        return RX_SID;
    if (!rx_decimal(field(fv, "tok"), RX_MAX_SEQ, &e->tok) || e->tok == 0)
        return RX_TOK;
    e->ev.user = user->str;
    e->ev.text = message ? text->str : NULL;
    e->ev.text_len = message ? text->len : 0;
    e->server = server->str;
    return RX_OK;
}

bool rx_read_reply(const redisReply *r, const redisReply **entries)
{
    *entries = NULL;
    if (!r)
        return false;
    if (r->type == REDIS_REPLY_NIL)
        return true;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1)
        return false;
    const redisReply *s = r->element[0];
    if (!s || s->type != REDIS_REPLY_ARRAY || s->elements != 2 || !is_bulk(s->element[0]) ||
        !s->element[1] || s->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    *entries = s->element[1];
    return true;
}

static void refuse(struct rx_hello *h, enum rx_cause c)
{
    if (h->refused++ == 0)
        h->first_cause = c;
}

int rx_hello_parse(const redisReply *r, struct rx_hello *h)
{
    memset(h, 0, sizeof *h);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 5)
        return RX_SHAPE;
    const redisReply *users = r->element[3], *hist = r->element[4];
    if (!users || users->type != REDIS_REPLY_ARRAY || users->elements % 2 != 0 || !hist ||
        hist->type != REDIS_REPLY_ARRAY || hist->elements % 4 != 0)
        return RX_SHAPE;
    if (!rx_decimal(r->element[0], RX_MAX_SEQ, &h->seq))
        return RX_SEQ;
    const redisReply *last = r->element[1];
    struct stream_id unused;
    if (!is_bulk(last) || last->len > RX_MAX_ID || !stream_id_parse(last->str, last->len, &unused))
        return RX_ID;
    h->last_id = last->str;

    /* Sized by the reply, which hiredis has already read into memory: no
     * count from Redis decides an allocation on its own. */
    size_t nn = users->elements / 2, nh = hist->elements / 4;
    h->names = calloc(nn + 1, sizeof *h->names);
    h->counts = calloc(nn + 1, sizeof *h->counts);
    h->history = calloc(nh + 1, sizeof *h->history);
    if (!h->names || !h->counts || !h->history) {
        rx_hello_free(h);
        return -1;
    }
    for (size_t i = 0; i < nn; i++) {
        const redisReply *n = users->element[2 * i];
        uint64_t c;
        if (!name_ok(n))
            refuse(h, RX_USER);
        else if (!rx_decimal(users->element[2 * i + 1], RX_MAX_COUNT, &c) || c == 0)
            refuse(h, RX_COUNT);
        else {
            h->names[h->nnames] = n->str;
            h->counts[h->nnames++] = (unsigned)c;
        }
    }
    uint64_t prev = 0; /* history is oldest first: seqs increase, up to the room's */
    for (size_t i = 0; i < nh; i++) {
        redisReply *const *f = &hist->element[4 * i];
        struct room_event *e = &h->history[h->nhistory];
        *e = (struct room_event){.type = "message"};
        if (!rx_decimal(f[0], RX_MAX_SEQ, &e->seq) || e->seq <= prev || e->seq > h->seq)
            refuse(h, RX_SEQ);
        else if (!rx_decimal(f[1], RX_MAX_TS, &e->ts))
            refuse(h, RX_TS);
        else if (!name_ok(f[2]))
            refuse(h, RX_USER);
        else if (!text_ok(f[3]))
            refuse(h, RX_TEXT);
        else {
            e->user = f[2]->str;
            e->text = f[3]->str;
            e->text_len = f[3]->len;
            prev = e->seq;
            h->nhistory++;
        }
    }
    return RX_OK;
}

void rx_hello_free(struct rx_hello *h)
{
    free(h->names);
    free(h->counts);
    free(h->history);
    h->names = NULL;
    h->counts = NULL;
    h->history = NULL;
    h->nnames = h->nhistory = 0;
}
