/* GET /jobs and /jobs/{job_id} (each also under /api), ComfyUI 0.8's jobs API: the query is
 * checked in ComfyUI's order with its 400 messages, the listing comes from the engine
 * (engine/jobs.h), so finished jobs are read from the durable history and survive a restart. */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/str.h"
#include "engine/engine.h"
#include "engine/validate.h"
#include "server/instance.h"

static void bad_request(cd_http_req *req, const char *message) {
    cd_respond_json(req, 400, json_pack("{s:s}", "error", message));
}

/* Bytes of the white space character str.strip() removes at s (n bytes left), 0 when none:
 * ASCII's, \x1c-\x1f, and the Unicode spaces Python's str.isspace() knows. */
static size_t space_at(const unsigned char *s, size_t n) {
    if (n >= 1 && (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x1f))) return 1;
    if (n >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (n >= 3) {
        unsigned cp = ((unsigned)(s[0] & 0x0f) << 12) | ((unsigned)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        if ((s[0] & 0xf0) != 0xe0 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
            cp == 0x205f || cp == 0x3000)
            return 3;
    }
    return 0;
}

/* s.strip(): the range [*from, *to) of s[0..len) without white space at either end. */
static void py_strip(const char *s, size_t len, size_t *from, size_t *to) {
    const unsigned char *u = (const unsigned char *)s;
    size_t a = 0, b = len, k;
    while (a < b && (k = space_at(u + a, b - a))) a += k;
    for (;;) {
        size_t before = b;
        for (k = 1; k <= 3 && k <= b - a; k++)
            if (space_at(u + b - k, k) == k) {
                b -= k;
                break;
            }
        if (b == before) break;
    }
    *from = a;
    *to = b;
}

/* s.lower() for what can match: the names are ASCII, and no other character lowers to an ASCII
 * letter of theirs; other characters are kept (only an error message would show them). */
static void ascii_lower(char *s) {
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

/* The status filter: 0 after answering 400, else 1 with *bits set (all statuses when the
 * parameter is absent or empty). */
static int parse_statuses(cd_http_req *req, const char *param, unsigned *bits) {
    *bits = CD_JOB_ALL;
    if (!param || !param[0]) return 1;
    *bits = 0; /* "," filters on nothing: no jobs, as in ComfyUI */
    cd_buf invalid = CD_BUF_INIT;
    bool oom = false;
    const char *p = param;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p), a, b;
        py_strip(p, len, &a, &b);
        if (b > a) {
            char *name = strndup(p + a, b - a);
            if (!name) oom = true;
            else {
                ascii_lower(name);
                unsigned bit = cd_job_status_bit(name);
                if (bit) *bits |= bit;
                else if ((invalid.len && cd_buf_append(&invalid, ", ", 2) < 0) ||
                         cd_buf_append(&invalid, name, strlen(name)) < 0)
                    oom = true;
                free(name);
            }
        }
        if (!comma) break;
        p = comma + 1;
    }
    int ok = 1;
    if (oom) {
        cd_http_respond_text(req, 500, "500: out of memory");
        ok = 0;
    } else if (invalid.len) {
        cd_buf msg = CD_BUF_INIT;
        cd_buf_printf(&msg, "Invalid status value(s): %.*s. Valid values: pending, in_progress, completed, failed",
                      (int)invalid.len, invalid.data);
        bad_request(req, msg.data ? msg.data : "Invalid status value(s)");
        cd_buf_free(&msg);
        ok = 0;
    }
    cd_buf_free(&invalid);
    return ok;
}

/* int() of a query parameter, or NULL when int() would raise (new reference). */
static json_t *py_int_param(const char *text) { return cd_validate_py_int_text(text, strlen(text)); }

static bool is_positive(const json_t *n) {
    const char *big = cd_json_bigint_text(n);
    return big ? big[0] != '-' : json_integer_value(n) > 0;
}

static void handle_jobs(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    const char *query = cd_http_req_query(req);
    char *status = cd_str_query_get(query, "status");
    char *workflow_id = cd_str_query_get(query, "workflow_id");
    char *sort_by = cd_str_query_get(query, "sort_by");
    char *sort_order = cd_str_query_get(query, "sort_order");
    char *limit_text = cd_str_query_get(query, "limit");
    char *offset_text = cd_str_query_get(query, "offset");
    json_t *limit = NULL, *offset = NULL;
    cd_jobs_query q = {.workflow_id = workflow_id};
    if (sort_by) ascii_lower(sort_by);
    if (sort_order) ascii_lower(sort_order);
    if (!parse_statuses(req, status, &q.statuses)) goto done;
    if (!sort_by || !strcmp(sort_by, "created_at")) q.sort_by = CD_JOBS_BY_CREATE_TIME;
    else if (!strcmp(sort_by, "execution_duration")) q.sort_by = CD_JOBS_BY_DURATION;
    else {
        bad_request(req, "sort_by must be 'created_at' or 'execution_duration'");
        goto done;
    }
    if (!sort_order || !strcmp(sort_order, "desc")) q.descending = true;
    else if (strcmp(sort_order, "asc")) {
        bad_request(req, "sort_order must be 'asc' or 'desc'");
        goto done;
    }
    if (limit_text) {
        if (!(limit = py_int_param(limit_text))) {
            bad_request(req, "limit must be an integer");
            goto done;
        }
        if (!is_positive(limit)) {
            bad_request(req, "limit must be a positive integer");
            goto done;
        }
    }
    if (offset_text) {
        if (!(offset = py_int_param(offset_text))) {
            bad_request(req, "offset must be an integer");
            goto done;
        }
        if (!is_positive(offset)) { /* a negative offset is 0 */
            json_decref(offset);
            offset = json_integer(0);
        }
    }
    q.limit = limit;
    q.offset = offset;
    json_t *page = cd_engine_jobs(inst->engine, &q);
    if (page) cd_respond_json(req, 200, page);
    else cd_http_respond_text(req, 500, "500: out of memory");
done:
    json_decref(limit);
    json_decref(offset);
    free(status);
    free(workflow_id);
    free(sort_by);
    free(sort_order);
    free(limit_text);
    free(offset_text);
}

static void handle_job(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    const char *id = cd_http_req_param(req, "job_id");
    if (!id || !id[0]) {
        bad_request(req, "job_id is required");
        return;
    }
    json_t *job = cd_engine_job(inst->engine, id);
    if (job) cd_respond_json(req, 200, job);
    else cd_respond_json(req, 404, json_pack("{s:s}", "error", "Job not found"));
}

void cd_routes_jobs_register(cd_instance *inst) {
    cd_router_add_api(inst->router, "GET", "/jobs", handle_jobs, inst);
    cd_router_add_api(inst->router, "GET", "/jobs/{job_id}", handle_job, inst);
}
