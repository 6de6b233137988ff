/* Small things every part of the harness uses: the safety caps, clocks,
 * allocation that fails the test instead of returning NULL, temp files and
 * the users files made of them. */
#ifndef C10K_INTEG_HARNESS_UTIL_H
#define C10K_INTEG_HARNESS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* A NULL-terminated argument list: ARGS("--max-conns", "2"). */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- time ---- */
int64_t now_ms(void);      /* CLOCK_MONOTONIC */
int64_t wall_ms(void);     /* CLOCK_REALTIME */
/* Remaining ms until deadline (monotonic), at least 0. */
int remaining_ms(int64_t deadline);

/* ---- files ---- */

/* Write bytes to a new temp file; returns its path (malloc'd). The file is
 * removed by harness_fini. */
char *temp_file(const void *data, size_t len);
/* A fresh name for a file that does not exist yet (for a program that must
 * create it), removed at teardown like a temp_file(). */
char *temp_path(void);
/* A users file made with the project's own user_record_make/format (1000
 * PBKDF2 iterations, to keep logins fast). pairs: name, password, name,
 * password, ..., NULL. `extra` (may be NULL) is appended verbatim. Returns
 * the path (malloc'd, removed at teardown). */
char *users_file(const char *const *pairs, const char *extra);
/* Where temp files go: $TMPDIR if it is set and short, else /tmp. */
const char *temp_dir(void);
/* Remove every temp_file() of this test (harness_fini calls it). */
void temp_files_remove(void);

/* ---- small things ---- */
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Lowercase hex of /cpu's answer for n rounds, with the trailing "\n". */
void cpu_expected(unsigned long n, char out[66]);
/* Does the (HTML) body contain a form field named `name`? */
bool html_has_field(const char *body, const char *name);

#endif
