/* chat-uring: what main.c, client.c, pool.c and curl_ring.c share. */
#ifndef C10K_URING_H
#define C10K_URING_H

#include <hiredis/async.h>
#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "conn.h"
#include "container_of.h"

/* Every request on the ring carries, as user_data, the address of one of
 * these, embedded in whatever owns the request (a client, the server, a
 * curl socket). The completion handler switches on `kind` and finds the
 * owner with container_of. user_data 0 marks requests whose completion
 * means nothing to us (cancellations, timeout updates). */
enum op_kind {
    OP_ACCEPT,     /* the listener's multishot accept */
    OP_SIGNAL,     /* the signalfd is readable: SIGINT/SIGTERM */
    OP_POOL,       /* a read of the pool's eventfd: jobs are done */
    OP_SERVER_TIMER, /* the server's own timeouts (struct server_timer) */
    OP_RECV,       /* a client's multishot receive */
    OP_SEND,       /* a client's one send in flight */
    OP_TIMER,      /* a client's deadline (the core's, or the linger) */
    OP_SLEEP,      /* a client's /sleep */
    OP_CURL_POLL,  /* a socket curl asked us to watch */
    OP_CURL_TIMER, /* curl's one timeout */
    OP_REDIS_READ, /* --redis: a Redis socket hiredis waits to read */
    OP_REDIS_WRITE, /* --redis: one it waits to write */
};

struct op {
    enum op_kind kind;
};


enum recv_state { RECV_OFF, RECV_ARMED, RECV_CANCELLING };

struct send_req; /* client.c */

/* One client connection. Everything the ring may still write into or
 * report about lives here, so the struct is freed only once `inflight`
 * (requests submitted whose last completion has not been seen) is 0. */
struct client {
    struct conn conn;
    int fd;
    struct op recv_op, send_op, timer_op, sleep_op;
    struct __kernel_timespec timer_ts, update_ts, sleep_ts;
    struct send_req *sending;  /* the one send in flight, or NULL */
    struct buf stash;          /* input that came while the core wanted none */
    struct action *orphan;     /* a pool job still running after close */
    uint64_t armed_deadline;   /* when the armed timer fires (ms), 0 = none */
    size_t fed_bytes;          /* fed to the core in turn fed_turn: the */
    uint64_t fed_turn;         /* flooder guard, see handle_input */
    unsigned inflight;
    enum recv_state recv;
    struct client *prev, *next;           /* all live clients */
    struct client *next_dirty;            /* output queued this turn */
    struct client *next_paused;           /* stashed input to feed next turn */
    struct client *next_closed;           /* closed, waiting for its requests */
    bool timer_armed, sleeping, dirty, paused;
    bool closing, lingering, counted, eof_pending;
    bool cut_pending;          /* cut off with a send in flight: cancelled */
};

/* One server-wide timeout (the grace period, trimming, accept back-off). */
struct server_timer {
    struct op op;
    struct __kernel_timespec ts;
    void (*fire)(struct server_timer *t);
    bool armed;
};

struct pool;
struct curl_ring;
struct redis_ring;
struct backplane;

struct server {
    struct io_uring ring;
    struct app app;
    int listen_fd;
    struct op accept_op;
    bool accepting;                /* the multishot accept is armed */
    int signal_fd;
    struct op signal_op;
    struct pool *pool;
    struct op pool_op;
    uint64_t pool_count;           /* the eventfd's counter, read by the ring */
    struct curl_ring *curl;
    struct server_timer hard_stop, trim, accept_retry;
    /* --redis: the room is this server's replica of one shared through
     * Redis (backplane.h); its connections are on the ring (redis_ring.c). */
    struct redis_ring *redis;
    struct backplane *bp;
    struct server_timer bp_tick, bp_settle;
    uint64_t settle_end;

    /* The provided buffer ring: BUF_COUNT buffers of BUF_SIZE bytes the
     * kernel picks from for every multishot receive (bgid BUF_GROUP). */
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned buf_count;            /* BUF_COUNT, or the test knob's */

    struct client *clients;
    struct client *dirty, *paused, *closed;
    struct conn_queue unblocked;   /* held posters the room let go this turn */
    unsigned live;                 /* admitted connections, for --max-conns */
    uint64_t turn;                 /* turns of the loop so far */
    unsigned long enobufs;         /* receives that found the buffer ring empty */
    unsigned long cq_overflows;    /* turns that found completions held back */
    unsigned long linger_timeouts; /* lingers ended by their deadline, not the peer's FIN */
    bool test_knobs;               /* C10K_URING_BUFS/_CQ set (main.c) */
    bool stopping;
};

extern struct server server;

#define BUF_GROUP 1
#define BUF_COUNT 512   /* a power of two: the ring's mask (the default) */
#define BUF_SIZE 16384

/* The ring's submission queue entry for one more request: submits what is
 * queued when the queue is full. NULL only if the kernel refuses even that. */
struct io_uring_sqe *ring_sqe(void);
/* Give buffer `bid` back to the buffer ring. */
void buf_recycle(unsigned bid);
void server_timer_arm(struct server_timer *t, uint64_t ms);

/* client.c */
void client_accepted(int fd);
void client_sync(struct client *cl);
void client_close(struct client *cl);
void client_complete(struct op *op, int res, unsigned flags);
void flush_dirty_clients(void);
bool run_unblocked_clients(void);
void resume_paused_clients(void);
void reap_closed_clients(void);
void fetch_done(struct action *a);
extern const struct room_sink uring_sink;

/* pool.c: a few threads for PBKDF2 (and /cpu with --cpu-pool). Each job
 * done is announced by a write to the eventfd the ring reads. */
struct pool_job {
    struct pool_job *next;
    struct client *cl;
    struct action *a;
};
struct pool *pool_new(unsigned threads, int *eventfd_out);
int pool_submit(struct pool *p, struct pool_job *job);
struct pool_job *pool_take_done(struct pool *p); /* a list, oldest first */
unsigned pool_busy(struct pool *p);             /* jobs queued or running */
void pool_free(struct pool *p);                  /* only when not busy */
void pool_job_done(struct pool_job *job);        /* client.c: back on the ring's thread */

/* curl_ring.c: libcurl multi on the ring (POLL_ADD per socket). */
struct curl_ring *curl_ring_new(void (*done)(struct action *a));
int curl_ring_start(struct curl_ring *cr, struct action *a);
void curl_ring_cancel(struct curl_ring *cr, struct action *a);
void curl_ring_complete(struct curl_ring *cr, struct op *op, int res);
void curl_ring_sync(struct curl_ring *cr); /* once a turn: arm what curl asked for */
void curl_ring_free(struct curl_ring *cr);

/* redis_ring.c: hiredis async contexts on the ring (POLL_ADD per socket),
 * for the backplane. */
struct redis_ring *redis_ring_new(void);
int redis_ring_attach(void *rr, redisAsyncContext *ac); /* a backplane_loop.attach */
void redis_ring_complete(struct redis_ring *rr, struct op *op, int res);
void redis_ring_sync(struct redis_ring *rr); /* once a turn: arm what hiredis asked for */
void redis_ring_free(struct redis_ring *rr); /* after backplane_free and the ring's exit */

#endif
