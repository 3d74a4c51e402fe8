/* Logging in and out, who am I, API tokens, and the admin account of the first start.
 *
 *   POST /api/login   {username, password}  sets the session cookie, answers the user
 *   POST /api/logout                        ends the session (or revokes the token) in use
 *   GET  /api/me                            the caller
 *   POST /api/tokens  {name?, expires_days?} a new API token, shown once
 *
 * A login answer is held back longer after each failed attempt for that name (names that do
 * not exist count too, and cost a password check as well, so neither the delay nor the time
 * tells which names exist). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "hub/auth.h"
#include "hub/hub.h"
#include "hub/session.h"

/* A hash of a password nobody has: an unknown name costs the same check as a known one. */
static const char no_user_hash[] = "$argon2id$v=19$m=65536,t=2,p=1$0TlyCfYe0Q4gqwnoSbgs7A$inf8UAcFoO8kJkJZNnYHfN0QWz+rGTyh9s/N8nnOfzY";

typedef struct {
    cd_hub *hub;
    cd_http_req *req; /* NULL once the client went away */
    char username[65];
    char *password;
    cd_store_user user;
    bool found;
    int failures;
    uv_timer_t delay;
} login;

static void login_free(uv_handle_t *h) {
    login *l = h->data;
    if (l->password) {
        memset(l->password, 0, strlen(l->password));
        free(l->password);
    }
    free(l);
}

/* The request is answered (or gone) by now: only the timer is left to close. */
static void login_done(login *l) { uv_close((uv_handle_t *)&l->delay, login_free); }

/* Before answering: an answer frees the request, so the abort hook must go first. */
static void login_detach(login *l) {
    if (l->req) cd_http_req_on_abort(l->req, NULL, NULL);
}

static void login_aborted(cd_http_req *req, void *arg) { ((login *)arg)->req = NULL; }

static void set_session_cookie(cd_http_req *req, const char *secret, int max_age) {
    char cookie[256];
    const char *proto = cd_http_req_header(req, "X-Forwarded-Proto");
    bool https = proto && !strcasecmp(proto, "https");
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d%s", CD_HUB_SESSION_COOKIE,
             secret, max_age, https ? "; Secure" : "");
    cd_http_add_header(req, "Set-Cookie", cookie);
}

static void login_failed(login *l, const char *why) {
    cd_store *st = l->hub->store;
    if (st->ops->login_failures_set(st, l->username, l->failures + 1, cd_hub_now_ms()) < 0)
        cd_error("hub: cannot count a failed login: %s", cd_store_error(st));
    cd_hub_audit(l->hub, l->req, l->found ? &l->user : NULL, "login_failed", l->username, "%s", why);
    if (l->req)
        cd_hub_error(l->req, 401, "invalid_credentials", "%s",
                     l->found && l->user.disabled ? "this account is disabled; ask your teacher or an admin"
                                                  : "wrong user name or password");
}

static void login_succeeded(login *l) {
    cd_hub *hub = l->hub;
    cd_store *st = hub->store;
    st->ops->login_failures_clear(st, l->username);
    int64_t ttl_ms = (int64_t)hub->cfg->session_hours * 3600 * 1000;
    char secret[64];
    if (cd_hub_session_create(hub, l->user.id, CD_TOKEN_SESSION, "login", cd_hub_now_ms() + ttl_ms, secret,
                              sizeof secret) < 0) {
        if (l->req) cd_hub_error(l->req, 500, "store_error", "cannot create the session: %s", cd_store_error(st));
        return;
    }
    /* A login is also a moment to forget sessions that have run out. */
    st->ops->token_prune(st, cd_hub_now_ms());
    cd_hub_audit(hub, l->req, &l->user, "login", l->username, "%s", "");
    if (!l->req) return;
    set_session_cookie(l->req, secret, hub->cfg->session_hours * 3600);
    cd_hub_json(l->req, 200, json_pack("{s:o}", "user", cd_hub_user_json(&l->user)));
}

static void on_verified(bool ok, void *arg) {
    login *l = arg;
    login_detach(l);
    if (ok && l->found && !l->user.disabled) login_succeeded(l);
    else login_failed(l, !l->found ? "no such user" : !ok ? "wrong password" : "account disabled");
    login_done(l);
}

static void on_delay_over(uv_timer_t *t) {
    login *l = t->data;
    const char *hash = l->found ? l->user.password_hash : no_user_hash;
    if (cd_auth_verify_password(l->hub->loop, hash, l->password, on_verified, l) < 0) {
        login_detach(l);
        if (l->req) cd_hub_error(l->req, 500, "internal", "out of memory");
        login_done(l);
    }
}

static void handle_login(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    static const char *const fields[] = {"username", "password", NULL};
    json_t *body = cd_hub_body_object(req, fields);
    if (!body) return;
    const char *name = json_string_value(json_object_get(body, "username"));
    const char *password = json_string_value(json_object_get(body, "password"));
    if (!name || !password || !*name || strlen(name) > 64) {
        json_decref(body);
        cd_hub_error(req, 400, "invalid_request", "give 'username' and 'password' as strings");
        return;
    }
    login *l = calloc(1, sizeof *l);
    if (!l || !(l->password = strdup(password))) {
        free(l);
        json_decref(body);
        cd_hub_error(req, 500, "internal", "out of memory");
        return;
    }
    l->hub = hub;
    l->req = req;
    snprintf(l->username, sizeof l->username, "%s", name);
    json_decref(body);
    cd_store *st = hub->store;
    l->found = st->ops->user_by_name(st, l->username, &l->user) == 0;
    int64_t last_at = 0;
    st->ops->login_failures_get(st, l->username, &l->failures, &last_at);
    uv_timer_init(hub->loop, &l->delay);
    l->delay.data = l;
    cd_http_req_on_abort(req, login_aborted, l);
    uv_timer_start(&l->delay, on_delay_over, cd_auth_login_delay_ms(l->failures), 0);
}

static void handle_logout(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    hub->store->ops->token_delete(hub->store, c.token_hash);
    cd_hub_forget_lookups(hub);
    cd_hub_audit(hub, req, &c.user, "logout", c.user.name, "%s", c.by_cookie ? "session" : "API token revoked");
    if (c.by_cookie) set_session_cookie(req, "", 0);
    cd_hub_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static void handle_me(cd_http_req *req, void *ctx) {
    cd_hub_caller c;
    if (cd_hub_authenticate(ctx, req, &c) < 0) return;
    cd_hub_json(req, 200, json_pack("{s:o}", "user", cd_hub_user_json(&c.user)));
}

static void handle_token_create(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_authenticate(hub, req, &c) < 0) return;
    static const char *const fields[] = {"name", "expires_days", NULL};
    json_t *body = cd_hub_body_object(req, fields);
    if (!body) return;
    json_t *jname = json_object_get(body, "name"), *jdays = json_object_get(body, "expires_days");
    const char *name = jname ? json_string_value(jname) : "api";
    if (!name || strlen(name) > 64 || (jdays && (!json_is_integer(jdays) || json_integer_value(jdays) < 1 ||
                                                  json_integer_value(jdays) > 3650))) {
        json_decref(body);
        cd_hub_error(req, 400, "invalid_request",
                     "'name' is a string of at most 64 bytes; 'expires_days' a whole number from 1 to 3650 "
                     "(leave it out for a token that does not expire)");
        return;
    }
    int64_t expires = jdays ? cd_hub_now_ms() + json_integer_value(jdays) * 86400000LL : 0;
    char secret[64];
    char name_copy[65];
    snprintf(name_copy, sizeof name_copy, "%s", name);
    json_decref(body);
    if (cd_hub_session_create(hub, c.user.id, CD_TOKEN_API, name_copy, expires, secret, sizeof secret) < 0) {
        cd_hub_error(req, 500, "store_error", "cannot create the token: %s", cd_store_error(hub->store));
        return;
    }
    cd_hub_audit(hub, req, &c.user, "token_create", c.user.name, "token '%s'", name_copy);
    cd_hub_json(req, 201, json_pack("{s:s, s:s, s:I}", "token", secret, "name", name_copy, "expires_at",
                                    (json_int_t)expires));
}

void cd_hub_api_auth_register(cd_hub *hub) {
    cd_router_add(hub->router, "POST", "/api/login", handle_login, hub);
    cd_router_add(hub->router, "POST", "/api/logout", handle_logout, hub);
    cd_router_add(hub->router, "GET", "/api/me", handle_me, hub);
    cd_router_add(hub->router, "POST", "/api/tokens", handle_token_create, hub);
}

/* ---- the first start ---- */

int cd_hub_ensure_admin(cd_hub *hub, char *err, size_t errlen) {
    cd_store *st = hub->store;
    int64_t n = 0;
    if (st->ops->user_count(st, &n) < 0) {
        snprintf(err, errlen, "cannot count users: %s", cd_store_error(st));
        return -1;
    }
    if (n > 0) return 0;
    char generated[64];
    const char *password = hub->cfg->admin_password;
    if (password && *password) {
        const char *problem = cd_auth_password_problem(password);
        if (problem) {
            snprintf(err, errlen, "COMFYD_ADMIN_PASSWORD: %s", problem);
            return -1;
        }
    } else {
        cd_auth_new_secret("", generated, sizeof generated);
        generated[20] = '\0';
        password = generated;
    }
    cd_store_user u = {0};
    snprintf(u.name, sizeof u.name, "admin");
    u.role = CD_ROLE_ADMIN;
    u.created_at = cd_hub_now_ms();
    if (cd_auth_hash_password_now(password, u.password_hash, sizeof u.password_hash) < 0 ||
        st->ops->user_create(st, &u) < 0) {
        snprintf(err, errlen, "cannot create the admin account: %s", cd_store_error(st));
        return -1;
    }
    cd_hub_audit(hub, NULL, NULL, "user_create", "user admin", "the first start's admin account");
    if (password == generated) {
        /* Printed once, on stdout, where the operator who started the hub sees it. */
        printf("comfyd hub: created the account 'admin' with the password %s\n"
               "comfyd hub: it is shown only now; log in and change it (PATCH /api/users/%lld)\n",
               generated, (long long)u.id);
        fflush(stdout);
    } else {
        cd_info("hub: created the account 'admin' with the password from COMFYD_ADMIN_PASSWORD");
    }
    return 0;
}
