#include "hub/store_listen.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define RETRY_MS 1000

struct cd_store_listener {
    uv_loop_t *loop;
    char *uri;
    PGconn *conn;
    uv_poll_t poll;
    bool polling, poll_inited;
    uv_timer_t retry;
    cd_store_notify_cb cb;
    void *user;
    bool stopping;
    int open_handles;
    void (*closed)(void *user);
    void *closed_user;
};

static void try_connect(cd_store_listener *l);

static void poll_closed(uv_handle_t *h);

/* The poll handle belongs to the connection's socket: it goes with it. */
static void close_poll(cd_store_listener *l) {
    if (l->polling) uv_poll_stop(&l->poll);
    l->polling = false;
    if (l->poll_inited) {
        l->poll_inited = false;
        uv_close((uv_handle_t *)&l->poll, poll_closed);
    }
}

static void drop_connection(cd_store_listener *l, const char *why) {
    close_poll(l);
    if (l->conn) cd_warn("hub: lost the store's notifications (%s); connecting again", why);
    PQfinish(l->conn);
    l->conn = NULL;
    if (!l->stopping) uv_timer_start(&l->retry, (uv_timer_cb)try_connect, RETRY_MS, 0);
}

static void on_readable(uv_poll_t *p, int status, int events) {
    cd_store_listener *l = p->data;
    (void)events;
    if (status < 0 || !PQconsumeInput(l->conn)) {
        drop_connection(l, status < 0 ? uv_strerror(status) : PQerrorMessage(l->conn));
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(l->conn))) {
        l->cb(n->relname, n->extra ? n->extra : "", l->user);
        PQfreemem(n);
    }
}

static void try_connect(cd_store_listener *l) {
    if (l->stopping) return;
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const values[] = {"2", "comfyd hub (notifications)", l->uri, NULL};
    l->conn = PQconnectdbParams(keys, values, 1);
    PGresult *r = NULL;
    if (PQstatus(l->conn) == CONNECTION_OK) r = PQexec(l->conn, "LISTEN comfyd_queue; LISTEN comfyd_instances");
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        cd_debug("hub: cannot listen to the store: %s", PQerrorMessage(l->conn));
        PQclear(r);
        PQfinish(l->conn);
        l->conn = NULL;
        uv_timer_start(&l->retry, (uv_timer_cb)try_connect, RETRY_MS, 0);
        return;
    }
    PQclear(r);
    PQsetnonblocking(l->conn, 1);
    if (uv_poll_init_socket(l->loop, &l->poll, PQsocket(l->conn)) != 0) {
        PQfinish(l->conn);
        l->conn = NULL;
        uv_timer_start(&l->retry, (uv_timer_cb)try_connect, RETRY_MS, 0);
        return;
    }
    l->poll.data = l;
    l->poll_inited = true;
    l->open_handles++;
    uv_poll_start(&l->poll, UV_READABLE, on_readable);
    l->polling = true;
    l->cb("", "", l->user); /* whatever was said while nobody listened */
}

cd_store_listener *cd_store_listen_start(uv_loop_t *loop, const char *uri, cd_store_notify_cb cb, void *user) {
    if (!uri || (strncmp(uri, "postgres://", 11) != 0 && strncmp(uri, "postgresql://", 13) != 0)) return NULL;
    cd_store_listener *l = calloc(1, sizeof *l);
    if (!l || !(l->uri = strdup(uri))) {
        free(l);
        return NULL;
    }
    l->loop = loop;
    l->cb = cb;
    l->user = user;
    uv_timer_init(loop, &l->retry);
    l->retry.data = l;
    l->open_handles = 1;
    try_connect(l);
    return l;
}

static void maybe_free(cd_store_listener *l) {
    if (l->open_handles > 0) return;
    if (l->closed) l->closed(l->closed_user);
    free(l->uri);
    free(l);
}

static void poll_closed(uv_handle_t *h) {
    cd_store_listener *l = h->data;
    l->open_handles--;
    maybe_free(l);
}

static void timer_closed(uv_handle_t *h) {
    cd_store_listener *l = h->data;
    l->open_handles--;
    maybe_free(l);
}

void cd_store_listen_stop(cd_store_listener *l, void (*closed)(void *user), void *user) {
    if (!l) {
        if (closed) closed(user);
        return;
    }
    l->stopping = true;
    l->closed = closed;
    l->closed_user = user;
    close_poll(l);
    PQfinish(l->conn);
    l->conn = NULL;
    uv_timer_stop(&l->retry);
    uv_close((uv_handle_t *)&l->retry, timer_closed);
}
