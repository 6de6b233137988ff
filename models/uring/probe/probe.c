/* uring-probe: may this process use io_uring at all?
 *
 *   uring-probe               exit 0 if it may; 77 and one line on stdout
 *                             saying why not; 1 on any other failure
 *   uring-probe CMD [ARG...]  the same check, then, if it may, exec CMD
 *
 * Containers often forbid io_uring (a seccomp filter that fails
 * io_uring_setup with EPERM or ENOSYS, or kernel.io_uring_disabled): then
 * chat-uring cannot run at all, and its tests and bench columns are
 * skipped with this line rather than failed. 77 is the "skipped" status of
 * automake and of ctest's SKIP_RETURN_CODE (tests/CMakeLists.txt runs every
 * chat-uring test through this program). It asks exactly what chat-uring's
 * start asks first (io_uring_setup), with the same test of the error. */
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SKIPPED 77

int main(int argc, char **argv)
{
    struct io_uring ring;
    int rc = io_uring_queue_init(2, &ring, 0);
    if (rc == -EPERM || rc == -ENOSYS || rc == -EACCES) {
        printf("io_uring not permitted here (%s: seccomp or kernel.io_uring_disabled)\n",
               strerror(-rc));
        return SKIPPED;
    }
    if (rc < 0) {
        fprintf(stderr, "uring-probe: io_uring_queue_init: %s\n", strerror(-rc));
        return 1;
    }
    /* Closed before the exec: CMD must not inherit a ring it never asked for. */
    io_uring_queue_exit(&ring);
    if (argc < 2)
        return 0;
    execvp(argv[1], argv + 1);
    fprintf(stderr, "uring-probe: %s: %s\n", argv[1], strerror(errno));
    return 1;
}
