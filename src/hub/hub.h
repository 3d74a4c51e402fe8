/* The hub's process context (`comfyd hub`): the loop, the settings, the store, the HTTP server
 * and its router, the supervisor of instances and the subscribers of /api/events. The api_*.c
 * files each register their routes on it; hub.c starts and stops it. */
#ifndef CD_HUB_HUB_H
#define CD_HUB_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "hub/config.h"
#include "hub/hosts.h"
#include "hub/store.h"
#include "net/http_server.h"
#include "net/router.h"

typedef struct cd_supervisor cd_supervisor;
typedef struct cd_hub_events cd_hub_events;
typedef struct cd_hub_proxy cd_hub_proxy;
typedef struct cd_lookup_cache cd_lookup_cache;
typedef struct cd_admission cd_admission;
typedef struct cd_hub_metrics cd_hub_metrics;
typedef struct cd_hub_packs cd_hub_packs;
typedef struct cd_hub_peers cd_hub_peers;

typedef struct cd_hub {
    uv_loop_t *loop;
    const cd_hub_config *cfg;
    cd_store *store;
    cd_http_server *http;
    cd_router *router;
    cd_supervisor *sup;
    cd_hub_events *events;
    cd_hub_proxy *proxy;
    cd_admission *admission;
    cd_hub_metrics *metrics;
    cd_hub_packs *packs; /* the node-pack manager of the shared folders (api_packs.c) */
    /* recent look-ups of the hot path (lookup_cache.h): tokens to users, proxy paths to projects */
    cd_lookup_cache *credentials, *routes;
    cd_hosts *hosts; /* where instances run: "local" and the store's hosts */
    /* several hubs on one PostgreSQL store (peers.h): this hub's id ("" alone on SQLite) */
    char id[65];
    cd_hub_peers *peers;
    uv_signal_t sigint, sigterm;
    bool started, signals_open, stopping, stopped;
    bool http_stopped, sup_stopped; /* the two halves of a stop */
} cd_hub;

/* Runs the hub until SIGINT/SIGTERM; returns the process exit code. */
int cd_hub_run(const cd_hub_config *cfg);
/* In pieces, for tests that drive the loop themselves. */
int cd_hub_start(cd_hub *hub, const cd_hub_config *cfg, uv_loop_t *loop, char *err, size_t errlen);
void cd_hub_stop(cd_hub *hub);
void cd_hub_destroy(cd_hub *hub);

int64_t cd_hub_now_ms(void);

/* ---- what handlers share (api_common.c) ---- */

/* The caller of a request, as authentication found it. */
typedef struct {
    cd_store_user user;
    bool by_cookie; /* a session cookie (else a Bearer token) */
    char token_hash[65];
} cd_hub_caller;

/* Answers with ComfyUI's error shape: {"error": {"type", "message", "details", "extra_info"}}. */
void cd_hub_error(cd_http_req *req, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers with a JSON value (consumed). */
void cd_hub_json(cd_http_req *req, int status, json_t *value);

/* Finds the caller without answering: 0, -1 when there are no valid credentials, -2 for a
 * session cookie sent from another origin (for writes; for every method with
 * origin_any_method, as the proxy wants for WebSocket upgrades). */
int cd_hub_identify(cd_hub *hub, cd_http_req *req, bool origin_any_method, cd_hub_caller *out);
/* Finds the caller from the session cookie or the Bearer token. Returns 0, or answers 401 (or
 * 403 for a cross-site request riding on the cookie) and returns -1. */
int cd_hub_authenticate(cd_hub *hub, cd_http_req *req, cd_hub_caller *out);
/* The same, then 403 unless the caller has at least that role. */
int cd_hub_require_role(cd_hub *hub, cd_http_req *req, cd_role role, cd_hub_caller *out);

/* The request body as a JSON object whose keys are all in `allowed` (NULL-terminated). Answers
 * 400 and returns NULL otherwise. */
json_t *cd_hub_body_object(cd_http_req *req, const char *const *allowed);
/* A query parameter as a whole number: def when absent, -1 when it is not one (callers check
 * their ranges). */
long cd_hub_query_long(cd_http_req *req, const char *name, long def);
/* Path parameter as a positive id; answers 404 and returns -1 otherwise. */
int64_t cd_hub_param_id(cd_http_req *req, const char *name, const char *what);

/* Appends to the audit log (never fails the request: a store error is logged). */
void cd_hub_audit(cd_hub *hub, cd_http_req *req, const cd_store_user *who, const char *action, const char *target,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

json_t *cd_hub_user_json(const cd_store_user *u);
/* A project with its owner's name, its URL through the hub and its instance. */
json_t *cd_hub_project_json(cd_hub *hub, const cd_store_project *p);
json_t *cd_hub_instance_json(const cd_store_instance *i);
/* May the caller reach (open, stop, proxy to) this project's instance? The owner, teachers and
 * admins may. */
bool cd_hub_may_reach(const cd_hub_caller *c, const cd_store_project *p);

/* Route registration, one function per file. */
void cd_hub_api_auth_register(cd_hub *hub);
void cd_hub_api_users_register(cd_hub *hub);
void cd_hub_api_projects_register(cd_hub *hub);
void cd_hub_api_audit_register(cd_hub *hub);
void cd_hub_api_hosts_register(cd_hub *hub);

/* After any change to users, tokens or projects: the cached look-ups may no longer hold. */
void cd_hub_forget_lookups(cd_hub *hub);

/* The admin account, created on first start. */
int cd_hub_ensure_admin(cd_hub *hub, char *err, size_t errlen);

#endif
