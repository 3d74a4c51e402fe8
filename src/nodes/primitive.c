/* PrimitiveInt, PrimitiveFloat, PrimitiveString, PrimitiveStringMultiline, PrimitiveBoolean
 * (comfy_extras.nodes_primitive): each passes its widget value through. */
#include "comfyd/node.h"

static int pass_value(cd_node_call *call) {
    const cd_value *v = cd_call_input(call, "value");
    if (!v) return cd_call_fail(call, "ValueError", "value is missing");
    return cd_call_set_output(call, 0, cd_value_ref(v));
}

static const cd_output_def int_out[] = {{"INT", NULL, 0, NULL, NULL}};
static const cd_output_def float_out[] = {{"FLOAT", NULL, 0, NULL, NULL}};
static const cd_output_def string_out[] = {{"STRING", NULL, 0, NULL, NULL}};
static const cd_output_def bool_out[] = {{"BOOLEAN", NULL, 0, NULL, NULL}};

#define PRIMITIVE(NAME, DISPLAY, INPUTS, OUTS)                                                                        \
    {.abi_version = CD_NODE_ABI_VERSION, .name = NAME, .display_name = DISPLAY, .category = "utils/primitive",        \
     .inputs = INPUTS, .outputs = OUTS, .n_outputs = 1, .flags = CD_NODE_V3_INFO, .execute = pass_value}

static const cd_node_def defs[] = {
    PRIMITIVE("PrimitiveString", "String", "{\"required\": {\"value\": [\"STRING\", {\"multiline\": false}]}}",
              string_out),
    PRIMITIVE("PrimitiveStringMultiline", "String (Multiline)",
              "{\"required\": {\"value\": [\"STRING\", {\"multiline\": true}]}}", string_out),
    PRIMITIVE("PrimitiveInt", "Int",
              "{\"required\": {\"value\": [\"INT\", {\"min\": -9223372036854775807, \"max\": 9223372036854775807, "
              "\"control_after_generate\": true}]}}",
              int_out),
    PRIMITIVE("PrimitiveFloat", "Float",
              "{\"required\": {\"value\": [\"FLOAT\", {\"min\": -9223372036854775807, \"max\": 9223372036854775807, "
              "\"step\": 0.1}]}}",
              float_out),
    PRIMITIVE("PrimitiveBoolean", "Boolean", "{\"required\": {\"value\": [\"BOOLEAN\", {}]}}", bool_out),
};

int cd_nodes_primitive_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
