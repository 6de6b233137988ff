/* CONTRACT.md, POST /login: the cookie "carries the user name and its expiry
 * under an HMAC-SHA256, so a server needs no session table and any of the
 * three models accepts a cookie another made with the same --secret".
 *
 * The server under test ($C10K_SERVER, with $C10K_SERVER_ARGS) and one
 * server of every model ($C10K_ASYNC, $C10K_THREADED, $C10K_FORKED and
 * $C10K_URING; else the ones built beside this suite, chat-uring only where
 * it is built) share one --secret and one users file. A cookie issued by a
 * login on one opens the chat page and the chat's WebSocket on the others,
 * both ways; the same cookie with its MAC, its user or its expiry changed is
 * refused by every one of them. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ws_client.h"

TestSuite(cross_model, SUITE_CFG);

#define MAX_PEERS 4

struct peer {
    const char *env;
    const char *bin;
    struct server srv;
};

static const char *model_bin(const char *env, const char *fallback)
{
    const char *bin = getenv(env);
    return bin && *bin ? bin : fallback;
}

#ifndef C10K_ASYNC_DEFAULT
#define C10K_ASYNC_DEFAULT NULL
#endif
#ifndef C10K_THREADED_DEFAULT
#define C10K_THREADED_DEFAULT NULL
#endif
#ifndef C10K_FORKED_DEFAULT
#define C10K_FORKED_DEFAULT NULL
#endif
#ifndef C10K_URING_DEFAULT
#define C10K_URING_DEFAULT NULL /* not built: liburing missing */
#endif

/* The peers that exist; the three the contract names must. */
static int peers_find(struct peer *p)
{
    struct {
        const char *env, *fallback;
        bool required;
    } all[MAX_PEERS] = {
        {"C10K_ASYNC", C10K_ASYNC_DEFAULT, true},
        {"C10K_THREADED", C10K_THREADED_DEFAULT, true},
        {"C10K_FORKED", C10K_FORKED_DEFAULT, true},
        {"C10K_URING", C10K_URING_DEFAULT, false},
    };
    int n = 0;
    for (int i = 0; i < MAX_PEERS; i++) {
        const char *bin = model_bin(all[i].env, all[i].fallback);
        if (!bin) {
            cr_assert(!all[i].required, "%s is not set: which binary is that model?", all[i].env);
            cr_log_info("%s is not set and chat-uring is not built: three peers", all[i].env);
            continue;
        }
        if (!all[i].required && !uring_permitted(bin))
            continue; /* io_uring not permitted here: logged, three peers */
        memset(&p[n], 0, sizeof p[n]);
        p[n].env = all[i].env;
        p[n].bin = bin;
        n++;
    }
    return n;
}

static const char SECRET[] = "cross-model secret, 32 bytes or more, shared by every server\n";

/* The server under test and every peer, on one secret and one users file. */
static int start_all(struct server *home, struct peer *p)
{
    char *secret = temp_file(SECRET, sizeof SECRET - 1);
    char *users = users_file(ARGS("ann", "ann-pw", "bob", "bob-pw"), NULL);
    const char *const *flags = ARGS("--secret", secret, "--users", users);
    server_start(home, flags);
    int n = peers_find(p);
    for (int i = 0; i < n; i++)
        server_start_bin(&p[i].srv, p[i].bin, flags);
    free(secret);
    free(users);
    return n;
}

static void stop_all(struct server *home, struct peer *p, int n)
{
    for (int i = 0; i < n; i++)
        server_stop(&p[i].srv);
    server_stop(home);
}

/* GET /chat with the cookie: its status; on 200 the page must name user. */
static int chat_page(struct server *s, const char *cookie, const char *user)
{
    char *h = cookie_header(cookie);
    struct http_resp r;
    http_get(&r, s->port, "/chat", HDRS(h));
    free(h);
    int status = r.status;
    if (status == 200)
        cr_assert(strstr(r.body, user) != NULL, "%s's chat page does not name %s",
                  server_model(s), user);
    resp_free(&r);
    return status;
}

/* The upgrade to /chat/ws with that cookie: its status (101 on success). */
static int upgrade_status(int port, const char *cookie)
{
    char *req = xasprintf("GET /chat/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\nCookie: %s\r\n\r\n",
                          port, cookie);
    struct http_resp r;
    raw_request(port, req, false, &r);
    free(req);
    int status = r.status;
    resp_free(&r);
    return status;
}

/* issuer's cookie for user opens the page and the chat on s. */
static void expect_accepted(struct server *issuer, struct server *s, const char *cookie,
                            const char *user)
{
    int st = chat_page(s, cookie, user);
    cr_assert_eq(st, 200, "a cookie from chat-%s: chat-%s's /chat answered %d",
                 server_model(issuer), server_model(s), st);
    struct ws *w = chat_join(s->port, cookie, user, NULL, NULL);
    chat_round_trip(w, "signed elsewhere");
    ws_free(w);
}

/* Both ways between the server under test and each model. */
Test(cross_model, cookie_from_one_model_accepted_by_every_other)
{
    struct server home;
    struct peer p[MAX_PEERS];
    int n = start_all(&home, p);
    char *mine = login(home.port, "ann", "ann-pw");
    for (int i = 0; i < n; i++) {
        expect_accepted(&home, &p[i].srv, mine, "ann");
        char *theirs = login(p[i].srv.port, "bob", "bob-pw");
        expect_accepted(&p[i].srv, &home, theirs, "bob");
        free(theirs);
    }
    free(mine);
    stop_all(&home, p, n);
}

/* "1|EXPIRY|NAME|HEXMAC" (common/session.h) with one part changed. */
enum tamper { T_MAC, T_USER, T_EXPIRY };

static char *tampered(const char *cookie, enum tamper how)
{
    unsigned long long expiry;
    char name[40], mac[80];
    cr_assert(sscanf(cookie, "session=1|%llu|%39[^|]|%79s", &expiry, name, mac) == 3,
              "unexpected cookie format: %s", cookie);
    switch (how) {
    case T_MAC:
        mac[0] = mac[0] == '0' ? '1' : '0';
        break;
    case T_USER: /* bob exists: only the MAC tells the cookie is not his */
        snprintf(name, sizeof name, "bob");
        break;
    case T_EXPIRY:
        expiry += 86400;
        break;
    }
    return xasprintf("session=1|%llu|%s|%s", expiry, name, mac);
}

/* A cookie from the server under test, altered three ways: every server
 * refuses each (the page sends to /login, the WebSocket is 401), while the
 * cookie itself is accepted by all of them. */
Test(cross_model, tampered_cookie_refused_by_every_model)
{
    struct server home;
    struct peer p[MAX_PEERS];
    int n = start_all(&home, p);
    struct server *all[MAX_PEERS + 1] = {&home};
    for (int i = 0; i < n; i++)
        all[i + 1] = &p[i].srv;
    char *cookie = login(home.port, "ann", "ann-pw");
    const char *names[] = {"MAC", "user", "expiry"};
    for (int t = T_MAC; t <= T_EXPIRY; t++) {
        char *bad = tampered(cookie, (enum tamper)t);
        for (int i = 0; i <= n; i++) {
            const char *m = server_model(all[i]);
            int st = chat_page(all[i], bad, "ann");
            cr_assert_eq(st, 302, "chat-%s: a cookie with its %s changed got /chat %d", m,
                         names[t], st);
            st = upgrade_status(all[i]->port, bad);
            cr_assert_eq(st, 401, "chat-%s: a cookie with its %s changed got /chat/ws %d", m,
                         names[t], st);
        }
        free(bad);
    }
    /* The control: unaltered, the same cookie passes everywhere. */
    for (int i = 0; i <= n; i++) {
        cr_assert_eq(chat_page(all[i], cookie, "ann"), 200, "chat-%s refused the cookie",
                     server_model(all[i]));
        cr_assert_eq(upgrade_status(all[i]->port, cookie), 101);
    }
    free(cookie);
    stop_all(&home, p, n);
}

/* The contract's `model` (/stats) and `Server: c10k-lab/<model>` name the
 * binary's own model: chat-async says async, and so on. check_common_headers
 * compares the two with each other on every answer; this ties them to the
 * binary, which only the peers' environment names tell apart. The server
 * under test is named by its file, chat-MODEL. */
Test(cross_model, each_binary_names_its_own_model)
{
    struct server home;
    struct peer p[MAX_PEERS];
    int n = start_all(&home, p);
    for (int i = 0; i <= n; i++) {
        struct server *s = i == 0 ? &home : &p[i - 1].srv;
        char want[32];
        if (i == 0) {
            const char *base = strrchr(getenv("C10K_SERVER"), '/');
            base = base ? base + 1 : getenv("C10K_SERVER");
            cr_assert(strncmp(base, "chat-", 5) == 0, "C10K_SERVER is not a chat-MODEL: %s", base);
            snprintf(want, sizeof want, "%s", base + 5);
        } else {
            snprintf(want, sizeof want, "%s", p[i - 1].env + strlen("C10K_"));
            for (char *c = want; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        }
        cr_assert_str_eq(server_model(s), want, "the %s binary calls itself %s in /stats",
                         want, server_model(s));
        struct http_resp r;
        http_get(&r, s->port, "/hello", NULL);
        char *server_hdr = xasprintf("c10k-lab/%s", want);
        cr_assert_eq(r.status, 200);
        cr_assert(resp_header(&r, "Server") && strcmp(resp_header(&r, "Server"), server_hdr) == 0,
                  "chat-%s answered with Server: %s", want,
                  resp_header(&r, "Server") ? resp_header(&r, "Server") : "(none)");
        free(server_hdr);
        resp_free(&r);
    }
    stop_all(&home, p, n);
}
