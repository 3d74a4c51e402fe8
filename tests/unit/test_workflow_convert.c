/* UI-format to API-format conversion (server/workflow_convert.h) against the hand-written
 * fixtures in tests/fixtures/workflows/: each <name>.ui.json must convert to exactly
 * <name>.api.json with the built-in node packs as the registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/registry.h"
#include "nodes/builtin.h"
#include "server/workflow_convert.h"

static cd_registry *reg;

static int setup(void **state) {
    (void)state;
    reg = cd_registry_new();
    for (const cd_builtin_pack *p = cd_builtin_packs; p->init; p++)
        if (cd_registry_add_pack(reg, p->name, p->module, p->init) <= 0) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    cd_registry_free(reg);
    return 0;
}

/* The fixtures folder, found from this file's own path (CMake compiles with absolute paths). */
static json_t *load_fixture(const char *name) {
    char path[1024];
    const char *slash = strrchr(__FILE__, '/');
    snprintf(path, sizeof path, "%.*s/../fixtures/workflows/%s", (int)(slash - __FILE__), __FILE__, name);
    json_error_t e;
    json_t *v = json_load_file(path, 0, &e);
    if (!v) fail_msg("cannot load %s: %s", path, e.text);
    return v;
}

static void expect_conversion(const char *stem) {
    char ui_name[256], api_name[256];
    snprintf(ui_name, sizeof ui_name, "%s.ui.json", stem);
    snprintf(api_name, sizeof api_name, "%s.api.json", stem);
    json_t *ui = load_fixture(ui_name), *want = load_fixture(api_name), *got = NULL;
    char err[512] = "";
    assert_true(cd_workflow_is_ui_format(ui));
    assert_false(cd_workflow_is_ui_format(want));
    if (cd_workflow_to_api(reg, ui, &got, err, sizeof err) != 0) fail_msg("%s: %s", stem, err);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_INDENT(1) | JSON_SORT_KEYS);
        fail_msg("%s converted to\n%s", stem, g);
    }
    json_decref(ui);
    json_decref(want);
    json_decref(got);
}

static void test_basic(void **state) {
    (void)state;
    expect_conversion("basic");
}

static void test_mute_bypass(void **state) {
    (void)state;
    expect_conversion("mute_bypass");
}

static void test_reroute_primitive(void **state) {
    (void)state;
    expect_conversion("reroute_primitive");
}

static void test_unknown_node(void **state) {
    (void)state;
    json_t *ui = load_fixture("unknown_node.ui.json"), *got = NULL;
    char err[512] = "";
    assert_int_equal(cd_workflow_to_api(reg, ui, &got, err, sizeof err), -1);
    assert_null(got);
    assert_non_null(strstr(err, "FancySamplerThatDoesNotExist"));
    assert_non_null(strstr(err, "node 2"));
    json_decref(ui);
}

/* The version-1 schema writes links as objects; a workflow saved without the control value
 * (older frontends) still lines up; a bypassed node with no input of the right type cuts the
 * link, leaving the consumer's widget value. */
static void test_variants(void **state) {
    (void)state;
    const char *text =
        "{\"nodes\": ["
        " {\"id\": 1, \"type\": \"PrimitiveInt\", \"mode\": 0, \"widgets_values\": [5],"
        "  \"outputs\": [{\"name\": \"INT\", \"type\": \"INT\", \"links\": [1]}]},"
        " {\"id\": 2, \"type\": \"IntToFloat\", \"mode\": 0, \"widgets_values\": [0],"
        "  \"inputs\": [{\"name\": \"value\", \"type\": \"INT\", \"widget\": {\"name\": \"value\"}, \"link\": 1}]},"
        " {\"id\": 3, \"type\": \"StringLength\", \"mode\": 4, \"widgets_values\": [\"x\"],"
        "  \"inputs\": [{\"name\": \"string\", \"type\": \"STRING\", \"widget\": {\"name\": \"string\"}, \"link\": null}]},"
        " {\"id\": 4, \"type\": \"FloatToInt\", \"mode\": 0, \"widgets_values\": [2.5],"
        "  \"inputs\": [{\"name\": \"value\", \"type\": \"FLOAT\", \"widget\": {\"name\": \"value\"}, \"link\": 2}]}],"
        " \"links\": [{\"id\": 1, \"origin_id\": 1, \"origin_slot\": 0, \"target_id\": 2, \"target_slot\": 0, \"type\": \"INT\"},"
        "            {\"id\": 2, \"origin_id\": 3, \"origin_slot\": 0, \"target_id\": 4, \"target_slot\": 0, \"type\": \"INT\"}],"
        " \"version\": 0.4}";
    json_t *ui = json_loads(text, 0, NULL), *got = NULL;
    assert_non_null(ui);
    char err[512] = "";
    if (cd_workflow_to_api(reg, ui, &got, err, sizeof err) != 0) fail_msg("%s", err);
    json_t *want = json_loads("{\"1\": {\"inputs\": {\"value\": 5}, \"class_type\": \"PrimitiveInt\", \"_meta\": {\"title\": \"Int\"}},"
                              " \"2\": {\"inputs\": {\"value\": [\"1\", 0]}, \"class_type\": \"IntToFloat\", \"_meta\": {\"title\": \"Int to Float\"}},"
                              " \"4\": {\"inputs\": {\"value\": 2.5}, \"class_type\": \"FloatToInt\", \"_meta\": {\"title\": \"Float to Int\"}}}",
                              0, NULL);
    if (!json_equal(got, want)) fail_msg("got %s", json_dumps(got, JSON_SORT_KEYS));
    json_decref(ui);
    json_decref(got);
    json_decref(want);
}

static void test_malformed(void **state) {
    (void)state;
    json_t *got = NULL;
    char err[256];
    const char *bad[] = {"{}", "{\"nodes\": {}}", "[]", "{\"nodes\": [{\"type\": \"IntAdd\"}]}",
                         "{\"nodes\": [], \"links\": {}}", "{\"nodes\": [], \"links\": [[1, 2]]}",
                         "{\"nodes\": [{\"id\": 1, \"type\": \"IntAdd\"}, {\"id\": 1, \"type\": \"IntAdd\"}]}",
                         "{\"nodes\": [{\"id\": 1}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *doc = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        err[0] = '\0';
        assert_int_equal(cd_workflow_to_api(reg, doc, &got, err, sizeof err), -1);
        assert_null(got);
        assert_true(err[0] != '\0');
        json_decref(doc);
    }
    /* a cycle of reroutes ends instead of looping */
    json_t *cyc = json_loads("{\"nodes\": [{\"id\": 1, \"type\": \"Reroute\", \"inputs\": [{\"name\": \"\", \"type\": \"*\", \"link\": 1}]},"
                             " {\"id\": 2, \"type\": \"PreviewAny\", \"inputs\": [{\"name\": \"source\", \"type\": \"*\", \"link\": 1}]}],"
                             " \"links\": [[1, 1, 0, 1, 0, \"*\"]]}", 0, NULL);
    assert_int_equal(cd_workflow_to_api(reg, cyc, &got, err, sizeof err), 0);
    assert_int_equal(json_object_size(json_object_get(json_object_get(got, "2"), "inputs")), 0);
    json_decref(got);
    json_decref(cyc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),          cmocka_unit_test(test_mute_bypass),
        cmocka_unit_test(test_reroute_primitive), cmocka_unit_test(test_unknown_node),
        cmocka_unit_test(test_variants),       cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
