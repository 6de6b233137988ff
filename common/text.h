/* Small text helpers the parsers of the core share. */
#ifndef C10K_TEXT_H
#define C10K_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* The value of one hex digit, or -1. */
int hex_digit(unsigned char c);

/* Strict decimal: 1..max_digits digits, no sign, no spaces, value <= max. */
bool parse_decimal(const char *s, size_t n, size_t max_digits, unsigned long max,
                   unsigned long *out);

/* Empty, or only ASCII whitespace (space, \t, \n, \r, \f, \v): a chat
 * message that is ignored. */
bool text_is_blank(const char *s, size_t n);

/* printf into a caller's error buffer (NULL or 0 length: nothing). */
void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
