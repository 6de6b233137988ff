#include "http_chunks.h"

#include "http_request.h"
#include "text.h"

enum {
    C_SIZE_START,
    C_SIZE,
    C_EXT,
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TRAILER,
    C_DONE,
};

/* The state after byte c of a size line, or a status. */
static int size_line(struct chunk_scan *s, unsigned char c)
{
    int h = hex_digit(c);
    switch (s->state) {
    case C_SIZE_START:
    case C_SIZE:
        if (h >= 0) {
            /* Capped as it grows, so it never overflows: past the body
             * limit nothing more of this request will be read anyway. */
            s->size = (s->state == C_SIZE ? s->size * 16 : 0) + (uint32_t)h;
            return s->size > HTTP_MAX_BODY - s->total ? 413 : C_SIZE;
        }
        if (s->state == C_SIZE_START)
            return 400;
        if (c == '\r')
            return C_SIZE_LF;
        return c == ';' || c == ' ' ? C_EXT : 400;
    case C_EXT:
        if (c == '\r')
            return C_SIZE_LF;
        return c == '\t' || (c >= 0x20 && c != 0x7f) ? C_EXT : 400;
    case C_SIZE_LF:
        if (c != '\n')
            return 400;
        if (s->size == 0) {
            head_scan_trailers(&s->trailer);
            return C_TRAILER;
        }
        s->left = s->size;
        return C_DATA;
    }
    return 400;
}

int chunks_scan(struct chunk_scan *s, const char *p, size_t n, size_t *end)
{
    size_t i = 0;
    while (i < n && s->state != C_DONE) {
        unsigned char c = (unsigned char)p[i];
        int next;
        switch (s->state) {
        case C_DATA: {
            /* The data is opaque: skip it whole, not byte by byte. */
            size_t take = n - i < s->left ? n - i : s->left;
            s->left -= (uint32_t)take;
            s->total += (uint32_t)take;
            i += take;
            if (s->left == 0)
                s->state = C_DATA_CR;
            continue;
        }
        case C_DATA_CR:
            next = c == '\r' ? C_DATA_LF : 400;
            break;
        case C_DATA_LF:
            next = c == '\n' ? C_SIZE_START : 400;
            break;
        case C_TRAILER: {
            int v = head_scan_byte(&s->trailer, c);
            next = v == HEAD_DONE ? C_DONE : v == HEAD_NEED_MORE ? C_TRAILER : v;
            break;
        }
        default:
            next = size_line(s, c);
            break;
        }
        if (next >= 100)
            return next;
        s->state = (uint8_t)next;
        i++;
    }
    *end = i;
    return s->state == C_DONE ? CHUNKS_DONE : CHUNKS_MORE;
}
