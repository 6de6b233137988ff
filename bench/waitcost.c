/* waitcost: what one wait call costs with n idle descriptors and one ready,
 * for select(), poll() and epoll_wait() — the anchor under "why epoll".
 *
 *   waitcost [N ...]      default N = 10 100 1000 10000
 *
 * The descriptors are n/2 socketpairs, both ends watched, so n descriptors
 * cost n, not 2n, of the process's limit; nothing is ever written to them
 * but one byte into one pair, whose other end is then the one ready
 * descriptor. Each call is what a real loop does: select() rebuilds its
 * fd_set (the kernel overwrites it) and scans it; poll() hands the whole
 * array to the kernel, which polls every entry; epoll_wait() returns the
 * ready list that the kernel keeps as events arrive, whatever n is. select()
 * is measured only while every descriptor is below FD_SETSIZE.
 *
 * Prints one line per method and n: "METHOD N NS_PER_CALL", the median of 7
 * batches, each of enough calls to take about 20 ms. Bounded: at most
 * 10 000 descriptors (the limit here is 20 000 per process), a fixed number
 * of batches.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_N 10000
#define BATCHES 7

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum method { M_SELECT, M_POLL, M_EPOLL };
static const char *const names[] = {"select", "poll", "epoll"};

struct set {
    int *fd;
    int n, maxfd;
    int extra_fd;        /* an odd n: the unwatched end of the last pair, or -1 */
    struct pollfd *pfd;
    int ep;
};

/* One call of the method; returns the number of ready descriptors. */
static int wait_once(enum method m, struct set *s)
{
    if (m == M_SELECT) {
        fd_set rd;
        FD_ZERO(&rd);
        for (int i = 0; i < s->n; i++)
            FD_SET(s->fd[i], &rd);
        struct timeval tv = {0, 0};
        return select(s->maxfd + 1, &rd, NULL, NULL, &tv);
    }
    if (m == M_POLL)
        return poll(s->pfd, (nfds_t)s->n, 0);
    struct epoll_event ev[8];
    return epoll_wait(s->ep, ev, 8, 0);
}

/* Median ns per call of method m over BATCHES batches. */
static double measure(enum method m, struct set *s)
{
    /* Calibrate: how many calls make a batch of about 20 ms. */
    long calls = 1;
    for (;;) {
        double t0 = now_s();
        for (long i = 0; i < calls; i++)
            if (wait_once(m, s) != 1)
                return -1;
        double dt = now_s() - t0;
        if (dt > 0.005 || calls >= 1L << 22) {
            calls = (long)((double)calls * 0.02 / (dt > 0 ? dt : 1e-9)) + 1;
            break;
        }
        calls *= 4;
    }
    double b[BATCHES];
    for (int k = 0; k < BATCHES; k++) {
        double t0 = now_s();
        for (long i = 0; i < calls; i++)
            if (wait_once(m, s) != 1)
                return -1;
        b[k] = (now_s() - t0) * 1e9 / (double)calls;
    }
    qsort(b, BATCHES, sizeof b[0], cmp_double);
    return b[BATCHES / 2];
}

static int run(int n)
{
    struct set s = {.n = n, .ep = -1, .extra_fd = -1};
    s.fd = calloc((size_t)n, sizeof *s.fd);
    s.pfd = calloc((size_t)n, sizeof *s.pfd);
    if (!s.fd || !s.pfd)
        return -1;
    int rc = -1;
    int made = 0;
    for (; made + 1 < n; made += 2)
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s.fd + made) < 0)
            goto out;
    if (made < n) { /* an odd n: one more pair, one end watched */
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) < 0)
            goto out;
        s.fd[made++] = pair[0];
        s.extra_fd = pair[1];
    }
    s.maxfd = 0;
    s.ep = epoll_create1(0);
    if (s.ep < 0)
        goto out;
    for (int i = 0; i < n; i++) {
        s.pfd[i] = (struct pollfd){.fd = s.fd[i], .events = POLLIN};
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = s.fd[i]};
        if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.fd[i], &ev) < 0)
            goto out;
        if (s.fd[i] > s.maxfd)
            s.maxfd = s.fd[i];
    }
    /* One byte into the middle pair: its other end is the one ready. */
    int mid = (n / 2) & ~1;
    if (write(s.fd[mid], "x", 1) != 1)
        goto out;
    for (enum method m = M_SELECT; m <= M_EPOLL; m++) {
        if (m == M_SELECT && s.maxfd >= FD_SETSIZE)
            continue;
        double ns = measure(m, &s);
        if (ns < 0)
            goto out;
        printf("%s %d %.1f\n", names[m], n, ns);
        fflush(stdout);
    }
    rc = 0;
out:
    for (int i = 0; i < made; i++)
        close(s.fd[i]);
    if (s.extra_fd >= 0)
        close(s.extra_fd);
    if (s.ep >= 0)
        close(s.ep);
    free(s.fd);
    free(s.pfd);
    return rc;
}

int main(int argc, char **argv)
{
    static const int def[] = {10, 100, 1000, 10000};
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    int count = argc > 1 ? argc - 1 : (int)(sizeof def / sizeof def[0]);
    for (int i = 0; i < count; i++) {
        int n = argc > 1 ? atoi(argv[i + 1]) : def[i];
        if (n < 2 || n > MAX_N) {
            fprintf(stderr, "waitcost: n must be 2..%d\n", MAX_N);
            return 2;
        }
        if (run(n) < 0) {
            perror("waitcost");
            return 1;
        }
    }
    return 0;
}
