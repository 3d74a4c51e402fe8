/* Projects and workflows (ComfyTavern's API, manager-and-tavern.md Part B), the shared workflow
 * library, and the UI-to-API workflow conversion. The store is projects.c (its header gives
 * the layout on disk: <base_dir>/projects/ and <base_dir>/library/workflows/); every store call
 * blocks on files, so it runs in the thread pool and answers from the loop.
 *
 * Errors are ComfyTavern's `{"error": string}`. Reads carry an ETag (the SHA-256 of the stored
 * bytes); writes honour If-Match and answer 412 when it no longer matches, so two editors
 * cannot silently overwrite each other. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "server/instance.h"
#include "server/projects.h"
#include "server/workflow_convert.h"

typedef enum {
    OP_LIST,
    OP_CREATE,
    OP_GET_META,
    OP_PUT_META,
    OP_DELETE,
    OP_LIST_WF,
    OP_CREATE_WF,
    OP_GET_WF,
    OP_PUT_WF,
    OP_DELETE_WF,
    OP_LIB_LIST,
    OP_LIB_GET,
} op_kind;

/* One request's work, copied off the request so the thread never touches it. */
typedef struct {
    op_kind op;
    char *base, *pid, *wid, *if_match, *if_none_match;
    char *raw; /* the body, parsed in the thread (it may be large) */
    size_t raw_len;
    int rc;
    char err[512];
    json_t *list;
    cd_projects_doc doc;
} job;

static void job_free(job *j) {
    free(j->base);
    free(j->pid);
    free(j->wid);
    free(j->if_match);
    free(j->if_none_match);
    free(j->raw);
    json_decref(j->list);
    cd_projects_doc_free(&j->doc);
    free(j);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static bool has_body(op_kind op) {
    return op == OP_CREATE || op == OP_PUT_META || op == OP_CREATE_WF || op == OP_PUT_WF;
}

static void run_job(void *arg) {
    job *j = arg;
    json_t *body = NULL;
    if (has_body(j->op)) {
        json_error_t jerr;
        body = j->raw_len ? cd_json_parse(j->raw, j->raw_len, CD_JSON_REJECT_BIGINT, &jerr) : NULL;
        if (!body) {
            j->rc = CD_PROJECTS_EINVAL;
            snprintf(j->err, sizeof j->err, "The request body is not a JSON object%s%s", j->raw_len ? ": " : "",
                     j->raw_len ? jerr.text : "");
            return;
        }
    }
    char *e = j->err;
    size_t n = sizeof j->err;
    switch (j->op) {
    case OP_LIST: j->rc = cd_projects_list(j->base, &j->list, e, n); break;
    case OP_CREATE: j->rc = cd_projects_create(j->base, body, &j->doc, e, n); break;
    case OP_GET_META: j->rc = cd_projects_get_meta(j->base, j->pid, &j->doc, e, n); break;
    case OP_PUT_META: j->rc = cd_projects_update_meta(j->base, j->pid, body, j->if_match, &j->doc, e, n); break;
    case OP_DELETE: j->rc = cd_projects_delete(j->base, j->pid, j->if_match, e, n); break;
    case OP_LIST_WF: j->rc = cd_projects_list_workflows(j->base, j->pid, &j->list, e, n); break;
    case OP_CREATE_WF: j->rc = cd_projects_create_workflow(j->base, j->pid, body, &j->doc, e, n); break;
    case OP_GET_WF: j->rc = cd_projects_get_workflow(j->base, j->pid, j->wid, &j->doc, e, n); break;
    case OP_PUT_WF: j->rc = cd_projects_put_workflow(j->base, j->pid, j->wid, body, j->if_match, &j->doc, e, n); break;
    case OP_DELETE_WF: j->rc = cd_projects_delete_workflow(j->base, j->pid, j->wid, j->if_match, e, n); break;
    case OP_LIB_LIST: j->rc = cd_projects_library_list(j->base, &j->list, e, n); break;
    case OP_LIB_GET: j->rc = cd_projects_library_get(j->base, j->wid, &j->doc, e, n); break;
    }
    json_decref(body);
}

static void respond_error(cd_http_req *req, int status, const char *msg) {
    cd_respond_json(req, status, json_pack("{s:s}", "error", msg));
}

static void finish_job(cd_http_req *req, void *arg) {
    job *j = arg;
    if (!req) {
        job_free(j);
        return;
    }
    if (j->rc != 0) {
        int status = cd_projects_status(j->rc);
        if (status == 500) cd_log(CD_LOG_ERROR, "projects: %s", j->err);
        respond_error(req, status, j->err);
    } else if (j->op == OP_DELETE || j->op == OP_DELETE_WF) {
        cd_http_respond(req, 204, NULL, NULL, 0);
    } else if (j->list) {
        cd_respond_json(req, 200, json_incref(j->list));
    } else {
        cd_http_add_header(req, "ETag", j->doc.etag);
        bool created = j->op == OP_CREATE || j->op == OP_CREATE_WF;
        if (!created && j->if_none_match && cd_projects_etag_matches(j->if_none_match, j->doc.etag) &&
            (j->op == OP_GET_META || j->op == OP_GET_WF || j->op == OP_LIB_GET))
            cd_http_respond(req, 304, NULL, NULL, 0);
        else
            cd_http_respond(req, created ? 201 : 200, "application/json; charset=utf-8", j->doc.text, j->doc.len);
    }
    job_free(j);
}

static void start_job(cd_http_req *req, cd_instance *inst, op_kind op) {
    job *j = calloc(1, sizeof *j);
    if (!j) {
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    j->op = op;
    j->base = strdup(inst->base_dir);
    j->pid = dup_or_null(cd_http_req_param(req, "projectId"));
    j->wid = dup_or_null(cd_http_req_param(req, "workflowId"));
    j->if_match = dup_or_null(cd_http_req_header(req, "If-Match"));
    j->if_none_match = dup_or_null(cd_http_req_header(req, "If-None-Match"));
    if (has_body(op)) {
        size_t len;
        const char *body = cd_http_req_body(req, &len);
        j->raw = malloc(len + 1);
        if (j->raw) {
            memcpy(j->raw, body ? body : "", len);
            j->raw[len] = '\0';
            j->raw_len = len;
        }
    }
    if (!j->base || (has_body(op) && !j->raw)) {
        job_free(j);
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    cd_offload(inst, req, run_job, finish_job, j);
}

#define ROUTE(NAME, OP)                                                                                                \
    static void NAME(cd_http_req *req, void *ctx) { start_job(req, ctx, OP); }
ROUTE(handle_list, OP_LIST)
ROUTE(handle_create, OP_CREATE)
ROUTE(handle_get_meta, OP_GET_META)
ROUTE(handle_put_meta, OP_PUT_META)
ROUTE(handle_delete, OP_DELETE)
ROUTE(handle_list_wf, OP_LIST_WF)
ROUTE(handle_create_wf, OP_CREATE_WF)
ROUTE(handle_get_wf, OP_GET_WF)
ROUTE(handle_put_wf, OP_PUT_WF)
ROUTE(handle_delete_wf, OP_DELETE_WF)
ROUTE(handle_lib_list, OP_LIB_LIST)
ROUTE(handle_lib_get, OP_LIB_GET)

/* POST /api/workflow/convert: a UI-format workflow in, its API form out. The body may also be
 * {"workflow": <ui>}; an API-format prompt comes back unchanged. Pure computation on an
 * in-memory document, so it runs on the loop. */
static void handle_convert(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    size_t len;
    const char *text = cd_http_req_body(req, &len);
    json_error_t jerr;
    json_t *doc = len ? cd_json_parse(text, len, CD_JSON_REJECT_BIGINT, &jerr) : NULL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        respond_error(req, 400, "The request body must be a JSON object (a UI-format workflow)");
        return;
    }
    json_t *ui = doc;
    if (!cd_workflow_is_ui_format(doc) && cd_workflow_is_ui_format(json_object_get(doc, "workflow")))
        ui = json_object_get(doc, "workflow");
    if (!cd_workflow_is_ui_format(ui)) {
        /* already API format? every member a node with a class_type */
        bool api = json_object_size(doc) > 0;
        const char *k;
        json_t *v;
        json_object_foreach(doc, k, v) {
            if (!json_is_object(v) || !json_is_string(json_object_get(v, "class_type"))) api = false;
        }
        if (api) cd_respond_json(req, 200, doc);
        else {
            json_decref(doc);
            respond_error(req, 400, "Not a workflow: expected a UI-format workflow with a \"nodes\" array");
        }
        return;
    }
    json_t *api = NULL;
    char err[512];
    int rc = cd_workflow_to_api(inst->registry, ui, &api, err, sizeof err);
    json_decref(doc);
    if (rc < 0) respond_error(req, 400, err);
    else cd_respond_json(req, 200, api);
}

void cd_routes_projects_register(cd_instance *inst) {
    char err[256];
    if (cd_projects_init(inst->base_dir, err, sizeof err) < 0) cd_log(CD_LOG_WARNING, "projects: %s", err);
    cd_router *r = inst->router;
    cd_router_add(r, "GET", "/api/projects", handle_list, inst);
    cd_router_add(r, "POST", "/api/projects", handle_create, inst);
    cd_router_add(r, "GET", "/api/projects/{projectId}/metadata", handle_get_meta, inst);
    cd_router_add(r, "PUT", "/api/projects/{projectId}/metadata", handle_put_meta, inst);
    /* ComfyTavern's own path for the metadata update */
    cd_router_add(r, "PUT", "/api/projects/{projectId}", handle_put_meta, inst);
    cd_router_add(r, "DELETE", "/api/projects/{projectId}", handle_delete, inst);
    cd_router_add(r, "GET", "/api/projects/{projectId}/workflows", handle_list_wf, inst);
    cd_router_add(r, "POST", "/api/projects/{projectId}/workflows", handle_create_wf, inst);
    cd_router_add(r, "GET", "/api/projects/{projectId}/workflows/{workflowId}", handle_get_wf, inst);
    cd_router_add(r, "PUT", "/api/projects/{projectId}/workflows/{workflowId}", handle_put_wf, inst);
    cd_router_add(r, "DELETE", "/api/projects/{projectId}/workflows/{workflowId}", handle_delete_wf, inst);
    cd_router_add(r, "GET", "/api/workflows", handle_lib_list, inst);
    cd_router_add(r, "GET", "/api/workflows/{workflowId}", handle_lib_get, inst);
    cd_router_add_api(r, "POST", "/workflow/convert", handle_convert, inst);
}
