/* Jobs as ComfyUI 0.8 lists them (jobs.h).
 *
 * Points where Python's behaviour is followed on purpose:
 *  - A job has no key for a value that is None (prune_dict), so a job made from a queue item
 *    has no execution times, and one without create_time has no create_time.
 *  - Sorting uses Python's sorted(): stable, also with reverse=True, so jobs with equal keys
 *    keep the gathering order in both directions. A missing key sorts as 0; so does a duration
 *    whose start or end is missing or 0 (`end - start if end and start else 0`).
 *  - A history entry's status is "failed" only for status_str "error"; anything else,
 *    interrupted prompts aside (they are "error" too), is "completed".
 *  - Where ComfyUI would raise on a malformed value (an extra_pnginfo that is not a dict, a
 *    format that is not a string) and answer 500, the value is ignored instead: such entries
 *    cannot come from POST /prompt's own fields, only from what a client put in extra_data.
 */
#include "engine/jobs.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

unsigned cd_job_status_bit(const char *name) {
    static const struct {
        const char *name;
        unsigned bit;
    } all[] = {{"pending", CD_JOB_PENDING},
               {"in_progress", CD_JOB_IN_PROGRESS},
               {"completed", CD_JOB_COMPLETED},
               {"failed", CD_JOB_FAILED}};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, all[i].name)) return all[i].bit;
    return 0;
}

/* prune_dict: sets key unless v is NULL or JSON null (v stolen). Returns -1 on failure. */
static int set_present(json_t *o, const char *key, json_t *v) {
    if (!v) return 0;
    if (json_is_null(v)) {
        json_decref(v);
        return 0;
    }
    return json_object_set_new(o, key, v);
}

/* d.get(key) of a dict, NULL when d is no dict or lacks key (borrowed). */
static json_t *dget(const json_t *d, const char *key) { return json_is_object(d) ? json_object_get(d, key) : NULL; }

/* A deep copy, or NULL for NULL. */
static json_t *copy(const json_t *v) { return v ? json_deep_copy(v) : NULL; }

/* _extract_job_metadata: extra_data's create_time and extra_pnginfo.workflow.id (borrowed). */
static void job_metadata(const json_t *extra_data, json_t **create_time, json_t **workflow_id) {
    *create_time = dget(extra_data, "create_time");
    *workflow_id = dget(dget(dget(extra_data, "extra_pnginfo"), "workflow"), "id");
}

json_t *cd_job_from_queue_item(const json_t *item, const char *status) {
    json_t *create_time, *workflow_id;
    job_metadata(json_array_get(item, 3), &create_time, &workflow_id);
    json_t *job = json_object();
    int rc = job ? 0 : -1;
    rc |= set_present(job, "id", copy(json_array_get(item, 1)));
    rc |= set_present(job, "status", json_string(status));
    rc |= set_present(job, "priority", copy(json_array_get(item, 0)));
    rc |= set_present(job, "create_time", copy(create_time));
    rc |= set_present(job, "outputs_count", json_integer(0));
    rc |= set_present(job, "workflow_id", copy(workflow_id));
    if (rc) {
        json_decref(job);
        return NULL;
    }
    return job;
}

static bool ends_with_ci(const char *s, size_t len, const char *suffix) {
    size_t n = strlen(suffix);
    if (len < n) return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s[len - n + i]) != suffix[i]) return false;
    return true;
}

/* is_previewable: the media types the frontend shows, a video or audio MIME format, or a 3D
 * file by its extension (any case). */
static bool previewable(const char *media_type, const json_t *item) {
    if (!strcmp(media_type, "images") || !strcmp(media_type, "video") || !strcmp(media_type, "audio")) return true;
    const char *fmt = json_string_value(dget(item, "format"));
    if (fmt && (!strncmp(fmt, "video/", 6) || !strncmp(fmt, "audio/", 6))) return true;
    const json_t *name = dget(item, "filename");
    if (json_is_string(name)) {
        const char *s = json_string_value(name);
        size_t len = json_string_length(name);
        static const char *exts[] = {".obj", ".fbx", ".gltf", ".glb"};
        for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
            if (ends_with_ci(s, len, exts[i])) return true;
    }
    return false;
}

/* {**item, "nodeId": node_id, "mediaType": media_type}: keys the item already has keep their
 * place, as a dict update does. */
static json_t *enriched(const json_t *item, const char *node_id, const char *media_type) {
    json_t *e = json_deep_copy(item);
    if (e && (json_object_set_new(e, "nodeId", json_string(node_id)) ||
              json_object_set_new(e, "mediaType", json_string(media_type)))) {
        json_decref(e);
        return NULL;
    }
    return e;
}

json_t *cd_job_outputs_summary(const json_t *outputs, json_int_t *count) {
    *count = 0;
    const json_t *preview = NULL, *fallback = NULL;
    const char *preview_node = NULL, *preview_media = NULL, *fallback_node = NULL, *fallback_media = NULL;
    const char *node_id;
    json_t *node_outputs;
    if (!json_is_object(outputs)) return NULL;
    json_object_foreach((json_t *)outputs, node_id, node_outputs) {
        if (!json_is_object(node_outputs)) continue;
        const char *media_type;
        json_t *items;
        json_object_foreach(node_outputs, media_type, items) {
            /* "animated" is a flag list, not items */
            if (!strcmp(media_type, "animated") || !json_is_array(items)) continue;
            size_t i;
            json_t *item;
            json_array_foreach(items, i, item) {
                if (!json_is_object(item)) continue;
                (*count)++;
                if (preview || !previewable(media_type, item)) continue;
                if (!strcmp(json_string_value(dget(item, "type")) ? json_string_value(dget(item, "type")) : "",
                            "output")) {
                    preview = item;
                    preview_node = node_id;
                    preview_media = media_type;
                } else if (!fallback) {
                    fallback = item;
                    fallback_node = node_id;
                    fallback_media = media_type;
                }
            }
        }
    }
    if (preview) return enriched(preview, preview_node, preview_media);
    if (fallback) return enriched(fallback, fallback_node, fallback_media);
    return NULL;
}

json_t *cd_job_from_history(const char *prompt_id, const json_t *entry, bool include_outputs) {
    const json_t *tuple = dget(entry, "prompt");
    json_t *priority = json_array_get(tuple, 0), *prompt = json_array_get(tuple, 2);
    json_t *extra_data = json_array_get(tuple, 3);
    json_t *create_time, *workflow_id;
    job_metadata(extra_data, &create_time, &workflow_id);

    json_t *status_info = dget(entry, "status");
    /* `status_info.get('status_str') if status_info else None`: an empty dict counts as none */
    const char *status_str =
        json_is_object(status_info) && json_object_size(status_info) ? json_string_value(dget(status_info, "status_str"))
                                                                      : NULL;
    const char *status = status_str && !strcmp(status_str, "error") ? "failed" : "completed";

    json_t *outputs = dget(entry, "outputs");
    json_int_t outputs_count;
    json_t *preview = cd_job_outputs_summary(outputs, &outputs_count);

    /* Times and the error from the status messages; a later event overrides an earlier one. */
    const json_t *start = NULL, *end = NULL, *error = NULL;
    json_t *messages = json_is_object(status_info) && json_object_size(status_info) ? dget(status_info, "messages") : NULL;
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        if (!json_is_array(m) || json_array_size(m) < 2) continue;
        const char *event = json_string_value(json_array_get(m, 0));
        json_t *data = json_array_get(m, 1);
        if (!event || !json_is_object(data)) continue;
        if (!strcmp(event, "execution_start")) {
            start = dget(data, "timestamp");
        } else if (!strcmp(event, "execution_success") || !strcmp(event, "execution_error") ||
                   !strcmp(event, "execution_interrupted")) {
            end = dget(data, "timestamp");
            if (!strcmp(event, "execution_error")) error = data;
        }
    }

    json_t *job = json_object();
    int rc = job ? 0 : -1;
    rc |= set_present(job, "id", json_string(prompt_id));
    rc |= set_present(job, "status", json_string(status));
    rc |= set_present(job, "priority", copy(priority));
    rc |= set_present(job, "create_time", copy(create_time));
    rc |= set_present(job, "execution_start_time", copy(start));
    rc |= set_present(job, "execution_end_time", copy(end));
    rc |= set_present(job, "execution_error", copy(error));
    rc |= set_present(job, "outputs_count", json_integer(outputs_count));
    rc |= set_present(job, "preview_output", preview);
    rc |= set_present(job, "workflow_id", copy(workflow_id));
    if (include_outputs && !rc) {
        /* not pruned: these three are set as they are, None included */
        json_t *workflow = json_object();
        rc |= json_object_set_new(job, "outputs", outputs ? json_deep_copy(outputs) : json_object());
        rc |= json_object_set_new(job, "execution_status", status_info ? json_deep_copy(status_info) : json_object());
        rc |= workflow ? 0 : -1;
        rc |= json_object_set_new(workflow, "prompt", prompt ? json_deep_copy(prompt) : json_null());
        rc |= json_object_set_new(workflow, "extra_data", extra_data ? json_deep_copy(extra_data) : json_null());
        rc |= json_object_set_new(job, "workflow", workflow);
    }
    if (rc) {
        json_decref(job);
        return NULL;
    }
    return job;
}

/* ---- the listing ---- */

typedef struct {
    json_t *job;
    double key;
    size_t index; /* gathering order, for a stable sort */
} sorted_job;

/* A number as Python compares it; anything else (missing) is 0. */
static double num(const json_t *v) { return json_is_number(v) ? json_number_value(v) : 0; }

static double sort_key(const json_t *job, cd_jobs_sort by) {
    if (by == CD_JOBS_BY_CREATE_TIME) return num(json_object_get(job, "create_time"));
    double start = num(json_object_get(job, "execution_start_time")), end = num(json_object_get(job, "execution_end_time"));
    return end != 0 && start != 0 ? end - start : 0;
}

static int cmp_asc(const void *pa, const void *pb) {
    const sorted_job *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static int cmp_desc(const void *pa, const void *pb) {
    const sorted_job *a = pa, *b = pb;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index; /* sorted(reverse=True) stays stable */
}

/* A pagination number as an index: big integers (Python's are unbounded) saturate. */
static size_t as_index(const json_t *v) {
    if (!v) return 0;
    if (cd_json_bigint_text(v)) return cd_json_bigint_text(v)[0] == '-' ? 0 : SIZE_MAX;
    json_int_t n = json_integer_value(v);
    return n < 0 ? 0 : (uint64_t)n > SIZE_MAX ? SIZE_MAX : (size_t)n;
}

json_t *cd_jobs_page(const json_t *jobs, const cd_jobs_query *q) {
    size_t n = json_array_size(jobs), kept = 0;
    sorted_job *list = calloc(n ? n : 1, sizeof *list);
    if (!list) return NULL;
    const char *workflow = q->workflow_id && q->workflow_id[0] ? q->workflow_id : NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *job = json_array_get(jobs, i);
        if (!(cd_job_status_bit(json_string_value(json_object_get(job, "status"))) & q->statuses)) continue;
        if (workflow) {
            /* job.get('workflow_id') == workflow_id: only a string can equal the query's */
            const char *w = json_string_value(json_object_get(job, "workflow_id"));
            if (!w || strlen(w) != json_string_length(json_object_get(job, "workflow_id")) || strcmp(w, workflow))
                continue;
        }
        list[kept] = (sorted_job){job, sort_key(job, q->sort_by), kept};
        kept++;
    }
    qsort(list, kept, sizeof *list, q->descending ? cmp_desc : cmp_asc);
    size_t offset = as_index(q->offset), limit = q->limit ? as_index(q->limit) : SIZE_MAX;
    size_t from = offset < kept ? offset : kept;
    size_t count = kept - from < limit ? kept - from : limit;
    json_t *page = json_array();
    int rc = page ? 0 : -1;
    for (size_t i = from; i < from + count && !rc; i++) rc |= json_array_append(page, list[i].job);
    free(list);
    json_t *pagination = json_object();
    rc |= pagination ? 0 : -1;
    /* offset echoes the query's (negative ones became 0 before), limit is null when absent */
    rc |= json_object_set_new(pagination, "offset", q->offset ? json_deep_copy(q->offset) : json_integer(0));
    rc |= json_object_set_new(pagination, "limit", q->limit ? json_deep_copy(q->limit) : json_null());
    rc |= json_object_set_new(pagination, "total", json_integer((json_int_t)kept));
    /* (offset + len(jobs)) < total, with Python's unbounded offset */
    rc |= json_object_set_new(pagination, "has_more", json_boolean(offset < kept && from + count < kept));
    json_t *out = rc ? NULL : json_object();
    if (!out) {
        json_decref(page);
        json_decref(pagination);
        return NULL;
    }
    rc = json_object_set_new(out, "jobs", page); /* set_new takes the value even when it fails */
    rc |= json_object_set_new(out, "pagination", pagination);
    if (rc) {
        json_decref(out);
        return NULL;
    }
    return out;
}
