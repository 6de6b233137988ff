/* A process's memory, read from /proc (blocking file reads): what the
 * models put in /stats. Not in common/, which does no I/O of its own. */
#ifndef C10K_PROC_MEMORY_H
#define C10K_PROC_MEMORY_H

#include "app.h"

/* /proc/PID/status VmRSS and /proc/PID/smaps_rollup Pss, in bytes. */
void proc_memory(int pid, long long *rss, long long *pss);
/* The same summed over PID and its children, with their thread count and
 * how many processes that was (chat-forked's whole process tree). */
void proc_tree_memory(int pid, long long *rss, long long *pss, long *threads, long *procs);
/* An app.stats hook for a server that is this process: its process tree's
 * memory, threads and process count. */
void proc_stats(struct app *app, struct stats_view *v);

#endif
