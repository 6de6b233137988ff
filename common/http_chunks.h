/* A chunked request body's framing checked before http-parser sees it.
 *
 * Non-strict http-parser (see http_head.h) takes any byte after a chunk-size
 * line's CR as its LF and any two bytes after a chunk's data as its CRLF, and
 * lets control bytes and bare LFs into chunk extensions: "5\r\nhelloXY0\r\n\r\n"
 * is a complete body to it and malformed to a strict proxy, which is the
 * disagreement request smuggling needs. The connection runs this scanner over
 * each piece of a chunked body just before the parser, in step with it:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ext] CRLF chunk-data CRLF
 *   chunk-size   = 1*HEXDIG; ext = (";" / SP) *(VCHAR / SP / HTAB / obs-text)
 *   trailer-section: field lines as in the head (http_head.h)
 *
 * It also counts the data and answers 413 at the byte that takes it past
 * HTTP_MAX_BODY, as the parser's on_body would a little later, so that the
 * answer does not depend on how the body was split into reads.
 */
#ifndef C10K_HTTP_CHUNKS_H
#define C10K_HTTP_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "http_head.h"

#define CHUNKS_MORE 0 /* every byte given was examined and fits: give more */
#define CHUNKS_DONE 1 /* the body ends inside this piece: *end bytes of it */
/* Any other result is the status to answer with: 400, 413 or 431. */

struct chunk_scan {
    uint8_t state;
    uint32_t size;            /* of the chunk being read, at most HTTP_MAX_BODY */
    uint32_t left;            /* its data bytes still to come */
    uint32_t total;           /* data bytes so far */
    struct head_scan trailer; /* the trailer section */
};

/* p[0..n) is the next piece of the body (bytes not given before). Start with
 * a zeroed struct. */
int chunks_scan(struct chunk_scan *s, const char *p, size_t n, size_t *end);

#endif
