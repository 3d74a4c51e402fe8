/* conditions.py: comparisons and boolean logic. */
#include <ctype.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "tp.h"

#define OPS "[[\"==\", \"!=\", \"<\", \">\", \"<=\", \">=\"]]"

static int compare(const char *op, int c) {
    if (!strcmp(op, "==")) return c == 0;
    if (!strcmp(op, "!=")) return c != 0;
    if (!strcmp(op, "<")) return c < 0;
    if (!strcmp(op, ">")) return c > 0;
    if (!strcmp(op, "<=")) return c <= 0;
    return c >= 0;
}

static int int_condition(cd_node_call *call) {
    int64_t a = cd_call_int(call, "a", 0), b = cd_call_int(call, "b", 0);
    return cd_call_set_output(call, 0,
                              cd_value_bool(compare(cd_call_string(call, "operation", "=="), (a > b) - (a < b))));
}

static int float_condition(cd_node_call *call) {
    double a = cd_call_float(call, "a", 0), b = cd_call_float(call, "b", 0);
    const char *op = cd_call_string(call, "operation", "==");
    int r;
    if (a != a || b != b) r = !strcmp(op, "!="); /* NaN compares false except != */
    else r = compare(op, (a > b) - (a < b));
    return cd_call_set_output(call, 0, cd_value_bool(r));
}

static char *lower_dup(const char *s) {
    char *d = strdup(s);
    for (char *p = d; p && *p; p++) *p = (char)tolower((unsigned char)*p);
    return d;
}

static int string_condition(cd_node_call *call) {
    const char *op = cd_call_string(call, "operation", "a == b");
    bool cs = cd_call_bool(call, "case_sensitive", 1);
    char *a = cs ? strdup(cd_call_string(call, "a", "")) : lower_dup(cd_call_string(call, "a", ""));
    char *b = cs ? strdup(cd_call_string(call, "b", "")) : lower_dup(cd_call_string(call, "b", ""));
    if (!a || !b) {
        free(a);
        free(b);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    size_t la = strlen(a), lb = strlen(b);
    int r = 0;
    if (!strcmp(op, "a == b")) r = !strcmp(a, b);
    else if (!strcmp(op, "a != b")) r = strcmp(a, b) != 0;
    else if (!strcmp(op, "a IN b")) r = strstr(b, a) != NULL;
    else if (!strcmp(op, "a BEGINSWITH b")) r = !strncmp(a, b, lb);
    else if (!strcmp(op, "a ENDSWITH b")) r = la >= lb && !strcmp(a + la - lb, b);
    else if (!strcmp(op, "a MATCH REGEX(b)")) {
        /* re.match: anchored at the start. POSIX extended syntax; a bad pattern gives False. */
        regex_t re;
        if (regcomp(&re, b, REG_EXTENDED) == 0) {
            regmatch_t m;
            r = regexec(&re, a, 1, &m, 0) == 0 && m.rm_so == 0;
            regfree(&re);
        }
    }
    free(a);
    free(b);
    return cd_call_set_output(call, 0, cd_value_bool(r));
}

static int to_bool(cd_node_call *call) {
    const cd_value *v = cd_call_input(call, "value");
    int r;
    switch (cd_value_kind_of(v)) {
    case CD_VALUE_TENSOR: {
        float mn, mx;
        tp_minmax(v, &mn, &mx);
        r = !(mn == 0 && mx == 0);
        break;
    }
    case CD_VALUE_NONE: r = 0; break;
    case CD_VALUE_INT: r = cd_value_as_int(v) != 0; break;
    case CD_VALUE_FLOAT: r = cd_value_as_float(v) != 0; break;
    case CD_VALUE_BOOL: r = cd_value_as_bool(v); break;
    case CD_VALUE_STRING: r = cd_value_as_string(v)[0] != 0; break;
    case CD_VALUE_LIST: r = cd_value_list_len(v) != 0; break;
    case CD_VALUE_JSON: {
        const char *t = cd_value_json_text(v);
        r = !(t && (!strcmp(t, "[]") || !strcmp(t, "{}")));
        break;
    }
    default: r = 1; break; /* "Can't convert it? Well then it's something" */
    }
    if (!v) r = 0;
    if (cd_call_bool(call, "invert", 0)) r = !r;
    return cd_call_set_output(call, 0, cd_value_bool(r));
}

static int bool_operation(cd_node_call *call) {
    int a = cd_call_bool(call, "a", 0), b = cd_call_bool(call, "b", 0);
    const char *op = cd_call_string(call, "op", "a AND b");
    int r = !strcmp(op, "a AND b") ? (a && b) : !strcmp(op, "a OR b") ? (a || b) : !strcmp(op, "a XOR b") ? (a ^ b) : !a;
    return cd_call_set_output(call, 0, cd_value_bool(r));
}

static const cd_output_def out_bool[] = {{"BOOLEAN", NULL, 0, NULL, NULL}};

#define COND(cls, disp, ins, fn)                                                                         \
    {.abi_version = CD_NODE_ABI_VERSION, .name = cls, .display_name = disp, .category = "Testing/Logic", \
     .python_module = TP_MODULE, .inputs = ins, .outputs = out_bool, .n_outputs = 1, .execute = fn}

static const cd_node_def defs[] = {
    COND("TestIntConditions", "Int Condition",
         "{\"required\": {\"a\": [\"INT\", {\"default\": 0, \"min\": -1.8446744073709552e+19, \"max\": "
         "1.8446744073709552e+19, \"step\": 1}], \"b\": [\"INT\", {\"default\": 0, \"min\": -1.8446744073709552e+19, "
         "\"max\": 1.8446744073709552e+19, \"step\": 1}], \"operation\": " OPS "}}",
         int_condition),
    COND("TestFloatConditions", "Float Condition",
         "{\"required\": {\"a\": [\"FLOAT\", {\"default\": 0, \"min\": -999999999999.0, \"max\": 999999999999.0, "
         "\"step\": 1}], \"b\": [\"FLOAT\", {\"default\": 0, \"min\": -999999999999.0, \"max\": 999999999999.0, "
         "\"step\": 1}], \"operation\": " OPS "}}",
         float_condition),
    COND("TestStringConditions", "String Condition",
         "{\"required\": {\"a\": [\"STRING\", {\"multiline\": false}], \"b\": [\"STRING\", {\"multiline\": false}], "
         "\"operation\": [[\"a == b\", \"a != b\", \"a IN b\", \"a MATCH REGEX(b)\", \"a BEGINSWITH b\", "
         "\"a ENDSWITH b\"]], \"case_sensitive\": [\"BOOLEAN\", {\"default\": true}]}}",
         string_condition),
    COND("TestToBoolNode", "To Bool",
         "{\"required\": {\"value\": [\"*\"]}, \"optional\": {\"invert\": [\"BOOLEAN\", {\"default\": false}]}}",
         to_bool),
    COND("TestBoolOperationNode", "Bool Operation",
         "{\"required\": {\"a\": [\"BOOLEAN\"], \"b\": [\"BOOLEAN\"], \"op\": [[\"a AND b\", \"a OR b\", "
         "\"a XOR b\", \"NOT a\"]]}}",
         bool_operation),
};

void tp_register_conditions(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
}
