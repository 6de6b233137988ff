/* The connection state machine (see conn.h for how a model drives it).
 *
 * HTTP: bytes go to http-parser, which pauses after each complete request
 * so that requests are answered strictly in order. Input that arrives while
 * a request is being answered waits in c->in (bounded), and reading pauses
 * when it fills: that is how pipelining meets backpressure.
 *
 * WebSocket: after the upgrade the same bytes go to the frame decoder, and
 * complete messages go to the room.
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "http_response.h"

static void ws_feed(struct conn *c, const char *data, size_t len)
{
    struct ws_session *w = c->ws;
    size_t off = 0;
    /* Until the decoder says "nothing more": that last call, even with no
     * input left, is where it frees a delivered message's buffer, so an idle
     * member holds no heap memory. */
    for (;;) {
        size_t used = 0;
        struct ws_event ev =
            ws_decode(&w->dec, (const uint8_t *)data + off, len - off, &used);
        off += used;
        if (ev.type == WS_EV_NONE)
            break;
        switch (ev.type) {
        case WS_EV_NONE:
        case WS_EV_PONG:
            break;
        case WS_EV_TEXT:
            if (w->phase == WS_OPEN)
                room_post(c->app->room, &w->member, ev.data, ev.len);
            break;
        case WS_EV_PING:
            if (w->phase == WS_OPEN)
                queue(c, ws_frame_new(WS_OP_PONG, ev.data, ev.len));
            break;
        case WS_EV_CLOSE:
            /* Echo the peer's code (none if it sent none), then the server
             * closes the TCP connection first (RFC 6455 7.1.1). */
            if (w->phase == WS_OPEN) {
                leave_room(c);
                queue(c, ws_close_frame_new(ev.code == 1005 ? 0 : ev.code));
            }
            w->phase = WS_CLOSED;
            c->close = CLOSE_FLUSHED;
            break;
        case WS_EV_ERROR:
            ws_close(c, ev.code);
            break;
        }
    }
}
