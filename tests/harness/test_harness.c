/* The harness's own check that a server's whole tree is gone when the
 * server is: tests/harness/leaky_server.sh exits 0 on SIGTERM but leaves a
 * `sleep` behind. server_stop must fail the test naming it (ctest inverts
 * this: harness-names-survivors passes only on that failure message), and
 * must kill it: the second test finds no `sleep 3141` of ours alive. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

TestSuite(harness, SUITE_CFG);

Test(harness, server_stop_fails_on_a_survivor)
{
    struct server s;
    server_start(&s, NULL);
    cr_assert(kill(s.pid, SIGTERM) == 0);
    server_wait_exit(&s, STOP_CAP_MS);
}

/* Run after the one above in the same ctest (Criterion runs a suite's tests
 * in order with --jobs 1): no `sleep 3141` whose parent is gone is left. */
Test(harness, the_survivor_was_killed)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char path[64], cmd[64] = "";
        snprintf(path, sizeof path, "/proc/%.20s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(cmd, 1, sizeof cmd - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        cmd[n] = '\0';
        found += strcmp(cmd, "sleep 3141 ") == 0;
    }
    closedir(d);
    cr_assert_eq(found, 0, "%d `sleep 3141` still running", found);
}
