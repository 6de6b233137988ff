/* Socket plumbing shared by the two blocking models (threaded, forked):
 * listening, accepting without a busy loop when descriptors run out, and
 * the last words to a refused client. The async model has libuv for this. */
#ifndef C10K_NET_H
#define C10K_NET_H

#include <sys/types.h>

#include "app.h"

/* Bind and listen on cfg's address (backlog 4096, CLOEXEC), print the
 * contract's "listening on" line. Returns the descriptor or -1 (printed). */
int net_listen(const struct config *cfg, const char *model);

/* accept4 with CLOEXEC. When the process is out of descriptors, the
 * waiting connection is accepted on a spare descriptor and closed at once
 * (libuv's uv__emfile_trick), so the listener does not stay readable and
 * the accept loop does not spin. Returns a descriptor, or -1 (errno EAGAIN
 * when there was nothing, or nothing usable, to accept). */
int net_accept(int listener);

/* Tell the core who the client on fd is (getpeername): failed logins are
 * counted per source address. */
void net_conn_peer(struct conn *c, int fd);

/* The last words to a refused client: send a whole small response without
 * blocking (a new connection's kernel buffer has room), then our FIN. The
 * caller still lingers before closing (refuser.c, or chat-forked's loop). */
void net_send_refusal(int fd, struct rbuf *response);

/* Write what the socket takes now from q (non-blocking writev) and consume
 * it. Returns the bytes written (0: the socket is full), or -1 on an error
 * that ends the connection. */
ssize_t net_write_outq(int fd, struct outq *q);

/* Close after the last response: shutdown(SHUT_WR), then read and discard
 * until the peer's FIN or `ms` pass, so pending request bytes cannot turn
 * the close into a reset that destroys the response in flight. */
void net_linger_close(int fd, int ms);

#endif
