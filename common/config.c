/* Command-line flags common to all three servers, and the start-up that
 * must happen before the first thread or fork. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "app.h"
#include "login_limit.h"
#include "backplane.h"
#include "gil.h"
#include "http_request.h"
#include "redis_url.h"
#include "upstream_url.h"

static void usage(const char *model)
{
    fprintf(stderr,
            "usage: chat-%s [--listen HOST:PORT] [--users FILE] [--secret FILE]\n"
            "       [--upstream PREFIX] [--max-conns N] [--gil] [--redis URL [--redis-insecure]]\n"
            "       [--demo]%s\n"
            "  --listen HOST:PORT  where to listen (default 127.0.0.1:8080; port 0 picks one)\n"
            "  --users FILE        users file (default: demo accounts coco, cc, aa / 123456,\n"
            "                      only on a loopback --listen unless --demo)\n"
            "  --demo              allow the demo accounts on a non-loopback --listen\n"
            "  --secret FILE       HMAC key for session cookies, >= 32 bytes (default: random)\n"
            "  --upstream PREFIX   URL prefix for /search, the word appended (default: none,\n"
            "                      /search is 503); it must end the host with '/', '?' or '#'\n"
            "  --max-conns N       open connections beyond N get 503 (default 10000)\n"
            "  --gil               emulate CPython's global interpreter lock\n"
            "  --redis URL         share one room with other servers through Redis:\n"
            "                      redis://[:PASSWORD@]HOST[:PORT][/DB], e.g. redis://127.0.0.1:6379/0\n"
            "                      (no TLS: keep Redis on a private network; docs/scaling-out.md)\n"
            "  --redis-insecure    allow --redis to a host other than this one without a password\n",
            model,
            strcmp(model, "async") == 0      ? " [--cpu-pool]\n  --cpu-pool          run /cpu on libuv's thread pool"
            : strcmp(model, "uring") == 0    ? " [--cpu-pool]\n  --cpu-pool          run /cpu on the password-check pool"
            : strcmp(model, "threaded") == 0 ? " [--threads N] [--queue N]\n  --threads N         worker pool size (default 64; 0 = a thread per connection)\n  --queue N           accepted connections waiting for a worker (default 1024)"
                                             : "");
}

static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || *s == '-' || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

static bool parse_listen(const char *s, struct config *cfg)
{
    const char *colon = strrchr(s, ':');
    unsigned port;
    if (!colon || !parse_uint(colon + 1, 65535, &port))
        return false;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') { /* [::1]:8080 */
        s++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof cfg->listen_host)
        return false;
    memcpy(cfg->listen_host, s, hl);
    cfg->listen_host[hl] = '\0';
    cfg->listen_port = (unsigned short)port;
    return true;
}

/* --redis: checked here so that a bad URL stops the server at start. The
 * URL is copied and the password in argv overwritten, so that it does not
 * show in ps or /proc/PID/cmdline for the server's lifetime; no message
 * quotes it. */
static bool take_redis_url(struct config *cfg, const char *model, char *val)
{
    char shown[256], why[160];
    redis_url_redacted(val, shown, sizeof shown);
    struct redis_url u;
    size_t len = strlen(val);
    if (len >= sizeof cfg->redis_copy)
        snprintf(why, sizeof why, "longer than %zu bytes", sizeof cfg->redis_copy - 1);
    if (len >= sizeof cfg->redis_copy || redis_url_parse(val, &u, why, sizeof why) < 0) {
        fprintf(stderr, "chat-%s: bad value for --redis (%s): %s\n", model, shown, why);
        return false;
    }
    redis_url_wipe(&u);
    memcpy(cfg->redis_copy, val, len + 1);
    cfg->redis = cfg->redis_copy;
    size_t off, n;
    if (redis_url_secret_span(val, &off, &n))
        memset(val + off, '*', n);
    return true;
}

/* hiredis 0.14 has no TLS: what goes to Redis, the password included, is
 * clear text. A Redis on another machine without even a password lets
 * anyone who can reach it read the chat and write into the room; that
 * takes an explicit --redis-insecure. True if the server must refuse. */
static bool redis_exposed(const struct config *cfg, const char *model)
{
    struct redis_url u;
    if (!cfg->redis || redis_url_parse(cfg->redis, &u, NULL, 0) < 0)
        return false;
    bool exposed = !redis_url_loopback(&u) && u.password_len == 0 && !cfg->redis_insecure;
    if (exposed)
        fprintf(stderr,
                "chat-%s: refusing --redis to %s without a password: Redis is not on this machine, "
                "and anyone who can reach it could read the chat and write into the room. Give "
                "redis://:PASSWORD@%s/... (Redis's requirepass) and keep Redis on a private "
                "network (there is no TLS), or pass --redis-insecure to run this way anyway.\n",
                model, u.host, u.host);
    redis_url_wipe(&u);
    return exposed;
}

static int parse_flags(struct config *cfg, const char *model, int argc, char **argv)
{
    /* --cpu-pool: the two single-threaded models, which otherwise run /cpu
     * on their one thread. */
    bool async = strcmp(model, "async") == 0 || strcmp(model, "uring") == 0;
    bool threaded = strcmp(model, "threaded") == 0;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i], *val = NULL;
        char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        char name[32];
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nl >= sizeof name)
            nl = sizeof name - 1;
        memcpy(name, arg, nl);
        name[nl] = '\0';
        bool takes_value = strcmp(name, "--listen") == 0 || strcmp(name, "--users") == 0 ||
                           strcmp(name, "--secret") == 0 || strcmp(name, "--upstream") == 0 ||
                           strcmp(name, "--redis") == 0 ||
                           strcmp(name, "--max-conns") == 0 ||
                           (threaded && (strcmp(name, "--threads") == 0 ||
                                         strcmp(name, "--queue") == 0));
        if (takes_value) {
            val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val) {
                fprintf(stderr, "chat-%s: %s needs a value\n", model, name);
                return 2;
            }
        } else if (eq) {
            fprintf(stderr, "chat-%s: %s takes no value\n", model, name);
            return 2;
        }
        bool ok = true;
        if (strcmp(name, "--listen") == 0)
            ok = parse_listen(val, cfg);
        else if (strcmp(name, "--users") == 0)
            cfg->users_path = val;
        else if (strcmp(name, "--secret") == 0)
            cfg->secret_path = val;
        else if (strcmp(name, "--upstream") == 0) {
            char err[512];
            if (upstream_prefix_check(val, err, sizeof err) < 0) {
                fprintf(stderr, "chat-%s: %s\n", model, err);
                return 2;
            }
            cfg->upstream = val;
        }
        else if (strcmp(name, "--redis") == 0)
            ok = take_redis_url(cfg, model, val);
        else if (strcmp(name, "--redis-insecure") == 0)
            cfg->redis_insecure = true;
        else if (strcmp(name, "--max-conns") == 0)
            ok = parse_uint(val, 1000000, &cfg->max_conns) && cfg->max_conns > 0;
        else if (strcmp(name, "--threads") == 0)
            ok = parse_uint(val, 30000, &cfg->threads);
        else if (strcmp(name, "--queue") == 0)
            ok = parse_uint(val, 1000000, &cfg->queue);
        else if (strcmp(name, "--gil") == 0)
            cfg->gil = true;
        else if (strcmp(name, "--demo") == 0)
            cfg->demo = true;
        else if (async && strcmp(name, "--cpu-pool") == 0)
            cfg->cpu_pool = true;
        else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            usage(model);
            return -1;
        } else {
            fprintf(stderr, "chat-%s: unknown flag %s\n", model, arg);
            usage(model);
            return 2;
        }
        if (!ok) {
            if (strcmp(name, "--redis") != 0) /* take_redis_url said why, without the password */
                fprintf(stderr, "chat-%s: bad value for %s: %s\n", model, name, val);
            return 2;
        }
    }
    return redis_exposed(cfg, model) ? 2 : 0;
}

bool listen_host_is_loopback(const char *host)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) != 1)
        return false;
    static const unsigned char v6_loopback[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    return memcmp(a, v6_loopback, 16) == 0 || (memcmp(a, v4_mapped, 12) == 0 && a[12] == 127);
}

/* Contract: each server raises its descriptor soft limit to the hard one. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int app_init(struct app *app, const char *model, int argc, char **argv)
{
    char err[512];
    memset(app, 0, sizeof *app);
    app->model = model;
    app->n = &app->own;
    app->cfg = (struct config){.listen_host = "127.0.0.1", .listen_port = 8080,
                               .max_conns = 10000, .threads = 64, .queue = 1024};
    int rc = parse_flags(&app->cfg, model, argc, argv);
    if (rc)
        return rc < 0 ? -1 : rc;

    /* The demo accounts' password is in the README: anyone who can reach the
     * port can sign in. Only this machine can reach a loopback address; for
     * any other, the operator must say so. (A host no model can listen on is
     * refused here too, which costs nothing: the model would refuse it.) */
    if (!app->cfg.users_path && !app->cfg.demo && !listen_host_is_loopback(app->cfg.listen_host)) {
        fprintf(stderr,
                "chat-%s: refusing to start: no --users file, so the demo accounts coco, cc and "
                "aa (password 123456) would be open to anyone who can reach %s; give --users "
                "FILE (./lab adduser FILE NAME makes one), listen on a loopback address, or add "
                "--demo to serve the demo accounts there anyway\n",
                model, app->cfg.listen_host);
        return 2;
    }
    if (app->cfg.users_path) {
        app->users = users_load(app->cfg.users_path, err, sizeof err);
        if (!app->users) {
            fprintf(stderr, "chat-%s: %s\n", model, err);
            return 1;
        }
    } else {
        fprintf(stderr, "chat-%s: warning: no --users file; using the demo accounts coco, cc "
                        "and aa with password 123456\n", model);
        app->users = users_demo();
        if (!app->users) {
            fprintf(stderr, "chat-%s: cannot create the demo accounts\n", model);
            return 1;
        }
    }
    if (app->cfg.secret_path) {
        if (session_key_load(&app->key, app->cfg.secret_path, err, sizeof err) < 0) {
            fprintf(stderr, "chat-%s: %s\n", model, err);
            users_free(app->users);
            return 1;
        }
    } else if (session_key_random(&app->key) < 0) {
        fprintf(stderr, "chat-%s: cannot make a random session key\n", model);
        users_free(app->users);
        return 1;
    }
    /* Shared memory, so before the first fork: chat-forked's children
     * count their password checks against one budget. */
    app->logins = login_limit_new();
    if (!app->logins) {
        fprintf(stderr, "chat-%s: cannot set up the login limits\n", model);
        users_free(app->users);
        return 1;
    }
    if (app->cfg.gil)
        gil_enable();
    /* Process-wide settings, before any thread or fork (PITFALLS B1, B3). */
    http_req_global_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN); /* a vanished peer is an EPIPE, not a death */
    raise_nofile();
    app->started_ms = app_now_ms();
    return 0;
}

void app_free(struct app *app)
{
    users_free(app->users);
    app->users = NULL;
    login_limit_free(app->logins);
    app->logins = NULL;
    curl_global_cleanup();
}
