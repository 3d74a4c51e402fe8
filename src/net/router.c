#include "net/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"

typedef enum { SEG_LITERAL, SEG_PARAM, SEG_REST } seg_kind;

typedef struct {
    seg_kind kind;
    char *text; /* the literal, or the parameter's name */
} segment;

typedef struct {
    char method[16];
    segment *segs;
    size_t nsegs;
    cd_route_fn fn;
    void *ctx;
} route;

struct cd_router {
    route *routes;
    size_t n, cap;
};

cd_router *cd_router_new(void) { return calloc(1, sizeof(cd_router)); }

static void route_free(route *r) {
    for (size_t i = 0; i < r->nsegs; i++) free(r->segs[i].text);
    free(r->segs);
}

void cd_router_free(cd_router *router) {
    if (!router) return;
    for (size_t i = 0; i < router->n; i++) route_free(&router->routes[i]);
    free(router->routes);
    free(router);
}

static int parse_pattern(const char *pattern, route *r) {
    if (pattern[0] != '/') return -1;
    const char *p = pattern + 1;
    size_t params = 0;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        segment *segs = realloc(r->segs, (r->nsegs + 1) * sizeof *segs);
        if (!segs) return -1;
        r->segs = segs;
        segment *s = &r->segs[r->nsegs];
        bool param = len >= 2 && p[0] == '{' && p[len - 1] == '}';
        bool rest = param && len >= 3 && p[len - 2] == '*';
        s->kind = rest ? SEG_REST : param ? SEG_PARAM : SEG_LITERAL;
        s->text = param ? strndup(p + 1, len - (rest ? 3 : 2)) : strndup(p, len);
        if (!s->text) return -1;
        r->nsegs++; /* counted before the checks below, so route_free releases it */
        if (param && ++params > CD_ROUTE_MAX_PARAMS) return -1;
        if (rest && slash) return -1; /* {name*} must be last */
        if (!slash) break;
        p = slash + 1;
    }
    return 0;
}

int cd_router_add(cd_router *router, const char *method, const char *pattern, cd_route_fn fn, void *ctx) {
    if (strlen(method) >= sizeof(((route *)0)->method)) return -1;
    route r = {.fn = fn, .ctx = ctx};
    snprintf(r.method, sizeof r.method, "%s", method);
    if (parse_pattern(pattern, &r) < 0) {
        route_free(&r);
        return -1;
    }
    if (router->n == router->cap) {
        size_t cap = router->cap ? router->cap * 2 : 32;
        route *routes = realloc(router->routes, cap * sizeof *routes);
        if (!routes) {
            route_free(&r);
            return -1;
        }
        router->routes = routes;
        router->cap = cap;
    }
    router->routes[router->n++] = r;
    return 0;
}

int cd_router_add_api(cd_router *router, const char *method, const char *pattern, cd_route_fn fn, void *ctx) {
    char api[512];
    if (snprintf(api, sizeof api, "/api%s", pattern) >= (int)sizeof api) return -1;
    /* ComfyUI registers the /api copies first; with first-match-wins the order is invisible
     * except between overlapping patterns, which we do not have. */
    if (cd_router_add(router, method, api, fn, ctx) < 0) return -1;
    return cd_router_add(router, method, pattern, fn, ctx);
}

void cd_route_match_clear(cd_route_match *m) {
    for (size_t i = 0; i < m->nparams; i++) free(m->values[i]);
    m->nparams = 0;
}

/* Matches path (starting after its leading '/') against r; fills params on success. */
static bool match_route(const route *r, const char *path, cd_route_match *m) {
    const char *p = path;
    m->nparams = 0;
    for (size_t i = 0; i < r->nsegs; i++) {
        const segment *s = &r->segs[i];
        if (!p) goto fail; /* the path ran out of segments */
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (s->kind == SEG_REST) {
            if (*p == '\0') goto fail;
            char *v = cd_str_percent_decode(p, strlen(p), false);
            if (!v) goto fail;
            m->names[m->nparams] = s->text;
            m->values[m->nparams++] = v;
            return true;
        }
        if (s->kind == SEG_LITERAL) {
            if (strlen(s->text) != len || memcmp(s->text, p, len) != 0) goto fail;
        } else {
            if (len == 0) goto fail;
            char *v = cd_str_percent_decode(p, len, false);
            if (!v) goto fail;
            m->names[m->nparams] = s->text;
            m->values[m->nparams++] = v;
        }
        p = slash ? slash + 1 : NULL;
    }
    if (p) goto fail; /* the path has more segments than the pattern */
    return true;
fail:
    cd_route_match_clear(m);
    return false;
}

static bool method_matches(const char *route_method, const char *method) {
    if (strcmp(route_method, method) == 0) return true;
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

cd_route_result cd_router_match(const cd_router *router, const char *method, const char *path, cd_route_match *m) {
    memset(m, 0, sizeof *m);
    if (path[0] != '/') return CD_ROUTE_NOT_FOUND;
    bool path_known = false;
    for (size_t i = 0; i < router->n; i++) {
        const route *r = &router->routes[i];
        cd_route_match tmp = {0};
        if (!match_route(r, path + 1, &tmp)) continue;
        if (method_matches(r->method, method)) {
            cd_route_match_clear(m);
            *m = tmp;
            m->fn = r->fn;
            m->ctx = r->ctx;
            m->allow[0] = '\0';
            return CD_ROUTE_FOUND;
        }
        cd_route_match_clear(&tmp);
        if (!strstr(m->allow, r->method)) {
            size_t used = strlen(m->allow);
            snprintf(m->allow + used, sizeof m->allow - used, "%s%s", used ? ", " : "", r->method);
        }
        path_known = true;
    }
    return path_known ? CD_ROUTE_METHOD_NOT_ALLOWED : CD_ROUTE_NOT_FOUND;
}
