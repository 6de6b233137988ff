/* Which --listen hosts keep the demo accounts to this machine
 * (common/config.c:listen_host_is_loopback). */
#include <criterion/criterion.h>

#include "app.h"

Test(listen_host, loopback_addresses)
{
    static const char *const loopback[] = {"127.0.0.1", "127.1.2.3", "127.255.255.255", "::1",
                                           "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++)
        cr_expect(listen_host_is_loopback(loopback[i]), "%s", loopback[i]);
}

Test(listen_host, everything_else_is_not)
{
    static const char *const public[] = {"0.0.0.0", "::", "10.0.0.5", "128.0.0.1", "::2",
                                         "::ffff:10.0.0.1", "::127.0.0.1", "localhost",
                                         "127.0.0.1.example", "", "fe80::1"};
    for (size_t i = 0; i < sizeof public / sizeof public[0]; i++)
        cr_expect(!listen_host_is_loopback(public[i]), "%s", public[i]);
}
