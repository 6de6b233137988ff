#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "session.h"

#define NOW ((time_t)1700000000)

static struct session_key key_of(char c)
{
    struct session_key k;
    memset(&k, 0, sizeof k);
    memset(k.bytes, c, 32);
    k.len = 32;
    return k;
}

static int sign(const struct session_key *k, const char *user, time_t exp, char *out)
{
    return session_sign(k, user, exp, out, SESSION_COOKIE_MAX + 1);
}

static bool verify(const struct session_key *k, const char *v, time_t now, char user[33])
{
    return session_verify(k, v, strlen(v), now, user);
}

Test(session, round_trip)
{
    struct session_key k = key_of('k');
    char v[SESSION_COOKIE_MAX + 1], user[33] = "";
    int n = sign(&k, "coco", NOW + SESSION_MAX_AGE, v);
    cr_assert_gt(n, 0);
    cr_assert_eq((size_t)n, strlen(v));
    cr_assert(strncmp(v, "1|1700604800|coco|", 18) == 0, "%s", v);
    cr_assert(verify(&k, v, NOW, user));
    cr_assert_str_eq(user, "coco");
}

Test(session, mac_is_documented_hmac)
{
    /* The header's format exactly: HMAC-SHA256(key, "session|1|EXPIRY|NAME"),
     * lowercase hex. Another implementation must be able to make one. */
    struct session_key k = key_of('z');
    char v[SESSION_COOKIE_MAX + 1];
    cr_assert_gt(sign(&k, "aa", 1800000000, v), 0);
    const char *msg = "session|1|1800000000|aa";
    unsigned char mac[32];
    unsigned mlen;
    HMAC(EVP_sha256(), k.bytes, 32, (const unsigned char *)msg, strlen(msg), mac, &mlen);
    char want[200];
    int off = snprintf(want, sizeof want, "1|1800000000|aa|");
    for (int i = 0; i < 32; i++)
        off += snprintf(want + off, sizeof want - (size_t)off, "%02x", mac[i]);
    cr_assert_str_eq(v, want);
}

Test(session, longest_value_fits_cookie_max)
{
    struct session_key k = key_of('k');
    char v[SESSION_COOKIE_MAX + 1], user[33];
    const char *name32 = "abcdefghijklmnopqrstuvwxyz012345";
    int n = sign(&k, name32, (time_t)99999999999LL, v);
    cr_assert_gt(n, 0);
    cr_assert_leq(n, SESSION_COOKIE_MAX);
    cr_assert(verify(&k, v, NOW, user));
    cr_assert_str_eq(user, name32);
}

Test(session, sign_refuses_bad_input)
{
    struct session_key k = key_of('k'), empty;
    memset(&empty, 0, sizeof empty);
    char v[SESSION_COOKIE_MAX + 1];
    cr_assert_eq(sign(&k, "bad|name", NOW, v), -1);
    cr_assert_eq(sign(&k, "", NOW, v), -1);
    cr_assert_eq(sign(&k, "abcdefghijklmnopqrstuvwxyz0123456", NOW, v), -1); /* 33 */
    cr_assert_eq(sign(&k, "coco", (time_t)-1, v), -1);
    cr_assert_eq(sign(&empty, "coco", NOW, v), -1); /* unset key: would be forgeable */
    char small[40];
    cr_assert_eq(session_sign(&k, "coco", NOW, small, sizeof small), -1);
    cr_assert_str_eq(small, "");
}

Test(session, tampered_mac)
{
    struct session_key k = key_of('k');
    char v[SESSION_COOKIE_MAX + 1], user[33];
    int n = sign(&k, "coco", NOW + 100, v);
    v[n - 1] = v[n - 1] == '0' ? '1' : '0';
    cr_assert_not(verify(&k, v, NOW, user));
    /* Uppercase hex is not what we sign: refused even with the right bytes. */
    sign(&k, "coco", NOW + 100, v);
    for (int i = n - 64; i < n; i++)
        if (v[i] >= 'a' && v[i] <= 'f')
            v[i] = (char)(v[i] - 'a' + 'A');
    cr_assert_not(verify(&k, v, NOW, user));
}

Test(session, tampered_name_moved_to_another_user)
{
    struct session_key k = key_of('k');
    char v[SESSION_COOKIE_MAX + 1], other[SESSION_COOKIE_MAX + 1], user[33];
    sign(&k, "cc", NOW + 100, v);
    /* Same length name, same expiry, same MAC: must not become "aa". */
    char *bar = strchr(v + 2, '|');
    memcpy(bar + 1, "aa", 2);
    cr_assert_not(verify(&k, v, NOW, user));
    /* Splicing a valid MAC for one user onto another's fields fails too. */
    sign(&k, "aa", NOW + 100, other);
    sign(&k, "cc", NOW + 100, v);
    memcpy(v + strlen(v) - 64, other + strlen(other) - 64, 64);
    cr_assert_not(verify(&k, v, NOW, user));
}

Test(session, tampered_expiry)
{
    struct session_key k = key_of('k');
    char v[SESSION_COOKIE_MAX + 1], user[33];
    sign(&k, "coco", NOW + 100, v); /* 1|1700000100|... */
    cr_assert_eq(v[11], '0');
    v[11] = '9'; /* push the expiry later */
    cr_assert_not(verify(&k, v, NOW, user));
}

Test(session, expired)
{
    struct session_key k = key_of('k');
    char v[SESSION_COOKIE_MAX + 1], user[33];
    sign(&k, "coco", NOW, v);
    cr_assert(verify(&k, v, NOW - 1, user));
    cr_assert_not(verify(&k, v, NOW, user)); /* expiry is exclusive */
    cr_assert_not(verify(&k, v, NOW + 1, user));
}

Test(session, different_key)
{
    struct session_key k1 = key_of('a'), k2 = key_of('b');
    char v[SESSION_COOKIE_MAX + 1], user[33];
    sign(&k1, "coco", NOW + 100, v);
    cr_assert_not(verify(&k2, v, NOW, user));
    /* A key that is a prefix of another is still a different key. */
    struct session_key k3 = k1;
    k3.bytes[32] = 'a';
    k3.len = 33;
    cr_assert_not(verify(&k3, v, NOW, user));
}

Test(session, wrong_version)
{
    struct session_key k = key_of('k');
    char v[SESSION_COOKIE_MAX + 1], user[33];
    sign(&k, "coco", NOW + 100, v);
    v[0] = '2';
    cr_assert_not(verify(&k, v, NOW, user));
    v[0] = '1';
    cr_assert(verify(&k, v, NOW, user));
    char w[SESSION_COOKIE_MAX + 2] = "0";
    strcat(w, v); /* "01|..." */
    cr_assert_not(verify(&k, w, NOW, user));
}

Test(session, garbage)
{
    struct session_key k = key_of('k');
    char user[33];
    const char *bad[] = {
        "",
        "1",
        "1|",
        "1||coco|",
        "1|abc|coco|0000000000000000000000000000000000000000000000000000000000000000",
        "1|-5|coco|0000000000000000000000000000000000000000000000000000000000000000",
        "1|+5|coco|0000000000000000000000000000000000000000000000000000000000000000",
        "1|0017|coco|0000000000000000000000000000000000000000000000000000000000000000",
        "1|999999999999|coco|0000000000000000000000000000000000000000000000000000000000000000",
        "1|1800000000|co co|0000000000000000000000000000000000000000000000000000000000000000",
        "1|1800000000||0000000000000000000000000000000000000000000000000000000000000000",
        "1|1800000000|coco|zz00000000000000000000000000000000000000000000000000000000000000",
        "1|1800000000|coco|0000000000000000000000000000000000000000000000000000000000000000|",
        "session=1|1800000000|coco|00",
        "\xff\xfe",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(verify(&k, bad[i], NOW, user), "accepted %s", bad[i]);
    cr_assert_not(session_verify(&k, NULL, 0, NOW, user));
}

Test(session, truncated)
{
    struct session_key k = key_of('k');
    char v[SESSION_COOKIE_MAX + 1], user[33];
    int n = sign(&k, "coco", NOW + 100, v);
    for (int len = 0; len < n; len++)
        cr_assert_not(session_verify(&k, v, (size_t)len, NOW, user), "len %d", len);
    cr_assert(session_verify(&k, v, (size_t)n, NOW, user));
    /* One extra byte after a valid value. */
    v[n] = '0';
    v[n + 1] = '\0';
    cr_assert_not(verify(&k, v, NOW, user));
}

Test(session, huge_input)
{
    struct session_key k = key_of('k');
    char user[33];
    size_t n = 1 << 20;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memset(big, '1', n);
    cr_assert_not(session_verify(&k, big, n, NOW, user));
    /* A valid prefix padded past SESSION_COOKIE_MAX is refused by length. */
    int m = sign(&k, "coco", NOW + 100, big);
    cr_assert_gt(m, 0);
    cr_assert_not(session_verify(&k, big, SESSION_COOKIE_MAX + 1, NOW, user));
    free(big);
}

Test(session, zero_key_refuses_everything)
{
    struct session_key k = key_of('k'), empty;
    memset(&empty, 0, sizeof empty);
    char v[SESSION_COOKIE_MAX + 1], user[33];
    sign(&k, "coco", NOW + 100, v);
    cr_assert_not(verify(&empty, v, NOW, user));
}

Test(session, random_keys_differ)
{
    struct session_key a, b;
    cr_assert_eq(session_key_random(&a), 0);
    cr_assert_eq(session_key_random(&b), 0);
    cr_assert_eq(a.len, 32);
    cr_assert_neq(memcmp(a.bytes, b.bytes, 32), 0);
    char v[SESSION_COOKIE_MAX + 1], user[33];
    sign(&a, "aa", NOW + 5, v);
    cr_assert(verify(&a, v, NOW, user));
    cr_assert_not(verify(&b, v, NOW, user));
}

/* ---- cookie_find ---- */

static void expect_cookie(const char *hdr, const char *name, const char *want)
{
    size_t len = 99;
    const char *v = cookie_find(hdr, name, &len);
    if (want == NULL) {
        cr_assert_null(v, "found %s in [%s]", name, hdr);
        cr_assert_eq(len, 0);
        return;
    }
    cr_assert_not_null(v, "no %s in [%s]", name, hdr);
    cr_assert_eq(len, strlen(want), "[%s] %s: len %zu", hdr, name, len);
    cr_assert(memcmp(v, want, len) == 0);
}

Test(cookie_find, basic)
{
    expect_cookie("a=1; session=xyz; b=2", "session", "xyz");
    expect_cookie("a=1; session=xyz; b=2", "a", "1");
    expect_cookie("a=1; session=xyz; b=2", "b", "2");
    expect_cookie("session=only", "session", "only");
}

Test(cookie_find, spaces_tolerated)
{
    expect_cookie("  a=1 ;session = xyz ;  b=2", "session", "xyz");
    expect_cookie("a=1;session=xyz;b=2", "session", "xyz");
    expect_cookie("a=1;\tsession=xyz\t", "session", "xyz");
}

Test(cookie_find, exact_name)
{
    expect_cookie("xsession=evil", "session", NULL);
    expect_cookie("xsession=evil; session=good", "session", "good");
    expect_cookie("sessionx=evil; session=good", "session", "good");
    expect_cookie("Session=evil", "session", NULL);
    expect_cookie("a=session=evil", "session", NULL);
}

Test(cookie_find, missing_and_odd)
{
    expect_cookie("", "session", NULL);
    expect_cookie("a=1; b=2", "session", NULL);
    expect_cookie("session", "session", NULL);
    expect_cookie(";;; session=x;;", "session", "x");
    expect_cookie("session=", "session", "");
    expect_cookie("session=\"quoted\"", "session", "quoted");
    expect_cookie("session=1; session=2", "session", "1");
    expect_cookie("a=1", "", NULL);
    cr_assert_null(cookie_find(NULL, "session", NULL));
}

Test(cookie_find, pipe_value_round_trip)
{
    struct session_key k = key_of('k');
    char v[SESSION_COOKIE_MAX + 1], hdr[300], user[33];
    sign(&k, "cc", NOW + 100, v);
    snprintf(hdr, sizeof hdr, "theme=dark; session=%s; lang=en", v);
    size_t len;
    const char *p = cookie_find(hdr, "session", &len);
    cr_assert_not_null(p);
    cr_assert(session_verify(&k, p, len, NOW, user));
    cr_assert_str_eq(user, "cc");
}

/* ---- key files ---- */

static char *write_tmp(const void *data, size_t n)
{
    char *path = strdup("/tmp/c10k-key-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
    return path;
}

static int load(const void *data, size_t n, struct session_key *k, char *err, size_t errlen)
{
    char *path = write_tmp(data, n);
    int r = session_key_load(k, path, err, errlen);
    unlink(path);
    free(path);
    return r;
}

#define K32 "0123456789abcdef0123456789ABCDEF"

Test(session_key, strips_one_lf)
{
    struct session_key k;
    char err[256];
    cr_assert_eq(load(K32 "\n", 33, &k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(k.len, 32);
    cr_assert(memcmp(k.bytes, K32, 32) == 0);
    /* Only one: a second newline is part of the key. */
    cr_assert_eq(load(K32 "\n\n", 34, &k, err, sizeof err), 0);
    cr_assert_eq(k.len, 33);
    cr_assert_eq(k.bytes[32], '\n');
}

Test(session_key, strips_crlf)
{
    struct session_key k;
    char err[256];
    cr_assert_eq(load(K32 "\r\n", 34, &k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(k.len, 32);
    cr_assert(memcmp(k.bytes, K32, 32) == 0);
    /* A lone CR is not a line ending: kept. */
    cr_assert_eq(load(K32 "\r", 33, &k, err, sizeof err), 0);
    cr_assert_eq(k.len, 33);
}

Test(session_key, exactly_32)
{
    struct session_key k;
    char err[256];
    cr_assert_eq(load(K32, 32, &k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(k.len, 32);
}

Test(session_key, too_short)
{
    struct session_key k;
    char err[256] = "";
    cr_assert_eq(load(K32 "\n", 31 /* 31 bytes */, &k, err, sizeof err), -1);
    cr_assert(strstr(err, "31 bytes") != NULL, "%s", err);
    cr_assert(strstr(err, "at least 32") != NULL, "%s", err);
    cr_assert_eq(k.len, 0);
    /* 31 bytes + "\n" is still 31 bytes of key. */
    char buf[32];
    memcpy(buf, K32, 31);
    buf[31] = '\n';
    cr_assert_eq(load(buf, 32, &k, err, sizeof err), -1);
    cr_assert_eq(load("", 0, &k, err, sizeof err), -1);
}

Test(session_key, binary_bytes_kept)
{
    unsigned char raw[40];
    for (int i = 0; i < 40; i++)
        raw[i] = (unsigned char)(i * 7); /* includes NUL */
    struct session_key k;
    char err[256];
    cr_assert_eq(load(raw, sizeof raw, &k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(k.len, 40);
    cr_assert(memcmp(k.bytes, raw, 40) == 0);
}

Test(session_key, too_long)
{
    static char big[SESSION_KEY_MAX + 3];
    memset(big, 'x', sizeof big);
    struct session_key k;
    char err[256] = "";
    cr_assert_eq(load(big, SESSION_KEY_MAX, &k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(k.len, SESSION_KEY_MAX);
    big[SESSION_KEY_MAX] = '\r';
    big[SESSION_KEY_MAX + 1] = '\n';
    cr_assert_eq(load(big, SESSION_KEY_MAX + 2, &k, err, sizeof err), 0, "%s", err);
    cr_assert_eq(k.len, SESSION_KEY_MAX);
    memset(big, 'x', sizeof big);
    cr_assert_eq(load(big, SESSION_KEY_MAX + 1, &k, err, sizeof err), -1);
    cr_assert(strstr(err, "longer") != NULL, "%s", err);
    cr_assert_eq(load(big, sizeof big, &k, err, sizeof err), -1);
}

Test(session_key, missing_file)
{
    struct session_key k;
    char err[256] = "";
    cr_assert_eq(session_key_load(&k, "/nonexistent/c10k-secret", err, sizeof err), -1);
    cr_assert(strstr(err, "/nonexistent/c10k-secret") != NULL, "%s", err);
    cr_assert(strstr(err, "No such file") != NULL, "%s", err);
}

Test(session_key, directory_refused)
{
    struct session_key k;
    char err[256] = "";
    cr_assert_eq(session_key_load(&k, "/tmp", err, sizeof err), -1);
    cr_assert(strstr(err, "/tmp") != NULL, "%s", err);
}
