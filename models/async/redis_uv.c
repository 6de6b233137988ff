/* hiredis on the libuv loop: the project's own adapter.
 *
 * hiredis 0.14's adapters/libuv.h returns early on a poll error
 * (`if (status != 0) return;`), so a broken Redis connection can hang
 * silently, and it leaks when uv_poll_init fails (PITFALLS B6). Here an
 * error is handed to hiredis as readiness of whatever it waits for, so it
 * meets the error itself and disconnects (as hiredis 1.x does). Timeouts are
 * the backplane's own, checked by backplane_tick from a uv_timer (main.c):
 * 0.14 has no timer hook.
 */
#include <stdlib.h>

#include "backplane.h"
#include "redis_uv.h"

struct redis_uv {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    int events;
};

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct redis_uv *p = h->data;
    int ev = status < 0 ? p->events : events;
    if (p->ac && (ev & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    /* The read may have freed the context (cleanup cleared p->ac). */
    if (p->ac && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void update(struct redis_uv *p, int events)
{
    if (events == p->events)
        return;
    p->events = events;
    if (events)
        uv_poll_start(&p->poll, events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *d) { update(d, ((struct redis_uv *)d)->events | UV_READABLE); }
static void del_read(void *d) { update(d, ((struct redis_uv *)d)->events & ~UV_READABLE); }
static void add_write(void *d) { update(d, ((struct redis_uv *)d)->events | UV_WRITABLE); }
static void del_write(void *d) { update(d, ((struct redis_uv *)d)->events & ~UV_WRITABLE); }

static void on_closed(uv_handle_t *h) { free(h->data); }

/* hiredis frees the context (before closing its socket): the handle goes
 * through uv_close, and its memory with it in the close callback. */
static void cleanup(void *d)
{
    struct redis_uv *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_closed);
}

int redis_uv_attach(void *loop, redisAsyncContext *ac)
{
    if (ac->ev.data)
        return -1;
    struct redis_uv *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    if (uv_poll_init_socket(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->poll.data = p;
    p->ac = ac;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    return 0;
}
