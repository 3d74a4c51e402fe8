#include "server/event_bridge.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/ws.h"
#include "server/ws_clients.h"

/* Back-pressure, end to end: the loop stops handing events to the sockets while some client
 * has more than CLIENT_HIGH bytes unsent; events then wait here, and once MAX_PENDING wait,
 * the executor thread pauses until the loop catches up. A client that stays congested for
 * STALL_MS is dropped, so a client that stopped reading cannot hold up execution for long,
 * and a slow one only slows it down instead of growing memory without bound. */
#define MAX_PENDING 20000
#define RESUME_PENDING 10000
#define CLIENT_HIGH (4u * 1024 * 1024)
#define STALL_MS 10000
#define RETRY_MS 10

typedef struct event {
    char *type;    /* NULL for a binary frame or a ready text message */
    char *text;    /* a ready text message */
    char *note_type, *note_node; /* what a ready message is, for the clients' bookkeeping */
    json_t *data;
    char *sid;
    unsigned char *bin;
    size_t len;
    struct event *next;
} event;

struct cd_event_bridge {
    cd_instance *inst;
    uv_async_t async;
    uv_timer_t retry;
    int open_handles;
    pthread_mutex_t lock;
    pthread_cond_t room;
    pthread_t loop_thread;
    event *head, *tail;
    size_t pending;
    bool closing;
    uint64_t congested_since; /* loop ms, 0 when no client is congested */
};

static void event_free(event *ev) {
    free(ev->type);
    free(ev->text);
    free(ev->note_type);
    free(ev->note_node);
    json_decref(ev->data);
    free(ev->sid);
    free(ev->bin);
    free(ev);
}

static event *pop(cd_event_bridge *b) {
    pthread_mutex_lock(&b->lock);
    event *ev = b->head;
    if (ev) {
        b->head = ev->next;
        if (!b->head) b->tail = NULL;
        if (--b->pending == RESUME_PENDING) pthread_cond_broadcast(&b->room);
    }
    pthread_mutex_unlock(&b->lock);
    return ev;
}

static void on_retry(uv_timer_t *t);

static void drain_events(cd_event_bridge *b);

/* The events waiting go out as one write per client rather than one per event. */
static void drain(cd_event_bridge *b) {
    cd_ws_clients *clients = b->inst->clients;
    bool cork = clients && !b->closing;
    if (cork) cd_ws_clients_cork(clients, true);
    drain_events(b);
    if (cork) cd_ws_clients_cork(clients, false);
}

static void drain_events(cd_event_bridge *b) {
    cd_ws_clients *clients = b->inst->clients;
    for (;;) {
        if (clients && !b->closing && cd_ws_clients_max_queued(clients) > CLIENT_HIGH) {
            uint64_t now = uv_now(b->inst->loop);
            if (!b->congested_since) b->congested_since = now ? now : 1;
            if (now - b->congested_since >= STALL_MS) {
                cd_ws_clients_drop_congested(clients, CLIENT_HIGH);
                b->congested_since = 0;
                continue;
            }
            uv_timer_start(&b->retry, on_retry, RETRY_MS, 0);
            return;
        }
        b->congested_since = 0;
        event *ev = pop(b);
        if (!ev) return;
        if (clients && !b->closing) {
            if (ev->type) {
                cd_ws_clients_send(clients, ev->type, ev->data, ev->sid);
                ev->data = NULL;
            } else if (ev->text) {
                cd_ws_clients_send_text(clients, ev->note_type, ev->note_node, ev->text, ev->len, ev->sid);
            } else {
                cd_ws_clients_send_binary(clients, ev->bin, ev->len, ev->sid);
            }
        }
        event_free(ev);
    }
}

static void on_async(uv_async_t *a) { drain(a->data); }
static void on_retry(uv_timer_t *t) {
    drain(t->data);
}

static void push(cd_event_bridge *b, event *ev) {
    pthread_mutex_lock(&b->lock);
    /* Only the executor waits; the loop thread (status after a submit) must never block on
     * itself. */
    while (!b->closing && b->pending >= MAX_PENDING && !pthread_equal(pthread_self(), b->loop_thread))
        pthread_cond_wait(&b->room, &b->lock);
    if (b->closing) {
        pthread_mutex_unlock(&b->lock);
        event_free(ev);
        return;
    }
    if (b->tail) b->tail->next = ev;
    else b->head = ev;
    b->tail = ev;
    b->pending++;
    pthread_mutex_unlock(&b->lock);
    uv_async_send(&b->async);
}

static void on_event(void *ctx, const char *type, json_t *data, const char *sid) {
    event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        json_decref(data);
        return;
    }
    ev->type = strdup(type);
    ev->data = data;
    ev->sid = sid ? strdup(sid) : NULL;
    push(ctx, ev);
}

static void on_event_text(void *ctx, const char *type, const char *node, char *message, size_t len, const char *sid) {
    event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        free(message);
        return;
    }
    ev->note_type = strdup(type);
    ev->note_node = node ? strdup(node) : NULL;
    ev->text = message;
    ev->len = len;
    ev->sid = sid ? strdup(sid) : NULL;
    push(ctx, ev);
}

static void on_binary(void *ctx, uint32_t kind, const void *payload, size_t len, const char *sid) {
    event *ev = calloc(1, sizeof *ev);
    if (!ev) return;
    ev->bin = malloc(4 + len);
    if (!ev->bin) {
        free(ev);
        return;
    }
    ev->bin[0] = (unsigned char)(kind >> 24);
    ev->bin[1] = (unsigned char)(kind >> 16);
    ev->bin[2] = (unsigned char)(kind >> 8);
    ev->bin[3] = (unsigned char)kind;
    memcpy(ev->bin + 4, payload, len);
    ev->len = 4 + len;
    ev->sid = sid ? strdup(sid) : NULL;
    push(ctx, ev);
}

static const char *on_directory(void *ctx, const char *type) {
    cd_event_bridge *b = ctx;
    return cd_instance_directory(b->inst, type);
}

cd_event_bridge *cd_event_bridge_new(cd_instance *inst) {
    cd_event_bridge *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->inst = inst;
    b->loop_thread = pthread_self();
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->room, NULL);
    if (uv_async_init(inst->loop, &b->async, on_async) != 0) {
        free(b);
        return NULL;
    }
    b->async.data = b;
    uv_timer_init(inst->loop, &b->retry);
    b->retry.data = b;
    b->open_handles = 2;
    return b;
}

cd_event_sink cd_event_bridge_sink(cd_event_bridge *b) {
    return (cd_event_sink){
        .ctx = b, .event = on_event, .event_text = on_event_text, .binary = on_binary, .directory = on_directory,
        .no_metadata = b->inst->opts->disable_metadata};
}

static void on_closed(uv_handle_t *h) {
    cd_event_bridge *b = h->data;
    if (--b->open_handles > 0) return;
    event *list = b->head;
    while (list) {
        event *next = list->next;
        event_free(list);
        list = next;
    }
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->room);
    free(b);
}

void cd_event_bridge_shutdown(cd_event_bridge *b) {
    pthread_mutex_lock(&b->lock);
    b->closing = true;
    pthread_cond_broadcast(&b->room);
    pthread_mutex_unlock(&b->lock);
}

void cd_event_bridge_close(cd_event_bridge *b) {
    cd_event_bridge_shutdown(b);
    uv_close((uv_handle_t *)&b->async, on_closed);
    uv_close((uv_handle_t *)&b->retry, on_closed);
}
