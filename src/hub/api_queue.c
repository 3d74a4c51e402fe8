/* The admission queue as users and the dashboard see it (the queue itself is admission.c):
 *
 *   GET    /api/queue/status              queue_length, processing_count, max_concurrent,
 *                                         available_slots; per-user counts for teachers/admins
 *   GET    /api/queue/tasks[?mine=1&limit=N]  held prompts with user, project, position: a
 *                                         student's own, everyone's for teachers and admins
 *   GET    /api/queue/tasks/{prompt_id}   one prompt: state, position, ahead, times (held or ended)
 *   DELETE /api/queue/tasks/{prompt_id}   cancel a waiting prompt (its owner, teachers, admins)
 *   GET    /api/queue/series              queue length and running every 10 s, the last hour
 *                                         (teachers, admins) */
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "hub/admission.h"
#include "hub/hub.h"

static json_t *status_users(cd_hub *hub, const cd_admission_entry *list, size_t n) {
    json_t *users = json_object();
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)list[i].p.user_id);
        json_t *u = json_object_get(users, key);
        if (!u) {
            cd_store_user su;
            bool known = hub->store->ops->user_get(hub->store, list[i].p.user_id, &su) == 0;
            u = json_pack("{s:s, s:i, s:i}", "name", known ? su.name : "", "waiting", 0, "running", 0);
            json_object_set_new(users, key, u);
        }
        const char *field = list[i].position ? "waiting" : "running";
        json_object_set_new(u, field, json_integer(json_integer_value(json_object_get(u, field)) + 1));
    }
    return users;
}

static void handle_status(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    int waiting, running;
    cd_admission_counts(hub->admission, &waiting, &running); /* students poll this: no walk of the queue */
    int max = cd_admission_max_concurrent(hub->admission);
    json_t *j = json_pack("{s:i, s:i, s:i, s:i}", "queue_length", waiting, "processing_count", running,
                          "max_concurrent", max, "available_slots", max > running ? max - running : 0);
    if (c.user.role >= CD_ROLE_TEACHER) {
        size_t n;
        cd_admission_entry *list = cd_admission_list(hub->admission, &n);
        json_object_set_new(j, "users", status_users(hub, list, n));
        free(list);
    }
    cd_hub_json(req, 200, j);
}

/* Names of users and projects for a listing, each looked up once. */
typedef struct {
    int64_t id;
    char name[160];
} name_entry;

typedef struct {
    name_entry *v;
    size_t n, cap;
} name_cache;

static const char *cached_name(cd_hub *hub, name_cache *nc, int64_t id, bool project) {
    for (size_t i = 0; i < nc->n; i++)
        if (nc->v[i].id == id) return nc->v[i].name;
    if (nc->n == nc->cap) {
        size_t cap = nc->cap ? nc->cap * 2 : 16;
        name_entry *grown = realloc(nc->v, cap * sizeof *grown);
        if (!grown) return "";
        nc->v = grown;
        nc->cap = cap;
    }
    name_entry *e = &nc->v[nc->n++];
    e->id = id;
    e->name[0] = 0;
    if (project) {
        cd_store_project p;
        if (hub->store->ops->project_get(hub->store, id, &p) == 0) snprintf(e->name, sizeof e->name, "%s", p.name);
    } else {
        cd_store_user u;
        if (hub->store->ops->user_get(hub->store, id, &u) == 0) snprintf(e->name, sizeof e->name, "%s", u.name);
    }
    return e->name;
}

static json_t *task_json(const cd_admission_entry *e, const char *user, const char *project) {
    return json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:i, s:i, s:I, s:I}", "prompt_id", e->p.prompt_id, "state",
                     e->p.state, "user_id", (json_int_t)e->p.user_id, "user", user, "project_id",
                     (json_int_t)e->p.project_id, "project", project, "position", e->position, "ahead",
                     e->position ? e->position - 1 : 0, "created_at", (json_int_t)e->p.created_at, "dispatched_at",
                     (json_int_t)e->p.dispatched_at);
}

static void handle_list(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    long limit = cd_hub_query_long(req, "limit", 1000), mine = cd_hub_query_long(req, "mine", 0);
    if (limit < 1 || limit > 100000 || mine < 0 || mine > 1) {
        cd_hub_error(req, 400, "invalid_request", "limit is 1 to 100000; mine is 0 or 1");
        return;
    }
    bool only_own = mine || c.user.role < CD_ROLE_TEACHER;
    size_t n;
    cd_admission_entry *list = cd_admission_list(hub->admission, &n);
    name_cache users = {0}, projects = {0};
    json_t *tasks = json_array();
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (only_own && list[i].p.user_id != c.user.id) continue;
        if (total++ >= (size_t)limit) continue;
        json_array_append_new(tasks, task_json(&list[i], cached_name(hub, &users, list[i].p.user_id, false),
                                               cached_name(hub, &projects, list[i].p.project_id, true)));
    }
    free(list);
    free(users.v);
    free(projects.v);
    cd_hub_json(req, 200, json_pack("{s:o, s:I}", "tasks", tasks, "total", (json_int_t)total));
}

static void handle_task(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    const char *id = cd_http_req_param(req, "prompt_id");
    cd_admission_entry e = {0};
    bool held = id && cd_admission_find(hub->admission, id, &e);
    if (!held && (!id || hub->store->ops->prompt_get(hub->store, id, &e.p) != 0)) {
        cd_hub_error(req, 404, "not_found", "no prompt '%s'", id ? id : "");
        return;
    }
    if (e.p.user_id != c.user.id && c.user.role < CD_ROLE_TEACHER) {
        cd_hub_error(req, 403, "forbidden", "prompt '%s' is not yours", id);
        return;
    }
    cd_hub_json(req, 200,
                json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:I, s:I, s:I, s:s}", "prompt_id", e.p.prompt_id, "state",
                          e.p.state, "user_id", (json_int_t)e.p.user_id, "project_id", (json_int_t)e.p.project_id,
                          "position", e.position, "ahead", e.position ? e.position - 1 : 0, "created_at",
                          (json_int_t)e.p.created_at, "dispatched_at", (json_int_t)e.p.dispatched_at, "finished_at",
                          (json_int_t)e.p.finished_at, "reason", e.p.reason));
}

static void handle_task_cancel(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    const char *id = cd_http_req_param(req, "prompt_id");
    cd_admission_entry e;
    if (!id || !cd_admission_find(hub->admission, id, &e)) {
        cd_hub_error(req, 404, "not_found", "no waiting or running prompt '%s'", id ? id : "");
        return;
    }
    if (e.p.user_id != c.user.id && c.user.role < CD_ROLE_TEACHER) {
        cd_hub_error(req, 403, "forbidden", "prompt '%s' is not yours", id);
        return;
    }
    if (strcmp(e.p.state, "queued") != 0) {
        cd_hub_error(req, 409, "running", "prompt '%s' runs already: interrupt it through its instance", id);
        return;
    }
    json_t *ids = json_pack("[s]", id);
    cd_admission_cancel(hub->admission, &c, e.p.project_id, ids, false);
    json_decref(ids);
    cd_hub_json(req, 200, json_pack("{s:s, s:s}", "prompt_id", id, "state", "cancelled"));
}

static void handle_series(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_TEACHER, &c) < 0) return;
    static cd_admission_sample samples[CD_ADMISSION_SERIES_MAX]; /* the loop thread only */
    size_t n = cd_admission_series(hub->admission, samples, CD_ADMISSION_SERIES_MAX);
    json_t *points = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(points, json_pack("{s:I, s:i, s:i}", "t", (json_int_t)samples[i].at, "waiting",
                                                samples[i].waiting, "running", samples[i].running));
    cd_hub_json(req, 200, json_pack("{s:i, s:o}", "interval_seconds", CD_ADMISSION_SAMPLE_MS / 1000, "points", points));
}

void cd_hub_api_queue_register(cd_hub *hub) {
    cd_router_add(hub->router, "GET", "/api/queue/status", handle_status, hub);
    cd_router_add(hub->router, "GET", "/api/queue/tasks", handle_list, hub);
    cd_router_add(hub->router, "GET", "/api/queue/tasks/{prompt_id}", handle_task, hub);
    cd_router_add(hub->router, "DELETE", "/api/queue/tasks/{prompt_id}", handle_task_cancel, hub);
    cd_router_add(hub->router, "GET", "/api/queue/series", handle_series, hub);
}
