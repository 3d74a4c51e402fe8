#include "net/upstream.h"

#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "net/tcp_connect.h"

#define LOW_WATER (256u * 1024)
#define HIGH_WATER (1024u * 1024)
#define IDLE_KEEP_MS 30000 /* below the 75 s keep-alive of aiohttp and comfyd serve */

typedef struct idle_group idle_group;

typedef struct uconn {
    cd_upstream_pool *pool;
    uv_tcp_t *tcp;
    char host[256];
    int port;
    cd_upstream_req *req; /* NULL while idle */
    uint64_t idle_since;
    size_t writes_pending;
    bool closing, reading;
    struct uconn *prev, *next;   /* all idle connections (pruning, a stop) */
    idle_group *group;           /* while idle: its upstream's */
    struct uconn *gprev, *gnext; /* that upstream's idle connections, newest first */
} uconn;

/* The idle connections to one upstream: a request takes one of its own upstream's without
 * looking at the others', and each upstream keeps up to max_idle (a pool-wide cap let a hub
 * with 100 instances, each with a request in flight, keep only 32: two in three validations
 * paid a new connection). */
struct idle_group {
    char host[256];
    int port;
    uconn *newest;
    size_t n;
    idle_group *chain;
};

#define IDLE_BUCKETS 256

struct cd_upstream_pool {
    uv_loop_t *loop;
    size_t max_idle; /* per upstream */
    /* stopping: a connection closes when its request ends (one kept would hold the loop, and
     * the process, as long as its upstream lives: an instance left running for another hub) */
    bool shut;
    uconn *idle;
    size_t nidle;
    idle_group *groups[IDLE_BUCKETS];
    uv_timer_t prune;
    size_t live; /* requests and connections not yet freed */
    bool freeing;
    char slab[65536]; /* one read at a time on the loop: every read lands here */
};

struct cd_upstream_req {
    cd_upstream_pool *pool;
    cd_upstream_callbacks cbs;
    void *user;
    uconn *conn;
    char *head;
    size_t head_len;
    char host[256];
    int port;
    unsigned connect_timeout_ms, idle_timeout_ms;
    bool head_request, has_body, body_ended, reused, any_response, head_seen, done, in_parser, paused;
    bool connecting;      /* cd_tcp_connect cannot be cancelled: u lives until its callback */
    char fail_message[200]; /* a failure found inside the caller's own call, reported on the next turn */
    cd_buf early; /* body written before the connection was ready */
    size_t queued;
    bool above_high;
    http_parser parser;
    cd_buf field, value;
    bool in_value;
    char **names, **values;
    size_t nh, caph;
    uv_timer_t timer;
};

typedef struct {
    uv_write_t w;
    uconn *c;
    size_t len;
    char data[];
} uwrite;

static void conn_close(uconn *c);
static void req_fail(cd_upstream_req *u, int status, const char *message);
static void pool_maybe_free(cd_upstream_pool *p);
static void retry(cd_upstream_req *u);

/* The connection broke. A bodiless request on a reused connection that got no answer yet is
 * sent again on a new connection: the instance had closed the idle one just as we took it. */
static void conn_broken(cd_upstream_req *u, const char *message) {
    if (u->reused && !u->any_response && !u->has_body) retry(u);
    else req_fail(u, 502, message);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h) {
    uconn *c = h->data;
    cd_upstream_pool *p = c->pool;
    free(c->tcp);
    free(c);
    p->live--;
    pool_maybe_free(p);
}

static idle_group **group_slot(cd_upstream_pool *p, const char *host, int port) {
    uint32_t h = 2166136261u ^ (uint32_t)port;
    for (const char *c = host; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
    idle_group **g = &p->groups[h % IDLE_BUCKETS];
    while (*g && ((*g)->port != port || strcmp((*g)->host, host))) g = &(*g)->chain;
    return g;
}

static void idle_unlink(uconn *c) {
    cd_upstream_pool *p = c->pool;
    if (c->prev) c->prev->next = c->next;
    else p->idle = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    p->nidle--;
    idle_group *g = c->group;
    if (c->gprev) c->gprev->gnext = c->gnext;
    else g->newest = c->gnext;
    if (c->gnext) c->gnext->gprev = c->gprev;
    c->gprev = c->gnext = NULL;
    c->group = NULL;
    if (--g->n == 0) { /* an upstream with nothing idle takes no room */
        idle_group **slot = group_slot(p, g->host, g->port);
        *slot = g->chain;
        free(g);
    }
}

static void conn_close(uconn *c) {
    if (c->closing) return;
    c->closing = true;
    if (c->group) idle_unlink(c);
    c->req = NULL;
    uv_close((uv_handle_t *)c->tcp, on_conn_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    uconn *c = h->data;
    *buf = uv_buf_init(c->pool->slab, sizeof c->pool->slab);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* A connection keeps reading while it lives, idle or not: stopping and starting for every
 * exchange would cost two epoll_ctl calls each. An idle one that says anything (EOF, an error,
 * stray bytes) is closed. */
static void conn_read(uconn *c, bool on) {
    if (c->closing || c->reading == on) return;
    if (on) c->reading = uv_read_start((uv_stream_t *)c->tcp, alloc_cb, on_read) == 0;
    else {
        uv_read_stop((uv_stream_t *)c->tcp);
        c->reading = false;
    }
}

static void conn_to_pool(uconn *c) {
    cd_upstream_pool *p = c->pool;
    c->req = NULL;
    idle_group **slot = p->freeing || p->shut || !p->max_idle ? NULL : group_slot(p, c->host, c->port);
    idle_group *g = slot ? *slot : NULL;
    if (slot && !g && (g = calloc(1, sizeof *g))) {
        snprintf(g->host, sizeof g->host, "%s", c->host);
        g->port = c->port;
        *slot = g;
    }
    if (!g || g->n >= p->max_idle) {
        conn_close(c);
        return;
    }
    c->idle_since = uv_now(p->loop);
    c->next = p->idle;
    if (p->idle) p->idle->prev = c;
    p->idle = c;
    p->nidle++;
    c->group = g;
    c->gnext = g->newest;
    if (g->newest) g->newest->gprev = c;
    g->newest = c;
    g->n++;
    conn_read(c, true);
}

static uconn *pool_take(cd_upstream_pool *p, const char *host, int port) {
    idle_group *g = *group_slot(p, host, port);
    if (!g) return NULL;
    uconn *c = g->newest;
    idle_unlink(c);
    return c;
}

static void on_prune(uv_timer_t *t) {
    cd_upstream_pool *p = t->data;
    uint64_t now = uv_now(p->loop);
    for (uconn *c = p->idle, *next; c; c = next) {
        next = c->next;
        if (now - c->idle_since >= IDLE_KEEP_MS) conn_close(c);
    }
}

/* ---- writing ---- */

static void arm_idle(cd_upstream_req *u);

static void on_write(uv_write_t *w, int status) {
    uwrite *wr = (uwrite *)w;
    uconn *c = wr->c;
    c->writes_pending--;
    cd_upstream_req *u = c->req;
    if (u) {
        u->queued -= wr->len;
        if (status == 0) arm_idle(u); /* sending the body is progress: not a silent instance */
        if (status < 0 && !u->done) conn_broken(u, "the connection to the instance broke while sending");
        else if (u->above_high && u->queued < LOW_WATER) {
            u->above_high = false;
            if (u->cbs.on_writable) u->cbs.on_writable(u, u->user);
        }
    }
    free(wr);
}

static void on_fail_timer(uv_timer_t *t) {
    cd_upstream_req *u = t->data;
    req_fail(u, 502, u->fail_message);
}

/* A failure inside the caller's own call (a write): reported on the next turn, so that the
 * caller never finds its state freed under it. */
static void fail_later(cd_upstream_req *u, const char *message) {
    if (u->done || u->fail_message[0]) return;
    snprintf(u->fail_message, sizeof u->fail_message, "%s", message);
    uv_timer_start(&u->timer, on_fail_timer, 0, 0);
}

/* Sends the pieces in order, in one system call when the socket takes them: a request's head
 * and the body it already has leave together, so the instance reads the whole request at one
 * wake-up (sent apart, with TCP_NODELAY, they were two segments and often two reads). */
static void conn_sendv(uconn *c, cd_upstream_req *u, uv_buf_t *bufs, size_t n) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += bufs[i].len;
    if (!len || c->closing) return;
    size_t sent = 0;
    if (c->writes_pending == 0) {
        /* at once when the socket takes it (see conn_write in http_server.c for why) */
        int w = uv_try_write((uv_stream_t *)c->tcp, bufs, (unsigned)n);
        if (w > 0) {
            arm_idle(u);
            sent = (size_t)w;
        }
        if (sent == len) return;
        /* an error is reported by uv_write's callback, not from within the caller's write */
    }
    len -= sent;
    uwrite *wr = malloc(sizeof *wr + len);
    if (!wr) {
        fail_later(u, "out of memory");
        return;
    }
    size_t at = 0, skip = sent;
    for (size_t i = 0; i < n; i++) {
        size_t from = skip < bufs[i].len ? skip : bufs[i].len;
        skip -= from;
        memcpy(wr->data + at, bufs[i].base + from, bufs[i].len - from);
        at += bufs[i].len - from;
    }
    wr->c = c;
    wr->len = len;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    if (uv_write(&wr->w, (uv_stream_t *)c->tcp, &b, 1, on_write) < 0) {
        free(wr);
        fail_later(u, "cannot write to the instance");
        return;
    }
    c->writes_pending++;
    u->queued += len;
    if (u->queued > HIGH_WATER) u->above_high = true;
}

static void conn_send(uconn *c, cd_upstream_req *u, const void *data, size_t len) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    conn_sendv(c, u, &b, 1);
}

/* ---- the request's end ---- */

static void on_req_timer_closed(uv_handle_t *h) {
    cd_upstream_req *u = h->data;
    cd_upstream_pool *p = u->pool;
    for (size_t i = 0; i < u->nh; i++) {
        free(u->names[i]);
        free(u->values[i]);
    }
    free(u->names);
    free(u->values);
    cd_buf_free(&u->field);
    cd_buf_free(&u->value);
    cd_buf_free(&u->early);
    free(u->head);
    free(u);
    p->live--;
    pool_maybe_free(p);
}

/* Detaches the connection (pooled when reusable, else closed) and frees u later. */
static void req_release(cd_upstream_req *u, bool reusable) {
    u->done = true;
    uconn *c = u->conn;
    u->conn = NULL;
    if (c) {
        if (reusable && c->writes_pending == 0) conn_to_pool(c);
        else conn_close(c);
    }
    uv_timer_stop(&u->timer);
    if (!u->connecting) uv_close((uv_handle_t *)&u->timer, on_req_timer_closed);
}

static void req_fail(cd_upstream_req *u, int status, const char *message) {
    if (u->done) return;
    req_release(u, false);
    if (u->cbs.on_error) u->cbs.on_error(u, status, message, u->head_seen, u->user);
}

static void req_complete(cd_upstream_req *u) {
    bool keep = http_should_keep_alive(&u->parser) && (!u->has_body || u->body_ended);
    req_release(u, keep);
    u->cbs.on_end(u, u->user);
}

/* ---- the response ---- */

static void arm_idle(cd_upstream_req *u) {
    if (!u->done) uv_timer_again(&u->timer);
}

static int flush_header(cd_upstream_req *u) {
    if (!u->field.len) return 0;
    if (u->nh == u->caph) {
        size_t cap = u->caph ? u->caph * 2 : 16;
        char **n = realloc(u->names, cap * sizeof *n);
        if (!n) return -1;
        u->names = n;
        char **v = realloc(u->values, cap * sizeof *v);
        if (!v) return -1;
        u->values = v;
        u->caph = cap;
    }
    u->names[u->nh] = cd_buf_take(&u->field);
    u->values[u->nh] = u->value.data ? cd_buf_take(&u->value) : strdup("");
    u->nh++;
    u->in_value = false;
    return 0;
}

static int p_header_field(http_parser *p, const char *at, size_t len) {
    cd_upstream_req *u = p->data;
    if (u->in_value && flush_header(u) < 0) return -1;
    if (u->field.len + len > 65536) return -1;
    return cd_buf_append(&u->field, at, len);
}

static int p_header_value(http_parser *p, const char *at, size_t len) {
    cd_upstream_req *u = p->data;
    u->in_value = true;
    if (u->value.len + len > 65536) return -1;
    return cd_buf_append(&u->value, at, len);
}

static int p_headers_complete(http_parser *p) {
    cd_upstream_req *u = p->data;
    if (u->in_value && flush_header(u) < 0) return -1;
    if (p->status_code >= 100 && p->status_code < 200) {
        /* an interim answer (100 Continue): forget it and wait for the real one */
        for (size_t i = 0; i < u->nh; i++) {
            free(u->names[i]);
            free(u->values[i]);
        }
        u->nh = 0;
        return 0;
    }
    u->head_seen = true;
    u->cbs.on_head(u, p->status_code, u->nh, u->names, u->values, u->user);
    if (u->done) return -1;
    /* HEAD and 204/304 answers have no body, whatever their Content-Length says */
    return u->head_request || p->status_code == 204 || p->status_code == 304 ? 1 : 0;
}

static int p_body(http_parser *p, const char *at, size_t len) {
    cd_upstream_req *u = p->data;
    u->cbs.on_body(u, at, len, u->user);
    return u->done ? -1 : 0;
}

static int p_message_complete(http_parser *p) {
    cd_upstream_req *u = p->data;
    if (!u->head_seen) { /* the end of an interim answer */
        http_parser_init(p, HTTP_RESPONSE);
        p->data = u;
        return 0;
    }
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_header_field = p_header_field,
    .on_header_value = p_header_value,
    .on_headers_complete = p_headers_complete,
    .on_body = p_body,
    .on_message_complete = p_message_complete,
};

static void feed(cd_upstream_req *u, const char *data, size_t len) {
    u->in_parser = true;
    size_t n = http_parser_execute(&u->parser, &parser_settings, data, len);
    u->in_parser = false;
    if (u->done) return; /* cancelled or failed from a callback */
    enum http_errno err = HTTP_PARSER_ERRNO(&u->parser);
    if (err == HPE_PAUSED) {
        if (n < len) {
            /* bytes after the answer would be a second answer nobody asked for: not reusable */
            req_release(u, false);
            u->cbs.on_end(u, u->user);
            return;
        }
        req_complete(u);
    } else if (err != HPE_OK) {
        req_fail(u, 502, u->head_seen ? "the instance's answer broke off" : "the instance sent a malformed answer");
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    uconn *c = s->data;
    cd_upstream_req *u = c->req;
    if (!u || u->done) {
        if (n != 0 && !u) conn_close(c); /* idle: see conn_read */
        return;
    }
    if (n > 0) {
        u->any_response = true;
        arm_idle(u);
        feed(u, buf->base, (size_t)n);
    } else if (n < 0) {
        if (u->reused && !u->any_response && !u->has_body) {
            retry(u);
            return;
        }
        if (n == UV_EOF && u->head_seen) {
            feed(u, NULL, 0); /* a body that ends with the connection */
            if (!u->done) req_fail(u, 502, "the instance closed the connection in the middle of its answer");
        } else {
            req_fail(u, 502, u->head_seen ? "the instance closed the connection in the middle of its answer"
                                          : "the instance closed the connection without answering");
        }
    }
}

static void start_reading(cd_upstream_req *u) {
    if (u->conn && !u->paused) conn_read(u->conn, true);
}

/* ---- starting ---- */

static void on_timeout(uv_timer_t *t) {
    cd_upstream_req *u = t->data;
    char msg[128];
    snprintf(msg, sizeof msg, "the instance did not answer within %u s", u->idle_timeout_ms / 1000);
    req_fail(u, 504, msg);
}

static void begin_exchange(cd_upstream_req *u, uconn *c) {
    u->conn = c;
    c->req = u;
    http_parser_init(&u->parser, HTTP_RESPONSE);
    u->parser.data = u;
    uv_buf_t pieces[2] = {uv_buf_init(u->head, (unsigned)u->head_len),
                          uv_buf_init(u->early.data, (unsigned)u->early.len)};
    u->queued -= u->early.len; /* counted when it was buffered; conn_sendv counts what waits */
    conn_sendv(c, u, pieces, u->early.len ? 2 : 1);
    cd_buf_reset(&u->early);
    if (u->done || u->fail_message[0]) return;
    uv_timer_start(&u->timer, on_timeout, u->idle_timeout_ms, u->idle_timeout_ms);
    start_reading(u);
    if (u->above_high && u->queued < LOW_WATER) {
        /* the early bytes left at once: no write callback will say so */
        u->above_high = false;
        if (u->cbs.on_writable) u->cbs.on_writable(u, u->user);
    }
}

static void on_connected(uv_tcp_t *tcp, int status, const char *error, void *user) {
    cd_upstream_req *u = user;
    u->connecting = false;
    if (u->done) { /* cancelled or failed while connecting: only now may u go */
        if (tcp) uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        uv_close((uv_handle_t *)&u->timer, on_req_timer_closed);
        return;
    }
    if (!tcp) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot connect to the instance: %s", error ? error : uv_strerror(status));
        u->conn = NULL;
        req_fail(u, 502, msg);
        /* done: the timer closes; the pool reference was the request's */
        return;
    }
    uconn *c = calloc(1, sizeof *c);
    if (!c) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        req_fail(u, 502, "out of memory");
        return;
    }
    c->pool = u->pool;
    c->tcp = tcp;
    tcp->data = c;
    snprintf(c->host, sizeof c->host, "%s", u->host);
    c->port = u->port;
    u->pool->live++;
    uv_tcp_nodelay(tcp, 1);
    begin_exchange(u, c);
}

static void connect_new(cd_upstream_req *u) {
    u->reused = false;
    u->connecting = true;
    int rc = cd_tcp_connect(u->pool->loop, u->host, u->port, u->connect_timeout_ms, on_connected, u);
    if (rc < 0) {
        u->connecting = false;
        char msg[200];
        snprintf(msg, sizeof msg, "cannot connect to the instance: %s", uv_strerror(rc));
        req_fail(u, 502, msg);
    }
}

static void retry(cd_upstream_req *u) {
    uconn *c = u->conn;
    u->conn = NULL;
    if (c) conn_close(c);
    u->any_response = false;
    u->queued = 0;
    connect_new(u);
}

static void on_start(uv_timer_t *t) {
    cd_upstream_req *u = t->data;
    uconn *c = pool_take(u->pool, u->host, u->port);
    if (c) {
        u->reused = true;
        begin_exchange(u, c);
    } else {
        connect_new(u);
    }
}

cd_upstream_req *cd_upstream_start(cd_upstream_pool *pool, const cd_upstream_request *r,
                                   const cd_upstream_callbacks *cbs, void *user) {
    cd_upstream_req *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->head = malloc(r->head_len);
    if (!u->head) {
        free(u);
        return NULL;
    }
    memcpy(u->head, r->head, r->head_len);
    u->head_len = r->head_len;
    u->pool = pool;
    u->cbs = *cbs;
    u->user = user;
    snprintf(u->host, sizeof u->host, "%s", r->host);
    u->port = r->port;
    u->head_request = r->head_request;
    u->has_body = r->has_body;
    u->connect_timeout_ms = r->connect_timeout_ms ? r->connect_timeout_ms : 5000;
    u->idle_timeout_ms = r->idle_timeout_ms ? r->idle_timeout_ms : 300000;
    uv_timer_init(pool->loop, &u->timer);
    u->timer.data = u;
    pool->live++;
    /* on the next turn, so that no callback runs before the caller holds u */
    uv_timer_start(&u->timer, on_start, 0, 0);
    return u;
}

void cd_upstream_write(cd_upstream_req *u, const void *data, size_t len) {
    if (u->done || !len) return;
    if (!u->conn) {
        if (cd_buf_append(&u->early, data, len) < 0) {
            req_fail(u, 502, "out of memory");
            return;
        }
        u->queued += len;
        if (u->queued > HIGH_WATER) u->above_high = true;
        return;
    }
    conn_send(u->conn, u, data, len);
}

void cd_upstream_end_body(cd_upstream_req *u) { u->body_ended = true; }

size_t cd_upstream_queued(const cd_upstream_req *u) { return u->queued; }

void cd_upstream_pause(cd_upstream_req *u, bool pause) {
    if (u->done || u->paused == pause) return;
    u->paused = pause;
    if (!u->conn) return;
    if (pause) {
        conn_read(u->conn, false);
        uv_timer_stop(&u->timer); /* our client's slowness is not the instance's */
    } else {
        start_reading(u);
        uv_timer_start(&u->timer, on_timeout, u->idle_timeout_ms, u->idle_timeout_ms);
    }
}

void cd_upstream_cancel(cd_upstream_req *u) {
    if (!u || u->done) return;
    req_release(u, false);
}

/* ---- the pool ---- */

cd_upstream_pool *cd_upstream_pool_new(uv_loop_t *loop, size_t max_idle) {
    cd_upstream_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->loop = loop;
    p->max_idle = max_idle;
    uv_timer_init(loop, &p->prune);
    p->prune.data = p;
    uv_timer_start(&p->prune, on_prune, 5000, 5000);
    uv_unref((uv_handle_t *)&p->prune);
    p->live = 1; /* the prune timer */
    return p;
}

size_t cd_upstream_pool_idle_count(const cd_upstream_pool *p) { return p->nidle; }

void cd_upstream_pool_shut(cd_upstream_pool *p) {
    p->shut = true;
    while (p->idle) conn_close(p->idle);
}

static void on_prune_closed(uv_handle_t *h) {
    cd_upstream_pool *p = h->data;
    p->live--;
    pool_maybe_free(p);
}

static void pool_maybe_free(cd_upstream_pool *p) {
    if (p->freeing && p->live == 0) free(p);
}

void cd_upstream_pool_free(cd_upstream_pool *p) {
    if (!p) return;
    p->freeing = true;
    cd_upstream_pool_shut(p);
    uv_close((uv_handle_t *)&p->prune, on_prune_closed);
}
