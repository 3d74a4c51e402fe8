/* comfyd's math nodes: Python's results for // % int(), and errors instead of overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "node_call.h"

int cd_nodes_math_init(cd_pack *pack);

static int setup(void **state) {
    cd_registry *reg = cd_registry_new();
    if (cd_registry_add_pack(reg, "math", "comfyd.nodes_math", cd_nodes_math_init) != 13) return -1;
    *state = reg;
    return 0;
}


static void int_op(const cd_registry *reg, const char *node, int64_t a, int64_t b, int64_t expected) {
    run_t r;
    run(&r, reg, node, "a", cd_value_int(a), "b", cd_value_int(b), NULL);
    if (r.rc != CD_OK) fail_msg("%s(%lld, %lld) failed: %s", node, (long long)a, (long long)b, r.call.error_message);
    assert_int_equal(cd_value_kind_of(r.call.outputs[0]), CD_VALUE_INT);
    if (cd_value_as_int(r.call.outputs[0]) != expected)
        fail_msg("%s(%lld, %lld) = %lld, expected %lld", node, (long long)a, (long long)b,
                 (long long)cd_value_as_int(r.call.outputs[0]), (long long)expected);
    run_end(&r);
}

static void int_fails(const cd_registry *reg, const char *node, int64_t a, int64_t b, const char *type,
                      const char *message) {
    run_t r;
    run(&r, reg, node, "a", cd_value_int(a), "b", cd_value_int(b), NULL);
    if (r.rc != CD_ERROR) fail_msg("%s(%lld, %lld) did not fail", node, (long long)a, (long long)b);
    assert_string_equal(r.call.error_type, type);
    if (message) assert_string_equal(r.call.error_message, message);
    run_end(&r);
}

static void float_op(const cd_registry *reg, const char *node, double a, double b, double expected) {
    run_t r;
    run(&r, reg, node, "a", cd_value_float(a), "b", cd_value_float(b), NULL);
    assert_int_equal(r.rc, CD_OK);
    assert_int_equal(cd_value_kind_of(r.call.outputs[0]), CD_VALUE_FLOAT);
    double got = cd_value_as_float(r.call.outputs[0]);
    if (!(got == expected || (isnan(got) && isnan(expected))))
        fail_msg("%s(%g, %g) = %.17g, expected %.17g", node, a, b, got, expected);
    run_end(&r);
}

static void test_int_arithmetic(void **state) {
    cd_registry *reg = *state;
    int_op(reg, "IntAdd", 2, 3, 5);
    int_op(reg, "IntAdd", INT64_MAX, INT64_MIN, -1);
    int_fails(reg, "IntAdd", INT64_MAX, 1, "OverflowError", NULL);
    int_op(reg, "IntSubtract", 5, 7, -2);
    int_fails(reg, "IntSubtract", INT64_MIN, 1, "OverflowError", NULL);
    int_op(reg, "IntMultiply", 3, -4, -12);
    int_fails(reg, "IntMultiply", INT64_MAX, 2, "OverflowError", NULL);
    int_fails(reg, "IntMultiply", INT64_MIN, -1, "OverflowError", NULL);
}

static void test_int_division(void **state) {
    cd_registry *reg = *state;
    /* Python's //: floor */
    int_op(reg, "IntDivide", 7, 2, 3);
    int_op(reg, "IntDivide", -7, 2, -4);
    int_op(reg, "IntDivide", 7, -2, -4);
    int_op(reg, "IntDivide", -7, -2, 3);
    int_op(reg, "IntDivide", 6, -3, -2);
    int_op(reg, "IntDivide", 0, 5, 0);
    int_op(reg, "IntDivide", INT64_MIN, 1, INT64_MIN);
    int_op(reg, "IntDivide", INT64_MIN, 2, INT64_MIN / 2);
    int_fails(reg, "IntDivide", 1, 0, "ZeroDivisionError", "integer division or modulo by zero");
    int_fails(reg, "IntDivide", INT64_MIN, -1, "OverflowError", NULL);
    /* Python's %: the sign of the divisor */
    int_op(reg, "IntModulo", 7, 3, 1);
    int_op(reg, "IntModulo", -7, 3, 2);
    int_op(reg, "IntModulo", 7, -3, -2);
    int_op(reg, "IntModulo", -7, -3, -1);
    int_op(reg, "IntModulo", 6, 3, 0);
    int_op(reg, "IntModulo", INT64_MIN, -1, 0);
    int_op(reg, "IntModulo", INT64_MIN, INT64_MAX, INT64_MAX - 1);
    int_fails(reg, "IntModulo", 1, 0, "ZeroDivisionError", "integer division or modulo by zero");
}

static void test_float_arithmetic(void **state) {
    cd_registry *reg = *state;
    float_op(reg, "FloatAdd", 0.1, 0.2, 0.30000000000000004);
    float_op(reg, "FloatAdd", 1e308, 1e308, INFINITY);
    float_op(reg, "FloatSubtract", 1.5, 2.25, -0.75);
    float_op(reg, "FloatMultiply", -2.0, 0.5, -1.0);
    float_op(reg, "FloatDivide", 1.0, 3.0, 1.0 / 3.0);
    float_op(reg, "FloatDivide", -1.0, 8.0, -0.125);
    run_t r;
    run(&r, reg, "FloatDivide", "a", cd_value_float(1.0), "b", cd_value_float(0.0), NULL);
    assert_int_equal(r.rc, CD_ERROR);
    assert_string_equal(r.call.error_type, "ZeroDivisionError");
    assert_string_equal(r.call.error_message, "float division by zero");
    run_end(&r);
}

static int compare(const cd_registry *reg, const char *node, cd_value *a, cd_value *b, const char *op) {
    run_t r;
    run(&r, reg, node, "a", a, "b", b, "operation", cd_value_string(op), NULL);
    assert_int_equal(r.rc, CD_OK);
    assert_int_equal(cd_value_kind_of(r.call.outputs[0]), CD_VALUE_BOOL);
    int v = cd_value_as_bool(r.call.outputs[0]);
    run_end(&r);
    return v;
}

static void test_compare(void **state) {
    cd_registry *reg = *state;
    static const char *ops[] = {"==", "!=", "<", "<=", ">", ">="};
    static const int lt[] = {0, 1, 1, 1, 0, 0}, eq[] = {1, 0, 0, 1, 0, 1}, gt[] = {0, 1, 0, 0, 1, 1};
    for (int k = 0; k < 6; k++) {
        assert_int_equal(compare(reg, "IntCompare", cd_value_int(-3), cd_value_int(2), ops[k]), lt[k]);
        assert_int_equal(compare(reg, "IntCompare", cd_value_int(INT64_MAX), cd_value_int(INT64_MAX), ops[k]), eq[k]);
        assert_int_equal(compare(reg, "IntCompare", cd_value_int(2), cd_value_int(INT64_MIN), ops[k]), gt[k]);
        assert_int_equal(compare(reg, "FloatCompare", cd_value_float(0.1), cd_value_float(0.2), ops[k]), lt[k]);
        assert_int_equal(compare(reg, "FloatCompare", cd_value_float(-0.0), cd_value_float(0.0), ops[k]), eq[k]);
        /* NaN compares unequal to everything, itself included */
        assert_int_equal(compare(reg, "FloatCompare", cd_value_float(NAN), cd_value_float(NAN), ops[k]), k == 1);
    }
    run_t r;
    run(&r, reg, "IntCompare", "a", cd_value_int(1), "b", cd_value_int(1), "operation", cd_value_string("<>"), NULL);
    assert_int_equal(r.rc, CD_ERROR);
    assert_string_equal(r.call.error_type, "ValueError");
    run_end(&r);
}

static void test_conversions(void **state) {
    cd_registry *reg = *state;
    run_t r;
    run(&r, reg, "IntToFloat", "value", cd_value_int(-3), NULL);
    assert_int_equal(cd_value_kind_of(r.call.outputs[0]), CD_VALUE_FLOAT);
    assert_true(cd_value_as_float(r.call.outputs[0]) == -3.0);
    run_end(&r);
    static const struct {
        double in;
        int64_t out;
    } ok[] = {{2.7, 2}, {-2.7, -2}, {0.999, 0}, {-0.0, 0}, {1e18, 1000000000000000000}, {-9223372036854775808.0, INT64_MIN}};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        run(&r, reg, "FloatToInt", "value", cd_value_float(ok[k].in), NULL);
        assert_int_equal(r.rc, CD_OK);
        assert_int_equal(cd_value_kind_of(r.call.outputs[0]), CD_VALUE_INT);
        assert_int_equal(cd_value_as_int(r.call.outputs[0]), ok[k].out);
        run_end(&r);
    }
    static const struct {
        double in;
        const char *type, *message;
    } bad[] = {{NAN, "ValueError", "cannot convert float NaN to integer"},
               {INFINITY, "OverflowError", "cannot convert float infinity to integer"},
               {-INFINITY, "OverflowError", "cannot convert float infinity to integer"},
               {9223372036854775808.0, "OverflowError", NULL},
               {-1e19, "OverflowError", NULL}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        run(&r, reg, "FloatToInt", "value", cd_value_float(bad[k].in), NULL);
        assert_int_equal(r.rc, CD_ERROR);
        assert_string_equal(r.call.error_type, bad[k].type);
        if (bad[k].message) assert_string_equal(r.call.error_message, bad[k].message);
        run_end(&r);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_arithmetic), cmocka_unit_test(test_int_division),
        cmocka_unit_test(test_float_arithmetic), cmocka_unit_test(test_compare),
        cmocka_unit_test(test_conversions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
