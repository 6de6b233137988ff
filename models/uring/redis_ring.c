/* hiredis on the ring: the backplane's Redis connections (common/
 * backplane_redis.c: one for publishing, one reading the stream) driven by
 * IORING_OP_POLL_ADD, the way curl's sockets are (curl_ring.c). hiredis
 * still does its own non-blocking read() and write(): the ring only says
 * when a socket is ready, so Redis's bytes go through the same hiredis
 * reader and the same validation (common/redis_entry.c) as in every other
 * model, and nothing here parses RESP.
 *
 * - hiredis asks for five hooks (add/del read, add/del write, cleanup).
 *   They only record the wish; redis_ring_sync(), once a turn, arms a
 *   one-shot poll per direction that is wanted and not armed. One request
 *   per direction, never one with a combined mask, so a wish to write never
 *   has to cancel and re-arm the read that is always waiting.
 * - A poll for a direction no longer wanted (hiredis drained its output
 *   and dropped the write) is left to complete and ignored: a writable
 *   socket completes it at once.
 * - An error or hang-up (POLLERR/POLLHUP in the result, or a failed poll)
 *   is handed to hiredis as readiness of that direction, so it meets the
 *   error in its own read or write and disconnects, instead of waiting
 *   forever (PITFALLS B6; redis_uv.c and redis_epoll.c do the same).
 * - hiredis calls cleanup while it frees the context, then closes the
 *   descriptor. A poll still armed holds the socket open in the kernel and
 *   names our struct: it is removed by user_data (the descriptor's number
 *   may already be reused by the next connection), and the struct is freed
 *   only when no request names it any more.
 *
 * Timeouts are the backplane's own, checked by backplane_tick from a
 * server timer (main.c): hiredis 0.14 has no timer hook.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "uring.h"

struct redis_ring_ctx {
    struct op read_op, write_op;
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    int fd;
    bool want_read, want_write;       /* hiredis's wishes */
    bool read_armed, write_armed;     /* a poll on the ring names us */
    bool read_removing, write_removing;
    struct redis_ring_ctx *next;
};

struct redis_ring {
    struct redis_ring_ctx *ctxs;
};

struct redis_ring *redis_ring_new(void) { return calloc(1, sizeof(struct redis_ring)); }

static void add_read(void *p) { ((struct redis_ring_ctx *)p)->want_read = true; }
static void del_read(void *p) { ((struct redis_ring_ctx *)p)->want_read = false; }
static void add_write(void *p) { ((struct redis_ring_ctx *)p)->want_write = true; }
static void del_write(void *p) { ((struct redis_ring_ctx *)p)->want_write = false; }

/* Called by hiredis while it frees the context, before it closes the
 * socket: from here on nothing may touch ac. The struct waits in the list
 * for redis_ring_sync to remove its polls and free it. */
static void cleanup(void *p)
{
    struct redis_ring_ctx *x = p;
    x->ac = NULL;
    x->want_read = x->want_write = false;
}

int redis_ring_attach(void *loop, redisAsyncContext *ac)
{
    struct redis_ring *rr = loop;
    if (ac->ev.data)
        return -1;
    struct redis_ring_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    x->read_op.kind = OP_REDIS_READ;
    x->write_op.kind = OP_REDIS_WRITE;
    x->ac = ac;
    x->fd = ac->c.fd;
    x->next = rr->ctxs;
    rr->ctxs = x;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = x;
    return 0;
}

void redis_ring_complete(struct redis_ring *rr, struct op *op, int res)
{
    (void)rr;
    bool write = op->kind == OP_REDIS_WRITE;
    struct redis_ring_ctx *x = write ? container_of(op, struct redis_ring_ctx, write_op)
                                     : container_of(op, struct redis_ring_ctx, read_op);
    if (write) {
        x->write_armed = false;
        x->write_removing = false;
    } else {
        x->read_armed = false;
        x->read_removing = false;
    }
    /* -ECANCELED: our own removal, or the ring going away. Anything else,
     * events or an error, is readiness: see the top of the file. */
    if (!x->ac || res == -ECANCELED)
        return;
    if (write && x->want_write)
        redisAsyncHandleWrite(x->ac); /* may free the context: cleanup above */
    else if (!write && x->want_read)
        redisAsyncHandleRead(x->ac);
}

static void arm(struct redis_ring_ctx *x, struct op *op, unsigned mask, bool *armed)
{
    struct io_uring_sqe *sqe = ring_sqe();
    if (!sqe)
        return; /* tried again next turn: the tick timer makes sure there is one */
    io_uring_prep_poll_add(sqe, x->fd, mask);
    io_uring_sqe_set_data(sqe, op);
    *armed = true;
}

static void remove_poll(struct op *op, bool *removing)
{
    struct io_uring_sqe *sqe = ring_sqe();
    if (!sqe)
        return;
    io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)op);
    io_uring_sqe_set_data(sqe, NULL);
    *removing = true;
}

void redis_ring_sync(struct redis_ring *rr)
{
    for (struct redis_ring_ctx **p = &rr->ctxs; *p;) {
        struct redis_ring_ctx *x = *p;
        if (x->ac) {
            if (x->want_read && !x->read_armed)
                arm(x, &x->read_op, POLLIN, &x->read_armed);
            if (x->want_write && !x->write_armed)
                arm(x, &x->write_op, POLLOUT, &x->write_armed);
        } else if (!x->read_armed && !x->write_armed) {
            *p = x->next;
            free(x);
            continue;
        } else {
            if (x->read_armed && !x->read_removing)
                remove_poll(&x->read_op, &x->read_removing);
            if (x->write_armed && !x->write_removing)
                remove_poll(&x->write_op, &x->write_removing);
        }
        p = &x->next;
    }
}

void redis_ring_free(struct redis_ring *rr)
{
    if (!rr)
        return;
    /* After backplane_free (every context cleaned up) and after the ring
     * is gone, with every request that could name a struct here. */
    while (rr->ctxs) {
        struct redis_ring_ctx *x = rr->ctxs;
        rr->ctxs = x->next;
        free(x);
    }
    free(rr);
}
