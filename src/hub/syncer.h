/* A thread of its own that runs one function on request (the store's sync, an fdatasync) and
 * reports on the loop. Not libuv's shared thread pool: there, forty students logging in at once
 * (argon2id hashes) or a node-pack catalog download would queue in front of it, and every
 * prompt's answer waits for the sync. One run at a time: request again only after done. */
#ifndef CD_HUB_SYNCER_H
#define CD_HUB_SYNCER_H

#include <uv.h>

typedef struct cd_syncer cd_syncer;
typedef int (*cd_syncer_fn)(void *arg);             /* on the syncer's thread */
typedef void (*cd_syncer_done)(int rc, void *user); /* on the loop, with fn's result */

cd_syncer *cd_syncer_new(uv_loop_t *loop, cd_syncer_fn fn, void *arg, cd_syncer_done done, void *user);
void cd_syncer_request(cd_syncer *s);
/* Ends the thread and closes the handle; closed(user) runs when it is gone (s is freed then).
 * Only when no run is under way. */
void cd_syncer_close(cd_syncer *s, void (*closed)(void *user));

#endif
