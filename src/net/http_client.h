/* A small HTTP/1.1 client on the loop: one request per connection, whole response in memory,
 * with a connect timeout and an overall deadline. The hub uses it to probe instances; the
 * tests use it to talk to a server in the same process. */
#ifndef CD_NET_HTTP_CLIENT_H
#define CD_NET_HTTP_CLIENT_H

#include <stddef.h>
#include <uv.h>

#include "base/buf.h"

typedef struct {
    const char *method;        /* "GET" when NULL */
    const char *host;          /* name or address */
    int port;
    const char *target;        /* "/system_stats?x=1" */
    const char *headers;       /* extra "Name: value\r\n" lines, or NULL */
    const void *body;
    size_t body_len;
    unsigned timeout_ms;       /* whole exchange, connect included; 0 = 30 s */
    size_t max_response_bytes; /* 0 = 64 MiB */
} cd_http_client_request;

typedef struct {
    int status;
    cd_buf headers; /* "name: value\n" lines, names lowercased */
    cd_buf body;
} cd_http_client_response;

/* error is NULL on success; the response is valid only during the callback. */
typedef void (*cd_http_client_cb)(const char *error, const cd_http_client_response *res, void *user);

/* Returns 0 (cb will run exactly once) or a negative libuv error (it will not). */
int cd_http_fetch(uv_loop_t *loop, const cd_http_client_request *req, cd_http_client_cb cb, void *user);

/* Looks up a header (lowercase name) in a response; copies its value into out. Returns 0 or -1. */
int cd_http_client_header(const cd_http_client_response *res, const char *name, char *out, size_t outlen);

#endif
