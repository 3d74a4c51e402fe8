/* Prompt validation against ComfyUI's contract (API reference §5): every error type with its
 * exact JSON, the conversions written back into the prompt, partial validity, cycles, a
 * 100,000-node chain, and garbage that must give errors rather than crashes.
 *
 * Expected JSON is written with ` for " to keep it readable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "engine/registry.h"
#include "engine/validate.h"

/* ---- the test pack ---- */

static int nop_exec(cd_node_call *c) {
    (void)c;
    return CD_OK;
}

/* VALIDATE_INPUTS(a): a == 7 fails with a reason, a == 8 without one. */
static int validate_a(cd_node_call *c) {
    const cd_value *a = cd_call_input(c, "a");
    if (a && cd_value_as_int(a) == 7) return cd_call_fail(c, NULL, "a is seven");
    if (a && cd_value_as_int(a) == 8) return CD_ERROR;
    return CD_OK;
}

/* VALIDATE_INPUTS(**kwargs): b == 7.0 fails; the hidden unique id must arrive. */
static int validate_kwargs(cd_node_call *c) {
    const cd_value *b = cd_call_input(c, "b");
    if (!cd_call_string(c, "uid", NULL)) return cd_call_fail(c, NULL, "no uid");
    if (b && cd_value_kind_of(b) == CD_VALUE_FLOAT && cd_value_as_float(b) == 7.0)
        return cd_call_fail(c, NULL, "b is seven");
    return CD_OK;
}

/* VALIDATE_INPUTS(input_types, a): an INT link is refused, constants must be floats. */
static int validate_types(cd_node_call *c) {
    const char *type = cd_call_input_type(c, "a");
    if (type && !strcmp(type, "INT")) return cd_call_fail(c, NULL, "bad type %s", type);
    const cd_value *a = cd_call_input(c, "a");
    if (a && cd_value_kind_of(a) != CD_VALUE_FLOAT) return cd_call_fail(c, NULL, "not a float");
    return CD_OK;
}

static int validate_never(cd_node_call *c) { return cd_call_fail(c, NULL, "nope"); }

/* VALIDATE_INPUTS(a, b, uid) of an INPUT_IS_LIST node: every argument is a one-element list,
 * [constant] or [None] for a link; a == 7 fails. The failure message says what arrived. */
static int validate_list(cd_node_call *c) {
    static const char *names[] = {"a", "b", "uid"};
    for (size_t k = 0; k < 3; k++) {
        const cd_value *v = cd_call_input(c, names[k]);
        if (!v) continue;
        if (cd_value_kind_of(v) != CD_VALUE_LIST) return cd_call_fail(c, NULL, "%s is not a list", names[k]);
        if (cd_value_list_len(v) != 1) return cd_call_fail(c, NULL, "%s has %zu items", names[k], cd_value_list_len(v));
    }
    const cd_value *a = cd_call_input(c, "a"), *b = cd_call_input(c, "b"), *uid = cd_call_input(c, "uid");
    if (!uid || strcmp(cd_value_as_string(cd_value_list_at(uid, 0)) ? cd_value_as_string(cd_value_list_at(uid, 0)) : "", "2"))
        return cd_call_fail(c, NULL, "uid is not [2]");
    const cd_value *a0 = a ? cd_value_list_at(a, 0) : NULL, *b0 = b ? cd_value_list_at(b, 0) : NULL;
    if (a0 && cd_value_kind_of(a0) == CD_VALUE_INT && cd_value_as_int(a0) == 7) return cd_call_fail(c, NULL, "a is [7]");
    if (b0 && cd_value_kind_of(b0) == CD_VALUE_NONE) return cd_call_fail(c, NULL, "b is [None]");
    return CD_OK;
}

/* combo_options: the list a node gives when asked replaces the declared one. */
static char *live_choices(cd_node_call *c, const char *input) {
    (void)c;
    return strcmp(input, "choice") ? NULL : strdup("[\"live1\", \"live2\"]");
}

static const cd_output_def o_int[] = {{"INT", NULL, 0, NULL, NULL}};
static const cd_output_def o_float[] = {{"FLOAT", NULL, 0, NULL, NULL}};
static const cd_output_def o_string[] = {{"STRING", NULL, 0, NULL, NULL}};
static const cd_output_def o_bool[] = {{"BOOLEAN", NULL, 0, NULL, NULL}};
static const cd_output_def o_any[] = {{"*", NULL, 0, NULL, NULL}};
static const cd_output_def o_image[] = {{"IMAGE", NULL, 0, NULL, NULL}};
static const cd_output_def o_mask[] = {{"MASK", NULL, 0, NULL, NULL}};
static const cd_output_def o_combo[] = {{"[\"a\", \"b\"]", NULL, 0, NULL, NULL}};

#define DEF(NAME, INPUTS, OUTS, NOUT, FLAGS, ...)                                                                    \
    {.abi_version = CD_NODE_ABI_VERSION, .name = NAME, .inputs = INPUTS, .outputs = OUTS, .n_outputs = NOUT,        \
     .flags = FLAGS, .execute = nop_exec, __VA_ARGS__}

static const cd_node_def defs[] = {
    DEF("VInt", "{\"required\": {\"value\": [\"INT\", {\"default\": 0, \"min\": 1, \"max\": 10}]}}", o_int, 1, 0),
    DEF("VIntFree", "{\"required\": {\"value\": [\"INT\", {}]}}", o_int, 1, 0),
    DEF("VFloat", "{\"required\": {\"value\": [\"FLOAT\", {\"min\": 0.5, \"max\": 1.0}]}}", o_float, 1, 0),
    DEF("VFloatFree", "{\"required\": {\"value\": [\"FLOAT\"]}}", o_float, 1, 0),
    DEF("VString", "{\"required\": {\"value\": [\"STRING\", {\"multiline\": false}]}}", o_string, 1, 0),
    DEF("VBool", "{\"required\": {\"value\": [\"BOOLEAN\", {\"default\": true}]}}", o_bool, 1, 0),
    DEF("VCombo", "{\"required\": {\"choice\": [[\"a\", \"b\", 1]]}}", o_string, 1, 0),
    DEF("VBigCombo",
        "{\"required\": {\"choice\": [[\"c0\", \"c1\", \"c2\", \"c3\", \"c4\", \"c5\", \"c6\", \"c7\", \"c8\", \"c9\", "
        "\"c10\", \"c11\", \"c12\", \"c13\", \"c14\", \"c15\", \"c16\", \"c17\", \"c18\", \"c19\", \"c20\", \"c21\", "
        "\"c22\", \"c23\", \"c24\"]]}}",
        o_string, 1, 0),
    DEF("VComboV3", "{\"required\": {\"choice\": [\"COMBO\", {\"multiselect\": false, \"options\": [\"x\", \"y\", 2]}]}}",
        o_string, 1, 0),
    DEF("VComboV3Empty", "{\"required\": {\"choice\": [\"COMBO\", {\"tooltip\": \"no options\"}]}}", o_string, 1, 0),
    DEF("VComboV3Big",
        "{\"required\": {\"choice\": [\"COMBO\", {\"options\": [\"c0\", \"c1\", \"c2\", \"c3\", \"c4\", \"c5\", \"c6\", "
        "\"c7\", \"c8\", \"c9\", \"c10\", \"c11\", \"c12\", \"c13\", \"c14\", \"c15\", \"c16\", \"c17\", \"c18\", "
        "\"c19\", \"c20\"]}]}}",
        o_string, 1, 0),
    DEF("VComboV3Live", "{\"required\": {\"choice\": [\"COMBO\", {\"options\": [\"declared\"]}]}}", o_string, 1, 0,
        .combo_options = live_choices),
    DEF("VComboLive", "{\"required\": {\"choice\": [[\"declared\"]]}}", o_string, 1, 0, .combo_options = live_choices),
    DEF("VAny", "{\"required\": {\"value\": [\"*\"]}}", o_any, 1, 0),
    DEF("VImageMask", "{\"required\": {\"image\": [\"IMAGE,MASK\"]}}", o_image, 1, 0),
    DEF("VImage", "{}", o_image, 1, 0),
    DEF("VMask", "{}", o_mask, 1, 0),
    DEF("VComboOut", "{}", o_combo, 1, 0),
    DEF("VOut", "{\"required\": {\"value\": [\"*\"]}}", NULL, 0, CD_NODE_OUTPUT),
    DEF("VPassOut", "{\"required\": {\"value\": [\"*\"]}}", o_any, 1, CD_NODE_OUTPUT),
    DEF("VImageOut", "{\"required\": {\"images\": [\"IMAGE\"]}}", NULL, 0, CD_NODE_OUTPUT),
    DEF("VValidate", "{\"required\": {\"a\": [\"INT\", {\"min\": 0, \"max\": 10}], \"b\": [\"INT\", {\"min\": 0, \"max\": 10}]}}",
        o_int, 1, 0, .validate_inputs = validate_a, .validate_inputs_args = "a"),
    DEF("VValidateKw",
        "{\"required\": {\"a\": [\"INT\", {\"min\": 0, \"max\": 1}], \"b\": [\"FLOAT\", {}]}, \"hidden\": {\"uid\": "
        "\"UNIQUE_ID\"}}",
        o_int, 1, 0, .validate_inputs = validate_kwargs, .validate_inputs_args = "**kwargs"),
    DEF("VValidateTypes", "{\"required\": {\"a\": [\"IMAGE,FLOAT\"]}}", o_image, 1, 0, .validate_inputs = validate_types,
        .validate_inputs_args = "input_types, a"),
    DEF("VValidateNone", "{\"required\": {\"a\": [\"INT\"]}}", o_int, 1, 0, .validate_inputs = validate_never),
    DEF("VValidateList",
        "{\"required\": {\"a\": [\"INT\", {\"max\": 10}]}, \"optional\": {\"b\": [\"INT\"]}, \"hidden\": "
        "{\"uid\": \"UNIQUE_ID\"}}",
        o_int, 1, CD_NODE_INPUT_IS_LIST, .validate_inputs = validate_list, .validate_inputs_args = "a, b, uid"),
    DEF("VLazy", "{\"required\": {\"x\": [\"INT\", {\"lazy\": true}], \"y\": [\"INT\", {}]}}", o_int, 1, 0),
    DEF("VHidden", "{\"required\": {\"value\": [\"INT\", {}]}, \"hidden\": {\"prompt\": \"PROMPT\", \"uid\": \"UNIQUE_ID\"}}",
        o_int, 1, 0),
    DEF("VInt64", "{\"required\": {\"value\": [\"INT\", {\"min\": -9223372036854775808, \"max\": 9223372036854775807}]}}",
        o_int, 1, 0),
    DEF("VChain", "{\"optional\": {\"prev\": [\"INT\", {}]}}", o_int, 1, 0),
    DEF("VOpt", "{\"required\": {\"a\": [\"INT\"]}, \"optional\": {\"b\": [\"INT\", {\"min\": 5}]}}", o_int, 1, 0),
};

static int pack_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) assert_int_equal(cd_pack_register(pack, &defs[i]), CD_OK);
    return CD_OK;
}

static cd_registry *reg;

static int setup(void **state) {
    (void)state;
    reg = cd_registry_new();
    return cd_registry_add_pack(reg, "vtest", "custom_nodes.vtest", pack_init) > 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    cd_registry_free(reg);
    return 0;
}

/* ---- helpers ---- */

/* JSON text with ` for ". */
static json_t *J(const char *text) {
    char *s = strdup(text);
    for (char *p = s; *p; p++)
        if (*p == '`') *p = '"';
    json_error_t e;
    json_t *j = strstr(s, "\\u0000") ? json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e)
                                      : cd_json_loadb_bigint(s, strlen(s), JSON_DECODE_ANY, &e); /* as POST /prompt */
    if (!j) print_error("bad test JSON (%s): %s\n", e.text, s);
    free(s);
    assert_non_null(j);
    return j;
}

static void check_json(const char *what, const json_t *got, const char *expected) {
    json_t *exp = expected ? J(expected) : NULL;
    bool same = (!exp && !got) || (exp && got && json_equal(got, exp));
    if (!same) {
        char *g = got ? json_dumps(got, JSON_ENCODE_ANY) : strdup("NULL");
        char *e = exp ? json_dumps(exp, JSON_ENCODE_ANY) : strdup("NULL");
        print_error("%s:\n  got:      %s\n  expected: %s\n", what, g, e);
        free(g);
        free(e);
    }
    json_decref(exp);
    assert_true(same);
}

static json_t *outputs_json(const cd_validation *v) {
    json_t *a = json_array();
    for (size_t i = 0; i < v->n_outputs; i++) json_array_append_new(a, json_string(v->outputs[i]));
    return a;
}

/* Validates prompt_text (with targets, may be NULL) and compares the error, node_errors,
 * outputs and, when given, the prompt after conversion. NULL error means accepted. */
static void expect(const char *prompt_text, const char *targets, const char *error, const char *node_errors,
                   const char *outputs, const char *prompt_after) {
    json_t *p = J(prompt_text);
    json_t *t = targets ? J(targets) : NULL;
    cd_validation v;
    assert_int_equal(cd_validate_prompt(reg, p, t, &v), 0);
    check_json("error", v.error, error);
    check_json("node_errors", v.node_errors, node_errors ? node_errors : "{}");
    json_t *outs = outputs_json(&v);
    check_json("outputs", outs, outputs ? outputs : "[]");
    json_decref(outs);
    if (prompt_after) check_json("prompt after validation", p, prompt_after);
    cd_validation_clear(&v);
    json_decref(p);
    json_decref(t);
}

/* Node "2" of class cls with input `name` = value_text, read by output "1". On success the
 * converted value must be `converted`; on failure node 2's only error must be `error`. */
static void one_input(const char *cls, const char *name, const char *value_text, const char *converted,
                      const char *error) {
    char prompt[2048];
    snprintf(prompt, sizeof prompt,
             "{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `%s`, `inputs`: "
             "{`%s`: %s}}}",
             cls, name, value_text);
    json_t *p = J(prompt);
    cd_validation v;
    assert_int_equal(cd_validate_prompt(reg, p, NULL, &v), 0);
    if (error) {
        if (!v.error) print_error("%s.%s = %s was accepted\n", cls, name, value_text);
        assert_non_null(v.error);
        json_t *errs = json_object_get(json_object_get(v.node_errors, "2"), "errors");
        assert_int_equal(json_array_size(errs), 1);
        check_json(value_text, json_array_get(errs, 0), error);
    } else {
        if (v.error) {
            char *e = json_dumps(v.node_errors, 0);
            print_error("%s.%s = %s rejected: %s\n", cls, name, value_text, e);
            free(e);
        }
        assert_null(v.error);
        check_json(value_text, json_object_get(json_object_get(json_object_get(p, "2"), "inputs"), name), converted);
    }
    cd_validation_clear(&v);
    json_decref(p);
}

#define INVALID_PROMPT(MSG, DETAILS)                                                                                 \
    "{`type`: `invalid_prompt`, `message`: `" MSG "`, `details`: `" DETAILS "`, `extra_info`: {}}"

/* ---- tests ---- */

static void garbage_prompts_are_invalid_prompt(void **state) {
    (void)state;
    const char *not_object = INVALID_PROMPT("Cannot execute because the prompt is not a JSON object.", "");
    expect("[]", NULL, not_object, NULL, NULL, NULL);
    expect("[{`class_type`: `VOut`}]", NULL, not_object, NULL, NULL, NULL);
    expect("`x`", NULL, not_object, NULL, NULL, NULL);
    expect("5", NULL, not_object, NULL, NULL, NULL);
    expect("null", NULL, not_object, NULL, NULL, NULL);
    const char *missing =
        INVALID_PROMPT("Cannot execute because a node is missing the class_type property.", "Node ID '#1'");
    expect("{`1`: `VOut`}", NULL, missing, NULL, NULL, NULL);
    expect("{`1`: 5}", NULL, missing, NULL, NULL, NULL);
    expect("{`1`: null}", NULL, missing, NULL, NULL, NULL);
    expect("{`1`: [`class_type`]}", NULL, missing, NULL, NULL, NULL);
    expect("{`1`: {`inputs`: {}}}", NULL, missing, NULL, NULL, NULL);
    expect("{`1`: {`class_type`: 5, `inputs`: {}}}", NULL,
           INVALID_PROMPT("Cannot execute because node 5 does not exist.", "Node ID '#1'"), NULL, NULL, NULL);
    expect("{`1`: {`class_type`: `Nope`, `inputs`: {}}}", NULL,
           INVALID_PROMPT("Cannot execute because node Nope does not exist.", "Node ID '#1'"), NULL, NULL, NULL);
    expect("{`1`: {`class_type`: [`a`, null], `inputs`: {}}}", NULL,
           INVALID_PROMPT("Cannot execute because node ['a', None] does not exist.", "Node ID '#1'"), NULL, NULL,
           NULL);
    expect("{`1`: {`class_type`: null}}", NULL,
           INVALID_PROMPT("Cannot execute because node None does not exist.", "Node ID '#1'"), NULL, NULL, NULL);
    const char *bad_inputs =
        INVALID_PROMPT("Cannot execute because the inputs of a node are not an object.", "Node ID '#7'");
    expect("{`7`: {`class_type`: `VOut`, `inputs`: 5}}", NULL, bad_inputs, NULL, NULL, NULL);
    expect("{`7`: {`class_type`: `VOut`, `inputs`: [`value`, 1]}}", NULL, bad_inputs, NULL, NULL, NULL);
    expect("{`7`: {`class_type`: `VOut`, `inputs`: `value`}}", NULL, bad_inputs, NULL, NULL, NULL);
    /* The first bad node in prompt order is reported, even after good ones. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: 1}}, `2`: {`class_type`: `Nope`}, `3`: 5}", NULL,
           INVALID_PROMPT("Cannot execute because node Nope does not exist.", "Node ID '#2'"), NULL, NULL, NULL);
    /* No "inputs" at all: ComfyUI's KeyError when the node is reached. */
    expect("{`1`: {`class_type`: `VOut`}}", NULL,
           "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, "
           "`details`: `Exception when validating node: 'inputs'`, `extra_info`: {}}",
           "{`1`: {`errors`: [{`type`: `exception_during_validation`, `message`: `Exception when validating node`, "
           "`details`: `'inputs'`, `extra_info`: {`exception_type`: `KeyError`, `traceback`: []}}], "
           "`dependent_outputs`: [`1`], `class_type`: `VOut`}}",
           NULL, NULL);
    /* ...but a node nobody reaches may lack them, as in ComfyUI. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: 1}}, `2`: {`class_type`: `VInt`}}", NULL, NULL, NULL,
           "[`1`]", NULL);
}

static void no_outputs(void **state) {
    (void)state;
    const char *no_out = "{`type`: `prompt_no_outputs`, `message`: `Prompt has no outputs`, `details`: ``, "
                         "`extra_info`: {}}";
    expect("{}", NULL, no_out, NULL, NULL, NULL);
    expect("{`1`: {`class_type`: `VInt`, `inputs`: {`value`: 5}}}", NULL, no_out, NULL, NULL, NULL);
    const char *one = "{`1`: {`class_type`: `VOut`, `inputs`: {`value`: 5}}, `2`: {`class_type`: `VInt`, "
                      "`inputs`: {`value`: 5}}}";
    expect(one, "[]", no_out, NULL, NULL, NULL);
    expect(one, "[`2`]", no_out, NULL, NULL, NULL);
    expect(one, "[1]", no_out, NULL, NULL, NULL); /* ids are strings: 1 != "1" */
    expect(one, "[`1`]", NULL, NULL, "[`1`]", NULL);
    expect(one, "null", NULL, NULL, "[`1`]", NULL);
}

static void required_input_missing(void **state) {
    (void)state;
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {}}}", NULL,
           "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, "
           "`details`: `Required input is missing: value`, `extra_info`: {}}",
           "{`1`: {`errors`: [{`type`: `required_input_missing`, `message`: `Required input is missing`, "
           "`details`: `value`, `extra_info`: {`input_name`: `value`}}], `dependent_outputs`: [`1`], "
           "`class_type`: `VOut`}}",
           NULL, NULL);
    /* A lazy input is still required; the error sits upstream, so the output's own details are empty. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VLazy`, "
           "`inputs`: {`y`: 1}}}",
           NULL,
           "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, "
           "`details`: ``, `extra_info`: {}}",
           "{`2`: {`errors`: [{`type`: `required_input_missing`, `message`: `Required input is missing`, "
           "`details`: `x`, `extra_info`: {`input_name`: `x`}}], `dependent_outputs`: [`1`], `class_type`: "
           "`VLazy`}}",
           NULL, NULL);
    /* Optional inputs may be absent; present, they are checked. Hidden and undeclared inputs are not. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0], `junk`: [`nope`, 0], `x`: {`y`: 1}}}, "
           "`2`: {`class_type`: `VOpt`, `inputs`: {`a`: 1}}, `3`: {`class_type`: `VOut`, `inputs`: {`value`: [`4`, "
           "0]}}, `4`: {`class_type`: `VHidden`, `inputs`: {`value`: 1, `prompt`: [`nope`, 0]}}}",
           NULL, NULL, NULL, "[`1`, `3`]", NULL);
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VOpt`, `inputs`: "
           "{`a`: 1, `b`: 2}}}",
           NULL,
           "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, "
           "`details`: ``, `extra_info`: {}}",
           "{`2`: {`errors`: [{`type`: `value_smaller_than_min`, `message`: `Value 2 smaller than min of 5`, "
           "`details`: `b`, `extra_info`: {`input_name`: `b`, `input_config`: [`INT`, {`min`: 5}], "
           "`received_value`: 2}}], `dependent_outputs`: [`1`], `class_type`: `VOpt`}}",
           NULL, NULL);
}

static void bad_linked_input(void **state) {
    (void)state;
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [1, 2, 3]}}}", NULL,
           "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, "
           "`details`: `Bad linked input, must be a length-2 list of [node_id, slot_index]: value`, "
           "`extra_info`: {}}",
           "{`1`: {`errors`: [{`type`: `bad_linked_input`, `message`: `Bad linked input, must be a length-2 list "
           "of [node_id, slot_index]`, `details`: `value`, `extra_info`: {`input_name`: `value`, `input_config`: "
           "[`*`, {}], `received_value`: [1, 2, 3]}}], `dependent_outputs`: [`1`], `class_type`: `VOut`}}",
           NULL, NULL);
    one_input("VIntFree", "value", "[]",
              NULL,
              "{`type`: `bad_linked_input`, `message`: `Bad linked input, must be a length-2 list of [node_id, "
              "slot_index]`, `details`: `value`, `extra_info`: {`input_name`: `value`, `input_config`: [`INT`, "
              "{}], `received_value`: []}}");
}

/* Errors raised while following a link, as ComfyUI's exceptions. */
static void broken_links(void **state) {
    (void)state;
    /* test_missing_node_error: one output reaches a removed node, the other is fine. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VAny`, `inputs`: "
           "{`value`: [`removeme`, 0]}}, `3`: {`class_type`: `VOut`, `inputs`: {`value`: [`4`, 0]}}, `4`: "
           "{`class_type`: `VIntFree`, `inputs`: {`value`: 3}}}",
           NULL, NULL,
           "{`2`: {`errors`: [{`type`: `exception_during_inner_validation`, `message`: `Exception when validating "
           "inner node`, `details`: `'removeme'`, `extra_info`: {`input_name`: `value`, `input_config`: [`*`, {}], "
           "`exception_message`: `'removeme'`, `exception_type`: `KeyError`, `traceback`: [], `linked_node`: "
           "[`2`, 0]}}], `dependent_outputs`: [`1`], `class_type`: `VAny`}}",
           "[`3`]", NULL);
    /* Raised in the output itself: exception_during_validation. */
    struct {
        const char *link, *type, *text;
    } cases[] = {
        {"[`2`, 1]", "IndexError", "tuple index out of range"},
        {"[`2`, -2]", "IndexError", "tuple index out of range"},
        {"[`2`, true]", "IndexError", "tuple index out of range"},
        {"[`2`, `0`]", "TypeError", "tuple indices must be integers or slices, not str"},
        {"[`2`, 0.0]", "TypeError", "tuple indices must be integers or slices, not float"},
        {"[`2`, null]", "TypeError", "tuple indices must be integers or slices, not NoneType"},
        {"[5, 0]", "KeyError", "5"},
        {"[null, 0]", "KeyError", "None"},
        {"[1.5, 0]", "KeyError", "1.5"},
        {"[`it's`, 0]", "KeyError", "\\`it's\\`"},
        {"[[`2`], 0]", "TypeError", "unhashable type: 'list'"},
        {"[{}, 0]", "TypeError", "unhashable type: 'dict'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char prompt[512], error[512], node_errors[1024];
        snprintf(prompt, sizeof prompt,
                 "{`1`: {`class_type`: `VOut`, `inputs`: {`value`: %s}}, `2`: {`class_type`: `VIntFree`, "
                 "`inputs`: {`value`: 1}}}",
                 cases[i].link);
        snprintf(error, sizeof error,
                 "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, "
                 "`details`: `Exception when validating node: %s`, `extra_info`: {}}",
                 cases[i].text);
        snprintf(node_errors, sizeof node_errors,
                 "{`1`: {`errors`: [{`type`: `exception_during_validation`, `message`: `Exception when validating "
                 "node`, `details`: `%s`, `extra_info`: {`exception_type`: `%s`, `traceback`: []}}], "
                 "`dependent_outputs`: [`1`], `class_type`: `VOut`}}",
                 cases[i].text, cases[i].type);
        expect(prompt, NULL, error, node_errors, NULL, NULL);
    }
    /* Python indexing: -1 and false are fine slots. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, -1]}}, `2`: {`class_type`: `VIntFree`, "
           "`inputs`: {`value`: [`3`, false]}}, `3`: {`class_type`: `VIntFree`, `inputs`: {`value`: 1}}}",
           NULL, NULL, NULL, "[`1`]", NULL);
}

static void return_type_mismatch(void **state) {
    (void)state;
    expect("{`1`: {`class_type`: `VImageOut`, `inputs`: {`images`: [`2`, 0]}}, `2`: {`class_type`: `VImageMask`, "
           "`inputs`: {`image`: [`3`, 0]}}, `3`: {`class_type`: `VIntFree`, `inputs`: {`value`: 1}}}",
           NULL,
           "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, "
           "`details`: ``, `extra_info`: {}}",
           "{`2`: {`errors`: [{`type`: `return_type_mismatch`, `message`: `Return type mismatch between linked "
           "nodes`, `details`: `image, received_type(INT) mismatch input_type(IMAGE,MASK)`, `extra_info`: "
           "{`input_name`: `image`, `input_config`: [`IMAGE,MASK`, {}], `received_type`: `INT`, `linked_node`: "
           "[`3`, 0]}}], `dependent_outputs`: [`1`], `class_type`: `VImageMask`}}",
           NULL, NULL);
    /* A comma-set that intersects, "*" on either side: compatible. */
    const char *sources[] = {"VMask", "VImage", "VAny"};
    for (size_t i = 0; i < 3; i++) {
        char prompt[512];
        snprintf(prompt, sizeof prompt,
                 "{`1`: {`class_type`: `VImageOut`, `inputs`: {`images`: [`2`, 0]}}, `2`: {`class_type`: "
                 "`VImageMask`, `inputs`: {`image`: [`3`, 0]}}, `3`: {`class_type`: `%s`, `inputs`: {%s}}}",
                 sources[i], !strcmp(sources[i], "VAny") ? "`value`: 1" : "");
        expect(prompt, NULL, NULL, NULL, "[`1`]", NULL);
    }
    /* A combo output (a list type) into a legacy combo: Python compares the lists. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VCombo`, "
           "`inputs`: {`choice`: [`3`, 0]}}, `3`: {`class_type`: `VComboOut`, `inputs`: {}}}",
           NULL,
           "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, "
           "`details`: ``, `extra_info`: {}}",
           "{`2`: {`errors`: [{`type`: `return_type_mismatch`, `message`: `Return type mismatch between linked "
           "nodes`, `details`: `choice, received_type(['a', 'b']) mismatch input_type(['a', 'b', 1])`, "
           "`extra_info`: {`input_name`: `choice`, `input_config`: [[`a`, `b`, 1], {}], `received_type`: [`a`, "
           "`b`], `linked_node`: [`3`, 0]}}], `dependent_outputs`: [`1`], `class_type`: `VCombo`}}",
           NULL, NULL);
}

#define CONV_ERROR(TYPE, NAME, CONFIG, VALUE, VALUE_STR, EXC)                                                        \
    "{`type`: `invalid_input_type`, `message`: `Failed to convert an input value to a " TYPE " value`, `details`: `" \
    NAME ", " VALUE_STR ", " EXC "`, `extra_info`: {`input_name`: `" NAME "`, `input_config`: " CONFIG              \
    ", `received_value`: " VALUE ", `exception_message`: `" EXC "`}}"

static void conversions_written_back(void **state) {
    (void)state;
    struct {
        const char *cls, *in, *out;
    } ok[] = {
        {"VIntFree", "`5`", "5"},
        {"VIntFree", "` 7\\n`", "7"},
        {"VIntFree", "`-0`", "0"},
        {"VIntFree", "`+12`", "12"},
        {"VIntFree", "`1_000`", "1000"},
        {"VIntFree", "`\\u00a042\\u3000`", "42"},
        {"VIntFree", "` \\u0661\\u0662 `", "12"}, /* digits of any script, as Python */
        {"VIntFree", "`\\u20285`", "5"},
        {"VFloatFree", "`-\\u0661e\\u0662`", "-100.0"},
        {"VIntFree", "3.7", "3"},
        {"VIntFree", "-3.7", "-3"},
        {"VIntFree", "true", "1"},
        {"VIntFree", "false", "0"},
        {"VIntFree", "{`__value__`: `42`}", "42"},
        {"VIntFree", "`9223372036854775807`", "9223372036854775807"},
        {"VIntFree", "`-9223372036854775808`", "-9223372036854775808"},
        {"VFloatFree", "1", "1.0"},
        {"VFloatFree", "`2.5`", "2.5"},
        {"VFloatFree", "` 1_0.5 `", "10.5"},
        {"VFloatFree", "`1e3`", "1000.0"},
        {"VFloatFree", "`.5`", "0.5"},
        {"VFloatFree", "`5.`", "5.0"},
        {"VFloatFree", "true", "1.0"},
        /* float() accepts these; JSON cannot hold the result, so the text stays. */
        {"VFloatFree", "`nan`", "`nan`"},
        {"VFloatFree", "`-Infinity`", "`-Infinity`"},
        {"VFloatFree", "`1e400`", "`1e400`"},
        {"VString", "5", "`5`"},
        {"VString", "2.5", "`2.5`"},
        {"VString", "1e16", "`1e+16`"},
        {"VString", "1e15", "`1000000000000000.0`"},
        {"VString", "0.0001", "`0.0001`"},
        {"VString", "0.00001", "`1e-05`"},
        {"VString", "0.1", "`0.1`"},
        {"VString", "true", "`True`"},
        {"VString", "null", "`None`"},
        {"VString", "{`a`: [1, false]}", "`{'a': [1, False]}`"},
        {"VString", "{`__value__`: [1, `a`, null, 0.5, {`k`: false}]}", "`[1, 'a', None, 0.5, {'k': False}]`"},
        {"VString", "{`__value__`: [`it's`, `say \\`hi\\``, `both'\\``, `tab\\t`, `\\u00e9`, `\\u00a0`, `\\u0001`]}",
         "`[\\`it's\\`, 'say \\`hi\\`', 'both\\\\'\\`', 'tab\\\\t', '\\u00e9', '\\\\xa0', '\\\\x01']`"},
        {"VBool", "``", "false"},
        {"VBool", "`false`", "true"},
        {"VBool", "0", "false"},
        {"VBool", "0.0", "false"},
        {"VBool", "2", "true"},
        {"VBool", "null", "false"},
        {"VBool", "{}", "false"},
        {"VBool", "{`a`: 1}", "true"},
        {"VBool", "{`__value__`: []}", "false"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) one_input(ok[i].cls, "value", ok[i].in, ok[i].out, NULL);

    one_input("VIntFree", "value", "`foo`", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "`foo`", "foo", "invalid literal for int() with base 10: 'foo'"));
    one_input("VIntFree", "value", "`5.0`", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "`5.0`", "5.0", "invalid literal for int() with base 10: '5.0'"));
    one_input("VIntFree", "value", "``", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "``", "", "invalid literal for int() with base 10: ''"));
    one_input("VIntFree", "value", "`1e400`", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "`1e400`", "1e400",
                         "invalid literal for int() with base 10: '1e400'"));
    one_input("VIntFree", "value", "`1__0`", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "`1__0`", "1__0",
                         "invalid literal for int() with base 10: '1__0'"));
    one_input("VIntFree", "value", "`it's`", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "`it's`", "it's",
                         "invalid literal for int() with base 10: \\`it's\\`"));
    /* \x1c is str.isspace() but not stripped by int() */
    one_input("VIntFree", "value", "`\\u001c5`", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "`\\u001c5`", "\\u001c5",
                         "invalid literal for int() with base 10: '\\\\x1c5'"));
    one_input("VIntFree", "value", "`\\u0661.5`", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "`\\u0661.5`", "\\u0661.5",
                         "invalid literal for int() with base 10: '\\u0661.5'"));
    one_input("VIntFree", "value", "null", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "null", "None",
                         "int() argument must be a string, a bytes-like object or a real number, not 'NoneType'"));
    one_input("VIntFree", "value", "{`a`: 1}", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "{`a`: 1}", "{'a': 1}",
                         "int() argument must be a string, a bytes-like object or a real number, not 'dict'"));
    one_input("VIntFree", "value", "{`__value__`: [1]}", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "[1]", "[1]",
                         "int() argument must be a string, a bytes-like object or a real number, not 'list'"));
    one_input("VIntFree", "value", "`9223372036854775808`", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "`9223372036854775808`", "9223372036854775808",
                         "Python int too large to convert to C long"));
    one_input("VIntFree", "value", "1e300", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "1e300", "1e+300", "Python int too large to convert to C long"));
    one_input("VFloatFree", "value", "`x`", NULL,
              CONV_ERROR("FLOAT", "value", "[`FLOAT`, {}]", "`x`", "x", "could not convert string to float: 'x'"));
    one_input("VFloatFree", "value", "` 1e`", NULL,
              CONV_ERROR("FLOAT", "value", "[`FLOAT`, {}]", "` 1e`", " 1e", "could not convert string to float: ' 1e'"));
    one_input("VFloatFree", "value", "`0x10`", NULL,
              CONV_ERROR("FLOAT", "value", "[`FLOAT`, {}]", "`0x10`", "0x10",
                         "could not convert string to float: '0x10'"));
    one_input("VFloatFree", "value", "`.`", NULL,
              CONV_ERROR("FLOAT", "value", "[`FLOAT`, {}]", "`.`", ".", "could not convert string to float: '.'"));
    one_input("VFloatFree", "value", "null", NULL,
              CONV_ERROR("FLOAT", "value", "[`FLOAT`, {}]", "null", "None",
                         "float() argument must be a string or a real number, not 'NoneType'"));

    /* int() cuts the repr in its message to 200 characters. */
    char longv[400], prompt_val[420], expected_exc[300];
    memset(longv, 'z', 300);
    longv[300] = '\0';
    snprintf(prompt_val, sizeof prompt_val, "`%s`", longv);
    snprintf(expected_exc, sizeof expected_exc, "invalid literal for int() with base 10: '%.199s", longv);
    json_t *p = J("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VIntFree`, "
                  "`inputs`: {}}}");
    json_object_set_new(json_object_get(json_object_get(p, "2"), "inputs"), "value", json_string(longv));
    cd_validation v;
    assert_int_equal(cd_validate_prompt(reg, p, NULL, &v), 0);
    json_t *e = json_array_get(json_object_get(json_object_get(v.node_errors, "2"), "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "extra_info"), "exception_message")),
                        expected_exc);
    cd_validation_clear(&v);
    json_decref(p);

    /* The whole prompt after validation: converted in place, links and undeclared inputs untouched. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0], `extra`: `5`}}, `2`: {`class_type`: "
           "`VValidateKw`, `inputs`: {`a`: `1`, `b`: {`__value__`: 2}, `c`: `3`}, `_meta`: {`title`: `x`}}}",
           NULL, NULL, NULL, "[`1`]",
           "{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0], `extra`: `5`}}, `2`: {`class_type`: "
           "`VValidateKw`, `inputs`: {`a`: 1, `b`: 2.0, `c`: `3`}, `_meta`: {`title`: `x`}}}");
}

#define RANGE_ERROR(TYPE, MSG, CONFIG, VALUE)                                                                        \
    "{`type`: `" TYPE "`, `message`: `" MSG "`, `details`: `value`, `extra_info`: {`input_name`: `value`, "        \
    "`input_config`: " CONFIG ", `received_value`: " VALUE "}}"
#define INT_CONFIG "[`INT`, {`default`: 0, `min`: 1, `max`: 10}]"
#define FLOAT_CONFIG "[`FLOAT`, {`min`: 0.5, `max`: 1.0}]"

static void min_and_max(void **state) {
    (void)state;
    one_input("VInt", "value", "0", NULL,
              RANGE_ERROR("value_smaller_than_min", "Value 0 smaller than min of 1", INT_CONFIG, "0"));
    one_input("VInt", "value", "`0`", NULL,
              RANGE_ERROR("value_smaller_than_min", "Value 0 smaller than min of 1", INT_CONFIG, "0"));
    one_input("VInt", "value", "11", NULL,
              RANGE_ERROR("value_bigger_than_max", "Value 11 bigger than max of 10", INT_CONFIG, "11"));
    one_input("VInt", "value", "-9223372036854775808", NULL,
              RANGE_ERROR("value_smaller_than_min", "Value -9223372036854775808 smaller than min of 1", INT_CONFIG,
                          "-9223372036854775808"));
    one_input("VInt", "value", "1", "1", NULL);
    one_input("VInt", "value", "10.9", "10", NULL);
    one_input("VFloat", "value", "0.25", NULL,
              RANGE_ERROR("value_smaller_than_min", "Value 0.25 smaller than min of 0.5", FLOAT_CONFIG, "0.25"));
    one_input("VFloat", "value", "0.00001", NULL,
              RANGE_ERROR("value_smaller_than_min", "Value 1e-05 smaller than min of 0.5", FLOAT_CONFIG, "1e-05"));
    one_input("VFloat", "value", "2", NULL,
              RANGE_ERROR("value_bigger_than_max", "Value 2.0 bigger than max of 1.0", FLOAT_CONFIG, "2.0"));
    one_input("VFloat", "value", "`inf`", NULL,
              RANGE_ERROR("value_bigger_than_max", "Value inf bigger than max of 1.0", FLOAT_CONFIG, "`inf`"));
    one_input("VFloat", "value", "`1e400`", NULL,
              RANGE_ERROR("value_bigger_than_max", "Value inf bigger than max of 1.0", FLOAT_CONFIG, "`1e400`"));
    one_input("VFloat", "value", "`-inf`", NULL,
              RANGE_ERROR("value_smaller_than_min", "Value -inf smaller than min of 0.5", FLOAT_CONFIG, "`-inf`"));
    one_input("VFloat", "value", "`nan`", "`nan`", NULL); /* NaN compares false both ways */
    one_input("VFloat", "value", "0.5", "0.5", NULL);
    one_input("VFloat", "value", "1", "1.0", NULL);
    one_input("VFloat", "value", "true", "1.0", NULL);
}

/* The legacy form: the input's type is the list of options. */
static void value_not_in_list(void **state) {
    (void)state;
    const char *combo_config = "[[`a`, `b`, 1], {}]";
    char expected[1024];
    snprintf(expected, sizeof expected,
             "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: 'c' not in ['a', "
             "'b', 1]`, `extra_info`: {`input_name`: `choice`, `input_config`: %s, `received_value`: `c`}}",
             combo_config);
    one_input("VCombo", "choice", "`c`", NULL, expected);
    snprintf(expected, sizeof expected,
             "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: '1' not in ['a', "
             "'b', 1]`, `extra_info`: {`input_name`: `choice`, `input_config`: %s, `received_value`: `1`}}",
             combo_config);
    one_input("VCombo", "choice", "`1`", NULL, expected);
    snprintf(expected, sizeof expected,
             "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: 'None' not in ['a', "
             "'b', 1]`, `extra_info`: {`input_name`: `choice`, `input_config`: %s, `received_value`: null}}",
             combo_config);
    one_input("VCombo", "choice", "null", NULL, expected);
    /* Python equality: 1 == 1.0 == True; nothing is converted for combos. */
    one_input("VCombo", "choice", "`a`", "`a`", NULL);
    one_input("VCombo", "choice", "1.0", "1.0", NULL);
    one_input("VCombo", "choice", "true", "true", NULL);
    one_input("VCombo", "choice", "{`__value__`: `b`}", "`b`", NULL);
    one_input("VBigCombo", "choice", "`zz`", NULL,
              "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: 'zz' not in (list "
              "of length 25)`, `extra_info`: {`input_name`: `choice`, `input_config`: null, `received_value`: "
              "`zz`}}");
    one_input("VBigCombo", "choice", "`c24`", "`c24`", NULL);
}

/* The newer form, ["COMBO", {"options": [...]}] (V3 nodes, ImageFlip's flip_method): checked
 * as the legacy form, with the declaration as input_config; a "COMBO" without options refuses
 * everything, as ComfyUI's `val not in extra_info.get("options", [])` does. */
static void value_not_in_list_combo_type(void **state) {
    (void)state;
    one_input("VComboV3", "choice", "`z`", NULL,
              "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: 'z' not in ['x', "
              "'y', 2]`, `extra_info`: {`input_name`: `choice`, `input_config`: [`COMBO`, {`multiselect`: false, "
              "`options`: [`x`, `y`, 2]}], `received_value`: `z`}}");
    one_input("VComboV3", "choice", "`2`", NULL,
              "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: '2' not in ['x', "
              "'y', 2]`, `extra_info`: {`input_name`: `choice`, `input_config`: [`COMBO`, {`multiselect`: false, "
              "`options`: [`x`, `y`, 2]}], `received_value`: `2`}}");
    one_input("VComboV3", "choice", "`x`", "`x`", NULL);
    one_input("VComboV3", "choice", "2.0", "2.0", NULL);
    one_input("VComboV3", "choice", "{`__value__`: `y`}", "`y`", NULL);
    one_input("VComboV3Empty", "choice", "`x`", NULL,
              "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: 'x' not in []`, "
              "`extra_info`: {`input_name`: `choice`, `input_config`: [`COMBO`, {`tooltip`: `no options`}], "
              "`received_value`: `x`}}");
    one_input("VComboV3Big", "choice", "`zz`", NULL,
              "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: 'zz' not in (list "
              "of length 21)`, `extra_info`: {`input_name`: `choice`, `input_config`: null, `received_value`: "
              "`zz`}}");
    one_input("VComboV3Big", "choice", "`c20`", "`c20`", NULL);
    /* A link into such a combo is not a constant: no list check (and a list-typed output fits). */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VComboV3`, "
           "`inputs`: {`choice`: [`3`, 0]}}, `3`: {`class_type`: `VComboOut`, `inputs`: {}}}",
           NULL, NULL, NULL, "[`1`]", NULL);
}

/* A node that lists its options when asked (combo_options, as LoadImage's files): validation
 * reads that list, in both forms, and reports it as the input's config. */
static void value_not_in_list_live_options(void **state) {
    (void)state;
    one_input("VComboV3Live", "choice", "`live2`", "`live2`", NULL);
    one_input("VComboV3Live", "choice", "`declared`", NULL,
              "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: 'declared' not in "
              "['live1', 'live2']`, `extra_info`: {`input_name`: `choice`, `input_config`: [`COMBO`, {`options`: "
              "[`live1`, `live2`]}], `received_value`: `declared`}}");
    one_input("VComboLive", "choice", "`live1`", "`live1`", NULL);
    one_input("VComboLive", "choice", "`declared`", NULL,
              "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: 'declared' not in "
              "['live1', 'live2']`, `extra_info`: {`input_name`: `choice`, `input_config`: [[`live1`, `live2`], {}], "
              "`received_value`: `declared`}}");
}

/* Integers beyond 64 bits, as Python reads them from JSON: ComfyUI's range and combo errors with
 * the exact numbers; conversions to float, str and bool; and a clear error (never a wrapped
 * value) for one that passes those checks, since the engine's integers are 64-bit. */
static void big_integers(void **state) {
    (void)state;
#define BIG "1180591620717411303424" /* 2**70 */
#define I64_CONFIG "[`INT`, {`min`: -9223372036854775808, `max`: 9223372036854775807}]"
    one_input("VInt", "value", BIG, NULL,
              RANGE_ERROR("value_bigger_than_max", "Value " BIG " bigger than max of 10", INT_CONFIG, BIG));
    one_input("VInt", "value", "-" BIG, NULL,
              RANGE_ERROR("value_smaller_than_min", "Value -" BIG " smaller than min of 1", INT_CONFIG, "-" BIG));
    one_input("VInt64", "value", "9223372036854775808", NULL,
              RANGE_ERROR("value_bigger_than_max", "Value 9223372036854775808 bigger than max of 9223372036854775807",
                          I64_CONFIG, "9223372036854775808"));
    one_input("VInt64", "value", "`-9223372036854775809`", NULL,
              RANGE_ERROR("value_smaller_than_min",
                          "Value -9223372036854775809 smaller than min of -9223372036854775808", I64_CONFIG,
                          "-9223372036854775809"));
    one_input("VInt64", "value", "9.3e18", NULL,
              RANGE_ERROR("value_bigger_than_max", "Value 9300000000000000000 bigger than max of 9223372036854775807",
                          I64_CONFIG, "9300000000000000000"));
    one_input("VInt64", "value", "9223372036854775807", "9223372036854775807", NULL);
    /* With no bound ComfyUI takes it; we cannot hold it. */
    one_input("VIntFree", "value", BIG, NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", BIG, BIG, "Python int too large to convert to C long"));
    one_input("VIntFree", "value", "`000" BIG "`", NULL,
              CONV_ERROR("INT", "value", "[`INT`, {}]", "`000" BIG "`", "000" BIG,
                         "Python int too large to convert to C long"));
    one_input("VAny", "value", BIG, NULL,
              CONV_ERROR("INT", "value", "[`*`, {}]", BIG, BIG, "Python int too large to convert to C long"));
    one_input("VAny", "value", "{`__value__`: [1, " BIG "]}", NULL,
              CONV_ERROR("INT", "value", "[`*`, {}]", "[1, " BIG "]", "[1, " BIG "]",
                         "Python int too large to convert to C long"));
    one_input("VFloatFree", "value", BIG, "1.1805916207174113e21", NULL);
    one_input("VFloatFree", "value", "-" BIG, "-1.1805916207174113e21", NULL);
    one_input("VFloat", "value", BIG, NULL,
              RANGE_ERROR("value_bigger_than_max", "Value 1.1805916207174113e+21 bigger than max of 1.0", FLOAT_CONFIG,
                          "1.1805916207174113e21"));
    char huge[400] = "1";
    memset(huge + 1, '0', 320);
    huge[321] = '\0';
    char expected[2048];
    snprintf(expected, sizeof expected,
             CONV_ERROR("FLOAT", "value", "[`FLOAT`, {}]", "%s", "%s", "int too large to convert to float"), huge, huge);
    one_input("VFloatFree", "value", huge, NULL, expected);
    one_input("VString", "value", BIG, "`" BIG "`", NULL);
    one_input("VBool", "value", BIG, "true", NULL);
    one_input("VCombo", "choice", BIG, NULL,
              "{`type`: `value_not_in_list`, `message`: `Value not in list`, `details`: `choice: '" BIG
              "' not in ['a', 'b', 1]`, `extra_info`: {`input_name`: `choice`, `input_config`: [[`a`, `b`, 1], {}], "
              "`received_value`: " BIG "}}");

    /* What clients read: the number itself, as Python's json writes it. */
    json_t *p = J("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VInt`, `inputs`: "
                  "{`value`: " BIG "}}, `3`: {`class_type`: `VOut`, `inputs`: {`value`: [-12345678901234567890]}}}");
    cd_validation v;
    assert_int_equal(cd_validate_prompt(reg, p, NULL, &v), 0);
    char *text = cd_json_dumps(v.node_errors);
    assert_non_null(strstr(text, "\"received_value\": " BIG "}"));
    assert_null(strstr(text, "\\u0000"));
    free(text);
    text = cd_json_dumps(p);
    assert_non_null(strstr(text, "[-12345678901234567890]"));
    free(text);
    cd_validation_clear(&v);
    json_decref(p);
    /* The mark cannot be forged: a NUL in the client's text is refused as before. */
    const char *forged = "{\"a\": \"\\u0000123\", \"b\": 99999999999999999999}";
    assert_null(cd_json_loadb_bigint(forged, strlen(forged), 0, NULL));
    const char *plain = "[1, \"x\\\"99999999999999999999\", -99999999999999999999, 2.5, 2]";
    json_t *j = cd_json_loadb_bigint(plain, strlen(plain), 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_array_get(j, 1)), "x\"99999999999999999999");
    assert_string_equal(cd_json_bigint_text(json_array_get(j, 2)), "-99999999999999999999");
    text = cd_json_dumps(j);
    assert_string_equal(text, "[1, \"x\\\"99999999999999999999\", -99999999999999999999, 2.5, 2]");
    free(text);
    json_decref(j);
#undef BIG
#undef I64_CONFIG
}

#define CUSTOM(DETAILS, NAME)                                                                                        \
    "{`type`: `custom_validation_failed`, `message`: `Custom validation failed for node`, `details`: `" DETAILS   \
    "`, `extra_info`: {`input_name`: `" NAME "`}}"
#define FAILED_UPSTREAM                                                                                              \
    "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, `details`: ``, "  \
    "`extra_info`: {}}"

static void custom_validation(void **state) {
    (void)state;
#define TMPL                                                                                                         \
    "{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `%s`, `inputs`: {%s}}, `3`: "  \
    "{`class_type`: `VIntFree`, `inputs`: {`value`: 1}}, `4`: {`class_type`: `VMask`, `inputs`: {}}}"
    char prompt[1024];
#define P(CLS, INPUTS) (snprintf(prompt, sizeof prompt, TMPL, CLS, INPUTS), prompt)
    /* Only what VALIDATE_INPUTS names is passed, and so only those inputs carry the error. */
    expect(P("VValidate", "`a`: 7, `b`: 1"), NULL, FAILED_UPSTREAM,
           "{`2`: {`errors`: [" CUSTOM("a - a is seven", "a") "], `dependent_outputs`: [`1`], `class_type`: "
           "`VValidate`}}",
           NULL, NULL);
    expect(P("VValidate", "`a`: 8, `b`: 1"), NULL, FAILED_UPSTREAM,
           "{`2`: {`errors`: [" CUSTOM("a", "a") "], `dependent_outputs`: [`1`], `class_type`: `VValidate`}}", NULL,
           NULL);
    /* An input VALIDATE_INPUTS takes skips min/max; the others do not. */
    expect(P("VValidate", "`a`: 50, `b`: 1"), NULL, NULL, NULL, "[`1`]", NULL);
    expect(P("VValidate", "`a`: 5, `b`: 50"), NULL, FAILED_UPSTREAM,
           "{`2`: {`errors`: [{`type`: `value_bigger_than_max`, `message`: `Value 50 bigger than max of 10`, "
           "`details`: `b`, `extra_info`: {`input_name`: `b`, `input_config`: [`INT`, {`min`: 0, `max`: 10}], "
           "`received_value`: 50}}], `dependent_outputs`: [`1`], `class_type`: `VValidate`}}",
           NULL, NULL);
    /* Linked inputs arrive as None. */
    expect(P("VValidate", "`a`: [`3`, 0], `b`: 1"), NULL, NULL, NULL, "[`1`]", NULL);
    /* **kwargs: every input (hidden ones too) is passed, none is range-checked; converted values are seen. */
    expect(P("VValidateKw", "`a`: 5, `b`: `7`"), NULL, FAILED_UPSTREAM,
           "{`2`: {`errors`: [" CUSTOM("a - b is seven", "a") ", " CUSTOM("b - b is seven", "b") ", " CUSTOM(
               "uid - b is seven", "uid") "], `dependent_outputs`: [`1`], `class_type`: `VValidateKw`}}",
           NULL, NULL);
    expect(P("VValidateKw", "`a`: 5, `b`: 1"), NULL, NULL, NULL, "[`1`]", NULL);
    /* input_types: no link type check (MASK into IMAGE,FLOAT passes), the validator decides. */
    expect(P("VValidateTypes", "`a`: [`4`, 0]"), NULL, NULL, NULL, "[`1`]", NULL);
    expect(P("VValidateTypes", "`a`: [`3`, 0]"), NULL, FAILED_UPSTREAM,
           "{`2`: {`errors`: [" CUSTOM("a - bad type INT", "a") ", " CUSTOM("input_types - bad type INT",
                                                                            "input_types") "], "
           "`dependent_outputs`: [`1`], `class_type`: `VValidateTypes`}}",
           NULL, NULL);
    expect(P("VValidateTypes", "`a`: 5"), NULL, FAILED_UPSTREAM,
           "{`2`: {`errors`: [" CUSTOM("a - not a float", "a") ", " CUSTOM("input_types - not a float",
                                                                           "input_types") "], "
           "`dependent_outputs`: [`1`], `class_type`: `VValidateTypes`}}",
           NULL, NULL);
    expect(P("VValidateTypes", "`a`: 5.0"), NULL, NULL, NULL, "[`1`]", NULL);
    /* A validator that takes nothing: one bare error (later ComfyUI). */
    expect(P("VValidateNone", "`a`: 1"), NULL, FAILED_UPSTREAM,
           "{`2`: {`errors`: [{`type`: `custom_validation_failed`, `message`: `Custom validation failed for node`, "
           "`details`: `nope`, `extra_info`: {}}], `dependent_outputs`: [`1`], `class_type`: `VValidateNone`}}",
           NULL, NULL);
    /* INPUT_IS_LIST: the validator gets lists, [constant] and [None] for a link (ComfyUI maps
     * VALIDATE_INPUTS over the inputs as it maps the node). */
    expect(P("VValidateList", "`a`: 50"), NULL, NULL, NULL, "[`1`]", NULL);
    expect(P("VValidateList", "`a`: 7"), NULL, FAILED_UPSTREAM,
           "{`2`: {`errors`: [" CUSTOM("a - a is [7]", "a") ", " CUSTOM("uid - a is [7]", "uid") "], "
           "`dependent_outputs`: [`1`], `class_type`: `VValidateList`}}",
           NULL, NULL);
    expect(P("VValidateList", "`a`: 1, `b`: [`3`, 0]"), NULL, FAILED_UPSTREAM,
           "{`2`: {`errors`: [" CUSTOM("a - b is [None]", "a") ", " CUSTOM("b - b is [None]", "b") ", " CUSTOM(
               "uid - b is [None]", "uid") "], `dependent_outputs`: [`1`], `class_type`: `VValidateList`}}",
           NULL, NULL);
#undef P
#undef TMPL
}

#define CYCLE(ID, PATH, MEMBERS)                                                                                     \
    "{`type`: `dependency_cycle`, `message`: `Dependency cycle detected`, `details`: `" PATH "`, `extra_info`: "   \
    "{`node_id`: `" ID "`, `cycle_nodes`: " MEMBERS "}}"

static void cycles(void **state) {
    (void)state;
    const char *path = "2 (VAny) -> 3 (VAny) -> 2 (VAny)";
    char error[512], node_errors[1024];
    snprintf(error, sizeof error, CYCLE("2", "%s", "[`2`, `3`]"), path);
    snprintf(node_errors, sizeof node_errors,
             "{`2`: {`errors`: [" CYCLE("2", "%s", "[`2`, `3`]") "], `dependent_outputs`: [`1`], `class_type`: "
             "`VAny`}, `3`: {`errors`: [" CYCLE("3", "%s", "[`2`, `3`]") "], `dependent_outputs`: [`1`], "
             "`class_type`: `VAny`}}",
             path, path);
    const char *two = "{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VAny`, "
                      "`inputs`: {`value`: [`3`, 0]}}, `3`: {`class_type`: `VAny`, `inputs`: {`value`: [`2`, 0]}}}";
    expect(two, NULL, error, node_errors, NULL, NULL);
    /* Another output that is fine does not save the prompt. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VAny`, `inputs`: "
           "{`value`: [`3`, 0]}}, `3`: {`class_type`: `VAny`, `inputs`: {`value`: [`2`, 0]}}, `9`: {`class_type`: "
           "`VOut`, `inputs`: {`value`: 1}}}",
           NULL, error, node_errors, NULL, NULL);
    /* A node linked to itself. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VAny`, `inputs`: "
           "{`value`: [`2`, 0]}}}",
           NULL, CYCLE("2", "2 (VAny) -> 2 (VAny)", "[`2`]"),
           "{`2`: {`errors`: [" CYCLE("2", "2 (VAny) -> 2 (VAny)", "[`2`]") "], `dependent_outputs`: [`1`], "
           "`class_type`: `VAny`}}",
           NULL, NULL);
    /* An output inside the cycle. */
    expect("{`1`: {`class_type`: `VPassOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VAny`, "
           "`inputs`: {`value`: [`1`, 0]}}}",
           NULL, CYCLE("1", "1 (VPassOut) -> 2 (VAny) -> 1 (VPassOut)", "[`1`, `2`]"),
           "{`1`: {`errors`: [" CYCLE("1", "1 (VPassOut) -> 2 (VAny) -> 1 (VPassOut)", "[`1`, `2`]") "], "
           "`dependent_outputs`: [`1`], `class_type`: `VPassOut`}, `2`: {`errors`: [" CYCLE(
               "2", "1 (VPassOut) -> 2 (VAny) -> 1 (VPassOut)", "[`1`, `2`]") "], `dependent_outputs`: [`1`], "
                                                                              "`class_type`: `VAny`}}",
           NULL, NULL);
    /* A cycle only reachable through an undeclared input is not validated (nor run). */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: 1, `other`: [`2`, 0]}}, `2`: {`class_type`: `VAny`, "
           "`inputs`: {`value`: [`2`, 0]}}}",
           NULL, NULL, NULL, "[`1`]", NULL);
}

static void partial_validity(void **state) {
    (void)state;
    const char *min_err = "{`type`: `value_smaller_than_min`, `message`: `Value 0 smaller than min of 1`, "
                          "`details`: `value`, `extra_info`: {`input_name`: `value`, `input_config`: " INT_CONFIG
                          ", `received_value`: 0}}";
    const char *max_err = "{`type`: `value_bigger_than_max`, `message`: `Value 11 bigger than max of 10`, "
                          "`details`: `value`, `extra_info`: {`input_name`: `value`, `input_config`: " INT_CONFIG
                          ", `received_value`: 11}}";
    char node_errors[2048];
    const char *one_bad = "{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`3`, 0]}}, `2`: {`class_type`: `VOut`, "
                          "`inputs`: {`value`: [`4`, 0]}}, `3`: {`class_type`: `VInt`, `inputs`: {`value`: 5}}, `4`: "
                          "{`class_type`: `VInt`, `inputs`: {`value`: 0}}}";
    snprintf(node_errors, sizeof node_errors,
             "{`4`: {`errors`: [%s], `dependent_outputs`: [`2`], `class_type`: `VInt`}}", min_err);
    expect(one_bad, NULL, NULL, node_errors, "[`1`]", NULL);
    expect(one_bad, "[`2`]", FAILED_UPSTREAM, node_errors, NULL, NULL);
    expect(one_bad, "[`1`]", NULL, NULL, "[`1`]", NULL);
    /* ComfyUI appends each failing output to every failed node known so far, related or not. */
    snprintf(node_errors, sizeof node_errors,
             "{`3`: {`errors`: [%s], `dependent_outputs`: [`1`, `2`], `class_type`: `VInt`}, `4`: {`errors`: [%s], "
             "`dependent_outputs`: [`2`], `class_type`: `VInt`}}",
             min_err, max_err);
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`3`, 0]}}, `2`: {`class_type`: `VOut`, `inputs`: "
           "{`value`: [`4`, 0]}}, `3`: {`class_type`: `VInt`, `inputs`: {`value`: 0}}, `4`: {`class_type`: `VInt`, "
           "`inputs`: {`value`: 11}}}",
           NULL, FAILED_UPSTREAM, node_errors, NULL, NULL);
    /* The failed outputs' own errors make the details, one line each. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {}}, `2`: {`class_type`: `VImageOut`, `inputs`: {`images`: [`3`, "
           "0]}}, `3`: {`class_type`: `VIntFree`, `inputs`: {`value`: 1}}}",
           NULL,
           "{`type`: `prompt_outputs_failed_validation`, `message`: `Prompt outputs failed validation`, "
           "`details`: `Required input is missing: value\\nReturn type mismatch between linked nodes: images, "
           "received_type(INT) mismatch input_type(IMAGE)`, `extra_info`: {}}",
           "{`1`: {`errors`: [{`type`: `required_input_missing`, `message`: `Required input is missing`, "
           "`details`: `value`, `extra_info`: {`input_name`: `value`}}], `dependent_outputs`: [`1`, `2`], "
           "`class_type`: `VOut`}, `2`: {`errors`: [{`type`: `return_type_mismatch`, `message`: `Return type "
           "mismatch between linked nodes`, `details`: `images, received_type(INT) mismatch input_type(IMAGE)`, "
           "`extra_info`: {`input_name`: `images`, `input_config`: [`IMAGE`, {}], `received_type`: `INT`, "
           "`linked_node`: [`3`, 0]}}], `dependent_outputs`: [`2`], `class_type`: `VImageOut`}}",
           NULL, NULL);
    /* An output that another output depends on. */
    expect("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VPassOut`, "
           "`inputs`: {`value`: 3}}}",
           NULL, NULL, NULL, "[`1`, `2`]", NULL);
}

/* Key order is part of the wire format (clients print these objects). */
static void key_order(void **state) {
    (void)state;
    json_t *p = J("{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `VIntFree`, "
                  "`inputs`: {`value`: `x`}}}");
    cd_validation v;
    assert_int_equal(cd_validate_prompt(reg, p, NULL, &v), 0);
    char *text = json_dumps(v.node_errors, JSON_COMPACT);
    assert_string_equal(text,
                        "{\"2\":{\"errors\":[{\"type\":\"invalid_input_type\",\"message\":\"Failed to convert an input "
                        "value to a INT value\",\"details\":\"value, x, invalid literal for int() with base 10: "
                        "'x'\",\"extra_info\":{\"input_name\":\"value\",\"input_config\":[\"INT\",{}],"
                        "\"received_value\":\"x\",\"exception_message\":\"invalid literal for int() with base 10: "
                        "'x'\"}}],\"dependent_outputs\":[\"1\"],\"class_type\":\"VIntFree\"}}");
    free(text);
    text = json_dumps(v.error, JSON_COMPACT);
    assert_string_equal(text, "{\"type\":\"prompt_outputs_failed_validation\",\"message\":\"Prompt outputs failed "
                              "validation\",\"details\":\"\",\"extra_info\":{}}");
    free(text);
    cd_validation_clear(&v);
    json_decref(p);
}

static void py_str_helper(void **state) {
    (void)state;
    struct {
        const char *json, *str;
    } cases[] = {
        {"0.5", "0.5"},
        {"1.0", "1.0"},
        {"-0.0", "-0.0"},
        {"100.0", "100.0"},
        {"123456789.123", "123456789.123"},
        {"0.3333333333333333", "0.3333333333333333"},
        {"1.5e-07", "1.5e-07"},
        {"2.5e-310", "2.5e-310"},
        {"1.7976931348623157e308", "1.7976931348623157e+308"},
        {"1234567890123456.0", "1234567890123456.0"},
        {"12345678901234567.0", "1.2345678901234568e+16"},
        {"-12", "-12"},
        {"`x`", "x"},
        {"[`a`, 1.0, true, null, {}]", "['a', 1.0, True, None, {}]"},
        {"{`k`: `v`, `n`: [[]]}", "{'k': 'v', 'n': [[]]}"},
        {"[`\\u00e9\\u2028\\ud83d\\ude00\\u007f`]", "['\xc3\xa9\\u2028\xf0\x9f\x98\x80\\x7f']"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = J(cases[i].json);
        char *s = cd_validate_py_str(j);
        assert_string_equal(s, cases[i].str);
        free(s);
        json_decref(j);
    }
    double d = 0;
    json_t *j = json_string(" -Infinity ");
    assert_int_equal(cd_validate_py_float(j, &d), 0);
    assert_true(d < 0 && d * 0 != 0);
    json_decref(j);
    j = json_string("nope");
    assert_int_equal(cd_validate_py_float(j, &d), -1);
    json_decref(j);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define CHAIN 100000

/* VChain 0 <- 1 <- ... <- CHAIN-1 <- VOut "out"; first_prev is node 0's link, or NULL. */
static json_t *chain_prompt(json_t *first_prev) {
    json_t *p = json_object();
    char id[32], prev[32];
    for (int i = 0; i < CHAIN; i++) {
        snprintf(id, sizeof id, "%d", i);
        json_t *inputs = json_object();
        if (i > 0) {
            snprintf(prev, sizeof prev, "%d", i - 1);
            json_object_set_new(inputs, "prev", json_pack("[s, i]", prev, 0));
        } else if (first_prev) {
            json_object_set_new(inputs, "prev", first_prev);
        }
        json_object_set_new(p, id, json_pack("{s:s, s:o}", "class_type", "VChain", "inputs", inputs));
    }
    snprintf(prev, sizeof prev, "%d", CHAIN - 1);
    json_object_set_new(p, "out",
                        json_pack("{s:s, s:{s:[s, i]}}", "class_type", "VOut", "inputs", "value", prev, 0));
    return p;
}

static void long_chain(void **state) {
    (void)state;
    json_t *p = chain_prompt(NULL);
    cd_validation v;
    double t0 = now();
    assert_int_equal(cd_validate_prompt(reg, p, NULL, &v), 0);
    double took = now() - t0;
    print_message("100,000-node chain validated in %.3f s\n", took);
    assert_true(took < 10.0);
    assert_null(v.error);
    assert_int_equal(v.n_outputs, 1);
    assert_string_equal(v.outputs[0], "out");
    assert_int_equal(json_object_size(v.node_errors), 0);
    cd_validation_clear(&v);
    json_decref(p);

    /* A missing node at the far end: the error surfaces 100,000 levels down. */
    p = chain_prompt(json_pack("[s, i]", "gone", 0));
    assert_int_equal(cd_validate_prompt(reg, p, NULL, &v), 0);
    check_json("deep error", v.error, FAILED_UPSTREAM);
    check_json("deep node_errors", v.node_errors,
               "{`0`: {`errors`: [{`type`: `exception_during_inner_validation`, `message`: `Exception when "
               "validating inner node`, `details`: `'gone'`, `extra_info`: {`input_name`: `prev`, `input_config`: "
               "[`INT`, {}], `exception_message`: `'gone'`, `exception_type`: `KeyError`, `traceback`: [], "
               "`linked_node`: [`0`, 0]}}], `dependent_outputs`: [`out`], `class_type`: `VChain`}}");
    cd_validation_clear(&v);
    json_decref(p);

    /* The whole chain as one cycle: every member reported, each report bounded. */
    char last[32];
    snprintf(last, sizeof last, "%d", CHAIN - 1);
    p = chain_prompt(json_pack("[s, i]", last, 0));
    t0 = now();
    assert_int_equal(cd_validate_prompt(reg, p, NULL, &v), 0);
    print_message("100,000-node cycle validated in %.3f s\n", now() - t0);
    assert_non_null(v.error);
    assert_string_equal(json_string_value(json_object_get(v.error, "type")), "dependency_cycle");
    assert_int_equal(json_object_size(v.node_errors), CHAIN);
    const char *details = json_string_value(json_object_get(v.error, "details"));
    assert_true(strlen(details) < 2000);
    assert_non_null(strstr(details, "... (100000 nodes)"));
    cd_validation_clear(&v);
    json_decref(p);
}

/* Whatever the values, validation answers (error or not) without crashing or leaking. */
static void garbage_values(void **state) {
    (void)state;
    const char *values[] = {
        "null", "true", "false", "0", "-1", "1.5", "-1e300", "``", "`x`", "` `", "`-`", "`_1`", "`1_`", "`+-1`",
        "`infinity`", "`-nan`", "`1e-400`", "`\\u0661`", "[]", "[1]", "[`1`, 0]", "[`2`, 0]", "[`1`]",
        "[`nope`, 0]", "[`1`, 99]", "[null, null]", "[[], []]", "[`1`, 0, 0]", "{}", "{`__value__`: null}",
        "{`__value__`: [`1`, 0]}", "{`__value__`: {`__value__`: 1}}", "{`__value__`: [[[[1]]]]}",
        "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]", "`\\u00ff\\u0000x`",
    };
    for (size_t ci = 0; ci < sizeof defs / sizeof defs[0]; ci++) {
        cd_registry *r = reg;
        const cd_node_type *t = cd_registry_get(r, defs[ci].name);
        assert_non_null(t);
        for (size_t vi = 0; vi < sizeof values / sizeof values[0]; vi++) {
            char prompt[2048];
            snprintf(prompt, sizeof prompt,
                     "{`1`: {`class_type`: `VOut`, `inputs`: {`value`: [`2`, 0]}}, `2`: {`class_type`: `%s`, "
                     "`inputs`: {}}}",
                     defs[ci].name);
            json_t *p = J(prompt);
            json_t *val = J(values[vi]);
            json_t *inputs = json_object_get(json_object_get(p, "2"), "inputs");
            for (size_t k = 0; k < t->n_inputs; k++) json_object_set(inputs, t->inputs[k].name, val);
            json_decref(val);
            cd_validation v;
            assert_int_equal(cd_validate_prompt(reg, p, NULL, &v), 0);
            assert_true(json_is_object(v.node_errors));
            if (v.error) {
                assert_true(json_is_string(json_object_get(v.error, "type")));
                assert_true(json_is_string(json_object_get(v.error, "details")));
                assert_int_equal(v.n_outputs, 0);
            } else {
                assert_true(v.n_outputs >= 1); /* VPassOut is an output too */
            }
            char *dump = json_dumps(v.node_errors, 0);
            assert_non_null(dump);
            free(dump);
            cd_validation_clear(&v);
            json_decref(p);
        }
    }
    /* Odd partial targets behave as Python's `in`. */
    const char *one = "{`12`: {`class_type`: `VOut`, `inputs`: {`value`: 5}}}";
    expect(one, "`x12y`", NULL, NULL, "[`12`]", NULL);
    expect(one, "{`12`: 1}", NULL, NULL, "[`12`]", NULL);
    expect(one, "5",
           "{`type`: `prompt_no_outputs`, `message`: `Prompt has no outputs`, `details`: ``, `extra_info`: {}}",
           NULL, NULL, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(garbage_prompts_are_invalid_prompt),
        cmocka_unit_test(no_outputs),
        cmocka_unit_test(required_input_missing),
        cmocka_unit_test(bad_linked_input),
        cmocka_unit_test(broken_links),
        cmocka_unit_test(return_type_mismatch),
        cmocka_unit_test(conversions_written_back),
        cmocka_unit_test(min_and_max),
        cmocka_unit_test(big_integers),
        cmocka_unit_test(value_not_in_list),
        cmocka_unit_test(value_not_in_list_combo_type),
        cmocka_unit_test(value_not_in_list_live_options),
        cmocka_unit_test(custom_validation),
        cmocka_unit_test(cycles),
        cmocka_unit_test(partial_validity),
        cmocka_unit_test(key_order),
        cmocka_unit_test(py_str_helper),
        cmocka_unit_test(long_chain),
        cmocka_unit_test(garbage_values),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
