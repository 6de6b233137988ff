#include "jsonv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct parser {
    const char *p, *end;
    int depth;
};

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static struct jv *jv_new(enum jtype t)
{
    struct jv *v = calloc(1, sizeof *v);
    if (v)
        v->t = t;
    return v;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes a string literal at ps->p (which points at the opening quote). */
static char *parse_string(struct parser *ps, size_t *len_out)
{
    if (ps->p >= ps->end || *ps->p != '"')
        return NULL;
    ps->p++;
    /* Decoded text is never longer than the literal. */
    char *out = malloc((size_t)(ps->end - ps->p) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"') {
            out[n] = '\0';
            *len_out = n;
            return out;
        }
        if (c < 0x20)
            break; /* raw control characters are not allowed in JSON */
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (ps->p >= ps->end)
            break;
        char e = *ps->p++;
        switch (e) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (ps->end - ps->p < 4 || hex4(ps->p, &cp) < 0)
                goto fail;
            ps->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                    hex4(ps->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                    goto fail;
                ps->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                goto fail;
            }
            n += put_utf8(out + n, cp);
            break;
        }
        default:
            goto fail;
        }
    }
fail:
    free(out);
    return NULL;
}

static struct jv *parse_value(struct parser *ps);

static int add_item(struct jv *v, struct jv *item, char *key)
{
    struct jv **items = realloc(v->items, (v->n + 1) * sizeof *items);
    if (!items)
        return -1;
    v->items = items;
    if (v->t == J_OBJ) {
        char **keys = realloc(v->keys, (v->n + 1) * sizeof *keys);
        if (!keys)
            return -1;
        v->keys = keys;
        v->keys[v->n] = key;
    }
    v->items[v->n++] = item;
    return 0;
}

static struct jv *parse_container(struct parser *ps, bool is_obj)
{
    struct jv *v = jv_new(is_obj ? J_OBJ : J_ARR);
    if (!v || ++ps->depth > 64)
        goto fail;
    ps->p++; /* [ or { */
    skip_ws(ps);
    char close = is_obj ? '}' : ']';
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(ps);
        if (is_obj) {
            size_t klen;
            key = parse_string(ps, &klen);
            if (!key)
                goto fail;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                goto fail;
            }
            ps->p++;
        }
        struct jv *item = parse_value(ps);
        if (!item || add_item(v, item, key) < 0) {
            free(key);
            jv_free(item);
            goto fail;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            ps->depth--;
            return v;
        }
        goto fail;
    }
fail:
    jv_free(v);
    return NULL;
}

static struct jv *parse_number(struct parser *ps)
{
    const char *start = ps->p;
    bool integral = true;
    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return NULL;
    if (*ps->p == '0')
        ps->p++;
    else
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    if (ps->p < ps->end && *ps->p == '.') {
        integral = false;
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return NULL;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integral = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return NULL;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    char tmp[64];
    size_t n = (size_t)(ps->p - start);
    if (n >= sizeof tmp)
        return NULL;
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    struct jv *v = jv_new(J_NUM);
    if (!v)
        return NULL;
    v->num = strtod(tmp, NULL);
    if (integral) {
        v->is_int = true;
        v->i = strtoll(tmp, NULL, 10);
    }
    return v;
}

static bool literal(struct parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static struct jv *parse_value(struct parser *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return NULL;
    switch (*ps->p) {
    case '{': return parse_container(ps, true);
    case '[': return parse_container(ps, false);
    case '"': {
        size_t len;
        char *s = parse_string(ps, &len);
        if (!s)
            return NULL;
        struct jv *v = jv_new(J_STR);
        if (!v) {
            free(s);
            return NULL;
        }
        v->s = s;
        v->slen = len;
        return v;
    }
    case 't':
    case 'f': {
        bool b = *ps->p == 't';
        if (!literal(ps, b ? "true" : "false"))
            return NULL;
        struct jv *v = jv_new(J_BOOL);
        if (v)
            v->b = b;
        return v;
    }
    case 'n':
        return literal(ps, "null") ? jv_new(J_NULL) : NULL;
    default:
        return parse_number(ps);
    }
}

struct jv *jv_parse(const char *text, size_t len)
{
    struct parser ps = {text, text + len, 0};
    struct jv *v = parse_value(&ps);
    if (!v)
        return NULL;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        jv_free(v);
        return NULL;
    }
    return v;
}

void jv_free(struct jv *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        jv_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->s);
    free(v);
}

const struct jv *jv_get(const struct jv *v, const char *key)
{
    if (!v || v->t != J_OBJ)
        return NULL;
    /* The last duplicate wins, as in most readers; the server sends none. */
    const struct jv *found = NULL;
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], key) == 0)
            found = v->items[i];
    return found;
}

const char *jv_str(const struct jv *v, const char *key)
{
    const struct jv *m = jv_get(v, key);
    return m && m->t == J_STR ? m->s : NULL;
}

bool jv_int(const struct jv *v, const char *key, long long *out)
{
    const struct jv *m = jv_get(v, key);
    if (!m || m->t != J_NUM || !m->is_int)
        return false;
    *out = m->i;
    return true;
}
