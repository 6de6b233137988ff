/* What a login may cost the server (contract: "Password checks are
 * bounded"). Each attempt is 100 000 rounds of PBKDF2, about 50 ms of a core
 * in an optimised build: unmetered, a handful of clients posting passwords
 * would take the CPU from the chat. Two bounds:
 *
 *   - at most LOGIN_MAX_INFLIGHT checks at once per server, on any thread
 *     or in any chat-forked child; one more gets 503 with Retry-After;
 *   - at most LOGIN_MAX_FAILURES failed attempts per source address per
 *     LOGIN_WINDOW_S window; more get 429 with Retry-After (the rest of
 *     the window), without a check.
 *
 * One state for the whole server: it lives in a MAP_SHARED anonymous
 * mapping made before the first thread or fork, so chat-forked's children
 * share it as threads do, guarded by a process-shared robust mutex (a child
 * killed inside it does not wedge the others). A check slot remembers the
 * process holding it, so the slots of a child killed mid-check are taken
 * back instead of shrinking the budget for good. */
#ifndef C10K_LOGIN_LIMIT_H
#define C10K_LOGIN_LIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define LOGIN_MAX_INFLIGHT 4
#define LOGIN_MAX_FAILURES 20
#define LOGIN_WINDOW_S 60
#define LOGIN_ADDRS 1024 /* source addresses remembered; then the stalest goes */

/* A source address as the limiter keys it: IPv4 as IPv4-mapped IPv6. */
struct login_peer {
    uint8_t addr[16];
};
/* From what accept() or getpeername() gave; an unknown family keys as ::. */
void login_peer_from(struct login_peer *p, const struct sockaddr *sa);

struct login_limit;

struct login_limit *login_limit_new(void); /* NULL if mmap or the mutex fails */
void login_limit_free(struct login_limit *l);

enum login_gate { LOGIN_GO, LOGIN_BUSY, LOGIN_REFUSED };
/* May this peer's password be checked now? LOGIN_GO takes a slot and
 * writes its index to *slot: give it back with login_limit_leave. Otherwise
 * *retry_after_s says when to come back. */
enum login_gate login_limit_enter(struct login_limit *l, const struct login_peer *p, time_t now,
                                  int *slot, unsigned *retry_after_s);
/* The check in slot is over; failed counts it against the peer. A check
 * abandoned before its verdict (the client left) passes failed = false. */
void login_limit_leave(struct login_limit *l, int slot, const struct login_peer *p, bool failed,
                       time_t now);

#endif
