/* GET / and the front end's static files (--front-end-root), or our own page (web/serve/). */
#include <stdlib.h>
#include <string.h>

#include "base/path.h"
#include "base/str.h"
#include "net/static_files.h"
#include "server/instance.h"
#include "server/web.h"

const cd_serve_web_file *cd_serve_web_find(const char *name) {
    for (const cd_serve_web_file *f = cd_serve_web_files; f->name; f++)
        if (!strcmp(f->name, name)) return f;
    return NULL;
}

static const char *web_content_type(const char *name) {
    if (cd_str_ends_with_ci(name, ".html")) return "text/html; charset=utf-8";
    if (cd_str_ends_with_ci(name, ".js")) return "text/javascript; charset=utf-8";
    if (cd_str_ends_with_ci(name, ".css")) return "text/css; charset=utf-8";
    if (cd_str_ends_with_ci(name, ".svg")) return "image/svg+xml";
    return "application/octet-stream";
}

/* One file of our own page. The files change with the binary, not with time, so the browser
 * asks again each load (no-cache) rather than keeping a stale script after an upgrade. nosniff,
 * as for the files /userdata serves: the type we send is the one the browser must use. */
static void respond_web_file(cd_http_req *req, const char *name) {
    const cd_serve_web_file *f = cd_serve_web_find(name);
    if (!f) {
        cd_http_respond_text(req, 404, "404: Not Found");
        return;
    }
    cd_http_add_header(req, "Cache-Control", "no-cache");
    cd_http_add_header(req, "X-Content-Type-Options", "nosniff");
    cd_http_respond(req, 200, web_content_type(name), f->data, f->len);
}

static void handle_index(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    if (inst->front_end_root) {
        cd_http_add_header(req, "Cache-Control", "no-cache");
        cd_http_add_header(req, "Pragma", "no-cache");
        cd_http_add_header(req, "Expires", "0");
        cd_static_serve(req, inst->front_end_root, "index.html");
        return;
    }
    respond_web_file(req, "index.html");
}

/* GET /comfyd-ui/{name}: the page's scripts and styles, under a prefix of their own so they
 * cannot shadow a ComfyUI route. */
static void handle_web_file(cd_http_req *req, void *ctx) { respond_web_file(req, cd_http_req_param(req, "name")); }

void cd_routes_frontend_fallback(cd_instance *inst, cd_http_req *req) {
    const char *method = cd_http_req_method(req);
    bool readable = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (inst->front_end_root && readable) {
        const char *path = cd_http_req_path(req);
        char *rel = cd_str_percent_decode(path, strlen(path), false);
        if (rel) {
            cd_static_serve(req, inst->front_end_root, rel);
            free(rel);
            return;
        }
    }
    cd_http_respond_text(req, 404, "404: Not Found");
}

void cd_routes_frontend_register(cd_instance *inst) {
    cd_router_add_api(inst->router, "GET", "/", handle_index, inst);
    /* With --front-end-root the front end's own files are what the browser wants. */
    if (!inst->front_end_root) cd_router_add(inst->router, "GET", "/comfyd-ui/{name}", handle_web_file, inst);
}
