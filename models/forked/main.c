/* chat-forked: a process per connection.
 *
 * How it works, in the order this file sets it up:
 *
 *  1. The parent listens and waits in epoll for three kinds of news: a new
 *     connection, a signal (a child ended, or we are asked to stop), and
 *     chat traffic from its children (the hub, hub.c).
 *  2. For each connection a process is fork()ed. The child gets a copy of
 *     everything — the users, the session key, the code — and serves that
 *     one client with blocking calls until it closes, then exits (child.c).
 *     A crash, a leak, a /cpu that burns a core: all stay inside that child.
 *     The fork is not done here but in a small process forked at start, the
 *     spawner (spawner.c): a fork copies the caller's descriptor table and
 *     page tables, and this process holds one link per live child, so each
 *     fork from here would cost more the more clients are connected. The
 *     child still ends up ours (a "subreaper" adopts it): we reap it, see
 *     its exit status and signal it at shutdown as if we had forked it.
 *  3. The parent closes its copy of the client socket at once (or the client
 *     would never see the connection end) and reaps every child that exits
 *     (SIGCHLD through a signalfd), so no zombie is ever left.
 *  4. Processes share no memory, so chat crosses processes through the
 *     parent: each child has a socketpair to the hub, which owns the room.
 *
 * The cost is one fork() per connection — page tables copied, a process
 * created and destroyed — and one process alive per open connection, with
 * its own memory: /stats adds up the RSS of the whole tree to show it.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backplane.h"
#include "forked.h"
#include "pidset.h"
#include "net.h"
#include "proc_memory.h"
#include "redis_epoll.h"
#include "stop_signal.h"
#include "timing.h"

struct app app;
struct forked_shared *shared;

/* epoll tags (forked.h): each registered descriptor's data.ptr points at
 * one of these, or at a hub link. */
struct tag {
    enum epoll_tag kind;
};
struct refused {
    enum epoll_tag kind;
    int fd;
    uint64_t deadline;
    struct refused *next;
};

static int epfd, listener = -1, sigfd;
static struct hub *hub;
/* --redis: the parent alone talks to Redis and fans the shared room out to
 * its children through the hub, as it does its own room. */
static struct redis_epoll *bp_loop;
static struct backplane *bp;
static struct refused *refused;
static int spawner = -1;     /* our end of the spawner's socket */
static pid_t spawner_pid;
static unsigned spawns_out;  /* requests not yet answered */
/* One descriptor held back per unanswered request, given up just before
 * its answer is read: the link that comes with the answer then always has
 * a slot. A server out of descriptors refuses (503) at the request, as it
 * did when it made the socketpair itself, instead of losing an answer. */
static int reserved[SPAWN_IN_FLIGHT];
static unsigned nreserved;
static bool spawner_gone;
static struct pidset children; /* the live connection processes */
static struct pidset ended;    /* those whose link closed: exiting */
static bool ended_lost;        /* one could not be noted: reap them all */
static bool reap_again;        /* reap_children left zombies behind */
static bool stopping, child_failed;
static bool children_told; /* SIGTERM sent to the children: shutting down */
static bool listener_paused; /* SPAWN_IN_FLIGHT reached: accept nothing */
static bool stop_requested; /* SIGINT/SIGTERM seen: shut down after this batch */
static uint64_t settle_end; /* --redis: SIGTERM waits for our last events, see below */
static uint64_t stop_deadline;

static void stats(struct app *a, struct stats_view *v)
{
    (void)a;
    /* Asked in a child: the honest cost is the whole tree, parent included. */
    long threads, procs;
    v->pid = (int)shared->server;
    proc_tree_memory((int)shared->server, &v->rss_bytes, &v->pss_bytes, &threads, &procs);
    v->threads = threads;
    /* Kept by the parent (see forked.h): each child is one connection. */
    long kids = atomic_load(&shared->children);
    long exiting = atomic_load(&shared->exiting);
    v->processes = 2 + kids; /* and the spawner */
    /* A child whose link has closed has closed its client too, or is
     * lingering on it before the close (child.c): it is a process still,
     * no longer a connection. Read apart, the two may cross: never below 0. */
    v->connections = kids > exiting ? kids - exiting : 0;
    v->ws_clients = atomic_load(&shared->members);
}

/* --- children ------------------------------------------------------------ */

/* A child can exit, and be reaped, before the spawner's answer naming it
 * arrives (its client was gone at once): remembered here, so that the
 * answer does not add a pid that may already belong to someone else. */
static pid_t reaped_early[SPAWN_IN_FLIGHT];
static unsigned nreaped_early;

static void reaped(pid_t pid, int status)
{
    if (pid == spawner_pid) {
        spawner_gone = true;
        if (!stopping || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "chat-forked: the spawner ended unexpectedly\n");
            child_failed = true;
        }
        return;
    }
    if (pidset_remove(&ended, pid))
        atomic_fetch_sub(&shared->exiting, 1);
    if (!pidset_remove(&children, pid) && nreaped_early < SPAWN_IN_FLIGHT)
        reaped_early[nreaped_early++] = pid;
    atomic_fetch_sub(&shared->children, 1);
    /* A child that exits non-zero (LeakSanitizer's code, say) is a bug:
     * the parent's own exit status will say so. SIGKILL at the end of
     * the grace period is not. */
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        child_failed = true;
}

/* The hub saw this child's link close: it is exiting, or has exited. */
static void link_ended(pid_t pid)
{
    if (!pidset_contains(&children, pid))
        return;
    if (pidset_add(&ended, pid))
        atomic_fetch_add(&shared->exiting, 1);
    else
        ended_lost = true; /* out of memory: the next round walks them all */
}

/* A round of reaping, after SIGCHLD. waitpid(-1) costs a walk of the
 * kernel's list of our children up to the first zombie, and the newest
 * children are at its end: at a shutdown of 10 000 members, the 1 000 who
 * had just left (the newest) took a full walk each, a second of this core.
 * So children are reaped by pid where we know who is exiting — those whose
 * link closed, O(1) in the kernel — and waitpid(-1) reaps the others (the
 * spawner, a child that died before its link was ours), a few per round so
 * that no round is a walk per zombie, and only in a round that reaped
 * nobody by pid: the call that finds no zombie walks every child, and at a
 * shutdown of 10 000 that was a walk each round while they all exited
 * (perf: wait_consider_task, 6 % of the core). Such a round comes as soon
 * as the exits known by pid are done. */
#define REAP_BLIND_MAX 16

static void reap_children(void)
{
    int status;
    unsigned by_pid = 0;
    for (unsigned i = 0; i < ended.cap; i++) {
        pid_t p = ended.slot[i];
        if (p && waitpid(p, &status, WNOHANG) == p) {
            reaped(p, status);
            by_pid++;
            i--; /* the removal may have moved a later pid into slot i */
        }
    }
    pid_t pid = 0;
    unsigned k = 0;
    if (by_pid > 0 && !ended_lost) {
        reap_again = true; /* the others, in a round with nobody known */
        return;
    }
    while ((k++ < REAP_BLIND_MAX || ended_lost) && (pid = waitpid(-1, &status, WNOHANG)) > 0)
        reaped(pid, status);
    if (pid > 0)
        reap_again = true; /* stopped at the bound: more may wait, next turn */
    else
        ended_lost = false; /* that walk found every zombie there was */
}

static void refuse(int fd)
{
    struct refused *r = malloc(sizeof *r);
    net_send_refusal(fd, app_busy_response(&app)); /* then linger, in this loop */
    struct epoll_event ev = {.events = EPOLLIN};
    if (!r) {
        close(fd);
        return;
    }
    *r = (struct refused){TAG_REFUSED, fd, app_now_ms() + REFUSED_LINGER_MS, refused};
    ev.data.ptr = r;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        free(r);
        return;
    }
    refused = r;
}

static void end_refused(struct refused *r)
{
    struct refused **p = &refused;
    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    epoll_ctl(epfd, EPOLL_CTL_DEL, r->fd, NULL); /* see hub.c: drop_link */
    close(r->fd);
    free(r);
}

static void spawn(int fd)
{
    /* A connection its client has already given up on is not worth a fork:
     * after a storm of aborted connects the backlog holds thousands of
     * them, and forking for each, one after the other — thousands of
     * children that only start, see the end and exit, all competing for
     * the CPU with this loop — kept live clients waiting for tens of
     * seconds. Given up means reset, or closed (FIN) with nothing sent: a
     * request followed by a half-close is still answered. */
    struct pollfd dead = {fd, POLLRDHUP, 0};
    int unread = 0;
    if (poll(&dead, 1, 0) == 1 &&
        ((dead.revents & (POLLERR | POLLHUP)) ||
         ((dead.revents & POLLRDHUP) && ioctl(fd, FIONREAD, &unread) == 0 && unread == 0))) {
        close(fd);
        return;
    }
    int reserve = -1;
    /* Counted before it is asked for: the child may serve a /stats, which
     * must count it, before this process runs again. */
    atomic_fetch_add(&shared->children, 1);
    if (atomic_load(&shared->children) > (long)app.cfg.max_conns || stopping ||
        spawner_gone || nreserved == SPAWN_IN_FLIGHT ||
        (reserve = fcntl(spawner, F_DUPFD_CLOEXEC, 0)) < 0 || spawner_request(spawner, fd) < 0) {
        atomic_fetch_sub(&shared->children, 1);
        if (reserve >= 0)
            close(reserve);
        refuse(fd);
        return;
    }
    reserved[nreserved++] = reserve;
    spawns_out++;
    close(fd); /* the child has its own; ours would keep the connection open */
}

/* The spawner's answers: each new child, its pid and our end of its link. */
static void on_spawned(void)
{
    pid_t pid;
    int link, got;
    for (;;) {
        if (nreserved > 0)
            close(reserved[--nreserved]); /* the slot for this answer's link */
        got = spawner_reply(spawner, &pid, &link);
        if (got == 0) { /* nothing yet: hold the slot again (it is free) */
            int again = nreserved < spawns_out ? fcntl(spawner, F_DUPFD_CLOEXEC, 0) : -1;
            if (again >= 0)
                reserved[nreserved++] = again;
            return;
        }
        if (got < 0) {
            fprintf(stderr, "chat-forked: the spawner's socket failed: %s\n", strerror(errno));
            spawner_gone = true;
            epoll_ctl(epfd, EPOLL_CTL_DEL, spawner, NULL);
            stop_requested = true; /* no more connections can be served */
            child_failed = true;
            spawns_out = 0; /* those answers will never come */
            return;
        }
        spawns_out--;
        if (got == 2) {
            fprintf(stderr, "chat-forked: fork: %s\n", strerror(errno));
            atomic_fetch_sub(&shared->children, 1); /* the client is closed */
            continue;
        }
        bool early = false;
        for (unsigned i = 0; i < nreaped_early && !early; i++)
            if (reaped_early[i] == pid) {
                reaped_early[i] = reaped_early[--nreaped_early];
                early = true;
            }
        /* A child we could not keep track of is ended now, not orphaned later;
         * SIGCHLD still reaps it and takes it off the count. Even a child
         * already reaped gets its link: what it sent (a leave) is read. */
        if (!early && !pidset_add(&children, pid)) {
            kill(pid, SIGKILL);
            close(link);
        } else if (hub_add_child(hub, link, pid) < 0) {
            if (!early)
                kill(pid, SIGKILL);
            close(link);
        } else if (children_told && !early) {
            kill(pid, SIGTERM); /* born after the shutdown began */
        }
    }
}

/* While SPAWN_IN_FLIGHT requests are unanswered the listener is taken out of
 * the epoll set (it is level-triggered: left in, it would wake us at once,
 * again and again), and put back as answers come in. */
static void pace_listener(void)
{
    bool full = spawns_out >= SPAWN_IN_FLIGHT;
    if (listener < 0 || full == listener_paused)
        return;
    static struct tag listen_tag = {TAG_LISTENER};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_tag};
    epoll_ctl(epfd, full ? EPOLL_CTL_DEL : EPOLL_CTL_ADD, listener, &ev);
    listener_paused = full;
}

/* --- the parent's loop --------------------------------------------------- */

static void close_room(void);

static void start_shutdown(void)
{
    stopping = true;
    stop_deadline = app_now_ms() + SHUTDOWN_GRACE_MS;
    if (!listener_paused)
        epoll_ctl(epfd, EPOLL_CTL_DEL, listener, NULL);
    close(listener);
    listener = -1;
    /* --redis: a leave published a moment ago must still reach the members
     * here before they are closed; the loop waits for it, briefly, and
     * then calls close_room. */
    if (bp && !backplane_settled(bp)) {
        settle_end = app_now_ms() + BACKPLANE_SETTLE_MS;
        return;
    }
    close_room();
}

static void close_room(void)
{
    settle_end = 0;
    hub_flush(hub); /* what came back meanwhile, to the children before SIGTERM */
    hub_close_room(hub); /* everyone is leaving: no N^2 leaves */
    /* Each child closes its WebSocket with 1001 or finishes its answer.
     * Telling them is not instant: each child woken by its signal runs its
     * shutdown on this core before the next kill() returns (10 000 took
     * 4-8 s here, pinned to one core). Past the grace period the rest get
     * SIGKILL instead: what is left is dropped, as at the deadline below. */
    bool late = false;
    unsigned told = 0;
    for (unsigned i = 0; i < children.cap; i++) {
        if (!children.slot[i])
            continue;
        if (told++ % 64 == 0 && !late)
            late = app_now_ms() >= stop_deadline;
        kill(children.slot[i], late ? SIGKILL : SIGTERM);
    }
    children_told = true; /* and those the spawner still names, on arrival */
}

/* Reaping is batched: at most once every REAP_EVERY_MS. waitpid(-1) walks
 * the kernel's list of our children until it meets a zombie, and the last
 * call of each round, the one that finds none left, walks all of them: with
 * 9 000 children exiting one by one at a shutdown, a round per SIGCHLD was
 * 9 000 walks of 9 000 (perf: wait_consider_task), seconds of the parent's
 * time while the exited children waited to be reaped. A zombie waits 20 ms
 * at most; the counts (/stats) drop when it is reaped. */
#define REAP_EVERY_MS 20
static uint64_t reap_due;    /* a SIGCHLD came: reap at this time (0: none) */
static uint64_t reaped_at;   /* the last round */

static void on_signals(void)
{
    struct signalfd_siginfo si;
    while (read(sigfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
            if (!reap_due)
                reap_due = reaped_at + REAP_EVERY_MS;
        } else if (!stopping) {
            stop_signal_taken(); /* the hub announces no leave from now on */
            stop_requested = true;
        }
    }
}

static void reap_if_due(void)
{
    if (reap_due && app_now_ms() >= reap_due) {
        reap_due = 0;
        reaped_at = app_now_ms();
        reap_children();
        if (reap_again) {
            reap_again = false;
            reap_due = reaped_at + REAP_EVERY_MS;
        }
    }
}

/* Before the room closes at shutdown, one pass over what children already
 * sent — a member's leave, written before its close was answered — so that
 * nothing said before the signal is lost with the room. Called between
 * batches: no event of a batch can point at a link this frees. */
static void settle_hub(void)
{
    struct epoll_event ev[256];
    int n = epoll_wait(epfd, ev, 256, 0);
    for (int i = 0; i < n; i++) {
        struct tag *t = ev[i].data.ptr;
        if (t->kind == TAG_LINK)
            hub_on_event(hub, t, ev[i].events);
    }
}

static int next_timeout(void)
{
    uint64_t now = app_now_ms(), next = UINT64_MAX;
    for (struct refused *r = refused; r; r = r->next)
        if (r->deadline < next)
            next = r->deadline;
    if (stopping && stop_deadline < next)
        next = stop_deadline;
    uint64_t held = hub_next_deadline(hub);
    if (held && held < next)
        next = held;
    if (hub_busy(hub))
        next = now;
    if (next > now + 1000)
        next = now + 1000; /* the hub's heap is trimmed once a second */
    if (bp && next > now + BACKPLANE_TICK_MS)
        next = now + BACKPLANE_TICK_MS;
    if (settle_end && next > now + 5)
        next = now + 5;
    if (reap_due && reap_due < next)
        next = reap_due;
    return next == UINT64_MAX ? -1 : next <= now ? 0 : (int)(next - now);
}

int main(int argc, char **argv)
{
    int rc = app_init(&app, "forked", argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    /* Counters every process updates: one page shared by the whole tree. */
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        return 1;
    app.n = &shared->n;
    app.stats = stats;
    shared->server = getpid();

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    /* The connection processes are forked by the spawner's go-betweens,
     * which exit at once: as a subreaper, this process adopts them. The
     * spawner is forked now, while this process is small (spawner.c). */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 || (spawner_pid = spawner_start(&spawner)) < 0) {
        fprintf(stderr, "chat-forked: cannot start the spawner: %s\n", strerror(errno));
        return 1;
    }
    sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    hub = hub_new(epfd, link_ended);
    listener = net_listen(&app.cfg, "forked");
    if (sigfd < 0 || epfd < 0 || !hub || listener < 0)
        return 1;
    static struct tag listen_tag = {TAG_LISTENER}, signal_tag = {TAG_SIGNALS},
                      spawner_tag = {TAG_SPAWNER};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_tag};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
    ev.data.ptr = &signal_tag;
    epoll_ctl(epfd, EPOLL_CTL_ADD, sigfd, &ev);
    ev.data.ptr = &spawner_tag;
    epoll_ctl(epfd, EPOLL_CTL_ADD, spawner, &ev);
    static struct tag redis_tag = {TAG_REDIS};
    if (app.cfg.redis) {
        char err[256];
        bp_loop = redis_epoll_new();
        bp = bp_loop ? backplane_new(app.cfg.redis, hub_room(hub),
                                     &(struct backplane_loop){redis_epoll_attach, bp_loop}, false,
                                     err, sizeof err)
                     : NULL;
        if (!bp) {
            fprintf(stderr, "chat-forked: %s\n", bp_loop ? err : "out of memory");
            return 1;
        }
        ev.data.ptr = &redis_tag;
        epoll_ctl(epfd, EPOLL_CTL_ADD, redis_epoll_fd(bp_loop), &ev);
    }

    struct epoll_event events[256];
    uint64_t trimmed = app_now_ms();
    while (!stopping || children.count > 0 || spawns_out > 0) {
        int n = epoll_wait(epfd, events, 256, next_timeout());
        for (int i = 0; i < n; i++) {
            struct tag *t = events[i].data.ptr;
            switch (t->kind) {
            case TAG_LISTENER:
                /* A few per wakeup, so chat traffic is not starved by a storm. */
                for (int k = 0; k < 64 && listener >= 0 && !stop_requested &&
                                spawns_out < SPAWN_IN_FLIGHT; k++) {
                    int fd = net_accept(listener);
                    if (fd < 0)
                        break;
                    spawn(fd);
                }
                break;
            case TAG_SIGNALS:
                on_signals();
                break;
            case TAG_REDIS:
                redis_epoll_dispatch(bp_loop);
                break;
            case TAG_SPAWNER:
                on_spawned();
                break;
            case TAG_REFUSED: {
                struct refused *r = (struct refused *)t;
                char sink[4096];
                ssize_t got = recv(r->fd, sink, sizeof sink, MSG_DONTWAIT);
                if (got == 0 || (got < 0 && errno != EAGAIN))
                    end_refused(r);
                break;
            }
            case TAG_LINK:
                hub_on_event(hub, t, events[i].events);
                break;
            }
        }
        reap_if_due();
        if (stop_requested && !stopping) {
            settle_hub();
            hub_flush(hub); /* to the children before they get SIGTERM */
            start_shutdown();
        }
        pace_listener();
        hub_tick(hub);
        if (bp)
            backplane_tick(bp);
        if (settle_end && (backplane_settled(bp) || app_now_ms() >= settle_end))
            close_room();
        hub_flush(hub);
        uint64_t now = app_now_ms();
        if (now - trimmed >= 1000) {
            malloc_trim(0); /* as chat-async does, see its main.c */
            trimmed = now;
        }
        for (struct refused *r = refused, *next; r; r = next) {
            next = r->next;
            if (r->deadline <= now)
                end_refused(r);
        }
        if (stopping && now >= stop_deadline) {
            for (unsigned i = 0; i < children.cap; i++)
                if (children.slot[i])
                    kill(children.slot[i], SIGKILL); /* out of time: dropped */
            if (spawns_out > 0 && !spawner_gone) {
                kill(spawner_pid, SIGKILL); /* hung: what it owes us is lost */
                spawns_out = 0;
            }
            stop_deadline = UINT64_MAX;
        }
    }
    /* Our end closed, the spawner sees end of file and exits; we reap it. */
    close(spawner);
    while (nreserved > 0)
        close(reserved[--nreserved]);
    int status = 0;
    while (!spawner_gone && waitpid(spawner_pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!spawner_gone && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        child_failed = true;
    while (refused)
        end_refused(refused);
    backplane_free(bp); /* sends the leaves of room_close */
    redis_epoll_free(bp_loop);
    hub_free(hub);
    pidset_free(&children);
    pidset_free(&ended);
    close(epfd);
    close(sigfd);
    app_free(&app);
    munmap(shared, sizeof *shared);
    return child_failed ? 1 : 0;
}
