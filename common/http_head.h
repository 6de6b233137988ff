/* The request head (request line and header fields) checked against RFC 9112's
 * grammar before http-parser sees a byte of it.
 *
 * Debian builds http-parser with HTTP_PARSER_STRICT=0, which turns off the
 * checks a request smuggler would probe: any four letters starting with H pass
 * as "HTTP", a request line without a version is read as HTTP/0.9, spaces run
 * together, a CR followed by anything counts as a line end, control bytes pass
 * as the first byte of a field value, and obs-fold is folded. Rather than
 * patch each leniency where the parser shows it (it mostly does not: the line
 * ends and the version text reach no callback), the connection holds the head
 * until this scanner has seen all of it and found it well formed, and only
 * then hands it to the parser. Holding costs nothing extra: the head is bounded
 * by HTTP_MAX_HEAD, and was already held while the method was checked.
 *
 * What is accepted, and nothing else:
 *   request-line = method SP request-target SP HTTP-version CRLF
 *   method       = token, one of RFC 9110's (else 501, whatever follows)
 *   request-target = 1*VCHAR (%x21-7E)
 *   HTTP-version = "HTTP/" DIGIT "." DIGIT   (1.0 and 1.1; another 505)
 *   field-line   = token ":" *(SP / HTAB / VCHAR / obs-text) CRLF
 *   the head ends with an empty line (CRLF).
 * Every line ends in CRLF: a bare LF (RFC 9112 2.2 lets a recipient accept it,
 * and a front proxy may not) and a bare CR (which 2.2 says to reject) are 400,
 * as is a line starting with whitespace (obs-fold, which 5.2 lets a server
 * reject, or whitespace before the first field, 2.2).
 *
 * Each verdict depends only on the bytes up to the one that decides it, so the
 * answer is the same however the head is split into reads.
 */
#ifndef C10K_HTTP_HEAD_H
#define C10K_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEAD_NEED_MORE 0 /* well formed so far: call again with more bytes */
#define HEAD_DONE 1      /* complete and well formed: s->pos bytes long */
/* Any other result is the HTTP status to answer with: 400, 431, 501 or 505. */

struct head_scan {
    uint16_t pos;  /* bytes of the head examined so far */
    uint8_t state; /* enum in http_head.c */
    uint8_t vpos;  /* characters of the version read */
    uint8_t major, minor;
};

/* p[0..n) is the head so far, from the first byte of the request line (the
 * caller drops blank lines before it): the same bytes each call, with more at
 * the end. Only the bytes from s->pos on are examined, so a head that arrives
 * one byte per read is scanned once. Start with a zeroed struct. */
int head_scan(struct head_scan *s, const char *p, size_t n);

/* The trailer section of a chunked body has the same grammar as the header
 * fields, and the same limit: start a scanner there, then give it the
 * trailer one byte at a time (a streaming use: the bytes need not be held).
 * head_scan_byte returns what head_scan does. */
void head_scan_trailers(struct head_scan *s);
int head_scan_byte(struct head_scan *s, unsigned char c);

/* RFC 9110 5.6.2 tchar: the characters of a token (methods, field names). */
bool http_is_tchar(unsigned char c);

#endif
