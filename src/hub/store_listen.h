/* Hearing the other hubs: several hubs on one PostgreSQL tell each other of their changes to
 * the queue and to instances with NOTIFY (store_pg.c sends them, with the sender's id). This
 * listener holds a connection of its own, LISTENs on both channels and hands each notification
 * to a callback on the loop. A lost connection is made again every second; once it is back,
 * the callback hears channel "" (notifications may have been missed: read everything again). */
#ifndef CD_HUB_STORE_LISTEN_H
#define CD_HUB_STORE_LISTEN_H

#include <uv.h>

typedef struct cd_store_listener cd_store_listener;

typedef void (*cd_store_notify_cb)(const char *channel, const char *payload, void *user);

/* Starts listening on the database of a postgres:// URI. Returns NULL (nothing to hear) for any
 * other store, or when out of memory; a server that cannot be reached is tried again later. */
cd_store_listener *cd_store_listen_start(uv_loop_t *loop, const char *uri, cd_store_notify_cb cb, void *user);
/* Stops; closed(user) runs once its handles are closed, after which it is freed. */
void cd_store_listen_stop(cd_store_listener *l, void (*closed)(void *user), void *user);

#endif
