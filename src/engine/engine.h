/* The engine service of one instance: the prompt queue, the executor thread that runs one
 * prompt at a time, the history, and the /free and interrupt controls. The server layer calls
 * it from the loop thread; it reports events through the sink from its own thread. */
#ifndef CD_ENGINE_ENGINE_H
#define CD_ENGINE_ENGINE_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/cache.h"
#include "engine/executor.h"
#include "engine/jobs.h"
#include "engine/registry.h"

typedef struct cd_engine cd_engine;

typedef struct {
    cd_cache_policy cache_policy;
    size_t cache_lru_size;
    const char *history_db; /* NULL: in memory only */
    size_t history_max;     /* ComfyUI keeps 10000 */
} cd_engine_config;

cd_engine *cd_engine_new(const cd_registry *reg, const cd_engine_config *cfg, const cd_event_sink *sink, char *err,
                         size_t errlen);
/* Starts the executor thread. Returns 0 or -1. */
int cd_engine_start(cd_engine *e);
/* Interrupts the running prompt, stops the thread after it, frees everything. */
void cd_engine_free(cd_engine *e);

/* POST /prompt: validates and queues. Returns the HTTP status and fills *reply (new reference)
 * with ComfyUI's answer. body may be any JSON value; its "prompt" is converted in place and
 * kept by the queue, so the caller must not use the body afterwards except to release it (nor
 * submit it again: the executor and the history read that prompt from other threads). */
int cd_engine_submit(cd_engine *e, json_t *body, json_t **reply);
/* The same from the request body as received (empty: {}). Returns -1 when it is not JSON (no
 * reply then). The same bytes as the last accepted body are not parsed and validated again
 * when that validation is repeatable (see cd_validation.repeatable). */
int cd_engine_submit_text(cd_engine *e, const char *text, size_t len, json_t **reply);

int cd_engine_queue_remaining(cd_engine *e);
json_t *cd_engine_queue(cd_engine *e); /* GET /queue */
void cd_engine_queue_clear(cd_engine *e);
void cd_engine_queue_delete(cd_engine *e, const char *prompt_id);
/* prompt_id NULL: global. Otherwise only if that prompt is running. Returns whether it acted. */
bool cd_engine_interrupt(cd_engine *e, const char *prompt_id);
/* POST /free: applied by the executor thread when idle or after the running prompt. */
void cd_engine_free_memory(cd_engine *e, bool unload_models, bool free_memory);

json_t *cd_engine_history(cd_engine *e, long max_items, long offset);
json_t *cd_engine_history_get(cd_engine *e, const char *prompt_id);
void cd_engine_history_delete(cd_engine *e, const char *prompt_id);
void cd_engine_history_clear(cd_engine *e);

/* GET /api/jobs: the running, pending and finished prompts as jobs, filtered, sorted and
 * paginated by q (engine/jobs.h). New reference; NULL when out of memory. */
json_t *cd_engine_jobs(cd_engine *e, const cd_jobs_query *q);
/* GET /api/jobs/{id}: the prompt's job, with outputs and workflow when it is finished. New
 * reference; NULL when no prompt has that id (or memory ran out). */
json_t *cd_engine_job(cd_engine *e, const char *prompt_id);

const cd_registry *cd_engine_registry(const cd_engine *e);

#endif
