/* The router: maps a method and a raw request path to a handler, with path parameters.
 *
 * Patterns are split on '/'. A segment is a literal, "{name}" (one segment, percent-decoded, so
 * "a%2Fb" gives "a/b" as ComfyUI's userdata routes expect) or, last only, "{name*}" (the rest of
 * the path, at least one character). The first registered match wins, as in aiohttp. A path that
 * matches some route but not for this method is METHOD_NOT_ALLOWED (405). HEAD matches GET. */
#ifndef CD_NET_ROUTER_H
#define CD_NET_ROUTER_H

#include <stddef.h>

#define CD_ROUTE_MAX_PARAMS 8

typedef struct cd_router cd_router;
typedef struct cd_http_req cd_http_req;
typedef void (*cd_route_fn)(cd_http_req *req, void *ctx);

typedef enum { CD_ROUTE_FOUND, CD_ROUTE_NOT_FOUND, CD_ROUTE_METHOD_NOT_ALLOWED } cd_route_result;

typedef struct {
    cd_route_fn fn;
    void *ctx;
    size_t nparams;
    const char *names[CD_ROUTE_MAX_PARAMS]; /* borrowed from the router */
    char *values[CD_ROUTE_MAX_PARAMS];      /* owned; cd_route_match_clear frees them */
    char allow[64];                         /* for METHOD_NOT_ALLOWED: "GET, POST" */
} cd_route_match;

cd_router *cd_router_new(void);
void cd_router_free(cd_router *router);

/* Returns 0, or -1 for an invalid pattern or OOM. */
int cd_router_add(cd_router *router, const char *method, const char *pattern, cd_route_fn fn, void *ctx);
/* Registers pattern and "/api" + pattern: ComfyUI serves every API route under both. */
int cd_router_add_api(cd_router *router, const char *method, const char *pattern, cd_route_fn fn, void *ctx);

cd_route_result cd_router_match(const cd_router *router, const char *method, const char *path, cd_route_match *m);
void cd_route_match_clear(cd_route_match *m);

#endif
