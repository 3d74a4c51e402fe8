/* An example comfyd node pack, installed by the manager from the bundled channel and built at
 * install time against include/comfyd/node.h (the manager passes its folder as $COMFYD_INCLUDE). */
#include <comfyd/node.h>
#include <stdlib.h>
#include <string.h>

static int reverse_execute(cd_node_call *call) {
    const char *text = cd_call_string(call, "text", "");
    size_t n = strlen(text);
    char *out = malloc(n + 1);
    if (!out) return cd_call_fail(call, "MemoryError", "out of memory");
    for (size_t i = 0; i < n; i++) out[i] = text[n - 1 - i];
    out[n] = 0;
    cd_value *v = cd_value_string(out);
    free(out);
    return cd_call_set_output(call, 0, v);
}

static int length_execute(cd_node_call *call) {
    return cd_call_set_output(call, 0, cd_value_int((int64_t)strlen(cd_call_string(call, "text", ""))));
}

static const cd_output_def reverse_out[] = {{"STRING", "text", 0, "the text, reversed", NULL}};
static const cd_output_def length_out[] = {{"INT", "length", 0, "bytes in the text", NULL}};

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "ExampleReverseText", .display_name = "Reverse Text",
     .category = "example/text", .description = "Reverses the bytes of a text.",
     .inputs = "{\"required\": {\"text\": [\"STRING\", {\"default\": \"hello\"}]}}",
     .outputs = reverse_out, .n_outputs = 1, .execute = reverse_execute},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "ExampleTextLength", .display_name = "Text Length",
     .category = "example/text", .description = "The length of a text in bytes.",
     .inputs = "{\"required\": {\"text\": [\"STRING\", {\"default\": \"hello\"}]}}",
     .outputs = length_out, .n_outputs = 1, .execute = length_execute},
};

int comfyd_pack_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
