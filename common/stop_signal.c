#include "stop_signal.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/signalfd.h>
#include <unistd.h>

static atomic_bool taken;

bool stop_signal_requested(void)
{
    if (atomic_load_explicit(&taken, memory_order_relaxed))
        return true;
    /* One system call: what is pending for this thread or the process. A
     * signal that is not blocked never shows here (it is delivered at
     * once), which is why the models block these two. */
    sigset_t set;
    if (sigpending(&set) < 0)
        return false;
    return sigismember(&set, SIGTERM) == 1 || sigismember(&set, SIGINT) == 1;
}

void stop_signal_taken(void)
{
    atomic_store_explicit(&taken, true, memory_order_relaxed);
}

int stop_signal_fd(void)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
        return -1;
    return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

void stop_signal_read(int fd)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    }
    stop_signal_taken();
}
