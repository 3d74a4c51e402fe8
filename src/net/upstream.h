/* Requests to an upstream HTTP server (an instance, for the hub's proxy), streamed both ways,
 * over keep-alive connections kept in a pool.
 *
 * The caller writes the request head itself (it decides which headers pass) and then the body
 * bytes as they come, already framed (raw for a Content-Length body, chunk-encoded for a
 * chunked one); the response arrives as a head, then body pieces (de-chunked), then an end.
 * Both directions have back-pressure: cd_upstream_queued() tells how much of the request waits
 * to be sent (on_writable says when it has drained), cd_upstream_pause() stops reading the
 * response. A connection goes back to the pool only after a complete exchange that both sides
 * meant to keep alive. A bodiless request that fails on a reused connection before any answer
 * (the instance closed it while idle) is sent again on a new one. */
#ifndef CD_NET_UPSTREAM_H
#define CD_NET_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct cd_upstream_pool cd_upstream_pool;
typedef struct cd_upstream_req cd_upstream_req;

typedef struct {
    /* The response head; the arrays are valid during the call. */
    void (*on_head)(cd_upstream_req *u, int status, size_t n, char *const *names, char *const *values, void *user);
    void (*on_body)(cd_upstream_req *u, const char *data, size_t len, void *user);
    /* The response is complete. u is gone after this call. */
    void (*on_end)(cd_upstream_req *u, void *user);
    /* It failed: status is what to answer (502, or 504 for a timeout) when no head came yet.
     * u is gone after this call. */
    void (*on_error)(cd_upstream_req *u, int status, const char *message, bool head_seen, void *user);
    /* The request bytes waiting to be sent fell below the low-water mark (optional). */
    void (*on_writable)(cd_upstream_req *u, void *user);
} cd_upstream_callbacks;

typedef struct {
    const char *host;
    int port;
    const char *head; /* "METHOD target HTTP/1.1\r\n...\r\n\r\n" */
    size_t head_len;
    bool head_request;           /* HEAD: the response has no body */
    bool has_body;               /* body bytes follow, then cd_upstream_end_body */
    unsigned connect_timeout_ms; /* 0: 5 s */
    unsigned idle_timeout_ms;    /* longest silence from the upstream while a response is due; 0: 300 s */
} cd_upstream_request;

/* max_idle: idle connections kept per upstream (host and port). */
cd_upstream_pool *cd_upstream_pool_new(uv_loop_t *loop, size_t max_idle);
/* For a stop: closes the idle connections and keeps none from now on (a request under way
 * finishes, and its connection then closes). */
void cd_upstream_pool_shut(cd_upstream_pool *pool);
/* Closes what is idle and frees the pool once no request uses it. */
void cd_upstream_pool_free(cd_upstream_pool *pool);
size_t cd_upstream_pool_idle_count(const cd_upstream_pool *pool);

/* Starts a request; the callbacks run later, never from within this call. Returns NULL when out
 * of memory. */
cd_upstream_req *cd_upstream_start(cd_upstream_pool *pool, const cd_upstream_request *r,
                                   const cd_upstream_callbacks *cbs, void *user);
/* Queues request body bytes (copied). */
void cd_upstream_write(cd_upstream_req *u, const void *data, size_t len);
/* The body is complete (after the last cd_upstream_write). */
void cd_upstream_end_body(cd_upstream_req *u);
size_t cd_upstream_queued(const cd_upstream_req *u);
/* Stops (or resumes) reading the response, for a client that does not keep up. */
void cd_upstream_pause(cd_upstream_req *u, bool pause);
/* Gives up on the request: no callback runs any more, the connection is closed. */
void cd_upstream_cancel(cd_upstream_req *u);

#endif
