/* A WebSocket tunnelled to an upstream server (the hub's proxy to an instance's /ws).
 *
 * The client's upgrade request goes upstream as the caller wrote its head; when the upstream
 * answers 101 the client connection is taken from the HTTP server and bytes flow both ways
 * with back-pressure (a side whose writes pile up past 1 MiB stops the other side's reading).
 * Client frames pass untouched. Upstream frames are followed frame by frame (not reassembled),
 * so that at a frame boundary the tunnel can add frames of its own for the client: pings (an
 * idle tab behind a middle box keeps its socket; the browser's pong reaches the upstream as an
 * unsolicited pong, which RFC 6455 allows), text messages, and a close frame with a reason when
 * the upstream goes away without one. Any other answer than 101 is passed to the client as its
 * status with a short text. */
#ifndef CD_NET_WS_TUNNEL_H
#define CD_NET_WS_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/http_server.h"

typedef struct cd_ws_tunnel cd_ws_tunnel;

/* Runs once, when both connections are closed (or the tunnel never opened); t is freed after. */
typedef void (*cd_ws_tunnel_closed_cb)(cd_ws_tunnel *t, const char *why, void *user);

typedef struct {
    const char *host;
    int port;
    const char *head; /* the upgrade request for the upstream, "GET ... HTTP/1.1\r\n...\r\n\r\n" */
    size_t head_len;
    unsigned ping_interval_ms; /* 0: no pings */
    const char *gone_reason;   /* the close reason when the upstream goes away without one */
    /* Runs once the tunnel is open (the upstream said 101), with the closed callback's user. */
    void (*opened)(cd_ws_tunnel *t, void *user);
    /* Optional: sees each small (<= 64 KiB) unfragmented text message of the upstream before the
     * client does, and returns a replacement (malloc'd, *out_len set) or NULL to pass it on. */
    char *(*text_filter)(void *user, const char *text, size_t len, size_t *out_len);
} cd_ws_tunnel_options;

/* Starts; answers req itself when the upstream cannot be reached or refuses (502 or its
 * status). closed runs exactly once in every case. Returns NULL only when out of memory (req
 * answered 500, closed not called). */
cd_ws_tunnel *cd_ws_tunnel_start(cd_http_req *req, const cd_ws_tunnel_options *o, cd_ws_tunnel_closed_cb closed,
                                 void *user);
/* Sends a text message to the client, at the next frame boundary. Returns 0, or -1 when the
 * tunnel is not open (yet or any more). */
int cd_ws_tunnel_send_text(cd_ws_tunnel *t, const char *data, size_t len);
/* Closes: a close frame to the client (code and reason) at the next boundary, then both
 * connections. */
void cd_ws_tunnel_close(cd_ws_tunnel *t, uint16_t code, const char *reason);
bool cd_ws_tunnel_open(const cd_ws_tunnel *t);

#endif
