/* comfyd's own arithmetic nodes (category comfyd/math, python_module comfyd.nodes_math):
 * IntAdd, IntSubtract, IntMultiply, IntDivide, IntModulo, FloatAdd, FloatSubtract,
 * FloatMultiply, FloatDivide, IntCompare, FloatCompare, IntToFloat, FloatToInt.
 *
 * They compute what the Python expressions would, within ComfyUI's INT, which is 64-bit on
 * the wire: // and % round toward negative infinity, division by zero raises
 * ZeroDivisionError, int(x) truncates, and a result outside 64 bits raises OverflowError
 * (where Python's unbounded int would carry on) instead of wrapping around. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "comfyd/node.h"

#define MODULE "comfyd.nodes_math"
#define CATEGORY "comfyd/math"

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD } arith_op;
typedef enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_BAD } cmp_op;

static const char *const cmp_names[] = {"==", "!=", "<", "<=", ">", ">="};

static cmp_op cmp_parse(const char *s) {
    for (int k = 0; k < CMP_BAD; k++)
        if (s && !strcmp(s, cmp_names[k])) return (cmp_op)k;
    return CMP_BAD;
}

static arith_op op_of(const cd_node_call *call) { return (arith_op)(intptr_t)cd_call_user(call); }

static int int_overflow(cd_node_call *call) {
    return cd_call_fail(call, "OverflowError", "the result does not fit in a 64-bit INT");
}

static int int_arith(cd_node_call *call) {
    int64_t a = cd_call_int(call, "a", 0), b = cd_call_int(call, "b", 0), r = 0;
    switch (op_of(call)) {
    case OP_ADD:
        if (__builtin_add_overflow(a, b, &r)) return int_overflow(call);
        break;
    case OP_SUB:
        if (__builtin_sub_overflow(a, b, &r)) return int_overflow(call);
        break;
    case OP_MUL:
        if (__builtin_mul_overflow(a, b, &r)) return int_overflow(call);
        break;
    case OP_DIV:
        if (b == 0) return cd_call_fail(call, "ZeroDivisionError", "integer division or modulo by zero");
        if (a == INT64_MIN && b == -1) return int_overflow(call);
        r = a / b;
        if (a % b != 0 && ((a % b < 0) != (b < 0))) r--; /* floor, not truncation */
        break;
    case OP_MOD:
        if (b == 0) return cd_call_fail(call, "ZeroDivisionError", "integer division or modulo by zero");
        if (b == -1) break; /* INT64_MIN % -1 is undefined in C; the answer is 0 */
        r = a % b;
        if (r != 0 && ((r < 0) != (b < 0))) r += b; /* the sign of the divisor */
        break;
    }
    return cd_call_set_output(call, 0, cd_value_int(r));
}

static int float_arith(cd_node_call *call) {
    double a = cd_call_float(call, "a", 0), b = cd_call_float(call, "b", 0), r = 0;
    switch (op_of(call)) {
    case OP_ADD: r = a + b; break;
    case OP_SUB: r = a - b; break;
    case OP_MUL: r = a * b; break;
    case OP_DIV:
        if (b == 0) return cd_call_fail(call, "ZeroDivisionError", "float division by zero");
        r = a / b;
        break;
    case OP_MOD: break; /* not registered */
    }
    return cd_call_set_output(call, 0, cd_value_float(r));
}

static int compare(cd_node_call *call) {
    const char *name = cd_call_string(call, "operation", NULL);
    cmp_op op = cmp_parse(name);
    if (op == CMP_BAD) return cd_call_fail(call, "ValueError", "unknown operation '%s'", name ? name : "");
    int r;
    if (cd_call_user(call)) { /* floats */
        double a = cd_call_float(call, "a", 0), b = cd_call_float(call, "b", 0);
        r = op == CMP_EQ ? a == b : op == CMP_NE ? a != b : op == CMP_LT ? a < b : op == CMP_LE ? a <= b
          : op == CMP_GT ? a > b : a >= b;
    } else {
        int64_t a = cd_call_int(call, "a", 0), b = cd_call_int(call, "b", 0);
        r = op == CMP_EQ ? a == b : op == CMP_NE ? a != b : op == CMP_LT ? a < b : op == CMP_LE ? a <= b
          : op == CMP_GT ? a > b : a >= b;
    }
    return cd_call_set_output(call, 0, cd_value_bool(r));
}

static int int_to_float(cd_node_call *call) {
    return cd_call_set_output(call, 0, cd_value_float((double)cd_call_int(call, "value", 0)));
}

/* int(x): truncation toward zero. */
static int float_to_int(cd_node_call *call) {
    double x = cd_call_float(call, "value", 0);
    if (isnan(x)) return cd_call_fail(call, "ValueError", "cannot convert float NaN to integer");
    if (isinf(x)) return cd_call_fail(call, "OverflowError", "cannot convert float infinity to integer");
    /* [-2^63, 2^63) converts exactly after truncation */
    if (x >= 9223372036854775808.0 || x < -9223372036854775808.0) return int_overflow(call);
    return cd_call_set_output(call, 0, cd_value_int((int64_t)x));
}

static const cd_output_def out_int[] = {{"INT", NULL, 0, NULL, NULL}};
static const cd_output_def out_float[] = {{"FLOAT", NULL, 0, NULL, NULL}};
static const cd_output_def out_bool[] = {{"BOOLEAN", NULL, 0, NULL, NULL}};

#define INT_ARG "[\"INT\", {\"default\": 0, \"min\": -9223372036854775808, \"max\": 9223372036854775807}]"
#define FLOAT_ARG                                                                                                    \
    "[\"FLOAT\", {\"default\": 0.0, \"min\": -1.7976931348623157e+308, \"max\": 1.7976931348623157e+308, \"step\": " \
    "0.01, \"round\": false}]"
#define CMP_ARG "[[\"==\", \"!=\", \"<\", \"<=\", \">\", \">=\"], {\"default\": \"==\"}]"
#define TWO(ARG) "{\"required\": {\"a\": " ARG ", \"b\": " ARG "}}"

#define MATH_NODE(NAME, DISPLAY, DESC, INPUTS, OUTS, FN, USER)                                                       \
    {.abi_version = CD_NODE_ABI_VERSION, .name = NAME, .display_name = DISPLAY, .category = CATEGORY,                \
     .description = DESC, .python_module = MODULE, .inputs = INPUTS, .outputs = OUTS, .n_outputs = 1,              \
     .execute = FN, .user = (void *)(intptr_t)(USER)}

static const cd_node_def defs[] = {
    MATH_NODE("IntAdd", "Int Add", "a + b", TWO(INT_ARG), out_int, int_arith, OP_ADD),
    MATH_NODE("IntSubtract", "Int Subtract", "a - b", TWO(INT_ARG), out_int, int_arith, OP_SUB),
    MATH_NODE("IntMultiply", "Int Multiply", "a * b", TWO(INT_ARG), out_int, int_arith, OP_MUL),
    MATH_NODE("IntDivide", "Int Divide", "a // b: the quotient rounded toward negative infinity, as in Python.",
              TWO(INT_ARG), out_int, int_arith, OP_DIV),
    MATH_NODE("IntModulo", "Int Modulo", "a % b: the remainder with the sign of b, as in Python.", TWO(INT_ARG),
              out_int, int_arith, OP_MOD),
    MATH_NODE("FloatAdd", "Float Add", "a + b", TWO(FLOAT_ARG), out_float, float_arith, OP_ADD),
    MATH_NODE("FloatSubtract", "Float Subtract", "a - b", TWO(FLOAT_ARG), out_float, float_arith, OP_SUB),
    MATH_NODE("FloatMultiply", "Float Multiply", "a * b", TWO(FLOAT_ARG), out_float, float_arith, OP_MUL),
    MATH_NODE("FloatDivide", "Float Divide", "a / b", TWO(FLOAT_ARG), out_float, float_arith, OP_DIV),
    MATH_NODE("IntCompare", "Int Compare", "Compares a with b.",
              "{\"required\": {\"a\": " INT_ARG ", \"b\": " INT_ARG ", \"operation\": " CMP_ARG "}}", out_bool,
              compare, 0),
    MATH_NODE("FloatCompare", "Float Compare", "Compares a with b.",
              "{\"required\": {\"a\": " FLOAT_ARG ", \"b\": " FLOAT_ARG ", \"operation\": " CMP_ARG "}}", out_bool,
              compare, 1),
    MATH_NODE("IntToFloat", "Int to Float", "float(value)", "{\"required\": {\"value\": " INT_ARG "}}", out_float,
              int_to_float, 0),
    MATH_NODE("FloatToInt", "Float to Int", "int(value): the value truncated toward zero.",
              "{\"required\": {\"value\": " FLOAT_ARG "}}", out_int, float_to_int, 0),
};

int cd_nodes_math_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
