#include "net/ws.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/sha1.h"
#include "net/tcp_connect.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_HANDSHAKE_BYTES 16384
/* A peer that sends faster than it reads (a ping flood) makes us queue answers: past this we
 * stop reading from it until the queue falls below RESUME_READ_BYTES. */
#define PAUSE_READ_BYTES (1024 * 1024)
#define RESUME_READ_BYTES (256 * 1024)

struct cd_ws {
    uv_loop_t *loop;
    uv_tcp_t *tcp;
    uv_timer_t timer;
    wslay_event_context_ptr ctx;
    cd_ws_callbacks cbs;
    void *user;
    cd_ws_limits limits;
    bool is_client, handshaking;
    char expected_accept[29]; /* client: what the server must answer */
    cd_ws_connect_cb connect_cb;
    void *connect_user;
    cd_buf rbuf; /* received, not yet given to wslay */
    size_t rpos;
    size_t write_queued;
    cd_buf out; /* frames wslay produced during one flush, sent as one write */
    int refs;
    bool tearing_down, in_recv, close_started, read_paused;
    bool corked; /* messages wait in wslay's queue until cd_ws_cork(ws, false) */
};

typedef struct {
    uv_write_t w;
    cd_ws *ws;
    size_t len;
    char data[];
} ws_write;

void cd_ws_limits_default(cd_ws_limits *l) {
    l->max_message_bytes = 4u * 1024 * 1024;
    l->max_send_queue = 16u * 1024 * 1024;
    l->close_timeout_ms = 3000;
}

void cd_ws_accept_key(const char *key, char out[29]) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s" WS_GUID, key);
    uint8_t digest[20];
    cd_sha1(buf, n > 0 && (size_t)n < sizeof buf ? (size_t)n : 0, digest);
    sodium_bin2base64(out, 29, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
}

void *cd_ws_user(const cd_ws *ws) { return ws->user; }
void cd_ws_set_user(cd_ws *ws, void *user) { ws->user = user; }
size_t cd_ws_queued(const cd_ws *ws) {
    return ws->write_queued + ws->out.len + (ws->ctx ? wslay_event_get_queued_msg_length(ws->ctx) : 0);
}

/* ---- teardown ---- */

static void ws_unref(cd_ws *ws) {
    if (--ws->refs > 0) return;
    if (ws->ctx) wslay_event_context_free(ws->ctx);
    cd_buf_free(&ws->rbuf);
    cd_buf_free(&ws->out);
    free(ws);
}

static void on_handle_closed(uv_handle_t *h) {
    cd_ws *ws = h->data;
    if (h == (uv_handle_t *)ws->tcp) {
        free(ws->tcp);
        ws->tcp = NULL;
    }
    ws_unref(ws);
}

static void ws_teardown(cd_ws *ws, const char *why) {
    if (ws->tearing_down) return;
    ws->tearing_down = true;
    if (why) cd_debug("ws: closing: %s", why);
    uv_close((uv_handle_t *)&ws->timer, on_handle_closed);
    uv_close((uv_handle_t *)ws->tcp, on_handle_closed);
    if (ws->handshaking) {
        /* A client that never got connected reports through its connect callback. */
        if (ws->connect_cb) ws->connect_cb(NULL, why ? why : "connection closed", ws->connect_user);
    } else if (ws->cbs.on_close) {
        uint16_t code = 1006;
        if (ws->ctx && (wslay_event_get_close_received(ws->ctx)))
            code = wslay_event_get_status_code_received(ws->ctx);
        ws->cbs.on_close(ws, code, ws->user);
    }
    ws_unref(ws); /* the socket's own reference */
}

static void on_close_timeout(uv_timer_t *t) { ws_teardown(t->data, "close handshake timed out"); }

/* ---- writing ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write_done(uv_write_t *w, int status) {
    ws_write *ww = (ws_write *)w;
    cd_ws *ws = ww->ws;
    ws->write_queued -= ww->len;
    free(ww);
    if (status < 0 && !ws->tearing_down) ws_teardown(ws, "write failed");
    else if (!ws->tearing_down && !ws->handshaking && ws->ctx && !wslay_event_want_read(ws->ctx) &&
             !wslay_event_want_write(ws->ctx) && ws->write_queued == 0)
        ws_teardown(ws, NULL); /* close handshake done and flushed */
    else if (!ws->tearing_down && ws->read_paused && ws->write_queued < RESUME_READ_BYTES) {
        ws->read_paused = false;
        uv_read_start((uv_stream_t *)ws->tcp, on_alloc, on_read);
    }
    ws_unref(ws);
}

static int raw_write(cd_ws *ws, const void *data, size_t len) {
    if (ws->tearing_down) return -1;
    ws_write *ww = malloc(sizeof *ww + len);
    if (!ww) return -1;
    memcpy(ww->data, data, len);
    ww->ws = ws;
    ww->len = len;
    uv_buf_t b = uv_buf_init(ww->data, (unsigned)len);
    if (uv_write(&ww->w, (uv_stream_t *)ws->tcp, &b, 1, on_write_done) < 0) {
        free(ww);
        return -1;
    }
    ws->refs++;
    ws->write_queued += len;
    return 0;
}

/* Hands wslay's pending frames to the socket and applies the limits; may tear ws down. */
static void ws_flush(cd_ws *ws) {
    if (ws->tearing_down || ws->in_recv || !ws->ctx) return;
    if (wslay_event_send(ws->ctx) != 0) {
        ws_teardown(ws, "send failed");
        return;
    }
    if (ws->out.len) {
        int rc = raw_write(ws, ws->out.data, ws->out.len);
        cd_buf_reset(&ws->out);
        if (rc < 0) {
            ws_teardown(ws, "write failed");
            return;
        }
    }
    if (cd_ws_queued(ws) > ws->limits.max_send_queue) {
        cd_warn("ws: dropping a client that does not read: %zu bytes waiting (limit %zu)", cd_ws_queued(ws),
                ws->limits.max_send_queue);
        ws_teardown(ws, NULL);
        return;
    }
    if (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx) && ws->write_queued == 0)
        ws_teardown(ws, NULL);
}

/* ---- wslay callbacks ---- */

static ssize_t wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user) {
    (void)flags;
    cd_ws *ws = user;
    size_t avail = ws->rbuf.len - ws->rpos;
    if (avail == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = avail < len ? avail : len;
    memcpy(buf, ws->rbuf.data + ws->rpos, n);
    ws->rpos += n;
    return (ssize_t)n;
}

static ssize_t wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user) {
    (void)flags;
    cd_ws *ws = user;
    if (ws->tearing_down || cd_buf_append(&ws->out, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int wslay_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user) {
    (void)ctx;
    (void)user;
    randombytes_buf(buf, len);
    return 0;
}

static void wslay_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user) {
    (void)ctx;
    cd_ws *ws = user;
    if (ws->tearing_down) return;
    if (arg->opcode == WSLAY_TEXT_FRAME && ws->cbs.on_text)
        ws->cbs.on_text(ws, (const char *)arg->msg, arg->msg_length, ws->user);
    else if (arg->opcode == WSLAY_BINARY_FRAME && ws->cbs.on_binary)
        ws->cbs.on_binary(ws, arg->msg, arg->msg_length, ws->user);
    else if (arg->opcode == WSLAY_CONNECTION_CLOSE && !ws->close_started) {
        /* wslay answers the close frame itself; give the peer a bounded time to hang up. */
        ws->close_started = true;
        uv_timer_start(&ws->timer, on_close_timeout, ws->limits.close_timeout_ms, 0);
    }
}

static int ws_start_framing(cd_ws *ws) {
    struct wslay_event_callbacks cbs = {
        .recv_callback = wslay_recv,
        .send_callback = wslay_send,
        .genmask_callback = wslay_genmask,
        .on_msg_recv_callback = wslay_on_msg,
    };
    int rc = ws->is_client ? wslay_event_context_client_init(&ws->ctx, &cbs, ws)
                           : wslay_event_context_server_init(&ws->ctx, &cbs, ws);
    if (rc != 0) return -1;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->limits.max_message_bytes);
    return 0;
}

/* ---- reading ---- */

static void ws_process(cd_ws *ws) {
    ws->in_recv = true;
    int rc = wslay_event_recv(ws->ctx);
    ws->in_recv = false;
    cd_buf_consume(&ws->rbuf, ws->rpos);
    ws->rpos = 0;
    if (ws->tearing_down) return;
    if (rc != 0) {
        ws_teardown(ws, "protocol error");
        return;
    }
    ws_flush(ws);
}

static void client_handshake_step(cd_ws *ws);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    size_t n = suggested < 65536 ? suggested : 65536;
    *buf = uv_buf_init(malloc(n), (unsigned)n);
    if (!buf->base) buf->len = 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    cd_ws *ws = s->data;
    if (nread < 0) {
        free(buf->base);
        ws_teardown(ws, NULL);
        return;
    }
    int rc = nread > 0 ? cd_buf_append(&ws->rbuf, buf->base, (size_t)nread) : 0;
    free(buf->base);
    if (rc < 0) {
        ws_teardown(ws, "out of memory");
        return;
    }
    if (nread == 0 || ws->tearing_down) return;
    if (ws->handshaking) client_handshake_step(ws);
    else ws_process(ws);
    if (!ws->tearing_down && !ws->read_paused && ws->write_queued > PAUSE_READ_BYTES) {
        ws->read_paused = true;
        uv_read_stop((uv_stream_t *)ws->tcp);
    }
}

static cd_ws *ws_new(uv_loop_t *loop, uv_tcp_t *tcp, const cd_ws_limits *limits, const cd_ws_callbacks *cbs,
                     void *user) {
    cd_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->loop = loop;
    ws->tcp = tcp;
    tcp->data = ws;
    uv_timer_init(loop, &ws->timer);
    ws->timer.data = ws;
    ws->refs = 3; /* itself, tcp, timer */
    if (limits) ws->limits = *limits;
    else cd_ws_limits_default(&ws->limits);
    if (cbs) ws->cbs = *cbs;
    ws->user = user;
    return ws;
}

/* ---- server side ---- */

static void on_leftover(uv_timer_t *t) {
    cd_ws *ws = t->data;
    if (!ws->tearing_down && ws->rbuf.len) ws_process(ws);
}

static bool header_has_token(const char *value, const char *token) {
    if (!value) return false;
    size_t n = strlen(token);
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - p) == n && strncasecmp(p, token, n) == 0) return true;
        p = end;
    }
    return false;
}

cd_ws *cd_ws_accept(cd_http_req *req, const cd_ws_limits *limits, const cd_ws_callbacks *cbs, void *user) {
    const char *upgrade = cd_http_req_header(req, "Upgrade");
    const char *key = cd_http_req_header(req, "Sec-WebSocket-Key");
    const char *version = cd_http_req_header(req, "Sec-WebSocket-Version");
    uint8_t raw[32];
    size_t raw_len = 0;
    bool key_ok = key && sodium_base642bin(raw, sizeof raw, key, strlen(key), NULL, &raw_len, NULL,
                                           sodium_base64_VARIANT_ORIGINAL) == 0 && raw_len == 16;
    if (strcmp(cd_http_req_method(req), "GET") != 0 || !upgrade || strcasecmp(upgrade, "websocket") != 0 ||
        !header_has_token(cd_http_req_header(req, "Connection"), "upgrade") || !key_ok) {
        cd_http_respond_text(req, 400, "Bad Request: not a WebSocket upgrade");
        return NULL;
    }
    if (!version || strcmp(version, "13") != 0) {
        cd_http_add_header(req, "Sec-WebSocket-Version", "13");
        cd_http_respond_text(req, 400, "Bad Request: unsupported WebSocket version");
        return NULL;
    }
    char accept[29];
    cd_ws_accept_key(key, accept);
    uv_loop_t *loop = NULL;
    cd_buf leftover = CD_BUF_INIT;
    uv_tcp_t *tcp = cd_http_req_detach(req, &leftover);
    if (!tcp) {
        cd_buf_free(&leftover);
        return NULL;
    }
    loop = tcp->loop;
    cd_ws *ws = ws_new(loop, tcp, limits, cbs, user);
    if (!ws || ws_start_framing(ws) < 0) {
        cd_buf_free(&leftover);
        if (ws) ws_teardown(ws, "out of memory");
        else uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return NULL;
    }
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    raw_write(ws, head, (size_t)n);
    if (leftover.len) cd_buf_append(&ws->rbuf, leftover.data, leftover.len);
    cd_buf_free(&leftover);
    uv_read_start((uv_stream_t *)tcp, on_alloc, on_read);
    /* Frames that arrived with the request are processed on the next loop turn, once the
     * caller holds the socket. */
    if (ws->rbuf.len) uv_timer_start(&ws->timer, on_leftover, 0, 0);
    return ws;
}

/* ---- client side ---- */

typedef struct {
    uv_loop_t *loop;
    char *request;
    cd_ws_limits limits;
    cd_ws_callbacks cbs;
    cd_ws_connect_cb cb;
    void *user;
    char accept[29];
} connect_ctx;

static void client_handshake_step(cd_ws *ws) {
    char *end = ws->rbuf.data ? strstr(ws->rbuf.data, "\r\n\r\n") : NULL;
    if (!end) {
        if (ws->rbuf.len > MAX_HANDSHAKE_BYTES) ws_teardown(ws, "handshake response too large");
        return;
    }
    *end = '\0';
    const char *head = ws->rbuf.data;
    int status = 0;
    bool ok = sscanf(head, "HTTP/1.%*d %d", &status) == 1 && status == 101;
    bool accept_ok = false;
    for (const char *line = strstr(head, "\r\n"); ok && line; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, "Sec-WebSocket-Accept:", 21) == 0) {
            h += 21;
            while (*h == ' ') h++;
            accept_ok = strncmp(h, ws->expected_accept, 28) == 0;
        }
    }
    if (!ok || !accept_ok) {
        char msg[96];
        snprintf(msg, sizeof msg, "WebSocket handshake refused (status %d)", status);
        ws_teardown(ws, msg);
        return;
    }
    size_t consumed = (size_t)(end - ws->rbuf.data) + 4;
    cd_buf_consume(&ws->rbuf, consumed);
    if (ws_start_framing(ws) < 0) {
        ws_teardown(ws, "out of memory");
        return;
    }
    ws->handshaking = false;
    cd_ws_connect_cb cb = ws->connect_cb;
    ws->connect_cb = NULL;
    cb(ws, NULL, ws->connect_user);
    if (!ws->tearing_down && ws->rbuf.len) ws_process(ws);
}

static void on_tcp_connected(uv_tcp_t *tcp, int status, const char *error, void *user) {
    connect_ctx *cc = user;
    if (!tcp) {
        cc->cb(NULL, error, cc->user);
    } else {
        cd_ws *ws = ws_new(cc->loop, tcp, &cc->limits, &cc->cbs, cc->user);
        if (!ws) {
            uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
            cc->cb(NULL, "out of memory", cc->user);
        } else {
            ws->is_client = true;
            ws->handshaking = true;
            ws->connect_cb = cc->cb;
            ws->connect_user = cc->user;
            memcpy(ws->expected_accept, cc->accept, sizeof ws->expected_accept);
            raw_write(ws, cc->request, strlen(cc->request));
            uv_read_start((uv_stream_t *)tcp, on_alloc, on_read);
        }
    }
    (void)status;
    free(cc->request);
    free(cc);
}

int cd_ws_connect(uv_loop_t *loop, const char *host, int port, const char *target, const char *extra_headers,
                  const cd_ws_limits *limits, const cd_ws_callbacks *cbs, unsigned timeout_ms, cd_ws_connect_cb cb,
                  void *user) {
    connect_ctx *cc = calloc(1, sizeof *cc);
    if (!cc) return UV_ENOMEM;
    cc->loop = loop;
    if (limits) cc->limits = *limits;
    else cd_ws_limits_default(&cc->limits);
    if (cbs) cc->cbs = *cbs;
    cc->cb = cb;
    cc->user = user;
    uint8_t nonce[16];
    randombytes_buf(nonce, sizeof nonce);
    char key[25];
    sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
    cd_ws_accept_key(key, cc->accept);
    cd_buf req = CD_BUF_INIT;
    bool v6 = strchr(host, ':') != NULL;
    cd_buf_printf(&req,
                  "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                  target, v6 ? "[" : "", host, v6 ? "]" : "", port, key, extra_headers ? extra_headers : "");
    cc->request = cd_buf_take(&req);
    int rc = cd_tcp_connect(loop, host, port, timeout_ms, on_tcp_connected, cc);
    if (rc < 0) {
        free(cc->request);
        free(cc);
    }
    return rc;
}

/* ---- sending and closing ---- */

/* While corked, frames are written once CORK_FLUSH_BYTES have gathered (and at uncork). */
#define CORK_FLUSH_BYTES (256u * 1024)

/* One unmasked, unfragmented frame (RFC 6455 5.2) appended to the output buffer. */
static int append_server_frame(cd_ws *ws, uint8_t opcode, const void *data, size_t len) {
    uint8_t head[10];
    size_t n = 2;
    head[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        head[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        head[1] = 126;
        head[2] = (uint8_t)(len >> 8);
        head[3] = (uint8_t)len;
        n = 4;
    } else {
        head[1] = 127;
        for (int i = 0; i < 8; i++) head[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        n = 10;
    }
    if (cd_buf_append(&ws->out, head, n) < 0 || cd_buf_append(&ws->out, data, len) < 0) return -1;
    return 0;
}

static int queue_msg(cd_ws *ws, uint8_t opcode, const void *data, size_t len) {
    if (ws->tearing_down || ws->handshaking || ws->close_started) return -1;
    /* A server's data frames are written straight into the output buffer: the executor sends
     * two events per node, and wslay's queue would copy each of them once more. Only when
     * wslay holds nothing (a pong, say): frames must leave in the order they were made. */
    if (!ws->is_client && wslay_event_get_queued_msg_count(ws->ctx) == 0) {
        if (append_server_frame(ws, opcode, data, len) < 0) {
            ws_teardown(ws, "out of memory");
            return -1;
        }
        if (!ws->corked || ws->out.len >= CORK_FLUSH_BYTES) ws_flush(ws);
        return ws->tearing_down ? -1 : 0;
    }
    struct wslay_event_msg msg = {.opcode = opcode, .msg = data, .msg_length = len};
    if (wslay_event_queue_msg(ws->ctx, &msg) != 0) return -1;
    if (!ws->corked || wslay_event_get_queued_msg_length(ws->ctx) >= CORK_FLUSH_BYTES) ws_flush(ws);
    return ws->tearing_down ? -1 : 0;
}

void cd_ws_cork(cd_ws *ws, bool on) {
    ws->corked = on;
    if (!on) ws_flush(ws);
}

int cd_ws_send_text(cd_ws *ws, const char *data, size_t len) { return queue_msg(ws, WSLAY_TEXT_FRAME, data, len); }
int cd_ws_send_binary(cd_ws *ws, const void *data, size_t len) {
    return queue_msg(ws, WSLAY_BINARY_FRAME, data, len);
}

void cd_ws_drop(cd_ws *ws) { ws_teardown(ws, "dropped"); }

void cd_ws_close(cd_ws *ws, uint16_t code, const char *reason) {
    if (ws->tearing_down) return;
    if (ws->handshaking || !ws->ctx) {
        ws_teardown(ws, "closed before the handshake finished");
        return;
    }
    if (!ws->close_started) {
        ws->close_started = true;
        wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
        uv_timer_start(&ws->timer, on_close_timeout, ws->limits.close_timeout_ms, 0);
    }
    ws_flush(ws);
}
