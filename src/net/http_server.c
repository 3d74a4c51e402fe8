#include "net/http_server.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/str.h"

#define MAX_PARAMS 8

typedef enum {
    CONN_IDLE,     /* between requests */
    CONN_HEADERS,  /* a request has begun; its head is arriving */
    CONN_BODY,     /* its body is arriving */
    CONN_HANDLING, /* complete; the handler has it and the parser is paused */
    CONN_CLOSING,
} conn_state;

typedef struct conn conn;

struct cd_http_req {
    conn *c;
    char *method;
    cd_buf target;
    char *path;
    const char *query;
    char **header_names; /* parallel arrays, owned */
    char **header_values;
    size_t nheaders, cap_headers;
    cd_buf body;
    bool upgrade, head_only;
    char *param_names[MAX_PARAMS], *param_values[MAX_PARAMS];
    size_t nparams;
    cd_buf resp_headers; /* "Name: value\r\n" lines added by the handler */
    bool started, ended, chunked;
    cd_http_req_cb on_abort, on_drain;
    void *abort_arg, *drain_arg;
    /* a streamed body (see cd_http_server_set_head_hook) */
    bool streaming, body_paused, body_complete, expect_continue;
    cd_http_body_cb on_body;
    void *body_arg;
};

struct conn {
    cd_http_server *srv;
    uv_tcp_t *tcp;
    uv_timer_t timer;
    http_parser parser;
    conn_state state;
    cd_http_req *req;
    cd_buf pending; /* received, not yet parsed */
    cd_buf corked;  /* written while corked (cd_http_cork): leaves in one write */
    bool cork;
    size_t write_queued;
    int refs; /* the conn itself, its two handles while open, and each write in flight */
    bool reading, in_feed, keep_alive, close_after, detached, handles_closing, lingering;
    bool peer_eof; /* the client half-closed: answer what it sent, then close */
    uv_shutdown_t shutdown_req;
    int parse_error; /* status to answer when a parser callback refused the request */
    bool between_requests; /* the parser waits for a new request line */
    bool head_dispatch;    /* a streamed request's head is complete: call the handler */
    bool body_end_pending; /* a streamed request's body is complete: tell the handler */
    /* header parsing */
    cd_buf field, value;
    bool in_value;
    size_t header_bytes;
    uint64_t deadline;       /* state timeout, loop ms; 0 = none */
    uint64_t write_deadline; /* while writes are pending */
    char peer[64];
    conn *prev, *next;
};

struct cd_http_server {
    uv_loop_t *loop;
    cd_http_limits limits;
    cd_http_handler_fn handler;
    void *ctx;
    cd_http_response_hook_fn hook;
    void *hook_ctx;
    cd_http_head_hook_fn head_hook;
    void *head_hook_ctx;
    uv_tcp_t *listeners[16];
    size_t nlisteners, listeners_open;
    int port;
    conn *conns;
    size_t nconns;
    bool stopping;
    uv_timer_t stop_timer;
    bool stop_timer_open;
    cd_http_stopped_fn stopped_cb;
    void *stopped_arg;
    http_parser_settings settings;
    char read_slab[65536];
    time_t date_second;
    char date_text[64];
};

typedef struct {
    uv_write_t w;
    conn *c;
    size_t len;
    char data[];
} write_req;

static void conn_feed(conn *c);
static void conn_write(conn *c, const void *data, size_t len);
static void conn_close(conn *c);
static void conn_arm_timer(conn *c);
static void server_maybe_stopped(cd_http_server *srv);
static void conn_start_reading(conn *c);
static void conn_linger(conn *c);

void cd_http_limits_default(cd_http_limits *l) {
    l->max_url_bytes = 8192;
    l->max_header_line_bytes = 8192;
    l->max_header_total_bytes = 65536;
    l->max_body_bytes = 100u * 1024 * 1024;
    l->header_timeout_ms = 10000;
    l->idle_timeout_ms = 75000;
    l->body_timeout_ms = 60000;
    l->write_timeout_ms = 60000;
    l->shutdown_timeout_ms = 30000;
    l->write_high_water = 1024 * 1024;
    l->max_connections = 10000;
}

const char *cd_http_status_text(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Requested Range Not Satisfiable";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

/* ---- requests ---- */

static cd_http_req *req_new(conn *c) {
    cd_http_req *r = calloc(1, sizeof *r);
    if (r) r->c = c;
    return r;
}

static void req_free(cd_http_req *r) {
    if (!r) return;
    free(r->method);
    cd_buf_free(&r->target);
    free(r->path);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->header_names[i]);
        free(r->header_values[i]);
    }
    free(r->header_names);
    free(r->header_values);
    cd_buf_free(&r->body);
    for (size_t i = 0; i < r->nparams; i++) {
        free(r->param_names[i]);
        free(r->param_values[i]);
    }
    cd_buf_free(&r->resp_headers);
    free(r);
}

const char *cd_http_req_method(const cd_http_req *r) { return r->method ? r->method : ""; }
const char *cd_http_req_target(const cd_http_req *r) { return r->target.data ? r->target.data : ""; }
const char *cd_http_req_path(const cd_http_req *r) { return r->path ? r->path : ""; }
const char *cd_http_req_query(const cd_http_req *r) { return r->query ? r->query : ""; }
bool cd_http_req_is_upgrade(const cd_http_req *r) { return r->upgrade; }
const char *cd_http_req_peer(const cd_http_req *r) { return r->c->peer; }
cd_http_server *cd_http_req_server(const cd_http_req *r) { return r->c->srv; }
bool cd_http_req_responded(const cd_http_req *r) { return r->started; }

const char *cd_http_req_header(const cd_http_req *r, const char *name) {
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->header_names[i], name) == 0) return r->header_values[i];
    return NULL;
}

size_t cd_http_req_header_count(const cd_http_req *r) { return r->nheaders; }

void cd_http_req_header_at(const cd_http_req *r, size_t i, const char **name, const char **value) {
    *name = r->header_names[i];
    *value = r->header_values[i];
}

const char *cd_http_req_body(const cd_http_req *r, size_t *len) {
    if (len) *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

int cd_http_req_set_param(cd_http_req *r, const char *name, const char *value) {
    if (r->nparams == MAX_PARAMS) return -1;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    r->param_names[r->nparams] = n;
    r->param_values[r->nparams++] = v;
    return 0;
}

const char *cd_http_req_param(const cd_http_req *r, const char *name) {
    for (size_t i = 0; i < r->nparams; i++)
        if (strcmp(r->param_names[i], name) == 0) return r->param_values[i];
    return NULL;
}

void cd_http_req_on_abort(cd_http_req *r, cd_http_req_cb cb, void *arg) {
    r->on_abort = cb;
    r->abort_arg = arg;
}

void cd_http_on_drain(cd_http_req *r, cd_http_req_cb cb, void *arg) {
    r->on_drain = cb;
    r->drain_arg = arg;
}

size_t cd_http_queued(const cd_http_req *r) { return r->c->write_queued; }

bool cd_http_req_streaming(const cd_http_req *r) { return r->streaming; }
bool cd_http_req_body_complete(const cd_http_req *r) { return r->body_complete; }

void cd_http_req_on_body(cd_http_req *r, cd_http_body_cb cb, void *arg) {
    r->on_body = cb;
    r->body_arg = arg;
}

void cd_http_req_pause_body(cd_http_req *r, bool pause) {
    conn *c = r->c;
    if (!r->streaming || r->body_paused == pause) return;
    r->body_paused = pause;
    if (pause) {
        /* Waiting on the handler is not the client's slowness: no body deadline meanwhile. */
        c->deadline = 0;
        conn_arm_timer(c);
        if (c->in_feed) http_parser_pause(&c->parser, 1); /* stop inside this buffer */
        return;
    }
    if (r->expect_continue && !r->started) {
        r->expect_continue = false;
        conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    if (c->state == CONN_BODY) {
        c->deadline = uv_now(c->srv->loop) + c->srv->limits.body_timeout_ms;
        conn_arm_timer(c);
    }
    if (!c->in_feed) conn_feed(c);
}

/* ---- connection lifetime ---- */

static void conn_unref(conn *c) {
    if (--c->refs > 0) return;
    cd_buf_free(&c->pending);
    cd_buf_free(&c->corked);
    cd_buf_free(&c->field);
    cd_buf_free(&c->value);
    free(c);
}

static void on_handle_closed(uv_handle_t *h) {
    conn *c = h->data;
    if ((uv_handle_t *)c->tcp == h) {
        free(c->tcp);
        c->tcp = NULL;
    }
    conn_unref(c);
}

static void conn_unlink(conn *c) {
    cd_http_server *srv = c->srv;
    if (c->prev) c->prev->next = c->next;
    else if (srv->conns == c) srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    srv->nconns--;
}

static void conn_close(conn *c) {
    if (c->handles_closing) return;
    c->handles_closing = true;
    c->state = CONN_CLOSING;
    cd_http_req *r = c->req;
    c->req = NULL;
    if (r) {
        if (r->on_abort && !r->ended) r->on_abort(r, r->abort_arg);
        req_free(r);
    }
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->tcp && !c->detached) uv_close((uv_handle_t *)c->tcp, on_handle_closed);
    cd_http_server *srv = c->srv;
    conn_unlink(c);
    conn_unref(c); /* the connection's own reference */
    server_maybe_stopped(srv);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t) {
    conn *c = t->data;
    uint64_t now = uv_now(c->srv->loop);
    if (c->write_queued > 0 && c->write_deadline && now >= c->write_deadline) {
        cd_warn("http: closing %s: the client has not read its response for %u ms", c->peer,
                c->srv->limits.write_timeout_ms);
        conn_close(c);
        return;
    }
    if (c->deadline && now >= c->deadline) {
        if (c->state == CONN_HEADERS || c->state == CONN_BODY)
            cd_info("http: closing %s: request not received in time", c->peer);
        conn_close(c);
        return;
    }
    conn_arm_timer(c);
}

static void conn_arm_timer(conn *c) {
    if (c->handles_closing) return;
    uint64_t next = c->deadline;
    if (c->write_queued > 0 && c->write_deadline && (!next || c->write_deadline < next)) next = c->write_deadline;
    if (!next) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->srv->loop);
    uv_timer_start(&c->timer, on_timer, next > now ? next - now : 0, 0);
}

static void conn_set_state(conn *c, conn_state s) {
    const cd_http_limits *l = &c->srv->limits;
    uint64_t now = uv_now(c->srv->loop);
    c->state = s;
    switch (s) {
    case CONN_IDLE: c->deadline = now + l->idle_timeout_ms; break;
    case CONN_HEADERS: c->deadline = now + l->header_timeout_ms; break;
    case CONN_BODY: c->deadline = now + l->body_timeout_ms; break;
    default: c->deadline = 0; break;
    }
    conn_arm_timer(c);
}

/* ---- writing ---- */

static void on_write_done(uv_write_t *w, int status) {
    write_req *wr = (write_req *)w;
    conn *c = wr->c;
    c->write_queued -= wr->len;
    free(wr);
    if (!c->handles_closing && !c->detached) {
        if (status < 0) {
            conn_close(c);
        } else {
            c->write_deadline = uv_now(c->srv->loop) + c->srv->limits.write_timeout_ms;
            if (c->write_queued < c->srv->limits.write_high_water) {
                cd_http_req *r = c->req;
                if (r && r->on_drain) {
                    cd_http_req_cb cb = r->on_drain;
                    r->on_drain = NULL;
                    cb(r, r->drain_arg);
                }
            }
            if (!c->handles_closing) {
                if (c->write_queued == 0 && c->close_after && !c->req) conn_linger(c);
                else {
                    conn_feed(c);
                    conn_arm_timer(c);
                }
            }
        }
    }
    conn_unref(c);
}

/* Queues len bytes (copied). */
static void conn_write(conn *c, const void *data, size_t len) {
    if (c->handles_closing || c->detached || len == 0) return;
    if (c->cork) {
        if (cd_buf_append(&c->corked, data, len) < 0) conn_close(c);
        return;
    }
    if (c->write_queued == 0) {
        /* Written at once when the socket takes it: a uv_write that completes still costs an
         * epoll_ctl when libuv stops watching for writability afterwards. */
        uv_buf_t now = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)c->tcp, &now, 1);
        if (n == (int)len) return;
        if (n > 0) {
            data = (const char *)data + n;
            len -= (size_t)n;
        }
        /* An error is left to uv_write to report, in its callback: closing here, inside the
         * caller's write, would free what the caller is still using. */
    }
    write_req *wr = malloc(sizeof *wr + len);
    if (!wr) {
        conn_close(c);
        return;
    }
    memcpy(wr->data, data, len);
    wr->c = c;
    wr->len = len;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    if (c->write_queued == 0) c->write_deadline = uv_now(c->srv->loop) + c->srv->limits.write_timeout_ms;
    if (uv_write(&wr->w, (uv_stream_t *)c->tcp, &b, 1, on_write_done) < 0) {
        free(wr);
        conn_close(c);
        return;
    }
    c->refs++;
    c->write_queued += len;
    conn_arm_timer(c);
}

/* ---- closing ---- */

static void on_shutdown(uv_shutdown_t *sr, int status) {
    conn *c = sr->data;
    if (!c->handles_closing && status < 0) conn_close(c);
    conn_unref(c);
}

/* Ends a connection after its last response: once the writes are out, send FIN, then drop
 * whatever the client still sends for up to two seconds before closing. Closing at once while
 * unread input sits in the kernel would send a reset, and the client could lose the response
 * (a 413 sent while the client is still uploading, say). */
static void conn_linger(conn *c) {
    if (c->handles_closing || c->detached) return;
    c->state = CONN_CLOSING;
    c->deadline = 0;
    if (c->write_queued > 0) {
        if (c->reading) uv_read_stop((uv_stream_t *)c->tcp);
        c->reading = false;
        conn_arm_timer(c);
        return; /* on_write_done calls back here when the queue is empty */
    }
    if (c->lingering) return;
    c->lingering = true;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    c->refs++;
    if (!c->reading) conn_start_reading(c);
    c->deadline = uv_now(c->srv->loop) + 2000;
    conn_arm_timer(c);
}

/* ---- responses ---- */

/* The Date header, formatted once per second. */
static const char *http_date(cd_http_server *srv) {
    time_t now = time(NULL);
    if (now != srv->date_second) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date_text, sizeof srv->date_text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_second = now;
    }
    return srv->date_text;
}

int cd_http_add_header(cd_http_req *r, const char *name, const char *value) {
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) return -1;
    /* appended piece by piece: a proxy adds every header of every answer, printf is slower */
    size_t nl = strlen(name), vl = strlen(value);
    if (cd_buf_reserve(&r->resp_headers, nl + vl + 4) < 0) return -1;
    cd_buf_append(&r->resp_headers, name, nl);
    cd_buf_append(&r->resp_headers, ": ", 2);
    cd_buf_append(&r->resp_headers, value, vl);
    return cd_buf_append(&r->resp_headers, "\r\n", 2);
}

bool cd_http_has_header(const cd_http_req *r, const char *name) {
    if (!r->resp_headers.data) return false;
    size_t n = strlen(name);
    const char *p = r->resp_headers.data;
    while (*p) {
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') return true;
        p = strstr(p, "\r\n");
        if (!p) break;
        p += 2;
    }
    return false;
}

/* length >= 0: Content-Length; -1: chunked; -2: no body framing at all (204, 304). */
static void build_head(cd_http_req *r, int status, const char *content_type, int64_t length, cd_buf *h) {
    conn *c = r->c;
    if (c->srv->hook) c->srv->hook(r, status, c->srv->hook_ctx);
    if (c->srv->stopping) c->close_after = true;
    bool keep = c->keep_alive && !c->close_after;
    cd_buf_printf(h, "HTTP/1.1 %d %s\r\nServer: comfyd\r\nDate: %s\r\n", status, cd_http_status_text(status),
                  http_date(c->srv));
    if (content_type) cd_buf_printf(h, "Content-Type: %s\r\n", content_type);
    if (length >= 0) cd_buf_printf(h, "Content-Length: %lld\r\n", (long long)length);
    else if (length == -1) cd_buf_append_str(h, "Transfer-Encoding: chunked\r\n");
    if (r->resp_headers.len) cd_buf_append(h, r->resp_headers.data, r->resp_headers.len);
    cd_buf_append_str(h, keep ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    if (!keep) c->close_after = true;
}

static void write_head(cd_http_req *r, int status, const char *content_type, int64_t length) {
    cd_buf h = CD_BUF_INIT;
    build_head(r, status, content_type, length, &h);
    conn_write(r->c, h.data, h.len);
    cd_buf_free(&h);
}

void cd_http_cork(cd_http_req *r, bool on) {
    conn *c = r->c;
    if (on) {
        c->cork = true;
        return;
    }
    if (!c->cork) return;
    c->cork = false;
    if (c->corked.len) conn_write(c, c->corked.data, c->corked.len);
    cd_buf_reset(&c->corked);
}

/* The response is complete: free the request and carry on with the connection. */
static void finish_request(cd_http_req *r) {
    conn *c = r->c;
    cd_http_cork(r, false);
    r->ended = true;
    /* Answered before its streamed body was all read: the rest cannot be skipped safely. */
    if (r->streaming && !r->body_complete) c->close_after = true;
    if (c->req == r) c->req = NULL;
    req_free(r);
    if (c->handles_closing) return;
    if (c->close_after) {
        conn_linger(c);
        return;
    }
    http_parser_pause(&c->parser, 0);
    conn_set_state(c, CONN_IDLE);
    if (!c->in_feed) conn_feed(c);
}

static bool body_allowed(const cd_http_req *r, int status) {
    return !r->head_only && status != 204 && status != 304 && !(status >= 100 && status < 200);
}

void cd_http_respond(cd_http_req *r, int status, const char *content_type, const void *body, size_t len) {
    if (r->started) return;
    r->started = true;
    bool with_body = body_allowed(r, status);
    /* Head and body leave in one write: one syscall, one packet for small answers. */
    cd_buf h = CD_BUF_INIT;
    build_head(r, status, content_type, (status == 204 || status == 304) ? -2 : (int64_t)len, &h);
    if (with_body && len) cd_buf_append(&h, body, len);
    conn_write(r->c, h.data, h.len);
    cd_buf_free(&h);
    finish_request(r);
}

void cd_http_respond_text(cd_http_req *r, int status, const char *text) {
    cd_http_respond(r, status, "text/plain; charset=utf-8", text, strlen(text));
}

void cd_http_start(cd_http_req *r, int status, const char *content_type, int64_t length) {
    if (r->started) return;
    r->started = true;
    bool no_body = status == 204 || status == 304;
    r->chunked = length < 0 && !no_body;
    if (!body_allowed(r, status)) r->head_only = true;
    write_head(r, status, content_type, no_body ? -2 : r->chunked ? -1 : length);
}

void cd_http_write(cd_http_req *r, const void *data, size_t len) {
    if (!r->started || r->ended || len == 0 || r->head_only) return;
    if (r->chunked) {
        char size[32];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        conn_write(r->c, size, (size_t)n);
        conn_write(r->c, data, len);
        conn_write(r->c, "\r\n", 2);
    } else {
        conn_write(r->c, data, len);
    }
}

void cd_http_end(cd_http_req *r) {
    if (!r->started || r->ended) return;
    if (r->chunked) conn_write(r->c, "0\r\n\r\n", 5);
    finish_request(r);
}

uv_tcp_t *cd_http_req_detach(cd_http_req *r, cd_buf *leftover) {
    conn *c = r->c;
    if (c->handles_closing || c->detached) return NULL;
    uv_tcp_t *tcp = c->tcp;
    if (c->reading) uv_read_stop((uv_stream_t *)tcp);
    c->reading = false;
    c->detached = true;
    tcp->data = NULL;
    if (leftover && c->pending.len) cd_buf_append(leftover, c->pending.data, c->pending.len);
    r->ended = true;
    /* The handle is no longer ours: close only the timer. Writes still in flight keep a
     * reference to the conn and finish normally. */
    c->refs--; /* the tcp handle's reference */
    conn_close(c);
    return tcp;
}

/* ---- parsing ---- */

static int flush_header(conn *c) {
    cd_http_req *r = c->req;
    if (!c->field.len) return 0;
    if (r->nheaders == r->cap_headers) {
        size_t cap = r->cap_headers ? r->cap_headers * 2 : 16;
        char **n = realloc(r->header_names, cap * sizeof *n);
        if (!n) return -1;
        r->header_names = n;
        char **v = realloc(r->header_values, cap * sizeof *v);
        if (!v) return -1;
        r->header_values = v;
        r->cap_headers = cap;
    }
    r->header_names[r->nheaders] = cd_buf_take(&c->field);
    r->header_values[r->nheaders] = cd_buf_take(&c->value);
    r->nheaders++;
    c->in_value = false;
    return 0;
}

static int on_message_begin(http_parser *p) {
    conn *c = p->data;
    c->between_requests = false;
    c->req = req_new(c);
    if (!c->req) return -1;
    c->header_bytes = 0;
    c->in_value = false;
    cd_buf_reset(&c->field);
    cd_buf_reset(&c->value);
    /* The clock may already run since the request line began arriving. */
    if (c->state != CONN_HEADERS) conn_set_state(c, CONN_HEADERS);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    if (c->req->target.len + len > c->srv->limits.max_url_bytes) {
        c->parse_error = 414;
        return -1;
    }
    return cd_buf_append(&c->req->target, at, len);
}

static int header_budget(conn *c, size_t len, size_t line_len) {
    const cd_http_limits *l = &c->srv->limits;
    c->header_bytes += len;
    if (line_len > l->max_header_line_bytes || c->header_bytes > l->max_header_total_bytes) {
        c->parse_error = 431;
        return -1;
    }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    if (c->in_value && flush_header(c) < 0) return -1;
    if (header_budget(c, len, c->field.len + len) < 0) return -1;
    return cd_buf_append(&c->field, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    c->in_value = true;
    if (header_budget(c, len, c->field.len + c->value.len + len) < 0) return -1;
    return cd_buf_append(&c->value, at, len);
}

static int on_headers_complete(http_parser *p) {
    conn *c = p->data;
    cd_http_req *r = c->req;
    if (c->in_value && flush_header(c) < 0) return -1;
    if (!r->target.data) cd_buf_append(&r->target, "", 0);
    r->method = strdup(http_method_str((enum http_method)p->method));
    const char *q = strchr(r->target.data, '?');
    size_t plen = q ? (size_t)(q - r->target.data) : r->target.len;
    r->path = strndup(r->target.data, plen);
    if (!r->method || !r->path) return -1;
    r->query = q ? q + 1 : "";
    r->head_only = p->method == HTTP_HEAD;
    r->upgrade = p->upgrade;
    c->keep_alive = http_should_keep_alive(p);
    if (!r->upgrade && c->srv->head_hook && c->srv->head_hook(r, c->srv->head_hook_ctx)) {
        /* Streamed: the handler gets the request now and enforces its own body limit. */
        r->streaming = true;
        /* without framing there is no body: answering it then keeps the connection */
        if (!(p->flags & F_CHUNKED) && (!(p->flags & F_CONTENTLENGTH) || p->content_length == 0))
            r->body_complete = true;
        /* 100 Continue only once the handler wants the body (after its access checks) */
        const char *expect = cd_http_req_header(r, "Expect");
        r->expect_continue = expect && strcasecmp(expect, "100-continue") == 0 && !r->body_complete;
        conn_set_state(c, CONN_BODY);
        c->head_dispatch = true;
        http_parser_pause(p, 1);
        return 0;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->limits.max_body_bytes) {
        c->parse_error = 413;
        return -1;
    }
    /* The whole body at once: growing the buffer by doubling copies a large body (a 5,000-node
     * prompt is 305 KB) a dozen times. The length is within the limit, so this is bounded. */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0 &&
        cd_buf_reserve(&r->body, (size_t)p->content_length) < 0)
        return -1;
    const char *expect = cd_http_req_header(r, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0) conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    conn_set_state(c, CONN_BODY);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    conn *c = p->data;
    cd_http_req *r = c->req;
    if (!r) return 0; /* answered and gone: the rest is dropped (the connection closes after) */
    if (r->streaming) {
        c->deadline = uv_now(c->srv->loop) + c->srv->limits.body_timeout_ms;
        if (r->on_body) r->on_body(r, at, len, r->body_arg);
        /* the handler may have paused (or answered): stop after this piece */
        if (c->req != r || r->body_paused) http_parser_pause(p, 1);
        return 0;
    }
    if (c->req->body.len + len > c->srv->limits.max_body_bytes) {
        c->parse_error = 413;
        return -1;
    }
    c->deadline = uv_now(c->srv->loop) + c->srv->limits.body_timeout_ms;
    return cd_buf_append(&c->req->body, at, len);
}

static int on_message_complete(http_parser *p) {
    conn *c = p->data;
    c->between_requests = true;
    if (!c->req) return 0; /* a streamed request without a body, answered at its head: done */
    if (c->req->streaming) {
        c->req->body_complete = true;
        c->body_end_pending = true;
    }
    if (!c->req->body.data) cd_buf_append(&c->req->body, "", 0);
    c->state = CONN_HANDLING;
    c->deadline = 0;
    conn_arm_timer(c);
    http_parser_pause(p, 1);
    return 0;
}

static void respond_parse_error(conn *c, int status) {
    cd_http_req *r = c->req;
    if (!r) {
        r = c->req = req_new(c);
        if (!r) {
            conn_close(c);
            return;
        }
    }
    c->close_after = true;
    c->state = CONN_HANDLING;
    r->head_only = false;
    char body[128];
    int n = snprintf(body, sizeof body, "%d: %s", status, cd_http_status_text(status));
    cd_http_respond(r, status, "text/plain; charset=utf-8", body, (size_t)n);
}

static void dispatch(conn *c) {
    cd_http_req *r = c->req;
    /* After an upgrade request the stream is no longer HTTP; if the handler answers it as plain
     * HTTP (404, 400) the connection ends there. */
    if (r->upgrade) c->close_after = true;
    c->srv->handler(r, c->srv->ctx);
}

/* The parser stopped inside a streamed request: its head is complete (call the handler), its
 * body is complete (tell the handler), or the handler paused the body (resume parsing later). */
static void feed_streamed(conn *c) {
    cd_http_req *r = c->req;
    if (c->head_dispatch) {
        c->head_dispatch = false;
        http_parser_pause(&c->parser, 0);
        dispatch(c);
    } else if (c->body_end_pending) {
        c->body_end_pending = false;
        if (r->on_body) r->on_body(r, NULL, 0, r->body_arg);
    } else if (!(c->state == CONN_HANDLING)) {
        http_parser_pause(&c->parser, 0);
    }
}

/* http_parser, as Debian builds it, is lenient about the request line: it takes
 * "GET /x" (HTTP/0.9) and "GET /x HTTX/1.1". Before a new request is parsed, its line must read
 * "METHOD SP TARGET SP HTTP/1.0|1.1". Returns 1 when it does, 0 when more bytes are needed, and
 * -1 when it is malformed. */
static int check_request_line(conn *c) {
    const char *data = c->pending.data;
    size_t len = c->pending.len, start = 0;
    while (start < len && (data[start] == '\r' || data[start] == '\n')) start++; /* tolerated between requests */
    const char *nl = memchr(data + start, '\n', len - start);
    if (!nl) {
        /* Not complete yet: wait, unless it is already too long to be valid (the parser then
         * answers 414 for the URL). */
        return len - start > c->srv->limits.max_url_bytes + 32 ? 1 : 0;
    }
    const char *line = data + start, *end = nl;
    if (end > line && end[-1] == '\r') end--;
    const char *sp1 = memchr(line, ' ', (size_t)(end - line));
    if (!sp1 || sp1 == line) return -1;
    const char *sp2 = NULL;
    for (const char *q = end; q > sp1 + 1; q--)
        if (q[-1] == ' ') {
            sp2 = q - 1;
            break;
        }
    if (!sp2 || sp2 == sp1 + 1) return -1; /* no version, or an empty target */
    size_t vlen = (size_t)(end - sp2 - 1);
    if (vlen != 8 || (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0)) return -1;
    return 1;
}

#define READ_AHEAD (64u * 1024)

static bool body_paused(const conn *c) { return c->req && c->req->streaming && c->req->body_paused; }

/* Parses as much of c->pending as the connection's state allows, dispatching each complete
 * request, and decides whether to keep reading from the socket. */
static void conn_feed(conn *c) {
    if (c->in_feed || c->handles_closing || c->detached || c->lingering) return;
    c->in_feed = true;
    const cd_http_limits *l = &c->srv->limits;
    while (!c->handles_closing && !c->detached && c->state != CONN_HANDLING && c->state != CONN_CLOSING &&
           (c->pending.len > 0 || c->head_dispatch || c->body_end_pending) && !body_paused(c) &&
           (c->write_queued <= l->write_high_water || (c->req && c->req->streaming))) {
        if (c->between_requests) {
            int line = check_request_line(c);
            if (line == 0) {
                /* Wait for the rest of the line, on the header clock (slow-loris). */
                if (c->state == CONN_IDLE) conn_set_state(c, CONN_HEADERS);
                break;
            }
            if (line < 0) {
                cd_debug("http: %s: malformed request line, answering 400", c->peer);
                cd_buf_reset(&c->pending);
                respond_parse_error(c, 400);
                break;
            }
        }
        size_t n = http_parser_execute(&c->parser, &c->srv->settings, c->pending.data, c->pending.len);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (err == HPE_PAUSED) {
            cd_buf_consume(&c->pending, n);
            if (!c->req) continue; /* a streamed request was answered while its body arrived */
            if (c->req->streaming) {
                feed_streamed(c);
                continue;
            }
            dispatch(c);
            continue;
        }
        if (err != HPE_OK && c->req && c->req->streaming && !c->head_dispatch) {
            /* a broken body of a request its handler already has: the handler hears of it through
             * its abort callback (an answer from here would free the request under it) */
            cd_debug("http: %s: malformed streamed body (%s), closing", c->peer, http_errno_name(err));
            conn_close(c);
            break;
        }
        if (err != HPE_OK || (c->parser.upgrade && c->state != CONN_HANDLING)) {
            int status = c->parse_error ? c->parse_error : err == HPE_HEADER_OVERFLOW ? 431 : 400;
            cd_debug("http: %s: bad request (%s), answering %d", c->peer, http_errno_name(err), status);
            cd_buf_reset(&c->pending);
            respond_parse_error(c, status);
            break;
        }
        cd_buf_consume(&c->pending, n);
    }
    c->in_feed = false;
    if (c->handles_closing || c->detached || c->lingering) return;
    if (c->peer_eof && c->state != CONN_HANDLING) {
        /* Nothing more will come: every complete request is answered; what is left is an
         * incomplete one, if anything. The answers already written leave, then the end. */
        c->close_after = true;
        conn_linger(c);
        return;
    }
    /* Reading goes on while a request is handled (a stop and a start cost two epoll_ctl calls per
     * request), but only a little ahead: pipelined requests wait in `pending`, bounded. */
    bool want_read = c->state != CONN_CLOSING && !c->close_after && !c->peer_eof && !body_paused(c) &&
                     (c->write_queued <= l->write_high_water || (c->req && c->req->streaming)) &&
                     (c->state != CONN_HANDLING || c->pending.len < READ_AHEAD);
    if (want_read && !c->reading) {
        conn_start_reading(c);
    } else if (!want_read && c->reading) {
        uv_read_stop((uv_stream_t *)c->tcp);
        c->reading = false;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    conn *c = h->data;
    /* One slab per server: the loop thread reads one socket at a time and on_read copies out. */
    *buf = uv_buf_init(c->srv->read_slab, sizeof c->srv->read_slab);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *c = s->data;
    if (!c) return;
    if (nread == UV_EOF && c->state == CONN_HANDLING && !c->lingering) {
        /* a half-close after a request: it still gets its answer (and those before it) */
        c->peer_eof = true;
        uv_read_stop(s);
        c->reading = false;
        return;
    }
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0) return;
    if (cd_buf_append(&c->pending, buf->base, (size_t)nread) < 0) {
        conn_close(c);
        return;
    }
    if (c->lingering) return; /* closing: what the client still sends is dropped */
    conn_feed(c);
}

static void conn_start_reading(conn *c) {
    if (uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read) == 0) c->reading = true;
}

/* ---- accepting ---- */

static void on_connection(uv_stream_t *listener, int status) {
    cd_http_server *srv = listener->data;
    if (status < 0) return;
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp) return;
    uv_tcp_init(srv->loop, tcp);
    if (uv_accept(listener, (uv_stream_t *)tcp) < 0) {
        tcp->data = NULL;
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    if (srv->stopping || srv->nconns >= srv->limits.max_connections) {
        if (!srv->stopping) cd_warn("http: connection limit (%u) reached, refusing one", srv->limits.max_connections);
        tcp->data = NULL;
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    c->srv = srv;
    c->tcp = tcp;
    tcp->data = c;
    c->refs = 3; /* itself, tcp, timer */
    c->between_requests = true;
    uv_tcp_nodelay(tcp, 1);
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    /* A fresh connection gets the header deadline: one that never sends a request is not kept. */
    c->state = CONN_IDLE;
    c->deadline = uv_now(srv->loop) + srv->limits.header_timeout_ms;
    conn_arm_timer(c);
    conn_start_reading(c);
}

int cd_http_server_new(uv_loop_t *loop, const cd_http_limits *limits, cd_http_handler_fn handler, void *ctx,
                       cd_http_server **out, char *err, size_t errlen) {
    cd_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->loop = loop;
    if (limits) srv->limits = *limits;
    else cd_http_limits_default(&srv->limits);
    srv->handler = handler;
    srv->ctx = ctx;
    srv->port = -1;
    http_parser_settings_init(&srv->settings);
    srv->settings.on_message_begin = on_message_begin;
    srv->settings.on_url = on_url;
    srv->settings.on_header_field = on_header_field;
    srv->settings.on_header_value = on_header_value;
    srv->settings.on_headers_complete = on_headers_complete;
    srv->settings.on_body = on_body;
    srv->settings.on_message_complete = on_message_complete;
    *out = srv;
    return 0;
}

void cd_http_server_set_response_hook(cd_http_server *srv, cd_http_response_hook_fn hook, void *ctx) {
    srv->hook = hook;
    srv->hook_ctx = ctx;
}

void cd_http_server_set_head_hook(cd_http_server *srv, cd_http_head_hook_fn hook, void *ctx) {
    srv->head_hook = hook;
    srv->head_hook_ctx = ctx;
}

int cd_http_server_listen(cd_http_server *srv, const char *host, int port, char *err, size_t errlen) {
    if (srv->nlisteners == sizeof srv->listeners / sizeof srv->listeners[0]) {
        snprintf(err, errlen, "too many listen addresses");
        return -1;
    }
    struct sockaddr_storage addr;
    unsigned flags = 0;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0) {
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
            snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address", host);
            return -1;
        }
        flags = UV_TCP_IPV6ONLY;
    }
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uv_tcp_init(srv->loop, tcp);
    tcp->data = srv;
    /* libuv sets SO_REUSEADDR on bind, so a restart right after a SIGKILL can take the port. */
    int rc = uv_tcp_bind(tcp, (struct sockaddr *)&addr, flags);
    if (rc == 0) rc = uv_listen((uv_stream_t *)tcp, 1024, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s port %d: %s", host, port, uv_strerror(rc));
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return -1;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    if (uv_tcp_getsockname(tcp, (struct sockaddr *)&bound, &len) == 0)
        srv->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                     : ((struct sockaddr_in6 *)&bound)->sin6_port);
    srv->listeners[srv->nlisteners++] = tcp;
    srv->listeners_open++;
    return 0;
}

int cd_http_server_port(const cd_http_server *srv) { return srv->port; }
size_t cd_http_server_connection_count(const cd_http_server *srv) { return srv->nconns; }
uv_loop_t *cd_http_server_loop(const cd_http_server *srv) { return srv->loop; }

void cd_http_abort(cd_http_req *r) {
    r->ended = true; /* no abort callback: the caller knows */
    conn_close(r->c);
}

static void on_listener_closed(uv_handle_t *h) {
    cd_http_server *srv = h->data;
    free(h);
    srv->listeners_open--;
    server_maybe_stopped(srv);
}

static void on_stop_timer_closed(uv_handle_t *h) {
    cd_http_server *srv = h->data;
    srv->stop_timer_open = false;
    server_maybe_stopped(srv);
}

static void server_maybe_stopped(cd_http_server *srv) {
    if (!srv->stopping || srv->nconns > 0 || srv->listeners_open > 0) return;
    if (srv->stop_timer_open) {
        if (!uv_is_closing((uv_handle_t *)&srv->stop_timer)) uv_close((uv_handle_t *)&srv->stop_timer, on_stop_timer_closed);
        return;
    }
    cd_http_stopped_fn cb = srv->stopped_cb;
    srv->stopped_cb = NULL;
    if (cb) cb(srv->stopped_arg);
}

static void on_stop_deadline(uv_timer_t *t) {
    cd_http_server *srv = t->data;
    if (srv->nconns) cd_warn("http: shutdown timeout, closing %zu connection(s)", srv->nconns);
    while (srv->conns) conn_close(srv->conns);
}

void cd_http_server_stop(cd_http_server *srv, cd_http_stopped_fn done, void *arg) {
    if (srv->stopping) return;
    srv->stopping = true;
    srv->stopped_cb = done;
    srv->stopped_arg = arg;
    for (size_t i = 0; i < srv->nlisteners; i++) uv_close((uv_handle_t *)srv->listeners[i], on_listener_closed);
    srv->nlisteners = 0;
    conn *c = srv->conns;
    while (c) {
        conn *next = c->next;
        if (c->state == CONN_HANDLING || c->write_queued > 0) {
            c->close_after = true;
        } else {
            conn_close(c);
        }
        c = next;
    }
    uv_timer_init(srv->loop, &srv->stop_timer);
    srv->stop_timer.data = srv;
    srv->stop_timer_open = true;
    uv_timer_start(&srv->stop_timer, on_stop_deadline, srv->limits.shutdown_timeout_ms, 0);
    server_maybe_stopped(srv);
}

void cd_http_server_free(cd_http_server *srv) { free(srv); }
