/* The black-box harness: start a server binary, talk HTTP to it (libcurl for
 * ordinary requests, raw sockets for what libcurl cannot do), stop it and
 * check it exited cleanly. Tests include this header; each part has its
 * own, which is its manual:
 *
 *   harness_server.h  the server process: start, stop, its whole process
 *                     tree, the teardown after every test (SUITE_CFG)
 *   harness_http.h    struct http_resp; libcurl requests; login, /stats;
 *                     responses read from a raw test socket
 *   harness_tsock.h   struct tsock, the raw TCP test socket
 *   harness_proc.h    the server through /proc: descriptors, children,
 *                     runnable time
 *   harness_util.h    safety caps, clocks, xasprintf, temp and users files
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

#include "harness_http.h"
#include "harness_proc.h"
#include "harness_server.h"
#include "harness_tsock.h"
#include "harness_util.h"

#endif
