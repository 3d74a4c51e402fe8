/* A pack whose node sends a preview image (cd_call_send_preview), for the tests of ComfyUI's
 * binary preview frames over the WebSocket. The image bytes are opaque to the server: the
 * test checks that they arrive unchanged after the frame header. */
#include <comfyd/node.h>
#include <string.h>

static const unsigned char fake_png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 'c', 'o', 'm', 'f', 'y', 'd'};
static const unsigned char fake_jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 'c', 'o', 'm', 'f', 'y', 'd', 0xff, 0xd9};

static int send_execute(cd_node_call *call) {
    const char *format = cd_call_string(call, "format", "PNG");
    if (strcmp(format, "JPEG") == 0) return cd_call_send_preview(call, "image/jpeg", fake_jpeg, sizeof fake_jpeg);
    return cd_call_send_preview(call, "image/png", fake_png, sizeof fake_png);
}

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "TestSendPreview", .category = "testing",
     .description = "Sends a tiny preview image over the WebSocket.",
     .inputs = "{\"required\": {\"format\": [[\"PNG\", \"JPEG\"]], \"seed\": [\"INT\", {\"default\": 0}]}}",
     .outputs = NULL, .n_outputs = 0, .flags = CD_NODE_OUTPUT, .execute = send_execute},
};

int comfyd_pack_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
