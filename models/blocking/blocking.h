/* Serving one connection with blocking calls: what a chat-threaded worker
 * and a chat-forked child do the same way. Each call drops the GIL (when
 * --gil is on) around the part that can wait, as CPython does; in
 * chat-forked every process has its own GIL, so it changes nothing there.
 */
#ifndef C10K_BLOCKING_H
#define C10K_BLOCKING_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "conn.h"

/* Set by the model when a shutdown starts / when its grace period is over. */
extern atomic_bool blocking_stopping, blocking_hard_stop;
extern atomic_ullong blocking_deadline_ms; /* app_now_ms() by which to be gone */

/* The signal mask to sleep with: the thread's own, with `wake` let through,
 * so that a wake-up signal interrupts the sleep and cannot be lost (it stays
 * pending until the sleep unblocks it). Call once, before any thread. */
void blocking_init(int wake_signal);
extern sigset_t blocking_wake_mask;

/* recv what is there into the connection (or EOF, or a reset). */
void blocking_read(int fd, struct conn *c);
/* Write what the socket takes now without blocking; the rest waits. */
void blocking_flush(int fd, struct conn *c);
/* Carry out the connection's deferred action right here, blocking, then
 * conn_resume(). */
void blocking_run_action(struct conn *c, struct action *a);

#endif
