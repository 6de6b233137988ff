/* chat-threaded: what main.c and serve.c share. */
#ifndef C10K_THREADED_H
#define C10K_THREADED_H

#include <stdatomic.h>
#include <stdbool.h>

#include "app.h"

extern struct app app;
extern atomic_uint live_conns;

/* The worker's job: serve one accepted connection until it closes. */
void serve_connection(int fd, void *arg);
/* Wake every worker blocked in ppoll (they then look at `stopping`). */
void wake_all_workers(void);
/* Install the wake-up signal; call before any worker starts. */
void serve_init(void);

extern const struct room_sink threaded_sink;

#endif
