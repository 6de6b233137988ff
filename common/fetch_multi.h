/* /search on curl's multi interface, for the models that run every
 * transfer on their one loop thread (chat-async on libuv, chat-uring on the
 * ring). How a model watches curl's sockets and timer is its own; what is
 * left — making the multi handle, adding and removing a transfer, and
 * collecting the finished ones — is the same for both, and is here once. */
#ifndef C10K_FETCH_MULTI_H
#define C10K_FETCH_MULTI_H

#include <curl/curl.h>

#include "action.h"

/* A multi handle whose socket and timer callbacks get userp. NULL on
 * failure. Freed with curl_multi_cleanup(). */
CURLM *fetch_multi_new(curl_socket_callback on_socket, curl_multi_timer_callback on_timer,
                       void *userp);
/* Adds the action's transfer (action_fetch_easy); the timer callback then
 * asks for it to be started. -1 on failure. */
int fetch_multi_start(CURLM *multi, struct action *a);
/* The client left: its transfer is removed (the easy handle stays the
 * action's, freed with it). */
void fetch_multi_cancel(CURLM *multi, struct action *a);
/* After every curl_multi_socket_action, timeouts included (a transfer that
 * ends on curl's timer is the contract's 504): each finished transfer is
 * reported to its action (action_fetch_done), taken off the multi handle,
 * and handed to done(). */
void fetch_multi_collect(CURLM *multi, void (*done)(struct action *a));

#endif
