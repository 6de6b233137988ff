/* The test socket: a raw TCP connection from a test to the server, and the
 * bytes received on it not yet consumed. For what libcurl cannot do: half
 * a request, a flood, a slow reader, a peer that resets. It knows nothing
 * of HTTP; tsock_read_response (harness_http.h) reads a response from it.
 * (Not the core's struct conn, common/conn.h: that is the server's side.) */
#ifndef C10K_INTEG_HARNESS_TSOCK_H
#define C10K_INTEG_HARNESS_TSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness_util.h"

struct tsock {
    int fd;
    char *buf; /* bytes received, not yet consumed */
    size_t len, cap;
    bool eof;   /* orderly EOF seen */
    bool reset; /* ECONNRESET or another error seen */
};

enum rd { RD_OK, RD_EOF, RD_RESET, RD_TIMEOUT, RD_BAD };
const char *rd_name(enum rd r);

/* Connect to 127.0.0.1:port (blocking socket, TCP_NODELAY). rcvbuf > 0 sets
 * SO_RCVBUF before connecting. Asserts success. */
int tcp_connect(int port, int rcvbuf);
void tsock_open(struct tsock *c, int port);
void tsock_close(struct tsock *c);
/* Send everything (MSG_NOSIGNAL). Returns false if the peer is gone. */
bool tsock_send(struct tsock *c, const void *p, size_t n);
bool tsock_sends(struct tsock *c, const char *s);
/* Read more bytes into c->buf, waiting until the deadline (now_ms()
 * clock) at most: RD_OK when some came, else RD_EOF, RD_RESET (sticky, like
 * c->eof and c->reset) or RD_TIMEOUT. */
enum rd tsock_fill(struct tsock *c, int64_t deadline);
/* Drop the first n bytes of c->buf (n <= c->len). */
void tsock_consume(struct tsock *c, size_t n);
/* Read until EOF (or reset); *extra counts the bytes that came before it. */
enum rd tsock_wait_eof(struct tsock *c, int cap_ms, size_t *extra);

#endif
