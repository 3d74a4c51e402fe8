/* The file nodes of ComfyUI's nodes.py: LoadImage, LoadImageMask, LoadImageOutput, SaveImage and
 * PreviewImage, plus EmptyImage, ImageInvert and GetImageSize (comfy_extras.nodes_images). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nodes/image/image.h"

/* ---- LoadImage, LoadImageOutput ---- */

static char *image_files(cd_node_call *call, const char *input) {
    if (strcmp(input, "image")) return NULL;
    return cd_img_list_dir_json(cd_call_directory(call, "input"));
}

/* The file the "image" input names, or NULL after cd_call_fail. */
static char *image_path(cd_node_call *call) {
    const char *name = cd_call_string(call, "image", NULL);
    if (!name) {
        cd_call_fail(call, "ValueError", "image is missing");
        return NULL;
    }
    char *path = cd_img_annotated_path(call, name, "input");
    struct stat st;
    if (!path || stat(path, &st) || !S_ISREG(st.st_mode)) {
        free(path);
        cd_call_fail(call, "FileNotFoundError", "Invalid image file: %s", name);
        return NULL;
    }
    return path;
}

static int load_image(cd_node_call *call) {
    char *path = image_path(call);
    if (!path) return CD_ERROR;
    cd_value *image, *mask;
    int rc = cd_img_load_file(call, path, &image, &mask);
    free(path);
    if (rc != CD_OK) return rc;
    cd_call_set_output(call, 0, image);
    cd_call_set_output(call, 1, mask);
    return CD_OK;
}

/* IS_CHANGED: the file's sha256, so a changed file under the same name runs again. */
static cd_value *image_fingerprint(cd_node_call *call) {
    const char *name = cd_call_string(call, "image", NULL);
    char *path = name ? cd_img_annotated_path(call, name, "input") : NULL;
    char hex[65];
    cd_value *v = path && cd_img_file_sha256(path, hex) == CD_OK ? cd_value_string(hex) : cd_value_string("");
    free(path);
    return v;
}

/* VALIDATE_INPUTS(image): "Invalid image file: <name>" when it does not exist. */
static int image_validate(cd_node_call *call) {
    const char *name = cd_call_string(call, "image", NULL);
    if (!name) return CD_OK; /* linked: checked when it runs */
    char *path = cd_img_annotated_path(call, name, "input");
    struct stat st;
    bool ok = path && !stat(path, &st) && S_ISREG(st.st_mode);
    free(path);
    return ok ? CD_OK : cd_call_fail(call, NULL, "Invalid image file: %s", name);
}

/* ---- LoadImageMask ---- */

static int load_image_mask(cd_node_call *call) {
    char *path = image_path(call);
    if (!path) return CD_ERROR;
    const char *channel = cd_call_string(call, "channel", "alpha");
    VipsImage *in = vips_image_new_from_file(path, NULL);
    free(path);
    if (!in) return cd_img_fail_vips(call, "cannot read the image");
    /* Pillow's convert("RGBA"): grey spreads to R, G, B; a missing alpha is opaque. */
    VipsImage *rot = NULL, *u8 = NULL;
    int rc = vips_autorot(in, &rot, NULL);
    g_object_unref(in);
    if (rc) return cd_img_fail_vips(call, "cannot decode the image");
    if (vips_image_get_format(rot) == VIPS_FORMAT_USHORT) {
        VipsImage *t = NULL;
        rc = vips_rshift_const1(rot, &t, 8, NULL) || vips_cast(t, &u8, VIPS_FORMAT_UCHAR, NULL);
        if (t) g_object_unref(t);
    } else {
        rc = vips_cast(rot, &u8, VIPS_FORMAT_UCHAR, NULL);
    }
    g_object_unref(rot);
    if (rc) return cd_img_fail_vips(call, "cannot decode the image");
    int bands = vips_image_get_bands(u8);
    bool alpha = vips_image_hasalpha(u8);
    int colour_bands = alpha ? bands - 1 : bands;
    int want = channel[0] == 'r' ? 0 : channel[0] == 'g' ? 1 : channel[0] == 'b' ? 2 : 3;
    int band = want == 3 ? (alpha ? bands - 1 : -1) : colour_bands == 1 ? 0 : want;
    int64_t h = vips_image_get_height(u8), w = vips_image_get_width(u8);
    cd_value *mask = cd_mask_new(call, 1, h, w);
    VipsImage *one = NULL;
    unsigned char *px = NULL;
    size_t size;
    if (mask && band >= 0 && !vips_extract_band(u8, &one, band, NULL)) px = vips_image_write_to_memory(one, &size);
    if (one) g_object_unref(one);
    g_object_unref(u8);
    if (!mask) return CD_ERROR;
    float *d = cd_value_tensor_data_mut(mask);
    if (band >= 0 && !px) {
        cd_value_unref(mask);
        return cd_img_fail_vips(call, "cannot decode the image");
    }
    /* mask = channel / 255, and 1 - that for alpha; no alpha channel reads as opaque. */
    for (size_t i = 0, n = (size_t)(h * w); i < n; i++) {
        float v = px ? (float)px[i] / 255.0f : 1.0f;
        d[i] = want == 3 ? 1.0f - v : v;
    }
    g_free(px);
    return cd_call_set_output(call, 0, mask);
}

/* ---- SaveImage, PreviewImage ---- */

static int save_image(cd_node_call *call) {
    const cd_value *images = cd_call_input(call, "images");
    const char *prefix = cd_call_string(call, "filename_prefix", "ComfyUI");
    return cd_img_save_batch(call, images, "output", prefix, 4);
}

static int preview_image(cd_node_call *call) {
    /* "ComfyUI_temp_" + 5 random letters, as PreviewImage's prefix_append */
    static const char letters[] = "abcdefghijklmnopqrstupvxyz";
    char prefix[32] = "ComfyUI_temp_";
    size_t n = strlen(prefix);
    for (int i = 0; i < 5; i++) prefix[n + (size_t)i] = letters[g_random_int_range(0, (int)sizeof letters - 1)];
    prefix[n + 5] = '\0';
    return cd_img_save_batch(call, cd_call_input(call, "images"), "temp", prefix, 1);
}

/* ---- EmptyImage, ImageInvert, GetImageSize ---- */

static int empty_image(cd_node_call *call) {
    int64_t w = cd_call_int(call, "width", 512), h = cd_call_int(call, "height", 512);
    int64_t b = cd_call_int(call, "batch_size", 1), color = cd_call_int(call, "color", 0);
    cd_value *out = cd_img_new(call, b, h, w, 3);
    if (!out) return CD_ERROR;
    /* torch.full(..., ((color >> 16) & 0xFF) / 0xFF): the quotient in double, stored as float32 */
    float rgb[3] = {(float)(((color >> 16) & 0xFF) / 255.0), (float)(((color >> 8) & 0xFF) / 255.0),
                    (float)((color & 0xFF) / 255.0)};
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0, n = (size_t)(b * h * w); i < n; i++) memcpy(d + 3 * i, rgb, sizeof rgb);
    return cd_call_set_output(call, 0, out);
}

static int image_invert(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    cd_value *out = cd_img_new(call, s.b, s.h, s.w, s.c);
    if (!out) return CD_ERROR;
    const float *src = cd_value_tensor_data(in);
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0, n = cd_value_tensor_numel(in); i < n; i++) d[i] = 1.0f - src[i];
    return cd_call_set_output(call, 0, out);
}

static int get_image_size(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    char text[128];
    snprintf(text, sizeof text, "width: %lld, height: %lld\n batch size: %lld", (long long)s.w, (long long)s.h,
             (long long)s.b);
    cd_call_send_text(call, text);
    cd_call_set_output(call, 0, cd_value_int(s.w));
    cd_call_set_output(call, 1, cd_value_int(s.h));
    return cd_call_set_output(call, 2, cd_value_int(s.b));
}

/* ---- definitions ---- */

static const cd_output_def image_mask_out[] = {{"IMAGE", NULL, 0, NULL, NULL}, {"MASK", NULL, 0, NULL, NULL}};
static const cd_output_def mask_out[] = {{"MASK", NULL, 0, NULL, NULL}};
static const cd_output_def image_out[] = {{"IMAGE", NULL, 0, NULL, NULL}};
static const cd_output_def size_out[] = {
    {"INT", "width", 0, NULL, NULL}, {"INT", "height", 0, NULL, NULL}, {"INT", "batch_size", 0, NULL, NULL}};

#define SAVE_TOOLTIP_PREFIX                                                                                           \
    "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or "         \
    "%Empty Latent Image.width% to include values from nodes."

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "LoadImage", .display_name = "Load Image", .category = "image",
     .python_module = "nodes", .inputs = "{\"required\": {\"image\": [[], {\"image_upload\": true}]}}",
     .outputs = image_mask_out, .n_outputs = 2, .execute = load_image, .fingerprint = image_fingerprint,
     .validate_inputs = image_validate, .validate_inputs_args = "image", .combo_options = image_files},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "LoadImageMask", .display_name = "Load Image (as Mask)",
     .category = "mask", .python_module = "nodes",
     .inputs = "{\"required\": {\"image\": [[], {\"image_upload\": true}], "
               "\"channel\": [[\"alpha\", \"red\", \"green\", \"blue\"]]}}",
     .outputs = mask_out, .n_outputs = 1, .execute = load_image_mask, .fingerprint = image_fingerprint,
     .validate_inputs = image_validate, .validate_inputs_args = "image", .combo_options = image_files},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "LoadImageOutput", .display_name = "Load Image (from Outputs)",
     .category = "image", .python_module = "nodes",
     .description = "Load an image from the output folder. When the refresh button is clicked, the node will update "
                    "the image list and automatically select the first image, allowing for easy iteration.",
     .inputs = "{\"required\": {\"image\": [\"COMBO\", {\"image_upload\": true, \"image_folder\": \"output\", "
               "\"remote\": {\"route\": \"/internal/files/output\", \"refresh_button\": true, "
               "\"control_after_refresh\": \"first\"}}]}}",
     .outputs = image_mask_out, .n_outputs = 2, .flags = CD_NODE_EXPERIMENTAL, .execute = load_image,
     .fingerprint = image_fingerprint, .validate_inputs = image_validate, .validate_inputs_args = "image"},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "SaveImage", .display_name = "Save Image", .category = "image",
     .python_module = "nodes", .description = "Saves the input images to your ComfyUI output directory.",
     .inputs = "{\"required\": {\"images\": [\"IMAGE\", {\"tooltip\": \"The images to save.\"}], "
               "\"filename_prefix\": [\"STRING\", {\"default\": \"ComfyUI\", \"tooltip\": \"" SAVE_TOOLTIP_PREFIX
               "\"}]}, \"hidden\": {\"prompt\": \"PROMPT\", \"extra_pnginfo\": \"EXTRA_PNGINFO\"}}",
     .flags = CD_NODE_OUTPUT, .execute = save_image},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "PreviewImage", .display_name = "Preview Image", .category = "image",
     .python_module = "nodes", .description = "Saves the input images to your ComfyUI output directory.",
     .inputs = "{\"required\": {\"images\": [\"IMAGE\"]}, \"hidden\": {\"prompt\": \"PROMPT\", \"extra_pnginfo\": "
               "\"EXTRA_PNGINFO\"}}",
     .flags = CD_NODE_OUTPUT, .execute = preview_image},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "EmptyImage", .display_name = "EmptyImage", .category = "image",
     .python_module = "nodes",
     .inputs = "{\"required\": {\"width\": [\"INT\", {\"default\": 512, \"min\": 1, \"max\": 16384, \"step\": 1}], "
               "\"height\": [\"INT\", {\"default\": 512, \"min\": 1, \"max\": 16384, \"step\": 1}], "
               "\"batch_size\": [\"INT\", {\"default\": 1, \"min\": 1, \"max\": 4096}], "
               "\"color\": [\"INT\", {\"default\": 0, \"min\": 0, \"max\": 16777215, \"step\": 1, \"display\": "
               "\"color\"}]}}",
     .outputs = image_out, .n_outputs = 1, .execute = empty_image},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "ImageInvert", .display_name = "Invert Image", .category = "image",
     .python_module = "nodes", .inputs = "{\"required\": {\"image\": [\"IMAGE\"]}}", .outputs = image_out,
     .n_outputs = 1, .execute = image_invert},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "GetImageSize", .display_name = "Get Image Size",
     .category = "image", .python_module = "comfy_extras.nodes_images",
     .description = "Returns width and height of the image, and passes it through unchanged.",
     .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}]}, \"hidden\": {\"unique_id\": [\"UNIQUE_ID\"]}}",
     .outputs = size_out, .n_outputs = 3, .flags = CD_NODE_V3_INFO, .execute = get_image_size},
};

int cd_nodes_image_io_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
