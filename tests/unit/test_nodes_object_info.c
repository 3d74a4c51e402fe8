/* Every built-in node that presents itself as a ComfyUI node (python_module outside
 * "comfyd.") must have the /object_info entry the real ComfyUI has, key for key, as recorded
 * in shared/reference/comfyui-core-nodes.json; comfyd's own nodes must not collide with a
 * ComfyUI name. */
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

/* The repository root is three levels above this file. */
static json_t *load_reference(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s", __FILE__);
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(path, '/');
        if (!slash) fail_msg("cannot find the repository root from %s", __FILE__);
        *slash = '\0';
    }
    size_t n = strlen(path);
    /* A copy of shared/reference/comfyui-core-nodes.json, so that a clone alone runs the tests. */
    snprintf(path + n, sizeof path - n, "/tests/fixtures/comfyui-core-nodes.json");
    /* The reference holds integers beyond 64 bits (a seed's max of 2^64 - 1), which jansson
     * reads only as reals; comfyd's entries go through the same reading before comparing. */
    json_error_t err;
    json_t *ref = json_load_file(path, JSON_DECODE_INT_AS_REAL, &err);
    if (!ref) fail_msg("cannot load %s: %s", path, err.text);
    return ref;
}

static void check_entry(const char *name, json_t *ours, json_t *theirs) {
    char *text = json_dumps(ours, JSON_COMPACT);
    assert_non_null(text);
    json_t *copy = json_loads(text, JSON_DECODE_INT_AS_REAL, NULL);
    free(text);
    assert_non_null(copy);
    if (!json_equal(copy, theirs)) {
        /* name the first key that differs */
        const char *key;
        json_t *v;
        json_object_foreach(theirs, key, v) {
            if (json_equal(v, json_object_get(copy, key))) continue;
            char *a = json_dumps(json_object_get(copy, key), JSON_ENCODE_ANY | JSON_COMPACT);
            char *b = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            print_error("%s.%s: comfyd %s, ComfyUI %s\n", name, key, a ? a : "(absent)", b);
            free(a);
            free(b);
        }
        json_object_foreach(copy, key, v) {
            if (!json_object_get(theirs, key)) print_error("%s.%s: comfyd has it, ComfyUI does not\n", name, key);
        }
        json_decref(copy);
        fail_msg("the /object_info entry of %s differs from ComfyUI's", name);
    }
    json_decref(copy);
}

static void test_builtin_object_info_matches_comfyui(void **state) {
    (void)state;
    json_t *ref = load_reference();
    cd_registry *reg = cd_registry_new();
    for (const cd_builtin_pack *p = cd_builtin_packs; p->init; p++)
        assert_true(cd_registry_add_pack(reg, p->name, p->module, p->init) > 0);
    size_t compared = 0, own = 0;
    for (size_t i = 0; i < cd_registry_count(reg); i++) {
        const cd_node_type *t = cd_registry_at(reg, i);
        const char *name = t->def->name;
        const char *module = json_string_value(json_object_get(t->info, "python_module"));
        assert_non_null(module);
        json_t *theirs = json_object_get(ref, name);
        if (!strncmp(module, "comfyd.", 7)) {
            if (theirs) fail_msg("comfyd's own node %s takes the name of a ComfyUI node", name);
            own++;
            continue;
        }
        if (!theirs) fail_msg("%s (%s) is not a node of the reference ComfyUI", name, module);
        if (!strcmp(name, "LoadImageMask")) {
            /* The snapshot shows `"channel": [[]]`, which no value could pass; ComfyUI's nodes.py
             * declares LoadImageMask._color_channels = ["alpha", "red", "green", "blue"]. */
            json_t *channel = json_object_get(json_object_get(json_object_get(theirs, "input"), "required"), "channel");
            json_array_set_new(channel, 0, json_pack("[ssss]", "alpha", "red", "green", "blue"));
        }
        if (!strcmp(name, "LoadImageDataSetFromFolder") || !strcmp(name, "LoadImageTextDataSetFromFolder")) {
            /* The snapshot's options are the subfolders of the reference machine's input/ ("3d",
             * which ComfyUI makes at start). comfyd declares none and lists its own input/ when
             * /object_info is asked (combo_options). */
            json_t *folder = json_object_get(json_object_get(json_object_get(theirs, "input"), "required"), "folder");
            json_object_set_new(json_array_get(folder, 1), "options", json_array());
        }
        check_entry(name, t->info, theirs);
        compared++;
    }
    /* the packs of this change: 1 + 11 + 2 + 8 ComfyUI nodes, 13 of comfyd's own */
    assert_true(compared >= 22);
    assert_true(own >= 13);
    cd_registry_free(reg);
    json_decref(ref);
}

/* The node names of this change, each registered and found in the reference or comfyd's own. */
static void test_expected_nodes_registered(void **state) {
    (void)state;
    static const char *names[] = {
        "PreviewAny", "StringConcatenate", "StringSubstring", "StringLength", "CaseConverter", "StringTrim",
        "StringReplace", "StringContains", "StringCompare", "RegexMatch", "RegexExtract", "RegexReplace",
        "ComfySwitchNode", "CustomCombo", "AddTextPrefix", "AddTextSuffix", "MergeTextLists", "ReplaceText",
        "StripWhitespace", "TextToLowercase", "TextToUppercase", "TruncateText", "IntAdd", "IntSubtract",
        "IntMultiply", "IntDivide", "IntModulo", "FloatAdd", "FloatSubtract", "FloatMultiply", "FloatDivide",
        "IntCompare", "FloatCompare", "IntToFloat", "FloatToInt",
    };
    cd_registry *reg = cd_registry_new();
    for (const cd_builtin_pack *p = cd_builtin_packs; p->init; p++) cd_registry_add_pack(reg, p->name, p->module, p->init);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (!cd_registry_get(reg, names[k])) fail_msg("%s is not registered", names[k]);
    const cd_node_type *t = cd_registry_get(reg, "IntAdd");
    assert_string_equal(json_string_value(json_object_get(t->info, "category")), "comfyd/math");
    assert_string_equal(json_string_value(json_object_get(t->info, "python_module")), "comfyd.nodes_math");
    cd_registry_free(reg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_object_info_matches_comfyui),
        cmocka_unit_test(test_expected_nodes_registered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
