/* The image filter nodes (src/nodes/image/filters.c, color.c, animation.c): values worked out
 * by hand from ComfyUI's formulas on small images, the edge cases (batches, RGBA, mismatched
 * sizes, images too small for a padding) and the files and frames the savers produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vips/vips.h>

#include "node_call.h"

int cd_nodes_image_init(cd_pack *pack);

static int setup(void **state) {
    cd_registry *reg = cd_registry_new();
    if (cd_registry_add_pack(reg, "image", "nodes", cd_nodes_image_init) <= 0) return -1;
    *state = reg;
    return 0;
}

/* ---- helpers ---- */

static cd_value *image(int64_t b, int64_t h, int64_t w, int64_t c, const float *values) {
    int64_t shape[4] = {b, h, w, c};
    cd_value *v = cd_value_tensor_new("IMAGE", 4, shape);
    assert_non_null(v);
    if (values) memcpy(cd_value_tensor_data_mut(v), values, (size_t)(b * h * w * c) * sizeof(float));
    return v;
}

static cd_value *filled(int64_t b, int64_t h, int64_t w, int64_t c, float value) {
    cd_value *v = image(b, h, w, c, NULL);
    float *d = cd_value_tensor_data_mut(v);
    for (size_t i = 0; i < cd_value_tensor_numel(v); i++) d[i] = value;
    return v;
}

/* A grey image from one value per pixel, repeated over c channels. */
static cd_value *grey(int64_t b, int64_t h, int64_t w, int64_t c, const float *px) {
    cd_value *v = image(b, h, w, c, NULL);
    float *d = cd_value_tensor_data_mut(v);
    for (int64_t i = 0; i < b * h * w; i++)
        for (int64_t k = 0; k < c; k++) d[i * c + k] = px[i];
    return v;
}

static void ok(run_t *r) {
    if (r->rc != CD_OK) fail_msg("node failed: %s: %s", r->call.error_type, r->call.error_message);
}

static void fails(run_t *r, const char *needle) {
    if (r->rc != CD_ERROR) fail_msg("the node did not fail");
    if (!strstr(r->call.error_message, needle))
        fail_msg("error '%s' does not mention '%s'", r->call.error_message, needle);
}

static void shape_is(const cd_value *v, int64_t b, int64_t h, int64_t w, int64_t c) {
    assert_int_equal(cd_value_tensor_ndim(v), 4);
    assert_int_equal(cd_value_tensor_dim(v, 0), b);
    assert_int_equal(cd_value_tensor_dim(v, 1), h);
    assert_int_equal(cd_value_tensor_dim(v, 2), w);
    assert_int_equal(cd_value_tensor_dim(v, 3), c);
}

static void near(float got, double want, double tol, const char *what, size_t i) {
    if (!(fabs((double)got - want) <= tol)) fail_msg("%s[%zu] = %.9g, expected %.9g", what, i, (double)got, want);
}

/* Channel k of every pixel equals want[pixel] (within tol). */
static void pixels_are(const cd_value *v, int64_t c, int64_t k, const double *want, size_t n, double tol) {
    const float *d = cd_value_tensor_data(v);
    for (size_t i = 0; i < n; i++) near(d[i * (size_t)c + (size_t)k], want[i], tol, "pixel", i);
}

/* ---- ImageBlend ---- */

static const float blend_a[6] = {0.25f, 0.75f, 0.5f, 1.0f, 0.0f, 0.2f};
static const float blend_b[6] = {0.5f, 0.25f, 1.0f, 0.0f, 0.5f, 0.6f};

static void blend_case(const cd_registry *reg, const char *mode, double factor, const double want[6], double tol) {
    run_t r;
    run(&r, reg, "ImageBlend", "image1", image(1, 1, 2, 3, blend_a), "image2", image(1, 1, 2, 3, blend_b),
        "blend_factor", cd_value_float(factor), "blend_mode", cd_value_string(mode), NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 1, 1, 2, 3);
    const float *d = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 6; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s", mode);
        near(d[i], want[i], tol, what, i);
    }
    run_end(&r);
}

static void test_blend_modes(void **state) {
    const cd_registry *reg = *state;
    blend_case(reg, "normal", 1.0, (const double[]){0.5, 0.25, 1.0, 0.0, 0.5, 0.6}, 1e-7);
    blend_case(reg, "multiply", 1.0, (const double[]){0.125, 0.1875, 0.5, 0.0, 0.0, 0.12}, 1e-7);
    blend_case(reg, "screen", 1.0, (const double[]){0.625, 0.8125, 1.0, 1.0, 0.5, 0.68}, 1e-7);
    /* overlay: 2ab where a <= 0.5, else 1 - 2(1-a)(1-b) */
    blend_case(reg, "overlay", 1.0, (const double[]){0.25, 0.625, 1.0, 1.0, 0.0, 0.24}, 1e-7);
    /* soft light: a - (1-2b) a (1-a) where b <= 0.5, else a + (2b-1)(g(a) - a); g(0.5) = sqrt(0.5),
     * g(0.2) = ((16*0.2 - 12)*0.2 + 4)*0.2 = 0.448 */
    blend_case(reg, "soft_light", 1.0, (const double[]){0.25, 0.65625, sqrt(0.5), 1.0, 0.0, 0.2496}, 1e-6);
    /* difference is a - b, clamped */
    blend_case(reg, "difference", 1.0, (const double[]){0.0, 0.5, 0.0, 1.0, 0.0, 0.0}, 1e-7);
    /* the factor mixes image1 back in: a/2 + b/2 for normal */
    blend_case(reg, "normal", 0.5, (const double[]){0.375, 0.5, 0.75, 0.5, 0.25, 0.4}, 1e-7);
    blend_case(reg, "multiply", 0.0, (const double[]){0.25, 0.75, 0.5, 1.0, 0.0, 0.2}, 1e-7);
}

static void test_blend_resizes_and_broadcasts(void **state) {
    const cd_registry *reg = *state;
    /* image2 1x2 -> 1x4 by torch's bicubic (A = -0.75, half-pixel centres): for the pixels
     * [0, 1] the four outputs are -0.10546875, 0.2265625, 0.7734375, 1.10546875, worked out from
     * the cubic convolution weights; normal at 0.5 over a 0.5 image halves them and adds 0.25. */
    run_t r;
    run(&r, reg, "ImageBlend", "image1", filled(1, 1, 4, 3, 0.5f), "image2",
        grey(1, 1, 2, 3, (const float[]){0.0f, 1.0f}), "blend_factor", cd_value_float(0.5), "blend_mode",
        cd_value_string("normal"), NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 1, 1, 4, 3);
    for (int k = 0; k < 3; k++)
        pixels_are(r.call.outputs[0], 3, k, (const double[]){0.197265625, 0.36328125, 0.63671875, 0.802734375}, 4,
                   1e-7);
    run_end(&r);

    /* a wider image2 is centre-cropped to image1's aspect first: 4 x 2 onto 2 x 2 keeps columns
     * 1 and 2 (round((4 - 4 * (1 / 2)) / 2) = 1 from each side), then scales by exactly 1 */
    run(&r, reg, "ImageBlend", "image1", filled(1, 2, 2, 3, 0.0f), "image2",
        grey(1, 2, 4, 3, (const float[]){0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f}), "blend_factor",
        cd_value_float(1.0), "blend_mode", cd_value_string("normal"), NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 1, 2, 2, 3);
    pixels_are(r.call.outputs[0], 3, 0, (const double[]){0.2f, 0.3f, 0.6f, 0.7f}, 4, 0);
    run_end(&r);

    /* one image2 blends into every image of a batch */
    run(&r, reg, "ImageBlend", "image1", filled(2, 2, 2, 3, 0.5f), "image2", filled(1, 2, 2, 3, 1.0f),
        "blend_factor", cd_value_float(1.0), "blend_mode", cd_value_string("multiply"), NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 2, 2, 2, 3);
    const float *d = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 24; i++) near(d[i], 0.5, 0, "batch", i);
    run_end(&r);

    /* batches of 2 and 3 do not broadcast; RGB and RGBA neither */
    run(&r, reg, "ImageBlend", "image1", filled(2, 2, 2, 3, 0.5f), "image2", filled(3, 2, 2, 3, 1.0f),
        "blend_factor", cd_value_float(1.0), "blend_mode", cd_value_string("normal"), NULL);
    fails(&r, "must match the size of tensor b (3)");
    run_end(&r);
    /* image_alpha_fix: an RGBA image2 loses its alpha over RGB; an RGB one gains an opaque alpha */
    run(&r, reg, "ImageBlend", "image1", filled(1, 2, 2, 3, 0.5f), "image2", filled(1, 2, 2, 4, 0.25f),
        "blend_factor", cd_value_float(1.0), "blend_mode", cd_value_string("normal"), NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 1, 2, 2, 3);
    d = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 12; i++) near(d[i], 0.25, 0, "rgba over rgb", i);
    run_end(&r);
    run(&r, reg, "ImageBlend", "image1", filled(1, 2, 2, 4, 0.5f), "image2", filled(1, 2, 2, 3, 0.25f),
        "blend_factor", cd_value_float(0.5), "blend_mode", cd_value_string("multiply"), NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 1, 2, 2, 4);
    d = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 16; i++) near(d[i], i % 4 == 3 ? 0.5 : 0.3125, 1e-7, "rgb over rgba", i);
    run_end(&r);
    run(&r, reg, "ImageBlend", "image1", filled(1, 2, 2, 3, 0.5f), "image2", filled(1, 2, 2, 3, 1.0f),
        "blend_factor", cd_value_float(1.0), "blend_mode", cd_value_string("lighten"), NULL);
    fails(&r, "blend_mode");
    run_end(&r);
}

/* ---- ImageBlur, ImageSharpen ---- */

/* ComfyUI's 3x3 gaussian for sigma 1 over linspace(-1, 1, 3): exp(-d^2/2) normalised */
static void gauss3(double *center, double *edge, double *corner) {
    double sum = 1.0 + 4.0 * exp(-0.5) + 4.0 * exp(-1.0);
    *center = 1.0 / sum;
    *edge = exp(-0.5) / sum;
    *corner = exp(-1.0) / sum;
}

static void test_blur(void **state) {
    const cd_registry *reg = *state;
    double ce, ed, co;
    gauss3(&ce, &ed, &co);
    /* an impulse in the middle of 3x3: with reflect padding the corner pixel sees the impulse
     * through its four diagonal taps, an edge pixel through two edge taps */
    float px[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0};
    run_t r;
    run(&r, reg, "ImageBlur", "image", grey(1, 3, 3, 4, px), "blur_radius", cd_value_int(1), "sigma",
        cd_value_float(1.0), NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 1, 3, 3, 4);
    double want[9] = {4 * co, 2 * ed, 4 * co, 2 * ed, ce, 2 * ed, 4 * co, 2 * ed, 4 * co};
    for (int k = 0; k < 4; k++) pixels_are(r.call.outputs[0], 4, k, want, 9, 1e-6); /* alpha is blurred too */
    run_end(&r);

    /* a flat image stays flat; every image of a batch is blurred on its own */
    cd_value *two = image(2, 4, 5, 3, NULL);
    float *d = cd_value_tensor_data_mut(two);
    for (size_t i = 0; i < 60; i++) d[i] = 0.25f;
    for (size_t i = 60; i < 120; i++) d[i] = 0.75f;
    run(&r, reg, "ImageBlur", "image", two, "blur_radius", cd_value_int(3), "sigma", cd_value_float(2.5), NULL);
    ok(&r);
    const float *o = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 120; i++) near(o[i], i < 60 ? 0.25 : 0.75, 1e-6, "flat", i);
    run_end(&r);

    /* torch's reflect padding needs the radius below the size */
    run(&r, reg, "ImageBlur", "image", filled(1, 3, 8, 3, 0.5f), "blur_radius", cd_value_int(3), "sigma",
        cd_value_float(1.0), NULL);
    fails(&r, "Padding size should be less than the corresponding input dimension");
    run_end(&r);
}

static void test_sharpen(void **state) {
    const cd_registry *reg = *state;
    double ce, ed, co;
    gauss3(&ce, &ed, &co);
    /* alpha 0.01: kernel = g * -0.1 with the centre raised so the kernel sums to 1, i.e.
     * centre 1 + 0.1 (1 - g_c); on 0.5 with 0.6 in the middle: 0.5 + 0.1 * tap */
    float px[9] = {0.5f, 0.5f, 0.5f, 0.5f, 0.6f, 0.5f, 0.5f, 0.5f, 0.5f};
    run_t r;
    run(&r, reg, "ImageSharpen", "image", grey(1, 3, 3, 3, px), "sharpen_radius", cd_value_int(1), "sigma",
        cd_value_float(1.0), "alpha", cd_value_float(0.01), NULL);
    ok(&r);
    double mid = 0.5 + 0.1 * (1.0 + 0.1 * (1.0 - ce));
    double want[9] = {0.5 - 0.1 * 0.4 * co, 0.5 - 0.1 * 0.2 * ed, 0.5 - 0.1 * 0.4 * co, 0.5 - 0.1 * 0.2 * ed, mid,
                      0.5 - 0.1 * 0.2 * ed, 0.5 - 0.1 * 0.4 * co, 0.5 - 0.1 * 0.2 * ed, 0.5 - 0.1 * 0.4 * co};
    for (int k = 0; k < 3; k++) pixels_are(r.call.outputs[0], 3, k, want, 9, 1e-6);
    run_end(&r);

    /* strong sharpening clamps to 0..1; alpha 0 leaves the image as it was, exactly */
    run(&r, reg, "ImageSharpen", "image", grey(1, 3, 3, 3, px), "sharpen_radius", cd_value_int(1), "sigma",
        cd_value_float(1.0), "alpha", cd_value_float(5.0), NULL);
    ok(&r);
    const float *d = cd_value_tensor_data(r.call.outputs[0]);
    assert_true(d[4 * 3] == 1.0f);
    assert_true(d[0] == 0.0f);
    run_end(&r);
    run(&r, reg, "ImageSharpen", "image", grey(1, 3, 3, 3, px), "sharpen_radius", cd_value_int(1), "sigma",
        cd_value_float(1.0), "alpha", cd_value_float(0.0), NULL);
    ok(&r);
    d = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 27; i++) near(d[i], px[i / 3], 0, "identity", i);
    run_end(&r);

    run(&r, reg, "ImageSharpen", "image", filled(1, 2, 3, 3, 0.5f), "sharpen_radius", cd_value_int(2), "sigma",
        cd_value_float(1.0), "alpha", cd_value_float(1.0), NULL);
    fails(&r, "Padding size");
    run_end(&r);
}

/* ComfyUI's blur (2-D gaussian over linspace(-1, 1, k), reflect borders) in double precision,
 * for one channel image h x w; the sharpening variant when alpha >= 0. */
static double ref_conv(const float *px, int64_t h, int64_t w, int64_t y, int64_t x, int64_t r, double sigma,
                       double alpha) {
    int64_t k = 2 * r + 1;
    double sum = 0, acc = 0;
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) sum += exp(-(pow(-1 + 2.0 * i / (k - 1), 2) + pow(-1 + 2.0 * j / (k - 1), 2)) / (2 * sigma * sigma));
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) {
            double g = exp(-(pow(-1 + 2.0 * i / (k - 1), 2) + pow(-1 + 2.0 * j / (k - 1), 2)) / (2 * sigma * sigma)) / sum;
            int64_t yy = y + i - r, xx = x + j - r;
            yy = yy < 0 ? -yy : yy >= h ? 2 * (h - 1) - yy : yy;
            xx = xx < 0 ? -xx : xx >= w ? 2 * (w - 1) - xx : xx;
            acc += g * px[yy * w + xx];
        }
    if (alpha < 0) return acc;
    double v = (1 + 10 * alpha) * px[y * w + x] - 10 * alpha * acc;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static void test_blur_sharpen_radii(void **state) {
    const cd_registry *reg = *state;
    /* a pseudo-random 19 x 21 grey image; radius 3 takes the direct 2-D kernel, 9 the separable
     * product: both within float32 rounding of the formula */
    float px[19 * 21];
    uint32_t seed = 12345;
    for (int i = 0; i < 19 * 21; i++) {
        seed = seed * 1103515245u + 12345u;
        px[i] = (float)((seed >> 8) & 0xffff) / 65535.0f;
    }
    const int64_t radii[2] = {3, 9};
    for (int k = 0; k < 2; k++)
        for (int sharp = 0; sharp < 2; sharp++) {
            run_t r;
            if (sharp)
                run(&r, reg, "ImageSharpen", "image", grey(1, 19, 21, 3, px), "sharpen_radius", cd_value_int(radii[k]),
                    "sigma", cd_value_float(0.7), "alpha", cd_value_float(0.3), NULL);
            else
                run(&r, reg, "ImageBlur", "image", grey(1, 19, 21, 3, px), "blur_radius", cd_value_int(radii[k]),
                    "sigma", cd_value_float(0.7), NULL);
            ok(&r);
            const float *d = cd_value_tensor_data(r.call.outputs[0]);
            for (int64_t y = 0; y < 19; y++)
                for (int64_t x = 0; x < 21; x++) {
                    double want = ref_conv(px, 19, 21, y, x, radii[k], 0.7, sharp ? 0.3 : -1);
                    for (int c = 0; c < 3; c++)
                        near(d[(y * 21 + x) * 3 + c], want, sharp ? 1e-5 : 2e-6, sharp ? "sharpen" : "blur",
                             (size_t)(y * 21 + x));
                }
            run_end(&r);
        }
}

/* ---- Morphology ---- */

static void morph_case(const cd_registry *reg, const float px[16], const char *op, int64_t k, const double want[16]) {
    run_t r;
    run(&r, reg, "Morphology", "image", grey(1, 4, 4, 3, px), "operation", cd_value_string(op), "kernel_size",
        cd_value_int(k), NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 1, 4, 4, 3);
    for (int c = 0; c < 3; c++) pixels_are(r.call.outputs[0], 3, c, want, 16, 0);
    run_end(&r);
}

static void test_morphology(void **state) {
    const cd_registry *reg = *state;
    /* one bright pixel at (1, 1) */
    const float dot[16] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const double block[16] = {1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0};
    const double zero[16] = {0};
    morph_case(reg, dot, "dilate", 3, block);
    morph_case(reg, dot, "erode", 3, zero);
    morph_case(reg, dot, "open", 3, zero);
    morph_case(reg, dot, "top_hat", 3, (const double[]){0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    morph_case(reg, dot, "gradient", 3, block);
    /* close = erode(dilate): kornia's geodesic border ignores the outside, so the block's corner
     * at the image border survives the erosion while its inner rim does not */
    morph_case(reg, dot, "close", 3, (const double[]){1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    morph_case(reg, dot, "bottom_hat", 3, (const double[]){1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    /* a hole in white: erosion spreads it, the border does not erode */
    const float hole[16] = {1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    morph_case(reg, hole, "erode", 3, (const double[]){0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1});
    /* an even kernel reaches k/2 up and left, k/2 - 1 down and right (kornia's origin) */
    const float corner[16] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    morph_case(reg, corner, "dilate", 4, (const double[]){1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0});
    /* a kernel wider than the image covers it all */
    morph_case(reg, corner, "dilate", 9, (const double[]){1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1});

    /* grey levels, RGBA and a batch: each channel and image on its own */
    cd_value *in = image(2, 1, 3, 4, NULL);
    float *d = cd_value_tensor_data_mut(in);
    const float vals[24] = {0.2f, 0.9f, 0.1f, 1.0f, 0.5f, 0.3f, 0.7f, 0.0f, 0.4f, 0.6f, 0.8f, 0.5f,
                            0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.3f, 0.3f, 0.3f, 0.3f};
    memcpy(d, vals, sizeof vals);
    run_t r;
    run(&r, reg, "Morphology", "image", in, "operation", cd_value_string("dilate"), "kernel_size", cd_value_int(3),
        NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 2, 1, 3, 4);
    const float want[24] = {0.5f, 0.9f, 0.7f, 1.0f, 0.5f, 0.9f, 0.8f, 1.0f, 0.5f, 0.6f, 0.8f, 0.5f,
                            1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    const float *o = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 24; i++) near(o[i], want[i], 0, "dilate", i);
    run_end(&r);

    run(&r, reg, "Morphology", "image", filled(1, 2, 2, 3, 0.5f), "operation", cd_value_string("tophat"),
        "kernel_size", cd_value_int(3), NULL);
    fails(&r, "operation");
    run_end(&r);
}

/* ---- Canny ---- */

/* An 8x8 image whose columns are `profile`: a vertical edge. */
static cd_value *columns(int64_t b, const float profile[8]) {
    float px[64 * 2];
    for (int64_t i = 0; i < 64 * b; i++) px[i] = profile[i % 8];
    return grey(b, 8, 8, 3, px);
}

static void canny_case(const cd_registry *reg, cd_value *in, double low, double high, int edge_col) {
    run_t r;
    int64_t b = cd_value_tensor_dim(in, 0);
    run(&r, reg, "Canny", "image", in, "low_threshold", cd_value_float(low), "high_threshold", cd_value_float(high),
        NULL);
    ok(&r);
    shape_is(r.call.outputs[0], b, 8, 8, 3);
    const float *d = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < (size_t)(64 * b); i++)
        for (int c = 0; c < 3; c++) {
            float want = (int)(i % 8) == edge_col ? 1.0f : 0.0f;
            if (d[i * 3 + (size_t)c] != want)
                fail_msg("edge pixel (%zu, %zu) = %g, expected %g", i / 8, i % 8, (double)d[i * 3 + (size_t)c],
                         (double)want);
        }
    run_end(&r);
}

static void test_canny(void **state) {
    const cd_registry *reg = *state;
    /* 0 0 0 0.5 1 1 1 1: after the 5-tap gaussian the Sobel magnitude peaks at column 3
     * (4 * (b4 - b2) = 2.59), its neighbours reach 1.89, so non-maximum suppression keeps
     * column 3 only */
    const float step[8] = {0, 0, 0, 0.5f, 1, 1, 1, 1};
    canny_case(reg, columns(1, step), 0.4, 0.8, 3);
    canny_case(reg, columns(1, step), 0.5, 2.5, 3);
    /* above low but below high everywhere: weak edges without a strong one vanish */
    canny_case(reg, columns(1, step), 0.5, 2.7, -1);
    /* half the contrast: 1.29 at the peak */
    const float soft[8] = {0, 0, 0, 0.25f, 0.5f, 0.5f, 0.5f, 0.5f};
    canny_case(reg, columns(1, soft), 0.5, 0.99, 3);
    canny_case(reg, columns(1, soft), 0.01, 0.01, 3);
    /* a flat image has no edges; a batch is handled image by image */
    canny_case(reg, filled(2, 8, 8, 3, 0.7f), 0.01, 0.02, -1);
    cd_value *two = image(2, 8, 8, 3, NULL);
    float *d = cd_value_tensor_data_mut(two);
    for (size_t i = 0; i < 192; i++) d[i] = 0.3f;
    for (size_t i = 0; i < 64; i++)
        for (int c = 0; c < 3; c++) d[192 + i * 3 + (size_t)c] = step[i % 8];
    run_t r;
    run(&r, reg, "Canny", "image", two, "low_threshold", cd_value_float(0.4), "high_threshold", cd_value_float(0.8),
        NULL);
    ok(&r);
    const float *o = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 64; i++) {
        near(o[i * 3], 0.0, 0, "flat image", i);
        near(o[192 + i * 3], i % 8 == 3 ? 1.0 : 0.0, 0, "edge image", i);
    }
    run_end(&r);

    /* odd sizes: a diagonal edge is found along the diagonal and nowhere else; a 7 x 9 step */
    {
        float diag[7 * 7];
        for (int y = 0; y < 7; y++)
            for (int x = 0; x < 7; x++) diag[y * 7 + x] = x > y ? 1.0f : x == y ? 0.5f : 0.0f;
        run(&r, reg, "Canny", "image", grey(1, 7, 7, 3, diag), "low_threshold", cd_value_float(0.2), "high_threshold",
            cd_value_float(0.5), NULL);
        ok(&r);
        const float *e = cd_value_tensor_data(r.call.outputs[0]);
        int on = 0;
        for (int y = 0; y < 7; y++)
            for (int x = 0; x < 7; x++) {
                on += e[(y * 7 + x) * 3] == 1.0f;
                if (e[(y * 7 + x) * 3] == 1.0f && abs(x - y) > 1) fail_msg("edge off the diagonal at (%d, %d)", y, x);
            }
        assert_true(on >= 5);
        run_end(&r);
        float odd[7 * 9];
        for (int i = 0; i < 63; i++) odd[i] = (i % 9) >= 4 ? 1.0f : 0.0f;
        run(&r, reg, "Canny", "image", grey(1, 7, 9, 3, odd), "low_threshold", cd_value_float(0.2), "high_threshold",
            cd_value_float(0.5), NULL);
        ok(&r);
        shape_is(r.call.outputs[0], 1, 7, 9, 3);
        e = cd_value_tensor_data(r.call.outputs[0]);
        /* 0 0 0 0 1 1 1 1 1: columns 3 and 4 have the same magnitude up to float rounding, so
         * which one survives non-maximum suppression is rounding's choice (as in torch); what
         * holds is that every row is the same and nothing lies outside those two columns */
        for (int i = 0; i < 63; i++) {
            if ((i % 9 < 3 || i % 9 > 4) && e[i * 3] != 0.0f) fail_msg("edge at column %d", i % 9);
            near(e[i * 3], e[(i % 9) * 3], 0, "rows alike", (size_t)i);
        }
        run_end(&r);
    }

    /* an RGBA image is read as its RGB */
    cd_value *rgba = image(1, 8, 8, 4, NULL);
    d = cd_value_tensor_data_mut(rgba);
    for (size_t i = 0; i < 64; i++) {
        for (int c = 0; c < 3; c++) d[i * 4 + (size_t)c] = step[i % 8];
        d[i * 4 + 3] = 1.0f;
    }
    canny_case(reg, rgba, 0.4, 0.8, 3);

    run(&r, reg, "Canny", "image", columns(1, step), "low_threshold", cd_value_float(0.8), "high_threshold",
        cd_value_float(0.4), NULL);
    fails(&r, "low_threshold should be smaller than the high_threshold");
    run_end(&r);
    run(&r, reg, "Canny", "image", filled(1, 2, 3, 3, 0.5f), "low_threshold", cd_value_float(0.4), "high_threshold",
        cd_value_float(0.8), NULL);
    fails(&r, "Padding size");
    run_end(&r);
}

/* ---- ImageAddNoise ---- */

static void test_add_noise(void **state) {
    const cd_registry *reg = *state;
    /* torch.manual_seed(0); torch.randn(4, 4): 16 values, torch's float Box-Muller path */
    static const double randn16[16] = {-1.1258, -1.1524, -0.2506, -0.4339, 0.8487, 0.6920, -0.3160, -2.1152,
                                       0.3223,  -1.2633, 0.3500,  0.3081,  0.1198, 1.2377, 1.1168,  -0.2473};
    run_t r;
    run(&r, reg, "ImageAddNoise", "image", filled(1, 2, 2, 4, 0.5f), "seed", cd_value_int(0), "strength",
        cd_value_float(0.1), NULL);
    ok(&r);
    const float *d = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 16; i++) near(d[i], 0.5 + 0.1 * randn16[i], 1e-5, "randn(4, 4)", i);
    run_end(&r);
    /* torch.manual_seed(0); torch.randn(2, 3): below 16 values torch draws doubles */
    static const double randn6[6] = {1.5410, -0.2934, -2.1788, 0.5684, -1.0845, -1.3986};
    run(&r, reg, "ImageAddNoise", "image", filled(1, 1, 2, 3, 0.5f), "seed", cd_value_int(0), "strength",
        cd_value_float(0.1), NULL);
    ok(&r);
    d = cd_value_tensor_data(r.call.outputs[0]);
    for (size_t i = 0; i < 6; i++) near(d[i], 0.5 + 0.1 * randn6[i], 1e-5, "randn(2, 3)", i);
    run_end(&r);

    /* deterministic for a seed, different for another, clipped to 0..1, and spread as N(0, 1) */
    cd_value *outs[2];
    for (int k = 0; k < 2; k++) {
        run(&r, reg, "ImageAddNoise", "image", filled(1, 32, 32, 3, 0.5f), "seed", cd_value_int(k == 0 ? 7 : 8),
            "strength", cd_value_float(0.1), NULL);
        ok(&r);
        outs[k] = cd_value_ref(r.call.outputs[0]);
        run_end(&r);
    }
    run(&r, reg, "ImageAddNoise", "image", filled(1, 32, 32, 3, 0.5f), "seed", cd_value_int(7), "strength",
        cd_value_float(0.1), NULL);
    ok(&r);
    assert_memory_equal(cd_value_tensor_data(r.call.outputs[0]), cd_value_tensor_data(outs[0]), 3072 * sizeof(float));
    run_end(&r);
    assert_memory_not_equal(cd_value_tensor_data(outs[0]), cd_value_tensor_data(outs[1]), 3072 * sizeof(float));
    double sum = 0, sq = 0;
    d = cd_value_tensor_data(outs[0]);
    for (size_t i = 0; i < 3072; i++) {
        assert_true(d[i] >= 0.0f && d[i] <= 1.0f);
        sum += d[i] - 0.5;
        sq += (d[i] - 0.5) * (d[i] - 0.5);
    }
    double mean = sum / 3072, sd = sqrt(sq / 3072 - mean * mean);
    if (fabs(mean) > 0.01 || fabs(sd - 0.1) > 0.01) fail_msg("noise mean %g, sd %g", mean, sd);
    cd_value_unref(outs[0]);
    cd_value_unref(outs[1]);

    run(&r, reg, "ImageAddNoise", "image", filled(1, 1, 1, 3, 0.0f), "seed", cd_value_int(0), "strength",
        cd_value_float(1.0), NULL);
    ok(&r);
    d = cd_value_tensor_data(r.call.outputs[0]);
    /* 1.5410 stays, the negative draws clip to 0 */
    near(d[0], 1.0, 0, "clip", 0);
    near(d[1], 0.0, 0, "clip", 1);
    run_end(&r);
}

/* ---- ImageQuantize ---- */

static void test_quantize(void **state) {
    const cd_registry *reg = *state;
    /* four colours into a palette of four: the image comes back as its 8-bit self */
    const float px[12] = {1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.2f, 0.4f, 0.6f};
    const char *modes[] = {"none", "floyd-steinberg", "bayer-2", "bayer-16"};
    for (int m = 0; m < 4; m++) {
        run_t r;
        run(&r, reg, "ImageQuantize", "image", image(1, 2, 2, 3, px), "colors", cd_value_int(4), "dither",
            cd_value_string(modes[m]), NULL);
        ok(&r);
        shape_is(r.call.outputs[0], 1, 2, 2, 3);
        const float *d = cd_value_tensor_data(r.call.outputs[0]);
        /* (x * 255) truncated: 0.2 -> 51, 0.4 -> 102, 0.6 -> 153 */
        const double want[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 51 / 255.0, 102 / 255.0, 153 / 255.0};
        /* bayer-2 moves the pixels by spread * M + 0.5 = -47.5, 16.5, 48.5, -15.5 (spread = 512 / 4),
         * not far enough to reach another colour; bayer-16's larger offsets only need to land on
         * palette colours */
        for (size_t i = 0; i < 12; i++) {
            if (m < 3) near(d[i], want[i], 1e-7, modes[m], i);
            else assert_true(d[i] == 0.0f || d[i] == 1.0f || fabs(d[i] - want[i]) < 1e-7);
        }
        run_end(&r);
    }

    /* two colours for a grey ramp (8-bit 0 36 72 109 145 182 218 255): Pillow cuts along green
     * (the largest weighted range) where the count from the top first exceeds half, 5 against 3,
     * so the palette is {182 (909 / 5 rounded), 36}; 109's cache slot 108 is nearer 36 */
    float ramp[8 * 3];
    for (int i = 0; i < 8; i++)
        for (int c = 0; c < 3; c++) ramp[i * 3 + c] = (float)i / 7.0f;
    run_t r;
    run(&r, reg, "ImageQuantize", "image", image(1, 1, 8, 3, ramp), "colors", cd_value_int(2), "dither",
        cd_value_string("none"), NULL);
    ok(&r);
    const float *d = cd_value_tensor_data(r.call.outputs[0]);
    for (int i = 0; i < 8; i++) near(d[i * 3], (i < 4 ? 36 : 182) / 255.0, 1e-7, "two colours", (size_t)i);
    run_end(&r);

    /* RGBA keeps its alpha; a batch is quantised image by image */
    cd_value *rgba = image(2, 1, 2, 4, (const float[]){1, 0, 0, 0.25f, 0, 0, 1, 0.5f, 0, 1, 0, 1, 0, 1, 0, 0});
    run(&r, reg, "ImageQuantize", "image", rgba, "colors", cd_value_int(2), "dither", cd_value_string("none"), NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 2, 1, 2, 4);
    d = cd_value_tensor_data(r.call.outputs[0]);
    const float want[16] = {1, 0, 0, 0.25f, 0, 0, 1, 0.5f, 0, 1, 0, 1, 0, 1, 0, 0};
    for (size_t i = 0; i < 16; i++) near(d[i], want[i], 0, "rgba", i);
    run_end(&r);

    run(&r, reg, "ImageQuantize", "image", filled(1, 2, 2, 3, 0.5f), "colors", cd_value_int(2), "dither",
        cd_value_string("atkinson"), NULL);
    fails(&r, "dither");
    run_end(&r);
}

static void test_quantize_dither(void **state) {
    const cd_registry *reg = *state;
    /* 8-bit greys 0 0 0 255 255 255 127 127 into two colours: the cut puts {255 x3, 127 x2} above
     * {0 x3}, so the palette is {204 (1019 / 5 rounded), 0}. Without dithering 127 maps to 204.
     * With Floyd-Steinberg, Pillow's integer diffusion along the row carries +51 from each 255
     * (mapped to 204), so the first 127 sees 127 + 357/16 = 149 -> 204 (error -55) and the last
     * 127 + (-385)/16 = 103, whose cache slot 100 is nearer 0 than 204. */
    const float v[8] = {0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f, 0.5f, 0.5f};
    const double none[8] = {0, 0, 0, 204, 204, 204, 204, 204}, fs[8] = {0, 0, 0, 204, 204, 204, 204, 0};
    for (int m = 0; m < 2; m++) {
        run_t r;
        run(&r, reg, "ImageQuantize", "image", grey(1, 1, 8, 3, v), "colors", cd_value_int(2), "dither",
            cd_value_string(m ? "floyd-steinberg" : "none"), NULL);
        ok(&r);
        double want[8];
        for (int i = 0; i < 8; i++) want[i] = (m ? fs : none)[i] / 255.0;
        for (int c = 0; c < 3; c++) pixels_are(r.call.outputs[0], 3, c, want, 8, 1e-7);
        run_end(&r);
    }
}

/* A 6x6 image of 36 random colours into 5, with the output Pillow 9.4 gives for ComfyUI's two
 * quantize calls once the palette is limited to the colours found, as current Pillow does:
 * the median cut and both mappings must agree pixel for pixel (3 pixels differ between them). */
static const uint8_t pil_src[108] = {
    139, 74, 229, 241, 169, 65, 6, 160, 149, 106, 38, 175, 188, 205, 175, 229, 98, 249,
    10, 148, 95, 86, 147, 198, 66, 39, 106, 213, 171, 45, 167, 57, 69, 81, 55, 14,
    153, 178, 215, 76, 52, 39, 250, 72, 215, 50, 161, 223, 112, 172, 161, 233, 38, 17,
    89, 1, 221, 6, 242, 127, 143, 6, 60, 210, 94, 25, 166, 33, 249, 189, 12, 204,
    33, 57, 124, 30, 199, 149, 202, 119, 72, 220, 3, 209, 122, 136, 147, 77, 133, 82,
    115, 87, 162, 230, 70, 71, 240, 62, 47, 184, 31, 34, 63, 65, 146, 197, 142, 253,
};
static const uint8_t pil_none[108] = {
    153, 114, 157, 160, 176, 147, 13, 187, 130, 82, 39, 111, 160, 176, 147, 153, 114, 157,
    13, 187, 130, 153, 114, 157, 82, 39, 111, 160, 176, 147, 209, 42, 124, 82, 39, 111,
    160, 176, 147, 82, 39, 111, 209, 42, 124, 13, 187, 130, 160, 176, 147, 209, 42, 124,
    82, 39, 111, 13, 187, 130, 82, 39, 111, 209, 42, 124, 153, 114, 157, 209, 42, 124,
    82, 39, 111, 13, 187, 130, 209, 42, 124, 209, 42, 124, 153, 114, 157, 13, 187, 130,
    153, 114, 157, 209, 42, 124, 209, 42, 124, 209, 42, 124, 82, 39, 111, 153, 114, 157,
};
static const uint8_t pil_fs[108] = {
    153, 114, 157, 160, 176, 147, 13, 187, 130, 82, 39, 111, 160, 176, 147, 153, 114, 157,
    13, 187, 130, 153, 114, 157, 82, 39, 111, 160, 176, 147, 209, 42, 124, 82, 39, 111,
    160, 176, 147, 82, 39, 111, 209, 42, 124, 160, 176, 147, 160, 176, 147, 209, 42, 124,
    82, 39, 111, 13, 187, 130, 82, 39, 111, 209, 42, 124, 153, 114, 157, 209, 42, 124,
    82, 39, 111, 13, 187, 130, 160, 176, 147, 209, 42, 124, 153, 114, 157, 153, 114, 157,
    153, 114, 157, 209, 42, 124, 209, 42, 124, 209, 42, 124, 82, 39, 111, 153, 114, 157,
};


static void test_quantize_matches_pillow(void **state) {
    const cd_registry *reg = *state;
    float px[108];
    for (int i = 0; i < 108; i++) px[i] = (float)pil_src[i] / 255.0f;
    for (int m = 0; m < 2; m++) {
        run_t r;
        run(&r, reg, "ImageQuantize", "image", image(1, 6, 6, 3, px), "colors", cd_value_int(5), "dither",
            cd_value_string(m ? "floyd-steinberg" : "none"), NULL);
        ok(&r);
        const float *d = cd_value_tensor_data(r.call.outputs[0]);
        const uint8_t *want = m ? pil_fs : pil_none;
        for (size_t i = 0; i < 108; i++) near(d[i], want[i] / 255.0, 1e-7, m ? "pillow fs" : "pillow none", i);
        run_end(&r);
    }
}

/* ---- YUV ---- */

static void test_yuv(void **state) {
    const cd_registry *reg = *state;
    /* pure red: Y = 0.299, Cb = (0 - 0.299) 0.564 + 0.5, Cr = (1 - 0.299) 0.713 + 0.5 */
    run_t r;
    run(&r, reg, "ImageRGBToYUV", "image", image(1, 1, 2, 4, (const float[]){1, 0, 0, 1, 0.5f, 0.5f, 0.5f, 0}), NULL);
    ok(&r);
    double y = 0.299, cb = -0.299 * 0.564 + 0.5, cr = 0.701 * 0.713 + 0.5;
    for (int k = 0; k < 3; k++) {
        shape_is(r.call.outputs[k], 1, 1, 2, 3);
        const double *want = k == 0 ? (const double[]){y, 0.5} : k == 1 ? (const double[]){cb, 0.5} : (const double[]){cr, 0.5};
        for (int c = 0; c < 3; c++) pixels_are(r.call.outputs[k], 3, c, want, 2, 1e-6);
    }
    cd_value *yv = cd_value_ref(r.call.outputs[0]), *uv = cd_value_ref(r.call.outputs[1]),
             *vv = cd_value_ref(r.call.outputs[2]);
    run_end(&r);
    /* and back with kornia's inverse: not exactly the identity (its coefficients are rounded) */
    run(&r, reg, "ImageYUVToRGB", "Y", yv, "U", uv, "V", vv, NULL);
    ok(&r);
    shape_is(r.call.outputs[0], 1, 1, 2, 3);
    const double rr = y + 1.403 * (cr - 0.5), gg = y - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5), bb = y + 1.773 * (cb - 0.5);
    pixels_are(r.call.outputs[0], 3, 0, (const double[]){rr, 0.5}, 2, 1e-6);
    pixels_are(r.call.outputs[0], 3, 1, (const double[]){gg, 0.5}, 2, 1e-6);
    pixels_are(r.call.outputs[0], 3, 2, (const double[]){bb, 0.5}, 2, 1e-6);
    assert_true(fabs(rr - 1.000238) < 1e-5 && fabs(gg) < 2e-4 && fabs(bb) < 1e-4);
    run_end(&r);
    /* the channels of each input are averaged first */
    run(&r, reg, "ImageYUVToRGB", "Y", image(1, 1, 1, 3, (const float[]){0.2f, 0.4f, 0.6f}), "U", filled(1, 1, 1, 3, 0.5f),
        "V", filled(1, 1, 1, 3, 0.5f), NULL);
    ok(&r);
    pixels_are(r.call.outputs[0], 3, 0, (const double[]){0.4}, 1, 1e-7);
    run_end(&r);
    run(&r, reg, "ImageYUVToRGB", "Y", filled(1, 2, 2, 3, 0.5f), "U", filled(1, 2, 3, 3, 0.5f), "V",
        filled(1, 2, 2, 3, 0.5f), NULL);
    fails(&r, "Sizes of tensors must match");
    run_end(&r);
}

/* ---- savers ---- */

typedef struct {
    char dir[256];
    int previews, progress;
    void *last;
    size_t last_len;
} saver_ctx;

static const char *ctx_dir(void *ctx, const char *type) {
    (void)type;
    return ((saver_ctx *)ctx)->dir;
}

static void ctx_preview(void *ctx, const char *node_id, const char *mime, const void *bytes, size_t len) {
    saver_ctx *s = ctx;
    assert_string_equal(mime, "image/png");
    s->previews++;
    free(s->last);
    s->last = malloc(len);
    memcpy(s->last, bytes, len);
    s->last_len = len;
}

static void ctx_progress(void *ctx, const char *node_id, double value, double max) {
    ((saver_ctx *)ctx)->progress++;
}

static void run_env(run_t *r, const cd_registry *reg, const cd_call_env *env, const char *node, const char *name,
                    cd_value *v, ...) {
    const cd_node_type *t = cd_registry_get(reg, node);
    assert_non_null(t);
    memset(r, 0, sizeof *r);
    cd_call_init(&r->call, t, env, "9", 0);
    va_list ap;
    va_start(ap, v);
    while (name) {
        r->vals[r->n++] = v;
        cd_call_add_input(&r->call, name, v, NULL);
        name = va_arg(ap, const char *);
        if (name) v = va_arg(ap, cd_value *);
    }
    va_end(ap);
    r->rc = t->def->execute(&r->call);
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Band 0 of pixel (x, y) of a libvips image; 0 or -1. */
static int sample(VipsImage *im, int x, int y, double *v) {
    double *vec = NULL;
    int n = 0;
    if (vips_getpoint(im, &vec, &n, x, y, NULL) || n < 1) return -1;
    *v = vec[0];
    g_free(vec);
    return 0;
}

/* The ui JSON of the call as text. */
static char *ui_text(run_t *r) {
    return r->call.ui ? json_dumps(r->call.ui, JSON_COMPACT | JSON_SORT_KEYS) : strdup("null");
}

static void test_save_animated_png(void **state) {
    const cd_registry *reg = *state;
    saver_ctx ctx = {0};
    snprintf(ctx.dir, sizeof ctx.dir, "/tmp/comfyd-filters-test-%d", (int)getpid());
    mkdir(ctx.dir, 0755);
    cd_call_env env = {.ctx = &ctx, .directory = ctx_dir, .prompt_json = "{\"1\": {\"class_type\": \"X\"}}",
                       .extra_pnginfo_json = "{\"workflow\": {\"a\": 1}}"};
    /* three frames, the second repeated: Pillow writes two, the first lasting twice as long */
    float px[3 * 2 * 2 * 3];
    for (int i = 0; i < 36; i++) px[i] = i < 24 ? 0.5f : 1.0f;
    run_t r;
    run_env(&r, reg, &env, "SaveAnimatedPNG", "images", image(3, 2, 2, 3, px), "filename_prefix",
            cd_value_string("anim/clip"), "fps", cd_value_float(4.0), "compress_level", cd_value_int(6), NULL);
    ok(&r);
    char *ui = ui_text(&r);
    assert_string_equal(ui, "{\"animated\":[true],\"images\":[{\"filename\":\"clip_00001_.png\",\"subfolder\":\"anim\","
                            "\"type\":\"output\"}]}");
    free(ui);
    run_end(&r);
    char path[512];
    snprintf(path, sizeof path, "%s/anim/clip_00001_.png", ctx.dir);
    size_t len;
    unsigned char *buf = (unsigned char *)read_all(path, &len);
    assert_memory_equal(buf, "\x89PNG\r\n\x1a\n", 8);
    int fctl = 0, fdat = 0, idat = 0, comf = 0;
    uint32_t delays[4] = {0}, expect_seq = 0;
    bool iend = false;
    for (size_t off = 8; off + 12 <= len;) {
        uint32_t n = be32(buf + off);
        const unsigned char *type = buf + off + 4, *data = buf + off + 8;
        if (!memcmp(type, "IHDR", 4)) {
            assert_int_equal(be32(data), 2);
            assert_int_equal(be32(data + 4), 2);
            assert_int_equal(data[9], 2); /* RGB */
        } else if (!memcmp(type, "acTL", 4)) {
            assert_int_equal(be32(data), 2);
            assert_int_equal(be32(data + 4), 0);
        } else if (!memcmp(type, "fcTL", 4)) {
            assert_int_equal(be32(data), expect_seq++);
            delays[fctl++] = (uint32_t)(data[20] << 8 | data[21]);
            assert_int_equal(data[22] << 8 | data[23], 1000);
        } else if (!memcmp(type, "fdAT", 4)) {
            assert_int_equal(be32(data), expect_seq++);
            fdat++;
        } else if (!memcmp(type, "IDAT", 4)) {
            idat++;
            assert_int_equal(fctl, 1);
        } else if (!memcmp(type, "comf", 4)) {
            const char *want = comf == 0 ? "prompt" : "workflow";
            assert_string_equal((const char *)data, want);
            const char *json = (const char *)data + strlen(want) + 1;
            size_t jl = n - strlen(want) - 1;
            const char *expect = comf == 0 ? "{\"1\": {\"class_type\": \"X\"}}" : "{\"a\": 1}";
            assert_int_equal(jl, strlen(expect));
            assert_memory_equal(json, expect, jl);
            comf++;
        } else if (!memcmp(type, "IEND", 4)) {
            iend = true;
        }
        off += 12 + n;
    }
    assert_int_equal(fctl, 2);
    assert_true(idat >= 1 && fdat >= 1);
    assert_int_equal(delays[0], 500);
    assert_int_equal(delays[1], 250);
    assert_int_equal(comf, 2);
    assert_true(iend);
    free(buf);
    /* the first frame is the default image: 0.5 -> 127 */
    VipsImage *im = vips_image_new_from_file(path, NULL);
    assert_non_null(im);
    double v;
    assert_int_equal(sample(im, 1, 1, &v), 0);
    assert_true(v == 127.0);
    g_object_unref(im);

    /* the counter moves on; one image is a plain PNG without "animated" */
    run_env(&r, reg, &env, "SaveAnimatedPNG", "images", filled(1, 2, 3, 4, 0.25f), "filename_prefix",
            cd_value_string("anim/clip"), "fps", cd_value_float(6.0), "compress_level", cd_value_int(0), NULL);
    ok(&r);
    ui = ui_text(&r);
    assert_string_equal(ui, "{\"images\":[{\"filename\":\"clip_00002_.png\",\"subfolder\":\"anim\",\"type\":\"output\"}]}");
    free(ui);
    run_end(&r);
    snprintf(path, sizeof path, "%s/anim/clip_00002_.png", ctx.dir);
    buf = (unsigned char *)read_all(path, &len);
    assert_null(memmem(buf, len, "acTL", 4));
    assert_non_null(memmem(buf, len, "comf", 4));
    free(buf);
    im = vips_image_new_from_file(path, NULL);
    assert_non_null(im);
    assert_int_equal(vips_image_get_bands(im), 4);
    assert_int_equal(sample(im, 0, 0, &v), 0);
    assert_true(v == 63.0);
    g_object_unref(im);

    /* large noisy frames: the encoder cuts each frame's data into several IDAT chunks, which
     * become consecutive fdAT chunks with their own sequence numbers */
    cd_value *noisy = image(2, 160, 160, 3, NULL);
    float *nd = cd_value_tensor_data_mut(noisy);
    uint32_t seed = 99;
    for (size_t i = 0; i < 2 * 160 * 160 * 3; i++) {
        seed = seed * 1664525u + 1013904223u;
        nd[i] = (float)(seed >> 24) / 255.0f;
    }
    double expect_px = (double)(uint8_t)(255.0f * nd[(5 * 160 + 7) * 3]);
    run_env(&r, reg, &env, "SaveAnimatedPNG", "images", noisy, "filename_prefix", cd_value_string("noisy"), "fps",
            cd_value_float(10.0), "compress_level", cd_value_int(1), NULL);
    ok(&r);
    run_end(&r);
    snprintf(path, sizeof path, "%s/noisy_00001_.png", ctx.dir);
    buf = (unsigned char *)read_all(path, &len);
    int fdats = 0, idats = 0;
    expect_seq = 0;
    for (size_t off = 8; off + 12 <= len;) {
        uint32_t n = be32(buf + off);
        if (!memcmp(buf + off + 4, "fcTL", 4) || !memcmp(buf + off + 4, "fdAT", 4))
            assert_int_equal(be32(buf + off + 8), expect_seq++);
        if (!memcmp(buf + off + 4, "fdAT", 4)) fdats++;
        if (!memcmp(buf + off + 4, "IDAT", 4)) idats++;
        off += 12 + n;
    }
    assert_true(idats > 1 && fdats == idats);
    free(buf);
    im = vips_image_new_from_file(path, NULL);
    assert_non_null(im);
    assert_int_equal(sample(im, 7, 5, &v), 0);
    assert_true(v == expect_px);
    g_object_unref(im);

    /* without metadata, no comf chunks */
    env.no_metadata = true;
    run_env(&r, reg, &env, "SaveAnimatedPNG", "images", filled(2, 2, 2, 3, 0.25f), "filename_prefix",
            cd_value_string("bare"), "fps", cd_value_float(6.0), "compress_level", cd_value_int(4), NULL);
    ok(&r);
    run_end(&r);
    snprintf(path, sizeof path, "%s/bare_00001_.png", ctx.dir);
    buf = (unsigned char *)read_all(path, &len);
    assert_null(memmem(buf, len, "comf", 4));
    free(buf);

    run_env(&r, reg, &env, "SaveAnimatedPNG", "images", filled(2, 2, 2, 3, 0.25f), "filename_prefix",
            cd_value_string("../escape"), "fps", cd_value_float(6.0), "compress_level", cd_value_int(4), NULL);
    fails(&r, "outside the output folder");
    run_end(&r);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", ctx.dir);
    assert_int_equal(system(cmd), 0);
}

static void test_save_animated_webp(void **state) {
    const cd_registry *reg = *state;
    saver_ctx ctx = {0};
    snprintf(ctx.dir, sizeof ctx.dir, "/tmp/comfyd-filters-webp-%d", (int)getpid());
    mkdir(ctx.dir, 0755);
    cd_call_env env = {.ctx = &ctx, .directory = ctx_dir, .prompt_json = "{\"1\": {}}",
                       .extra_pnginfo_json = "{\"workflow\": {\"nodes\": []}}"};
    float px[3 * 4 * 4 * 3];
    for (int i = 0; i < 144; i++) px[i] = (float)(i / 48) * 0.5f;
    run_t r;
    run_env(&r, reg, &env, "SaveAnimatedWEBP", "images", image(3, 4, 4, 3, px), "filename_prefix",
            cd_value_string("ComfyUI"), "fps", cd_value_float(3.0), "lossless", cd_value_bool(1), "quality",
            cd_value_int(80), "method", cd_value_string("fastest"), NULL);
    ok(&r);
    char *ui = ui_text(&r);
    assert_string_equal(ui, "{\"animated\":[true],\"images\":[{\"filename\":\"ComfyUI_00001_.webp\",\"subfolder\":\"\","
                            "\"type\":\"output\"}]}");
    free(ui);
    run_end(&r);
    char path[512];
    snprintf(path, sizeof path, "%s/ComfyUI_00001_.webp", ctx.dir);
    VipsImage *im = vips_image_new_from_file(path, "n", -1, NULL);
    assert_non_null(im);
    assert_int_equal(vips_image_get_n_pages(im), 3);
    assert_int_equal(vips_image_get_page_height(im), 4);
    int *delay = NULL, n = 0;
    assert_int_equal(vips_image_get_array_int(im, "delay", &delay, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(delay[0], 333);
    /* lossless: frame k is k * 0.5 -> 0, 127, 255 */
    double v;
    assert_int_equal(sample(im, 1, 4 + 1, &v), 0);
    assert_true(v == 127.0);
    assert_int_equal(sample(im, 2, 8 + 2, &v), 0);
    assert_true(v == 255.0);
    g_object_unref(im);
    size_t len;
    char *buf = read_all(path, &len);
    assert_non_null(memmem(buf, len, "EXIF", 4));
    assert_non_null(memmem(buf, len, "prompt:{\"1\": {}}", 16));
    assert_non_null(memmem(buf, len, "workflow:{\"nodes\": []}", 22));
    free(buf);

    /* a batch taller than WebP's 16383 limit in all is fine: each frame is its own picture */
    cd_value *tall = image(20, 1000, 8, 3, NULL);
    float *td = cd_value_tensor_data_mut(tall);
    for (size_t i = 0; i < 20 * 1000 * 8 * 3; i++) td[i] = (float)(i / (1000 * 8 * 3)) / 19.0f;
    run_env(&r, reg, &env, "SaveAnimatedWEBP", "images", tall, "filename_prefix",
            cd_value_string("tall"), "fps", cd_value_float(24.0), "lossless", cd_value_bool(1), "quality",
            cd_value_int(80), "method", cd_value_string("fastest"), NULL);
    ok(&r);
    run_end(&r);
    snprintf(path, sizeof path, "%s/tall_00001_.webp", ctx.dir);
    im = vips_image_new_from_file(path, "n", -1, NULL);
    assert_non_null(im);
    assert_int_equal(vips_image_get_n_pages(im), 20);
    g_object_unref(im);

    /* one image: no "animated" */
    run_env(&r, reg, &env, "SaveAnimatedWEBP", "images", filled(1, 4, 4, 3, 0.5f), "filename_prefix",
            cd_value_string("ComfyUI"), "fps", cd_value_float(6.0), "lossless", cd_value_bool(0), "quality",
            cd_value_int(50), "method", cd_value_string("default"), NULL);
    ok(&r);
    ui = ui_text(&r);
    assert_string_equal(ui, "{\"images\":[{\"filename\":\"ComfyUI_00002_.webp\",\"subfolder\":\"\",\"type\":\"output\"}]}");
    free(ui);
    run_end(&r);
    run_env(&r, reg, &env, "SaveAnimatedWEBP", "images", filled(1, 4, 4, 3, 0.5f), "filename_prefix",
            cd_value_string("ComfyUI"), "fps", cd_value_float(6.0), "lossless", cd_value_bool(0), "quality",
            cd_value_int(50), "method", cd_value_string("quick"), NULL);
    fails(&r, "method");
    run_end(&r);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", ctx.dir);
    assert_int_equal(system(cmd), 0);
}

static void test_save_image_websocket(void **state) {
    const cd_registry *reg = *state;
    saver_ctx ctx = {0};
    cd_call_env env = {.ctx = &ctx, .preview = ctx_preview, .progress = ctx_progress};
    float px[2 * 2 * 3 * 3];
    for (int i = 0; i < 36; i++) px[i] = i < 18 ? 0.1f : 2.0f;
    run_t r;
    run_env(&r, reg, &env, "SaveImageWebsocket", "images", image(2, 2, 3, 3, px), NULL);
    ok(&r);
    assert_null(r.call.ui);
    run_end(&r);
    assert_int_equal(ctx.previews, 2);
    assert_int_equal(ctx.progress, 2);
    /* the last frame is a PNG of the second image, clipped: 2.0 -> 255 */
    VipsImage *im = vips_image_new_from_buffer(ctx.last, ctx.last_len, "", NULL);
    assert_non_null(im);
    assert_int_equal(vips_image_get_width(im), 3);
    assert_int_equal(vips_image_get_height(im), 2);
    double v;
    assert_int_equal(sample(im, 2, 1, &v), 0);
    assert_true(v == 255.0);
    g_object_unref(im);
    free(ctx.last);
    /* never cached: its fingerprint is NaN */
    const cd_node_type *t = cd_registry_get(reg, "SaveImageWebsocket");
    cd_value *fp = t->def->fingerprint(NULL);
    assert_true(isnan(cd_value_as_float(fp)));
    cd_value_unref(fp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blend_modes),
        cmocka_unit_test(test_blend_resizes_and_broadcasts),
        cmocka_unit_test(test_blur),
        cmocka_unit_test(test_sharpen),
        cmocka_unit_test(test_blur_sharpen_radii),
        cmocka_unit_test(test_morphology),
        cmocka_unit_test(test_canny),
        cmocka_unit_test(test_add_noise),
        cmocka_unit_test(test_quantize),
        cmocka_unit_test(test_quantize_dither),
        cmocka_unit_test(test_quantize_matches_pillow),
        cmocka_unit_test(test_yuv),
        cmocka_unit_test(test_save_animated_png),
        cmocka_unit_test(test_save_animated_webp),
        cmocka_unit_test(test_save_image_websocket),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
