/* The jobs view of ComfyUI 0.8 (GET /api/jobs and /api/jobs/{id}): one summary per prompt,
 * pending, running or finished, made from the queue and from the history. The frontend's queue
 * panel and newer SDKs read it instead of /queue plus /history, so the shapes, the status
 * filter, the sort and the pagination are ComfyUI's (comfy_execution/jobs.py and the routes in
 * its server.py); jobs.c says where Python's behaviour needed care.
 *
 * Everything here works on JSON values and does no I/O: the engine gathers the queue and the
 * history, the server parses the query. A job made from a history entry does not depend on its
 * prompt graph, so the history computes it once per entry and keeps it (engine/history.h). */
#ifndef CD_ENGINE_JOBS_H
#define CD_ENGINE_JOBS_H

#include <jansson.h>
#include <stdbool.h>

/* Job statuses as bits, for the filter. */
enum {
    CD_JOB_PENDING = 1,
    CD_JOB_IN_PROGRESS = 2,
    CD_JOB_COMPLETED = 4,
    CD_JOB_FAILED = 8,
    CD_JOB_ALL = 15,
};

/* The bit of a status name ("pending", "in_progress", "completed", "failed"), 0 for others. */
unsigned cd_job_status_bit(const char *name);

/* A queue item as /queue shows it ([number, prompt_id, prompt, extra_data, outputs]) as a job
 * of status "pending" or "in_progress". New reference; NULL when out of memory. */
json_t *cd_job_from_queue_item(const json_t *item, const char *status);

/* A history entry ({prompt, outputs, status, meta}) as a job. include_outputs adds what
 * GET /api/jobs/{id} shows beyond the listing: outputs, execution_status and workflow
 * {prompt, extra_data}. Values of the entry are copied, never shared. New reference; NULL when
 * out of memory. */
json_t *cd_job_from_history(const char *prompt_id, const json_t *entry, bool include_outputs);

/* get_outputs_summary: the number of output items in a history entry's outputs and the one the
 * frontend previews (an item of type "output" first, else the first previewable one), with its
 * nodeId and mediaType. Returns the preview (new reference) or NULL when there is none; *count
 * gets the number. */
json_t *cd_job_outputs_summary(const json_t *outputs, json_int_t *count);

typedef enum { CD_JOBS_BY_CREATE_TIME, CD_JOBS_BY_DURATION } cd_jobs_sort;

typedef struct {
    unsigned statuses;       /* CD_JOB_* bits of the jobs to list (0 lists none, as ComfyUI) */
    const char *workflow_id; /* NULL or "": any workflow */
    cd_jobs_sort sort_by;
    bool descending;
    const json_t *limit;  /* a positive integer (or big integer), NULL for no limit (borrowed) */
    const json_t *offset; /* a non-negative integer (or big integer), NULL for 0 (borrowed) */
} cd_jobs_query;

/* GET /api/jobs's answer, {"jobs": [...], "pagination": {offset, limit, total, has_more}}, from
 * every job in the order ComfyUI gathers them (running, pending in queue order, then the
 * history oldest first): filtered, sorted stably and sliced. jobs is borrowed; the answer shares
 * its elements. New reference; NULL when out of memory. */
json_t *cd_jobs_page(const json_t *jobs, const cd_jobs_query *q);

#endif
