/* A pack with mistakes: bad input JSON, a wrong ABI version, a name that is taken. Each bad
 * node must be reported and left out; the good one and the server must be fine. */
#include <comfyd/node.h>

static int noop(cd_node_call *call) { return cd_call_set_output(call, 0, cd_value_int(1)); }
static const cd_output_def out[] = {{"INT", NULL, 0, NULL, NULL}};

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "BrokenBadJson", .inputs = "{\"required\": {", .outputs = out,
     .n_outputs = 1, .execute = noop},
    {.abi_version = CD_NODE_ABI_VERSION + 1, .name = "BrokenFutureAbi", .inputs = "{}", .outputs = out, .n_outputs = 1,
     .execute = noop},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "PrimitiveInt", .inputs = "{}", .outputs = out, .n_outputs = 1,
     .execute = noop},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "BrokenPackGood", .category = "example",
     .inputs = "{\"required\": {}}", .outputs = out, .n_outputs = 1, .execute = noop},
};

int comfyd_pack_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
