/* chatbench: the load generator of c10k-lab (see main.c for the command line).
 *
 * One thread, one libuv loop, like chat-async: a load generator must cost
 * less per request than the server it measures, or it measures itself. So:
 * request bytes are made once, nothing is allocated per request, every read
 * takes what the kernel has (no syscall per byte), and latency goes into a
 * fixed-size histogram (hist.h), never into a growing array.
 */
#ifndef C10K_CHATBENCH_H
#define C10K_CHATBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

struct target {
    char host[64];      /* numeric IPv4, e.g. 127.0.0.1 */
    unsigned short port;
    char path[512];     /* with query, e.g. /sleep?ms=100 */
};

/* Parse http://HOST:PORT/PATH (numeric IPv4 only: loopback tests). */
int target_parse(const char *url, struct target *t);

struct opts {
    struct target target;
    struct target also;     /* ws, seat --also URL: every other client goes
                               there (a second server sharing the room through
                               --redis and the same --secret); port 0: none */
    unsigned conc;          /* -c: connections (http), clients (ws, seat, idle) */
    uint64_t requests;      /* -n: total requests (http); 0 = until -t */
    double seconds;         /* -t: duration (http, idle), stay after seating (seat) */
    bool keepalive;         /* -k (http) */
    double rate;            /* -r: http: requests/s in all (open loop);
                               ws: messages/s per sender; 0 = as fast as possible */
    unsigned messages;      /* -m: messages per sender (ws) */
    unsigned senders;       /* -s: how many of the clients send (ws); 0 = all */
    unsigned sources;       /* --sources: source addresses 127.0.0.2.. (ws, seat, idle) */
    const char *user, *password; /* ws/seat login, default coco / 123456 */
    bool json;
    int sigterm_pid;        /* seat --sigterm PID: stop the server with members in */
    unsigned leave;         /* seat --leave K: that many leave just before */
    double by_s;            /* seat --by S: SIGTERM at S even if seating is not done */
};

/* What every mode reports. Latency in microseconds in `lat`. */
struct result {
    const char *mode;
    uint64_t completed;     /* http: responses; ws: receipts; seat: seated */
    uint64_t failed;        /* http: errors; ws: missing receipts; seat: failed opens */
    uint64_t expected;      /* ws: messages x senders x clients; seat: -c */
    double elapsed_s;
    uint64_t completed_in_t; /* http -t: responses received by t0 + T */
    double window_s;        /* http -t: t0 to the last response by t0 + T */
    struct hist lat;
    /* failures by reason (connect, reset, timeout, status, ...) */
    struct why {
        const char *reason;
        uint64_t count;
    } why[16];
    unsigned nwhy;
    bool is_idle;           /* idle: `opened` and `open_all_s` are reported */
    uint64_t opened;        /* idle: connections whose first request was answered */
    double open_all_s;      /* idle: until all had their first answer; -1: not all */
    bool has_seated;        /* ws, seat: `seated` is reported */
    uint64_t seated;        /* ws, seat: members that got in (101) */
    double seat_s;          /* ws/seat: time until every client was in (or failed) */
    double cpu_user_s, cpu_sys_s; /* the generator's own CPU (getrusage) */
    bool has_term;          /* seat --sigterm: the shutdown was measured */
    double term_mono_s;     /* CLOCK_MONOTONIC when SIGTERM was sent */
    uint64_t term_members;  /* open members when it was sent (leavers included) */
    uint64_t term_leaving;  /* of which had just been closed by us */
    uint64_t term_closed;   /* members the server then closed (close frame or EOF) */
    uint64_t term_1001;     /* of which with close code 1001 */
    double term_last_close_s; /* SIGTERM to the last of those closes */
};

void result_fail(struct result *r, const char *reason); /* count one failure */
void result_fail_n(struct result *r, const char *reason, uint64_t n);

int run_http(const struct opts *o, struct result *r);
int run_ws(const struct opts *o, struct result *r);
int run_seat(const struct opts *o, struct result *r);
int run_idle(const struct opts *o, struct result *r);

/* Log in with POST /login (blocking, before the loop starts); writes
 * "session=..." into cookie. Returns 0 or -1 with a message on stderr. */
int chatbench_login(const struct opts *o, char *cookie, size_t len);

/* Monotonic time in ns, the unit of every timestamp in chatbench. */
uint64_t now_ns(void);

#endif
