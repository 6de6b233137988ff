/* chat-async: what main.c and client.c share. */
#ifndef C10K_ASYNC_H
#define C10K_ASYNC_H

#include <stdbool.h>
#include <uv.h>

#include "app.h"
#include "conn.h"
#include "curl_uv.h"

/* One client connection: the libuv handles it needs, embedded so that a
 * connection is one allocation, and the core's state machine. */
struct client {
    uv_tcp_t tcp;
    uv_timer_t timer;       /* the core's deadline, or the /sleep wake-up */
    uv_write_t write_req;   /* at most one write in flight */
    struct conn conn;
    struct client *prev, *next;     /* all clients, for shutdown */
    struct client *next_dirty;      /* queued output to write this turn */
    struct client *next_paused;     /* filled the read buffer this turn */
    struct action *orphan;          /* pool work still running after close */
    uint64_t armed_deadline;
    size_t pinned_bytes;            /* handed to the uv_write in flight */
    unsigned open_handles;
    bool dirty, reading, writing, closing, lingering, counted, paused;
};

struct server {
    uv_loop_t *loop;
    struct app app;
    uv_tcp_t listener;
    uv_prepare_t before_poll;  /* write what this turn queued; drop the GIL */
    uv_check_t after_poll;     /* take the GIL back */
    uv_poll_t signals; /* the signalfd of SIGINT/SIGTERM, see main.c */
    int signal_fd;
    uv_timer_t hard_stop;
    uv_timer_t trim;           /* gives freed heap pages back, see main.c */
    struct curl_uv *curl;
    struct backplane *bp;      /* --redis: the shared room (backplane.h) */
    uv_timer_t bp_tick;        /* its timeouts and reconnection */
    uv_timer_t bp_settle;      /* SIGTERM: waits for our last events to come back */
    uint64_t settle_end;
    struct client *clients;
    struct client *dirty;
    struct client *paused;
    struct conn_queue unblocked; /* held posters the room let go this turn */
    unsigned live;             /* admitted connections, for --max-conns */
    unsigned accepted_this_turn; /* see main.c: on_connection */
    bool accept_held;          /* one is waiting, accepted by libuv, for the next turn */
    bool stopping;
    bool abandoned;            /* exited with a library call still running on the pool */
};

extern struct server server;

void client_accept(uv_stream_t *listener);
void client_sync(struct client *cl);
void client_close(struct client *cl);
void flush_dirty_clients(void);
bool run_unblocked_clients(void);
void resume_paused_clients(void);
void fetch_done(struct action *a);
extern const struct room_sink async_sink;

void server_maybe_finished(void);

#endif
