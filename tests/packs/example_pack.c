/* A node pack as a third party would write it: one file, the public header, one export. */
#include <comfyd/node.h>

static int repeat_execute(cd_node_call *call) {
    const char *text = cd_call_string(call, "text", "");
    int64_t times = cd_call_int(call, "times", 1);
    cd_value *list = cd_value_list_new((size_t)times);
    for (int64_t i = 0; i < times; i++) cd_value_list_push(list, cd_value_string(text));
    return cd_call_set_output(call, 0, list);
}

static const cd_output_def repeat_out[] = {{"STRING", "texts", 1, "the text, repeated", NULL}};

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "ExampleRepeat", .display_name = "Repeat Text",
     .category = "example", .description = "Outputs a list holding the text `times` times.",
     .inputs = "{\"required\": {\"text\": [\"STRING\", {\"default\": \"hi\"}], "
               "\"times\": [\"INT\", {\"default\": 2, \"min\": 1, \"max\": 100}]}}",
     .outputs = repeat_out, .n_outputs = 1, .execute = repeat_execute},
};

int comfyd_pack_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
