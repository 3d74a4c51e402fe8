/* A whole request and response over the upstream keep-alive pool (upstream.h), with the
 * interface of cd_http_fetch: for the hub's many small exchanges with instances (validating,
 * sending and following prompts), which would otherwise each cost a connection, and at
 * thousands a second run out of loopback ports held in TIME_WAIT. */
#ifndef CD_NET_UPSTREAM_FETCH_H
#define CD_NET_UPSTREAM_FETCH_H

#include "net/http_client.h"
#include "net/upstream.h"

/* timeout_ms bounds the silence of the instance while an answer is due (0: 30 s). Returns 0 (cb
 * runs exactly once, never from within this call) or a negative libuv error (it will not). */
int cd_upstream_fetch(cd_upstream_pool *pool, const cd_http_client_request *req, cd_http_client_cb cb, void *user);

#endif
