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
#include "upstream_url.h"

static void usage(const char *model)
{
    fprintf(stderr,
            "usage: chat-%s [--listen HOST:PORT] [--users FILE] [--secret FILE]\n"
            "       [--upstream PREFIX] [--max-conns N] [--gil] [--redis URL] [--demo]%s\n"
            "  --listen HOST:PORT  where to listen (default 127.0.0.1:8080; port 0 picks one)\n"
            "  --users FILE        users file (default: demo accounts coco, cc, aa / 123456,\n"
            "                      only on a loopback --listen unless --demo)\n"
            "  --demo              allow the demo accounts on a non-loopback --listen\n"
            "  --secret FILE       HMAC key for session cookies, >= 32 bytes (default: random)\n"
            "  --upstream PREFIX   URL prefix for /search, the word appended (default: none,\n"
            "                      /search is 503); it must end the host with '/', '?' or '#'\n"
            "  --max-conns N       open connections beyond N get 503 (default 10000)\n"
            "  --gil               emulate CPython's global interpreter lock\n"
            "  --redis URL         share one room with other servers through Redis,\n"
            "                      e.g. redis://127.0.0.1:6379/0 (docs/scaling-out.md)\n",
            model,
            strcmp(model, "async") == 0      ? " [--cpu-pool]\n  --cpu-pool          run /cpu on libuv's thread pool"
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

static int parse_flags(struct config *cfg, const char *model, int argc, char **argv)
{
    bool async = strcmp(model, "async") == 0, threaded = strcmp(model, "threaded") == 0;
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
            ok = backplane_url_ok(val) && (cfg->redis = val) != NULL;
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
            fprintf(stderr, "chat-%s: bad value for %s: %s\n", model, name, val);
            return 2;
        }
    }
    return 0;
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
