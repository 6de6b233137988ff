#include "http_response.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "Status";
    }
}

const char *http_date_now(void)
{
    /* Formatting a date costs more than the rest of a small response; one
     * string per second per thread is plenty (Date has 1 s resolution). */
    static _Thread_local time_t cached_at = -1;
    static _Thread_local char date[40];
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_at = now;
    }
    return date;
}

static bool has_length(int status)
{
    return status != 101 && status != 204 && status != 304 && status >= 200;
}

struct rbuf *http_response_build(const struct response *r, const char *model,
                                 enum conn_mode mode, bool head_only)
{
    static const char *const conn_line[] = {
        [MODE_CLOSE] = "Connection: close\r\n",
        [MODE_KEEP] = "",
        [MODE_KEEP_ECHO] = "Connection: keep-alive\r\n",
        [MODE_UPGRADE] = "",
    };
    char head[1024];
    char ctype[160] = "";
    char clen[48] = "";
    if (r->content_type)
        snprintf(ctype, sizeof ctype, "Content-Type: %s\r\n", r->content_type);
    if (has_length(r->status))
        snprintf(clen, sizeof clen, "Content-Length: %zu\r\n", r->body_len);
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: c10k-lab/%s\r\n%s%s%s",
                      r->status, http_status_text(r->status), http_date_now(), model, ctype,
                      clen, conn_line[mode]);
    if (hn < 0 || (size_t)hn >= sizeof head)
        return NULL;
    size_t extra = r->headers ? strlen(r->headers) : 0;
    size_t body = head_only || !has_length(r->status) ? 0 : r->body_len;
    struct rbuf *out = rbuf_new((size_t)hn + extra + 2 + body);
    if (!out)
        return NULL;
    char *p = out->data;
    memcpy(p, head, (size_t)hn);
    p += hn;
    if (extra)
        memcpy(p, r->headers, extra);
    p += extra;
    memcpy(p, "\r\n", 2);
    p += 2;
    if (body)
        memcpy(p, r->body, body);
    return out;
}

int html_escape_append(struct buf *b, const char *s, size_t n, size_t limit)
{
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default:
            if (buf_append(b, &s[i], 1, limit) < 0)
                return -1;
            continue;
        }
        if (buf_append(b, rep, strlen(rep), limit) < 0)
            return -1;
    }
    return 0;
}
