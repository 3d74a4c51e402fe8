#include "server/event_bridge.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws.h"
#include "server/ws_clients.h"

typedef struct event {
    char *type;    /* NULL for a binary frame */
    json_t *data;
    char *sid;
    unsigned char *bin;
    size_t len;
    struct event *next;
} event;

struct cd_event_bridge {
    cd_instance *inst;
    uv_async_t async;
    pthread_mutex_t lock;
    event *head, *tail;
    bool closing;
};

static void event_free(event *ev) {
    free(ev->type);
    json_decref(ev->data);
    free(ev->sid);
    free(ev->bin);
    free(ev);
}

static void drain(uv_async_t *a) {
    cd_event_bridge *b = a->data;
    pthread_mutex_lock(&b->lock);
    event *list = b->head;
    b->head = b->tail = NULL;
    pthread_mutex_unlock(&b->lock);
    while (list) {
        event *next = list->next;
        cd_ws_clients *clients = b->inst->clients;
        if (clients && !b->closing) {
            if (list->type) {
                cd_ws_clients_send(clients, list->type, list->data, list->sid);
                list->data = NULL;
            } else {
                cd_ws_clients_send_binary(clients, list->bin, list->len, list->sid);
            }
        }
        event_free(list);
        list = next;
    }
}

static void push(cd_event_bridge *b, event *ev) {
    pthread_mutex_lock(&b->lock);
    if (b->closing) {
        pthread_mutex_unlock(&b->lock);
        event_free(ev);
        return;
    }
    if (b->tail) b->tail->next = ev;
    else b->head = ev;
    b->tail = ev;
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
    if (!strcmp(type, "output")) return b->inst->output_dir;
    if (!strcmp(type, "input")) return b->inst->input_dir;
    if (!strcmp(type, "temp")) return b->inst->temp_dir;
    return NULL;
}

cd_event_bridge *cd_event_bridge_new(cd_instance *inst) {
    cd_event_bridge *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->inst = inst;
    pthread_mutex_init(&b->lock, NULL);
    if (uv_async_init(inst->loop, &b->async, drain) != 0) {
        free(b);
        return NULL;
    }
    b->async.data = b;
    return b;
}

cd_event_sink cd_event_bridge_sink(cd_event_bridge *b) {
    return (cd_event_sink){.ctx = b, .event = on_event, .binary = on_binary, .directory = on_directory};
}

static void on_closed(uv_handle_t *h) {
    cd_event_bridge *b = h->data;
    event *list = b->head;
    while (list) {
        event *next = list->next;
        event_free(list);
        list = next;
    }
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void cd_event_bridge_close(cd_event_bridge *b) {
    pthread_mutex_lock(&b->lock);
    b->closing = true;
    pthread_mutex_unlock(&b->lock);
    uv_close((uv_handle_t *)&b->async, on_closed);
}
