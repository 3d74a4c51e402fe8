/* Listens to the event streams of the instances that run the hub's prompts, so that the
 * admission queue learns that a prompt ended the moment its instance says so, rather than at its
 * next poll. ComfyUI (and comfyd serve) broadcast a `status` message to every WebSocket client
 * whenever their queue changes, after the history of a finished prompt is written; that message
 * is the cue to look. Only the public API is used: a Python ComfyUI works the same. The polls
 * stay, as the check after a reconnect and for instances whose socket cannot be opened. */
#ifndef CD_HUB_INSTANCE_WATCH_H
#define CD_HUB_INSTANCE_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct cd_instance_watch cd_instance_watch;

/* The queue of a project's instance changed (a prompt was queued, started or ended). */
typedef void (*cd_instance_watch_cb)(int64_t project_id, void *user);

cd_instance_watch *cd_instance_watch_new(uv_loop_t *loop, cd_instance_watch_cb changed, void *user);
/* Keeps (or opens) a connection to the project's instance at host:port; one not wanted for a
 * while (120 calls of cd_instance_watch_sweep: half a minute at the queue's tick) is closed. */
void cd_instance_watch_want(cd_instance_watch *w, int64_t project_id, const char *host, int port);
void cd_instance_watch_sweep(cd_instance_watch *w);
/* Closes every connection; cd_instance_watch_idle tells when they are gone. */
void cd_instance_watch_close_all(cd_instance_watch *w);
bool cd_instance_watch_idle(const cd_instance_watch *w);
void cd_instance_watch_free(cd_instance_watch *w);

#endif
