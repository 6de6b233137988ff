/* HTTP as the tests see it: one response struct that both clients fill —
 * libcurl for ordinary requests, a raw test socket (harness_tsock.h) for
 * what libcurl cannot send or would not let through — and the requests
 * most tests make: log in, GET /stats, GET /hello. */
#ifndef C10K_INTEG_HARNESS_HTTP_H
#define C10K_INTEG_HARNESS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "harness_tsock.h"
#include "harness_util.h"

struct jv;
struct server;

/* ---- HTTP responses (both clients fill the same struct) ---- */

struct http_hdr {
    char *name;
    char *value;
};

struct http_resp {
    int status;
    struct http_hdr hdrs[64];
    int nhdrs;
    char *body;   /* NUL-terminated for convenience; body_len is the truth */
    size_t body_len;
};

/* Last header of that name (case-insensitive), or NULL. */
const char *resp_header(const struct http_resp *r, const char *name);
/* How many headers of that name. */
int resp_header_count(const struct http_resp *r, const char *name);
void resp_free(struct http_resp *r);
/* The path of a Location header, also when it is absolute (scheme://host/p). */
const char *resp_location_path(const struct http_resp *r);
/* Content-Length, Date (IMF-fixdate) and Server: c10k-lab/<model>, with the
 * Content-Length equal to the body received (unless head_request). */
void check_common_headers(struct server *s, const struct http_resp *r, bool head_request);

/* ---- libcurl: one request on a fresh connection, no redirects followed ---- */

/* headers: NULL-terminated list of "Name: value" lines, or NULL. */
void http_do(struct http_resp *r, int port, const char *method, const char *path,
             const char *const *headers, const char *body, size_t body_len);
#define HDRS(...) ARGS(__VA_ARGS__)
void http_get(struct http_resp *r, int port, const char *path, const char *const *headers);
/* GET path on a new connection: its status (0 if no response). */
int http_status(int port, const char *path);
/* GET /hello must answer 200 "Hello, world!\n": the server still serves. */
void expect_hello(int port);
/* GET /stats: asserts 200 + a JSON object; the caller frees it. */
struct jv *stats_get(int port);

/* POST /login; returns the status; with *cookie non-NULL on 303 the caller
 * gets "session=VALUE" (malloc'd). */
int login_try(int port, const char *user, const char *password, char **cookie);
/* POST /login that must succeed: "session=VALUE" (malloc'd). */
char *login(int port, const char *user, const char *password);
/* "Cookie: session=..." header line (malloc'd). */
char *cookie_header(const char *cookie);

/* ---- raw: responses read from a test socket ---- */

/* Read one response (status line, headers, Content-Length body; no body for
 * a HEAD or a 1xx/204/304). Waits at most cap_ms for it to complete. */
enum rd tsock_read_response(struct tsock *c, bool head_request, struct http_resp *r, int cap_ms);
/* Read one response that must be there: asserts RD_OK. */
void tsock_expect_response(struct tsock *c, bool head_request, struct http_resp *r);
/* One raw request on a fresh connection, the response, and the close. */
void raw_request(int port, const char *request, bool head_request, struct http_resp *r);

#endif
