#include "hub/instance_watch.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/ws.h"

typedef struct watch {
    cd_instance_watch *owner;
    int64_t project_id;
    char host[65];
    int port;
    cd_ws *ws;       /* NULL while connecting */
    bool wanted;     /* since the last sweep */
    int idle_sweeps; /* sweeps in a row it was not wanted */
    bool closing;    /* unwanted: closed once connected */
    struct watch *next;
} watch;

struct cd_instance_watch {
    uv_loop_t *loop;
    cd_instance_watch_cb changed;
    void *user;
    watch *all;
    unsigned serial; /* for the clientId of each connection */
    bool closing_all;
};

cd_instance_watch *cd_instance_watch_new(uv_loop_t *loop, cd_instance_watch_cb changed, void *user) {
    cd_instance_watch *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->loop = loop;
    w->changed = changed;
    w->user = user;
    return w;
}

static void forget(cd_instance_watch *w, watch *x) {
    for (watch **pp = &w->all; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            free(x);
            return;
        }
}

/* Only the message's type matters: any status (queue changed) or end of a prompt. */
static void on_text(cd_ws *ws, const char *data, size_t len, void *user) {
    watch *x = user;
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    bool cue = type && (!strcmp(type, "status") || !strcmp(type, "execution_success") ||
                        !strcmp(type, "execution_error") || !strcmp(type, "execution_interrupted"));
    json_decref(j);
    if (cue && !x->closing) x->owner->changed(x->project_id, x->owner->user);
}

static void on_binary(cd_ws *ws, const uint8_t *data, size_t len, void *user) {} /* previews */

static void on_close(cd_ws *ws, uint16_t code, void *user) {
    watch *x = user;
    cd_debug("hub: event stream of project %lld closed (%u)", (long long)x->project_id, code);
    forget(x->owner, x); /* the next tick opens another if prompts still run there */
}

static void on_connected(cd_ws *ws, const char *error, void *user) {
    watch *x = user;
    if (!ws) {
        cd_debug("hub: cannot open the event stream of project %lld: %s", (long long)x->project_id, error);
        forget(x->owner, x);
        return;
    }
    x->ws = ws;
    if (x->closing) cd_ws_close(ws, 1000, "done");
    else x->owner->changed(x->project_id, x->owner->user); /* what happened while we were away */
}

static const cd_ws_callbacks callbacks = {.on_text = on_text, .on_binary = on_binary, .on_close = on_close};

static void open_watch(cd_instance_watch *w, int64_t project_id, const char *host, int port) {
    watch *x = calloc(1, sizeof *x);
    if (!x) return;
    x->owner = w;
    x->project_id = project_id;
    snprintf(x->host, sizeof x->host, "%s", host);
    x->port = port;
    x->wanted = true;
    char target[80];
    snprintf(target, sizeof target, "/ws?clientId=comfyd-hub-%u", ++w->serial);
    cd_ws_limits limits;
    cd_ws_limits_default(&limits);
    x->next = w->all;
    w->all = x;
    if (cd_ws_connect(w->loop, host, port, target, NULL, &limits, &callbacks, 5000, on_connected, x) < 0) forget(w, x);
}

static void close_watch(watch *x) {
    x->closing = true;
    if (x->ws) cd_ws_close(x->ws, 1000, "done"); /* on_close forgets it */
}

void cd_instance_watch_want(cd_instance_watch *w, int64_t project_id, const char *host, int port) {
    if (w->closing_all) return;
    for (watch *x = w->all; x; x = x->next) {
        if (x->project_id != project_id || x->closing) continue;
        if (x->port == port && !strcmp(x->host, host)) {
            x->wanted = true;
            return;
        }
        close_watch(x); /* the instance moved (restarted elsewhere) */
        break;
    }
    open_watch(w, project_id, host, port);
}

/* Kept a while after its last prompt (IDLE_SWEEPS sweeps): the next one is most likely soon,
 * and would otherwise wait for a new connection. */
#define IDLE_SWEEPS 120

void cd_instance_watch_sweep(cd_instance_watch *w) {
    for (watch *x = w->all, *next; x; x = next) {
        next = x->next;
        bool wanted = x->wanted;
        x->wanted = false;
        if (wanted) x->idle_sweeps = 0;
        else if (++x->idle_sweeps >= IDLE_SWEEPS && !x->closing) close_watch(x); /* may free x: last */
    }
}

void cd_instance_watch_close_all(cd_instance_watch *w) {
    if (!w) return;
    w->closing_all = true;
    for (watch *x = w->all, *next; x; x = next) {
        next = x->next;
        if (!x->closing) close_watch(x);
    }
}

bool cd_instance_watch_idle(const cd_instance_watch *w) { return !w || !w->all; }

void cd_instance_watch_free(cd_instance_watch *w) {
    if (!w) return;
    while (w->all) forget(w, w->all); /* only after close_all and idle */
    free(w);
}
