/* The prompt queue: a min-heap ordered by (number, prompt_id), as ComfyUI's PromptQueue, shared
 * between the loop thread (submit, list, delete) and the executor thread (take, done). */
#ifndef CD_ENGINE_QUEUE_H
#define CD_ENGINE_QUEUE_H

#include <jansson.h>
#include <stdbool.h>

typedef struct {
    double number;
    bool number_is_float; /* the client gave "number": shown back as a float, as ComfyUI does */
    char *prompt_id;
    json_t *prompt;     /* validated, converted */
    json_t *extra_data; /* includes client_id */
    json_t *outputs;    /* array of node ids to execute */
} cd_queue_item;

typedef struct cd_queue cd_queue;

cd_queue *cd_queue_new(void);
void cd_queue_free(cd_queue *q);
void cd_queue_item_free(cd_queue_item *it);
/* The 5-element array clients see: [number, prompt_id, prompt, extra_data, outputs]. */
json_t *cd_queue_item_json(const cd_queue_item *it);

void cd_queue_put(cd_queue *q, cd_queue_item *it); /* takes ownership */
/* Executor: blocks until an item is pending (1: *out is it, now "running"), cd_queue_wake was
 * called or timeout_ms passed (0; a negative timeout waits for ever), or the queue is closed
 * (-1). */
int cd_queue_take(cd_queue *q, cd_queue_item **out, int timeout_ms);
/* Executor: the running item finished; it is freed. */
void cd_queue_done(cd_queue *q);
void cd_queue_close(cd_queue *q);
/* Wakes a waiting cd_queue_take without an item: for /free, which the executor applies when
 * idle. */
void cd_queue_wake(cd_queue *q);

int cd_queue_remaining(cd_queue *q); /* pending + running */
/* {"queue_running": [...], "queue_pending": [...]} (heap order, as ComfyUI). */
json_t *cd_queue_snapshot(cd_queue *q);
void cd_queue_clear(cd_queue *q);
/* Removes the first pending item with this id; returns whether one was removed. */
bool cd_queue_delete(cd_queue *q, const char *prompt_id);
/* Is this prompt the one running? */
bool cd_queue_is_running(cd_queue *q, const char *prompt_id);

#endif
