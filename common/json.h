/* JSON string escaping: the only JSON the server writes is its own chat
 * events and /stats, so a writer of strings is all the core needs. */
#ifndef C10K_JSON_H
#define C10K_JSON_H

#include <stddef.h>

#include "buf.h"

/* Append "s" as a JSON string literal, quotes included: ", \ and control
 * characters are escaped (\n \r \t \b \f, others \u00XX), and so are U+2028
 * and U+2029 so the text is also safe inside a <script>. Input must be valid
 * UTF-8 (the codec checks it before anything reaches the room); other bytes
 * pass through unchanged. Returns 0 or -1 when `limit` would be exceeded. */
int json_append_string(struct buf *b, const char *s, size_t n, size_t limit);

#endif
