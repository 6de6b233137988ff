/* Turning connections away politely, off the accepting thread.
 *
 * A refused client gets its 503 at once, but the socket cannot simply be
 * closed: if the client's request arrives after our close (or is still
 * unread), the kernel answers with a reset, and a reset can destroy the 503
 * before the client reads it. So the socket lingers — FIN sent, the rest of
 * the request read and dropped — until the client closes or a second
 * passes. One thread does that for all refused sockets with one poll().
 */
#ifndef C10K_REFUSER_H
#define C10K_REFUSER_H

#include "buf.h"

int refuser_start(void);
/* Takes fd and the response (may be NULL). Never blocks. */
void refuser_add(int fd, struct rbuf *response);
void refuser_stop(void); /* closes what still lingers */

#endif
