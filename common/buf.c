#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int buf_reserve(struct buf *b, size_t need, size_t limit)
{
    if (need > limit)
        return -1;
    if (need + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1)
        cap *= 2;
    if (cap > limit + 1)
        cap = limit + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n, size_t limit)
{
    if (buf_reserve(b, b->len + n, limit) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_appendf(struct buf *b, size_t limit, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, b->len + (size_t)n, limit) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}

struct rbuf *rbuf_new(size_t len)
{
    struct rbuf *r = malloc(sizeof *r + len);
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    r->len = len;
    return r;
}

struct rbuf *rbuf_from(const void *p, size_t len)
{
    struct rbuf *r = rbuf_new(len);
    if (r && len)
        memcpy(r->data, p, len);
    return r;
}

struct rbuf *rbuf_take(struct buf *b)
{
    struct rbuf *r = rbuf_from(b->data, b->len);
    buf_free(b);
    return r;
}

void rbuf_unref(struct rbuf *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        free(r);
}

int outq_push(struct outq *q, struct rbuf *r)
{
    struct outq_node *n = malloc(sizeof *n);
    if (!n) {
        rbuf_unref(r);
        return -1;
    }
    n->next = NULL;
    n->buf = r;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->bytes += r->len;
    return 0;
}

int outq_iov(const struct outq *q, struct iovec *iov, int max)
{
    int i = 0;
    size_t off = q->head_off;
    for (const struct outq_node *n = q->head; n && i < max; n = n->next) {
        iov[i].iov_base = n->buf->data + off;
        iov[i].iov_len = n->buf->len - off;
        off = 0;
        i++;
    }
    return i;
}

static void outq_pop(struct outq *q)
{
    struct outq_node *n = q->head;
    q->head = n->next;
    if (!q->head)
        q->tail = NULL;
    q->bytes -= n->buf->len - q->head_off;
    q->head_off = 0;
    if (q->pinned)
        q->pinned--;
    rbuf_unref(n->buf);
    free(n);
}

void outq_consume(struct outq *q, size_t n)
{
    while (n && q->head) {
        size_t left = q->head->buf->len - q->head_off;
        if (n < left) {
            q->head_off += n;
            q->bytes -= n;
            return;
        }
        n -= left;
        outq_pop(q);
    }
}

void outq_drop_unsent(struct outq *q)
{
    unsigned keep = q->pinned;
    if (keep == 0 && q->head && q->head_off > 0)
        keep = 1;
    struct outq_node *last = NULL, *n = q->head;
    for (unsigned i = 0; i < keep && n; i++) {
        last = n;
        n = n->next;
    }
    while (n) {
        struct outq_node *next = n->next;
        q->bytes -= n->buf->len;
        rbuf_unref(n->buf);
        free(n);
        n = next;
    }
    if (last) {
        last->next = NULL;
        q->tail = last;
    } else {
        q->head = q->tail = NULL;
        q->head_off = 0;
    }
}

void outq_clear(struct outq *q)
{
    while (q->head)
        outq_pop(q);
    *q = (struct outq){0};
}

void outq_splice(struct outq *q, struct outq *from)
{
    if (!from->head)
        return;
    if (q->tail)
        q->tail->next = from->head;
    else
        q->head = from->head;
    q->tail = from->tail;
    q->bytes += from->bytes;
    *from = (struct outq){0};
}
