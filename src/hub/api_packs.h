/* Node packs for the whole hub (api_packs.c): one node-pack manager (src/manager/) over the
 * shared custom_nodes and models folders that every instance links to, driven by admins from
 * the dashboard. */
#ifndef CD_HUB_API_PACKS_H
#define CD_HUB_API_PACKS_H

#include "hub/hub.h"

/* Creates hub->packs and registers its routes. Returns 0, or -1 with a message. */
int cd_hub_packs_start(cd_hub *hub, char *err, size_t errlen);
/* The hub is stopping: the running task is cancelled, queued ones dropped. */
void cd_hub_packs_cancel(cd_hub_packs *p);
/* True when no catalog read is in the thread pool (one would answer into a freed hub), and the
 * cancelled task has stopped or was given up on (a few seconds after the cancel). */
bool cd_hub_packs_idle(const cd_hub_packs *p);
/* Joins the manager's worker (unless it was given up on: then it and its memory are left to
 * the process's exit) and closes the loop handles; the memory goes with the handles. */
void cd_hub_packs_close(cd_hub_packs *p);

#endif
