/* Carries engine events from the executor thread to the loop thread, where they go out to the
 * WebSocket clients. The executor appends to a locked list and wakes the loop (uv_async); the
 * loop drains the list in order. */
#ifndef CD_SERVER_EVENT_BRIDGE_H
#define CD_SERVER_EVENT_BRIDGE_H

#include "engine/executor.h"
#include "server/instance.h"

typedef struct cd_event_bridge cd_event_bridge;

cd_event_bridge *cd_event_bridge_new(cd_instance *inst);
/* The sink to give the engine: its callbacks may run on any thread. */
cd_event_sink cd_event_bridge_sink(cd_event_bridge *b);
/* From now on events are dropped and nothing waits: call before joining the executor. */
void cd_event_bridge_shutdown(cd_event_bridge *b);
/* Closes the handles; pending events are dropped. Frees itself once closed. */
void cd_event_bridge_close(cd_event_bridge *b);

#endif
