/* Hosts: the machines instances run on, and where a new instance goes.
 *
 * There is always the implicit host "local" (the hub's machine, described by the settings
 * COMFYUI_LISTEN, COMFYUI_PORT_RANGE and COMFYUI_MAX_INSTANCES), so that a hub with no hosts
 * configured behaves as it always did. Its launcher is COMFYUI_LAUNCHER's: "local" (child
 * processes of the hub) or "systemd" (a `systemd-run --user` unit each, with COMFYUI_MEMORY_MAX
 * and COMFYUI_CPU_QUOTA as its MemoryMax and CPUQuota). Admins add others in the store (api_hosts.c), each
 * with its launcher (today "ssh"), the address instances listen on there and the hub connects
 * to, a port range, a cap and labels such as a GPU type.
 *
 * Placement: a new instance goes to the least loaded host that has room (running instances over
 * its cap; the earlier host on a tie, "local" first); a project pinned to a host name or a label
 * goes only to the hosts that match. A host that cannot be reached takes no new instance.
 *
 * Reachability: every heartbeat interval, each ssh host is asked `ssh HOST true`. Two failures
 * in a row make it unreachable, and the listener (the supervisor) hears it once: its instances
 * are marked offline with the reason, which fails their running prompts. A later success makes
 * it reachable again. The registry keeps a host that was deleted or renamed in memory while the
 * hub runs, so that an instance's pointer to it never dangles. */
#ifndef CD_HUB_HOSTS_H
#define CD_HUB_HOSTS_H

#include <stdbool.h>
#include <uv.h>

#include "hub/config.h"
#include "hub/launcher.h"
#include "hub/store.h"

/* Not opaque: the supervisor reads a host's record, launcher and port cursor, the API its state. */
typedef struct cd_host {
    cd_store_host rec;     /* "local" is built from the settings (id 0, launcher "local" or "systemd") */
    cd_launcher *launcher; /* &local or &ssh.base */
    /* The hub's machine: the supervisor tells it by launcher == &local, whichever launcher
     * runs there (systemd's starts with its cd_launcher, so &local is &systemd.base). */
    union {
        cd_launcher local;
        cd_launcher_systemd systemd;
    };
    cd_launcher_ssh ssh;
    bool removed;          /* gone from the store: no new instance */
    bool reachable;
    char reason[300];      /* why it is unreachable */
    int failures;          /* reachability checks failed in a row */
    bool checking;
    int64_t next_check;
    int next_port;         /* ports go round-robin from here */
    struct cd_host *next;
} cd_host;

typedef struct cd_hosts cd_hosts;

/* Called once when a host becomes unreachable. */
typedef void (*cd_host_down_cb)(cd_host *h, const char *reason, void *user);

/* Loads the hosts of the store. Returns 0, or -1 with a message. */
int cd_hosts_new(uv_loop_t *loop, const cd_hub_config *cfg, cd_store *store, cd_hosts **out, char *err,
                 size_t errlen);
/* Stops the checks; free once cd_hosts_idle() says no ssh command is under way. */
void cd_hosts_stop(cd_hosts *hs);
bool cd_hosts_idle(const cd_hosts *hs);
void cd_hosts_free(cd_hosts *hs);

void cd_hosts_set_listener(cd_hosts *hs, cd_host_down_cb cb, void *user);
/* Reads the store again after an admin's change (new, changed and deleted hosts). */
int cd_hosts_reload(cd_hosts *hs);
/* Starts the reachability checks that are due (the supervisor's tick calls it). */
void cd_hosts_tick(cd_hosts *hs, int64_t now);

cd_host *cd_hosts_list(cd_hosts *hs); /* "local" first, then by id; follow ->next */
/* A host by name that is still configured, or NULL. */
cd_host *cd_hosts_find(cd_hosts *hs, const char *name);
/* The most instances the host runs at once. */
int cd_host_cap(const cd_host *h);
bool cd_host_has_label(const cd_host *h, const char *label);

/* Where a new instance of a project with that pin ("" : any) goes. running(h, arg) counts the
 * host's instances. Returns the host, or NULL with why (for a 503). */
typedef int (*cd_host_load_fn)(const cd_host *h, void *arg);
cd_host *cd_hosts_place(cd_hosts *hs, const char *pin, cd_host_load_fn running, void *arg, char *why,
                        size_t whylen);

/* Checks a host record before it is stored: names, an IP literal address, the ssh target, key
 * path and options, a command that passes --port {port} (cfg's COMFYUI_COMMAND when it has none),
 * the port range (which on a loopback address, the hub's own machine, may not overlap
 * COMFYUI_PORT_RANGE). Returns the problem or NULL. */
const char *cd_hosts_record_problem(const cd_store_host *h, const cd_hub_config *cfg);
/* A host name, label or pin: 1 to 64 of [A-Za-z0-9._-], not starting with '-' or '.'. */
bool cd_hosts_name_ok(const char *name);

#endif
