/* flow_control.py: while loops (by rebuilding the loop body as an expansion) and the execution
 * blocker. TestWhileLoopClose reads the running prompt through the DYNPROMPT accessors of
 * node.h (cd_call_prompt_node_*). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp.h"

static int while_open(cd_node_call *call) {
    cd_call_set_output(call, 0, cd_value_string("stub"));
    for (int i = 0; i < TP_FLOW_SOCKETS; i++) {
        char key[32];
        snprintf(key, sizeof key, "initial_value%d", i);
        const cd_value *v = cd_call_input(call, key);
        cd_call_set_output(call, i + 1, v ? cd_value_ref(v) : cd_value_none());
    }
    return CD_OK;
}

/* A small string set/map for walking the graph: ids in insertion order, each with the ids of
 * the nodes that consume it (explore_dependencies' `upstream`). */
typedef struct {
    char *id;
    char **children;
    size_t n_children;
} entry;
typedef struct {
    entry *e;
    size_t n;
} idmap;

static entry *map_get(idmap *m, const char *id) {
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->e[i].id, id)) return &m->e[i];
    return NULL;
}

static entry *map_add(idmap *m, const char *id) {
    entry *e = realloc(m->e, (m->n + 1) * sizeof *e);
    if (!e) return NULL;
    m->e = e;
    e = &m->e[m->n++];
    e->id = strdup(id);
    e->children = NULL;
    e->n_children = 0;
    return e;
}

static void map_free(idmap *m) {
    for (size_t i = 0; i < m->n; i++) {
        for (size_t k = 0; k < m->e[i].n_children; k++) free(m->e[i].children[k]);
        free(m->e[i].children);
        free(m->e[i].id);
    }
    free(m->e);
    m->e = NULL;
    m->n = 0;
}

static void explore_dependencies(cd_node_call *call, const char *node_id, idmap *upstream) {
    size_t n = cd_call_prompt_node_input_count(call, node_id);
    for (size_t i = 0; i < n; i++) {
        const cd_value *v = cd_call_prompt_node_input_value(call, node_id, i);
        if (cd_value_kind_of(v) != CD_VALUE_LINK) continue;
        char *parent = strdup(cd_value_link_node(v));
        entry *e = map_get(upstream, parent);
        if (!e) {
            map_add(upstream, parent);
            explore_dependencies(call, parent, upstream);
            e = map_get(upstream, parent);
        }
        if (e) {
            char **c = realloc(e->children, (e->n_children + 1) * sizeof *c);
            if (c) {
                e->children = c;
                c[e->n_children++] = strdup(node_id);
            }
        }
        free(parent);
    }
}

static void collect_contained(const char *node_id, idmap *upstream, idmap *contained) {
    entry *e = map_get(upstream, node_id);
    if (!e) return;
    for (size_t k = 0; k < e->n_children; k++) {
        const char *child = e->children[k];
        if (map_get(contained, child)) continue;
        map_add(contained, child);
        collect_contained(child, upstream, contained);
    }
}

static int while_close(cd_node_call *call) {
    const cd_value *flow = cd_call_input(call, "flow_control");
    char key[32];
    if (!cd_call_bool(call, "condition", 0)) { /* done: the values as they are */
        for (int i = 0; i < TP_FLOW_SOCKETS; i++) {
            snprintf(key, sizeof key, "initial_value%d", i);
            const cd_value *v = cd_call_input(call, key);
            cd_call_set_output(call, i, v ? cd_value_ref(v) : cd_value_none());
        }
        return CD_OK;
    }
    if (cd_value_kind_of(flow) != CD_VALUE_LINK)
        return cd_call_fail(call, "AssertionError", "flow_control is not a link");
    const char *me = cd_call_unique_id(call);
    const char *open_node = cd_value_link_node(flow);
    if (!cd_call_prompt_node_class(call, me)) return cd_call_fail(call, "AssertionError", "no DYNPROMPT");

    /* The nodes between the open node and this one, this one and the open node. */
    idmap upstream = {0}, contained = {0};
    explore_dependencies(call, me, &upstream);
    collect_contained(open_node, &upstream, &contained);
    if (!map_get(&contained, me)) map_add(&contained, me);
    if (!map_get(&contained, open_node)) map_add(&contained, open_node);

    /* Clone them, this node as "Recurse"; each clone shows as the node it copies. */
    int rc = CD_OK;
    char **clone = calloc(contained.n ? contained.n : 1, sizeof *clone);
    for (size_t i = 0; clone && i < contained.n; i++) {
        const char *id = contained.e[i].id;
        const char *cls = cd_call_prompt_node_class(call, id);
        const char *full = cls ? cd_call_graph_add(call, cls, strcmp(id, me) ? id : "Recurse") : NULL;
        if (!full || !(clone[i] = strdup(full)) || cd_call_graph_set_display(call, clone[i], id) != CD_OK) {
            rc = cd_call_fail(call, "AssertionError", "cannot clone node %s", id);
            break;
        }
    }
    if (!clone) rc = cd_call_fail(call, "MemoryError", "out of memory");
    for (size_t i = 0; rc == CD_OK && i < contained.n; i++) {
        const char *id = contained.e[i].id;
        size_t n = cd_call_prompt_node_input_count(call, id);
        for (size_t k = 0; k < n; k++) {
            const char *name = cd_call_prompt_node_input_name(call, id, k);
            const cd_value *v = cd_call_prompt_node_input_value(call, id, k);
            cd_value *nv = NULL;
            if (cd_value_kind_of(v) == CD_VALUE_LINK) {
                const char *src = cd_value_link_node(v);
                for (size_t j = 0; j < contained.n; j++)
                    if (!strcmp(contained.e[j].id, src)) nv = cd_value_link(clone[j], cd_value_link_slot(v));
            }
            if (!nv && cd_value_kind_of(v) == CD_VALUE_NONE) continue; /* set_input(None) removes */
            if (!nv) nv = cd_value_ref(v);
            cd_call_graph_set_input(call, clone[i], name, nv);
        }
    }
    if (rc == CD_OK) {
        /* The clone of the open node starts from this iteration's values. */
        const char *new_open = NULL, *recurse = NULL;
        for (size_t j = 0; j < contained.n; j++) {
            if (!strcmp(contained.e[j].id, open_node)) new_open = clone[j];
            if (!strcmp(contained.e[j].id, me)) recurse = clone[j];
        }
        for (int i = 0; i < TP_FLOW_SOCKETS; i++) {
            snprintf(key, sizeof key, "initial_value%d", i);
            const cd_value *v = cd_call_input(call, key);
            cd_call_graph_set_input(call, new_open, key, v ? cd_value_ref(v) : cd_value_none());
        }
        for (int i = 0; i < TP_FLOW_SOCKETS; i++) cd_call_set_output(call, i, cd_value_link(recurse, i));
    }
    for (size_t i = 0; clone && i < contained.n; i++) free(clone[i]);
    free(clone);
    map_free(&upstream);
    map_free(&contained);
    return rc;
}

static int execution_blocker(cd_node_call *call) {
    if (cd_call_bool(call, "block", 0))
        return cd_call_set_output(call, 0, cd_value_blocker(cd_call_bool(call, "verbose", 0) ? "Blocked Execution" : NULL));
    const cd_value *v = cd_call_input(call, "input");
    return cd_call_set_output(call, 0, v ? cd_value_ref(v) : cd_value_none());
}

static const cd_output_def open_out[] = {
    {"FLOW_CONTROL", "FLOW_CONTROL", 0, NULL, NULL}, {"*", "value0", 0, NULL, NULL}, {"*", "value1", 0, NULL, NULL},
    {"*", "value2", 0, NULL, NULL}, {"*", "value3", 0, NULL, NULL}, {"*", "value4", 0, NULL, NULL}};
static const cd_output_def close_out[] = {{"*", "value0", 0, NULL, NULL}, {"*", "value1", 0, NULL, NULL},
                                          {"*", "value2", 0, NULL, NULL}, {"*", "value3", 0, NULL, NULL},
                                          {"*", "value4", 0, NULL, NULL}};
static const cd_output_def blocker_out[] = {{"*", "output", 0, NULL, NULL}};

static const char *const open_decl[] = {"condition", "BOOLEAN", NULL};
static const char *const close_decl[] = {"flow_control", "FLOW_CONTROL", "condition", "BOOLEAN", NULL};
static const char *const blocker_decl[] = {"block", "BOOLEAN", "verbose", "BOOLEAN", NULL};

#define INITIAL_VALUES                                                                                      \
    "\"initial_value0\": [\"*\"], \"initial_value1\": [\"*\"], \"initial_value2\": [\"*\"], \"initial_value3\": " \
    "[\"*\"], \"initial_value4\": [\"*\"]"
#define BASE(cls, disp) \
    .abi_version = CD_NODE_ABI_VERSION, .name = cls, .display_name = disp, .category = "Testing/Flow", \
    .python_module = TP_MODULE, TP_VARIANT

static const cd_node_def defs[] = {
    {BASE("TestWhileLoopOpen", "While Loop Open"),
     .inputs = "{\"required\": {\"condition\": [\"BOOLEAN\", {\"default\": true}]}, \"optional\": {" INITIAL_VALUES "}}",
     .outputs = open_out, .n_outputs = 6, .execute = while_open, .user = (void *)open_decl},
    {BASE("TestWhileLoopClose", "While Loop Close"),
     .inputs = "{\"required\": {\"flow_control\": [\"FLOW_CONTROL\", {\"rawLink\": true}], \"condition\": "
               "[\"BOOLEAN\", {\"forceInput\": true}]}, \"optional\": {" INITIAL_VALUES "}, \"hidden\": "
               "{\"dynprompt\": \"DYNPROMPT\", \"unique_id\": \"UNIQUE_ID\"}}",
     .outputs = close_out, .n_outputs = 5, .execute = while_close, .user = (void *)close_decl},
    {BASE("TestExecutionBlocker", "Execution Blocker"),
     .inputs = "{\"required\": {\"input\": [\"*\"], \"block\": [\"BOOLEAN\"], \"verbose\": [\"BOOLEAN\", "
               "{\"default\": false}]}}",
     .outputs = blocker_out, .n_outputs = 1, .execute = execution_blocker, .user = (void *)blocker_decl},
};

void tp_register_flow(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
}
