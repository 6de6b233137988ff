/* One room across servers of different models, through a real Redis.
 *
 * Each test starts its own redis-server (Debian's, on a free loopback port,
 * no RDB, no AOF, its --dir a fresh temp directory that must still be empty
 * at the end) and two or three chat servers with --redis: chat-async,
 * chat-threaded and chat-forked side by side, the binaries named by
 * $C10K_ASYNC, $C10K_THREADED and $C10K_FORKED. Every wait is on an event
 * (a log line, a frame), capped by the harness's CAP_MS.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "harness.h"
#include "jsonv.h"
#include "ws_client.h"

TestSuite(redis, SUITE_CFG);

/* ---- redis-server ---------------------------------------------------------- */

struct redis {
    pid_t pid;
    int port;
    char dir[128];
    char url[64];
};

static struct redis *live_redis; /* killed by the suite's fini if a test aborts */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Start (or restart, on the same port and dir) and wait for its ready line. */
static void redis_run(struct redis *r)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    int out[2];
    cr_assert(pipe2(out, O_CLOEXEC) == 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(out[1], 1);
        dup2(out[1], 2);
        const char *bin = getenv("C10K_REDIS_SERVER");
        execlp(bin && *bin ? bin : "redis-server", "redis-server", "--port", port, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r->dir, "--daemonize",
               "no", "--logfile", "", (char *)NULL);
        dprintf(2, "exec redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    close(out[1]);
    r->pid = pid;
    live_redis = r;
    char log[16384];
    size_t len = 0;
    int64_t deadline = now_ms() + START_CAP_MS;
    for (;;) {
        log[len] = '\0';
        if (strstr(log, "Ready to accept connections"))
            break;
        struct pollfd p = {out[0], POLLIN, 0};
        int n = poll(&p, 1, remaining_ms(deadline));
        cr_assert(n != 0, "redis-server did not get ready: %s", log);
        if (n < 0)
            continue;
        if (len + 1 >= sizeof log)
            len = 0;
        ssize_t got = read(out[0], log + len, sizeof log - 1 - len);
        cr_assert(got > 0, "redis-server exited: %s", log);
        len += (size_t)got;
    }
    /* Redis's later log lines go nowhere: a full pipe must not block it. */
    close(out[0]);
}

static void redis_start(struct redis *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "/tmp/c10k-redis-XXXXXX");
    cr_assert(mkdtemp(r->dir));
    r->port = free_port();
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
    redis_run(r);
}

static void redis_kill(struct redis *r, int sig)
{
    kill(r->pid, sig);
    int status;
    cr_assert(waitpid(r->pid, &status, 0) == r->pid);
    r->pid = 0;
}

/* Stop for good; nothing may be left in its directory. */
static void redis_stop(struct redis *r)
{
    redis_kill(r, SIGTERM);
    live_redis = NULL;
    cr_assert(rmdir(r->dir) == 0, "redis-server left files in %s: %s", r->dir, strerror(errno));
}

static void redis_fini(void)
{
    if (live_redis && live_redis->pid > 0) {
        kill(live_redis->pid, SIGKILL);
        waitpid(live_redis->pid, NULL, 0);
    }
    harness_fini();
}

/* Close, from Redis's side, every connection of the chat server with that
 * pid (the backplane names them c10k-PID-wr and c10k-PID-rd). Returns how
 * many were killed. */
static int redis_kill_clients_of(struct redis *r, pid_t pid)
{
    redisContext *c = redisConnect("127.0.0.1", r->port);
    cr_assert(c && !c->err, "cannot connect to redis-server");
    redisReply *list = redisCommand(c, "CLIENT LIST");
    cr_assert(list && list->type == REDIS_REPLY_STRING);
    char name[48];
    snprintf(name, sizeof name, " name=c10k-%d-", (int)pid);
    int killed = 0;
    for (char *line = strtok(list->str, "\n"); line; line = strtok(NULL, "\n")) {
        long long id;
        if (!strstr(line, name) || sscanf(line, "id=%lld", &id) != 1)
            continue;
        redisReply *k = redisCommand(c, "CLIENT KILL ID %lld", id);
        cr_assert(k && k->type == REDIS_REPLY_INTEGER && k->integer == 1);
        freeReplyObject(k);
        killed++;
    }
    freeReplyObject(list);
    redisFree(c);
    return killed;
}

/* ---- chat servers ------------------------------------------------------------ */

static void start_model(struct server *s, const char *env, struct redis *r)
{
    const char *bin = getenv(env);
    cr_assert(bin && *bin, "%s is not set", env);
    setenv("C10K_SERVER", bin, 1);
    unsetenv("C10K_SERVER_ARGS");
    server_start(s, ARGS("--redis", r->url));
}

struct ev {
    long long seq;
    char user[40], text[64];
};

/* The next event must be a message: its seq, user and text. */
static struct ev next_message(struct ws *w)
{
    struct jv *v = expect_event(w, "message");
    struct ev e = {0};
    cr_assert(jv_int(v, "seq", &e.seq));
    snprintf(e.user, sizeof e.user, "%s", jv_str(v, "user"));
    snprintf(e.text, sizeof e.text, "%s", jv_str(v, "text"));
    jv_free(v);
    return e;
}

/* Log in at port as user and join: chat_join, without keeping the cookie. */
static struct ws *join_at(int port, const char *user, long long *seq, struct jv **welcome)
{
    char *cookie = login(port, user, "123456");
    struct ws *w = chat_join(port, cookie, user, seq, welcome);
    free(cookie);
    return w;
}

static void expect_system(struct ws *w)
{
    struct jv *v = expect_event(w, "system");
    long long seq;
    cr_assert(!jv_int(v, "seq", &seq), "a system event is outside the room's order");
    cr_assert(jv_str(v, "text"));
    jv_free(v);
}

/* ---- the tests ------------------------------------------------------------------ */

Test(redis, one_room_across_three_models, .init = harness_init, .fini = redis_fini,
     .timeout = 240 * HARNESS_SANITIZED)
{
    struct redis r;
    redis_start(&r);
    struct server sa, st, sf;
    start_model(&sa, "C10K_ASYNC", &r);
    start_model(&st, "C10K_THREADED", &r);
    start_model(&sf, "C10K_FORKED", &r);

    /* Joins are seen on every server, with one seq. */
    long long s1, s2, s3;
    struct jv *wel;
    struct ws *a = join_at(sa.port, "coco", &s1, NULL);
    struct ws *b = join_at(st.port, "cc", &s2, &wel);
    const struct jv *users = jv_get(wel, "users");
    cr_assert(users->n == 2 && strcmp(users->items[0]->s, "cc") == 0 &&
                  strcmp(users->items[1]->s, "coco") == 0,
              "presence is shared: cc on chat-threaded sees coco on chat-async (%zu: %s)",
              users->n, users->n ? users->items[0]->s : "");
    jv_free(wel);
    cr_assert_eq(s2, s1 + 1);
    cr_assert_eq(expect_event_by(a, "join", "cc"), s2);
    struct ws *c = join_at(sf.port, "aa", &s3, NULL);
    cr_assert_eq(s3, s2 + 1);
    cr_assert_eq(expect_event_by(a, "join", "aa"), s3);
    cr_assert_eq(expect_event_by(b, "join", "aa"), s3);

    /* Three servers post at once: one total order, the same everywhere,
     * seq without gaps. */
    ws_send_texts(a, "from async");
    ws_send_texts(b, "from threaded");
    ws_send_texts(c, "from forked");
    struct ws *all[] = {a, b, c};
    struct ev seen[3][3];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            seen[i][k] = next_message(all[i]);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(seen[0][k].seq, s3 + 1 + k, "seq has a gap: %lld", seen[0][k].seq);
        for (int i = 1; i < 3; i++) {
            cr_assert_eq(seen[i][k].seq, seen[0][k].seq);
            cr_assert_str_eq(seen[i][k].text, seen[0][k].text, "servers disagree on the order");
        }
    }

    /* History is shared: a newcomer on another server gets the same three. */
    long long s4;
    struct ws *d = join_at(st.port, "coco", &s4, &wel);
    cr_assert_eq(s4, s3 + 4);
    const struct jv *hist = jv_get(wel, "history");
    cr_assert_eq(hist->n, 3);
    for (int k = 0; k < 3; k++) {
        long long seq;
        cr_assert(jv_int(hist->items[k], "seq", &seq) && seq == seen[0][k].seq);
        cr_assert_str_eq(jv_str(hist->items[k], "text"), seen[0][k].text);
    }
    users = jv_get(wel, "users");
    cr_assert_eq(users->n, 3);
    jv_free(wel);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(expect_event_by(all[i], "join", "coco"), s4);

    /* A leave on one server reaches the others, next in line. */
    uint16_t code = ws_close_handshake(b, 1000);
    cr_assert_eq(code, 1000);
    ws_free(b);
    cr_assert_eq(expect_event_by(a, "leave", "cc"), s4 + 1);
    cr_assert_eq(expect_event_by(c, "leave", "cc"), s4 + 1);
    cr_assert_eq(expect_event_by(d, "leave", "cc"), s4 + 1);

    ws_free(a);
    ws_free(c);
    ws_free(d);
    server_stop(&sa);
    server_stop(&st);
    server_stop(&sf);
    redis_stop(&r);
}

Test(redis, redis_restarted_mid_chat, .init = harness_init, .fini = redis_fini,
     .timeout = 240 * HARNESS_SANITIZED)
{
    struct redis r;
    redis_start(&r);
    struct server sa, sf;
    start_model(&sa, "C10K_ASYNC", &r);
    start_model(&sf, "C10K_FORKED", &r);
    struct ws *a = join_at(sa.port, "coco", NULL, NULL);
    long long sb;
    struct ws *b = join_at(sf.port, "cc", &sb, NULL);
    cr_assert_eq(expect_event_by(a, "join", "cc"), sb);
    ws_send_texts(a, "before");
    struct ev e1 = next_message(a), e2 = next_message(b);
    cr_assert_eq(e1.seq, sb + 1);
    cr_assert_eq(e2.seq, e1.seq);

    /* Redis dies (no persistence: all it had is gone). Each server tells
     * its clients, and nobody crashes. */
    redis_kill(&r, SIGKILL);
    expect_system(a);
    expect_system(b);
    /* Said while Redis is away: held by the server, published on return. */
    ws_send_texts(a, "held");

    redis_run(&r);
    expect_system(a); /* reachable again */
    expect_system(b);
    e1 = next_message(a);
    e2 = next_message(b);
    cr_assert_str_eq(e1.text, "held");
    cr_assert_str_eq(e2.text, "held");
    cr_assert_eq(e1.seq, sb + 2, "seq goes on from where the room was, without a gap");
    cr_assert_eq(e2.seq, e1.seq);

    ws_send_texts(b, "after");
    e1 = next_message(a);
    e2 = next_message(b);
    cr_assert_str_eq(e1.text, "after");
    cr_assert_eq(e1.seq, sb + 3);
    cr_assert_eq(e2.seq, e1.seq);

    ws_free(a);
    ws_free(b);
    server_stop(&sa);
    server_stop(&sf);
    redis_stop(&r);
}

/* One server is cut off from Redis while the room goes on: what was said
 * meanwhile is recovered from the stream when it is back. The server is
 * stopped (SIGSTOP) while Redis drops its connections and the others post,
 * so it can only learn of those messages from the stream afterwards. */
Test(redis, cut_off_server_recovers_from_the_stream, .init = harness_init, .fini = redis_fini,
     .timeout = 240 * HARNESS_SANITIZED)
{
    struct redis r;
    redis_start(&r);
    struct server sa, st;
    start_model(&sa, "C10K_ASYNC", &r);
    start_model(&st, "C10K_THREADED", &r);
    struct ws *a = join_at(sa.port, "coco", NULL, NULL);
    long long sb;
    struct ws *b = join_at(st.port, "cc", &sb, NULL);
    cr_assert_eq(expect_event_by(a, "join", "cc"), sb);

    cr_assert_eq(kill(st.pid, SIGSTOP), 0);
    int status;
    cr_assert_eq(waitpid(st.pid, &status, WUNTRACED), st.pid); /* it is our child */
    cr_assert(WIFSTOPPED(status));
    cr_assert_eq(redis_kill_clients_of(&r, st.pid), 2, "chat-threaded has 2 Redis connections");
    ws_send_texts(a, "one");
    ws_send_texts(a, "two");
    for (int k = 0; k < 2; k++)
        cr_assert_eq(next_message(a).seq, sb + 1 + k);
    cr_assert_eq(kill(st.pid, SIGCONT), 0);

    expect_system(b); /* lost */
    expect_system(b); /* back */
    struct ev e1 = next_message(b), e2 = next_message(b);
    cr_assert_str_eq(e1.text, "one");
    cr_assert_eq(e1.seq, sb + 1);
    cr_assert_str_eq(e2.text, "two");
    cr_assert_eq(e2.seq, sb + 2);

    /* And it is a full member again, both ways. */
    ws_send_texts(b, "three");
    cr_assert_eq(next_message(a).seq, sb + 3);
    cr_assert_eq(next_message(b).seq, sb + 3);

    ws_free(a);
    ws_free(b);
    server_stop(&sa);
    server_stop(&st);
    redis_stop(&r);
}
