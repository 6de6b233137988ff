/* chatbench seat: join CONNS members to the chat room and time the seating.
 * Every newcomer's join goes to every member already in, so seating n
 * members costs the server n(n+1)/2 join frames: this is the room's own
 * cost, not the cost of holding idle connections (that is `chatbench idle`).
 * Once every client is in (or failed) they stay for -t SECONDS (default 0)
 * while what the server sends is read and dropped, so that a sampler sees
 * the settled room. Reports
 *   completed  members seated (101 with the right accept key)
 *   seated     the same, under its own name
 *   failed     by reason: connect, refused (503), reset, timeout, closed,
 *              status, handshake for opens that failed, and 'dropped' for
 *              seated ones the server closed before the stay was over
 *              (so still open at the end = completed - dropped)
 *   seat_s     time from the first connect until every client was in or
 *              failed; elapsed_s is the same span, so `rate` is seats/s
 *   latency    per connection, from connect() to the 101.
 * Reading everything matters: a client that lags 1 MiB behind is cut off.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "chatbench.h"
#include "wsclient.h"

struct seat {
    const struct opts *o;
    struct result *r;
    struct wsc_pool pool;
    uv_timer_t timer;
    uint64_t t_connected, t_end;
    unsigned open_now;     /* open at this moment */
    unsigned dropped;
    unsigned close_codes[5]; /* dropped by: 1008, 1001, other code, EOF, reset */
    uv_timer_t by;         /* --sigterm: the seating's bound */
    uint64_t t_term;       /* --sigterm: when it was sent, 0 before */
};

#define TERM_WAIT_S 10.0   /* --sigterm: how long the server gets to close us */

/* An open client is only read to drop the joins of others and to notice
 * a close. Waking for each join frame would cost a read() per frame, N^2/2
 * of them (11 us each measured against chat-threaded, which writes every
 * frame on its own): with a low-water mark the kernel wakes us once per
 * SEAT_LOWAT bytes instead. A FIN or RST still wakes us at once (tcp_poll
 * reports them whatever the mark), so dropped connections are seen, and
 * at most SEAT_LOWAT - 1 bytes per client wait in the kernel, not in the
 * server: its 1 MiB cut-off is not brought nearer. */
#define SEAT_LOWAT 8192

static void h_open(struct wsc *c)
{
    struct seat *h = c->pool->user;
    hist_record(&h->r->lat, (now_ns() - c->t_start) / 1000);
    h->open_now++;
    uv_os_fd_t fd;
    int lowat = SEAT_LOWAT;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
}

static void h_fail(struct wsc *c)
{
    struct seat *h = c->pool->user;
    result_fail(h->r, c->why);
}

static void h_frame(struct wsc *c, unsigned op, const uint8_t *p, size_t have, uint64_t len)
{
    (void)c, (void)op, (void)p, (void)have, (void)len; /* joins of others: dropped */
}

static void end_cb(uv_timer_t *t);

static void h_closed(struct wsc *c)
{
    struct seat *h = c->pool->user;
    h->open_now--;
    if (h->t_term) { /* the server closing its members at shutdown: expected */
        h->r->term_closed++;
        h->r->term_1001 += c->close_code == 1001;
        h->r->term_last_close_s = (double)(now_ns() - h->t_term) / 1e9;
        if (h->open_now == 0) /* all closed: end on the next turn, not inside a callback */
            uv_timer_start(&h->timer, end_cb, 0, 0);
        return;
    }
    h->dropped++;
    result_fail(h->r, "dropped");
    unsigned k = c->close_code == 1008 ? 0 : c->close_code == 1001 ? 1 : c->close_code ? 2
               : c->why[0] == 'r' ? 4 : 3;
    h->close_codes[k]++;
}

static void end_cb(uv_timer_t *t)
{
    struct seat *h = t->data;
    if (h->t_end)
        return;
    h->t_end = now_ns();
    wsc_pool_close_all(&h->pool);
    uv_close((uv_handle_t *)&h->timer, NULL);
    if (h->o->sigterm_pid)
        uv_close((uv_handle_t *)&h->by, NULL);
}

/* --sigterm: K members leave (we close them), and at once the server is
 * told to stop: a shutdown with the room full and some already leaving.
 * The rest wait for the server to close them, at most TERM_WAIT_S. */
static void send_sigterm(struct seat *h)
{
    if (h->t_term)
        return;
    uv_timer_stop(&h->by);
    /* --leave K: K of them, but never more than a tenth of those in (a
     * seating cut short by --by must not turn into a mass exit). */
    unsigned open = h->open_now, left = 0, leave = h->o->leave < open / 10 ? h->o->leave
                                                                        : open / 10;
    for (unsigned i = h->pool.n; i-- > 0;) {
        struct wsc *c = wsc_at(&h->pool, i);
        if (c->state != WSC_OPEN)
            continue;
        if (left < leave) {
            wsc_close(c);
            h->open_now--;
            left++;
            continue;
        }
        /* The server's close frame is 4 bytes: below the low-water mark
         * (SEAT_LOWAT) it would be seen only when the TCP close comes, 2 s
         * later for a peer that does not seem to answer. */
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    h->t_term = now_ns();
    h->r->has_term = true;
    h->r->term_mono_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    h->r->term_members = open;
    h->r->term_leaving = left;
    if (kill(h->o->sigterm_pid, SIGTERM) < 0)
        fprintf(stderr, "chatbench: SIGTERM to %d: %s\n", h->o->sigterm_pid, strerror(errno));
    fprintf(stderr, "chatbench: SIGTERM to %d with %u members in, %u of them leaving\n",
            h->o->sigterm_pid, open, left);
    uv_timer_start(&h->timer, end_cb, h->open_now ? (uint64_t)(TERM_WAIT_S * 1000) : 0, 0);
}

static void by_cb(uv_timer_t *t)
{
    send_sigterm(t->data);
}

static void h_connected(struct wsc_pool *p)
{
    struct seat *h = p->user;
    if (h->t_term)
        return; /* the bound came first: the shutdown is under way */
    h->t_connected = now_ns();
    h->r->seat_s = (double)(h->t_connected - p->t_first) / 1e9;
    if (h->o->sigterm_pid) {
        fprintf(stderr, "chatbench: %u of %u seated after %.3f s\n", h->open_now, p->n,
                h->r->seat_s);
        send_sigterm(h);
        return;
    }
    fprintf(stderr, "chatbench: %u of %u seated after %.3f s; staying %.1f s\n", h->open_now,
            p->n, h->r->seat_s, h->o->seconds);
    uv_timer_start(&h->timer, end_cb, (uint64_t)(h->o->seconds * 1000 + 0.5), 0);
}

int run_seat(const struct opts *o, struct result *r)
{
    uint64_t nofile = wsc_prepare_process();
    if (nofile < (uint64_t)o->conc + 64)
        fprintf(stderr, "chatbench: warning: descriptor limit %llu is short of %u connections\n",
                (unsigned long long)nofile, o->conc);
    char cookie[1024];
    if (chatbench_login(o, cookie, sizeof cookie) < 0)
        return -1;

    struct seat *h = calloc(1, sizeof *h);
    uv_loop_t loop;
    if (!h || uv_loop_init(&loop) < 0) {
        free(h);
        return -1;
    }
    h->o = o;
    h->r = r;
    r->expected = o->conc;
    static const struct wsc_ops ops = {h_open, h_fail, h_frame, h_closed, h_connected};
    if (wsc_pool_init(&h->pool, &loop, o, cookie, o->conc, sizeof(struct wsc), &ops, h) < 0) {
        fprintf(stderr, "chatbench: out of memory or cookie too long\n");
        uv_loop_close(&loop);
        free(h);
        return -1;
    }
    uv_timer_init(&loop, &h->timer);
    h->timer.data = h;
    if (o->sigterm_pid) {
        uv_timer_init(&loop, &h->by);
        h->by.data = h;
        if (o->by_s > 0)
            uv_timer_start(&h->by, by_cb, (uint64_t)(o->by_s * 1000), 0);
    }
    wsc_pool_start(&h->pool);
    uv_run(&loop, UV_RUN_DEFAULT); /* ends when end_cb has closed every handle */

    r->completed = h->pool.opened;
    r->seated = h->pool.opened;
    r->has_seated = true;
    r->elapsed_s = r->seat_s;
    fprintf(stderr,
            "chatbench: %u of %u seated, %u still open after the stay", h->pool.opened,
            o->conc, h->open_now);
    if (h->dropped)
        fprintf(stderr, " (dropped: %u by 1008, %u by 1001, %u by another code, %u by EOF, %u by reset)",
                h->close_codes[0], h->close_codes[1], h->close_codes[2], h->close_codes[3],
                h->close_codes[4]);
    fputc('\n', stderr);
    wsc_pool_free(&h->pool);
    int rc = uv_loop_close(&loop) == 0 && r->completed > 0 ? 0 : -1;
    free(h);
    return rc;
}
