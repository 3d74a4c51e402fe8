/* What every handler of the hub's API shares: errors in ComfyUI's shape, authentication from the
 * session cookie or a Bearer token, strict JSON bodies, the audit log, and the JSON forms of
 * users, projects and instances. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "hub/auth.h"
#include "hub/hub.h"
#include "hub/session.h"
#include "server/instance.h"

/* The instance's JSON answer (server/), which the hub's layer may use. */
void cd_hub_json(cd_http_req *req, int status, json_t *value) { cd_respond_json(req, status, value); }

void cd_hub_error(cd_http_req *req, int status, const char *type, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    cd_hub_json(req, status,
                json_pack("{s:{s:s, s:s, s:s, s:{}}}", "error", "type", type, "message", message, "details", "",
                          "extra_info"));
}

/* ---- authentication ---- */

/* The value of one cookie from the Cookie header, into out. Returns 0 or -1. */
static int cookie_value(const char *header, const char *name, char *out, size_t outlen) {
    size_t nl = strlen(name);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';') p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            size_t vl = len - nl - 1;
            if (vl >= outlen) return -1;
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            return 0;
        }
        p = end;
    }
    return -1;
}

/* "host:port" of an Origin (after its scheme) equals the Host header, ignoring case. */
static bool same_netloc(const char *netloc, const char *host) {
    size_t n = strcspn(netloc, "/");
    return strlen(host) == n && !strncasecmp(netloc, host, n);
}

/* A request that rides on the session cookie must come from the hub's own pages: a browser
 * sends Origin with cross-site POSTs, and SameSite=Lax already keeps the cookie off most of
 * them; this catches the rest (same-site but other-origin pages). */
static bool cross_origin(cd_http_req *req, bool any_method) {
    const char *origin = cd_http_req_header(req, "Origin");
    const char *host = cd_http_req_header(req, "Host");
    if (!origin) return false;
    if (!any_method && (!strcmp(cd_http_req_method(req), "GET") || !strcmp(cd_http_req_method(req), "HEAD")))
        return false;
    const char *netloc = strstr(origin, "://");
    netloc = netloc ? netloc + 3 : origin;
    return !host || !same_netloc(netloc, host);
}

int cd_hub_identify(cd_hub *hub, cd_http_req *req, bool origin_any_method, cd_hub_caller *out) {
    memset(out, 0, sizeof *out);
    char secret[256];
    const char *auth = cd_http_req_header(req, "Authorization");
    const char *cookie = cd_http_req_header(req, "Cookie");
    bool have = false;
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        const char *t = auth + 7;
        while (*t == ' ') t++;
        if (strlen(t) < sizeof secret) {
            snprintf(secret, sizeof secret, "%s", t);
            have = true;
        }
    } else if (cookie && cookie_value(cookie, CD_HUB_SESSION_COOKIE, secret, sizeof secret) == 0) {
        have = true;
        out->by_cookie = true;
    }
    if (!have || cd_hub_session_user(hub, secret, out) < 0) return -1;
    if (out->by_cookie && cross_origin(req, origin_any_method)) return -2;
    return 0;
}

int cd_hub_authenticate(cd_hub *hub, cd_http_req *req, cd_hub_caller *out) {
    int rc = cd_hub_identify(hub, req, false, out);
    if (rc == -1)
        cd_hub_error(req, 401, "unauthorized", "log in first (POST /api/login, or an API token as 'Authorization: Bearer …')");
    else if (rc == -2)
        cd_hub_error(req, 403, "forbidden", "a request from another origin may not use this session");
    return rc < 0 ? -1 : 0;
}

int cd_hub_require_role(cd_hub *hub, cd_http_req *req, cd_role role, cd_hub_caller *out) {
    if (cd_hub_authenticate(hub, req, out) < 0) return -1;
    if (out->user.role < role) {
        cd_hub_error(req, 403, "forbidden", "this needs the %s role", cd_role_name(role));
        return -1;
    }
    return 0;
}

bool cd_hub_may_reach(const cd_hub_caller *c, const cd_store_project *p) {
    return c->user.id == p->owner_id || c->user.role >= CD_ROLE_TEACHER;
}

/* ---- bodies and parameters ---- */

long cd_hub_query_long(cd_http_req *req, const char *name, long def) {
    char *v = cd_str_query_get(cd_http_req_query(req), name);
    char *end = NULL;
    long n = v ? strtol(v, &end, 10) : def;
    if (v && (!*v || *end)) n = -1;
    free(v);
    return n;
}

json_t *cd_hub_body_object(cd_http_req *req, const char *const *allowed) {
    size_t len;
    const char *body = cd_http_req_body(req, &len);
    json_error_t jerr;
    json_t *obj = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        cd_hub_error(req, 400, "invalid_json", "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        cd_hub_error(req, 400, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++) known = !strcmp(*a, key);
        if (!known) {
            cd_hub_error(req, 400, "unknown_field", "unknown field '%s'", key);
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

int64_t cd_hub_param_id(cd_http_req *req, const char *name, const char *what) {
    const char *text = cd_http_req_param(req, name);
    char *end;
    long long id = text ? strtoll(text, &end, 10) : 0;
    if (!text || !*text || *end || id <= 0 || !isdigit((unsigned char)text[0])) {
        cd_hub_error(req, 404, "not_found", "no %s '%s'", what, text ? text : "");
        return -1;
    }
    return id;
}

/* ---- audit ---- */

void cd_hub_audit(cd_hub *hub, cd_http_req *req, const cd_store_user *who, const char *action, const char *target,
                  const char *fmt, ...) {
    cd_store_audit a = {0};
    a.at = cd_hub_now_ms();
    if (who) {
        a.user_id = who->id;
        snprintf(a.username, sizeof a.username, "%s", who->name);
    }
    snprintf(a.action, sizeof a.action, "%s", action);
    snprintf(a.target, sizeof a.target, "%s", target ? target : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a.detail, sizeof a.detail, fmt, ap);
    va_end(ap);
    if (req) snprintf(a.ip, sizeof a.ip, "%s", cd_http_req_peer(req));
    if (hub->store->ops->audit_add(hub->store, &a) < 0)
        cd_error("hub: cannot write the audit log (%s %s): %s", action, a.target, cd_store_error(hub->store));
}

/* ---- JSON forms ---- */

json_t *cd_hub_user_json(const cd_store_user *u) {
    return json_pack("{s:I, s:s, s:s, s:b, s:I}", "id", (json_int_t)u->id, "name", u->name, "role",
                     cd_role_name(u->role), "disabled", u->disabled, "created_at", (json_int_t)u->created_at);
}

json_t *cd_hub_instance_json(const cd_store_instance *i) {
    return json_pack("{s:I, s:I, s:I, s:s, s:s, s:i, s:i, s:s, s:s, s:I, s:I, s:I, s:i, s:s}", "id", (json_int_t)i->id,
                     "project_id", (json_int_t)i->project_id, "user_id", (json_int_t)i->user_id, "host", i->host,
                     "address", i->address, "port", i->port, "pid", i->pid, "status", i->status, "reason", i->reason,
                     "started_at", (json_int_t)i->started_at, "last_seen_at", (json_int_t)i->last_seen_at,
                     "last_activity_at", (json_int_t)i->last_activity_at, "crash_count", i->crash_count, "hub",
                     i->hub);
}

json_t *cd_hub_project_json(cd_hub *hub, const cd_store_project *p) {
    cd_store_user owner;
    const char *owner_name = hub->store->ops->user_get(hub->store, p->owner_id, &owner) == 0 ? owner.name : "";
    char url[256];
    snprintf(url, sizeof url, "/comfyui/%s/%lld/", owner_name, (long long)p->id);
    json_t *j = json_pack("{s:I, s:s, s:I, s:s, s:s, s:I, s:I}", "id", (json_int_t)p->id, "name", p->name, "owner_id",
                          (json_int_t)p->owner_id, "owner", owner_name, "url", url, "created_at",
                          (json_int_t)p->created_at, "updated_at", (json_int_t)p->updated_at);
    if (j) json_object_set_new(j, "pin", p->pin[0] ? json_string(p->pin) : json_null());
    cd_store_instance inst;
    if (j && hub->store->ops->instance_by_project(hub->store, p->id, &inst) == 0) {
        json_object_set_new(j, "instance", cd_hub_instance_json(&inst));
        json_object_set_new(j, "status", json_string(inst.status));
    } else if (j) {
        json_object_set_new(j, "instance", json_null());
        json_object_set_new(j, "status", json_string("stopped"));
    }
    return j;
}
