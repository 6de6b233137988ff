/* The server seen through /proc: its open descriptors, its children, the
 * time its threads have been runnable; and, for harness_server.c, the
 * fields of /proc/PID/stat that place a process in a server's tree. */
#include "harness_proc.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness_server.h"
#include "harness_util.h"

bool proc_stat_read(const char *pid, struct proc_stat *st, char *comm, size_t commlen)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%.20s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close ||
        sscanf(close + 1, " %c %d %d", &st->state, &st->ppid, &st->pgrp) != 3)
        return false;
    if (comm)
        snprintf(comm, commlen, "%.*s", (int)(close - open + 1), open);
    return true;
}

/* SIGKILL is pending: the process is on its way out, it only has not had
 * a CPU yet to finish dying (a busy machine). LeakSanitizer's tracer is
 * one: it gets SIGKILL (its PR_SET_PDEATHSIG) when the chat-forked child it
 * checks is killed at the end of the shutdown grace, and may still show as
 * running when its server is gone. */
bool proc_kill_pending(const char *pid)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%.20s/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true; /* gone meanwhile */
    bool kill_pending = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long long mask;
        if ((sscanf(line, "SigPnd: %llx", &mask) == 1 || sscanf(line, "ShdPnd: %llx", &mask) == 1) &&
            (mask & (1ULL << (SIGKILL - 1))))
            kill_pending = true;
    }
    fclose(f);
    return kill_pending;
}

int server_fd_count(const struct server *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)s->pid);
    DIR *d = opendir(path);
    cr_assert(d != NULL, "%s: %s", path, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int server_await_fds(const struct server *s, int at_most)
{
    int64_t deadline = now_ms() + CAP_MS;
    int n;
    while ((n = server_fd_count(s)) > at_most && remaining_ms(deadline) > 0)
        poll(NULL, 0, 20); /* re-read /proc: the close itself cannot be waited on */
    return n;
}

/* Runnable nanoseconds of every thread of one process (0 if it is gone). */
static int64_t process_runnable_ns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int64_t total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char stat[128];
        snprintf(stat, sizeof stat, "/proc/%d/task/%.20s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(stat, "r");
        if (!f)
            continue; /* the thread ended meanwhile */
        long long run = 0, wait = 0;
        if (fscanf(f, "%lld %lld", &run, &wait) == 2)
            total += run + wait;
        fclose(f);
    }
    closedir(d);
    return total;
}

/* The parent pid in /proc/PID/stat. */
static pid_t parent_of(const char *pid)
{
    struct proc_stat st;
    return proc_stat_read(pid, &st, NULL, 0) ? st.ppid : -1;
}

int server_child_count(pid_t server)
{
    /* Descendants, not only children: chat-forked's connection processes
     * are forked by its spawner's go-betweens and are the server's own only
     * once each go-between has exited (spawner.c). One pass over /proc
     * records every parent; then the tree below `server` is counted. */
    enum { MAXP = 65536 };
    static pid_t pid[MAXP], ppid[MAXP];
    int np = 0;
    DIR *d = opendir("/proc");
    cr_assert(d != NULL);
    for (struct dirent *e; (e = readdir(d)) && np < MAXP;)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9') {
            pid_t p = parent_of(e->d_name);
            if (p > 0) {
                pid[np] = (pid_t)atoi(e->d_name);
                ppid[np++] = p;
            }
        }
    closedir(d);
    /* /proc lists pids in increasing order: pid[] is sorted, so a parent
     * is found by bisection, and each process walks up to the server or
     * to the top (a few steps: the tree is shallow). */
    int n = 0;
    for (int i = 0; i < np; i++) {
        pid_t up = ppid[i];
        for (int steps = 0; up > 1 && up != server && steps < 64; steps++) {
            int lo = 0, hi = np;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (pid[mid] < up)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            up = lo < np && pid[lo] == up ? ppid[lo] : 0;
        }
        n += up == server;
    }
    return n;
}

int server_await_children(const struct server *s, int at_most)
{
    int64_t deadline = now_ms() + 2 * CAP_MS;
    for (;;) {
        int n = server_child_count(s->pid) - s->resting_children;
        if (n <= at_most || remaining_ms(deadline) == 0)
            return n;
        poll(NULL, 0, 20); /* re-read /proc: another process's exit cannot be waited on */
    }
}

int64_t server_runnable_ms(const struct server *s)
{
    int64_t ns = process_runnable_ns(s->pid);
    DIR *d = opendir("/proc");
    cr_assert(d != NULL);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && parent_of(e->d_name) == s->pid)
            ns += process_runnable_ns((pid_t)atoi(e->d_name));
    closedir(d);
    return ns / 1000000;
}

bool uring_permitted(const char *bin)
{
    static int known = -1;
    if (known >= 0)
        return known;
    const char *slash = strrchr(bin, '/');
    char *probe = xasprintf("%.*suring-probe", slash ? (int)(slash - bin + 1) : 0, bin);
    int out[2];
    cr_assert(pipe(out) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execl(probe, probe, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char why[256] = "";
    size_t got = 0;
    for (ssize_t n; got < sizeof why - 1 && (n = read(out[0], why + got, sizeof why - 1 - got)) != 0;)
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            break;
    why[got] = '\0';
    why[strcspn(why, "\n")] = '\0';
    close(out[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        cr_assert(errno == EINTR, "waitpid: %s", strerror(errno));
    cr_assert(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 77),
              "%s failed (status %d): is it built beside chat-uring?", probe, status);
    known = WEXITSTATUS(status) == 0;
    if (!known)
        cr_log_info("chat-uring left out of this test: %s", why);
    free(probe);
    return known;
}
