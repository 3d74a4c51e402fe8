#include "hub/events.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "net/ws.h"

typedef struct subscriber {
    cd_hub_events *ev;
    cd_ws *ws;
    int64_t user_id;
    cd_role role;
    struct subscriber *prev, *next;
} subscriber;

struct cd_hub_events {
    cd_hub *hub;
    subscriber *all;
};

cd_hub_events *cd_hub_events_new(cd_hub *hub) {
    cd_hub_events *ev = calloc(1, sizeof *ev);
    if (ev) ev->hub = hub;
    return ev;
}

static void unlink_sub(subscriber *s) {
    if (s->prev) s->prev->next = s->next;
    else s->ev->all = s->next;
    if (s->next) s->next->prev = s->prev;
}

static void on_close(cd_ws *ws, uint16_t code, void *user) {
    subscriber *s = user;
    if (!s) return;
    unlink_sub(s);
    free(s);
}

static void send_json(cd_ws *ws, json_t *msg) {
    char *text = msg ? cd_json_dumps_compact(msg, 0) : NULL;
    json_decref(msg);
    if (text) cd_ws_send_text(ws, text, strlen(text));
    free(text);
}

static void handle_events(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller caller;
    /* a WebSocket is a GET: its Origin is checked too, or another site's page could listen */
    int who = cd_hub_identify(hub, req, true, &caller);
    if (who == -1) {
        cd_hub_error(req, 401, "unauthorized", "log in first");
        return;
    }
    if (who == -2) {
        cd_hub_error(req, 403, "forbidden", "a request from another origin may not use this session");
        return;
    }
    subscriber *s = calloc(1, sizeof *s);
    if (!s) {
        cd_hub_error(req, 500, "internal", "out of memory");
        return;
    }
    s->ev = hub->events;
    s->user_id = caller.user.id;
    s->role = caller.user.role;
    cd_ws_callbacks cbs = {.on_close = on_close};
    s->ws = cd_ws_accept(req, NULL, &cbs, s);
    if (!s->ws) {
        free(s);
        return;
    }
    s->next = hub->events->all;
    if (s->next) s->next->prev = s;
    hub->events->all = s;
    send_json(s->ws, json_pack("{s:s, s:{s:o}}", "type", "hello", "data", "user", cd_hub_user_json(&caller.user)));
}

void cd_hub_events_register(cd_hub *hub) { cd_router_add(hub->router, "GET", "/api/events", handle_events, hub); }

void cd_hub_events_instance(cd_hub_events *ev, const cd_store_instance *inst) {
    if (!ev || !ev->all) return;
    json_t *msg = json_pack("{s:s, s:o}", "type", "instance", "data", cd_hub_instance_json(inst));
    char *text = msg ? cd_json_dumps_compact(msg, 0) : NULL;
    json_decref(msg);
    if (!text) return;
    size_t len = strlen(text);
    for (subscriber *s = ev->all, *next; s; s = next) {
        next = s->next; /* a send may drop a slow subscriber */
        if (s->role >= CD_ROLE_TEACHER || s->user_id == inst->user_id) cd_ws_send_text(s->ws, text, len);
    }
    free(text);
}

void cd_hub_events_admins(cd_hub_events *ev, const char *type, json_t *data) {
    json_t *msg = json_pack("{s:s, s:o}", "type", type, "data", data ? data : json_null());
    char *text = msg && ev && ev->all ? cd_json_dumps_compact(msg, 0) : NULL;
    json_decref(msg);
    if (!text) return;
    size_t len = strlen(text);
    for (subscriber *s = ev->all, *next; s; s = next) {
        next = s->next;
        if (s->role == CD_ROLE_ADMIN) cd_ws_send_text(s->ws, text, len);
    }
    free(text);
}

void cd_hub_events_close_all(cd_hub_events *ev) {
    if (!ev) return;
    for (subscriber *s = ev->all, *next; s; s = next) {
        next = s->next;
        cd_ws_close(s->ws, 1001, "the hub is stopping");
    }
}

void cd_hub_events_free(cd_hub_events *ev) {
    if (!ev) return;
    /* Sockets still open when the loop ends are the ws layer's to cut; forget them here. */
    for (subscriber *s = ev->all, *next; s; s = next) {
        next = s->next;
        cd_ws_set_user(s->ws, NULL);
        free(s);
    }
    free(ev);
}

bool cd_hub_events_empty(const cd_hub_events *ev) { return !ev || !ev->all; }
