#include "users.h"

#include "text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define SCHEME "pbkdf2-sha256"
#define MAX_ITERATIONS 10000000u
#define SALT_MIN 1 /* RFC 7914's own PBKDF2 vectors use 4-byte salts */
#define HASH_MIN 16
#define NEW_SALT_LEN 16
#define NEW_HASH_LEN 32
/* NAME:SCHEME:ITER:SALT:HASH at their longest is ~320 bytes; anything much
 * longer is not a users line, and reading it whole would be unbounded. */
#define LINE_MAX_LEN 512
#define MAX_USERS (1u << 17) /* C10K needs ~10^4; this bounds memory at ~25 MB */

struct users {
    struct user_record *recs; /* sorted by name (byte order) for bsearch */
    size_t n;
};

/* The work an unknown name pays for: that of the file's most expensive
 * entry (iterations times 32-byte PBKDF2 blocks of hash), so "no such user"
 * is never the cheap way to make the server hash, and never answers faster
 * than that entry's wrong password would. Written only at load time
 * (before threads/forks); atomic so a late reload is still not a data race. */
static _Atomic unsigned dummy_iterations = USERS_DEFAULT_ITERATIONS;
static _Atomic size_t dummy_hash_len = 32;

bool user_name_valid(const char *name, size_t len)
{
    if (name == NULL || len < 1 || len > 32)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}


/* Decode hex s[0..n) into out; n must be even and the result minlen..maxlen. */
static bool hex_decode(const char *s, size_t n, uint8_t *out, size_t minlen, size_t maxlen,
                       size_t *outlen)
{
    if (n % 2 != 0 || n / 2 < minlen || n / 2 > maxlen)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_digit((unsigned char)s[i]), lo = hex_digit((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *outlen = n / 2;
    return true;
}

static size_t hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    return 2 * n;
}

/* Strict decimal: digits only (no sign, no spaces), 1..MAX_ITERATIONS. */
static bool parse_iterations(const char *s, size_t n, unsigned *out)
{
    unsigned long v;
    if (!parse_decimal(s, n, 8, MAX_ITERATIONS, &v) || v < 1)
        return false;
    *out = (unsigned)v;
    return true;
}

static bool record_sane(const struct user_record *rec)
{
    size_t nlen = strnlen(rec->name, sizeof rec->name);
    return nlen < sizeof rec->name && user_name_valid(rec->name, nlen) && rec->iterations >= 1 &&
           rec->iterations <= MAX_ITERATIONS && rec->salt_len >= SALT_MIN &&
           rec->salt_len <= sizeof rec->salt && rec->hash_len >= HASH_MIN &&
           rec->hash_len <= sizeof rec->hash;
}

/* Parse one non-comment line into rec. On failure returns a static reason. */
static const char *parse_line(const char *line, size_t len, struct user_record *rec)
{
    const char *f[5];
    size_t flen[5];
    size_t nf = 0;
    const char *p = line, *end = line + len;
    for (;;) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (nf == 5)
            return "expected NAME:pbkdf2-sha256:ITERATIONS:SALT_HEX:HASH_HEX (too many fields)";
        f[nf] = p;
        flen[nf] = colon ? (size_t)(colon - p) : (size_t)(end - p);
        nf++;
        if (!colon)
            break;
        p = colon + 1;
    }
    if (nf != 5)
        return "expected NAME:pbkdf2-sha256:ITERATIONS:SALT_HEX:HASH_HEX (too few fields)";

    memset(rec, 0, sizeof *rec);
    if (!user_name_valid(f[0], flen[0]))
        return "bad user name (want 1-32 of A-Za-z0-9_.-)";
    memcpy(rec->name, f[0], flen[0]);
    rec->name[flen[0]] = '\0';
    if (flen[1] != strlen(SCHEME) || memcmp(f[1], SCHEME, flen[1]) != 0)
        return "unknown hash scheme (want pbkdf2-sha256)";
    if (!parse_iterations(f[2], flen[2], &rec->iterations))
        return "bad iteration count (want 1..10000000)";
    if (!hex_decode(f[3], flen[3], rec->salt, SALT_MIN, sizeof rec->salt, &rec->salt_len))
        return "bad salt (want 2-128 hex digits)";
    if (!hex_decode(f[4], flen[4], rec->hash, HASH_MIN, sizeof rec->hash, &rec->hash_len))
        return "bad hash (want 32-128 hex digits)";
    return NULL;
}

/* Read one line (without its "\n" or "\r\n"), keeping at most LINE_MAX_LEN
 * bytes; the rest of a longer line is consumed so a long comment can still be
 * skipped. Returns 1 with a line, 0 at EOF, -1 on a read error; *flags gets
 * LINE_TRUNCATED and/or LINE_HAS_NUL (a NUL would hide the rest of the line
 * from every C string function). */
#define LINE_TRUNCATED 1
#define LINE_HAS_NUL 2
static int read_line(FILE *fp, char *buf, size_t *len, int *flags)
{
    size_t n = 0;
    int c;
    bool any = false;
    *flags = 0;
    while ((c = getc(fp)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (c == '\0')
            *flags |= LINE_HAS_NUL;
        else if (n == LINE_MAX_LEN)
            *flags |= LINE_TRUNCATED;
        else
            buf[n++] = (char)c;
    }
    if (c == EOF && ferror(fp))
        return -1;
    if (!any)
        return 0;
    if (n > 0 && buf[n - 1] == '\r' && !(*flags & LINE_TRUNCATED))
        n--;
    buf[n] = '\0';
    *len = n;
    return 1;
}

/* 0: a user line; 1: blank; 2: comment. */
static int line_kind(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i == n ? 1 : s[i] == '#' ? 2 : 0;
}

static int cmp_rec(const void *a, const void *b)
{
    return strcmp(((const struct user_record *)a)->name, ((const struct user_record *)b)->name);
}

struct loaded {
    struct user_record rec;
    unsigned line;
};

static int cmp_loaded(const void *a, const void *b)
{
    const struct loaded *x = a, *y = b;
    int c = strcmp(x->rec.name, y->rec.name);
    if (c != 0)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

/* PBKDF2's work for one record: SHA-256 gives 32 bytes a block, each block
 * is a full run of the iterations. */
static uint64_t record_cost(const struct user_record *r)
{
    return (uint64_t)r->iterations * ((r->hash_len + 31) / 32);
}

void users_unknown_work(unsigned *iterations, size_t *hash_len)
{
    *iterations = atomic_load_explicit(&dummy_iterations, memory_order_relaxed);
    *hash_len = atomic_load_explicit(&dummy_hash_len, memory_order_relaxed);
}

/* The dummy takes the shape of the costliest record. */
static void set_dummy(const struct users *u)
{
    const struct user_record *worst = &u->recs[0];
    for (size_t i = 1; i < u->n; i++)
        if (record_cost(&u->recs[i]) > record_cost(worst))
            worst = &u->recs[i];
    atomic_store_explicit(&dummy_iterations, worst->iterations, memory_order_relaxed);
    atomic_store_explicit(&dummy_hash_len, worst->hash_len, memory_order_relaxed);
}


static void loaded_free(struct loaded *l, size_t cap)
{
    if (l != NULL) {
        OPENSSL_cleanse(l, cap * sizeof *l);
        free(l);
    }
}

struct users *users_load(const char *path, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    FILE *fp = fopen(path, "re");
    if (fp == NULL) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        fclose(fp);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: is a directory", path);
        fclose(fp);
        return NULL;
    }
    if (st.st_mode & (S_IRGRP | S_IROTH))
        fprintf(stderr, "warning: users file %s is readable by others; chmod 600 it\n", path);

    struct loaded *l = NULL;
    size_t n = 0, cap = 0;
    unsigned lineno = 0;
    char line[LINE_MAX_LEN + 1];
    size_t len;
    int r, flags;
    while ((r = read_line(fp, line, &len, &flags)) == 1) {
        lineno++;
        int kind = line_kind(line, len);
        if (kind == 2 || (kind == 1 && flags == 0))
            continue;
        if (flags != 0) {
            set_err(err, errlen, "%s:%u: %s", path, lineno,
                    (flags & LINE_HAS_NUL) ? "NUL byte in line" : "line too long");
            goto fail;
        }
        if (n == MAX_USERS) {
            set_err(err, errlen, "%s:%u: too many users (max %u)", path, lineno, MAX_USERS);
            goto fail;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct loaded *nl = malloc(ncap * sizeof *nl);
            if (nl == NULL) {
                set_err(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            /* Not realloc: the old block holds hashes and is wiped, not just freed. */
            if (n > 0)
                memcpy(nl, l, n * sizeof *l);
            loaded_free(l, cap);
            l = nl;
            cap = ncap;
        }
        const char *why = parse_line(line, len, &l[n].rec);
        if (why != NULL) {
            set_err(err, errlen, "%s:%u: %s", path, lineno, why);
            goto fail;
        }
        l[n].line = lineno;
        n++;
    }
    if (r < 0) {
        set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }

    if (n > 1) {
        qsort(l, n, sizeof *l, cmp_loaded);
        for (size_t i = 1; i < n; i++) {
            if (strcmp(l[i - 1].rec.name, l[i].rec.name) == 0) {
                set_err(err, errlen, "%s:%u: repeated user name '%s' (first on line %u)", path,
                        l[i].line, l[i].rec.name, l[i - 1].line);
                goto fail;
            }
        }
    }

    struct users *u = calloc(1, sizeof *u);
    if (u == NULL) {
        set_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (n > 0) {
        u->recs = malloc(n * sizeof *u->recs);
        if (u->recs == NULL) {
            free(u);
            set_err(err, errlen, "%s: out of memory", path);
            goto fail;
        }
        for (size_t i = 0; i < n; i++)
            u->recs[i] = l[i].rec;
        u->n = n;
        set_dummy(u);
    }
    loaded_free(l, cap);
    OPENSSL_cleanse(line, sizeof line);
    fclose(fp);
    return u;

fail:
    loaded_free(l, cap);
    OPENSSL_cleanse(line, sizeof line);
    fclose(fp);
    return NULL;
}

/* The demo accounts' records, made once with user_record_make (password
 * 123456, USERS_DEFAULT_ITERATIONS) and kept as text. Hashing them at every
 * start cost 3 x 100 000 PBKDF2 rounds (a server took ~150 ms to listen,
 * ~850 ms under AddressSanitizer) and ~1.2 million malloc/free pairs inside
 * libcrypto (four per round) that filled ASan's quarantine. chat-forked's children
 * inherited that heap, and LeakSanitizer walked every chunk of it at each
 * child's exit (issue 13). The password is public; a fixed salt hides
 * nothing it did not. tests/unit/test_users.c checks these still verify. */
static const char *const demo_lines[] = {
    /* sorted by name, as users_find's bsearch needs */
    "aa:pbkdf2-sha256:100000:ac1f1affde9b76e2ef92038c17c2a639:"
    "29fbbe3ce8acdb16e1e16a6fd47a09390b3a1291231403bec0587ddda8592b4c",
    "cc:pbkdf2-sha256:100000:788f4057d12e229539505840d10983c9:"
    "c2b95887a77277dd23df5a0c9136af7b59456b75c495c8afc9665187c51b63ee",
    "coco:pbkdf2-sha256:100000:39c76057ff9a56bbee332665d721dcb9:"
    "7cd7ced0cb408e834e9e6542dc682ee38f304cbfd03b52db20ccfcd54563e5fa",
};

struct users *users_demo(void)
{
    const size_t n = sizeof demo_lines / sizeof demo_lines[0];
    struct users *u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->recs = calloc(n, sizeof *u->recs);
    if (u->recs == NULL) {
        free(u);
        return NULL;
    }
    u->n = n;
    for (size_t i = 0; i < n; i++) {
        if (parse_line(demo_lines[i], strlen(demo_lines[i]), &u->recs[i]) != NULL) {
            users_free(u); /* wipes all of them, parsed or not */
            return NULL;
        }
    }
    set_dummy(u);
    return u;
}

void users_free(struct users *u)
{
    if (u == NULL)
        return;
    if (u->recs != NULL) {
        OPENSSL_cleanse(u->recs, u->n * sizeof *u->recs);
        free(u->recs);
    }
    free(u);
}

size_t users_count(const struct users *u) { return u ? u->n : 0; }

const struct user_record *users_find(const struct users *u, const char *name)
{
    if (u == NULL || u->n == 0 || name == NULL)
        return NULL;
    size_t len = strnlen(name, 33);
    if (!user_name_valid(name, len))
        return NULL;
    struct user_record key;
    memcpy(key.name, name, len);
    key.name[len] = '\0';
    return bsearch(&key, u->recs, u->n, sizeof *u->recs, cmp_rec);
}

bool password_check(const struct user_record *rec, const char *password, size_t len)
{
    /* Refused before hashing: PBKDF2's first step hashes the whole password,
     * so an unbounded one would make each login attempt arbitrarily costly. */
    if (len > USERS_MAX_PASSWORD || (password == NULL && len > 0))
        return false;
    if (password == NULL)
        password = "";

    struct user_record dummy;
    const struct user_record *r = rec;
    if (r == NULL || !record_sane(r)) {
        /* Same shape of work as the costliest record (set_dummy): its
         * iterations and hash length, a 16-byte salt and the compare. The
         * dummy's hash is all zero and the result is thrown away, so nothing
         * can match. */
        memset(&dummy, 0, sizeof dummy);
        dummy.iterations = atomic_load_explicit(&dummy_iterations, memory_order_relaxed);
        dummy.salt_len = NEW_SALT_LEN;
        dummy.hash_len = atomic_load_explicit(&dummy_hash_len, memory_order_relaxed);
        r = &dummy;
    }

    uint8_t dk[sizeof r->hash];
    bool ok = PKCS5_PBKDF2_HMAC(password, (int)len, r->salt, (int)r->salt_len, (int)r->iterations,
                                EVP_sha256(), (int)r->hash_len, dk) == 1 &&
              CRYPTO_memcmp(dk, r->hash, r->hash_len) == 0;
    OPENSSL_cleanse(dk, sizeof dk);
    return ok && r != &dummy;
}

int user_record_make(struct user_record *rec, const char *name, const char *password,
                     unsigned iterations)
{
    if (rec == NULL)
        return -1;
    memset(rec, 0, sizeof *rec);
    if (name == NULL || password == NULL)
        return -1;
    size_t nlen = strnlen(name, sizeof rec->name);
    size_t plen = strnlen(password, USERS_MAX_PASSWORD + 1);
    /* A record whose password password_check would refuse is never useful. */
    if (!user_name_valid(name, nlen) || plen > USERS_MAX_PASSWORD || iterations < 1 ||
        iterations > MAX_ITERATIONS)
        return -1;
    memcpy(rec->name, name, nlen);
    rec->iterations = iterations;
    rec->salt_len = NEW_SALT_LEN;
    rec->hash_len = NEW_HASH_LEN;
    if (RAND_bytes(rec->salt, NEW_SALT_LEN) != 1 ||
        PKCS5_PBKDF2_HMAC(password, (int)plen, rec->salt, NEW_SALT_LEN, (int)iterations,
                          EVP_sha256(), NEW_HASH_LEN, rec->hash) != 1) {
        OPENSSL_cleanse(rec, sizeof *rec);
        return -1;
    }
    return 0;
}

int user_record_format(const struct user_record *rec, char *out, size_t outlen)
{
    if (rec == NULL || out == NULL || outlen == 0)
        return -1;
    out[0] = '\0';
    /* Refuse to write a line users_load would reject. */
    if (!record_sane(rec))
        return -1;
    char salt[2 * sizeof rec->salt + 1], hash[2 * sizeof rec->hash + 1];
    salt[hex_encode(rec->salt, rec->salt_len, salt)] = '\0';
    hash[hex_encode(rec->hash, rec->hash_len, hash)] = '\0';
    int n = snprintf(out, outlen, "%s:" SCHEME ":%u:%s:%s\n", rec->name, rec->iterations, salt,
                     hash);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}
