/* What only chat-forked has: a process per connection under a parent that
 * runs the chat hub. A child killed mid-chat, zombies after many short
 * connections, orphans after shutdown, one total order of events across
 * processes, and /stats adding up the whole process tree.
 *
 * The server's children are found through /proc: the parent's children are
 * listed in /proc/PID/task/PID/children (all made by its main thread), and
 * the child serving a given client connection is the one whose descriptor 3
 * (child.c's CLIENT_FD) is the server side of that TCP connection, found in
 * /proc/net/tcp by its ports. No test sleeps to synchronise: every wait
 * re-checks its condition with a short pacing delay up to a cap that fails
 * the test (the caps are not timing assertions). */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "harness.h"
#include "jsonv.h"
#include "ws_client.h"

TestSuite(forked, SUITE_CFG);

#define POLL_CAP_MS (20000 * harness_slowdown()) /* cap of every polled condition below */
#define MAX_KIDS 512

/* A short pause between two checks of a polled condition (pacing only: the
 * condition itself is what the loop waits for). */
static void pace(void)
{
    poll(NULL, 0, 10);
}

/* ---- /proc ---- */

/* True for the server's spawner (models/forked/spawner.c): the one child
 * that serves no connection. It names itself, so `ps` tells it apart too. */
static bool is_spawner(pid_t pid)
{
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool yes = fgets(comm, sizeof comm, f) && strcmp(comm, "forked-spawner\n") == 0;
    fclose(f);
    return yes;
}

/* The spawner's live children right now: go-betweens, each about to hand a
 * new connection process to the server (spawner.c); while one lives, its
 * child may not be the server's yet. */
static int in_adoption(pid_t server)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)server, (int)server);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while (fscanf(f, "%d", &c) == 1)
        if (is_spawner((pid_t)c)) {
            char sp[64];
            snprintf(sp, sizeof sp, "/proc/%d/task/%d/children", c, c);
            FILE *g = fopen(sp, "r");
            int k;
            while (g && fscanf(g, "%d", &k) == 1)
                n++;
            if (g)
                fclose(g);
        }
    fclose(f);
    return n;
}

/* The server's connection children (live or zombie) right now, the spawner
 * left out; returns how many. */
static int children_of(pid_t pid, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while (n < max && fscanf(f, "%d", &c) == 1)
        if (!is_spawner((pid_t)c))
            out[n++] = (pid_t)c;
    fclose(f);
    return n;
}

/* The state letter of /proc/PID/stat (R, S, Z, ...), or 0 when it is gone. */
static char proc_state(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the comm may hold spaces and parens */
    return p && p[1] == ' ' ? p[2] : 0;
}

/* VmRSS of a process in bytes, -1 when it is gone. */
static long long vm_rss(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = atoll(line + 6);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0, "getsockname: %s",
              strerror(errno));
    return ntohs(a.sin_port);
}

/* The inode of the server's side of the connection from client_port to
 * server_port (ESTABLISHED, in /proc/net/tcp or tcp6), 0 if none; *rxq gets
 * the bytes the server has not read yet. */
static unsigned long server_socket_inode(int server_port, int client_port, unsigned *rxq)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (int t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "r");
        if (!f)
            continue;
        char line[512];
        if (!fgets(line, sizeof line, f)) { /* the header */
            fclose(f);
            continue;
        }
        while (fgets(line, sizeof line, f)) {
            unsigned lp, rp, st, txq, rq;
            unsigned long inode;
            /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%x %x %x:%x %*x:%*x %*x %*u %*d %lu",
                       &lp, &rp, &st, &txq, &rq, &inode) != 6)
                continue;
            if ((int)lp == server_port && (int)rp == client_port && st == 0x01 && inode) {
                fclose(f);
                if (rxq)
                    *rxq = rq;
                return inode;
            }
        }
        fclose(f);
    }
    return 0;
}

/* Does /proc/PID/fd/FD link to socket:[inode]? */
static bool fd_is_socket(pid_t pid, int fd, unsigned long inode)
{
    char path[64], link[128], want[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return false;
    link[n] = '\0';
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    return strcmp(link, want) == 0;
}

/* The child of the server serving the client connection on client_fd: its
 * descriptor 3 is the server side of that connection. With request_read, also
 * wait until the server has read everything sent on it (receive queue 0),
 * i.e. the child has taken the request. Polls up to the cap; fails the test
 * if no such child turns up. */
static pid_t child_serving(const struct server *s, int client_fd, bool request_read)
{
    int cport = local_port(client_fd);
    int64_t deadline = now_ms() + POLL_CAP_MS;
    unsigned long inode = 0;
    unsigned rxq = 0;
    for (;;) {
        inode = server_socket_inode(s->port, cport, &rxq);
        if (inode && (!request_read || rxq == 0)) {
            pid_t kids[MAX_KIDS];
            int n = children_of(s->pid, kids, MAX_KIDS);
            for (int i = 0; i < n; i++)
                if (fd_is_socket(kids[i], 3, inode))
                    return kids[i];
        }
        cr_assert(remaining_ms(deadline) > 0,
                  "no child of the server %d serves the connection from port %d "
                  "(server-side socket inode %lu, unread %u bytes)",
                  (int)s->pid, cport, inode, rxq);
        pace();
    }
}

static bool pid_in(pid_t pid, const pid_t *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == pid)
            return true;
    return false;
}

/* ---- small helpers ---- */

static long long stat_int(const struct jv *v, const char *key)
{
    long long x;
    cr_assert(jv_int(v, key, &x), "/stats has no integer %s", key);
    return x;
}

/* The next event must be a message by user with exactly that text; returns
 * its seq. */
static long long expect_message(struct ws *w, const char *user, const char *text)
{
    struct jv *v = expect_event(w, "message");
    const char *u = jv_str(v, "user"), *t = jv_str(v, "text");
    cr_assert(u && strcmp(u, user) == 0, "message by %s, expected %s", u ? u : "-", user);
    cr_assert(t && strcmp(t, text) == 0, "message \"%s\", expected \"%s\"", t ? t : "-", text);
    long long seq;
    cr_assert(jv_int(v, "seq", &seq), "message without seq");
    jv_free(v);
    return seq;
}

static char *quick_users(void)
{
    return users_file(ARGS("alice", "pw", "bob", "pw", "carol", "pw", "u0", "pw", "u1", "pw",
                           "u2", "pw", "u3", "pw", "u4", "pw", "u5", "pw"),
                      NULL);
}

/* ---- 1. a child killed mid-chat ---- */

/* Users A and B chat; the process serving B is killed with SIGKILL (it gets
 * no chance to say goodbye). The hub must notice through its socketpair and
 * tell A that B left, with the next seq; the room goes on for A and a
 * newcomer C without a gap, and the server stays healthy and exits 0. */
Test(forked, sigkilled_child_leaves_and_room_goes_on)
{
    char *users = quick_users();
    struct server s;
    server_start(&s, ARGS("--users", users));
    char *ca = login(s.port, "alice", "pw"), *cb = login(s.port, "bob", "pw"),
         *cc = login(s.port, "carol", "pw");
    long long sa, sb;
    struct ws *a = chat_join(s.port, ca, "alice", &sa, NULL);
    struct ws *b = chat_join(s.port, cb, "bob", &sb, NULL);
    cr_assert_eq(sa, 1);
    cr_assert_eq(sb, 2);
    cr_assert_eq(expect_event_by(a, "join", "bob"), 2);
    ws_send_texts(a, "hi bob");
    cr_assert_eq(expect_message(a, "alice", "hi bob"), 3);
    cr_assert_eq(expect_message(b, "alice", "hi bob"), 3);
    ws_send_texts(b, "hi alice");
    cr_assert_eq(expect_message(b, "bob", "hi alice"), 4);
    cr_assert_eq(expect_message(a, "bob", "hi alice"), 4);

    pid_t victim = child_serving(&s, b->fd, false);
    pid_t a_child = child_serving(&s, a->fd, false);
    cr_assert_neq(victim, a_child, "A and B served by the same process %d", (int)victim);
    cr_assert(kill(victim, SIGKILL) == 0, "kill %d: %s", (int)victim, strerror(errno));

    cr_assert_eq(expect_event_by(a, "leave", "bob"), 5, "B's leave does not have the next seq");
    /* B's connection died with its process. */
    cr_assert(ws_wait_tcp_close(b, CAP_MS), "B's connection outlived its process");
    /* The parent reaps it: it leaves the server's children, no zombie. */
    int64_t deadline = now_ms() + POLL_CAP_MS;
    for (;;) {
        pid_t kids[MAX_KIDS];
        int n = children_of(s.pid, kids, MAX_KIDS);
        if (!pid_in(victim, kids, n))
            break;
        cr_assert(remaining_ms(deadline) > 0, "the killed child %d is still the server's (state %c)",
                  (int)victim, proc_state(victim));
        pace();
    }

    struct jv *wel;
    long long sc;
    struct ws *c = chat_join(s.port, cc, "carol", &sc, &wel);
    cr_assert_eq(sc, 6, "C's join has seq %lld after the leave 5", sc);
    const struct jv *online = jv_get(wel, "users");
    cr_assert(online && online->t == J_ARR && online->n == 2, "users after B was killed: %zu names",
              online ? online->n : 0);
    cr_assert_str_eq(online->items[0]->s, "alice");
    cr_assert_str_eq(online->items[1]->s, "carol");
    const struct jv *hist = jv_get(wel, "history");
    cr_assert(hist && hist->t == J_ARR && hist->n == 2, "history should hold the 2 messages");
    jv_free(wel);
    cr_assert_eq(expect_event_by(a, "join", "carol"), 6);

    ws_send_texts(a, "welcome carol");
    cr_assert_eq(expect_message(a, "alice", "welcome carol"), 7);
    cr_assert_eq(expect_message(c, "alice", "welcome carol"), 7);
    ws_send_texts(c, "thanks");
    cr_assert_eq(expect_message(c, "carol", "thanks"), 8);
    cr_assert_eq(expect_message(a, "carol", "thanks"), 8);

    expect_hello(s.port);
    ws_free(a);
    ws_free(b);
    ws_free(c);
    server_stop(&s); /* asserts exit status 0 */
    free(ca);
}

/* After a child is SIGKILLed, /stats must not go on counting its connection:
 * "Counts are of the whole server" — a process that no longer exists holds
 * no connection and no WebSocket. */
Test(forked, stats_counts_recover_after_sigkilled_child)
{
    char *users = quick_users();
    struct server s;
    server_start(&s, ARGS("--users", users));
    char *ca = login(s.port, "alice", "pw"), *cb = login(s.port, "bob", "pw");
    struct ws *a = chat_join(s.port, ca, "alice", NULL, NULL);
    struct ws *b = chat_join(s.port, cb, "bob", NULL, NULL);
    expect_event_by(a, "join", "bob");
    struct jv *v = stats_get(s.port);
    cr_assert_eq(stat_int(v, "ws_clients"), 2);
    jv_free(v);

    pid_t victim = child_serving(&s, b->fd, false);
    cr_assert(kill(victim, SIGKILL) == 0);
    expect_event_by(a, "leave", "bob");
    cr_assert(ws_wait_tcp_close(b, CAP_MS));

    /* One WebSocket (A) and one connection besides this request's own. */
    long long ws = -1, conns = -1;
    int64_t deadline = now_ms() + POLL_CAP_MS;
    for (;;) {
        v = stats_get(s.port);
        ws = stat_int(v, "ws_clients");
        conns = stat_int(v, "connections");
        jv_free(v);
        if (ws == 1 && conns == 2)
            break;
        cr_assert(remaining_ms(deadline) > 0,
                  "after B's process was killed /stats still says ws_clients %lld (1 open) and "
                  "connections %lld (2 open: A and this request)",
                  ws, conns);
        pace();
    }
    ws_free(a);
    ws_free(b);
    server_stop(&s);
    free(ca);
}

/* ---- 2. no zombie ---- */

/* 200 short connections, one after another: each is a child that exits when
 * its client closes. The parent must reap every one of them: no child stays
 * a zombie, and the server's list of children empties. */
Test(forked, no_zombie_after_200_short_connections)
{
    struct server s;
    server_start(&s, NULL);
    for (int i = 0; i < 200; i++)
        expect_hello(s.port);

    int64_t deadline = now_ms() + POLL_CAP_MS;
    for (;;) {
        pid_t kids[MAX_KIDS];
        int n = children_of(s.pid, kids, MAX_KIDS), zombies = 0;
        char states[256] = "";
        for (int i = 0; i < n; i++) {
            char st = proc_state(kids[i]);
            zombies += st == 'Z';
            if (strlen(states) < sizeof states - 16)
                snprintf(states + strlen(states), sizeof states - strlen(states), " %d:%c",
                         (int)kids[i], st ? st : '-');
        }
        if (n == 0 && in_adoption(s.pid) == 0)
            break; /* every child reaped (none on its way to us): none can be a zombie */
        cr_assert(remaining_ms(deadline) > 0,
                  "the server still has %d children (%d zombies) with no connection open:%s", n,
                  zombies, states);
        pace();
    }

    /* The shared counters came back down too: only this request's own
     * connection is open. */
    struct jv *v = stats_get(s.port);
    cr_assert_eq(stat_int(v, "connections"), 1, "connections after 200 closed ones");
    cr_assert_eq(stat_int(v, "ws_clients"), 0);
    cr_assert_eq(stat_int(v, "requests"), 201, "requests: 200 /hello and this /stats");
    jv_free(v);
    server_stop(&s);
}

/* Waits until the server has exactly n children, none of them a zombie. */
static void wait_children(const struct server *s, int n)
{
    int64_t deadline = now_ms() + POLL_CAP_MS;
    for (;;) {
        pid_t kids[MAX_KIDS];
        int got = children_of(s->pid, kids, MAX_KIDS), live = 0;
        for (int i = 0; i < got; i++)
            live += proc_state(kids[i]) != 'Z';
        if (got == n && live == n)
            return;
        cr_assert(remaining_ms(deadline) > 0, "the server has %d children (%d not zombies), "
                  "expected %d", got, live, n);
        pace();
    }
}

/* /stats `processes` once the server has exactly `open` children: the tree
 * is then the parent, its spawner, those children and the child serving
 * this /stats.
 * Each try first waits for the children of the previous try's /stats to be
 * gone, so the only thing a retry can paper over is the server counting a
 * child a moment after forking it — never a value that would be right only
 * because a stale child was still around. */
static void expect_processes(const struct server *s, int open)
{
    long long procs = -1, want = 2 + open + 1;
    int64_t deadline = now_ms() + POLL_CAP_MS;
    for (;;) {
        wait_children(s, open);
        struct jv *v = stats_get(s->port);
        procs = stat_int(v, "processes");
        jv_free(v);
        if (procs == want)
            return;
        cr_assert(remaining_ms(deadline) > 0,
                  "processes %lld with %d connections open; the whole tree is the parent, the "
                  "spawner, %d children and the child serving /stats: %lld",
                  procs, open, open, want);
        pace();
    }
}

/* `processes` after churn and with WebSockets open. The contract: "Counts
 * are of the whole server (all its processes in chat-forked)", and the other
 * models say 1 for their one process. So chat-forked's whole tree is the
 * parent, its spawner and its live children: with nothing open but the
 * /stats request itself, 3 (the parent, the spawner and the child serving
 * /stats). */
Test(forked, stats_processes_is_parent_plus_live_children)
{
    char *users = quick_users();
    struct server s;
    server_start(&s, ARGS("--users", users));
    for (int i = 0; i < 50; i++)
        expect_hello(s.port);
    expect_processes(&s, 0);

    /* With 3 WebSockets open: the parent, the spawner, 3 children and the
     * /stats child. */
    char *cu = login(s.port, "u0", "pw");
    struct ws *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = chat_join(s.port, cu, "u0", NULL, NULL);
    expect_processes(&s, 3);
    for (int i = 0; i < 3; i++)
        ws_free(w[i]);
    server_stop(&s);
    free(cu);
}

/* ---- 3. no orphan ---- */

/* With a WebSocket, a /sleep?ms=30000 in flight and an idle keep-alive
 * connection, SIGTERM: the server must exit 0 leaving none of its children
 * behind.
 *
 * How "behind" is detected: this test process makes itself a child
 * subreaper (PR_SET_CHILD_SUBREAPER) before starting the server, so a child
 * still alive when the server exits is re-parented to us instead of to init.
 * Then, once the server is reaped, waitpid(child, WNOHANG) on each recorded
 * child pid says exactly what happened to it:
 *   - ECHILD: it never became ours, so the server itself reaped it before
 *     exiting — the right outcome;
 *   - 0 (still running) or its pid (it exited after the server did): it
 *     outlived the server — an orphan.
 * The alternative, polling kill(pid, 0) until ESRCH, is weaker and racier:
 * an orphan that exits a moment after the server, or is reaped by init,
 * looks the same as a child the server waited for; a zombie still answers
 * kill(pid, 0) until init gets round to it, so the poll needs a cap and a
 * guess; and a recycled pid can make a dead child look alive. The subreaper
 * check has no window: re-parenting happens inside the server's exit, before
 * waitpid on the server returns. (Criterion runs each test in its own
 * process, so the flag touches no other test.) */
Test(forked, no_orphan_after_shutdown)
{
    cr_assert(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER: %s",
              strerror(errno));
    struct server s;
    server_start(&s, NULL);
    char *cookie = login(s.port, "coco", "123456");
    struct ws *w = chat_join(s.port, cookie, "coco", NULL, NULL);

    struct tsock idle;
    tsock_open(&idle, s.port);
    cr_assert(tsock_sends(&idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    struct http_resp r;
    tsock_expect_response(&idle, false, &r);
    cr_assert_eq(r.status, 200);
    resp_free(&r);

    struct tsock sleeper;
    tsock_open(&sleeper, s.port);
    cr_assert(tsock_sends(&sleeper, "GET /sleep?ms=30000 HTTP/1.1\r\nHost: x\r\n\r\n"));

    /* One child per connection, each found by its socket; the sleeper's
     * once it has read the request, so the /sleep is really in flight. */
    pid_t recorded[3] = {child_serving(&s, w->fd, false), child_serving(&s, idle.fd, false),
                         child_serving(&s, sleeper.fd, true)};
    cr_assert(recorded[0] != recorded[1] && recorded[1] != recorded[2] &&
                  recorded[0] != recorded[2],
              "three connections, not three processes");
    /* And those are all the server's children, once the children of the
     * connections already closed (the login's) have exited and been reaped. */
    int64_t deadline = now_ms() + POLL_CAP_MS;
    for (;;) {
        pid_t kids[MAX_KIDS];
        int n = children_of(s.pid, kids, MAX_KIDS);
        bool all = n == 3;
        for (int i = 0; i < 3; i++)
            all = all && pid_in(recorded[i], kids, n);
        if (all)
            break;
        cr_assert(remaining_ms(deadline) > 0,
                  "the server has %d children with 3 connections open, not just those 3", n);
        pace();
    }

    cr_assert(kill(s.pid, SIGTERM) == 0);
    /* What the clients get is collected first and judged after the orphan
     * check, so that a server failing both is caught on the orphans too. */
    struct ws_msg *m = ws_recv(w, CAP_MS); /* wslay answers a close by itself */
    enum ws_kind ws_got = m->kind;
    uint16_t ws_code = m->code;
    ws_msg_free(m);
    bool ws_tcp_closed = ws_got == WS_CLOSE && ws_wait_tcp_close(w, CAP_MS);
    enum rd sleep_got = tsock_read_response(&sleeper, false, &r, CAP_MS);
    enum rd idle_got = tsock_wait_eof(&idle, CAP_MS, NULL);
    server_wait_exit(&s, STOP_CAP_MS); /* exits 0 */

    for (int i = 0; i < 3; i++) {
        int status;
        pid_t wp = waitpid(recorded[i], &status, WNOHANG);
        int err = errno;
        if (wp == 0) { /* still running, now ours: clean up, then fail */
            kill(recorded[i], SIGKILL);
            waitpid(recorded[i], NULL, 0);
        }
        cr_assert(wp == -1 && err == ECHILD, "child %d (%s) outlived the server: %s",
                  (int)recorded[i], i == 0 ? "WebSocket" : i == 1 ? "idle keep-alive" : "/sleep",
                  wp == 0 ? "still running" : "exited after the server did");
    }
    /* And nothing else was left to us either. */
    pid_t stray = waitpid(-1, NULL, WNOHANG);
    cr_assert(stray == -1 && errno == ECHILD, "process %d was left behind by the server",
              (int)stray);

    /* The WebSocket was closed with 1001, then the TCP connection ended. */
    cr_assert(ws_got == WS_CLOSE, "the WebSocket got %s at shutdown, expected close 1001",
              ws_kind_name(ws_got));
    cr_assert_eq(ws_code, 1001, "the WebSocket got close %u at shutdown, expected 1001", ws_code);
    cr_assert(ws_tcp_closed, "the WebSocket's TCP connection stayed open after close 1001");
    /* The /sleep could not finish in time: dropped, not answered. */
    cr_assert(sleep_got == RD_EOF || sleep_got == RD_RESET,
              "a 30 s /sleep in flight at shutdown: expected the connection dropped, got %s",
              rd_name(sleep_got));
    /* The idle keep-alive connection was closed. */
    cr_assert(idle_got == RD_EOF || idle_got == RD_RESET,
              "idle keep-alive connection not closed: %s", rd_name(idle_got));
    ws_free(w);
    tsock_close(&idle);
    tsock_close(&sleeper);
    free(cookie);
}

/* ---- 4. one total order across processes ---- */

#define SENDERS 6
#define PER_SENDER 30
#define TOTAL (SENDERS * PER_SENDER)

struct seen {
    long long seq;
    int sender; /* index of the user */
    int n;      /* message number */
};

/* Six clients, each served by its own process, post 30 messages each, all
 * interleaved as fast as the test can write them; only then does anyone
 * read. Every client must see the same messages with the same seq, seq
 * rising by exactly 1 across all events, every message once, each sender's
 * in the order sent. */
Test(forked, total_order_across_processes_under_concurrent_senders)
{
    char *users = quick_users();
    struct server s;
    server_start(&s, ARGS("--users", users));
    char names[SENDERS][8];
    struct ws *w[SENDERS];
    long long joined[SENDERS];
    for (int k = 0; k < SENDERS; k++) {
        snprintf(names[k], sizeof names[k], "u%d", k);
        char *ck = login(s.port, names[k], "pw");
        w[k] = chat_join(s.port, ck, names[k], &joined[k], NULL);
        cr_assert_eq(joined[k], k + 1);
        free(ck);
    }
    /* Each in its own process. */
    pid_t serving[SENDERS];
    for (int k = 0; k < SENDERS; k++) {
        serving[k] = child_serving(&s, w[k]->fd, false);
        for (int j = 0; j < k; j++)
            cr_assert_neq(serving[k], serving[j], "clients %d and %d share process %d", j, k,
                          (int)serving[k]);
    }

    /* Send all: round-robin, one frame per write, so the six children feed
     * the hub at the same time. */
    for (int i = 0; i < PER_SENDER; i++)
        for (int k = 0; k < SENDERS; k++) {
            char text[32];
            int len = snprintf(text, sizeof text, "u%d says %d", k, i);
            ws_send_text(w[k], text, (size_t)len);
        }

    /* Then read. */
    static struct seen got[SENDERS][TOTAL];
    for (int k = 0; k < SENDERS; k++) {
        long long expect_seq = joined[k] + 1;
        int msgs = 0, next_from[SENDERS] = {0};
        while (msgs < TOTAL) {
            struct jv *v = ws_recv_event(w[k], CAP_MS);
            const char *type = jv_str(v, "type"), *user = jv_str(v, "user");
            long long seq;
            cr_assert(type && user && jv_int(v, "seq", &seq), "client %d: an event without "
                      "type, user or seq", k);
            cr_assert_eq(seq, expect_seq, "client %d: seq %lld (%s by %s), expected %lld", k, seq,
                         type, user, expect_seq);
            expect_seq++;
            if (strcmp(type, "join") == 0) {
                cr_assert(msgs == 0, "client %d: a join after the messages began", k);
                jv_free(v);
                continue;
            }
            cr_assert_str_eq(type, "message", "client %d: unexpected %s event", k, type);
            int sender = -1, n = -1;
            const char *text = jv_str(v, "text");
            cr_assert(text && sscanf(text, "u%d says %d", &sender, &n) == 2 && sender >= 0 &&
                          sender < SENDERS && n >= 0 && n < PER_SENDER,
                      "client %d: unexpected text \"%s\"", k, text ? text : "-");
            cr_assert_str_eq(user, names[sender], "client %d: \"%s\" posted by %s", k, text,
                             user);
            /* Each sender's messages once each, in the order sent. */
            cr_assert_eq(n, next_from[sender], "client %d: from %s got #%d, expected #%d", k,
                         names[sender], n, next_from[sender]);
            next_from[sender]++;
            got[k][msgs++] = (struct seen){seq, sender, n};
            jv_free(v);
        }
        for (int j = 0; j < SENDERS; j++)
            cr_assert_eq(next_from[j], PER_SENDER);
    }
    /* Nothing more, no duplicate trailing behind: a last message, sent now
     * that all 180 are out, must be every client's very next event. */
    ws_send_texts(w[0], "the end");
    for (int k = 0; k < SENDERS; k++)
        cr_assert_eq(expect_message(w[k], "u0", "the end"), SENDERS + TOTAL + 1,
                     "client %d: the closing message has the wrong seq", k);
    /* One order for all: every client saw the same (seq, user, text). */
    cr_assert_eq(got[0][0].seq, SENDERS + 1);
    cr_assert_eq(got[0][TOTAL - 1].seq, SENDERS + TOTAL);
    for (int k = 1; k < SENDERS; k++)
        for (int i = 0; i < TOTAL; i++)
            cr_assert(got[k][i].seq == got[0][i].seq && got[k][i].sender == got[0][i].sender &&
                          got[k][i].n == got[0][i].n,
                      "client %d's message %d is seq %lld u%d #%d, client 0's is seq %lld u%d #%d",
                      k, i, got[k][i].seq, got[k][i].sender, got[k][i].n, got[0][i].seq,
                      got[0][i].sender, got[0][i].n);
    for (int k = 0; k < SENDERS; k++)
        ws_free(w[k]);
    server_stop(&s);
}

/* ---- 5. /stats adds up the tree ---- */

/* With 5 WebSockets open (5 children), /stats counts them all and its
 * rss_bytes covers the whole tree. The test reads VmRSS of the parent and of
 * the 5 WebSocket children just before and just after the /stats request and
 * takes, per process, the smaller reading: those processes are idle, so the
 * value /stats saw for each is at least that (a process whose RSS only grows
 * or only shrinks over the interval is bounded by one of the two readings).
 * rss_bytes also includes the /stats child itself, so it must be at least
 * that sum — which is more than any one or two processes could give. */
Test(forked, stats_counts_the_whole_tree)
{
    char *users = quick_users();
    struct server s;
    server_start(&s, ARGS("--users", users));
    char *cu = login(s.port, "u1", "pw");
    struct ws *w[5];
    pid_t tree[6];
    tree[0] = s.pid;
    for (int i = 0; i < 5; i++) {
        w[i] = chat_join(s.port, cu, "u1", NULL, NULL);
        tree[i + 1] = child_serving(&s, w[i]->fd, false);
    }
    long long before[6], after[6];
    for (int i = 0; i < 6; i++) {
        before[i] = vm_rss(tree[i]);
        cr_assert(before[i] > 0, "no VmRSS for %d", (int)tree[i]);
    }
    struct jv *v = stats_get(s.port);
    for (int i = 0; i < 6; i++) {
        after[i] = vm_rss(tree[i]);
        cr_assert(after[i] > 0, "no VmRSS for %d", (int)tree[i]);
    }
    long long floor_sum = 0, parent_min = 0;
    for (int i = 0; i < 6; i++) {
        long long m = before[i] < after[i] ? before[i] : after[i];
        floor_sum += m;
        if (i == 0)
            parent_min = m;
    }
    long long rss = stat_int(v, "rss_bytes"), procs = stat_int(v, "processes");
    cr_assert_eq(stat_int(v, "pid"), s.pid);
    cr_assert_eq(stat_int(v, "ws_clients"), 5, "ws_clients with 5 WebSockets open");
    cr_assert(stat_int(v, "connections") >= 6, "connections %lld: 5 WebSockets and this request",
              stat_int(v, "connections"));
    cr_assert(procs >= 5, "processes %lld with 5 WebSockets open", procs);
    cr_assert(rss > parent_min, "rss_bytes %lld is not more than the parent's own %lld", rss,
              parent_min);
    cr_assert(rss >= floor_sum,
              "rss_bytes %lld < %lld, the VmRSS of the parent and its 5 WebSocket children",
              rss, floor_sum);
    cr_assert(stat_int(v, "pss_bytes") > 0);
    jv_free(v);
    for (int i = 0; i < 5; i++)
        ws_free(w[i]);
    server_stop(&s);
    free(cu);
}
