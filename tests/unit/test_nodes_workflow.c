/* The built-in packs in whole prompts: validated as POST /prompt does and run by the executor,
 * so what the node definitions declare (types, lazy inputs, INPUT_IS_LIST, user combos) is
 * seen to work with the engine, and PreviewAny's UI is what ComfyUI shows for these graphs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/executor.h"
#include "engine/registry.h"
#include "engine/validate.h"
#include "nodes/builtin.h"

typedef struct {
    cd_registry *reg;
    cd_executor *ex;
    json_t *executing; /* node ids that ran */
} fixture;

static void on_event(void *ctx, const char *type, json_t *data, const char *sid) {
    (void)sid;
    fixture *f = ctx;
    const char *node = json_string_value(json_object_get(data, "node"));
    if (!strcmp(type, "executing") && node) json_array_append_new(f->executing, json_string(node));
    json_decref(data);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->reg = cd_registry_new();
    for (const cd_builtin_pack *p = cd_builtin_packs; p->init; p++)
        if (cd_registry_add_pack(f->reg, p->name, p->module, p->init) <= 0) return -1;
    f->executing = json_array();
    cd_event_sink sink = {.ctx = f, .event = on_event};
    f->ex = cd_executor_new(f->reg, CD_CACHE_POLICY_NONE, 0, &sink);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    cd_executor_free(f->ex);
    cd_registry_free(f->reg);
    json_decref(f->executing);
    free(f);
    return 0;
}

/* Validates (unless output_id is given) and runs the prompt; fails the test on a validation
 * error or a node failure. */
static cd_exec_result run_prompt_to(fixture *f, const char *prompt_json, const char *output_id) {
    json_t *prompt = json_loads(prompt_json, 0, NULL);
    assert_non_null(prompt);
    cd_validation v = {0};
    json_t *outputs = json_array();
    if (output_id) {
        json_array_append_new(outputs, json_string(output_id));
    } else {
        assert_int_equal(cd_validate_prompt(f->reg, prompt, NULL, &v), 0);
        if (v.error) {
            char *e = json_dumps(v.error, JSON_COMPACT), *n = json_dumps(v.node_errors, JSON_COMPACT);
            fail_msg("the prompt was rejected: %s %s", e, n);
        }
        for (size_t i = 0; i < v.n_outputs; i++) json_array_append_new(outputs, json_string(v.outputs[i]));
    }
    json_t *extra = json_pack("{s:s}", "client_id", "c1"); /* `executing` goes to a client */
    json_array_clear(f->executing);
    cd_exec_request req = {.prompt_id = "p1", .prompt = prompt, .extra_data = extra, .outputs = outputs};
    cd_exec_result res;
    assert_int_equal(cd_executor_run(f->ex, &req, &res), 0);
    if (!res.success) {
        char *e = json_dumps(res.error, JSON_COMPACT);
        fail_msg("the prompt failed: %s", e);
    }
    if (!output_id) cd_validation_clear(&v);
    json_decref(prompt);
    json_decref(outputs);
    json_decref(extra);
    return res;
}

static cd_exec_result run_prompt(fixture *f, const char *prompt_json) { return run_prompt_to(f, prompt_json, NULL); }

static void expect_preview(cd_exec_result *res, const char *node, const char *expected) {
    json_t *text = json_object_get(json_object_get(res->outputs, node), "text");
    const char *got = json_string_value(json_array_get(text, 0));
    if (!got || strcmp(got, expected)) fail_msg("node %s shows \"%s\", expected \"%s\"", node, got ? got : "?", expected);
}

static int ran(const fixture *f, const char *node) {
    size_t i;
    json_t *id;
    json_array_foreach(f->executing, i, id) if (!strcmp(json_string_value(id), node)) return 1;
    return 0;
}

static void test_string_chain(void **state) {
    fixture *f = *state;
    cd_exec_result res = run_prompt(
        f, "{\"1\": {\"class_type\": \"PrimitiveString\", \"inputs\": {\"value\": \"Hello World\"}},"
           " \"2\": {\"class_type\": \"RegexReplace\", \"inputs\": {\"string\": [\"1\", 0], \"regex_pattern\": \"o\","
           "   \"replace\": \"0\"}},"
           " \"3\": {\"class_type\": \"StringConcatenate\", \"inputs\": {\"string_a\": [\"2\", 0], \"string_b\": \"!\","
           "   \"delimiter\": \"\"}},"
           " \"4\": {\"class_type\": \"CaseConverter\", \"inputs\": {\"string\": [\"3\", 0], \"mode\": \"UPPERCASE\"}},"
           " \"5\": {\"class_type\": \"PreviewAny\", \"inputs\": {\"source\": [\"4\", 0]}},"
           " \"6\": {\"class_type\": \"StringLength\", \"inputs\": {\"string\": [\"3\", 0]}},"
           " \"7\": {\"class_type\": \"PreviewAny\", \"inputs\": {\"source\": [\"6\", 0]}}}");
    expect_preview(&res, "5", "HELL0 W0RLD!");
    expect_preview(&res, "7", "12");
    cd_exec_result_clear(&res);
}

/* Only the selected branch runs: the other divides by zero. */
static void test_switch_is_lazy(void **state) {
    fixture *f = *state;
    cd_exec_result res = run_prompt(
        f, "{\"1\": {\"class_type\": \"IntAdd\", \"inputs\": {\"a\": 2, \"b\": 3}},"
           " \"2\": {\"class_type\": \"IntDivide\", \"inputs\": {\"a\": 1, \"b\": 0}},"
           " \"3\": {\"class_type\": \"IntCompare\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 4, \"operation\": \">\"}},"
           " \"4\": {\"class_type\": \"ComfySwitchNode\", \"inputs\": {\"switch\": [\"3\", 0], \"on_false\": [\"2\", 0],"
           "   \"on_true\": [\"1\", 0]}},"
           " \"5\": {\"class_type\": \"PreviewAny\", \"inputs\": {\"source\": [\"4\", 0]}}}");
    expect_preview(&res, "5", "5");
    assert_true(ran(f, "1"));
    assert_false(ran(f, "2"));
    cd_exec_result_clear(&res);
}

/* Each dataset text call outputs a one-element list, as in ComfyUI; PreviewAny shows it as
 * json.dumps does. */
static void test_dataset_text(void **state) {
    fixture *f = *state;
    cd_exec_result res = run_prompt(
        f, "{\"1\": {\"class_type\": \"PrimitiveString\", \"inputs\": {\"value\": \"  A Cat  \"}},"
           " \"2\": {\"class_type\": \"StripWhitespace\", \"inputs\": {\"texts\": [\"1\", 0]}},"
           " \"3\": {\"class_type\": \"PreviewAny\", \"inputs\": {\"source\": [\"2\", 0]}},"
           " \"4\": {\"class_type\": \"MergeTextLists\", \"inputs\": {\"texts\": [\"1\", 0]}},"
           " \"5\": {\"class_type\": \"PreviewAny\", \"inputs\": {\"source\": [\"4\", 0]}}}");
    expect_preview(&res, "3", "[\n    \"A Cat\"\n]");
    expect_preview(&res, "5", "[\n    \"  A Cat  \"\n]");
    cd_exec_result_clear(&res);
}

/* A user-written combo option passes validation. */
static void test_custom_combo(void **state) {
    fixture *f = *state;
    cd_exec_result res = run_prompt(
        f, "{\"1\": {\"class_type\": \"CustomCombo\", \"inputs\": {\"choice\": \"my option\"}},"
           " \"2\": {\"class_type\": \"PreviewAny\", \"inputs\": {\"source\": [\"1\", 0]}}}");
    expect_preview(&res, "2", "my option");
    cd_exec_result_clear(&res);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_chain),
        cmocka_unit_test(test_switch_is_lazy),
        cmocka_unit_test(test_dataset_text),
        cmocka_unit_test(test_custom_combo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
