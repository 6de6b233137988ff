/* hiredis async contexts driven by an epoll set of their own (redis_epoll.c),
 * for the two blocking models: chat-threaded's backplane thread polls its
 * one descriptor, chat-forked's parent watches it in its epoll loop. The
 * async model has libuv for this (models/async/redis_uv.c). */
#ifndef C10K_REDIS_EPOLL_H
#define C10K_REDIS_EPOLL_H

#include <hiredis/async.h>

struct redis_epoll;
struct redis_epoll *redis_epoll_new(void);
int redis_epoll_fd(const struct redis_epoll *re);
int redis_epoll_attach(void *re, redisAsyncContext *ac); /* a backplane_loop.attach */
/* The epoll descriptor is readable: handle what is ready, without waiting. */
void redis_epoll_dispatch(struct redis_epoll *re);
void redis_epoll_free(struct redis_epoll *re); /* after backplane_free */

#endif
