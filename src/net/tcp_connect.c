#include "net/tcp_connect.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uv_getaddrinfo_t gai;
    uv_connect_t connect;
    uv_timer_t timer;
    uv_tcp_t *tcp;
    cd_tcp_connect_cb cb;
    void *user;
    int pending; /* handles and requests still to come back */
    bool done;
    bool starting; /* inside cd_tcp_connect: a failure now is reported a turn later */
    int status;
    char error[160];
} attempt;

static void attempt_release(attempt *a) {
    if (--a->pending == 0) free(a);
}

static void on_handle_closed(uv_handle_t *h) {
    attempt *a = h->data;
    if (h == (uv_handle_t *)a->tcp) {
        free(a->tcp);
        a->tcp = NULL;
    }
    attempt_release(a);
}

static void finish(attempt *a, int status, const char *what) {
    if (a->done) return;
    a->done = true;
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, on_handle_closed);
    uv_tcp_t *tcp = a->tcp;
    if (status == 0) {
        a->tcp = NULL;
        tcp->data = NULL;
        a->pending--; /* the handle is the caller's now; the timer and the request still hold a */
        a->cb(tcp, 0, NULL, a->user);
    } else {
        snprintf(a->error, sizeof a->error, "%s: %s", what, uv_strerror(status));
        if (tcp && !uv_is_closing((uv_handle_t *)tcp)) uv_close((uv_handle_t *)tcp, on_handle_closed);
        a->cb(NULL, status, a->error, a->user);
    }
}

static void on_failed_at_start(uv_timer_t *t) {
    attempt *a = t->data;
    finish(a, a->status, "connect");
}

static void on_connected(uv_connect_t *req, int status) {
    attempt *a = req->data;
    if (!a->done) finish(a, status, "connect");
    attempt_release(a);
}

static void start_connect(attempt *a, const struct sockaddr *addr) {
    uv_loop_t *loop = a->timer.loop;
    a->tcp = malloc(sizeof *a->tcp);
    if (!a->tcp) {
        finish(a, UV_ENOMEM, "connect");
        return;
    }
    uv_tcp_init(loop, a->tcp);
    a->tcp->data = a;
    a->pending++; /* the tcp handle, until handed over or closed */
    a->connect.data = a;
    int rc = uv_tcp_connect(&a->connect, a->tcp, addr, on_connected);
    if (rc < 0 && a->starting) { /* the callback runs on a later turn, always */
        a->status = rc;
        uv_timer_start(&a->timer, on_failed_at_start, 0, 0);
        return;
    }
    if (rc < 0) {
        finish(a, rc, "connect");
        return;
    }
    a->pending++;
    uv_tcp_nodelay(a->tcp, 1);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    attempt *a = req->data;
    if (!a->done) {
        if (status < 0) finish(a, status, "resolve");
        else start_connect(a, res->ai_addr);
    }
    uv_freeaddrinfo(res);
    attempt_release(a);
}

static void on_timeout(uv_timer_t *t) {
    attempt *a = t->data;
    uv_cancel((uv_req_t *)&a->gai); /* harmless once resolution is over */
    finish(a, UV_ETIMEDOUT, "connect");
}

int cd_tcp_connect(uv_loop_t *loop, const char *host, int port, unsigned timeout_ms, cd_tcp_connect_cb cb, void *user) {
    attempt *a = calloc(1, sizeof *a);
    if (!a) return UV_ENOMEM;
    a->cb = cb;
    a->user = user;
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    a->pending = 1; /* the timer */
    uv_timer_start(&a->timer, on_timeout, timeout_ms, 0);
    /* A numeric address (every instance's) needs no resolver: connecting at once spares a trip
     * through the thread pool, which may be busy hashing passwords. */
    struct sockaddr_storage numeric;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&numeric) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&numeric) == 0) {
        a->starting = true;
        start_connect(a, (const struct sockaddr *)&numeric);
        a->starting = false;
        return 0;
    }
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    a->gai.data = a;
    int rc = uv_getaddrinfo(loop, &a->gai, on_resolved, host, portstr, &hints);
    if (rc < 0) {
        uv_close((uv_handle_t *)&a->timer, on_handle_closed);
        return rc;
    }
    a->pending++;
    return 0;
}
