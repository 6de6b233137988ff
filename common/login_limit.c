#include "login_limit.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct failures {
    struct login_peer peer;
    time_t since; /* start of this peer's window; 0 = free entry */
    unsigned count;
};

struct login_limit {
    pthread_mutex_t lock; /* process-shared, robust */
    pid_t slot_pid[LOGIN_MAX_INFLIGHT]; /* 0 = free */
    struct failures fail[LOGIN_ADDRS];
};

void login_peer_from(struct login_peer *p, const struct sockaddr *sa)
{
    memset(p, 0, sizeof *p);
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(p->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa && sa->sa_family == AF_INET) {
        p->addr[10] = p->addr[11] = 0xff;
        memcpy(p->addr + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
}

struct login_limit *login_limit_new(void)
{
    struct login_limit *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (l == MAP_FAILED)
        return NULL;
    pthread_mutexattr_t a;
    bool ok = pthread_mutexattr_init(&a) == 0;
    ok = ok && pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0 &&
         pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0 &&
         pthread_mutex_init(&l->lock, &a) == 0;
    pthread_mutexattr_destroy(&a);
    if (!ok) {
        munmap(l, sizeof *l);
        return NULL;
    }
    return l;
}

void login_limit_free(struct login_limit *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    munmap(l, sizeof *l);
}

/* The critical sections only touch the table: a holder that died inside
 * one left it consistent enough (at worst one count off). */
static void lock(struct login_limit *l)
{
    if (pthread_mutex_lock(&l->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&l->lock);
}

/* The peer's entry if its window is still open; an expired one is freed. */
static struct failures *find(struct login_limit *l, const struct login_peer *p, time_t now)
{
    for (int i = 0; i < LOGIN_ADDRS; i++) {
        struct failures *f = &l->fail[i];
        if (!f->since || memcmp(&f->peer, p, sizeof *p) != 0)
            continue;
        if (now - f->since < LOGIN_WINDOW_S)
            return f;
        f->since = 0; /* its window is over: forget it */
        return NULL;
    }
    return NULL;
}

/* A slot whose holder is another process that no longer exists (a
 * chat-forked child killed mid-check) is free again. */
static bool slot_free(pid_t holder, pid_t self)
{
    return holder == 0 || (holder != self && kill(holder, 0) != 0 && errno == ESRCH);
}

enum login_gate login_limit_enter(struct login_limit *l, const struct login_peer *p, time_t now,
                                  int *slot, unsigned *retry_after_s)
{
    lock(l);
    struct failures *f = find(l, p, now);
    if (f && f->count >= LOGIN_MAX_FAILURES) {
        *retry_after_s = (unsigned)(f->since + LOGIN_WINDOW_S - now);
        pthread_mutex_unlock(&l->lock);
        return LOGIN_REFUSED;
    }
    pid_t self = getpid();
    for (int i = 0; i < LOGIN_MAX_INFLIGHT; i++)
        if (slot_free(l->slot_pid[i], self)) {
            l->slot_pid[i] = self;
            *slot = i;
            pthread_mutex_unlock(&l->lock);
            return LOGIN_GO;
        }
    pthread_mutex_unlock(&l->lock);
    *retry_after_s = 1; /* a check takes a fraction of a second */
    return LOGIN_BUSY;
}

void login_limit_leave(struct login_limit *l, int slot, const struct login_peer *p, bool failed,
                       time_t now)
{
    lock(l);
    if (slot >= 0 && slot < LOGIN_MAX_INFLIGHT)
        l->slot_pid[slot] = 0;
    if (failed) {
        struct failures *f = find(l, p, now);
        if (!f) {
            /* A free entry, or else the one whose window started first:
             * an attacker with many addresses can only push out the
             * oldest counts, never make the table grow. */
            f = &l->fail[0];
            for (int i = 0; i < LOGIN_ADDRS && f->since; i++)
                if (!l->fail[i].since || l->fail[i].since < f->since)
                    f = &l->fail[i];
            *f = (struct failures){*p, now, 0};
        }
        f->count++;
    }
    pthread_mutex_unlock(&l->lock);
}
