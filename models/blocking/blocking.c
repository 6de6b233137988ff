#include "blocking.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "app.h"
#include "gil.h"
#include "net.h"

atomic_bool blocking_stopping, blocking_hard_stop;
atomic_ullong blocking_deadline_ms;
sigset_t blocking_wake_mask;

static void on_wake(int sig) { (void)sig; }

/* ppoll's timeout for the time from now until `deadline` (app_now_ms()
 * clock); a deadline already passed gives zero. */
static struct timespec until(uint64_t deadline)
{
    uint64_t now = app_now_ms(), left = deadline > now ? deadline - now : 0;
    return (struct timespec){(time_t)(left / 1000), (long)(left % 1000) * 1000000};
}

void blocking_init(int wake_signal)
{
    struct sigaction sa = {.sa_handler = on_wake}; /* no SA_RESTART: interrupt */
    sigemptyset(&sa.sa_mask);
    sigaction(wake_signal, &sa, NULL);
    pthread_sigmask(SIG_BLOCK, NULL, &blocking_wake_mask);
    sigdelset(&blocking_wake_mask, wake_signal);
}

void blocking_read(int fd, struct conn *c)
{
    char buf[64 * 1024];
    gil_release();
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    int err = errno;
    gil_acquire();
    if (n > 0)
        conn_feed(c, buf, (size_t)n);
    else if (n == 0)
        conn_eof(c);
    else if (err != EAGAIN && err != EINTR)
        conn_abort(c);
}

void blocking_flush(int fd, struct conn *c)
{
    while (!outq_empty(&c->out) && c->close != CLOSE_NOW) {
        struct iovec iov[64];
        int n = outq_iov(&c->out, iov, 64);
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        gil_release();
        ssize_t w = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        int err = errno;
        gil_acquire();
        if (w > 0)
            conn_sent(c, (size_t)w); /* may answer the next pipelined request */
        else if (w < 0 && err == EINTR)
            continue;
        else if (w < 0 && err == EAGAIN)
            return; /* the socket is full: wait for POLLOUT */
        else
            conn_abort(c);
    }
}

/* A sleep that a shutdown can cut short: ppoll with no descriptors unblocks
 * the wake-up signal atomically, which nanosleep cannot. Returns false when
 * the sleep cannot end before the server must be gone. */
static bool sleep_ms(unsigned ms)
{
    uint64_t end = app_now_ms() + ms;
    bool done = true;
    gil_release();
    for (uint64_t now; (now = app_now_ms()) < end;) {
        uint64_t gone_by = atomic_load(&blocking_deadline_ms);
        if (atomic_load(&blocking_hard_stop) ||
            (atomic_load(&blocking_stopping) && gone_by && end > gone_by)) {
            done = false;
            break;
        }
        struct timespec ts = until(end);
        ppoll(NULL, 0, &ts, &blocking_wake_mask);
    }
    gil_acquire();
    return done;
}

/* curl calls this during a transfer; non-zero aborts it. */
static int fetch_progress(void *p, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)p, (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&blocking_hard_stop) ? 1 : 0;
}

void blocking_run_action(struct conn *c, struct action *a)
{
    a->started = true;
    switch (a->kind) {
    case ACTION_SLEEP:
        if (!sleep_ms(a->sleep.ms)) {
            conn_abort(c); /* cannot finish in time: dropped */
            return;
        }
        break;
    case ACTION_FETCH: {
        CURL *easy = action_fetch_easy(a);
        CURLcode rc = CURLE_OUT_OF_MEMORY;
        if (easy) {
            curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, fetch_progress);
            gil_release();
            rc = curl_easy_perform(easy); /* blocks this thread only */
            gil_acquire();
        }
        action_fetch_done(a, rc);
        break;
    }
    case ACTION_CPU:
        action_run(a); /* holds the GIL; gil_tick offers it every few rounds */
        break;
    case ACTION_PASSWORD:
        gil_release(); /* hashlib's PBKDF2 releases the GIL too */
        action_run(a);
        gil_acquire();
        break;
    }
    conn_resume(c);
}

void blocking_serve(int fd, struct conn *c, const struct blocking_hooks *h, void *ctx)
{
    bool shutdown_seen = false;
    for (;;) {
        if (h->take)
            h->take(ctx, c);
        if (!shutdown_seen && atomic_load(&blocking_stopping)) {
            shutdown_seen = true;
            if (h->shutdown)
                h->shutdown(ctx, c);
            conn_shutdown(c);
        }
        if (atomic_load(&blocking_hard_stop))
            conn_abort(c);
        if (h->before_flush)
            h->before_flush(ctx, c);
        size_t queued = c->out.bytes;
        bool may_write = !h->may_write || h->may_write(ctx, c);
        if (may_write)
            blocking_flush(fd, c); /* before any blocking action: earlier answers go out first */
        if (h->after_flush)
            h->after_flush(ctx, c, queued);
        if (c->close == CLOSE_NOW)
            return;
        struct action *a = conn_action_to_start(c);
        if (a) {
            blocking_run_action(c, a);
            continue;
        }
        if (c->close == CLOSE_FLUSHED && outq_empty(&c->out))
            return;

        bool want_read = conn_want_read(c) && (!h->may_read || h->may_read(ctx));
        struct pollfd p[2] = {
            {fd, (short)((want_read ? POLLIN : 0) | (may_write && !outq_empty(&c->out) ? POLLOUT : 0)),
             0},
        };
        nfds_t nfds = h->extra_fd && h->extra_fd(ctx, &p[1]) ? 2 : 1;
        uint64_t deadline = conn_deadline(c);
        struct timespec ts = until(deadline);
        /* A shutdown that began during this turn is seen at the top of the
         * next one, not after a sleep. */
        if (!shutdown_seen && atomic_load(&blocking_stopping))
            continue;
        if (h->may_sleep && !h->may_sleep(ctx))
            continue;
        gil_release();
        int n = ppoll(p, nfds, deadline ? &ts : NULL, &blocking_wake_mask);
        gil_acquire();
        if (h->woke)
            h->woke(ctx);

        if (n > 0 && (p[0].revents & POLLIN))
            blocking_read(fd, c);
        else if (n > 0 && (p[0].revents & (POLLERR | POLLHUP)))
            conn_abort(c); /* reset, or both directions gone */
        if (n > 0 && nfds == 2 && h->extra_ready)
            h->extra_ready(ctx, c, p[1].revents);
        if (deadline && app_now_ms() >= deadline)
            conn_on_timeout(c);
    }
}
