/* ComfyUI's user data API (API reference §3.20): /users, /settings, /userdata, /v2/userdata.
 *
 * Each request becomes a job: what the handler needs is copied out of the request on the loop
 * thread (user header, path parameters, query flags, the body), the file work runs in the
 * thread pool (userdata_fs.c), and the answer it prepared is sent back on the loop. Copying
 * matters: a client that hangs up frees its request while the job may still be running.
 *
 * Status codes follow ComfyUI, including its odd ones: an unknown user is a 500 on most routes
 * (an uncaught KeyError there), 401 on /settings and 403 on /v2/userdata. Where ComfyUI sends an
 * empty body, comfyd sends a short text saying why. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "base/str.h"
#include "net/static_files.h"
#include "server/instance.h"
#include "server/userdata.h"

typedef enum {
    OP_USERS_GET,
    OP_USERS_POST,
    OP_LIST,
    OP_LIST_V2,
    OP_FILE_GET,
    OP_FILE_POST,
    OP_FILE_DELETE,
    OP_FILE_MOVE,
    OP_SETTINGS_GET,
    OP_SETTING_GET,
    OP_SETTINGS_POST,
    OP_SETTING_POST,
} op_kind;

typedef struct {
    op_kind op;
    /* inputs, owned */
    char *user_dir;
    bool multi_user;
    char *user_header; /* NULL when absent */
    char *file, *dest, *id, *dir;
    bool recurse, full_info, split, overwrite;
    char *body;
    size_t body_len;
    /* the answer: either a response or a file to stream */
    int status;
    char *text;  /* owned */
    json_t *json;
    bool empty;
    char *serve_path; /* owned */
    const char *serve_type, *disposition;
} job;

static void job_free(job *j) {
    free(j->user_dir);
    free(j->user_header);
    free(j->file);
    free(j->dest);
    free(j->id);
    free(j->dir);
    free(j->body);
    free(j->text);
    json_decref(j->json);
    free(j->serve_path);
    free(j);
}

static void set_text(job *j, int status, const char *text) {
    j->status = status;
    j->text = strdup(text);
}

static void set_json(job *j, int status, json_t *v) {
    j->status = status;
    j->json = v ? v : json_null();
}

static void set_empty(job *j, int status) {
    j->status = status;
    j->empty = true;
}

static void set_unknown_user(job *j, int status) {
    char msg[300];
    if (status == 500)
        snprintf(msg, sizeof msg, "500: Unknown user: %.200s", j->multi_user && j->user_header ? j->user_header : "default");
    else if (status == 401) snprintf(msg, sizeof msg, "401: Unauthorized");
    else snprintf(msg, sizeof msg, "Invalid user specified in request");
    set_text(j, status, msg);
}

static bool flag_true(const char *query, const char *name) {
    char *v = cd_str_query_get(query, name);
    bool r = v && cd_str_ieq(v, "true");
    free(v);
    return r;
}

/* The user's root, or NULL after answering (unknown user, a name that is not a directory). */
static char *user_root_or_answer(job *j, int unknown_status) {
    char *id = NULL;
    int rc = cd_userdata_user_id(j->user_dir, j->multi_user, j->user_header, &id);
    if (rc == CD_UD_UNKNOWN_USER) {
        set_unknown_user(j, unknown_status);
        return NULL;
    }
    if (rc != CD_UD_OK) {
        set_text(j, 500, "500: out of memory");
        return NULL;
    }
    char *root = cd_userdata_user_root(j->user_dir, id);
    free(id);
    if (!root) set_text(j, 403, "403: Invalid user directory");
    return root;
}

/* ComfyUI's get_user_data_path: the user, then the confined path (403), then existence (404). */
static char *file_path_or_answer(job *j, const char *root, const char *file, bool must_exist, char **rel) {
    char *path = NULL;
    *rel = NULL;
    if (!file || !file[0]) {
        set_text(j, 400, "400: file not provided");
        return NULL;
    }
    int rc = cd_userdata_resolve(root, file, CD_UD_MKROOT | CD_UD_MKPARENT, &path, rel);
    if (rc == CD_UD_FORBIDDEN) {
        set_text(j, 403, "403: Forbidden: the path leaves the user directory");
        return NULL;
    }
    if (rc != CD_UD_OK) {
        set_text(j, 500, "500: out of memory");
        return NULL;
    }
    struct stat st;
    if (must_exist && stat(path, &st) < 0) {
        set_text(j, 404, "404: Not Found");
        free(path);
        free(*rel);
        *rel = NULL;
        return NULL;
    }
    return path;
}

static void answer_path(job *j, const char *path, const char *rel) {
    if (j->full_info) {
        json_t *info = cd_userdata_file_info(path, rel);
        if (info) set_json(j, 200, info);
        else set_text(j, 500, "500: cannot stat the file");
    } else {
        set_json(j, 200, json_string(rel));
    }
}

/* Types a browser would run or render: served as plain bytes so that user files cannot script
 * the app's origin (ComfyUI's is_dangerous_content_type). */
static bool dangerous_type(const char *t) {
    static const char *const bad[] = {"text/html", "text/javascript", "text/css", "image/svg+xml", "application/xml",
                                      "text/xml", "application/xhtml+xml", "application/javascript"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cd_str_starts_with(t, bad[i])) return true;
    return false;
}

/* ---- the work, in the thread pool ---- */

static void do_users_get(job *j) {
    if (j->multi_user) {
        set_json(j, 200, json_pack("{s:s, s:o}", "storage", "server", "users",
                                   cd_userdata_users_load(j->user_dir, true)));
        return;
    }
    char *root = cd_userdata_user_root(j->user_dir, "default");
    set_json(j, 200, json_pack("{s:s, s:b}", "storage", "server", "migrated", root && access(root, F_OK) == 0));
    free(root);
}

static void do_users_post(job *j) {
    json_t *body = cd_json_parse(j->body ? j->body : "", j->body_len, JSON_DECODE_ANY | CD_JSON_REJECT_BIGINT, NULL);
    json_t *name = json_object_get(body, "username");
    if (!json_is_string(name)) {
        set_text(j, 500, body ? "500: the body has no \"username\" string" : "500: the body is not JSON");
        json_decref(body);
        return;
    }
    char *id = NULL;
    const char *msg = NULL;
    int rc = cd_userdata_users_add(j->user_dir, j->multi_user, json_string_value(name), &id, &msg);
    json_decref(body);
    if (rc == 1) set_json(j, 400, json_pack("{s:s}", "error", "Duplicate username."));
    else if (rc == 2) set_json(j, 400, json_pack("{s:s}", "error", msg));
    else if (rc < 0) set_text(j, 500, "500: cannot write users.json");
    else set_json(j, 200, json_string(id));
    free(id);
}

static void do_list(job *j) {
    if (!j->dir || !j->dir[0]) {
        set_text(j, 400, "Directory not provided");
        return;
    }
    char *root = user_root_or_answer(j, 500);
    if (!root) return;
    char *path = NULL, *rel = NULL;
    int rc = cd_userdata_resolve(root, j->dir, CD_UD_MKROOT | CD_UD_MKPARENT, &path, &rel);
    struct stat st;
    if (rc == CD_UD_FORBIDDEN) set_text(j, 403, "Invalid directory");
    else if (rc != CD_UD_OK) set_text(j, 500, "500: out of memory");
    else if (stat(path, &st) < 0) set_text(j, 404, "Directory not found");
    else set_json(j, 200, cd_userdata_list(root, path, j->recurse, j->full_info, j->split));
    free(path);
    free(rel);
    free(root);
}

static void do_list_v2(job *j) {
    char *decoded = cd_userdata_unquote(j->dir ? j->dir : "");
    if (!decoded) {
        set_text(j, 400, "Invalid characters in path parameter");
        return;
    }
    char *id = NULL;
    int urc = cd_userdata_user_id(j->user_dir, j->multi_user, j->user_header, &id);
    char *root = urc == CD_UD_OK ? cd_userdata_user_root(j->user_dir, id) : NULL;
    free(id);
    if (!root) {
        if (urc == CD_UD_UNKNOWN_USER) set_unknown_user(j, 403);
        else if (urc == CD_UD_OK) set_text(j, 400, "Invalid path requested"); /* an id that is no directory name */
        else set_text(j, 500, "500: out of memory");
        free(decoded);
        return;
    }
    char *path = NULL, *rel = NULL;
    int rc = cd_userdata_resolve(root, decoded[0] ? decoded : NULL, 0, &path, &rel);
    free(decoded);
    struct stat st;
    if (rc == CD_UD_FORBIDDEN) set_text(j, 400, "Invalid path requested");
    else if (rc != CD_UD_OK) set_text(j, 500, "500: out of memory");
    else if (stat(path, &st) < 0) {
        if (!rel[0]) set_json(j, 200, json_array()); /* a new user: no root yet */
        else set_text(j, 404, "Requested path not found");
    } else if (!S_ISDIR(st.st_mode)) set_text(j, 400, "Requested path is not a directory");
    else set_json(j, 200, cd_userdata_list_v2(root, path));
    free(path);
    free(rel);
    free(root);
}

static void do_file_get(job *j) {
    char *root = user_root_or_answer(j, 500);
    if (!root) return;
    char *rel = NULL;
    char *path = file_path_or_answer(j, root, j->file, true, &rel);
    if (path) {
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            set_text(j, 404, "404: Not Found");
            free(path);
        } else {
            const char *type = cd_static_content_type(path);
            if (!strcmp(rel, "user.css")) {
                j->serve_type = "text/css";
                j->disposition = "inline";
            } else {
                j->serve_type = dangerous_type(type) ? "application/octet-stream" : type;
                j->disposition = "attachment";
            }
            j->serve_path = path;
        }
    }
    free(rel);
    free(root);
}

static void do_file_post(job *j) {
    char *root = user_root_or_answer(j, 500);
    if (!root) return;
    char *rel = NULL;
    char *path = file_path_or_answer(j, root, j->file, false, &rel);
    if (path) {
        if (!j->overwrite && access(path, F_OK) == 0) {
            set_text(j, 409, "File already exists");
        } else if (cd_userdata_write_atomic(path, j->body ? j->body : "", j->body_len) < 0) {
            set_text(j, 400, "400: Invalid filename. Please avoid special characters like :\\/*?\"<>|");
        } else {
            answer_path(j, path, rel);
        }
    }
    free(path);
    free(rel);
    free(root);
}

static void do_file_delete(job *j) {
    char *root = user_root_or_answer(j, 500);
    if (!root) return;
    char *rel = NULL;
    char *path = file_path_or_answer(j, root, j->file, true, &rel);
    if (path) {
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) set_text(j, 500, "500: Is a directory");
        else if (unlink(path) < 0) set_text(j, 500, "500: cannot delete the file");
        else set_empty(j, 204);
    }
    free(path);
    free(rel);
    free(root);
}

static void do_file_move(job *j) {
    char *root = user_root_or_answer(j, 500);
    if (!root) return;
    char *src_rel = NULL, *dst_rel = NULL, *dst = NULL;
    char *src = file_path_or_answer(j, root, j->file, true, &src_rel);
    if (src) dst = file_path_or_answer(j, root, j->dest, false, &dst_rel);
    if (src && dst) {
        if (!j->overwrite && access(dst, F_OK) == 0) set_text(j, 409, "File already exists");
        else if (rename(src, dst) < 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "500: cannot move: %s", strerror(errno));
            set_text(j, 500, msg);
        } else answer_path(j, dst, dst_rel);
    }
    free(src);
    free(src_rel);
    free(dst);
    free(dst_rel);
    free(root);
}

/* ComfyUI's AppSettings.get_settings path: unknown user 401, a path that escapes 403. */
static char *settings_path_or_answer(job *j) {
    char *root = user_root_or_answer(j, 401);
    if (!root) return NULL;
    char *path = NULL, *rel = NULL;
    int rc = cd_userdata_resolve(root, "comfy.settings.json", CD_UD_MKROOT | CD_UD_MKPARENT, &path, &rel);
    free(rel);
    free(root);
    if (rc == CD_UD_FORBIDDEN) set_text(j, 403, "403: Forbidden");
    else if (rc != CD_UD_OK) set_text(j, 500, "500: out of memory");
    return path;
}

static void do_settings(job *j) {
    char *path = settings_path_or_answer(j);
    if (!path) return;
    if (j->op == OP_SETTINGS_GET || j->op == OP_SETTING_GET) {
        json_t *s = cd_userdata_settings_load(path);
        if (j->op == OP_SETTINGS_GET) {
            set_json(j, 200, s);
        } else {
            json_t *v = json_object_get(s, j->id);
            set_json(j, 200, v ? json_incref(v) : json_null());
            json_decref(s);
        }
        free(path);
        return;
    }
    json_t *value = cd_json_parse(j->body ? j->body : "", j->body_len, JSON_DECODE_ANY | CD_JSON_REJECT_BIGINT, NULL);
    if (!value) {
        set_text(j, 500, "500: the body is not JSON");
    } else if (j->op == OP_SETTINGS_POST && !json_is_object(value)) {
        set_text(j, 500, "500: the settings must be a JSON object");
    } else {
        int rc = cd_userdata_settings_update(path, j->op == OP_SETTING_POST ? j->id : NULL, value);
        if (rc < 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "500: cannot write the settings: %s", strerror(-rc));
            set_text(j, 500, msg);
        } else {
            set_empty(j, 200);
        }
    }
    json_decref(value);
    free(path);
}

static void job_work(void *arg) {
    job *j = arg;
    switch (j->op) {
    case OP_USERS_GET: do_users_get(j); break;
    case OP_USERS_POST: do_users_post(j); break;
    case OP_LIST: do_list(j); break;
    case OP_LIST_V2: do_list_v2(j); break;
    case OP_FILE_GET: do_file_get(j); break;
    case OP_FILE_POST: do_file_post(j); break;
    case OP_FILE_DELETE: do_file_delete(j); break;
    case OP_FILE_MOVE: do_file_move(j); break;
    default: do_settings(j); break;
    }
}

/* ---- back on the loop ---- */

static void job_done(cd_http_req *req, void *arg) {
    job *j = arg;
    if (!req) {
        job_free(j);
        return;
    }
    if (j->serve_path) {
        cd_http_add_header(req, "X-Content-Type-Options", "nosniff");
        cd_http_add_header(req, "Content-Disposition", j->disposition);
        cd_static_serve_path(req, j->serve_path, j->serve_type, NULL);
    } else if (j->json) {
        cd_respond_json(req, j->status, j->json);
        j->json = NULL;
    } else if (j->empty) {
        cd_http_respond(req, j->status, NULL, NULL, 0);
    } else if (j->text) {
        cd_http_respond_text(req, j->status, j->text);
    } else {
        cd_http_respond_text(req, 500, "500: out of memory");
    }
    job_free(j);
}

static void start_job(cd_http_req *req, cd_instance *inst, op_kind op, bool with_body) {
    job *j = calloc(1, sizeof *j);
    if (!j || !(j->user_dir = strdup(inst->user_dir))) {
        free(j);
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    j->op = op;
    j->multi_user = inst->opts->multi_user;
    const char *h = cd_http_req_header(req, "comfy-user");
    const char *file = cd_http_req_param(req, "file");
    const char *dest = cd_http_req_param(req, "dest");
    const char *id = cd_http_req_param(req, "id");
    const char *q = cd_http_req_query(req);
    bool oom = false;
    if (h && !(j->user_header = strdup(h))) oom = true;
    if (file && !(j->file = strdup(file))) oom = true;
    if (dest && !(j->dest = strdup(dest))) oom = true;
    if (id && !(j->id = strdup(id))) oom = true;
    j->dir = cd_str_query_get(q, op == OP_LIST_V2 ? "path" : "dir");
    j->recurse = flag_true(q, "recurse");
    j->full_info = flag_true(q, "full_info");
    j->split = flag_true(q, "split");
    char *ow = cd_str_query_get(q, "overwrite");
    j->overwrite = !ow || strcmp(ow, "false") != 0; /* only the exact "false" refuses */
    free(ow);
    if (with_body) {
        size_t len = 0;
        const char *body = cd_http_req_body(req, &len);
        if (!(j->body = malloc(len + 1))) oom = true;
        else {
            memcpy(j->body, body, len);
            j->body[len] = '\0';
            j->body_len = len;
        }
    }
    if (oom) {
        job_free(j);
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    cd_offload(inst, req, job_work, job_done, j);
}

static void h_users_get(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_USERS_GET, false); }
static void h_users_post(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_USERS_POST, true); }
static void h_list(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_LIST, false); }
static void h_list_v2(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_LIST_V2, false); }
static void h_file_get(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_FILE_GET, false); }
static void h_file_post(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_FILE_POST, true); }
static void h_file_delete(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_FILE_DELETE, false); }
static void h_file_move(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_FILE_MOVE, false); }
static void h_settings_get(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_SETTINGS_GET, false); }
static void h_setting_get(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_SETTING_GET, false); }
static void h_settings_post(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_SETTINGS_POST, true); }
static void h_setting_post(cd_http_req *req, void *ctx) { start_job(req, ctx, OP_SETTING_POST, true); }

void cd_routes_userdata_register(cd_instance *inst) {
    cd_router *r = inst->router;
    cd_router_add_api(r, "GET", "/users", h_users_get, inst);
    cd_router_add_api(r, "POST", "/users", h_users_post, inst);
    cd_router_add_api(r, "GET", "/settings", h_settings_get, inst);
    cd_router_add_api(r, "GET", "/settings/{id}", h_setting_get, inst);
    cd_router_add_api(r, "POST", "/settings", h_settings_post, inst);
    cd_router_add_api(r, "POST", "/settings/{id}", h_setting_post, inst);
    cd_router_add_api(r, "GET", "/userdata", h_list, inst);
    cd_router_add_api(r, "GET", "/v2/userdata", h_list_v2, inst);
    cd_router_add_api(r, "GET", "/userdata/{file}", h_file_get, inst);
    cd_router_add_api(r, "POST", "/userdata/{file}", h_file_post, inst);
    cd_router_add_api(r, "DELETE", "/userdata/{file}", h_file_delete, inst);
    cd_router_add_api(r, "POST", "/userdata/{file}/move/{dest}", h_file_move, inst);
}
