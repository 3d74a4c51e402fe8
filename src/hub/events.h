/* /api/events: a WebSocket on which the hub pushes what changes, so that a page need not poll.
 * Each message is {"type": ..., "data": ...}; a subscriber hears only about the projects it may
 * reach (its own; every project for teachers and admins).
 *
 *   {"type": "hello", "data": {"user": {...}}}          once, on connect
 *   {"type": "instance", "data": {instance record}}     whenever an instance record changes
 *   {"type": "packs", "data": {"event", ...}}           node-pack tasks (api_packs.c), admins only */
#ifndef CD_HUB_EVENTS_H
#define CD_HUB_EVENTS_H

#include "hub/hub.h"

cd_hub_events *cd_hub_events_new(cd_hub *hub);
void cd_hub_events_register(cd_hub *hub);
void cd_hub_events_instance(cd_hub_events *ev, const cd_store_instance *inst);
/* {"type": type, "data": data} to every admin (data consumed). */
void cd_hub_events_admins(cd_hub_events *ev, const char *type, json_t *data);
/* Closes every subscriber (the hub is stopping). */
void cd_hub_events_close_all(cd_hub_events *ev);
/* True once every subscriber has gone. */
bool cd_hub_events_empty(const cd_hub_events *ev);
void cd_hub_events_free(cd_hub_events *ev);

#endif
