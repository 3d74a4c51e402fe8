/* The image pack: the image, mask, transform and dataset nodes of ComfyUI core, one file per
 * group, registered together after libvips is started. */
#include <vips/vips.h>

#include "nodes/image/image.h"

int cd_nodes_image_io_init(cd_pack *pack);
int cd_nodes_image_dataset_init(cd_pack *pack);
int cd_nodes_image_filters_init(cd_pack *pack);

int cd_nodes_image_init(cd_pack *pack) {
    if (VIPS_INIT("comfyd")) return CD_ERROR;
    /* comfyd caches node outputs itself; libvips' operation cache would only keep tensors
     * (and their memory) alive behind the engine's back. */
    vips_cache_set_max(0);
    int (*groups[])(cd_pack *) = {
        cd_nodes_image_io_init,
        cd_nodes_image_dataset_init,
        cd_nodes_image_filters_init,
    };
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        if (groups[i](pack) != CD_OK) return CD_ERROR;
    return CD_OK;
}
