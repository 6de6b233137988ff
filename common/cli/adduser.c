/* c10k-adduser FILE NAME [ITERATIONS]: append one user to a users file.
 *
 * The password comes from the terminal without echo (asked twice), or, when
 * stdin is not a terminal, from the first line of stdin. It never reaches
 * stdio buffers (read(2) a byte at a time) so it can be wiped afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "text.h"
#include "users.h"

#define PROG "c10k-adduser"
#define MAX_ITERATIONS 10000000UL /* users_load's limit */
#define LINE_CAP 512

static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;

/* Ctrl-C at the prompt must not leave the terminal without echo. */
static void restore_and_die(int sig)
{
    if (tio_saved)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    (void)!write(STDERR_FILENO, "\n", 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: " PROG " FILE NAME [ITERATIONS]\n"
            "  Appends NAME to the users file FILE (created with mode 0600).\n"
            "  NAME: 1-32 of A-Za-z0-9_.-; ITERATIONS: 1..%lu, default %d.\n"
            "  The password is read without echo, or from stdin's first line.\n",
            MAX_ITERATIONS, USERS_DEFAULT_ITERATIONS);
}

/* Read one line into buf (cap bytes incl. NUL) without its "\n"/"\r\n".
 * Returns its length, -1 at EOF before any byte, -2 if longer than
 * USERS_MAX_PASSWORD, -3 on a NUL byte, -4 on a read error. */
static long read_password_line(char *buf, size_t cap)
{
    size_t n = 0;
    bool any = false, too_long = false, nul = false;
    for (;;) {
        char c;
        ssize_t r = read(STDIN_FILENO, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -4;
        if (r == 0)
            break;
        any = true;
        if (c == '\n')
            break;
        /* Keep consuming to the end of the line so the rest of an overlong
         * password is not left in the terminal for the shell to run. */
        if (c == '\0')
            nul = true;
        else if (n + 1 >= cap)
            too_long = true;
        else
            buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (!any)
        return -1;
    if (too_long || n > USERS_MAX_PASSWORD)
        return -2;
    if (nul)
        return -3;
    return (long)n;
}

static bool report_read_error(long r)
{
    switch (r) {
    case -1:
        fprintf(stderr, PROG ": no password given\n");
        return false;
    case -2:
        fprintf(stderr, PROG ": password longer than %d bytes\n", USERS_MAX_PASSWORD);
        return false;
    case -3:
        fprintf(stderr, PROG ": password contains a NUL byte\n");
        return false;
    case -4:
        fprintf(stderr, PROG ": cannot read password: %s\n", strerror(errno));
        return false;
    }
    if (r == 0) {
        fprintf(stderr, PROG ": empty password refused\n");
        return false;
    }
    return true;
}

static long prompt_no_echo(const char *prompt, char *buf, size_t cap)
{
    fputs(prompt, stderr);
    fflush(stderr);
    long r = read_password_line(buf, cap);
    int saved = errno;
    fputc('\n', stderr); /* the user's Enter was not echoed */
    errno = saved;
    return r;
}

/* The password into pw (cap bytes). Returns true with a non-empty password. */
static bool get_password(const char *name, char *pw, size_t cap)
{
    if (!isatty(STDIN_FILENO))
        return report_read_error(read_password_line(pw, cap));

    if (tcgetattr(STDIN_FILENO, &saved_tio) != 0) {
        fprintf(stderr, PROG ": cannot read terminal settings: %s\n", strerror(errno));
        return false;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = restore_and_die;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    tio_saved = 1;

    struct termios t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    t.c_lflag |= ICANON;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0) {
        fprintf(stderr, PROG ": cannot turn off echo: %s\n", strerror(errno));
        return false;
    }

    char again[USERS_MAX_PASSWORD + 2];
    char prompt[64];
    snprintf(prompt, sizeof prompt, "Password for %s: ", name);
    bool ok = report_read_error(prompt_no_echo(prompt, pw, cap));
    if (ok) {
        long r2 = prompt_no_echo("Again: ", again, sizeof again);
        ok = report_read_error(r2);
        if (ok && strcmp(pw, again) != 0) {
            fprintf(stderr, PROG ": passwords do not match\n");
            ok = false;
        }
    }
    OPENSSL_cleanse(again, sizeof again);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    tio_saved = 0;
    return ok;
}

/* True when NAME can be added: FILE does not exist yet, or loads cleanly
 * (a broken file is not appended to) and lacks NAME. */
static bool check_not_present(const char *path, const char *name, struct stat *seen)
{
    struct stat st;
    memset(seen, 0, sizeof *seen);
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return true;
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return false;
    }
    char err[512];
    struct users *u = users_load(path, err, sizeof err);
    if (u == NULL) {
        fprintf(stderr, PROG ": %s\n", err);
        return false;
    }
    bool present = users_find(u, name) != NULL;
    users_free(u);
    *seen = st;
    if (present) {
        fprintf(stderr, PROG ": user %s already exists in %s\n", name, path);
        return false;
    }
    return true;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Append line under an exclusive lock, re-checking the name inside the lock
 * so two concurrent runs cannot both add it. */
static bool same_file_state(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static bool append_line(const char *path, const char *name, const char *line,
                        const struct stat *checked)
{
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, PROG ": cannot open %s: %s\n", path, strerror(errno));
        return false;
    }
    if (flock(fd, LOCK_EX) != 0) {
        fprintf(stderr, PROG ": cannot lock %s: %s\n", path, strerror(errno));
        close(fd);
        return false;
    }
    struct stat st, now;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, PROG ": cannot read %s: %s\n", path, strerror(errno));
        close(fd);
        return false;
    }
    /* Unchanged since the check before the prompt: no need to load it (and
     * warn about its mode) a second time. */
    if (!same_file_state(&st, checked) && !check_not_present(path, name, &now)) {
        close(fd);
        return false;
    }
    /* A last line without its newline would otherwise swallow ours. */
    char last = '\n';
    if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1) {
        fprintf(stderr, PROG ": cannot read %s: %s\n", path, strerror(errno));
        close(fd);
        return false;
    }
    if ((last != '\n' && !write_all(fd, "\n", 1)) || !write_all(fd, line, strlen(line)) ||
        fsync(fd) != 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
        close(fd);
        return false;
    }
    if (close(fd) != 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

static bool parse_iterations(const char *s, unsigned *out)
{
    unsigned long v;
    if (!parse_decimal(s, strlen(s), 8, MAX_ITERATIONS, &v) || v < 1)
        return false;
    *out = (unsigned)v;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        usage();
        return 1;
    }
    const char *path = argv[1], *name = argv[2];
    unsigned iterations = USERS_DEFAULT_ITERATIONS;
    if (!user_name_valid(name, strnlen(name, 33))) {
        fprintf(stderr, PROG ": bad user name (want 1-32 of A-Za-z0-9_.-)\n");
        return 1;
    }
    if (argc == 4 && !parse_iterations(argv[3], &iterations)) {
        fprintf(stderr, PROG ": bad iteration count '%.20s' (want 1..%lu)\n", argv[3],
                MAX_ITERATIONS);
        return 1;
    }
    /* Fail before asking for a password when it could never be added. */
    struct stat checked;
    if (!check_not_present(path, name, &checked))
        return 1;

    char pw[USERS_MAX_PASSWORD + 2];
    struct user_record rec;
    char line[LINE_CAP];
    int rc = 1;
    if (!get_password(name, pw, sizeof pw))
        goto out;
    if (user_record_make(&rec, name, pw, iterations) != 0 ||
        user_record_format(&rec, line, sizeof line) != 0) {
        fprintf(stderr, PROG ": cannot hash the password (libcrypto failure)\n");
        goto out;
    }
    if (!append_line(path, name, line, &checked))
        goto out;
    printf("added %s to %s\n", name, path);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    OPENSSL_cleanse(pw, sizeof pw);
    OPENSSL_cleanse(&rec, sizeof rec);
    OPENSSL_cleanse(line, sizeof line);
    return rc;
}
