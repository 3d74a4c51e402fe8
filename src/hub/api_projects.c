/* Projects and their instances:
 *
 *   GET    /api/projects                   yours (teachers and admins: every project)
 *   POST   /api/projects         {name, pin?}    201 and the project
 *   GET    /api/projects/{id}
 *   PATCH  /api/projects/{id}    {name?, pin?}   pin: a host's name or label, "" or null for any
 *   DELETE /api/projects/{id}              stops its instance; its directory stays on disk
 *   POST   /api/projects/{id}/open_comfy   starts or reuses its instance (?wait=0: do not wait)
 *   POST   /api/projects/{id}/stop_comfy
 *   GET    /api/instances                  the instances you may reach (with project, user, memory_bytes)
 *   GET    /api/instances/{id}/log?tail=N  the last N lines of its log (owner and admins)
 *
 * Only the owner, teachers and admins may see, open, stop or reach a project; anyone else gets
 * 403 (a project that does not exist: 404). Renaming and deleting are the owner's and admins'. */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/str.h"
#include "hub/hub.h"
#include "hub/supervisor.h"

/* A project the caller may reach, into *p. Answers 404/403 and returns -1 otherwise. */
static int load_project(cd_hub *hub, cd_http_req *req, const cd_hub_caller *c, cd_store_project *p) {
    int64_t id = cd_hub_param_id(req, "id", "project");
    if (id < 0) return -1;
    if (hub->store->ops->project_get(hub->store, id, p) != 0) {
        cd_hub_error(req, 404, "not_found", "no project %lld", (long long)id);
        return -1;
    }
    if (!cd_hub_may_reach(c, p)) {
        cd_hub_error(req, 403, "forbidden", "project %lld is not yours", (long long)id);
        return -1;
    }
    return 0;
}

/* Trimmed, 1 to 128 bytes, no control characters. Returns the problem or NULL. */
static const char *clean_name(const char *in, char *out, size_t outlen) {
    if (!in) return "'name' must be a string";
    while (isspace((unsigned char)*in)) in++;
    size_t n = strlen(in);
    while (n && isspace((unsigned char)in[n - 1])) n--;
    if (n == 0 || n > 128) return "a project name has 1 to 128 bytes";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) return "a project name may not hold control characters";
    snprintf(out, outlen, "%.*s", (int)n, in);
    return NULL;
}

/* A pin names a host or a label (hosts.h); null or "" : any host. Returns the problem or NULL. */
static const char *clean_pin(json_t *j, char *out, size_t outlen) {
    if (json_is_null(j)) {
        out[0] = '\0';
        return NULL;
    }
    const char *pin = json_string_value(j);
    if (!pin) return "'pin' is a host's name or label, or null";
    if (pin[0] && !cd_hosts_name_ok(pin)) return "a pin is a host's name or label: 1 to 64 of A-Z a-z 0-9 . _ -";
    snprintf(out, outlen, "%s", pin);
    return NULL;
}

/* A change to a project: into the audit log, and the project as the answer. */
static void audited_answer(cd_hub *hub, cd_http_req *req, const cd_hub_caller *c, const char *action,
                           const char *what, const cd_store_project *p, int status) {
    char target[64];
    snprintf(target, sizeof target, "project %lld", (long long)p->id);
    cd_hub_audit(hub, req, &c->user, action, target, "%s%s", what, p->name);
    cd_hub_json(req, status, cd_hub_project_json(hub, p));
}

static void handle_list(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    cd_store_project *list = NULL;
    size_t n = 0;
    int64_t owner = c.user.role >= CD_ROLE_TEACHER ? 0 : c.user.id;
    if (hub->store->ops->project_list(hub->store, owner, &list, &n) < 0) {
        cd_hub_error(req, 500, "store_error", "%s", cd_store_error(hub->store));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, cd_hub_project_json(hub, &list[i]));
    free(list);
    cd_hub_json(req, 200, arr);
}

static void handle_create(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    static const char *const fields[] = {"name", "pin", NULL};
    json_t *body = cd_hub_body_object(req, fields);
    if (!body) return;
    cd_store_project p = {0};
    const char *problem = clean_name(json_string_value(json_object_get(body, "name")), p.name, sizeof p.name);
    if (!problem && json_object_get(body, "pin")) problem = clean_pin(json_object_get(body, "pin"), p.pin, sizeof p.pin);
    json_decref(body);
    if (problem) {
        cd_hub_error(req, 400, "invalid_name", "%s", problem);
        return;
    }
    p.owner_id = c.user.id;
    if (hub->store->ops->project_create(hub->store, &p) < 0) {
        cd_hub_error(req, 500, "store_error", "%s", cd_store_error(hub->store));
        return;
    }
    audited_answer(hub, req, &c, "project_create", "", &p, 201);
}

static void handle_get(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    cd_store_project p;
    if (cd_hub_authenticate(hub, req, &c) < 0 || load_project(hub, req, &c, &p) < 0) return;
    cd_hub_json(req, 200, cd_hub_project_json(hub, &p));
}

static bool may_change(const cd_hub_caller *c, const cd_store_project *p) {
    return c->user.id == p->owner_id || c->user.role == CD_ROLE_ADMIN;
}

static void handle_update(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    cd_store_project p;
    if (cd_hub_authenticate(hub, req, &c) < 0 || load_project(hub, req, &c, &p) < 0) return;
    if (!may_change(&c, &p)) {
        cd_hub_error(req, 403, "forbidden", "only its owner or an admin may rename project %lld", (long long)p.id);
        return;
    }
    static const char *const fields[] = {"name", "pin", NULL};
    json_t *body = cd_hub_body_object(req, fields);
    if (!body) return;
    const char *problem = NULL;
    if (json_object_get(body, "name"))
        problem = clean_name(json_string_value(json_object_get(body, "name")), p.name, sizeof p.name);
    if (!problem && json_object_get(body, "pin")) problem = clean_pin(json_object_get(body, "pin"), p.pin, sizeof p.pin);
    json_decref(body);
    if (problem) {
        cd_hub_error(req, 400, "invalid_name", "%s", problem);
        return;
    }
    p.updated_at = cd_hub_now_ms();
    cd_hub_forget_lookups(hub);
    if (hub->store->ops->project_update(hub->store, &p) < 0) {
        cd_hub_error(req, 500, "store_error", "%s", cd_store_error(hub->store));
        return;
    }
    audited_answer(hub, req, &c, "project_update", "name ", &p, 200);
}

/* ---- answering after an instance stopped ---- */

typedef struct {
    cd_hub *hub;
    cd_http_req *req; /* NULL once the client went away */
    cd_hub_caller caller;
    cd_store_project project;
    bool deleting;
} stop_op;

static void stop_aborted(cd_http_req *req, void *arg) { ((stop_op *)arg)->req = NULL; }

static void on_stopped(void *arg) {
    stop_op *op = arg;
    cd_hub *hub = op->hub;
    char target[64];
    snprintf(target, sizeof target, "project %lld", (long long)op->project.id);
    int rc = 0;
    if (op->deleting) {
        rc = hub->store->ops->project_delete(hub->store, op->project.id);
        cd_hub_forget_lookups(hub);
        if (rc == 0) cd_hub_audit(hub, op->req, &op->caller.user, "project_delete", target, "%s", op->project.name);
    }
    if (op->req) {
        cd_http_req_on_abort(op->req, NULL, NULL);
        if (rc != 0) cd_hub_error(op->req, 500, "store_error", "%s", cd_store_error(hub->store));
        else if (op->deleting) cd_hub_json(op->req, 200, json_pack("{s:I}", "deleted", (json_int_t)op->project.id));
        else cd_hub_json(op->req, 200, cd_hub_project_json(hub, &op->project));
    }
    free(op);
}

static void stop_and_answer(cd_hub *hub, cd_http_req *req, const cd_hub_caller *c, const cd_store_project *p,
                            bool deleting) {
    stop_op *op = calloc(1, sizeof *op);
    if (!op) {
        cd_hub_error(req, 500, "internal", "out of memory");
        return;
    }
    *op = (stop_op){hub, req, *c, *p, deleting};
    cd_http_req_on_abort(req, stop_aborted, op);
    char reason[128];
    snprintf(reason, sizeof reason, "%s by %s", deleting ? "project deleted" : "stopped", c->user.name);
    if (!deleting) {
        char target[64];
        snprintf(target, sizeof target, "project %lld", (long long)p->id);
        cd_hub_audit(hub, req, &c->user, "stop", target, "%s", p->name);
    }
    cd_supervisor_stop(hub->sup, p->id, reason, on_stopped, op);
}

static void handle_delete(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    cd_store_project p;
    if (cd_hub_authenticate(hub, req, &c) < 0 || load_project(hub, req, &c, &p) < 0) return;
    if (!may_change(&c, &p)) {
        cd_hub_error(req, 403, "forbidden", "only its owner or an admin may delete project %lld", (long long)p.id);
        return;
    }
    stop_and_answer(hub, req, &c, &p, true);
}

static void handle_stop(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    cd_store_project p;
    if (cd_hub_authenticate(hub, req, &c) < 0 || load_project(hub, req, &c, &p) < 0) return;
    stop_and_answer(hub, req, &c, &p, false);
}

/* ---- open ---- */

typedef struct {
    cd_hub *hub;
    cd_http_req *req;
    cd_store_project project;
    bool no_wait;      /* ?wait=0: answer 202 at once unless the supervisor answered already */
    bool handler_done; /* handle_open answered: a later result has nobody to go to */
    bool sync;         /* no_wait, and the result came before handle_open returned */
    int status;
    char message[512];
    cd_store_instance inst;
    bool reused;
} open_op;

static void open_aborted(cd_http_req *req, void *arg) {
    open_op *op = arg;
    cd_supervisor_cancel(op->hub->sup, op);
    free(op);
}

static void answer_open(open_op *op, int status, const char *message, const cd_store_instance *inst, bool reused);

static void on_opened(int status, const char *message, const cd_store_instance *inst, bool reused, void *user) {
    open_op *op = user;
    if (op->no_wait) {
        if (op->handler_done) { /* answered 202 already */
            free(op);
            return;
        }
        /* still inside handle_open: it answers with this */
        op->sync = true;
        op->status = status;
        snprintf(op->message, sizeof op->message, "%s", message ? message : "");
        if (inst) op->inst = *inst;
        op->reused = reused;
        return;
    }
    answer_open(op, status, message, inst, reused);
    free(op);
}

static void answer_open(open_op *op, int status, const char *message, const cd_store_instance *inst, bool reused) {
    cd_http_req *req = op->req;
    cd_http_req_on_abort(req, NULL, NULL);
    if (status != 0) {
        cd_hub_error(req, status, status == 503 ? "unavailable" : "instance_failed", "%s", message);
    } else {
        json_t *j = cd_hub_project_json(op->hub, &op->project);
        json_object_set_new(j, "reused", json_boolean(reused));
        json_object_set_new(j, "project_id", json_integer(op->project.id));
        json_object_set_new(j, "instance", cd_hub_instance_json(inst));
        json_object_set_new(j, "status", json_string(inst->status));
        cd_hub_json(req, 200, j);
    }
}

static void handle_open(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    cd_store_project p;
    if (cd_hub_authenticate(hub, req, &c) < 0 || load_project(hub, req, &c, &p) < 0) return;
    cd_store_user owner;
    if (hub->store->ops->user_get(hub->store, p.owner_id, &owner) != 0) {
        cd_hub_error(req, 500, "store_error", "the owner of project %lld is missing", (long long)p.id);
        return;
    }
    char target[64];
    snprintf(target, sizeof target, "project %lld", (long long)p.id);
    cd_hub_audit(hub, req, &c.user, "open", target, "%s", p.name);
    char *wait = cd_str_query_get(cd_http_req_query(req), "wait");
    bool no_wait = wait && (!strcmp(wait, "0") || !strcmp(wait, "false"));
    free(wait);
    open_op *op = calloc(1, sizeof *op);
    if (!op) {
        cd_hub_error(req, 500, "internal", "out of memory");
        return;
    }
    *op = (open_op){.hub = hub, .req = req, .project = p, .no_wait = no_wait};
    cd_http_req_on_abort(req, open_aborted, op);
    cd_supervisor_open(hub->sup, &p, &owner, on_opened, op);
    if (!no_wait) return; /* on_opened answers, now or later */
    op->handler_done = true;
    if (op->sync) { /* the supervisor answered at once (a refusal, or nothing to wait for) */
        answer_open(op, op->status, op->message, op->status == 0 ? &op->inst : NULL, op->reused);
        free(op);
        return;
    }
    /* The start goes on; the caller follows it on /api/events or GET /api/projects/{id}. op
     * stays with the supervisor, which frees it through on_opened. */
    cd_http_req_on_abort(req, NULL, NULL);
    cd_hub_json(req, 202, cd_hub_project_json(hub, &p));
}

/* ---- instances and their logs ---- */

/* The resident memory of a local process in bytes (VmRSS of /proc/<pid>/status), or -1 when it
 * cannot be read (gone, another host, no /proc). */
static long long resident_bytes(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = pid > 0 ? fopen(path, "re") : NULL;
    if (!f) return -1;
    long long kib = -1;
    while (kib < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kib = strtoll(line + 6, NULL, 10);
    fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}

static bool has_process(const cd_store_instance *i) {
    return i->pid > 0 && (!strcmp(i->status, "online") || !strcmp(i->status, "starting") || !strcmp(i->status, "offline"));
}

/* An instance as the list shows it: with its project's and owner's names (so a dashboard needs
 * no second look-up) and, for a process of this host that this hub supervises, its memory (with
 * several hubs, another hub's "local" is another machine). */
static json_t *listed_instance_json(cd_hub *hub, const cd_store_instance *i, const cd_store_project *p) {
    json_t *j = cd_hub_instance_json(i);
    cd_store_user owner;
    bool known = hub->store->ops->user_get(hub->store, p->owner_id, &owner) == 0;
    json_object_set_new(j, "project", json_string(p->name));
    json_object_set_new(j, "user", json_string(known ? owner.name : ""));
    bool ours = !i->hub[0] || !strcmp(i->hub, hub->id);
    long long rss = ours && !strcmp(i->host, "local") && has_process(i) ? resident_bytes(i->pid) : -1;
    json_object_set_new(j, "memory_bytes", rss < 0 ? json_null() : json_integer(rss));
    return j;
}

static void handle_instances(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    cd_store_instance *list = NULL;
    size_t n = 0;
    if (hub->store->ops->instance_list(hub->store, &list, &n) < 0) {
        cd_hub_error(req, 500, "store_error", "%s", cd_store_error(hub->store));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        cd_store_project p;
        if (hub->store->ops->project_get(hub->store, list[i].project_id, &p) != 0 || !cd_hub_may_reach(&c, &p)) continue;
        json_array_append_new(arr, listed_instance_json(hub, &list[i], &p));
    }
    free(list);
    cd_hub_json(req, 200, arr);
}

/* The last `lines` lines of a file, read backwards in blocks so a large log costs little. */
static char *tail_lines(const char *path, long lines, size_t max_bytes) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    off_t end = lseek(fd, 0, SEEK_END), from = end;
    long newlines = 0;
    char block[8192];
    /* a trailing newline ends the last line; it does not start another */
    while (from > 0 && newlines < lines && (size_t)(end - from) < max_bytes) {
        size_t n = from > (off_t)sizeof block ? sizeof block : (size_t)from;
        from -= (off_t)n;
        if (pread(fd, block, n, from) != (ssize_t)n) break;
        for (size_t i = n; i-- > 0;) {
            if (block[i] == '\n' && from + (off_t)i != end - 1 && ++newlines >= lines) {
                from += (off_t)i + 1;
                break;
            }
        }
    }
    size_t len = (size_t)(end - from);
    if (len > max_bytes) {
        from = end - (off_t)max_bytes;
        len = max_bytes;
    }
    char *out = malloc(len + 1);
    if (out && pread(fd, out, len, from) != (ssize_t)len) len = 0;
    if (out) out[len] = '\0';
    close(fd);
    return out;
}

static void handle_log(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    int64_t id = cd_hub_param_id(req, "id", "instance");
    if (id < 0) return;
    cd_store_instance inst;
    cd_store_project p;
    if (hub->store->ops->instance_get(hub->store, id, &inst) != 0 ||
        hub->store->ops->project_get(hub->store, inst.project_id, &p) != 0) {
        cd_hub_error(req, 404, "not_found", "no instance %lld", (long long)id);
        return;
    }
    if (c.user.id != p.owner_id && c.user.role != CD_ROLE_ADMIN) {
        cd_hub_error(req, 403, "forbidden", "only the owner and admins may read this log");
        return;
    }
    char *tail = cd_str_query_get(cd_http_req_query(req), "tail");
    long n = tail ? strtol(tail, NULL, 10) : 100;
    free(tail);
    if (n < 1 || n > 100000) {
        cd_hub_error(req, 400, "invalid_request", "tail is a number of lines from 1 to 100000");
        return;
    }
    char *text = inst.log_path[0] ? tail_lines(inst.log_path, n, 8u << 20) : NULL;
    if (!text) {
        cd_hub_error(req, 404, "not_found", "instance %lld has no log yet", (long long)id);
        return;
    }
    cd_http_respond(req, 200, "text/plain; charset=utf-8", text, strlen(text));
    free(text);
}

void cd_hub_api_projects_register(cd_hub *hub) {
    cd_router *r = hub->router;
    cd_router_add(r, "GET", "/api/projects", handle_list, hub);
    cd_router_add(r, "POST", "/api/projects", handle_create, hub);
    cd_router_add(r, "GET", "/api/projects/{id}", handle_get, hub);
    cd_router_add(r, "PATCH", "/api/projects/{id}", handle_update, hub);
    cd_router_add(r, "DELETE", "/api/projects/{id}", handle_delete, hub);
    cd_router_add(r, "POST", "/api/projects/{id}/open_comfy", handle_open, hub);
    cd_router_add(r, "POST", "/api/projects/{id}/stop_comfy", handle_stop, hub);
    cd_router_add(r, "GET", "/api/instances", handle_instances, hub);
    cd_router_add(r, "GET", "/api/instances/{id}/log", handle_log, hub);
}
