#include "refuser.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"
#include "net.h"
#include "timing.h"

#define REFUSER_MAX 1024  /* lingering at once; past that, plain close */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t thread;
static int wake_fd = -1;
static bool stop;
static int fds[REFUSER_MAX];
static uint64_t deadlines[REFUSER_MAX];
static unsigned count; /* under lock: fds[0..count) */

static void drop(unsigned i)
{
    close(fds[i]);
    fds[i] = fds[count - 1];
    deadlines[i] = deadlines[count - 1];
    count--;
}

static void *refuser_main(void *arg)
{
    (void)arg;
    struct pollfd p[REFUSER_MAX + 1];
    for (;;) {
        pthread_mutex_lock(&lock);
        if (stop) {
            while (count)
                drop(count - 1);
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        uint64_t now = app_now_ms(), next = now + 60000;
        for (unsigned i = 0; i < count;) {
            if (deadlines[i] <= now) {
                drop(i);
                continue;
            }
            if (deadlines[i] < next)
                next = deadlines[i];
            i++;
        }
        unsigned n = count;
        for (unsigned i = 0; i < n; i++)
            p[i] = (struct pollfd){fds[i], POLLIN, 0};
        pthread_mutex_unlock(&lock);
        p[n] = (struct pollfd){wake_fd, POLLIN, 0};
        poll(p, n + 1, (int)(next - now));
        if (p[n].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(wake_fd, &v, sizeof v);
            (void)r;
        }
        /* Only this thread removes entries, so p[0..n) still match fds. */
        pthread_mutex_lock(&lock);
        for (unsigned i = n; i-- > 0;) {
            if (!(p[i].revents & (POLLIN | POLLERR | POLLHUP)))
                continue;
            char sink[4096];
            ssize_t r;
            while ((r = recv(fds[i], sink, sizeof sink, MSG_DONTWAIT)) > 0)
                ;
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                drop(i); /* the client closed: so do we, with a FIN */
        }
        pthread_mutex_unlock(&lock);
    }
}

int refuser_start(void)
{
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0 || pthread_create(&thread, NULL, refuser_main, NULL) != 0)
        return -1;
    return 0;
}

void refuser_add(int fd, struct rbuf *response)
{
    net_send_refusal(fd, response);
    pthread_mutex_lock(&lock);
    if (count == REFUSER_MAX || stop) {
        pthread_mutex_unlock(&lock);
        close(fd); /* overwhelmed: a reset is all we can afford */
        return;
    }
    fds[count] = fd;
    deadlines[count] = app_now_ms() + REFUSED_LINGER_MS;
    count++;
    pthread_mutex_unlock(&lock);
    uint64_t one = 1;
    ssize_t w = write(wake_fd, &one, sizeof one);
    (void)w;
}

void refuser_stop(void)
{
    pthread_mutex_lock(&lock);
    stop = true;
    pthread_mutex_unlock(&lock);
    uint64_t one = 1;
    ssize_t w = write(wake_fd, &one, sizeof one);
    (void)w;
    pthread_join(thread, NULL);
    close(wake_fd);
}
