/* libcurl multi on libuv, after curl's docs/examples/multi-uv.c, with the
 * fixes that example lacks (PITFALLS B1):
 *
 * - curl tells us which sockets to watch (socket callback) and when to wake
 *   it up (timer callback); we tell curl what happened with
 *   curl_multi_socket_action() and then collect finished transfers.
 * - A poll error reaches curl as CURL_CSELECT_ERR (libuv reports EPOLLERR as
 *   status < 0 with no events; ignoring it leaves a transfer hanging).
 * - Finished transfers are collected after *every* socket_action, timeouts
 *   included: a transfer that ends on the timer (the 504) leaves no running
 *   handles and its DONE message would otherwise never be read.
 * - A 0 ms timeout becomes 1 ms: on libuv 1.44 a 0 ms timer started from a
 *   timer callback runs again in the same pass, a busy loop.
 * - No curl call from inside a curl callback: cancellation happens from the
 *   loop, never from the write callback.
 */
#include "curl_uv.h"

#include <stdlib.h>

#include "fetch_multi.h"

struct curl_uv {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    void (*done)(struct action *a);
};

/* One per socket curl asks us to watch; libuv allows one poll per socket. */
struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct curl_uv *cu;
};

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *ctx = h->data;
    struct curl_uv *cu = ctx->cu;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(cu->multi, ctx->fd, flags, &running);
    fetch_multi_collect(cu->multi, cu->done);
}

static void on_timer(uv_timer_t *t)
{
    struct curl_uv *cu = t->data;
    int running;
    curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    fetch_multi_collect(cu->multi, cu->done);
}

static void free_ctx(uv_handle_t *h) { free(h->data); }

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct curl_uv *cu = userp;
    struct sock_ctx *ctx = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (ctx) {
            uv_poll_stop(&ctx->poll);
            uv_close((uv_handle_t *)&ctx->poll, free_ctx);
            curl_multi_assign(cu->multi, s, NULL);
        }
        return 0;
    }
    if (!ctx) {
        ctx = malloc(sizeof *ctx);
        if (!ctx)
            return -1;
        if (uv_poll_init_socket(cu->loop, &ctx->poll, s) < 0) {
            free(ctx);
            return -1;
        }
        ctx->fd = s;
        ctx->cu = cu;
        ctx->poll.data = ctx;
        curl_multi_assign(cu->multi, s, ctx);
    }
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    return uv_poll_start(&ctx->poll, events, on_poll) < 0 ? -1 : 0;
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    struct curl_uv *cu = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&cu->timer);
    else
        uv_timer_start(&cu->timer, on_timer, timeout_ms ? (uint64_t)timeout_ms : 1, 0);
    return 0;
}

struct curl_uv *curl_uv_new(uv_loop_t *loop, void (*done)(struct action *a))
{
    struct curl_uv *cu = calloc(1, sizeof *cu);
    if (!cu)
        return NULL;
    cu->multi = fetch_multi_new(on_socket, on_timer_change, cu);
    if (!cu->multi) {
        free(cu);
        return NULL;
    }
    cu->loop = loop;
    cu->done = done;
    uv_timer_init(loop, &cu->timer);
    cu->timer.data = cu;
    return cu;
}

int curl_uv_start(struct curl_uv *cu, struct action *a)
{
    /* The timer callback kicks the transfer off on the next loop turn. */
    return fetch_multi_start(cu->multi, a);
}

void curl_uv_cancel(struct curl_uv *cu, struct action *a) { fetch_multi_cancel(cu->multi, a); }

static void free_cu(uv_handle_t *h) { free(h->data); }

void curl_uv_free(struct curl_uv *cu)
{
    /* Cached connections are shut down here, through on_socket(REMOVE). */
    curl_multi_cleanup(cu->multi);
    uv_close((uv_handle_t *)&cu->timer, free_cu);
}
