#include "server/event_bridge.h"

#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
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
/* Per-node events (progress_state, executing) that come faster than this after the last
 * write wait for the next one, so that a fast chain of nodes costs the loop, the kernel and
 * the client one wake-up and one write per millisecond rather than per event. Any other event
 * (a prompt's start and end, status) goes out at once, and takes the waiting ones with it. */
#define BATCH_MS 1

typedef enum { EV_JSON, EV_TEXT, EV_BINARY } event_kind;

/* Events are written one after another into chunks of memory that the loop takes whole and
 * hands back once sent: a prompt of N nodes makes 2N events, and allocating and freeing each
 * one across two threads cost more than copying it. An event larger than a chunk gets a chunk
 * of its own (a big preview image). */
#define CHUNK_BYTES (64u * 1024)
#define SPARE_CHUNKS 8

typedef struct chunk {
    struct chunk *next;
    size_t cap, used; /* bytes of data, bytes written */
    size_t read;      /* loop thread: bytes of it already sent */
    _Alignas(max_align_t) char data[];
} chunk;

/* An event as written in a chunk, followed by type, node and sid (each with its NUL, absent
 * when its length is 0) and the payload; padded to 8 bytes. */
typedef struct {
    uint32_t kind;
    uint32_t type_len, node_len, sid_len;
    size_t payload_len; /* EV_TEXT: the message; EV_BINARY: the frame */
    json_t *data;       /* EV_JSON: the event's data (owned) */
} record;

/* A record's fields, as the loop reads them. */
typedef struct {
    event_kind kind;
    json_t *data;
    const char *type, *node, *sid;
    const char *payload;
    size_t len;
} event;

struct cd_event_bridge {
    cd_instance *inst;
    uv_async_t async;
    uv_timer_t retry;
    uv_timer_t batch;
    bool batch_armed;
    uint64_t last_drain; /* loop ms */
    int open_handles;
    pthread_mutex_t lock;
    pthread_cond_t room;
    pthread_t loop_thread;
    chunk *head, *tail; /* written, not yet taken by the loop */
    chunk *spare;       /* sent chunks kept for reuse */
    size_t n_spare;
    size_t pending;     /* events written and not yet sent (taken ones included) */
    bool urgent;        /* an event that must not wait for the batch was written */
    bool closing;
    /* Loop thread only: chunks taken in one go, still to send. */
    chunk *backlog;
    uint64_t congested_since; /* loop ms, 0 when no client is congested */
};

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

static size_t record_size(const record *r) {
    return pad8(sizeof *r + r->type_len + r->node_len + r->sid_len + r->payload_len);
}

static event record_event(record *r) {
    char *p = (char *)(r + 1);
    event ev = {.kind = (event_kind)r->kind, .data = r->data, .len = r->payload_len};
    if (r->type_len) ev.type = p;
    p += r->type_len;
    if (r->node_len) ev.node = p;
    p += r->node_len;
    if (r->sid_len) ev.sid = p;
    p += r->sid_len;
    ev.payload = p;
    return ev;
}

/* Drops what the unsent events of c and the chunks after it hold, and the chunks. */
static void free_chunks(chunk *c) {
    while (c) {
        for (size_t off = c->read; off < c->used;) {
            record *r = (record *)(c->data + off);
            json_decref(r->data);
            off += record_size(r);
        }
        chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* A chunk with room for n bytes (lock held). */
static chunk *chunk_get(cd_event_bridge *b, size_t n) {
    chunk *c;
    if (n <= CHUNK_BYTES && b->spare) {
        c = b->spare;
        b->spare = c->next;
        b->n_spare--;
    } else {
        size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->cap = cap;
    }
    c->next = NULL;
    c->used = c->read = 0;
    return c;
}

/* A sent chunk goes back to the spares (loop thread). */
static void chunk_put(cd_event_bridge *b, chunk *c) {
    pthread_mutex_lock(&b->lock);
    if (c->cap == CHUNK_BYTES && b->n_spare < SPARE_CHUNKS) {
        c->next = b->spare;
        b->spare = c;
        b->n_spare++;
        c = NULL;
    }
    pthread_mutex_unlock(&b->lock);
    free(c);
}

/* Takes every written chunk at once: the executor and the loop meet at the lock once per
 * wake-up instead of once per event. */
static void take_all(cd_event_bridge *b) {
    pthread_mutex_lock(&b->lock);
    chunk *list = b->head;
    b->head = b->tail = NULL;
    pthread_mutex_unlock(&b->lock);
    chunk **end = &b->backlog;
    while (*end) end = &(*end)->next;
    *end = list;
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
    b->last_drain = uv_now(b->inst->loop);
    cd_ws_clients *clients = b->inst->clients;
    bool cork = clients && !b->closing;
    if (cork) cd_ws_clients_cork(clients, true);
    drain_events(b);
    if (cork) cd_ws_clients_cork(clients, false);
}

static void send_event(cd_event_bridge *b, event *ev) {
    cd_ws_clients *clients = b->inst->clients;
    if (!clients || b->closing) {
        json_decref(ev->data);
        return;
    }
    if (ev->kind == EV_JSON) cd_ws_clients_send(clients, ev->type, ev->data, ev->sid); /* consumes data */
    else if (ev->kind == EV_TEXT) cd_ws_clients_send_text(clients, ev->type, ev->node, ev->payload, ev->len, ev->sid);
    else cd_ws_clients_send_binary(clients, ev->payload, ev->len, ev->sid);
}

static void drain_events(cd_event_bridge *b) {
    cd_ws_clients *clients = b->inst->clients;
    size_t sent = 0;
    take_all(b);
    while (b->backlog) {
        chunk *c = b->backlog;
        if (c->read == c->used) {
            b->backlog = c->next;
            chunk_put(b, c);
            continue;
        }
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
        record *r = (record *)(c->data + c->read);
        c->read += record_size(r);
        event ev = record_event(r);
        r->data = NULL; /* handed over */
        send_event(b, &ev);
        if (++sent == 1024) { /* let a waiting executor go on while the rest is sent */
            count_sent(b, sent);
            sent = 0;
        }
    }
    count_sent(b, sent);
}

static void on_batch(uv_timer_t *t) {
    cd_event_bridge *b = t->data;
    b->batch_armed = false;
    drain(b);
}

static void on_async(uv_async_t *a) {
    cd_event_bridge *b = a->data;
    pthread_mutex_lock(&b->lock);
    bool urgent = b->urgent;
    b->urgent = false;
    pthread_mutex_unlock(&b->lock);
    if (!urgent && !b->closing && uv_now(b->inst->loop) - b->last_drain < BATCH_MS) {
        if (!b->batch_armed) uv_timer_start(&b->batch, on_batch, BATCH_MS, 0);
        b->batch_armed = true;
        return;
    }
    drain(b);
}

static void on_retry(uv_timer_t *t) { drain(t->data); }

/* Events that may wait for the batch: the ones sent for every node. */
static bool batchable(event_kind kind, const char *type) {
    return kind == EV_TEXT && type && (!strcmp(type, "progress_state") || !strcmp(type, "executing"));
}

/* Writes an event (data consumed; payload copied, or laid out as a binary frame of the given
 * kind after a 4-byte header when frame_kind >= 0). */
static void push(cd_event_bridge *b, event_kind kind, json_t *data, const char *type, const char *node,
                 const char *sid, const void *payload, size_t len, long frame_kind) {
    record r = {.kind = kind, .data = data};
    r.type_len = type ? (uint32_t)strlen(type) + 1 : 0;
    r.node_len = node ? (uint32_t)strlen(node) + 1 : 0;
    r.sid_len = sid ? (uint32_t)strlen(sid) + 1 : 0;
    r.payload_len = (frame_kind >= 0 ? 4 : 0) + (payload ? len : 0);
    size_t size = record_size(&r);
    pthread_mutex_lock(&b->lock);
    /* Only the executor waits; the loop thread (status after a submit) must never block on
     * itself. */
    while (!b->closing && b->pending >= MAX_PENDING && !pthread_equal(pthread_self(), b->loop_thread))
        pthread_cond_wait(&b->room, &b->lock);
    chunk *c = b->tail;
    if (!b->closing && (!c || c->cap - c->used < size)) {
        c = chunk_get(b, size);
        if (c) {
            if (b->tail) b->tail->next = c;
            else b->head = c;
            b->tail = c;
        }
    }
    if (b->closing || !c) {
        pthread_mutex_unlock(&b->lock);
        if (!b->closing) cd_warn("events: out of memory; an event is lost");
        json_decref(data);
        return;
    }
    char *p = c->data + c->used;
    memcpy(p, &r, sizeof r);
    p += sizeof r;
    if (type) memcpy(p, type, r.type_len), p += r.type_len;
    if (node) memcpy(p, node, r.node_len), p += r.node_len;
    if (sid) memcpy(p, sid, r.sid_len), p += r.sid_len;
    if (frame_kind >= 0) {
        uint32_t k = (uint32_t)frame_kind;
        unsigned char head[4] = {(unsigned char)(k >> 24), (unsigned char)(k >> 16), (unsigned char)(k >> 8),
                                 (unsigned char)k};
        memcpy(p, head, 4);
        p += 4;
    }
    if (payload && len) memcpy(p, payload, len);
    c->used += size;
    b->pending++;
    /* The loop is woken by the first event after it took the others (it takes everything
     * written by then), and by any event that must not wait. */
    bool wake = b->head == c && c->used == size;
    if (!batchable(kind, type)) wake = b->urgent = true;
    pthread_mutex_unlock(&b->lock);
    if (wake) uv_async_send(&b->async);
}

static void on_event(void *ctx, const char *type, json_t *data, const char *sid) {
    push(ctx, EV_JSON, data, type, NULL, sid, NULL, 0, -1);
}

static void on_event_text(void *ctx, const char *type, const char *node, const char *message, size_t len,
                          const char *sid) {
    push(ctx, EV_TEXT, NULL, type, node, sid, message, len, -1);
}

static void on_binary(void *ctx, uint32_t kind, const void *payload, size_t len, const char *sid) {
    push(ctx, EV_BINARY, NULL, NULL, NULL, sid, payload, len, (long)kind);
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
    uv_timer_init(inst->loop, &b->batch);
    b->batch.data = b;
    b->open_handles = 3;
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
    free_chunks(b->head);
    free_chunks(b->backlog);
    free_chunks(b->spare);
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
    uv_close((uv_handle_t *)&b->batch, on_closed);
}
