/* libcurl's multi interface driven by the libuv loop: many /search
 * transfers in flight on one thread, none of them blocking. */
#ifndef C10K_CURL_UV_H
#define C10K_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

#include "action.h"

struct curl_uv;

/* done(a) is called on the loop when a's transfer ended, successfully or
 * not, after action_fetch_done(); the easy handle is out of the multi. */
struct curl_uv *curl_uv_new(uv_loop_t *loop, void (*done)(struct action *a));
/* Start a's transfer. Returns 0, or -1 (nothing started). */
int curl_uv_start(struct curl_uv *cu, struct action *a);
/* Abandon a's transfer (its client went away); done() will not be called. */
void curl_uv_cancel(struct curl_uv *cu, struct action *a);
/* Tear down: transfers must be finished or cancelled. The loop must run
 * once more to close the handles. */
void curl_uv_free(struct curl_uv *cu);

#endif
