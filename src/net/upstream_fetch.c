#include "net/upstream_fetch.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    cd_http_client_cb cb;
    void *user;
    size_t max_bytes;
    cd_http_client_response res;
} fetch;

static void fetch_free(fetch *f) {
    cd_buf_free(&f->res.headers);
    cd_buf_free(&f->res.body);
    free(f);
}

static void on_head(cd_upstream_req *u, int status, size_t n, char *const *names, char *const *values, void *user) {
    fetch *f = user;
    f->res.status = status;
    for (size_t i = 0; i < n; i++) { /* as cd_http_fetch keeps them: "name: value\n", names lowercased */
        size_t at = f->res.headers.len;
        cd_buf_append_str(&f->res.headers, names[i]);
        for (size_t k = at; k < f->res.headers.len; k++)
            f->res.headers.data[k] = (char)tolower((unsigned char)f->res.headers.data[k]);
        cd_buf_printf(&f->res.headers, ": %s\n", values[i]);
    }
}

static void on_body(cd_upstream_req *u, const char *data, size_t len, void *user) {
    fetch *f = user;
    if (f->res.body.len + len > f->max_bytes) {
        cd_upstream_cancel(u); /* no callback of u runs after this: answer ourselves */
        f->cb("the response is too large", NULL, f->user);
        fetch_free(f);
        return;
    }
    cd_buf_append(&f->res.body, data, len);
}

static void on_end(cd_upstream_req *u, void *user) {
    fetch *f = user;
    cd_buf_append(&f->res.body, "", 0); /* data non-NULL, as cd_http_fetch gives */
    f->cb(NULL, &f->res, f->user);
    fetch_free(f);
}

static void on_error(cd_upstream_req *u, int status, const char *message, bool head_seen, void *user) {
    fetch *f = user;
    f->cb(message ? message : "the instance did not answer", NULL, f->user);
    fetch_free(f);
}

static const cd_upstream_callbacks callbacks = {
    .on_head = on_head, .on_body = on_body, .on_end = on_end, .on_error = on_error};

int cd_upstream_fetch(cd_upstream_pool *pool, const cd_http_client_request *req, cd_http_client_cb cb, void *user) {
    fetch *f = calloc(1, sizeof *f);
    if (!f) return UV_ENOMEM;
    f->cb = cb;
    f->user = user;
    f->max_bytes = req->max_response_bytes ? req->max_response_bytes : (size_t)64 << 20;
    const char *method = req->method ? req->method : "GET";
    bool has_body = req->body_len > 0 || strcmp(method, "GET") != 0;
    cd_buf head = {0};
    cd_buf_printf(&head, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, req->target, req->host, req->port);
    if (has_body) cd_buf_printf(&head, "Content-Length: %zu\r\n", req->body_len);
    if (req->headers) cd_buf_append_str(&head, req->headers);
    cd_buf_append_str(&head, "\r\n");
    cd_upstream_request r = {
        .host = req->host,
        .port = req->port,
        .head = head.data,
        .head_len = head.len,
        .has_body = has_body,
        .idle_timeout_ms = req->timeout_ms ? req->timeout_ms : 30000,
    };
    cd_upstream_req *u = head.data ? cd_upstream_start(pool, &r, &callbacks, f) : NULL;
    cd_buf_free(&head);
    if (!u) {
        free(f);
        return UV_ENOMEM;
    }
    if (has_body) {
        if (req->body_len) cd_upstream_write(u, req->body, req->body_len);
        cd_upstream_end_body(u);
    }
    return 0;
}
