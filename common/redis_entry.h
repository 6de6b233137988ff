/* What the backplane reads from Redis, validated before any of it is used.
 *
 * Redis is outside the process: whoever can write to it (another program,
 * a compromised server, an operator's typo, a fake server) can put any
 * entry in the stream and any shape in a reply. Everything here checks the
 * reply type of each element before touching it, parses numbers strictly
 * with bounds, and refuses names, types and text the room could not show;
 * nothing here logs, allocates more than the reply's size, or trusts a
 * count.
 *
 * Results borrow from the redisReply: they are valid until it is freed.
 */
#ifndef C10K_REDIS_ENTRY_H
#define C10K_REDIS_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "room.h"

/* Bounds on numbers from Redis. seq: INCR is a signed 64-bit integer. ts:
 * the year 9999 in ms, far inside JSON's exact integers. A presence count:
 * connections of one user over all servers. */
#define RX_MAX_SEQ INT64_MAX
#define RX_MAX_TS 253402300799999ull
#define RX_MAX_COUNT 10000000u
#define RX_MAX_SID 47          /* a server id we make: "PID.SECONDSNANOS" */
#define RX_MAX_FIELDS 16       /* field-value pairs in one entry; we write 7 */
#define RX_MAX_ID 41           /* "MS-SEQ": two 64-bit numbers and a dash */

/* Why an entry or a reply was refused. */
enum rx_cause {
    RX_OK = 0,
    RX_SHAPE,   /* not [id, [field, value...]], or an element of the wrong type */
    RX_ID,      /* the entry id is not MS-SEQ */
    RX_TYPE,    /* type is not join, message or leave */
    RX_USER,    /* user is not 1..32 of [A-Za-z0-9_.-] */
    RX_TEXT,    /* message text blank, over 4096 bytes or not UTF-8; or text on a join/leave */
    RX_SEQ,     /* seq not a decimal 1..2^63-1 */
    RX_TS,      /* ts not a decimal <= RX_MAX_TS */
    RX_SID,     /* sid missing or not 1..47 of [0-9.] */
    RX_TOK,     /* tok not a decimal op id */
    RX_COUNT,   /* a presence count not 1..RX_MAX_COUNT */
    RX_SEQ_AHEAD, /* (backplane) a seq past the next that c10k:seq never reached */
    RX_NCAUSES
};
const char *rx_cause_str(enum rx_cause c);

struct stream_id {
    uint64_t ms, seq;
};
/* "MS-SEQ" (each a decimal that fits 64 bits). */
bool stream_id_parse(const char *s, size_t len, struct stream_id *out);
/* <0, 0, >0 as a is before, equal to, after b. */
int stream_id_cmp(struct stream_id a, struct stream_id b);

/* A strict decimal string reply (bulk or status) <= max; nothing else. */
bool rx_decimal(const redisReply *r, uint64_t max, uint64_t *out);

/* One stream entry, [id, [field, value, ...]]. */
struct rx_entry {
    const char *id;          /* validated MS-SEQ, NUL-terminated */
    struct stream_id sid_id; /* the same, parsed */
    struct room_event ev;    /* type, seq, ts, user, text; mine and token unset */
    const char *server;      /* sid of the publishing server */
    uint64_t tok;            /* its op id */
};
/* RX_SHAPE and RX_ID mean the entry cannot even be skipped past (no id):
 * the reply as a whole is bad. Any other cause: e->id is set, the entry is
 * to be skipped. */
enum rx_cause rx_entry_parse(const redisReply *r, struct rx_entry *e);

/* XREAD's answer, [[stream, [entry...]]], or nil when BLOCK timed out.
 * *entries is NULL for nil. False if it is neither. */
bool rx_read_reply(const redisReply *r, const redisReply **entries);

/* The hello script's answer, {seq, last id, fresh, {name, count...},
 * {seq, ts, user, text...}}. Presence and history that fail their checks
 * are left out and counted in `refused` (with the first cause); the seq and
 * last id must be right or the whole reply is refused. The arrays are the
 * caller's (rx_hello_free). */
struct rx_hello {
    uint64_t seq;
    const char *last_id;
    const char **names;
    unsigned *counts;
    size_t nnames;
    struct room_event *history;
    size_t nhistory;
    size_t refused;
    enum rx_cause first_cause;
};
/* RX_OK, RX_SHAPE/RX_SEQ/RX_ID (refused whole), or -1 on ENOMEM. */
int rx_hello_parse(const redisReply *r, struct rx_hello *h);
void rx_hello_free(struct rx_hello *h);

#endif
