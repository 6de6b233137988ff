/* POST /login before the loop starts: one blocking exchange on a plain
 * socket is all it takes, and it keeps the modes' loops free of a login
 * state machine. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "chatbench.h"

/* PBKDF2 with 100 000 iterations on a busy server takes a while; anything
 * beyond this is a server that will not answer. */
#define LOGIN_TIMEOUT_S 30

/* application/x-www-form-urlencoded: unreserved bytes as they are, space
 * as '+', everything else %XX. Returns the length or -1 if out is short. */
static long form_encode(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (o + 4 > outlen)
            return -1;
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[o++] = (char)ch;
        } else if (ch == ' ') {
            out[o++] = '+';
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = 0;
    return (long)o;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int chatbench_login(const struct opts *o, char *cookie, size_t len)
{
    const struct target *t = &o->target;
    char user[200], pass[400], body[700], req[1200];
    if (form_encode(o->user, user, sizeof user) < 0 ||
        form_encode(o->password, pass, sizeof pass) < 0) {
        fprintf(stderr, "chatbench: login: user name or password too long\n");
        return -1;
    }
    int blen = snprintf(body, sizeof body, "username=%s&password=%s", user, pass);
    int rlen = snprintf(req, sizeof req,
                        "POST /login HTTP/1.1\r\nHost: %s:%u\r\n"
                        "Content-Type: application/x-www-form-urlencoded\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                        t->host, t->port, blen, body);
    if (blen < 0 || (size_t)blen >= sizeof body || rlen < 0 || (size_t)rlen >= sizeof req) {
        fprintf(stderr, "chatbench: login: request too long\n");
        return -1;
    }

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(t->port)};
    inet_pton(AF_INET, t->host, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "chatbench: login: socket: %s\n", strerror(errno));
        return -1;
    }
    /* SO_SNDTIMEO bounds connect() too on Linux. */
    struct timeval tv = {.tv_sec = LOGIN_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "chatbench: login: connect to %s:%u: %s\n", t->host, t->port,
                strerror(errno));
        close(fd);
        return -1;
    }
    if (send_all(fd, req, (size_t)rlen) < 0) {
        fprintf(stderr, "chatbench: login: send: %s\n", strerror(errno));
        close(fd);
        return -1;
    }

    /* Only the head matters; it is small. */
    char resp[16384];
    size_t n = 0;
    char *end = NULL;
    while (!end && n < sizeof resp - 1) {
        ssize_t r = recv(fd, resp + n, sizeof resp - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "chatbench: login: %s before the response head was complete\n",
                    r == 0 ? "connection closed" : errno == EAGAIN ? "timeout" : strerror(errno));
            close(fd);
            return -1;
        }
        n += (size_t)r;
        resp[n] = 0;
        end = strstr(resp, "\r\n\r\n");
    }
    close(fd);
    if (!end) {
        fprintf(stderr, "chatbench: login: response head over %zu bytes\n", sizeof resp - 1);
        return -1;
    }
    *end = 0;
    int status = 0;
    if (strncmp(resp, "HTTP/1.", 7) != 0 || sscanf(resp + 8, " %3d", &status) != 1) {
        fprintf(stderr, "chatbench: login: not an HTTP response\n");
        return -1;
    }
    if (status != 303) {
        fprintf(stderr, "chatbench: login as '%s' failed: %.*s%s\n", o->user,
                (int)strcspn(resp, "\r\n"), resp,
                status == 401 ? " (wrong user name or password?)" : "");
        return -1;
    }
    /* Set-Cookie: session=VALUE; HttpOnly; ... -> "session=VALUE" */
    for (char *line = strstr(resp, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "Set-Cookie:", 11) != 0)
            continue;
        char *v = line + 11;
        v += strspn(v, " \t");
        if (strncmp(v, "session=", 8) != 0)
            continue;
        size_t vl = strcspn(v, ";\r\n \t");
        if (vl == 8) {
            fprintf(stderr, "chatbench: login: empty session cookie\n");
            return -1;
        }
        if (vl >= len) {
            fprintf(stderr, "chatbench: login: session cookie longer than %zu bytes\n", len - 1);
            return -1;
        }
        memcpy(cookie, v, vl);
        cookie[vl] = 0;
        return 0;
    }
    fprintf(stderr, "chatbench: login: 303 without a session cookie\n");
    return -1;
}
