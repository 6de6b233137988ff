/* HTTP as the tests see it: one response struct (struct http_resp) that
 * both clients fill — libcurl for ordinary requests, a raw test socket for
 * what libcurl cannot send or would not let through — and the requests
 * most tests make (login, /stats, /hello). */
#include "harness_http.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "harness_server.h"
#include "jsonv.h"

/* ---- responses ---- */

const char *resp_header(const struct http_resp *r, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            v = r->hdrs[i].value;
    return v;
}

int resp_header_count(const struct http_resp *r, const char *name)
{
    int n = 0;
    for (int i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            n++;
    return n;
}

static void resp_reset_headers(struct http_resp *r)
{
    for (int i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    r->nhdrs = 0;
}

void resp_free(struct http_resp *r)
{
    resp_reset_headers(r);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* One "Name: value" line (no CRLF). Returns false if it is not one. */
static bool resp_add_header(struct http_resp *r, const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (!colon || colon == line || r->nhdrs >= 64)
        return false;
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    r->hdrs[r->nhdrs].name = strndup(line, (size_t)(colon - line));
    r->hdrs[r->nhdrs].value = strndup(v, (size_t)(end - v));
    r->nhdrs++;
    return true;
}

const char *resp_location_path(const struct http_resp *r)
{
    const char *loc = resp_header(r, "Location");
    if (!loc)
        return NULL;
    const char *scheme = strstr(loc, "://");
    if (scheme && scheme < strchr(loc, '/') + 1) {
        const char *path = strchr(scheme + 3, '/');
        return path ? path : "/";
    }
    return loc;
}

void check_common_headers(struct server *s, const struct http_resp *r, bool head_request)
{
    const char *cl = resp_header(r, "Content-Length");
    bool no_body_status = r->status == 101 || r->status == 204 || r->status == 304;
    if (!no_body_status) {
        cr_assert(cl != NULL, "status %d response has no Content-Length", r->status);
        cr_assert_eq(resp_header_count(r, "Content-Length"), 1);
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        cr_assert(*cl && *end == '\0', "bad Content-Length '%s'", cl);
        if (!head_request)
            cr_assert_eq(v, r->body_len, "Content-Length %s but %zu body bytes", cl, r->body_len);
    }
    const char *date = resp_header(r, "Date");
    cr_assert(date != NULL, "status %d response has no Date", r->status);
    struct tm tm = {0};
    const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cr_assert(end && *end == '\0', "Date is not an IMF-fixdate: '%s'", date);
    const char *server = resp_header(r, "Server");
    cr_assert(server != NULL, "status %d response has no Server header", r->status);
    char want[64];
    snprintf(want, sizeof want, "c10k-lab/%s", server_model(s));
    cr_assert_str_eq(server, want);
}

/* ---- libcurl ---- */

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct http_resp *r = ud;
    size_t n = size * nmemb;
    size_t len = n;
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        resp_reset_headers(r); /* a new (e.g. after 100) status line */
    else if (len)
        resp_add_header(r, p, len);
    return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct http_resp *r = ud;
    size_t n = size * nmemb;
    char *b = realloc(r->body, r->body_len + n + 1);
    if (!b)
        return 0;
    memcpy(b + r->body_len, p, n);
    r->body = b;
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

void http_do(struct http_resp *r, int port, const char *method, const char *path,
             const char *const *headers, const char *body, size_t body_len)
{
    memset(r, 0, sizeof *r);
    CURL *h = curl_easy_init();
    cr_assert(h != NULL);
    char url[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CAP_MS + 10000);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        if (body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
        }
        if (strcmp(method, "POST") != 0 || !body)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    CURLcode rc = curl_easy_perform(h);
    cr_assert(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    r->status = (int)status;
    if (!r->body)
        r->body = calloc(1, 1);
    curl_slist_free_all(list);
    curl_easy_cleanup(h);
}

void http_get(struct http_resp *r, int port, const char *path, const char *const *headers)
{
    http_do(r, port, "GET", path, headers, NULL, 0);
}

int login_try(int port, const char *user, const char *password, char **cookie)
{
    char *u = curl_easy_escape(NULL, user, 0);
    char *p = curl_easy_escape(NULL, password, 0);
    char *body = xasprintf("username=%s&password=%s", u, p);
    curl_free(u);
    curl_free(p);
    struct http_resp r;
    http_do(&r, port, "POST", "/login",
            HDRS("Content-Type: application/x-www-form-urlencoded"), body, strlen(body));
    free(body);
    int status = r.status;
    if (cookie) {
        *cookie = NULL;
        for (int i = 0; i < r.nhdrs; i++) {
            const char *v = r.hdrs[i].value;
            if (strcasecmp(r.hdrs[i].name, "Set-Cookie") == 0 && strncmp(v, "session=", 8) == 0) {
                size_t n = strcspn(v, ";");
                *cookie = strndup(v, n);
            }
        }
    }
    resp_free(&r);
    return status;
}

char *login(int port, const char *user, const char *password)
{
    char *cookie;
    int status = login_try(port, user, password, &cookie);
    cr_assert_eq(status, 303, "login %s: status %d", user, status);
    cr_assert(cookie != NULL && strlen(cookie) > 8, "login %s: no session cookie", user);
    return cookie;
}

char *cookie_header(const char *cookie)
{
    return xasprintf("Cookie: %s", cookie);
}

struct jv *stats_get(int port)
{
    struct http_resp r;
    http_get(&r, port, "/stats", NULL);
    cr_assert_eq(r.status, 200, "/stats answered %d", r.status);
    struct jv *v = jv_parse(r.body, r.body_len);
    cr_assert(v && v->t == J_OBJ, "/stats is not a JSON object: %s", r.body);
    resp_free(&r);
    return v;
}

int http_status(int port, const char *path)
{
    struct http_resp r;
    http_get(&r, port, path, NULL);
    int status = r.status;
    resp_free(&r);
    return status;
}

void expect_hello(int port)
{
    struct http_resp r;
    http_get(&r, port, "/hello", NULL);
    cr_assert_eq(r.status, 200, "/hello answered %d", r.status);
    cr_assert(r.body_len == 14 && memcmp(r.body, "Hello, world!\n", 14) == 0,
              "/hello body \"%s\"", r.body);
    resp_free(&r);
}

/* ---- raw responses from a test socket ---- */

enum rd tsock_read_response(struct tsock *c, bool head_request, struct http_resp *r, int cap_ms)
{
    memset(r, 0, sizeof *r);
    int64_t deadline = now_ms() + cap_ms;
    char *end;
    while (!c->buf || !(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
        enum rd f = tsock_fill(c, deadline);
        if (f != RD_OK)
            return c->len ? (f == RD_TIMEOUT ? RD_TIMEOUT : RD_BAD) : f;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    /* Status line. */
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0)
        return RD_BAD;
    r->status = atoi(c->buf + 9);
    /* Headers. */
    char *line = memchr(c->buf, '\n', head_len) + 1;
    while (line < c->buf + head_len - 2) {
        char *eol = memmem(line, (size_t)(c->buf + head_len - line), "\r\n", 2);
        if (!resp_add_header(r, line, (size_t)(eol - line)))
            return RD_BAD;
        line = eol + 2;
    }
    size_t body_len = 0;
    bool to_eof = false;
    const char *cl = resp_header(r, "Content-Length");
    bool no_body = head_request || r->status / 100 == 1 || r->status == 204 || r->status == 304;
    if (!no_body) {
        if (cl)
            body_len = strtoull(cl, NULL, 10);
        else if (resp_header(r, "Transfer-Encoding"))
            return RD_BAD; /* the server never chunks: every response has a length */
        else
            to_eof = true;
    }
    for (;;) {
        if (!to_eof && c->len >= head_len + body_len)
            break;
        enum rd f = tsock_fill(c, deadline);
        if (f == RD_EOF && to_eof) {
            body_len = c->len - head_len;
            break;
        }
        if (f != RD_OK)
            return f == RD_TIMEOUT ? RD_TIMEOUT : RD_BAD;
    }
    r->body = malloc(body_len + 1);
    memcpy(r->body, c->buf + head_len, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    tsock_consume(c, head_len + body_len);
    return RD_OK;
}

void tsock_expect_response(struct tsock *c, bool head_request, struct http_resp *r)
{
    enum rd got = tsock_read_response(c, head_request, r, CAP_MS);
    cr_assert(got == RD_OK, "expected a response, got %s", rd_name(got));
}

void raw_request(int port, const char *request, bool head_request, struct http_resp *r)
{
    struct tsock c;
    tsock_open(&c, port);
    cr_assert(tsock_sends(&c, request));
    tsock_expect_response(&c, head_request, r);
    tsock_close(&c);
}
