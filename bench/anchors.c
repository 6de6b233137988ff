/* lab-anchors: the machine's anchors that ./lab bench measures next to the
 * servers (bench/lab_bench.py's docstring says what each one means).
 *
 *   lab-anchors fork N     median microseconds per fork() + _exit(0) +
 *                          waitpid(), of 9 batches of N/9+1
 *   lab-anchors fork-live K N [fds]
 *                          the same fork measure, from a parent with K live
 *                          children; with "fds", each child was forked as
 *                          chat-forked forks one (a socketpair per child,
 *                          the parent keeping its end: K more descriptors
 *                          in the parent's table), so the two costs that
 *                          grow with K can be told apart; then the K are
 *                          ended at once and reaped, and a second figure is
 *                          printed: microseconds per child from the end of
 *                          the hold to the last one reaped, that is, what
 *                          the kernel takes to tear down K small processes
 *                          on one core (the floor under chat-forked's
 *                          shutdown with K connection processes)
 *   lab-anchors sha N      seconds for N rounds of the /cpu SHA-256 chain,
 *                          then the first byte of the digest
 *   lab-anchors write N    median milliseconds, of 5 rounds, of one 64-byte
 *                          write() to each of N loopback TCP connections
 *                          whose peer (a child process) never reads
 *
 * The select / poll / epoll anchor is bench/waitcost.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/close_range.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

/* Median microseconds per fork() + _exit(0) + waitpid(pid) of 9 batches.
 * waitpid names the pid: since Linux 5.14 that is a lookup, not a walk of
 * the parent's list of children (kernel/exit.c:do_wait_pid). */
static double fork_wait_us(long n)
{
    double b[9];
    for (int k = 0; k < 9; k++) {
        double t0 = now();
        for (long i = 0; i < n / 9 + 1; i++) {
            pid_t p = fork();
            if (p == 0) _exit(0);
            if (p < 0) return -1;
            waitpid(p, NULL, 0);
        }
        b[k] = (now() - t0) * 1e6 / (double)(n / 9 + 1);
    }
    qsort(b, 9, sizeof b[0], cmp);
    return b[4];
}

/* K children that wait for the end of `hold` (a pipe) and exit; with fds,
 * each keeps one end of a socketpair whose other end stays here, as a
 * chat-forked child keeps its hub link. Then the fork measure, then all K
 * are ended and reaped, timed: nothing outlives the anchor. These children
 * map only libc and libcrypto, so their teardown is a lower bound on that of
 * a chat-forked child, which maps libcurl and its 30 libraries too. */
static int fork_live(long k, long n, bool fds)
{
    int hold[2];
    if (pipe(hold)) return 1;
    pid_t *kids = calloc((size_t)k + 1, sizeof *kids);
    int *ends = calloc((size_t)k + 1, sizeof *ends);
    if (!kids || !ends) return 1;
    long made = 0;
    int rc = 0;
    for (; made < k; made++) {
        int pair[2] = {-1, -1};
        if (fds && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair)) { rc = 1; break; }
        pid_t p = fork();
        if (p < 0) { rc = 1; if (fds) { close(pair[0]); close(pair[1]); } break; }
        if (p == 0) {
            /* As chat-forked's child does: keep what is ours, close the rest. */
            char c;
            dup2(hold[0], 0);
            if (fds) dup2(pair[1], 1);
            close_range(fds ? 2 : 1, ~0u, 0);
            while (read(0, &c, 1) < 0) {}
            _exit(0);
        }
        kids[made] = p;
        if (fds) { ends[made] = pair[0]; close(pair[1]); }
    }
    double us = rc ? -1 : fork_wait_us(n);
    double t0 = now();
    close(hold[1]); /* every live child sees EOF and exits */
    close(hold[0]);
    for (long i = 0; i < made; i++) {
        waitpid(kids[i], NULL, 0);
        if (fds) close(ends[i]);
    }
    double exit_us = made ? (now() - t0) * 1e6 / (double)made : 0;
    free(kids);
    free(ends);
    if (us < 0) {
        fprintf(stderr, "lab-anchors fork-live: only %ld of %ld children started\n", made, k);
        return 1;
    }
    printf("%.2f %.2f\n", us, exit_us);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    if (strcmp(argv[1], "fork") == 0) {          /* prints median us per fork+exit+wait */
        double us = fork_wait_us(n);
        if (us < 0) return 1;
        printf("%.2f\n", us);
        return 0;
    }
    if (strcmp(argv[1], "fork-live") == 0 && argc >= 4) {  /* K N [fds] */
        long k = n, forks = atol(argv[3]);
        bool fds = argc > 4 && strcmp(argv[4], "fds") == 0;
        struct rlimit lim;
        if (k < 0 || k > 20000 || forks < 9) return 2;
        if (fds && getrlimit(RLIMIT_NOFILE, &lim) == 0 && (rlim_t)k + 64 > lim.rlim_cur) {
            fprintf(stderr, "lab-anchors fork-live: %ld descriptors need a higher RLIMIT_NOFILE\n", k);
            return 1;
        }
        return fork_live(k, forks, fds);
    }
    if (strcmp(argv[1], "sha") == 0) {           /* prints seconds for n rounds */
        unsigned char d[32] = {0};
        unsigned len;
        double t0 = now();
        for (long i = 0; i < n; i++) EVP_Digest(d, 32, d, &len, EVP_sha256(), NULL);
        printf("%.6f %02x\n", now() - t0, d[0]);
        return 0;
    }
    if (strcmp(argv[1], "write") == 0) {         /* prints median ms of one write to n sockets */
        int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        if (bind(l, (void *)&a, sizeof a) || listen(l, 4096) || getsockname(l, (void *)&a, &al)) return 1;
        int go[2], done[2];
        if (pipe(go) || pipe(done)) return 1;
        pid_t p = fork();
        if (p == 0) {                            /* the peers: connect, then wait without reading */
            close(l); close(go[0]); close(done[1]);
            for (long i = 0; i < n; i++) {
                int s = socket(AF_INET, SOCK_STREAM, 0);
                if (s < 0 || connect(s, (void *)&a, sizeof a)) _exit(1);
            }
            char c = 1;
            if (write(go[1], &c, 1) != 1) _exit(1);
            if (read(done[0], &c, 1) < 0) _exit(1);
            _exit(0);
        }
        close(go[1]); close(done[0]);
        int *fd = calloc((size_t)n, sizeof *fd);
        for (long i = 0; i < n; i++) {
            fd[i] = accept(l, NULL, NULL);
            if (fd[i] < 0) { kill(p, SIGKILL); return 1; }
            setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        char c;
        if (read(go[0], &c, 1) != 1) return 1;
        char frame[64];
        memset(frame, 'x', sizeof frame);
        double r[5];
        for (int k = 0; k < 5; k++) {
            double t0 = now();
            for (long i = 0; i < n; i++)
                if (write(fd[i], frame, sizeof frame) != (ssize_t)sizeof frame) return 1;
            r[k] = (now() - t0) * 1e3;
            usleep(20000);
        }
        close(done[1]);
        waitpid(p, NULL, 0);
        qsort(r, 5, sizeof r[0], cmp);
        printf("%.3f\n", r[2]);
        return 0;
    }
    return 2;
}
