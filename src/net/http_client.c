#include "net/http_client.h"

#include <ctype.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tcp_connect.h"

typedef struct {
    uv_loop_t *loop;
    uv_tcp_t *tcp;
    uv_timer_t timer;
    uv_write_t write;
    http_parser parser;
    http_parser_settings settings;
    cd_buf request;
    cd_http_client_response res;
    cd_buf field;
    bool in_value, complete, done;
    size_t max_bytes;
    cd_http_client_cb cb;
    void *user;
    int refs;
} fetch;

/* noinline: GCC 12 at -O3 inlines this into callers holding a second reference and then
 * reports a use after free that cannot happen (-Wuse-after-free false positive). */
__attribute__((noinline)) static void fetch_unref(fetch *f) {
    if (--f->refs > 0) return;
    cd_buf_free(&f->request);
    cd_buf_free(&f->res.headers);
    cd_buf_free(&f->res.body);
    cd_buf_free(&f->field);
    free(f);
}

static void on_closed(uv_handle_t *h) {
    fetch *f = h->data;
    if (h == (uv_handle_t *)f->tcp) {
        free(f->tcp);
        f->tcp = NULL;
    }
    fetch_unref(f);
}

static void finish(fetch *f, const char *error) {
    if (f->done) return;
    f->done = true;
    uv_close((uv_handle_t *)&f->timer, on_closed);
    if (f->tcp) uv_close((uv_handle_t *)f->tcp, on_closed);
    f->cb(error, error ? NULL : &f->res, f->user);
    fetch_unref(f);
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    fetch *f = p->data;
    if (f->in_value) {
        cd_buf_append(&f->res.headers, "\n", 1);
        f->in_value = false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = (char)tolower((unsigned char)at[i]);
        cd_buf_append(&f->res.headers, &c, 1);
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    fetch *f = p->data;
    if (!f->in_value) cd_buf_append(&f->res.headers, ": ", 2);
    f->in_value = true;
    return cd_buf_append(&f->res.headers, at, len);
}

static int on_headers_complete(http_parser *p) {
    fetch *f = p->data;
    if (f->in_value) cd_buf_append(&f->res.headers, "\n", 1);
    f->res.status = p->status_code;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    fetch *f = p->data;
    if (f->res.body.len + len > f->max_bytes) return -1;
    return cd_buf_append(&f->res.body, at, len);
}

static int on_message_complete(http_parser *p) {
    fetch *f = p->data;
    f->complete = true;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    *buf = uv_buf_init(malloc(suggested), (unsigned)suggested);
    if (!buf->base) buf->len = 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    fetch *f = s->data;
    if (nread < 0) {
        /* EOF completes a response framed by the connection's end. */
        if (nread == UV_EOF) http_parser_execute(&f->parser, &f->settings, NULL, 0);
        free(buf->base);
        finish(f, f->complete ? NULL : "connection closed before the response was complete");
        return;
    }
    if (nread > 0) {
        size_t n = http_parser_execute(&f->parser, &f->settings, buf->base, (size_t)nread);
        if ((n != (size_t)nread && !f->complete) || (HTTP_PARSER_ERRNO(&f->parser) != HPE_OK && !f->complete)) {
            free(buf->base);
            finish(f, "invalid or oversized HTTP response");
            return;
        }
    }
    free(buf->base);
    if (f->complete) finish(f, NULL);
}

static void on_written(uv_write_t *w, int status) {
    fetch *f = w->data;
    if (status < 0 && !f->done) finish(f, "write failed");
    fetch_unref(f);
}

static void on_connected(uv_tcp_t *tcp, int status, const char *error, void *user) {
    fetch *f = user;
    (void)status;
    if (f->done) {
        if (tcp) uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        fetch_unref(f);
        return;
    }
    if (!tcp) {
        /* Not done yet, so the fetch itself and its timer still hold references: dropping the
         * attempt's reference cannot free it. */
        f->refs--;
        finish(f, error);
        return;
    }
    f->tcp = tcp;
    tcp->data = f;
    f->refs++; /* the tcp handle */
    uv_buf_t b = uv_buf_init(f->request.data, (unsigned)f->request.len);
    f->write.data = f;
    if (uv_write(&f->write, (uv_stream_t *)tcp, &b, 1, on_written) == 0) f->refs++;
    uv_read_start((uv_stream_t *)tcp, on_alloc, on_read);
    fetch_unref(f); /* the connect attempt's reference */
}

static void on_timeout(uv_timer_t *t) { finish(t->data, "timed out"); }

int cd_http_fetch(uv_loop_t *loop, const cd_http_client_request *req, cd_http_client_cb cb, void *user) {
    fetch *f = calloc(1, sizeof *f);
    if (!f) return UV_ENOMEM;
    f->loop = loop;
    f->cb = cb;
    f->user = user;
    f->max_bytes = req->max_response_bytes ? req->max_response_bytes : 64u * 1024 * 1024;
    bool v6 = strchr(req->host, ':') != NULL;
    cd_buf_printf(&f->request, "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nConnection: close\r\n", req->method ? req->method : "GET",
                  req->target, v6 ? "[" : "", req->host, v6 ? "]" : "", req->port);
    if (req->body || (req->method && strcmp(req->method, "GET") != 0))
        cd_buf_printf(&f->request, "Content-Length: %zu\r\n", req->body_len);
    if (req->headers) cd_buf_append_str(&f->request, req->headers);
    cd_buf_append_str(&f->request, "\r\n");
    if (req->body_len) cd_buf_append(&f->request, req->body, req->body_len);
    http_parser_init(&f->parser, HTTP_RESPONSE);
    f->parser.data = f;
    http_parser_settings_init(&f->settings);
    f->settings.on_header_field = on_header_field;
    f->settings.on_header_value = on_header_value;
    f->settings.on_headers_complete = on_headers_complete;
    f->settings.on_body = on_body;
    f->settings.on_message_complete = on_message_complete;
    unsigned timeout = req->timeout_ms ? req->timeout_ms : 30000;
    int rc = cd_tcp_connect(loop, req->host, req->port, timeout, on_connected, f);
    if (rc < 0) {
        cd_buf_free(&f->request);
        free(f);
        return rc;
    }
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_timeout, timeout + 100, 0);
    f->refs = 3; /* itself, the timer, the connect attempt */
    return 0;
}

int cd_http_client_header(const cd_http_client_response *res, const char *name, char *out, size_t outlen) {
    if (!res->headers.data) return -1;
    size_t n = strlen(name);
    for (const char *line = res->headers.data; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > n + 1 && strncmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ') v++;
            size_t vl = len - (size_t)(v - line);
            if (vl >= outlen) vl = outlen - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 0;
        }
        if (!nl) break;
        line = nl + 1;
    }
    return -1;
}
