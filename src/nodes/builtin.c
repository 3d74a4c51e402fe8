#include "nodes/builtin.h"

#include <stddef.h>

int cd_nodes_primitive_init(cd_pack *pack);
int cd_nodes_string_init(cd_pack *pack);
int cd_nodes_logic_init(cd_pack *pack);
int cd_nodes_preview_any_init(cd_pack *pack);
int cd_nodes_dataset_text_init(cd_pack *pack);
int cd_nodes_math_init(cd_pack *pack);
int cd_nodes_image_init(cd_pack *pack);
int cd_nodes_vips_init(cd_pack *pack);

const cd_builtin_pack cd_builtin_packs[] = {
    {"primitive", "comfy_extras.nodes_primitive", cd_nodes_primitive_init},
    {"string", "comfy_extras.nodes_string", cd_nodes_string_init},
    {"logic", "comfy_extras.nodes_logic", cd_nodes_logic_init},
    {"preview_any", "comfy_extras.nodes_preview_any", cd_nodes_preview_any_init},
    {"dataset_text", "comfy_extras.nodes_dataset", cd_nodes_dataset_text_init},
    {"math", "comfyd.nodes_math", cd_nodes_math_init},
    {"image", "nodes", cd_nodes_image_init},
    {"vips", "comfyd.nodes_vips", cd_nodes_vips_init},
    {NULL, NULL, NULL},
};
