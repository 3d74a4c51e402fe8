/* Hosts, for admins (hosts.h says what a host is and how instances are placed):
 *
 *   GET    /api/hosts             "local" (from the settings, id 0) and every stored host, with
 *                                 whether it is reachable and how many instances run there
 *   POST   /api/hosts   {name, address, ssh_target, launcher?, ssh_port?, ssh_key?, ssh_options?,
 *                        command?, base_dir?, ports?, max_instances?, labels?, disabled?}   201
 *   PATCH  /api/hosts/{id}  the same fields
 *   DELETE /api/hosts/{id}
 *   GET    /api/hubs              {self, silent_after_seconds, hubs: [{id, started_at,
 *                                 last_seen_at, alive, self}]}: the hubs on this store (peers.h)
 *
 * A host that runs instances may only be disabled, relabelled or capped; anything that changes
 * where or how they run (and a delete) waits until they are stopped: 409. */
#include <stdio.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hosts.h"
#include "hub/peers.h"
#include "hub/hub.h"
#include "hub/supervisor.h"

static const char *const host_fields[] = {"name", "address", "launcher", "ssh_target", "ssh_port", "ssh_key",
                                          "ssh_options", "command", "base_dir", "ports", "max_instances", "labels",
                                          "disabled", NULL};
/* What may change while instances run there. */
static const char *const live_fields[] = {"labels", "max_instances", "disabled", NULL};

static json_t *lines_json(const char *text, char sep) {
    json_t *arr = json_array();
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, (char[]){sep, 0});
        if (len) json_array_append_new(arr, json_stringn(p, len));
        p += len + (p[len] == sep);
    }
    return arr;
}

static json_t *host_json(cd_hub *hub, const cd_host *h) {
    const cd_store_host *r = &h->rec;
    char ports[32];
    snprintf(ports, sizeof ports, "%d-%d", r->port_min, r->port_max);
    json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:b, s:s, s:s, s:i}", "id", (json_int_t)r->id,
                          "name", r->name, "address", r->address, "launcher", r->launcher, "ports", ports,
                          "max_instances", r->max_instances, "capacity", cd_host_cap(h), "labels",
                          lines_json(r->labels, ','), "disabled", r->disabled, "status",
                          h->reachable ? "reachable" : "unreachable", "reason", h->reachable ? "" : h->reason,
                          "running", cd_supervisor_running_on(hub->sup, h));
    if (j && h->launcher == &h->ssh.base) {
        json_object_set_new(j, "ssh_target", json_string(r->ssh_target));
        json_object_set_new(j, "ssh_port", json_integer(r->ssh_port));
        json_object_set_new(j, "ssh_key", json_string(r->ssh_key));
        json_object_set_new(j, "ssh_options", lines_json(r->ssh_options, '\n'));
        json_object_set_new(j, "command", json_string(r->command));
        json_object_set_new(j, "base_dir", json_string(r->base_dir));
        json_object_set_new(j, "created_at", json_integer(r->created_at));
    }
    return j;
}

static void handle_list(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    json_t *arr = json_array();
    for (cd_host *h = cd_hosts_list(hub->hosts); h; h = h->next)
        if (!h->removed) json_array_append_new(arr, host_json(hub, h));
    cd_hub_json(req, 200, arr);
}

/* ---- fields ---- */

static int copy_string(json_t *v, char *dst, size_t cap, const char *field, char *problem, size_t plen) {
    const char *s = json_string_value(v);
    if (!s || strlen(s) >= cap) {
        snprintf(problem, plen, "'%s' is a string of at most %zu bytes", field, cap - 1);
        return -1;
    }
    snprintf(dst, cap, "%s", s);
    return 0;
}

/* An array of strings joined by sep (each without sep or a line break). */
static int copy_list(json_t *v, char sep, char *dst, size_t cap, const char *field, char *problem, size_t plen) {
    size_t i, used = 0;
    json_t *item;
    if (!json_is_array(v)) goto bad;
    dst[0] = '\0';
    json_array_foreach(v, i, item) {
        const char *s = json_string_value(item);
        if (!s || strchr(s, sep) || strchr(s, '\n') || used + strlen(s) + 2 > cap) goto bad;
        used += (size_t)snprintf(dst + used, cap - used, "%s%s", i ? (char[]){sep, 0} : "", s);
    }
    return 0;
bad:
    snprintf(problem, plen, "'%s' is an array of strings", field);
    return -1;
}

static int copy_int(json_t *v, int min, int max, int *dst, const char *field, char *problem, size_t plen) {
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(problem, plen, "'%s' is a whole number from %d to %d", field, min, max);
        return -1;
    }
    *dst = (int)json_integer_value(v);
    return 0;
}

/* One port number at *s (1 to 65535, digits only); moves *s past it. */
static bool parse_port(const char **s, int *out) {
    if (!isdigit((unsigned char)**s)) return false;
    char *end;
    errno = 0;
    long n = strtol(*s, &end, 10);
    if (errno || n < 1 || n > 65535) return false;
    *out = (int)n;
    *s = end;
    return true;
}

static int copy_ports(json_t *v, cd_store_host *h, char *problem, size_t plen) {
    const char *s = json_string_value(v);
    if (!s || !parse_port(&s, &h->port_min) || *s++ != '-' || !parse_port(&s, &h->port_max) || *s) {
        snprintf(problem, plen, "'ports' is FIRST-LAST, e.g. \"8200-8299\"");
        return -1;
    }
    return 0;
}

/* Applies the fields of body to h. Returns 0, or -1 with the problem. */
static int apply_fields(cd_hub *hub, json_t *body, cd_store_host *h, char *problem, size_t plen) {
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        int rc = 0;
#define STR(f) else if (!strcmp(key, #f)) rc = copy_string(v, h->f, sizeof h->f, key, problem, plen)
        if (!strcmp(key, "disabled")) {
            if (!json_is_boolean(v)) snprintf(problem, plen, "'disabled' is true or false"), rc = -1;
            h->disabled = json_is_true(v);
        }
        STR(name); STR(address); STR(launcher); STR(ssh_target); STR(ssh_key); STR(command); STR(base_dir);
        else if (!strcmp(key, "ssh_port")) rc = copy_int(v, 1, 65535, &h->ssh_port, key, problem, plen);
        else if (!strcmp(key, "max_instances")) rc = copy_int(v, 0, 65535, &h->max_instances, key, problem, plen);
        else if (!strcmp(key, "ports")) rc = copy_ports(v, h, problem, plen);
        else if (!strcmp(key, "labels")) rc = copy_list(v, ',', h->labels, sizeof h->labels, key, problem, plen);
        else if (!strcmp(key, "ssh_options"))
            rc = copy_list(v, '\n', h->ssh_options, sizeof h->ssh_options, key, problem, plen);
#undef STR
        if (rc < 0) return -1;
    }
    const char *why = cd_hosts_record_problem(h, hub->cfg);
    if (why) snprintf(problem, plen, "%s", why);
    return why ? -1 : 0;
}

/* ---- writes ---- */

/* A write is stored, then the registry reads the store again. When that read fails, the
 * registry is as it was (cd_hosts_reload changes nothing before its read succeeds), so the
 * write is undone: an error then always means nothing changed. undo puts the store back (the
 * created host deleted, the old record written back, the deleted one created again) and
 * returns 0; if even that fails, the answer says the change is stored and applies at the next
 * restart. Returns 0 when the registry is current. */
typedef int (*undo_fn)(cd_hub *hub, const cd_store_host *before, const cd_store_host *after);

static int reload_or_undo(cd_hub *hub, cd_http_req *req, undo_fn undo, const cd_store_host *before,
                          const cd_store_host *after) {
    if (cd_hosts_reload(hub->hosts) == 0) return 0;
    char why[300];
    snprintf(why, sizeof why, "%s", cd_store_error(hub->store));
    if (undo(hub, before, after) == 0)
        cd_hub_error(req, 500, "store_error", "the hosts could not be read back (%s): the change was undone", why);
    else
        cd_hub_error(req, 500, "store_error",
                     "the hosts could not be read back (%s) and the change could not be undone: it is stored and "
                     "applies at the next change of the hosts or restart of the hub",
                     why);
    return -1;
}

static int undo_create(cd_hub *hub, const cd_store_host *before, const cd_store_host *after) {
    return hub->store->ops->host_delete(hub->store, after->id);
}

static int undo_update(cd_hub *hub, const cd_store_host *before, const cd_store_host *after) {
    return hub->store->ops->host_update(hub->store, before);
}

static int undo_delete(cd_hub *hub, const cd_store_host *before, const cd_store_host *after) {
    cd_store_host again = *before; /* a new id: instances name their host, not its id */
    return hub->store->ops->host_create(hub->store, &again);
}

static void answer_write(cd_hub *hub, cd_http_req *req, const cd_hub_caller *c, int rc, const cd_store_host *before,
                         const cd_store_host *h, undo_fn undo, const char *action, int status) {
    if (rc == CD_STORE_CONFLICT) {
        cd_hub_error(req, 409, "conflict", "the host name '%s' is taken", h->name);
        return;
    }
    if (rc == CD_STORE_NOT_FOUND) {
        cd_hub_error(req, 404, "not_found", "no host %lld", (long long)h->id);
        return;
    }
    if (rc < 0) {
        cd_hub_error(req, 500, "store_error", "%s", cd_store_error(hub->store));
        return;
    }
    if (reload_or_undo(hub, req, undo, before, h) < 0) return;
    char target[96];
    snprintf(target, sizeof target, "host %s", h->name);
    cd_hub_audit(hub, req, &c->user, action, target, "%s via %s, address %s, ports %d-%d", h->launcher,
                 h->ssh_target, h->address, h->port_min, h->port_max);
    cd_host *live = cd_hosts_find(hub->hosts, h->name);
    cd_hub_json(req, status, live ? host_json(hub, live) : json_object());
}

static void handle_create(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    json_t *body = cd_hub_body_object(req, host_fields);
    if (!body) return;
    cd_store_host h = {.ssh_port = 22, .port_min = 8200, .port_max = 8299};
    snprintf(h.launcher, sizeof h.launcher, "ssh");
    char problem[300];
    int rc = 0;
    if (!json_object_get(body, "name") || !json_object_get(body, "address") || !json_object_get(body, "ssh_target"))
        snprintf(problem, sizeof problem, "a new host needs 'name', 'address' and 'ssh_target'"), rc = -1;
    else rc = apply_fields(hub, body, &h, problem, sizeof problem);
    json_decref(body);
    if (rc < 0) {
        cd_hub_error(req, 400, "invalid_host", "%s", problem);
        return;
    }
    h.created_at = cd_hub_now_ms();
    answer_write(hub, req, &c, hub->store->ops->host_create(hub->store, &h), NULL, &h, undo_create, "host_create",
                 201);
}

/* The stored host of the path, and how many instances run on it. Answers 404 otherwise. */
static int load_host(cd_hub *hub, cd_http_req *req, cd_store_host *h, int *running) {
    int64_t id = cd_hub_param_id(req, "id", "host");
    if (id < 0) return -1;
    if (hub->store->ops->host_get(hub->store, id, h) != 0) {
        cd_hub_error(req, 404, "not_found", "no host %lld", (long long)id);
        return -1;
    }
    cd_host *live = cd_hosts_find(hub->hosts, h->name);
    *running = live ? cd_supervisor_running_on(hub->sup, live) : 0;
    return 0;
}

static bool only_live_fields(json_t *body) {
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        bool live = false;
        for (const char *const *f = live_fields; *f && !live; f++) live = !strcmp(*f, key);
        if (!live) return false;
    }
    return true;
}

static void handle_update(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    cd_store_host h;
    int running;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0 || load_host(hub, req, &h, &running) < 0) return;
    const cd_store_host before = h;
    json_t *body = cd_hub_body_object(req, host_fields);
    if (!body) return;
    char problem[300];
    int rc = 0;
    if (running && !only_live_fields(body)) {
        json_decref(body);
        cd_hub_error(req, 409, "host_busy",
                     "host %s runs %d instance(s): only labels, max_instances and disabled may change until they stop",
                     h.name, running);
        return;
    }
    rc = apply_fields(hub, body, &h, problem, sizeof problem);
    json_decref(body);
    if (rc < 0) {
        cd_hub_error(req, 400, "invalid_host", "%s", problem);
        return;
    }
    answer_write(hub, req, &c, hub->store->ops->host_update(hub->store, &h), &before, &h, undo_update, "host_update",
                 200);
}

static void handle_delete(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    cd_store_host h;
    int running;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0 || load_host(hub, req, &h, &running) < 0) return;
    if (running) {
        cd_hub_error(req, 409, "host_busy", "host %s runs %d instance(s): stop them first", h.name, running);
        return;
    }
    int rc = hub->store->ops->host_delete(hub->store, h.id);
    if (rc < 0) {
        cd_hub_error(req, rc == CD_STORE_NOT_FOUND ? 404 : 500, "store_error", "%s", cd_store_error(hub->store));
        return;
    }
    if (reload_or_undo(hub, req, undo_delete, &h, NULL) < 0) return;
    char target[96];
    snprintf(target, sizeof target, "host %s", h.name);
    cd_hub_audit(hub, req, &c.user, "host_delete", target, "%s", h.address);
    cd_hub_json(req, 200, json_pack("{s:I}", "deleted", (json_int_t)h.id));
}

/* GET /api/hubs (admins): the hubs sharing this hub's store (several hubs on one PostgreSQL),
 * with whether each is heard from; an empty list for a hub alone on its SQLite file. */
static void handle_hubs(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    json_t *arr = json_array();
    cd_store *st = hub->store;
    cd_store_hub *list = NULL;
    size_t n = 0;
    if (hub->peers && st->ops->hub_list(st, &list, &n) < 0) {
        json_decref(arr);
        cd_hub_error(req, 500, "store_error", "%s", cd_store_error(st));
        return;
    }
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:b, s:b}", "id", list[i].id, "started_at",
                                             (json_int_t)list[i].started_at, "last_seen_at",
                                             (json_int_t)list[i].last_seen_at, "alive",
                                             cd_hub_peers_alive(hub->peers, list[i].id), "self",
                                             !strcmp(list[i].id, hub->id)));
    free(list);
    cd_hub_json(req, 200, json_pack("{s:s, s:i, s:o}", "self", hub->id, "silent_after_seconds",
                                    hub->cfg->hub_silent_after_s, "hubs", arr));
}

void cd_hub_api_hosts_register(cd_hub *hub) {
    cd_router_add(hub->router, "GET", "/api/hubs", handle_hubs, hub);
    cd_router_add(hub->router, "GET", "/api/hosts", handle_list, hub);
    cd_router_add(hub->router, "POST", "/api/hosts", handle_create, hub);
    cd_router_add(hub->router, "PATCH", "/api/hosts/{id}", handle_update, hub);
    cd_router_add(hub->router, "DELETE", "/api/hosts/{id}", handle_delete, hub);
}
