#include "engine/call.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/value.h"

void cd_call_init(cd_node_call *call, const cd_node_type *type, const cd_call_env *env, const char *node_id,
                  size_t call_index) {
    memset(call, 0, sizeof *call);
    call->type = type;
    call->env = env;
    call->node_id = node_id;
    call->call_index = call_index;
    call->graph_index = -1;
    call->names = call->small_names;
    call->values = call->small_values;
    call->input_types = call->small_types;
    call->cap_inputs = CD_CALL_SMALL_INPUTS;
    int n = type->def->n_outputs;
    call->outputs = n <= CD_CALL_SMALL_OUTPUTS ? call->small_outputs : calloc((size_t)n, sizeof *call->outputs);
}

/* Moves the inputs to the heap with twice the room. */
static int grow_inputs(cd_node_call *call) {
    size_t cap = call->cap_inputs * 2;
    const char **names = malloc(cap * sizeof *names);
    const cd_value **values = malloc(cap * sizeof *values);
    const char **types = malloc(cap * sizeof *types);
    if (!names || !values || !types) {
        free(names);
        free((void *)values);
        free(types);
        return CD_ERROR;
    }
    memcpy(names, call->names, call->n_inputs * sizeof *names);
    memcpy((void *)values, (const void *)call->values, call->n_inputs * sizeof *values);
    memcpy(types, call->input_types, call->n_inputs * sizeof *types);
    if (call->names != call->small_names) {
        free(call->names);
        free((void *)call->values);
        free(call->input_types);
    }
    call->names = names;
    call->values = values;
    call->input_types = types;
    call->cap_inputs = cap;
    return CD_OK;
}

int cd_call_add_input(cd_node_call *call, const char *name, const cd_value *value, const char *type_name) {
    if (call->n_inputs == call->cap_inputs && grow_inputs(call) != CD_OK) return CD_ERROR;
    call->names[call->n_inputs] = name;
    call->values[call->n_inputs] = value;
    call->input_types[call->n_inputs] = type_name;
    call->n_inputs++;
    return CD_OK;
}

void cd_call_clear(cd_node_call *call) {
    if (call->names != call->small_names) {
        free(call->names);
        free((void *)call->values);
        free(call->input_types);
    }
    if (call->outputs)
        for (int i = 0; i < call->type->def->n_outputs; i++) cd_value_unref(call->outputs[i]);
    if (call->outputs != call->small_outputs) free(call->outputs);
    json_decref(call->ui);
    free(call->error_type);
    free(call->error_message);
    for (size_t i = 0; i < call->n_needed; i++) free(call->needed[i]);
    free(call->needed);
    for (size_t i = 0; i < call->n_graph; i++) cd_prompt_node_free(call->graph[i]);
    free(call->graph);
    free(call->graph_prefix);
    free(call->returned_id);
    for (size_t i = 0; i < call->n_lent; i++) cd_value_unref(call->lent[i]);
    free(call->lent);
    memset(call, 0, sizeof *call);
}

/* ---- the public API ---- */

void *cd_call_user(const cd_node_call *call) { return call->type->def->user; }
const char *cd_call_class(const cd_node_call *call) { return call->type->def->name; }

const cd_value *cd_call_input(const cd_node_call *call, const char *name) {
    for (size_t i = 0; i < call->n_inputs; i++)
        if (!strcmp(call->names[i], name)) return call->values[i];
    return NULL;
}

const char *cd_call_input_type(const cd_node_call *call, const char *name) {
    for (size_t i = 0; i < call->n_inputs; i++)
        if (!strcmp(call->names[i], name)) return call->input_types[i];
    return NULL;
}

size_t cd_call_input_count(const cd_node_call *call) { return call->n_inputs; }
const char *cd_call_input_name_at(const cd_node_call *call, size_t i) {
    return i < call->n_inputs ? call->names[i] : NULL;
}

int64_t cd_call_int(const cd_node_call *call, const char *name, int64_t fallback) {
    const cd_value *v = cd_call_input(call, name);
    return v && cd_value_kind_of(v) != CD_VALUE_NONE ? cd_value_as_int(v) : fallback;
}

double cd_call_float(const cd_node_call *call, const char *name, double fallback) {
    const cd_value *v = cd_call_input(call, name);
    return v && cd_value_kind_of(v) != CD_VALUE_NONE ? cd_value_as_float(v) : fallback;
}

int cd_call_bool(const cd_node_call *call, const char *name, int fallback) {
    const cd_value *v = cd_call_input(call, name);
    return v && cd_value_kind_of(v) != CD_VALUE_NONE ? cd_value_as_bool(v) : fallback;
}

const char *cd_call_string(const cd_node_call *call, const char *name, const char *fallback) {
    const char *s = cd_value_as_string(cd_call_input(call, name));
    return s ? s : fallback;
}

int cd_call_set_output(cd_node_call *call, int slot, cd_value *v) {
    if (!v) return CD_ERROR;
    if (slot < 0 || slot >= call->type->def->n_outputs) {
        cd_value_unref(v);
        return CD_ERROR;
    }
    cd_value_unref(call->outputs[slot]);
    call->outputs[slot] = v;
    return CD_OK;
}

int cd_call_ui(cd_node_call *call, const char *key, cd_value *v) {
    if (!v) return CD_ERROR;
    if (!call->ui) call->ui = json_object();
    json_t *list = json_object_get(call->ui, key);
    if (!list) {
        list = json_array();
        json_object_set_new(call->ui, key, list);
    }
    json_array_append_new(list, cd_value_to_json_t(v));
    cd_value_unref(v);
    return CD_OK;
}

int cd_call_fail(cd_node_call *call, const char *exception_type, const char *fmt, ...) {
    free(call->error_type);
    free(call->error_message);
    call->error_type = strdup(exception_type ? exception_type : "RuntimeError");
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&call->error_message, fmt, ap) < 0) call->error_message = NULL;
    va_end(ap);
    return CD_ERROR;
}

int cd_call_need_input(cd_node_call *call, const char *name) {
    for (size_t i = 0; i < call->n_needed; i++)
        if (!strcmp(call->needed[i], name)) return CD_OK;
    char **n = realloc(call->needed, (call->n_needed + 1) * sizeof *n);
    if (!n) return CD_ERROR;
    call->needed = n;
    if (!(n[call->n_needed] = strdup(name))) return CD_ERROR;
    call->n_needed++;
    return CD_OK;
}

int cd_call_interrupted(const cd_node_call *call) {
    return call->env && call->env->interrupted && call->env->interrupted(call->env->ctx);
}

void cd_call_finish(cd_node_call *call, int rc) {
    if (call && call->env && call->env->finish) call->env->finish(call->env->ctx, call, rc);
}

int cd_call_progress(cd_node_call *call, double value, double max) {
    if (cd_call_interrupted(call)) return CD_INTERRUPTED;
    if (call->env && call->env->progress) call->env->progress(call->env->ctx, call->node_id, value, max);
    return CD_OK;
}

void cd_call_send_text(cd_node_call *call, const char *text) {
    if (call->env && call->env->text) call->env->text(call->env->ctx, call->node_id, text);
}

int cd_call_send_preview(cd_node_call *call, const char *mime, const void *bytes, size_t len) {
    if (!call->env || !call->env->preview) return CD_OK;
    call->env->preview(call->env->ctx, call->node_id, mime, bytes, len);
    return CD_OK;
}

const char *cd_call_unique_id(const cd_node_call *call) { return call->node_id; }
const char *cd_call_prompt_json(const cd_node_call *call) {
    if (call->env && call->env->make_texts) call->env->make_texts(call->env->ctx);
    return call->env ? call->env->prompt_json : NULL;
}
const char *cd_call_extra_pnginfo_json(const cd_node_call *call) {
    if (call->env && call->env->make_texts) call->env->make_texts(call->env->ctx);
    return call->env ? call->env->extra_pnginfo_json : NULL;
}
int cd_call_save_metadata(const cd_node_call *call) { return !(call->env && call->env->no_metadata); }

const char *cd_call_directory(const cd_node_call *call, const char *type) {
    return call->env && call->env->directory ? call->env->directory(call->env->ctx, type) : NULL;
}

/* ---- DYNPROMPT ---- */

static const cd_prompt_node *dyn_node(const cd_node_call *call, const char *node_id) {
    return call->env && call->env->dynprompt && node_id ? cd_prompt_get(call->env->dynprompt, node_id) : NULL;
}

const char *cd_call_prompt_node_class(cd_node_call *call, const char *node_id) {
    const cd_prompt_node *n = dyn_node(call, node_id);
    return n ? n->class_type : NULL;
}

size_t cd_call_prompt_node_input_count(cd_node_call *call, const char *node_id) {
    const cd_prompt_node *n = dyn_node(call, node_id);
    return n ? n->n_inputs : 0;
}

const char *cd_call_prompt_node_input_name(cd_node_call *call, const char *node_id, size_t i) {
    const cd_prompt_node *n = dyn_node(call, node_id);
    return n && i < n->n_inputs ? n->inputs[i].name : NULL;
}

const cd_value *cd_call_prompt_node_input_value(cd_node_call *call, const char *node_id, size_t i) {
    const cd_prompt_node *n = dyn_node(call, node_id);
    if (!n || i >= n->n_inputs) return NULL;
    const cd_prompt_input *in = &n->inputs[i];
    if (!in->is_link) return in->value;
    /* Links are stored as (src, slot): make a value the call keeps until it ends. */
    cd_value **lent = realloc(call->lent, (call->n_lent + 1) * sizeof *lent);
    if (!lent) return NULL;
    call->lent = lent;
    cd_value *v = cd_value_link(in->src, in->slot);
    if (!v) return NULL;
    lent[call->n_lent++] = v;
    return v;
}

/* ---- expansion ---- */

int cd_call_graph_begin(cd_node_call *call) {
    call->graph_index++;
    call->graph_local_counter = 0;
    free(call->graph_prefix);
    if (asprintf(&call->graph_prefix, "%s.%zu.%d.", call->node_id, call->call_index, call->graph_index) < 0) {
        call->graph_prefix = NULL;
        return CD_ERROR;
    }
    return CD_OK;
}

static cd_prompt_node *graph_find(cd_node_call *call, const char *id) {
    for (size_t i = 0; i < call->n_graph; i++)
        if (!strcmp(call->graph[i]->id, id)) return call->graph[i];
    return NULL;
}

const char *cd_call_graph_add(cd_node_call *call, const char *class_type, const char *local_id) {
    if (call->graph_index < 0 && cd_call_graph_begin(call) != CD_OK) return NULL;
    if (!call->env || !call->env->registry) return NULL;
    char local[32];
    if (!local_id) {
        snprintf(local, sizeof local, "%d", ++call->graph_local_counter);
        local_id = local;
    }
    char *id;
    if (asprintf(&id, "%s%s", call->graph_prefix, local_id) < 0) return NULL;
    if (graph_find(call, id)) {
        free(id);
        return NULL;
    }
    cd_prompt_node *n = cd_prompt_node_new(call->env->registry, id, class_type);
    free(id);
    if (!n) return NULL;
    cd_prompt_node **g = realloc(call->graph, (call->n_graph + 1) * sizeof *g);
    if (!g) {
        cd_prompt_node_free(n);
        return NULL;
    }
    call->graph = g;
    g[call->n_graph++] = n;
    n->ephemeral = true;
    n->parent = strdup(call->node_id);
    return n->id;
}

int cd_call_graph_set_input(cd_node_call *call, const char *node_id, const char *input, cd_value *v) {
    cd_prompt_node *n = graph_find(call, node_id);
    if (!n) {
        cd_value_unref(v);
        return CD_ERROR;
    }
    return cd_prompt_node_set_input(n, input, v) == 0 ? CD_OK : CD_ERROR;
}

int cd_call_graph_set_display(cd_node_call *call, const char *node_id, const char *display_id) {
    cd_prompt_node *n = graph_find(call, node_id);
    if (!n) return CD_ERROR;
    free(n->display);
    n->display = strdup(display_id);
    return n->display ? CD_OK : CD_ERROR;
}

/* ---- validation ---- */

int cd_call_run_validate(const cd_node_type *t, const cd_call_env *env, json_t *constants, json_t *input_types,
                         char **message) {
    *message = NULL;
    cd_node_call call;
    cd_call_init(&call, t, env, "", 0);
    /* Values live as long as the call; keep them in an array to release after. */
    size_t n = json_object_size(constants) + json_object_size(input_types);
    cd_value **owned = calloc(n ? n : 1, sizeof *owned);
    size_t n_owned = 0;
    /* VALIDATE_INPUTS is mapped over lists like the node itself (get_input_data without an
     * execution list, then _map_node_over_list): an INPUT_IS_LIST node gets every argument as
     * a one-element list, [constant] or [None] for a link. */
    bool whole = (t->def->flags & CD_NODE_INPUT_IS_LIST) != 0;
    const char *name;
    json_t *v;
    json_object_foreach(constants, name, v) {
        cd_value *val = json_is_null(v) ? NULL : cd_value_from_json(v);
        if (whole) {
            cd_value *list = cd_value_list_new(1);
            if (list && cd_value_list_push(list, val ? val : cd_value_none()) != CD_OK) {
                cd_value_unref(list);
                list = NULL;
            } else if (!list) cd_value_unref(val);
            val = list;
        }
        if (val) owned[n_owned++] = val;
        const char *type = json_string_value(json_object_get(input_types, name));
        cd_call_add_input(&call, name, val, type);
    }
    json_object_foreach(input_types, name, v) {
        if (json_object_get(constants, name)) continue;
        cd_call_add_input(&call, name, NULL, json_string_value(v)); /* linked: None */
    }
    int rc = t->def->validate_inputs(&call);
    if (rc != CD_OK) *message = strdup(call.error_message ? call.error_message : "");
    for (size_t i = 0; i < n_owned; i++) cd_value_unref(owned[i]);
    free(owned);
    cd_call_clear(&call);
    return rc == CD_OK ? CD_OK : CD_ERROR;
}
