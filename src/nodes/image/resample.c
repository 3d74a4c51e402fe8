/* comfy.utils.common_upscale in C (see resample.h).
 *
 * The torch methods follow ATen's CPU kernels (UpSample.h, UpSampleKernel.cpp,
 * AdaptiveAvgPoolKernel.cpp) for float32 input: the source index of each output pixel, its
 * weights in float, and the order in which products are summed. torch has two bilinear kernels
 * that sum in different orders; which one runs depends on the tensor (ComfyUI's IMAGE is a
 * channels-last view after movedim) and on the output size, and is reproduced below. The known
 * caveat: torch builds its AVX2 kernels with -mfma, so a compiler may fuse a multiply and an add
 * there; where that happens a result can differ from ours in the last bit of the float.
 *
 * "lanczos" is Pillow's Image.resize(LANCZOS) (libImaging/Resample.c): coefficients in double,
 * normalised to 22-bit fixed point, a horizontal then a vertical pass over uint8 samples with
 * rounding and clipping, and RGBA premultiplied around the resize (Image.resize converts to
 * "RGBa" and back). The uint8 round trip is ComfyUI's: clip(255 * x, 0, 255) truncated, then
 * x / 255 in float32. Checked bit for bit against Pillow 9.4 (Debian 12's) on 300 random
 * L/RGB/RGBA images of up to 24x24 resized to up to 40x40, transparent pixels included. The
 * uint8 resize itself is cd_img_pil_resize (resample.h), which the dataset nodes use too.
 *
 * What cannot match: torch picks the channels-last bilinear kernel for 3-channel images when it
 * runs on a single thread; comfyd assumes ComfyUI runs with several. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"
#include "nodes/image/resample.h"

static const char *const method_names[] = {"nearest-exact", "bilinear", "area", "bicubic", "lanczos"};

int cd_resample_method_of(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < (int)(sizeof method_names / sizeof method_names[0]); i++)
        if (!strcmp(name, method_names[i])) return i;
    return -1;
}

int64_t cd_py_round(double x) { return (int64_t)nearbyint(x); /* the default mode rounds half to even */ }

/* One image of the batch (or the centre crop of one): rows of w pixels of c floats, `row`
 * floats apart. */
typedef struct {
    const float *p;
    int64_t h, w, c, row;
} plane;

/* ---- nearest-exact ---- */

/* torch has two formulas, in the same two kernels as bilinear (see resize_bilinear): the
 * channels-last kernel's nearest_neighbor_exact_compute_source_index, floor((d + 0.5) * scale),
 * and the generic kernel's HelperInterpNearestExact, floor(scale * (d + 0.5) - 0.5 + 0.5) with
 * its float roundings. They agree but for rare roundings at a pixel boundary. */
static void nearest_index(int64_t in, int64_t out, int64_t *idx, bool channels_last) {
    float scale = (float)in / (float)out;
    for (int64_t d = 0; d < out; d++) {
        int64_t s;
        if (channels_last) {
            /* (dst_index + 0.5) * scale is computed in double, then floorf takes it as a float */
            s = (int64_t)floorf((float)(((double)d + 0.5) * (double)scale));
        } else {
            float real = scale * ((float)d + 0.5f) - 0.5f;
            if (real < 0.0f) real = 0.0f;
            s = (int64_t)floorf((float)((double)real + 0.5));
        }
        idx[d] = s < in - 1 ? s : in - 1;
    }
}

static void resize_nearest(const plane *src, float *dst, int64_t oh, int64_t ow, int64_t *ix, int64_t *iy,
                           bool channels_last) {
    nearest_index(src->h, oh, iy, channels_last);
    nearest_index(src->w, ow, ix, channels_last);
    int64_t c = src->c;
    for (int64_t y = 0; y < oh; y++)
        for (int64_t x = 0; x < ow; x++)
            memcpy(dst + (y * ow + x) * c, src->p + iy[y] * src->row + ix[x] * c, (size_t)c * sizeof(float));
}

/* ---- bilinear: compute_source_index_and_lambda ---- */

typedef struct {
    int64_t i0, i1;
    float l0, l1;
} lin_t;

static void linear_index(int64_t in, int64_t out, lin_t *t) {
    float scale = (float)in / (float)out;
    for (int64_t d = 0; d < out; d++) {
        if (in == out) {
            t[d] = (lin_t){d, d, 1.0f, 0.0f};
            continue;
        }
        float real = scale * ((float)d + 0.5f) - 0.5f;
        if (real < 0.0f) real = 0.0f;
        int64_t i0 = (int64_t)floorf(real);
        if (i0 > in - 1) i0 = in - 1;
        float l1 = real - (float)i0;
        l1 = l1 < 0.0f ? 0.0f : l1 > 1.0f ? 1.0f : l1;
        t[d] = (lin_t){i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1};
    }
}

/* channels_last: true for cpu_upsample_linear_channels_last (the four weights multiplied out
 * first, products summed left to right), false for the generic separable kernel (each row
 * interpolated along W, then the rows along H). */
static void resize_bilinear(const plane *src, float *dst, int64_t oh, int64_t ow, lin_t *ty, lin_t *tx,
                            bool channels_last) {
    linear_index(src->h, oh, ty);
    linear_index(src->w, ow, tx);
    int64_t c = src->c;
    for (int64_t y = 0; y < oh; y++) {
        const float *r0 = src->p + ty[y].i0 * src->row, *r1 = src->p + ty[y].i1 * src->row;
        float h0 = ty[y].l0, h1 = ty[y].l1;
        for (int64_t x = 0; x < ow; x++) {
            const float *p00 = r0 + tx[x].i0 * c, *p01 = r0 + tx[x].i1 * c;
            const float *p10 = r1 + tx[x].i0 * c, *p11 = r1 + tx[x].i1 * c;
            float w0 = tx[x].l0, w1 = tx[x].l1;
            float *o = dst + (y * ow + x) * c;
            if (channels_last) {
                float w00 = h0 * w0, w01 = h0 * w1, w10 = h1 * w0, w11 = h1 * w1;
                for (int64_t k = 0; k < c; k++) {
                    float s = p00[k] * w00;
                    s = s + p01[k] * w01;
                    s = s + p10[k] * w10;
                    s = s + p11[k] * w11;
                    o[k] = s;
                }
            } else {
                for (int64_t k = 0; k < c; k++) {
                    float a = p00[k] * w0;
                    a = a + p01[k] * w1;
                    float b = p10[k] * w0;
                    b = b + p11[k] * w1;
                    float s = a * h0;
                    s = s + b * h1;
                    o[k] = s;
                }
            }
        }
    }
}

/* ---- bicubic: HelperInterpCubic, A = -0.75, indices clamped to the border ---- */

typedef struct {
    int64_t i[4];
    float w[4];
} cub_t;

static float cubic1(float x, float a) { return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f; }
static float cubic2(float x, float a) { return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a; }

static void cubic_index(int64_t in, int64_t out, cub_t *t) {
    float scale = (float)in / (float)out;
    const float a = -0.75f;
    for (int64_t d = 0; d < out; d++) {
        float real = scale * ((float)d + 0.5f) - 0.5f;
        int64_t i = (int64_t)floorf(real);
        if (i > in - 1) i = in - 1;
        float l = real - (float)i;
        l = l < 0.0f ? 0.0f : l > 1.0f ? 1.0f : l;
        /* x1 + 1.0 and 1.0 - t are double expressions passed as float parameters */
        float x2 = (float)(1.0 - (double)l);
        t[d].w[0] = cubic2((float)((double)l + 1.0), a);
        t[d].w[1] = cubic1(l, a);
        t[d].w[2] = cubic1(x2, a);
        t[d].w[3] = cubic2((float)((double)x2 + 1.0), a);
        for (int j = 0; j < 4; j++) {
            int64_t k = i - 1 + j;
            t[d].i[j] = k < 0 ? 0 : k > in - 1 ? in - 1 : k;
        }
    }
}

static void resize_bicubic(const plane *src, float *dst, int64_t oh, int64_t ow, cub_t *ty, cub_t *tx) {
    cubic_index(src->h, oh, ty);
    cubic_index(src->w, ow, tx);
    int64_t c = src->c;
    for (int64_t y = 0; y < oh; y++)
        for (int64_t x = 0; x < ow; x++)
            for (int64_t k = 0; k < c; k++) {
                float s = 0.0f;
                for (int j = 0; j < 4; j++) {
                    const float *r = src->p + ty[y].i[j] * src->row + k;
                    float t = r[tx[x].i[0] * c] * tx[x].w[0];
                    for (int i = 1; i < 4; i++) t = t + r[tx[x].i[i] * c] * tx[x].w[i];
                    s = j == 0 ? t * ty[y].w[0] : s + t * ty[y].w[j];
                }
                dst[(y * ow + x) * c + k] = s;
            }
}

/* ---- area: adaptive_avg_pool2d ---- */

static int64_t pool_start(int64_t a, int64_t b, int64_t c) { return (int64_t)floorf((float)(a * c) / (float)b); }
static int64_t pool_end(int64_t a, int64_t b, int64_t c) { return (int64_t)ceilf((float)((a + 1) * c) / (float)b); }

static void resize_area(const plane *src, float *dst, int64_t oh, int64_t ow) {
    int64_t c = src->c;
    for (int64_t y = 0; y < oh; y++) {
        int64_t y0 = pool_start(y, oh, src->h), y1 = pool_end(y, oh, src->h);
        for (int64_t x = 0; x < ow; x++) {
            int64_t x0 = pool_start(x, ow, src->w), x1 = pool_end(x, ow, src->w);
            for (int64_t k = 0; k < c; k++) {
                float s = 0.0f;
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++) s = s + src->p[iy * src->row + ix * c + k];
                dst[(y * ow + x) * c + k] = s / (float)(y1 - y0) / (float)(x1 - x0);
            }
        }
    }
}

/* ---- lanczos: Pillow ---- */

#define PIL_PRECISION_BITS (32 - 8 - 2)

static double pil_sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double pil_lanczos(double x) { return -3.0 <= x && x < 3.0 ? pil_sinc(x) * pil_sinc(x / 3) : 0.0; }

typedef struct {
    int ksize;
    int *bounds;  /* per output: first input index, count */
    int32_t *kk;  /* per output: ksize fixed-point coefficients */
} pil_coeffs;

static void pil_coeffs_free(pil_coeffs *c) {
    free(c->bounds);
    free(c->kk);
    c->bounds = NULL;
    c->kk = NULL;
}

/* precompute_coeffs + normalize_coeffs_8bpc for the box [0, in). Image.resize hands the box to C
 * as floats, so the scale is (float)in / out: the same as in / out up to 2^24 pixels. */
static int pil_precompute(int in, int out, pil_coeffs *c) {
    double scale = (double)(float)in / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 3.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = calloc((size_t)out * (size_t)ksize, sizeof *pre);
    c->bounds = malloc((size_t)out * 2 * sizeof *c->bounds);
    c->kk = malloc((size_t)out * (size_t)ksize * sizeof *c->kk);
    c->ksize = ksize;
    if (!pre || !c->bounds || !c->kk) {
        free(pre);
        pil_coeffs_free(c);
        return -1;
    }
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        double *k = pre + (size_t)xx * (size_t)ksize;
        for (int x = 0; x < xmax; x++) {
            double w = pil_lanczos((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        c->bounds[xx * 2] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out * (size_t)ksize; i++)
        c->kk[i] = pre[i] < 0 ? (int32_t)(-0.5 + pre[i] * (1 << PIL_PRECISION_BITS))
                              : (int32_t)(0.5 + pre[i] * (1 << PIL_PRECISION_BITS));
    free(pre);
    return 0;
}

/* Pillow sums in an int; the normalised weights keep that sum far from overflowing, and 64 bits
 * give the same value without relying on it. */
static uint8_t pil_clip8(int64_t v) {
    if (v >= ((int64_t)1 << PIL_PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PIL_PRECISION_BITS);
}

/* MULDIV255, and Convert.c's RGBa -> RGBA */
static uint8_t pil_premul(unsigned v, unsigned a) {
    unsigned t = v * a + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static uint8_t pil_unpremul(unsigned v, unsigned a) {
    if (a == 255 || a == 0) return (uint8_t)v;
    unsigned r = 255 * v / a;
    return (uint8_t)(r > 255 ? 255 : r);
}

int cd_img_pil_resize(const uint8_t *in, int w, int h, int c, uint8_t *out, int ow, int oh) {
    size_t n = (size_t)h * (size_t)w;
    if (h == oh && w == ow) {
        memcpy(out, in, n * (size_t)c);
        return 0;
    }
    if (ow < 1 || oh < 1) return -1;
    bool alpha = c == 2 || c == 4;
    uint8_t *premul = NULL; /* the RGBa / La copy of an image with alpha */
    if (alpha) {
        premul = malloc(n * (size_t)c + 1);
        if (!premul) return -1;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = in + i * (size_t)c;
            uint8_t *q = premul + i * (size_t)c;
            for (int k = 0; k < c - 1; k++) q[k] = pil_premul(p[k], p[c - 1]);
            q[c - 1] = p[c - 1];
        }
        in = premul;
    }
    pil_coeffs hc = {0}, vc = {0};
    if (pil_precompute(w, ow, &hc) || pil_precompute(h, oh, &vc)) {
        pil_coeffs_free(&hc);
        free(premul);
        return -1;
    }
    bool need_h = ow != w, need_v = oh != h;
    const uint8_t *src = in;
    int src_h = h;
    uint8_t *tmp = NULL;
    if (need_h) {
        /* only the rows the vertical pass reads, as ImagingResampleInner does */
        int first = vc.bounds[0], last = vc.bounds[oh * 2 - 2] + vc.bounds[oh * 2 - 1];
        if (!need_v) first = 0, last = h;
        for (int i = 0; i < oh && need_v; i++) vc.bounds[i * 2] -= first;
        int th = last - first;
        tmp = malloc((size_t)th * (size_t)ow * (size_t)c + 1);
        if (!tmp) {
            pil_coeffs_free(&hc);
            pil_coeffs_free(&vc);
            free(premul);
            return -1;
        }
        for (int y = 0; y < th; y++)
            for (int x = 0; x < ow; x++) {
                int xmin = hc.bounds[x * 2], xmax = hc.bounds[x * 2 + 1];
                const int32_t *k = hc.kk + (size_t)x * (size_t)hc.ksize;
                const uint8_t *row = in + ((size_t)(y + first) * (size_t)w) * (size_t)c;
                for (int b = 0; b < c; b++) {
                    int64_t ss = 1 << (PIL_PRECISION_BITS - 1);
                    for (int i = 0; i < xmax; i++)
                        ss += (int64_t)row[(size_t)(i + xmin) * (size_t)c + (size_t)b] * k[i];
                    tmp[((size_t)y * (size_t)ow + (size_t)x) * (size_t)c + (size_t)b] = pil_clip8(ss);
                }
            }
        src = tmp;
        src_h = th;
    }
    int sw = need_h ? ow : w;
    if (need_v) {
        for (int y = 0; y < oh; y++) {
            int ymin = vc.bounds[y * 2], ymax = vc.bounds[y * 2 + 1];
            const int32_t *k = vc.kk + (size_t)y * (size_t)vc.ksize;
            for (int x = 0; x < sw; x++)
                for (int b = 0; b < c; b++) {
                    int64_t ss = 1 << (PIL_PRECISION_BITS - 1);
                    for (int i = 0; i < ymax; i++)
                        ss += (int64_t)src[((size_t)(i + ymin) * (size_t)sw + (size_t)x) * (size_t)c + (size_t)b] *
                              k[i];
                    out[((size_t)y * (size_t)sw + (size_t)x) * (size_t)c + (size_t)b] = pil_clip8(ss);
                }
        }
    } else {
        memcpy(out, src, (size_t)src_h * (size_t)sw * (size_t)c);
    }
    free(tmp);
    free(premul);
    pil_coeffs_free(&hc);
    pil_coeffs_free(&vc);
    if (alpha)
        for (size_t i = 0, on = (size_t)oh * (size_t)ow; i < on; i++) {
            uint8_t *p = out + i * (size_t)c;
            for (int k = 0; k < c - 1; k++) p[k] = pil_unpremul(p[k], p[c - 1]);
        }
    return 0;
}

static int resize_lanczos(const plane *src, float *dst, int64_t oh, int64_t ow) {
    int64_t c = src->c;
    size_t n_in = (size_t)(src->h * src->w * c), n_out = (size_t)(oh * ow * c);
    uint8_t *in = malloc(n_in ? n_in : 1), *out = malloc(n_out ? n_out : 1);
    if (!in || !out) {
        free(in);
        free(out);
        return -1;
    }
    for (int64_t y = 0; y < src->h; y++)
        for (int64_t x = 0; x < src->w * c; x++) {
            /* np.clip(255. * image, 0, 255).astype(np.uint8): float32 product, truncation */
            float v = 255.0f * src->p[y * src->row + x];
            v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
            in[y * src->w * c + x] = v == v ? (uint8_t)v : 0;
        }
    int rc = cd_img_pil_resize(in, (int)src->w, (int)src->h, (int)c, out, (int)ow, (int)oh);
    if (!rc)
        for (size_t i = 0; i < n_out; i++) dst[i] = (float)out[i] / 255.0f;
    free(in);
    free(out);
    return rc;
}

/* ---- common_upscale ---- */

/* torch's is_contiguous(memory_format=channels_last) of the [B, C, H, W] view that movedim and
 * the centre crop's narrow() make of a [B, H0, W0, C] image (H, W the cropped size): strides
 * checked in the order C, W, H, N, dimensions of size 1 skipped. */
static bool channels_last_contiguous(int64_t b, int64_t c, int64_t h, int64_t w, int64_t h0, int64_t w0) {
    int64_t sizes[4] = {c, w, h, b}, strides[4] = {1, c, w0 * c, h0 * w0 * c};
    int64_t expected = 1;
    for (int d = 0; d < 4; d++) {
        if (sizes[d] == 1) continue;
        if (strides[d] != expected) return false;
        expected *= sizes[d];
    }
    return true;
}

cd_value *cd_img_upscale(cd_node_call *call, const cd_value *t, int64_t width, int64_t height, const char *method,
                         const char *crop) {
    int m = cd_resample_method_of(method);
    if (m < 0) {
        cd_call_fail(call, "ValueError", "unknown upscale method: %s", method ? method : "(none)");
        return NULL;
    }
    cd_img_shape s;
    const char *type = cd_value_tensor_type(t);
    bool is_mask = type && !strcmp(type, "MASK");
    if (is_mask ? !cd_mask_shape_of(call, "image", t, &s) : !cd_img_shape_of(call, "image", t, &s)) return NULL;
    if (s.h <= 0 || s.w <= 0 || width <= 0 || height <= 0) {
        cd_call_fail(call, "RuntimeError",
                     "Input and output sizes should be greater than 0, but got input (H: %lld, W: %lld) output (H: "
                     "%lld, W: %lld)",
                     (long long)s.h, (long long)s.w, (long long)height, (long long)width);
        return NULL;
    }
    if (width > INT32_MAX / 8 || height > INT32_MAX / 8) {
        cd_call_fail(call, "ValueError", "output size %lld x %lld is too large", (long long)width, (long long)height);
        return NULL;
    }
    /* crop="center": the largest centred region with the target's aspect ratio */
    int64_t cx = 0, cy = 0;
    if (crop && !strcmp(crop, "center")) {
        double old_aspect = (double)s.w / (double)s.h, new_aspect = (double)width / (double)height;
        if (old_aspect > new_aspect) cx = cd_py_round(((double)s.w - (double)s.w * (new_aspect / old_aspect)) / 2);
        else if (old_aspect < new_aspect) cy = cd_py_round(((double)s.h - (double)s.h * (old_aspect / new_aspect)) / 2);
    }
    int64_t ih = s.h - 2 * cy, iw = s.w - 2 * cx;
    if (ih <= 0 || iw <= 0) {
        cd_call_fail(call, "RuntimeError", "the centre crop of a %lld x %lld image to %lld x %lld is empty",
                     (long long)s.w, (long long)s.h, (long long)width, (long long)height);
        return NULL;
    }
    cd_value *out;
    int nd = cd_value_tensor_ndim(t);
    if (is_mask) {
        int64_t shape[3] = {s.b, height, width};
        out = nd == 2 ? cd_value_tensor_new("MASK", 2, shape + 1) : cd_value_tensor_new("MASK", 3, shape);
    } else {
        int64_t shape[4] = {s.b, height, width, s.c};
        out = cd_value_tensor_new("IMAGE", 4, shape);
    }
    size_t ny = (size_t)height, nx = (size_t)width;
    void *ty = malloc(ny * sizeof(cub_t)), *tx = malloc(nx * sizeof(cub_t));
    if (!out || !ty || !tx) {
        free(ty);
        free(tx);
        cd_value_unref(out);
        cd_call_fail(call, "MemoryError", "cannot allocate a %lld x %lld result", (long long)width, (long long)height);
        return NULL;
    }
    float *d = cd_value_tensor_data_mut(out);
    const float *base = cd_value_tensor_data(t);
    size_t per_in = (size_t)(s.h * s.w * s.c), per_out = (size_t)(height * width * s.c);
    /* torch's choice of kernel for bilinear and nearest-exact (_use_vectorized_kernel_cond_2d):
     * the channels-last one for a channels-last input of more than 3 channels (ComfyUI's IMAGE
     * after movedim; a crop is no longer contiguous) or an output of H + W <= 128, else the
     * generic one. torch also takes the channels-last kernel for bilinear with 3 channels when it
     * runs on one thread; comfyd assumes several, as ComfyUI has on any usual machine. */
    bool channels_last = (s.c > 3 && channels_last_contiguous(s.b, s.c, ih, iw, s.h, s.w)) || height + width <= 128;
    int rc = 0;
    for (int64_t b = 0; b < s.b && !rc; b++) {
        plane p = {base + per_in * (size_t)b + (size_t)(cy * s.w * s.c + cx * s.c), ih, iw, s.c, s.w * s.c};
        float *o = d + per_out * (size_t)b;
        switch (m) {
        case CD_RESAMPLE_NEAREST_EXACT: resize_nearest(&p, o, height, width, tx, ty, channels_last); break;
        case CD_RESAMPLE_BILINEAR: resize_bilinear(&p, o, height, width, ty, tx, channels_last); break;
        case CD_RESAMPLE_AREA: resize_area(&p, o, height, width); break;
        case CD_RESAMPLE_BICUBIC: resize_bicubic(&p, o, height, width, ty, tx); break;
        default: rc = resize_lanczos(&p, o, height, width); break;
        }
    }
    free(ty);
    free(tx);
    if (rc) {
        cd_value_unref(out);
        cd_call_fail(call, "MemoryError", "out of memory while resizing");
        return NULL;
    }
    return out;
}
