/* The server process: $C10K_SERVER started in its own process group,
 * stopped, and its exit status checked (see harness.h). Nothing of the
 * server's tree may outlive it: a survivor is named, killed, and fails the
 * test; and the teardown kills whatever an aborted test left behind. */
#ifndef C10K_INTEG_HARNESS_SERVER_H
#define C10K_INTEG_HARNESS_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "harness_util.h"

/* Every suite uses this: process-wide setup, and a teardown that kills a
 * server an aborted test left behind and whatever its tree left. The
 * timeout is a last-resort cap per test (Criterion needs a constant). */
void harness_init(void);
void harness_fini(void);
#define SUITE_CFG .init = harness_init, .fini = harness_fini, .timeout = 240 * HARNESS_SANITIZED

struct server {
    pid_t pid;
    int port;
    int out_fd;        /* read end of the server's stdout */
    char errpath[192]; /* the server's stderr, captured for diagnostics */
    bool running;
    char model[32];    /* from /stats, fetched by server_model() */
    char host[64];     /* the HOST of the last --listen given: the line must name it */
    int resting_children; /* its child processes before any client (chat-forked: the spawner) */
};

/* Start with the test's extra flags (NULL for none). Fails the test, with the
 * server's stderr, unless it prints `listening on http://127.0.0.1:PORT`. */
void server_start(struct server *s, const char *const *extra);
/* Start a server that must refuse to: it must exit non-zero without ever
 * printing the listening line. Returns its stderr (malloc'd). */
char *server_start_must_fail(const char *const *extra);
/* The same under a descriptor limit: RLIMIT_NOFILE soft = hard = nofile in
 * the child before exec, so the server cannot raise it (exhaustion tests). */
void server_start_nofile(struct server *s, const char *const *extra, int nofile);
/* Another server binary (another model) with only the test's flags: no
 * $C10K_SERVER_ARGS, which are for $C10K_SERVER. */
void server_start_bin(struct server *s, const char *bin, const char *const *extra);
/* $C10K_SERVER without the harness's --listen 127.0.0.1:0: the listening
 * line must name the contract's default host, 127.0.0.1. The caller makes
 * sure the default port is its own (a network namespace). */
void server_start_default_listen(struct server *s, const char *const *extra);
/* SIGTERM, wait (STOP_CAP_MS), assert a normal exit with status 0. */
void server_stop(struct server *s);
/* After the caller sent a signal: wait for the exit and assert status 0. */
void server_wait_exit(struct server *s, int cap_ms);
/* The server's stderr so far (malloc'd, NUL-terminated). */
char *server_stderr(const struct server *s);
/* The `model` field of /stats, cached. */
const char *server_model(struct server *s);

#endif
