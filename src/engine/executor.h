/* The executor: runs one validated prompt with ComfyUI's semantics (API reference §7, §8):
 * only the requested outputs and what they need, in dependency order without recursion,
 * results cached by input signature, lazy inputs, execution blockers, list mapping and node
 * expansion, progress and interrupt, and the WebSocket events in ComfyUI's order. It runs on
 * the caller's thread (the server's executor thread, or `comfyd run`'s main thread) and reports
 * through an event sink, on that thread only: async nodes, whose calls end on threads of their
 * own, are in flight together while the rest runs one node at a time, and what their threads
 * send goes through the executor thread. */
#ifndef CD_ENGINE_EXECUTOR_H
#define CD_ENGINE_EXECUTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/cache.h"
#include "engine/registry.h"

typedef struct {
    void *ctx;
    /* A JSON event {"type": type, "data": data} for client sid (NULL: everyone). data is
     * consumed. Called on the executor's thread. */
    void (*event)(void *ctx, const char *type, json_t *data, const char *sid);
    /* Optional: a whole text message {"type": type, "data": ...} already serialised (borrowed:
     * the sink copies what it keeps), for the events sent for every node; `node` is the display
     * id an `executing` message names (else NULL). Without it these events come through
     * `event`. */
    void (*event_text)(void *ctx, const char *type, const char *node, const char *message, size_t len,
                       const char *sid);
    /* A binary frame: 4-byte big-endian event kind, then payload (already laid out). */
    void (*binary)(void *ctx, uint32_t kind, const void *payload, size_t len, const char *sid);
    /* Output, input and temp directories for nodes that write files. */
    const char *(*directory)(void *ctx, const char *type);
    bool no_metadata; /* --disable-metadata: saved files carry no prompt or workflow */
} cd_event_sink;

typedef struct cd_executor cd_executor;

cd_executor *cd_executor_new(const cd_registry *reg, cd_cache_policy policy, size_t lru_size, const cd_event_sink *sink);
void cd_executor_free(cd_executor *ex);

typedef struct {
    const char *prompt_id;
    json_t *prompt;     /* validated API-format prompt */
    json_t *extra_data; /* may hold client_id and extra_pnginfo */
    json_t *outputs;    /* array of output node ids to execute */
} cd_exec_request;

typedef struct {
    bool success;     /* no node failed and not interrupted */
    bool interrupted;
    json_t *outputs;  /* history "outputs": {node_id: ui} */
    json_t *messages; /* history status "messages": [[event, data], ...] */
    json_t *meta;     /* history "meta" */
    json_t *error;    /* the execution_error data when a node failed, else NULL */
    size_t executed_count, cached_count;
} cd_exec_result;

/* Runs the request to completion. Returns 0 (see result) or -1 when the prompt could not even
 * start (out of memory). */
int cd_executor_run(cd_executor *ex, const cd_exec_request *req, cd_exec_result *result);
void cd_exec_result_clear(cd_exec_result *r);

/* Executor thread: frees what the last runs kept for themselves (their graphs and node states,
 * evicted cache entries). Call once a result is handled and its last event sent, when no other
 * prompt waits; a run does it itself when several runs' worth wait. Results stay valid. */
void cd_executor_collect(cd_executor *ex);
/* How many nodes the runs waiting for cd_executor_collect hold (a measure of their memory). */
size_t cd_executor_uncollected_nodes(const cd_executor *ex);
/* Any thread: stop the running prompt at the next node boundary or progress report. */
void cd_executor_interrupt(cd_executor *ex);
/* Executor thread, between prompts: drop every cached result (/free with free_memory). */
void cd_executor_reset_caches(cd_executor *ex);

#endif
