#include "json.h"

#include <stdbool.h>

/* Bytes that cannot appear raw inside a JSON string literal, plus DEL: JSON
 * allows DEL, but escaping it keeps every event printable in a log or a
 * terminal, and it costs nothing. The U+2028/U+2029 case is three bytes
 * long, so it is handled apart. */
static bool needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c == 0x7f;
}

/* U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR are legal in JSON
 * strings but were line terminators inside JavaScript string literals until
 * ES2019, so JSON pasted into a script would break there. */
static bool is_js_line_separator(const unsigned char *p, size_t left)
{
    return left >= 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9);
}

int json_append_string(struct buf *b, const char *s, size_t n, size_t limit)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t start_len = b->len;

    if (buf_append(b, "\"", 1, limit) < 0)
        return -1;
    /* Copy runs of plain bytes with one append each: chat text is mostly
     * plain, so this is close to a single memcpy. */
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = NULL;
        char ubuf[6];
        size_t esc_len = 2, skip = 1;

        if (needs_escape(p[i])) {
            switch (p[i]) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            default:
                ubuf[0] = '\\';
                ubuf[1] = 'u';
                ubuf[2] = '0';
                ubuf[3] = '0';
                ubuf[4] = hex[p[i] >> 4];
                ubuf[5] = hex[p[i] & 0xf];
                esc = ubuf;
                esc_len = 6;
            }
        } else if (is_js_line_separator(p + i, n - i)) {
            esc = p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
            esc_len = 6;
            skip = 3;
        } else {
            continue;
        }
        if (buf_append(b, p + run, i - run, limit) < 0 || buf_append(b, esc, esc_len, limit) < 0)
            goto fail;
        i += skip - 1;
        run = i + 1;
    }
    if (buf_append(b, p + run, n - run, limit) < 0 || buf_append(b, "\"", 1, limit) < 0)
        goto fail;
    return 0;

fail:
    /* Leave b as it was, like buf_append does, so a caller can fall back
     * (or report the failure) without a half-written literal in its buffer. */
    b->len = start_len;
    if (b->data)
        b->data[b->len] = '\0';
    return -1;
}
