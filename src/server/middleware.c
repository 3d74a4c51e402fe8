/* ComfyUI's middlewares (API reference §2.2), in its order: Cache-Control for static assets,
 * then CORS when --enable-cors-header is given, else the origin check that stops other web
 * pages from driving a server on loopback through the user's browser. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"
#include "server/instance.h"

static bool is_image_path(const char *path) {
    static const char *exts[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (cd_str_ends_with_ci(path, exts[i])) return true;
    return false;
}

static void add_cache_control(cd_http_req *req, int status) {
    if (cd_http_has_header(req, "Cache-Control")) return;
    const char *path = cd_http_req_path(req);
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;
    if (cd_str_ends_with_ci(path, ".js") || cd_str_ends_with_ci(path, ".css") ||
        (cd_str_starts_with(last, "index") && cd_str_ends_with_ci(last, ".json"))) {
        cd_http_add_header(req, "Cache-Control", "no-cache");
    } else if (is_image_path(path)) {
        if (status == 404) cd_http_add_header(req, "Cache-Control", "public, max-age=3600");
        else if ((status >= 200 && status <= 206) || status == 301 || status == 308)
            cd_http_add_header(req, "Cache-Control", "public, max-age=86400");
        else if (status == 302 || status == 303 || status == 307) cd_http_add_header(req, "Cache-Control", "no-cache");
    }
}

void cd_middleware_response_hook(cd_http_req *req, int status, void *arg) {
    cd_instance *inst = arg;
    add_cache_control(req, status);
    if (inst->opts->cors_origin) {
        cd_http_add_header(req, "Access-Control-Allow-Origin", inst->opts->cors_origin);
        cd_http_add_header(req, "Access-Control-Allow-Methods", "POST, GET, DELETE, PUT, OPTIONS");
        cd_http_add_header(req, "Access-Control-Allow-Headers", "Content-Type, Authorization");
        cd_http_add_header(req, "Access-Control-Allow-Credentials", "true");
    }
}

/* Splits "host:port", "[v6]:port" or "host" into a lowercased host and a port ("" if none). */
static void split_host(const char *in, char *host, size_t hl, char *port, size_t pl) {
    const char *colon;
    port[0] = '\0';
    if (in[0] == '[') {
        const char *close = strchr(in, ']');
        size_t n = close ? (size_t)(close - in + 1) : strlen(in);
        snprintf(host, hl, "%.*s", (int)n, in);
        if (close && close[1] == ':') snprintf(port, pl, "%s", close + 2);
    } else if ((colon = strrchr(in, ':')) && !strchr(colon + 1, ':')) {
        snprintf(host, hl, "%.*s", (int)(colon - in), in);
        snprintf(port, pl, "%s", colon + 1);
    } else {
        snprintf(host, hl, "%s", in);
    }
    for (char *p = host; *p; p++) *p = (char)tolower((unsigned char)*p);
}

/* ComfyUI resolves the Host name and checks for loopback; we decide without a blocking DNS
 * lookup: "localhost" (and *.localhost), 127.0.0.0/8 and ::1. */
static bool host_is_loopback(const char *host) {
    if (!strcmp(host, "localhost") || cd_str_ends_with_ci(host, ".localhost")) return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    char inner[300];
    if (host[0] == '[') {
        snprintf(inner, sizeof inner, "%s", host + 1);
        char *close = strchr(inner, ']');
        if (close) *close = '\0';
        struct in6_addr a6;
        return inet_pton(AF_INET6, inner, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return false;
}

/* True when the request must be refused: a browser page from another origin talking to a
 * loopback server. */
static bool origin_mismatch(cd_http_req *req) {
    const char *host_h = cd_http_req_header(req, "Host");
    const char *origin_h = cd_http_req_header(req, "Origin");
    if (!host_h || !origin_h) return false;
    char host[256], host_port[16];
    split_host(host_h, host, sizeof host, host_port, sizeof host_port);
    if (!host_is_loopback(host)) return false;
    /* The Origin's netloc: after "scheme://". */
    const char *netloc = strstr(origin_h, "://");
    netloc = netloc ? netloc + 3 : origin_h;
    char onetloc[300];
    snprintf(onetloc, sizeof onetloc, "%s", netloc);
    char *slash = strchr(onetloc, '/');
    if (slash) *slash = '\0';
    char ohost[256], oport[16];
    split_host(onetloc, ohost, sizeof ohost, oport, sizeof oport);
    /* A port is compared only when both sides have one. */
    if (strcmp(host, ohost) != 0) return true;
    return host_port[0] && oport[0] && strcmp(host_port, oport) != 0;
}

bool cd_middleware_before(cd_instance *inst, cd_http_req *req) {
    bool options = strcmp(cd_http_req_method(req), "OPTIONS") == 0;
    if (inst->opts->cors_origin) {
        if (options) {
            cd_http_respond(req, 200, NULL, NULL, 0);
            return true;
        }
        return false;
    }
    if (origin_mismatch(req)) {
        cd_http_respond(req, 403, NULL, NULL, 0);
        return true;
    }
    if (options) {
        cd_http_respond(req, 200, NULL, NULL, 0);
        return true;
    }
    return false;
}
