/* libcurl's multi interface on the ring: /search transfers in flight on
 * one thread, none of them blocking. The shape of chat-async's curl_uv.c
 * (after curl's docs/examples/multi-uv.c, with PITFALLS B1's fixes), with
 * the ring in libuv's place:
 *
 * - curl names the sockets to watch (socket callback) and when to wake it
 *   (timer callback). Both only *record* the wish: nothing is submitted
 *   from inside a curl callback, and nothing calls curl from one either.
 *   curl_ring_sync(), once a turn, turns the wishes into requests: a
 *   one-shot IORING_OP_POLL_ADD per socket (re-armed after each event, as
 *   long as curl still wants it) and one timeout.
 * - A poll request cannot change its mask in place here: when curl wants
 *   other events, the armed poll is removed by user_data and re-armed with
 *   the new mask once its -ECANCELED completion has come. The same for a
 *   socket curl is done with: its context is freed only when no request on
 *   the ring still names it (curl may already have closed the descriptor,
 *   and reused its number for a new socket: hence removal by user_data,
 *   never by descriptor).
 * - POLLERR/POLLHUP reach curl as CURL_CSELECT_ERR / CURL_CSELECT_IN, so a
 *   failed connect ends the transfer instead of hanging it.
 * - Finished transfers are collected after *every* socket_action, timeouts
 *   included: a transfer that ends on the timer is the contract's 504.
 */
#include <poll.h>
#include <stdlib.h>

#include "fetch_multi.h"
#include "uring.h"

struct sock_ctx {
    struct op op;
    curl_socket_t fd;
    short want;        /* POLLIN/POLLOUT, as curl last asked */
    short armed_mask;
    bool armed, cancelling, removed;
    struct sock_ctx *next;
};

struct curl_ring {
    CURLM *multi;
    void (*done)(struct action *a);
    struct sock_ctx *socks;
    struct op timer_op;
    struct __kernel_timespec ts, update_ts;
    long want_ms;      /* curl's last wish: -1 none */
    bool timer_changed, timer_armed;
};

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct curl_ring *cr = userp;
    struct sock_ctx *ctx = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (ctx) {
            ctx->removed = true; /* freed by curl_ring_sync, see above */
            curl_multi_assign(cr->multi, s, NULL);
        }
        return 0;
    }
    if (!ctx) {
        ctx = calloc(1, sizeof *ctx);
        if (!ctx)
            return -1;
        ctx->op.kind = OP_CURL_POLL;
        ctx->fd = s;
        ctx->next = cr->socks;
        cr->socks = ctx;
        curl_multi_assign(cr->multi, s, ctx);
    }
    ctx->want = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
    return 0;
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    struct curl_ring *cr = userp;
    (void)multi;
    cr->want_ms = timeout_ms;
    cr->timer_changed = true;
    return 0;
}

struct curl_ring *curl_ring_new(void (*done)(struct action *a))
{
    struct curl_ring *cr = calloc(1, sizeof *cr);
    if (!cr)
        return NULL;
    cr->multi = fetch_multi_new(on_socket, on_timer_change, cr);
    if (!cr->multi) {
        free(cr);
        return NULL;
    }
    cr->done = done;
    cr->want_ms = -1;
    cr->timer_op.kind = OP_CURL_TIMER;
    return cr;
}

int curl_ring_start(struct curl_ring *cr, struct action *a)
{
    /* The timer callback kicks the transfer off on the next turn. */
    return fetch_multi_start(cr->multi, a);
}

void curl_ring_cancel(struct curl_ring *cr, struct action *a) { fetch_multi_cancel(cr->multi, a); }

void curl_ring_complete(struct curl_ring *cr, struct op *op, int res)
{
    int running;
    if (op->kind == OP_CURL_TIMER) {
        cr->timer_armed = false;
        if (res == -ECANCELED)
            return;
        curl_multi_socket_action(cr->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        fetch_multi_collect(cr->multi, cr->done);
        return;
    }
    struct sock_ctx *ctx = container_of(op, struct sock_ctx, op);
    ctx->armed = false;
    ctx->cancelling = false;
    if (res <= 0 || ctx->removed)
        return; /* cancelled (a new mask, or curl is done with it) */
    int flags = 0;
    if (res & POLLIN)
        flags |= CURL_CSELECT_IN;
    if (res & POLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (res & POLLERR)
        flags |= CURL_CSELECT_ERR;
    if ((res & POLLHUP) && !(flags & CURL_CSELECT_IN))
        flags |= CURL_CSELECT_IN; /* curl reads the EOF and ends the transfer */
    curl_multi_socket_action(cr->multi, ctx->fd, flags, &running);
    fetch_multi_collect(cr->multi, cr->done);
}

static void ms_to_ts(long ms, struct __kernel_timespec *ts)
{
    ts->tv_sec = ms / 1000;
    ts->tv_nsec = (ms % 1000) * 1000000L;
}

void curl_ring_sync(struct curl_ring *cr)
{
    struct io_uring_sqe *sqe;
    for (struct sock_ctx **p = &cr->socks; *p;) {
        struct sock_ctx *ctx = *p;
        bool wanted = !ctx->removed && ctx->want;
        if (ctx->armed && !ctx->cancelling && (!wanted || ctx->armed_mask != ctx->want) &&
            (sqe = ring_sqe())) {
            io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)&ctx->op);
            io_uring_sqe_set_data(sqe, NULL);
            ctx->cancelling = true;
        } else if (!ctx->armed && wanted && (sqe = ring_sqe())) {
            io_uring_prep_poll_add(sqe, ctx->fd, (unsigned)ctx->want);
            io_uring_sqe_set_data(sqe, &ctx->op);
            ctx->armed = true;
            ctx->armed_mask = ctx->want;
        } else if (!ctx->armed && ctx->removed) {
            *p = ctx->next;
            free(ctx);
            continue;
        }
        p = &ctx->next;
    }
    if (!cr->timer_changed)
        return;
    cr->timer_changed = false;
    if (cr->want_ms < 0) {
        if (cr->timer_armed && (sqe = ring_sqe())) {
            io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&cr->timer_op, 0);
            io_uring_sqe_set_data(sqe, NULL);
        }
        return;
    }
    if (!(sqe = ring_sqe()))
        return;
    if (cr->timer_armed) {
        /* -ENOENT if it fired meanwhile: then curl is called once more
         * than needed, which it takes in its stride. */
        ms_to_ts(cr->want_ms, &cr->update_ts);
        io_uring_prep_timeout_update(sqe, &cr->update_ts, (__u64)(uintptr_t)&cr->timer_op, 0);
        io_uring_sqe_set_data(sqe, NULL);
    } else {
        /* 0 ms is fine here: this is not inside a curl callback, and the
         * timeout completes on the next turn, not within this one. */
        ms_to_ts(cr->want_ms, &cr->ts);
        io_uring_prep_timeout(sqe, &cr->ts, 0, 0);
        io_uring_sqe_set_data(sqe, &cr->timer_op);
        cr->timer_armed = true;
    }
}

void curl_ring_free(struct curl_ring *cr)
{
    /* Cached connections are shut down here, through on_socket(REMOVE).
     * The ring is about to go too, and with it every request naming a
     * context: they can all be freed now. */
    curl_multi_cleanup(cr->multi);
    while (cr->socks) {
        struct sock_ctx *ctx = cr->socks;
        cr->socks = ctx->next;
        free(ctx);
    }
    free(cr);
}
