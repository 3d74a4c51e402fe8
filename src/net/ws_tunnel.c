#include "net/ws_tunnel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "net/tcp_connect.h"

#define HIGH_WATER (1024u * 1024)
#define MAX_HEAD 16384
#define HANDSHAKE_MS 10000

typedef enum { T_CONNECTING, T_HANDSHAKE, T_OPEN, T_CLOSING } tunnel_state;

typedef struct {
    cd_ws_tunnel *t;
    uv_tcp_t *tcp; /* NULL when none (yet, or any more) */
    size_t queued;
    bool reading;
    uv_shutdown_t shutdown;
} side;

struct cd_ws_tunnel {
    uv_loop_t *loop;
    cd_http_req *req; /* until it is answered or detached */
    side client, up;
    tunnel_state state;
    cd_buf head_in;
    uv_timer_t timer;
    /* following the upstream's frames */
    uint8_t fh[14];
    size_t fh_len;
    uint64_t payload_left;
    bool saw_close, collecting;
    cd_buf frame; /* a text frame held for the filter */
    char *(*filter)(void *user, const char *text, size_t len, size_t *out_len);
    cd_buf inject; /* our frames for the client, waiting for a boundary */
    bool close_after_inject;
    unsigned ping_ms;
    char gone_reason[120];
    cd_ws_tunnel_closed_cb closed;
    void (*opened)(cd_ws_tunnel *t, void *user);
    void *user;
    int handles;
    char why[160];
    size_t out_head_len;
    char *head_copy;
};

typedef struct {
    uv_write_t w;
    side *s;
    size_t len;
    char data[];
} twrite;

static void tunnel_end(cd_ws_tunnel *t, const char *why);
static void start_read(side *s);

/* ---- handles ---- */

static void maybe_free(cd_ws_tunnel *t) {
    if (t->handles > 0) return;
    cd_ws_tunnel_closed_cb cb = t->closed;
    t->closed = NULL;
    if (cb) cb(t, t->why, t->user);
    cd_buf_free(&t->head_in);
    cd_buf_free(&t->inject);
    cd_buf_free(&t->frame);
    free(t->head_copy);
    free(t);
}

static void on_handle_closed(uv_handle_t *h) {
    cd_ws_tunnel *t = h->data;
    if (h != (uv_handle_t *)&t->timer) free(h);
    t->handles--;
    maybe_free(t);
}

static void side_close(side *s) {
    if (!s->tcp) return;
    s->tcp->data = s->t;
    uv_close((uv_handle_t *)s->tcp, on_handle_closed);
    s->tcp = NULL;
    s->reading = false;
}

/* ---- writing ---- */

static void on_write(uv_write_t *w, int status) {
    twrite *wr = (twrite *)w;
    side *s = wr->s;
    cd_ws_tunnel *t = s->t;
    s->queued -= wr->len;
    free(wr);
    if (status < 0 || t->state == T_CLOSING) return;
    /* the other side may read again once this one drained */
    side *other = s == &t->client ? &t->up : &t->client;
    if (s->queued < HIGH_WATER / 4 && !other->reading) start_read(other);
}

static void side_write(side *s, const void *data, size_t len) {
    if (!s->tcp || !len) return;
    twrite *wr = malloc(sizeof *wr + len);
    if (!wr) {
        tunnel_end(s->t, "out of memory");
        return;
    }
    memcpy(wr->data, data, len);
    wr->s = s;
    wr->len = len;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    if (uv_write(&wr->w, (uv_stream_t *)s->tcp, &b, 1, on_write) < 0) {
        free(wr);
        tunnel_end(s->t, "write failed");
        return;
    }
    s->queued += len;
}

/* ---- frames for the client ---- */

static void frame_append(cd_buf *b, uint8_t opcode, const void *payload, size_t len) {
    uint8_t h[10];
    size_t hl = 2;
    h[0] = 0x80 | opcode;
    if (len < 126) {
        h[1] = (uint8_t)len;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    cd_buf_append(b, h, hl);
    cd_buf_append(b, payload, len);
}

static bool at_boundary(const cd_ws_tunnel *t) { return t->fh_len == 0 && t->payload_left == 0 && !t->collecting; }

static void finish_closing(cd_ws_tunnel *t);

static void flush_inject(cd_ws_tunnel *t) {
    if (!at_boundary(t) || !t->inject.len || !t->client.tcp) return;
    side_write(&t->client, t->inject.data, t->inject.len);
    cd_buf_reset(&t->inject);
    if (t->close_after_inject) finish_closing(t);
}

/* A small whole text frame held back, given to the filter (which may rewrite it), sent on. */
static void emit_text(cd_ws_tunnel *t, cd_buf *out) {
    size_t nl = 0;
    char *repl = t->filter(t->user, t->frame.data ? t->frame.data : "", t->frame.len, &nl);
    if (repl) frame_append(out, 0x1, repl, nl);
    else frame_append(out, 0x1, t->frame.data ? t->frame.data : "", t->frame.len);
    free(repl);
    cd_buf_reset(&t->frame);
}

/* Relays the upstream's bytes to the client frame by frame, so that we know where one ends:
 * payloads pass as they come; headers are held until whole; a small unfragmented text frame is
 * held whole when there is a filter. What goes out of one read leaves in one write. */
static void relay_up(cd_ws_tunnel *t, const uint8_t *p, size_t n) {
    cd_buf out = CD_BUF_INIT;
    while (n > 0) {
        if (t->payload_left > 0) {
            size_t take = t->payload_left < n ? (size_t)t->payload_left : n;
            cd_buf_append(t->collecting ? &t->frame : &out, p, take);
            t->payload_left -= take;
            p += take;
            n -= take;
            if (t->payload_left == 0 && t->collecting) {
                t->collecting = false;
                emit_text(t, &out);
            }
            continue;
        }
        t->fh[t->fh_len++] = *p++;
        n--;
        if (t->fh_len < 2) continue;
        uint8_t len7 = t->fh[1] & 0x7f;
        size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((t->fh[1] & 0x80) ? 4 : 0);
        if (t->fh_len < need) continue;
        uint64_t len = len7;
        if (len7 == 126) len = ((uint64_t)t->fh[2] << 8) | t->fh[3];
        else if (len7 == 127)
            for (int i = 0; i < 8; i++) len = (len << 8) | t->fh[2 + i];
        int opcode = t->fh[0] & 0x0f;
        if (opcode == 0x8) t->saw_close = true;
        bool whole_text = opcode == 0x1 && (t->fh[0] & 0x80) && !(t->fh[1] & 0x80) && len <= 65536;
        if (t->filter && whole_text) {
            t->collecting = len > 0;
            if (!len) emit_text(t, &out);
        } else {
            cd_buf_append(&out, t->fh, t->fh_len);
        }
        t->payload_left = len;
        t->fh_len = 0;
    }
    if (out.len) side_write(&t->client, out.data, out.len);
    cd_buf_free(&out);
}

static void on_ping_timer(uv_timer_t *timer) {
    cd_ws_tunnel *t = timer->data;
    if (t->state != T_OPEN) return;
    frame_append(&t->inject, 0x9, "comfyd", 6);
    flush_inject(t);
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    buf->base = malloc(65536);
    buf->len = buf->base ? 65536 : 0;
}

static void handshake_data(cd_ws_tunnel *t, const char *data, size_t len);

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
    side *s = stream->data;
    cd_ws_tunnel *t = s->t;
    bool from_up = s == &t->up;
    if (n < 0) {
        free(buf->base);
        if (from_up && t->state == T_OPEN && t->saw_close) {
            /* a clean close: let the close frame reach the client, then end */
            finish_closing(t);
            return;
        }
        if (from_up && t->state == T_OPEN && at_boundary(t)) {
            /* the instance went away without a close frame: say so to the client */
            char payload[125];
            payload[0] = (char)(1011 >> 8);
            payload[1] = (char)(1011 & 0xff);
            size_t rl = strnlen(t->gone_reason, sizeof payload - 2);
            memcpy(payload + 2, t->gone_reason, rl);
            frame_append(&t->inject, 0x8, payload, rl + 2);
            t->close_after_inject = true;
            side_close(&t->up);
            snprintf(t->why, sizeof t->why, "the instance closed the connection");
            flush_inject(t);
            return;
        }
        tunnel_end(t, from_up ? "the instance closed the connection" : "the client closed the connection");
        return;
    }
    if (n == 0) {
        free(buf->base);
        return;
    }
    if (t->state == T_HANDSHAKE && from_up) {
        handshake_data(t, buf->base, (size_t)n);
    } else if (t->state == T_OPEN) {
        side *other = from_up ? &t->client : &t->up;
        if (from_up) {
            relay_up(t, (const uint8_t *)buf->base, (size_t)n);
            flush_inject(t);
        } else {
            side_write(other, buf->base, (size_t)n);
        }
        /* back-pressure: stop reading this side while the other has not taken its bytes */
        if (other->queued > HIGH_WATER && s->tcp && s->reading) {
            uv_read_stop(stream);
            s->reading = false;
        }
    }
    free(buf->base);
}

static void start_read(side *s) {
    if (!s->tcp || s->reading) return;
    s->tcp->data = s;
    if (uv_read_start((uv_stream_t *)s->tcp, alloc_cb, on_read) == 0) s->reading = true;
}

/* ---- the handshake ---- */

static void refuse(cd_ws_tunnel *t, int status, const char *text) {
    if (t->req) {
        cd_http_req_on_abort(t->req, NULL, NULL);
        cd_http_respond(t->req, status, "text/plain; charset=utf-8", text, strlen(text));
        t->req = NULL;
    }
}

static void open_tunnel(cd_ws_tunnel *t, const char *head, size_t head_len, const char *rest, size_t rest_len) {
    cd_buf leftover = CD_BUF_INIT;
    cd_http_req_on_abort(t->req, NULL, NULL);
    uv_tcp_t *client = cd_http_req_detach(t->req, &leftover);
    t->req = NULL;
    if (!client) {
        cd_buf_free(&leftover);
        tunnel_end(t, "the client went away");
        return;
    }
    t->client.tcp = client;
    t->handles++;
    t->state = T_OPEN;
    side_write(&t->client, head, head_len);
    if (rest_len) relay_up(t, (const uint8_t *)rest, rest_len);
    if (leftover.len) side_write(&t->up, leftover.data, leftover.len);
    cd_buf_free(&leftover);
    uv_timer_stop(&t->timer);
    if (t->ping_ms) uv_timer_start(&t->timer, on_ping_timer, t->ping_ms, t->ping_ms);
    start_read(&t->client);
    start_read(&t->up);
    if (t->opened) t->opened(t, t->user);
}

static void handshake_data(cd_ws_tunnel *t, const char *data, size_t len) {
    cd_buf_append(&t->head_in, data, len);
    char *end = t->head_in.data ? strstr(t->head_in.data, "\r\n\r\n") : NULL;
    if (!end) {
        if (t->head_in.len > MAX_HEAD) {
            refuse(t, 502, "the instance sent an oversized answer to the WebSocket upgrade");
            tunnel_end(t, "bad upgrade answer");
        }
        return;
    }
    size_t head_len = (size_t)(end + 4 - t->head_in.data);
    int status = 0;
    if (sscanf(t->head_in.data, "HTTP/1.%*1d %3d", &status) != 1) status = 0;
    if (status != 101) {
        char text[160];
        size_t ll = strcspn(t->head_in.data, "\r\n");
        snprintf(text, sizeof text, "the instance refused the WebSocket: %.*s", (int)(ll < 100 ? ll : 100),
                 t->head_in.data);
        refuse(t, status >= 400 && status < 600 ? status : 502, text);
        tunnel_end(t, "upgrade refused");
        return;
    }
    open_tunnel(t, t->head_in.data, head_len, t->head_in.data + head_len, t->head_in.len - head_len);
}

static void on_handshake_timeout(uv_timer_t *timer) {
    cd_ws_tunnel *t = timer->data;
    refuse(t, 504, "the instance did not answer the WebSocket upgrade in time");
    tunnel_end(t, "upgrade timed out");
}

/* The pending connect holds one of t's handle counts (t cannot go before this callback); a
 * connected socket takes it over. */
static void on_connected(uv_tcp_t *tcp, int status, const char *error, void *user) {
    cd_ws_tunnel *t = user;
    if (t->state == T_CLOSING) { /* ended while connecting */
        if (tcp) {
            t->up.tcp = tcp;
            side_close(&t->up);
        } else {
            t->handles--;
            maybe_free(t);
        }
        return;
    }
    if (!tcp) {
        t->handles--;
        char text[300];
        snprintf(text, sizeof text, "cannot connect to the instance: %s", error ? error : uv_strerror(status));
        refuse(t, 502, text);
        tunnel_end(t, "cannot connect");
        return;
    }
    t->up.tcp = tcp;
    t->state = T_HANDSHAKE;
    side_write(&t->up, t->head_copy, t->out_head_len);
    uv_timer_start(&t->timer, on_handshake_timeout, HANDSHAKE_MS, 0);
    start_read(&t->up);
}

static void on_client_abort(cd_http_req *req, void *arg) {
    cd_ws_tunnel *t = arg;
    t->req = NULL;
    tunnel_end(t, "the client went away");
}

cd_ws_tunnel *cd_ws_tunnel_start(cd_http_req *req, const cd_ws_tunnel_options *o, cd_ws_tunnel_closed_cb closed,
                                 void *user) {
    cd_ws_tunnel *t = calloc(1, sizeof *t);
    if (t) t->head_copy = malloc(o->head_len);
    if (!t || !t->head_copy) {
        free(t);
        cd_http_respond_text(req, 500, "500: out of memory");
        return NULL;
    }
    memcpy(t->head_copy, o->head, o->head_len);
    t->out_head_len = o->head_len;
    t->loop = cd_http_server_loop(cd_http_req_server(req));
    t->req = req;
    t->client.t = t->up.t = t;
    t->closed = closed;
    t->opened = o->opened;
    t->filter = o->text_filter;
    t->user = user;
    t->ping_ms = o->ping_interval_ms;
    snprintf(t->gone_reason, sizeof t->gone_reason, "%s", o->gone_reason ? o->gone_reason : "going away");
    uv_timer_init(t->loop, &t->timer);
    t->timer.data = t;
    t->handles = 1;
    cd_http_req_on_abort(req, on_client_abort, t);
    t->handles++; /* the connect's */
    int rc = cd_tcp_connect(t->loop, o->host, o->port, 5000, on_connected, t);
    if (rc < 0) {
        t->handles--;
        char text[200];
        snprintf(text, sizeof text, "cannot connect to the instance: %s", uv_strerror(rc));
        refuse(t, 502, text);
        tunnel_end(t, "cannot connect");
    }
    return t;
}

/* ---- the end ---- */

static void close_timer(cd_ws_tunnel *t) {
    uv_timer_stop(&t->timer);
    if (!uv_is_closing((uv_handle_t *)&t->timer)) uv_close((uv_handle_t *)&t->timer, on_handle_closed);
}

static void on_client_shutdown(uv_shutdown_t *sr, int status) {
    cd_ws_tunnel *t = sr->data;
    side_close(&t->client);
    close_timer(t);
}

/* A client that does not take our close frame in time is cut: nothing may wait on it forever. */
static void on_close_deadline(uv_timer_t *timer) {
    cd_ws_tunnel *t = timer->data;
    side_close(&t->client);
    close_timer(t);
}

/* Our close frame is written: let it leave, then close the client's side. */
static void finish_closing(cd_ws_tunnel *t) {
    t->state = T_CLOSING;
    side_close(&t->up);
    uv_timer_stop(&t->timer);
    if (!t->client.tcp) {
        close_timer(t);
        return;
    }
    if (!uv_is_closing((uv_handle_t *)&t->timer)) uv_timer_start(&t->timer, on_close_deadline, 5000, 0);
    if (t->client.tcp) {
        if (t->client.reading) uv_read_stop((uv_stream_t *)t->client.tcp);
        t->client.reading = false;
        t->client.shutdown.data = t;
        if (uv_shutdown(&t->client.shutdown, (uv_stream_t *)t->client.tcp, on_client_shutdown) != 0) {
            side_close(&t->client);
            close_timer(t);
        }
    }
}

static void tunnel_end(cd_ws_tunnel *t, const char *why) {
    if (t->state == T_CLOSING) return;
    if (!t->why[0]) snprintf(t->why, sizeof t->why, "%s", why);
    if (t->req) {
        cd_http_req_on_abort(t->req, NULL, NULL);
        if (!cd_http_req_responded(t->req)) cd_http_respond_text(t->req, 502, "502: the WebSocket could not be opened");
        t->req = NULL;
    }
    t->state = T_CLOSING;
    uv_timer_stop(&t->timer);
    if (!uv_is_closing((uv_handle_t *)&t->timer)) uv_close((uv_handle_t *)&t->timer, on_handle_closed);
    side_close(&t->up);
    side_close(&t->client);
}

int cd_ws_tunnel_send_text(cd_ws_tunnel *t, const char *data, size_t len) {
    if (t->state != T_OPEN) return -1;
    frame_append(&t->inject, 0x1, data, len);
    flush_inject(t);
    return 0;
}

void cd_ws_tunnel_close(cd_ws_tunnel *t, uint16_t code, const char *reason) {
    if (t->state != T_OPEN) {
        tunnel_end(t, reason);
        return;
    }
    char payload[125];
    payload[0] = (char)(code >> 8);
    payload[1] = (char)(code & 0xff);
    size_t rl = strnlen(reason, sizeof payload - 2);
    memcpy(payload + 2, reason, rl);
    frame_append(&t->inject, 0x8, payload, rl + 2);
    t->close_after_inject = true;
    snprintf(t->why, sizeof t->why, "%s", reason);
    if (at_boundary(t)) flush_inject(t);
    else tunnel_end(t, reason); /* mid-frame: no clean close possible */
}

bool cd_ws_tunnel_open(const cd_ws_tunnel *t) { return t->state == T_OPEN; }
