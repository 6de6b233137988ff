#include <criterion/criterion.h>
#include <string.h>

#include "urlcode.h"

static long dec(const char *s, char *out, size_t outlen, bool plus)
{
    return url_decode(s, strlen(s), out, outlen, plus);
}

Test(url_decode, percent_hex_both_cases)
{
    char out[64];
    cr_assert_eq(dec("a%20b%2fc%2Fd", out, sizeof out, true), 7);
    cr_assert_str_eq(out, "a b/c/d");
}

Test(url_decode, plus_is_space_only_when_asked)
{
    char out[64];
    cr_assert_eq(dec("a+b%2B", out, sizeof out, true), 4);
    cr_assert_str_eq(out, "a b+");
    cr_assert_eq(dec("a+b%2B", out, sizeof out, false), 4);
    cr_assert_str_eq(out, "a+b+");
}

Test(url_decode, invalid_percent_kept_literally)
{
    char out[64];
    cr_assert_eq(dec("100%", out, sizeof out, true), 4);
    cr_assert_str_eq(out, "100%");
    cr_assert_eq(dec("%zz%4", out, sizeof out, true), 5);
    cr_assert_str_eq(out, "%zz%4");
    cr_assert_eq(dec("%%41", out, sizeof out, true), 2);
    cr_assert_str_eq(out, "%A");
    cr_assert_eq(dec("%g1", out, sizeof out, true), 3);
    cr_assert_str_eq(out, "%g1");
}

Test(url_decode, nul_refused)
{
    char out[64];
    cr_assert_eq(dec("ab%00cd", out, sizeof out, true), -1);
    cr_assert_str_eq(out, "");
    /* A raw NUL inside the counted input is just as bad as an encoded one. */
    cr_assert_eq(url_decode("a\0b", 3, out, sizeof out, true), -1);
}

Test(url_decode, utf8_bytes)
{
    char out[64];
    cr_assert_eq(dec("%E4%BD%A0%e5%a5%bd", out, sizeof out, true), 6);
    cr_assert_str_eq(out, "\xe4\xbd\xa0\xe5\xa5\xbd");
    cr_assert_eq(dec("%FF", out, sizeof out, true), 1);
    cr_assert_eq((unsigned char)out[0], 0xff);
}

Test(url_decode, overflow)
{
    char out[4];
    cr_assert_eq(dec("abc", out, sizeof out, true), 3); /* exactly fits with NUL */
    cr_assert_str_eq(out, "abc");
    cr_assert_eq(dec("abcd", out, sizeof out, true), -1);
    cr_assert_eq(dec("%41%42%43", out, sizeof out, true), 3);
    cr_assert_eq(dec("%41%42%43%44", out, sizeof out, true), -1);
    cr_assert_eq(dec("", out, 0, true), -1);
    cr_assert_eq(dec("", out, 1, true), 0);
    cr_assert_str_eq(out, "");
}

Test(url_decode, counted_not_nul_terminated)
{
    char out[16];
    cr_assert_eq(url_decode("abc%41zzz", 6, out, sizeof out, true), 4);
    cr_assert_str_eq(out, "abcA");
    /* "%4" cut by n is not a full escape. */
    cr_assert_eq(url_decode("%41", 2, out, sizeof out, true), 2);
    cr_assert_str_eq(out, "%4");
}

static long fg(const char *s, const char *key, char *out, size_t outlen)
{
    return form_get(s, strlen(s), key, out, outlen);
}

Test(form_get, basic_and_first_match_wins)
{
    char out[64];
    const char *s = "username=coco&password=12%2034&username=evil";
    cr_assert_eq(fg(s, "username", out, sizeof out), 4);
    cr_assert_str_eq(out, "coco");
    cr_assert_eq(fg(s, "password", out, sizeof out), 5);
    cr_assert_str_eq(out, "12 34");
}

Test(form_get, missing_key)
{
    char out[64];
    cr_assert_eq(fg("a=1&b=2", "c", out, sizeof out), -1);
    cr_assert_eq(fg("", "a", out, sizeof out), -1);
    /* A key that is a prefix or extension of another does not match. */
    cr_assert_eq(fg("ab=1&xa=2", "a", out, sizeof out), -1);
    cr_assert_eq(fg("a=1", "ab", out, sizeof out), -1);
}

Test(form_get, empty_value)
{
    char out[64] = "junk";
    cr_assert_eq(fg("a=&b=2", "a", out, sizeof out), 0);
    cr_assert_str_eq(out, "");
    strcpy(out, "junk");
    cr_assert_eq(fg("flag&b=2", "flag", out, sizeof out), 0);
    cr_assert_str_eq(out, "");
}

Test(form_get, key_needs_decoding)
{
    char out[64];
    cr_assert_eq(fg("us%65r+name=x&my%20key=y", "user name", out, sizeof out), 1);
    cr_assert_str_eq(out, "x");
    cr_assert_eq(fg("us%65r+name=x&my%20key=y", "my key", out, sizeof out), 1);
    cr_assert_str_eq(out, "y");
    /* An encoded NUL in a key matches nothing. */
    cr_assert_eq(fg("a%00=1", "a", out, sizeof out), -1);
}

Test(form_get, empty_pairs_skipped)
{
    char out[64];
    cr_assert_eq(fg("a=1&&b=2", "b", out, sizeof out), 1);
    cr_assert_str_eq(out, "2");
    cr_assert_eq(fg("&&a=1&", "a", out, sizeof out), 1);
    cr_assert_str_eq(out, "1");
}

Test(form_get, value_with_equals_inside)
{
    char out[64];
    cr_assert_eq(fg("t=a=b%3Dc&u=1", "t", out, sizeof out), 5);
    cr_assert_str_eq(out, "a=b=c");
}

Test(form_get, plus_in_value_is_space)
{
    char out[64];
    cr_assert_eq(fg("wd=hello+world%2B", "wd", out, sizeof out), 12);
    cr_assert_str_eq(out, "hello world+");
}

Test(form_get, undecodable_or_too_long)
{
    char out[4];
    cr_assert_eq(fg("a=abcd", "a", out, sizeof out), -2);
    cr_assert_eq(fg("a=%00", "a", out, sizeof out), -2);
    cr_assert_eq(fg("a=abc", "a", out, sizeof out), 3);
    cr_assert_eq(fg("a=1", "a", out, 0), -2);
}

Test(form_get, counted_input)
{
    char out[8];
    /* The pair past n is not seen. */
    cr_assert_eq(form_get("a=1&b=2", 3, "b", out, sizeof out), -1);
    cr_assert_eq(form_get("a=12345", 4, "a", out, sizeof out), 2);
    cr_assert_str_eq(out, "12");
}
