/* The supervisor: one instance per project, started on demand and watched.
 *
 * Opening a project reuses its instance when it is online and answers GET /system_stats;
 * otherwise it stops what is left of the old process, takes a free port of the range, prepares
 * the instance directory (linking the shared custom_nodes and models), starts the instance
 * command through the launcher and polls /system_stats until it answers or the start-up time
 * runs out. Only the instance's own answer counts: the argv that /system_stats reports must name
 * its --base-directory (or its --port, for a command without one), so that whatever else answers
 * on that port (a stale instance of another project) is not taken for it; an adopted instance's
 * health check asks the same. Opens that arrive while a start is under way wait for that start: ten opens at once
 * start one process.
 *
 * A heartbeat probes every running instance and marks it online or offline; an exit is seen at
 * once. A crashed instance of a project in use is restarted with a growing delay, up to
 * COMFYUI_MAX_RESTARTS times in a row. Idle instances are stopped. A remote process the hub had
 * to let go of (its host unreachable, its ssh session broken under it) is remembered, in memory,
 * and stopped by its pid through the guarded kill once its host answers again. Every change is written to
 * the store first and then announced through the change callback, so that a hub killed at any
 * point finds the truth in the store and adopts the instances that still run. */
#ifndef CD_HUB_SUPERVISOR_H
#define CD_HUB_SUPERVISOR_H

#include <stdbool.h>
#include <uv.h>

#include "hub/config.h"
#include "hub/hosts.h"
#include "hub/store.h"

typedef struct cd_supervisor cd_supervisor;

/* Called after an instance record changed (already stored). */
typedef void (*cd_sup_change_cb)(const cd_store_instance *inst, void *user);
/* An audit entry the supervisor wants written (exits, restarts, idle stops, adoptions). */
typedef void (*cd_sup_audit_cb)(const char *action, int64_t project_id, const char *detail, void *user);

typedef struct {
    uv_loop_t *loop;
    const cd_hub_config *cfg;
    cd_store *store;
    cd_hosts *hosts; /* where instances run (hosts.h); the supervisor listens for hosts going down */
    cd_sup_change_cb on_change;
    cd_sup_audit_cb on_audit;
    void *user;
    /* several hubs on one store (peers.h; NULL alone): this hub's instances are those whose
     * record names hub_id; another live hub's are used where they run, a silent hub's taken over */
    struct cd_hub_peers *peers;
    const char *hub_id;
} cd_supervisor_config;

/* Creates the supervisor and adopts the instances of the store whose process still runs and
 * answers; the others are marked stopped (and killed if they are ours but do not answer). */
int cd_supervisor_new(const cd_supervisor_config *c, cd_supervisor **out, char *err, size_t errlen);

/* The result of an open: 0 with the instance record (online, or starting when the caller did
 * not wait), or an HTTP-like status with a message: 503 when no port is free or the cap is
 * reached, 500 when the instance could not start (the reason is in the record too). */
typedef void (*cd_sup_open_cb)(int status, const char *message, const cd_store_instance *inst, bool reused,
                               void *user);
/* Opens the project's instance for its owner, on a host placement picks (the project's pin
 * decides among the hosts, hosts.h). cb runs exactly once (possibly before this
 * returns when nothing needs to wait), unless cd_supervisor_cancel() is called with the same
 * user pointer first. */
void cd_supervisor_open(cd_supervisor *s, const cd_store_project *p, const cd_store_user *owner, cd_sup_open_cb cb,
                        void *user);
void cd_supervisor_cancel(cd_supervisor *s, void *user);

/* Stops the project's instance (SIGTERM, SIGKILL after the grace period) and marks it stopped;
 * cb runs once it has exited (at once when nothing runs). reason goes into the record. */
typedef void (*cd_sup_done_cb)(void *user);
void cd_supervisor_stop(cd_supervisor *s, int64_t project_id, const char *reason, cd_sup_done_cb cb, void *user);

/* Where the project's instance answers, when it has a process that passed its start (online,
 * or offline but running): 0 with host and port, else -1. */
int cd_supervisor_target(cd_supervisor *s, int64_t project_id, char *host, size_t hostlen, int *port);

/* The project's instance was used (a request through the hub): it is not idle. */
void cd_supervisor_touch(cd_supervisor *s, int64_t project_id);
/* Instances whose process runs (starting, online or offline). */
int cd_supervisor_running(const cd_supervisor *s);
/* The same, on one host. */
int cd_supervisor_running_on(const cd_supervisor *s, const cd_host *h);

/* Several hubs: the store's instances changed (another hub said so): forget what was read of
 * other hubs' instances. */
void cd_supervisor_store_changed(cd_supervisor *s);
/* Several hubs: takes over the instances of a hub gone silent (each goes to one hub). */
void cd_supervisor_take_over(cd_supervisor *s, const char *hub_id);

/* Stops every instance and then calls cb; the supervisor is freed by cd_supervisor_free once cb
 * has run. */
void cd_supervisor_shutdown(cd_supervisor *s, cd_sup_done_cb cb, void *user);
void cd_supervisor_free(cd_supervisor *s);

#endif
