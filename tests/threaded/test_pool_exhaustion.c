/* Issue 7, exhaustion of what only chat-threaded has: every worker busy and
 * the queue full, with many more clients knocking. They are refused (503 +
 * close) or wait in the queue; the server does not spin while full (see
 * tests/integration/test_exhaustion.c on how that is measured); the queued
 * ones are served when the workers free up. */
#include <poll.h>
#include <stdlib.h>

#include "harness.h"

TestSuite(pool_exhaustion, SUITE_CFG);

#define WINDOW_MS 2000

static const char hello[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";

Test(pool_exhaustion, full_pool_and_queue_refuse_without_spinning_then_recover)
{
    enum { THREADS = 2, QUEUE = 2, EXTRA = 30 };
    struct server s;
    server_start(&s, ARGS("--threads", "2", "--queue", "2"));
    struct tsock held[THREADS], queued[QUEUE], extra[EXTRA];
    struct http_resp r;
    for (int i = 0; i < THREADS; i++) {
        tsock_open(&held[i], s.port);
        cr_assert(tsock_sends(&held[i], hello));
        tsock_expect_response(&held[i], false, &r); /* it now holds a worker */
        cr_assert_eq(r.status, 200);
        resp_free(&r);
    }
    for (int i = 0; i < QUEUE; i++) {
        tsock_open(&queued[i], s.port);
        cr_assert(tsock_sends(&queued[i], hello));
    }
    /* Every one beyond the queue is refused; waiting for all of them is
     * also what lets the server settle before the window. */
    for (int i = 0; i < EXTRA; i++) {
        tsock_open(&extra[i], s.port);
        cr_assert(tsock_sends(&extra[i], hello));
    }
    for (int i = 0; i < EXTRA; i++) {
        tsock_expect_response(&extra[i], false, &r);
        cr_assert_eq(r.status, 503, "client %d beyond a full queue got %d", i, r.status);
        resp_free(&r);
    }
    int64_t busy0 = server_runnable_ms(&s);
    struct pollfd p[QUEUE];
    for (int i = 0; i < QUEUE; i++)
        p[i] = (struct pollfd){queued[i].fd, POLLIN, 0};
    int64_t end = now_ms() + WINDOW_MS;
    while (remaining_ms(end) > 0)
        cr_assert_eq(poll(p, QUEUE, remaining_ms(end)), 0, "a queued client was answered while "
                                                          "every worker was busy");
    int64_t busy = server_runnable_ms(&s) - busy0;
    cr_log_info("pool %d, queue %d, %d refused: runnable %lld ms of %d", THREADS, QUEUE, EXTRA,
                (long long)busy, WINDOW_MS);
    cr_assert(busy < WINDOW_MS / 2, "the server spun with its pool and queue full: runnable "
              "%lld ms of %d", (long long)busy, WINDOW_MS);
    for (int i = 0; i < EXTRA; i++)
        tsock_close(&extra[i]);
    for (int i = 0; i < THREADS; i++)
        tsock_close(&held[i]);
    for (int i = 0; i < QUEUE; i++) {
        tsock_expect_response(&queued[i], false, &r);
        cr_assert_eq(r.status, 200, "queued client %d got %d once workers were free", i, r.status);
        resp_free(&r);
        tsock_close(&queued[i]);
    }
    server_stop(&s);
}
