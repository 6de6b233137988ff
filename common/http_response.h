/* Writing HTTP responses: status line, the headers every response carries
 * (Date, Server, Content-Length, Connection), then the body — as one rbuf,
 * so a response is one write. */
#ifndef C10K_HTTP_RESPONSE_H
#define C10K_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct response {
    int status;
    const char *content_type; /* NULL: no Content-Type (and no body) */
    const char *headers;      /* extra lines, each ending "\r\n", or NULL */
    const char *body;
    size_t body_len;
};

/* How the connection continues after this response. */
enum conn_mode {
    MODE_CLOSE,      /* "Connection: close", then the server closes */
    MODE_KEEP,       /* HTTP/1.1 keep-alive: nothing to say */
    MODE_KEEP_ECHO,  /* HTTP/1.0 keep-alive: "Connection: keep-alive" */
    MODE_UPGRADE,    /* 101: the extra headers carry Connection/Upgrade */
};

/* Build the response. head_only leaves the body out but keeps its length
 * (HEAD). Returns NULL on ENOMEM. */
struct rbuf *http_response_build(const struct response *r, const char *model,
                                 enum conn_mode mode, bool head_only);

const char *http_status_text(int status);

/* RFC 9110 IMF-fixdate of now, cached for the second (per thread). */
const char *http_date_now(void);

/* Escape text for HTML element content and attribute values. */
int html_escape_append(struct buf *b, const char *s, size_t n, size_t limit);

#endif
