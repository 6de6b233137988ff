/* chatbench ws: fan-out latency of the chat room.
 *
 * Log in once, connect CLIENTS WebSockets (wsclient.c), wait until the
 * room is seated, then the first SENDERS clients each send MESSAGES texts
 * at RATE per second. Every text carries "cb RUN SENDER SEQ SENT_NS"; every
 * client, the sender included, times each receipt from SENT_NS. So
 *   expected  = MESSAGES x SENDERS x CLIENTS receipts
 *   completed = receipts of this run's messages (in seq order, once)
 *   failed    = expected - completed, by reason: the client's connect
 *               failure, 'closed NNNN'/'closed'/'reset' for receipts missed
 *               by a client the server closed, 'unsent' for messages a
 *               sender never sent (it was closed), 'lost' for the rest
 *   seat_s    = first connect until every client has its own join and has
 *               seen the join of the last one in: the room is full
 *   elapsed_s = first send until the last receipt, so `rate` is receipts/s
 *               of the fan-out alone.
 * The receipt path is what must be cheap (the server sends CLIENTS frames
 * per message): frames are parsed where they lie in the read buffer, the
 * text is found with memmem and its numbers read in place, and latency goes
 * to the histogram. No allocation, no syscall beyond libuv's read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "chatbench.h"
#include "ws_codec.h"
#include "wsclient.h"

#define GRACE_NS (5ull * 1000000000ull) /* no progress for this long: the end */
#define SEAT_TIMEOUT_MS 30000           /* seating that slow: send anyway, say so */
#define TICK_MS 100
#define MSG_FRAME_MAX 96  /* "cb " + 4 numbers, masked, with header */
#define BATCH 4096        /* bytes of frames encoded per write */
#define OUT_CAP (2 * BATCH) /* a sender's backlog beyond what the kernel took */

struct wcl {
    struct wsc c; /* first: the pool's clients are struct wcl */
    uint64_t join_seq;  /* seq of its own join */
    uint64_t last_seq;  /* of the last event: the room's order must hold */
    uint64_t got;       /* receipts of this run's messages */
    uint8_t phase;      /* 0: wants welcome, 1: wants its join, 2: in the room */
    bool seated;
};

struct sender {
    struct wcl *cl;
    uint8_t *out;       /* backlog the kernel did not take (allocated on first need) */
    uint32_t len;       /* bytes in out */
    uint32_t inflight;  /* out[0..inflight) is being written by uv_write */
    uint32_t next_k;    /* messages encoded */
    uint32_t due_k;     /* messages due */
    uv_write_t wr;
    bool writing, done;
};

struct wsrun {
    const struct opts *o;
    struct result *r;
    struct wsc_pool pool;
    uv_timer_t send_timer, tick, seat_timer;
    struct sender *snd;
    unsigned n, S, m;
    uint32_t run_id;
    /* seating */
    unsigned nopen, nphase2, nseated;
    uint64_t maxjoin;
    bool connected, seat_armed, seated, all_due, finished;
    /* sending */
    unsigned senders_done;
    uint64_t sent_total, g_next, expected;
    uint64_t t_send0, t_last_rx, last_progress, max_late_ns;
    uint64_t seen_completed, seen_sent;
    /* oddities */
    uint64_t out_of_order, bad_first;
    struct rusage ru0;
};

static void finish(struct wsrun *R);
static void start_sending(struct wsrun *R);

/* ---- receiving ------------------------------------------------------------- */

static inline const uint8_t *digits(const uint8_t *p, const uint8_t *e, uint64_t *v)
{
    uint64_t x = 0;
    const uint8_t *s = p;
    while (p < e && *p >= '0' && *p <= '9')
        x = x * 10 + (uint64_t)(*p++ - '0');
    *v = x;
    return p > s ? p : NULL;
}

static void seated(struct wsrun *R)
{
    R->seated = true;
    R->r->seat_s = (double)(now_ns() - R->pool.t_first) / 1e9;
    uv_timer_stop(&R->seat_timer);
    start_sending(R);
}

/* Once every client is in and has its own join, the last join is the one
 * with the highest seq; count who has seen it already, then count the rest
 * as their frames arrive. */
static void seat_check(struct wsrun *R)
{
    if (R->seated || R->finished || !R->connected)
        return;
    if (R->seat_armed) {
        if (R->nseated >= R->nopen)
            seated(R);
        return;
    }
    if (R->nphase2 < R->nopen)
        return;
    R->maxjoin = 0;
    for (unsigned i = 0; i < R->n; i++) {
        struct wcl *w = (struct wcl *)wsc_at(&R->pool, i);
        if (w->c.state == WSC_OPEN && w->join_seq > R->maxjoin)
            R->maxjoin = w->join_seq;
    }
    R->nseated = 0;
    for (unsigned i = 0; i < R->n; i++) {
        struct wcl *w = (struct wcl *)wsc_at(&R->pool, i);
        if (w->c.state == WSC_OPEN && w->last_seq >= R->maxjoin) {
            w->seated = true;
            R->nseated++;
        }
    }
    R->seat_armed = true;
    if (R->nseated >= R->nopen)
        seated(R);
}

static void on_message(struct wsrun *R, struct wcl *w, const uint8_t *p, const uint8_t *e)
{
    /* ..."text":"cb RUN SENDER SEQ SENT_NS"} : ASCII digits and spaces, so
     * the JSON string is the text itself. */
    static const char key[] = "\"text\":\"cb ";
    const uint8_t *t = memmem(p, (size_t)(e - p), key, sizeof key - 1);
    if (!t)
        return;
    t += sizeof key - 1;
    uint64_t run, sender, k, sent;
    if (!(t = digits(t, e, &run)) || run != R->run_id || t >= e || *t++ != ' ' ||
        !(t = digits(t, e, &sender)) || t >= e || *t++ != ' ' ||
        !(t = digits(t, e, &k)) || t >= e || *t++ != ' ' ||
        !(t = digits(t, e, &sent)) || t >= e || *t != '"' || sender >= R->S || k >= R->m)
        return; /* someone else's text */
    uint64_t now = now_ns();
    hist_record(&R->r->lat, now > sent ? (now - sent) / 1000 : 0);
    w->got++;
    R->t_last_rx = now;
    if (++R->r->completed == R->expected)
        finish(R);
}

static void w_frame(struct wsc *c, unsigned op, const uint8_t *p, size_t have, uint64_t len)
{
    struct wcl *w = (struct wcl *)c;
    struct wsrun *R = c->pool->user;
    /* {"type":"NAME","seq":N,... — the server's fixed field order. */
    if (op != WS_OP_TEXT || have < 24 || memcmp(p, "{\"type\":\"", 9) != 0)
        return;
    const uint8_t *t = p + 9, *e = p + have;
    if (w->phase == 0) {
        if (memcmp(t, "welcome\"", 8) != 0)
            R->bad_first++;
        w->phase = 1;
        return;
    }
    size_t tl;
    switch (t[0]) {
    case 'm': tl = 7; break; /* message */
    case 'j': tl = 4; break; /* join */
    case 'l': tl = 5; break; /* leave */
    default: return;
    }
    uint64_t seq;
    const uint8_t *s = t + tl;
    if (e - s < 9 || memcmp(s, "\",\"seq\":", 8) != 0 || !(s = digits(s + 8, e, &seq)))
        return;
    if (seq <= w->last_seq) {
        R->out_of_order++; /* the room's one total order is broken */
        return;
    }
    w->last_seq = seq;
    if (w->phase == 1) {
        /* After welcome comes the client's own join: its place in the room. */
        if (t[0] != 'j')
            R->bad_first++;
        w->phase = 2;
        w->join_seq = seq;
        R->nphase2++;
        seat_check(R);
    } else if (R->seat_armed && !w->seated && seq >= R->maxjoin) {
        w->seated = true;
        R->nseated++;
        seat_check(R);
    }
    if (t[0] == 'm' && have == len)
        on_message(R, w, s, e);
}

/* ---- connecting ------------------------------------------------------------ */

static void w_open(struct wsc *c)
{
    struct wsrun *R = c->pool->user;
    R->nopen++;
}

static void w_fail(struct wsc *c)
{
    (void)c; /* c->why is kept for the final account */
}

static void sender_stop(struct wsrun *R, struct sender *s)
{
    if (s->done)
        return;
    s->done = true;
    R->senders_done++;
}

static void w_closed(struct wsc *c)
{
    struct wcl *w = (struct wcl *)c;
    struct wsrun *R = c->pool->user;
    R->nopen--;
    if (w->phase == 2)
        R->nphase2--;
    if (w->seated && R->seat_armed && !R->seated)
        R->nseated--;
    if (c->idx < R->S && R->snd)
        sender_stop(R, &R->snd[c->idx]);
    if (R->connected && R->nopen == 0) {
        fprintf(stderr, "chatbench: every client was closed by the server\n");
        finish(R);
        return;
    }
    seat_check(R);
}

static void seat_timeout_cb(uv_timer_t *t)
{
    struct wsrun *R = t->data;
    fprintf(stderr,
            "chatbench: warning: room not seated after %d s (%u of %u clients in, %u saw the "
            "last join); sending anyway, seat time not reported\n",
            SEAT_TIMEOUT_MS / 1000, R->nphase2, R->nopen, R->nseated);
    R->seated = true;
    start_sending(R);
}

static void w_connected(struct wsc_pool *p)
{
    struct wsrun *R = p->user;
    R->connected = true;
    if (R->nopen == 0) {
        fprintf(stderr, "chatbench: no client could connect\n");
        finish(R);
        return;
    }
    if (R->nopen < R->n)
        fprintf(stderr, "chatbench: warning: %u of %u clients connected\n", R->nopen, R->n);
    uv_timer_start(&R->seat_timer, seat_timeout_cb, SEAT_TIMEOUT_MS, 0);
    seat_check(R);
}

/* ---- sending ------------------------------------------------------------------ */

static size_t put_u64(char *o, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        o[i] = tmp[n - 1 - i];
    return n;
}

static void sender_write_cb(uv_write_t *wr, int status);

static void sender_flush(struct wsrun *R, struct sender *s)
{
    if (s->writing || s->len == 0 || s->cl->c.state != WSC_OPEN)
        return;
    uv_buf_t b = uv_buf_init((char *)s->out, s->len);
    int e = uv_write(&s->wr, (uv_stream_t *)&s->cl->c.tcp, &b, 1, sender_write_cb);
    if (e < 0) {
        sender_stop(R, s);
        return;
    }
    s->writing = true;
    s->inflight = s->len;
}

/* Hand bytes to the kernel at once; what it does not take waits in out. */
static void sender_bytes(struct wsrun *R, struct sender *s, const uint8_t *p, size_t n)
{
    if (!s->writing && s->len == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&s->cl->c.tcp, &b, 1);
        if (w < 0 && w != UV_EAGAIN) {
            sender_stop(R, s); /* the read side will see the close */
            return;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
        if (n == 0)
            return;
    }
    if (!s->out && !(s->out = malloc(OUT_CAP))) {
        sender_stop(R, s);
        return;
    }
    memcpy(s->out + s->len, p, n); /* pump left room for a whole batch */
    s->len += (uint32_t)n;
    sender_flush(R, s);
}

/* Encode and send what is due, a batch per write, while there is room. */
static void pump(struct wsrun *R, struct sender *s)
{
    uint8_t batch[BATCH];
    unsigned idx = s->cl->c.idx;
    if (R->finished)
        return;
    while (!s->done && s->next_k < s->due_k && (!s->out || OUT_CAP - s->len >= BATCH)) {
        size_t n = 0;
        uint64_t now = now_ns();
        if (R->o->rate > 0) {
            /* Sender i's k-th message is due at k*S+i ticks of 1/(RATE*S) s:
             * the senders take turns, so the room gets an even stream. */
            double g = (double)s->next_k * R->S + idx;
            uint64_t due = R->t_send0 + (uint64_t)(g * 1e9 / (R->o->rate * R->S));
            if (now > due && now - due > R->max_late_ns)
                R->max_late_ns = now - due;
        }
        while (s->next_k < s->due_k && n + MSG_FRAME_MAX <= BATCH) {
            char text[80];
            size_t tl = 0;
            memcpy(text, "cb ", 3);
            tl = 3;
            tl += put_u64(text + tl, R->run_id);
            text[tl++] = ' ';
            tl += put_u64(text + tl, idx);
            text[tl++] = ' ';
            tl += put_u64(text + tl, s->next_k);
            text[tl++] = ' ';
            tl += put_u64(text + tl, now);
            n += wsc_frame(batch + n, WS_OP_TEXT, text, tl);
            s->next_k++;
            R->sent_total++;
        }
        sender_bytes(R, s, batch, n);
        if (s->next_k == R->m)
            sender_stop(R, s);
    }
}

static void sender_write_cb(uv_write_t *wr, int status)
{
    struct sender *s = (struct sender *)((char *)wr - offsetof(struct sender, wr));
    struct wsrun *R = s->cl->c.pool->user;
    s->writing = false;
    if (status < 0 || R->finished) {
        if (!R->finished)
            sender_stop(R, s);
        return;
    }
    memmove(s->out, s->out + s->inflight, s->len - s->inflight);
    s->len -= s->inflight;
    s->inflight = 0;
    sender_flush(R, s);
    pump(R, s);
}

static void send_timer_cb(uv_timer_t *t)
{
    struct wsrun *R = t->data;
    uint64_t total = (uint64_t)R->S * R->m, now = now_ns();
    double per_s = R->o->rate * R->S;
    uint64_t g_due = (uint64_t)((double)(now - R->t_send0) / 1e9 * per_s) + 1;
    if (g_due > total)
        g_due = total;
    for (; R->g_next < g_due; R->g_next++) {
        struct sender *s = &R->snd[R->g_next % R->S];
        s->due_k++;
        pump(R, s);
    }
    if (R->g_next == total) {
        R->all_due = true;
        return;
    }
    uint64_t due = R->t_send0 + (uint64_t)((double)R->g_next * 1e9 / per_s);
    uint64_t ms = due > now ? (due - now + 999999) / 1000000 : 0;
    uv_timer_start(&R->send_timer, send_timer_cb, ms, 0);
}

/* Every TICK_MS: is everything in, or has nothing moved for GRACE_NS? */
static void tick_cb(uv_timer_t *t)
{
    struct wsrun *R = t->data;
    uint64_t now = now_ns();
    if (R->r->completed != R->seen_completed || R->sent_total != R->seen_sent) {
        R->seen_completed = R->r->completed;
        R->seen_sent = R->sent_total;
        R->last_progress = now;
    }
    if (R->senders_done == R->S) {
        /* Every open client has every message that was sent: done early,
         * e.g. when a closed sender left some messages unsent. */
        bool all_in = true;
        for (unsigned i = 0; i < R->n && all_in; i++) {
            struct wcl *w = (struct wcl *)wsc_at(&R->pool, i);
            all_in = w->c.state != WSC_OPEN || w->got >= R->sent_total;
        }
        if (all_in) {
            finish(R);
            return;
        }
    }
    /* Bounded: once all is due, GRACE_NS without a receipt or a send ends
     * the run (a stalled server, a lost message). */
    if ((R->all_due || R->senders_done == R->S) && now - R->last_progress > GRACE_NS)
        finish(R);
}

static void start_sending(struct wsrun *R)
{
    getrusage(RUSAGE_SELF, &R->ru0);
    R->t_send0 = R->last_progress = now_ns();
    for (unsigned i = 0; i < R->S; i++) {
        struct sender *s = &R->snd[i];
        s->cl = (struct wcl *)wsc_at(&R->pool, i);
        if (s->cl->c.state != WSC_OPEN)
            sender_stop(R, s);
    }
    uv_timer_start(&R->tick, tick_cb, TICK_MS, TICK_MS);
    if (R->o->rate > 0) {
        send_timer_cb(&R->send_timer);
        return;
    }
    R->all_due = true;
    for (unsigned i = 0; i < R->S && !R->finished; i++) {
        R->snd[i].due_k = R->m;
        pump(R, &R->snd[i]);
    }
}

/* ---- the end ------------------------------------------------------------------ */

static void fail_n(struct result *r, const char *reason, uint64_t n)
{
    if (n)
        result_fail_n(r, reason, n);
}

static void finish(struct wsrun *R)
{
    if (R->finished)
        return;
    R->finished = true;
    uint64_t t_end = now_ns();
    struct result *r = R->r;
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);

    /* The account, client by client, before the handles go. */
    uint64_t per_client = (uint64_t)R->S * R->m;
    for (unsigned i = 0; i < R->n; i++) {
        struct wcl *w = (struct wcl *)wsc_at(&R->pool, i);
        uint64_t missing = per_client > w->got ? per_client - w->got : 0;
        if (!missing)
            continue;
        if (w->c.state != WSC_OPEN) {
            fail_n(r, w->c.why ? w->c.why : "not connected", missing);
            continue;
        }
        uint64_t unsent = per_client - R->sent_total;
        if (unsent > missing)
            unsent = missing;
        fail_n(r, "unsent", unsent);
        fail_n(r, "lost", missing - unsent);
    }

    if (R->t_send0) {
        uint64_t last = R->t_last_rx ? R->t_last_rx : t_end;
        r->elapsed_s = (double)(last - R->t_send0) / 1e9;
        double cpu = (double)(ru1.ru_utime.tv_sec - R->ru0.ru_utime.tv_sec) +
                     (double)(ru1.ru_utime.tv_usec - R->ru0.ru_utime.tv_usec) / 1e6 +
                     (double)(ru1.ru_stime.tv_sec - R->ru0.ru_stime.tv_sec) +
                     (double)(ru1.ru_stime.tv_usec - R->ru0.ru_stime.tv_usec) / 1e6;
        fprintf(stderr,
                "chatbench: fan-out phase: %" PRIu64 " receipts in %.3f s = %.0f/s; chatbench "
                "CPU %.3f s = %.2f us per receipt\n",
                r->completed, r->elapsed_s,
                r->elapsed_s > 0 ? (double)r->completed / r->elapsed_s : 0.0, cpu,
                r->completed ? cpu * 1e6 / (double)r->completed : 0.0);
        /* Timers are late by a loop iteration or two; worth a word only
         * when a sender missed a whole beat of its schedule. */
        double beat_ns = R->o->rate > 0 ? 1e9 / R->o->rate : 0;
        if (R->max_late_ns > 20000000 && (double)R->max_late_ns > beat_ns)
            fprintf(stderr,
                    "chatbench: warning: sends fell up to %.1f ms behind the schedule "
                    "(the generator or the server's reading could not keep up)\n",
                    (double)R->max_late_ns / 1e6);
    }
    if (R->out_of_order)
        fprintf(stderr, "chatbench: %" PRIu64 " events out of seq order or repeated\n",
                R->out_of_order);
    if (R->bad_first)
        fprintf(stderr, "chatbench: %" PRIu64 " clients did not get welcome then their join first\n",
                R->bad_first);

    uv_close((uv_handle_t *)&R->send_timer, NULL);
    uv_close((uv_handle_t *)&R->tick, NULL);
    uv_close((uv_handle_t *)&R->seat_timer, NULL);
    wsc_pool_close_all(&R->pool); /* the loop ends when the closes are done */
}

int run_ws(const struct opts *o, struct result *r)
{
    uint64_t nofile = wsc_prepare_process();
    if (nofile < (uint64_t)o->conc + 64)
        fprintf(stderr, "chatbench: warning: descriptor limit %llu is short of %u clients\n",
                (unsigned long long)nofile, o->conc);
    char cookie[1024];
    if (chatbench_login(o, cookie, sizeof cookie) < 0)
        return -1;

    struct wsrun *R = calloc(1, sizeof *R);
    uv_loop_t loop;
    if (!R || uv_loop_init(&loop) < 0) {
        free(R);
        return -1;
    }
    R->o = o;
    R->r = r;
    R->n = o->conc;
    R->S = o->senders && o->senders < o->conc ? o->senders : o->conc;
    R->m = o->messages;
    R->run_id = (uint32_t)wsc_rand();
    R->expected = (uint64_t)R->m * R->S * R->n;
    r->expected = R->expected;
    R->snd = calloc(R->S, sizeof *R->snd);
    static const struct wsc_ops ops = {w_open, w_fail, w_frame, w_closed, w_connected};
    if (!R->snd || wsc_pool_init(&R->pool, &loop, o, cookie, R->n, sizeof(struct wcl), &ops, R) < 0) {
        fprintf(stderr, "chatbench: out of memory or cookie too long\n");
        free(R->snd);
        free(R);
        uv_loop_close(&loop);
        return -1;
    }
    uv_timer_init(&loop, &R->send_timer);
    uv_timer_init(&loop, &R->tick);
    uv_timer_init(&loop, &R->seat_timer);
    R->send_timer.data = R->tick.data = R->seat_timer.data = R;

    wsc_pool_start(&R->pool);
    uv_run(&loop, UV_RUN_DEFAULT); /* ends when finish() has closed every handle */

    r->seated = R->pool.opened;
    r->has_seated = true;
    int rc = R->pool.opened > 0 && uv_loop_close(&loop) == 0 ? 0 : -1;
    if (R->pool.opened == 0)
        uv_loop_close(&loop);
    for (unsigned i = 0; i < R->S; i++)
        free(R->snd[i].out);
    free(R->snd);
    wsc_pool_free(&R->pool);
    free(R);
    return rc;
}
