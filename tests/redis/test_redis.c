/* One room across servers of different models, through a real Redis.
 *
 * Each test starts its own redis-server (Debian's, on a free loopback port,
 * no RDB, no AOF, its --dir a fresh temp directory that must still be empty
 * at the end) and two to four chat servers with --redis: chat-async,
 * chat-threaded, chat-forked and chat-uring side by side, the binaries named
 * by $C10K_ASYNC, $C10K_THREADED, $C10K_FORKED and $C10K_URING. chat-uring
 * is built only where liburing is (CMake sets $C10K_URING then): without
 * it, the tests run with the other three. Every wait is on an event (a log
 * line, a frame), capped by the harness's CAP_MS.
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
    char url[128];
    char pass[64]; /* requirepass, or "" */
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
               "no", "--logfile", "", "--requirepass", r->pass, (char *)NULL);
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

/* pass: requirepass ("" for none); the caller may then put it in r->url. */
static void redis_start_pass(struct redis *r, const char *pass)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "/tmp/c10k-redis-XXXXXX");
    cr_assert(mkdtemp(r->dir));
    r->port = free_port();
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
    snprintf(r->pass, sizeof r->pass, "%s", pass);
    redis_run(r);
}

static void redis_start(struct redis *r) { redis_start_pass(r, ""); }

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

static void redis_fini(void);
/* Every test here: its own redis-server, killed by redis_fini if it aborts. */
#define REDIS_CFG .init = harness_init, .fini = redis_fini, .timeout = 240 * HARNESS_SANITIZED

static void redis_fini(void)
{
    if (live_redis && live_redis->pid > 0) {
        kill(live_redis->pid, SIGKILL);
        waitpid(live_redis->pid, NULL, 0);
    }
    harness_fini();
}

/* A plain client of r (authenticated when r has a password). */
static redisContext *redis_client(const struct redis *r)
{
    redisContext *c = redisConnect("127.0.0.1", r->port);
    cr_assert(c && !c->err, "cannot connect to redis-server");
    if (r->pass[0]) {
        redisReply *x = redisCommand(c, "AUTH %s", r->pass);
        cr_assert(x && x->type == REDIS_REPLY_STATUS, "AUTH refused");
        freeReplyObject(x);
    }
    return c;
}

/* One command from a NULL-terminated argument list (binary-safe lengths by
 * strlen); asserts Redis did not answer with an error. */
static void redis_do(redisContext *c, const char *const *args)
{
    const char *argv[64];
    size_t lens[64];
    int n = 0;
    for (; *args; args++) {
        cr_assert(n < 64);
        argv[n] = *args;
        lens[n++] = strlen(*args);
    }
    redisReply *x = redisCommandArgv(c, n, argv, lens);
    cr_assert(x && x->type != REDIS_REPLY_ERROR, "%s: %s", argv[0], x ? x->str : c->errstr);
    freeReplyObject(x);
}

/* Close, from Redis's side, every connection of the chat server with that
 * pid (the backplane names them c10k-PID-wr and c10k-PID-rd). Returns how
 * many were killed. */
static int redis_kill_clients_of(struct redis *r, pid_t pid)
{
    redisContext *c = redis_client(r);
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

/* chat-uring where it was built: its variable, or NULL. */
static const char *uring_env(void)
{
    const char *bin = getenv("C10K_URING");
    return bin && *bin && uring_permitted(bin) ? "C10K_URING" : NULL;
}

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

/* One server of each model in one room (chat-uring too where it is built). */
Test(redis, one_room_across_the_models, REDIS_CFG)
{
    struct redis r;
    redis_start(&r);
    const char *envs[4] = {"C10K_ASYNC", "C10K_THREADED", "C10K_FORKED", uring_env()};
    /* The demo accounts are three: chat-uring's member is a second aa. */
    const char *names[4] = {"coco", "cc", "aa", "aa"};
    int n = envs[3] ? 4 : 3;
    struct server srv[4];
    for (int i = 0; i < n; i++)
        start_model(&srv[i], envs[i], &r);

    /* Joins are seen on every server, with one seq. */
    struct ws *all[4];
    long long seq[4];
    struct jv *wel;
    all[0] = join_at(srv[0].port, names[0], &seq[0], NULL);
    all[1] = join_at(srv[1].port, names[1], &seq[1], &wel);
    const struct jv *users = jv_get(wel, "users");
    cr_assert(users->n == 2 && strcmp(users->items[0]->s, "cc") == 0 &&
                  strcmp(users->items[1]->s, "coco") == 0,
              "presence is shared: cc on chat-threaded sees coco on chat-async (%zu: %s)",
              users->n, users->n ? users->items[0]->s : "");
    jv_free(wel);
    for (int i = 1; i < n; i++) {
        if (i > 1)
            all[i] = join_at(srv[i].port, names[i], &seq[i], NULL);
        cr_assert_eq(seq[i], seq[i - 1] + 1, "%s: join seq", envs[i]);
        for (int k = 0; k < i; k++)
            cr_assert_eq(expect_event_by(all[k], "join", names[i]), seq[i],
                         "%s sees the join on %s", envs[k], envs[i]);
    }
    long long last = seq[n - 1];

    /* Every server posts at once: one total order, the same everywhere,
     * seq without gaps. */
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "from %s", envs[i]);
        ws_send_texts(all[i], text);
    }
    struct ev seen[4][4];
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            seen[i][k] = next_message(all[i]);
    for (int k = 0; k < n; k++) {
        cr_assert_eq(seen[0][k].seq, last + 1 + k, "seq has a gap: %lld", seen[0][k].seq);
        for (int i = 1; i < n; i++) {
            cr_assert_eq(seen[i][k].seq, seen[0][k].seq);
            cr_assert_str_eq(seen[i][k].text, seen[0][k].text, "servers disagree on the order");
        }
    }

    /* History is shared: a newcomer on another server gets the same. */
    long long s4;
    struct ws *d = join_at(srv[1].port, "coco", &s4, &wel);
    cr_assert_eq(s4, last + n + 1);
    const struct jv *hist = jv_get(wel, "history");
    cr_assert_eq(hist->n, (size_t)n);
    for (int k = 0; k < n; k++) {
        long long hseq;
        cr_assert(jv_int(hist->items[k], "seq", &hseq) && hseq == seen[0][k].seq);
        cr_assert_str_eq(jv_str(hist->items[k], "text"), seen[0][k].text);
    }
    users = jv_get(wel, "users");
    cr_assert_eq(users->n, 3, "coco, cc and aa; got %zu", users->n);
    jv_free(wel);
    for (int i = 0; i < n; i++)
        cr_assert_eq(expect_event_by(all[i], "join", "coco"), s4);

    /* A leave on one server reaches the others, next in line. */
    uint16_t code = ws_close_handshake(all[1], 1000);
    cr_assert_eq(code, 1000);
    ws_free(all[1]);
    all[1] = d;
    for (int i = 0; i < n; i++)
        cr_assert_eq(expect_event_by(all[i], "leave", "cc"), s4 + 1, "%s", envs[i]);

    for (int i = 0; i < n; i++) {
        ws_free(all[i]);
        server_stop(&srv[i]);
    }
    redis_stop(&r);
}

/* Between chat-async and chat-forked (and chat-uring where it is built). */
Test(redis, redis_restarted_mid_chat, REDIS_CFG)
{
    struct redis r;
    redis_start(&r);
    const char *envs[3] = {"C10K_ASYNC", "C10K_FORKED", uring_env()};
    const char *names[3] = {"coco", "cc", "aa"};
    int n = envs[2] ? 3 : 2;
    struct server srv[3];
    struct ws *w[3];
    long long sb = 0;
    for (int i = 0; i < n; i++) {
        start_model(&srv[i], envs[i], &r);
        w[i] = join_at(srv[i].port, names[i], &sb, NULL);
        for (int k = 0; k < i; k++)
            cr_assert_eq(expect_event_by(w[k], "join", names[i]), sb);
    }
    ws_send_texts(w[0], "before");
    for (int i = 0; i < n; i++)
        cr_assert_eq(next_message(w[i]).seq, sb + 1, "%s", envs[i]);

    /* Redis dies (no persistence: all it had is gone). Each server tells
     * its clients, and nobody crashes. */
    redis_kill(&r, SIGKILL);
    for (int i = 0; i < n; i++)
        expect_system(w[i]);
    /* Said while Redis is away: held by the server, published on return. */
    ws_send_texts(w[0], "held");

    redis_run(&r);
    for (int i = 0; i < n; i++) {
        expect_system(w[i]); /* reachable again */
        struct ev e = next_message(w[i]);
        cr_assert_str_eq(e.text, "held", "%s", envs[i]);
        cr_assert_eq(e.seq, sb + 2, "%s: seq goes on from where the room was, without a gap",
                     envs[i]);
    }

    /* Every server publishes again, in one order. */
    for (int k = 1; k < n; k++) {
        ws_send_texts(w[k], "after");
        for (int i = 0; i < n; i++) {
            struct ev e = next_message(w[i]);
            cr_assert_str_eq(e.text, "after");
            cr_assert_eq(e.seq, sb + 2 + k, "%s", envs[i]);
        }
    }

    for (int i = 0; i < n; i++) {
        ws_free(w[i]);
        server_stop(&srv[i]);
    }
    redis_stop(&r);
}

/* A server is cut off from Redis while the room goes on: what was said
 * meanwhile is recovered from the stream when it is back. The server is
 * stopped (SIGSTOP) while Redis drops its connections and the others post,
 * so it can only learn of those messages from the stream afterwards. Cut
 * off: chat-threaded (its backplane thread), and chat-uring (its ring)
 * where it is built. */
Test(redis, cut_off_server_recovers_from_the_stream, REDIS_CFG)
{
    struct redis r;
    redis_start(&r);
    struct server sa;
    start_model(&sa, "C10K_ASYNC", &r);
    struct ws *a = join_at(sa.port, "coco", NULL, NULL);
    const char *envs[2] = {"C10K_THREADED", uring_env()};
    const char *names[2] = {"cc", "aa"};
    int n = envs[1] ? 2 : 1;
    struct server sc[2];
    struct ws *c[2];
    long long sb = 0;
    for (int i = 0; i < n; i++) {
        start_model(&sc[i], envs[i], &r);
        c[i] = join_at(sc[i].port, names[i], &sb, NULL);
        cr_assert_eq(expect_event_by(a, "join", names[i]), sb);
        for (int k = 0; k < i; k++)
            cr_assert_eq(expect_event_by(c[k], "join", names[i]), sb);
    }

    for (int i = 0; i < n; i++) {
        cr_assert_eq(kill(sc[i].pid, SIGSTOP), 0);
        int status;
        cr_assert_eq(waitpid(sc[i].pid, &status, WUNTRACED), sc[i].pid); /* it is our child */
        cr_assert(WIFSTOPPED(status));
        cr_assert_eq(redis_kill_clients_of(&r, sc[i].pid), 2, "%s has 2 Redis connections",
                     envs[i]);
    }
    ws_send_texts(a, "one");
    ws_send_texts(a, "two");
    for (int k = 0; k < 2; k++)
        cr_assert_eq(next_message(a).seq, sb + 1 + k);
    for (int i = 0; i < n; i++)
        cr_assert_eq(kill(sc[i].pid, SIGCONT), 0);

    for (int i = 0; i < n; i++) {
        expect_system(c[i]); /* lost */
        expect_system(c[i]); /* back */
        struct ev e1 = next_message(c[i]), e2 = next_message(c[i]);
        cr_assert_str_eq(e1.text, "one", "%s", envs[i]);
        cr_assert_eq(e1.seq, sb + 1);
        cr_assert_str_eq(e2.text, "two", "%s", envs[i]);
        cr_assert_eq(e2.seq, sb + 2);
    }

    /* And each is a full member again, both ways. */
    for (int i = 0; i < n; i++) {
        ws_send_texts(c[i], "three");
        long long want = sb + 3 + i;
        cr_assert_eq(next_message(a).seq, want);
        for (int k = 0; k < n; k++)
            cr_assert_eq(next_message(c[k]).seq, want, "%s", envs[k]);
    }

    ws_free(a);
    server_stop(&sa);
    for (int i = 0; i < n; i++) {
        ws_free(c[i]);
        server_stop(&sc[i]);
    }
    redis_stop(&r);
}

/* ---- what is read from Redis is untrusted (issue 16) ------------------------- */

/* 4096 bytes of 'A': the name of issue 16's XADD. */
static const char *huge_name(void)
{
    static char name[4097];
    memset(name, 'A', sizeof name - 1);
    return name;
}

/* Lines of text that contain needle. */
static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Entries written into the stream around the script, as anyone with access
 * to Redis could: each must be refused by every server, none may crash one,
 * and the room must go on with the next real event. Before the fix the first
 * one overflowed the heap (ASan: heap-buffer-overflow in presence_add) and
 * the huge seq froze the room: every later event looked like a redelivery. */
Test(redis, hostile_stream_entries_are_refused_and_the_room_goes_on, REDIS_CFG)
{
    struct redis r;
    redis_start(&r);
    struct server sa, st;
    start_model(&sa, "C10K_ASYNC", &r);
    start_model(&st, "C10K_THREADED", &r);
    long long sb;
    struct ws *a = join_at(sa.port, "coco", NULL, NULL);
    struct ws *b = join_at(st.port, "cc", &sb, NULL);
    cr_assert_eq(expect_event_by(a, "join", "cc"), sb);

    char next[24], long_text[5001];
    const char *huge_user = huge_name();
    snprintf(next, sizeof next, "%lld", sb + 1);
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    redisContext *c = redis_client(&r);
#define XADD(...) redis_do(c, ARGS("XADD", "c10k:room", "*", __VA_ARGS__))
    XADD("seq", next, "ts", "0", "type", "join", "user", huge_user, "text", "", "sid", "1.2", "tok", "1");
    XADD("seq", "99999999", "ts", "0", "type", "message", "user", "mallory", "text", "frozen?",
         "sid", "1.2", "tok", "1");
    XADD("seq", next, "ts", "0", "type", "message", "user", "mallory", "text", "\xff\xfe", "sid",
         "1.2", "tok", "1");
    XADD("seq", next, "ts", "0", "type", "message", "user", "mallory", "text", long_text, "sid",
         "1.2", "tok", "1");
    XADD("seq", next, "ts", "0", "type", "message", "user", "<script>", "text", "hi", "sid", "1.2",
         "tok", "1");
    XADD("seq", next, "ts", "0", "type", "system", "user", "mallory", "text", "fake", "sid", "1.2",
         "tok", "1");
    XADD("seq", next, "ts", "0", "type", "join", "user", "mallory", "text", "on a join", "sid",
         "1.2", "tok", "1");
    XADD("seq", "12abc", "ts", "0", "type", "message", "user", "mallory", "text", "hi", "sid",
         "1.2", "tok", "1");
    XADD("seq", "-1", "ts", "0", "type", "message", "user", "mallory", "text", "hi", "sid", "1.2",
         "tok", "1");
    XADD("seq", "99999999999999999999999", "ts", "0", "type", "message", "user", "mallory", "text",
         "hi", "sid", "1.2", "tok", "1");
    XADD("seq", next, "ts", "99999999999999999999", "type", "message", "user", "mallory", "text",
         "hi", "sid", "1.2", "tok", "1");
    XADD("seq", next, "ts", "0", "type", "message", "user", "mallory", "text", "hi", "tok", "1");
    XADD("seq", next, "ts", "0", "type", "message", "text", "hi", "sid", "1.2", "tok", "1");
    XADD("only", "junk");
    /* The same bad entry many times: logged once, not once each. */
    for (int i = 0; i < 100; i++)
        XADD("seq", next, "ts", "0", "type", "evil", "user", "mallory", "text", "hi", "sid", "1.2",
             "tok", "1");
#undef XADD
    redisFree(c);

    /* A real message from the other server comes next, with the next seq:
     * nothing hostile reached either client before it, not even a gap note. */
    ws_send_texts(b, "after the storm");
    struct ev ea = next_message(a), eb = next_message(b);
    cr_assert_str_eq(ea.text, "after the storm");
    cr_assert_eq(ea.seq, sb + 1, "the room is not frozen and has no gap");
    cr_assert_str_eq(eb.text, ea.text);
    cr_assert_eq(eb.seq, ea.seq);
    ws_send_texts(a, "and back");
    cr_assert_eq(next_message(b).seq, sb + 2);
    cr_assert_eq(next_message(a).seq, sb + 2);
    expect_hello(sa.port);
    expect_hello(st.port);

    /* Presence took none of the refused names. */
    struct jv *wel;
    struct ws *d = join_at(sa.port, "aa", NULL, &wel);
    const struct jv *users = jv_get(wel, "users");
    cr_assert_eq(users->n, 3, "users: aa, cc, coco; got %zu", users->n);
    jv_free(wel);

    struct server *both[] = {&sa, &st};
    for (int i = 0; i < 2; i++) {
        char *err = server_stderr(both[i]);
        cr_assert(strstr(err, "refused stream entry"), "refusals are logged:\n%s", err);
        cr_assert(strstr(err, "seq ahead of c10k:seq"), "the huge seq is refused:\n%s", err);
        int evil = count_lines_with(err, "(unknown type");
        cr_assert(evil >= 1 && evil < 10, "100 entries of one cause, %d log lines:\n%s", evil, err);
        cr_assert_null(strstr(err, "AAAAAAAAAAAAAAAA"), "refused content is not echoed to the log");
        free(err);
    }
    ws_free(a);
    ws_free(b);
    ws_free(d);
    server_stop(&sa);
    server_stop(&st);
    redis_stop(&r);
}

/* The hello snapshot a server loads when it starts comes from presence
 * hashes and the stream: both writable by anyone with access to Redis. A
 * count that is not a number used to stop the hello script (no server
 * could start into the room); an entry missing a field shifted the
 * history's fields; names and counts went in unchecked. */
Test(redis, hostile_presence_and_history_do_not_reach_a_new_server, REDIS_CFG)
{
    struct redis r;
    redis_start(&r);
    struct server sa, sf;
    start_model(&sa, "C10K_ASYNC", &r);
    long long s1;
    struct ws *a = join_at(sa.port, "coco", &s1, NULL);
    ws_send_texts(a, "first");
    struct ev first = next_message(a);

    const char *huge_user = huge_name();
    redisContext *c = redis_client(&r);
    redis_do(c, ARGS("HSET", "c10k:presence:666.1", huge_user, "1", "a b", "1", "zed",
                     "99999999999999999999999", "nan", "abc", "eve", "1"));
    redis_do(c, ARGS("SADD", "c10k:servers", "666.1"));
    redis_do(c, ARGS("XADD", "c10k:room", "*", "seq", "1", "ts", "0", "type", "message", "text",
                     "no user", "sid", "1.2", "tok", "1"));
    redis_do(c, ARGS("XADD", "c10k:room", "*", "seq", "1", "ts", "0", "type", "message", "user",
                     huge_user, "text", "hi", "sid", "1.2", "tok", "1"));
    redis_do(c, ARGS("XADD", "c10k:room", "*", "seq", "1", "ts", "0", "type", "message", "user",
                     "mallory", "text", "\xc3", "sid", "1.2", "tok", "1"));
    redisFree(c);

    start_model(&sf, "C10K_FORKED", &r);
    struct jv *wel;
    long long s2;
    struct ws *b = join_at(sf.port, "cc", &s2, &wel);
    const struct jv *users = jv_get(wel, "users");
    cr_assert_eq(users->n, 3, "cc, coco and eve (a valid name, indistinguishable); got %zu",
                 users->n);
    cr_assert_str_eq(users->items[0]->s, "cc");
    cr_assert_str_eq(users->items[1]->s, "coco");
    cr_assert_str_eq(users->items[2]->s, "eve");
    const struct jv *hist = jv_get(wel, "history");
    cr_assert_eq(hist->n, 1, "only the real message is history; got %zu", hist->n);
    long long seq;
    cr_assert(jv_int(hist->items[0], "seq", &seq) && seq == first.seq);
    cr_assert_str_eq(jv_str(hist->items[0], "text"), "first");
    cr_assert_str_eq(jv_str(hist->items[0], "user"), "coco");
    jv_free(wel);
    cr_assert_eq(s2, first.seq + 1);
    cr_assert_eq(expect_event_by(a, "join", "cc"), s2, "the running server skipped them too");

    ws_send_texts(b, "hello from forked");
    cr_assert_eq(next_message(a).seq, s2 + 1);
    cr_assert_eq(next_message(b).seq, s2 + 1);
    char *err = server_stderr(&sf);
    cr_assert(strstr(err, "refused part of the hello snapshot"), "%s", err);
    free(err);
    ws_free(a);
    ws_free(b);
    server_stop(&sa);
    server_stop(&sf);
    redis_stop(&r);
}

/* redis://:PASSWORD@HOST:PORT/DB: AUTH on every connection, SELECT the db;
 * the password never in the server's output or its command line. */
Test(redis, password_and_db_from_the_url, REDIS_CFG)
{
    struct redis r;
    redis_start_pass(&r, "pw-Zq8@/x%");
    /* '@' and '/' stay in the password when percent-encoded; "%" too. */
    snprintf(r.url, sizeof r.url, "redis://:pw-Zq8%%40%%2Fx%%25@127.0.0.1:%d/3", r.port);

    struct server sa, st;
    start_model(&sa, "C10K_ASYNC", &r);
    start_model(&st, "C10K_THREADED", &r);
    long long sb;
    struct ws *a = join_at(sa.port, "coco", NULL, NULL);
    struct ws *b = join_at(st.port, "cc", &sb, NULL);
    cr_assert_eq(expect_event_by(a, "join", "cc"), sb);
    ws_send_texts(a, "through AUTH");
    cr_assert_eq(next_message(b).seq, sb + 1);

    redisContext *c = redis_client(&r);
    redisReply *x = redisCommand(c, "XLEN c10k:room");
    cr_assert(x && x->type == REDIS_REPLY_INTEGER && x->integer == 0, "nothing in db 0");
    freeReplyObject(x);
    x = redisCommand(c, "SELECT 3");
    freeReplyObject(x);
    x = redisCommand(c, "XLEN c10k:room");
    cr_assert(x && x->type == REDIS_REPLY_INTEGER && x->integer == 3, "the room is in db 3");
    freeReplyObject(x);
    redisFree(c);

    /* Wrong password: the server says so, keeps serving and retrying. */
    struct server sw;
    setenv("C10K_SERVER", getenv("C10K_ASYNC"), 1);
    char wrong[160];
    snprintf(wrong, sizeof wrong, "redis://:wrong-Kp3v@127.0.0.1:%d/3", r.port);
    server_start(&sw, ARGS("--redis", wrong));
    int64_t deadline = now_ms() + CAP_MS;
    char *err = server_stderr(&sw);
    while (!strstr(err, "WRONGPASS") && remaining_ms(deadline) > 0) {
        struct pollfd none;
        poll(&none, 0, 50); /* a log line cannot be waited on: look again */
        free(err);
        err = server_stderr(&sw);
    }
    cr_assert(strstr(err, "WRONGPASS"), "the AUTH failure is logged:\n%s", err);
    cr_assert_null(strstr(err, "wrong-Kp3v"));
    free(err);
    expect_hello(sw.port);

    /* Neither the output nor ps shows a password. */
    struct server *all[] = {&sa, &st, &sw};
    for (int i = 0; i < 3; i++) {
        char path[64], cmd[4096];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)all[i]->pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert(fd >= 0);
        ssize_t n = read(fd, cmd, sizeof cmd - 1);
        close(fd);
        cr_assert(n > 0);
        for (ssize_t k = 0; k < n; k++)
            cmd[k] = cmd[k] ? cmd[k] : ' ';
        cmd[n] = '\0';
        cr_assert(strstr(cmd, "--redis"), "%s", cmd);
        cr_assert_null(strstr(cmd, "pw-Zq8"), "the password shows in ps: %s", cmd);
        cr_assert_null(strstr(cmd, "wrong-Kp3v"), "the password shows in ps: %s", cmd);
        char *out = server_stderr(all[i]);
        cr_assert_null(strstr(out, "pw-Zq8"), "the password is in the log:\n%s", out);
        free(out);
    }
    ws_free(a);
    ws_free(b);
    server_stop(&sa);
    server_stop(&st);
    server_stop(&sw);
    redis_stop(&r);
}

/* No TLS in hiredis 0.14: a Redis elsewhere without a password is refused
 * at start unless --redis-insecure says so; a bad URL never echoes its
 * password. Every model parses the flag the same way (common/config.c). */
Test(redis, exposed_or_bad_urls_refused_at_start, .init = harness_init, .fini = harness_fini)
{
    const char *models[] = {"C10K_ASYNC", "C10K_THREADED", "C10K_FORKED", uring_env()};
    for (int i = 0; i < 4 && models[i]; i++) {
        setenv("C10K_SERVER", getenv(models[i]), 1);
        unsetenv("C10K_SERVER_ARGS");
        char *err = server_start_must_fail(ARGS("--redis", "redis://192.0.2.7:6379/0"));
        cr_assert(strstr(err, "--redis-insecure") && strstr(err, "password"), "%s", err);
        free(err);
        err = server_start_must_fail(ARGS("--redis", "redis://:Sup3r-s3cret@192.0.2.7:70000/0"));
        cr_assert(strstr(err, "port"), "%s", err);
        cr_assert_null(strstr(err, "Sup3r-s3cret"), "the password was printed:\n%s", err);
        free(err);
        err = server_start_must_fail(ARGS("--redis", "redis://admin:Sup3r-s3cret@127.0.0.1/0"));
        cr_assert_null(strstr(err, "Sup3r-s3cret"), "the password was printed:\n%s", err);
        free(err);
    }
    /* The flag lets it start (it then retries the unreachable Redis). */
    struct server s;
    setenv("C10K_SERVER", getenv("C10K_ASYNC"), 1);
    server_start(&s, ARGS("--redis", "redis://192.0.2.7:6379/0", "--redis-insecure"));
    expect_hello(s.port);
    server_stop(&s);
}
