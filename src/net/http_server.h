/* The HTTP/1.1 server: connections, request parsing (http_parser), limits, timeouts, keep-alive
 * and pipelining, responses (whole or streamed), and hand-off of a connection to another
 * protocol (WebSocket upgrade).
 *
 * Life of a request: bytes arrive, the parser fills a cd_http_req, and when the message is
 * complete the server stops parsing that connection and calls the handler. The handler answers
 * with cd_http_respond() (or cd_http_start/write/end to stream), at once or later from another
 * callback on the same loop. Only then does the server parse the next pipelined request, so
 * responses always leave in request order and a client that pipelines without reading cannot
 * make the server buffer without bound: while more than `write_high_water` bytes wait to be
 * sent, the server reads nothing more from that connection.
 *
 * A request object lives until its response has ended or its connection has closed. A handler
 * that answers later must set an abort callback (cd_http_req_on_abort) and stop using the
 * request when it fires. Everything runs on the loop thread. */
#ifndef CD_NET_HTTP_SERVER_H
#define CD_NET_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"

typedef struct cd_http_server cd_http_server;
typedef struct cd_http_req cd_http_req;

typedef struct {
    size_t max_url_bytes;          /* request target longer than this: 414 */
    size_t max_header_line_bytes;  /* one header line longer than this: 431 */
    size_t max_header_total_bytes; /* all header lines together: 431 */
    uint64_t max_body_bytes;       /* body larger than this: 413 (ComfyUI: --max-upload-size) */
    unsigned header_timeout_ms;    /* a request's headers must arrive within this (slow-loris) */
    unsigned idle_timeout_ms;      /* an idle keep-alive connection is closed after this */
    unsigned body_timeout_ms;      /* longest silence allowed while a body arrives */
    unsigned write_timeout_ms;     /* longest time a pending write may make no progress */
    unsigned shutdown_timeout_ms;  /* graceful stop: in-flight responses get this long */
    size_t write_high_water;       /* see the file comment */
    unsigned max_connections;      /* beyond this, new connections are closed at once */
} cd_http_limits;

/* Fills in the defaults: 8 KiB URL, 8 KiB header line, 64 KiB headers, 100 MiB body, 10 s
 * headers, 75 s idle (aiohttp's keep-alive), 60 s body and write silence, 30 s shutdown,
 * 1 MiB high water, 10,000 connections. */
void cd_http_limits_default(cd_http_limits *limits);

typedef void (*cd_http_handler_fn)(cd_http_req *req, void *ctx);
/* Called just before a response head is written, so that the layer above can add headers that
 * depend on the request and the status (CORS, Cache-Control). */
typedef void (*cd_http_response_hook_fn)(cd_http_req *req, int status, void *ctx);
typedef void (*cd_http_stopped_fn)(void *arg);

/* Called when a request's head has arrived, before its body (never for upgrades). Returning
 * true streams that request: the handler is called at once, the body arrives through
 * cd_http_req_on_body in pieces as it comes, and the server's max_body_bytes does not apply (the
 * handler enforces its own limit). The hook must not answer the request. */
typedef bool (*cd_http_head_hook_fn)(cd_http_req *req, void *ctx);

/* Creates a server on loop. Returns 0 or a negative error with a message in err. */
int cd_http_server_new(uv_loop_t *loop, const cd_http_limits *limits, cd_http_handler_fn handler,
                       void *ctx, cd_http_server **out, char *err, size_t errlen);
void cd_http_server_set_response_hook(cd_http_server *srv, cd_http_response_hook_fn hook, void *ctx);
void cd_http_server_set_head_hook(cd_http_server *srv, cd_http_head_hook_fn hook, void *ctx);
/* Binds host:port (an IPv4 or IPv6 literal) and listens. IPv6 sockets are v6-only so that
 * "0.0.0.0" and "::" can both be bound. port 0 picks a free port; cd_http_server_port() tells
 * which. Returns 0 or a negative error with a message. */
int cd_http_server_listen(cd_http_server *srv, const char *host, int port, char *err, size_t errlen);
int cd_http_server_port(const cd_http_server *srv);
/* Graceful stop: closes the listeners and idle connections, lets in-flight responses finish
 * (closing their connections afterwards) for up to shutdown_timeout_ms, then closes the rest.
 * `done` runs once no connection is left. */
void cd_http_server_stop(cd_http_server *srv, cd_http_stopped_fn done, void *arg);
/* Frees a stopped server (after `done` ran). */
void cd_http_server_free(cd_http_server *srv);
size_t cd_http_server_connection_count(const cd_http_server *srv);
uv_loop_t *cd_http_server_loop(const cd_http_server *srv);

/* ---- the request ---- */
const char *cd_http_req_method(const cd_http_req *req); /* "GET", "POST", … */
const char *cd_http_req_target(const cd_http_req *req); /* as sent: "/a%20b?x=1" */
const char *cd_http_req_path(const cd_http_req *req);   /* target before '?', not decoded */
const char *cd_http_req_query(const cd_http_req *req);  /* after '?', or "" */
/* First header of that name (case-insensitive), or NULL. */
const char *cd_http_req_header(const cd_http_req *req, const char *name);
size_t cd_http_req_header_count(const cd_http_req *req);
void cd_http_req_header_at(const cd_http_req *req, size_t i, const char **name, const char **value);
const char *cd_http_req_body(const cd_http_req *req, size_t *len); /* NUL-terminated */
bool cd_http_req_is_upgrade(const cd_http_req *req);
/* The peer's address as text, for logs. */
const char *cd_http_req_peer(const cd_http_req *req);
cd_http_server *cd_http_req_server(const cd_http_req *req);

/* Path parameters, set by the router; values are percent-decoded. */
int cd_http_req_set_param(cd_http_req *req, const char *name, const char *value);
const char *cd_http_req_param(const cd_http_req *req, const char *name);

typedef void (*cd_http_req_cb)(cd_http_req *req, void *arg);
/* `cb` runs if the connection closes before the response ended; the request is freed after. */
void cd_http_req_on_abort(cd_http_req *req, cd_http_req_cb cb, void *arg);

/* ---- a streamed body (see cd_http_head_hook_fn) ---- */
/* Each piece of the body as it arrives; data NULL and len 0 once it is complete. The handler
 * sets this (or pauses) before its call returns. A response that ends before the body is
 * complete closes the connection after it. */
typedef void (*cd_http_body_cb)(cd_http_req *req, const char *data, size_t len, void *arg);
void cd_http_req_on_body(cd_http_req *req, cd_http_body_cb cb, void *arg);
/* Paused, no more of the body is read from the client (back-pressure toward a slow reader). */
void cd_http_req_pause_body(cd_http_req *req, bool pause);
bool cd_http_req_streaming(const cd_http_req *req);
bool cd_http_req_body_complete(const cd_http_req *req);

/* ---- the response ---- */
/* Adds a response header. Values containing CR or LF are refused (returns -1). */
int cd_http_add_header(cd_http_req *req, const char *name, const char *value);
bool cd_http_has_header(const cd_http_req *req, const char *name);
/* A whole response. content_type may be NULL (no header; aiohttp's empty responses). */
void cd_http_respond(cd_http_req *req, int status, const char *content_type, const void *body, size_t len);
void cd_http_respond_text(cd_http_req *req, int status, const char *text);

/* A streamed response: length < 0 means chunked encoding. */
void cd_http_start(cd_http_req *req, int status, const char *content_type, int64_t length);
void cd_http_write(cd_http_req *req, const void *data, size_t len);
void cd_http_end(cd_http_req *req);
/* Corked, what the response writes gathers until it is uncorked (or ends), then leaves in one
 * write: a proxied head and the first piece of its body in one packet. */
void cd_http_cork(cd_http_req *req, bool on);
/* Bytes accepted by cd_http_write but not yet taken by the kernel. */
size_t cd_http_queued(const cd_http_req *req);
/* `cb` runs once, when the queued bytes fall below the high-water mark. */
void cd_http_on_drain(cd_http_req *req, cd_http_req_cb cb, void *arg);
bool cd_http_req_responded(const cd_http_req *req);
/* Cuts the connection: for a streamed response that cannot be completed (its length was
 * promised). The request is freed. */
void cd_http_abort(cd_http_req *req);

/* Takes the connection away from HTTP for an upgraded protocol. The TCP handle (its `data` is
 * cleared; the caller now owns it and must uv_close it) and any bytes the client sent after
 * the request head go to the caller; the request is freed. Returns NULL if the connection is
 * already closing. */
uv_tcp_t *cd_http_req_detach(cd_http_req *req, cd_buf *leftover);

const char *cd_http_status_text(int status);

#endif
