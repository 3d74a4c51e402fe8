/* The shared resampler: comfy.utils.common_upscale for IMAGE and MASK tensors.
 *
 * ComfyUI resizes through torch.nn.functional.interpolate (align_corners=False, antialias=False)
 * for "nearest-exact", "bilinear", "bicubic" and "area" (adaptive average pooling), and through
 * Pillow for "lanczos" (a uint8 round trip and Image.resize(LANCZOS), premultiplied alpha for
 * RGBA). resample.c computes each the way those libraries' CPU kernels do, in float32 with the
 * same index rules and the same order of operations, so that results match to the bit where the
 * libraries themselves are deterministic (see resample.c for the one known caveat). libvips is
 * not used here: none of its resamplers follows these index and rounding rules.
 *
 * "bislerp" is not offered: the nodes of the reference do not list it. */
#ifndef CD_NODES_IMAGE_RESAMPLE_H
#define CD_NODES_IMAGE_RESAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "comfyd/node.h"

typedef enum {
    CD_RESAMPLE_NEAREST_EXACT,
    CD_RESAMPLE_BILINEAR,
    CD_RESAMPLE_AREA,
    CD_RESAMPLE_BICUBIC,
    CD_RESAMPLE_LANCZOS,
} cd_resample_method;

/* The method named as ComfyUI names it; -1 when unknown. */
int cd_resample_method_of(const char *name);

/* common_upscale(samples, width, height, method, crop) for an IMAGE [B, H, W, C] or a MASK
 * [B, H, W] / [H, W] (the result keeps the input's type and rank). crop is "disabled" or
 * "center" (NULL means disabled). Returns a new tensor, or NULL after cd_call_fail (unknown
 * method, a size of 0 as torch refuses it, no memory). */
cd_value *cd_img_upscale(cd_node_call *call, const cd_value *t, int64_t width, int64_t height, const char *method,
                         const char *crop);

/* Python's round() of a double (half to even), as ComfyUI computes sizes with it. */
int64_t cd_py_round(double x);

/* Pillow's Image.resize((ow, oh), Image.LANCZOS) of an 8-bit image, as Pillow 9.4 computes it
 * (libImaging/Resample.c): the lanczos of common_upscale above, and the nodes that hand ComfyUI's
 * PIL images to Pillow (dataset.c). Width comes before height, as in Pillow's (w, h).
 *
 * in: h rows of w pixels of c interleaved uint8 samples, packed (rows w * c bytes apart). c is
 * the band count of Pillow's mode: 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA); with 2 and 4 the last
 * band is alpha, and the colour is premultiplied around the resize as Pillow's La and RGBa modes
 * do. Another c is resized band by band, with no alpha. w or h may be 0 (every output sample is
 * then 0). in is only read: the caller keeps it.
 * out: the caller's buffer of oh * ow * c bytes, same layout, not overlapping in; it is filled
 * completely on success (the same size gives a copy of in).
 * Temporaries are allocated and freed inside. Returns 0, or -1 when out of memory or when a new
 * size has ow or oh below 1 (Pillow refuses those); out's content is then unspecified. */
int cd_img_pil_resize(const uint8_t *in, int w, int h, int c, uint8_t *out, int ow, int oh);

#endif
