/* stubs.py: constant images, masks and numbers. */
#include <stdlib.h>
#include <string.h>

#include "tp.h"

#define SIZE_INPUTS                                                                                         \
    "\"height\": [\"INT\", {\"default\": 512, \"min\": 1, \"max\": 1073741824, \"step\": 1}], "            \
    "\"width\": [\"INT\", {\"default\": 512, \"min\": 1, \"max\": 68719476736, \"step\": 1}], "            \
    "\"batch_size\": [\"INT\", {\"default\": 1, \"min\": 1, \"max\": 1073741824, \"step\": 1}]"

static int stub_image(cd_node_call *call) {
    const char *content = cd_call_string(call, "content", "WHITE");
    int64_t shape[4] = {cd_call_int(call, "batch_size", 1), cd_call_int(call, "height", 512),
                        cd_call_int(call, "width", 512), 3};
    cd_value *t = cd_value_tensor_new("IMAGE", 4, shape);
    if (!t) return cd_call_fail(call, "RuntimeError", "cannot allocate a tensor of that size");
    float *d = cd_value_tensor_data_mut(t);
    size_t n = cd_value_tensor_numel(t);
    if (!strcmp(content, "WHITE"))
        for (size_t i = 0; i < n; i++) d[i] = 1.0f;
    else if (!strcmp(content, "NOISE")) /* torch.rand: uniform in [0, 1); no seed to match */
        for (size_t i = 0; i < n; i++) d[i] = (float)(random() >> 7) / (float)(1u << 24);
    return cd_call_set_output(call, 0, t);
}

static cd_value *filled(cd_node_call *call, const char *type, int ndim, double value) {
    int64_t shape[4] = {cd_call_int(call, "batch_size", 1), cd_call_int(call, "height", 512),
                        cd_call_int(call, "width", 512), 3};
    cd_value *t = cd_value_tensor_new(type, ndim, shape);
    if (!t) return NULL;
    float *d = cd_value_tensor_data_mut(t);
    size_t n = cd_value_tensor_numel(t);
    float v = (float)value; /* torch.ones(...) * value */
    for (size_t i = 0; i < n; i++) d[i] = 1.0f * v;
    return t;
}

static int stub_constant_image(cd_node_call *call) {
    cd_value *t = filled(call, "IMAGE", 4, cd_call_float(call, "value", 0.5));
    if (!t) return cd_call_fail(call, "RuntimeError", "cannot allocate a tensor of that size");
    return cd_call_set_output(call, 0, t);
}

static int stub_mask(cd_node_call *call) {
    cd_value *t = filled(call, "MASK", 3, cd_call_float(call, "value", 0.5));
    if (!t) return cd_call_fail(call, "RuntimeError", "cannot allocate a tensor of that size");
    return cd_call_set_output(call, 0, t);
}

static int stub_pass(cd_node_call *call) {
    const cd_value *v = cd_call_input(call, "value");
    return cd_call_set_output(call, 0, v ? cd_value_ref(v) : cd_value_none());
}

static const cd_output_def out_image[] = {{"IMAGE", NULL, 0, NULL, NULL}};
static const cd_output_def out_mask[] = {{"MASK", NULL, 0, NULL, NULL}};
static const cd_output_def out_int[] = {{"INT", NULL, 0, NULL, NULL}};
static const cd_output_def out_float[] = {{"FLOAT", NULL, 0, NULL, NULL}};

#define STUB(cls, disp, ins, outs, fn)                                                                        \
    {.abi_version = CD_NODE_ABI_VERSION, .name = cls, .display_name = disp, .category = "Testing/Stub Nodes", \
     .python_module = TP_MODULE, .inputs = ins, .outputs = outs, .n_outputs = 1, .execute = fn}

static const cd_node_def defs[] = {
    STUB("StubImage", "Stub Image",
         "{\"required\": {\"content\": [[\"WHITE\", \"BLACK\", \"NOISE\"]], " SIZE_INPUTS "}}", out_image,
         stub_image),
    STUB("StubConstantImage", "Stub Constant Image",
         "{\"required\": {\"value\": [\"FLOAT\", {\"default\": 0.5, \"min\": 0.0, \"max\": 1.0, \"step\": 0.01}], "
         SIZE_INPUTS "}}",
         out_image, stub_constant_image),
    STUB("StubMask", "Stub Mask",
         "{\"required\": {\"value\": [\"FLOAT\", {\"default\": 0.5, \"min\": 0.0, \"max\": 1.0, \"step\": 0.01}], "
         SIZE_INPUTS "}}",
         out_mask, stub_mask),
    STUB("StubInt", "Stub Int",
         "{\"required\": {\"value\": [\"INT\", {\"default\": 0, \"min\": -4294967295, \"max\": 4294967295, "
         "\"step\": 1}]}}",
         out_int, stub_pass),
    STUB("StubFloat", "Stub Float",
         "{\"required\": {\"value\": [\"FLOAT\", {\"default\": 0.0, \"min\": -1e+38, \"max\": 1e+38, "
         "\"step\": 0.01}]}}",
         out_float, stub_pass),
};

void tp_register_stubs(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
}
