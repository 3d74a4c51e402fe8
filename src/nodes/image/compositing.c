/* The alpha nodes of ComfyUI's comfy_extras/nodes_compositing.py: PorterDuffImageComposite,
 * SplitImageWithAlpha and JoinImageWithAlpha; and the resampling that they and BatchMasksNode
 * (mask.c) need: torch.nn.functional.interpolate's bilinear and bicubic modes as
 * comfy.utils.common_upscale calls them.
 *
 * Every formula is evaluated in float32 in the order ComfyUI's torch expressions evaluate it
 * (one rounding per torch operation), so the results are ComfyUI's to the bit; checked against
 * torch on pseudo-random tensors for the element-wise parts. The one place where that cannot be
 * promised is resampling (a mask or image whose size differs from the destination's). We follow
 * torch 2.x's CPU kernels: scale = in/out and source position scale * (i + 0.5) - 0.5 in float,
 * the same taps, weights and summation order, without fused multiply-adds. Builds of torch may
 * fuse them, and torch 1.13 computed the source position in double; against Debian's torch 1.13
 * the resampled samples differ by a few float32 ulps (below 1e-6 after compositing).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"

/* Shared with mask.c (BatchMasksNode); declared there. */
void cd_img_center_crop(int64_t h, int64_t w, int64_t out_h, int64_t out_w, int64_t *y0, int64_t *x0, int64_t *ch,
                        int64_t *cw);
void cd_img_resample(const float *src, int64_t w, int64_t c, int64_t y0, int64_t x0, int64_t ch, int64_t cw,
                     float *dst, int64_t out_h, int64_t out_w, bool bicubic);
bool cd_img_resample_ok(cd_node_call *call, int64_t h, int64_t w, int64_t out_h, int64_t out_w);

/* ---- resampling ---- */

/* F.interpolate refuses empty inputs and outputs; false after cd_call_fail with its message. */
bool cd_img_resample_ok(cd_node_call *call, int64_t h, int64_t w, int64_t out_h, int64_t out_w) {
    if (h > 0 && w > 0 && out_h > 0 && out_w > 0) return true;
    cd_call_fail(call, "RuntimeError",
                 "Input and output sizes should be greater than 0, but got input (H: %lld, W: %lld) output (H: "
                 "%lld, W: %lld)",
                 (long long)h, (long long)w, (long long)out_h, (long long)out_w);
    return false;
}

/* common_upscale(crop="center"): the centred region of (h, w) with the aspect ratio of
 * (out_h, out_w). Python's round() is half-to-even on doubles, which nearbyint() is in the
 * default rounding mode. */
void cd_img_center_crop(int64_t h, int64_t w, int64_t out_h, int64_t out_w, int64_t *y0, int64_t *x0, int64_t *ch,
                        int64_t *cw) {
    double old_aspect = (double)w / (double)h, new_aspect = (double)out_w / (double)out_h;
    int64_t x = 0, y = 0;
    if (old_aspect > new_aspect) x = (int64_t)nearbyint(((double)w - (double)w * (new_aspect / old_aspect)) / 2.0);
    else if (old_aspect < new_aspect)
        y = (int64_t)nearbyint(((double)h - (double)h * (old_aspect / new_aspect)) / 2.0);
    *y0 = y;
    *x0 = x;
    *ch = h - 2 * y;
    *cw = w - 2 * x;
}

/* One axis of torch's upsample kernels (align_corners=False, no scale factor given): for each
 * output index the input indices and weights, as HelperInterpLinear / HelperInterpCubic
 * compute them in float. */
typedef struct {
    int64_t idx[4];
    float wt[4];
} taps;

static taps *axis_taps(int64_t in, int64_t out, bool bicubic) {
    taps *t = calloc((size_t)(out > 0 ? out : 1), sizeof *t);
    if (!t) return NULL;
    float scale = (float)in / (float)out;
    for (int64_t i = 0; i < out; i++) {
        taps *p = &t[i];
        if (!bicubic && in == out) { /* torch's shortcut for an unchanged axis */
            p->idx[0] = p->idx[1] = i;
            p->wt[0] = 1.0f;
            p->wt[1] = 0.0f;
            continue;
        }
        float real = scale * ((float)i + 0.5f) - 0.5f;
        if (!bicubic && real < 0.0f) real = 0.0f;
        int64_t index = (int64_t)floorf(real);
        if (index > in - 1) index = in - 1;
        float lambda = real - (float)index;
        lambda = lambda < 0.0f ? 0.0f : lambda > 1.0f ? 1.0f : lambda;
        if (!bicubic) {
            p->idx[0] = index;
            p->idx[1] = index + (index < in - 1 ? 1 : 0);
            p->wt[0] = 1.0f - lambda;
            p->wt[1] = lambda;
            continue;
        }
        const float A = -0.75f;
        float x1 = lambda, x2 = 1.0f - lambda, y;
        y = x1 + 1.0f;
        p->wt[0] = ((A * y - 5.0f * A) * y + 8.0f * A) * y - 4.0f * A;
        p->wt[1] = ((A + 2.0f) * x1 - (A + 3.0f)) * x1 * x1 + 1.0f;
        p->wt[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
        y = x2 + 1.0f;
        p->wt[3] = ((A * y - 5.0f * A) * y + 8.0f * A) * y - 4.0f * A;
        for (int j = 0; j < 4; j++) {
            int64_t k = index - 1 + j;
            p->idx[j] = k < 0 ? 0 : k > in - 1 ? in - 1 : k;
        }
    }
    return t;
}

/* Resamples the region (y0, x0, ch, cw) of an interleaved [*, w, c] plane to [out_h, out_w, c]:
 * F.interpolate(mode="bilinear" or "bicubic"), rows outermost as torch nests them. Without
 * memory for the taps it leaves dst untouched and the caller's tests see zeros; the sizes
 * here are those of images already held in memory, so that is not expected. */
void cd_img_resample(const float *src, int64_t w, int64_t c, int64_t y0, int64_t x0, int64_t ch, int64_t cw,
                     float *dst, int64_t out_h, int64_t out_w, bool bicubic) {
    taps *ty = axis_taps(ch, out_h, bicubic), *tx = axis_taps(cw, out_w, bicubic);
    int n = bicubic ? 4 : 2;
    for (int64_t oy = 0; ty && tx && oy < out_h; oy++) {
        for (int64_t ox = 0; ox < out_w; ox++) {
            for (int64_t k = 0; k < c; k++) {
                float acc = 0.0f;
                for (int j = 0; j < n; j++) {
                    const float *row = src + ((y0 + ty[oy].idx[j]) * w + x0) * c + k;
                    float t = row[tx[ox].idx[0] * c] * tx[ox].wt[0];
                    for (int i = 1; i < n; i++) t = t + row[tx[ox].idx[i] * c] * tx[ox].wt[i];
                    acc = j == 0 ? t * ty[oy].wt[0] : acc + t * ty[oy].wt[j];
                }
                dst[(oy * out_w + ox) * c + k] = acc;
            }
        }
    }
    free(ty);
    free(tx);
}

/* ---- PorterDuffImageComposite ---- */

static const char *const pd_modes[] = {"ADD",     "CLEAR",   "DARKEN", "DST",    "DST_ATOP", "DST_IN",
                                       "DST_OUT", "DST_OVER", "LIGHTEN", "MULTIPLY", "OVERLAY", "SCREEN",
                                       "SRC",     "SRC_ATOP", "SRC_IN", "SRC_OUT", "SRC_OVER", "XOR"};
enum {
    PD_ADD, PD_CLEAR, PD_DARKEN, PD_DST, PD_DST_ATOP, PD_DST_IN, PD_DST_OUT, PD_DST_OVER, PD_LIGHTEN,
    PD_MULTIPLY, PD_OVERLAY, PD_SCREEN, PD_SRC, PD_SRC_ATOP, PD_SRC_IN, PD_SRC_OUT, PD_SRC_OVER, PD_XOR
};

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* porter_duff_composite for one sample: s, d are colour samples, sm, dm the masks (1 - alpha).
 * Returns the un-premultiplied colour; *out_mask gets 1 - out_alpha. */
static float porter_duff(int mode, float s, float sm, float d, float dm, float *out_mask) {
    float sa = 1.0f - sm, da = 1.0f - dm;
    s = s * sa; /* premultiplied */
    d = d * da;
    float oa, o;
    switch (mode) {
    case PD_ADD:
        oa = clamp01(sa + da);
        o = clamp01(s + d);
        break;
    case PD_CLEAR: oa = 0.0f, o = 0.0f; break;
    case PD_DARKEN:
        oa = sa + da - sa * da;
        o = (1.0f - da) * s + (1.0f - sa) * d + fminf(s, d);
        break;
    case PD_DST: oa = da, o = d; break;
    case PD_DST_ATOP:
        oa = sa;
        o = sa * d + (1.0f - da) * s;
        break;
    case PD_DST_IN: oa = sa * da, o = d * sa; break;
    case PD_DST_OUT: oa = (1.0f - sa) * da, o = (1.0f - sa) * d; break;
    case PD_DST_OVER:
        oa = da + (1.0f - da) * sa;
        o = d + (1.0f - da) * s;
        break;
    case PD_LIGHTEN:
        oa = sa + da - sa * da;
        o = (1.0f - da) * s + (1.0f - sa) * d + fmaxf(s, d);
        break;
    case PD_MULTIPLY: oa = sa * da, o = s * d; break;
    case PD_OVERLAY:
        oa = sa + da - sa * da;
        o = 2.0f * d < da ? 2.0f * s * d : sa * da - 2.0f * (da - s) * (sa - d);
        break;
    case PD_SCREEN:
        oa = sa + da - sa * da;
        o = s + d - s * d;
        break;
    case PD_SRC: oa = sa, o = s; break;
    case PD_SRC_ATOP:
        oa = da;
        o = da * s + (1.0f - sa) * d;
        break;
    case PD_SRC_IN: oa = sa * da, o = s * da; break;
    case PD_SRC_OUT: oa = (1.0f - da) * sa, o = (1.0f - da) * s; break;
    case PD_SRC_OVER:
        oa = sa + (1.0f - sa) * da;
        o = s + (1.0f - sa) * d;
        break;
    default: /* PD_XOR */
        oa = (1.0f - da) * sa + (1.0f - sa) * da;
        o = (1.0f - da) * s + (1.0f - sa) * d;
        break;
    }
    o = oa > 1e-5f ? o / oa : 0.0f;
    *out_mask = 1.0f - oa;
    return clamp01(o);
}

/* comfy.utils.common_upscale(x, out_w, out_h, "bicubic", "center") of one [h, w, c] plane into
 * new memory; NULL after cd_call_fail. */
static float *upscale_plane(cd_node_call *call, const float *src, int64_t h, int64_t w, int64_t c, int64_t out_h,
                            int64_t out_w) {
    if (!cd_img_resample_ok(call, h, w, out_h, out_w)) return NULL;
    float *dst = malloc((size_t)(out_h * out_w * c) * sizeof *dst + 1);
    if (!dst) {
        cd_call_fail(call, "MemoryError", "cannot allocate a resized image");
        return NULL;
    }
    int64_t y0, x0, ch, cw;
    cd_img_center_crop(h, w, out_h, out_w, &y0, &x0, &ch, &cw);
    cd_img_resample(src, w, c, y0, x0, ch, cw, dst, out_h, out_w, true);
    return dst;
}

static int porter_duff_composite(cd_node_call *call) {
    cd_img_shape ss, sas, ds, das;
    const cd_value *src = cd_img_input(call, "source", &ss);
    const cd_value *src_a = src ? cd_mask_input(call, "source_alpha", &sas) : NULL;
    const cd_value *dst = src_a ? cd_img_input(call, "destination", &ds) : NULL;
    const cd_value *dst_a = dst ? cd_mask_input(call, "destination_alpha", &das) : NULL;
    if (!dst_a) return CD_ERROR;
    const char *mode_name = cd_call_string(call, "mode", "DST");
    int mode = -1;
    for (int i = 0; i < (int)(sizeof pd_modes / sizeof pd_modes[0]); i++)
        if (!strcmp(mode_name, pd_modes[i])) mode = i;
    if (mode < 0) return cd_call_fail(call, "KeyError", "'%s'", mode_name);
    if (ss.c != ds.c)
        return cd_call_fail(call, "AssertionError",
                            "source and destination need the same number of channels (%lld and %lld)",
                            (long long)ss.c, (long long)ds.c);
    int64_t b = ss.b;
    if (sas.b < b) b = sas.b;
    if (ds.b < b) b = ds.b;
    if (das.b < b) b = das.b;
    if (b <= 0) return cd_call_fail(call, "RuntimeError", "stack expects a non-empty TensorList");
    cd_value *image = cd_img_new(call, b, ds.h, ds.w, ds.c);
    cd_value *mask = image ? cd_mask_new(call, b, ds.h, ds.w) : NULL;
    if (!mask) {
        cd_value_unref(image);
        return CD_ERROR;
    }
    float *oi = cd_value_tensor_data_mut(image), *om = cd_value_tensor_data_mut(mask);
    size_t px = (size_t)(ds.h * ds.w), c = (size_t)ds.c;
    for (int64_t i = 0; i < b; i++) {
        const float *s = cd_value_tensor_data(src) + (size_t)i * (size_t)(ss.h * ss.w * ss.c);
        const float *sa = cd_value_tensor_data(src_a) + (size_t)i * (size_t)(sas.h * sas.w);
        const float *d = cd_value_tensor_data(dst) + (size_t)i * px * c;
        const float *da = cd_value_tensor_data(dst_a) + (size_t)i * (size_t)(das.h * das.w);
        /* as ComfyUI: the destination alpha to the destination's size, then the source image to
         * the destination's, then the source alpha to the (new) destination alpha's */
        float *da_r = NULL, *s_r = NULL, *sa_r = NULL;
        int64_t dah = das.h, daw = das.w;
        if (das.h != ds.h || das.w != ds.w) {
            if (!(da_r = upscale_plane(call, da, das.h, das.w, 1, ds.h, ds.w))) goto fail;
            da = da_r;
            dah = ds.h, daw = ds.w;
        }
        if (ss.h != ds.h || ss.w != ds.w) {
            if (!(s_r = upscale_plane(call, s, ss.h, ss.w, ss.c, ds.h, ds.w))) goto fail;
            s = s_r;
        }
        if (sas.h != dah || sas.w != daw) {
            if (!(sa_r = upscale_plane(call, sa, sas.h, sas.w, 1, dah, daw))) goto fail;
            sa = sa_r;
        }
        float *oimg = oi + (size_t)i * px * c, *omask = om + (size_t)i * px;
        for (size_t p = 0; p < px; p++)
            for (size_t k = 0; k < c; k++)
                oimg[p * c + k] = porter_duff(mode, s[p * c + k], sa[p], d[p * c + k], da[p], &omask[p]);
        free(da_r);
        free(s_r);
        free(sa_r);
        continue;
    fail:
        free(da_r);
        free(s_r);
        free(sa_r);
        cd_value_unref(image);
        cd_value_unref(mask);
        return CD_ERROR;
    }
    cd_call_set_output(call, 0, image);
    return cd_call_set_output(call, 1, mask);
}

/* ---- SplitImageWithAlpha, JoinImageWithAlpha ---- */

static int split_image_with_alpha(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    int64_t oc = s.c < 3 ? s.c : 3; /* i[:, :, :3] */
    cd_value *image = cd_img_new(call, s.b, s.h, s.w, oc);
    cd_value *mask = image ? cd_mask_new(call, s.b, s.h, s.w) : NULL;
    if (!mask) {
        cd_value_unref(image);
        return CD_ERROR;
    }
    const float *src = cd_value_tensor_data(in);
    float *oi = cd_value_tensor_data_mut(image), *om = cd_value_tensor_data_mut(mask);
    for (size_t p = 0, n = (size_t)(s.b * s.h * s.w); p < n; p++) {
        memcpy(oi + p * (size_t)oc, src + p * (size_t)s.c, (size_t)oc * sizeof *oi);
        om[p] = 1.0f - (s.c > 3 ? src[p * (size_t)s.c + 3] : 1.0f);
    }
    cd_call_set_output(call, 0, image);
    return cd_call_set_output(call, 1, mask);
}

static int join_image_with_alpha(cd_node_call *call) {
    cd_img_shape s, as;
    const cd_value *in = cd_img_input(call, "image", &s);
    const cd_value *alpha = in ? cd_mask_input(call, "alpha", &as) : NULL;
    if (!alpha) return CD_ERROR;
    /* repeat_to_batch_size: both go to the larger batch, cycling the smaller one */
    int64_t b = s.b > as.b ? s.b : as.b;
    if (s.b == 0 || as.b == 0) b = 0;
    int64_t keep = s.c < 3 ? s.c : 3;
    if (b > 0 && !cd_img_resample_ok(call, as.h, as.w, s.h, s.w)) return CD_ERROR;
    cd_value *out = cd_img_new(call, b, s.h, s.w, keep + 1);
    if (!out) return CD_ERROR;
    size_t px = (size_t)(s.h * s.w);
    float *plane = malloc(px * sizeof *plane + 1);
    if (!plane) {
        cd_value_unref(out);
        return cd_call_fail(call, "MemoryError", "cannot allocate a resized mask");
    }
    float *o = cd_value_tensor_data_mut(out);
    for (int64_t i = 0; i < b; i++) {
        const float *img = cd_value_tensor_data(in) + (size_t)(i % s.b) * px * (size_t)s.c;
        const float *a = cd_value_tensor_data(alpha) + (size_t)(i % as.b) * (size_t)(as.h * as.w);
        /* resize_mask: F.interpolate(bilinear) to the image's size, no crop (an identity when
         * the sizes match) */
        cd_img_resample(a, as.w, 1, 0, 0, as.h, as.w, plane, s.h, s.w, false);
        float *dst = o + (size_t)i * px * (size_t)(keep + 1);
        for (size_t p = 0; p < px; p++) {
            memcpy(dst + p * (size_t)(keep + 1), img + p * (size_t)s.c, (size_t)keep * sizeof *dst);
            dst[p * (size_t)(keep + 1) + (size_t)keep] = 1.0f - plane[p];
        }
    }
    free(plane);
    return cd_call_set_output(call, 0, out);
}

/* ---- definitions ---- */

static const cd_output_def image_out[] = {{"IMAGE", NULL, 0, NULL, NULL}};
static const cd_output_def image_mask_out[] = {{"IMAGE", NULL, 0, NULL, NULL}, {"MASK", NULL, 0, NULL, NULL}};

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "PorterDuffImageComposite",
     .display_name = "Porter-Duff Image Composite", .category = "mask/compositing",
     .python_module = "comfy_extras.nodes_compositing",
     .inputs = "{\"required\": {\"source\": [\"IMAGE\", {}], \"source_alpha\": [\"MASK\", {}], "
               "\"destination\": [\"IMAGE\", {}], \"destination_alpha\": [\"MASK\", {}], "
               "\"mode\": [\"COMBO\", {\"default\": \"DST\", \"multiselect\": false, \"options\": [\"ADD\", "
               "\"CLEAR\", \"DARKEN\", \"DST\", \"DST_ATOP\", \"DST_IN\", \"DST_OUT\", \"DST_OVER\", \"LIGHTEN\", "
               "\"MULTIPLY\", \"OVERLAY\", \"SCREEN\", \"SRC\", \"SRC_ATOP\", \"SRC_IN\", \"SRC_OUT\", "
               "\"SRC_OVER\", \"XOR\"]}]}}",
     .outputs = image_mask_out, .n_outputs = 2, .flags = CD_NODE_V3_INFO, .execute = porter_duff_composite},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "SplitImageWithAlpha", .display_name = "Split Image with Alpha",
     .category = "mask/compositing", .python_module = "comfy_extras.nodes_compositing",
     .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}]}}", .outputs = image_mask_out, .n_outputs = 2,
     .flags = CD_NODE_V3_INFO, .execute = split_image_with_alpha},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "JoinImageWithAlpha", .display_name = "Join Image with Alpha",
     .category = "mask/compositing", .python_module = "comfy_extras.nodes_compositing",
     .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}], \"alpha\": [\"MASK\", {}]}}", .outputs = image_out,
     .n_outputs = 1, .flags = CD_NODE_V3_INFO, .execute = join_image_with_alpha},
};

int cd_nodes_image_compositing_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
