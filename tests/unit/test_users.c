#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "users.h"

/* RFC 7914 §11, PBKDF2-HMAC-SHA256 vectors. */
#define VEC1_LINE                                                                                  \
    "vec:pbkdf2-sha256:1:73616c74:55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc" \
    "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783\n"
#define VEC2_LINE                                                                                  \
    "nacl:pbkdf2-sha256:80000:4e61436c:4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b" \
    "34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d\n"

#define SALT16 "000102030405060708090a0b0c0d0e0f"
#define HASH32 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define GOOD(name) name ":pbkdf2-sha256:10:" SALT16 ":" HASH32 "\n"

static char *tmp_with(const void *data, size_t n)
{
    char *path = strdup("/tmp/c10k-users-XXXXXX");
    int fd = mkstemp(path); /* mode 0600: no warning */
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
    return path;
}

static char last_err[512];
static char last_path[64];

/* Load `text` from a temp file; the error (if any) lands in last_err with
 * the temp path replaced by "F" so expectations can be literal. */
static struct users *load_text_n(const char *text, size_t n)
{
    char *path = tmp_with(text, n);
    char err[512] = "";
    struct users *u = users_load(path, err, sizeof err);
    snprintf(last_path, sizeof last_path, "%s", path);
    last_err[0] = '\0';
    size_t pl = strlen(path);
    if (strncmp(err, path, pl) == 0)
        snprintf(last_err, sizeof last_err, "F%s", err + pl);
    else
        snprintf(last_err, sizeof last_err, "%s", err);
    unlink(path);
    free(path);
    return u;
}

static struct users *load_text(const char *text) { return load_text_n(text, strlen(text)); }

static void expect_error(const char *text, const char *prefix)
{
    struct users *u = load_text(text);
    cr_assert_null(u, "accepted: %s", text);
    cr_assert(strncmp(last_err, prefix, strlen(prefix)) == 0, "got [%s], want prefix [%s]",
              last_err, prefix);
}

Test(users_load, valid_with_comments_and_blank_lines)
{
    struct users *u = load_text("# users\n"
                                "\n"
                                "   \n"
                                "  # indented comment\n" GOOD("coco") "\t\n" GOOD("a.b-c_D9")
                                    "zed:pbkdf2-sha256:100000:" SALT16 ":" HASH32 "\r\n"
                                    "last:pbkdf2-sha256:7:ab:" HASH32 /* no final newline */);
    cr_assert_not_null(u, "%s", last_err);
    cr_assert_eq(users_count(u), 4);
    const struct user_record *r = users_find(u, "coco");
    cr_assert_not_null(r);
    cr_assert_str_eq(r->name, "coco");
    cr_assert_eq(r->iterations, 10);
    cr_assert_eq(r->salt_len, 16);
    cr_assert_eq(r->salt[15], 0x0f);
    cr_assert_eq(r->hash_len, 32);
    cr_assert_eq(r->hash[1], 0x11);
    cr_assert_not_null(users_find(u, "a.b-c_D9"));
    r = users_find(u, "zed");
    cr_assert_not_null(r);
    cr_assert_eq(r->iterations, 100000);
    r = users_find(u, "last");
    cr_assert_not_null(r);
    cr_assert_eq(r->salt_len, 1);
    cr_assert_eq(r->salt[0], 0xab);
    cr_assert_null(users_find(u, "Coco")); /* names are case-sensitive */
    cr_assert_null(users_find(u, "nobody"));
    cr_assert_null(users_find(u, ""));
    cr_assert_null(users_find(u, "bad name"));
    users_free(u);
}

Test(users_load, empty_and_comment_only_files_load)
{
    struct users *u = load_text("");
    cr_assert_not_null(u, "%s", last_err);
    cr_assert_eq(users_count(u), 0);
    cr_assert_null(users_find(u, "coco"));
    users_free(u);
    u = load_text("# nobody yet\n\n");
    cr_assert_not_null(u);
    cr_assert_eq(users_count(u), 0);
    users_free(u);
}

Test(users_load, many_users_found_by_bsearch)
{
    char *text = malloc(200 * 150);
    cr_assert_not_null(text);
    size_t off = 0;
    /* Descending, so the loader has to sort. */
    for (int i = 199; i >= 0; i--)
        off += (size_t)sprintf(text + off, "u%03d:pbkdf2-sha256:10:" SALT16 ":" HASH32 "\n", i);
    struct users *u = load_text_n(text, off);
    free(text);
    cr_assert_not_null(u, "%s", last_err);
    cr_assert_eq(users_count(u), 200);
    char name[8];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "u%03d", i);
        const struct user_record *r = users_find(u, name);
        cr_assert_not_null(r, "%s", name);
        cr_assert_str_eq(r->name, name);
    }
    cr_assert_null(users_find(u, "u200"));
    users_free(u);
}

Test(users_load, wrong_field_count)
{
    expect_error("coco:pbkdf2-sha256:10:" SALT16 "\n", "F:1: expected NAME:");
    expect_error("# c\n" GOOD("aa") "coco:pbkdf2-sha256:10:" SALT16 ":" HASH32 ":\n",
                 "F:3: expected NAME:");
    expect_error("coco\n", "F:1: expected NAME:");
    expect_error(":::\n", "F:1: expected NAME:");
}

Test(users_load, bad_scheme)
{
    expect_error("coco:pbkdf2-sha1:10:" SALT16 ":" HASH32 "\n", "F:1: unknown hash scheme");
    expect_error("coco:PBKDF2-SHA256:10:" SALT16 ":" HASH32 "\n", "F:1: unknown hash scheme");
    expect_error("coco::10:" SALT16 ":" HASH32 "\n", "F:1: unknown hash scheme");
}

Test(users_load, bad_iterations)
{
    const char *bad[] = {"0", "", "abc", "-5", "+5", " 5", "5 ", "10000001", "99999999999999999999",
                         "1e5", "0x10"};
    char line[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, GOOD("aa") "coco:pbkdf2-sha256:%s:" SALT16 ":" HASH32 "\n",
                 bad[i]);
        expect_error(line, "F:2: bad iteration count");
    }
    struct users *u = load_text("coco:pbkdf2-sha256:10000000:" SALT16 ":" HASH32 "\n"
                                "cc:pbkdf2-sha256:1:" SALT16 ":" HASH32 "\n");
    cr_assert_not_null(u, "%s", last_err);
    cr_assert_eq(users_find(u, "coco")->iterations, 10000000);
    users_free(u);
}

Test(users_load, bad_salt)
{
    expect_error("coco:pbkdf2-sha256:10::" HASH32 "\n", "F:1: bad salt");
    expect_error("coco:pbkdf2-sha256:10:abc:" HASH32 "\n", "F:1: bad salt");  /* odd */
    expect_error("coco:pbkdf2-sha256:10:zz:" HASH32 "\n", "F:1: bad salt");   /* not hex */
    expect_error("coco:pbkdf2-sha256:10:0 :" HASH32 "\n", "F:1: bad salt");
    /* 65 bytes: more than a record holds. */
    expect_error("coco:pbkdf2-sha256:10:" SALT16 SALT16 SALT16 SALT16 "00:" HASH32 "\n",
                 "F:1: bad salt");
    struct users *u =
        load_text("coco:pbkdf2-sha256:10:" SALT16 SALT16 SALT16 SALT16 ":" HASH32 "\n");
    cr_assert_not_null(u, "%s", last_err);
    cr_assert_eq(users_find(u, "coco")->salt_len, 64);
    users_free(u);
}

Test(users_load, bad_hash)
{
    expect_error("coco:pbkdf2-sha256:10:" SALT16 ":\n", "F:1: bad hash");
    expect_error("coco:pbkdf2-sha256:10:" SALT16 ":" SALT16 "0\n", "F:1: bad hash");
    expect_error("coco:pbkdf2-sha256:10:" SALT16 ":00112233445566778899aabbccddee\n",
                 "F:1: bad hash"); /* 15 bytes: too short to mean anything */
    expect_error("coco:pbkdf2-sha256:10:" SALT16 ":" HASH32 HASH32 "00\n", "F:1: bad hash");
    expect_error("coco:pbkdf2-sha256:10:" SALT16 ":" HASH32 "g\n", "F:1: bad hash");
    expect_error("coco:pbkdf2-sha256:10:" SALT16 ":" HASH32 " \n", "F:1: bad hash");
}

Test(users_load, bad_name_characters)
{
    const char *bad[] = {"co co", "a/b", "caf\xc3\xa9", " coco", "co\tco", "a|b", "a@b"};
    char line[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(line, sizeof line, "%s:pbkdf2-sha256:10:" SALT16 ":" HASH32 "\n", bad[i]);
        expect_error(line, "F:1: bad user name");
    }
    expect_error(":pbkdf2-sha256:10:" SALT16 ":" HASH32 "\n", "F:1: bad user name");
}

Test(users_load, name_length_limit)
{
    expect_error(GOOD("abcdefghijklmnopqrstuvwxyz0123456"), "F:1: bad user name"); /* 33 */
    struct users *u = load_text(GOOD("abcdefghijklmnopqrstuvwxyz012345"));           /* 32 */
    cr_assert_not_null(u, "%s", last_err);
    cr_assert_not_null(users_find(u, "abcdefghijklmnopqrstuvwxyz012345"));
    cr_assert_null(users_find(u, "abcdefghijklmnopqrstuvwxyz0123456"));
    users_free(u);
}

Test(users_load, repeated_name)
{
    expect_error("# header\n" GOOD("coco") GOOD("cc") "\n" GOOD("coco"),
                 "F:5: repeated user name 'coco' (first on line 2)");
}

Test(users_load, long_line_and_nul)
{
    char text[4096];
    char pad[2000];
    memset(pad, 'a', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    snprintf(text, sizeof text, "%s\n", pad);
    expect_error(text, "F:1: line too long");
    snprintf(text, sizeof text, GOOD("aa") "# c\n" GOOD("coco") "%s\n", pad);
    expect_error(text, "F:4: line too long");
    /* A long run of spaces is not known to be blank past what was kept. */
    memset(pad, ' ', sizeof pad - 1);
    snprintf(text, sizeof text, "%sx\n", pad);
    expect_error(text, "F:1: line too long");
    /* A long comment is still a comment. */
    memset(pad, '#', sizeof pad - 1);
    snprintf(text, sizeof text, "%s\n" GOOD("coco"), pad);
    struct users *u = load_text(text);
    cr_assert_not_null(u, "%s", last_err);
    cr_assert_eq(users_count(u), 1);
    users_free(u);

    static const char withnul[] = "coco:pbkdf2-sha256:10:\0" SALT16 ":" HASH32 "\n";
    u = load_text_n(withnul, sizeof withnul - 1);
    cr_assert_null(u);
    cr_assert_str_eq(last_err, "F:1: NUL byte in line");
    static const char blanknul[] = GOOD("aa") " \0 \n";
    u = load_text_n(blanknul, sizeof blanknul - 1);
    cr_assert_null(u);
    cr_assert_str_eq(last_err, "F:2: NUL byte in line");
}

Test(users_load, missing_file)
{
    char err[256] = "";
    cr_assert_null(users_load("/nonexistent/users.txt", err, sizeof err));
    cr_assert(strstr(err, "/nonexistent/users.txt") != NULL, "%s", err);
    cr_assert(strstr(err, "No such file") != NULL, "%s", err);
    cr_assert_null(users_load("/tmp", err, sizeof err));
    cr_assert(strstr(err, "directory") != NULL, "%s", err);
}

Test(users_load, warns_when_readable_by_others, .init = cr_redirect_stderr)
{
    char *path = tmp_with(GOOD("coco"), strlen(GOOD("coco")));
    cr_assert_eq(chmod(path, 0644), 0);
    char err[256];
    struct users *u = users_load(path, err, sizeof err);
    cr_assert_not_null(u, "%s", err);
    users_free(u);
    fflush(stderr);
    char want[256];
    snprintf(want, sizeof want, "warning: users file %s is readable by others; chmod 600 it\n",
             path);
    unlink(path);
    free(path);
    cr_assert_stderr_eq_str(want);
}

Test(users_load, silent_when_private, .init = cr_redirect_stderr)
{
    struct users *u = load_text(GOOD("coco"));
    cr_assert_not_null(u);
    users_free(u);
    fflush(stderr);
    cr_assert_stderr_eq_str("");
}

Test(user_name_valid, cases)
{
    cr_assert(user_name_valid("a", 1));
    cr_assert(user_name_valid("A-z_0.9", 7));
    cr_assert(user_name_valid("abcdefghijklmnopqrstuvwxyz012345", 32));
    cr_assert_not(user_name_valid("abcdefghijklmnopqrstuvwxyz0123456", 33));
    cr_assert_not(user_name_valid("", 0));
    cr_assert_not(user_name_valid(NULL, 3));
    cr_assert_not(user_name_valid("a b", 3));
    cr_assert_not(user_name_valid("a\0b", 3));
    cr_assert_not(user_name_valid("a:b", 3));
    cr_assert_not(user_name_valid("a|b", 3));
    cr_assert_not(user_name_valid("\xc3\xa9", 2));
    cr_assert(user_name_valid("ab|", 2)); /* only len bytes are looked at */
}

/* ---- passwords ---- */

Test(password, rfc7914_vector_c1)
{
    struct users *u = load_text(VEC1_LINE);
    cr_assert_not_null(u, "%s", last_err);
    const struct user_record *r = users_find(u, "vec");
    cr_assert_not_null(r);
    cr_assert_eq(r->hash_len, 64);
    cr_assert_eq(r->salt_len, 4);
    cr_assert(password_check(r, "passwd", 6));
    cr_assert_not(password_check(r, "passwe", 6));
    cr_assert_not(password_check(r, "passwd", 5));
    cr_assert_not(password_check(r, "passwdx", 7));
    cr_assert_not(password_check(r, "", 0));
    users_free(u);
}

Test(password, rfc7914_vector_c80000)
{
    struct users *u = load_text(VEC2_LINE);
    cr_assert_not_null(u, "%s", last_err);
    const struct user_record *r = users_find(u, "nacl");
    cr_assert_not_null(r);
    cr_assert_eq(r->iterations, 80000);
    cr_assert(password_check(r, "Password", 8));
    cr_assert_not(password_check(r, "password", 8));
    users_free(u);
}

Test(password, right_wrong_unknown)
{
    struct user_record rec;
    cr_assert_eq(user_record_make(&rec, "coco", "s3cret pass", 10), 0);
    char line[512];
    cr_assert_eq(user_record_format(&rec, line, sizeof line), 0);
    struct users *u = load_text(line);
    cr_assert_not_null(u, "%s", last_err);
    const struct user_record *r = users_find(u, "coco");
    cr_assert_not_null(r);
    cr_assert(password_check(r, "s3cret pass", 11));
    cr_assert_not(password_check(r, "s3cret pasS", 11));
    cr_assert_not(password_check(r, "s3cret pass", 10));
    /* Unknown user: the dummy path never succeeds, whatever the password. */
    cr_assert_null(users_find(u, "nobody"));
    cr_assert_not(password_check(users_find(u, "nobody"), "s3cret pass", 11));
    cr_assert_not(password_check(NULL, "", 0));
    cr_assert_not(password_check(NULL, NULL, 0));
    users_free(u);
}

Test(password, insane_record_never_matches)
{
    struct user_record rec;
    memset(&rec, 0, sizeof rec); /* hash_len 0 would make any compare "equal" */
    cr_assert_not(password_check(&rec, "x", 1));
}

static void record_for(struct user_record *rec, const char *pw, size_t len)
{
    memset(rec, 0, sizeof *rec);
    strcpy(rec->name, "long");
    rec->iterations = 1;
    rec->salt_len = 16;
    rec->hash_len = 32;
    cr_assert_eq(PKCS5_PBKDF2_HMAC(pw, (int)len, rec->salt, 16, 1, EVP_sha256(), 32, rec->hash),
                 1);
}

Test(password, max_length)
{
    static char pw[USERS_MAX_PASSWORD + 2];
    memset(pw, 'p', sizeof pw - 1);
    struct user_record rec;
    record_for(&rec, pw, USERS_MAX_PASSWORD);
    cr_assert(password_check(&rec, pw, USERS_MAX_PASSWORD));
    /* One byte more is refused even though the record matches it. */
    record_for(&rec, pw, USERS_MAX_PASSWORD + 1);
    cr_assert_not(password_check(&rec, pw, USERS_MAX_PASSWORD + 1));

    pw[USERS_MAX_PASSWORD + 1] = '\0';
    struct user_record made;
    cr_assert_eq(user_record_make(&made, "long", pw, 1), -1);
    pw[USERS_MAX_PASSWORD] = '\0';
    cr_assert_eq(user_record_make(&made, "long", pw, 1), 0);
    cr_assert(password_check(&made, pw, USERS_MAX_PASSWORD));
}

Test(password, binary_password_bytes)
{
    /* Length-counted: a password with a NUL in the middle is not its prefix. */
    struct user_record rec;
    record_for(&rec, "ab\0cd", 5);
    cr_assert(password_check(&rec, "ab\0cd", 5));
    cr_assert_not(password_check(&rec, "ab", 2));
}

/* ---- records ---- */

static bool all_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

Test(record, make_format_load_round_trip)
{
    struct user_record a, b;
    cr_assert_eq(user_record_make(&a, "alice", "correct horse", 1000), 0);
    cr_assert_eq(user_record_make(&b, "bob.smith-2", "battery staple", 3), 0);
    cr_assert_str_eq(a.name, "alice");
    cr_assert_eq(a.iterations, 1000);
    cr_assert_eq(a.salt_len, 16);
    cr_assert_eq(a.hash_len, 32);
    cr_assert_neq(memcmp(a.salt, b.salt, 16), 0, "salts must be random");

    char la[512], lb[512];
    cr_assert_eq(user_record_format(&a, la, sizeof la), 0);
    cr_assert_eq(user_record_format(&b, lb, sizeof lb), 0);
    /* NAME:pbkdf2-sha256:ITERATIONS:SALT_HEX:HASH_HEX\n, exactly. */
    const char *prefix = "alice:pbkdf2-sha256:1000:";
    size_t pl = strlen(prefix);
    cr_assert(strncmp(la, prefix, pl) == 0, "%s", la);
    cr_assert_eq(strlen(la), pl + 32 + 1 + 64 + 1, "%s", la);
    cr_assert(all_lower_hex(la + pl, 32));
    cr_assert_eq(la[pl + 32], ':');
    cr_assert(all_lower_hex(la + pl + 33, 64));
    cr_assert_eq(la[pl + 97], '\n');
    cr_assert_eq(la[pl + 98], '\0');

    char both[1024];
    snprintf(both, sizeof both, "%s%s", la, lb);
    struct users *u = load_text(both);
    cr_assert_not_null(u, "%s", last_err);
    cr_assert_eq(users_count(u), 2);
    const struct user_record *ra = users_find(u, "alice"), *rb = users_find(u, "bob.smith-2");
    cr_assert_not_null(ra);
    cr_assert_not_null(rb);
    cr_assert_eq(ra->iterations, 1000);
    cr_assert(memcmp(ra->salt, a.salt, 16) == 0);
    cr_assert(memcmp(ra->hash, a.hash, 32) == 0);
    cr_assert(password_check(ra, "correct horse", 13));
    cr_assert_not(password_check(ra, "battery staple", 14));
    cr_assert(password_check(rb, "battery staple", 14));
    users_free(u);
}

Test(record, make_refuses_bad_input)
{
    struct user_record r;
    cr_assert_eq(user_record_make(&r, "bad name", "pw", 10), -1);
    cr_assert_eq(user_record_make(&r, "", "pw", 10), -1);
    cr_assert_eq(user_record_make(&r, "abcdefghijklmnopqrstuvwxyz0123456", "pw", 10), -1);
    cr_assert_eq(user_record_make(&r, "ok", "pw", 0), -1);
    cr_assert_eq(user_record_make(&r, "ok", "pw", 10000001), -1);
    cr_assert_eq(user_record_make(&r, "ok", NULL, 10), -1);
    cr_assert_eq(user_record_make(NULL, "ok", "pw", 10), -1);
}

Test(record, format_refuses_bad_record_or_small_buffer)
{
    struct user_record r;
    cr_assert_eq(user_record_make(&r, "coco", "pw", 10), 0);
    char line[512];
    size_t need = strlen("coco:pbkdf2-sha256:10:") + 32 + 1 + 64 + 1;
    cr_assert_eq(user_record_format(&r, line, need + 1), 0);
    cr_assert_eq(strlen(line), need);
    cr_assert_eq(user_record_format(&r, line, need), -1);
    cr_assert_str_eq(line, "");
    struct user_record bad = r;
    bad.iterations = 0;
    cr_assert_eq(user_record_format(&bad, line, sizeof line), -1);
    bad = r;
    bad.hash_len = 65;
    cr_assert_eq(user_record_format(&bad, line, sizeof line), -1);
    bad = r;
    strcpy(bad.name, "a:b");
    cr_assert_eq(user_record_format(&bad, line, sizeof line), -1);
}

Test(users_demo, accounts)
{
    struct users *u = users_demo();
    cr_assert_not_null(u);
    cr_assert_eq(users_count(u), 3);
    const char *names[] = {"coco", "cc", "aa"};
    for (size_t i = 0; i < 3; i++) {
        const struct user_record *r = users_find(u, names[i]);
        cr_assert_not_null(r, "%s", names[i]);
        cr_assert_eq(r->iterations, USERS_DEFAULT_ITERATIONS);
        cr_assert_eq(r->salt_len, 16);
        cr_assert_eq(r->hash_len, 32);
        /* the records are constants in users.c: each must still verify */
        cr_assert(password_check(r, "123456", 6), "%s does not take 123456", names[i]);
    }
    const struct user_record *coco = users_find(u, "coco"), *cc = users_find(u, "cc");
    cr_assert_neq(memcmp(coco->salt, cc->salt, 16), 0);
    cr_assert_neq(memcmp(coco->hash, cc->hash, 32), 0);
    cr_assert(password_check(coco, "123456", 6));
    cr_assert_not(password_check(cc, "1234567", 7));
    cr_assert_null(users_find(u, "bob"));
    users_free(u);
}

/* An unknown name pays for the file's costliest record, counted in
 * iterations x 32-byte blocks: 600 rounds of a 64-byte hash (1 200) beat
 * 1 000 rounds of a 32-byte one, which beat the common 10. */
Test(users, unknown_name_pays_for_the_costliest_record)
{
    struct users *u = load_text("a:pbkdf2-sha256:10:" SALT16 ":" HASH32 "\n"
                                "b:pbkdf2-sha256:10:" SALT16 ":" HASH32 "\n"
                                "c:pbkdf2-sha256:1000:" SALT16 ":" HASH32 "\n"
                                "d:pbkdf2-sha256:600:" SALT16 ":" HASH32 HASH32 "\n");
    cr_assert_not_null(u, "%s", last_err);
    unsigned it;
    size_t hl;
    users_unknown_work(&it, &hl);
    cr_assert(it == 600 && hl == 64, "unknown name hashes %u rounds of %zu bytes", it, hl);
    users_free(u);
    u = users_demo();
    users_unknown_work(&it, &hl);
    cr_assert(it == USERS_DEFAULT_ITERATIONS && hl == 32, "demo: %u rounds of %zu bytes", it, hl);
    users_free(u);
}
