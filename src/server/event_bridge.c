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

typedef enum { EV_JSON, EV_TEXT, EV_BINARY } event_kind;

/* One allocation per event besides a binary payload: the strings, and a text message, live in
 * its tail. */
typedef struct event {
    struct event *next;
    event_kind kind;
    json_t *data;  /* EV_JSON */
    char *payload; /* EV_TEXT: the ready message (in the tail); EV_BINARY: the frame (owned) */
    size_t len;
    const char *type; /* EV_JSON: the type; EV_TEXT: what the message is (bookkeeping) */
    const char *node; /* EV_TEXT: the node it names, or NULL */
    const char *sid;  /* the client, or NULL for everyone */
    char strings[];
} event;

struct cd_event_bridge {
    cd_instance *inst;
    uv_async_t async;
    uv_timer_t retry;
    int open_handles;
    pthread_mutex_t lock;
    pthread_cond_t room;
    pthread_t loop_thread;
    event *head, *tail; /* pushed, not yet taken by the loop */
    size_t pending;     /* pushed and not yet sent (taken ones included) */
    bool closing;
    /* Loop thread only: events taken from the list in one go, still to send. */
    event *backlog;
    uint64_t congested_since; /* loop ms, 0 when no client is congested */
};

/* An event with copies of type, node, sid and (EV_TEXT) the message of text_len bytes;
 * NULL when out of memory. */
static event *event_new(event_kind kind, const char *type, const char *node, const char *sid, const char *text,
                        size_t text_len) {
    size_t lt = type ? strlen(type) + 1 : 0, ln = node ? strlen(node) + 1 : 0, ls = sid ? strlen(sid) + 1 : 0;
    size_t lm = text ? text_len : 0;
    event *ev = malloc(sizeof *ev + lt + ln + ls + lm);
    if (!ev) return NULL;
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    char *p = ev->strings;
    if (type) ev->type = memcpy(p, type, lt), p += lt;
    if (node) ev->node = memcpy(p, node, ln), p += ln;
    if (sid) ev->sid = memcpy(p, sid, ls), p += ls;
    if (text) {
        ev->payload = memcpy(p, text, lm);
        ev->len = lm;
    }
    return ev;
}

static void event_free(event *ev) {
    json_decref(ev->data);
    if (ev->kind == EV_BINARY) free(ev->payload);
    free(ev);
}

static void free_list(event *ev) {
    while (ev) {
        event *next = ev->next;
        event_free(ev);
        ev = next;
    }
}

/* Takes every pushed event at once: the executor and the loop meet at the lock once per
 * wake-up instead of once per event. */
static void take_all(cd_event_bridge *b) {
    pthread_mutex_lock(&b->lock);
    event *list = b->head;
    b->head = b->tail = NULL;
    pthread_mutex_unlock(&b->lock);
    if (!b->backlog) {
        b->backlog = list;
        return;
    }
    event *last = b->backlog;
    while (last->next) last = last->next;
    last->next = list;
}

/* Counts sent events off, waking the executor when it waits for room. */
static void count_sent(cd_event_bridge *b, size_t n) {
    if (!n) return;
    pthread_mutex_lock(&b->lock);
    size_t before = b->pending;
    b->pending -= n;
    if (before > RESUME_PENDING && b->pending <= RESUME_PENDING) pthread_cond_broadcast(&b->room);
    pthread_mutex_unlock(&b->lock);
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

static void send_event(cd_event_bridge *b, event *ev) {
    cd_ws_clients *clients = b->inst->clients;
    if (!clients || b->closing) return;
    if (ev->kind == EV_JSON) {
        cd_ws_clients_send(clients, ev->type, ev->data, ev->sid);
        ev->data = NULL;
    } else if (ev->kind == EV_TEXT) {
        cd_ws_clients_send_text(clients, ev->type, ev->node, ev->payload, ev->len, ev->sid);
    } else {
        cd_ws_clients_send_binary(clients, ev->payload, ev->len, ev->sid);
    }
}

static void drain_events(cd_event_bridge *b) {
    cd_ws_clients *clients = b->inst->clients;
    size_t sent = 0;
    take_all(b);
    while (b->backlog) {
        if (clients && !b->closing && cd_ws_clients_max_queued(clients) > CLIENT_HIGH) {
            uint64_t now = uv_now(b->inst->loop);
            if (!b->congested_since) b->congested_since = now ? now : 1;
            if (now - b->congested_since >= STALL_MS) {
                cd_ws_clients_drop_congested(clients, CLIENT_HIGH);
                b->congested_since = 0;
                continue;
            }
            uv_timer_start(&b->retry, on_retry, RETRY_MS, 0);
            break;
        }
        b->congested_since = 0;
        event *ev = b->backlog;
        b->backlog = ev->next;
        send_event(b, ev);
        event_free(ev);
        if (++sent == 1024) { /* let a waiting executor go on while the rest is sent */
            count_sent(b, sent);
            sent = 0;
        }
    }
    count_sent(b, sent);
}

static void on_async(uv_async_t *a) { drain(a->data); }
static void on_retry(uv_timer_t *t) { drain(t->data); }

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
    event *ev = event_new(EV_JSON, type, NULL, sid, NULL, 0);
    if (!ev) {
        json_decref(data);
        return;
    }
    ev->data = data;
    push(ctx, ev);
}

static void on_event_text(void *ctx, const char *type, const char *node, const char *message, size_t len,
                          const char *sid) {
    event *ev = event_new(EV_TEXT, type, node, sid, message, len);
    if (ev) push(ctx, ev);
}

static void on_binary(void *ctx, uint32_t kind, const void *payload, size_t len, const char *sid) {
    event *ev = event_new(EV_BINARY, NULL, NULL, sid, NULL, 0);
    if (!ev) return;
    unsigned char *frame = malloc(4 + len);
    if (!frame) {
        free(ev);
        return;
    }
    frame[0] = (unsigned char)(kind >> 24);
    frame[1] = (unsigned char)(kind >> 16);
    frame[2] = (unsigned char)(kind >> 8);
    frame[3] = (unsigned char)kind;
    memcpy(frame + 4, payload, len);
    ev->payload = (char *)frame;
    ev->len = 4 + len;
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
    free_list(b->head);
    free_list(b->backlog);
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
