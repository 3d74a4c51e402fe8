/* ComfySwitchNode and CustomCombo (comfy_extras.nodes_logic).
 *
 * ComfySwitchNode passes on one of two lazy inputs: check_lazy_status asks only for the branch
 * the switch selects, so the other branch's nodes never run. Its inputs and output have the V3
 * MatchType "COMFY_MATCHTYPE_V3" (the frontend narrows them to whatever gets connected).
 *
 * CustomCombo is a frontend node whose options the user writes; the backend only returns the
 * choice. Its combo declares no options, so validate_inputs takes "choice" (as ComfyUI's does,
 * returning True) and the engine skips the "value not in list" check for it. */
#include "comfyd/node.h"

/* check_lazy_status(switch, on_false=None, on_true=None): ask for the selected branch while
 * it reads None (unevaluated; an evaluated None asks again, which the engine ignores, as
 * ComfyUI does). */
static int switch_lazy(cd_node_call *call) {
    const char *name = cd_call_bool(call, "switch", 0) ? "on_true" : "on_false";
    const cd_value *v = cd_call_input(call, name);
    if (!v || cd_value_kind_of(v) == CD_VALUE_NONE) return cd_call_need_input(call, name);
    return CD_OK;
}

static int switch_execute(cd_node_call *call) {
    const cd_value *v = cd_call_input(call, cd_call_bool(call, "switch", 0) ? "on_true" : "on_false");
    return cd_call_set_output(call, 0, v ? cd_value_ref(v) : cd_value_none());
}

static int combo_validate(cd_node_call *call) { return CD_OK; }

static int combo_execute(cd_node_call *call) {
    const cd_value *v = cd_call_input(call, "choice");
    return cd_call_set_output(call, 0, v ? cd_value_ref(v) : cd_value_none());
}

/* ComfyUI lists output_matchtypes ["switch"] for the switch's output; the registry emits null
 * for every node (a known difference, listed in the unit test). */
static const cd_output_def switch_out[] = {{"COMFY_MATCHTYPE_V3", "output", 0, NULL, "switch"}};
static const cd_output_def combo_out[] = {{"STRING", NULL, 0, NULL, NULL}};

#define MATCHTYPE "[\"COMFY_MATCHTYPE_V3\", {\"lazy\": true, \"template\": {\"template_id\": \"switch\", \"allowed_types\": \"*\"}}]"

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "ComfySwitchNode", .display_name = "Switch", .category = "logic",
     .python_module = "comfy_extras.nodes_logic",
     .inputs = "{\"required\": {\"switch\": [\"BOOLEAN\", {}], \"on_false\": " MATCHTYPE ", \"on_true\": " MATCHTYPE "}}",
     .outputs = switch_out, .n_outputs = 1, .flags = CD_NODE_V3_INFO | CD_NODE_EXPERIMENTAL,
     .execute = switch_execute, .check_lazy_status = switch_lazy},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "CustomCombo", .display_name = "Custom Combo", .category = "utils",
     .python_module = "comfy_extras.nodes_logic",
     .inputs = "{\"required\": {\"choice\": [\"COMBO\", {\"multiselect\": false, \"options\": []}]}}",
     .outputs = combo_out, .n_outputs = 1, .flags = CD_NODE_V3_INFO | CD_NODE_EXPERIMENTAL, .execute = combo_execute,
     .validate_inputs = combo_validate, .validate_inputs_args = "choice"},
};

int cd_nodes_logic_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
