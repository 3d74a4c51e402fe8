#include "server/ws_clients.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "net/ws.h"
#include "server/features.h"

typedef struct client {
    cd_ws_clients *owner;
    cd_ws *ws;
    char *sid;
    json_t *feature_flags;
    bool first_message_seen;
    bool registered; /* false once a newer socket took the same sid */
    struct client *prev, *next;
} client;

struct cd_ws_clients {
    cd_instance *inst;
    client *all; /* every open socket, registered or not */
    size_t count;
    bool shutting_down;
    /* The node now running and the client whose prompt it is: a client that reconnects during
     * its prompt is told where it stands (ComfyUI does the same). Empty: none. */
    cd_buf running_sid, running_node;
    /* The last `progress_state` message (it names the running node with its display, parent
     * and real ids, and is sent even for prompts without a client), else the last `executing`
     * one, as text (the executor writes both by hand): the metadata of a type-4 preview frame,
     * parsed only when a client that asked for it gets a preview. Empty: none. These change
     * with every node, so they are buffers that keep their memory, not strings made anew. */
    cd_buf last_progress, last_executing;
    char *prompt_id;
};

cd_ws_clients *cd_ws_clients_new(cd_instance *inst) {
    cd_ws_clients *c = calloc(1, sizeof *c);
    if (c) c->inst = inst;
    return c;
}

size_t cd_ws_clients_count(const cd_ws_clients *clients) { return clients->count; }

static client *find_registered(cd_ws_clients *clients, const char *sid) {
    for (client *c = clients->all; c; c = c->next)
        if (c->registered && strcmp(c->sid, sid) == 0) return c;
    return NULL;
}

static void send_frame(client *c, const char *type, json_t *data) {
    json_t *msg = json_pack("{s:s, s:O}", "type", type, "data", data);
    char *text = msg ? cd_json_dumps(msg) : NULL;
    if (text) cd_ws_send_text(c->ws, text, strlen(text));
    free(text);
    json_decref(msg);
}

/* Sets b to text (NULL empties it). Out of memory also empties it: a note is then missing,
 * which costs a reconnecting client its "executing" or a preview its metadata. */
static void set_note(cd_buf *b, const char *text, size_t len) {
    cd_buf_reset(b);
    if (text && cd_buf_append(b, text, len) < 0) cd_buf_reset(b);
}

static void note_running(cd_ws_clients *clients, const char *type, const char *node, const char *sid) {
    if (!type || strcmp(type, "executing") != 0 || !sid) return;
    set_note(&clients->running_sid, node ? sid : NULL, strlen(sid));
    set_note(&clients->running_node, node, node ? strlen(node) : 0);
}

/* The message as text into b: the text when there is one, else type and data serialised. */
static void note_message(cd_buf *b, const char *type, const char *text, size_t len, json_t *data) {
    if (text) {
        set_note(b, text, len);
        return;
    }
    json_t *msg = json_pack("{s:s, s:O}", "type", type, "data", data);
    cd_buf_reset(b); /* written straight into the note; a failure leaves it empty, as set_note */
    if (!msg || cd_json_write(b, msg, false) < 0) cd_buf_reset(b);
    json_decref(msg);
}

static void note_preview_context(cd_ws_clients *clients, const char *type, const char *text, size_t len,
                                 json_t *data) {
    if (!strcmp(type, "progress_state")) {
        note_message(&clients->last_progress, type, text, len, data);
    } else if (!strcmp(type, "execution_success") || !strcmp(type, "execution_error") ||
               !strcmp(type, "execution_interrupted")) {
        set_note(&clients->last_progress, NULL, 0);
        set_note(&clients->last_executing, NULL, 0);
    } else if (!strcmp(type, "execution_start")) {
        const char *id = json_string_value(json_object_get(data, "prompt_id"));
        free(clients->prompt_id);
        clients->prompt_id = id ? strdup(id) : NULL;
        set_note(&clients->last_executing, NULL, 0);
    } else if (!strcmp(type, "executing")) {
        set_note(&clients->last_executing, NULL, 0);
        if (text || json_is_string(json_object_get(data, "node")))
            note_message(&clients->last_executing, type, text, len, data);
    }
}

static void note_executing(cd_ws_clients *clients, const char *type, json_t *data, const char *sid) {
    const char *node = json_string_value(json_object_get(data, "display_node"));
    if (!node) node = json_string_value(json_object_get(data, "node"));
    note_running(clients, type, node, sid);
    note_preview_context(clients, type, NULL, 0, data);
}

void cd_ws_clients_send(cd_ws_clients *clients, const char *type, json_t *data, const char *sid) {
    note_executing(clients, type, data, sid);
    if (sid) {
        client *c = find_registered(clients, sid);
        if (c) send_frame(c, type, data);
    } else {
        /* Serialise once for a broadcast. */
        json_t *msg = json_pack("{s:s, s:O}", "type", type, "data", data);
        char *text = msg ? cd_json_dumps(msg) : NULL;
        client *c = clients->all;
        while (text && c) {
            client *next = c->next; /* sending may drop a slow client */
            if (c->registered) cd_ws_send_text(c->ws, text, strlen(text));
            c = next;
        }
        free(text);
        json_decref(msg);
    }
    json_decref(data);
}

void cd_ws_clients_send_text(cd_ws_clients *clients, const char *type, const char *node, const char *text, size_t len,
                             const char *sid) {
    note_running(clients, type, node, sid);
    /* A hand-written `executing` with node null carries no node: it clears. */
    if (type) note_preview_context(clients, type, (strcmp(type, "executing") || node) ? text : NULL, len, NULL);
    client *c = clients->all;
    while (c) {
        client *next = c->next; /* sending may drop a slow client */
        if (c->registered && (!sid || !strcmp(c->sid, sid))) cd_ws_send_text(c->ws, text, len);
        c = next;
    }
}

static bool wants_preview_metadata(const client *c) {
    return json_is_true(json_object_get(c->feature_flags, "supports_preview_metadata"));
}

/* ComfyUI's PREVIEW_IMAGE_WITH_METADATA (type 4): uint32 json length, the JSON, the image. Built
 * from a type-1 frame (type, format, image) and the running node. Returns a new buffer or NULL
 * when the running node is unknown. */
static unsigned char *preview_with_metadata(cd_ws_clients *clients, const unsigned char *frame, size_t len,
                                            size_t *out_len) {
    uint32_t fmt = (uint32_t)frame[4] << 24 | (uint32_t)frame[5] << 16 | (uint32_t)frame[6] << 8 | frame[7];
    const char *mime = fmt == 2 ? "image/png" : "image/jpeg";
    json_t *meta = NULL;
    /* progress_state: {"data": {"prompt_id", "nodes": {id: {node_id, display_node_id, ...}}}} */
    json_t *ps = clients->last_progress.len ? json_loadb(clients->last_progress.data, clients->last_progress.len, 0, NULL)
                                            : NULL;
    json_t *nodes = json_object_get(json_object_get(ps, "data"), "nodes");
    const char *key;
    json_t *n;
    json_object_foreach(nodes, key, n) {
        if (strcmp(json_string_value(json_object_get(n, "state")) ? json_string_value(json_object_get(n, "state")) : "",
                   "running") != 0)
            continue;
        json_t *parent = json_object_get(n, "parent_node_id");
        meta = json_pack("{s:O?, s:O?, s:O?, s:O, s:O?, s:s}", "node_id", json_object_get(n, "node_id"), "prompt_id",
                         json_object_get(n, "prompt_id"), "display_node_id", json_object_get(n, "display_node_id"),
                         "parent_node_id", parent ? parent : json_null(), "real_node_id",
                         json_object_get(n, "real_node_id"), "image_type", mime);
    }
    json_decref(ps);
    if (!meta) {
        json_t *msg = clients->last_executing.len
                          ? json_loadb(clients->last_executing.data, clients->last_executing.len, 0, NULL)
                          : NULL;
        json_t *data = json_object_get(msg, "data");
        const char *node = json_string_value(json_object_get(data, "node"));
        const char *display = json_string_value(json_object_get(data, "display_node"));
        const char *prompt = json_string_value(json_object_get(data, "prompt_id"));
        if (!prompt) prompt = clients->prompt_id;
        if (node)
            meta = json_pack("{s:s, s:s?, s:s, s:n, s:s, s:s}", "node_id", node, "prompt_id", prompt,
                             "display_node_id", display ? display : node, "parent_node_id", "real_node_id",
                             display ? display : node, "image_type", mime);
        json_decref(msg);
    }
    char *text = meta ? cd_json_dumps(meta) : NULL;
    json_decref(meta);
    if (!text) return NULL; /* the running node is unknown: type 1 it is */
    size_t tl = strlen(text), img = len - 8;
    unsigned char *out = malloc(8 + tl + img);
    if (out) {
        out[0] = out[1] = out[2] = 0;
        out[3] = 4;
        out[4] = (unsigned char)(tl >> 24);
        out[5] = (unsigned char)(tl >> 16);
        out[6] = (unsigned char)(tl >> 8);
        out[7] = (unsigned char)tl;
        memcpy(out + 8, text, tl);
        memcpy(out + 8 + tl, frame + 8, img);
        *out_len = 8 + tl + img;
    }
    free(text);
    return out;
}

void cd_ws_clients_send_binary(cd_ws_clients *clients, const void *data, size_t len, const char *sid) {
    const unsigned char *b = data;
    bool preview = len >= 8 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 1;
    unsigned char *with_meta = NULL;
    size_t meta_len = 0;
    bool meta_tried = false;
    client *c = clients->all;
    while (c) {
        client *next = c->next;
        if (c->registered && (!sid || !strcmp(c->sid, sid))) {
            /* A client that announced supports_preview_metadata gets type 4 instead of type 1,
             * exactly one of the two, as ComfyUI sends. */
            if (preview && wants_preview_metadata(c)) {
                if (!meta_tried) with_meta = preview_with_metadata(clients, b, len, &meta_len);
                meta_tried = true;
            }
            if (preview && with_meta && wants_preview_metadata(c)) cd_ws_send_binary(c->ws, with_meta, meta_len);
            else cd_ws_send_binary(c->ws, data, len);
        }
        c = next;
    }
    free(with_meta);
}

void cd_ws_clients_cork(cd_ws_clients *clients, bool on) {
    client *c = clients->all;
    while (c) {
        client *next = c->next; /* uncorking may drop a slow client */
        cd_ws_cork(c->ws, on);
        c = next;
    }
}

size_t cd_ws_clients_max_queued(const cd_ws_clients *clients) {
    size_t max = 0;
    for (const client *c = clients->all; c; c = c->next) {
        size_t q = cd_ws_queued(c->ws);
        if (q > max) max = q;
    }
    return max;
}

void cd_ws_clients_drop_congested(cd_ws_clients *clients, size_t bytes) {
    client *c = clients->all;
    while (c) {
        client *next = c->next;
        if (cd_ws_queued(c->ws) > bytes) {
            cd_warn("ws: dropping client %s: it has not read %zu bytes of events for a long time", c->sid,
                    cd_ws_queued(c->ws));
            cd_ws_drop(c->ws);
        }
        c = next;
    }
}

static json_t *status_data(cd_ws_clients *clients) {
    return json_pack("{s:{s:{s:i}}}", "status", "exec_info", "queue_remaining",
                     cd_instance_queue_remaining(clients->inst));
}

void cd_ws_clients_broadcast_status(cd_ws_clients *clients) {
    cd_ws_clients_send(clients, "status", status_data(clients), NULL);
}

static void on_text(cd_ws *ws, const char *data, size_t len, void *user) {
    client *c = user;
    bool first = !c->first_message_seen;
    c->first_message_seen = true;
    json_error_t jerr;
    json_t *msg = cd_json_parse(data, len, CD_JSON_REJECT_BIGINT, &jerr);
    if (!msg) {
        cd_warn("ws: %s sent invalid JSON: %s", c->sid, jerr.text);
        return;
    }
    /* Only the first message may negotiate features (ComfyUI reads no other). */
    const char *type = json_string_value(json_object_get(msg, "type"));
    json_t *flags = json_object_get(msg, "data");
    if (first && type && strcmp(type, "feature_flags") == 0 && json_is_object(flags)) {
        json_decref(c->feature_flags);
        c->feature_flags = json_incref(flags);
        json_t *features = cd_features_json(c->owner->inst);
        send_frame(c, "feature_flags", features);
        json_decref(features);
    } else {
        cd_debug("ws: ignoring a %s message from %s", type ? type : "typeless", c->sid);
    }
    json_decref(msg);
    (void)ws;
}

static void client_free(client *c) {
    free(c->sid);
    json_decref(c->feature_flags);
    free(c);
}

static void on_close(cd_ws *ws, uint16_t code, void *user) {
    (void)ws;
    client *c = user;
    cd_ws_clients *clients = c->owner;
    cd_debug("ws: %s disconnected (%u)", c->sid, code);
    if (c->prev) c->prev->next = c->next;
    else clients->all = c->next;
    if (c->next) c->next->prev = c->prev;
    clients->count--;
    client_free(c);
    if (clients->shutting_down && clients->count == 0) cd_ws_clients_free(clients);
}

static void handle_ws(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    cd_ws_clients *clients = inst->clients;
    if (clients->shutting_down) {
        cd_http_respond_text(req, 503, "503: shutting down");
        return;
    }
    client *c = calloc(1, sizeof *c);
    if (!c) {
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    char *sid = cd_str_query_get(cd_http_req_query(req), "clientId");
    if (!sid || !sid[0]) {
        free(sid);
        sid = malloc(33);
        if (sid) cd_str_random_hex(sid, 16);
    }
    if (!sid) {
        free(c);
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    c->sid = sid;
    c->owner = clients;
    cd_ws_callbacks cbs = {.on_text = on_text, .on_close = on_close};
    c->ws = cd_ws_accept(req, NULL, &cbs, c);
    if (!c->ws) {
        client_free(c);
        return;
    }
    /* A reconnect with the same sid takes over its messages; the old socket stays open but
     * receives nothing more (ComfyUI's behaviour). */
    client *old = find_registered(clients, sid);
    if (old) old->registered = false;
    c->registered = true;
    c->next = clients->all;
    if (clients->all) clients->all->prev = c;
    clients->all = c;
    clients->count++;
    json_t *data = status_data(clients);
    json_object_set_new(data, "sid", json_string(sid));
    send_frame(c, "status", data);
    json_decref(data);
    if (clients->running_sid.len && !strcmp(clients->running_sid.data, sid)) {
        json_t *ex = json_pack("{s:s}", "node", clients->running_node.data);
        send_frame(c, "executing", ex);
        json_decref(ex);
    }
}

void cd_ws_clients_shutdown(cd_ws_clients *clients) {
    clients->shutting_down = true;
    if (clients->count == 0) {
        cd_ws_clients_free(clients);
        return;
    }
    client *c = clients->all;
    while (c) {
        client *next = c->next;
        cd_ws_close(c->ws, 1001, "server shutting down");
        c = next;
    }
}

void cd_ws_clients_free(cd_ws_clients *clients) {
    if (!clients) return;
    cd_buf_free(&clients->running_sid);
    cd_buf_free(&clients->running_node);
    cd_buf_free(&clients->last_executing);
    cd_buf_free(&clients->last_progress);
    free(clients->prompt_id);
    free(clients);
}

void cd_routes_ws_register(cd_instance *inst) { cd_router_add_api(inst->router, "GET", "/ws", handle_ws, inst); }
