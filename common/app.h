/* The application: one server's configuration, shared state and routes.
 *
 * Everything here is the same in the three models; a model creates one
 * struct app at start (app_init parses the common flags, loads the users and
 * the key), gives it a room with its own sink, and from then on only moves
 * bytes and carries out deferred actions.
 */
#ifndef C10K_APP_H
#define C10K_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "room.h"
#include "session.h"
#include "users.h"

struct config {
    char listen_host[64];
    unsigned short listen_port;
    const char *users_path;
    const char *secret_path;
    const char *upstream;
    /* --redis URL: a shared room through Redis (backplane.h); NULL or redis_copy */
    const char *redis;
    char redis_copy[2048]; /* the URL, copied: argv's copy has its password blanked */
    bool redis_insecure;   /* --redis-insecure: a remote Redis without a password */
    unsigned max_conns;
    bool gil;
    bool demo;        /* --demo: demo accounts even on a non-loopback --listen */
    bool cpu_pool;    /* chat-async */
    unsigned threads; /* chat-threaded */
    unsigned queue;   /* chat-threaded */
};

/* What /stats reports beyond the counters; the model fills it (app.stats):
 * memory, threads and processes are the model's to read, the core does no
 * /proc I/O. */
struct stats_view {
    int pid;                      /* the server's; 0: this process */
    long long rss_bytes, pss_bytes;
    long threads, processes;
    long connections, ws_clients; /* -1: use the app's own counters */
    unsigned long long requests;  /* 0: use the app's own counter */
    char extra[256];              /* more JSON members: "\"busy\":3" or "" */
};

/* Counters of the whole server. In chat-forked they live in memory shared
 * by every process (atomics work across processes on a shared mapping). */
struct app_counters {
    atomic_long connections, ws_clients;
    atomic_ullong requests;
};

/* Where a connection's chat goes. Usually the room in this process; in a
 * chat-forked child, a proxy that forwards to the room in the parent. */
struct chat_ops {
    int (*join)(void *ctx, struct room_member *m, const char *user);
    /* false: hold the rest of this client's input until conn_unblock()
     * (room_post's backpressure). */
    bool (*post)(void *ctx, struct room_member *m, const char *text, size_t len);
    void (*leave)(void *ctx, struct room_member *m);
    /* The member's client took bytes; `bytes` still wait (room_backlog). */
    void (*backlog)(void *ctx, struct room_member *m, size_t bytes);
};
extern const struct chat_ops chat_local; /* ctx: a struct room * */

struct app {
    const char *model; /* "async", "threaded", "forked" */
    struct config cfg;
    struct users *users;
    struct login_limit *logins;   /* shared by every thread and child */
    struct session_key key;
    struct room *room;            /* the local room, if this process has one */
    const struct chat_ops *chat;  /* chat_local with ctx = room, by default */
    void *chat_ctx;
    uint64_t started_ms;
    struct app_counters own, *n;  /* n = &own unless the model shares them */
    /* Fills the /stats memory, threads and processes; every model sets it
     * (models/proc: proc_stats). NULL: they are reported as 0. */
    void (*stats)(struct app *app, struct stats_view *v);
};

/* Give the app its room (and make it the chat target). */
void app_set_room(struct app *app, struct room *room);

/* Parse the common flags (and the model's, named in `model_flags`, e.g.
 * "--cpu-pool"), load users and key. On error prints to stderr and returns
 * the exit status to use (2 for usage, 1 for a bad file); 0 on success. */
int app_init(struct app *app, const char *model, int argc, char **argv);
void app_free(struct app *app);

/* Is --listen's HOST (numeric, as every model requires) a loopback address:
 * 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104? False for anything else,
 * 0.0.0.0 and :: included. */
bool listen_host_is_loopback(const char *host);

/* Called by conn.c for each complete request / finished action. */
void app_route(struct conn *c, struct http_req *req);
void app_finish_action(struct conn *c, struct http_req *req, struct action *a);

/* A 503 for a connection refused by --max-conns or a full queue: the whole
 * response, to be written once and closed. */
struct rbuf *app_busy_response(const struct app *app);

/* Monotonic milliseconds: every deadline in the core is on this clock. */
uint64_t app_now_ms(void);
extern uint64_t (*app_clock)(void); /* tests replace it */

#endif
