/* util.py: accumulations (ComfyUI's {"accum": [...]}), list helpers, integer math and the
 * for loop built on the while loop. */
#include <stdio.h>
#include <string.h>

#include "tp.h"

/* ACCUMULATION: an opaque value holding a list value. */
static void accum_free(void *p) { cd_value_unref(p); }

static cd_value *accum_new(cd_value *list) {
    return list ? cd_value_opaque("ACCUMULATION", list, accum_free) : NULL;
}

static const cd_value *accum_list(const cd_value *v) {
    if (cd_value_kind_of(v) != CD_VALUE_OPAQUE || strcmp(cd_value_opaque_type(v), "ACCUMULATION")) return NULL;
    return cd_value_opaque_ptr(v);
}

/* A new list of items [from, to) of list, then `extra` (consumed) when given. */
static cd_value *slice(const cd_value *list, size_t from, size_t to, cd_value *extra) {
    cd_value *l = cd_value_list_new(to - from + 1);
    if (!l) {
        cd_value_unref(extra);
        return NULL;
    }
    for (size_t i = from; i < to; i++) cd_value_list_push(l, cd_value_ref(cd_value_list_at(list, i)));
    if (extra) cd_value_list_push(l, extra);
    return l;
}

static cd_value *input_or_none(cd_node_call *call, const char *name) {
    const cd_value *v = cd_call_input(call, name);
    return v ? cd_value_ref(v) : cd_value_none();
}

#define NEED_ACCUM(call, list)                                                                       \
    const cd_value *list = accum_list(cd_call_input(call, "accumulation"));                          \
    if (!list) return cd_call_fail(call, "TypeError", "'NoneType' object is not subscriptable")

static int accumulate(cd_node_call *call) {
    const cd_value *prev = accum_list(cd_call_input(call, "accumulation"));
    cd_value *add = input_or_none(call, "to_add");
    cd_value *l = prev ? slice(prev, 0, cd_value_list_len(prev), add) : slice(NULL, 0, 0, add);
    return cd_call_set_output(call, 0, accum_new(l));
}

static int accumulation_head(cd_node_call *call) {
    NEED_ACCUM(call, list);
    size_t n = cd_value_list_len(list);
    if (!n) {
        cd_call_set_output(call, 0, cd_value_ref(cd_call_input(call, "accumulation")));
        return cd_call_set_output(call, 1, cd_value_none());
    }
    cd_call_set_output(call, 0, accum_new(slice(list, 1, n, NULL)));
    return cd_call_set_output(call, 1, cd_value_ref(cd_value_list_at(list, 0)));
}

static int accumulation_tail(cd_node_call *call) {
    NEED_ACCUM(call, list);
    size_t n = cd_value_list_len(list);
    if (!n) { /* (None, accumulation), as the Python node has it */
        cd_call_set_output(call, 0, cd_value_none());
        return cd_call_set_output(call, 1, cd_value_ref(cd_call_input(call, "accumulation")));
    }
    cd_call_set_output(call, 0, accum_new(slice(list, 0, n - 1, NULL)));
    return cd_call_set_output(call, 1, cd_value_ref(cd_value_list_at(list, n - 1)));
}

static int accumulation_to_list(cd_node_call *call) {
    NEED_ACCUM(call, list);
    return cd_call_set_output(call, 0, slice(list, 0, cd_value_list_len(list), NULL));
}

static int list_to_accumulation(cd_node_call *call) {
    const cd_value *l = cd_call_input(call, "list");
    if (cd_value_kind_of(l) != CD_VALUE_LIST) return cd_call_fail(call, "TypeError", "list expected");
    return cd_call_set_output(call, 0, accum_new(slice(l, 0, cd_value_list_len(l), NULL)));
}

static int accumulation_length(cd_node_call *call) {
    NEED_ACCUM(call, list);
    return cd_call_set_output(call, 0, cd_value_int((int64_t)cd_value_list_len(list)));
}

/* Python indexing: negative counts from the end. -1 when out of range. */
static int64_t py_index(int64_t i, size_t n) {
    if (i < 0) i += (int64_t)n;
    return i >= 0 && i < (int64_t)n ? i : -1;
}

static int accumulation_get(cd_node_call *call) {
    NEED_ACCUM(call, list);
    int64_t i = py_index(cd_call_int(call, "index", 0), cd_value_list_len(list));
    if (i < 0) return cd_call_fail(call, "IndexError", "list index out of range");
    return cd_call_set_output(call, 0, cd_value_ref(cd_value_list_at(list, (size_t)i)));
}

static int accumulation_set(cd_node_call *call) {
    NEED_ACCUM(call, list);
    size_t n = cd_value_list_len(list);
    int64_t i = py_index(cd_call_int(call, "index", 0), n);
    if (i < 0) return cd_call_fail(call, "IndexError", "list assignment index out of range");
    cd_value *l = cd_value_list_new(n);
    for (size_t k = 0; l && k < n; k++)
        cd_value_list_push(l, k == (size_t)i ? input_or_none(call, "value") : cd_value_ref(cd_value_list_at(list, k)));
    return cd_call_set_output(call, 0, accum_new(l));
}

static int64_t floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static int int_math(cd_node_call *call) {
    int64_t a = cd_call_int(call, "a", 0), b = cd_call_int(call, "b", 0), r = 0;
    const char *op = cd_call_string(call, "operation", "add");
    if (!strcmp(op, "add")) r = (int64_t)((uint64_t)a + (uint64_t)b);
    else if (!strcmp(op, "subtract")) r = (int64_t)((uint64_t)a - (uint64_t)b);
    else if (!strcmp(op, "multiply")) r = (int64_t)((uint64_t)a * (uint64_t)b);
    else if (!strcmp(op, "divide") || !strcmp(op, "modulo")) {
        if (!b) return cd_call_fail(call, "ZeroDivisionError", "integer division or modulo by zero");
        if (a == INT64_MIN && b == -1) r = !strcmp(op, "divide") ? INT64_MIN : 0;
        else r = !strcmp(op, "divide") ? floordiv(a, b) : a - floordiv(a, b) * b;
    } else if (!strcmp(op, "power")) {
        if (b < 0) return cd_call_set_output(call, 0, cd_value_float(1.0 / (double)(a ? a : 1)));
        uint64_t res = 1, base = (uint64_t)a;
        for (int64_t e = b; e > 0; e >>= 1) {
            if (e & 1) res *= base;
            base *= base;
        }
        r = (int64_t)res;
    }
    return cd_call_set_output(call, 0, cd_value_int(r));
}

static int for_loop_open(cd_node_call *call) {
    const cd_value *init0 = cd_call_input(call, "initial_value0");
    cd_value *remaining = init0 && cd_value_kind_of(init0) != CD_VALUE_NONE ? cd_value_ref(init0)
                                                                              : input_or_none(call, "remaining");
    const char *open = cd_call_graph_add(call, "TestWhileLoopOpen", NULL);
    if (!open) {
        cd_value_unref(remaining);
        return cd_call_fail(call, "RuntimeError", "cannot build the expansion");
    }
    cd_call_graph_set_input(call, open, "condition", cd_value_ref(remaining));
    cd_call_graph_set_input(call, open, "initial_value0", cd_value_ref(remaining));
    char key[32];
    for (int i = 1; i < TP_FLOW_SOCKETS; i++) {
        snprintf(key, sizeof key, "initial_value%d", i);
        const cd_value *v = cd_call_input(call, key);
        if (v && cd_value_kind_of(v) != CD_VALUE_NONE) cd_call_graph_set_input(call, open, key, cd_value_ref(v));
        cd_call_set_output(call, i + 1, input_or_none(call, key));
    }
    cd_call_set_output(call, 0, cd_value_string("stub"));
    return cd_call_set_output(call, 1, remaining);
}

static int for_loop_close(cd_node_call *call) {
    const cd_value *flow = cd_call_input(call, "flow_control");
    if (cd_value_kind_of(flow) != CD_VALUE_LINK) return cd_call_fail(call, "TypeError", "flow_control is not a link");
    const char *while_open = cd_value_link_node(flow);
    const char *sub = cd_call_graph_add(call, "TestIntMathOperation", NULL);
    const char *cond = cd_call_graph_add(call, "TestToBoolNode", NULL);
    const char *close = cd_call_graph_add(call, "TestWhileLoopClose", NULL);
    if (!sub || !cond || !close) return cd_call_fail(call, "RuntimeError", "cannot build the expansion");
    cd_call_graph_set_input(call, sub, "operation", cd_value_string("subtract"));
    cd_call_graph_set_input(call, sub, "a", cd_value_link(while_open, 1));
    cd_call_graph_set_input(call, sub, "b", cd_value_int(1));
    cd_call_graph_set_input(call, cond, "value", cd_value_link(sub, 0));
    cd_call_graph_set_input(call, close, "flow_control", cd_value_ref(flow));
    cd_call_graph_set_input(call, close, "condition", cd_value_link(cond, 0));
    cd_call_graph_set_input(call, close, "initial_value0", cd_value_link(sub, 0));
    char key[32];
    for (int i = 1; i < TP_FLOW_SOCKETS; i++) {
        snprintf(key, sizeof key, "initial_value%d", i);
        const cd_value *v = cd_call_input(call, key);
        if (v && cd_value_kind_of(v) != CD_VALUE_NONE) cd_call_graph_set_input(call, close, key, cd_value_ref(v));
    }
    for (int i = 1; i < TP_FLOW_SOCKETS; i++) cd_call_set_output(call, i - 1, cd_value_link(close, i));
    return CD_OK;
}

static int make_list(cd_node_call *call) {
    cd_value *l = cd_value_list_new(TP_LIST_SOCKETS);
    char key[32];
    for (int i = 0; l && i < TP_LIST_SOCKETS; i++) {
        snprintf(key, sizeof key, "value%d", i);
        const cd_value *v = cd_call_input(call, key);
        if (v) cd_value_list_push(l, cd_value_ref(v));
    }
    return cd_call_set_output(call, 0, l);
}

static const cd_output_def out_accum[] = {{"ACCUMULATION", NULL, 0, NULL, NULL}};
static const cd_output_def out_accum_any[] = {{"ACCUMULATION", NULL, 0, NULL, NULL}, {"*", NULL, 0, NULL, NULL}};
static const cd_output_def out_any_list[] = {{"*", NULL, 1, NULL, NULL}};
static const cd_output_def out_int[] = {{"INT", NULL, 0, NULL, NULL}};
static const cd_output_def out_any[] = {{"*", NULL, 0, NULL, NULL}};
static const cd_output_def for_open_out[] = {
    {"FLOW_CONTROL", "flow_control", 0, NULL, NULL}, {"INT", "remaining", 0, NULL, NULL},
    {"*", "value1", 0, NULL, NULL}, {"*", "value2", 0, NULL, NULL}, {"*", "value3", 0, NULL, NULL},
    {"*", "value4", 0, NULL, NULL}};
static const cd_output_def for_close_out[] = {{"*", "value1", 0, NULL, NULL}, {"*", "value2", 0, NULL, NULL},
                                              {"*", "value3", 0, NULL, NULL}, {"*", "value4", 0, NULL, NULL}};

static const char *const accum_decl[] = {"accumulation", "ACCUMULATION", "index", "INT", NULL};
static const char *const for_open_decl[] = {"remaining", "INT", NULL};
static const char *const for_close_decl[] = {"flow_control", "FLOW_CONTROL", NULL};

#define ACCUM_IN "{\"required\": {\"accumulation\": [\"ACCUMULATION\"]}}"
#define INT_MINMAX "{\"default\": 0, \"min\": -1.8446744073709552e+19, \"max\": 1.8446744073709552e+19, \"step\": 1}"
#define BASE(cls, disp, cat) \
    .abi_version = CD_NODE_ABI_VERSION, .name = cls, .display_name = disp, .category = cat, .python_module = TP_MODULE
#define VARIANT TP_VARIANT, .user = (void *)accum_decl

static const cd_node_def defs[] = {
    {BASE("TestAccumulateNode", "Accumulate", "Testing/Lists"), VARIANT,
     .inputs = "{\"required\": {\"to_add\": [\"*\"]}, \"optional\": {\"accumulation\": [\"ACCUMULATION\"]}}",
     .outputs = out_accum, .n_outputs = 1, .execute = accumulate},
    {BASE("TestAccumulationHeadNode", "Accumulation Head", "Testing/Lists"), VARIANT, .inputs = ACCUM_IN,
     .outputs = out_accum_any, .n_outputs = 2, .execute = accumulation_head},
    {BASE("TestAccumulationTailNode", "Accumulation Tail", "Testing/Lists"), .inputs = ACCUM_IN,
     .outputs = out_accum_any, .n_outputs = 2, .execute = accumulation_tail},
    {BASE("TestAccumulationToListNode", "Accumulation to List", "Testing/Lists"), VARIANT, .inputs = ACCUM_IN,
     .outputs = out_any_list, .n_outputs = 1, .execute = accumulation_to_list},
    {BASE("TestListToAccumulationNode", "List to Accumulation", "Testing/Lists"), VARIANT,
     .inputs = "{\"required\": {\"list\": [\"*\"]}}", .outputs = out_accum, .n_outputs = 1,
     .flags = CD_NODE_INPUT_IS_LIST, .execute = list_to_accumulation},
    {BASE("TestAccumulationGetLengthNode", "Accumulation Get Length", "Testing/Lists"), VARIANT, .inputs = ACCUM_IN,
     .outputs = out_int, .n_outputs = 1, .execute = accumulation_length},
    {BASE("TestAccumulationGetItemNode", "Accumulation Get Item", "Testing/Lists"), VARIANT,
     .inputs = "{\"required\": {\"accumulation\": [\"ACCUMULATION\"], \"index\": [\"INT\", {\"default\": 0, "
               "\"step\": 1}]}}",
     .outputs = out_any, .n_outputs = 1, .execute = accumulation_get},
    {BASE("TestAccumulationSetItemNode", "Accumulation Set Item", "Testing/Lists"), VARIANT,
     .inputs = "{\"required\": {\"accumulation\": [\"ACCUMULATION\"], \"index\": [\"INT\", {\"default\": 0, "
               "\"step\": 1}], \"value\": [\"*\"]}}",
     .outputs = out_accum, .n_outputs = 1, .execute = accumulation_set},
    {BASE("TestForLoopOpen", "For Loop Open", "Testing/Flow"), TP_VARIANT, .user = (void *)for_open_decl,
     .inputs = "{\"required\": {\"remaining\": [\"INT\", {\"default\": 1, \"min\": 0, \"max\": 100000, \"step\": 1}]}, "
               "\"optional\": {\"initial_value1\": [\"*\"], \"initial_value2\": [\"*\"], \"initial_value3\": [\"*\"], "
               "\"initial_value4\": [\"*\"]}, \"hidden\": {\"initial_value0\": [\"*\"]}}",
     .outputs = for_open_out, .n_outputs = 6, .execute = for_loop_open},
    {BASE("TestForLoopClose", "For Loop Close", "Testing/Flow"), TP_VARIANT, .user = (void *)for_close_decl,
     .inputs = "{\"required\": {\"flow_control\": [\"FLOW_CONTROL\", {\"rawLink\": true}]}, \"optional\": "
               "{\"initial_value1\": [\"*\", {\"rawLink\": true}], \"initial_value2\": [\"*\", {\"rawLink\": true}], "
               "\"initial_value3\": [\"*\", {\"rawLink\": true}], \"initial_value4\": [\"*\", {\"rawLink\": true}]}}",
     .outputs = for_close_out, .n_outputs = 4, .execute = for_loop_close},
    {BASE("TestIntMathOperation", "Int Math Operation", "Testing/Logic"),
     .inputs = "{\"required\": {\"a\": [\"INT\", " INT_MINMAX "], \"b\": [\"INT\", " INT_MINMAX "], \"operation\": "
               "[[\"add\", \"subtract\", \"multiply\", \"divide\", \"modulo\", \"power\"]]}}",
     .outputs = out_int, .n_outputs = 1, .execute = int_math},
    {BASE("TestMakeListNode", "Make List", "Testing/Lists"), TP_VARIANT,
     .inputs = "{\"required\": {\"value1\": [\"*\"]}, \"optional\": {\"value1\": [\"*\"], \"value2\": [\"*\"], "
               "\"value3\": [\"*\"], \"value4\": [\"*\"], \"value5\": [\"*\"], \"value6\": [\"*\"], \"value7\": "
               "[\"*\"], \"value8\": [\"*\"], \"value9\": [\"*\"]}}",
     .outputs = out_any_list, .n_outputs = 1, .execute = make_list},
};

void tp_register_util(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
}
