/* CONTRACT.md, `--users`: "`./lab adduser FILE NAME` appends one (creating
 * FILE with mode 0600; the password is read without echo, or from stdin
 * when it is not a terminal)".
 *
 * ./lab adduser builds build/ and then execs build/common/c10k-adduser FILE
 * NAME: the program itself is run here ($C10K_ADDUSER, else the one built
 * beside this suite), since a test cannot run a build. What it writes is
 * then loaded by the server under test ($C10K_SERVER): the user logs in with
 * that password and with no other. Bad input is refused with a message and
 * exit status 1, and the file is left exactly as it was. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(adduser, SUITE_CFG);

static const char *adduser_bin(void)
{
    const char *bin = getenv("C10K_ADDUSER");
#ifdef C10K_ADDUSER_DEFAULT
    if (!bin || !*bin)
        bin = C10K_ADDUSER_DEFAULT;
#endif
    cr_assert(bin && *bin, "C10K_ADDUSER is not set: where is c10k-adduser?");
    return bin;
}

/* ---- running the program ---- */

struct run {
    int status; /* wait status */
    char *out, *err;
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Waits for pid's exit (CAP_MS, then SIGKILL and a failed test). */
static int wait_child(pid_t pid)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    cr_assert(pfd >= 0, "pidfd_open: %s", strerror(errno));
    struct pollfd p = {pfd, POLLIN, 0};
    int r;
    do
        r = poll(&p, 1, CAP_MS);
    while (r < 0 && errno == EINTR);
    close(pfd);
    int status;
    if (r == 0)
        kill(pid, SIGKILL);
    cr_assert(waitpid(pid, &status, 0) == pid);
    cr_assert(r > 0, "c10k-adduser did not exit within %d ms", CAP_MS);
    return status;
}

/* Reads fd to EOF (or EIO: a pty whose other side is gone) into a string. */
static char *slurp(int fd, int64_t deadline)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        cr_assert(r > 0, "c10k-adduser's output did not end within the cap");
        char chunk[512];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        fwrite(chunk, 1, (size_t)n, m);
    }
    fclose(m);
    return buf;
}

/* c10k-adduser FILE NAME with `input` as its stdin (a pipe, not a terminal). */
static void run_adduser(struct run *r, const char *file, const char *name, const char *input)
{
    int in[2], out[2], err[2];
    cr_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
              pipe2(err, O_CLOEXEC) == 0);
    const char *bin = adduser_bin();
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execl(bin, bin, file, name, (char *)NULL);
        dprintf(2, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    /* A line or two: far below a pipe's capacity, so this cannot block.
     * EPIPE: it refused before reading (a bad name), which it may. */
    size_t n = strlen(input);
    ssize_t w = write(in[1], input, n);
    cr_assert(w == (ssize_t)n || (w < 0 && errno == EPIPE), "write to c10k-adduser: %s",
              w < 0 ? strerror(errno) : "short write");
    close(in[1]);
    int64_t deadline = now_ms() + CAP_MS;
    r->out = slurp(out[0], deadline);
    r->err = slurp(err[0], deadline);
    close(out[0]);
    close(err[0]);
    r->status = wait_child(pid);
}

static void expect_exit(const struct run *r, int code, const char *what)
{
    cr_assert(WIFEXITED(r->status), "%s: c10k-adduser died by signal %d; stderr: %s", what,
              WTERMSIG(r->status), r->err);
    cr_assert_eq(WEXITSTATUS(r->status), code, "%s: c10k-adduser exited %d, expected %d; stderr: %s",
                 what, WEXITSTATUS(r->status), code, r->err);
}

/* ---- the file ---- */

static char *file_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "%s: %s", path, strerror(errno));
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

/* What must not change when a run is refused: bytes, mode, inode, mtime. */
struct snapshot {
    char *text;
    struct stat st;
};

static void snap(struct snapshot *s, const char *path)
{
    cr_assert(stat(path, &s->st) == 0, "%s: %s", path, strerror(errno));
    s->text = file_text(path);
}

static void expect_untouched(const struct snapshot *s, const char *path, const char *what)
{
    struct stat st;
    cr_assert(stat(path, &st) == 0, "%s: %s is gone: %s", what, path, strerror(errno));
    char *now = file_text(path);
    cr_assert_str_eq(now, s->text, "%s: the users file changed", what);
    cr_assert(st.st_ino == s->st.st_ino && st.st_mode == s->st.st_mode &&
                  st.st_mtim.tv_sec == s->st.st_mtim.tv_sec &&
                  st.st_mtim.tv_nsec == s->st.st_mtim.tv_nsec,
              "%s: the users file was rewritten", what);
    free(now);
}

/* The record line for name: NAME:pbkdf2-sha256:100000:... (the default). */
static void expect_record(const char *text, const char *name)
{
    char *prefix = xasprintf("%s:pbkdf2-sha256:100000:", name);
    bool found = strncmp(text, prefix, strlen(prefix)) == 0;
    char *nl_prefix = xasprintf("\n%s", prefix);
    found = found || strstr(text, nl_prefix) != NULL;
    cr_assert(found, "no record %s... in the users file:\n%s", prefix, text);
    free(prefix);
    free(nl_prefix);
}

/* ---- tests ---- */

/* A new file, mode 0600; two users appended; the server logs in each with
 * its own password, and refuses a wrong one. */
Test(adduser, appended_users_log_in_with_their_password_only)
{
    char *path = temp_path();
    struct run r;
    run_adduser(&r, path, "ann", "ann's pass phrase\n");
    expect_exit(&r, 0, "adding ann to a new file");
    char *said = xasprintf("added ann to %s\n", path);
    cr_assert_str_eq(r.out, said);
    free(said);
    run_free(&r);
    struct stat st;
    cr_assert(stat(path, &st) == 0, "c10k-adduser did not create %s", path);
    cr_assert_eq(st.st_mode & 07777, 0600, "the new users file has mode %o, not 600",
                 st.st_mode & 07777);

    /* A password that ends in \r\n (from a Windows editor) is the same. */
    run_adduser(&r, path, "bob.b-2", "bob-pw\r\n");
    expect_exit(&r, 0, "appending bob.b-2");
    run_free(&r);
    char *text = file_text(path);
    expect_record(text, "ann");
    expect_record(text, "bob.b-2");
    free(text);

    struct server s;
    server_start(&s, ARGS("--users", path));
    char *cookie = NULL;
    cr_assert_eq(login_try(s.port, "ann", "ann's pass phrase", &cookie), 303,
                 "ann's login with her password was refused");
    cr_assert(cookie != NULL, "303 without a session cookie");
    free(cookie);
    cr_assert_eq(login_try(s.port, "bob.b-2", "bob-pw", NULL), 303);
    cr_assert_eq(login_try(s.port, "ann", "ann's pass phrase ", NULL), 401,
                 "a wrong password logged ann in");
    cr_assert_eq(login_try(s.port, "ann", "bob-pw", NULL), 401,
                 "bob's password logged ann in");
    /* The file replaced the demo accounts. */
    cr_assert_eq(login_try(s.port, "coco", "123456", NULL), 401);
    server_stop(&s);
    free(path);
}

/* On a terminal the password is asked twice and never echoed. */
Test(adduser, password_from_a_terminal_is_not_echoed)
{
    char *path = temp_path();
    const char *bin = adduser_bin();
    int master;
    pid_t parent = getpid();
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    cr_assert(pid >= 0, "forkpty: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execl(bin, bin, path, "tty_user", (char *)NULL);
        dprintf(2, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    /* Each answer is written only after its prompt: the prompt comes after
     * echo is turned off (and that flushes pending input). */
    char seen[4096];
    size_t len = 0;
    const char *prompts[] = {"Password for tty_user: ", "Again: "};
    int64_t deadline = now_ms() + CAP_MS;
    for (int i = 0; i < 2; i++) {
        for (;;) {
            seen[len] = '\0';
            if (strstr(seen, prompts[i]))
                break;
            struct pollfd p = {master, POLLIN, 0};
            int pr = poll(&p, 1, remaining_ms(deadline));
            cr_assert(pr != 0, "no prompt \"%s\" from c10k-adduser; it wrote: %s", prompts[i],
                      seen);
            if (pr < 0)
                continue;
            cr_assert(len + 1 < sizeof seen);
            ssize_t n = read(master, seen + len, sizeof seen - 1 - len);
            cr_assert(n > 0, "c10k-adduser ended before the prompt \"%s\": %s", prompts[i], seen);
            len += (size_t)n;
        }
        len = 0; /* the next prompt is looked for in what follows */
        cr_assert(write(master, "tty-secret-42\n", 14) == 14);
    }
    char *rest = slurp(master, now_ms() + CAP_MS);
    close(master);
    int status = wait_child(pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "c10k-adduser on a terminal failed (status %#x): %s", status, rest);
    cr_assert(strstr(rest, "added tty_user") != NULL, "no \"added\" line: %s", rest);
    cr_assert(strstr(rest, "tty-secret-42") == NULL, "the password was echoed: %s", rest);
    free(rest);

    struct server s;
    server_start(&s, ARGS("--users", path));
    cr_assert_eq(login_try(s.port, "tty_user", "tty-secret-42", NULL), 303);
    server_stop(&s);
    free(path);
}

/* NAME is 1-32 of A-Za-z0-9_.-: anything else is refused before the
 * password is read, with a message and status 1; the file is untouched, and
 * a file that did not exist is not created. */
Test(adduser, bad_names_refused_file_untouched)
{
    char long_name[34];
    memset(long_name, 'n', 33);
    long_name[33] = '\0';
    const char *bad[] = {
        "",          /* empty */
        long_name,   /* 33 */
        "eve:pbkdf2-sha256:1:00:00", /* the field separator: a forged record */
        "eve\nmallory",              /* the line separator: a second line */
        "eve|x",     /* the session cookie's separator */
        "eve x", "eve/x", "#eve", "ève",
    };
    char *path = users_file(ARGS("ann", "ann-pw"), NULL);
    struct snapshot before;
    snap(&before, path);
    char *absent = temp_path();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct run r;
        run_adduser(&r, path, bad[i], "a-good-password\n");
        char *what = xasprintf("name \"%s\"", bad[i]);
        expect_exit(&r, 1, what);
        cr_assert(strstr(r.err, "bad user name") != NULL, "%s: no clear message: \"%s\"", what,
                  r.err);
        cr_assert_str_eq(r.out, "", "%s: said \"%s\"", what, r.out);
        expect_untouched(&before, path, what);
        run_free(&r);
        run_adduser(&r, absent, bad[i], "a-good-password\n");
        expect_exit(&r, 1, what);
        cr_assert(access(absent, F_OK) != 0, "%s: %s was created", what, absent);
        run_free(&r);
        free(what);
    }
    /* The boundary, so the refusals above were about the name: 32 is fine. */
    long_name[32] = '\0';
    struct run r;
    run_adduser(&r, path, long_name, "a-good-password\n");
    expect_exit(&r, 0, "a 32-character name");
    run_free(&r);

    struct server s;
    server_start(&s, ARGS("--users", path));
    cr_assert_eq(login_try(s.port, long_name, "a-good-password", NULL), 303);
    cr_assert_eq(login_try(s.port, "ann", "ann-pw", NULL), 303);
    server_stop(&s);
    free(path);
    free(absent);
    free(before.text);
}

/* A name already in the file, or no usable password: refused, status 1,
 * the file untouched (and still one the server loads). */
Test(adduser, repeated_name_or_missing_password_refused_file_untouched)
{
    char *path = users_file(ARGS("ann", "ann-pw"), NULL);
    struct snapshot before;
    snap(&before, path);
    struct {
        const char *name, *input, *message;
    } cases[] = {
        {"ann", "another-pw\n", "already exists"},
        {"newbie", "\n", "empty password"},
        {"newbie", "", "no password"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        run_adduser(&r, path, cases[i].name, cases[i].input);
        char *what = xasprintf("case %zu (%s)", i, cases[i].message);
        expect_exit(&r, 1, what);
        cr_assert(strstr(r.err, cases[i].message) != NULL, "%s: stderr \"%s\"", what, r.err);
        expect_untouched(&before, path, what);
        run_free(&r);
        free(what);
    }
    struct server s;
    server_start(&s, ARGS("--users", path));
    cr_assert_eq(login_try(s.port, "ann", "ann-pw", NULL), 303, "ann's own password changed");
    cr_assert_eq(login_try(s.port, "ann", "another-pw", NULL), 401);
    server_stop(&s);
    free(path);
    free(before.text);
}
