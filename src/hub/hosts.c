/* The hosts registry and placement (see hosts.h). */
#include "hub/hosts.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct cd_hosts {
    uv_loop_t *loop;
    const cd_hub_config *cfg;
    cd_store *store;
    cd_host *list; /* local first */
    cd_host_down_cb on_down;
    void *user;
    bool stopped;
};

bool cd_hosts_name_ok(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64 || name[0] == '-' || name[0] == '.') return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i])) return false;
    return true;
}

/* An address an instance can listen on for the hub alone: not "any" (0.0.0.0, ::), which would
 * open an unauthenticated ComfyUI to the whole network, nor multicast. */
static bool ip_literal(const char *s) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, s, buf) == 1) return !(buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 0) && buf[0] < 224;
    if (inet_pton(AF_INET6, s, buf) != 1) return false;
    static const unsigned char any[16] = {0};
    return memcmp(buf, any, 16) != 0 && buf[0] != 0xff;
}

/* [user@]host, each part a plain name: never an option, never anything a shell would read. */
static bool ssh_target_ok(const char *t) {
    const char *at = strchr(t, '@');
    const char *host = at ? at + 1 : t;
    if (at && (at == t || strchr(host, '@'))) return false;
    if (!*host || *t == '-' || strlen(t) > 128) return false;
    for (const char *p = t; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-@:[]", *p)) return false;
    return true;
}

static bool labels_ok(const char *labels) {
    char copy[257];
    snprintf(copy, sizeof copy, "%s", labels);
    if (!copy[0]) return true;
    char *save = NULL;
    for (char *l = strtok_r(copy, ",", &save); l; l = strtok_r(NULL, ",", &save))
        if (!cd_hosts_name_ok(l)) return false;
    return labels[0] != ',' && labels[strlen(labels) - 1] != ',' && !strstr(labels, ",,");
}

static const char *options_problem(const char *opts) {
    for (const char *p = opts; *p;) {
        size_t len = strcspn(p, "\n");
        const char *problem = len ? cd_launcher_ssh_option_problem(p, len) : NULL;
        if (problem) return problem;
        p += len + (p[len] == '\n');
    }
    return NULL;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.x: the hub's own machine. */
static bool loopback(const char *s) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, s, buf) == 1) return buf[0] == 127;
    if (inet_pton(AF_INET6, s, buf) != 1) return false;
    static const unsigned char one[16] = {[15] = 1}, mapped[12] = {[10] = 0xff, [11] = 0xff};
    return !memcmp(buf, one, 16) || (!memcmp(buf, mapped, 12) && buf[12] == 127);
}

static bool printable(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

const char *cd_hosts_record_problem(const cd_store_host *h, const cd_hub_config *cfg) {
    if (!cd_hosts_name_ok(h->name)) return "a host name has 1 to 64 of A-Z a-z 0-9 . _ - (not first: . -)";
    if (!strcmp(h->name, "local")) return "'local' is the hub's own machine, set by COMFYUI_* settings";
    if (strcmp(h->launcher, "ssh") != 0) return "launcher is 'ssh'";
    if (!ip_literal(h->address)) return "address is the IP literal instances listen on there and the hub connects to";
    if (!ssh_target_ok(h->ssh_target)) return "ssh_target is [user@]host";
    if (h->ssh_port < 1 || h->ssh_port > 65535) return "ssh_port is 1 to 65535";
    if (h->ssh_key[0] && (h->ssh_key[0] != '/' || !printable(h->ssh_key))) return "ssh_key is an absolute path";
    const char *problem = options_problem(h->ssh_options);
    if (problem) return problem;
    if (!printable(h->command)) return "command may not hold control characters";
    /* a remote kill signals a pid only while its command line names the instance's port */
    if (h->command[0] && !cd_hub_command_names_port(h->command))
        return "command passes the port as the two words --port {port} (the hub tells its instance from a recycled "
               "pid by them)";
    if (!h->command[0] && !(cfg->command && cd_hub_command_names_port(cfg->command)))
        return "command is empty, so COMFYUI_COMMAND is used, and it does not pass --port {port}: give the host a "
               "command with --port {port}";
    if (h->base_dir[0] && (h->base_dir[0] != '/' || !printable(h->base_dir))) return "base_dir is an absolute path";
    if (h->port_min < 1 || h->port_max > 65535 || h->port_min > h->port_max) return "ports are FIRST-LAST, 1 to 65535";
    /* the same machine as "local": both would hand out the same ports */
    if (loopback(h->address) && h->port_min <= cfg->port_max && cfg->port_min <= h->port_max)
        return "a host on a loopback address is this machine: its ports may not overlap COMFYUI_PORT_RANGE";
    if (h->max_instances < 0) return "max_instances is 0 (the port range) or more";
    if (!labels_ok(h->labels)) return "labels are names separated by commas";
    return NULL;
}

/* ---- the registry ---- */

static void apply_record(cd_hosts *hs, cd_host *h, const cd_store_host *rec) {
    bool moved = h->rec.port_min != rec->port_min || h->rec.port_max != rec->port_max;
    h->rec = *rec;
    cd_launcher_ssh_init(&h->ssh, hs->loop, rec->ssh_target, rec->ssh_port, rec->ssh_key, rec->ssh_options);
    h->launcher = &h->ssh.base;
    if (moved) h->next_port = rec->port_min;
}

static cd_host *local_host(cd_hosts *hs) {
    cd_host *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    const cd_hub_config *cfg = hs->cfg;
    snprintf(h->rec.name, sizeof h->rec.name, "local");
    snprintf(h->rec.address, sizeof h->rec.address, "%s", cfg->instance_listen);
    snprintf(h->rec.launcher, sizeof h->rec.launcher, "%s", cfg->launcher ? cfg->launcher : "local");
    h->rec.port_min = cfg->port_min;
    h->rec.port_max = cfg->port_max;
    h->rec.max_instances = cfg->max_instances;
    if (!strcmp(h->rec.launcher, "systemd")) cd_launcher_systemd_init(&h->systemd, hs->loop, cfg->memory_max, cfg->cpu_quota);
    else cd_launcher_local_init(&h->local, hs->loop);
    h->launcher = &h->local;
    h->reachable = true;
    h->next_port = cfg->port_min;
    return h;
}

static cd_host *by_id(cd_hosts *hs, int64_t id) {
    for (cd_host *h = hs->list; h; h = h->next)
        if (h->rec.id == id && id) return h;
    return NULL;
}

int cd_hosts_reload(cd_hosts *hs) {
    cd_store_host *recs = NULL;
    size_t n = 0;
    if (hs->store->ops->host_list(hs->store, &recs, &n) < 0) return -1;
    for (cd_host *h = hs->list; h; h = h->next) h->removed = h->rec.id != 0; /* until found again */
    cd_host *tail = hs->list;
    while (tail->next) tail = tail->next;
    for (size_t i = 0; i < n; i++) {
        cd_host *h = by_id(hs, recs[i].id);
        if (!h) {
            if (!(h = calloc(1, sizeof *h))) break;
            h->reachable = true; /* until a check says otherwise */
            tail->next = h;
            tail = h;
        }
        h->removed = false;
        apply_record(hs, h, &recs[i]);
    }
    free(recs);
    return 0;
}

int cd_hosts_new(uv_loop_t *loop, const cd_hub_config *cfg, cd_store *store, cd_hosts **out, char *err,
                 size_t errlen) {
    cd_hosts *hs = calloc(1, sizeof *hs);
    if (hs) {
        hs->loop = loop;
        hs->cfg = cfg;
        hs->store = store;
        hs->list = local_host(hs);
    }
    if (!hs || !hs->list) {
        free(hs);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *out = hs;
    if (cd_hosts_reload(hs) < 0) {
        snprintf(err, errlen, "cannot read the hosts: %s", cd_store_error(store));
        return -1;
    }
    return 0;
}

void cd_hosts_set_listener(cd_hosts *hs, cd_host_down_cb cb, void *user) {
    hs->on_down = cb;
    hs->user = user;
}

cd_host *cd_hosts_list(cd_hosts *hs) { return hs->list; }

cd_host *cd_hosts_find(cd_hosts *hs, const char *name) {
    for (cd_host *h = hs->list; h; h = h->next)
        if (!h->removed && !strcmp(h->rec.name, name)) return h;
    return NULL;
}

void cd_hosts_stop(cd_hosts *hs) { hs->stopped = true; }

bool cd_hosts_idle(const cd_hosts *hs) {
    for (const cd_host *h = hs->list; h; h = h->next) {
        if (h->launcher == &h->ssh.base && h->ssh.running > 0) return false;
        if (h->launcher == &h->local && !strcmp(h->rec.launcher, "systemd") && h->systemd.running > 0) return false;
    }
    return true;
}

void cd_hosts_free(cd_hosts *hs) {
    if (!hs) return;
    for (cd_host *h = hs->list, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    free(hs);
}

/* ---- reachability ---- */

typedef struct {
    cd_hosts *hs;
    cd_host *h;
} check_ctx;

static void on_checked(bool ok, const char *why, void *user) {
    check_ctx *c = user;
    cd_hosts *hs = c->hs;
    cd_host *h = c->h;
    free(c);
    h->checking = false;
    h->next_check = 0; /* the tick sets it from now */
    if (hs->stopped) return;
    if (ok) {
        if (!h->reachable) cd_info("hub: host %s is reachable again", h->rec.name);
        h->reachable = true;
        h->failures = 0;
        h->reason[0] = '\0';
        return;
    }
    snprintf(h->reason, sizeof h->reason, "%s", why);
    /* one failure may be a hiccup; two in a row is a host that is gone */
    if (++h->failures < 2 || !h->reachable) return;
    h->reachable = false;
    cd_warn("hub: host %s is unreachable: %s", h->rec.name, why);
    if (hs->on_down) hs->on_down(h, why, hs->user);
}

void cd_hosts_tick(cd_hosts *hs, int64_t now) {
    if (hs->stopped) return;
    for (cd_host *h = hs->list; h; h = h->next) {
        if (h->launcher != &h->ssh.base || h->removed || h->checking) continue;
        if (!h->next_check) h->next_check = now + (int64_t)hs->cfg->heartbeat_interval_s * 1000;
        if (now < h->next_check) continue;
        check_ctx *c = malloc(sizeof *c);
        if (!c) continue;
        *c = (check_ctx){hs, h};
        h->checking = true;
        if (cd_launcher_ssh_check(&h->ssh, on_checked, c) < 0) on_checked(false, "cannot start ssh", c);
    }
}

/* ---- placement ---- */

int cd_host_cap(const cd_host *h) {
    int span = h->rec.port_max - h->rec.port_min + 1;
    return h->rec.max_instances > 0 && h->rec.max_instances < span ? h->rec.max_instances : span;
}

bool cd_host_has_label(const cd_host *h, const char *label) {
    size_t n = strlen(label);
    for (const char *p = h->rec.labels; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, label, n)) return true;
        p += len + (p[len] == ',');
    }
    return false;
}

static bool matches(const cd_host *h, const char *pin) {
    return !pin[0] || !strcmp(h->rec.name, pin) || cd_host_has_label(h, pin);
}

cd_host *cd_hosts_place(cd_hosts *hs, const char *pin, cd_host_load_fn running, void *arg, char *why,
                        size_t whylen) {
    cd_host *best = NULL, *down = NULL, *full = NULL;
    int best_load = 0, best_cap = 1, candidates = 0;
    for (cd_host *h = hs->list; h; h = h->next) {
        if (h->removed || h->rec.disabled || !matches(h, pin)) continue;
        candidates++;
        if (!h->reachable) {
            down = h;
            continue;
        }
        int load = running(h, arg), cap = cd_host_cap(h);
        if (load >= cap) {
            full = h;
            continue;
        }
        /* load/cap < best_load/best_cap, without division */
        if (!best || (long long)load * best_cap < (long long)best_load * cap) {
            best = h;
            best_load = load;
            best_cap = cap;
        }
    }
    if (best) return best;
    if (!candidates) snprintf(why, whylen, "no host is named or labelled '%s' (or it is disabled)", pin);
    else if (full && candidates == 1 && !strcmp(full->rec.name, "local"))
        snprintf(why, whylen, "the hub already runs its maximum of %d instances; stop one first", cd_host_cap(full));
    else if (full) snprintf(why, whylen, "every host%s%s%s runs its maximum of instances; stop one first",
                            pin[0] ? " for '" : "", pin, pin[0] ? "'" : "");
    else snprintf(why, whylen, "host %s is unreachable: %s", down->rec.name, down->reason);
    return NULL;
}
