/* The WebSocket client side shared by `chatbench ws` and `chatbench seat`.
 *
 * A pool of N clients on one libuv loop. The pool connects them with a
 * bounded number of handshakes in flight (so the server's accept queue and
 * the kernel's SYN backlog are never flooded, which would only measure
 * SYN retransmit timers), optionally from several source addresses
 * 127.0.0.2.. (so the ~28 000 ephemeral ports of one address are no limit),
 * checks each 101 and its Sec-WebSocket-Accept, and then splits what the
 * server sends into frames.
 *
 * Reading is built for fan-out: every client reads into one static buffer
 * (libuv calls alloc and read back to back for one stream, so one buffer
 * serves all), frames are handed to the mode where they lie, and only a
 * frame cut by a read boundary is copied, into a small fixed buffer inside
 * the client. A frame larger than that buffer (a welcome with history) is
 * delivered truncated to its first bytes, which hold its type and seq, and
 * the rest is skipped: nothing is allocated per frame, ever.
 */
#ifndef C10K_CHATBENCH_WSCLIENT_H
#define C10K_CHATBENCH_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "chatbench.h"

/* Large enough for a whole join/leave/message event of chatbench's own
 * (about 170 bytes with a 32-byte user name) plus the frame header. */
#define WSC_PART 256
/* Handshakes (connect to 101) in flight at once. */
#define WSC_MAX_INFLIGHT 200
/* A handshake not done after this long fails with 'timeout'. */
#define WSC_HANDSHAKE_NS (10ull * 1000000000ull)
/* The whole connecting phase is bounded too: what is not open by then
 * fails with 'timeout', so a run always ends. */
#define WSC_CONNECT_PHASE_NS (300ull * 1000000000ull)

enum wsc_state {
    WSC_IDLE,       /* not started */
    WSC_CONNECTING, /* TCP connect in progress */
    WSC_HANDSHAKE,  /* request sent, waiting for 101 */
    WSC_OPEN,
    WSC_DEAD,       /* failed or closed; the handle is closed (or never was) */
};

struct wsc_pool;

struct wsc {
    uv_tcp_t tcp;
    uv_connect_t conn;
    struct wsc_pool *pool;
    uint64_t t_start;     /* ns when the connect began */
    uint64_t skip;        /* payload bytes of an oversized frame still to drop */
    char *hs;             /* handshake response so far (heap, handshake only) */
    const char *why;      /* static: why it failed or closed */
    uint32_t idx;
    uint16_t hs_len;
    uint16_t plen;        /* bytes of a cut frame held in part */
    uint16_t close_code;  /* the server's close code, 0 if none */
    uint8_t state;
    bool has_handle;      /* tcp initialised and not yet uv_close()d */
    char accept[29];      /* expected Sec-WebSocket-Accept */
    uint8_t part[WSC_PART];
};

struct wsc_ops {
    /* Handshake done (101, accept key right). Frames may follow at once. */
    void (*open)(struct wsc *c);
    /* Never opened: c->why says why (connect, refused, reset, timeout,
     * closed, status, handshake). */
    void (*fail)(struct wsc *c);
    /* A text/binary frame: `have` bytes of its `len` are at p (have < len
     * only for frames larger than WSC_PART). */
    void (*frame)(struct wsc *c, unsigned op, const uint8_t *p, size_t have, uint64_t len);
    /* Was open, now closed by the server (close frame, EOF or reset);
     * c->why names it ("closed 1008", "closed", "reset"...). */
    void (*closed)(struct wsc *c);
    /* Every client has opened or failed. */
    void (*connected)(struct wsc_pool *p);
};

struct wsc_pool {
    uv_loop_t *loop;
    const struct opts *o;
    struct wsc_ops ops;
    void *user;
    char *clients;        /* n clients of `size` bytes, each starting with a struct wsc */
    size_t size;
    unsigned n;
    unsigned next;        /* next client to start */
    unsigned inflight;
    unsigned done;        /* opened or failed */
    unsigned opened;
    uint64_t t_first;     /* ns when the first connect began */
    uv_timer_t sweep;     /* handshake timeouts */
    struct sockaddr_in dst, dst2; /* dst2: opts.also, for odd clients */
    bool has_dst2;
    char req[1024];       /* the upgrade request up to the key header */
    size_t req_len;
    bool pumping, connected_called, sweep_on;
};

/* Raise RLIMIT_NOFILE's soft limit to the hard one; returns the new soft
 * limit. Also ignores SIGPIPE (a write to a socket the server closed must
 * be an error, not the end of the run). */
uint64_t wsc_prepare_process(void);

/* The clients are `size`-byte structs (a struct wsc first, mode fields
 * after), zeroed. Returns 0 or -1 (out of memory). */
int wsc_pool_init(struct wsc_pool *p, uv_loop_t *loop, const struct opts *o,
                  const char *cookie, unsigned n, size_t size, const struct wsc_ops *ops,
                  void *user);
void wsc_pool_start(struct wsc_pool *p);
/* Close every handle (no callbacks); then run the loop to let them go. */
void wsc_pool_close_all(struct wsc_pool *p);
void wsc_pool_free(struct wsc_pool *p);

static inline struct wsc *wsc_at(struct wsc_pool *p, unsigned i)
{
    return (struct wsc *)(void *)(p->clients + (size_t)i * p->size);
}

/* Stop a client from our side (no callback). */
void wsc_close(struct wsc *c);

/* A masked client frame (RFC 6455 5.3) of op with payload into out, which
 * has room for len + 14; returns its length. The mask comes from a cheap
 * PRNG: masking exists against cache poisoning through proxies, there is
 * none here, but servers must still see well-formed masked frames. */
size_t wsc_frame(uint8_t *out, unsigned op, const void *payload, size_t len);

/* Cheap PRNG for masks, keys and run ids (not for secrets). */
uint64_t wsc_rand(void);

#endif
