#include "action.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gil.h"

static struct action *action_new(enum action_kind kind)
{
    struct action *a = calloc(1, sizeof *a);
    if (a)
        a->kind = kind;
    return a;
}

struct action *action_sleep_new(unsigned ms)
{
    struct action *a = action_new(ACTION_SLEEP);
    if (a)
        a->sleep.ms = ms;
    return a;
}

struct action *action_cpu_new(unsigned long rounds)
{
    struct action *a = action_new(ACTION_CPU);
    if (a)
        a->cpu.rounds = rounds;
    return a;
}

struct action *action_fetch_new(const char *prefix, const char *word)
{
    struct action *a = action_new(ACTION_FETCH);
    if (!a)
        return NULL;
    /* curl_easy_escape keeps RFC 3986's unreserved characters and escapes
     * everything else; since 7.82 it ignores its handle argument. */
    char *esc = curl_easy_escape(NULL, word, (int)strlen(word));
    size_t n = esc ? strlen(prefix) + strlen(esc) + 1 : 0;
    a->fetch.url = esc ? malloc(n) : NULL;
    if (!a->fetch.url) {
        curl_free(esc);
        free(a);
        return NULL;
    }
    strcpy(a->fetch.url, prefix);
    strcat(a->fetch.url, esc);
    curl_free(esc);
    return a;
}

struct action *action_password_new(const struct user_record *rec, const char *user,
                                   const char *password, size_t len)
{
    struct action *a = action_new(ACTION_PASSWORD);
    if (!a)
        return NULL;
    a->login.password = malloc(len + 1);
    if (!a->login.password) {
        free(a);
        return NULL;
    }
    memcpy(a->login.password, password, len);
    a->login.password[len] = '\0';
    a->login.len = len;
    a->login.rec = rec;
    snprintf(a->login.user, sizeof a->login.user, "%s", user);
    return a;
}

void action_free(struct action *a)
{
    if (!a)
        return;
    switch (a->kind) {
    case ACTION_FETCH:
        if (a->fetch.easy)
            curl_easy_cleanup(a->fetch.easy);
        free(a->fetch.url);
        buf_free(&a->fetch.body);
        break;
    case ACTION_PASSWORD:
        if (a->login.limit)
            login_limit_leave(a->login.limit, a->login.slot, &a->login.peer, false, time(NULL));
        if (a->login.password) {
            OPENSSL_cleanse(a->login.password, a->login.len);
            free(a->login.password);
        }
        break;
    default:
        break;
    }
    free(a);
}

/* Fetch the digest once and reuse one context per call: the SHA256()
 * one-shot looks the algorithm up under a library lock on every call, and
 * the threaded-vs-GIL comparison would then measure OpenSSL's lock
 * (PITFALLS B7). The fetched EVP_MD lives as long as the process. */
static EVP_MD *sha256;
static void fetch_sha256(void) { sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); }

static atomic_bool cancelled;
void action_cancel_all(void) { atomic_store(&cancelled, true); }

void cpu_rounds(unsigned long n, char hex[65])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fetch_sha256);
    unsigned char d[32] = {0};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = sha256 ? sha256 : EVP_sha256();
    for (unsigned long i = 0; i < n; i++) {
        unsigned int len = sizeof d;
        EVP_DigestInit_ex2(ctx, md, NULL);
        EVP_DigestUpdate(ctx, d, sizeof d);
        EVP_DigestFinal_ex(ctx, d, &len);
        /* Under --gil, offer the lock now and then, like the eval loop. */
        if ((i & 255) == 255) {
            gil_tick();
            if (atomic_load_explicit(&cancelled, memory_order_relaxed))
                break;
        }
    }
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

void action_run(struct action *a)
{
    switch (a->kind) {
    case ACTION_CPU:
        cpu_rounds(a->cpu.rounds, a->cpu.hex);
        break;
    case ACTION_PASSWORD:
        a->login.ok = password_check(a->login.rec, a->login.password, a->login.len);
        OPENSSL_cleanse(a->login.password, a->login.len);
        break;
    default:
        break;
    }
}

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
    struct action *a = userdata;
    size_t len = size * n;
    /* Every response carries Content-Length, so the body is held whole; a
     * short return aborts the transfer with CURLE_WRITE_ERROR (502). */
    if (buf_append(&a->fetch.body, p, len, FETCH_MAX_BODY) < 0) {
        a->fetch.too_big = true;
        return 0;
    }
    return len;
}

CURL *action_fetch_easy(struct action *a)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, a->fetch.url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)FETCH_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(e, CURLOPT_PRIVATE, a);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "c10k-lab");
    a->fetch.easy = e;
    return e;
}

static bool field_value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p != '\t' && (*p < 0x20 || *p == 0x7f))
            return false;
    return true;
}

void action_fetch_done(struct action *a, CURLcode rc)
{
    a->fetch.result = rc;
    if (rc == CURLE_OK) {
        char *ct = NULL;
        curl_easy_getinfo(a->fetch.easy, CURLINFO_RESPONSE_CODE, &a->fetch.status);
        /* The type goes into our own head: only a field value's characters
         * (RFC 9110 5.5), else none (application/octet-stream). */
        if (curl_easy_getinfo(a->fetch.easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct &&
            strlen(ct) < sizeof a->fetch.content_type && field_value_ok(ct))
            strcpy(a->fetch.content_type, ct);
    }
}
