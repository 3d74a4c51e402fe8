/* ComfyUI-Manager's HTTP API over src/manager/ (reference manager-and-tavern.md Part A): the
 * catalog routes, the queue (/manager/queue/...), settings, snapshots, reboot, the older
 * synchronous routes some SDKs still call (/customnode/install, ...), and the WebSocket
 * events (cm-queue-status) the worker thread reports.
 *
 * Threads: handlers run on the loop thread; what may block (a channel fetch, git fetch, a
 * directory scan) runs in the thread pool through cd_offload; the queue runs on the manager's
 * own worker thread, whose events come back here through a uv_async and a locked list. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "manager/manager.h"
#include "server/instance.h"
#include "server/ws_clients.h"

#define SEC_TEXT "A security error has occurred. Please check the terminal logs"

typedef struct mev {
    char *type;
    json_t *data;
    struct mev *next;
} mev;

typedef struct waiter {
    uint64_t task_id;
    cd_http_req *req;
    struct cd_manager_routes *r;
    struct waiter *next;
} waiter;

struct cd_manager_routes {
    cd_instance *inst;
    cd_manager *mgr;
    uv_async_t async;
    pthread_mutex_t lock;
    mev *head, *tail;
    waiter *waiters;
    json_t *imported; /* /customnode/installed?mode=imported: the packs as loaded at start */
    bool closing;
};
typedef struct cd_manager_routes mroutes;

/* ---- events from the worker ---- */

static void on_manager_event(void *ctx, const char *type, json_t *data) {
    mroutes *r = ctx;
    mev *e = calloc(1, sizeof *e);
    if (!e || !(e->type = strdup(type))) {
        free(e);
        json_decref(data);
        return;
    }
    e->data = data;
    pthread_mutex_lock(&r->lock);
    if (r->closing) {
        pthread_mutex_unlock(&r->lock);
        json_decref(data);
        free(e->type);
        free(e);
        return;
    }
    if (r->tail) r->tail->next = e;
    else r->head = e;
    r->tail = e;
    pthread_mutex_unlock(&r->lock);
    uv_async_send(&r->async);
}

static void waiter_abort(cd_http_req *req, void *arg) {
    (void)req;
    waiter *w = arg;
    w->req = NULL; /* removed when its task ends */
}

static void task_done(mroutes *r, json_t *data) {
    uint64_t id = (uint64_t)json_integer_value(json_object_get(data, "task_id"));
    for (waiter **pp = &r->waiters; *pp;) {
        waiter *w = *pp;
        if (w->task_id != id) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        if (w->req) {
            cd_http_req_on_abort(w->req, NULL, NULL);
            bool ok = json_is_true(json_object_get(data, "ok"));
            const char *msg = json_string_value(json_object_get(data, "msg"));
            if (ok) cd_http_respond_text(w->req, 200, "OK");
            else cd_http_respond_text(w->req, 400, msg && *msg ? msg : "failed");
        }
        free(w);
    }
}

static void on_async(uv_async_t *a) {
    mroutes *r = a->data;
    pthread_mutex_lock(&r->lock);
    mev *list = r->head;
    r->head = r->tail = NULL;
    pthread_mutex_unlock(&r->lock);
    while (list) {
        mev *n = list->next;
        if (!strcmp(list->type, "cm-task-done")) {
            task_done(r, list->data);
            json_decref(list->data);
        } else if (r->inst->clients) {
            cd_ws_clients_send(r->inst->clients, list->type, list->data, NULL);
        } else {
            json_decref(list->data);
        }
        free(list->type);
        free(list);
        list = n;
    }
}

/* ---- helpers ---- */

static json_t *body_json(cd_http_req *req) {
    size_t len;
    const char *b = cd_http_req_body(req, &len);
    return len ? cd_json_parse(b, len, JSON_DECODE_ANY | CD_JSON_REJECT_BIGINT, NULL) : NULL;
}

/* ComfyUI-Manager's CSRF guard for body-less POSTs: the three "simple" form content types are
 * refused (a JSON body forces a preflight, these do not). */
static bool csrf_refused(cd_http_req *req) {
    if (strcmp(cd_http_req_method(req), "POST")) return false;
    size_t len;
    cd_http_req_body(req, &len);
    const char *ct = cd_http_req_header(req, "Content-Type");
    if (len || !ct) return false;
    static const char *simple[] = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"};
    for (size_t i = 0; i < 3; i++) {
        if (!strncasecmp(ct, simple[i], strlen(simple[i]))) {
            cd_http_respond_text(req, 400, "Invalid Content-Type for this endpoint. Use application/json or omit body.");
            return true;
        }
    }
    return false;
}

static void respond_403sec(cd_http_req *req, const char *what) {
    cd_respond_json(req, 403, json_pack("{s:s}", "error", what ? what : "security_level"));
}

/* The risk gate: false (and a 403 text answer) when the level does not allow it. */
static bool gate_text(mroutes *r, cd_http_req *req, cd_risk risk) {
    if (cd_manager_allowed(r->mgr, risk)) return true;
    cd_warn("manager: %s refused by security_level=%s%s", cd_http_req_path(req),
            cd_policy_level_name(cd_manager_config(r->mgr)->security_level),
            cd_manager_loopback(r->mgr) ? "" : " (listening beyond loopback)");
    cd_http_respond_text(req, 403, SEC_TEXT);
    return false;
}

static bool gate_json(mroutes *r, cd_http_req *req, cd_risk risk) {
    if (cd_manager_allowed(r->mgr, risk)) return true;
    cd_warn("manager: %s refused by security_level=%s", cd_http_req_path(req),
            cd_policy_level_name(cd_manager_config(r->mgr)->security_level));
    respond_403sec(req, NULL);
    return false;
}

static char *query(cd_http_req *req, const char *name) { return cd_str_query_get(cd_http_req_query(req), name); }

/* ---- offloaded work ---- */

typedef struct job job;
typedef void (*job_fn)(job *j);
struct job {
    mroutes *r;
    json_t *body;
    char *mode;
    job_fn work, after; /* after: on the loop, with the request still there */
    int status;
    json_t *json;
    char *text;
    cd_task_kind kind;
    bool wait;        /* answer when the task ends (the synchronous routes) */
    bool check_updates;
    cd_http_req *req; /* while after() runs */
    char err[512];
};

static void job_free(job *j) {
    json_decref(j->body);
    json_decref(j->json);
    free(j->mode);
    free(j->text);
    free(j);
}

static void job_work(void *arg) {
    job *j = arg;
    j->work(j);
}

static void job_done(cd_http_req *req, void *arg) {
    job *j = arg;
    if (req) {
        j->req = req;
        if (j->after) j->after(j);
        if (!j->after || j->status) {
            /* after() may have queued a waiter and left status 0: then the task answers */
            if (j->json) {
                cd_respond_json(req, j->status ? j->status : 200, j->json);
                j->json = NULL;
            } else {
                cd_http_respond_text(req, j->status ? j->status : 200, j->text ? j->text : "");
            }
        }
    }
    job_free(j);
}

static job *job_new(mroutes *r, cd_http_req *req, job_fn work) {
    job *j = calloc(1, sizeof *j);
    if (!j) {
        cd_http_respond_text(req, 500, "500: out of memory");
        return NULL;
    }
    j->r = r;
    j->work = work;
    j->mode = query(req, "mode");
    return j;
}

static void job_start(mroutes *r, cd_http_req *req, job *j) {
    (void)r;
    cd_offload(j->r->inst, req, job_work, job_done, j);
}

/* ---- catalog routes ---- */

static void w_getlist(job *j) {
    j->json = cd_manager_getlist(j->r->mgr, j->mode ? j->mode : "cache", j->check_updates, j->err, sizeof j->err);
    if (!j->json) {
        j->status = 400;
        j->text = strdup(j->err);
    }
}
static void h_getlist(cd_http_req *req, void *ctx) {
    job *j = job_new(ctx, req, w_getlist);
    if (!j) return;
    char *skip = query(req, "skip_update");
    j->check_updates = !(skip && !strcasecmp(skip, "true"));
    free(skip);
    job_start(ctx, req, j);
}

static void w_mappings(job *j) {
    j->json = cd_manager_mappings(j->r->mgr, j->mode ? j->mode : "cache", j->err, sizeof j->err);
    if (!j->json) {
        j->status = 400;
        j->text = strdup(j->err);
    }
}
static void h_mappings(cd_http_req *req, void *ctx) {
    job *j = job_new(ctx, req, w_mappings);
    if (j) job_start(ctx, req, j);
}

static void w_installed(job *j) {
    if (j->mode && !strcmp(j->mode, "imported")) {
        j->json = json_deep_copy(j->r->imported);
        return;
    }
    json_t *all = cd_manager_installed(j->r->mgr);
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(all, k, v) {
        json_object_set_new(out, k, json_pack("{s:O, s:O, s:O, s:O}", "ver", json_object_get(v, "ver"), "cnr_id",
                                              json_object_get(v, "cnr_id"), "aux_id", json_object_get(v, "aux_id"),
                                              "enabled", json_object_get(v, "enabled")));
    }
    json_decref(all);
    j->json = out;
}

/* The ComfyUI-Manager shape of what is on disk now, for mode=imported. */
static json_t *installed_now(cd_manager *m) {
    job j = {0};
    mroutes r = {.mgr = m};
    j.r = &r;
    w_installed(&j);
    return j.json;
}
static void h_installed(cd_http_req *req, void *ctx) {
    job *j = job_new(ctx, req, w_installed);
    if (j) job_start(ctx, req, j);
}

/* The versions of a pack that sit disabled: [{"version": ...}], or 400 when there are none. */
static void w_disabled_versions(job *j) {
    json_t *all = cd_manager_installed(j->r->mgr);
    json_t *p = json_object_get(all, json_string_value(json_object_get(j->body, "name")));
    if (p && !json_is_true(json_object_get(p, "enabled"))) {
        j->json = json_pack("[{s:O}]", "version", json_object_get(p, "ver"));
    } else {
        j->status = 400;
        j->text = strdup("no disabled version");
    }
    json_decref(all);
}
static void h_disabled_versions(cd_http_req *req, void *ctx) {
    job *j = job_new(ctx, req, w_disabled_versions);
    if (!j) return;
    j->body = json_pack("{s:s}", "name", cd_http_req_param(req, "node_name"));
    job_start(ctx, req, j);
}

static void w_fetch_updates(job *j) {
    int r = cd_manager_fetch_updates(j->r->mgr, j->err, sizeof j->err);
    j->status = r > 0 ? 201 : r == 0 ? 200 : 400;
}
static void h_fetch_updates(cd_http_req *req, void *ctx) {
    if (csrf_refused(req)) return;
    job *j = job_new(ctx, req, w_fetch_updates);
    if (!j) return;
    if (!j->mode) {
        json_t *b = body_json(req);
        const char *m = json_string_value(json_object_get(b, "mode"));
        if (m) j->mode = strdup(m);
        json_decref(b);
    }
    job_start(ctx, req, j);
}

static void w_models(job *j) {
    j->json = cd_manager_model_list(j->r->mgr, j->mode ? j->mode : "cache", j->err, sizeof j->err);
    if (!j->json) {
        j->status = 400;
        j->text = strdup(j->err);
    }
}
static void h_models(cd_http_req *req, void *ctx) {
    job *j = job_new(ctx, req, w_models);
    if (j) job_start(ctx, req, j);
}

/* ---- the queue ---- */

static void h_status(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    cd_respond_json(req, 200, cd_manager_status(r->mgr));
}

static void h_reset(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    if (csrf_refused(req)) return;
    cd_manager_reset(r->mgr);
    cd_http_respond_text(req, 200, "");
}

static void h_start(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    if (csrf_refused(req)) return;
    int rc = cd_manager_start(r->mgr);
    cd_http_respond(req, rc == 1 ? 201 : rc == 0 ? 200 : 500, NULL, "", 0);
}

static const char *ui_id_of(const json_t *b) {
    const char *u = json_string_value(json_object_get(b, "ui_id"));
    return u ? u : json_string_value(json_object_get(b, "id"));
}

/* Queues the job's task; for the synchronous routes, also starts the worker and leaves the
 * answer to the task's end. */
static void enqueue_job(job *j) {
    uint64_t id = cd_manager_enqueue(j->r->mgr, j->kind, ui_id_of(j->body), j->body);
    if (!id) {
        j->status = 500;
        j->text = strdup("cannot queue the task");
        return;
    }
    if (!j->wait) {
        j->status = 200;
        return;
    }
    waiter *w = calloc(1, sizeof *w);
    if (!w) {
        j->status = 500;
        return;
    }
    w->task_id = id;
    w->req = j->req;
    w->r = j->r;
    w->next = j->r->waiters;
    j->r->waiters = w;
    cd_http_req_on_abort(j->req, waiter_abort, w);
    cd_manager_start(j->r->mgr);
    j->status = 0;
}

static void start_enqueue_job(mroutes *r, cd_http_req *req, job *j) {
    cd_offload(r->inst, req, job_work, job_done, j);
}

/* Install: the level gate, then (in the pool, as it reads the catalog) the risk of this item:
 * a git URL in no catalog needs allow_git_url_install and a loopback listener; pip never. */
static void w_install_check(job *j) {
    cd_risk risk;
    bool unknown_url;
    int rc = cd_manager_install_risk(j->r->mgr, j->body, &risk, &unknown_url, j->err, sizeof j->err);
    if (rc == -1) {
        j->status = 400;
        j->text = strdup("Invalid installation request");
    } else if (rc == -2) {
        j->status = 404;
        j->text = strdup(j->err);
    } else if (risk == CD_RISK_BLOCK) {
        j->status = 404;
        j->text = strdup(SEC_TEXT);
    } else if (unknown_url && !(cd_manager_config(j->r->mgr)->allow_git_url_install && cd_manager_loopback(j->r->mgr))) {
        cd_warn("manager: install of a git URL in no catalog refused: allow_git_url_install is off or the server "
                "listens beyond loopback");
        j->status = 404;
        j->text = strdup(SEC_TEXT);
    } else {
        j->after = enqueue_job;
    }
}

static void queue_install(mroutes *r, cd_http_req *req, cd_task_kind kind, bool wait, json_t *body) {
    if (!json_is_object(body)) {
        json_decref(body);
        cd_http_respond_text(req, 400, "Invalid installation request");
        return;
    }
    job *j = job_new(r, req, w_install_check);
    if (!j) {
        json_decref(body);
        return;
    }
    j->body = body;
    j->kind = kind;
    j->wait = wait;
    start_enqueue_job(r, req, j);
}

static void h_q_install(cd_http_req *req, void *ctx) {
    if (!gate_text(ctx, req, CD_RISK_MIDDLE)) return;
    queue_install(ctx, req, CD_TASK_INSTALL, false, body_json(req));
}
static void h_q_reinstall(cd_http_req *req, void *ctx) {
    if (!gate_text(ctx, req, CD_RISK_MIDDLE)) return;
    queue_install(ctx, req, CD_TASK_REINSTALL, false, body_json(req));
}

static void w_noop(job *j) { j->after = enqueue_job; }

/* uninstall, update, fix, disable, enable: {id, version, files?, ui_id} */
static void queue_simple(mroutes *r, cd_http_req *req, cd_task_kind kind, bool wait) {
    json_t *body = body_json(req);
    if (!json_is_object(body)) {
        json_decref(body);
        cd_http_respond_text(req, 400, "Invalid request");
        return;
    }
    job *j = job_new(r, req, w_noop);
    if (!j) {
        json_decref(body);
        return;
    }
    j->body = body;
    j->kind = kind;
    j->wait = wait;
    start_enqueue_job(r, req, j);
}

static void h_q_uninstall(cd_http_req *req, void *ctx) {
    if (gate_text(ctx, req, CD_RISK_MIDDLE)) queue_simple(ctx, req, CD_TASK_UNINSTALL, false);
}
static void h_q_update(cd_http_req *req, void *ctx) {
    if (gate_text(ctx, req, CD_RISK_MIDDLE)) queue_simple(ctx, req, CD_TASK_UPDATE, false);
}
static void h_q_fix(cd_http_req *req, void *ctx) {
    if (gate_text(ctx, req, CD_RISK_MIDDLE)) queue_simple(ctx, req, CD_TASK_FIX, false);
}
/* No gate, as in ComfyUI-Manager. */
static void h_q_disable(cd_http_req *req, void *ctx) { queue_simple(ctx, req, CD_TASK_DISABLE, false); }
static void h_q_enable(cd_http_req *req, void *ctx) {
    if (gate_text(ctx, req, CD_RISK_MIDDLE)) queue_simple(ctx, req, CD_TASK_ENABLE, false);
}

static void w_model_check(job *j) {
    int rc = cd_manager_check_model(j->r->mgr, j->body, j->err, sizeof j->err);
    if (rc == -1) {
        j->status = 400;
        j->text = strdup(j->err);
    } else if (rc == -2) {
        j->status = 403;
        j->text = strdup(SEC_TEXT);
    } else {
        j->after = enqueue_job;
    }
}

static void model_route(cd_http_req *req, mroutes *r, bool wait) {
    if (!gate_text(r, req, CD_RISK_MIDDLE)) return;
    json_t *body = body_json(req);
    if (!json_is_object(body)) {
        json_decref(body);
        cd_http_respond_text(req, 400, "Invalid model install request is detected");
        return;
    }
    job *j = job_new(r, req, w_model_check);
    if (!j) {
        json_decref(body);
        return;
    }
    j->body = body;
    j->kind = CD_TASK_INSTALL_MODEL;
    j->wait = wait;
    start_enqueue_job(r, req, j);
}
static void h_q_install_model(cd_http_req *req, void *ctx) { model_route(req, ctx, false); }

static void w_update_all(job *j) {
    char *name = NULL;
    if (cd_manager_snapshot_save(j->r->mgr, &name, j->err, sizeof j->err) == 0) {
        /* ComfyUI-Manager keeps an "autosave" snapshot before updating everything. */
        free(name);
    }
    cd_manager_enqueue_update_all(j->r->mgr);
    j->status = 200;
}
static void h_q_update_all(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    if (!gate_json(r, req, CD_RISK_MIDDLE)) return;
    if (cd_manager_is_processing(r->mgr)) {
        cd_http_respond_text(req, 401, "");
        return;
    }
    job *j = job_new(r, req, w_update_all);
    if (j) job_start(r, req, j);
}

static void h_update_comfyui(cd_http_req *req, void *ctx) {
    (void)ctx;
    if (csrf_refused(req)) return;
    cd_http_respond_text(req, 400, "comfyd is not updated by the manager: install a new comfyd release");
}

/* ---- the older synchronous routes (ComfyUI-Manager v2, @saintno/comfyui-sdk) ---- */

static void h_sync_install(cd_http_req *req, void *ctx) {
    if (!gate_text(ctx, req, CD_RISK_MIDDLE)) return;
    queue_install(ctx, req, CD_TASK_INSTALL, true, body_json(req));
}
static void h_sync_uninstall(cd_http_req *req, void *ctx) {
    if (gate_text(ctx, req, CD_RISK_MIDDLE)) queue_simple(ctx, req, CD_TASK_UNINSTALL, true);
}
static void h_sync_update(cd_http_req *req, void *ctx) {
    if (gate_text(ctx, req, CD_RISK_MIDDLE)) queue_simple(ctx, req, CD_TASK_UPDATE, true);
}
static void h_sync_fix(cd_http_req *req, void *ctx) {
    if (gate_text(ctx, req, CD_RISK_MIDDLE)) queue_simple(ctx, req, CD_TASK_FIX, true);
}
static void w_toggle(job *j) {
    json_t *all = cd_manager_installed(j->r->mgr);
    const char *id = json_string_value(json_object_get(j->body, "id"));
    json_t *p = id ? json_object_get(all, id) : NULL;
    j->kind = p && json_is_true(json_object_get(p, "enabled")) ? CD_TASK_DISABLE : CD_TASK_ENABLE;
    json_decref(all);
    j->after = enqueue_job;
}
static void h_sync_toggle(cd_http_req *req, void *ctx) {
    json_t *body = body_json(req);
    if (!json_is_object(body)) {
        json_decref(body);
        cd_http_respond_text(req, 400, "Invalid request");
        return;
    }
    job *j = job_new(ctx, req, w_toggle);
    if (!j) {
        json_decref(body);
        return;
    }
    j->body = body;
    j->wait = true;
    start_enqueue_job(ctx, req, j);
}
static void h_sync_model(cd_http_req *req, void *ctx) { model_route(req, ctx, true); }

/* The body is the URL as text (older) or {"url": ...}. */
static void h_install_git_url(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    if (!(cd_manager_config(r->mgr)->allow_git_url_install && cd_manager_loopback(r->mgr))) {
        respond_403sec(req, "allow_git_url_install");
        return;
    }
    if (!gate_text(r, req, CD_RISK_MIDDLE)) return;
    size_t len;
    const char *b = cd_http_req_body(req, &len);
    json_t *j = body_json(req);
    char *url = json_is_string(json_object_get(j, "url")) ? strdup(json_string_value(json_object_get(j, "url")))
                                                            : strndup(b, len);
    json_decref(j);
    if (!url) {
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    size_t n = strlen(url);
    while (n && (url[n - 1] == '\n' || url[n - 1] == '\r' || url[n - 1] == ' ')) url[--n] = 0;
    if (!n) {
        free(url);
        cd_http_respond_text(req, 400, "Invalid git url");
        return;
    }
    json_t *item = json_pack("{s:s, s:[s], s:s}", "version", "unknown", "files", url, "ui_id", url);
    free(url);
    queue_install(r, req, CD_TASK_INSTALL, true, item);
}

static void h_install_pip(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    if (!(cd_manager_config(r->mgr)->allow_pip_install && cd_manager_loopback(r->mgr))) {
        respond_403sec(req, "allow_pip_install");
        return;
    }
    cd_http_respond_text(req, 400, "comfyd runs no Python: node packs have no pip dependencies");
}

/* ---- settings ---- */

static void setting(cd_http_req *req, mroutes *r, char **field, const char *const *allowed) {
    char *v = query(req, "value");
    if (!v && !strcmp(cd_http_req_method(req), "POST")) {
        json_t *b = body_json(req);
        const char *s = json_string_value(json_object_get(b, "value"));
        if (s) v = strdup(s);
        json_decref(b);
    }
    if (!v) {
        cd_http_respond(req, 200, "text/plain; charset=utf-8", *field, strlen(*field));
        return;
    }
    bool ok = !allowed;
    for (size_t i = 0; allowed && allowed[i]; i++)
        if (!strcmp(allowed[i], v)) ok = true;
    if (!ok) {
        free(v);
        cd_http_respond_text(req, 400, "invalid value");
        return;
    }
    cd_mconfig_set(field, v);
    free(v);
    if (cd_manager_save_config(r->mgr) < 0) cd_warn("manager: cannot write config.ini");
    cd_http_respond(req, 200, NULL, "", 0);
}

static void h_db_mode(cd_http_req *req, void *ctx) {
    static const char *const v[] = {"local", "cache", "remote", NULL};
    mroutes *r = ctx;
    setting(req, r, &cd_manager_config(r->mgr)->db_mode, v);
}
static void h_policy_component(cd_http_req *req, void *ctx) {
    static const char *const v[] = {"workflow", "higher", "mine", NULL};
    mroutes *r = ctx;
    setting(req, r, &cd_manager_config(r->mgr)->component_policy, v);
}
static void h_policy_update(cd_http_req *req, void *ctx) {
    static const char *const v[] = {"stable-comfyui", "nightly-comfyui", NULL};
    mroutes *r = ctx;
    setting(req, r, &cd_manager_config(r->mgr)->update_policy, v);
}
static void h_preview_method(cd_http_req *req, void *ctx) {
    static const char *const v[] = {"auto", "latent2rgb", "taesd", "none", NULL};
    mroutes *r = ctx;
    setting(req, r, &cd_manager_config(r->mgr)->preview_method, v);
}
static void h_share_option(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    setting(req, r, &cd_manager_config(r->mgr)->share_option, NULL);
}

static void h_channel_list(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    cd_mconfig *c = cd_manager_config(r->mgr);
    if (!strcmp(cd_http_req_method(req), "POST")) {
        json_t *b = body_json(req);
        const char *v = json_string_value(json_object_get(b, "value"));
        if (v && !strcmp(v, "default")) {
            free(c->channel_url);
            c->channel_url = NULL;
            cd_manager_save_config(r->mgr);
        }
        /* unknown names are ignored, as in ComfyUI-Manager */
        json_decref(b);
        cd_http_respond(req, 200, NULL, "", 0);
        return;
    }
    json_t *list = json_array();
    json_array_append_new(list, json_string("default::(bundled with comfyd)"));
    if (c->channel_url) {
        char line[4200];
        snprintf(line, sizeof line, "custom::%s", c->channel_url);
        json_array_append_new(list, json_string(line));
    }
    cd_respond_json(req, 200, json_pack("{s:s, s:o}", "selected", c->channel_url ? "custom" : "default", "list", list));
}

static void h_version(cd_http_req *req, void *ctx) {
    (void)ctx;
    cd_http_respond(req, 200, "text/plain; charset=utf-8", "V3.41", 5);
}
static void h_notice(cd_http_req *req, void *ctx) {
    (void)ctx;
    const char *t = "comfyd's built-in node-pack manager (ComfyUI-Manager API)";
    cd_http_respond(req, 200, "text/plain; charset=utf-8", t, strlen(t));
}
static void h_startup_alerts(cd_http_req *req, void *ctx) {
    (void)ctx;
    cd_respond_json(req, 200, json_array());
}

/* ---- snapshots ---- */

static void w_snap_list(job *j) { j->json = json_pack("{s:o}", "items", cd_manager_snapshot_list(j->r->mgr)); }
static void h_snap_list(cd_http_req *req, void *ctx) {
    job *j = job_new(ctx, req, w_snap_list);
    if (j) job_start(ctx, req, j);
}
static void w_snap_current(job *j) { j->json = cd_manager_snapshot_current(j->r->mgr); }
static void h_snap_current(cd_http_req *req, void *ctx) {
    job *j = job_new(ctx, req, w_snap_current);
    if (j) job_start(ctx, req, j);
}
static void w_snap_save(job *j) {
    char *name = NULL;
    if (cd_manager_snapshot_save(j->r->mgr, &name, j->err, sizeof j->err) < 0) {
        j->status = 400;
        j->text = strdup(j->err);
    } else {
        j->status = 200;
    }
    free(name);
}
static void h_snap_save(cd_http_req *req, void *ctx) {
    if (csrf_refused(req)) return;
    job *j = job_new(ctx, req, w_snap_save);
    if (j) job_start(ctx, req, j);
}

static char *snapshot_target(cd_http_req *req) {
    char *t = query(req, "target");
    if (!t) {
        json_t *b = body_json(req);
        const char *s = json_string_value(json_object_get(b, "target"));
        if (s) t = strdup(s);
        json_decref(b);
    }
    return t;
}

static void h_snap_remove(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    if (!gate_json(r, req, CD_RISK_MIDDLE)) return;
    char *t = snapshot_target(req);
    if (!t || !cd_manager_snapshot_name_ok(t)) cd_http_respond_text(req, 400, "Invalid snapshot target");
    else {
        cd_manager_snapshot_remove(r->mgr, t);
        cd_http_respond(req, 200, NULL, "", 0);
    }
    free(t);
}

/* ComfyUI-Manager applies a restore at the next start; comfyd queues it at once (reboot
 * afterwards to load the restored packs). */
static void h_snap_restore(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    if (!gate_json(r, req, CD_RISK_MIDDLE)) return;
    char *t = snapshot_target(req);
    json_t *snap = t && cd_manager_snapshot_name_ok(t) ? cd_manager_snapshot_load(r->mgr, t) : NULL;
    if (!snap) {
        cd_http_respond_text(req, 400, "Invalid snapshot target");
    } else {
        cd_manager_enqueue(r->mgr, CD_TASK_RESTORE, "restore-snapshot", snap);
        cd_manager_start(r->mgr);
        cd_http_respond(req, 200, NULL, "", 0);
    }
    json_decref(snap);
    free(t);
}

/* ---- reboot ---- */

static void h_reboot(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    if (csrf_refused(req)) return;
    if (!gate_json(r, req, CD_RISK_MIDDLE)) return;
    /* ComfyUI-Manager's reboot never answers (the process execs itself), and clients count on
     * that: @saintno/comfyui-sdk reports success only when the request fails. So the
     * connection is cut, then the server restarts. */
    cd_http_abort(req);
    cd_instance_reboot(r->inst);
}

/* ---- the v4 (/v2) task and batch routes ---- */

static bool kind_of(const char *k, cd_task_kind *out) {
    static const struct {
        const char *name;
        cd_task_kind kind;
    } kinds[] = {{"install", CD_TASK_INSTALL}, {"uninstall", CD_TASK_UNINSTALL}, {"update", CD_TASK_UPDATE},
                 {"fix", CD_TASK_FIX},         {"disable", CD_TASK_DISABLE},     {"enable", CD_TASK_ENABLE},
                 {"install-model", CD_TASK_INSTALL_MODEL}, {"reinstall", CD_TASK_REINSTALL}};
    for (size_t i = 0; k && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(k, kinds[i].name)) {
            *out = kinds[i].kind;
            return true;
        }
    return false;
}

static void h_v2_task(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    json_t *b = body_json(req);
    cd_task_kind kind;
    json_t *params = json_object_get(b, "params");
    const char *ui_id = json_string_value(json_object_get(b, "ui_id"));
    if (!json_is_object(b) || !json_is_object(params) || !ui_id ||
        !kind_of(json_string_value(json_object_get(b, "kind")), &kind)) {
        json_decref(b);
        cd_http_respond_text(req, 400, "Invalid task data: kind, ui_id and params are required");
        return;
    }
    cd_risk risk = kind == CD_TASK_DISABLE ? CD_RISK_LOW : CD_RISK_MIDDLE;
    if (!gate_json(r, req, risk)) {
        json_decref(b);
        return;
    }
    /* v4's params name the pack node_name (update, fix, uninstall, disable) or cnr_id (enable) */
    json_t *p = json_deep_copy(params);
    const char *cnr = json_string_value(json_object_get(p, "cnr_id"));
    if (cnr && !json_object_get(p, "node_name")) json_object_set_new(p, "node_name", json_string(cnr));
    json_object_set_new(p, "ui_id", json_string(ui_id));
    json_decref(b);
    if (kind == CD_TASK_INSTALL || kind == CD_TASK_REINSTALL) {
        queue_install(r, req, kind, false, p);
    } else if (kind == CD_TASK_INSTALL_MODEL) {
        job *j = job_new(r, req, w_model_check);
        if (!j) {
            json_decref(p);
            return;
        }
        j->body = p;
        j->kind = kind;
        start_enqueue_job(r, req, j);
    } else {
        cd_manager_enqueue(r->mgr, kind, json_string_value(json_object_get(p, "ui_id")), p);
        json_decref(p);
        cd_http_respond_text(req, 200, "");
    }
}

static void h_v2_batch(cd_http_req *req, void *ctx) {
    mroutes *r = ctx;
    json_t *b = body_json(req);
    if (!json_is_object(b)) {
        json_decref(b);
        cd_http_respond_text(req, 400, "Invalid batch");
        return;
    }
    if (!gate_json(r, req, CD_RISK_MIDDLE)) {
        json_decref(b);
        return;
    }
    static const struct {
        const char *key;
        cd_task_kind kind;
    } groups[] = {{"install", CD_TASK_INSTALL}, {"uninstall", CD_TASK_UNINSTALL}, {"update", CD_TASK_UPDATE},
                  {"reinstall", CD_TASK_REINSTALL}, {"disable", CD_TASK_DISABLE}, {"fix", CD_TASK_FIX},
                  {"install_model", CD_TASK_INSTALL_MODEL}};
    json_t *failed = json_array();
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(b, groups[g].key), i, item) {
            if (!json_is_object(item) || !cd_manager_enqueue(r->mgr, groups[g].kind, ui_id_of(item), item))
                json_array_append_new(failed, json_string(ui_id_of(item) ? ui_id_of(item) : ""));
        }
    }
    if (json_object_get(b, "update_all")) cd_manager_enqueue_update_all(r->mgr);
    json_decref(b);
    cd_manager_start(r->mgr);
    cd_respond_json(req, 200, json_pack("{s:o}", "failed", failed));
}

/* ---- registration and shutdown ---- */

static void add(mroutes *r, const char *method, const char *path, cd_route_fn fn) {
    char v2[256];
    cd_router_add_api(r->inst->router, method, path, fn, r);
    snprintf(v2, sizeof v2, "/v2%s", path);
    cd_router_add_api(r->inst->router, method, v2, fn, r);
}

/* Both the newer POST and the older GET forms. */
static void add_both(mroutes *r, const char *path, cd_route_fn fn) {
    add(r, "GET", path, fn);
    add(r, "POST", path, fn);
}

int cd_routes_manager_register(cd_instance *inst, char *err, size_t errlen) {
    mroutes *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->inst = inst;
    pthread_mutex_init(&r->lock, NULL);
    cd_manager_options o = {
        .custom_nodes_dir = inst->custom_nodes_dir,
        .models_dir = inst->models_dir,
        .user_dir = inst->user_dir,
        .loopback = cd_policy_listen_is_loopback(inst->opts->listen, inst->opts->nlisten),
        .on_event = on_manager_event,
        .ctx = r,
    };
    r->mgr = cd_manager_new(&o, err, errlen);
    if (!r->mgr || uv_async_init(inst->loop, &r->async, on_async) != 0) {
        cd_manager_free(r->mgr);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return -1;
    }
    r->async.data = r;
    inst->manager = r;
    r->imported = installed_now(r->mgr);
    cd_info("manager: security_level %s%s", cd_policy_level_name(cd_manager_config(r->mgr)->security_level),
            o.loopback ? "" : " (listening beyond loopback: the stricter rules apply)");

    add(r, "GET", "/customnode/getlist", h_getlist);
    add(r, "GET", "/customnode/getmappings", h_mappings);
    add(r, "GET", "/customnode/installed", h_installed);
    add(r, "GET", "/customnode/disabled_versions/{node_name}", h_disabled_versions);
    add_both(r, "/customnode/fetch_updates", h_fetch_updates);
    add(r, "GET", "/externalmodel/getlist", h_models);

    add(r, "GET", "/manager/queue/status", h_status);
    add_both(r, "/manager/queue/reset", h_reset);
    add_both(r, "/manager/queue/start", h_start);
    add(r, "POST", "/manager/queue/install", h_q_install);
    add(r, "POST", "/manager/queue/reinstall", h_q_reinstall);
    add(r, "POST", "/manager/queue/uninstall", h_q_uninstall);
    add(r, "POST", "/manager/queue/update", h_q_update);
    add(r, "POST", "/manager/queue/fix", h_q_fix);
    add(r, "POST", "/manager/queue/disable", h_q_disable);
    add(r, "POST", "/manager/queue/enable", h_q_enable);
    add(r, "POST", "/manager/queue/install_model", h_q_install_model);
    add_both(r, "/manager/queue/update_all", h_q_update_all);
    add_both(r, "/customnode/update_all", h_q_update_all);
    add_both(r, "/manager/queue/update_comfyui", h_update_comfyui);
    add_both(r, "/comfyui_manager/update_comfyui", h_update_comfyui);

    add(r, "POST", "/customnode/install", h_sync_install);
    add(r, "POST", "/customnode/uninstall", h_sync_uninstall);
    add(r, "POST", "/customnode/update", h_sync_update);
    add(r, "POST", "/customnode/fix", h_sync_fix);
    add(r, "POST", "/customnode/toggle_active", h_sync_toggle);
    add(r, "POST", "/customnode/install/git_url", h_install_git_url);
    add(r, "POST", "/customnode/install/pip", h_install_pip);
    add(r, "POST", "/model/install", h_sync_model);

    add_both(r, "/manager/db_mode", h_db_mode);
    add_both(r, "/manager/policy/component", h_policy_component);
    add_both(r, "/manager/policy/update", h_policy_update);
    add_both(r, "/manager/preview_method", h_preview_method);
    add(r, "GET", "/manager/share_option", h_share_option);
    add_both(r, "/manager/channel_url_list", h_channel_list);
    add(r, "GET", "/manager/version", h_version);
    add(r, "GET", "/manager/notice", h_notice);
    add(r, "GET", "/manager/startup_alerts", h_startup_alerts);

    add(r, "GET", "/snapshot/getlist", h_snap_list);
    add(r, "GET", "/snapshot/get_current", h_snap_current);
    add_both(r, "/snapshot/save", h_snap_save);
    add_both(r, "/snapshot/remove", h_snap_remove);
    add_both(r, "/snapshot/restore", h_snap_restore);
    add_both(r, "/manager/reboot", h_reboot);

    cd_router_add_api(inst->router, "POST", "/v2/manager/queue/task", h_v2_task, r);
    cd_router_add_api(inst->router, "POST", "/v2/manager/queue/batch", h_v2_batch, r);
    return 0;
}

static void on_async_closed(uv_handle_t *h) {
    mroutes *r = h->data;
    mev *list = r->head;
    while (list) {
        mev *n = list->next;
        json_decref(list->data);
        free(list->type);
        free(list);
        list = n;
    }
    for (waiter *w = r->waiters, *n; w; w = n) {
        n = w->next;
        free(w);
    }
    json_decref(r->imported);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void answer_waiters(mroutes *r, int status, const char *text) {
    for (waiter *w = r->waiters, *n; w; w = n) {
        n = w->next;
        if (w->req) {
            cd_http_req_on_abort(w->req, NULL, NULL);
            cd_http_respond_text(w->req, status, text);
        }
        free(w);
    }
    r->waiters = NULL;
}

void cd_routes_manager_cancel(cd_instance *inst) {
    mroutes *r = inst->manager;
    if (!r || !r->mgr) return;
    cd_manager_cancel(r->mgr);
    answer_waiters(r, 503, "the server is stopping");
}

void cd_routes_manager_close(cd_instance *inst) {
    mroutes *r = inst->manager;
    if (!r) return;
    inst->manager = NULL;
    /* The worker stops (cancelling a download, clone or build) before the handle goes. */
    cd_manager_free(r->mgr);
    r->mgr = NULL;
    pthread_mutex_lock(&r->lock);
    r->closing = true;
    pthread_mutex_unlock(&r->lock);
    answer_waiters(r, 503, "the server is stopping");
    uv_close((uv_handle_t *)&r->async, on_async_closed);
}
