/* hiredis async contexts driven by an epoll set of their own.
 *
 * hiredis asks for five hooks (add/del read, add/del write, cleanup); this
 * maps them onto one epoll descriptor, which a blocking model's loop watches
 * like any other descriptor (epoll sets nest). Unlike hiredis 0.14's own
 * adapters, an error or hang-up on the socket is passed on as readiness of
 * whatever the context waits for, so hiredis reads the error and disconnects
 * instead of waiting forever (PITFALLS B6).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "redis_epoll.h"

struct redis_ev {
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    struct redis_epoll *re;
    int fd;
    uint32_t events;
    struct redis_ev *next_dead;
};

struct redis_epoll {
    int epfd;
    bool dispatching;
    struct redis_ev *dead; /* cleaned up during a dispatch: freed after it */
};

static void update(struct redis_ev *e, uint32_t events)
{
    if (events == e->events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = e};
    /* No interest at all is a DEL: a hang-up is reported even for an empty
     * mask, and nobody would read it. */
    if (events == 0)
        epoll_ctl(e->re->epfd, EPOLL_CTL_DEL, e->fd, NULL);
    else
        epoll_ctl(e->re->epfd, e->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, e->fd, &ev);
    e->events = events;
}

static void add_read(void *p) { update(p, ((struct redis_ev *)p)->events | EPOLLIN); }
static void del_read(void *p) { update(p, ((struct redis_ev *)p)->events & ~(uint32_t)EPOLLIN); }
static void add_write(void *p) { update(p, ((struct redis_ev *)p)->events | EPOLLOUT); }
static void del_write(void *p) { update(p, ((struct redis_ev *)p)->events & ~(uint32_t)EPOLLOUT); }

/* Called by hiredis while it frees the context, before it closes the
 * socket. An event for e may still be in the batch being dispatched, so
 * inside a dispatch e is only marked dead. */
static void cleanup(void *p)
{
    struct redis_ev *e = p;
    update(e, 0);
    e->ac = NULL;
    if (e->re->dispatching) {
        e->next_dead = e->re->dead;
        e->re->dead = e;
    } else {
        free(e);
    }
}

struct redis_epoll *redis_epoll_new(void)
{
    struct redis_epoll *re = calloc(1, sizeof *re);
    if (!re)
        return NULL;
    re->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (re->epfd < 0) {
        free(re);
        return NULL;
    }
    return re;
}

int redis_epoll_fd(const struct redis_epoll *re) { return re->epfd; }

int redis_epoll_attach(void *loop, redisAsyncContext *ac)
{
    if (ac->ev.data)
        return -1;
    struct redis_ev *e = calloc(1, sizeof *e);
    if (!e)
        return -1;
    e->ac = ac;
    e->re = loop;
    e->fd = ac->c.fd;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = e;
    return 0;
}

void redis_epoll_dispatch(struct redis_epoll *re)
{
    struct epoll_event evs[8];
    int n = epoll_wait(re->epfd, evs, 8, 0);
    re->dispatching = true;
    for (int i = 0; i < n; i++) {
        struct redis_ev *e = evs[i].data.ptr;
        uint32_t got = evs[i].events;
        /* An error or hang-up wakes whatever the context waits for: hiredis
         * then meets the error itself (as hiredis 1.x's libuv adapter does). */
        if (got & (EPOLLERR | EPOLLHUP))
            got |= e->events;
        if (e->ac && (got & EPOLLIN))
            redisAsyncHandleRead(e->ac);
        if (e->ac && (got & EPOLLOUT))
            redisAsyncHandleWrite(e->ac);
    }
    re->dispatching = false;
    while (re->dead) {
        struct redis_ev *e = re->dead;
        re->dead = e->next_dead;
        free(e);
    }
}

void redis_epoll_free(struct redis_epoll *re)
{
    if (!re)
        return;
    close(re->epfd);
    free(re);
}
