/* The filter nodes of ComfyUI core: ImageBlend, ImageBlur, ImageSharpen and ImageQuantize
 * (comfy_extras.nodes_post_processing), Morphology (comfy_extras.nodes_morphology, kornia's
 * morphology), Canny (comfy_extras.nodes_canny, kornia.filters.canny) and ImageAddNoise
 * (comfy_extras.nodes_images).
 *
 * Every formula is ComfyUI's, evaluated in float32 in the order its torch expression evaluates,
 * so element-wise nodes (ImageBlend, Morphology, the thresholds of Canny, ImageQuantize's integer
 * palette mapping) give ComfyUI's values to the bit. Convolutions (ImageBlur, ImageSharpen, the
 * blur and Sobel steps of Canny) add their terms in kernel order; torch's conv2d does not specify
 * its summation order (it depends on the CPU backend), so those agree with ComfyUI to a few
 * float32 ulps, well below what an 8-bit image can show. ImageQuantize reproduces Pillow's
 * integer algorithms (checked pixel for pixel); ImageAddNoise reproduces torch's generator. What
 * is taken where ComfyUI would fail, and the few places that can differ, are said where they
 * occur (RGBA into Canny and ImageQuantize; Pillow 9.x's padded palettes; libm against SLEEF).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- small helpers ---- */

/* torch.nn.functional.pad(mode="reflect") needs the padding smaller than the dimension; ComfyUI
 * fails the same way on images smaller than the radius. */
static bool reflect_fits(cd_node_call *call, const cd_img_shape *s, int64_t pad) {
    if (pad < s->h && pad < s->w) return true;
    cd_call_fail(call, "RuntimeError",
                 "Padding size should be less than the corresponding input dimension, but got: padding (%lld, %lld) "
                 "at dimension %d of input [%lld, %lld, %lld, %lld]",
                 (long long)pad, (long long)pad, pad >= s->w ? 3 : 2, (long long)s->b, (long long)s->c,
                 (long long)s->h, (long long)s->w);
    return false;
}

/* Index i reflected into 0..n-1 without repeating the edge (torch's "reflect"); |overshoot| < n. */
static inline int64_t reflect_index(int64_t i, int64_t n) {
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
}

static inline float clamp01(float v) {
    /* torch.clamp(x, 0, 1): NaN stays NaN */
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

static const char *combo(cd_node_call *call, const char *name, const char *const *options, int *index) {
    const char *v = cd_call_string(call, name, NULL);
    for (int i = 0; v && options[i]; i++)
        if (!strcmp(v, options[i])) {
            *index = i;
            return v;
        }
    cd_call_fail(call, "ValueError", "%s: unsupported value '%s'", name, v ? v : "(missing)");
    return NULL;
}

/* ---- ImageBlend ---- */

/* comfy.utils.common_upscale(crop="center", upscale_method="bicubic") over one [H, W, C] image:
 * the centre crop to the target's aspect ratio, then torch's bicubic interpolation (A = -0.75,
 * align_corners=False, border indices clamped), in float32 as torch computes it on the CPU. */
static void cubic_weights(float t, float w[4]) {
    const float A = -0.75f;
    float x1 = t, x2 = 1.0f - t;
    float a = x1 + 1.0f, d = x2 + 1.0f;
    w[0] = ((A * a - 5.0f * A) * a + 8.0f * A) * a - 4.0f * A;
    w[1] = ((A + 2.0f) * x1 - (A + 3.0f)) * x1 * x1 + 1.0f;
    w[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
    w[3] = ((A * d - 5.0f * A) * d + 8.0f * A) * d - 4.0f * A;
}

typedef struct {
    int64_t idx[4];
    float w[4];
} cubic_tap;

static cubic_tap *cubic_taps(int64_t in, int64_t out, int64_t offset) {
    cubic_tap *t = calloc((size_t)out, sizeof *t);
    if (!t) return NULL;
    float scale = (float)in / (float)out;
    for (int64_t i = 0; i < out; i++) {
        float real = scale * ((float)i + 0.5f) - 0.5f;
        int64_t base = (int64_t)floorf(real);
        if (base > in - 1) base = in - 1;
        float lambda = real - (float)base;
        lambda = lambda < 0.0f ? 0.0f : lambda > 1.0f ? 1.0f : lambda;
        cubic_weights(lambda, t[i].w);
        for (int j = 0; j < 4; j++) {
            int64_t k = base - 1 + j;
            t[i].idx[j] = offset + (k < 0 ? 0 : k > in - 1 ? in - 1 : k);
        }
    }
    return t;
}

static int upscale_center_bicubic(cd_node_call *call, const cd_value *src, const cd_img_shape *s, int64_t width,
                                  int64_t height, cd_value **out) {
    /* the centre crop: Python's round() of doubles, ties to even */
    double old_aspect = (double)s->w / (double)s->h, new_aspect = (double)width / (double)height;
    int64_t x = 0, y = 0;
    if (old_aspect > new_aspect)
        x = (int64_t)nearbyint(((double)s->w - (double)s->w * (new_aspect / old_aspect)) / 2.0);
    else if (old_aspect < new_aspect)
        y = (int64_t)nearbyint(((double)s->h - (double)s->h * (old_aspect / new_aspect)) / 2.0);
    int64_t ch = s->h - 2 * y, cw = s->w - 2 * x;
    if (ch <= 0 || cw <= 0) return cd_call_fail(call, "RuntimeError", "image2 is too small to crop for blending");
    *out = cd_img_new(call, s->b, height, width, s->c);
    if (!*out) return CD_ERROR;
    cubic_tap *ty = cubic_taps(ch, height, y), *tx = cubic_taps(cw, width, x);
    if (!ty || !tx) {
        free(ty);
        free(tx);
        cd_value_unref(*out);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    const float *d = cd_value_tensor_data(src);
    float *o = cd_value_tensor_data_mut(*out);
    for (int64_t b = 0; b < s->b; b++) {
        const float *img = d + (size_t)(b * s->h * s->w * s->c);
        for (int64_t i = 0; i < height; i++)
            for (int64_t j = 0; j < width; j++)
                for (int64_t c = 0; c < s->c; c++) {
                    /* torch's generic kernel: the outer sum over rows of inner sums over columns */
                    float acc = 0.0f;
                    for (int r = 0; r < 4; r++) {
                        const float *row = img + (size_t)(ty[i].idx[r] * s->w * s->c);
                        float inner = row[tx[j].idx[0] * s->c + c] * tx[j].w[0];
                        for (int k = 1; k < 4; k++) inner += row[tx[j].idx[k] * s->c + c] * tx[j].w[k];
                        acc = r == 0 ? inner * ty[i].w[0] : acc + inner * ty[i].w[r];
                    }
                    o[(((size_t)b * (size_t)height + (size_t)i) * (size_t)width + (size_t)j) * (size_t)s->c +
                      (size_t)c] = acc;
                }
    }
    free(ty);
    free(tx);
    return CD_OK;
}

static inline float soft_light_g(float x) {
    return x <= 0.25f ? ((16.0f * x - 12.0f) * x + 4.0f) * x : sqrtf(x);
}

/* ImageBlend as ComfyUI's V3 node: image_alpha_fix, then image2 resized to image1's size when the
 * shapes differ (bicubic, centre crop), the mode, image1 * (1 - f) + mode * f, clamped. Batches
 * broadcast as torch does (one image against many), other mismatches fail as torch fails. */
static const char *const blend_modes[] = {"normal", "multiply", "screen", "overlay", "soft_light", "difference", NULL};

static int image_blend(cd_node_call *call) {
    cd_img_shape s1, s2;
    const cd_value *im1 = cd_img_input(call, "image1", &s1);
    if (!im1) return CD_ERROR;
    const cd_value *im2 = cd_img_input(call, "image2", &s2);
    if (!im2) return CD_ERROR;
    int mode;
    if (!combo(call, "blend_mode", blend_modes, &mode)) return CD_ERROR;
    double factor = cd_call_float(call, "blend_factor", 0.5);
    cd_value *resized = NULL, *fixed = NULL;
    /* node_helpers.image_alpha_fix(image1, image2): image2 loses channels image1 lacks, or gains
     * one opaque alpha channel */
    if (s1.c != s2.c) {
        int64_t c = s1.c < s2.c ? s1.c : s2.c + 1;
        fixed = cd_img_new(call, s2.b, s2.h, s2.w, c);
        if (!fixed) return CD_ERROR;
        const float *src = cd_value_tensor_data(im2);
        float *d = cd_value_tensor_data_mut(fixed);
        for (size_t i = 0, n = (size_t)(s2.b * s2.h * s2.w); i < n; i++)
            for (int64_t k = 0; k < c; k++) d[i * (size_t)c + (size_t)k] = k < s2.c ? src[i * (size_t)s2.c + (size_t)k] : 1.0f;
        im2 = fixed;
        s2.c = c;
    }
    /* ComfyUI resizes image2 whenever the shapes differ; at the same height and width the bicubic
     * weights are exactly (0, 1, 0, 0), so only a change of size needs the work. */
    if (s1.h != s2.h || s1.w != s2.w) {
        if (upscale_center_bicubic(call, im2, &s2, s1.w, s1.h, &resized) != CD_OK) {
            cd_value_unref(fixed);
            return CD_ERROR;
        }
        im2 = resized;
        s2.h = s1.h;
        s2.w = s1.w;
    }
    /* torch broadcasting over the batch and channel dimensions */
    int64_t ob = s1.b, oc = s1.c;
    const char *bad = NULL;
    if (s1.b != s2.b) {
        if (s1.b == 1) ob = s2.b;
        else if (s2.b != 1) bad = "0";
    }
    if (!bad && s1.c != s2.c) {
        if (s1.c == 1) oc = s2.c;
        else if (s2.c != 1) bad = "3";
    }
    if (bad) {
        cd_value_unref(resized);
        cd_value_unref(fixed);
        return cd_call_fail(call, "RuntimeError",
                            "The size of tensor a (%lld) must match the size of tensor b (%lld) at non-singleton "
                            "dimension %s",
                            (long long)(bad[0] == '0' ? s1.b : s1.c), (long long)(bad[0] == '0' ? s2.b : s2.c), bad);
    }
    cd_value *out = cd_img_new(call, ob, s1.h, s1.w, oc);
    if (!out) {
        cd_value_unref(resized);
        cd_value_unref(fixed);
        return CD_ERROR;
    }
    const float *a = cd_value_tensor_data(im1), *bsrc = cd_value_tensor_data(im2);
    float *o = cd_value_tensor_data_mut(out);
    /* image1 * (1 - blend_factor) + blended * blend_factor: Python floats enter as float32 */
    float keep = (float)(1.0 - factor), take = (float)factor;
    size_t px = (size_t)(s1.h * s1.w);
    for (int64_t b = 0; b < ob; b++)
        for (size_t p = 0; p < px; p++)
            for (int64_t c = 0; c < oc; c++) {
                float x = a[((size_t)(s1.b == 1 ? 0 : b) * px + p) * (size_t)s1.c + (size_t)(s1.c == 1 ? 0 : c)];
                float y = bsrc[((size_t)(s2.b == 1 ? 0 : b) * px + p) * (size_t)s2.c + (size_t)(s2.c == 1 ? 0 : c)];
                float m;
                switch (mode) {
                case 0: m = y; break;
                case 1: m = x * y; break;
                case 2: m = 1.0f - (1.0f - x) * (1.0f - y); break;
                case 3: m = x <= 0.5f ? 2.0f * x * y : 1.0f - 2.0f * (1.0f - x) * (1.0f - y); break;
                case 4:
                    m = y <= 0.5f ? x - (1.0f - 2.0f * y) * x * (1.0f - x) : x + (2.0f * y - 1.0f) * (soft_light_g(x) - x);
                    break;
                default: m = x - y; break;
                }
                o[((size_t)b * px + p) * (size_t)oc + (size_t)c] = clamp01(x * keep + m * take);
            }
    cd_value_unref(resized);
    cd_value_unref(fixed);
    return cd_call_set_output(call, 0, out);
}

/* ---- ImageBlur, ImageSharpen ---- */

/* ComfyUI's gaussian_kernel(kernel_size, sigma): torch.linspace(-1, 1, k) on both axes,
 * d = sqrt(x*x + y*y), exp(-(d*d) / (2 sigma^2)), normalised by its sum; all float32. */
static float *gaussian_kernel(int64_t k, double sigma) {
    float *g = malloc((size_t)(k * k) * sizeof *g);
    float *lin = malloc((size_t)k * sizeof *lin);
    if (!g || !lin) {
        free(g);
        free(lin);
        return NULL;
    }
    /* torch.linspace: start + step*i for the first half, end - step*(k-1-i) for the rest */
    float step = k > 1 ? 2.0f / (float)(k - 1) : 0.0f;
    for (int64_t i = 0; i < k; i++) lin[i] = i < k / 2 ? -1.0f + step * (float)i : 1.0f - step * (float)(k - 1 - i);
    if (k == 1) lin[0] = -1.0f;
    float denom = (float)(2.0 * sigma * sigma);
    float sum = 0.0f;
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) {
            float d = sqrtf(lin[i] * lin[i] + lin[j] * lin[j]);
            float v = expf(-(d * d) / denom);
            g[i * k + j] = v;
            sum += v;
        }
    for (int64_t i = 0; i < k * k; i++) g[i] /= sum;
    free(lin);
    return g;
}

/* conv2d of every channel with a k x k kernel (k = 2r + 1) over the reflect-padded image; the
 * zero padding ComfyUI adds inside conv2d is cropped away again, so it never contributes. */
static void conv_reflect(const float *src, float *dst, const cd_img_shape *s, const float *kernel, int64_t r,
                         bool clamp) {
    int64_t k = 2 * r + 1;
    size_t plane = (size_t)(s->h * s->w * s->c);
    for (int64_t b = 0; b < s->b; b++) {
        const float *in = src + plane * (size_t)b;
        float *out = dst + plane * (size_t)b;
        for (int64_t y = 0; y < s->h; y++)
            for (int64_t x = 0; x < s->w; x++)
                for (int64_t c = 0; c < s->c; c++) {
                    float acc = 0.0f;
                    for (int64_t i = 0; i < k; i++) {
                        const float *row = in + (size_t)(reflect_index(y + i - r, s->h) * s->w * s->c);
                        const float *kr = kernel + i * k;
                        for (int64_t j = 0; j < k; j++) acc += kr[j] * row[reflect_index(x + j - r, s->w) * s->c + c];
                    }
                    out[(y * s->w + x) * s->c + c] = clamp ? clamp01(acc) : acc;
                }
    }
}

/* Above this radius the 2-D kernel costs (2r + 1)^2 multiplications a sample; ComfyUI's
 * gaussian_kernel is then applied as the product of its 1-D factors instead, row pass then
 * column pass. exp(-(x^2 + y^2)) = exp(-x^2) exp(-y^2), so the two differ only by float32
 * rounding of the kernel (a few ulps), the size of the differences torch's own summation order
 * makes; below the radius the kernel is ComfyUI's to the bit. */
#define DIRECT_MAX_RADIUS 7

/* The 1-D factor of gaussian_kernel(k, sigma): exp(-x^2 / (2 sigma^2)) over torch.linspace(-1, 1,
 * k), normalised to sum 1. */
static float *gaussian_1d(int64_t k, double sigma) {
    float *g = malloc((size_t)k * sizeof *g);
    if (!g) return NULL;
    float step = k > 1 ? 2.0f / (float)(k - 1) : 0.0f, denom = (float)(2.0 * sigma * sigma), sum = 0.0f;
    for (int64_t i = 0; i < k; i++) {
        float x = i < k / 2 ? -1.0f + step * (float)i : 1.0f - step * (float)(k - 1 - i);
        g[i] = expf(-(x * x) / denom);
        sum += g[i];
    }
    for (int64_t i = 0; i < k; i++) g[i] /= sum;
    return g;
}

/* dst = the separable gaussian of src (reflect borders); false when out of memory. */
static bool blur_separable(const float *src, float *dst, const cd_img_shape *s, int64_t r, double sigma) {
    int64_t k = 2 * r + 1;
    size_t plane = (size_t)(s->h * s->w * s->c);
    float *g = gaussian_1d(k, sigma), *tmp = malloc(plane * sizeof *tmp);
    if (!g || !tmp) {
        free(g);
        free(tmp);
        return false;
    }
    for (int64_t b = 0; b < s->b; b++) {
        const float *in = src + plane * (size_t)b;
        float *out = dst + plane * (size_t)b;
        for (int64_t y = 0; y < s->h; y++)
            for (int64_t x = 0; x < s->w; x++)
                for (int64_t c = 0; c < s->c; c++) {
                    float acc = 0.0f;
                    for (int64_t j = 0; j < k; j++)
                        acc += g[j] * in[(y * s->w + reflect_index(x + j - r, s->w)) * s->c + c];
                    tmp[(y * s->w + x) * s->c + c] = acc;
                }
        for (int64_t y = 0; y < s->h; y++)
            for (int64_t x = 0; x < s->w; x++)
                for (int64_t c = 0; c < s->c; c++) {
                    float acc = 0.0f;
                    for (int64_t i = 0; i < k; i++)
                        acc += g[i] * tmp[(reflect_index(y + i - r, s->h) * s->w + x) * s->c + c];
                    out[(y * s->w + x) * s->c + c] = acc;
                }
    }
    free(g);
    free(tmp);
    return true;
}

static int image_blur(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    int64_t r = cd_call_int(call, "blur_radius", 1);
    double sigma = cd_call_float(call, "sigma", 1.0);
    if (r == 0) return cd_call_set_output(call, 0, cd_value_ref(in));
    if (r < 0) return cd_call_fail(call, "ValueError", "blur_radius must not be negative");
    if (!reflect_fits(call, &s, r)) return CD_ERROR;
    cd_value *out = cd_img_new(call, s.b, s.h, s.w, s.c);
    if (!out) return CD_ERROR;
    if (r > DIRECT_MAX_RADIUS) {
        if (!blur_separable(cd_value_tensor_data(in), cd_value_tensor_data_mut(out), &s, r, sigma)) {
            cd_value_unref(out);
            return cd_call_fail(call, "MemoryError", "out of memory");
        }
        return cd_call_set_output(call, 0, out);
    }
    float *kernel = gaussian_kernel(2 * r + 1, sigma);
    if (!kernel) {
        cd_value_unref(out);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    conv_reflect(cd_value_tensor_data(in), cd_value_tensor_data_mut(out), &s, kernel, r, false);
    free(kernel);
    return cd_call_set_output(call, 0, out);
}

static int image_sharpen(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    int64_t r = cd_call_int(call, "sharpen_radius", 1);
    double sigma = cd_call_float(call, "sigma", 1.0), alpha = cd_call_float(call, "alpha", 1.0);
    if (r == 0) return cd_call_set_output(call, 0, cd_value_ref(in));
    if (r < 0) return cd_call_fail(call, "ValueError", "sharpen_radius must not be negative");
    if (!reflect_fits(call, &s, r)) return CD_ERROR;
    if (r > DIRECT_MAX_RADIUS) {
        /* the sharpening kernel is (1 + 10 alpha) at the centre minus 10 alpha times the gaussian:
         * (1 + 10 alpha) x - 10 alpha blur(x), clamped */
        cd_value *out = cd_img_new(call, s.b, s.h, s.w, s.c);
        if (!out) return CD_ERROR;
        float *o = cd_value_tensor_data_mut(out);
        const float *x = cd_value_tensor_data(in);
        if (!blur_separable(x, o, &s, r, sigma)) {
            cd_value_unref(out);
            return cd_call_fail(call, "MemoryError", "out of memory");
        }
        float a10 = (float)(alpha * 10.0);
        for (size_t i = 0, n = cd_value_tensor_numel(in); i < n; i++) o[i] = clamp01((1.0f + a10) * x[i] - a10 * o[i]);
        return cd_call_set_output(call, 0, out);
    }
    int64_t k = 2 * r + 1;
    float *kernel = gaussian_kernel(k, sigma);
    cd_value *out = kernel ? cd_img_new(call, s.b, s.h, s.w, s.c) : NULL;
    if (!out) {
        free(kernel);
        return kernel ? CD_ERROR : cd_call_fail(call, "MemoryError", "out of memory");
    }
    /* kernel * -(alpha*10); kernel[c, c] = kernel[c, c] - kernel.sum() + 1.0 */
    float scale = (float)(-(alpha * 10.0));
    float sum = 0.0f;
    for (int64_t i = 0; i < k * k; i++) {
        kernel[i] *= scale;
        sum += kernel[i];
    }
    kernel[r * k + r] = kernel[r * k + r] - sum + 1.0f;
    conv_reflect(cd_value_tensor_data(in), cd_value_tensor_data_mut(out), &s, kernel, r, true);
    free(kernel);
    return cd_call_set_output(call, 0, out);
}

/* ---- ImageQuantize ---- */

/* ComfyUI converts each image to 8-bit RGB (truncating), asks Pillow for a palette of `colors`
 * with Image.quantize (median cut for RGB), then maps the image onto it with dither NONE,
 * FLOYDSTEINBERG, or an ordered Bayer offset followed by NONE.
 *
 * The mapping is Pillow's, exactly: a colour present in the palette maps to itself; any other
 * colour maps to the palette entry nearest (squared RGB distance, lowest index on ties) to the
 * colour with its two low bits cleared, which is what Pillow's 64x64x64 palette cache computes;
 * Floyd-Steinberg uses Pillow's integer error diffusion (7/16, 3/16, 5/16, 1/16 folded into one
 * running sum, division truncating towards zero).
 *
 * The palette is Pillow's median cut (libImaging/Quant.c, MEDIANCUT, no k-means), rebuilt from its
 * rules: colours are counted under Pillow's pixel hash, with the low bits dropped (scale 1, 2,
 * ...) until at most 65536 hash values remain, and two colours whose hashes collide count as
 * one, as in Pillow; the box holding the most pixels is split next (Pillow's binary max-heap,
 * so equal counts resolve as its heap does), along the axis whose range weighted 77/150/29
 * (R/G/B) is largest, between the colour values where the pixel count from the high end first
 * exceeds half; one-colour boxes are not split. Entries are numbered leaves-first from the high
 * side, each the rounded mean of the pixels in its box. When the image has no more distinct
 * colours than `colors`, the palette is exactly those colours and the image comes back as
 * its 8-bit self. Checked against Pillow 9.4 on 36 cases (gradients, 90000 random colours, 30
 * colours; 2 to 256 entries; none, Floyd-Steinberg, Bayer): identical palettes and outputs once
 * its palette is limited to the colours found, which current Pillow does and 9.x did not (9.x
 * pads the palette with black entries that dark pixels can map to). Not reproduced: which colour
 * represents a group merged by a rescale when two scaled colours collide in the hash (Pillow
 * keeps whichever its table meets first). */

/* Pillow's PIXEL_HASH */
static inline uint32_t pixel_hash(uint32_t r, uint32_t g, uint32_t b) {
    return (r * 463u) ^ ((g << 8) * 10069u) ^ ((b << 16) * 64997u);
}

typedef struct {
    uint32_t hash;
    uint8_t v[3]; /* the scaled colour of the first pixel with this hash */
    uint32_t count;
} hash_color;

typedef struct {
    size_t start, len; /* a range of the entry order */
    uint32_t pixels;
    int left, right; /* children, -1 for a leaf */
} cut_box;

static int cmp_hash_idx(const void *a, const void *b, void *ctx) {
    const uint32_t *h = ctx;
    uint32_t x = h[*(const uint32_t *)a], y = h[*(const uint32_t *)b];
    if (x != y) return x < y ? -1 : 1;
    return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1; /* first pixel first */
}

typedef struct {
    const hash_color *colors;
    int axis;
} axis_order;

static int cmp_axis_desc(const void *a, const void *b, void *ctx) {
    const axis_order *o = ctx;
    int x = o->colors[*(const uint32_t *)a].v[o->axis], y = o->colors[*(const uint32_t *)b].v[o->axis];
    return y - x;
}

/* Pillow's heap of boxes, largest pixel count on top (QuantHeap.c's sift rules). */
typedef struct {
    int *slot; /* 1-based */
    int n;
} box_heap;

static void heap_add(box_heap *h, const cut_box *boxes, int id) {
    int k = ++h->n;
    while (k != 1 && (int)boxes[id].pixels - (int)boxes[h->slot[k / 2]].pixels > 0) {
        h->slot[k] = h->slot[k / 2];
        k >>= 1;
    }
    h->slot[k] = id;
}

static int heap_remove(box_heap *h, const cut_box *boxes) {
    if (!h->n) return -1;
    int top = h->slot[1], v = h->slot[h->n--], k, l;
    for (k = 1; k * 2 <= h->n; k = l) {
        l = k * 2;
        if (l < h->n && (int)boxes[h->slot[l]].pixels - (int)boxes[h->slot[l + 1]].pixels < 0) l++;
        if ((int)boxes[v].pixels - (int)boxes[h->slot[l]].pixels > 0) break;
        h->slot[k] = h->slot[l];
    }
    h->slot[k] = v;
    return top;
}

static void box_range(const hash_color *c, const uint32_t *order, const cut_box *b, int lo[3], int hi[3]) {
    for (int a = 0; a < 3; a++) {
        lo[a] = 255;
        hi[a] = 0;
    }
    for (size_t i = b->start; i < b->start + b->len; i++)
        for (int a = 0; a < 3; a++) {
            int v = c[order[i]].v[a];
            if (v < lo[a]) lo[a] = v;
            if (v > hi[a]) hi[a] = v;
        }
}

/* Numbers the leaves left (high) side first, as annotate_hash_table does. */
static void number_leaves(const cut_box *boxes, int id, const uint32_t *order, int *entry_box, int *next) {
    if (boxes[id].left >= 0) {
        number_leaves(boxes, boxes[id].left, order, entry_box, next);
        number_leaves(boxes, boxes[id].right, order, entry_box, next);
        return;
    }
    for (size_t i = boxes[id].start; i < boxes[id].start + boxes[id].len; i++) entry_box[order[i]] = *next;
    if (boxes[id].len) (*next)++;
}

/* Builds up to `colors` palette entries from n pixels of packed RGB; returns the count, or 0
 * when out of memory. */
static int median_cut(const uint32_t *pixels, size_t n, int colors, uint8_t palette[256][3]) {
    int result = 0;
    uint32_t *hashes = malloc(n * sizeof *hashes), *idx = malloc(n * sizeof *idx), *pixel_entry = NULL,
             *order = NULL;
    hash_color *c = NULL;
    cut_box *boxes = calloc((size_t)(2 * colors + 1), sizeof *boxes);
    box_heap heap = {calloc((size_t)(2 * colors + 2), sizeof(int)), 0};
    int *entry_box = NULL;
    uint64_t (*sum)[3] = calloc(256, sizeof *sum);
    uint64_t *cnt = calloc(256, sizeof *cnt);
    if (!hashes || !idx || !boxes || !heap.slot || !sum || !cnt) goto done;
    /* the scale at which at most 65536 hash values remain */
    size_t distinct = 0;
    for (uint32_t scale = 0; scale < 8; scale++) {
        for (size_t i = 0; i < n; i++) {
            uint32_t p = pixels[i];
            hashes[i] = pixel_hash((p >> 16) >> scale, ((p >> 8) & 0xff) >> scale, (p & 0xff) >> scale);
            idx[i] = (uint32_t)i;
        }
        qsort_r(idx, n, sizeof *idx, cmp_hash_idx, hashes);
        distinct = 0;
        for (size_t i = 0; i < n; i++)
            if (!i || hashes[idx[i]] != hashes[idx[i - 1]]) distinct++;
        if (distinct <= 65536) {
            c = calloc(distinct, sizeof *c);
            pixel_entry = malloc(n * sizeof *pixel_entry);
            order = malloc(distinct * sizeof *order);
            entry_box = malloc(distinct * sizeof *entry_box);
            if (!c || !pixel_entry || !order || !entry_box) goto done;
            size_t e = 0;
            for (size_t i = 0; i < n; i++) {
                if (i && hashes[idx[i]] == hashes[idx[i - 1]]) {
                    c[e - 1].count++;
                } else {
                    uint32_t p = pixels[idx[i]];
                    c[e] = (hash_color){hashes[idx[i]],
                                        {(uint8_t)((p >> 16) >> scale), (uint8_t)(((p >> 8) & 0xff) >> scale),
                                         (uint8_t)((p & 0xff) >> scale)},
                                        1};
                    e++;
                }
                pixel_entry[idx[i]] = (uint32_t)(e - 1);
            }
            break;
        }
    }
    if (!c) goto done;
    for (size_t i = 0; i < distinct; i++) order[i] = (uint32_t)i;
    int nb = 1;
    boxes[0] = (cut_box){0, distinct, (uint32_t)n, -1, -1};
    heap_add(&heap, boxes, 0);
    for (int splits = colors - 1; splits > 0; splits--) {
        int id, lo[3], hi[3];
        do {
            id = heap_remove(&heap, boxes);
            if (id < 0) break;
            box_range(c, order, &boxes[id], lo, hi);
        } while ((hi[0] - lo[0] + 1) * (hi[1] - lo[1] + 1) * (hi[2] - lo[2] + 1) == 1);
        if (id < 0) break;
        static const int weight[3] = {77, 150, 29};
        int axis = 0;
        for (int a = 1; a < 3; a++)
            if ((hi[axis] - lo[axis]) * weight[axis] < (hi[a] - lo[a]) * weight[a]) axis = a;
        cut_box *b = &boxes[id];
        axis_order ctx = {c, axis};
        qsort_r(order + b->start, b->len, sizeof *order, cmp_axis_desc, &ctx);
        /* left: the values down to the one where the running count first exceeds half */
        uint64_t run = 0;
        size_t cut = 0;
        while (cut < b->len) {
            run += c[order[b->start + cut]].count;
            cut++;
            if (run * 2 > b->pixels) break;
        }
        int v = c[order[b->start + cut - 1]].v[axis];
        while (cut < b->len && c[order[b->start + cut]].v[axis] == v) cut++;
        if (cut == b->len) { /* nothing right: the lowest value goes right */
            int low = c[order[b->start + b->len - 1]].v[axis];
            while (cut > 0 && c[order[b->start + cut - 1]].v[axis] == low) cut--;
        }
        uint32_t left = 0;
        for (size_t i = 0; i < cut; i++) left += c[order[b->start + i]].count;
        boxes[nb] = (cut_box){b->start, cut, left, -1, -1};
        boxes[nb + 1] = (cut_box){b->start + cut, b->len - cut, b->pixels - left, -1, -1};
        b->left = nb;
        b->right = nb + 1;
        heap_add(&heap, boxes, nb);
        heap_add(&heap, boxes, nb + 1);
        nb += 2;
    }
    int entries = 0;
    number_leaves(boxes, 0, order, entry_box, &entries);
    for (size_t i = 0; i < n; i++) {
        int e = entry_box[pixel_entry[i]];
        uint32_t p = pixels[i];
        sum[e][0] += p >> 16;
        sum[e][1] += (p >> 8) & 0xff;
        sum[e][2] += p & 0xff;
        cnt[e]++;
    }
    for (int i = 0; i < entries; i++)
        for (int a = 0; a < 3; a++) palette[i][a] = (uint8_t)(int)(0.5 + (double)sum[i][a] / (double)cnt[i]);
    result = entries;
done:
    free(hashes);
    free(idx);
    free(pixel_entry);
    free(order);
    free(c);
    free(boxes);
    free(heap.slot);
    free(entry_box);
    free(sum);
    free(cnt);
    return result;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    const uint8_t (*pal)[3];
    int n;
    int16_t *cache;     /* 64*64*64 slots, -1 unknown */
    uint32_t exact[256]; /* (rgb << 8) | index, sorted: the palette's own colours */
} pal_map;

static void pal_map_init(pal_map *m, const uint8_t (*pal)[3], int n, int16_t *cache) {
    m->pal = pal;
    m->n = n;
    m->cache = cache;
    for (int i = 0; i < 64 * 64 * 64; i++) cache[i] = -1;
    for (int i = 0; i < n; i++) m->exact[i] = (uint32_t)(pal[i][0] << 16 | pal[i][1] << 8 | pal[i][2]) << 8 | (uint32_t)i;
    qsort(m->exact, (size_t)n, sizeof m->exact[0], cmp_u32);
}

static int pal_lookup(pal_map *m, int r, int g, int b) {
    /* an exact colour of the palette maps to itself (its first index) */
    uint32_t key = (uint32_t)(r << 16 | g << 8 | b);
    int lo = 0, hi = m->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (m->exact[mid] >> 8 < key) lo = mid + 1;
        else hi = mid;
    }
    if (lo < m->n && m->exact[lo] >> 8 == key) return (int)(m->exact[lo] & 0xff);
    int slot = ((r >> 2) << 12) | ((g >> 2) << 6) | (b >> 2);
    if (m->cache[slot] >= 0) return m->cache[slot];
    int cr = r & ~3, cg = g & ~3, cb = b & ~3, best = 0;
    unsigned bestd = ~0u;
    for (int i = 0; i < m->n; i++) {
        int dr = cr - m->pal[i][0], dg = cg - m->pal[i][1], db = cb - m->pal[i][2];
        unsigned d = (unsigned)(dr * dr + dg * dg + db * db);
        if (d < bestd) {
            bestd = d;
            best = i;
        }
    }
    m->cache[slot] = (int16_t)best;
    return best;
}

static inline int clip8(int v) {
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

/* numpy's normalized_bayer_matrix(n) of ComfyUI, in float32, as spread * M + 0.5 */
static void bayer_matrix(int order, float spread, float *out) {
    float m[16 * 16] = {0.0f}, next[16 * 16];
    int size = 1;
    for (int q = 4; size < order; q *= 4) {
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                float v = (float)q * m[y * size + x];
                int w = 2 * size;
                next[y * w + x] = (v - 1.5f) / (float)q;
                next[y * w + x + size] = (v + 0.5f) / (float)q;
                next[(y + size) * w + x] = (v + 1.5f) / (float)q;
                next[(y + size) * w + x + size] = (v - 0.5f) / (float)q;
            }
        size *= 2;
        memcpy(m, next, (size_t)(size * size) * sizeof(float));
    }
    for (int i = 0; i < order * order; i++) out[i] = spread * m[i] + 0.5f;
}

static const char *const dithers[] = {"none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16", NULL};

static int image_quantize(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    int dither;
    if (!combo(call, "dither", dithers, &dither)) return CD_ERROR;
    int64_t colors = cd_call_int(call, "colors", 256);
    if (colors < 1 || colors > 256) return cd_call_fail(call, "ValueError", "colors must be between 1 and 256");
    if (s.c < 3) return cd_call_fail(call, "ValueError", "image: expected RGB or RGBA, got %lld channels", (long long)s.c);
    cd_value *out = cd_img_new(call, s.b, s.h, s.w, s.c);
    if (!out) return CD_ERROR;
    size_t n = (size_t)(s.h * s.w);
    uint32_t *px = malloc(n * sizeof *px);
    int16_t *cache = malloc(64 * 64 * 64 * sizeof *cache);
    int *errors = calloc((size_t)(s.w + 1) * 3, sizeof *errors);
    uint8_t *idx = malloc(n);
    if (!px || !cache || !errors || !idx) {
        free(px);
        free(cache);
        free(errors);
        free(idx);
        cd_value_unref(out);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    const float *src = cd_value_tensor_data(in);
    float *dst = cd_value_tensor_data_mut(out);
    int rc = CD_OK;
    for (int64_t b = 0; b < s.b && rc == CD_OK; b++) {
        const float *img = src + (size_t)b * n * (size_t)s.c;
        float *o = dst + (size_t)b * n * (size_t)s.c;
        /* (image * 255).to(torch.uint8): truncation (out-of-range values clamped here) */
        for (size_t i = 0; i < n; i++) {
            int v[3];
            for (int c = 0; c < 3; c++) {
                float f = img[i * (size_t)s.c + (size_t)c] * 255.0f;
                v[c] = f >= 255.0f ? 255 : f > 0.0f ? (int)f : 0;
            }
            px[i] = (uint32_t)(v[0] << 16 | v[1] << 8 | v[2]);
        }
        uint8_t pal[256][3];
        int np = median_cut(px, n, (int)colors, pal);
        if (!np) {
            rc = cd_call_fail(call, "MemoryError", "out of memory");
            break;
        }
        pal_map m;
        pal_map_init(&m, (const uint8_t(*)[3])pal, np, cache);
        if (dither == 1) {
            memset(errors, 0, (size_t)(s.w + 1) * 3 * sizeof *errors);
            for (int64_t y = 0; y < s.h; y++) {
                int r = 0, r0 = 0, r1 = 0, r2, g = 0, g0 = 0, g1 = 0, g2, bb = 0, b0 = 0, b1 = 0, b2 = 0;
                int *e = errors;
                for (int64_t x = 0; x < s.w; x++) {
                    uint32_t p = px[y * s.w + x];
                    r = clip8((int)(p >> 16) + (r + e[3]) / 16);
                    g = clip8((int)((p >> 8) & 0xff) + (g + e[4]) / 16);
                    bb = clip8((int)(p & 0xff) + (bb + e[5]) / 16);
                    int k = pal_lookup(&m, r, g, bb);
                    idx[y * s.w + x] = (uint8_t)k;
                    r -= pal[k][0];
                    g -= pal[k][1];
                    bb -= pal[k][2];
                    /* Pillow's running form of the 7/16, 3/16, 5/16, 1/16 weights */
                    int d2;
                    r2 = r;
                    d2 = r + r;
                    r += d2;
                    e[0] = r + r0;
                    r += d2;
                    r0 = r + r1;
                    r1 = r2;
                    r += d2;
                    g2 = g;
                    d2 = g + g;
                    g += d2;
                    e[1] = g + g0;
                    g += d2;
                    g0 = g + g1;
                    g1 = g2;
                    g += d2;
                    b2 = bb;
                    d2 = bb + bb;
                    bb += d2;
                    e[2] = bb + b0;
                    bb += d2;
                    b0 = bb + b1;
                    b1 = b2;
                    bb += d2;
                    e += 3;
                }
                e[0] = b0;
                e[1] = b1;
                e[2] = b2;
            }
        } else {
            float bayer[16 * 16];
            int order = dither >= 2 ? 1 << (dither - 1) : 0;
            if (order) bayer_matrix(order, (float)(2.0 * 256.0 / np), bayer);
            for (int64_t y = 0; y < s.h; y++)
                for (int64_t x = 0; x < s.w; x++) {
                    uint32_t p = px[y * s.w + x];
                    int v[3] = {(int)(p >> 16), (int)((p >> 8) & 0xff), (int)(p & 0xff)};
                    if (order) {
                        /* float32 add, clamp to 0..255, truncate to uint8 */
                        float off = bayer[(y % order) * order + (x % order)];
                        for (int c = 0; c < 3; c++) {
                            float f = (float)v[c] + off;
                            f = f < 0.0f ? 0.0f : f > 255.0f ? 255.0f : f;
                            v[c] = (int)f;
                        }
                    }
                    idx[y * s.w + x] = (uint8_t)pal_lookup(&m, v[0], v[1], v[2]);
                }
        }
        for (size_t i = 0; i < n; i++) {
            for (int c = 0; c < 3; c++) o[i * (size_t)s.c + (size_t)c] = (float)pal[idx[i]][c] / 255.0f;
            /* an alpha channel passes through (ComfyUI's Pillow call only takes RGB) */
            for (int64_t c = 3; c < s.c; c++) o[i * (size_t)s.c + (size_t)c] = img[i * (size_t)s.c + (size_t)c];
        }
    }
    free(px);
    free(cache);
    free(errors);
    free(idx);
    if (rc != CD_OK) {
        cd_value_unref(out);
        return rc;
    }
    return cd_call_set_output(call, 0, out);
}

/* ---- Morphology ---- */

/* kornia.morphology with a k x k kernel of ones and its default "geodesic" border: pixels
 * outside the image take no part, so dilation is the maximum and erosion the minimum over the
 * window rows y - k/2 .. y - k/2 + k - 1 (and the same for columns) clipped to the image; for an
 * even k the window reaches one pixel further up/left than down/right, as kornia's origin does.
 * The square window is separable, and max/min are exact, so this equals kornia to the bit. */
static void window_extreme_1d(const float *in, float *out, int64_t n, ptrdiff_t stride, int64_t k, bool is_max,
                              int64_t *dq) {
    int64_t before = k / 2, after = k - 1 - k / 2;
    int64_t head = 0, tail = 0, next = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t hi = i + after < n - 1 ? i + after : n - 1, lo = i - before;
        for (; next <= hi; next++) {
            float v = in[next * stride];
            while (tail > head) {
                float w = in[dq[tail - 1] * stride];
                if (is_max ? w <= v : w >= v) tail--;
                else break;
            }
            dq[tail++] = next;
        }
        while (dq[head] < lo) head++;
        out[i * stride] = in[dq[head] * stride];
    }
}

/* dst = erosion or dilation of src ([B, H, W, C]); tmp is a scratch buffer of the same size. */
static void morph(const float *src, float *dst, float *tmp, const cd_img_shape *s, int64_t k, bool is_max,
                  int64_t *dq) {
    size_t plane = (size_t)(s->h * s->w * s->c);
    for (int64_t b = 0; b < s->b; b++) {
        const float *in = src + plane * (size_t)b;
        float *t = tmp + plane * (size_t)b, *out = dst + plane * (size_t)b;
        for (int64_t y = 0; y < s->h; y++)
            for (int64_t c = 0; c < s->c; c++)
                window_extreme_1d(in + y * s->w * s->c + c, t + y * s->w * s->c + c, s->w, (ptrdiff_t)s->c, k, is_max,
                                  dq);
        for (int64_t x = 0; x < s->w; x++)
            for (int64_t c = 0; c < s->c; c++)
                window_extreme_1d(t + x * s->c + c, out + x * s->c + c, s->h, (ptrdiff_t)(s->w * s->c), k, is_max, dq);
    }
}

static const char *const morph_ops[] = {"erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat", NULL};

static int morphology(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    int op;
    if (!combo(call, "operation", morph_ops, &op)) return CD_ERROR;
    int64_t k = cd_call_int(call, "kernel_size", 3);
    if (k < 1) return cd_call_fail(call, "ValueError", "kernel_size must be positive");
    cd_value *out = cd_img_new(call, s.b, s.h, s.w, s.c);
    if (!out) return CD_ERROR;
    size_t numel = cd_value_tensor_numel(in);
    float *tmp = malloc(numel * sizeof *tmp), *mid = malloc(numel * sizeof *mid);
    int64_t *dq = malloc((size_t)(s.h > s.w ? s.h : s.w) * sizeof *dq + sizeof *dq);
    if (!tmp || !mid || !dq) {
        free(tmp);
        free(mid);
        free(dq);
        cd_value_unref(out);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    const float *src = cd_value_tensor_data(in);
    float *o = cd_value_tensor_data_mut(out);
    switch (op) {
    case 0: morph(src, o, tmp, &s, k, false, dq); break;
    case 1: morph(src, o, tmp, &s, k, true, dq); break;
    case 2: /* open: dilate(erode) */
        morph(src, mid, tmp, &s, k, false, dq);
        morph(mid, o, tmp, &s, k, true, dq);
        break;
    case 3: /* close: erode(dilate) */
        morph(src, mid, tmp, &s, k, true, dq);
        morph(mid, o, tmp, &s, k, false, dq);
        break;
    case 4: /* gradient: dilate - erode */
        morph(src, mid, tmp, &s, k, true, dq);
        morph(src, o, tmp, &s, k, false, dq);
        for (size_t i = 0; i < numel; i++) o[i] = mid[i] - o[i];
        break;
    case 5: /* bottom_hat: close - image */
        morph(src, mid, tmp, &s, k, true, dq);
        morph(mid, o, tmp, &s, k, false, dq);
        for (size_t i = 0; i < numel; i++) o[i] = o[i] - src[i];
        break;
    default: /* top_hat: image - open */
        morph(src, mid, tmp, &s, k, false, dq);
        morph(mid, o, tmp, &s, k, true, dq);
        for (size_t i = 0; i < numel; i++) o[i] = src[i] - o[i];
        break;
    }
    free(tmp);
    free(mid);
    free(dq);
    return cd_call_set_output(call, 0, out);
}

/* ---- Canny ---- */

/* kornia.filters.canny(image, low, high) with its defaults (5x5 gaussian of sigma 1, reflect
 * border; unnormalised Sobel with replicate border; eps 1e-6; hysteresis) and ComfyUI's use of
 * the edges output, repeated to three channels.
 *  - grey = 0.299 R + 0.587 G + 0.114 B (kornia.color.rgb_to_grayscale) for 3 channels; an RGBA
 *    image uses its RGB (kornia would reject four channels).
 *  - magnitude = sqrt(gx^2 + gy^2 + eps); the direction atan2(gy, gx) in degrees rounded to a
 *    multiple of 45 (ties to even) picks the two neighbours a pixel must exceed strictly
 *    (outside the image counts as 0).
 *  - weak > low, strong > high; hysteresis keeps the weak pixels 8-connected to a strong one,
 *    which is the fixed point kornia's iteration reaches. */
static void canny_one(const float *img, int64_t h, int64_t w, int64_t c, float lo, float hi, float *edges,
                      float *buf, size_t *stack) {
    size_t n = (size_t)(h * w);
    float *grey = buf, *blur_x = buf + n, *blurred = buf + 2 * n, *mag = buf + 3 * n;
    int8_t *dir = (int8_t *)(buf + 4 * n);
    for (size_t i = 0; i < n; i++) {
        const float *p = img + i * (size_t)c;
        grey[i] = c >= 3 ? 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2] : p[0];
    }
    /* get_gaussian_kernel1d(5, 1.0) */
    float g[5], gs = 0.0f;
    for (int i = 0; i < 5; i++) {
        float x = (float)(i - 2);
        g[i] = expf(-(x * x) / (2.0f * 1.0f * 1.0f));
        gs += g[i];
    }
    for (int i = 0; i < 5; i++) g[i] /= gs;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            float acc = 0.0f;
            for (int j = 0; j < 5; j++) acc += g[j] * grey[y * w + reflect_index(x + j - 2, w)];
            blur_x[y * w + x] = acc;
        }
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            float acc = 0.0f;
            for (int j = 0; j < 5; j++) acc += g[j] * blur_x[reflect_index(y + j - 2, h) * w + x];
            blurred[y * w + x] = acc;
        }
    static const float sobel[3][3] = {{-1.0f, 0.0f, 1.0f}, {-2.0f, 0.0f, 2.0f}, {-1.0f, 0.0f, 1.0f}};
    const float deg_per_rad = 180.0f, pi = (float)M_PI;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            float gx = 0.0f, gy = 0.0f;
            for (int i = 0; i < 3; i++) {
                int64_t yy = y + i - 1 < 0 ? 0 : y + i - 1 >= h ? h - 1 : y + i - 1;
                for (int j = 0; j < 3; j++) {
                    int64_t xx = x + j - 1 < 0 ? 0 : x + j - 1 >= w ? w - 1 : x + j - 1;
                    float v = blurred[yy * w + xx];
                    gx += sobel[i][j] * v;
                    gy += sobel[j][i] * v;
                }
            }
            mag[y * w + x] = sqrtf(gx * gx + gy * gy + 1e-6f);
            float angle = deg_per_rad * atan2f(gy, gx) / pi;
            float q = nearbyintf(angle / 45.0f);
            int k = (int)q % 8;
            dir[y * w + x] = (int8_t)(k < 0 ? k + 8 : k);
        }
    /* the neighbour each of kornia's eight NMS kernels subtracts: (dy, dx) */
    static const int ny[8] = {0, 1, 1, 1, 0, -1, -1, -1}, nx[8] = {1, 1, 0, -1, -1, -1, 0, 1};
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            float m = mag[y * w + x];
            bool is_max = true;
            for (int side = 0; side < 2; side++) {
                int k = (dir[y * w + x] + 4 * side) % 8;
                int64_t yy = y + ny[k], xx = x + nx[k];
                float nb = yy < 0 || yy >= h || xx < 0 || xx >= w ? 0.0f : mag[yy * w + xx];
                if (!(m - nb > 0.0f)) is_max = false;
            }
            float v = is_max ? m : 0.0f;
            edges[y * w + x] = v > hi ? 1.0f : v > lo ? 0.5f : 0.0f;
        }
    /* hysteresis: flood the weak pixels from the strong ones */
    size_t top = 0; /* each pixel enters the stack at most once */
    for (size_t i = 0; i < n; i++)
        if (edges[i] == 1.0f) stack[top++] = i;
    while (top) {
        int64_t i = (int64_t)stack[--top], y = i / w, x = i % w;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int64_t yy = y + dy, xx = x + dx;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w || edges[yy * w + xx] != 0.5f) continue;
                edges[yy * w + xx] = 1.0f;
                stack[top++] = (size_t)(yy * w + xx);
            }
    }
    for (size_t i = 0; i < n; i++)
        if (edges[i] != 1.0f) edges[i] = 0.0f;
}

static int canny(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    double low = cd_call_float(call, "low_threshold", 0.4), high = cd_call_float(call, "high_threshold", 0.8);
    if (low > high)
        return cd_call_fail(call, "ValueError",
                            "Invalid input thresholds. low_threshold should be smaller than the high_threshold. Got: "
                            "%g>%g",
                            low, high);
    if (s.c != 1 && s.c != 3 && s.c != 4)
        return cd_call_fail(call, "ValueError", "image: expected 1, 3 or 4 channels, got %lld", (long long)s.c);
    if (!reflect_fits(call, &s, 2)) return CD_ERROR;
    cd_value *out = cd_img_new(call, s.b, s.h, s.w, 3);
    size_t n = (size_t)(s.h * s.w);
    float *buf = out ? malloc(5 * n * sizeof *buf) : NULL, *edges = buf ? malloc(n * sizeof *edges) : NULL;
    size_t *stack = edges ? malloc(n * sizeof *stack) : NULL;
    if (!stack) {
        free(buf);
        free(edges);
        if (out) cd_value_unref(out);
        return out ? cd_call_fail(call, "MemoryError", "out of memory") : CD_ERROR;
    }
    const float *src = cd_value_tensor_data(in);
    float *o = cd_value_tensor_data_mut(out);
    for (int64_t b = 0; b < s.b; b++) {
        canny_one(src + (size_t)b * n * (size_t)s.c, s.h, s.w, s.c, (float)low, (float)high, edges, buf, stack);
        for (size_t i = 0; i < n; i++) o[((size_t)b * n + i) * 3] = o[((size_t)b * n + i) * 3 + 1] =
            o[((size_t)b * n + i) * 3 + 2] = edges[i];
        if (cd_call_interrupted(call)) {
            free(buf);
            free(edges);
            free(stack);
            cd_value_unref(out);
            return CD_INTERRUPTED;
        }
    }
    free(buf);
    free(edges);
    free(stack);
    return cd_call_set_output(call, 0, out);
}

/* ---- ImageAddNoise ---- */

/* clip(image + strength * torch.randn(image.size(), generator=torch.manual_seed(seed)), 0, 1).
 * torch's CPU generator is reproduced: MT19937 seeded with the low 32 bits of the seed, and
 * randn's float path for tensors of 16 or more elements (24-bit uniforms, Box-Muller over blocks
 * of 16, the last block recomputed from fresh uniforms when the size is not a multiple of 16);
 * smaller tensors take torch's double path (53-bit uniforms, one cached pair per two values).
 * The transcendental functions are the C library's where torch may use SLEEF's vectorised ones,
 * so a value can differ from ComfyUI's in its last bit. */
typedef struct {
    uint32_t mt[624];
    int index;
} mt19937;

static void mt_seed(mt19937 *m, uint32_t seed) {
    m->mt[0] = seed;
    for (int i = 1; i < 624; i++) m->mt[i] = 1812433253u * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
    m->index = 624;
}

static uint32_t mt_next(mt19937 *m) {
    if (m->index >= 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (m->mt[i] & 0x80000000u) | (m->mt[(i + 1) % 624] & 0x7fffffffu);
            m->mt[i] = m->mt[(i + 397) % 624] ^ (y >> 1) ^ (y & 1u ? 0x9908b0dfu : 0u);
        }
        m->index = 0;
    }
    uint32_t y = m->mt[m->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static float uniform_f(mt19937 *m) {
    return (float)((double)(mt_next(m) & 0xffffffu) * (1.0 / 16777216.0));
}

static double uniform_d(mt19937 *m) {
    uint64_t hi = mt_next(m), lo = mt_next(m);
    uint64_t v = hi << 32 | lo;
    return (double)(v & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

static void normal_fill_16(float *d) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j], u2 = d[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = (float)(2.0f * M_PI * (double)u2);
        d[j] = radius * cosf(theta) * 1.0f + 0.0f;
        d[j + 8] = radius * sinf(theta) * 1.0f + 0.0f;
    }
}

static void torch_randn(uint64_t seed, float *d, size_t n) {
    mt19937 m;
    mt_seed(&m, (uint32_t)seed);
    if (n >= 16) {
        for (size_t i = 0; i < n; i++) d[i] = uniform_f(&m);
        for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(d + i);
        if (n % 16) {
            float *t = d + n - 16;
            for (int i = 0; i < 16; i++) t[i] = uniform_f(&m);
            normal_fill_16(t);
        }
        return;
    }
    bool cached = false;
    double next = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (cached) {
            d[i] = (float)next;
            cached = false;
            continue;
        }
        double u1 = uniform_d(&m), u2 = uniform_d(&m);
        double r = sqrt(-2.0 * log1p(-u2)), theta = 2.0 * M_PI * u1;
        next = r * sin(theta);
        cached = true;
        d[i] = (float)(r * cos(theta));
    }
}

static int image_add_noise(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    const cd_value *seed_v = cd_call_input(call, "seed");
    /* seeds above INT64_MAX arrive as floats or wrapped ints; only the low 32 bits matter */
    uint64_t seed = 0;
    if (seed_v && cd_value_kind_of(seed_v) == CD_VALUE_FLOAT) seed = (uint64_t)fmod(cd_value_as_float(seed_v), 18446744073709551616.0);
    else if (seed_v) seed = (uint64_t)cd_value_as_int(seed_v);
    float strength = (float)cd_call_float(call, "strength", 0.5);
    cd_value *out = cd_img_new(call, s.b, s.h, s.w, s.c);
    if (!out) return CD_ERROR;
    float *o = cd_value_tensor_data_mut(out);
    size_t n = cd_value_tensor_numel(in);
    torch_randn(seed, o, n);
    const float *src = cd_value_tensor_data(in);
    for (size_t i = 0; i < n; i++) o[i] = clamp01(src[i] + strength * o[i]);
    return cd_call_set_output(call, 0, out);
}

/* ---- definitions ---- */

static const cd_output_def image_out[] = {{"IMAGE", NULL, 0, NULL, NULL}};

#define DEF(NAME, DISPLAY, MODULE, CATEGORY, INPUTS, FN)                                                             \
    {.abi_version = CD_NODE_ABI_VERSION, .name = NAME, .display_name = DISPLAY, .category = CATEGORY,                \
     .python_module = MODULE, .inputs = INPUTS, .outputs = image_out, .n_outputs = 1, .flags = CD_NODE_V3_INFO,      \
     .execute = FN}

static const cd_node_def defs[] = {
    DEF("ImageBlend", NULL, "comfy_extras.nodes_post_processing", "image/postprocessing",
        "{\"required\": {\"image1\": [\"IMAGE\", {}], \"image2\": [\"IMAGE\", {}], "
        "\"blend_factor\": [\"FLOAT\", {\"default\": 0.5, \"min\": 0.0, \"max\": 1.0, \"step\": 0.01}], "
        "\"blend_mode\": [\"COMBO\", {\"multiselect\": false, \"options\": [\"normal\", \"multiply\", \"screen\", "
        "\"overlay\", \"soft_light\", \"difference\"]}]}}",
        image_blend),
    DEF("ImageBlur", NULL, "comfy_extras.nodes_post_processing", "image/postprocessing",
        "{\"required\": {\"image\": [\"IMAGE\", {}], "
        "\"blur_radius\": [\"INT\", {\"default\": 1, \"min\": 1, \"max\": 31, \"step\": 1}], "
        "\"sigma\": [\"FLOAT\", {\"default\": 1.0, \"min\": 0.1, \"max\": 10.0, \"step\": 0.1}]}}",
        image_blur),
    DEF("ImageQuantize", NULL, "comfy_extras.nodes_post_processing", "image/postprocessing",
        "{\"required\": {\"image\": [\"IMAGE\", {}], "
        "\"colors\": [\"INT\", {\"default\": 256, \"min\": 1, \"max\": 256, \"step\": 1}], "
        "\"dither\": [\"COMBO\", {\"multiselect\": false, \"options\": [\"none\", \"floyd-steinberg\", \"bayer-2\", "
        "\"bayer-4\", \"bayer-8\", \"bayer-16\"]}]}}",
        image_quantize),
    DEF("ImageSharpen", NULL, "comfy_extras.nodes_post_processing", "image/postprocessing",
        "{\"required\": {\"image\": [\"IMAGE\", {}], "
        "\"sharpen_radius\": [\"INT\", {\"default\": 1, \"min\": 1, \"max\": 31, \"step\": 1}], "
        "\"sigma\": [\"FLOAT\", {\"default\": 1.0, \"min\": 0.1, \"max\": 10.0, \"step\": 0.01}], "
        "\"alpha\": [\"FLOAT\", {\"default\": 1.0, \"min\": 0.0, \"max\": 5.0, \"step\": 0.01}]}}",
        image_sharpen),
    DEF("Morphology", "ImageMorphology", "comfy_extras.nodes_morphology", "image/postprocessing",
        "{\"required\": {\"image\": [\"IMAGE\", {}], "
        "\"operation\": [\"COMBO\", {\"multiselect\": false, \"options\": [\"erode\", \"dilate\", \"open\", "
        "\"close\", \"gradient\", \"bottom_hat\", \"top_hat\"]}], "
        "\"kernel_size\": [\"INT\", {\"default\": 3, \"min\": 3, \"max\": 999, \"step\": 1}]}}",
        morphology),
    DEF("Canny", NULL, "comfy_extras.nodes_canny", "image/preprocessors",
        "{\"required\": {\"image\": [\"IMAGE\", {}], "
        "\"low_threshold\": [\"FLOAT\", {\"default\": 0.4, \"min\": 0.01, \"max\": 0.99, \"step\": 0.01}], "
        "\"high_threshold\": [\"FLOAT\", {\"default\": 0.8, \"min\": 0.01, \"max\": 0.99, \"step\": 0.01}]}}",
        canny),
    DEF("ImageAddNoise", NULL, "comfy_extras.nodes_images", "image",
        "{\"required\": {\"image\": [\"IMAGE\", {}], "
        "\"seed\": [\"INT\", {\"tooltip\": \"The random seed used for creating the noise.\", \"default\": 0, "
        "\"min\": 0, \"max\": 1.8446744073709552e+19, \"control_after_generate\": true}], "
        "\"strength\": [\"FLOAT\", {\"default\": 0.5, \"min\": 0.0, \"max\": 1.0, \"step\": 0.01}]}}",
        image_add_noise),
};

int cd_nodes_image_color_init(cd_pack *pack);     /* color.c */
int cd_nodes_image_animation_init(cd_pack *pack); /* animation.c */

/* The group's entry in pack.c: these filters, the colour conversions and the animation savers. */
int cd_nodes_image_filters_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    if (cd_nodes_image_color_init(pack) != CD_OK) return CD_ERROR;
    return cd_nodes_image_animation_init(pack);
}
