#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define NOLIMIT (1u << 20)

/* The literal json_append_string makes of s[0..n), as a C string to free. */
static char *lit(const char *s, size_t n)
{
    struct buf b = {0};
    cr_assert_eq(json_append_string(&b, s, n, NOLIMIT), 0);
    cr_assert_eq(strlen(b.data), b.len, "a NUL byte leaked through unescaped");
    return b.data;
}

static void expect(const char *s, size_t n, const char *want)
{
    char *got = lit(s, n);
    cr_assert_str_eq(got, want);
    free(got);
}

#define EXPECT(s, want) expect((s), sizeof(s) - 1, (want))

Test(json, empty_string)
{
    EXPECT("", "\"\"");
}

Test(json, quotes_and_backslash)
{
    EXPECT("say \"hi\"", "\"say \\\"hi\\\"\"");
    EXPECT("C:\\dir\\", "\"C:\\\\dir\\\\\"");
    EXPECT("\\\"", "\"\\\\\\\"\"");
    /* '/' needs no escape in JSON and is left alone */
    EXPECT("a/b", "\"a/b\"");
}

Test(json, every_control_character)
{
    for (unsigned c = 0; c < 0x20; c++) {
        char in[3] = {'<', (char)c, '>'};
        char want[16];
        const char *named = NULL;
        switch (c) {
        case '\b': named = "\\b"; break;
        case '\f': named = "\\f"; break;
        case '\n': named = "\\n"; break;
        case '\r': named = "\\r"; break;
        case '\t': named = "\\t"; break;
        }
        if (named)
            snprintf(want, sizeof want, "\"<%s>\"", named);
        else
            snprintf(want, sizeof want, "\"<\\u%04x>\"", c);
        char *got = lit(in, sizeof in);
        cr_assert_str_eq(got, want, "control byte 0x%02x", c);
        free(got);
    }
}

Test(json, nul_byte_inside_counted_string)
{
    EXPECT("a\0b", "\"a\\u0000b\"");
}

Test(json, del_is_escaped)
{
    EXPECT("\x7f", "\"\\u007f\"");
}

Test(json, non_ascii_utf8_passes_through)
{
    /* 2-, 3- and 4-byte sequences: é, ✓, 😀, and a CJK run */
    EXPECT("h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe4\xbd\xa0\xe5\xa5\xbd",
           "\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe4\xbd\xa0\xe5\xa5\xbd\"");
}

Test(json, line_and_paragraph_separators)
{
    EXPECT("a\xe2\x80\xa8" "b\xe2\x80\xa9" "c", "\"a\\u2028b\\u2029c\"");
    EXPECT("\xe2\x80\xa8\xe2\x80\xa8", "\"\\u2028\\u2028\"");
    /* their neighbours U+2027 and U+202A are ordinary characters */
    EXPECT("\xe2\x80\xa7\xe2\x80\xaa", "\"\xe2\x80\xa7\xe2\x80\xaa\"");
}

Test(json, separator_prefix_at_end_is_not_overread)
{
    /* Not valid UTF-8, but the escaper must stop at n, not look past it. */
    const char s[] = "x\xe2\x80\xa8";
    expect(s, 3, "\"x\xe2\x80\"");
}

Test(json, appends_after_existing_content)
{
    struct buf b = {0};
    cr_assert_eq(buf_append(&b, "{\"k\":", 5, NOLIMIT), 0);
    cr_assert_eq(json_append_string(&b, "v\n", 2, NOLIMIT), 0);
    cr_assert_str_eq(b.data, "{\"k\":\"v\\n\"");
    buf_free(&b);
}

Test(json, limit_exact_fit_and_overflow_leave_buffer_unchanged)
{
    /* "ab\n" becomes "ab\n" in quotes: 1 + 2 + 2 + 1 = 6 bytes */
    struct buf b = {0};
    cr_assert_eq(buf_append(&b, "xy", 2, 100), 0);
    cr_assert_eq(json_append_string(&b, "ab\n", 3, 2 + 6), 0);
    cr_assert_str_eq(b.data, "xy\"ab\\n\"");

    /* one byte short, failing at the closing quote, inside an escape, in a
     * plain run and at the opening quote: each time b is as it was */
    size_t limits[] = {2 + 6 + 5, 2 + 6 + 4, 2 + 6 + 2, 2 + 6};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        cr_assert_eq(json_append_string(&b, "ab\n", 3, limits[i]), -1, "limit %zu", limits[i]);
        cr_assert_eq(b.len, 8);
        cr_assert_str_eq(b.data, "xy\"ab\\n\"");
    }
    buf_free(&b);
}

Test(json, limit_counts_the_escaped_size)
{
    /* 10 control bytes are 60 escaped bytes + 2 quotes */
    char s[10];
    memset(s, 1, sizeof s);
    struct buf b = {0};
    cr_assert_eq(json_append_string(&b, s, sizeof s, 61), -1);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(json_append_string(&b, s, sizeof s, 62), 0);
    cr_assert_eq(b.len, 62);
    buf_free(&b);
}
