/* chat-async: the whole server on one thread, around one event loop.
 *
 * How a reactor works, in the order this file sets it up:
 *
 *  1. Every socket is non-blocking. Nothing on this thread ever waits for
 *     the network: it asks the kernel (epoll, inside libuv) "tell me when
 *     any of these is ready", and sleeps only there.
 *  2. When epoll says a socket is readable, libuv calls on_read with the
 *     bytes; we hand them to the core's state machine (conn_feed), which
 *     parses and decides, and then client_sync() does what it asks.
 *  3. Waiting is a registration, not a pause: /sleep is a timer, /search is
 *     a socket curl asked us to watch, a password hash is a job on libuv's
 *     thread pool whose completion comes back to the loop as an event.
 *  4. Whatever a turn of the loop queued for writing leaves just before the
 *     loop sleeps again (the prepare handle), one writev per client.
 *  5. Even a signal is an event: SIGINT/SIGTERM are blocked and read from a
 *     signalfd the loop watches like a socket. libuv's uv_signal would do
 *     that too, but its handler takes the signal at once, so nothing can
 *     tell it came until the loop reaches it — and one turn can be seconds
 *     of fan-out. Left pending in the kernel, it can be asked for
 *     (stop_signal.h): a leave that comes with the stop is not announced.
 *
 * The price: anything slow that runs *on* this thread stops every client.
 * /cpu does exactly that (unless --cpu-pool), and that is the lesson.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async.h"
#include "backplane.h"
#include "redis_uv.h"
#include "gil.h"
#include "stop_signal.h"
#include "proc_memory.h"
#include "timing.h"

#define LISTEN_BACKLOG 4096
/* Connections accepted per turn of the loop, at most. libuv accepts until
 * the backlog is empty, and a storm keeps it from ever being empty: in one
 * turn the loop took connection after connection, each counted open,
 * while those that had already been reset waited for a read the loop never
 * got to — past --max-conns, a real client behind them was refused with
 * 503 (tests/storm, under AddressSanitizer, where the loop is slower than
 * the storm). With a budget, each turn also reads what the last one
 * accepted, and a dead connection is closed a turn after it came. */
#define ACCEPT_PER_TURN 64

struct server server;

static void on_connection(uv_stream_t *listener, int status)
{
    if (status < 0) {
        /* Out of descriptors: libuv has already accepted and closed the
         * waiting connection with its reserve descriptor (uv__emfile_trick),
         * so the listener is not left readable — no busy loop. */
        static uint64_t last_warned;
        uint64_t now = app_now_ms();
        if (now - last_warned > 5000) {
            fprintf(stderr, "chat-async: accept: %s\n", uv_strerror(status));
            last_warned = now;
        }
        return;
    }
    if (server.accepted_this_turn >= ACCEPT_PER_TURN) {
        /* Not taken now: libuv holds it and stops watching the listener
         * until uv_accept is called, which before_poll does. */
        server.accept_held = true;
        return;
    }
    server.accepted_this_turn++;
    client_accept(listener);
}

/* Right before the loop blocks in epoll. */
static void before_poll(uv_prepare_t *h)
{
    (void)h;
    server.accepted_this_turn = 0;
    if (server.accept_held) {
        server.accept_held = false;
        /* Closing, the listener has closed the held descriptor itself. */
        if (!uv_is_closing((uv_handle_t *)&server.listener)) {
            server.accepted_this_turn = 1;
            client_accept((uv_stream_t *)&server.listener); /* and watching again */
        }
    }
    flush_dirty_clients();
    /* Writing may have drained the member the room's posters waited for:
     * they go on now, and what they post is written before we sleep.
     * This ends: each round takes only input held back earlier. */
    while (run_unblocked_clients())
        flush_dirty_clients();
    resume_paused_clients(); /* after the flush: see pause_until_next_turn */
    /* --gil: the loop thread holds the GIL while it runs callbacks and
     * drops it while it waits for I/O, as CPython does around select(). */
    gil_release();
}

static void after_poll(uv_check_t *h)
{
    (void)h;
    gil_acquire();
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* The last client is gone after a signal: close what keeps the loop alive,
 * so uv_run returns. */
void server_maybe_finished(void)
{
    if (!server.stopping || server.clients)
        return;
    close_handle((uv_handle_t *)&server.before_poll);
    close_handle((uv_handle_t *)&server.after_poll);
    close_handle((uv_handle_t *)&server.signals);
    close_handle((uv_handle_t *)&server.hard_stop);
    close_handle((uv_handle_t *)&server.trim);
    if (server.curl) {
        curl_uv_free(server.curl);
        server.curl = NULL;
    }
    if (server.bp) {
        /* While the loop still runs: its handles close through it. */
        backplane_free(server.bp);
        server.bp = NULL;
        close_handle((uv_handle_t *)&server.bp_tick);
        close_handle((uv_handle_t *)&server.bp_settle);
    }
}

static void on_bp_tick(uv_timer_t *t)
{
    (void)t;
    backplane_tick(server.bp);
}

/* --redis: this loop drives the process's one Redis subscriber. */
static int backplane_start(void)
{
    char err[256];
    server.bp = backplane_new(server.app.cfg.redis, server.app.room,
                              &(struct backplane_loop){redis_uv_attach, server.loop}, false, err,
                              sizeof err);
    if (!server.bp) {
        fprintf(stderr, "chat-async: %s\n", err);
        return -1;
    }
    uv_timer_init(server.loop, &server.bp_tick);
    uv_timer_init(server.loop, &server.bp_settle);
    uv_timer_start(&server.bp_tick, on_bp_tick, BACKPLANE_TICK_MS, BACKPLANE_TICK_MS);
    return 0;
}

/* Memory the heap got back stays resident until trimmed: glibc returns only
 * the top of the heap by itself. A room filling up sends every join to every
 * member, so the queues of thousands of members briefly hold millions of
 * small nodes; once they are written and freed, this hands the pages back,
 * so RSS shows what the connections hold, not the high-water mark. Walking
 * the heap costs a few milliseconds a second at worst. */
#define TRIM_EVERY_MS 1000

static void on_trim(uv_timer_t *t)
{
    (void)t;
    malloc_trim(0);
}

/* Past the grace period, with clients still there after the closes
 * below had a turn of the loop: all that can keep one is a job on libuv's
 * pool inside a call that cannot be interrupted (one PBKDF2 of a users-file
 * record with millions of iterations). The contract says drop it: the loop
 * stops and main returns without waiting for the pool (see main). */
static void on_abandon(uv_timer_t *t)
{
    if (!server.clients)
        return;
    uv_timer_stop(t);
    server.abandoned = true;
    uv_stop(server.loop);
}

static void on_hard_stop(uv_timer_t *t)
{
    /* Whatever could not finish in time is dropped. */
    for (struct client *cl = server.clients, *next; cl; cl = next) {
        next = cl->next;
        client_close(cl);
    }
    if (server.clients)
        uv_timer_start(t, on_abandon, ABANDON_AFTER_MS, 0);
}

/* SIGINT/SIGTERM: stop accepting, let the core close WebSockets with 1001
 * and finish what can finish, and give it all SHUTDOWN_GRACE_MS. */
static void close_room(void)
{
    room_close(server.app.room); /* everyone is leaving: no N^2 leaves */
    for (struct client *cl = server.clients, *next; cl; cl = next) {
        next = cl->next;
        conn_shutdown(&cl->conn);
        client_sync(cl);
    }
    server_maybe_finished();
}

/* --redis: a leave published a moment ago must still reach the members
 * here before they are closed; wait for it, briefly. */
static void on_settle(uv_timer_t *t)
{
    if (!backplane_settled(server.bp) && app_now_ms() < server.settle_end)
        return;
    uv_timer_stop(t);
    close_room();
}

static void on_signal(uv_poll_t *h, int status, int events)
{
    (void)h, (void)status, (void)events;
    stop_signal_read(server.signal_fd);
    if (server.stopping)
        return;
    server.stopping = true;
    close_handle((uv_handle_t *)&server.listener);
    uv_timer_start(&server.hard_stop, on_hard_stop, SHUTDOWN_GRACE_MS, 0);
    if (server.bp && !backplane_settled(server.bp)) {
        server.settle_end = app_now_ms() + BACKPLANE_SETTLE_MS;
        uv_timer_start(&server.bp_settle, on_settle, 5, 5);
        return;
    }
    close_room();
}

static int listen_on(const struct config *cfg)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        rc = uv_ip6_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in6 *)&addr);
    if (rc < 0) {
        fprintf(stderr, "chat-async: --listen: bad address %s\n", cfg->listen_host);
        return -1;
    }
    uv_tcp_init(server.loop, &server.listener);
    if ((rc = uv_tcp_bind(&server.listener, (struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&server.listener, LISTEN_BACKLOG, on_connection)) < 0) {
        fprintf(stderr, "chat-async: listen on %s:%u: %s\n", cfg->listen_host, cfg->listen_port,
                uv_strerror(rc));
        return -1;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    char host[64];
    uv_tcp_getsockname(&server.listener, (struct sockaddr *)&bound, &len);
    int port;
    if (bound.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&bound, host, sizeof host);
        port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        printf("listening on http://[%s]:%d\n", host, port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&bound, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        printf("listening on http://%s:%d\n", host, port);
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = app_init(&server.app, "async", argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    /* Before any thread exists (libuv's pool, curl's resolver). */
    server.signal_fd = stop_signal_fd();
    if (server.signal_fd < 0) {
        perror("chat-async: signalfd");
        return 1;
    }
    /* /stats reads /proc right on the loop: a few small procfs reads. */
    server.app.stats = proc_stats;
    server.loop = uv_default_loop();
    app_set_room(&server.app, room_new(&async_sink, false));
    server.curl = curl_uv_new(server.loop, fetch_done);
    if (!server.app.room || !server.curl) {
        fprintf(stderr, "chat-async: out of memory\n");
        return 1;
    }
    gil_acquire(); /* the loop thread runs holding it, see before_poll */

    uv_prepare_init(server.loop, &server.before_poll);
    uv_prepare_start(&server.before_poll, before_poll);
    uv_check_init(server.loop, &server.after_poll);
    uv_check_start(&server.after_poll, after_poll);
    uv_poll_init(server.loop, &server.signals, server.signal_fd);
    uv_poll_start(&server.signals, UV_READABLE, on_signal);
    uv_timer_init(server.loop, &server.hard_stop);
    uv_timer_init(server.loop, &server.trim);
    uv_timer_start(&server.trim, on_trim, TRIM_EVERY_MS, TRIM_EVERY_MS);

    if (listen_on(&server.app.cfg) < 0)
        return 1;
    if (server.app.cfg.redis && backplane_start() < 0)
        return 1;

    uv_run(server.loop, UV_RUN_DEFAULT); /* returns once everything is closed */
    if (server.abandoned) {
        /* A pool thread still runs a check that reads the users and writes
         * into its client: nothing it can touch is freed, and the process
         * ends it by exiting. _exit, not exit: libuv's library destructor
         * (uv_library_shutdown) would join the pool's threads, that is,
         * wait for the very check we are dropping. */
        fprintf(stderr, "chat-async: dropped work still running at the deadline (a password "
                        "check of a costly users-file record)\n");
        fflush(NULL);
        _exit(0);
    }

    gil_release();
    room_free(server.app.room);
    app_free(&server.app);
    uv_loop_close(server.loop);
    close(server.signal_fd);
    return 0;
}
