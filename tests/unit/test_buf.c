#include <criterion/criterion.h>
#include <string.h>

#include "buf.h"

static struct rbuf *mk(const char *s) { return rbuf_from(s, strlen(s)); }

Test(outq, iov_and_partial_consume)
{
    struct outq q = {0};
    outq_push(&q, mk("hello "));
    outq_push(&q, mk("world"));
    cr_assert_eq(q.bytes, 11);
    outq_consume(&q, 3);
    struct iovec iov[4];
    int n = outq_iov(&q, iov, 4);
    cr_assert_eq(n, 2);
    cr_assert_eq(iov[0].iov_len, 3);
    cr_assert(memcmp(iov[0].iov_base, "lo ", 3) == 0);
    cr_assert_eq(q.bytes, 8);
    outq_consume(&q, 8);
    cr_assert(outq_empty(&q));
    cr_assert_eq(q.bytes, 0);
}

Test(outq, drop_unsent_keeps_partly_written_head)
{
    struct outq q = {0};
    outq_push(&q, mk("frame-one"));
    outq_push(&q, mk("frame-two"));
    outq_push(&q, mk("frame-three"));
    outq_consume(&q, 2);
    outq_drop_unsent(&q);
    cr_assert_eq(q.bytes, 7);
    cr_assert_eq(q.head, q.tail);
    outq_push(&q, mk("close"));
    cr_assert_eq(q.bytes, 12);
    outq_clear(&q);
}

Test(outq, drop_unsent_respects_pinned_nodes)
{
    struct outq q = {0};
    outq_push(&q, mk("aa"));
    outq_push(&q, mk("bb"));
    outq_push(&q, mk("cc"));
    q.pinned = 2; /* both handed to the kernel in one writev */
    outq_drop_unsent(&q);
    cr_assert_eq(q.bytes, 4);
    outq_consume(&q, 4);
    cr_assert(outq_empty(&q));
    cr_assert_eq(q.pinned, 0);
}

Test(rbuf, shared_bytes_freed_by_last_reference)
{
    struct outq a = {0}, b = {0};
    struct rbuf *ev = mk("event");
    outq_push(&a, rbuf_ref(ev));
    outq_push(&b, ev);
    cr_assert_eq(atomic_load(&ev->refs), 2);
    outq_clear(&a);
    cr_assert_eq(atomic_load(&ev->refs), 1);
    outq_clear(&b);
}

Test(buf, append_respects_limit)
{
    struct buf b = {0};
    cr_assert_eq(buf_append(&b, "12345", 5, 8), 0);
    cr_assert_eq(buf_append(&b, "6789", 4, 8), -1);
    cr_assert_eq(b.len, 5);
    cr_assert_str_eq(b.data, "12345");
    buf_consume(&b, 2);
    cr_assert_str_eq(b.data, "345");
    buf_free(&b);
}

Test(outq, splice_moves_nodes_behind_a_partly_written_head)
{
    struct outq q = {0}, in = {0};
    outq_splice(&q, &in); /* nothing to move */
    cr_assert(outq_empty(&q));
    outq_push(&in, mk("one"));
    outq_splice(&q, &in);
    cr_assert(outq_empty(&in));
    cr_assert_eq(in.bytes, 0);
    cr_assert_eq(q.bytes, 3);
    outq_consume(&q, 1);
    outq_push(&in, mk("two"));
    outq_push(&in, mk("three"));
    outq_splice(&q, &in);
    cr_assert(outq_empty(&in));
    cr_assert_eq(q.bytes, 2 + 3 + 5);
    struct iovec iov[4];
    cr_assert_eq(outq_iov(&q, iov, 4), 3);
    cr_assert(memcmp(iov[0].iov_base, "ne", 2) == 0);
    cr_assert(memcmp(iov[2].iov_base, "three", 5) == 0);
    outq_push(&q, mk("four")); /* the tail moved too */
    cr_assert_eq(q.bytes, 14);
    outq_clear(&q);
}
