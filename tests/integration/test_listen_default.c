/* CONTRACT.md, common flags: `--listen HOST:PORT`, default `127.0.0.1:8080`.
 *
 * The default port is fixed, so on the machine's own network it may belong
 * to someone else: this very test running in parallel against another model
 * (ctest runs the configurations side by side), or any service. Whatever
 * answered there would prove nothing. So the test first moves into a network
 * namespace of its own (Criterion runs each test in a process of its own, and
 * the server it starts inherits the namespace): there 8080 is free, and the
 * only loopback listener is the server under test. That needs CAP_SYS_ADMIN
 * (CI runs as root); without it the test fails saying so, never skips. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

TestSuite(listen_default, SUITE_CFG);

#define DEFAULT_PORT 8080

/* A fresh network namespace for this test process, its loopback up (a new
 * namespace has only `lo`, down: `ip link set lo up` by ioctl). */
static void own_network_namespace(void)
{
    if (unshare(CLONE_NEWNET) != 0)
        cr_assert_fail("unshare(CLONE_NEWNET): %s. This test needs a network namespace of "
                       "its own (run it as root, as CI does): the default port %d on the "
                       "machine's network may be anyone's, and a test there proves nothing",
                       strerror(errno), DEFAULT_PORT);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    cr_assert(ioctl(fd, SIOCGIFFLAGS, &ifr) == 0, "SIOCGIFFLAGS lo: %s", strerror(errno));
    ifr.ifr_flags |= IFF_UP;
    cr_assert(ioctl(fd, SIOCSIFFLAGS, &ifr) == 0, "SIOCSIFFLAGS lo up: %s", strerror(errno));
    close(fd);
}

/* connect() to addr:port: 0 when it was accepted, else its errno. */
static int connect_errno(const char *addr, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    cr_assert(inet_pton(AF_INET, addr, &a.sin_addr) == 1);
    int r;
    do
        r = connect(fd, (struct sockaddr *)&a, sizeof a);
    while (r != 0 && errno == EINTR);
    int err = r == 0 ? 0 : errno;
    close(fd);
    return err;
}

/* No --listen: the line names 127.0.0.1:8080 (the harness checks the host,
 * and the port is read from the line), the server answers there, and only
 * there: another loopback address of the namespace is refused, so it did
 * not bind every address. */
Test(listen_default, no_listen_flag_serves_127_0_0_1_port_8080)
{
    own_network_namespace();
    int before = connect_errno("127.0.0.1", DEFAULT_PORT);
    cr_assert_eq(before, ECONNREFUSED, "port %d of the new namespace is not free: %s",
                 DEFAULT_PORT, before ? strerror(before) : "a connection was accepted");

    struct server s;
    server_start_default_listen(&s, NULL);
    cr_assert_eq(s.port, DEFAULT_PORT,
                 "without --listen the line names port %d, expected `listening on "
                 "http://127.0.0.1:%d`",
                 s.port, DEFAULT_PORT);
    expect_hello(DEFAULT_PORT);
    int other = connect_errno("127.0.0.2", DEFAULT_PORT);
    cr_assert_eq(other, ECONNREFUSED,
                 "127.0.0.2:%d: %s; the default is 127.0.0.1 only, not every address",
                 DEFAULT_PORT, other ? strerror(other) : "a connection was accepted");
    server_stop(&s);
}
