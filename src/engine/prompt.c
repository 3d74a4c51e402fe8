#include "engine/prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/validate.h"
#include "engine/value.h"

cd_prompt_node *cd_prompt_node_new(const cd_registry *reg, const char *id, const char *class_type) {
    cd_prompt_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->id = strdup(id);
    n->class_type = strdup(class_type ? class_type : "");
    if (!n->id || !n->class_type) {
        cd_prompt_node_free(n);
        return NULL;
    }
    n->type = class_type ? cd_registry_get(reg, class_type) : NULL;
    return n;
}

void cd_prompt_node_free(cd_prompt_node *n) {
    if (!n) return;
    if (n->in_arena) {
        for (size_t i = 0; i < n->n_inputs; i++) cd_value_unref(n->inputs[i].value);
        return;
    }
    for (size_t i = 0; i < n->n_inputs; i++) {
        free(n->inputs[i].name);
        free(n->inputs[i].src);
        cd_value_unref(n->inputs[i].value);
    }
    free(n->inputs);
    free(n->id);
    free(n->class_type);
    free(n->parent);
    free(n->display);
    free(n);
}

int cd_prompt_node_set_input(cd_prompt_node *n, const char *name, cd_value *value) {
    if (!value) return -1;
    cd_prompt_input *in = NULL;
    for (size_t i = 0; i < n->n_inputs; i++)
        if (!strcmp(n->inputs[i].name, name)) in = &n->inputs[i];
    if (!in) {
        cd_prompt_input *ins = realloc(n->inputs, (n->n_inputs + 1) * sizeof *ins);
        if (!ins) {
            cd_value_unref(value);
            return -1;
        }
        n->inputs = ins;
        in = &ins[n->n_inputs++];
        memset(in, 0, sizeof *in);
        in->name = strdup(name);
    } else {
        free(in->src);
        cd_value_unref(in->value);
        in->src = NULL;
        in->value = NULL;
        in->src_node = NULL;
    }
    if (cd_value_kind_of(value) == CD_VALUE_LINK) {
        in->is_link = true;
        in->src = strdup(cd_value_link_node(value));
        in->slot = cd_value_link_slot(value);
        cd_value_unref(value);
    } else {
        in->is_link = false;
        in->value = value;
    }
    return 0;
}

const cd_prompt_input *cd_prompt_node_input(const cd_prompt_node *n, const char *name) {
    for (size_t i = 0; i < n->n_inputs; i++)
        if (!strcmp(n->inputs[i].name, name)) return &n->inputs[i];
    return NULL;
}

int cd_prompt_add(cd_prompt *p, cd_prompt_node *n) {
    if (cd_map_get(p->by_id, n->id)) return -1;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        cd_prompt_node **nodes = realloc(p->nodes, cap * sizeof *nodes);
        if (!nodes) return -1;
        p->nodes = nodes;
        p->cap = cap;
    }
    if (cd_map_set(p->by_id, n->id, n) < 0) return -1;
    n->index = p->n;
    p->nodes[p->n++] = n;
    return 0;
}

cd_prompt_node *cd_prompt_get(const cd_prompt *p, const char *id) { return cd_map_get(p->by_id, id); }

/* A JSON input value is a link when it is a 2-element [string|number, integer] array. */
static bool json_is_link(json_t *v, const char **src, char *numbuf, size_t nlen, int *slot) {
    if (!json_is_array(v) || json_array_size(v) != 2) return false;
    json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);
    if (!json_is_integer(b)) return false;
    if (json_is_string(a)) *src = json_string_value(a);
    else if (json_is_integer(a)) {
        snprintf(numbuf, nlen, "%lld", (long long)json_integer_value(a));
        *src = numbuf;
    } else return false;
    *slot = (int)json_integer_value(b);
    return true;
}

/* A constant input's value as the executor passes it. */
static cd_value *constant_value(const cd_input_def *def, json_t *v) {
    double f;
    if (def && json_is_string(v) && !strcmp(def->type, "FLOAT") && cd_validate_py_float(v, &f) == 0)
        return cd_value_float(f); /* "nan", "inf": validation keeps them as text (JSON has no NaN) */
    if (json_is_object(v) && json_object_get(v, "__value__") && json_object_size(v) == 1)
        return cd_value_from_json(json_object_get(v, "__value__"));
    return cd_value_from_json(v);
}

/* One original node, in the arena, its strings borrowed from the JSON. */
static cd_prompt_node *node_from_json(cd_prompt *p, const cd_registry *reg, const char *id, json_t *node) {
    const char *cls = json_string_value(json_object_get(node, "class_type"));
    json_t *inputs = json_object_get(node, "inputs");
    size_t n_inputs = json_is_object(inputs) ? json_object_size(inputs) : 0;
    cd_prompt_node *n = cd_arena_calloc(&p->arena, sizeof *n);
    cd_prompt_input *ins = cd_arena_calloc(&p->arena, (n_inputs ? n_inputs : 1) * sizeof *ins);
    if (!n || !ins) return NULL;
    n->in_arena = true;
    n->id = (char *)id;
    n->class_type = (char *)(cls ? cls : "");
    n->type = cls ? cd_registry_get(reg, cls) : NULL;
    n->inputs = ins;
    const char *name;
    json_t *v;
    json_object_foreach(inputs, name, v) {
        cd_prompt_input *in = &n->inputs[n->n_inputs];
        in->name = (char *)name;
        const char *src;
        char num[32];
        if (json_is_link(v, &src, num, sizeof num, &in->slot)) {
            in->is_link = true;
            in->src = src == num ? cd_arena_strdup(&p->arena, num) : (char *)src;
            if (!in->src) {
                cd_prompt_node_free(n);
                return NULL;
            }
        } else {
            in->value = constant_value(n->type ? cd_node_type_input(n->type, name) : NULL, v);
            if (!in->value) {
                cd_prompt_node_free(n);
                return NULL;
            }
        }
        n->n_inputs++;
    }
    return n;
}

cd_prompt *cd_prompt_from_json(const cd_registry *reg, json_t *prompt, char *err, size_t errlen) {
    cd_prompt *p = calloc(1, sizeof *p);
    if (!p || !(p->by_id = cd_map_new_borrowed()) || cd_map_reserve(p->by_id, json_object_size(prompt)) < 0) {
        if (p) cd_map_free(p->by_id);
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->json = json_incref(prompt);
    const char *id;
    json_t *node;
    json_object_foreach(prompt, id, node) {
        cd_prompt_node *n = node_from_json(p, reg, id, node);
        if (!n || cd_prompt_add(p, n) < 0) {
            if (n) cd_prompt_node_free(n); /* its values; the arena goes with the prompt */
            snprintf(err, errlen, "out of memory");
            cd_prompt_free(p);
            return NULL;
        }
    }
    p->n_original = p->n;
    return p;
}

void cd_prompt_free(cd_prompt *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) cd_prompt_node_free(p->nodes[i]);
    free(p->nodes);
    cd_map_free(p->by_id);
    cd_arena_free(&p->arena);
    json_decref(p->json);
    free(p->json_text);
    free(p);
}

const char *cd_prompt_display_id(const cd_prompt *p, const cd_prompt_node *n) {
    (void)p;
    return n->display ? n->display : n->id;
}

const char *cd_prompt_real_id(const cd_prompt *p, const cd_prompt_node *n) {
    const cd_prompt_node *cur = n;
    while (cur && cur->parent) {
        const cd_prompt_node *up = cd_prompt_get(p, cur->parent);
        if (!up) return cur->parent;
        cur = up;
    }
    return cur ? cur->id : n->id;
}
