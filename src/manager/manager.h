/* The node-pack and model manager (ComfyUI-Manager's engine, DESIGN.md layer 5): catalog
 * channels, a task queue worked by one thread of its own, the installers (git, archive,
 * local folder; builds against include/comfyd/node.h), model downloads, snapshots and the
 * security policy. The HTTP routes (src/server/routes_manager.c) and the command line
 * (comfyd nodes / models) drive the same object.
 *
 * Threads: every function is called from one owner thread (the loop thread, or the CLI's main
 * thread) except where it says otherwise. The worker thread reports through the event
 * callback, which must not block; the server forwards events to the loop with uv_async.
 *
 * Files: the manager's own (config.ini, snapshots/, the SDK header builds use) live in
 * <user>/__manager/, as ComfyUI-Manager's do; packs only ever go into custom_nodes/ and models
 * only into models/ (every path is confined). A task holds an flock on custom_nodes/, so a
 * server and a command line on the same directory take turns. */
#ifndef CD_MANAGER_MANAGER_H
#define CD_MANAGER_MANAGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "manager/mconfig.h"
#include "manager/policy.h"

typedef struct cd_manager cd_manager;

/* type: "cm-queue-status" (broadcast), "cm-download-progress" (broadcast), or
 * "cm-task-done" {"task_id", "ok", "msg"} (for callers waiting on one task; not for clients).
 * data is consumed. Runs on the worker thread. */
typedef void (*cd_manager_event_fn)(void *ctx, const char *type, json_t *data);

typedef struct {
    const char *custom_nodes_dir, *models_dir, *user_dir; /* absolute */
    bool loopback;              /* every listen address is loopback */
    const char *default_channel; /* NULL: $COMFYD_DEFAULT_CHANNEL, else the one built in */
    cd_manager_event_fn on_event;
    void *ctx;
} cd_manager_options;

cd_manager *cd_manager_new(const cd_manager_options *opts, char *err, size_t errlen);
/* Cancels the running task (downloads, clones and builds stop) and joins the worker. */
void cd_manager_free(cd_manager *m);

/* The configuration (config.ini); cd_manager_save_config writes it back. */
cd_mconfig *cd_manager_config(cd_manager *m);
int cd_manager_save_config(cd_manager *m);
const char *cd_manager_dir(const cd_manager *m);
bool cd_manager_allowed(const cd_manager *m, cd_risk risk);
bool cd_manager_loopback(const cd_manager *m);

/* ---- catalog (blocking: may fetch a channel; call from the thread pool) ---- */
/* mode: "local" (the bundled channel), "cache", "remote" (the configured channel_url). */
/* With check_updates, installed git packs are fetched and "update-state" says whether origin
 * has something newer ('true', 'false' or 'fail'), as ComfyUI-Manager does without skip_update. */
json_t *cd_manager_getlist(cd_manager *m, const char *mode, bool check_updates, char *err, size_t errlen);
json_t *cd_manager_mappings(cd_manager *m, const char *mode, char *err, size_t errlen);
json_t *cd_manager_model_list(cd_manager *m, const char *mode, char *err, size_t errlen);
json_t *cd_manager_installed(cd_manager *m);
/* git fetch of every git pack: 1 when some pack has a newer commit, 0 none, -1 error. */
int cd_manager_fetch_updates(cd_manager *m, char *err, size_t errlen);

/* ---- checks done before queueing (blocking: they read the catalog) ---- */
/* The risk of installing this item (ComfyUI-Manager's rules): middle for a catalog pack or
 * a listed URL, high for a git URL in no catalog. Returns 0, or -1 for an invalid request. */
int cd_manager_install_risk(cd_manager *m, const json_t *item, cd_risk *risk, bool *unknown_url, char *err,
                            size_t errlen);
/* 0 when the model item matches an entry of the catalog (save_path, base, filename) and is
 * allowed at the current level; -1 invalid (400), -2 forbidden (403). */
int cd_manager_check_model(cd_manager *m, const json_t *item, char *err, size_t errlen);

/* ---- the queue ---- */
typedef enum {
    CD_TASK_INSTALL,
    CD_TASK_UNINSTALL,
    CD_TASK_UPDATE,
    CD_TASK_DISABLE,
    CD_TASK_ENABLE,
    CD_TASK_FIX,
    CD_TASK_REINSTALL,
    CD_TASK_INSTALL_MODEL,
    CD_TASK_UPDATE_MAIN, /* one pack of update_all */
    CD_TASK_RESTORE,     /* a snapshot */
} cd_task_kind;

/* Appends a task (params copied). Returns its id (> 0) or 0 on OOM. Any thread. */
uint64_t cd_manager_enqueue(cd_manager *m, cd_task_kind kind, const char *ui_id, const json_t *params);
/* Queues update-main for every active pack. Returns how many. */
int cd_manager_enqueue_update_all(cd_manager *m);
/* Starts the worker: 0 started, 1 already running, -1 failure. */
int cd_manager_start(cd_manager *m);
/* Drops the queued tasks (not the running one); each gets a failed "cm-task-done". */
void cd_manager_reset(cd_manager *m);
/* Drops the queued tasks and makes the running one stop soon (its download, clone or build is
 * aborted; it reports failure). The worker then exits without a "done" event. Any thread. */
void cd_manager_cancel(cd_manager *m);
bool cd_manager_is_processing(cd_manager *m);
/* {"total_count", "done_count", "in_progress_count", "is_processing"} */
json_t *cd_manager_status(cd_manager *m);

/* Runs one task on the calling thread (the command line). Returns 0 or -1 with a message; a
 * skip ("already installed") is 0 with the reason in err. progress (may be NULL) sees byte
 * counts of downloads. */
int cd_manager_run(cd_manager *m, cd_task_kind kind, const json_t *params,
                   void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx, char *err, size_t errlen);

/* ---- snapshots (<user>/__manager/snapshots/<name>.json) ---- */
json_t *cd_manager_snapshot_current(cd_manager *m);
/* Saves the current state; *name (may be NULL) gets the new name (caller frees). */
int cd_manager_snapshot_save(cd_manager *m, char **name, char *err, size_t errlen);
json_t *cd_manager_snapshot_list(cd_manager *m);
/* A name with '/', '\\', ".." or NUL is refused (-1). Removing a missing one is fine. */
int cd_manager_snapshot_remove(cd_manager *m, const char *name);
/* Loads a snapshot (NULL when missing or invalid), e.g. to queue CD_TASK_RESTORE with it. */
json_t *cd_manager_snapshot_load(cd_manager *m, const char *name);
bool cd_manager_snapshot_name_ok(const char *name);

#endif
