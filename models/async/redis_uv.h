/* hiredis async contexts on a libuv loop (redis_uv.c). */
#ifndef C10K_REDIS_UV_H
#define C10K_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* A backplane_loop.attach: loop is the uv_loop_t *. 0, or -1 (nothing kept). */
int redis_uv_attach(void *loop, redisAsyncContext *ac);

#endif
