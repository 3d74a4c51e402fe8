/* Node packs for admins, installed once into the shared custom_nodes folder every instance
 * links to (and models into the shared models folder):
 *
 *   GET  /api/packs?q=TEXT           the catalog (the configured channel's cache, else the
 *                                    bundled one) with each pack's state: not-installed,
 *                                    enabled or disabled; TEXT filters by id, title, author or
 *                                    description; also the task queue's status
 *   POST /api/packs/tasks {action, id}   install, update, disable, enable or uninstall a pack
 *                                    of the catalog: 202 {task_id}
 *
 * The tasks run one after another on the manager's own thread (downloads, clones and builds
 * never block the loop); what it reports reaches admins on /api/events as {"type": "packs",
 * "data": {"event": "cm-queue-status" | "cm-task-done" | ..., ...}}. An instance loads packs
 * when it starts, so a change shows in ComfyUI after a restart of its instance. */
#include "hub/api_packs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/path.h"
#include "base/str.h"
#include "hub/events.h"
#include "manager/manager.h"
#include "manager/packs.h"

#define MAX_LISTED 300

typedef struct pack_event {
    json_t *data;
    struct pack_event *next;
} pack_event;

struct cd_hub_packs {
    cd_hub *hub;
    cd_manager *mgr;
    uv_async_t async;
    pthread_mutex_t lock; /* the worker thread adds events; the loop takes them */
    pack_event *head, *tail;
    bool closing;
    int reads; /* catalog reads in the thread pool */
    /* The hub is stopping: the running task was cancelled, and the hub waits this long for the
     * worker to notice. A download, a build or a clone that receives data stops at once; a
     * clone from a server that says nothing (or a wait for another process's lock on
     * custom_nodes) cannot be interrupted, and the hub does not wait minutes for it: the
     * worker is left behind, cancelled (it can no longer put a pack in place, manager.c), and
     * ends with the process. Its staging folder (a dot-folder no instance loads) stays. */
    uv_timer_t stop_wait;
    int64_t give_up_at;
    bool waiting, abandoned;
    int handles; /* async and stop_wait, until both are closed */
};

#define STOP_WAIT_MS 3000

/* ---- the worker's events, carried to the loop ---- */

/* On the manager's worker thread: must not block, and must not touch the loop's objects. */
static void on_manager_event(void *ctx, const char *type, json_t *data) {
    cd_hub_packs *p = ctx;
    json_t *msg = json_is_object(data) ? data : json_pack("{s:o}", "detail", data ? data : json_null());
    pack_event *e = calloc(1, sizeof *e);
    if (!e || !msg) {
        free(e);
        json_decref(msg);
        return;
    }
    json_object_set_new(msg, "event", json_string(type));
    e->data = msg;
    pthread_mutex_lock(&p->lock);
    bool closing = p->closing;
    if (!closing) {
        if (p->tail) p->tail->next = e;
        else p->head = e;
        p->tail = e;
    }
    pthread_mutex_unlock(&p->lock);
    if (closing) {
        json_decref(msg);
        free(e);
        return;
    }
    uv_async_send(&p->async);
}

static void on_async(uv_async_t *a) {
    cd_hub_packs *p = a->data;
    pthread_mutex_lock(&p->lock);
    pack_event *list = p->head;
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&p->lock);
    for (pack_event *n; list; list = n) {
        n = list->next;
        cd_hub_events_admins(p->hub->events, "packs", list->data);
        free(list);
    }
}

/* ---- the catalog, read in the thread pool (a channel may be fetched) ---- */

typedef struct {
    cd_hub_packs *packs;
    uv_work_t work;
    cd_http_req *req; /* NULL once the client went away */
    char *q;
    json_t *list;
    char err[256];
} catalog_read;

static bool contains_ci(const char *hay, const char *needle) {
    if (!hay) return false;
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n)) return true;
    return false;
}

static const char *field(const json_t *o, const char *k) {
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

/* The catalog's packs that match q, in the catalog's order, as the dashboard lists them. */
static json_t *matching_packs(const json_t *getlist, const char *q) {
    json_t *out = json_array();
    const char *key;
    json_t *e;
    json_object_foreach(json_object_get(getlist, "node_packs"), key, e) {
        if (json_array_size(out) >= MAX_LISTED) break;
        if (q && *q && !contains_ci(key, q) && !contains_ci(field(e, "title"), q) &&
            !contains_ci(field(e, "author"), q) && !contains_ci(field(e, "description"), q))
            continue;
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", key, "title", field(e, "title"),
                                             "author", field(e, "author"), "description", field(e, "description"),
                                             "version", field(e, "version"), "state", field(e, "state"),
                                             "repository", field(e, "repository")));
    }
    return out;
}

static void read_work(uv_work_t *w) {
    catalog_read *r = w->data;
    json_t *all = cd_manager_getlist(r->packs->mgr, "cache", false, r->err, sizeof r->err);
    if (all) r->list = matching_packs(all, r->q);
    json_decref(all);
}

static void read_aborted(cd_http_req *req, void *arg) { ((catalog_read *)arg)->req = NULL; }

static void read_done(uv_work_t *w, int status) {
    catalog_read *r = w->data;
    r->packs->reads--;
    if (r->req) {
        cd_http_req_on_abort(r->req, NULL, NULL);
        if (!r->list) {
            cd_hub_error(r->req, 502, "catalog_unavailable", "cannot read the catalog: %s", r->err);
        } else {
            cd_hub_json(r->req, 200, json_pack("{s:O, s:o}", "packs", r->list, "queue", cd_manager_status(r->packs->mgr)));
        }
    }
    json_decref(r->list);
    free(r->q);
    free(r);
}

static void handle_list(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    catalog_read *r = calloc(1, sizeof *r);
    if (!r) {
        cd_hub_error(req, 500, "internal", "out of memory");
        return;
    }
    r->packs = hub->packs;
    r->req = req;
    r->q = cd_str_query_get(cd_http_req_query(req), "q");
    r->work.data = r;
    if (uv_queue_work(hub->loop, &r->work, read_work, read_done) != 0) {
        free(r->q);
        free(r);
        cd_hub_error(req, 500, "internal", "cannot queue the catalog read");
        return;
    }
    hub->packs->reads++;
    cd_http_req_on_abort(req, read_aborted, r);
}

/* ---- tasks ---- */

static const struct {
    const char *action;
    cd_task_kind kind;
} actions[] = {
    {"install", CD_TASK_INSTALL}, {"update", CD_TASK_UPDATE},       {"disable", CD_TASK_DISABLE},
    {"enable", CD_TASK_ENABLE},   {"uninstall", CD_TASK_UNINSTALL},
};

/* The action's task kind, or -1 for an unknown action. */
static int task_kind(const char *action) {
    for (size_t i = 0; action && i < sizeof actions / sizeof actions[0]; i++)
        if (!strcmp(actions[i].action, action)) return (int)actions[i].kind;
    return -1;
}

/* The task's parameters as the manager's queue takes them: an install names a catalog entry
 * (never a URL: only the catalog's packs are offered), the others an installed pack. */
static json_t *task_params(cd_task_kind kind, const char *id) {
    if (kind == CD_TASK_INSTALL) return json_pack("{s:s, s:s, s:s}", "id", id, "selected_version", "latest", "mode", "cache");
    return json_pack("{s:s}", "node_name", id);
}

/* Queues the task and starts the worker: its id, or 0. */
static uint64_t queue_task(cd_manager *mgr, cd_task_kind kind, const char *id) {
    json_t *params = task_params(kind, id);
    uint64_t task_id = params ? cd_manager_enqueue(mgr, kind, id, params) : 0;
    json_decref(params);
    return task_id && cd_manager_start(mgr) >= 0 ? task_id : 0;
}

static void handle_task(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    static const char *const fields[] = {"action", "id", NULL};
    json_t *body = cd_hub_body_object(req, fields);
    if (!body) return;
    const char *action = json_string_value(json_object_get(body, "action"));
    const char *id = json_string_value(json_object_get(body, "id"));
    int kind = task_kind(action);
    cd_manager *mgr = hub->packs->mgr;
    uint64_t task_id = 0;
    if (kind < 0 || !id || !cd_pack_name_is_valid(id))
        cd_hub_error(req, 400, "invalid_request",
                     "'action' is install, update, disable, enable or uninstall; 'id' a pack of the catalog");
    else if (!cd_manager_allowed(mgr, CD_RISK_MIDDLE))
        cd_hub_error(req, 403, "forbidden", "the manager's security_level (%s) allows no pack changes",
                     cd_policy_level_name(cd_manager_config(mgr)->security_level));
    else if (!(task_id = queue_task(mgr, (cd_task_kind)kind, id)))
        cd_hub_error(req, 500, "internal", "cannot queue the task");
    if (task_id) {
        char target[160];
        snprintf(target, sizeof target, "pack %s", id);
        cd_hub_audit(hub, req, &c.user, "pack_task", target, "%s", action);
        cd_hub_json(req, 202, json_pack("{s:I, s:s, s:s}", "task_id", (json_int_t)task_id, "action", action, "id", id));
    }
    json_decref(body);
}

/* ---- life ---- */

static int manager_user_dir(const cd_hub_config *cfg, char **out, char *err, size_t errlen) {
    *out = cd_path_join(cfg->data_dir, "manager");
    if (*out && cd_path_mkdirs(*out, 0700) == 0 && cd_path_mkdirs(cfg->custom_nodes_dir, 0755) == 0 &&
        cd_path_mkdirs(cfg->models_dir, 0755) == 0)
        return 0;
    snprintf(err, errlen, "cannot create the node-pack manager's folders under %s", cfg->data_dir);
    free(*out);
    *out = NULL;
    return -1;
}

int cd_hub_packs_start(cd_hub *hub, char *err, size_t errlen) {
    char *user_dir;
    if (manager_user_dir(hub->cfg, &user_dir, err, errlen) < 0) return -1;
    cd_hub_packs *p = calloc(1, sizeof *p);
    if (!p) {
        free(user_dir);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->hub = hub;
    pthread_mutex_init(&p->lock, NULL);
    char *listen[] = {hub->cfg->listen};
    cd_manager_options o = {
        .custom_nodes_dir = hub->cfg->custom_nodes_dir,
        .models_dir = hub->cfg->models_dir,
        .user_dir = user_dir,
        .loopback = cd_policy_listen_is_loopback(listen, 1),
        .on_event = on_manager_event,
        .ctx = p,
    };
    p->mgr = cd_manager_new(&o, err, errlen);
    free(user_dir);
    if (!p->mgr || uv_async_init(hub->loop, &p->async, on_async) != 0) {
        cd_manager_free(p->mgr);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return -1;
    }
    p->async.data = p;
    uv_timer_init(hub->loop, &p->stop_wait);
    p->stop_wait.data = p;
    p->handles = 2;
    hub->packs = p;
    cd_router_add(hub->router, "GET", "/api/packs", handle_list, hub);
    cd_router_add(hub->router, "POST", "/api/packs/tasks", handle_task, hub);
    return 0;
}

static void on_stop_wait(uv_timer_t *t) {
    cd_hub_packs *p = t->data;
    if (!cd_manager_is_processing(p->mgr)) {
        p->waiting = false;
        uv_timer_stop(t);
    } else if (cd_hub_now_ms() >= p->give_up_at) {
        cd_warn("hub: a node-pack task did not stop within %d s of its cancel: leaving it behind (it can no longer "
                "install anything)", STOP_WAIT_MS / 1000);
        p->waiting = false;
        p->abandoned = true;
        uv_timer_stop(t);
    }
}

void cd_hub_packs_cancel(cd_hub_packs *p) {
    if (!p) return;
    cd_manager_cancel(p->mgr);
    uv_unref((uv_handle_t *)&p->async); /* the hub's loop ends when the rest has stopped */
    if (p->waiting || !cd_manager_is_processing(p->mgr)) return;
    p->waiting = true;
    p->give_up_at = cd_hub_now_ms() + STOP_WAIT_MS;
    uv_timer_start(&p->stop_wait, on_stop_wait, 50, 50);
}

bool cd_hub_packs_idle(const cd_hub_packs *p) { return !p || (p->reads == 0 && !p->waiting); }

static void on_closed(uv_handle_t *h) {
    cd_hub_packs *p = h->data;
    if (--p->handles > 0) return;
    if (p->abandoned) return; /* the worker still holds p (its event callback): it goes with the process */
    for (pack_event *e = p->head, *n; e; e = n) {
        n = e->next;
        json_decref(e->data);
        free(e);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void cd_hub_packs_close(cd_hub_packs *p) {
    if (!p) return;
    /* A worker left behind is not joined (that is what waiting minutes would be), nor is the
     * manager it uses freed. */
    if (!p->abandoned) {
        cd_manager_free(p->mgr); /* joins the worker: no event comes after this */
        p->mgr = NULL;
    }
    pthread_mutex_lock(&p->lock);
    p->closing = true;
    pthread_mutex_unlock(&p->lock);
    uv_close((uv_handle_t *)&p->async, on_closed);
    uv_close((uv_handle_t *)&p->stop_wait, on_closed);
}
