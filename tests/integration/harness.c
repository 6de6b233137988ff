#include "harness.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jsonv.h"
#include "users.h"

/* ---- bookkeeping for teardown ---- */

/* Servers started and not yet reaped, by value: after a failed assertion
 * the test's own struct server is gone with its stack frame. */
#define MAX_LIVE 16
static struct {
    pid_t pid;
    char errpath[192];
} live[MAX_LIVE];
/* Every process group this test started (a server's pid is its group's id):
 * teardown kills whatever is left of each, also after a failed assertion. */
#define MAX_GROUPS 64
static pid_t groups[MAX_GROUPS];
static int ngroups;
static char *temps[32];
static int ntemps;

/* The whole tree of a server is accounted for: the server leads its own
 * process group, which its children inherit, and this process is a
 * subreaper, so a descendant orphaned by an exiting parent is reparented
 * here instead of to init — where nobody would reap or kill it, and it
 * would go on loading the machine after the test (issue 13: chat-forked
 * children orphaned in LeakSanitizer's exit-time check). */
void harness_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER: %s",
              strerror(errno));
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* State, parent and process group from /proc/PID/stat, and the command
 * name "(comm)" into comm if given. comm may hold spaces and parentheses,
 * so the fields are read after the last ')'. False if the process is gone. */
struct proc_stat {
    char state;
    int ppid, pgrp;
};
static bool proc_stat_read(const char *pid, struct proc_stat *st, char *comm, size_t commlen)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%.20s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close ||
        sscanf(close + 1, " %c %d %d", &st->state, &st->ppid, &st->pgrp) != 3)
        return false;
    if (comm)
        snprintf(comm, commlen, "%.*s", (int)(close - open + 1), open);
    return true;
}

/* SIGKILL is pending: the process is on its way out, it only has not had
 * a CPU yet to finish dying (a busy machine). LeakSanitizer's tracer is
 * one: it gets SIGKILL (its PR_SET_PDEATHSIG) when the chat-forked child it
 * checks is killed at the end of the shutdown grace, and may still show as
 * running when its server is gone. */
static bool dying(const char *pid)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%.20s/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true; /* gone meanwhile */
    bool kill_pending = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long long mask;
        if ((sscanf(line, "SigPnd: %llx", &mask) == 1 || sscanf(line, "ShdPnd: %llx", &mask) == 1) &&
            (mask & (1ULL << (SIGKILL - 1))))
            kill_pending = true;
    }
    fclose(f);
    return kill_pending;
}

/* The group's members that are still alive, as "pid (comm) state" lines in
 * out; reaps those that are already zombies (children of this subreaper).
 * Returns how many are alive, not counting those with a SIGKILL pending
 * unless count_dying. A process that left the group (setsid) is not
 * seen here; ./lab test's last check finds it by its environment. */
static int group_alive(pid_t pgid, char *out, size_t outlen, bool count_dying)
{
    while (waitpid(-pgid, NULL, WNOHANG) > 0)
        ;
    if (out && outlen)
        out[0] = '\0';
    int alive = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        struct proc_stat st;
        char comm[64];
        if (!proc_stat_read(e->d_name, &st, comm, sizeof comm) || st.pgrp != pgid ||
            st.state == 'Z' || st.state == 'X' || (!count_dying && dying(e->d_name)))
            continue;
        alive++;
        if (out) {
            size_t used = strlen(out);
            snprintf(out + used, outlen - used, "  pid %.20s %s state %c\n", e->d_name, comm,
                     st.state);
        }
    }
    closedir(d);
    return alive;
}

/* SIGKILL to the whole group, then reap its members (children of this
 * subreaper by now) until none is left or the cap passes. */
static void group_kill(pid_t pgid)
{
    if (kill(-pgid, SIGKILL) != 0)
        return; /* ESRCH: nobody left */
    int64_t deadline = now_ms() + STOP_CAP_MS;
    while (group_alive(pgid, NULL, 0, true) > 0 && remaining_ms(deadline) > 0) {
        /* Blocks until one of them is reaped; a member that is not our
         * child (it cannot be, with the subreaper) would make this ECHILD. */
        if (waitpid(-pgid, NULL, 0) < 0 && errno == ECHILD)
            poll(NULL, 0, 10);
    }
}

static char *read_file(const char *path);
static const char *tail(const char *text);

void harness_fini(void)
{
    /* A test that failed half-way leaves its server running: kill it and
     * its tree here. (The server also has PR_SET_PDEATHSIG, in case this
     * never runs, and ./lab test checks that nothing it started survives.) */
    for (int i = 0; i < MAX_LIVE; i++) {
        if (live[i].pid > 0) {
            kill(live[i].pid, SIGKILL);
            waitpid(live[i].pid, NULL, 0);
            /* Its last words are the best clue to why the test stopped
             * half-way (a Redis reconnect, a sanitizer report...). */
            char *err = read_file(live[i].errpath);
            cr_log_warn("server %d was still running at the end of the test; its stderr:\n%s",
                        (int)live[i].pid, tail(err ? err : ""));
            free(err);
            unlink(live[i].errpath);
        }
        live[i].pid = 0;
    }
    for (int i = 0; i < ngroups; i++)
        group_kill(groups[i]);
    ngroups = 0;
    for (int i = 0; i < ntemps; i++) {
        unlink(temps[i]);
        free(temps[i]);
    }
    ntemps = 0;
}

static void track(const struct server *s)
{
    cr_assert(ngroups < MAX_GROUPS, "too many servers in one test");
    groups[ngroups++] = s->pid;
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i].pid <= 0) {
            live[i].pid = s->pid;
            snprintf(live[i].errpath, sizeof live[i].errpath, "%s", s->errpath);
            return;
        }
    cr_assert_fail("too many servers in one test");
}

static void untrack(const struct server *s)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i].pid == s->pid)
            live[i].pid = 0;
}

/* After the server itself has been reaped: nothing of its tree may be
 * left. Survivors are named, killed and reaped, and fail the test. */
static void expect_tree_gone(const struct server *s)
{
    char who[2048];
    int alive = group_alive(s->pid, who, sizeof who, false);
    if (alive == 0) {
        group_kill(s->pid); /* reaps the dying, if any: nothing is left after */
        return;
    }
    group_kill(s->pid);
    cr_assert_fail("%d process(es) of the server's tree outlived it (killed now):\n%s", alive,
                   who);
}

/* ---- small things ---- */

int harness_slowdown(void)
{
    static int scale;
    if (!scale) {
        const char *env = getenv("C10K_CAP_SCALE");
        int n = env ? atoi(env) : 1;
        scale = HARNESS_SANITIZED * (n >= 1 && n <= 20 ? n : 1);
    }
    return scale;
}

char *xstrdup(const char *s)
{
    char *d = strdup(s);
    cr_assert(d != NULL);
    return d;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    return s;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int remaining_ms(int64_t deadline)
{
    int64_t r = deadline - now_ms();
    return r < 0 ? 0 : (int)r;
}

static const char *tmp_dir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t && strlen(t) < 150 ? t : "/tmp";
}

char *temp_file(const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/c10k-integ-XXXXXX", tmp_dir());
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    cr_assert(write(fd, data, len) == (ssize_t)len);
    close(fd);
    cr_assert(ntemps < 32);
    temps[ntemps++] = xstrdup(path);
    return xstrdup(path);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return xstrdup("(no stderr file)");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

char *server_stderr(const struct server *s)
{
    return read_file(s->errpath);
}

/* The last part of stderr, for assertion messages. */
static const char *tail(const char *text)
{
    size_t n = strlen(text);
    return n > 3000 ? text + n - 3000 : text;
}

void cpu_expected(unsigned long n, char out[66])
{
    unsigned char d[32] = {0};
    unsigned int dl = 32;
    for (unsigned long i = 0; i < n; i++)
        EVP_Digest(d, 32, d, &dl, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
    out[64] = '\n';
    out[65] = '\0';
}

bool html_has_field(const char *body, const char *name)
{
    char pats[3][80];
    snprintf(pats[0], sizeof pats[0], "name=\"%s\"", name);
    snprintf(pats[1], sizeof pats[1], "name='%s'", name);
    snprintf(pats[2], sizeof pats[2], "name=%s", name);
    for (int i = 0; i < 3; i++) {
        const char *p = strcasestr(body, pats[i]);
        if (!p)
            continue;
        if (i < 2)
            return true;
        char after = p[strlen(pats[i])];
        if (after == ' ' || after == '>' || after == '/' || after == '\t' || after == '\n')
            return true;
    }
    return false;
}

/* ---- the server process ---- */

/* The HOST of a --listen value "HOST:PORT" into host. */
static void listen_host(const char *value, char *host, size_t len)
{
    const char *colon = strrchr(value, ':');
    size_t n = colon ? (size_t)(colon - value) : strlen(value);
    snprintf(host, len, "%.*s", (int)n, value);
}

/* argv for the server; *host gets the host of the last --listen in it (the
 * harness's own 127.0.0.1 unless the test asked for another). */
static void build_argv(const char **argv, size_t max, char *argsbuf, const char *const *extra,
                       char *host, size_t hostlen)
{
    size_t n = 0;
    const char *bin = getenv("C10K_SERVER");
    cr_assert(bin && *bin, "C10K_SERVER is not set: which server binary to test?");
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    for (char *tok = strtok(argsbuf, " \t"); tok; tok = strtok(NULL, " \t")) {
        cr_assert(n < max - 1);
        argv[n++] = tok;
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        cr_assert(n < max - 1);
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < n)
            listen_host(argv[i + 1], host, hostlen);
        else if (strncmp(argv[i], "--listen=", 9) == 0)
            listen_host(argv[i] + 9, host, hostlen);
    }
}

/* nofile > 0: the server's RLIMIT_NOFILE, soft and hard. */
static void spawn(struct server *s, const char *const *extra, int nofile)
{
    memset(s, 0, sizeof *s);
    const char *envargs = getenv("C10K_SERVER_ARGS");
    char argsbuf[512];
    snprintf(argsbuf, sizeof argsbuf, "%s", envargs ? envargs : "");
    const char *argv[64];
    build_argv(argv, 64, argsbuf, extra, s->host, sizeof s->host);

    int out[2];
    cr_assert(pipe2(out, O_CLOEXEC) == 0);
    snprintf(s->errpath, sizeof s->errpath, "%s/c10k-integ-err-XXXXXX", tmp_dir());
    int errfd = mkostemp(s->errpath, O_CLOEXEC);
    cr_assert(errfd >= 0);

    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* Never outlive the test process, even if it crashes. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        /* Its own process group, inherited by everything it starts. */
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(out[1], 1);
        dup2(errfd, 2);
        /* Criterion's own descriptors must not leak into the server. */
        syscall(SYS_close_range, 3U, ~0U, 0U);
        /* Start as a shell would: default dispositions, nothing blocked. */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (nofile > 0) {
            struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
                dprintf(2, "setrlimit(RLIMIT_NOFILE, %d): %s\n", nofile, strerror(errno));
                _exit(127);
            }
        }
        execv(argv[0], (char *const *)argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    /* Also here, so the group exists before anyone signals it, whichever of
     * parent and child runs first (EACCES once it has exec'd: done). */
    setpgid(pid, pid);
    close(out[1]);
    close(errfd);
    s->pid = pid;
    s->out_fd = out[0];
    s->running = true;
    track(s);
}

/* Reads the server's stdout until the listening line (returns the port), EOF
 * (0) or the cap (-1). */
static int await_listening(struct server *s, int cap_ms)
{
    char line[1024];
    size_t len = 0;
    int64_t deadline = now_ms() + cap_ms;
    for (;;) {
        line[len] = '\0';
        const char *hit = strstr(line, "listening on http://");
        if (hit && strchr(hit, '\n')) {
            const char *hostport = hit + strlen("listening on http://");
            size_t hl = strlen(s->host);
            cr_assert(strncmp(hostport, s->host, hl) == 0 && hostport[hl] == ':',
                      "listening line names another host than %s: %s", s->host, hit);
            int port = atoi(hostport + hl + 1);
            cr_assert(port > 0 && port < 65536, "listening line has no real port: %s", hit);
            return port;
        }
        struct pollfd pfd = {s->out_fd, POLLIN, 0};
        int r = poll(&pfd, 1, remaining_ms(deadline));
        if (r == 0)
            return -1;
        if (r < 0 && errno == EINTR)
            continue;
        if (len + 1 >= sizeof line)
            len = 0; /* a flood of other output: keep scanning */
        ssize_t n = read(s->out_fd, line + len, sizeof line - 1 - len);
        if (n <= 0)
            return 0;
        len += (size_t)n;
    }
}

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Waits for the exit; returns the wait status, or -1 after the cap (the
 * process is then killed). */
static int wait_exit(struct server *s, int cap_ms)
{
    int status;
    int pfd = pidfd_open_(s->pid);
    cr_assert(pfd >= 0, "pidfd_open: %s", strerror(errno));
    struct pollfd p = {pfd, POLLIN, 0};
    int r;
    do
        r = poll(&p, 1, cap_ms);
    while (r < 0 && errno == EINTR);
    close(pfd);
    if (r == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        s->running = false;
        untrack(s);
        group_kill(s->pid);
        return -1;
    }
    cr_assert(waitpid(s->pid, &status, 0) == s->pid);
    s->running = false;
    untrack(s);
    close(s->out_fd);
    expect_tree_gone(s);
    return status;
}

void server_start(struct server *s, const char *const *extra)
{
    server_start_nofile(s, extra, 0);
}

void server_start_nofile(struct server *s, const char *const *extra, int nofile)
{
    spawn(s, extra, nofile);
    int port = await_listening(s, START_CAP_MS);
    if (port <= 0) {
        if (port < 0) {
            kill(s->pid, SIGKILL);
        }
        waitpid(s->pid, NULL, 0);
        s->running = false;
        untrack(s);
        group_kill(s->pid);
        char *err = server_stderr(s);
        unlink(s->errpath);
        cr_assert_fail("server did not print its listening line (%s); stderr:\n%s",
                       port < 0 ? "timed out" : "it exited", tail(err));
    }
    s->port = port;
}

char *server_start_must_fail(const char *const *extra)
{
    struct server s;
    spawn(&s, extra, 0);
    int port = await_listening(&s, START_CAP_MS);
    if (port > 0) {
        kill(s.pid, SIGKILL);
        waitpid(s.pid, NULL, 0);
        s.running = false;
        untrack(&s);
        group_kill(s.pid);
        cr_assert_fail("the server started (port %d) but must refuse to", port);
    }
    int status = wait_exit(&s, STOP_CAP_MS);
    char *err = server_stderr(&s);
    unlink(s.errpath);
    cr_assert(status != -1, "the server neither started nor exited");
    cr_assert(WIFEXITED(status), "the server was killed by signal %d instead of refusing; stderr:\n%s",
              WTERMSIG(status), tail(err));
    cr_assert(WEXITSTATUS(status) != 0, "the server exited 0 instead of refusing to start");
    cr_assert(strstr(err, "Sanitizer") == NULL, "sanitizer report on the refusal path:\n%s",
              tail(err));
    return err;
}

void server_wait_exit(struct server *s, int cap_ms)
{
    int status = wait_exit(s, cap_ms);
    char *err = server_stderr(s);
    unlink(s->errpath);
    cr_assert(status != -1, "the server did not exit within %d ms of the signal; stderr:\n%s",
              cap_ms, tail(err));
    cr_assert(WIFEXITED(status), "the server died by signal %d; stderr:\n%s", WTERMSIG(status),
              tail(err));
    cr_assert(WEXITSTATUS(status) == 0, "the server exited with status %d; stderr:\n%s",
              WEXITSTATUS(status), tail(err));
    free(err);
}

void server_stop(struct server *s)
{
    cr_assert(s->running, "server_stop: not running");
    cr_assert(kill(s->pid, SIGTERM) == 0);
    server_wait_exit(s, STOP_CAP_MS);
}

const char *server_model(struct server *s)
{
    if (!s->model[0]) {
        struct http_resp r;
        http_get(&r, s->port, "/stats", NULL);
        cr_assert_eq(r.status, 200);
        struct jv *v = jv_parse(r.body, r.body_len);
        cr_assert(v != NULL, "/stats is not JSON: %s", r.body);
        const char *m = jv_str(v, "model");
        cr_assert(m && *m && strlen(m) < sizeof s->model, "/stats has no model: %s", r.body);
        snprintf(s->model, sizeof s->model, "%s", m);
        jv_free(v);
        resp_free(&r);
    }
    return s->model;
}

/* ---- responses ---- */

const char *resp_header(const struct http_resp *r, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            v = r->hdrs[i].value;
    return v;
}

int resp_header_count(const struct http_resp *r, const char *name)
{
    int n = 0;
    for (int i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            n++;
    return n;
}

static void resp_reset_headers(struct http_resp *r)
{
    for (int i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    r->nhdrs = 0;
}

void resp_free(struct http_resp *r)
{
    resp_reset_headers(r);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* One "Name: value" line (no CRLF). Returns false if it is not one. */
static bool resp_add_header(struct http_resp *r, const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (!colon || colon == line || r->nhdrs >= 64)
        return false;
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    r->hdrs[r->nhdrs].name = strndup(line, (size_t)(colon - line));
    r->hdrs[r->nhdrs].value = strndup(v, (size_t)(end - v));
    r->nhdrs++;
    return true;
}

const char *resp_location_path(const struct http_resp *r)
{
    const char *loc = resp_header(r, "Location");
    if (!loc)
        return NULL;
    const char *scheme = strstr(loc, "://");
    if (scheme && scheme < strchr(loc, '/') + 1) {
        const char *path = strchr(scheme + 3, '/');
        return path ? path : "/";
    }
    return loc;
}

void check_common_headers(struct server *s, const struct http_resp *r, bool head_request)
{
    const char *cl = resp_header(r, "Content-Length");
    bool no_body_status = r->status == 101 || r->status == 204 || r->status == 304;
    if (!no_body_status) {
        cr_assert(cl != NULL, "status %d response has no Content-Length", r->status);
        cr_assert_eq(resp_header_count(r, "Content-Length"), 1);
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        cr_assert(*cl && *end == '\0', "bad Content-Length '%s'", cl);
        if (!head_request)
            cr_assert_eq(v, r->body_len, "Content-Length %s but %zu body bytes", cl, r->body_len);
    }
    const char *date = resp_header(r, "Date");
    cr_assert(date != NULL, "status %d response has no Date", r->status);
    struct tm tm = {0};
    const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cr_assert(end && *end == '\0', "Date is not an IMF-fixdate: '%s'", date);
    const char *server = resp_header(r, "Server");
    cr_assert(server != NULL, "status %d response has no Server header", r->status);
    char want[64];
    snprintf(want, sizeof want, "c10k-lab/%s", server_model(s));
    cr_assert_str_eq(server, want);
}

/* ---- libcurl ---- */

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct http_resp *r = ud;
    size_t n = size * nmemb;
    size_t len = n;
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        resp_reset_headers(r); /* a new (e.g. after 100) status line */
    else if (len)
        resp_add_header(r, p, len);
    return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct http_resp *r = ud;
    size_t n = size * nmemb;
    char *b = realloc(r->body, r->body_len + n + 1);
    if (!b)
        return 0;
    memcpy(b + r->body_len, p, n);
    r->body = b;
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

void http_do(struct http_resp *r, int port, const char *method, const char *path,
             const char *const *headers, const char *body, size_t body_len)
{
    memset(r, 0, sizeof *r);
    CURL *h = curl_easy_init();
    cr_assert(h != NULL);
    char url[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CAP_MS + 10000);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        if (body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
        }
        if (strcmp(method, "POST") != 0 || !body)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    CURLcode rc = curl_easy_perform(h);
    cr_assert(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    r->status = (int)status;
    if (!r->body)
        r->body = calloc(1, 1);
    curl_slist_free_all(list);
    curl_easy_cleanup(h);
}

void http_get(struct http_resp *r, int port, const char *path, const char *const *headers)
{
    http_do(r, port, "GET", path, headers, NULL, 0);
}

int login_try(int port, const char *user, const char *password, char **cookie)
{
    char *u = curl_easy_escape(NULL, user, 0);
    char *p = curl_easy_escape(NULL, password, 0);
    char *body = xasprintf("username=%s&password=%s", u, p);
    curl_free(u);
    curl_free(p);
    struct http_resp r;
    http_do(&r, port, "POST", "/login",
            HDRS("Content-Type: application/x-www-form-urlencoded"), body, strlen(body));
    free(body);
    int status = r.status;
    if (cookie) {
        *cookie = NULL;
        for (int i = 0; i < r.nhdrs; i++) {
            const char *v = r.hdrs[i].value;
            if (strcasecmp(r.hdrs[i].name, "Set-Cookie") == 0 && strncmp(v, "session=", 8) == 0) {
                size_t n = strcspn(v, ";");
                *cookie = strndup(v, n);
            }
        }
    }
    resp_free(&r);
    return status;
}

char *login(int port, const char *user, const char *password)
{
    char *cookie;
    int status = login_try(port, user, password, &cookie);
    cr_assert_eq(status, 303, "login %s: status %d", user, status);
    cr_assert(cookie != NULL && strlen(cookie) > 8, "login %s: no session cookie", user);
    return cookie;
}

char *cookie_header(const char *cookie)
{
    return xasprintf("Cookie: %s", cookie);
}

/* ---- raw TCP ---- */

const char *rd_name(enum rd r)
{
    switch (r) {
    case RD_OK: return "a response";
    case RD_EOF: return "EOF";
    case RD_RESET: return "a reset";
    case RD_TIMEOUT: return "nothing (safety cap reached)";
    case RD_BAD: return "a malformed or truncated response";
    }
    return "?";
}

int tcp_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r;
    do
        r = connect(fd, (struct sockaddr *)&a, sizeof a);
    while (r < 0 && errno == EINTR);
    cr_assert(r == 0, "connect to port %d: %s", port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void tsock_open(struct tsock *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = tcp_connect(port, 0);
}

void tsock_close(struct tsock *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

bool tsock_send(struct tsock *c, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

bool tsock_sends(struct tsock *c, const char *s)
{
    return tsock_send(c, s, strlen(s));
}

/* Reads more bytes into c->buf. RD_OK when some came. */
static enum rd tsock_fill(struct tsock *c, int64_t deadline)
{
    if (c->eof)
        return RD_EOF;
    if (c->reset)
        return RD_RESET;
    for (;;) {
        struct pollfd p = {c->fd, POLLIN, 0};
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return RD_TIMEOUT;
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap + 1);
            cr_assert(c->buf != NULL);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            c->eof = true;
            return RD_EOF;
        }
        if (n < 0) {
            c->reset = true;
            return RD_RESET;
        }
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        return RD_OK;
    }
}

static void tsock_consume(struct tsock *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

enum rd tsock_read_response(struct tsock *c, bool head_request, struct http_resp *r, int cap_ms)
{
    memset(r, 0, sizeof *r);
    int64_t deadline = now_ms() + cap_ms;
    char *end;
    while (!c->buf || !(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
        enum rd f = tsock_fill(c, deadline);
        if (f != RD_OK)
            return c->len ? (f == RD_TIMEOUT ? RD_TIMEOUT : RD_BAD) : f;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    /* Status line. */
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0)
        return RD_BAD;
    r->status = atoi(c->buf + 9);
    /* Headers. */
    char *line = memchr(c->buf, '\n', head_len) + 1;
    while (line < c->buf + head_len - 2) {
        char *eol = memmem(line, (size_t)(c->buf + head_len - line), "\r\n", 2);
        if (!resp_add_header(r, line, (size_t)(eol - line)))
            return RD_BAD;
        line = eol + 2;
    }
    size_t body_len = 0;
    bool to_eof = false;
    const char *cl = resp_header(r, "Content-Length");
    bool no_body = head_request || r->status / 100 == 1 || r->status == 204 || r->status == 304;
    if (!no_body) {
        if (cl)
            body_len = strtoull(cl, NULL, 10);
        else if (resp_header(r, "Transfer-Encoding"))
            return RD_BAD; /* the server never chunks: every response has a length */
        else
            to_eof = true;
    }
    for (;;) {
        if (!to_eof && c->len >= head_len + body_len)
            break;
        enum rd f = tsock_fill(c, deadline);
        if (f == RD_EOF && to_eof) {
            body_len = c->len - head_len;
            break;
        }
        if (f != RD_OK)
            return f == RD_TIMEOUT ? RD_TIMEOUT : RD_BAD;
    }
    r->body = malloc(body_len + 1);
    memcpy(r->body, c->buf + head_len, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    tsock_consume(c, head_len + body_len);
    return RD_OK;
}

void tsock_expect_response(struct tsock *c, bool head_request, struct http_resp *r)
{
    enum rd got = tsock_read_response(c, head_request, r, CAP_MS);
    cr_assert(got == RD_OK, "expected a response, got %s", rd_name(got));
}

enum rd tsock_wait_eof(struct tsock *c, int cap_ms, size_t *extra)
{
    int64_t deadline = now_ms() + cap_ms;
    enum rd f;
    while ((f = tsock_fill(c, deadline)) == RD_OK)
        ;
    if (extra)
        *extra = c->len;
    return f;
}

void raw_request(int port, const char *request, bool head_request, struct http_resp *r)
{
    struct tsock c;
    tsock_open(&c, port);
    cr_assert(tsock_sends(&c, request));
    tsock_expect_response(&c, head_request, r);
    tsock_close(&c);
}

/* ---- users and stats ---- */

char *users_file(const char *const *pairs, const char *extra)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    fputs("# made by the integration tests\n\n", m);
    for (size_t i = 0; pairs && pairs[i] && pairs[i + 1]; i += 2) {
        struct user_record rec;
        char line[512];
        cr_assert(user_record_make(&rec, pairs[i], pairs[i + 1], 1000) == 0,
                  "user_record_make(%s) failed", pairs[i]);
        cr_assert(user_record_format(&rec, line, sizeof line) == 0);
        fputs(line, m);
    }
    if (extra)
        fputs(extra, m);
    fclose(m);
    char *path = temp_file(text, len);
    free(text);
    return path;
}

struct jv *stats_get(int port)
{
    struct http_resp r;
    http_get(&r, port, "/stats", NULL);
    cr_assert_eq(r.status, 200, "/stats answered %d", r.status);
    struct jv *v = jv_parse(r.body, r.body_len);
    cr_assert(v && v->t == J_OBJ, "/stats is not a JSON object: %s", r.body);
    resp_free(&r);
    return v;
}

/* ---- the server seen through /proc ---- */

int server_fd_count(const struct server *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)s->pid);
    DIR *d = opendir(path);
    cr_assert(d != NULL, "%s: %s", path, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int server_await_fds(const struct server *s, int at_most)
{
    int64_t deadline = now_ms() + CAP_MS;
    int n;
    while ((n = server_fd_count(s)) > at_most && remaining_ms(deadline) > 0)
        poll(NULL, 0, 20); /* re-read /proc: the close itself cannot be waited on */
    return n;
}

/* Runnable nanoseconds of every thread of one process (0 if it is gone). */
static int64_t process_runnable_ns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int64_t total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char stat[128];
        snprintf(stat, sizeof stat, "/proc/%d/task/%.20s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(stat, "r");
        if (!f)
            continue; /* the thread ended meanwhile */
        long long run = 0, wait = 0;
        if (fscanf(f, "%lld %lld", &run, &wait) == 2)
            total += run + wait;
        fclose(f);
    }
    closedir(d);
    return total;
}

/* The parent pid in /proc/PID/stat. */
static pid_t parent_of(const char *pid)
{
    struct proc_stat st;
    return proc_stat_read(pid, &st, NULL, 0) ? st.ppid : -1;
}

int server_await_children(const struct server *s, int at_most)
{
    int64_t deadline = now_ms() + 2 * CAP_MS;
    for (;;) {
        int n = 0;
        DIR *d = opendir("/proc");
        cr_assert(d != NULL);
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && parent_of(e->d_name) == s->pid)
                n++;
        closedir(d);
        if (n <= at_most || remaining_ms(deadline) == 0)
            return n;
        poll(NULL, 0, 20); /* re-read /proc: another process's exit cannot be waited on */
    }
}

int64_t server_runnable_ms(const struct server *s)
{
    int64_t ns = process_runnable_ns(s->pid);
    DIR *d = opendir("/proc");
    cr_assert(d != NULL);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && parent_of(e->d_name) == s->pid)
            ns += process_runnable_ns((pid_t)atoi(e->d_name));
    closedir(d);
    return ns / 1000000;
}

int http_status(int port, const char *path)
{
    struct http_resp r;
    http_get(&r, port, path, NULL);
    int status = r.status;
    resp_free(&r);
    return status;
}

void expect_hello(int port)
{
    struct http_resp r;
    http_get(&r, port, "/hello", NULL);
    cr_assert_eq(r.status, 200, "/hello answered %d", r.status);
    cr_assert(r.body_len == 14 && memcmp(r.body, "Hello, world!\n", 14) == 0,
              "/hello body \"%s\"", r.body);
    resp_free(&r);
}
