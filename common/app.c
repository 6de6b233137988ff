/* The routes of the contract, as a table, and the flags all models share. */
#include "app.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "http_response.h"
#include "pages.h"
#include "text.h"
#include "urlcode.h"

/* --- clock -------------------------------------------------------------- */

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
uint64_t (*app_clock)(void) = monotonic_ms;
uint64_t app_now_ms(void) { return app_clock(); }

/* --- chat target ------------------------------------------------------- */

static int local_join(void *ctx, struct room_member *m, const char *user)
{
    return room_join(ctx, m, user);
}
static bool local_post(void *ctx, struct room_member *m, const char *text, size_t len)
{
    return room_post(ctx, m, text, len);
}
static void local_leave(void *ctx, struct room_member *m) { room_leave(ctx, m); }
static void local_backlog(void *ctx, struct room_member *m, size_t bytes)
{
    room_backlog(ctx, m, bytes, true); /* after a write: the client took bytes */
}
const struct chat_ops chat_local = {local_join, local_post, local_leave, local_backlog};

void app_set_room(struct app *app, struct room *room)
{
    app->room = room;
    app->chat = &chat_local;
    app->chat_ctx = room;
}

/* --- small answers ------------------------------------------------------ */

static void reply(struct conn *c, int status, const char *ctype, const char *headers,
                  const char *body, size_t len)
{
    conn_respond(c, &(struct response){status, ctype, headers, body, len});
}

static void reply_text(struct conn *c, int status, const char *headers, const char *text)
{
    reply(c, status, "text/plain; charset=utf-8", headers, text, strlen(text));
}

static void reply_status(struct conn *c, int status, const char *headers)
{
    char body[80];
    snprintf(body, sizeof body, "%d %s\n", status, http_status_text(status));
    reply_text(c, status, headers, body);
}

static void redirect(struct conn *c, int status, const char *to, const char *cookie)
{
    char headers[SESSION_COOKIE_MAX + 160];
    snprintf(headers, sizeof headers, "Location: %s\r\n%s%s%s", to, cookie ? "Set-Cookie: " : "",
             cookie ? cookie : "", cookie ? "\r\n" : "");
    reply_status(c, status, headers);
}

/* Pages carry a user name or an error, and run inline script: never cache
 * them, never let another site frame them. */
#define PAGE_HEADERS                                                                       \
    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"                       \
    "X-Frame-Options: DENY\r\nContent-Security-Policy: default-src 'none'; "               \
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self' ws: wss:; " \
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n"

/* Fill {{MODEL}}, {{USER}}, {{ERROR}} with HTML-escaped text. */
static void reply_page(struct conn *c, int status, const char *name, const char *user,
                       const char *error, const char *headers)
{
    const struct page *pg = pages_find(name);
    struct buf out = {0}, hdr = {0};
    char model[32];
    snprintf(model, sizeof model, "chat-%s", c->app->model);
    const char *vars[][2] = {{"{{MODEL}}", model}, {"{{USER}}", user}, {"{{ERROR}}", error}};
    const size_t limit = 1 << 20;
    int rc = pg ? 0 : -1;
    for (const char *p = pg ? pg->data : ""; rc == 0 && *p;) {
        const char *v = strstr(p, "{{");
        size_t lit = v ? (size_t)(v - p) : strlen(p);
        rc = buf_append(&out, p, lit, limit);
        p += lit;
        if (!v || rc < 0)
            break;
        size_t k = 0;
        while (k < 3 && strncmp(p, vars[k][0], strlen(vars[k][0])) != 0)
            k++;
        if (k == 3) {
            rc = buf_append(&out, p, 2, limit);
            p += 2;
        } else {
            const char *val = vars[k][1] ? vars[k][1] : "";
            rc = html_escape_append(&out, val, strlen(val), limit);
            p += strlen(vars[k][0]);
        }
    }
    if (rc == 0)
        rc = buf_appendf(&hdr, 4096, "%s%s", PAGE_HEADERS, headers ? headers : "");
    if (rc < 0)
        reply_status(c, 500, NULL);
    else
        reply(c, status, "text/html; charset=utf-8", hdr.data, out.data, out.len);
    buf_free(&out);
    buf_free(&hdr);
}

/* --- request helpers ---------------------------------------------------- */

/* Split "host:port" / "[v6]:port" into host and port ("" when absent). */
static bool split_authority(const char *a, size_t n, char *host, size_t hlen, char *port,
                            size_t plen)
{
    size_t hend = n, pstart = n;
    if (n && a[0] == '[') {
        const char *rb = memchr(a, ']', n);
        if (!rb)
            return false;
        hend = (size_t)(rb - a) + 1;
        if (hend < n && a[hend] != ':')
            return false;
        pstart = hend < n ? hend + 1 : n;
    } else {
        const char *colon = memchr(a, ':', n);
        if (colon) {
            hend = (size_t)(colon - a);
            pstart = hend + 1;
        }
    }
    if (hend == 0 || hend >= hlen || n - pstart >= plen)
        return false;
    memcpy(host, a, hend);
    host[hend] = '\0';
    memcpy(port, a + pstart, n - pstart);
    port[n - pstart] = '\0';
    for (const char *p = port; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

/* Contract: Origin matches when its host and port equal Host's, case-
 * insensitively, scheme ignored; "null" never matches; no Origin passes.
 * A missing port means the default of the Origin's scheme on both sides. */
static bool origin_ok(const struct http_req *req)
{
    if (!req->seen[HDR_ORIGIN])
        return true;
    const char *o = http_header(req, HDR_ORIGIN);
    const char *sep = strstr(o, "://");
    if (!sep || !req->seen[HDR_HOST])
        return false;
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/");
    const char *dflt = strncasecmp(o, "https:", 6) == 0 || strncasecmp(o, "wss:", 4) == 0 ? "443"
                                                                                          : "80";
    char oh[256], op[8], hh[256], hp[8];
    const char *host = http_header(req, HDR_HOST);
    if (!split_authority(auth, alen, oh, sizeof oh, op, sizeof op) ||
        !split_authority(host, strlen(host), hh, sizeof hh, hp, sizeof hp))
        return false;
    return strcasecmp(oh, hh) == 0 && atol(*op ? op : dflt) == atol(*hp ? hp : dflt);
}

/* The signed-in user, from the session cookie. A valid MAC only says that a
 * server with this key once let the name in: the name must also be in the
 * users this server loaded (CONTRACT.md), or a user removed from the file,
 * or a demo account from a run without --users under the same --secret,
 * would keep access until the cookie expires. */
static bool session_user(const struct conn *c, const struct http_req *req, char user[33])
{
    size_t len;
    const char *v = cookie_find(http_header(req, HDR_COOKIE), "session", &len);
    return v && session_verify(&c->app->key, v, len, time(NULL), user) &&
           users_find(c->app->users, user) != NULL;
}

/* A decimal query parameter within [lo, hi]; false if absent or malformed. */
static bool query_number(const struct http_req *req, const char *key, unsigned long lo,
                         unsigned long hi, unsigned long *out)
{
    char v[16];
    const char *q = http_str(req, req->query);
    long n = form_get(q, strlen(q), key, v, sizeof v);
    unsigned long x;
    if (n <= 0 || !parse_decimal(v, (size_t)n, 9, hi, &x) || x < lo)
        return false;
    *out = x;
    return true;
}

/* --- handlers ----------------------------------------------------------- */

static void route_root(struct conn *c, struct http_req *req)
{
    char user[33];
    redirect(c, 302, session_user(c, req, user) ? "/chat" : "/login", NULL);
}

static void route_login(struct conn *c, struct http_req *req)
{
    if (req->method != HTTP_POST) {
        reply_page(c, 200, "login.html", NULL, "", NULL);
        return;
    }
    if (!origin_ok(req)) {
        reply_status(c, 403, NULL);
        return;
    }
    char user[64], pass[USERS_MAX_PASSWORD + 1];
    long ul = form_get(req->body.data ? req->body.data : "", req->body.len, "username", user,
                       sizeof user);
    long pl = form_get(req->body.data ? req->body.data : "", req->body.len, "password", pass,
                       sizeof pass);
    if (ul < 0 || pl < 0 || !user_name_valid(user, (size_t)ul)) {
        /* Same work as a wrong password: the answer's timing must not tell
         * which names exist. An overlong password is refused unhashed. */
        if (ul < 0 || pl < 0 || pl > USERS_MAX_PASSWORD) {
            reply_page(c, 401, "login.html", NULL, "Wrong user name or password.", NULL);
            return;
        }
        user[0] = '\0';
    }
    /* The budget before the work: a refused attempt costs no PBKDF2. */
    int slot;
    unsigned retry;
    enum login_gate gate = login_limit_enter(c->app->logins, &c->peer, time(NULL), &slot, &retry);
    if (gate != LOGIN_GO) {
        char headers[48];
        snprintf(headers, sizeof headers, "Retry-After: %u\r\n", retry);
        reply_status(c, gate == LOGIN_BUSY ? 503 : 429, headers);
        memset(pass, 0, sizeof pass);
        return;
    }
    const struct user_record *rec = user[0] ? users_find(c->app->users, user) : NULL;
    struct action *a = action_password_new(rec, user, pass, (size_t)pl);
    memset(pass, 0, sizeof pass);
    if (!a) {
        login_limit_leave(c->app->logins, slot, &c->peer, false, time(NULL));
        conn_defer(c, NULL); /* the core's answer to a failed allocation */
        return;
    }
    a->login.limit = c->app->logins;
    a->login.slot = slot;
    a->login.peer = c->peer;
    conn_defer(c, a);
}

static void route_logout(struct conn *c, struct http_req *req)
{
    if (!origin_ok(req)) {
        reply_status(c, 403, NULL);
        return;
    }
    redirect(c, 303, "/login", "session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
}

static void route_chat(struct conn *c, struct http_req *req)
{
    char user[33];
    if (!session_user(c, req, user))
        redirect(c, 302, "/login", NULL);
    else
        reply_page(c, 200, "chat.html", user, NULL, NULL);
}

static void route_ws(struct conn *c, struct http_req *req)
{
    char user[33], accept[29];
    if (!origin_ok(req)) {
        reply_status(c, 403, NULL);
    } else if (!session_user(c, req, user)) {
        reply_status(c, 401, NULL);
    } else if (req->method != HTTP_GET || !req->upgrade ||
               !http_has_token(http_header(req, HDR_UPGRADE), "websocket")) {
        reply_status(c, 426, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
    } else if (strcmp(http_header(req, HDR_WS_VERSION), "13") != 0) {
        reply_status(c, 426, "Sec-WebSocket-Version: 13\r\n");
    } else if (ws_accept_key(http_header(req, HDR_WS_KEY), accept) < 0) {
        reply_status(c, 400, NULL);
    } else {
        conn_upgrade(c, accept, user);
    }
}

static void route_hello(struct conn *c, struct http_req *req)
{
    (void)req;
    reply_text(c, 200, NULL, "Hello, world!\n");
}

static void route_sleep(struct conn *c, struct http_req *req)
{
    unsigned long ms;
    if (!query_number(req, "ms", 0, SLEEP_MAX_MS, &ms))
        reply_text(c, 400, NULL, "ms must be an integer 0..60000\n");
    else
        conn_defer(c, action_sleep_new((unsigned)ms));
}

static void route_cpu(struct conn *c, struct http_req *req)
{
    unsigned long n;
    if (!query_number(req, "n", 1, CPU_MAX_ROUNDS, &n))
        reply_text(c, 400, NULL, "n must be an integer 1..10000000\n");
    else
        conn_defer(c, action_cpu_new(n));
}

/* Every /search answer carries the upstream's bytes, or could: whatever type
 * the upstream names (text/html, image/svg+xml), the browser must neither
 * guess another (nosniff) nor run it as the chat's origin (a sandboxed
 * document has an opaque origin: no session cookie, no same-origin access). */
#define SEARCH_HEADERS "X-Content-Type-Options: nosniff\r\nContent-Security-Policy: sandbox\r\n"

static void route_search(struct conn *c, struct http_req *req)
{
    char wd[2048];
    const char *q = http_str(req, req->query);
    long n = form_get(q, strlen(q), "wd", wd, sizeof wd);
    if (!c->app->cfg.upstream)
        reply_text(c, 503, SEARCH_HEADERS, "no upstream configured (--upstream)\n");
    else if (n < 0)
        reply_text(c, 400, SEARCH_HEADERS, "wd is required\n");
    else
        conn_defer(c, action_fetch_new(c->app->cfg.upstream, wd));
}

static void route_stats(struct conn *c, struct http_req *req)
{
    (void)req;
    struct app *app = c->app;
    /* The model fills in its memory, threads and processes (the core reads no
     * /proc); the counters are the app's unless the model says otherwise. */
    struct stats_view v = {.connections = -1, .ws_clients = -1};
    if (app->stats)
        app->stats(app, &v);
    struct buf b = {0};
    int rc = buf_appendf(
        &b, 4096,
        "{\"model\":\"%s\",\"pid\":%d,\"uptime_ms\":%llu,\"connections\":%ld,"
        "\"ws_clients\":%ld,\"requests\":%llu,\"rss_bytes\":%lld,\"pss_bytes\":%lld,"
        "\"threads\":%ld,\"processes\":%ld%s%s}\n",
        app->model, v.pid ? v.pid : (int)getpid(), (unsigned long long)(app_now_ms() - app->started_ms),
        v.connections >= 0 ? v.connections : atomic_load(&app->n->connections),
        v.ws_clients >= 0 ? v.ws_clients : atomic_load(&app->n->ws_clients),
        v.requests ? v.requests : atomic_load(&app->n->requests), v.rss_bytes, v.pss_bytes,
        v.threads, v.processes, v.extra[0] ? "," : "", v.extra);
    if (rc < 0)
        reply_status(c, 500, NULL);
    else
        reply(c, 200, "application/json", "Cache-Control: no-store\r\n", b.data, b.len);
    buf_free(&b);
}

enum { GET = 1, POST = 2 }; /* GET implies HEAD (contract: HEAD everywhere GET is) */

static const struct route {
    const char *path;
    unsigned methods;
    void (*handler)(struct conn *c, struct http_req *req);
} routes[] = {
    {"/", GET, route_root},
    {"/login", GET | POST, route_login},
    {"/logout", POST, route_logout},
    {"/chat", GET, route_chat},
    {"/chat/ws", GET, route_ws},
    {"/hello", GET, route_hello},
    {"/sleep", GET, route_sleep},
    {"/cpu", GET, route_cpu},
    {"/search", GET, route_search},
    {"/stats", GET, route_stats},
};

void app_route(struct conn *c, struct http_req *req)
{
    const char *path = http_str(req, req->path);
    if (req->major == 1 && req->minor == 1 && !req->seen[HDR_HOST]) {
        reply_status(c, 400, NULL); /* RFC 9112 3.2: Host is required in 1.1 */
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
        if (strcmp(path, r->path) != 0)
            continue;
        unsigned m = req->method == HTTP_GET || req->method == HTTP_HEAD ? GET
                     : req->method == HTTP_POST                          ? POST
                                                                         : 0;
        if (!(r->methods & m)) {
            reply_status(c, 405, r->methods == POST       ? "Allow: POST\r\n"
                                 : r->methods == GET      ? "Allow: GET, HEAD\r\n"
                                                          : "Allow: GET, HEAD, POST\r\n");
            return;
        }
        r->handler(c, req);
        return;
    }
    reply_status(c, 404, NULL);
}

/* An upstream status the chat can pass on as its own: a final status that
 * carries a body we can frame with Content-Length. 1xx (101 included) would
 * announce a protocol switch or more responses to come, 204 and 304 have no
 * body by definition, and anything outside 200-599 is no HTTP status. */
static bool relayable_status(long status)
{
    return status >= 200 && status <= 599 && status != 204 && status != 304;
}

void app_finish_action(struct conn *c, struct http_req *req, struct action *a)
{
    char body[96];
    (void)req;
    switch (a->kind) {
    case ACTION_SLEEP:
        snprintf(body, sizeof body, "slept %u ms\n", a->sleep.ms);
        reply_text(c, 200, NULL, body);
        break;
    case ACTION_CPU:
        snprintf(body, sizeof body, "%s\n", a->cpu.hex);
        reply_text(c, 200, NULL, body);
        break;
    case ACTION_PASSWORD:
        login_limit_leave(a->login.limit, a->login.slot, &a->login.peer, !a->login.ok, time(NULL));
        a->login.limit = NULL; /* given back: action_free must not again */
        if (a->login.ok) {
            char cookie[SESSION_COOKIE_MAX + 96], value[SESSION_COOKIE_MAX];
            if (session_sign(&c->app->key, a->login.user, time(NULL) + SESSION_MAX_AGE, value,
                             sizeof value) < 0) {
                reply_status(c, 500, NULL);
                break;
            }
            snprintf(cookie, sizeof cookie,
                     "session=%s; HttpOnly; SameSite=Lax; Path=/; Max-Age=%d", value,
                     SESSION_MAX_AGE);
            redirect(c, 303, "/chat", cookie);
        } else {
            /* The name goes back into the form so only the password is retyped. */
            reply_page(c, 401, "login.html", a->login.user, "Wrong user name or password.",
                       NULL);
        }
        break;
    case ACTION_FETCH:
        if (a->fetch.result == CURLE_OK && relayable_status(a->fetch.status)) {
            reply(c, (int)a->fetch.status,
                  a->fetch.content_type[0] ? a->fetch.content_type : "application/octet-stream",
                  SEARCH_HEADERS, a->fetch.body.data, a->fetch.body.len);
        } else if (a->fetch.result == CURLE_OK) {
            snprintf(body, sizeof body, "upstream answered status %ld\n", a->fetch.status);
            reply_text(c, 502, SEARCH_HEADERS, body);
        } else if (a->fetch.result == CURLE_OPERATION_TIMEDOUT) {
            reply_text(c, 504, SEARCH_HEADERS, "upstream timed out\n");
        } else {
            snprintf(body, sizeof body, "upstream failed: %s\n",
                     a->fetch.too_big ? "body over 1 MiB" : curl_easy_strerror(a->fetch.result));
            reply_text(c, 502, SEARCH_HEADERS, body);
        }
        break;
    }
}

struct rbuf *app_busy_response(const struct app *app)
{
    static const char text[] = "503 Service Unavailable: too many connections\n";
    return http_response_build(
        &(struct response){503, "text/plain; charset=utf-8", NULL, text, sizeof text - 1},
        app->model, MODE_CLOSE, false);
}
