/* A fake upstream for /search: a thread of the test process listening on
 * 127.0.0.1:0 and answering every request the same way. */
#ifndef C10K_INTEG_UPSTREAM_H
#define C10K_INTEG_UPSTREAM_H

#include <pthread.h>
#include <stdbool.h>

enum upstream_mode {
    UP_ECHO,      /* 200 text/plain, body = the request target it received */
    UP_NOT_FOUND, /* 404 with the body UPSTREAM_404_BODY */
    UP_HANG,      /* accept, read the request, never answer */
    UP_RESET,     /* accept, read the request, close with RST */
    UP_HUGE,      /* 200 with a body of UPSTREAM_HUGE_LEN bytes (> 1 MiB) */
    UP_5MB,       /* 200 with a body of UPSTREAM_5MB_LEN bytes */
    UP_RAW,       /* the bytes given to upstream_start_raw, then close */
    UP_STATUS,    /* the status named by the word (/lookup?q=204), empty body */
};

#define UPSTREAM_404_BODY "upstream says: no such word\n"
#define UPSTREAM_HUGE_LEN ((1u << 20) + 4096)
#define UPSTREAM_5MB_LEN (5u << 20)

struct upstream {
    enum upstream_mode mode;
    int listen_fd;
    int port;
    int stop_pipe[2];
    pthread_t thread;
    int held[16]; /* UP_HANG connections, closed at stop */
    int nheld;
    int requests; /* how many requests it has seen (written by the thread) */
    const char *raw; /* UP_RAW: the whole response, status line to body */
};

/* Start it; `--upstream` for the server is then
 * http://127.0.0.1:PORT/lookup?q= (see upstream_prefix). */
void upstream_start(struct upstream *u, enum upstream_mode mode);
/* An upstream that answers every request with `response` verbatim (the
 * caller keeps it alive until upstream_stop): statuses and headers the other
 * modes do not send. */
void upstream_start_raw(struct upstream *u, const char *response);
void upstream_stop(struct upstream *u);
/* "http://127.0.0.1:PORT/lookup?q=" (malloc'd). */
char *upstream_prefix(const struct upstream *u);
/* A prefix pointing at a port where nothing listens (malloc'd). */
char *unreachable_prefix(void);

struct server;
/* server_start() with --upstream upstream_prefix(u), no other test flags. */
void server_start_upstream(struct server *s, const struct upstream *u);

#endif
