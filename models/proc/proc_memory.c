/* A process's memory, read from /proc. Every read is a blocking file read
 * (procfs: no disk, but a syscall per file), made when /stats is asked for. */
#include "proc_memory.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long long proc_kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    long long kb = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0) {
            kb = atoll(line + kl);
            break;
        }
    fclose(f);
    return kb;
}

void proc_memory(int pid, long long *rss, long long *pss)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    *rss = proc_kb(path, "VmRSS:") * 1024;
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    *pss = proc_kb(path, "Pss:") * 1024;
}

void proc_tree_memory(int pid, long long *rss, long long *pss, long *threads, long *procs)
{
    char path[64];
    long long r, p;
    proc_memory(pid, rss, pss);
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    *threads = (long)proc_kb(path, "Threads:");
    *procs = 1;
    /* Every thread of a process has its own list; the server's children are
     * all made by its main thread, whose task id is the pid. */
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    int child;
    while (fscanf(f, "%d", &child) == 1) {
        proc_memory(child, &r, &p);
        *rss += r;
        *pss += p;
        snprintf(path, sizeof path, "/proc/%d/status", child);
        *threads += (long)proc_kb(path, "Threads:");
        (*procs)++;
    }
    fclose(f);
}

void proc_stats(struct app *app, struct stats_view *v)
{
    (void)app;
    proc_tree_memory((int)getpid(), &v->rss_bytes, &v->pss_bytes, &v->threads, &v->processes);
}
