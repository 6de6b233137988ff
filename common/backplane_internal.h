/* The backplane's read side without a Redis connection: for the unit tests
 * and the libFuzzer target (tests/fuzz/fuzz_redis.c), which hand it reply
 * trees as hiredis would. Not for the models: they use backplane.h. */
#ifndef C10K_BACKPLANE_INTERNAL_H
#define C10K_BACKPLANE_INTERNAL_H

#include <stdio.h>

#include <hiredis/hiredis.h>

#include "backplane.h"

/* A backplane that never connects: `room` goes remote (what its members do
 * is queued, never sent), `sid` is this server's id, log lines go to `log`
 * (NULL: nowhere). backplane_free it. */
struct backplane *backplane_new_detached(struct room *room, const char *sid, FILE *log);

enum bp_entry {
    BP_ENTRY_DONE, /* applied, or refused and skipped (and logged) */
    BP_ENTRY_HOLD, /* a seq gap c10k:seq must confirm: backplane_take_ceiling, then again */
    BP_ENTRY_BAD,  /* not an entry with an id after the last one, or no snapshot loaded
                    * yet: drop the connection */
};
/* One element of XREAD's entry array. */
enum bp_entry backplane_apply_entry(struct backplane *bp, const redisReply *entry);
/* The reply to GET c10k:seq (nil or a decimal). False: a bad reply. */
bool backplane_take_ceiling(struct backplane *bp, const redisReply *reply);
/* The hello script's reply: RX_OK (0), an rx_cause refusing it whole, or
 * -1 on ENOMEM (redis_entry.h). Loads the room on the first one only. */
int backplane_load_snapshot(struct backplane *bp, const redisReply *hello);

#endif
