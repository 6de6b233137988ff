/* Has the server been asked to stop, even if its loop has not read the
 * signal yet?
 *
 * Every model blocks SIGINT and SIGTERM in all its threads and reads them
 * from a signalfd, as one more event of its loop. Until the loop gets to
 * that event the signal waits, pending, in the kernel — and a loop can be
 * busy for seconds with what it read before it: a thousand members closing
 * at once, each leave a frame for each of 9 000 others. The room asks here
 * before it announces a leave (room.h, room_sink.stopping), so a leave that
 * comes with the stop costs nothing: everyone is about to get close 1001.
 */
#ifndef C10K_STOP_SIGNAL_H
#define C10K_STOP_SIGNAL_H

#include <stdbool.h>

/* For a loop with one thread of its own (chat-async, chat-uring): block
 * SIGINT and SIGTERM in the calling thread — before any other thread
 * exists (a pool, curl's resolver), so that every thread inherits the mask
 * and only the descriptor sees them — and return a signalfd for the two,
 * non-blocking and close-on-exec; -1 with errno on failure. */
int stop_signal_fd(void);

/* The loop found stop_signal_fd() readable: read every signal waiting
 * there (a second one changes nothing, but is read) and note the stop
 * taken. */
void stop_signal_read(int fd);

/* SIGINT or SIGTERM is pending for this process (blocked, not yet read),
 * or the model has read one and said so with stop_signal_taken(). */
bool stop_signal_requested(void);

/* The model's loop has read the stop signal: it is no longer pending, but
 * the stop is still on. For a model whose threads go on serving between
 * the read and room_close() (chat-threaded's workers, chat-forked's hub
 * settling what its children sent). */
void stop_signal_taken(void);

#endif
