/* libFuzzer target: percent-decoding (url_decode) and form_get.
 *
 * Input: one byte of choices, then the bytes to decode. Checked:
 *  - url_decode agrees with a plain reference decoder written here: the same
 *    bytes, or -1 exactly when the result has a NUL or does not fit outlen;
 *    out is a heap block of exactly outlen bytes (ASan sees any overrun) and
 *    is always NUL-terminated;
 *  - decoding in place (out == src, as the header allows) gives the same;
 *  - round trip: any bytes, percent-encoded here in a way chosen by the
 *    input, decode back to themselves;
 *  - form_get agrees with a reference, for fixed keys and a key from the input.
 */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "urlcode.h"

struct bytes {
    unsigned char *p;
    size_t len;
    bool has_nul;
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The decoding rules, as plainly as possible: the caller frees b.p. */
static struct bytes ref_decode(const unsigned char *s, size_t n, bool plus)
{
    struct bytes b = {malloc(n + 1), 0, false};
    CHECK(b.p);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 3;
        } else {
            if (c == '+' && plus)
                c = ' ';
            i++;
        }
        b.has_nul |= c == 0;
        b.p[b.len++] = c;
    }
    return b;
}

/* url_decode against the reference, with an exact-size output block. */
static void check_decode(const unsigned char *s, size_t n, size_t outlen, bool plus)
{
    struct bytes want = ref_decode(s, n, plus);
    char *out = malloc(outlen ? outlen : 1);
    CHECK(out);
    long got = url_decode((const char *)s, n, out, outlen, plus);
    if (want.has_nul || want.len + 1 > outlen) {
        CHECK(got == -1);
        CHECK(outlen == 0 || out[0] == '\0');
    } else {
        CHECK(got == (long)want.len);
        CHECK(memcmp(out, want.p, want.len) == 0 && out[want.len] == '\0');
    }
    free(out);

    /* In place: the source buffer is the output. */
    char *io = malloc(n + 1);
    CHECK(io);
    if (n)
        memcpy(io, s, n);
    got = url_decode(io, n, io, n + 1, plus);
    if (want.has_nul) {
        CHECK(got == -1);
    } else {
        CHECK(got == (long)want.len);
        CHECK(memcmp(io, want.p, want.len) == 0 && io[want.len] == '\0');
    }
    free(io);
    free(want.p);
}

/* Encode raw bytes the way some client might (upper or lower hex, '+' or
 * %20 for space, unreserved bytes literal or not), then decode. */
static void check_round_trip(const unsigned char *s, size_t n, uint64_t seed)
{
    static const char hex[2][17] = {"0123456789ABCDEF", "0123456789abcdef"};
    char *enc = malloc(3 * n + 1);
    CHECK(enc);
    size_t e = 0;
    bool nul = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        uint64_t r = fuzz_rand(&seed);
        nul |= c == 0;
        bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved && (r & 1)) {
            enc[e++] = (char)c;
        } else if (c == ' ' && (r & 2)) {
            enc[e++] = '+';
        } else {
            enc[e++] = '%';
            enc[e++] = hex[(r >> 2) & 1][c >> 4];
            enc[e++] = hex[(r >> 3) & 1][c & 15];
        }
    }
    char *out = malloc(n + 1);
    CHECK(out);
    long got = url_decode(enc, e, out, n + 1, true);
    if (nul) {
        CHECK(got == -1);
    } else {
        CHECK(got == (long)n);
        CHECK(memcmp(out, s, n) == 0);
    }
    free(out);
    free(enc);
}

/* form_get by the WHATWG rules, plainly: first pair whose decoded name is
 * exactly key (a name decoding to a NUL never matches). */
static long ref_form_get(const unsigned char *s, size_t n, const char *key, struct bytes *val)
{
    size_t keylen = strlen(key), pos = 0;
    while (pos < n) {
        size_t end = pos;
        while (end < n && s[end] != '&')
            end++;
        size_t eq = pos;
        while (eq < end && s[eq] != '=')
            eq++;
        if (end > pos) {
            struct bytes k = ref_decode(s + pos, eq - pos, true);
            bool match = !k.has_nul && k.len == keylen && memcmp(k.p, key, keylen) == 0;
            free(k.p);
            if (match) {
                size_t v = eq < end ? eq + 1 : end;
                *val = ref_decode(s + v, end - v, true);
                return 0;
            }
        }
        pos = end + 1;
    }
    return -1;
}

static void check_form_get(const unsigned char *s, size_t n, const char *key, size_t outlen)
{
    struct bytes val = {0};
    bool present = ref_form_get(s, n, key, &val) == 0;
    char *out = malloc(outlen ? outlen : 1);
    CHECK(out);
    long got = form_get((const char *)s, n, key, out, outlen);
    if (!present)
        CHECK(got == -1);
    else if (val.has_nul || val.len + 1 > outlen)
        CHECK(got == -2);
    else
        CHECK(got == (long)val.len && memcmp(out, val.p, val.len) == 0 && out[val.len] == '\0');
    free(out);
    free(val.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t outlens[8] = {0, 1, 2, 3, 8, 16, 64, 4096};
    uint8_t choice = data[0];
    const unsigned char *s = data + 1;
    size_t n = size - 1;
    /* A copy of exactly n bytes, so that a read past the end is caught. */
    unsigned char *in = malloc(n ? n : 1);
    CHECK(in);
    if (n)
        memcpy(in, s, n);

    size_t outlen = choice & 8 ? n + 1 : outlens[choice & 7];
    check_decode(in, n, outlen, !(choice & 16));
    check_decode(in, n, outlens[(choice >> 5) & 7], true);
    check_round_trip(in, n, choice);

    static const char *const keys[] = {"username", "password", "ms", "n", "wd", "a", ""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        check_form_get(in, n, keys[i], outlen);
    /* The first pair's own name (when it is a C string), so matches happen. */
    size_t end = 0;
    while (end < n && in[end] != '&' && in[end] != '=')
        end++;
    struct bytes k = ref_decode(in, end, true);
    if (!k.has_nul) {
        char *key = malloc(k.len + 1);
        CHECK(key);
        memcpy(key, k.p, k.len);
        key[k.len] = '\0';
        check_form_get(in, n, key, outlen);
        check_form_get(in, n, key, n + 1);
        free(key);
    }
    free(k.p);
    free(in);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
