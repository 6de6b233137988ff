/* libFuzzer target: session cookies (session_verify, session_sign,
 * cookie_find).
 *
 * Input: one byte of choices, then bytes used three ways. Checked:
 *  - the input itself as a cookie value: if session_verify accepts it, it
 *    is byte for byte what session_sign makes for that user and expiry
 *    (one spelling per MAC), and another key refuses it;
 *  - a cookie signed here for a name and expiry taken from the input is
 *    accepted before its expiry (with that name) and refused from then on,
 *    and under another key; then mutated by the input (flip, insert, delete,
 *    truncate, overwrite bytes): accepted only if the mutation changed nothing;
 *  - cookie_find: a result lies inside the header and holds no ';', and a
 *    session cookie placed among junk pairs is found exactly.
 */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "session.h"
#include "users.h"

static struct session_key key, other;

#define NOW 1700000000LL
#define EXPIRY_MAX 99999999999LL

static const char name_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";

/* A heap copy of exactly n bytes: a read past the value is an ASan error. */
static bool verify(const struct session_key *k, const char *v, size_t n, long long now,
                   char user[33])
{
    char *copy = malloc(n ? n : 1);
    CHECK(copy);
    if (n)
        memcpy(copy, v, n);
    memset(user, 0x7f, 33);
    bool ok = session_verify(k, copy, n, (time_t)now, user);
    free(copy);
    if (ok)
        CHECK(user_name_valid(user, strnlen(user, 33)) && strlen(user) <= 32);
    return ok;
}

/* Acceptance of arbitrary bytes implies they are exactly a signed cookie. */
static void check_raw(const uint8_t *s, size_t n)
{
    char user[33];
    if (!verify(&key, (const char *)s, n, NOW, user))
        return;
    CHECK(n > 2 && s[0] == '1' && s[1] == '|');
    long long exp = 0;
    for (size_t i = 2; i < n && s[i] != '|'; i++)
        exp = exp * 10 + (s[i] - '0');
    char again[SESSION_COOKIE_MAX];
    int len = session_sign(&key, user, (time_t)exp, again, sizeof again);
    CHECK(len > 0 && (size_t)len == n && memcmp(again, s, n) == 0);
    CHECK(!verify(&other, (const char *)s, n, NOW, user));
}

static void check_signed_and_mutated(const uint8_t *s, size_t n, uint8_t choice)
{
    /* Name: 1..32 valid characters; expiry: near NOW or anywhere. */
    char name[33];
    size_t nlen = n ? 1 + s[0] % 32 : 1;
    for (size_t i = 0; i < nlen; i++)
        name[i] = name_chars[i + 1 < n ? s[i + 1] % (sizeof name_chars - 1) : 0];
    name[nlen] = '\0';
    uint64_t r = 0;
    for (size_t i = 0; i < 8; i++)
        r = r << 8 | (nlen + 1 + i < n ? s[nlen + 1 + i] : 0);
    long long exp = choice & 1 ? NOW - 2 + (long long)(r % 5)
                               : (long long)(r % (uint64_t)(EXPIRY_MAX + 1));

    char orig[SESSION_COOKIE_MAX], user[33];
    int olen = session_sign(&key, name, (time_t)exp, orig, sizeof orig);
    CHECK(olen > 0 && (size_t)olen < sizeof orig);
    CHECK(verify(&key, orig, (size_t)olen, NOW, user) == (NOW < exp));
    if (NOW < exp)
        CHECK(strcmp(user, name) == 0);
    CHECK(!verify(&key, orig, (size_t)olen, exp, user));
    CHECK(!verify(&other, orig, (size_t)olen, NOW, user));
    if (!(NOW < exp))
        return;

    /* Mutations: 3 input bytes each, after those spent on name and expiry. */
    char mut[SESSION_COOKIE_MAX + 64];
    size_t mlen = (size_t)olen;
    memcpy(mut, orig, mlen);
    for (size_t i = nlen + 9; i + 2 < n; i += 3) {
        size_t at = mlen ? s[i + 1] % (mlen + 1) : 0;
        uint8_t b = s[i + 2];
        switch (s[i] % 5) {
        case 0: /* flip bits */
            if (at < mlen)
                mut[at] ^= (char)(b ? b : 1);
            break;
        case 1: /* insert */
            if (mlen < sizeof mut) {
                memmove(mut + at + 1, mut + at, mlen - at);
                mut[at] = (char)b;
                mlen++;
            }
            break;
        case 2: /* delete */
            if (at < mlen) {
                memmove(mut + at, mut + at + 1, mlen - at - 1);
                mlen--;
            }
            break;
        case 3: /* truncate */
            mlen = at;
            break;
        default: /* overwrite */
            if (at < mlen)
                mut[at] = (char)b;
            break;
        }
    }
    if (verify(&key, mut, mlen, NOW, user))
        CHECK(mlen == (size_t)olen && memcmp(mut, orig, mlen) == 0);
}

static void check_find(const uint8_t *s, size_t n, uint8_t choice)
{
    /* Arbitrary text (up to a NUL) as a whole Cookie header. */
    char *h = malloc(n + 1);
    CHECK(h);
    memcpy(h, s, n);
    h[n] = '\0';
    size_t hl = strlen(h), len = 12345;
    const char *v = cookie_find(h, "session", &len);
    if (v) {
        CHECK(v >= h && v + len <= h + hl);
        CHECK(memchr(v, ';', len) == NULL);
    } else {
        CHECK(len == 0);
    }
    free(h);

    /* A real cookie after junk pairs "x=<junk>" (no ';' or NUL), with
     * optional spaces and quotes around it. */
    char orig[SESSION_COOKIE_MAX];
    int olen = session_sign(&key, "ann", (time_t)(NOW + 60), orig, sizeof orig);
    CHECK(olen > 0);
    char *hdr = malloc(n + (n / 16 + 1) * 32 + 2 * (size_t)olen + 64);
    CHECK(hdr);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 16 == 0)
            k += (size_t)sprintf(hdr + k, "%sx%zu=", i ? "; " : "", i);
        hdr[k++] = s[i] == ';' || s[i] == 0 ? '_' : (char)s[i];
    }
    const char *sp = choice & 2 ? " \t" : "";
    const char *q = choice & 4 ? "\"" : "";
    k += (size_t)sprintf(hdr + k, "%ssession%s=%s%s%s%s%s%s", n ? "; " : "", sp, sp, q, orig, q,
                         sp, choice & 8 ? "; session=second" : "");
    v = cookie_find(hdr, "session", &len);
    CHECK(v && len == (size_t)olen && memcmp(v, orig, len) == 0);
    char user[33];
    CHECK(verify(&key, v, len, NOW, user) && strcmp(user, "ann") == 0);
    free(hdr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    check_raw(data + 1, size - 1);
    check_signed_and_mutated(data + 1, size - 1, data[0]);
    check_find(data + 1, size - 1, data[0]);
    /* The raw bytes also as a value past the first byte (they usually
     * start with the choice byte). */
    check_raw(data, size);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Fixed keys: a crash must replay. */
    for (size_t i = 0; i < SESSION_KEY_MIN; i++) {
        key.bytes[i] = (unsigned char)(0x5a ^ i);
        other.bytes[i] = (unsigned char)(0x5a ^ i ^ (i == 7));
    }
    key.len = other.len = SESSION_KEY_MIN;
    return 0;
}
