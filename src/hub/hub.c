/* `comfyd hub`: starts the store, the supervisor and the HTTP API, and stops them in order: the
 * HTTP side first (in-flight answers finish), then every instance (SIGTERM, then SIGKILL after
 * the grace period), then the store. */
#include "hub/hub.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/log.h"
#include "base/path.h"
#include "comfyd_version.h"
#include "hub/admission.h"
#include "hub/api_packs.h"
#include "hub/events.h"
#include "hub/lookup_cache.h"
#include "hub/peers.h"
#include "hub/metrics.h"
#include "hub/proxy.h"
#include "hub/web.h"
#include "net/static_files.h"
#include "hub/launcher.h"
#include "hub/supervisor.h"
#include "hub/store_schema.h"

void cd_hub_forget_lookups(cd_hub *hub) {
    cd_lookup_cache_clear(hub->credentials);
    cd_lookup_cache_clear(hub->routes);
}

int64_t cd_hub_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- requests ---- */

const cd_hub_web_file *cd_hub_web_find(const char *name) {
    for (const cd_hub_web_file *f = cd_hub_web_files; f->name; f++)
        if (!strcmp(f->name, name)) return f;
    return NULL;
}

/* One embedded file of web/hub/. They change only with the binary, but no-cache keeps a browser
 * from running an old dashboard's script against a new hub after an upgrade. */
static void respond_web_file(cd_http_req *req, const char *name) {
    const cd_hub_web_file *f = cd_hub_web_find(name);
    if (!f) {
        cd_hub_error(req, 404, "not_found", "no file '%s' in the hub's pages", name);
        return;
    }
    cd_http_add_header(req, "Cache-Control", "no-cache");
    cd_http_respond(req, 200, cd_static_content_type(f->name), f->data, f->len);
}

static void handle_login_page(cd_http_req *req, void *ctx) { respond_web_file(req, "login.html"); }

/* The dashboard. A visitor without a valid session goes to the login page first, which comes
 * back here, so the page never starts without a user to show. */
static void handle_index(cd_http_req *req, void *ctx) {
    cd_hub_caller caller;
    if (cd_hub_identify(ctx, req, false, &caller) == -1) {
        cd_http_add_header(req, "Location", "/login");
        cd_http_add_header(req, "Cache-Control", "no-store");
        cd_http_respond(req, 302, "text/plain; charset=utf-8", "/login", 6);
        return;
    }
    respond_web_file(req, "index.html");
}

/* GET /static/{name}: the dashboard's scripts and styles (one flat folder: no path to confine). */
static void handle_static(cd_http_req *req, void *ctx) {
    const char *name = cd_http_req_param(req, "name");
    if (!name || !strcmp(name, "index.html") || !strcmp(name, "login.html")) {
        cd_hub_error(req, 404, "not_found", "no such file");
        return;
    }
    respond_web_file(req, name);
}

static bool head_hook(cd_http_req *req, void *ctx) { return cd_hub_proxy_wants(req); }

static void handle_request(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_route_match m;
    const char *path = cd_http_req_path(req);
    if (cd_hub_proxy_wants(req)) {
        cd_hub_proxy_handle(hub->proxy, req);
        return;
    }
    cd_route_result r = cd_router_match(hub->router, cd_http_req_method(req), path, &m);
    if (r == CD_ROUTE_FOUND) {
        for (size_t i = 0; i < m.nparams; i++) cd_http_req_set_param(req, m.names[i], m.values[i]);
        cd_route_match_clear(&m);
        m.fn(req, m.ctx);
    } else if (r == CD_ROUTE_METHOD_NOT_ALLOWED) {
        cd_http_add_header(req, "Allow", m.allow);
        cd_hub_error(req, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", cd_http_req_method(req),
                     path, m.allow);
    } else {
        cd_hub_error(req, 404, "not_found", "no such route: %s %s", cd_http_req_method(req), path);
    }
}

static void response_hook(cd_http_req *req, int status, void *ctx) {
    cd_hub *hub = ctx;
    if (cd_hub_proxy_wants(req)) { /* an instance's answers pass as they are */
        cd_hub_metrics_proxy_status(hub->metrics, status);
        return;
    }
    cd_http_add_header(req, "X-Content-Type-Options", "nosniff");
    if (!strncmp(cd_http_req_path(req), "/api/", 5) && !cd_http_has_header(req, "Cache-Control"))
        cd_http_add_header(req, "Cache-Control", "no-store");
}

/* ---- supervisor callbacks ---- */

static void on_instance_change(const cd_store_instance *inst, void *user) {
    cd_hub *hub = user;
    cd_hub_events_instance(hub->events, inst);
}

static void on_supervisor_audit(const char *action, int64_t project_id, const char *detail, void *user) {
    cd_hub *hub = user;
    char target[64];
    snprintf(target, sizeof target, "project %lld", (long long)project_id);
    cd_hub_audit(hub, NULL, NULL, action, target, "%s", detail);
}

/* ---- stopping ---- */

static void maybe_stopped(cd_hub *hub) {
    if (hub->http_stopped && hub->sup_stopped) hub->stopped = true;
}

static void on_http_stopped(void *arg) {
    cd_hub *hub = arg;
    hub->http_stopped = true;
    maybe_stopped(hub);
}

static void on_sup_stopped(void *arg) {
    cd_hub *hub = arg;
    hub->sup_stopped = true;
    maybe_stopped(hub);
}

static void close_signals(cd_hub *hub) {
    if (!hub->signals_open) return;
    hub->signals_open = false;
    uv_close((uv_handle_t *)&hub->sigint, NULL);
    uv_close((uv_handle_t *)&hub->sigterm, NULL);
}

void cd_hub_stop(cd_hub *hub) {
    if (hub->stopping) return;
    hub->stopping = true;
    cd_info("hub: stopping");
    close_signals(hub);
    cd_hub_events_close_all(hub->events);
    if (hub->proxy) cd_hub_proxy_close_all(hub->proxy);
    cd_hub_peers_stop(hub->peers);
    cd_admission_stop(hub->admission);
    cd_hub_packs_cancel(hub->packs);
    if (hub->hosts) cd_hosts_stop(hub->hosts);
    if (hub->http) cd_http_server_stop(hub->http, on_http_stopped, hub);
    else hub->http_stopped = true;
    if (hub->sup) cd_supervisor_shutdown(hub->sup, on_sup_stopped, hub);
    else hub->sup_stopped = true;
    maybe_stopped(hub);
}

static void on_signal(uv_signal_t *sig, int signum) {
    cd_hub *hub = sig->data;
    cd_info("hub: %s received", signum == SIGINT ? "SIGINT" : "SIGTERM");
    cd_hub_stop(hub);
}

/* ---- starting ---- */

static int open_store(cd_hub *hub, char *err, size_t errlen) {
    if (cd_path_mkdirs(hub->cfg->data_dir, 0700) < 0) {
        snprintf(err, errlen, "cannot create the data directory %s: %s", hub->cfg->data_dir, strerror(errno));
        return -1;
    }
    int rc = cd_store_open(hub->cfg->store, hub->cfg->data_dir, &hub->store, err, errlen);
    if (rc == 0) {
        char where[512];
        cd_store_describe(hub->cfg->store, hub->cfg->data_dir, where, sizeof where);
        cd_info("hub: store %s %s (schema %d)", hub->store->ops->name, where, cd_store_schema_version());
    }
    return rc;
}

static int start_supervisor(cd_hub *hub, char *err, size_t errlen) {
    if (cd_hosts_new(hub->loop, hub->cfg, hub->store, &hub->hosts, err, errlen) < 0) return -1;
    cd_supervisor_config sc = {
        .loop = hub->loop,
        .cfg = hub->cfg,
        .store = hub->store,
        .hosts = hub->hosts,
        .on_change = on_instance_change,
        .on_audit = on_supervisor_audit,
        .user = hub,
        .peers = hub->peers,
        .hub_id = hub->id,
    };
    return cd_supervisor_new(&sc, &hub->sup, err, errlen);
}

static int start_http(cd_hub *hub, char *err, size_t errlen) {
    cd_http_limits limits;
    cd_http_limits_default(&limits);
    limits.max_body_bytes = (uint64_t)hub->cfg->max_body_bytes;
    hub->router = cd_router_new();
    hub->events = cd_hub_events_new(hub);
    hub->proxy = cd_hub_proxy_new(hub);
    hub->metrics = cd_hub_metrics_new();
    hub->credentials = cd_lookup_cache_new(1024, sizeof(cd_store_user), 2000);
    hub->routes = cd_lookup_cache_new(1024, sizeof(cd_store_project) + sizeof(cd_store_user), 2000);
    if (!hub->router || !hub->events || !hub->proxy || !hub->credentials || !hub->routes || !hub->metrics) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cd_http_server_new(hub->loop, &limits, handle_request, hub, &hub->http, err, errlen) < 0) return -1;
    cd_http_server_set_response_hook(hub->http, response_hook, hub);
    cd_http_server_set_head_hook(hub->http, head_hook, hub);
    cd_router_add(hub->router, "GET", "/", handle_index, hub);
    cd_router_add(hub->router, "GET", "/login", handle_login_page, hub);
    cd_router_add(hub->router, "GET", "/static/{name}", handle_static, hub);
    cd_hub_api_auth_register(hub);
    cd_hub_api_users_register(hub);
    cd_hub_api_projects_register(hub);
    cd_hub_api_audit_register(hub);
    cd_hub_api_hosts_register(hub);
    cd_hub_events_register(hub);
    cd_hub_api_queue_register(hub);
    cd_hub_metrics_register(hub);
    return 0;
}

int cd_hub_start(cd_hub *hub, const cd_hub_config *cfg, uv_loop_t *loop, char *err, size_t errlen) {
    memset(hub, 0, sizeof *hub);
    hub->cfg = cfg;
    hub->loop = loop;
    hub->started = true;
    if (open_store(hub, err, errlen) < 0) return -1;
    if (cd_hub_ensure_admin(hub, err, errlen) < 0) return -1;
    bool peers_failed;
    hub->peers = cd_hub_peers_new(hub, &peers_failed, err, errlen);
    if (peers_failed) return -1;
    if (start_http(hub, err, errlen) < 0) return -1;
    if (start_supervisor(hub, err, errlen) < 0) return -1;
    if (!(hub->admission = cd_admission_new(hub, err, errlen))) return -1;
    cd_hub_peers_start(hub->peers);
    if (cd_hub_packs_start(hub, err, errlen) < 0) return -1;
    if (cd_http_server_listen(hub->http, cfg->listen, cfg->port, err, errlen) < 0) return -1;
    uv_signal_init(loop, &hub->sigint);
    uv_signal_init(loop, &hub->sigterm);
    hub->sigint.data = hub->sigterm.data = hub;
    hub->signals_open = true;
    return 0;
}

void cd_hub_destroy(cd_hub *hub) {
    if (!hub->started) return;
    cd_hub_stop(hub);
    while (!hub->stopped || !cd_hub_events_empty(hub->events) || !cd_hub_proxy_idle(hub->proxy) ||
           !cd_admission_idle(hub->admission) || !cd_hub_packs_idle(hub->packs) || !cd_hub_peers_idle(hub->peers) ||
           (hub->hosts && !cd_hosts_idle(hub->hosts)))
        uv_run(hub->loop, UV_RUN_ONCE);
    close_signals(hub);
    cd_hub_packs_close(hub->packs); /* its events go to hub->events: closed before those */
    if (hub->sup) cd_supervisor_free(hub->sup);
    cd_hosts_free(hub->hosts);
    cd_hub_events_free(hub->events);
    cd_hub_proxy_free(hub->proxy);
    cd_admission_free(hub->admission);
    cd_hub_peers_free(hub->peers);
    cd_hub_metrics_free(hub->metrics);
    cd_lookup_cache_free(hub->credentials);
    cd_lookup_cache_free(hub->routes);
    cd_http_server_free(hub->http);
    cd_router_free(hub->router);
    cd_store_close(hub->store);
    memset(hub, 0, sizeof *hub);
}

static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int cd_hub_run(const cd_hub_config *cfg) {
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    cd_info("comfyd hub %s starting", COMFYD_VERSION);
    uv_loop_t *loop = uv_default_loop();
    cd_hub hub;
    char err[1024] = "";
    int code = 0;
    if (cd_hub_start(&hub, cfg, loop, err, sizeof err) < 0) {
        cd_error("hub: %s", err[0] ? err : "start-up failed");
        code = 1;
    } else {
        uv_signal_start(&hub.sigint, on_signal, SIGINT);
        uv_signal_start(&hub.sigterm, on_signal, SIGTERM);
        cd_info("hub: listening on http://%s:%d/ (data in %s)", cfg->listen, cd_http_server_port(hub.http),
                cfg->data_dir);
        uv_run(loop, UV_RUN_DEFAULT);
    }
    cd_hub_destroy(&hub);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    if (code == 0) cd_info("hub: stopped");
    return code;
}
