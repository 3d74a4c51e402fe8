/* UI-format workflow to API format (see workflow_convert.h). */
#include "server/workflow_convert.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/registry.h"

#define MODE_NEVER 2
#define MODE_BYPASS 4
/* A chain of reroutes and bypassed nodes longer than this is a cycle. */
#define MAX_HOPS 1000

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

bool cd_workflow_is_ui_format(const json_t *doc) {
    return json_is_object(doc) && json_is_array(json_object_get(doc, "nodes"));
}

/* Node and link ids are numbers in the frontend's files, sometimes strings: both become keys. */
static bool id_key(const json_t *id, char *out, size_t n) {
    if (json_is_integer(id)) snprintf(out, n, "%lld", (long long)json_integer_value(id));
    else if (json_is_string(id)) snprintf(out, n, "%s", json_string_value(id));
    else if (json_is_real(id) && json_real_value(id) == (double)(long long)json_real_value(id))
        snprintf(out, n, "%lld", (long long)json_real_value(id));
    else return false;
    return true;
}

typedef struct {
    const cd_registry *reg;
    json_t *nodes; /* {id: node} (borrowed values) */
    json_t *links; /* {id: [id, origin, origin_slot, target, target_slot, type]} (new arrays) */
} graph;

static int node_mode(const json_t *node) {
    json_t *m = json_object_get(node, "mode");
    return json_is_integer(m) ? (int)json_integer_value(m) : 0;
}

static const char *node_type(const json_t *node) { return json_string_value(json_object_get(node, "type")); }

static bool is_virtual(const char *type) {
    return type && (!strcmp(type, "Reroute") || !strcmp(type, "PrimitiveNode") || !strcmp(type, "Note") ||
                    !strcmp(type, "MarkdownNote"));
}

/* The link into input slot `slot` of node, or NULL. */
static json_t *input_link(const graph *g, const json_t *node, size_t slot) {
    json_t *in = json_array_get(json_object_get(node, "inputs"), slot);
    char key[64];
    if (!id_key(json_object_get(in, "link"), key, sizeof key)) return NULL;
    return json_object_get(g->links, key);
}

static json_t *link_origin(const graph *g, const json_t *link) {
    char key[64];
    if (!id_key(json_array_get(link, 1), key, sizeof key)) return NULL;
    return json_object_get(g->nodes, key);
}

static const char *input_type(const json_t *node, size_t slot) {
    return json_string_value(json_object_get(json_array_get(json_object_get(node, "inputs"), slot), "type"));
}

/* Follows the link into the consumer's input through reroutes and bypassed nodes. Returns the
 * API value for the input ([origin, slot] or a PrimitiveNode's constant; new reference) or
 * NULL when the link leads nowhere. */
static json_t *resolve(const graph *g, json_t *link, const char *want_type) {
    for (int hops = 0; link && hops < MAX_HOPS; hops++) {
        json_t *parent = link_origin(g, link);
        if (!parent) return NULL;
        const char *type = node_type(parent);
        json_int_t origin_slot = json_integer_value(json_array_get(link, 2));
        if (node_mode(parent) == MODE_BYPASS) {
            /* The frontend passes a bypassed node's input of the consumer's type through: the
             * input at the link's origin slot first, then any. */
            json_t *ins = json_object_get(parent, "inputs");
            size_t n = json_array_size(ins);
            json_t *next = NULL;
            bool found = false;
            for (size_t k = 0; k <= n && !found; k++) {
                size_t idx;
                if (k == 0) {
                    if (origin_slot < 0 || (size_t)origin_slot >= n) continue;
                    idx = (size_t)origin_slot;
                } else {
                    idx = k - 1;
                }
                const char *t = input_type(parent, idx);
                if (t && want_type && !strcmp(t, want_type)) {
                    found = true;
                    next = input_link(g, parent, idx);
                }
            }
            link = next;
            continue;
        }
        if (type && !strcmp(type, "Reroute")) {
            link = input_link(g, parent, 0);
            continue;
        }
        if (type && !strcmp(type, "PrimitiveNode")) {
            json_t *wv = json_object_get(parent, "widgets_values");
            json_t *v = json_array_get(wv, 0);
            return v ? json_deep_copy(v) : NULL;
        }
        if (node_mode(parent) == MODE_NEVER || is_virtual(type)) return NULL;
        char key[64];
        if (!id_key(json_object_get(parent, "id"), key, sizeof key)) return NULL;
        return json_pack("[s, I]", key, origin_slot);
    }
    return NULL;
}

static bool is_widget(const cd_input_def *in) {
    if (in->section == CD_INPUT_HIDDEN || !in->type) return false;
    if (json_is_true(json_object_get(in->options, "forceInput"))) return false;
    const char *t = in->type;
    return !strcmp(t, "INT") || !strcmp(t, "FLOAT") || !strcmp(t, "STRING") || !strcmp(t, "BOOLEAN") ||
           !strcmp(t, "COMBO");
}

/* Does this widget carry a second, frontend-only value right after its own? */
static bool has_control_value(const cd_input_def *in) {
    json_t *c = json_object_get(in->options, "control_after_generate");
    return json_is_true(c) || json_is_string(c);
}

static bool has_upload_button(const cd_input_def *in) {
    return json_is_true(json_object_get(in->options, "image_upload")) ||
           json_is_true(json_object_get(in->options, "video_upload")) ||
           json_is_true(json_object_get(in->options, "audio_upload"));
}

static bool is_control_word(const json_t *v) {
    const char *s = json_string_value(v);
    return s && (!strcmp(s, "fixed") || !strcmp(s, "increment") || !strcmp(s, "decrement") ||
                 !strcmp(s, "randomize") || !strcmp(s, "increment-wrap"));
}

static void widget_inputs(const cd_node_type *t, const json_t *node, json_t *inputs) {
    json_t *wv = json_object_get(node, "widgets_values");
    if (json_is_object(wv)) {
        for (size_t i = 0; i < t->n_inputs; i++) {
            json_t *v = is_widget(&t->inputs[i]) ? json_object_get(wv, t->inputs[i].name) : NULL;
            if (v) json_object_set(inputs, t->inputs[i].name, v);
        }
        return;
    }
    size_t n = json_array_size(wv), idx = 0;
    for (size_t i = 0; i < t->n_inputs && idx < n; i++) {
        const cd_input_def *in = &t->inputs[i];
        if (!is_widget(in)) continue;
        json_object_set(inputs, in->name, json_array_get(wv, idx++));
        /* Files saved without the control value (older frontends) still line up: only a
         * control word is skipped. */
        if (has_control_value(in) && idx < n && is_control_word(json_array_get(wv, idx))) idx++;
        else if (has_upload_button(in) && idx < n && json_is_string(json_array_get(wv, idx)) &&
                 (!strcmp(json_string_value(json_array_get(wv, idx)), "image") ||
                  !strcmp(json_string_value(json_array_get(wv, idx)), "video") ||
                  !strcmp(json_string_value(json_array_get(wv, idx)), "audio")))
            idx++;
    }
}

/* Indexes the links: arrays [id, origin, origin_slot, target, target_slot, type] or, in the
 * version-1 schema, objects {id, origin_id, origin_slot, target_id, target_slot, type}. */
static int index_links(graph *g, const json_t *links, char *err, size_t errlen) {
    size_t i;
    json_t *l;
    json_array_foreach(links, i, l) {
        json_t *norm;
        if (json_is_array(l)) {
            if (json_array_size(l) < 5) return fail(err, errlen, "link %zu is malformed", i);
            norm = json_incref(l);
        } else if (json_is_object(l)) {
            norm = json_pack("[O, O, O, O, O, O]", json_object_get(l, "id") ? json_object_get(l, "id") : json_null(),
                             json_object_get(l, "origin_id") ? json_object_get(l, "origin_id") : json_null(),
                             json_object_get(l, "origin_slot") ? json_object_get(l, "origin_slot") : json_null(),
                             json_object_get(l, "target_id") ? json_object_get(l, "target_id") : json_null(),
                             json_object_get(l, "target_slot") ? json_object_get(l, "target_slot") : json_null(),
                             json_object_get(l, "type") ? json_object_get(l, "type") : json_null());
            if (!norm) return fail(err, errlen, "out of memory");
        } else {
            return fail(err, errlen, "link %zu is malformed", i);
        }
        char key[64];
        if (!id_key(json_array_get(norm, 0), key, sizeof key)) {
            json_decref(norm);
            return fail(err, errlen, "link %zu has no id", i);
        }
        json_object_set_new(g->links, key, norm);
    }
    return 0;
}

static json_t *subgraph_ids(const json_t *ui) {
    json_t *ids = json_object();
    size_t i;
    json_t *sg;
    json_array_foreach(json_object_get(json_object_get(ui, "definitions"), "subgraphs"), i, sg) {
        const char *id = json_string_value(json_object_get(sg, "id"));
        if (id) json_object_set_new(ids, id, json_true());
    }
    return ids;
}

int cd_workflow_to_api(const cd_registry *reg, const json_t *ui, json_t **api_out, char *err, size_t errlen) {
    *api_out = NULL;
    if (!cd_workflow_is_ui_format(ui)) return fail(err, errlen, "not a UI-format workflow (no \"nodes\" array)");
    json_t *links = json_object_get(ui, "links");
    if (links && !json_is_array(links)) return fail(err, errlen, "\"links\" must be an array");
    graph g = {.reg = reg, .nodes = json_object(), .links = json_object()};
    json_t *api = json_object();
    json_t *subgraphs = subgraph_ids(ui);
    int rc = index_links(&g, links, err, errlen);
    size_t i;
    json_t *node;
    json_array_foreach(json_object_get(ui, "nodes"), i, node) {
        if (rc) break;
        char key[64];
        if (!json_is_object(node) || !id_key(json_object_get(node, "id"), key, sizeof key)) {
            rc = fail(err, errlen, "node %zu has no id", i);
            break;
        }
        if (json_object_get(g.nodes, key)) {
            rc = fail(err, errlen, "node id %s appears twice", key);
            break;
        }
        json_object_set(g.nodes, key, node);
    }
    json_array_foreach(json_object_get(ui, "nodes"), i, node) {
        if (rc) break;
        int mode = node_mode(node);
        const char *type = node_type(node);
        if (mode == MODE_NEVER || mode == MODE_BYPASS || is_virtual(type)) continue;
        char key[64];
        id_key(json_object_get(node, "id"), key, sizeof key);
        if (!type) {
            rc = fail(err, errlen, "node %s has no type", key);
            break;
        }
        const cd_node_type *t = cd_registry_get(reg, type);
        if (!t) {
            if (json_object_get(subgraphs, type))
                rc = fail(err, errlen, "node %s is a subgraph (%s): subgraphs are not supported", key, type);
            else
                rc = fail(err, errlen, "node %s: node type \"%s\" is not known to this server", key, type);
            break;
        }
        json_t *inputs = json_object();
        widget_inputs(t, node, inputs);
        size_t k;
        json_t *in;
        json_array_foreach(json_object_get(node, "inputs"), k, in) {
            const char *name = json_string_value(json_object_get(in, "name"));
            json_t *link = input_link(&g, node, k);
            if (!name || !link) continue;
            const char *want = json_string_value(json_object_get(in, "type"));
            if (!want || !strcmp(want, "*")) want = json_string_value(json_array_get(link, 5));
            json_t *v = resolve(&g, link, want);
            if (v) json_object_set_new(inputs, name, v);
        }
        json_t *title = json_object_get(node, "title");
        const char *display = json_string_value(json_object_get(t->info, "display_name"));
        json_t *entry = json_pack("{s:o, s:s, s:{s:s}}", "inputs", inputs, "class_type", type, "_meta", "title",
                                  json_is_string(title) ? json_string_value(title) : display ? display : type);
        if (!entry) {
            rc = fail(err, errlen, "out of memory");
            break;
        }
        json_object_set_new(api, key, entry);
    }
    json_decref(subgraphs);
    json_decref(g.nodes);
    json_decref(g.links);
    if (rc) {
        json_decref(api);
        return rc;
    }
    *api_out = api;
    return 0;
}
