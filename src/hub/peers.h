/* The other hubs on the same store: several hubs on one PostgreSQL (issue: part 4).
 *
 * Each hub has an id (COMFYD_HUB_ID, else HOSTNAME:a hash of its data directory, so that a hub
 * restarted in its place is the same hub and finds its own prompts and instances at once) and beats in the store's
 * table hubs every second. One not heard from for COMFYD_HUB_SILENT_AFTER_SECONDS is taken for
 * dead: every other hub tries to take over its prompts out at instances and its instances; the
 * store gives each of them to exactly one (an UPDATE … WHERE hub = the dead one). Changes to the
 * queue and to instances are heard at once through NOTIFY (store_listen.h).
 *
 * A hub stopped with SIGTERM while another is alive leaves its instances running and beats a
 * last time as long silent: the others take over its prompts and instances at their next beat.
 *
 * With the SQLite store there is one hub: cd_hub_peers_new returns NULL and nothing of this
 * runs (every record's hub is ""). */
#ifndef CD_HUB_PEERS_H
#define CD_HUB_PEERS_H

#include <stdbool.h>
#include <stdint.h>

#include "hub/hub.h"

typedef struct cd_hub_peers cd_hub_peers;

/* Starts beating and listening when the store is shared (PostgreSQL); NULL otherwise, or -1
 * from *failed with a message when it should be but cannot. Sets hub->id. */
cd_hub_peers *cd_hub_peers_new(cd_hub *hub, bool *failed, char *err, size_t errlen);
/* Starts beating and hearing the others, once the supervisor and the queue exist. */
void cd_hub_peers_start(cd_hub_peers *p);
/* Whether the hub of that id beat recently (this hub, and "", are alive). */
bool cd_hub_peers_alive(cd_hub_peers *p, const char *hub_id);
/* Whether another hub beat recently: a hub alone on a shared store need not read the queue
 * again to learn what others did. */
bool cd_hub_peers_others_alive(cd_hub_peers *p);
void cd_hub_peers_stop(cd_hub_peers *p);
bool cd_hub_peers_idle(const cd_hub_peers *p);
void cd_hub_peers_free(cd_hub_peers *p);

#endif
