#include "hub/peers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "base/log.h"
#include "hub/admission.h"
#include "hub/store_listen.h"
#include "hub/supervisor.h"

#define BEAT_MS 1000

struct cd_hub_peers {
    cd_hub *hub;
    uv_timer_t beat;
    cd_store_listener *listener;
    int64_t started_at;
    cd_store_hub *known; /* as the last beat read them */
    size_t nknown;
    char (*taken)[65];   /* silent hubs whose work this hub took over (not again until they beat) */
    size_t ntaken;
    int open_handles;
    bool stopping;
};

static bool silent(const cd_hub_peers *p, const cd_store_hub *h, int64_t now) {
    return now - h->last_seen_at > (int64_t)p->hub->cfg->hub_silent_after_s * 1000;
}

bool cd_hub_peers_alive(cd_hub_peers *p, const char *hub_id) {
    if (!p || !hub_id[0] || !strcmp(hub_id, p->hub->id)) return true;
    int64_t now = cd_hub_now_ms();
    for (size_t i = 0; i < p->nknown; i++)
        if (!strcmp(p->known[i].id, hub_id)) return !silent(p, &p->known[i], now);
    return false; /* never beat: a record of a hub that is gone */
}

bool cd_hub_peers_others_alive(cd_hub_peers *p) {
    if (!p) return false;
    int64_t now = cd_hub_now_ms();
    for (size_t i = 0; i < p->nknown; i++)
        if (strcmp(p->known[i].id, p->hub->id) != 0 && !silent(p, &p->known[i], now)) return true;
    return false;
}

static bool was_taken(cd_hub_peers *p, const char *id) {
    for (size_t i = 0; i < p->ntaken; i++)
        if (!strcmp(p->taken[i], id)) return true;
    return false;
}

static void forget_taken(cd_hub_peers *p, const char *id) {
    for (size_t i = 0; i < p->ntaken; i++)
        if (!strcmp(p->taken[i], id)) {
            memmove(p->taken[i], p->taken[--p->ntaken], sizeof p->taken[0]);
            return;
        }
}

static void take_over(cd_hub_peers *p, const char *id) {
    char (*grown)[65] = realloc(p->taken, (p->ntaken + 1) * sizeof *grown);
    if (!grown) return;
    p->taken = grown;
    snprintf(p->taken[p->ntaken++], sizeof p->taken[0], "%s", id);
    cd_warn("hub: hub %s has been silent for over %d s: taking over its prompts and instances", id,
            p->hub->cfg->hub_silent_after_s);
    cd_supervisor_take_over(p->hub->sup, id);
    cd_admission_take_over(p->hub->admission, id);
}

static void on_beat(uv_timer_t *t) {
    cd_hub_peers *p = t->data;
    cd_store *st = p->hub->store;
    int64_t now = cd_hub_now_ms();
    if (st->ops->hub_beat(st, p->hub->id, p->started_at, now) < 0)
        cd_warn("hub: cannot beat in the store: %s", cd_store_error(st));
    cd_store_hub *list = NULL;
    size_t n = 0;
    if (st->ops->hub_list(st, &list, &n) < 0) {
        cd_warn("hub: cannot read the other hubs: %s", cd_store_error(st));
        return;
    }
    free(p->known);
    p->known = list;
    p->nknown = n;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(list[i].id, p->hub->id)) continue;
        if (!silent(p, &list[i], now)) forget_taken(p, list[i].id); /* back: it may go silent again */
        else if (!was_taken(p, list[i].id)) take_over(p, list[i].id);
    }
}

static void on_notify(const char *channel, const char *payload, void *user) {
    cd_hub_peers *p = user;
    if (p->stopping || (payload[0] && !strcmp(payload, p->hub->id))) return; /* our own */
    bool all = !channel[0];
    if (all || !strcmp(channel, "comfyd_queue")) cd_admission_store_changed(p->hub->admission);
    if (all || !strcmp(channel, "comfyd_instances")) cd_supervisor_store_changed(p->hub->sup);
}

/* HOSTNAME:HASH of the data directory: a hub started again in its place (same machine, same
 * directory, whatever its port) is the same hub, and two hubs on one machine have two data
 * directories (their instances' directories and logs are there). */
static void default_id(const cd_hub *hub, char *out, size_t n) {
    char host[256] = "", dir[PATH_MAX];
    if (gethostname(host, sizeof host - 1) < 0 || !host[0]) snprintf(host, sizeof host, "localhost");
    if (!realpath(hub->cfg->data_dir, dir)) snprintf(dir, sizeof dir, "%s", hub->cfg->data_dir);
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (const char *c = dir; *c; c++) hash = (hash ^ (unsigned char)*c) * 16777619u;
    snprintf(out, n, "%.40s:%08x", host, hash);
}

cd_hub_peers *cd_hub_peers_new(cd_hub *hub, bool *failed, char *err, size_t errlen) {
    *failed = false;
    cd_store *st = hub->store;
    if (!st->ops->hub_beat) return NULL;
    if (hub->cfg->hub_id && hub->cfg->hub_id[0]) snprintf(hub->id, sizeof hub->id, "%s", hub->cfg->hub_id);
    else default_id(hub, hub->id, sizeof hub->id);
    cd_hub_peers *p = calloc(1, sizeof *p);
    if (!p) {
        *failed = true;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->hub = hub;
    p->started_at = cd_hub_now_ms();
    st->ops->set_hub(st, hub->id);
    if (st->ops->hub_beat(st, hub->id, p->started_at, p->started_at) < 0) {
        *failed = true;
        snprintf(err, errlen, "cannot record this hub in the store: %s", cd_store_error(st));
        free(p);
        return NULL;
    }
    /* who else is alive, before the supervisor decides which instances of the store are its own */
    if (st->ops->hub_list(st, &p->known, &p->nknown) < 0) {
        *failed = true;
        snprintf(err, errlen, "cannot read the hubs of the store: %s", cd_store_error(st));
        free(p);
        return NULL;
    }
    uv_timer_init(hub->loop, &p->beat);
    p->beat.data = p;
    p->open_handles = 1;
    cd_info("hub: this is hub %s; hubs sharing the store take over each other's work after %d s of silence",
            hub->id, hub->cfg->hub_silent_after_s);
    return p;
}

/* After the supervisor and the queue exist: they hear of the others from now on. */
void cd_hub_peers_start(cd_hub_peers *p) {
    if (!p) return;
    on_beat(&p->beat);
    uv_timer_start(&p->beat, on_beat, BEAT_MS, BEAT_MS);
    p->listener = cd_store_listen_start(p->hub->loop, p->hub->cfg->store, on_notify, p);
    if (p->listener) p->open_handles++;
}

static void handle_closed(uv_handle_t *h) {
    cd_hub_peers *p = h->data;
    p->open_handles--;
}

static void listener_closed(void *user) {
    cd_hub_peers *p = user;
    p->open_handles--;
}

void cd_hub_peers_stop(cd_hub_peers *p) {
    if (!p || p->stopping) return;
    p->stopping = true;
    /* the leaving beat: silent from now on, so that the others take over at once what this hub
     * leaves (its prompts out, and its instances if it leaves them running) */
    cd_store *st = p->hub->store;
    if (st->ops->hub_beat(st, p->hub->id, p->started_at, 0) < 0)
        cd_warn("hub: cannot tell the other hubs it is leaving: %s", cd_store_error(st));
    uv_close((uv_handle_t *)&p->beat, handle_closed);
    if (p->listener) cd_store_listen_stop(p->listener, listener_closed, p);
    p->listener = NULL;
}

bool cd_hub_peers_idle(const cd_hub_peers *p) { return !p || p->open_handles == 0; }

void cd_hub_peers_free(cd_hub_peers *p) {
    if (!p) return;
    free(p->known);
    free(p->taken);
    free(p);
}
