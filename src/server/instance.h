/* One workflow server ("instance"): the process context of `comfyd serve`. It owns the loop,
 * the directories, the HTTP server and router, and the WebSocket clients; the route files of
 * this folder each register their routes on it. */
#ifndef CD_SERVER_INSTANCE_H
#define CD_SERVER_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "engine/call.h"

#include "net/http_server.h"
#include "net/router.h"
#include "server/options.h"

typedef struct cd_ws_clients cd_ws_clients;
typedef struct cd_folder_paths cd_folder_paths;
typedef struct cd_engine cd_engine;
typedef struct cd_registry cd_registry;
typedef struct cd_event_bridge cd_event_bridge;
typedef struct cd_manager_routes cd_manager_routes;

typedef struct cd_instance {
    uv_loop_t *loop;
    const cd_serve_options *opts;
    /* absolute directories, owned */
    char *base_dir, *input_dir, *output_dir, *temp_dir, *user_dir, *models_dir, *custom_nodes_dir;
    char *front_end_root; /* NULL without --front-end-root */
    uint64_t max_upload_bytes;
    cd_http_server *http;
    cd_router *router;
    cd_ws_clients *clients;
    cd_folder_paths *folders;
    cd_registry *registry;
    cd_call_env registry_env; /* the directories, for validation and dynamic combos */
    cd_engine *engine;
    cd_event_bridge *events;
    cd_manager_routes *manager; /* the node-pack manager and its routes (routes_manager.c) */
    char *object_info_text; /* cached /object_info body */
    char *object_info_key;  /* the dynamic combo lists it was built with */
    uint64_t ram_total, ram_free, ram_read_at; /* /system_stats' RAM figures and when (loop ms) */
    uv_signal_t sigint, sigterm;
    bool signals_open, stopping, stopped, restart_requested;
    int signals_closing;
} cd_instance;

/* Runs the server until SIGINT/SIGTERM; returns the process exit code, or CD_INSTANCE_RESTART
 * when a restart was asked for (the caller then executes itself again, same arguments). */
#define CD_INSTANCE_RESTART (-100)
int cd_instance_run(const cd_serve_options *opts);
/* Stops gracefully (in-flight responses finish), then cd_instance_run returns
 * CD_INSTANCE_RESTART. */
void cd_instance_request_restart(cd_instance *inst);
/* A restart as ComfyUI-Manager does it: when comfy-cli's launcher started us
 * (__COMFY_CLI_SESSION__ set), touch "<session>.reboot" and exit 0 so that the launcher starts
 * us again; otherwise restart in place (cd_instance_request_restart). */
void cd_instance_reboot(cd_instance *inst);

/* The same in pieces, for tests and fuzzers that drive the loop themselves: start on a given
 * loop (port 0 in opts picks a free port), stop gracefully, and destroy (which runs the loop
 * until the stop has finished). opts must outlive the instance. */
int cd_instance_start(cd_instance *inst, const cd_serve_options *opts, uv_loop_t *loop, char *err, size_t errlen);
void cd_instance_stop(cd_instance *inst);
int cd_instance_port(const cd_instance *inst);
void cd_instance_destroy(cd_instance *inst);

/* The output, input or temp directory (type "output", "input", "temp"), else NULL; ctx is
 * the instance. The shape nodes see through cd_call_directory. */
const char *cd_instance_directory(void *ctx, const char *type);

/* Pending plus running prompts, for the status messages. */
int cd_instance_queue_remaining(const cd_instance *inst);

/* Route registration, one function per route file. */
void cd_routes_system_register(cd_instance *inst);
void cd_routes_frontend_register(cd_instance *inst);
void cd_routes_prompt_register(cd_instance *inst);
void cd_routes_jobs_register(cd_instance *inst);
void cd_routes_userdata_register(cd_instance *inst);
void cd_routes_projects_register(cd_instance *inst);
void cd_routes_files_register(cd_instance *inst);
int cd_routes_manager_register(cd_instance *inst, char *err, size_t errlen);
/* At the start of a stop: cancels the running task and drops the queued ones, answering the
 * requests that wait on them. */
void cd_routes_manager_cancel(cd_instance *inst);
/* Stops the manager's worker and closes its handle (after the HTTP side has stopped). */
void cd_routes_manager_close(cd_instance *inst);

/* The default answer when no route matched: the front end's static files, else 404. */
void cd_routes_frontend_fallback(cd_instance *inst, cd_http_req *req);

/* Middleware (ComfyUI's, in its order). cd_middleware_before returns true when it answered the
 * request itself (OPTIONS, a refused origin). */
bool cd_middleware_before(cd_instance *inst, cd_http_req *req);
void cd_middleware_response_hook(cd_http_req *req, int status, void *inst);

/* JSON helpers for handlers: answer with a JSON value (consumed). */
void cd_respond_json(cd_http_req *req, int status, json_t *value);
/* Runs work() in the thread pool and then done() on the loop, unless the client went away in
 * between, in which case done() gets req == NULL and must only free arg. */
typedef void (*cd_offload_work_fn)(void *arg);
typedef void (*cd_offload_done_fn)(cd_http_req *req, void *arg);
void cd_offload(cd_instance *inst, cd_http_req *req, cd_offload_work_fn work, cd_offload_done_fn done, void *arg);

#endif
