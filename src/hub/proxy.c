#include "hub/proxy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "hub/admission.h"
#include "hub/page_badge.h"
#include "hub/lookup_cache.h"
#include "hub/session.h"
#include "hub/supervisor.h"
#include "net/http_client.h"
#include "net/upstream.h"
#include "net/ws_tunnel.h"

#define PREFIX "/comfyui/"
#define HIGH_WATER (1024u * 1024)

typedef struct tunnel_ref {
    cd_hub_proxy *px;
    cd_ws_tunnel *t;
    int64_t user_id, project_id; /* who it is for (the caller), which project */
    int instance_remaining;      /* the instance's own queue_remaining, from its last status (-1: none yet) */
    int held_shown;              /* the hub's held prompts last added to it */
    struct tunnel_ref *prev, *next;
} tunnel_ref;

struct cd_hub_proxy {
    cd_hub *hub;
    cd_upstream_pool *pool;
    tunnel_ref *tunnels;
    size_t ntunnels;
};

/* Where a request goes: /comfyui/{user}/{project}{rest}. */
typedef struct {
    char user[65];
    int64_t project_id;
    char prefix[128]; /* "/comfyui/{user}/{project}" */
    const char *rest; /* into the raw target: "/..." with its query */
} route;

/* A request on its way: everything it needs after its handler returned. */
typedef struct {
    cd_hub_proxy *px;
    cd_http_req *req; /* NULL once answered or gone */
    cd_upstream_req *up;
    route r;
    cd_store_project project;
    cd_store_user owner;
    cd_hub_caller caller;
    uint64_t body_bytes, body_limit;
    bool chunked, waiting_start;
    /* a request the hub answers itself with the admission queue (POST /prompt, /queue) */
    enum { PLAIN, HELD_PROMPT, HELD_QUEUE_POST, HISTORY_ONE, BADGE_PAGE } special;
    char history_id[129]; /* HISTORY_ONE: the prompt asked for */
    cd_buf collected;
} pxreq;

cd_hub_proxy *cd_hub_proxy_new(cd_hub *hub) {
    cd_hub_proxy *px = calloc(1, sizeof *px);
    if (!px) return NULL;
    px->hub = hub;
    px->pool = cd_upstream_pool_new(hub->loop, 64);
    if (!px->pool) {
        free(px);
        return NULL;
    }
    return px;
}

bool cd_hub_proxy_wants(const cd_http_req *req) {
    return !strncmp(cd_http_req_path(req), PREFIX, strlen(PREFIX));
}

/* ---- parsing the path ---- */

/* 0: routed; 1: "/comfyui/u/p" that needs its slash; -1: no such place. */
static int parse_route(const char *target, route *r) {
    const char *p = target + strlen(PREFIX);
    size_t ul = strcspn(p, "/?");
    if (ul == 0 || ul >= sizeof r->user || p[ul] != '/') return -1;
    memcpy(r->user, p, ul);
    r->user[ul] = '\0';
    const char *proj = p + ul + 1;
    size_t pl = strcspn(proj, "/?");
    if (pl == 0 || pl > 18) return -1;
    int64_t id = 0;
    for (size_t i = 0; i < pl; i++) {
        if (!isdigit((unsigned char)proj[i])) return -1;
        id = id * 10 + (proj[i] - '0');
    }
    if (id <= 0) return -1;
    r->project_id = id;
    snprintf(r->prefix, sizeof r->prefix, PREFIX "%s/%lld", r->user, (long long)id);
    r->rest = proj + pl;
    return *r->rest == '/' ? 0 : 1;
}

/* An instance's node-pack and model management: admins only (ComfyUI-Manager's routes, under
 * /api and /v2 too, and comfyd's restart). The check is on the decoded path, as a server that
 * routes on decoded paths (aiohttp) sees it; a path it cannot decode counts as one. */
static bool is_manager_path(const char *rest);

static bool is_manager_route(const char *raw) {
    size_t len = strcspn(raw, "?");
    char *path = cd_str_percent_decode(raw, len, false);
    if (!path) return true;
    /* "a//b", "/./" and "/../" could be folded into a manager path by the instance */
    bool odd = strstr(path, "//") || strstr(path, "/./") || strstr(path, "/../") || cd_str_ends_with_ci(path, "/..") ||
               cd_str_ends_with_ci(path, "/.");
    bool manager = odd || is_manager_path(path);
    free(path);
    return manager;
}

static bool is_manager_path(const char *rest) {
    if (!strncmp(rest, "/api/", 5)) rest += 4;
    if (!strncmp(rest, "/v2/", 4)) rest += 3;
    static const char *const prefixes[] = {"/manager/", "/customnode/", "/snapshot/", "/externalmodel/",
                                           "/model/install", "/server/restart", NULL};
    for (const char *const *pp = prefixes; *pp; pp++)
        if (!strncmp(rest, *pp, strlen(*pp))) return true;
    return false;
}

static void percent_encode(cd_buf *out, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~/", c)) cd_buf_append(out, s, 1);
        else cd_buf_printf(out, "%%%02X", c);
    }
}

static bool wants_html(cd_http_req *req) {
    const char *accept = cd_http_req_header(req, "Accept");
    const char *m = cd_http_req_method(req);
    return accept && strstr(accept, "text/html") && (!strcmp(m, "GET") || !strcmp(m, "HEAD")) &&
           !cd_http_req_is_upgrade(req);
}

static void redirect(cd_http_req *req, int status, const char *location) {
    cd_http_add_header(req, "Location", location);
    cd_http_respond(req, status, "text/plain; charset=utf-8", location, strlen(location));
}

/* ---- the request head for the instance ---- */

static bool hop_by_hop(const char *name) {
    static const char *const names[] = {"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
                                        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Expect",
                                        "Content-Length", NULL};
    for (const char *const *n = names; *n; n++)
        if (!strcasecmp(name, *n)) return true;
    return false;
}

/* The Cookie header without the hub's session cookie; "" when nothing else is left. */
static void strip_session_cookie(const char *value, cd_buf *out) {
    size_t nl = strlen(CD_HUB_SESSION_COOKIE);
    bool first = true;
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == ';') p++;
        size_t len = strcspn(p, ";");
        if (len && !(len > nl && !strncmp(p, CD_HUB_SESSION_COOKIE, nl) && p[nl] == '=')) {
            if (!first) cd_buf_append_str(out, "; ");
            cd_buf_append(out, p, len);
            first = false;
        }
        p += len;
    }
}

static void add_line(cd_buf *h, const char *name, const char *value) {
    cd_buf_append_str(h, name);
    cd_buf_append(h, ": ", 2);
    cd_buf_append_str(h, value);
    cd_buf_append(h, "\r\n", 2);
}

static void build_head(cd_http_req *req, const route *r, bool websocket, bool chunked, cd_buf *h) {
    cd_buf_printf(h, "%s %s HTTP/1.1\r\n", cd_http_req_method(req), r->rest);
    const char *forwarded_for = NULL;
    for (size_t i = 0; i < cd_http_req_header_count(req); i++) {
        const char *name, *value;
        cd_http_req_header_at(req, i, &name, &value);
        if (!strcasecmp(name, "X-Forwarded-For")) {
            forwarded_for = value;
            continue;
        }
        if (!strcasecmp(name, "X-Forwarded-Prefix")) continue;
        if (websocket && (!strcasecmp(name, "Upgrade") || !strcasecmp(name, "Connection"))) {
            add_line(h, name, value);
            continue;
        }
        if (hop_by_hop(name)) continue;
        if (!strcasecmp(name, "Authorization") && !strncasecmp(value, "Bearer ", 7)) continue;
        if (!strcasecmp(name, "Cookie")) {
            cd_buf rest = CD_BUF_INIT;
            strip_session_cookie(value, &rest);
            if (rest.len) add_line(h, "Cookie", rest.data);
            cd_buf_free(&rest);
            continue;
        }
        add_line(h, name, value);
    }
    const char *peer = cd_http_req_peer(req);
    size_t ip_len = strrchr(peer, ':') ? (size_t)(strrchr(peer, ':') - peer) : strlen(peer);
    if (forwarded_for) cd_buf_printf(h, "X-Forwarded-For: %s, %.*s\r\n", forwarded_for, (int)ip_len, peer);
    else cd_buf_printf(h, "X-Forwarded-For: %.*s\r\n", (int)ip_len, peer);
    cd_buf_printf(h, "X-Forwarded-Prefix: %s\r\n", r->prefix);
    if (!websocket) {
        const char *cl = cd_http_req_header(req, "Content-Length");
        if (chunked) cd_buf_append_str(h, "Transfer-Encoding: chunked\r\n");
        else if (cl) cd_buf_printf(h, "Content-Length: %s\r\n", cl);
        cd_buf_append_str(h, "Connection: keep-alive\r\n");
    }
    cd_buf_append_str(h, "\r\n");
}

/* ---- plain requests ---- */

static void pxreq_maybe_free(pxreq *pr) {
    if (pr->req || pr->up || pr->waiting_start) return;
    cd_buf_free(&pr->collected);
    free(pr);
}

static void answered(pxreq *pr) {
    if (pr->req) cd_http_req_on_abort(pr->req, NULL, NULL);
    pr->req = NULL;
}

static void on_up_head(cd_upstream_req *u, int status, size_t n, char *const *names, char *const *values,
                       void *user) {
    pxreq *pr = user;
    if (!pr->req) return;
    const char *ctype = NULL;
    int64_t length = -1;
    bool chunked = false;
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i], *value = values[i];
        if (!strcasecmp(name, "Content-Type")) ctype = value;
        else if (!strcasecmp(name, "Content-Length")) length = strtoll(value, NULL, 10);
        else if (!strcasecmp(name, "Transfer-Encoding")) chunked = true;
        else if (!strcasecmp(name, "Set-Cookie") && !strncasecmp(value, CD_HUB_SESSION_COOKIE "=", strlen(CD_HUB_SESSION_COOKIE) + 1))
            continue; /* an instance may not set (or fix) the hub's own session */
        else if (!strcasecmp(name, "Location") && value[0] == '/' && value[1] != '/') {
            /* the instance thinks it is at the root: keep its redirects inside the prefix */
            cd_buf loc = CD_BUF_INIT;
            cd_buf_printf(&loc, "%s%s", pr->r.prefix, value);
            cd_http_add_header(pr->req, "Location", loc.data);
            cd_buf_free(&loc);
        } else if (!hop_by_hop(name) && strcasecmp(name, "Server") != 0 && strcasecmp(name, "Date") != 0) {
            cd_http_add_header(pr->req, name, value);
        }
    }
    /* the head waits for the first piece of the body: one write for both */
    cd_http_cork(pr->req, true);
    cd_http_start(pr->req, status, ctype, chunked ? -1 : length);
}

static void on_client_drain(cd_http_req *req, void *arg) {
    pxreq *pr = arg;
    if (pr->up) cd_upstream_pause(pr->up, false);
}

static void on_up_body(cd_upstream_req *u, const char *data, size_t len, void *user) {
    pxreq *pr = user;
    if (!pr->req) return;
    cd_http_write(pr->req, data, len);
    cd_http_cork(pr->req, false);
    if (cd_http_queued(pr->req) > HIGH_WATER) {
        cd_upstream_pause(u, true);
        cd_http_on_drain(pr->req, on_client_drain, pr);
    }
}

static void on_up_end(cd_upstream_req *u, void *user) {
    pxreq *pr = user;
    pr->up = NULL;
    if (pr->req) {
        cd_http_req *req = pr->req;
        answered(pr);
        cd_http_on_drain(req, NULL, NULL);
        cd_http_end(req);
    }
    pxreq_maybe_free(pr);
}

static void on_up_error(cd_upstream_req *u, int status, const char *message, bool head_seen, void *user) {
    pxreq *pr = user;
    pr->up = NULL;
    if (pr->req) {
        cd_http_req *req = pr->req;
        answered(pr);
        cd_http_on_drain(req, NULL, NULL);
        if (!cd_http_req_responded(req)) {
            cd_warn("hub: proxy %s%s: %s", pr->r.prefix, pr->r.rest, message);
            cd_hub_error(req, status, status == 504 ? "gateway_timeout" : "bad_gateway", "%s", message);
        } else {
            cd_http_abort(req); /* its length was promised: cut it */
        }
    }
    pxreq_maybe_free(pr);
}

static void on_up_writable(cd_upstream_req *u, void *user) {
    pxreq *pr = user;
    if (pr->req) cd_http_req_pause_body(pr->req, false);
}

static void held_request(pxreq *pr);

static void on_client_body(cd_http_req *req, const char *data, size_t len, void *arg) {
    pxreq *pr = arg;
    if (pr->special != PLAIN) {
        if (!data) {
            held_request(pr);
            return;
        }
        if (pr->body_limit && pr->collected.len + len > pr->body_limit) {
            answered(pr);
            cd_hub_error(req, 413, "too_large", "the request body is larger than %llu bytes",
                         (unsigned long long)pr->body_limit);
            pxreq_maybe_free(pr);
            return;
        }
        if (cd_buf_append(&pr->collected, data, len) < 0) {
            answered(pr);
            cd_hub_error(req, 500, "internal", "out of memory");
            pxreq_maybe_free(pr);
        }
        return;
    }
    if (!pr->up) return;
    if (!data) {
        if (pr->chunked) cd_upstream_write(pr->up, "0\r\n\r\n", 5);
        cd_upstream_end_body(pr->up);
        return;
    }
    pr->body_bytes += len;
    if (pr->body_limit && pr->body_bytes > pr->body_limit) {
        cd_upstream_cancel(pr->up);
        pr->up = NULL;
        answered(pr);
        cd_http_req_on_body(req, NULL, NULL);
        cd_http_on_drain(req, NULL, NULL);
        if (cd_http_req_responded(req)) cd_http_abort(req); /* the instance's answer began: cut it */
        else
            cd_hub_error(req, 413, "too_large", "the request body is larger than %llu bytes",
                         (unsigned long long)pr->body_limit);
        pxreq_maybe_free(pr);
        return;
    }
    if (pr->chunked) {
        char size[24];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        cd_upstream_write(pr->up, size, (size_t)n);
        cd_upstream_write(pr->up, data, len);
        cd_upstream_write(pr->up, "\r\n", 2);
    } else {
        cd_upstream_write(pr->up, data, len);
    }
    if (cd_upstream_queued(pr->up) > HIGH_WATER) cd_http_req_pause_body(req, true);
}

static void on_client_abort(cd_http_req *req, void *arg) {
    pxreq *pr = arg;
    pr->req = NULL;
    if (pr->up) cd_upstream_cancel(pr->up);
    pr->up = NULL;
    if (pr->waiting_start) {
        cd_supervisor_cancel(pr->px->hub->sup, pr);
        pr->waiting_start = false;
    }
    pxreq_maybe_free(pr);
}

static void forward_http(pxreq *pr, const char *host, int port) {
    cd_http_req *req = pr->req;
    const char *te = cd_http_req_header(req, "Transfer-Encoding");
    const char *cl = cd_http_req_header(req, "Content-Length");
    pr->chunked = te && strcasestr(te, "chunked");
    cd_buf head = CD_BUF_INIT;
    build_head(req, &pr->r, false, pr->chunked, &head);
    cd_upstream_request ur = {
        .host = host,
        .port = port,
        .head = head.data,
        .head_len = head.len,
        .head_request = !strcmp(cd_http_req_method(req), "HEAD"),
        .has_body = pr->chunked || (cl && strtoull(cl, NULL, 10) > 0),
        .idle_timeout_ms = (unsigned)pr->px->hub->cfg->proxy_timeout_s * 1000,
    };
    static const cd_upstream_callbacks cbs = {
        .on_head = on_up_head, .on_body = on_up_body, .on_end = on_up_end, .on_error = on_up_error,
        .on_writable = on_up_writable,
    };
    pr->up = cd_upstream_start(pr->px->pool, &ur, &cbs, pr);
    cd_buf_free(&head);
    if (!pr->up) {
        answered(pr);
        cd_hub_error(req, 500, "internal", "out of memory");
        pxreq_maybe_free(pr);
        return;
    }
    cd_http_req_on_body(req, on_client_body, pr);
    cd_http_req_pause_body(req, false);
}

/* ---- what the admission queue answers ---- */

/* The path after the project without its query: "/prompt" or "/api/prompt" is route "prompt". */
static bool is_route(const route *r, const char *name) {
    const char *p = r->rest;
    if (!strncmp(p, "/api/", 5)) p += 4;
    size_t n = strlen(name);
    return p[0] == '/' && !strncmp(p + 1, name, n) && (p[1 + n] == '\0' || p[1 + n] == '?');
}

typedef struct {
    pxreq *pr;
    json_t *cancel; /* POST /queue: the body, forwarded after the hub's own prompts were cancelled */
} queue_op;

/* GET /history/{id}: a prompt the instance refused when the hub sent it never reached its
 * history; the hub's record of the refusal stands in for it, so that a client polling for the
 * result learns the error. Otherwise the instance's answer as it is. */
static void answer_history(pxreq *pr, cd_http_req *req, const cd_http_client_response *res) {
    json_t *entry = NULL;
    bool empty = res->status == 200 && res->body.len < 16;
    if (empty) {
        json_t *j = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
        empty = json_is_object(j) && json_object_size(j) == 0;
        json_decref(j);
    }
    if (empty)
        entry = cd_admission_refused_entry(pr->px->hub->admission, pr->history_id, pr->caller.user.id, pr->project.id);
    if (entry) {
        json_t *out = json_object();
        json_object_set_new(out, pr->history_id, entry);
        cd_hub_json(req, 200, out);
        return;
    }
    cd_http_respond(req, res->status, res->body.len ? "application/json; charset=utf-8" : NULL,
                    res->body.data ? res->body.data : "", res->body.len);
}

/* The front end's page with the queue badge's script tag (page_badge.h). */
static void answer_page(cd_http_req *req, const cd_http_client_response *res) {
    char type[128] = "";
    cd_http_client_header(res, "content-type", type, sizeof type);
    size_t len = 0;
    char *page = NULL;
    if (res->status == 200 && !strncasecmp(type, "text/html", 9) && res->body.len <= CD_HUB_BADGE_MAX_PAGE)
        page = cd_hub_badge_inject(res->body.data ? res->body.data : "", res->body.len, &len);
    cd_http_add_header(req, "Cache-Control", "no-cache");
    if (page) cd_http_respond(req, 200, type, page, len);
    else cd_http_respond(req, res->status, type[0] ? type : NULL, res->body.data ? res->body.data : "", res->body.len);
    free(page);
}

/* "/history/{id}" (or /api/...), without a query: the id, else false. */
static bool history_one(const route *r, char *id, size_t idlen) {
    const char *p = r->rest;
    if (!strncmp(p, "/api/", 5)) p += 4;
    if (strncmp(p, "/history/", 9) != 0) return false;
    p += 9;
    size_t n = strcspn(p, "?/%");
    if (n == 0 || n >= idlen || (p[n] && p[n] != '?')) return false;
    memcpy(id, p, n);
    id[n] = '\0';
    return true;
}

static void on_queue_answer(const char *error, const cd_http_client_response *res, void *user) {
    pxreq *pr = user;
    pr->waiting_start = false; /* the flag that keeps pr alive while a fetch is out */
    if (!pr->req) {
        pxreq_maybe_free(pr);
        return;
    }
    cd_http_req *req = pr->req;
    answered(pr);
    if (error) {
        cd_hub_error(req, 502, "bad_gateway", "%s", error);
    } else if (pr->special == HISTORY_ONE) {
        answer_history(pr, req, res);
    } else if (pr->special == BADGE_PAGE) {
        answer_page(req, res);
    } else if (pr->special == HELD_QUEUE_POST || res->status != 200) {
        cd_http_respond(req, res->status, res->body.len ? "application/json; charset=utf-8" : NULL,
                        res->body.data ? res->body.data : "", res->body.len);
    } else {
        /* the instance's queue, then what the hub holds for this user and project */
        json_t *q = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
        json_t *pending = json_object_get(q, "queue_pending");
        if (json_is_array(pending)) {
            json_t *held = cd_admission_pending_items(pr->px->hub->admission, pr->caller.user.id, pr->project.id);
            json_array_extend(pending, held);
            json_decref(held);
        }
        if (q) cd_hub_json(req, 200, q);
        else cd_hub_error(req, 502, "bad_gateway", "the instance's queue is not JSON");
    }
    pxreq_maybe_free(pr);
}

/* GET /queue (merged) and POST /queue (the hub's prompts cancelled, the rest forwarded). */
static void queue_request(pxreq *pr, const char *host, int port, const char *method, const char *body,
                          size_t len) {
    char target[200];
    if (pr->special == HISTORY_ONE) snprintf(target, sizeof target, "/history/%s", pr->history_id);
    else if (pr->special == BADGE_PAGE) snprintf(target, sizeof target, "%s", pr->r.rest);
    else snprintf(target, sizeof target, "/queue");
    cd_http_client_request r = {.method = method, .host = host, .port = port, .target = target,
                                .headers = "Content-Type: application/json\r\n", .body = body, .body_len = len,
                                .timeout_ms = (unsigned)pr->px->hub->cfg->proxy_timeout_s * 1000};
    pr->waiting_start = true;
    if (cd_http_fetch(pr->px->hub->loop, &r, on_queue_answer, pr) < 0) on_queue_answer("cannot connect", NULL, pr);
}

static void held_request(pxreq *pr) {
    cd_hub *hub = pr->px->hub;
    cd_http_req *req = pr->req;
    if (pr->special == HELD_PROMPT) {
        answered(pr);
        cd_admission_submit(hub->admission, req, &pr->caller, &pr->project, &pr->owner, pr->collected.data ? pr->collected.data : "",
                            pr->collected.len);
        pxreq_maybe_free(pr);
        return;
    }
    /* POST /queue: {delete: [ids]} and {clear: true} reach the hub's held prompts first */
    json_t *body = pr->collected.len ? json_loadb(pr->collected.data, pr->collected.len, 0, NULL) : NULL;
    if (json_is_object(body))
        cd_admission_cancel(hub->admission, &pr->caller, pr->project.id, json_object_get(body, "delete"),
                            json_is_true(json_object_get(body, "clear")));
    json_decref(body);
    char host[65];
    int port;
    if (cd_supervisor_target(hub->sup, pr->project.id, host, sizeof host, &port) < 0) {
        answered(pr);
        cd_http_respond(req, 200, NULL, NULL, 0); /* nothing else holds its prompts */
        pxreq_maybe_free(pr);
        return;
    }
    queue_request(pr, host, port, "POST", pr->collected.data ? pr->collected.data : "", pr->collected.len);
}

/* Whether the hub answers this request itself (with the admission queue's prompts, or the page
 * with the queue badge); it then has it. */
static bool take_held(pxreq *pr, const char *host, int port) {
    if (!cd_admission_enabled(pr->px->hub->admission)) return false;
    const char *m = cd_http_req_method(pr->req);
    if (pr->px->hub->cfg->queue_badge && cd_hub_badge_wanted(m, pr->r.rest) && strlen(pr->r.rest) < 200) {
        pr->special = BADGE_PAGE;
        queue_request(pr, host, port, "GET", NULL, 0);
        return true;
    }
    if (!strcmp(m, "POST") && is_route(&pr->r, "prompt")) pr->special = HELD_PROMPT;
    else if (!strcmp(m, "POST") && is_route(&pr->r, "queue")) pr->special = HELD_QUEUE_POST;
    else if (!strcmp(m, "GET") && is_route(&pr->r, "queue")) {
        queue_request(pr, host, port, "GET", NULL, 0);
        return true;
    } else if (!strcmp(m, "GET") && history_one(&pr->r, pr->history_id, sizeof pr->history_id)) {
        pr->special = HISTORY_ONE;
        queue_request(pr, host, port, "GET", NULL, 0);
        return true;
    } else return false;
    cd_http_req_on_body(pr->req, on_client_body, pr);
    cd_http_req_pause_body(pr->req, false);
    return true;
}

/* ---- WebSockets ---- */

static void on_tunnel_closed(cd_ws_tunnel *t, const char *why, void *user) {
    tunnel_ref *ref = user;
    cd_hub_proxy *px = ref->px;
    if (ref->prev) ref->prev->next = ref->next;
    else px->tunnels = ref->next;
    if (ref->next) ref->next->prev = ref->prev;
    px->ntunnels--;
    free(ref);
}

/* The stock ComfyUI frontend shows the queue_remaining of the instance's status messages: the
 * hub adds the prompts it holds for this user and project, so the number is true. */
static char *status_filter(void *user, const char *text, size_t len, size_t *out_len) {
    tunnel_ref *ref = user;
    if (len > 4096 || !memmem(text, len, "\"status\"", 8)) return NULL;
    json_t *j = json_loadb(text, len, 0, NULL);
    json_t *exec = json_object_get(json_object_get(json_object_get(j, "data"), "status"), "exec_info");
    json_t *rem = json_object_get(exec, "queue_remaining");
    const char *type = json_string_value(json_object_get(j, "type"));
    char *out = NULL;
    if (type && !strcmp(type, "status") && json_is_integer(rem)) {
        ref->instance_remaining = (int)json_integer_value(rem);
        ref->held_shown = cd_admission_held_count(ref->px->hub->admission, ref->user_id, ref->project_id);
        if (ref->held_shown > 0) {
            json_object_set_new(exec, "queue_remaining", json_integer(ref->instance_remaining + ref->held_shown));
            out = cd_json_dumps_compact(j, 0);
            if (out) *out_len = strlen(out);
        }
    }
    json_decref(j);
    return out;
}

void cd_hub_proxy_refresh_status(cd_hub_proxy *px) {
    for (tunnel_ref *ref = px->tunnels; ref; ref = ref->next) {
        if (!ref->t || ref->instance_remaining < 0) continue;
        int held = cd_admission_held_count(px->hub->admission, ref->user_id, ref->project_id);
        if (held == ref->held_shown) continue;
        ref->held_shown = held;
        char msg[160];
        snprintf(msg, sizeof msg, "{\"type\": \"status\", \"data\": {\"status\": {\"exec_info\": {\"queue_remaining\": %d}}}}",
                 ref->instance_remaining + held);
        cd_ws_tunnel_send_text(ref->t, msg, strlen(msg));
    }
}

/* A (re)connected page hears at once where its held prompts stand. */
static void on_tunnel_opened(cd_ws_tunnel *t, void *user) {
    tunnel_ref *ref = user;
    ref->t = t;
    cd_admission_announce(ref->px->hub->admission, ref->user_id);
}

static void forward_ws(pxreq *pr, const char *host, int port) {
    cd_hub_proxy *px = pr->px;
    cd_http_req *req = pr->req;
    answered(pr); /* the tunnel owns the request from here */
    tunnel_ref *ref = calloc(1, sizeof *ref);
    if (!ref) {
        cd_hub_error(req, 500, "internal", "out of memory");
        pxreq_maybe_free(pr);
        return;
    }
    ref->px = px;
    ref->user_id = pr->caller.user.id;
    ref->project_id = pr->project.id;
    ref->instance_remaining = -1;
    cd_buf head = CD_BUF_INIT;
    build_head(req, &pr->r, true, false, &head);
    cd_ws_tunnel_options o = {
        .host = host,
        .port = port,
        .head = head.data,
        .head_len = head.len,
        .ping_interval_ms = (unsigned)px->hub->cfg->proxy_ws_ping_s * 1000,
        .gone_reason = "the ComfyUI instance stopped",
        .opened = on_tunnel_opened,
        .text_filter = cd_admission_enabled(px->hub->admission) ? status_filter : NULL,
    };
    ref->next = px->tunnels;
    if (px->tunnels) px->tunnels->prev = ref;
    px->tunnels = ref;
    px->ntunnels++;
    ref->t = cd_ws_tunnel_start(req, &o, on_tunnel_closed, ref);
    if (!ref->t) on_tunnel_closed(NULL, "out of memory", ref);
    cd_buf_free(&head);
    pxreq_maybe_free(pr);
}

/* ---- routing ---- */

static void forward(pxreq *pr) {
    cd_hub *hub = pr->px->hub;
    char host[65];
    int port;
    if (cd_supervisor_target(hub->sup, pr->project.id, host, sizeof host, &port) < 0) {
        cd_http_req *req = pr->req;
        answered(pr);
        /* A crash is the instance failing (502, with what happened); a stop is no failure (503). */
        cd_store_instance rec;
        bool crashed = hub->store->ops->instance_by_project(hub->store, pr->project.id, &rec) == 0 &&
                       (!strcmp(rec.status, "offline") || !strcmp(rec.status, "failed") ||
                        !strcmp(rec.status, "starting"));
        if (crashed)
            cd_hub_error(req, 502, "instance_down", "the instance of project %lld is %s: %s", (long long)pr->project.id,
                         rec.status, rec.reason[0] ? rec.reason : "no reason given");
        else
            cd_hub_error(req, 503, "instance_not_running",
                         "project %lld is not running: open it first (POST /api/projects/%lld/open_comfy)",
                         (long long)pr->project.id, (long long)pr->project.id);
        pxreq_maybe_free(pr);
        return;
    }
    cd_supervisor_touch(hub->sup, pr->project.id);
    if (cd_http_req_is_upgrade(pr->req)) forward_ws(pr, host, port);
    else if (!take_held(pr, host, port)) forward_http(pr, host, port);
}

static void on_autostarted(int status, const char *message, const cd_store_instance *inst, bool reused, void *user) {
    pxreq *pr = user;
    pr->waiting_start = false;
    if (!pr->req) {
        pxreq_maybe_free(pr);
        return;
    }
    if (status != 0) {
        cd_http_req *req = pr->req;
        answered(pr);
        cd_hub_error(req, status, "instance_failed", "the instance could not start: %s", message);
        pxreq_maybe_free(pr);
        return;
    }
    forward(pr);
}

/* The project of the path and its owner, who must be the user the path names. */
static int find_project(cd_hub *hub, pxreq *pr) {
    struct {
        cd_store_project project;
        cd_store_user owner;
    } found;
    char key[128];
    snprintf(key, sizeof key, "%s/%lld", pr->r.user, (long long)pr->r.project_id);
    int64_t now = cd_hub_now_ms();
    if (!cd_lookup_cache_get(hub->routes, key, now, &found)) {
        cd_store *st = hub->store;
        if (st->ops->user_by_name(st, pr->r.user, &found.owner) != 0 ||
            st->ops->project_get(st, pr->r.project_id, &found.project) != 0 ||
            found.project.owner_id != found.owner.id)
            return -1;
        cd_lookup_cache_put(hub->routes, key, now, &found);
    }
    pr->project = found.project;
    pr->owner = found.owner;
    return 0;
}

/* Checks who asks for what. Returns 0, or answers and returns -1. */
static int admit(cd_hub_proxy *px, cd_http_req *req, pxreq *pr) {
    cd_hub *hub = px->hub;
    cd_hub_caller caller;
    int who = cd_hub_identify(hub, req, true, &caller);
    if (who == -1) {
        if (wants_html(req)) {
            cd_buf loc = CD_BUF_INIT;
            cd_buf_append_str(&loc, "/login?next=");
            percent_encode(&loc, cd_http_req_target(req));
            redirect(req, 302, loc.data);
            cd_buf_free(&loc);
        } else {
            cd_hub_error(req, 401, "unauthorized", "log in first (POST /api/login, or an API token as 'Authorization: Bearer …')");
        }
        return -1;
    }
    if (who == -2) {
        cd_hub_error(req, 403, "forbidden", "a request from another origin may not use this session");
        return -1;
    }
    if (find_project(hub, pr) < 0) {
        cd_hub_error(req, 404, "not_found", "no project %lld of user '%s'", (long long)pr->r.project_id, pr->r.user);
        return -1;
    }
    pr->caller = caller;
    if (!cd_hub_may_reach(&caller, &pr->project)) {
        cd_hub_error(req, 403, "forbidden", "project %lld is not yours", (long long)pr->project.id);
        return -1;
    }
    if (is_manager_route(pr->r.rest) && caller.user.role != CD_ROLE_ADMIN) {
        cd_hub_error(req, 403, "forbidden", "only admins may manage node packs and models");
        return -1;
    }
    const char *cl = cd_http_req_header(req, "Content-Length");
    bool upload = strstr(pr->r.rest, "/upload/") != NULL;
    pr->body_limit = (uint64_t)(upload ? hub->cfg->proxy_max_upload_bytes : hub->cfg->proxy_max_body_bytes);
    if (cl && pr->body_limit && strtoull(cl, NULL, 10) > pr->body_limit) {
        cd_hub_error(req, 413, "too_large", "the request body is larger than %llu bytes",
                     (unsigned long long)pr->body_limit);
        return -1;
    }
    return 0;
}

void cd_hub_proxy_handle(cd_hub_proxy *px, cd_http_req *req) {
    /* Nothing of the body is read until the instance is known. */
    cd_http_req_pause_body(req, true);
    route r;
    int parsed = parse_route(cd_http_req_target(req), &r);
    if (parsed < 0) {
        cd_hub_error(req, 404, "not_found", "no such place: %s (it is /comfyui/{user}/{project}/...)",
                     cd_http_req_path(req));
        return;
    }
    if (parsed == 1) {
        /* ComfyUI's frontend takes its API base from location.pathname: without the slash every
         * asset and API call would miss. */
        const char *query = strchr(cd_http_req_target(req), '?');
        char loc[512];
        snprintf(loc, sizeof loc, "%s/%s", r.prefix, query ? query : "");
        const char *m = cd_http_req_method(req);
        redirect(req, !strcmp(m, "GET") || !strcmp(m, "HEAD") ? 301 : 308, loc);
        return;
    }
    pxreq *pr = calloc(1, sizeof *pr);
    if (!pr) {
        cd_hub_error(req, 500, "internal", "out of memory");
        return;
    }
    pr->px = px;
    pr->r = r;
    if (admit(px, req, pr) < 0) {
        free(pr);
        return;
    }
    pr->req = req;
    cd_http_req_on_abort(req, on_client_abort, pr);
    char host[65];
    int port;
    if (cd_supervisor_target(px->hub->sup, pr->project.id, host, sizeof host, &port) < 0 &&
        px->hub->cfg->proxy_autostart) {
        pr->waiting_start = true;
        cd_supervisor_open(px->hub->sup, &pr->project, &pr->owner, on_autostarted, pr);
        return;
    }
    forward(pr);
}

void cd_hub_proxy_close_all(cd_hub_proxy *px) {
    for (tunnel_ref *ref = px->tunnels, *next; ref; ref = next) {
        next = ref->next;
        cd_ws_tunnel_close(ref->t, 1001, "the hub is stopping");
    }
    cd_upstream_pool_shut(px->pool);
}

void cd_hub_proxy_notify(cd_hub_proxy *px, int64_t user_id, int64_t project_id, const char *text) {
    for (tunnel_ref *ref = px->tunnels; ref; ref = ref->next)
        if (ref->t && ref->user_id == user_id && ref->project_id == project_id)
            cd_ws_tunnel_send_text(ref->t, text, strlen(text));
}

bool cd_hub_proxy_listening(const cd_hub_proxy *px, int64_t user_id, int64_t project_id) {
    for (const tunnel_ref *ref = px->tunnels; ref; ref = ref->next)
        if (ref->t && ref->user_id == user_id && ref->project_id == project_id) return true;
    return false;
}

bool cd_hub_proxy_idle(const cd_hub_proxy *px) { return !px || px->ntunnels == 0; }

void cd_hub_proxy_free(cd_hub_proxy *px) {
    if (!px) return;
    cd_upstream_pool_free(px->pool);
    free(px);
}
