#include <criterion/criterion.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "stop_signal.h"

/* A blocked SIGTERM is seen while it waits to be read, and a stop the model
 * has read stays seen. Each Criterion test runs in a process of its own, so
 * the mask and the "taken" flag start clean. */
Test(stop_signal, a_pending_stop_is_seen_before_the_loop_reads_it)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &mask, NULL), 0);
    cr_assert_not(stop_signal_requested());

    cr_assert_eq(raise(SIGTERM), 0);
    cr_assert(stop_signal_requested(), "SIGTERM is pending");

    int sig = 0;
    cr_assert_eq(sigwait(&mask, &sig), 0); /* the model's loop reads it */
    cr_assert_eq(sig, SIGTERM);
    cr_assert_not(stop_signal_requested(), "read, and not said to be taken");
    stop_signal_taken();
    cr_assert(stop_signal_requested());
}

Test(stop_signal, sigint_counts_as_a_stop_too)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &mask, NULL), 0);
    cr_assert_eq(raise(SIGINT), 0);
    cr_assert(stop_signal_requested());
}

/* The one-thread loops' descriptor: the signal waits, pending, until the
 * loop reads it there. */
Test(stop_signal, the_signalfd_holds_the_stop_until_it_is_read)
{
    int fd = stop_signal_fd();
    cr_assert_geq(fd, 0);
    cr_assert_eq(raise(SIGTERM), 0); /* blocked now: it only waits */
    cr_assert(stop_signal_requested());
    struct signalfd_siginfo si;
    cr_assert_eq(read(fd, &si, sizeof si), (ssize_t)sizeof si);
    cr_assert_eq(si.ssi_signo, SIGTERM);
    cr_assert_not(stop_signal_requested());
    cr_assert_eq(read(fd, &si, sizeof si), -1, "non-blocking: nothing more waits");
    close(fd);
}

/* The loop's read takes every signal waiting and keeps the stop on. */
Test(stop_signal, reading_the_signalfd_takes_the_stop)
{
    int fd = stop_signal_fd();
    cr_assert_geq(fd, 0);
    cr_assert_eq(raise(SIGTERM), 0);
    cr_assert_eq(raise(SIGINT), 0);
    stop_signal_read(fd);
    struct signalfd_siginfo si;
    cr_assert_eq(read(fd, &si, sizeof si), -1, "both were read");
    cr_assert(stop_signal_requested(), "taken: the stop stays on");
    close(fd);
}
