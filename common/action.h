/* Deferred actions: what a handler asks the model to do before it can answer.
 *
 * The core decides *what* to answer; the model decides *how to wait*. A
 * handler that cannot answer at once leaves one action on its connection;
 * the model carries it out its own way and calls conn_resume(), which turns
 * the result into the response:
 *
 *   ACTION_SLEEP     wait sleep_ms     uv_timer / nanosleep
 *   ACTION_FETCH     fetch url         curl multi on the loop / curl_easy_perform
 *   ACTION_CPU       cpu rounds        inline, or a pool thread
 *   ACTION_PASSWORD  PBKDF2 check      libuv's pool / inline in the worker
 *
 * action_run() does the CPU-bound kinds and may run on any thread: it
 * touches nothing but the action. Fetches are configured here once
 * (action_fetch_easy) so that every model asks upstream the same way, and
 * reported back with action_fetch_done().
 */
#ifndef C10K_ACTION_H
#define C10K_ACTION_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "login_limit.h"
#include "users.h"

#define FETCH_MAX_BODY (1024 * 1024) /* contract: a larger upstream body is 502 */
#define FETCH_TIMEOUT_MS 10000       /* contract: slower is 504 */
#define SLEEP_MAX_MS 60000
#define CPU_MAX_ROUNDS 10000000

enum action_kind { ACTION_SLEEP, ACTION_FETCH, ACTION_CPU, ACTION_PASSWORD };

struct action {
    enum action_kind kind;
    bool started; /* set by the model when it begins the work */
    void *owner;  /* the model's, to find its connection from a callback */
    union {
        struct {
            unsigned ms;
        } sleep;
        struct {
            unsigned long rounds;
            char hex[65];
        } cpu;
        struct {
            char *url;
            CURL *easy;
            struct buf body;
            long status;
            CURLcode result;
            bool too_big;
            char content_type[128];
        } fetch;
        struct {
            const struct user_record *rec; /* NULL: unknown user, same work */
            char user[33];
            char *password;
            size_t len;
            bool ok;
            /* The check's slot in the server's login budget, given back
             * by app_finish_action or, if the client left first, by
             * action_free. limit NULL: no slot held. */
            struct login_limit *limit;
            int slot;
            struct login_peer peer;
        } login;
    };
};

struct action *action_sleep_new(unsigned ms);
struct action *action_cpu_new(unsigned long rounds);
struct action *action_fetch_new(const char *prefix, const char *word);
struct action *action_password_new(const struct user_record *rec, const char *user,
                                   const char *password, size_t len);
void action_free(struct action *a); /* frees the easy handle too, if any */

/* The CPU-bound work of ACTION_CPU and ACTION_PASSWORD, on the calling
 * thread. For ACTION_CPU under --gil, it offers the GIL every few rounds. */
void action_run(struct action *a);

/* Shutdown is out of time: CPU work in progress stops early (its answer is
 * dropped anyway). Once set, for the rest of the process. */
void action_cancel_all(void);

/* /cpu: n rounds of SHA-256 from 32 zero bytes; hex is 64 chars + NUL. */
void cpu_rounds(unsigned long n, char hex[65]);

/* An easy handle for an ACTION_FETCH, owned by the action (freed with it):
 * URL, 10 s timeout, body capped at 1 MiB, no signals, CURLOPT_PRIVATE = a.
 * NULL on failure. */
CURL *action_fetch_easy(struct action *a);
/* The transfer ended with rc (from curl_easy_perform or CURLMSG_DONE). */
void action_fetch_done(struct action *a, CURLcode rc);

#endif
