/* One HTTP request as the core sees it, filled incrementally by http-parser.
 *
 * A request exists only while it is being read and answered: between
 * requests a keep-alive connection holds no request memory at all. The head
 * (request line and headers, at most HTTP_MAX_HEAD bytes — http-parser
 * enforces the limit) is copied into one inline arena, because the parser's
 * callbacks hand out pointers that die when the read buffer is reused. Only
 * the headers the routes need are kept; the rest are parsed and dropped.
 */
#ifndef C10K_HTTP_REQUEST_H
#define C10K_HTTP_REQUEST_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http_chunks.h"
#include "http_head.h"

#define HTTP_MAX_HEAD 8192        /* request line + headers: beyond, 431 */
#define HTTP_MAX_BODY (64 * 1024) /* beyond, 413 */

enum http_header {
    HDR_HOST,
    HDR_ORIGIN,
    HDR_COOKIE,
    HDR_UPGRADE,
    HDR_WS_KEY,
    HDR_WS_VERSION,
    HDR_CONTENT_TYPE,
    HDR_COUNT
};

struct http_str {
    uint16_t off, len; /* into http_req.arena; len 0 = absent or empty */
};

struct http_req {
    enum http_method method;
    uint8_t major, minor;
    bool keep_alive;    /* http_should_keep_alive: version default + Connection */
    bool upgrade;       /* Upgrade + Connection: upgrade were both present */
    bool head_done, complete, url_done;
    bool head_checked;  /* http_head.h found the head well formed */
    bool chunked;       /* Transfer-Encoding: chunked, known once head_done */
    uint16_t head_fed;  /* bytes of the checked head given to the parser */
    struct head_scan scan;
    struct chunk_scan chunks; /* the chunked body's framing, ahead of the parser */
    int error;          /* a status decided while parsing (400, 413), or 0 */
    uint64_t head_started_ms, head_done_ms;
    struct http_str url, path, query;
    struct http_str hdr[HDR_COUNT];
    bool seen[HDR_COUNT];
    struct buf body;    /* at most HTTP_MAX_BODY */
    /* header being parsed */
    int cur;            /* enum http_header, or -1 for a header we drop */
    bool in_value;
    uint16_t field_off; /* where the current field name starts in the arena */
    uint16_t used;
    char arena[HTTP_MAX_HEAD + 256];
};

/* The callbacks that fill a struct http_req from parser->data. */
extern const http_parser_settings http_req_settings;

/* Call once per process before parsing: the head limit in Debian's shared
 * http-parser is a run-time, process-wide setting. */
void http_req_global_init(void);

struct http_req *http_req_new(uint64_t now_ms);
void http_req_free(struct http_req *r);

/* NUL-terminated view of a stored string ("" when absent). */
static inline const char *http_str(const struct http_req *r, struct http_str s)
{
    return s.len ? r->arena + s.off : "";
}
static inline const char *http_header(const struct http_req *r, enum http_header h)
{
    return http_str(r, r->hdr[h]);
}

/* True if the comma-separated header value contains `token` (ASCII case-
 * insensitive), e.g. "keep-alive, Upgrade" contains "upgrade". */
bool http_has_token(const char *value, const char *token);

#endif
