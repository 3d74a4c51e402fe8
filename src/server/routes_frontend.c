/* GET / and the front end's static files (--front-end-root), or our own small page. */
#include <stdlib.h>
#include <string.h>

#include "base/path.h"
#include "base/str.h"
#include "comfyd_version.h"
#include "net/static_files.h"
#include "server/instance.h"

static const char own_page[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>comfyd</title>\n"
    "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#222}"
    "code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}</style></head><body>\n"
    "<h1>comfyd " COMFYD_VERSION "</h1>\n"
    "<p>This is <strong>comfyd</strong>, a ComfyUI-compatible workflow server. It speaks ComfyUI's HTTP and "
    "WebSocket API (version " COMFYD_COMFYUI_API_VERSION "), so ComfyUI clients, SDKs and scripts can use it "
    "as they are.</p>\n"
    "<ul>\n"
    "<li>API: every route at <code>/x</code> and <code>/api/x</code>, e.g. "
    "<a href=\"/system_stats\"><code>/system_stats</code></a>, <a href=\"/features\"><code>/features</code></a></li>\n"
    "<li>Events: WebSocket <code>/ws?clientId=&lt;id&gt;</code></li>\n"
    "</ul>\n"
    "<p>No web front end is configured. To use ComfyUI's, start with "
    "<code>comfyd serve --front-end-root DIR</code>.</p>\n"
    "</body></html>\n";

static void handle_index(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    cd_http_add_header(req, "Cache-Control", "no-cache");
    cd_http_add_header(req, "Pragma", "no-cache");
    cd_http_add_header(req, "Expires", "0");
    if (inst->front_end_root) {
        cd_static_serve(req, inst->front_end_root, "index.html");
        return;
    }
    cd_http_respond(req, 200, "text/html; charset=utf-8", own_page, sizeof own_page - 1);
}

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

void cd_routes_frontend_register(cd_instance *inst) { cd_router_add_api(inst->router, "GET", "/", handle_index, inst); }
