/* The server process: start it in its own process group, read its
 * listening line, stop it and check its exit status, and account for its
 * whole tree — every process it started must be gone when it is. The
 * teardown (harness_fini) kills what an aborted test left behind. */
#include "harness_server.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness_http.h"
#include "harness_proc.h"
#include "jsonv.h"

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
            st.state == 'Z' || st.state == 'X' || (!count_dying && proc_kill_pending(e->d_name)))
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

/* The last part of stderr, for assertion messages. */
static const char *tail(const char *text)
{
    size_t n = strlen(text);
    return n > 3000 ? text + n - 3000 : text;
}

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
    temp_files_remove();
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

/* ---- the server process ---- */

/* The HOST of a --listen value "HOST:PORT" into host. */
static void listen_host(const char *value, char *host, size_t len)
{
    const char *colon = strrchr(value, ':');
    size_t n = colon ? (size_t)(colon - value) : strlen(value);
    snprintf(host, len, "%.*s", (int)n, value);
}

/* How to start a server: which binary and flags around the test's own. */
struct spawn_how {
    const char *bin;     /* NULL: $C10K_SERVER with $C10K_SERVER_ARGS */
    bool no_listen;      /* leave out the harness's --listen 127.0.0.1:0 */
    int nofile;          /* > 0: the server's RLIMIT_NOFILE, soft and hard */
};

/* argv for the server; *host gets the host of the last --listen in it (the
 * harness's own 127.0.0.1 unless the test asked for another; the contract's
 * default, 127.0.0.1, when there is none). */
static void build_argv(const char **argv, size_t max, char *argsbuf, const char *const *extra,
                       const struct spawn_how *how, char *host, size_t hostlen)
{
    size_t n = 0;
    const char *bin = how->bin ? how->bin : getenv("C10K_SERVER");
    cr_assert(bin && *bin, "C10K_SERVER is not set: which server binary to test?");
    argv[n++] = bin;
    snprintf(host, hostlen, "127.0.0.1");
    if (!how->no_listen) {
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
    }
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

static void spawn(struct server *s, const char *const *extra, const struct spawn_how *how)
{
    memset(s, 0, sizeof *s);
    /* Another binary is another model: the flags of this run are not its. */
    const char *envargs = how->bin ? NULL : getenv("C10K_SERVER_ARGS");
    char argsbuf[512];
    snprintf(argsbuf, sizeof argsbuf, "%s", envargs ? envargs : "");
    const char *argv[64];
    build_argv(argv, 64, argsbuf, extra, how, s->host, sizeof s->host);
    int nofile = how->nofile;

    int out[2];
    cr_assert(pipe2(out, O_CLOEXEC) == 0);
    snprintf(s->errpath, sizeof s->errpath, "%s/c10k-integ-err-XXXXXX", temp_dir());
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

static void start_how(struct server *s, const char *const *extra, const struct spawn_how *how);

void server_start(struct server *s, const char *const *extra)
{
    start_how(s, extra, &(struct spawn_how){0});
}

void server_start_nofile(struct server *s, const char *const *extra, int nofile)
{
    start_how(s, extra, &(struct spawn_how){.nofile = nofile});
}

void server_start_bin(struct server *s, const char *bin, const char *const *extra)
{
    cr_assert(bin && *bin, "server_start_bin: no binary");
    start_how(s, extra, &(struct spawn_how){.bin = bin});
}

void server_start_default_listen(struct server *s, const char *const *extra)
{
    start_how(s, extra, &(struct spawn_how){.no_listen = true});
}

static void start_how(struct server *s, const char *const *extra, const struct spawn_how *how)
{
    spawn(s, extra, how);
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
    /* Before any client: the helpers a server keeps (chat-forked's spawner). */
    s->resting_children = server_child_count(s->pid);
}

char *server_start_must_fail(const char *const *extra)
{
    struct server s;
    spawn(&s, extra, &(struct spawn_how){0});
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

char *server_stderr(const struct server *s)
{
    return read_file(s->errpath);
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
