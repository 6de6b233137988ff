/* An emulation of CPython's global interpreter lock (Python/ceval_gil.c).
 *
 * "The GIL is just a boolean variable (locked) whose access is protected by
 * a mutex, and whose changes are signalled by a condition variable." A
 * thread that wants it waits up to the switch interval (5 ms), then sets a
 * drop request; the holder checks the request at every turn of its loop
 * (gil_tick) and hands the lock over, waiting until another thread has
 * taken it (FORCE_SWITCHING), so one CPU-bound thread cannot starve the rest.
 *
 * Off by default: every call is a cheap no-op until gil_enable().
 */
#ifndef C10K_GIL_H
#define C10K_GIL_H

#include <stdbool.h>

#define GIL_INTERVAL_US 5000

void gil_enable(void);
bool gil_enabled(void);
void gil_acquire(void);
void gil_release(void);
/* Called by the holder in long loops: yields if another thread asked. */
void gil_tick(void);

#endif
