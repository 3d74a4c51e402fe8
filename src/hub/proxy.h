/* The reverse proxy: /comfyui/{user}/{project}/... reaches that project's instance.
 *
 * Requests are streamed both ways (the hub's HTTP server hands /comfyui/ requests over at their
 * head, see cd_http_head_hook_fn), over keep-alive connections to the instances; WebSocket
 * upgrades are tunnelled (net/ws_tunnel.h) with pings toward the browser. The path after the
 * project is passed byte for byte (%2F stays %2F). Host and Origin pass unchanged: an
 * instance's origin check (a loopback Host with an Origin of another host is refused) then
 * sees what the browser sent, which agrees for the hub's own pages, while direct access keeps
 * its check. The hub's own credentials (its session cookie, its Bearer token) are removed:
 * an instance runs custom nodes and must not see them.
 *
 * Only the project's owner, teachers and admins get through (403 for others, 401 or a redirect
 * to /login without a login); the manager routes of an instance are for admins only. */
#ifndef CD_HUB_PROXY_H
#define CD_HUB_PROXY_H

#include "hub/hub.h"

cd_hub_proxy *cd_hub_proxy_new(cd_hub *hub);
/* True for the requests the proxy takes (their bodies are streamed). */
bool cd_hub_proxy_wants(const cd_http_req *req);
void cd_hub_proxy_handle(cd_hub_proxy *px, cd_http_req *req);
/* Closes the tunnels (the hub is stopping); cd_hub_proxy_idle tells when they are gone. */
void cd_hub_proxy_close_all(cd_hub_proxy *px);
/* The held prompts changed: proxied pages get a status message with the true queue_remaining. */
void cd_hub_proxy_refresh_status(cd_hub_proxy *px);
/* Sends a text message to the proxied WebSockets a user has open on a project. */
void cd_hub_proxy_notify(cd_hub_proxy *px, int64_t user_id, int64_t project_id, const char *text);
/* Whether a user has a proxied WebSocket open on a project (someone to tell). */
bool cd_hub_proxy_listening(const cd_hub_proxy *px, int64_t user_id, int64_t project_id);
bool cd_hub_proxy_idle(const cd_hub_proxy *px);
void cd_hub_proxy_free(cd_hub_proxy *px);

#endif
