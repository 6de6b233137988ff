/* What only chat-threaded has: a bounded pool of workers and a queue.
 * A keep-alive connection holds its worker between requests, which lets a
 * test fill the pool on purpose and watch what the next connection gets. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "jsonv.h"
#include "ws_client.h"

TestSuite(threaded, SUITE_CFG);

static int hello(struct tsock *c)
{
    cr_assert(tsock_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
    struct http_resp r;
    tsock_expect_response(c, false, &r);
    int status = r.status;
    resp_free(&r);
    return status;
}

/* "When every worker is busy and the queue is full, new connections get 503
 * and close — never a hang." */
Test(threaded, full_pool_and_queue_refuse_with_503_then_recover)
{
    struct server s;
    server_start(&s, ARGS("--threads", "1", "--queue", "1"));
    struct tsock a, b, c;
    tsock_open(&a, s.port);
    cr_assert_eq(hello(&a), 200); /* a now holds the only worker */
    tsock_open(&b, s.port);
    cr_assert(tsock_sends(&b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")); /* queued */
    tsock_open(&c, s.port);
    cr_assert(tsock_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
    struct http_resp r;
    tsock_expect_response(&c, false, &r);
    cr_assert_eq(r.status, 503, "pool and queue full: got %d", r.status);
    resp_free(&r);
    enum rd end = tsock_wait_eof(&c, CAP_MS, NULL);
    cr_assert(end == RD_EOF || end == RD_RESET, "the refused connection stays open: %s", rd_name(end));
    tsock_close(&c);
    /* a leaves: its worker takes b from the queue, and b is answered */
    tsock_close(&a);
    tsock_expect_response(&b, false, &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    tsock_close(&b);
    server_stop(&s);
}

/* /stats shows the pool: its size, the busy workers and the queue. */
Test(threaded, stats_reports_pool_busy_and_queue)
{
    struct server s;
    server_start(&s, ARGS("--threads", "2"));
    struct tsock a;
    tsock_open(&a, s.port);
    cr_assert_eq(hello(&a), 200); /* holds worker 1; /stats gets worker 2 */
    struct jv *st = stats_get(s.port);
    long long pool = -1, busy = -1, queued = -1, threads = -1;
    cr_assert(jv_int(st, "pool", &pool) && jv_int(st, "busy", &busy) &&
              jv_int(st, "queued", &queued) && jv_int(st, "threads", &threads));
    cr_assert_eq(pool, 2);
    cr_assert_eq(threads, 2, "live worker threads");
    cr_assert_eq(busy, 2, "a's worker and the one answering /stats");
    cr_assert_eq(queued, 0);
    jv_free(st);
    tsock_close(&a);
    server_stop(&s);
}

/* "With a pool of 64, the 65th chatter waits": with a pool of 2, a third
 * WebSocket is answered only once one of the first two has left — so its
 * join comes after that leave in the room's order. */
Test(threaded, the_chatter_beyond_the_pool_waits_for_a_worker)
{
    struct server s;
    server_start(&s, ARGS("--threads", "2"));
    char *cookie = login(s.port, "coco", "123456");
    struct ws *w1 = chat_join(s.port, cookie, "coco", NULL, NULL);
    struct ws *w2 = chat_join(s.port, cookie, "coco", NULL, NULL);
    expect_event_by(w1, "join", "coco");
    /* A third upgrade, sent before anyone leaves; chat_join would block on
     * its answer, so the request goes out raw and is read later. */
    int fd = tcp_connect(s.port, 0);
    char *req = xasprintf("GET /chat/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\nCookie: %s\r\n\r\n",
                          s.port, cookie);
    cr_assert(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    free(req);
    ws_free(w2); /* frees a worker */
    long long leave_seq = expect_event_by(w1, "leave", "coco");
    long long join_seq = expect_event_by(w1, "join", "coco");
    cr_assert_gt(join_seq, leave_seq, "the waiting chatter joined only after a worker was free");
    close(fd);
    ws_free(w1);
    free(cookie);
    server_stop(&s);
}

/* "--threads N, default 64": with no flag, /stats shows a pool of 64
 * workers, all started. */
Test(threaded, the_default_pool_is_64_workers)
{
    struct server s;
    server_start(&s, NULL);
    struct jv *st = stats_get(s.port);
    long long pool = -1, threads = -1;
    cr_assert(jv_int(st, "pool", &pool) && jv_int(st, "threads", &threads));
    cr_assert_eq(pool, 64);
    cr_assert_eq(threads, 64, "live worker threads");
    jv_free(st);
    server_stop(&s);
}

/* "--threads 0 = one new thread per connection, unbounded": more keep-alive
 * connections than the default pool has workers each hold a thread of
 * their own at once (a keep-alive connection keeps its worker between
 * requests), none waits in a queue, and each is answered again. */
Test(threaded, unpooled_gives_every_connection_a_thread_of_its_own)
{
    enum { CONNS = 64 + 8 };
    struct server s;
    server_start(&s, ARGS("--threads", "0"));
    struct tsock c[CONNS];
    for (int i = 0; i < CONNS; i++) {
        tsock_open(&c[i], s.port);
        cr_assert_eq(hello(&c[i]), 200, "connection %d", i);
    }
    struct jv *st = stats_get(s.port);
    long long threads = -1, busy = -1, queued = -1;
    cr_assert(jv_int(st, "threads", &threads) && jv_int(st, "busy", &busy) &&
              jv_int(st, "queued", &queued));
    /* Ours, and the one answering /stats. */
    cr_assert_eq(threads, CONNS + 1, "live worker threads");
    cr_assert_eq(busy, CONNS + 1);
    cr_assert_eq(queued, 0);
    jv_free(st);
    for (int i = 0; i < CONNS; i++) {
        cr_assert_eq(hello(&c[i]), 200, "connection %d, again", i);
        tsock_close(&c[i]);
    }
    server_stop(&s);
}
