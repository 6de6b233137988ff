/* --redis URL parsing (common/redis_url.c) and the log limiter. */
#include <criterion/criterion.h>
#include <string.h>

#include "log_limit.h"
#include "redis_url.h"

TestSuite(redis_url);

Test(redis_url, the_forms_of_the_contract)
{
    struct redis_url u;
    char err[160];
    cr_assert_eq(redis_url_parse("redis://10.1.2.3", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.host, "10.1.2.3");
    cr_assert_eq(u.port, 6379);
    cr_assert_eq(u.db, 0);
    cr_assert_eq(u.password_len, 0);
    cr_assert_eq(redis_url_parse("redis://:p%40ss@r.example:6380/15", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.host, "r.example");
    cr_assert_eq(u.port, 6380);
    cr_assert_eq(u.db, 15);
    cr_assert_str_eq(u.password, "p@ss");
    cr_assert_eq(u.password_len, 4);
    cr_assert_eq(redis_url_parse("redis://:a@b@[::1]:7000/", &u, err, sizeof err), 0);
    cr_assert_str_eq(u.password, "a@b", "the last '@' ends the password");
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 7000);
    redis_url_wipe(&u);
    cr_assert_eq(u.password[0], 0);
    cr_assert_eq(u.password_len, 0);
}

Test(redis_url, bad_urls_are_refused_without_echoing_the_password)
{
    const char *bad[] = {"redis://", "http://h", "rediss://h", "redis://h:0", "redis://h:65536",
                         "redis://h:x", "redis://h:1/1001", "redis://h/x", "redis://h/1x",
                         "redis://[::1", "redis://h x", "redis://h:1x", "redis://[::1]x",
                         "redis://:@h", "redis://user:SeCrEt@h", "redis://:SeCrEt@", "redis://:SeCrEt@h:99999",
                         "redis://:SeCrEt%00@h"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct redis_url u;
        char err[160] = "";
        cr_assert_eq(redis_url_parse(bad[i], &u, err, sizeof err), -1, "%s", bad[i]);
        cr_assert(err[0], "a reason for %s", bad[i]);
        cr_assert_null(strstr(err, "SeCrEt"), "%s: %s", bad[i], err);
        cr_assert_null(strstr(u.password, "SeCrEt"), "wiped after a failure");
    }
    char shown[128];
    redis_url_redacted("redis://:SeCrEt@h:99999/0", shown, sizeof shown);
    cr_assert_str_eq(shown, "redis://***@h:99999/0");
    redis_url_redacted("redis://h/0", shown, sizeof shown);
    cr_assert_str_eq(shown, "redis://h/0");
    size_t off, len;
    cr_assert(redis_url_secret_span("redis://:pw@h", &off, &len) && off == 8 && len == 3);
    cr_assert_not(redis_url_secret_span("redis://h/a@b", &off, &len), "'@' after the path");
}

Test(redis_url, loopback_is_this_machine_only)
{
    const char *local[] = {"redis://localhost", "redis://LOCALHOST", "redis://127.0.0.1",
                           "redis://127.9.9.9", "redis://[::1]"};
    const char *remote[] = {"redis://10.0.0.1", "redis://128.0.0.1", "redis://[::2]",
                            "redis://localhost.example", "redis://db", "redis://0.0.0.0"};
    struct redis_url u;
    for (size_t i = 0; i < sizeof local / sizeof *local; i++) {
        cr_assert_eq(redis_url_parse(local[i], &u, NULL, 0), 0);
        cr_assert(redis_url_loopback(&u), "%s", local[i]);
    }
    for (size_t i = 0; i < sizeof remote / sizeof *remote; i++) {
        cr_assert_eq(redis_url_parse(remote[i], &u, NULL, 0), 0);
        cr_assert_not(redis_url_loopback(&u), "%s", remote[i]);
    }
}

Test(redis_url, log_limit_lets_one_line_through_per_interval)
{
    struct log_limit l = {0};
    unsigned long held = 99;
    cr_assert(log_limit_pass(&l, 1000, 60000, &held));
    cr_assert_eq(held, 0);
    for (int i = 0; i < 100; i++)
        cr_assert_not(log_limit_pass(&l, 1000 + (uint64_t)i, 60000, &held));
    cr_assert(log_limit_pass(&l, 61000, 60000, &held));
    cr_assert_eq(held, 100);
    cr_assert_not(log_limit_pass(&l, 61001, 60000, &held));
}
