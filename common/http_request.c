#include "http_request.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const header_names[HDR_COUNT] = {
    [HDR_HOST] = "host",
    [HDR_ORIGIN] = "origin",
    [HDR_COOKIE] = "cookie",
    [HDR_UPGRADE] = "upgrade",
    [HDR_WS_KEY] = "sec-websocket-key",
    [HDR_WS_VERSION] = "sec-websocket-version",
    [HDR_CONTENT_TYPE] = "content-type",
};

void http_req_global_init(void)
{
    http_parser_set_max_header_size(HTTP_MAX_HEAD);
}

struct http_req *http_req_new(uint64_t now_ms)
{
    /* Only the fixed part is zeroed: the 8 KiB arena is written before read. */
    struct http_req *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, offsetof(struct http_req, arena));
    r->cur = -1;
    r->head_started_ms = now_ms;
    return r;
}

void http_req_free(struct http_req *r)
{
    if (!r)
        return;
    buf_free(&r->body);
    free(r);
}

static struct http_req *req_of(http_parser *p) { return p->data; }

/* Appends to the arena. Pieces of one item arrive back to back, so appending
 * keeps each item contiguous. The parser already caps the head at
 * HTTP_MAX_HEAD, so running out here means a bug, answered as 431. */
static int arena_put(struct http_req *r, const char *at, size_t n)
{
    if (n > sizeof r->arena - 1 - r->used) {
        r->error = 431;
        return -1;
    }
    memcpy(r->arena + r->used, at, n);
    r->used += (uint16_t)n;
    return 0;
}

/* The URL comes first; it ends where the first header (or the head) does. */
static int end_url(struct http_req *r)
{
    if (r->url_done)
        return 0;
    r->url_done = true;
    return arena_put(r, "", 1);
}

/* Split the target into path and query in place (the '?' becomes the NUL
 * ending the path). Absolute-form targets (RFC 9112 3.2.2) lose their
 * scheme and authority; anything else that is not a path stays empty and
 * matches no route. */
static void split_target(struct http_req *r)
{
    char *u = r->arena + r->url.off;
    size_t n = r->url.len;
    char *path = NULL;
    if (n && u[0] == '/') {
        path = u;
    } else if (n > 8 && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0)) {
        path = strchr(strstr(u, "//") + 2, '/');
    }
    if (!path)
        return;
    char *q = strchr(path, '?');
    if (q) {
        *q = '\0';
        r->query = (struct http_str){(uint16_t)(q + 1 - r->arena), (uint16_t)strlen(q + 1)};
    }
    char *hash = strchr(path, '#');
    if (hash)
        *hash = '\0';
    r->path = (struct http_str){(uint16_t)(path - r->arena), (uint16_t)strlen(path)};
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = req_of(p);
    if (r->url.len == 0)
        r->url.off = r->used;
    if (arena_put(r, at, n) < 0)
        return -1;
    r->url.len = (uint16_t)(r->used - r->url.off);
    return 0;
}

/* A header value is complete: NUL-terminate it (the arena slot after it). */
static int finish_value(struct http_req *r)
{
    if (r->in_value && r->cur >= 0) {
        struct http_str *v = &r->hdr[r->cur];
        while (v->len && (r->arena[v->off + v->len - 1] == ' ' || r->arena[v->off + v->len - 1] == '\t')) {
            v->len--;
            r->used--;
        }
        if (arena_put(r, "", 1) < 0)
            return -1;
    }
    r->in_value = false;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = req_of(p);
    /* After the head these are a chunked body's trailer fields: dropped
     * (RFC 9110 6.5.1 lets a recipient discard them), never merged into the
     * headers the routes read. */
    if (r->head_done)
        return 0;
    if (end_url(r) < 0)
        return -1;
    if (r->in_value || r->field_off == 0) {
        if (finish_value(r) < 0)
            return -1;
        r->field_off = r->used + 1; /* +1: 0 means "no field yet" */
    }
    return arena_put(r, at, n);
}

static void reverse(char *p, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        char t = p[i];
        p[i] = p[n - 1 - i];
        p[n - 1 - i] = t;
    }
}

/* A second Cookie line continues the first: move the stored value (and its
 * NUL) to the end of the arena, where the new line extends it in place.
 * Copying it there instead stored it twice, and a head well under
 * HTTP_MAX_HEAD could overflow the arena and get 431 (found by tests/fuzz).
 * The items stored after it move down; their offsets follow. */
static void cookie_to_end(struct http_req *r)
{
    struct http_str *c = &r->hdr[HDR_COOKIE];
    size_t from = c->off, n = c->len + 1u, span = r->used - from;
    reverse(r->arena + from, n); /* rotate arena[from, used) left by n */
    reverse(r->arena + from + n, span - n);
    reverse(r->arena + from, span);
    struct http_str *moved[3 + HDR_COUNT] = {&r->url, &r->path, &r->query};
    for (int h = 0; h < HDR_COUNT; h++)
        moved[3 + h] = h == HDR_COOKIE ? NULL : &r->hdr[h];
    for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++)
        if (moved[i] && moved[i]->off > from)
            moved[i]->off = (uint16_t)(moved[i]->off - n);
    c->off = (uint16_t)(r->used - n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = req_of(p);
    if (r->head_done)
        return 0; /* a trailer field: see on_header_field */
    if (!r->in_value) {
        /* The field name is complete: keep the value only for headers we use,
         * and give the name's arena bytes back either way. */
        /* Only tchars: http_head.c checked the name before the parser saw it. */
        size_t foff = r->field_off - 1u, flen = r->used - foff;
        r->cur = -1;
        for (int h = 0; h < HDR_COUNT; h++) {
            if (strlen(header_names[h]) == flen &&
                strncasecmp(r->arena + foff, header_names[h], flen) == 0) {
                r->cur = h;
                break;
            }
        }
        r->used = (uint16_t)foff;
        r->field_off = 0;
        r->in_value = true;
        if (r->cur >= 0) {
            if (r->seen[r->cur]) {
                /* Repeated Host/Origin/key headers make the request ambiguous
                 * (RFC 9112 3.2 for Host); a second Cookie line is folded in. */
                if (r->cur != HDR_COOKIE) {
                    r->error = 400;
                    return -1;
                }
                cookie_to_end(r);
                r->used--; /* its NUL: "; " and the new line follow */
                if (arena_put(r, "; ", 2) < 0)
                    return -1;
                r->hdr[HDR_COOKIE].len += 2;
            } else {
                r->hdr[r->cur] = (struct http_str){r->used, 0};
            }
            r->seen[r->cur] = true;
        }
    }
    if (r->cur < 0)
        return 0;
    if (arena_put(r, at, n) < 0)
        return -1;
    r->hdr[r->cur].len += (uint16_t)n;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_req *r = req_of(p);
    if (end_url(r) < 0 || finish_value(r) < 0)
        return -1;
    split_target(r);
    r->method = (enum http_method)p->method;
    r->major = (uint8_t)p->http_major;
    r->minor = (uint8_t)p->http_minor;
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->upgrade = p->upgrade != 0;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->head_done = true;
    /* Never return 1 here: for requests too it means "skip the body", and the
     * body would then be parsed as the next request (PITFALLS B3). */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > HTTP_MAX_BODY) {
        r->error = 413;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = req_of(p);
    if (buf_append(&r->body, at, n, HTTP_MAX_BODY) < 0) {
        r->error = 413; /* chunked bodies have no length to check up front */
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_req *r = req_of(p);
    r->complete = true;
    /* Stop right after this request: the next pipelined one waits in the
     * buffer until this one is answered, so answers go out in order. */
    http_parser_pause(p, 1);
    return 0;
}

const http_parser_settings http_req_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};


bool http_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *s = value;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        const char *e = s;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - s) == tl && strncasecmp(s, token, tl) == 0)
            return true;
        s = e;
    }
    return false;
}
