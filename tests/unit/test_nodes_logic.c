/* ComfySwitchNode (lazy: asks only for the selected branch) and CustomCombo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "engine/call.h"
#include "engine/registry.h"

int cd_nodes_logic_init(cd_pack *pack);

static int setup(void **state) {
    cd_registry *reg = cd_registry_new();
    if (cd_registry_add_pack(reg, "logic", "comfy_extras.nodes_logic", cd_nodes_logic_init) != 2) return -1;
    *state = reg;
    return 0;
}

static int teardown(void **state) {
    cd_registry_free(*state);
    return 0;
}

/* A switch call; on_false / on_true NULL means linked but not evaluated yet. */
static void switch_call(cd_node_call *call, const cd_registry *reg, const cd_value *sw, const cd_value *on_false,
                        const cd_value *on_true) {
    const cd_node_type *t = cd_registry_get(reg, "ComfySwitchNode");
    assert_non_null(t);
    cd_call_init(call, t, NULL, "1", 0);
    cd_call_add_input(call, "switch", sw, NULL);
    cd_call_add_input(call, "on_false", on_false, NULL);
    cd_call_add_input(call, "on_true", on_true, NULL);
}

static void expect_needed(cd_node_call *call, const char *name) {
    assert_int_equal(call->type->def->check_lazy_status(call), CD_OK);
    if (!name) {
        assert_int_equal(call->n_needed, 0);
        return;
    }
    assert_int_equal(call->n_needed, 1);
    assert_string_equal(call->needed[0], name);
}

static void test_switch_lazy(void **state) {
    cd_registry *reg = *state;
    cd_value *yes = cd_value_bool(1), *no = cd_value_bool(0), *a = cd_value_string("a"), *b = cd_value_int(2);
    cd_value *none = cd_value_none();
    const cd_node_type *t = cd_registry_get(reg, "ComfySwitchNode");
    assert_true(cd_node_type_input(t, "on_false")->lazy);
    assert_true(cd_node_type_input(t, "on_true")->lazy);
    assert_false(cd_node_type_input(t, "switch")->lazy);

    cd_node_call call;
    switch_call(&call, reg, yes, NULL, NULL); /* only the true branch is asked for */
    expect_needed(&call, "on_true");
    cd_call_clear(&call);
    switch_call(&call, reg, no, NULL, NULL);
    expect_needed(&call, "on_false");
    cd_call_clear(&call);
    switch_call(&call, reg, yes, NULL, a); /* evaluated: nothing more to ask */
    expect_needed(&call, NULL);
    cd_call_clear(&call);
    switch_call(&call, reg, no, b, NULL);
    expect_needed(&call, NULL);
    cd_call_clear(&call);
    /* Python's check reads "is None": an evaluated None is asked for again (the engine then
     * sees it has the value) */
    switch_call(&call, reg, yes, NULL, none);
    expect_needed(&call, "on_true");
    cd_call_clear(&call);
    cd_value_unref(yes);
    cd_value_unref(no);
    cd_value_unref(a);
    cd_value_unref(b);
    cd_value_unref(none);
}

static void test_switch_execute(void **state) {
    cd_registry *reg = *state;
    cd_value *yes = cd_value_bool(1), *no = cd_value_bool(0), *a = cd_value_string("a"), *b = cd_value_int(2);
    cd_node_call call;
    switch_call(&call, reg, yes, b, a);
    assert_int_equal(call.type->def->execute(&call), CD_OK);
    assert_ptr_equal(call.outputs[0], a); /* passed on by reference, not copied */
    cd_call_clear(&call);
    switch_call(&call, reg, no, b, a);
    assert_int_equal(call.type->def->execute(&call), CD_OK);
    assert_ptr_equal(call.outputs[0], b);
    cd_call_clear(&call);
    /* the unselected branch is never needed */
    switch_call(&call, reg, no, b, NULL);
    assert_int_equal(call.type->def->execute(&call), CD_OK);
    assert_ptr_equal(call.outputs[0], b);
    cd_call_clear(&call);
    cd_value_unref(yes);
    cd_value_unref(no);
    cd_value_unref(a);
    cd_value_unref(b);
}

static void test_custom_combo(void **state) {
    cd_registry *reg = *state;
    const cd_node_type *t = cd_registry_get(reg, "CustomCombo");
    assert_non_null(t);
    /* the options are the user's: validate_inputs takes "choice", so no combo check runs */
    assert_true(cd_node_type_validates(t, "choice"));
    json_t *constants = json_pack("{s:s}", "choice", "my own option");
    json_t *types = json_object();
    char *message = NULL;
    assert_int_equal(cd_call_run_validate(t, NULL, constants, types, &message), CD_OK);
    free(message);
    json_decref(constants);
    json_decref(types);

    cd_value *choice = cd_value_string("my own option");
    cd_node_call call;
    cd_call_init(&call, t, NULL, "1", 0);
    cd_call_add_input(&call, "choice", choice, NULL);
    assert_int_equal(t->def->execute(&call), CD_OK);
    assert_string_equal(cd_value_as_string(call.outputs[0]), "my own option");
    cd_call_clear(&call);
    cd_value_unref(choice);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch_lazy),
        cmocka_unit_test(test_switch_execute),
        cmocka_unit_test(test_custom_combo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
