/* lab-anchors: the machine's anchors that ./lab bench measures next to the
 * servers (bench/lab_bench.py's docstring says what each one means).
 *
 *   lab-anchors fork N     median microseconds per fork() + _exit(0) +
 *                          waitpid(), of 9 batches of N/9+1
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    if (strcmp(argv[1], "fork") == 0) {          /* prints median us per fork+exit+wait */
        double b[9];
        for (int k = 0; k < 9; k++) {
            double t0 = now();
            for (long i = 0; i < n / 9 + 1; i++) {
                pid_t p = fork();
                if (p == 0) _exit(0);
                if (p < 0) return 1;
                waitpid(p, NULL, 0);
            }
            b[k] = (now() - t0) * 1e6 / (double)(n / 9 + 1);
        }
        qsort(b, 9, sizeof b[0], cmp);
        printf("%.2f\n", b[4]);
        return 0;
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
