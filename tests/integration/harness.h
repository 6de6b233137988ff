/* The black-box harness: start a server binary, talk HTTP to it (libcurl for
 * ordinary requests, raw sockets for what libcurl cannot do), stop it and
 * check it exited cleanly.
 *
 * The binary is $C10K_SERVER, run as
 *   $C10K_SERVER --listen 127.0.0.1:0 $C10K_SERVER_ARGS <test flags>
 * Every test starts its own server (fresh room, seq from 1) and stops it with
 * server_stop(), which asserts exit status 0: under AddressSanitizer a leak
 * makes that status non-zero, so the check is part of every test.
 *
 * Waits never use sleeps for synchronisation: they poll for the awaited
 * event with a generous safety cap (CAP_MS) that fails the test instead of
 * hanging. The caps are not timing assertions.
 */
#ifndef C10K_INTEG_HARNESS_H
#define C10K_INTEG_HARNESS_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct jv;

/* How many times slower than the optimised build the server under test may
 * run: 3 when the suite itself is built with AddressSanitizer (then so are
 * the servers it tests), times $C10K_CAP_SCALE (1-20; ./lab test sets it
 * when the plain suite drives a ThreadSanitizer server). It scales the
 * safety caps below, which a healthy server never comes near; it is never
 * part of what a test asserts. */
int harness_slowdown(void);
#if defined(__SANITIZE_ADDRESS__)
#define HARNESS_SANITIZED 3
#else
#define HARNESS_SANITIZED 1
#endif

#define CAP_MS (30000 * harness_slowdown())       /* safety cap for any single wait */
#define START_CAP_MS (20000 * harness_slowdown()) /* for the "listening on" line */
#define STOP_CAP_MS (10000 * harness_slowdown())  /* for the exit after SIGTERM */

/* Every suite uses this: process-wide setup, and a teardown that kills a
 * server an aborted test left behind and whatever its tree left. The
 * timeout is a last-resort cap per test (Criterion needs a constant). */
void harness_init(void);
void harness_fini(void);
#define SUITE_CFG .init = harness_init, .fini = harness_fini, .timeout = 240 * HARNESS_SANITIZED

/* ---- the server process ---- */

struct server {
    pid_t pid;
    int port;
    int out_fd;        /* read end of the server's stdout */
    char errpath[192]; /* the server's stderr, captured for diagnostics */
    bool running;
    char model[32];    /* from /stats, fetched by server_model() */
    char host[64];     /* the HOST of the last --listen given: the line must name it */
};

/* A NULL-terminated argument list: ARGS("--max-conns", "2"). */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Start with the test's extra flags (NULL for none). Fails the test, with the
 * server's stderr, unless it prints `listening on http://127.0.0.1:PORT`. */
void server_start(struct server *s, const char *const *extra);
/* Start a server that must refuse to: it must exit non-zero without ever
 * printing the listening line. Returns its stderr (malloc'd). */
char *server_start_must_fail(const char *const *extra);
/* The same under a descriptor limit: RLIMIT_NOFILE soft = hard = nofile in
 * the child before exec, so the server cannot raise it (exhaustion tests). */
void server_start_nofile(struct server *s, const char *const *extra, int nofile);
/* SIGTERM, wait (STOP_CAP_MS), assert a normal exit with status 0. */
void server_stop(struct server *s);
/* After the caller sent a signal: wait for the exit and assert status 0. */
void server_wait_exit(struct server *s, int cap_ms);
/* The server's stderr so far (malloc'd, NUL-terminated). */
char *server_stderr(const struct server *s);
/* The `model` field of /stats, cached. */
const char *server_model(struct server *s);

/* ---- files ---- */

/* Write bytes to a new temp file; returns its path (malloc'd). The file is
 * removed by harness_fini. */
char *temp_file(const void *data, size_t len);

/* ---- HTTP responses (both clients fill the same struct) ---- */

struct http_hdr {
    char *name;
    char *value;
};

struct http_resp {
    int status;
    struct http_hdr hdrs[64];
    int nhdrs;
    char *body;   /* NUL-terminated for convenience; body_len is the truth */
    size_t body_len;
};

/* Last header of that name (case-insensitive), or NULL. */
const char *resp_header(const struct http_resp *r, const char *name);
/* How many headers of that name. */
int resp_header_count(const struct http_resp *r, const char *name);
void resp_free(struct http_resp *r);
/* The path of a Location header, also when it is absolute (scheme://host/p). */
const char *resp_location_path(const struct http_resp *r);
/* Content-Length, Date (IMF-fixdate) and Server: c10k-lab/<model>, with the
 * Content-Length equal to the body received (unless head_request). */
void check_common_headers(struct server *s, const struct http_resp *r, bool head_request);

/* ---- libcurl: one request on a fresh connection, no redirects followed ---- */

/* headers: NULL-terminated list of "Name: value" lines, or NULL. */
void http_do(struct http_resp *r, int port, const char *method, const char *path,
             const char *const *headers, const char *body, size_t body_len);
#define HDRS(...) ARGS(__VA_ARGS__)
void http_get(struct http_resp *r, int port, const char *path, const char *const *headers);
/* GET path on a new connection: its status (0 if no response). */
int http_status(int port, const char *path);
/* GET /hello must answer 200 "Hello, world!\n": the server still serves. */
void expect_hello(int port);

/* POST /login; returns the status; with *cookie non-NULL on 303 the caller
 * gets "session=VALUE" (malloc'd). */
int login_try(int port, const char *user, const char *password, char **cookie);
/* POST /login that must succeed: "session=VALUE" (malloc'd). */
char *login(int port, const char *user, const char *password);
/* "Cookie: session=..." header line (malloc'd). */
char *cookie_header(const char *cookie);

/* ---- raw TCP ---- */

struct tsock {
    int fd;
    char *buf; /* bytes received, not yet consumed */
    size_t len, cap;
    bool eof;   /* orderly EOF seen */
    bool reset; /* ECONNRESET or another error seen */
};

enum rd { RD_OK, RD_EOF, RD_RESET, RD_TIMEOUT, RD_BAD };
const char *rd_name(enum rd r);

/* Connect to 127.0.0.1:port (blocking socket, TCP_NODELAY). rcvbuf > 0 sets
 * SO_RCVBUF before connecting. Asserts success. */
int tcp_connect(int port, int rcvbuf);
void tsock_open(struct tsock *c, int port);
void tsock_close(struct tsock *c);
/* Send everything (MSG_NOSIGNAL). Returns false if the peer is gone. */
bool tsock_send(struct tsock *c, const void *p, size_t n);
bool tsock_sends(struct tsock *c, const char *s);
/* Read one response (status line, headers, Content-Length body; no body for
 * a HEAD or a 1xx/204/304). Waits at most cap_ms for it to complete. */
enum rd tsock_read_response(struct tsock *c, bool head_request, struct http_resp *r, int cap_ms);
/* Read one response that must be there: asserts RD_OK. */
void tsock_expect_response(struct tsock *c, bool head_request, struct http_resp *r);
/* Read until EOF (or reset); *extra counts the bytes that came before it. */
enum rd tsock_wait_eof(struct tsock *c, int cap_ms, size_t *extra);
/* One raw request on a fresh connection, the response, and the close. */
void raw_request(int port, const char *request, bool head_request, struct http_resp *r);

/* ---- users and stats ---- */

/* A users file made with the project's own user_record_make/format (1000
 * PBKDF2 iterations, to keep logins fast). pairs: name, password, name,
 * password, ..., NULL. `extra` (may be NULL) is appended verbatim. Returns
 * the path (malloc'd, removed at teardown). */
char *users_file(const char *const *pairs, const char *extra);
/* GET /stats: asserts 200 + a JSON object; the caller frees it. */
struct jv *stats_get(int port);

/* ---- the server seen through /proc ---- */

/* Open descriptors of the server process (its /proc/PID/fd entries); in
 * chat-forked that is the parent. */
int server_fd_count(const struct server *s);
/* Waits until server_fd_count() <= at_most (polling /proc, CAP_MS); returns
 * the last count seen, for the assertion message. */
int server_await_fds(const struct server *s, int at_most);
/* Waits until the server has at most at_most child processes (chat-forked:
 * connections whose child has not exited yet; the others never have any),
 * polling /proc, 2 * CAP_MS; returns the last count. Under ASan each exiting
 * child runs LeakSanitizer, which takes a while: a test that made many
 * children lets them finish before server_stop's own, shorter, cap. */
int server_await_children(const struct server *s, int at_most);
/* Milliseconds the server's threads, and those of its live children
 * (chat-forked), have been runnable (on a CPU or waiting in the run queue:
 * /proc/PID/task/TID/schedstat) since they started. Over a window in which
 * the server has nothing to do this grows by about 0; a thread spinning in a
 * busy loop makes it grow by the whole window, however loaded the machine
 * is — unlike CPU time, which shrinks when the loop must share the CPU. */
int64_t server_runnable_ms(const struct server *s);

/* ---- time ---- */
int64_t now_ms(void);      /* CLOCK_MONOTONIC */
int64_t wall_ms(void);     /* CLOCK_REALTIME */
/* Remaining ms until deadline (monotonic), at least 0. */
int remaining_ms(int64_t deadline);

/* ---- small things ---- */
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Lowercase hex of /cpu's answer for n rounds, with the trailing "\n". */
void cpu_expected(unsigned long n, char out[66]);
/* Does the (HTML) body contain a form field named `name`? */
bool html_has_field(const char *body, const char *name);

#endif
