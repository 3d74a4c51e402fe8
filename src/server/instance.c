#include "server/instance.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/path.h"
#include "comfyd_version.h"
#include "engine/engine.h"
#include "engine/registry.h"
#include "nodes/builtin.h"
#include "server/event_bridge.h"
#include "server/folder_paths.h"
#include "server/ws_clients.h"

int cd_instance_queue_remaining(const cd_instance *inst) {
    return inst->engine ? cd_engine_queue_remaining(inst->engine) : 0;
}

/* Built-in packs first, then custom_nodes/ (ComfyUI: custom nodes cannot replace core ones). */
static int load_nodes(cd_instance *inst, char *err, size_t errlen) {
    inst->registry = cd_registry_new();
    if (!inst->registry) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    inst->registry_env = (cd_call_env){.ctx = inst, .directory = cd_instance_directory};
    cd_registry_set_call_env(inst->registry, &inst->registry_env);
    for (const cd_builtin_pack *p = cd_builtin_packs; p->init; p++)
        cd_registry_add_pack(inst->registry, p->name, p->module, p->init);
    if (!inst->opts->disable_custom_nodes) cd_registry_load_dir(inst->registry, inst->custom_nodes_dir);
    cd_info("%zu node types", cd_registry_count(inst->registry));
    return 0;
}

static int start_engine(cd_instance *inst, char *err, size_t errlen) {
    const cd_serve_options *o = inst->opts;
    inst->events = cd_event_bridge_new(inst);
    if (!inst->events) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *db = cd_path_join(inst->user_dir, "comfyd-history.sqlite3");
    cd_engine_config cfg = {
        .cache_policy = o->cache_mode == CD_CACHE_LRU    ? CD_CACHE_POLICY_LRU
                        : o->cache_mode == CD_CACHE_NONE ? CD_CACHE_POLICY_NONE
                                                         : CD_CACHE_POLICY_CLASSIC,
        .cache_lru_size = (size_t)o->cache_lru,
        .history_db = db,
        .history_max = 10000,
    };
    cd_event_sink sink = cd_event_bridge_sink(inst->events);
    inst->engine = cd_engine_new(inst->registry, &cfg, &sink, err, errlen);
    free(db);
    if (!inst->engine) return -1;
    if (cd_engine_start(inst->engine) < 0) {
        snprintf(err, errlen, "cannot start the executor thread");
        return -1;
    }
    return 0;
}

void cd_respond_json(cd_http_req *req, int status, json_t *value) {
    /* written into a buffer of our own: the reply copies it once, no string of its own needed */
    cd_buf text = CD_BUF_INIT;
    int rc = value ? cd_json_write(&text, value, false) : -1;
    json_decref(value);
    if (rc < 0) {
        cd_buf_free(&text);
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    cd_http_respond(req, status, "application/json; charset=utf-8", text.data, text.len);
    cd_buf_free(&text);
}

/* ---- offloading blocking work ---- */

typedef struct {
    uv_work_t work;
    cd_http_req *req; /* NULL once the client went away */
    cd_offload_work_fn fn;
    cd_offload_done_fn done;
    void *arg;
} offload;

static void offload_abort(cd_http_req *req, void *arg) {
    (void)req;
    ((offload *)arg)->req = NULL;
}

static void offload_run(uv_work_t *w) {
    offload *o = w->data;
    o->fn(o->arg);
}

static void offload_after(uv_work_t *w, int status) {
    (void)status;
    offload *o = w->data;
    if (o->req) cd_http_req_on_abort(o->req, NULL, NULL);
    o->done(o->req, o->arg);
    free(o);
}

void cd_offload(cd_instance *inst, cd_http_req *req, cd_offload_work_fn work, cd_offload_done_fn done, void *arg) {
    offload *o = calloc(1, sizeof *o);
    if (!o) {
        done(NULL, arg);
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    o->req = req;
    o->fn = work;
    o->done = done;
    o->arg = arg;
    o->work.data = o;
    cd_http_req_on_abort(req, offload_abort, o);
    if (uv_queue_work(inst->loop, &o->work, offload_run, offload_after) < 0) {
        cd_http_req_on_abort(req, NULL, NULL);
        free(o);
        done(NULL, arg);
        cd_http_respond_text(req, 500, "500: cannot queue work");
    }
}

/* ---- dispatch ---- */

static void handle_request(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    if (cd_middleware_before(inst, req)) return;
    cd_route_match m;
    cd_route_result r = cd_router_match(inst->router, cd_http_req_method(req), cd_http_req_path(req), &m);
    if (r == CD_ROUTE_FOUND) {
        for (size_t i = 0; i < m.nparams; i++) cd_http_req_set_param(req, m.names[i], m.values[i]);
        cd_route_match_clear(&m);
        m.fn(req, m.ctx);
    } else if (r == CD_ROUTE_METHOD_NOT_ALLOWED) {
        cd_http_add_header(req, "Allow", m.allow);
        cd_http_respond_text(req, 405, "405: Method Not Allowed");
    } else {
        cd_routes_frontend_fallback(inst, req);
    }
}

/* ---- directories ---- */

static char *absolute_or_default(const char *given, const char *base, const char *sub) {
    if (given) return cd_path_absolute(given);
    return cd_path_join(base, sub);
}

static int prepare_dirs(cd_instance *inst, char *err, size_t errlen) {
    const cd_serve_options *o = inst->opts;
    inst->base_dir = cd_path_absolute(o->base_dir ? o->base_dir : ".");
    if (!inst->base_dir) goto oom;
    inst->output_dir = absolute_or_default(o->output_dir, inst->base_dir, "output");
    inst->input_dir = absolute_or_default(o->input_dir, inst->base_dir, "input");
    /* --temp-directory D means D/temp, as in ComfyUI. */
    char *temp_parent = absolute_or_default(o->temp_dir, inst->base_dir, "");
    inst->temp_dir = temp_parent ? cd_path_join(temp_parent, "temp") : NULL;
    free(temp_parent);
    inst->user_dir = absolute_or_default(o->user_dir, inst->base_dir, "user");
    inst->models_dir = cd_path_join(inst->base_dir, "models");
    inst->custom_nodes_dir = cd_path_join(inst->base_dir, "custom_nodes");
    if (!inst->output_dir || !inst->input_dir || !inst->temp_dir || !inst->user_dir || !inst->models_dir ||
        !inst->custom_nodes_dir)
        goto oom;
    if (o->user_dir && !cd_path_is_dir(inst->user_dir)) {
        snprintf(err, errlen, "--user-directory %s does not exist or is not a directory", o->user_dir);
        return -1;
    }
    if (o->front_end_root) {
        inst->front_end_root = realpath(o->front_end_root, NULL);
        if (!inst->front_end_root || !cd_path_is_dir(inst->front_end_root)) {
            snprintf(err, errlen, "--front-end-root %s does not exist or is not a directory", o->front_end_root);
            return -1;
        }
    }
    /* temp/ is wiped at start (and at stop): it only holds previews of past runs. */
    cd_path_remove_tree(inst->temp_dir);
    const char *dirs[] = {inst->base_dir, inst->output_dir, inst->input_dir, inst->temp_dir,
                          inst->user_dir, inst->models_dir, inst->custom_nodes_dir};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (cd_path_mkdirs(dirs[i], 0755) < 0) {
            snprintf(err, errlen, "cannot create directory %s", dirs[i]);
            return -1;
        }
    }
    inst->folders = cd_folder_paths_new(inst->models_dir, inst->custom_nodes_dir, inst->output_dir);
    if (!inst->folders) goto oom;
    /* extra_model_paths.yaml next to the base directory's contents (ComfyUI reads the one in its
     * own folder), then every --extra-model-paths-config, in order. */
    char *default_yaml = cd_path_join(inst->base_dir, "extra_model_paths.yaml");
    if (!default_yaml) goto oom;
    struct stat yst;
    int yrc = 0;
    if (stat(default_yaml, &yst) == 0) {
        cd_info("loading extra model paths from %s", default_yaml);
        yrc = cd_folder_paths_load_yaml(inst->folders, default_yaml, err, errlen);
    }
    free(default_yaml);
    for (size_t i = 0; yrc == 0 && i < o->nextra_model_paths; i++) {
        cd_info("loading extra model paths from %s", o->extra_model_paths[i]);
        yrc = cd_folder_paths_load_yaml(inst->folders, o->extra_model_paths[i], err, errlen);
    }
    if (yrc < 0) return -1;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void free_dirs(cd_instance *inst) {
    free(inst->base_dir);
    free(inst->input_dir);
    free(inst->output_dir);
    free(inst->temp_dir);
    free(inst->user_dir);
    free(inst->models_dir);
    free(inst->custom_nodes_dir);
    free(inst->front_end_root);
    cd_folder_paths_free(inst->folders);
}

/* ---- start and stop ---- */

static void on_signal_closed(uv_handle_t *h) {
    cd_instance *inst = h->data;
    if (--inst->signals_closing == 0) inst->stopped = true;
}

/* After the HTTP side: the executor thread stops (interrupting a running prompt), then the
 * event bridge closes, so that no handle keeps the loop alive. */
static void stop_engine(cd_instance *inst) {
    if (inst->events) cd_event_bridge_shutdown(inst->events); /* the executor must not wait on it */
    cd_engine_free(inst->engine);
    inst->engine = NULL;
    if (inst->events) {
        cd_event_bridge_close(inst->events);
        inst->events = NULL;
    }
}

static void on_http_stopped(void *arg) {
    cd_instance *inst = arg;
    cd_routes_manager_close(inst);
    stop_engine(inst);
    if (inst->signals_open) {
        inst->signals_open = false;
        inst->signals_closing = 2;
        uv_close((uv_handle_t *)&inst->sigint, on_signal_closed);
        uv_close((uv_handle_t *)&inst->sigterm, on_signal_closed);
    } else {
        inst->stopped = true;
    }
}

static void begin_stop(cd_instance *inst, const char *why) {
    if (inst->stopping) return;
    inst->stopping = true;
    cd_info("%s: stopping (in-flight requests may finish)", why);
    if (inst->clients) cd_ws_clients_shutdown(inst->clients);
    inst->clients = NULL;
    cd_routes_manager_cancel(inst); /* a clone, download or build must not hold the stop */
    cd_http_server_stop(inst->http, on_http_stopped, inst);
}

static void on_signal(uv_signal_t *s, int signum) {
    cd_instance *inst = s->data;
    if (inst->stopping) {
        cd_warn("second signal: exiting at once");
        _exit(1);
    }
    begin_stop(inst, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* 1,000+ concurrent connections need more descriptors than the usual soft limit of 1024. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int start_listening(cd_instance *inst, char *err, size_t errlen) {
    const cd_serve_options *o = inst->opts;
    for (size_t i = 0; i < o->nlisten; i++) {
        if (cd_http_server_listen(inst->http, o->listen[i], o->port, err, errlen) < 0) return -1;
        if (!o->dont_print_server) {
            bool v6 = strchr(o->listen[i], ':') != NULL;
            cd_info("To see the GUI go to: http://%s%s%s:%d", v6 ? "[" : "", o->listen[i], v6 ? "]" : "",
                    cd_http_server_port(inst->http));
        }
    }
    return 0;
}

const char *cd_instance_directory(void *ctx, const char *type) {
    cd_instance *inst = ctx;
    if (!type) return NULL;
    if (!strcmp(type, "output")) return inst->output_dir;
    if (!strcmp(type, "input")) return inst->input_dir;
    if (!strcmp(type, "temp")) return inst->temp_dir;
    return NULL;
}

int cd_instance_start(cd_instance *inst, const cd_serve_options *opts, uv_loop_t *loop, char *err, size_t errlen) {
    memset(inst, 0, sizeof *inst);
    inst->opts = opts;
    inst->loop = loop;
    inst->max_upload_bytes = (uint64_t)llround(opts->max_upload_mb * 1024.0 * 1024.0);
    if (prepare_dirs(inst, err, errlen) < 0) return -1;
    cd_http_limits limits;
    cd_http_limits_default(&limits);
    limits.max_body_bytes = inst->max_upload_bytes;
    limits.header_timeout_ms = opts->header_timeout_s * 1000;
    limits.idle_timeout_ms = opts->idle_timeout_s * 1000;
    inst->router = cd_router_new();
    inst->clients = cd_ws_clients_new(inst);
    if (!inst->router || !inst->clients) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cd_http_server_new(inst->loop, &limits, handle_request, inst, &inst->http, err, errlen) < 0) return -1;
    cd_http_server_set_response_hook(inst->http, cd_middleware_response_hook, inst);
    if (load_nodes(inst, err, errlen) < 0 || start_engine(inst, err, errlen) < 0) return -1;
    cd_routes_system_register(inst);
    cd_routes_prompt_register(inst);
    cd_routes_jobs_register(inst);
    cd_routes_userdata_register(inst);
    cd_routes_projects_register(inst);
    cd_routes_files_register(inst);
    if (cd_routes_manager_register(inst, err, errlen) < 0) return -1;
    cd_routes_ws_register(inst);
    cd_routes_frontend_register(inst);
    if (start_listening(inst, err, errlen) < 0) return -1;
    uv_signal_init(inst->loop, &inst->sigint);
    uv_signal_init(inst->loop, &inst->sigterm);
    inst->signals_open = true;
    inst->sigint.data = inst->sigterm.data = inst;
    if (opts->handle_signals) {
        uv_signal_start(&inst->sigint, on_signal, SIGINT);
        uv_signal_start(&inst->sigterm, on_signal, SIGTERM);
    }
    return 0;
}

void cd_instance_stop(cd_instance *inst) { begin_stop(inst, "stop requested"); }

int cd_instance_port(const cd_instance *inst) { return cd_http_server_port(inst->http); }

void cd_instance_destroy(cd_instance *inst) {
    if (inst->http && !inst->stopping) {
        /* Start-up failed half-way, or the owner never stopped: close what is open. */
        begin_stop(inst, "shutting down");
    }
    if (!inst->http && inst->clients) cd_ws_clients_free(inst->clients);
    inst->clients = NULL;
    if (inst->http) {
        while (!inst->stopped) uv_run(inst->loop, UV_RUN_ONCE);
    }
    /* Start-up may have failed before the HTTP side existed. */
    if (inst->engine || inst->events) {
        stop_engine(inst);
        uv_run(inst->loop, UV_RUN_NOWAIT);
    }
    cd_registry_free(inst->registry);
    free(inst->object_info_text);
    free(inst->object_info_key);
    if (inst->temp_dir) cd_path_remove_tree(inst->temp_dir);
    cd_http_server_free(inst->http);
    cd_router_free(inst->router);
    free_dirs(inst);
    memset(inst, 0, sizeof *inst);
}

int cd_instance_run(const cd_serve_options *opts) {
    cd_instance inst;
    char err[512] = "";
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    cd_info("comfyd %s (ComfyUI API %s) starting", COMFYD_VERSION, COMFYD_COMFYUI_API_VERSION);
    uv_loop_t *loop = uv_default_loop();
    if (cd_instance_start(&inst, opts, loop, err, sizeof err) < 0) {
        cd_error("%s", err[0] ? err : "start-up failed");
        cd_instance_destroy(&inst);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_loop_close(loop);
        return 1;
    }
    cd_info("base directory %s", inst.base_dir);
    if (opts->quick_test_for_ci) begin_stop(&inst, "--quick-test-for-ci");
    uv_run(loop, UV_RUN_DEFAULT);
    bool restart = inst.restart_requested;
    cd_instance_destroy(&inst);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    if (restart) {
        cd_info("restarting in place");
        return CD_INSTANCE_RESTART;
    }
    cd_info("stopped");
    return 0;
}

void cd_instance_request_restart(cd_instance *inst) {
    inst->restart_requested = true;
    begin_stop(inst, "restart requested");
}

void cd_instance_reboot(cd_instance *inst) {
    const char *session = getenv("__COMFY_CLI_SESSION__");
    if (session && *session) {
        char *marker = malloc(strlen(session) + 8);
        if (marker) {
            sprintf(marker, "%s.reboot", session);
            FILE *f = fopen(marker, "w");
            if (f) fclose(f);
            else cd_warn("cannot create the reboot marker %s", marker);
            free(marker);
        }
        begin_stop(inst, "restart requested (comfy-cli session: the launcher starts us again)");
        return;
    }
    cd_instance_request_restart(inst);
}
