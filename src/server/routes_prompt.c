/* The engine's routes (API reference §3.2–3.11): /prompt, /queue, /interrupt, /free,
 * /history, /object_info. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/str.h"
#include "engine/call.h"
#include "engine/engine.h"
#include "server/instance.h"

static void bad_json(cd_http_req *req) {
    cd_respond_json(req, 400,
                    json_pack("{s:{s:s, s:s, s:s, s:{}}, s:{}}", "error", "type", "invalid_json", "message",
                              "The request body is not valid JSON", "details", "", "extra_info", "node_errors"));
}

/* Request bodies are JSON whatever the Content-Type (the official test client labels JSON as
 * form data). Returns false after answering 400 when the body is not JSON; an empty body gives
 * *out = NULL. */
static bool read_json_body(cd_http_req *req, json_t **out) {
    size_t len;
    const char *body = cd_http_req_body(req, &len);
    *out = len ? cd_json_parse(body, len, JSON_DECODE_ANY, NULL) : NULL; /* Python reads any int */
    if (len && !*out) {
        bad_json(req);
        return false;
    }
    return true;
}

static void handle_post_prompt(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    size_t len;
    const char *text = cd_http_req_body(req, &len);
    json_t *reply = NULL;
    int status = cd_engine_submit_text(inst->engine, text, len, &reply);
    if (status < 0) bad_json(req);
    else cd_respond_json(req, status, reply);
}

static void handle_get_prompt(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    cd_respond_json(req, 200,
                    json_pack("{s:{s:i}}", "exec_info", "queue_remaining", cd_engine_queue_remaining(inst->engine)));
}

static void handle_get_queue(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    cd_respond_json(req, 200, cd_engine_queue(inst->engine));
}

/* Applies {"clear": true} and {"delete": [ids]} to the queue or the history. */
static void clear_and_delete(cd_http_req *req, cd_instance *inst, bool history) {
    json_t *body;
    if (!read_json_body(req, &body)) return;
    if (json_is_object(body)) {
        if (json_is_true(json_object_get(body, "clear"))) {
            if (history) cd_engine_history_clear(inst->engine);
            else cd_engine_queue_clear(inst->engine);
        }
        json_t *del = json_object_get(body, "delete");
        size_t i;
        json_t *id;
        json_array_foreach(del, i, id) {
            if (!json_is_string(id)) continue;
            if (history) cd_engine_history_delete(inst->engine, json_string_value(id));
            else cd_engine_queue_delete(inst->engine, json_string_value(id));
        }
    }
    json_decref(body);
    cd_http_respond(req, 200, NULL, NULL, 0);
}

static void handle_post_queue(cd_http_req *req, void *ctx) { clear_and_delete(req, ctx, false); }
static void handle_post_history(cd_http_req *req, void *ctx) { clear_and_delete(req, ctx, true); }

static void handle_interrupt(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    size_t len;
    const char *text = cd_http_req_body(req, &len);
    /* empty or invalid: {}; a big integer makes it invalid, as it always has */
    json_t *body = len ? cd_json_parse(text, len, JSON_DECODE_ANY | CD_JSON_REJECT_BIGINT, NULL) : NULL;
    const char *pid = json_is_object(body) ? json_string_value(json_object_get(body, "prompt_id")) : NULL;
    cd_engine_interrupt(inst->engine, pid);
    json_decref(body);
    cd_http_respond(req, 200, NULL, NULL, 0);
}

static void handle_free(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    json_t *body;
    if (!read_json_body(req, &body)) return;
    bool unload = json_is_object(body) && json_is_true(json_object_get(body, "unload_models"));
    bool mem = json_is_object(body) && json_is_true(json_object_get(body, "free_memory"));
    cd_engine_free_memory(inst->engine, unload, mem);
    json_decref(body);
    cd_http_respond(req, 200, NULL, NULL, 0);
}

/* An integer query parameter; absent gives *out = -1. Returns -1 when present but not an int. */
static int query_long(cd_http_req *req, const char *name, long *out) {
    *out = -1;
    char *v = cd_str_query_get(cd_http_req_query(req), name);
    if (!v) return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    int rc = (errno || end == v || *end) ? -1 : 0;
    free(v);
    if (rc == 0) *out = n;
    return rc;
}

static void handle_get_history(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    long max_items, offset;
    if (query_long(req, "max_items", &max_items) < 0 || query_long(req, "offset", &offset) < 0) {
        cd_respond_json(req, 400, json_pack("{s:s}", "error", "max_items and offset must be integers"));
        return;
    }
    cd_respond_json(req, 200, cd_engine_history(inst->engine, max_items, offset));
}

static void handle_get_history_id(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    cd_respond_json(req, 200, cd_engine_history_get(inst->engine, cd_http_req_param(req, "prompt_id")));
}

/* The combo lists that change while the server runs (the files LoadImage offers). */
static json_t *dynamic_combos(cd_instance *inst) {
    return cd_registry_dynamic_combos(inst->registry, cd_registry_call_env(inst->registry));
}

static void handle_object_info(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    /* The listing is large and changes only with the dynamic combos: serialised again only
     * when those differ from the last time. */
    json_t *dynamic = dynamic_combos(inst);
    char *key = cd_json_dumps(dynamic);
    if (!inst->object_info_text || !key || !inst->object_info_key || strcmp(key, inst->object_info_key)) {
        json_t *all = cd_registry_object_info(inst->registry, dynamic);
        free(inst->object_info_text);
        inst->object_info_text = cd_json_dumps(all);
        json_decref(all);
        free(inst->object_info_key);
        inst->object_info_key = key;
        key = NULL;
    }
    free(key);
    json_decref(dynamic);
    if (!inst->object_info_text) {
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    cd_http_respond(req, 200, "application/json; charset=utf-8", inst->object_info_text, strlen(inst->object_info_text));
}

static void handle_object_info_class(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    const char *name = cd_http_req_param(req, "node_class");
    const cd_node_type *t = cd_registry_get(inst->registry, name);
    json_t *out = json_object();
    if (t) {
        json_t *dynamic = t->def->combo_options ? dynamic_combos(inst) : NULL;
        json_object_set_new(out, name, cd_node_type_info(t, dynamic));
        json_decref(dynamic);
    }
    cd_respond_json(req, 200, out);
}

void cd_routes_prompt_register(cd_instance *inst) {
    cd_router *r = inst->router;
    cd_router_add_api(r, "POST", "/prompt", handle_post_prompt, inst);
    cd_router_add_api(r, "GET", "/prompt", handle_get_prompt, inst);
    cd_router_add_api(r, "GET", "/queue", handle_get_queue, inst);
    cd_router_add_api(r, "POST", "/queue", handle_post_queue, inst);
    cd_router_add_api(r, "POST", "/interrupt", handle_interrupt, inst);
    cd_router_add_api(r, "POST", "/free", handle_free, inst);
    cd_router_add_api(r, "GET", "/history", handle_get_history, inst);
    cd_router_add_api(r, "GET", "/history/{prompt_id}", handle_get_history_id, inst);
    cd_router_add_api(r, "POST", "/history", handle_post_history, inst);
    cd_router_add_api(r, "GET", "/object_info", handle_object_info, inst);
    cd_router_add_api(r, "GET", "/object_info/{node_class}", handle_object_info_class, inst);
}
