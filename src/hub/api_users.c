/* Users, for admins:
 *
 *   GET    /api/users                  every user
 *   POST   /api/users       {name, password, role?}                 201 and the user
 *   PATCH  /api/users/{id}  {name?, password?, role?, disabled?}    the user
 *   DELETE /api/users/{id}             stops their instances, removes them and their projects
 *
 * A new password or a disabled account ends the user's sessions and API tokens. The last
 * enabled admin cannot be demoted, disabled or deleted, so that the hub is never left without
 * one. Passwords are hashed in the thread pool, so PATCH and POST with a password answer later. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "hub/auth.h"
#include "hub/hub.h"
#include "hub/supervisor.h"

static void handle_list(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    cd_store_user *users = NULL;
    size_t n = 0;
    if (hub->store->ops->user_list(hub->store, &users, &n) < 0) {
        cd_hub_error(req, 500, "store_error", "%s", cd_store_error(hub->store));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, cd_hub_user_json(&users[i]));
    free(users);
    cd_hub_json(req, 200, arr);
}

/* The enabled admins other than `except`. */
static int64_t other_admins(cd_hub *hub, int64_t except) {
    cd_store_user *users = NULL;
    size_t n = 0;
    int64_t count = 0;
    if (hub->store->ops->user_list(hub->store, &users, &n) < 0) return -1;
    for (size_t i = 0; i < n; i++) count += users[i].id != except && users[i].role == CD_ROLE_ADMIN && !users[i].disabled;
    free(users);
    return count;
}

/* ---- writes that may need a password hash first ---- */

typedef struct {
    cd_hub *hub;
    cd_http_req *req; /* NULL once the client went away */
    cd_hub_caller caller;
    cd_store_user user; /* the new state */
    bool creating, password_changed, disabled_now;
    char changes[256];
} user_write;

static void write_aborted(cd_http_req *req, void *arg) { ((user_write *)arg)->req = NULL; }

static void finish_write(user_write *w) {
    cd_hub *hub = w->hub;
    cd_store *st = hub->store;
    int rc = w->creating ? st->ops->user_create(st, &w->user) : st->ops->user_update(st, &w->user);
    cd_hub_forget_lookups(hub);
    if (rc == 0 && (w->password_changed || w->disabled_now) && !w->creating) {
        st->ops->token_delete_user(st, w->user.id, CD_TOKEN_SESSION);
        st->ops->token_delete_user(st, w->user.id, CD_TOKEN_API);
    }
    if (rc == 0) {
        char target[80];
        snprintf(target, sizeof target, "user %lld", (long long)w->user.id);
        cd_hub_audit(hub, w->req, &w->caller.user, w->creating ? "user_create" : "user_update", target, "%s%s",
                     w->user.name, w->changes);
    }
    if (w->req) {
        cd_http_req_on_abort(w->req, NULL, NULL);
        if (rc == 0) cd_hub_json(w->req, w->creating ? 201 : 200, cd_hub_user_json(&w->user));
        else if (rc == CD_STORE_CONFLICT) cd_hub_error(w->req, 409, "conflict", "the name '%s' is taken", w->user.name);
        else if (rc == CD_STORE_NOT_FOUND) cd_hub_error(w->req, 404, "not_found", "no user %lld", (long long)w->user.id);
        else cd_hub_error(w->req, 500, "store_error", "%s", cd_store_error(st));
    }
    free(w);
}

static void on_hashed(int rc, const char *hash, void *arg) {
    user_write *w = arg;
    if (rc < 0) {
        if (w->req) {
            cd_http_req_on_abort(w->req, NULL, NULL);
            cd_hub_error(w->req, 500, "internal", "cannot hash the password (out of memory)");
        }
        free(w);
        return;
    }
    snprintf(w->user.password_hash, sizeof w->user.password_hash, "%s", hash);
    finish_write(w);
}

static void write_with_password(user_write *w, const char *password) {
    if (!password) {
        finish_write(w);
        return;
    }
    cd_http_req_on_abort(w->req, write_aborted, w);
    if (cd_auth_hash_password(w->hub->loop, password, on_hashed, w) < 0) on_hashed(-1, NULL, w);
}

static user_write *user_write_new(cd_hub *hub, cd_http_req *req, const cd_hub_caller *c) {
    user_write *w = calloc(1, sizeof *w);
    if (!w) {
        cd_hub_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    w->hub = hub;
    w->req = req;
    w->caller = *c;
    return w;
}

/* Validates the fields present in body into w->user. Returns 0 or answers 400 and returns -1. */
static int apply_fields(user_write *w, json_t *body, const char **password) {
    cd_http_req *req = w->req;
    json_t *jname = json_object_get(body, "name"), *jpw = json_object_get(body, "password");
    json_t *jrole = json_object_get(body, "role"), *jdis = json_object_get(body, "disabled");
    const char *problem;
    if (jname) {
        const char *name = json_string_value(jname);
        if ((problem = cd_auth_username_problem(name))) return cd_hub_error(req, 400, "invalid_name", "%s", problem), -1;
        if (strcmp(name, w->user.name) != 0) strcat(w->changes, ", name");
        snprintf(w->user.name, sizeof w->user.name, "%s", name);
    }
    if (jpw) {
        *password = json_string_value(jpw);
        if ((problem = cd_auth_password_problem(*password)))
            return cd_hub_error(req, 400, "invalid_password", "%s", problem), -1;
        w->password_changed = true;
        strcat(w->changes, ", password");
    }
    if (jrole) {
        cd_role role;
        if (cd_role_parse(json_string_value(jrole), &role) < 0)
            return cd_hub_error(req, 400, "invalid_role", "role is 'admin', 'teacher' or 'student'"), -1;
        if (role != w->user.role) snprintf(w->changes + strlen(w->changes), 64, ", role %s", cd_role_name(role));
        w->user.role = role;
    }
    if (jdis) {
        if (!json_is_boolean(jdis)) return cd_hub_error(req, 400, "invalid_request", "'disabled' is true or false"), -1;
        bool d = json_is_true(jdis);
        w->disabled_now = d && !w->user.disabled;
        if (d != w->user.disabled) strcat(w->changes, d ? ", disabled" : ", enabled");
        w->user.disabled = d;
    }
    return 0;
}

static void handle_create(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    static const char *const fields[] = {"name", "password", "role", "disabled", NULL};
    json_t *body = cd_hub_body_object(req, fields);
    if (!body) return;
    user_write *w = user_write_new(hub, req, &c);
    const char *password = NULL;
    if (w) {
        w->creating = true;
        w->user.role = CD_ROLE_STUDENT;
        w->user.created_at = cd_hub_now_ms();
    }
    if (w && (!json_object_get(body, "name") || !json_object_get(body, "password"))) {
        cd_hub_error(req, 400, "invalid_request", "a new user needs 'name' and 'password'");
    } else if (w && apply_fields(w, body, &password) == 0) {
        cd_store_user existing;
        if (hub->store->ops->user_by_name(hub->store, w->user.name, &existing) == 0) {
            cd_hub_error(req, 409, "conflict", "the name '%s' is taken", w->user.name);
        } else {
            char pw[300];
            snprintf(pw, sizeof pw, "%s", password);
            json_decref(body);
            write_with_password(w, pw);
            return;
        }
    }
    free(w);
    json_decref(body);
}

static void handle_update(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    int64_t id = cd_hub_param_id(req, "id", "user");
    if (id < 0) return;
    static const char *const fields[] = {"name", "password", "role", "disabled", NULL};
    json_t *body = cd_hub_body_object(req, fields);
    if (!body) return;
    user_write *w = user_write_new(hub, req, &c);
    const char *password = NULL;
    if (w && hub->store->ops->user_get(hub->store, id, &w->user) != 0) {
        cd_hub_error(req, 404, "not_found", "no user %lld", (long long)id);
    } else if (w && apply_fields(w, body, &password) == 0) {
        bool still_admin = w->user.role == CD_ROLE_ADMIN && !w->user.disabled;
        if (!still_admin && other_admins(hub, id) == 0) {
            cd_hub_error(req, 409, "last_admin", "this is the last enabled admin: make another admin first");
        } else {
            char pw[300];
            snprintf(pw, sizeof pw, "%s", password ? password : "");
            json_decref(body);
            write_with_password(w, password ? pw : NULL);
            return;
        }
    }
    free(w);
    json_decref(body);
}

typedef struct {
    cd_hub *hub;
    cd_http_req *req;
    cd_hub_caller caller;
    cd_store_user user;
    int pending; /* instances still stopping */
} user_delete;

static void delete_aborted(cd_http_req *req, void *arg) { ((user_delete *)arg)->req = NULL; }

static void delete_finish(user_delete *d) {
    cd_hub *hub = d->hub;
    int rc = hub->store->ops->user_delete(hub->store, d->user.id);
    cd_hub_forget_lookups(hub);
    char target[80];
    snprintf(target, sizeof target, "user %lld", (long long)d->user.id);
    if (rc == 0) cd_hub_audit(hub, d->req, &d->caller.user, "user_delete", target, "%s", d->user.name);
    if (d->req) {
        cd_http_req_on_abort(d->req, NULL, NULL);
        if (rc == 0) cd_hub_json(d->req, 200, json_pack("{s:I}", "deleted", (json_int_t)d->user.id));
        else cd_hub_error(d->req, 500, "store_error", "%s", cd_store_error(hub->store));
    }
    free(d);
}

static void on_instance_stopped(void *arg) {
    user_delete *d = arg;
    if (--d->pending == 0) delete_finish(d);
}

static void handle_delete(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    int64_t id = cd_hub_param_id(req, "id", "user");
    if (id < 0) return;
    user_delete *d = calloc(1, sizeof *d);
    if (!d) {
        cd_hub_error(req, 500, "internal", "out of memory");
        return;
    }
    if (hub->store->ops->user_get(hub->store, id, &d->user) != 0) {
        free(d);
        cd_hub_error(req, 404, "not_found", "no user %lld", (long long)id);
        return;
    }
    if (id == c.user.id || (d->user.role == CD_ROLE_ADMIN && other_admins(hub, id) == 0)) {
        free(d);
        cd_hub_error(req, 409, "last_admin", "you cannot delete yourself or the last admin");
        return;
    }
    d->hub = hub;
    d->req = req;
    d->caller = c;
    cd_http_req_on_abort(req, delete_aborted, d);
    /* Their instances stop first: a running process must not outlive its record. */
    cd_store_project *projects = NULL;
    size_t n = 0;
    hub->store->ops->project_list(hub->store, id, &projects, &n);
    d->pending = 1;
    for (size_t i = 0; i < n; i++) {
        d->pending++;
        cd_supervisor_stop(hub->sup, projects[i].id, "its user was deleted", on_instance_stopped, d);
    }
    free(projects);
    on_instance_stopped(d);
}

void cd_hub_api_users_register(cd_hub *hub) {
    cd_router_add(hub->router, "GET", "/api/users", handle_list, hub);
    cd_router_add(hub->router, "POST", "/api/users", handle_create, hub);
    cd_router_add(hub->router, "PATCH", "/api/users/{id}", handle_update, hub);
    cd_router_add(hub->router, "DELETE", "/api/users/{id}", handle_delete, hub);
}
