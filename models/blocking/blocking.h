/* Serving one connection with blocking calls: what a chat-threaded worker
 * and a chat-forked child do the same way. Each call drops the GIL (when
 * --gil is on) around the part that can wait, as CPython does; in
 * chat-forked every process has its own GIL, so it changes nothing there.
 *
 * The loop itself is blocking_serve(). What differs between the two models
 * is only how chat reaches the connection — a worker's inbox, filled by
 * other threads, or a child's link to the hub in the parent — and that is
 * what its hooks are for.
 */
#ifndef C10K_BLOCKING_H
#define C10K_BLOCKING_H

#include <poll.h>
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

/* What is a model's own in blocking_serve()'s loop, in the order a turn
 * calls them. Each is optional (NULL), gets the `ctx` given to
 * blocking_serve, and runs with the GIL held. */
struct blocking_hooks {
    /* First in every turn: take what others queued for this connection
     * (chat-threaded: its inbox), so that it goes out before anything the
     * turn adds, a close 1001 included. */
    void (*take)(void *ctx, struct conn *c);
    /* The server is stopping; called once, right before conn_shutdown(). */
    void (*shutdown)(void *ctx, struct conn *c);
    /* Right before the client's output is written, and right after it
     * (`before`: the bytes queued then; c->out.bytes: what is left). */
    void (*before_flush)(void *ctx, struct conn *c);
    void (*after_flush)(void *ctx, struct conn *c, size_t before);
    /* The core wants to read: may the client be read now? */
    bool (*may_read)(void *ctx);
    /* May what is queued for the client be written now? NULL: always. */
    bool (*may_write)(void *ctx, const struct conn *c);
    /* A second descriptor to wait on beside the client's: fill *p and say
     * true. Its revents go to extra_ready after the client's are handled. */
    bool (*extra_fd)(void *ctx, struct pollfd *p);
    void (*extra_ready)(void *ctx, struct conn *c, short revents);
    /* The last word before the thread sleeps in ppoll: false means "news
     * came meanwhile, take another turn instead". woke follows the sleep. */
    bool (*may_sleep)(void *ctx);
    void (*woke)(void *ctx);
};

/* Serve c on fd until it must close: take news, write what the socket
 * takes, carry out a deferred action, then sleep in one ppoll (the wake-up
 * signal let through) until the client, the deadline or a signal wakes it,
 * read, and again. Returns when c->close says the socket must close now, or
 * once the output is flushed; closing, lingering and conn_free() are the
 * caller's. Called and returns with the GIL held. */
void blocking_serve(int fd, struct conn *c, const struct blocking_hooks *h, void *ctx);

#endif
