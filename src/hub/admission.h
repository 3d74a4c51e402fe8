/* The global admission queue in front of POST /prompt (COMFY_MAX_CONCURRENT > 0).
 *
 * A prompt sent through the proxy does not go straight to its instance. The hub checks its
 * shape, has a `comfyd serve` instance validate it (POST /prompt with validate_only, so a bad
 * graph still gets ComfyUI's 400 at once), stores it, and answers ComfyUI's
 * {prompt_id, number, node_errors}. It is sent to its instance when fewer than
 * COMFY_MAX_CONCURRENT prompts run across all instances, and its slot is freed only when it
 * really ended: the hub watches each instance's /queue and then reads /history/{id} (public
 * API only, so a Python ComfyUI works too). A prompt whose instance dies is failed with the
 * reason; one past COMFY_PROMPT_TIMEOUT_SECONDS is interrupted.
 *
 * Order: prompts of teachers and admins (and their front: true) first, by arrival; then one
 * prompt per user in turn (round-robin by user, oldest prompt of each), so fifty prompts of one
 * user do not starve another's one. Per-user limits on waiting and running prompts.
 *
 * Everything is in the store first: a hub killed at any moment finds its queue again; a prompt
 * that was running is found again in its instance's queue or history by its prompt_id, never
 * sent twice. */
#ifndef CD_HUB_ADMISSION_H
#define CD_HUB_ADMISSION_H

#include "hub/hub.h"

typedef struct cd_admission cd_admission;

/* Loads the prompts the store holds as waiting or running. */
cd_admission *cd_admission_new(cd_hub *hub, char *err, size_t errlen);
bool cd_admission_enabled(const cd_admission *a);

/* POST …/prompt of a project the caller may reach, with its whole body. Answers req. */
void cd_admission_submit(cd_admission *a, cd_http_req *req, const cd_hub_caller *caller, const cd_store_project *p,
                         const cd_store_user *owner, const char *body, size_t len);
/* The caller's held prompts of a project, as ComfyUI's queue_pending items (for GET …/queue). */
json_t *cd_admission_pending_items(cd_admission *a, int64_t user_id, int64_t project_id);
/* Cancels held prompts of a project: those of ids (or all with clear) that user may cancel.
 * Returns how many. */
int cd_admission_cancel(cd_admission *a, const cd_hub_caller *c, int64_t project_id, json_t *ids, bool clear);
/* Prompts the hub holds for a user's project that its instance does not know yet. */
int cd_admission_held_count(cd_admission *a, int64_t user_id, int64_t project_id);
/* The history entry, as ComfyUI writes one for a prompt that failed, of a prompt of this user
 * and project that its instance refused when the hub sent it (NULL for any other). */
json_t *cd_admission_refused_entry(cd_admission *a, const char *prompt_id, int64_t user_id, int64_t project_id);
/* Held prompts a user's WebSocket should hear about now (a new connection). */
void cd_admission_announce(cd_admission *a, int64_t user_id);

/* Figures for /metrics; returns {user name: waiting} (caller decrefs). */
typedef struct {
    int waiting, running;
} cd_admission_stats;
json_t *cd_admission_stats_get(cd_admission *a, cd_admission_stats *out);

/* Queue length and running prompts, sampled every 10 s over the last hour: copies at most max,
 * oldest first, and returns how many. */
typedef struct {
    int64_t at; /* ms since the epoch */
    int waiting, running;
} cd_admission_sample;
size_t cd_admission_series(const cd_admission *a, cd_admission_sample *out, size_t max);
#define CD_ADMISSION_SERIES_MAX 360
#define CD_ADMISSION_SAMPLE_MS 10000

/* Every prompt the hub holds (queued, dispatching, running), in dispatch order for the queued
 * ones after those sent; position is 1.. for queued, 0 for the others. Malloc'd (caller frees). */
typedef struct {
    cd_store_prompt p;
    int position;
} cd_admission_entry;
cd_admission_entry *cd_admission_list(cd_admission *a, size_t *n);
/* The entry of one held prompt; false when the hub does not hold it. */
bool cd_admission_find(cd_admission *a, const char *prompt_id, cd_admission_entry *out);
int cd_admission_max_concurrent(const cd_admission *a);
/* The queue's length and the prompts out, from its counters (no walk of the queue). */
void cd_admission_counts(const cd_admission *a, int *waiting, int *running);

/* Several hubs (peers.h): another hub changed the queue in the store (read it again soon);
 * a hub went silent (take over its prompts out at instances). */
void cd_admission_store_changed(cd_admission *a);
void cd_admission_take_over(cd_admission *a, const char *hub_id);

/* The routes of GET /api/queue/... (api_queue.c). */
void cd_hub_api_queue_register(cd_hub *hub);
/* Stops dispatching; cd_admission_idle tells when nothing of it is under way any more. */
void cd_admission_stop(cd_admission *a);
bool cd_admission_idle(const cd_admission *a);
void cd_admission_free(cd_admission *a);

#endif
