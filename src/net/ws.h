/* WebSocket connections (RFC 6455) on the loop, server and client side, framed by wslay.
 *
 * wslay does the framing, masking, fragment reassembly, ping/pong and the close handshake; this
 * module moves bytes between it and a libuv stream and enforces limits. Outgoing messages are
 * copied into a send queue whose size is bounded: a peer that does not read while we keep
 * sending is dropped (with a log line) once the queue passes max_send_queue, so a slow consumer
 * costs at most that much memory. */
#ifndef CD_NET_WS_H
#define CD_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/http_server.h"

typedef struct cd_ws cd_ws;

typedef struct {
    void (*on_text)(cd_ws *ws, const char *data, size_t len, void *user);
    void (*on_binary)(cd_ws *ws, const uint8_t *data, size_t len, void *user);
    /* Runs once when the connection is gone (code 1006 when it ended without a close frame).
     * The cd_ws is freed right after; do not use it again. */
    void (*on_close)(cd_ws *ws, uint16_t code, void *user);
} cd_ws_callbacks;

typedef struct {
    size_t max_message_bytes; /* incoming; aiohttp's default is 4 MiB */
    size_t max_send_queue;    /* outgoing bytes waiting for a slow peer before it is dropped */
    unsigned close_timeout_ms;
} cd_ws_limits;

void cd_ws_limits_default(cd_ws_limits *limits); /* 4 MiB, 16 MiB, 3 s */

/* Server side. If req is a valid WebSocket upgrade, answers 101, takes the connection from the
 * HTTP server and returns the new socket; otherwise answers 400 itself and returns NULL. */
cd_ws *cd_ws_accept(cd_http_req *req, const cd_ws_limits *limits, const cd_ws_callbacks *cbs, void *user);

/* Client side: connects to ws://host:port/target. cb gets the open socket, or NULL and an error
 * message; it runs exactly once. Returns 0, or a negative error if nothing was started. */
typedef void (*cd_ws_connect_cb)(cd_ws *ws, const char *error, void *user);
int cd_ws_connect(uv_loop_t *loop, const char *host, int port, const char *target, const char *extra_headers,
                  const cd_ws_limits *limits, const cd_ws_callbacks *cbs, unsigned timeout_ms, cd_ws_connect_cb cb,
                  void *user);

/* Queue a message. Return 0, or -1 when the socket is closing or was dropped for being slow. */
int cd_ws_send_text(cd_ws *ws, const char *data, size_t len);
int cd_ws_send_binary(cd_ws *ws, const void *data, size_t len);
/* Corked, the messages queued are not written one by one but together when uncorked (and
 * whenever a few hundred KiB have gathered): one write for a burst of events instead of one
 * each. Uncorking may tear ws down like a send. */
void cd_ws_cork(cd_ws *ws, bool on);
/* Starts the close handshake; the connection is cut if the peer does not answer in time. */
void cd_ws_close(cd_ws *ws, uint16_t code, const char *reason);
size_t cd_ws_queued(const cd_ws *ws);
/* Cuts the connection at once (no close handshake): for peers that stopped reading. */
void cd_ws_drop(cd_ws *ws);
void *cd_ws_user(const cd_ws *ws);
void cd_ws_set_user(cd_ws *ws, void *user);

/* The Sec-WebSocket-Accept value for a key: base64(SHA-1(key + GUID)). out needs 29 bytes. */
void cd_ws_accept_key(const char *key, char out[29]);

#endif
