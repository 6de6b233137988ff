/* A small JSON reader for checking what the server sends: chat events and
 * /stats. Strict enough to catch a malformed event (bad escapes, trailing
 * garbage, invalid \u surrogates), small enough to read in one sitting. */
#ifndef C10K_INTEG_JSONV_H
#define C10K_INTEG_JSONV_H

#include <stdbool.h>
#include <stddef.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
    enum jtype t;
    bool b;
    double num;
    bool is_int;       /* the number was written as an integer */
    long long i;       /* its value when is_int */
    char *s;           /* J_STR: decoded UTF-8, NUL-terminated */
    size_t slen;       /* J_STR: decoded length (may contain NUL) */
    size_t n;          /* J_ARR/J_OBJ: number of items */
    struct jv **items; /* J_ARR/J_OBJ */
    char **keys;       /* J_OBJ */
};

/* NULL if the text is not exactly one JSON value (whitespace around it is fine). */
struct jv *jv_parse(const char *text, size_t len);
void jv_free(struct jv *v);

/* Object member, or NULL (also when v is not an object). */
const struct jv *jv_get(const struct jv *v, const char *key);
/* Member as a string / an integer; NULL / false when absent or another type. */
const char *jv_str(const struct jv *v, const char *key);
bool jv_int(const struct jv *v, const char *key, long long *out);

#endif
