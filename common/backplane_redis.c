/* The shared room on Redis: one Stream, sequenced by a Lua script.
 *
 * Why a Stream and a script, not Pub/Sub: the contract wants one `seq` from
 * 1 without gaps and one total order for every member, and a member must
 * receive every event from its own join on, nothing lost, nothing twice.
 * Pub/Sub is fire-and-forget — a subscriber that is disconnected for a
 * moment, or too slow for Redis's output limit, silently misses messages,
 * and nothing tells it how many — so it cannot give those guarantees. Here
 * every event goes through one Lua script that, atomically, INCRs
 * `c10k:seq`, updates presence and XADDs the event (with its seq) to the
 * stream `c10k:room`. A script runs alone in Redis, so seq order is stream
 * order. Each server process reads the stream with XREAD BLOCK from the last
 * entry id it has applied: after a short cut-off it resumes exactly where it
 * stopped and misses nothing that the stream still holds (it keeps the last
 * ~10 000 events). INCR inside the script, rather than the stream's own ids,
 * gives a dense integer seq that a client can check for gaps.
 *
 * The script is also idempotent per server: each event carries (server id,
 * op id) and `c10k:op:<sid>` remembers the last op applied, so after a lost
 * connection a server re-sends everything it has not yet seen come back
 * from the stream, and what Redis already had is not applied twice.
 *
 * Threads: with `threaded`, room_* run on worker threads and only queue ops
 * under `lock` and poke the eventfd; everything that touches hiredis runs on
 * the one loop thread. The room's lock is never taken while `lock` is held
 * (room -> backplane is the order), so the loop thread calls into the room
 * with `lock` released.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "app.h"
#include "backplane.h"
#include "backplane_internal.h"
#include "log_limit.h"
#include "redis_entry.h"
#include "redis_url.h"

#define STREAM_KEY "c10k:room"
#define SEQ_KEY "c10k:seq"
#define SERVERS_KEY "c10k:servers"

#define CONNECT_TIMEOUT_MS 3000
#define BLOCK_MS 2000             /* XREAD BLOCK: also the reader's heartbeat */
#define READ_TIMEOUT_MS (BLOCK_MS + 5000)
#define WRITE_TIMEOUT_MS 5000     /* the oldest unanswered publish */
#define HEARTBEAT_MS 10000        /* presence key TTL is 60 s */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define QUEUE_MAX_BYTES (4u << 20) /* messages held while Redis is away */
/* Events per XREAD: bounded work per turn. A batch is fanned out before any
 * of it is written, so it must stay well under the 1 MiB slow-reader limit
 * even for the largest events (4096 bytes of text escape to ~24 KB of JSON):
 * 32 of those are 768 KB. Bigger batches would cut off readers that keep up. */
#define READ_COUNT "32"
/* A refused entry is logged once per cause, then at most this often. */
#define REFUSED_LOG_MS 60000

/* KEYS: seq, stream, presence:<sid>, op:<sid>; ARGV: op id, type, user, text, sid */
static const char PUBLISH_LUA[] =
    "local id = tonumber(ARGV[1])\n"
    "if id <= tonumber(redis.call('GET', KEYS[4]) or '0') then return 0 end\n"
    "redis.call('SET', KEYS[4], ARGV[1], 'EX', 86400)\n"
    "local seq = redis.call('INCR', KEYS[1])\n"
    "local t = redis.call('TIME')\n"
    "local ts = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"
    "if ARGV[2] == 'join' then\n"
    "  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)\n"
    "  redis.call('EXPIRE', KEYS[3], 60)\n"
    "elseif ARGV[2] == 'leave' then\n"
    "  if redis.call('HINCRBY', KEYS[3], ARGV[3], -1) <= 0 then redis.call('HDEL', KEYS[3], ARGV[3]) end\n"
    "end\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'seq', seq, 'ts', ts, 'type', ARGV[2],\n"
    "           'user', ARGV[3], 'text', ARGV[4], 'sid', ARGV[5], 'tok', ARGV[1])\n"
    "return seq\n";

/* KEYS: seq, stream, servers, presence:<sid>, op:<sid>
 * ARGV: sid, our seq, last op id seen, then name, count pairs of our members.
 * Presence hashes and the stream are data anyone with access to Redis can
 * write: a count that is not a number would stop the script (every hello
 * failing, no server able to join), and a message entry without one of its
 * fields would shift the history's fields by one. Such data is skipped here;
 * what the script returns is validated again in C (common/redis_entry.c).
 * Returns {seq, last stream id, fresh, {name, count...}, {seq, ts, user, text...}}:
 * the room as of the last entry, atomically. `fresh`: Redis did not know this
 * server (new, or Redis lost its data): our presence is written anew and seq
 * never goes back below what we have seen. */
static const char HELLO_LUA[] =
    "local fresh = 0\n"
    "if redis.call('EXISTS', KEYS[5]) == 0 then\n"
    "  fresh = 1\n"
    "  redis.call('SET', KEYS[5], ARGV[3], 'EX', 86400)\n"
    "  redis.call('DEL', KEYS[4])\n"
    "  for i = 4, #ARGV - 1, 2 do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]) end\n"
    "  redis.call('EXPIRE', KEYS[4], 60)\n"
    "end\n"
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if cur < tonumber(ARGV[2]) then cur = tonumber(ARGV[2]); redis.call('SET', KEYS[1], ARGV[2]) end\n"
    "redis.call('SADD', KEYS[3], ARGV[1])\n"
    "local count, names = {}, {}\n"
    "for _, s in ipairs(redis.call('SMEMBERS', KEYS[3])) do\n"
    "  local h = redis.call('HGETALL', 'c10k:presence:' .. s)\n"
    "  if #h == 0 and s ~= ARGV[1] then redis.call('SREM', KEYS[3], s) end\n"
    "  for i = 1, #h, 2 do\n"
    "    local c = tonumber(h[i + 1])\n"
    "    if c then\n"
    "      if not count[h[i]] then count[h[i]] = 0; names[#names + 1] = h[i] end\n"
    "      count[h[i]] = count[h[i]] + c\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local users = {}\n"
    "for _, n in ipairs(names) do\n"
    "  if count[n] > 0 then users[#users + 1] = n; users[#users + 1] = string.format('%.0f', count[n]) end\n"
    "end\n"
    "local back = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 2000)\n"
    "local lastid = '0-0'\n"
    "if #back > 0 then lastid = back[1][1] end\n"
    "local msgs = {}\n"
    "for _, e in ipairs(back) do\n"
    "  local f = {}\n"
    "  for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end\n"
    "  if f.type == 'message' and f.seq and f.ts and f.user and f.text then msgs[#msgs + 1] = f end\n"
    "  if #msgs == 50 then break end\n"
    "end\n"
    "local hist = {}\n"
    "for i = #msgs, 1, -1 do\n"
    "  local f = msgs[i]\n"
    "  hist[#hist + 1] = f.seq; hist[#hist + 1] = f.ts; hist[#hist + 1] = f.user; hist[#hist + 1] = f.text\n"
    "end\n"
    "return {tostring(cur), lastid, fresh, users, hist}\n";

/* KEYS: servers, presence:<sid>, op:<sid>; ARGV: sid */
static const char HEARTBEAT_LUA[] =
    "redis.call('SADD', KEYS[1], ARGV[1])\n"
    "redis.call('EXPIRE', KEYS[3], 86400)\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], 60) end\n"
    "return 1\n";

struct op {
    struct op *next;
    uint64_t id;
    char type[8];
    char user[ROOM_MAX_USER + 1];
    size_t len;
    char text[]; /* len bytes, message only */
};

enum bp_state { BP_DOWN, BP_CONNECTING, BP_UP };

struct backplane {
    struct redis_url url; /* holds the password: never printed */
    FILE *log;            /* stderr; NULL: silent (a detached one, fuzzing) */
    char sid[48];
    char presence_key[80], op_key[80];
    struct room *room;
    struct backplane_loop loop;
    bool threaded;
    int wake_fd;

    /* The ops this server published and has not yet seen come back from the
     * stream, oldest first; `unsent` is the first one not yet written on the
     * current connection. Under `lock` (workers append in chat-threaded). */
    pthread_mutex_t lock;
    struct op *head, *tail, *unsent;
    size_t queued_bytes;
    uint64_t next_op, seen_op;
    unsigned long dropped;

    /* Only the loop thread touches the rest (state is also read by
     * backplane_settled from chat-threaded's main thread). */
    _Atomic(enum bp_state) state;
    redisAsyncContext *wr, *rd; /* publishing; reading (XREAD BLOCK) */
    bool synced;                /* the room was loaded from Redis once */
    bool told_down;             /* members were told the room is unreachable */
    bool failing;               /* an outage was logged */
    char last_id[64];           /* the last stream entry applied */
    struct stream_id last;      /* the same, parsed: entries must come after it */
    /* c10k:seq as last read: an entry whose seq jumps past the next one is
     * applied only if Redis's own counter reached it (see apply_entry). */
    uint64_t seq_ceiling;
    bool ceiling_fresh;         /* read since the entry now being decided */
    struct log_limit refused[RX_NCAUSES];
    uint64_t connect_deadline, retry_at, backoff_ms, read_deadline, heartbeat_at;
    unsigned inflight;          /* publishes without an answer */
    uint64_t wr_since;          /* last answer, or the first send after none */
};

static uint64_t now_ms(void) { return app_now_ms(); }

static void logf_(const struct backplane *bp, const char *fmt, const char *detail)
{
    if (!bp->log)
        return;
    /* Host, port and db only: the password stays out of every log line. */
    fprintf(bp->log, "backplane (redis://%s:%d/%d): ", bp->url.host, bp->url.port, bp->url.db);
    fprintf(bp->log, fmt, detail ? detail : "");
    fputc('\n', bp->log);
}

/* ---- the op queue ------------------------------------------------------- */

static void op_free_head_locked(struct backplane *bp)
{
    struct op *o = bp->head;
    bp->head = o->next;
    if (!bp->head)
        bp->tail = NULL;
    if (bp->unsent == o)
        bp->unsent = o->next;
    bp->queued_bytes -= sizeof *o + o->len;
    free(o);
}

/* room_remote.publish: runs under the room's lock, on any thread. */
static uint64_t publish(void *ctx, const char *type, const char *user, const char *text,
                        size_t len)
{
    struct backplane *bp = ctx;
    bool message = strcmp(type, "message") == 0;
    pthread_mutex_lock(&bp->lock);
    uint64_t id = ++bp->next_op;
    /* Joins and leaves are never dropped: presence depends on them, and
     * there are at most two per connection. Messages are, past the cap. */
    struct op *o = NULL;
    if (!message || bp->queued_bytes < QUEUE_MAX_BYTES)
        o = malloc(sizeof *o + (message ? len : 0));
    if (!o) {
        bp->dropped++;
        pthread_mutex_unlock(&bp->lock);
        return id;
    }
    o->next = NULL;
    o->id = id;
    snprintf(o->type, sizeof o->type, "%s", type);
    snprintf(o->user, sizeof o->user, "%s", user);
    o->len = message ? len : 0;
    if (o->len)
        memcpy(o->text, text, len);
    if (bp->tail)
        bp->tail->next = o;
    else
        bp->head = o;
    bp->tail = o;
    if (!bp->unsent)
        bp->unsent = o;
    bp->queued_bytes += sizeof *o + o->len;
    pthread_mutex_unlock(&bp->lock);
    if (bp->threaded) {
        uint64_t one = 1;
        if (write(bp->wake_fd, &one, sizeof one) < 0) { /* full counter: a wake is pending */
        }
    } else {
        backplane_flush(bp);
    }
    return id;
}

static void on_published(redisAsyncContext *ac, void *r, void *priv);

void backplane_flush(struct backplane *bp)
{
    if (bp->wake_fd >= 0) {
        uint64_t n;
        if (read(bp->wake_fd, &n, sizeof n) < 0) { /* EAGAIN: nothing new */
        }
    }
    if (bp->state != BP_UP)
        return;
    pthread_mutex_lock(&bp->lock);
    struct op *o;
    for (o = bp->unsent; o; o = o->next) {
        char id[24];
        snprintf(id, sizeof id, "%" PRIu64, o->id);
        const char *argv[] = {"EVAL", PUBLISH_LUA, "4", SEQ_KEY, STREAM_KEY, bp->presence_key,
                              bp->op_key, id, o->type, o->user, o->text, bp->sid};
        size_t lens[] = {4, sizeof PUBLISH_LUA - 1, 1, strlen(SEQ_KEY), strlen(STREAM_KEY),
                         strlen(bp->presence_key), strlen(bp->op_key), strlen(id),
                         strlen(o->type), strlen(o->user), o->len, strlen(bp->sid)};
        if (redisAsyncCommandArgv(bp->wr, on_published, bp, 12, argv, lens) != REDIS_OK)
            break; /* disconnecting: the ops stay queued for the next connection */
        if (bp->inflight++ == 0)
            bp->wr_since = now_ms();
    }
    bp->unsent = o; /* NULL, unless hiredis refused (the connection is going) */
    pthread_mutex_unlock(&bp->lock);
}

/* ---- connection state ----------------------------------------------------- */

static void drop_contexts(struct backplane *bp)
{
    /* The pointers are cleared first: freeing one context runs its pending
     * callbacks (NULL replies) and its disconnect callback, which must find
     * nothing left to free. hiredis defers the free itself when we are
     * inside one of that context's reply callbacks. */
    redisAsyncContext *wr = bp->wr, *rd = bp->rd;
    bp->wr = bp->rd = NULL;
    if (wr)
        redisAsyncFree(wr);
    if (rd)
        redisAsyncFree(rd);
}

/* Something went wrong on either connection: drop both, try again later. */
static void bp_fail(struct backplane *bp, const char *why)
{
    if (bp->state == BP_DOWN)
        return;
    bool was_up = bp->state == BP_UP;
    bp->state = BP_DOWN;
    drop_contexts(bp);
    bp->inflight = 0;
    /* Back-off with jitter, so that servers cut off together do not all
     * knock at once. */
    uint64_t jitter = (uint64_t)rand() % (bp->backoff_ms / 2 + 1);
    bp->retry_at = now_ms() + bp->backoff_ms + jitter;
    bp->backoff_ms = bp->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : bp->backoff_ms * 2;
    /* One line per outage, not one per attempt. */
    if (!was_up && !bp->failing)
        logf_(bp, "cannot connect (%s); retrying", why);
    bp->failing = true;
    if (was_up) {
        logf_(bp, "connection lost (%s); reconnecting", why);
        room_system(bp->room, "The chat room is unreachable (Redis connection lost). "
                              "Reconnecting; messages sent meanwhile are held until then.");
        bp->told_down = true;
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct backplane *bp = ac->data;
    if (status == REDIS_OK)
        return;
    /* hiredis frees ac itself after this callback returns. */
    if (ac == bp->wr)
        bp->wr = NULL;
    else if (ac == bp->rd)
        bp->rd = NULL;
    else
        return;
    bp_fail(bp, ac->errstr);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct backplane *bp = ac->data;
    if (ac == bp->wr)
        bp->wr = NULL;
    else if (ac == bp->rd)
        bp->rd = NULL;
    else
        return; /* one we dropped ourselves */
    bp_fail(bp, ac->err ? ac->errstr : "closed by the server");
}

/* AUTH and SELECT must succeed before anything else on the connection
 * counts: a wrong password or a database Redis does not have would
 * otherwise leave us talking to database 0, or to nothing, unnoticed. The
 * error text is Redis's (it never repeats the password). */
static void on_setup(redisAsyncContext *ac, void *r, void *priv)
{
    struct backplane *bp = ac->data;
    redisReply *reply = r;
    if (!reply || bp->state == BP_DOWN || (ac != bp->wr && ac != bp->rd))
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "%s: %.120s", (const char *)priv, reply->str);
        bp_fail(bp, why);
    }
}

/* role names the connection in CLIENT LIST ("c10k-PID-wr"), so an operator
 * (or a test) can tell whose it is and kill it. */
static redisAsyncContext *open_context(struct backplane *bp, const char *role)
{
    redisAsyncContext *ac = redisAsyncConnect(bp->url.host, bp->url.port);
    if (!ac)
        return NULL;
    if (ac->err || bp->loop.attach(bp->loop.loop, ac) < 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = bp;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* AUTH first: with requirepass, Redis refuses every other command. The
     * argv form sends the password as one binary-safe argument. */
    if (bp->url.password_len) {
        const char *argv[] = {"AUTH", bp->url.password};
        size_t lens[] = {4, bp->url.password_len};
        redisAsyncCommandArgv(ac, on_setup, "AUTH", 2, argv, lens);
    }
    redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME c10k-%d-%s", (int)getpid(), role);
    if (bp->url.db)
        redisAsyncCommand(ac, on_setup, "SELECT", "SELECT %d", bp->url.db);
    return ac;
}

/* ---- reading the stream ---------------------------------------------------- */

static void on_read(redisAsyncContext *ac, void *r, void *priv);

static void issue_read(struct backplane *bp)
{
    if (redisAsyncCommand(bp->rd, on_read, bp, "XREAD COUNT " READ_COUNT " BLOCK %d STREAMS "
                          STREAM_KEY " %s", BLOCK_MS, bp->last_id) == REDIS_OK)
        bp->read_deadline = now_ms() + READ_TIMEOUT_MS;
}

/* Something read from Redis refused: logged once per cause, then at most
 * every REFUSED_LOG_MS with how many more there were. The content is not
 * printed (it is whatever someone wrote into Redis: escape sequences, 4 KB
 * names); a stream entry's validated id lets an operator find it (XRANGE). */
static void refused(struct backplane *bp, enum rx_cause cause, const char *what, const char *id)
{
    unsigned long held;
    if (!log_limit_pass(&bp->refused[cause], now_ms(), REFUSED_LOG_MS, &held))
        return;
    char line[200];
    int n = snprintf(line, sizeof line, "refused %s%s (%s", what, id ? id : "",
                     rx_cause_str(cause));
    if (held && n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, "; %lu more since the last report", held);
    logf_(bp, "%s)", line);
}

/* One stream entry [id, [field, value, ...]]: validated, then applied to the
 * room (or skipped, and logged). */
enum bp_entry backplane_apply_entry(struct backplane *bp, const redisReply *r)
{
    /* The stream is read only once a hello has loaded the room (on_hello):
     * an entry before that has no place in its order, and the load would
     * then move seq back under it. */
    if (!bp->synced)
        return BP_ENTRY_BAD;
    struct rx_entry e;
    enum rx_cause cause = rx_entry_parse(r, &e);
    if (cause == RX_SHAPE || cause == RX_ID)
        return BP_ENTRY_BAD; /* no id to skip past: the reply itself is wrong */
    /* XREAD returns entries after the id asked for. One that is not would
     * make us read backwards, and loop, on a fake or broken server. */
    if (stream_id_cmp(e.sid_id, bp->last) <= 0)
        return BP_ENTRY_BAD;
    if (cause == RX_OK) {
        e.ev.mine = strcmp(e.server, bp->sid) == 0;
        e.ev.token = e.tok;
        pthread_mutex_lock(&bp->lock);
        /* Our own op ids are ours to check: one we never issued would
         * release ops still waiting to be published. */
        if (e.ev.mine && e.tok > bp->next_op)
            cause = RX_TOK;
        pthread_mutex_unlock(&bp->lock);
    }
    if (cause == RX_OK) {
        /* seq is the room's order: a seq past the next one is a gap (events
         * trimmed from the stream while we were away, or lost by Redis) and
         * is applied, telling the members, but only if c10k:seq, which
         * every real event's seq comes from, has reached it. An entry
         * written around the script with a seq far ahead would otherwise
         * make every later event look like a redelivery: a frozen room. */
        uint64_t cur = room_stats(bp->room).seq;
        if (e.ev.seq > cur + 1 && e.ev.seq > bp->seq_ceiling) {
            if (!bp->ceiling_fresh)
                return BP_ENTRY_HOLD; /* read c10k:seq, then this entry again */
            cause = RX_SEQ_AHEAD;
        }
    }
    bp->ceiling_fresh = false;
    snprintf(bp->last_id, sizeof bp->last_id, "%s", e.id); /* <= RX_MAX_ID bytes */
    bp->last = e.sid_id;
    if (cause != RX_OK) {
        refused(bp, cause, "stream entry ", e.id);
        return BP_ENTRY_DONE;
    }
    room_apply(bp->room, &e.ev);
    if (e.ev.mine) {
        /* Seen in the stream: published for good, never to be re-sent. Only
         * after room_apply: backplane_settled must not say "all back" while
         * the event is still on its way to the members. */
        pthread_mutex_lock(&bp->lock);
        while (bp->head && bp->head->id <= e.ev.token)
            op_free_head_locked(bp);
        if (e.ev.token > bp->seen_op)
            bp->seen_op = e.ev.token;
        pthread_mutex_unlock(&bp->lock);
    }
    return BP_ENTRY_DONE;
}

bool backplane_take_ceiling(struct backplane *bp, const redisReply *r)
{
    uint64_t v = 0;
    if (!r || (r->type != REDIS_REPLY_NIL && !rx_decimal(r, RX_MAX_SEQ, &v)))
        return false;
    bp->seq_ceiling = v;
    bp->ceiling_fresh = true;
    return true;
}

static void on_ceiling(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct backplane *bp = priv;
    redisReply *reply = r;
    if (!reply || bp->state != BP_UP)
        return;
    if (!backplane_take_ceiling(bp, reply))
        bp_fail(bp, reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply to GET " SEQ_KEY);
}

static void on_read(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct backplane *bp = priv;
    redisReply *reply = r;
    if (!reply || bp->state != BP_UP)
        return; /* the connection is being dropped */
    if (reply->type == REDIS_REPLY_ERROR) {
        bp_fail(bp, reply->str);
        return;
    }
    const redisReply *entries;
    if (!rx_read_reply(reply, &entries)) {
        bp_fail(bp, "malformed XREAD reply");
        return;
    }
    for (size_t i = 0; entries && i < entries->elements; i++) {
        enum bp_entry done = backplane_apply_entry(bp, entries->element[i]);
        if (done == BP_ENTRY_BAD) {
            bp_fail(bp, "malformed stream entry in XREAD reply");
            return;
        }
        if (done == BP_ENTRY_HOLD) {
            /* One connection answers in order: the GET's reply comes, and
             * sets the ceiling, before the XREAD's that reads this entry
             * (and the rest of the batch) again. */
            redisAsyncCommand(bp->rd, on_ceiling, bp, "GET " SEQ_KEY);
            break;
        }
    }
    if (bp->state == BP_UP && bp->rd)
        issue_read(bp);
}

/* ---- publishing ------------------------------------------------------------ */

static void on_published(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct backplane *bp = priv;
    redisReply *reply = r;
    if (!reply || bp->state != BP_UP)
        return;
    if (bp->inflight > 0)
        bp->inflight--;
    bp->wr_since = now_ms();
    if (reply->type == REDIS_REPLY_ERROR) {
        logf_(bp, "publish failed: %s", reply->str);
        bp_fail(bp, reply->str);
    }
}

static void on_heartbeat(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct backplane *bp = priv;
    redisReply *reply = r;
    if (reply && bp->state == BP_UP && reply->type == REDIS_REPLY_ERROR)
        bp_fail(bp, reply->str);
}

/* ---- hello: (re)joining the shared room ------------------------------------ */

struct argv_buf {
    const char **argv;
    size_t *lens;
    size_t n, cap;
    char (*nums)[16];
    size_t nnums;
};

static void add_arg(struct argv_buf *a, const char *s, size_t len)
{
    if (a->n < a->cap) {
        a->argv[a->n] = s;
        a->lens[a->n++] = len;
    }
}

/* Names are copied: in chat-threaded a member may leave (and its memory go)
 * between room_own_presence and the formatting of the command. */
static void count_own(void *arg, const char *user, unsigned n)
{
    struct argv_buf *a = arg;
    if (a->n + 2 > a->cap)
        return;
    size_t ulen = strlen(user);
    char *dup = malloc(ulen + 1);
    if (!dup)
        return;
    memcpy(dup, user, ulen + 1);
    snprintf(a->nums[a->nnums], sizeof a->nums[0], "%u", n);
    add_arg(a, dup, ulen);
    add_arg(a, a->nums[a->nnums], strlen(a->nums[a->nnums]));
    a->nnums++;
}

static void on_hello(redisAsyncContext *ac, void *r, void *priv);

static void send_hello(struct backplane *bp)
{
    /* Own presence: at most one pair per distinct user of ours. */
    struct room_stats st = room_stats(bp->room);
    size_t cap = 11 + 2 * (size_t)st.members; /* the fixed arguments, then pairs */
    struct argv_buf a = {calloc(cap, sizeof *a.argv), calloc(cap, sizeof *a.lens), 0, cap,
                         calloc(st.members + 1, sizeof *a.nums), 0};
    if (!a.argv || !a.lens || !a.nums) {
        free(a.argv);
        free(a.lens);
        free(a.nums);
        bp_fail(bp, "out of memory");
        return;
    }
    char seq[24], seen[24];
    snprintf(seq, sizeof seq, "%" PRIu64, st.seq);
    pthread_mutex_lock(&bp->lock);
    snprintf(seen, sizeof seen, "%" PRIu64, bp->seen_op);
    pthread_mutex_unlock(&bp->lock);
    const char *fixed[] = {"EVAL", HELLO_LUA, "5", SEQ_KEY, STREAM_KEY, SERVERS_KEY,
                           bp->presence_key, bp->op_key, bp->sid, seq, seen};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        add_arg(&a, fixed[i], i == 1 ? sizeof HELLO_LUA - 1 : strlen(fixed[i]));
    size_t first_name = a.n;
    a.cap = a.n + 2 * (size_t)st.members; /* a member may join meanwhile: stay in bounds */
    room_own_presence(bp->room, count_own, &a);
    redisAsyncCommandArgv(bp->wr, on_hello, bp, (int)a.n, a.argv, a.lens);
    for (size_t i = first_name; i < a.n; i += 2)
        free((char *)a.argv[i]);
    free(a.argv);
    free(a.lens);
    free(a.nums);
}

/* The hello script's answer: the room as Redis has it, on the first
 * connection; c10k:seq, on every one. */
int backplane_load_snapshot(struct backplane *bp, const redisReply *reply)
{
    struct rx_hello h;
    int rc = rx_hello_parse(reply, &h);
    if (rc != RX_OK)
        return rc;
    if (h.refused)
        refused(bp, h.first_cause, "part of the hello snapshot", NULL);
    bp->seq_ceiling = h.seq;
    if (!bp->synced) {
        room_load(bp->room, h.seq, h.names, h.counts, h.nnames, h.history, h.nhistory);
        snprintf(bp->last_id, sizeof bp->last_id, "%s", h.last_id); /* <= RX_MAX_ID bytes */
        stream_id_parse(h.last_id, strlen(h.last_id), &bp->last);
        bp->synced = true;
    }
    rx_hello_free(&h);
    return RX_OK;
}

static void on_hello(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct backplane *bp = priv;
    redisReply *reply = r;
    if (!reply || bp->state != BP_CONNECTING)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        bp_fail(bp, reply->str);
        return;
    }
    int rc = backplane_load_snapshot(bp, reply);
    if (rc != RX_OK) {
        char why[80];
        snprintf(why, sizeof why, "bad hello reply (%s)",
                 rc < 0 ? "out of memory" : rx_cause_str(rc));
        bp_fail(bp, why);
        return;
    }
    /* Reconnecting, we read on from our own last entry: what was published
     * while we were away is still in the stream (within its ~10 000 last
     * events), so the members miss nothing. */
    bp->state = BP_UP;
    bp->failing = false;
    bp->backoff_ms = BACKOFF_MIN_MS;
    bp->heartbeat_at = now_ms() + HEARTBEAT_MS;
    logf_(bp, "connected%s", bp->told_down ? " again" : "");
    if (bp->told_down) {
        room_system(bp->room, "The chat room is reachable again.");
        bp->told_down = false;
    }
    pthread_mutex_lock(&bp->lock);
    unsigned long dropped = bp->dropped;
    bp->dropped = 0;
    pthread_mutex_unlock(&bp->lock);
    if (dropped) {
        char note[128];
        snprintf(note, sizeof note, "%lu messages could not be sent while the room was unreachable.",
                 dropped);
        room_system(bp->room, note);
    }
    issue_read(bp);
    backplane_flush(bp);
}

static void bp_connect(struct backplane *bp)
{
    bp->state = BP_CONNECTING;
    bp->connect_deadline = now_ms() + CONNECT_TIMEOUT_MS;
    bp->inflight = 0;
    pthread_mutex_lock(&bp->lock);
    bp->unsent = bp->head; /* whatever has not come back is sent again */
    pthread_mutex_unlock(&bp->lock);
    bp->wr = open_context(bp, "wr");
    bp->rd = bp->wr ? open_context(bp, "rd") : NULL;
    if (!bp->wr || !bp->rd) {
        bp_fail(bp, "cannot open a connection");
        return;
    }
    send_hello(bp);
}

static void bp_init(struct backplane *bp, struct room *room, const char *sid);

/* ---- public ------------------------------------------------------------------ */

struct backplane *backplane_new(const char *url, struct room *room,
                                const struct backplane_loop *loop, bool threaded, char *err,
                                size_t errlen)
{
    struct backplane *bp = calloc(1, sizeof *bp);
    if (!bp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char why[160];
    if (redis_url_parse(url, &bp->url, why, sizeof why) < 0) {
        snprintf(err, errlen, "--redis: %s", why); /* never the URL: it may hold the password */
        free(bp);
        return NULL;
    }
    bp->room = room;
    bp->loop = *loop;
    bp->threaded = threaded;
    bp->wake_fd = threaded ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;
    if (threaded && bp->wake_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        redis_url_wipe(&bp->url);
        free(bp);
        return NULL;
    }
    /* A server id unique among live servers: Redis keeps presence and the
     * last op per server id. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char sid[sizeof bp->sid];
    snprintf(sid, sizeof sid, "%d.%lld%09ld", (int)getpid(), (long long)ts.tv_sec, ts.tv_nsec);
    srand((unsigned)(ts.tv_nsec ^ getpid()));
    bp_init(bp, room, sid);
    bp->log = stderr;
    bp_connect(bp);
    return bp;
}

/* What both constructors share: the room goes remote, reading starts at the
 * stream's beginning. */
static void bp_init(struct backplane *bp, struct room *room, const char *sid)
{
    bp->room = room;
    pthread_mutex_init(&bp->lock, NULL);
    snprintf(bp->sid, sizeof bp->sid, "%s", sid);
    snprintf(bp->presence_key, sizeof bp->presence_key, "c10k:presence:%s", bp->sid);
    snprintf(bp->op_key, sizeof bp->op_key, "c10k:op:%s", bp->sid);
    snprintf(bp->last_id, sizeof bp->last_id, "0-0");
    bp->backoff_ms = BACKOFF_MIN_MS;
    room_set_remote(room, &(struct room_remote){publish, bp});
}

struct backplane *backplane_new_detached(struct room *room, const char *sid, FILE *log)
{
    struct backplane *bp = calloc(1, sizeof *bp);
    if (!bp)
        return NULL;
    bp->wake_fd = -1;
    bp->log = log;
    snprintf(bp->url.host, sizeof bp->url.host, "detached");
    bp_init(bp, room, sid);
    return bp;
}

void backplane_tick(struct backplane *bp)
{
    uint64_t now = now_ms();
    enum bp_state state = bp->state; /* an atomic load: see struct backplane */
    switch (state) {
    case BP_DOWN:
        if (now >= bp->retry_at)
            bp_connect(bp);
        break;
    case BP_CONNECTING:
        if (now > bp->connect_deadline)
            bp_fail(bp, "connect timed out");
        break;
    case BP_UP:
        if (now > bp->read_deadline)
            bp_fail(bp, "read timed out");
        else if (bp->inflight > 0 && now - bp->wr_since > WRITE_TIMEOUT_MS)
            bp_fail(bp, "publish timed out");
        else if (now >= bp->heartbeat_at) {
            bp->heartbeat_at = now + HEARTBEAT_MS;
            redisAsyncCommand(bp->wr, on_heartbeat, bp, "EVAL %s 3 %s %s %s %s", HEARTBEAT_LUA,
                              SERVERS_KEY, bp->presence_key, bp->op_key, bp->sid);
        }
        break;
    }
}

int backplane_wake_fd(const struct backplane *bp) { return bp->wake_fd; }

bool backplane_up(const struct backplane *bp) { return bp->state == BP_UP; }

void backplane_close_in_child(struct backplane *bp)
{
    if (bp->wr)
        close(bp->wr->c.fd);
    if (bp->rd)
        close(bp->rd->c.fd);
}

bool backplane_settled(struct backplane *bp)
{
    pthread_mutex_lock(&bp->lock);
    bool empty = bp->head == NULL;
    pthread_mutex_unlock(&bp->lock);
    return empty || bp->state != BP_UP;
}

/* The last leaves (room_close) and anything else not yet seen in the
 * stream, on a short-lived blocking connection. Ops Redis already applied
 * are skipped by the script. */
static void final_flush(struct backplane *bp)
{
    if (!bp->head || !bp->loop.attach) /* detached: there is no Redis */
        return;
    struct timeval tv = {0, 500 * 1000};
    redisContext *c = redisConnectWithTimeout(bp->url.host, bp->url.port, tv);
    if (!c || c->err) {
        logf_(bp, "cannot send the last leaves: %s", c ? c->errstr : "out of memory");
        redisFree(c);
        return;
    }
    redisSetTimeout(c, (struct timeval){1, 0});
    unsigned sent = 0;
    if (bp->url.password_len) {
        const char *argv[] = {"AUTH", bp->url.password};
        size_t lens[] = {4, bp->url.password_len};
        redisAppendCommandArgv(c, 2, argv, lens);
        sent++;
    }
    if (bp->url.db)
        redisAppendCommand(c, "SELECT %d", bp->url.db), sent++;
    for (struct op *o = bp->head; o; o = o->next) {
        char id[24];
        snprintf(id, sizeof id, "%" PRIu64, o->id);
        const char *argv[] = {"EVAL", PUBLISH_LUA, "4", SEQ_KEY, STREAM_KEY, bp->presence_key,
                              bp->op_key, id, o->type, o->user, o->text, bp->sid};
        size_t lens[] = {4, sizeof PUBLISH_LUA - 1, 1, strlen(SEQ_KEY), strlen(STREAM_KEY),
                         strlen(bp->presence_key), strlen(bp->op_key), strlen(id),
                         strlen(o->type), strlen(o->user), o->len, strlen(bp->sid)};
        redisAppendCommandArgv(c, 12, argv, lens);
        sent++;
    }
    bool told = false;
    for (unsigned i = 0; i < sent; i++) {
        redisReply *reply;
        if (redisGetReply(c, (void **)&reply) != REDIS_OK)
            break;
        if (reply->type == REDIS_REPLY_ERROR && !told) {
            logf_(bp, "cannot send the last leaves: %s", reply->str);
            told = true;
        }
        freeReplyObject(reply);
    }
    redisFree(c);
}

void backplane_free(struct backplane *bp)
{
    if (!bp)
        return;
    room_set_remote(bp->room, NULL);
    bp->state = BP_DOWN;
    drop_contexts(bp);
    final_flush(bp);
    while (bp->head)
        op_free_head_locked(bp);
    if (bp->wake_fd >= 0)
        close(bp->wake_fd);
    pthread_mutex_destroy(&bp->lock);
    redis_url_wipe(&bp->url);
    free(bp);
}
