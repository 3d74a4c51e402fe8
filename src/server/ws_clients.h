/* The WebSocket clients of an instance (/ws?clientId=): the registry from sid to socket,
 * ComfyUI's greeting and feature-flag exchange, and sending to one sid or to all. */
#ifndef CD_SERVER_WS_CLIENTS_H
#define CD_SERVER_WS_CLIENTS_H

#include <jansson.h>
#include <stdbool.h>

#include "server/instance.h"

cd_ws_clients *cd_ws_clients_new(cd_instance *inst);
/* Closes every socket (1001 going away); the registry is freed once they are gone. */
void cd_ws_clients_shutdown(cd_ws_clients *clients);
void cd_ws_clients_free(cd_ws_clients *clients);
size_t cd_ws_clients_count(const cd_ws_clients *clients);

/* Sends {"type": type, "data": data} (data consumed) to sid, or to everyone when sid is NULL.
 * A sid that is not connected is silently skipped, as in ComfyUI. */
void cd_ws_clients_send(cd_ws_clients *clients, const char *type, json_t *data, const char *sid);
/* A text message (already serialised) to sid or everyone; type and node say what it is (node:
 * the display id an `executing` message names, or NULL). */
void cd_ws_clients_send_text(cd_ws_clients *clients, const char *type, const char *node, const char *text, size_t len,
                             const char *sid);
/* A binary frame (already laid out) to sid or everyone. */
void cd_ws_clients_send_binary(cd_ws_clients *clients, const void *data, size_t len, const char *sid);
/* The most bytes any client has waiting to be sent. */
/* Corks or uncorks every client's socket (cd_ws_cork): around a burst of events. */
void cd_ws_clients_cork(cd_ws_clients *clients, bool on);
size_t cd_ws_clients_max_queued(const cd_ws_clients *clients);
/* Drops (with a log line) every client with more than `bytes` waiting. */
void cd_ws_clients_drop_congested(cd_ws_clients *clients, size_t bytes);
/* Sends the current queue status to everyone. */
void cd_ws_clients_broadcast_status(cd_ws_clients *clients);

void cd_routes_ws_register(cd_instance *inst);

#endif
