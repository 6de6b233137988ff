/* Small things every part of the harness uses: the safety caps, clocks,
 * allocation that fails the test instead of returning NULL, temp files
 * (removed by harness_fini) and the users files built from them. */
#include "harness_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "users.h"

#if defined(__SANITIZE_ADDRESS__)
/* In the sanitizer build the servers under test are leak-checked: a leak
 * makes a server exit non-zero, and the harness fails the test for it. The
 * test process is not: a failed cr_assert leaves its test by longjmp, with
 * whatever it had allocated, and each test runs in a worker that exits right
 * after it. Its leaks would only be noise in the log of a failed test, next
 * to the report that matters; ASan still stops it at any memory error. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    /* The second: xasprintf's stack cut short inside libc (no frame pointers). */
    return "leak:criterion_internal_test_main\nleak:__vasprintf_internal\n";
}
#endif

/* Temp files of this test, removed by temp_files_remove() at teardown. */
#define MAX_TEMPS 32
static char *temps[MAX_TEMPS];
static int ntemps;

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

const char *temp_dir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t && strlen(t) < 150 ? t : "/tmp";
}

char *temp_file(const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/c10k-integ-XXXXXX", temp_dir());
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    cr_assert(write(fd, data, len) == (ssize_t)len);
    close(fd);
    cr_assert(ntemps < MAX_TEMPS);
    temps[ntemps++] = xstrdup(path);
    return xstrdup(path);
}

char *temp_path(void)
{
    char *path = temp_file("", 0);
    cr_assert(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
    return path;
}

void temp_files_remove(void)
{
    for (int i = 0; i < ntemps; i++) {
        unlink(temps[i]);
        free(temps[i]);
    }
    ntemps = 0;
}

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
