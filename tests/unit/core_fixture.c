#include "core_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct app test_app;
uint64_t fake_now;

static uint64_t fake_clock(void) { return fake_now; }

static size_t sink_deliver(struct room_member *m, struct rbuf *ev)
{
    struct conn *c = conn_of_member(m);
    outq_push(&c->out, rbuf_ref(ev));
    return c->out.bytes;
}

static void sink_cut_off(struct room_member *m) { conn_ws_cut_off(conn_of_member(m)); }

static const struct room_sink sink = {sink_deliver, sink_cut_off, NULL, NULL};

void fixture_setup(void)
{
    char path[] = "/tmp/c10k-users-XXXXXX", err[256], line[512];
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    /* A session counts only for a loaded user: the tests' members are these. */
    static const char *const names[] = {"ann", "bob"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct user_record rec;
        cr_assert_eq(user_record_make(&rec, names[i], "secret-pw", 1), 0);
        cr_assert_eq(user_record_format(&rec, line, sizeof line), 0);
        cr_assert(write(fd, line, strlen(line)) == (ssize_t)strlen(line));
    }
    close(fd);
    memset(&test_app, 0, sizeof test_app);
    test_app.model = "test";
    test_app.users = users_load(path, err, sizeof err);
    unlink(path);
    cr_assert_not_null(test_app.users, "%s", err);
    cr_assert_eq(session_key_random(&test_app.key), 0);
    test_app.n = &test_app.own;
    test_app.logins = login_limit_new();
    cr_assert_not_null(test_app.logins);
    app_set_room(&test_app, room_new(&sink, false));
    test_app.cfg.max_conns = 10;
    http_req_global_init();
    fake_now = 1000000;
    app_clock = fake_clock;
    room_mono_ms = fake_clock; /* one clock for the stall time and the timers */
    test_app.started_ms = fake_now;
}

void fixture_teardown(void)
{
    room_free(test_app.room);
    users_free(test_app.users);
    login_limit_free(test_app.logins);
}

char *drain(struct conn *c)
{
    struct buf b = {0};
    struct iovec iov[16];
    int n;
    buf_append(&b, "", 0, 1 << 24);
    while ((n = outq_iov(&c->out, iov, 16)) > 0) {
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            buf_append(&b, iov[i].iov_base, iov[i].iov_len, 1 << 24);
            total += iov[i].iov_len;
        }
        outq_consume(&c->out, total);
        conn_flushed(c);
    }
    for (char *d = strstr(b.data, "\r\nDate: "); d; d = strstr(d + 2, "\r\nDate: "))
        for (char *p = d + 8; *p != '\r'; p++)
            *p = 'x';
    return b.data;
}

void feed(struct conn *c, const char *s) { conn_feed(c, s, strlen(s)); }

void cookie_for(const char *user, char *out, size_t outlen)
{
    char v[SESSION_COOKIE_MAX];
    cr_assert(session_sign(&test_app.key, user, time(NULL) + 3600, v, sizeof v) > 0);
    snprintf(out, outlen, "Cookie: session=%s\r\n", v);
}
