/* What the image nodes share: IMAGE and MASK tensors (include/comfyd/node.h, Tensors) seen as
 * libvips images and back, reading image files the way ComfyUI's LoadImage does, writing PNGs
 * the way its SaveImage does, and ComfyUI's output file naming.
 *
 * Layouts, as in ComfyUI: IMAGE is [B, H, W, C] float32 0..1 (C = 3, or 4 with alpha), MASK is
 * [B, H, W] (a bare [H, W] is read as one mask). Pixel formulas follow ComfyUI's numpy/torch
 * code in float32, so results match it to the bit where the issue asks for pixel-exact tests.
 */
#ifndef CD_NODES_IMAGE_H
#define CD_NODES_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vips/vips.h>

#include "comfyd/node.h"

/* ---- shapes ---- */

/* An IMAGE's dimensions; false (after cd_call_fail naming `input`) when v is not an IMAGE-shaped
 * tensor. */
typedef struct {
    int64_t b, h, w, c;
} cd_img_shape;
bool cd_img_shape_of(cd_node_call *call, const char *input, const cd_value *v, cd_img_shape *s);
/* A MASK's dimensions ([H, W] counts as b = 1, c = 1). */
bool cd_mask_shape_of(cd_node_call *call, const char *input, const cd_value *v, cd_img_shape *s);

/* The tensor input `name` as an IMAGE / MASK, failing the call when absent or mis-shaped. */
const cd_value *cd_img_input(cd_node_call *call, const char *name, cd_img_shape *s);
const cd_value *cd_mask_input(cd_node_call *call, const char *name, cd_img_shape *s);

/* New zero-filled IMAGE [b, h, w, c] / MASK [b, h, w]; NULL after cd_call_fail when too big. */
cd_value *cd_img_new(cd_node_call *call, int64_t b, int64_t h, int64_t w, int64_t c);
cd_value *cd_mask_new(cd_node_call *call, int64_t b, int64_t h, int64_t w);

/* ---- libvips ---- */

/* Image `index` of a batch as a float VipsImage of c bands (1 for a MASK), over the tensor's
 * own memory: no copy. The VipsImage holds a reference to the value until it is unreffed. */
VipsImage *cd_img_to_vips(const cd_value *t, int64_t index);
/* A VipsImage (any format; cast to float) as a one-image IMAGE [1, H, W, bands], or with
 * as_mask a MASK [1, H, W] from its first band. NULL when libvips fails (vips_error_buffer says
 * why). The pixels are computed into memory that the tensor then owns. */
cd_value *cd_img_from_vips(VipsImage *im, bool as_mask);
/* Concatenates one-image tensors along the batch axis; takes over the items of `parts`.
 * They must share H, W (and C); NULL after cd_call_fail otherwise. */
cd_value *cd_img_cat(cd_node_call *call, cd_value **parts, size_t n);
/* Fails the call with libvips' last error message. Returns CD_ERROR. */
int cd_img_fail_vips(cd_node_call *call, const char *what);

/* ---- files ---- */

/* LoadImage: every frame of the file with the first frame's size, as RGB, and its mask
 * (1 - alpha, or 64x64 zeros without alpha). *image and *mask are new references. */
int cd_img_load_file(cd_node_call *call, const char *path, cd_value **image, cd_value **mask);
/* A file's sha256 as lowercase hex (65 bytes): LoadImage's IS_CHANGED. */
int cd_img_file_sha256(const char *path, char hex[65]);
/* Resolves "name", "sub/name" or "name [output]" as ComfyUI's annotated file paths do, confined
 * to the directory of that type (default_type when unannotated). Returns a malloc'd path or NULL
 * (missing directory, escape attempt). */
char *cd_img_annotated_path(cd_node_call *call, const char *name, const char *default_type);
/* Lists the image files at the top of a directory, sorted, as a JSON array text (malloc'd). */
char *cd_img_list_dir_json(const char *dir);

/* A PNG of 8-bit samples, uint8(clip(255 * v, 0, 255)) truncated as ComfyUI's SaveImage, with
 * tEXt chunks (keys[i], values[i]) and zlib level 0..9. Written to a temporary name then renamed. */
typedef struct {
    const char *key, *text;
} cd_png_text;
int cd_img_write_png(const char *path, const float *pixels, int64_t h, int64_t w, int64_t c, const cd_png_text *texts,
                     size_t n_texts, int compress_level, char *err, size_t errlen);

/* ComfyUI's folder_paths.get_save_image_path: %width%/%height%/%year%... substitutions, the
 * subfolder from the prefix, confinement to dir, and the next free counter. */
typedef struct {
    char *folder;    /* absolute folder to write into (created) */
    char *filename;  /* basename prefix */
    char *subfolder; /* relative to dir, "" for none */
    long counter;
} cd_save_path;
int cd_img_save_path(cd_node_call *call, const char *dir, const char *prefix, int64_t width, int64_t height,
                     cd_save_path *out);
void cd_save_path_free(cd_save_path *p);

/* Saves every image of a batch as ComfyUI's SaveImage/PreviewImage do and adds the ui
 * "images" entries; type is "output" or "temp". */
int cd_img_save_batch(cd_node_call *call, const cd_value *images, const char *type, const char *prefix,
                      int compress_level);

#endif
