/* A struct app and connections for unit tests: no sockets, a fake clock, a
 * room whose sink queues straight into the member's outq (like chat-async). */
#ifndef C10K_TEST_CORE_FIXTURE_H
#define C10K_TEST_CORE_FIXTURE_H

#include "app.h"

extern struct app test_app;
extern uint64_t fake_now;

void fixture_setup(void);    /* users: ann/secret-pw (1 iteration) */
void fixture_teardown(void);

/* Everything queued on c->out, as one NUL-terminated string (caller frees),
 * with each "Date: ..." line blanked so outputs compare across seconds. The
 * queue is consumed and conn_flushed() called, as a model would. */
char *drain(struct conn *c);
/* Feed a C string. */
void feed(struct conn *c, const char *s);
/* A valid session cookie header line for user. */
void cookie_for(const char *user, char *out, size_t outlen);

#endif
