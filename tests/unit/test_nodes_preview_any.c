/* PreviewAny: the UI text is what ComfyUI's Python prints (str() for numbers, json.dumps with
 * indent=4 for lists and dicts, str() when JSON cannot hold the value). Expected texts were
 * produced with Python. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/call.h"
#include "engine/registry.h"

int cd_nodes_preview_any_init(cd_pack *pack);

static int setup(void **state) {
    cd_registry *reg = cd_registry_new();
    if (cd_registry_add_pack(reg, "preview_any", "comfy_extras.nodes_preview_any", cd_nodes_preview_any_init) != 1)
        return -1;
    *state = reg;
    return 0;
}

static int teardown(void **state) {
    cd_registry_free(*state);
    return 0;
}

/* Runs PreviewAny on v (consumed; NULL: no input) and checks the UI is {"text": [expected]}. */
static void expect_text_at(int line, const cd_registry *reg, cd_value *v, const char *expected) {
    const cd_node_type *t = cd_registry_get(reg, "PreviewAny");
    assert_non_null(t);
    cd_node_call call;
    cd_call_init(&call, t, NULL, "1", 0);
    if (v) cd_call_add_input(&call, "source", v, NULL);
    int rc = t->def->execute(&call);
    if (rc != CD_OK) fail_msg("line %d: PreviewAny failed: %s", line, call.error_message);
    json_t *text = json_object_get(call.ui, "text");
    if (json_object_size(call.ui) != 1 || json_array_size(text) != 1)
        fail_msg("line %d: the UI is not {\"text\": [...]}", line);
    const char *got = json_string_value(json_array_get(text, 0));
    if (!got || strcmp(got, expected)) fail_msg("line %d: PreviewAny shows \"%s\", expected \"%s\"", line, got, expected);
    cd_call_clear(&call);
    cd_value_unref(v);
}

#define EXPECT_TEXT(v, expected) expect_text_at(__LINE__, reg, v, expected)

static cd_value *list_of(int n, ...) {
    cd_value *l = cd_value_list_new((size_t)n);
    va_list ap;
    va_start(ap, n);
    for (int k = 0; k < n; k++) cd_value_list_push(l, va_arg(ap, cd_value *));
    va_end(ap);
    return l;
}

static void test_definition(void **state) {
    const cd_node_type *t = cd_registry_get(*state, "PreviewAny");
    assert_true(cd_node_type_is_output(t));
    assert_int_equal(t->def->n_outputs, 0);
}

static void test_scalars(void **state) {
    cd_registry *reg = *state;
    EXPECT_TEXT(cd_value_string("hello\nworld"), "hello\nworld"); /* strings as they are */
    EXPECT_TEXT(cd_value_string("é😀"), "é😀");
    EXPECT_TEXT(cd_value_string(""), "");
    EXPECT_TEXT(cd_value_int(-42), "-42");
    EXPECT_TEXT(cd_value_bool(1), "True");
    EXPECT_TEXT(cd_value_bool(0), "False");
    EXPECT_TEXT(cd_value_none(), "None");
    EXPECT_TEXT(NULL, "None");
}

static void test_float_str(void **state) {
    cd_registry *reg = *state;
    EXPECT_TEXT(cd_value_float(1.0), "1.0");
    EXPECT_TEXT(cd_value_float(0.1), "0.1");
    EXPECT_TEXT(cd_value_float(1e16), "1e+16");
    EXPECT_TEXT(cd_value_float(1e15), "1000000000000000.0");
    EXPECT_TEXT(cd_value_float(1.5e-05), "1.5e-05");
    EXPECT_TEXT(cd_value_float(1e-4), "0.0001");
    EXPECT_TEXT(cd_value_float(-0.0), "-0.0");
    EXPECT_TEXT(cd_value_float(100.0), "100.0");
    EXPECT_TEXT(cd_value_float(123456789012345678.0), "1.2345678901234568e+17");
    EXPECT_TEXT(cd_value_float(5e-324), "5e-324");
    EXPECT_TEXT(cd_value_float(1.7976931348623157e308), "1.7976931348623157e+308");
    EXPECT_TEXT(cd_value_float(NAN), "nan");
    EXPECT_TEXT(cd_value_float(INFINITY), "inf");
    EXPECT_TEXT(cd_value_float(-INFINITY), "-inf");
}

static void test_json_dumps(void **state) {
    cd_registry *reg = *state;
    EXPECT_TEXT(list_of(5, cd_value_int(1), cd_value_string("a"), cd_value_float(2.5), cd_value_none(), cd_value_bool(1)),
                "[\n    1,\n    \"a\",\n    2.5,\n    null,\n    true\n]");
    EXPECT_TEXT(cd_value_json("{\"a\": [1, 2], \"b\": {}, \"c\": \"\\u00e9\"}"),
                "{\n    \"a\": [\n        1,\n        2\n    ],\n    \"b\": {},\n    \"c\": \"\\u00e9\"\n}");
    EXPECT_TEXT(list_of(3, cd_value_float(NAN), cd_value_float(INFINITY), cd_value_float(-INFINITY)),
                "[\n    NaN,\n    Infinity,\n    -Infinity\n]");
    EXPECT_TEXT(list_of(0), "[]");
    EXPECT_TEXT(cd_value_json("[]"), "[]");
    EXPECT_TEXT(list_of(4, cd_value_string("😀"), cd_value_string("tab\there"), cd_value_string("\x7f"),
                        cd_value_string("/")),
                "[\n    \"\\ud83d\\ude00\",\n    \"tab\\there\",\n    \"\\u007f\",\n    \"/\"\n]");
    /* JSON reals are printed the Python way, not as jansson stores them ("0.10000000000000001") */
    EXPECT_TEXT(cd_value_json("[0.1, 1e16, 1.5e-05, -0.0, 123456789.0, 1e22]"),
                "[\n    0.1,\n    1e+16,\n    1.5e-05,\n    -0.0,\n    123456789.0,\n    1e+22\n]");
    EXPECT_TEXT(cd_value_json("[[], [[]]]"), "[\n    [],\n    [\n        []\n    ]\n]");
    EXPECT_TEXT(list_of(2, cd_value_json("{\"x\": true}"), cd_value_link("5", 1)),
                "[\n    {\n        \"x\": true\n    },\n    [\n        \"5\",\n        1\n    ]\n]");
}

/* json.dumps raises on objects it does not know: str() of the list, objects as "<TYPE>". */
static void test_str_fallback(void **state) {
    cd_registry *reg = *state;
    EXPECT_TEXT(list_of(9, cd_value_int(1), cd_value_string("a"), cd_value_string("it's"), cd_value_string("q\""),
                        cd_value_float(2.5), cd_value_none(), cd_value_bool(1), cd_value_json("{\"k\": [1]}"),
                        cd_value_opaque("IMAGE", NULL, NULL)),
                "[1, 'a', \"it's\", 'q\"', 2.5, None, True, {'k': [1]}, <IMAGE>]");
    EXPECT_TEXT(cd_value_opaque("MODEL", NULL, NULL), "<MODEL>");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definition), cmocka_unit_test(test_scalars),      cmocka_unit_test(test_float_str),
        cmocka_unit_test(test_json_dumps), cmocka_unit_test(test_str_fallback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
