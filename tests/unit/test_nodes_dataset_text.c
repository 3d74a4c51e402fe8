/* The dataset/text nodes (comfy_extras.nodes_dataset). As in ComfyUI, each call's output is a
 * one-element list (`NodeOutput([result])` with OUTPUT_IS_LIST None), MergeTextLists takes its
 * input as a whole list (INPUT_IS_LIST) and passes the list on as one value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>

#include "node_call.h"

int cd_nodes_dataset_text_init(cd_pack *pack);

static int setup(void **state) {
    cd_registry *reg = cd_registry_new();
    if (cd_registry_add_pack(reg, "dataset_text", "comfy_extras.nodes_dataset", cd_nodes_dataset_text_init) != 8)
        return -1;
    *state = reg;
    return 0;
}


/* The output is [expected]. */
static void expect_wrapped(run_t *r, const char *expected) {
    if (r->rc != CD_OK) fail_msg("failed: %s: %s", r->call.error_type, r->call.error_message);
    const cd_value *out = r->call.outputs[0];
    assert_int_equal(cd_value_kind_of(out), CD_VALUE_LIST);
    assert_int_equal(cd_value_list_len(out), 1);
    const char *got = cd_value_as_string(cd_value_list_at(out, 0));
    if (!got || strcmp(got, expected)) fail_msg("gave [\"%s\"], expected [\"%s\"]", got ? got : "?", expected);
    run_end(r);
}

static void expect_failure(run_t *r, const char *type, const char *message) {
    if (r->rc != CD_ERROR) fail_msg("succeeded, expected %s", type);
    assert_string_equal(r->call.error_type, type);
    assert_string_equal(r->call.error_message, message);
    run_end(r);
}

static cd_value *strings(int n, ...) {
    cd_value *l = cd_value_list_new((size_t)n);
    va_list ap;
    va_start(ap, n);
    for (int k = 0; k < n; k++) cd_value_list_push(l, cd_value_string(va_arg(ap, const char *)));
    va_end(ap);
    return l;
}

static void test_list_flags(void **state) {
    cd_registry *reg = *state;
    static const char *per_text[] = {"TextToLowercase", "TextToUppercase", "TruncateText", "AddTextPrefix",
                                     "AddTextSuffix", "ReplaceText", "StripWhitespace"};
    for (size_t k = 0; k < sizeof per_text / sizeof per_text[0]; k++) {
        const cd_node_type *t = cd_registry_get(reg, per_text[k]);
        assert_non_null(t);
        assert_false(t->def->flags & CD_NODE_INPUT_IS_LIST);
        assert_true(t->def->outputs[0].is_list <= 0); /* -1: "None" in ComfyUI, not a list */
    }
    const cd_node_type *merge = cd_registry_get(reg, "MergeTextLists");
    assert_true(merge->def->flags & CD_NODE_INPUT_IS_LIST);
    assert_true(merge->def->outputs[0].is_list <= 0);
}

static void test_per_text_nodes(void **state) {
    cd_registry *reg = *state;
    run_t r;
    run(&r, reg, "TextToLowercase", "texts", cd_value_string("HeLLo ΣΑΣ"), NULL);
    expect_wrapped(&r, "hello σας");
    run(&r, reg, "TextToUppercase", "texts", cd_value_string("straße"), NULL);
    expect_wrapped(&r, "STRASSE");
    run(&r, reg, "TruncateText", "texts", cd_value_string("héllo"), "max_length", cd_value_int(2), NULL);
    expect_wrapped(&r, "hé");
    run(&r, reg, "TruncateText", "texts", cd_value_string("héllo"), "max_length", cd_value_int(77), NULL);
    expect_wrapped(&r, "héllo");
    run(&r, reg, "AddTextPrefix", "texts", cd_value_string("cat"), "prefix", cd_value_string("a photo of a "), NULL);
    expect_wrapped(&r, "a photo of a cat");
    run(&r, reg, "AddTextSuffix", "texts", cd_value_string("cat"), "suffix", cd_value_string(", 4k"), NULL);
    expect_wrapped(&r, "cat, 4k");
    run(&r, reg, "ReplaceText", "texts", cd_value_string("aXbX"), "find", cd_value_string("X"), "replace",
        cd_value_string("-"), NULL);
    expect_wrapped(&r, "a-b-");
    run(&r, reg, "ReplaceText", "texts", cd_value_string("ab"), "find", cd_value_string(""), "replace",
        cd_value_string("."), NULL);
    expect_wrapped(&r, ".a.b.");
    run(&r, reg, "StripWhitespace", "texts", cd_value_string(" \t x y\u3000\n"), NULL);
    expect_wrapped(&r, "x y");
    run(&r, reg, "StripWhitespace", "texts", cd_value_string(""), NULL);
    expect_wrapped(&r, "");
    /* execute() unwraps one-element list arguments */
    run(&r, reg, "AddTextPrefix", "texts", cd_value_string("b"), "prefix", strings(1, "a"), NULL);
    expect_wrapped(&r, "ab");
}

static void test_merge(void **state) {
    cd_registry *reg = *state;
    run_t r;
    cd_value *texts = strings(3, "a", "b", "c");
    run(&r, reg, "MergeTextLists", "texts", texts, NULL);
    assert_int_equal(r.rc, CD_OK);
    assert_ptr_equal(r.call.outputs[0], texts); /* the whole list, as one value */
    run_end(&r);
}

/* What comes out of one of these nodes is a list; another one fails on it as Python does,
 * except text[:n], which slices the list. */
static void test_list_inputs(void **state) {
    cd_registry *reg = *state;
    run_t r;
    run(&r, reg, "TextToLowercase", "texts", strings(1, "A"), NULL);
    expect_failure(&r, "AttributeError", "'list' object has no attribute 'lower'");
    run(&r, reg, "StripWhitespace", "texts", cd_value_int(3), NULL);
    expect_failure(&r, "AttributeError", "'int' object has no attribute 'strip'");
    run(&r, reg, "AddTextPrefix", "texts", strings(1, "A"), "prefix", cd_value_string("x"), NULL);
    expect_failure(&r, "TypeError", "can only concatenate str (not \"list\") to str");
    run(&r, reg, "AddTextSuffix", "texts", strings(1, "A"), "suffix", cd_value_string("x"), NULL);
    expect_failure(&r, "TypeError", "can only concatenate list (not \"str\") to list");
    run(&r, reg, "TruncateText", "texts", strings(3, "a", "b", "c"), "max_length", cd_value_int(2), NULL);
    assert_int_equal(r.rc, CD_OK);
    const cd_value *out = r.call.outputs[0];
    assert_int_equal(cd_value_list_len(out), 1);
    const cd_value *part = cd_value_list_at(out, 0);
    assert_int_equal(cd_value_list_len(part), 2);
    assert_string_equal(cd_value_as_string(cd_value_list_at(part, 1)), "b");
    run_end(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_flags),
        cmocka_unit_test(test_per_text_nodes),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_list_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
