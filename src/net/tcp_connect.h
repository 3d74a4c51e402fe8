/* Outgoing TCP connections with a deadline: resolve (numeric or by name), connect, hand over. */
#ifndef CD_NET_TCP_CONNECT_H
#define CD_NET_TCP_CONNECT_H

#include <uv.h>

/* tcp is a connected handle the callback now owns (uv_close it, then free it), or NULL with a
 * negative libuv status and a message. */
typedef void (*cd_tcp_connect_cb)(uv_tcp_t *tcp, int status, const char *error, void *user);

/* Starts connecting; cb always runs exactly once, on a later loop turn. Returns 0 or a negative
 * libuv error (cb will not run). */
int cd_tcp_connect(uv_loop_t *loop, const char *host, int port, unsigned timeout_ms, cd_tcp_connect_cb cb, void *user);

#endif
