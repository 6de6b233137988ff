/* chatbench — the load generator of c10k-lab.
 *
 *   chatbench http URL -c CONC (-n REQUESTS | -t SECONDS) [-k] [-r RATE] [--json]
 *       ab-style: CONC connections, each sends a request when the previous
 *       answer is in (closed loop). -k keeps connections alive; without it
 *       every request opens a new one. -r RATE is an open loop instead:
 *       requests fall due at a constant rate and each is timed from when it
 *       was due, so a stalled server cannot hide its stall by slowing the
 *       generator down (no "coordinated omission").
 *   chatbench ws URL -c CLIENTS -m MESSAGES [-r RATE] [-s SENDERS] [--json]
 *       log in, connect CLIENTS WebSockets to the room, then SENDERS of them
 *       (default all) send MESSAGES each at RATE per second; every receipt
 *       at every client is timed from its send: the fan-out latency.
 *   chatbench seat URL -c CONNS [-t SECONDS] [--sources N] [--json]
 *       join CONNS members to the chat room (WebSockets from N source
 *       addresses 127.0.0.2.., so the ephemeral port range is no limit),
 *       time the seating (n(n+1)/2 join frames), then stay SECONDS (0).
 *   chatbench seat URL -c CONNS --sigterm PID [--leave K] [--by S] ...
 *       the shutdown measure: once seated (or at S seconds, seated or not),
 *       K members (at most a tenth of those in) leave, SIGTERM goes to PID (the server) at once, and the
 *       members still in are timed until the server has closed them all
 *       (at most 10 s); the JSON's "term" says what happened.
 *   chatbench idle URL -c CONNS -t SECONDS [--sources N] [--json]
 *       the C10K experiment: CONNS keep-alive connections, one request each,
 *       then quiet (asking again inside the 15 s idle rule) for SECONDS;
 *       completed = connections that still answer at the end (idle.c).
 *
 * Output: a short summary, or with --json one object: completed, failed,
 * elapsed, rate, latency p50/p90/p99/p999/max in ms, and the generator's own
 * CPU time, so every figure comes with what it cost to produce.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>

#include "chatbench.h"

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int target_parse(const char *url, struct target *t)
{
    memset(t, 0, sizeof *t);
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "ws://", 5) != 0)
        return -1;
    const char *p = strstr(url, "//") + 2;
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    size_t hl = (size_t)((colon && colon < slash ? colon : slash) - p);
    if (hl == 0 || hl >= sizeof t->host)
        return -1;
    memcpy(t->host, p, hl);
    struct in_addr a;
    if (inet_pton(AF_INET, t->host, &a) != 1)
        return -1;
    t->port = colon && colon < slash ? (unsigned short)atoi(colon + 1) : 80;
    snprintf(t->path, sizeof t->path, "%s", *slash ? slash : "/");
    return t->port ? 0 : -1;
}

void result_fail_n(struct result *r, const char *reason, uint64_t n)
{
    r->failed += n;
    for (unsigned i = 0; i < r->nwhy; i++)
        if (strcmp(r->why[i].reason, reason) == 0) {
            r->why[i].count += n;
            return;
        }
    if (r->nwhy < sizeof r->why / sizeof r->why[0])
        r->why[r->nwhy++] = (struct why){reason, n};
}

void result_fail(struct result *r, const char *reason) { result_fail_n(r, reason, 1); }

static void usage(void)
{
    fputs("usage: chatbench http URL -c CONC (-n REQUESTS | -t SECONDS) [-k] [-r RATE] [--json]\n"
          "       chatbench ws URL -c CLIENTS -m MESSAGES [-r RATE] [-s SENDERS] [--json]\n"
          "       chatbench seat URL -c CONNS [-t SECONDS] [--json]\n"
          "       chatbench idle URL -c CONNS -t SECONDS [--sources N] [--json]\n"
          "  (ws, seat: --sources N spreads clients over 127.0.0.2..; seat: elapsed and\n"
          "   rate are of the seating, members seated per second)\n"
          "  (ws, seat: --user NAME --password PW, default coco / 123456)\n"
          "  (ws, seat: --also URL sends every other client to a second server)\n"
          "  (seat: --sigterm PID [--leave K] [--by S] stops the server with members in)\n",
          stderr);
    exit(2);
}

static double number(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v < 0)
        usage();
    return v;
}

static void print_result(const struct opts *o, const struct result *r)
{
    double ms = 1000.0;
    /* idle: the open phase's rate, connections answered per second */
    double done = (double)(r->is_idle ? r->opened : r->completed);
    double rate = r->elapsed_s > 0 ? done / r->elapsed_s : 0;
    uint64_t p50 = hist_quantile(&r->lat, .5), p90 = hist_quantile(&r->lat, .9),
             p99 = hist_quantile(&r->lat, .99), p999 = hist_quantile(&r->lat, .999);
    double cpu = r->cpu_user_s + r->cpu_sys_s;
    if (o->json) {
        printf("{\"mode\":\"%s\",\"completed\":%llu,\"failed\":%llu,\"expected\":%llu,"
               "\"elapsed\":%.3f,\"rate\":%.1f,\"seat_s\":%.3f,"
               "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
               "\"max\":%.3f,\"mean\":%.3f},"
               "\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,\"us_per_op\":%.3f},\"failed_by\":{",
               r->mode, (unsigned long long)r->completed, (unsigned long long)r->failed,
               (unsigned long long)r->expected, r->elapsed_s, rate, r->seat_s, p50 / ms,
               p90 / ms, p99 / ms, p999 / ms, (double)r->lat.max / ms * (r->lat.count > 0),
               hist_mean(&r->lat) / ms, r->cpu_user_s, r->cpu_sys_s,
               r->completed ? cpu * 1e6 / (double)r->completed : 0);
        for (unsigned i = 0; i < r->nwhy; i++)
            printf("%s\"%s\":%llu", i ? "," : "", r->why[i].reason,
                   (unsigned long long)r->why[i].count);
        printf("}");
        if (r->is_idle) {
            printf(",\"opened\":%llu,\"open_all_s\":", (unsigned long long)r->opened);
            if (r->open_all_s >= 0)
                printf("%.3f", r->open_all_s);
            else
                printf("null");
        }
        if (r->has_seated)
            printf(",\"seated\":%llu", (unsigned long long)r->seated);
        if (r->has_term)
            printf(",\"term\":{\"mono_s\":%.6f,\"members\":%llu,\"leaving\":%llu,"
                   "\"closed_by_server\":%llu,\"closed_1001\":%llu,\"last_close_s\":%.3f}",
                   r->term_mono_s, (unsigned long long)r->term_members,
                   (unsigned long long)r->term_leaving, (unsigned long long)r->term_closed,
                   (unsigned long long)r->term_1001, r->term_last_close_s);
        if (r->window_s > 0)
            printf(",\"rate_in_t\":%.1f", (double)r->completed_in_t / r->window_s);
        printf("}\n");
        return;
    }
    printf("%s: %llu completed, %llu failed", r->mode, (unsigned long long)r->completed,
           (unsigned long long)r->failed);
    if (r->expected)
        printf(" of %llu expected (%.2f %%)", (unsigned long long)r->expected,
               100.0 * (double)r->completed / (double)r->expected);
    printf(" in %.2f s: %.1f/s\n", r->elapsed_s, rate);
    for (unsigned i = 0; i < r->nwhy; i++)
        printf("  failed (%s): %llu\n", r->why[i].reason, (unsigned long long)r->why[i].count);
    if (r->seat_s > 0)
        printf("  all clients in after %.3f s\n", r->seat_s);
    if (r->lat.count)
        printf("  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
               p50 / ms, p90 / ms, p99 / ms, p999 / ms, (double)r->lat.max / ms,
               hist_mean(&r->lat) / ms);
    printf("  chatbench CPU: %.3f s user + %.3f s sys = %.2f us per operation\n", r->cpu_user_s,
           r->cpu_sys_s, r->completed ? cpu * 1e6 / (double)r->completed : 0);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    struct opts o = {.conc = 1, .user = "coco", .password = "123456", .sources = 1};
    const char *mode = argv[1];
    if (target_parse(argv[2], &o.target) < 0) {
        fprintf(stderr, "chatbench: URL must be http://IPV4:PORT/path: %s\n", argv[2]);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        if (strcmp(a, "-k") == 0)
            o.keepalive = true;
        else if (strcmp(a, "--json") == 0)
            o.json = true;
        else if (!has_next)
            usage();
        else if (strcmp(a, "-c") == 0)
            o.conc = (unsigned)number(argv[++i]);
        else if (strcmp(a, "-n") == 0)
            o.requests = (uint64_t)number(argv[++i]);
        else if (strcmp(a, "-t") == 0)
            o.seconds = number(argv[++i]);
        else if (strcmp(a, "-r") == 0)
            o.rate = number(argv[++i]);
        else if (strcmp(a, "-m") == 0)
            o.messages = (unsigned)number(argv[++i]);
        else if (strcmp(a, "-s") == 0)
            o.senders = (unsigned)number(argv[++i]);
        else if (strcmp(a, "--sources") == 0)
            o.sources = (unsigned)number(argv[++i]);
        else if (strcmp(a, "--user") == 0)
            o.user = argv[++i];
        else if (strcmp(a, "--password") == 0)
            o.password = argv[++i];
        else if (strcmp(a, "--sigterm") == 0)
            o.sigterm_pid = (int)number(argv[++i]);
        else if (strcmp(a, "--leave") == 0)
            o.leave = (unsigned)number(argv[++i]);
        else if (strcmp(a, "--by") == 0)
            o.by_s = number(argv[++i]);
        else if (strcmp(a, "--also") == 0) {
            if (target_parse(argv[++i], &o.also) < 0)
                usage();
        }
        else
            usage();
    }
    if (o.conc == 0 || o.sources == 0 || o.sources > 250)
        usage();
    /* --sigterm signals one process the caller names (its own server), no
     * other: not ourselves, not init, not a group. */
    if ((o.sigterm_pid && (strcmp(mode, "seat") != 0 || o.sigterm_pid <= 1 ||
                           o.sigterm_pid == (int)getpid())) ||
        o.leave > o.conc || o.by_s > 3600)
        usage();

    /* A fixed upper bound on every run: it stops by itself. */
    if (o.seconds > 3600 || o.requests > 1000000000ull)
        usage();

    /* A server that closes first must not kill the generator; and every
     * mode may need thousands of descriptors. */
    signal(SIGPIPE, SIG_IGN);
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    struct result r = {.mode = mode};
    hist_init(&r.lat);
    int rc;
    if (strcmp(mode, "http") == 0) {
        if (!o.requests && !o.seconds)
            usage();
        rc = run_http(&o, &r);
    } else if (strcmp(mode, "ws") == 0) {
        if (!o.messages)
            usage();
        rc = run_ws(&o, &r);
    } else if (strcmp(mode, "idle") == 0) {
        if (!o.seconds)
            usage();
        rc = run_idle(&o, &r);
    } else if (strcmp(mode, "seat") == 0) {
        rc = run_seat(&o, &r);
    } else {
        usage();
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r.cpu_user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    r.cpu_sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    print_result(&o, &r);
    return rc < 0 ? 1 : 0;
}
