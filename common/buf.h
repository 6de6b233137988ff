/* Byte buffers the core hands around.
 *
 * struct buf  — a growable byte string with a hard cap, owned by one object.
 * struct rbuf — immutable bytes with a reference count: one chat event is
 *               encoded once and the same rbuf sits in every recipient's
 *               queue; the last one to finish writing it frees it.
 * struct outq — what waits to be written to one socket: a FIFO of rbufs.
 *               The model drains it with writev; the core and the room
 *               append to it. Only its owner touches it (one thread).
 */
#ifndef C10K_BUF_H
#define C10K_BUF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Append n bytes, growing geometrically but never past `limit` bytes in all.
 * Returns 0, or -1 when the limit would be exceeded or memory runs out (the
 * buffer is unchanged then). data is always NUL-terminated after a success. */
int buf_append(struct buf *b, const void *p, size_t n, size_t limit);
int buf_appendf(struct buf *b, size_t limit, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void buf_consume(struct buf *b, size_t n); /* drop n bytes from the front */
void buf_free(struct buf *b);              /* back to {0}; safe to repeat */

struct rbuf {
    atomic_uint refs; /* atomic: in chat-threaded the room hands one event
                         to workers that free it on their own threads */
    size_t len;
    char data[];
};

struct rbuf *rbuf_new(size_t len);                  /* refs = 1; NULL on ENOMEM */
struct rbuf *rbuf_from(const void *p, size_t len);  /* rbuf_new + memcpy */
struct rbuf *rbuf_take(struct buf *b);              /* steals b's bytes; b is reset */
static inline struct rbuf *rbuf_ref(struct rbuf *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}
void rbuf_unref(struct rbuf *r); /* NULL is fine */

struct outq_node {
    struct outq_node *next;
    struct rbuf *buf;
};

struct outq {
    struct outq_node *head, *tail;
    size_t head_off; /* bytes of head already written */
    size_t bytes;    /* unsent bytes in all: the slow-reader limit counts this */
    unsigned pinned; /* leading nodes handed to the kernel/libuv right now */
};

/* Queue one reference to r (the caller's reference moves into the queue).
 * Returns 0, or -1 on ENOMEM (r is released). */
int outq_push(struct outq *q, struct rbuf *r);
/* Fill up to max iovecs from the front; returns how many. */
int outq_iov(const struct outq *q, struct iovec *iov, int max);
/* n bytes of the front were written: release what is done. */
void outq_consume(struct outq *q, size_t n);
/* Drop everything not yet started. A node partly written or pinned stays,
 * so the peer never sees half a frame followed by another one. */
void outq_drop_unsent(struct outq *q);
void outq_clear(struct outq *q);
/* Move every node of `from` behind q's, leaving `from` empty: the nodes
 * change hands, the bytes are not copied. Nothing of `from` may have been
 * written or pinned (a queue that was only pushed to). */
void outq_splice(struct outq *q, struct outq *from);
static inline bool outq_empty(const struct outq *q) { return q->head == NULL; }

#endif
