/* The server seen through /proc: its descriptors, its children, and how
 * long its threads have been runnable. */
#ifndef C10K_INTEG_HARNESS_PROC_H
#define C10K_INTEG_HARNESS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct server;

/* Open descriptors of the server process (its /proc/PID/fd entries); in
 * chat-forked that is the parent. */
int server_fd_count(const struct server *s);
/* Waits until server_fd_count() <= at_most (polling /proc, CAP_MS); returns
 * the last count seen, for the assertion message. */
int server_await_fds(const struct server *s, int at_most);
/* The descendants of process `server` right now, zombies included. */
int server_child_count(pid_t server);
/* Waits until the server has at most at_most child processes beyond those
 * it had at start (chat-forked: connections whose child has not exited yet;
 * its spawner is there from the start; the others never have any),
 * polling /proc, 2 * CAP_MS; returns the last count. Under ASan each exiting
 * child runs LeakSanitizer, which takes a while: a test that made many
 * children lets them finish before server_stop's own, shorter, cap. */
int server_await_children(const struct server *s, int at_most);
/* Milliseconds the server's threads, and those of its live children
 * (chat-forked), have been runnable (on a CPU or waiting in the run queue:
 * /proc/PID/task/TID/schedstat) since they started. Over a window in which
 * the server has nothing to do this grows by about 0; a thread spinning in a
 * busy loop makes it grow by the whole window, however loaded the machine
 * is — unlike CPU time, which shrinks when the loop must share the CPU. */
int64_t server_runnable_ms(const struct server *s);

/* Is io_uring permitted here, for the chat-uring at `bin`? Asks the
 * uring-probe built beside it (exit 0: yes; 77: no, with the reason, which
 * is logged so the run says why chat-uring was left out; anything else
 * fails the test). Asked once per process. */
bool uring_permitted(const char *bin);

/* ---- one process, for harness_server.c's tree tracking ---- */

/* State, parent and process group from /proc/PID/stat, and the command
 * name "(comm)" into comm if given. comm may hold spaces and parentheses,
 * so the fields are read after the last ')'. False if the process is gone. */
struct proc_stat {
    char state;
    int ppid, pgrp;
};
bool proc_stat_read(const char *pid, struct proc_stat *st, char *comm, size_t commlen);
/* SIGKILL is pending for the process (or it is gone already). */
bool proc_kill_pending(const char *pid);

#endif
