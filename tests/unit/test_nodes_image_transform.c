/* The shared resampler (resample.h) and the transform and batch nodes of the image pack.
 *
 * Expected pixels come from the formulas of the libraries ComfyUI calls, worked by hand for tiny
 * images: torch's source-index rules (align_corners=False), its bicubic coefficients with
 * A = -0.75, adaptive average pooling windows; values are chosen so that every product is exact
 * in float32 and the comparisons can be exact. The lanczos cases are the output of Pillow 9.4's
 * Image.resize(LANCZOS) on the same uint8 data (the numbers are recorded below; the generating
 * script is in the commit message). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node_call.h"
#include "nodes/image/resample.h"

int cd_nodes_image_init(cd_pack *pack);

static int setup(void **state) {
    cd_registry *reg = cd_registry_new();
    if (cd_registry_add_pack(reg, "image", "nodes", cd_nodes_image_init) <= 0) return -1;
    *state = reg;
    return 0;
}

/* ---- helpers ---- */

static cd_value *image(int64_t b, int64_t h, int64_t w, int64_t c, const float *v) {
    int64_t shape[4] = {b, h, w, c};
    cd_value *t = cd_value_tensor_new("IMAGE", 4, shape);
    assert_non_null(t);
    if (v) memcpy(cd_value_tensor_data_mut(t), v, (size_t)(b * h * w * c) * sizeof(float));
    return t;
}

static cd_value *mask(int64_t b, int64_t h, int64_t w, const float *v) {
    int64_t shape[3] = {b, h, w};
    cd_value *t = cd_value_tensor_new("MASK", 3, shape);
    assert_non_null(t);
    if (v) memcpy(cd_value_tensor_data_mut(t), v, (size_t)(b * h * w) * sizeof(float));
    return t;
}

/* An image whose every sample is ((i * 37 + seed * 11 + 5) % 256) / 255 in float32. */
static cd_value *pattern(int64_t h, int64_t w, int64_t c, int seed) {
    cd_value *t = image(1, h, w, c, NULL);
    float *d = cd_value_tensor_data_mut(t);
    for (int64_t i = 0; i < h * w * c; i++) d[i] = (float)((double)((i * 37 + seed * 11 + 5) % 256) / 255.0);
    return t;
}

static void expect_shape(const cd_value *t, int nd, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    assert_non_null(t);
    assert_int_equal(cd_value_tensor_ndim(t), nd);
    int64_t want[4] = {d0, d1, d2, d3};
    for (int i = 0; i < nd; i++)
        if (cd_value_tensor_dim(t, i) != want[i])
            fail_msg("dim %d is %lld, expected %lld", i, (long long)cd_value_tensor_dim(t, i), (long long)want[i]);
}

static void expect_values(const cd_value *t, const float *want, size_t n) {
    assert_int_equal(cd_value_tensor_numel(t), n);
    const float *d = cd_value_tensor_data(t);
    for (size_t i = 0; i < n; i++)
        if (d[i] != want[i]) fail_msg("sample %zu is %.9g, expected %.9g", i, (double)d[i], (double)want[i]);
}

static const cd_value *ok_output(run_t *r, int slot) {
    if (r->rc != CD_OK) fail_msg("failed: %s: %s", r->call.error_type, r->call.error_message);
    return r->call.outputs[slot];
}

static void expect_failure(run_t *r, const char *type, const char *contains) {
    if (r->rc != CD_ERROR) fail_msg("succeeded, expected %s", type);
    assert_string_equal(r->call.error_type, type);
    if (!strstr(r->call.error_message, contains)) fail_msg("message \"%s\" lacks \"%s\"", r->call.error_message, contains);
    run_end(r);
}

/* common_upscale through a call that exists only to carry errors */
static cd_value *upscale(const cd_registry *reg, const cd_value *t, int64_t w, int64_t h, const char *m,
                         const char *crop) {
    run_t r;
    run(&r, reg, "ImageInvert", NULL); /* any node: only the call is needed */
    cd_value *out = cd_img_upscale(&r.call, t, w, h, m, crop);
    if (!out) fail_msg("upscale failed: %s", r.call.error_message);
    run_end(&r);
    return out;
}

/* ---- the resampler ---- */

static void test_nearest_exact(void **state) {
    /* scale 2/3: floor((d + 0.5) * 0.6666667) = 0, 1, 1 */
    float m[] = {0.1f, 0.2f, 0.3f, 0.4f};
    cd_value *in = mask(1, 2, 2, m);
    cd_value *out = upscale(*state, in, 3, 3, "nearest-exact", "disabled");
    expect_shape(out, 3, 1, 3, 3, 0);
    float want[] = {0.1f, 0.2f, 0.2f, 0.3f, 0.4f, 0.4f, 0.3f, 0.4f, 0.4f};
    expect_values(out, want, 9);
    cd_value_unref(out);
    /* 4 -> 3: floor((d + 0.5) * 1.3333334) = 0, 2, 3 */
    float row[] = {1, 2, 3, 4};
    cd_value *r4 = mask(1, 1, 4, row);
    out = upscale(*state, r4, 3, 1, "nearest-exact", NULL);
    float want3[] = {1, 3, 4};
    expect_values(out, want3, 3);
    cd_value_unref(out);
    cd_value_unref(r4);
    cd_value_unref(in);
}

static void test_bilinear(void **state) {
    /* 2 -> 4: source x = 0.5 (d + 0.5) - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (index 1, no
     * right neighbour): weights of pixel 1 are 0, 0.25, 0.75, 1 */
    float px[] = {0.0f, 0.5f, 0.25f, 1.0f};
    cd_value *in = image(1, 2, 2, 1, px);
    cd_value *out = upscale(*state, in, 4, 4, "bilinear", "disabled");
    expect_shape(out, 4, 1, 4, 4, 1);
    float l[] = {0.0f, 0.25f, 0.75f, 1.0f};
    float want[16];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            float top = px[0] * (1 - l[x]) + px[1] * l[x], bot = px[2] * (1 - l[x]) + px[3] * l[x];
            want[y * 4 + x] = top * (1 - l[y]) + bot * l[y];
        }
    assert_true(want[5] == 0.203125f); /* 0.5 * 0.1875 + 0.25 * 0.1875 + 1 * 0.0625 */
    expect_values(out, want, 16);
    cd_value_unref(out);
    /* the same size is a copy; 3 channels interpolate independently */
    float rgb[] = {0.0f, 0.5f, 1.0f, 1.0f, 0.5f, 0.0f};
    cd_value *in3 = image(1, 1, 2, 3, rgb);
    out = upscale(*state, in3, 4, 1, "bilinear", NULL);
    float want3[] = {0, 0.5f, 1, 0.25f, 0.5f, 0.75f, 0.75f, 0.5f, 0.25f, 1, 0.5f, 0};
    expect_values(out, want3, 12);
    cd_value_unref(out);
    out = upscale(*state, in3, 2, 1, "bilinear", NULL);
    expect_values(out, rgb, 6);
    cd_value_unref(out);
    cd_value_unref(in3);
    cd_value_unref(in);
}

/* torch's two bilinear kernels sum in different orders; the one it runs depends on the channels
 * (more than 3 in a channels-last view) and on the output size (H + W <= 128). For these levels,
 * pixel (16, 16) of a 2x2 -> 65x65 resize differs in the last bit between the two; the bit
 * patterns are torch's formulas evaluated in float32 (numpy) for each kernel. */
static void test_bilinear_kernel_choice(void **state) {
    static const float p[4] = {121.0f / 255, 131.0f / 255, 193.0f / 255, 243.0f / 255};
    const uint32_t channels_last_bits = 1056192612u, generic_bits = 1056192611u;
    for (int c = 3; c <= 4; c++) {
        float px[16];
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < c; k++) px[i * c + k] = p[i];
        cd_value *in = image(1, 2, 2, c, px);
        cd_value *out = upscale(*state, in, 65, 65, "bilinear", NULL);
        uint32_t bits;
        memcpy(&bits, cd_value_tensor_data(out) + (16 * 65 + 16) * c, sizeof bits);
        assert_int_equal(bits, c == 4 ? channels_last_bits : generic_bits);
        cd_value_unref(out);
        cd_value_unref(in);
    }
}

static void test_area(void **state) {
    /* 4x4 -> 2x2: means of the 2x2 blocks of k / 16 */
    float px[16];
    for (int k = 0; k < 16; k++) px[k] = (float)k / 16.0f;
    cd_value *in = image(1, 4, 4, 1, px);
    cd_value *out = upscale(*state, in, 2, 2, "area", "disabled");
    float want[] = {10.0f / 64, 18.0f / 64, 42.0f / 64, 50.0f / 64};
    expect_values(out, want, 4);
    cd_value_unref(out);
    /* 3 -> 2: overlapping windows [0, 2) and [1, 3) (floor(0) .. ceil(1.5), floor(1.5) .. ceil(3)) */
    float row[] = {0.0f, 0.5f, 1.0f};
    cd_value *r3 = image(1, 1, 3, 1, row);
    out = upscale(*state, r3, 2, 1, "area", NULL);
    float want2[] = {0.25f, 0.75f};
    expect_values(out, want2, 2);
    cd_value_unref(out);
    /* upscaling by area repeats pixels: 2 -> 3 windows [0, 1), [0, 2), [1, 2) */
    float two[] = {0.0f, 1.0f};
    cd_value *r2 = image(1, 1, 2, 1, two);
    out = upscale(*state, r2, 3, 1, "area", NULL);
    float want3[] = {0.0f, 0.5f, 1.0f};
    expect_values(out, want3, 3);
    cd_value_unref(out);
    cd_value_unref(r2);
    cd_value_unref(r3);
    cd_value_unref(in);
}

static void test_bicubic(void **state) {
    /* 2 -> 4 along x, rows identical: t = 0.75 at x = -0.25 (index -1, clamped), then 0.25 ...
     * cubic coefficients (A = -0.75) for t = 0.25: -0.10546875, 0.87890625, 0.26171875,
     * -0.03515625; the border is repeated, so the first output is -0.10546875 (an overshoot) */
    float px[] = {0.0f, 1.0f, 0.0f, 1.0f};
    cd_value *in = image(1, 2, 2, 1, px);
    cd_value *out = upscale(*state, in, 4, 4, "bicubic", "disabled");
    float row[] = {-0.10546875f, 0.2265625f, 0.7734375f, 1.10546875f};
    float want[16];
    for (int k = 0; k < 16; k++) want[k] = row[k % 4];
    expect_values(out, want, 16);
    cd_value_unref(out);
    /* the same size is the identity */
    out = upscale(*state, in, 2, 2, "bicubic", NULL);
    expect_values(out, px, 4);
    cd_value_unref(out);
    cd_value_unref(in);
}

static void test_center_crop(void **state) {
    /* 7x2 to 1x1: x = round((7 - 7 * (1 / 3.5)) / 2) = round(2.5) = 2 (half to even), so columns
     * 2, 3 and 4 are averaged; half-up rounding would keep column 3 alone */
    float px[14];
    for (int k = 0; k < 14; k++) px[k] = (float)(k % 7) / 8.0f;
    cd_value *in = image(1, 2, 7, 1, px);
    cd_value *out = upscale(*state, in, 1, 1, "area", "center");
    float want[] = {3.0f / 8.0f};
    expect_values(out, want, 1);
    cd_value_unref(out);
    /* 4x2 to 2x2 keeps columns 1 and 2 */
    float p4[] = {1, 2, 3, 4, 5, 6, 7, 8};
    cd_value *in4 = image(1, 2, 4, 1, p4);
    out = upscale(*state, in4, 2, 2, "nearest-exact", "center");
    float want4[] = {2, 3, 6, 7};
    expect_values(out, want4, 4);
    cd_value_unref(out);
    /* a taller image crops rows: 2x4 (w x h) to 2x2, y = round((4 - 4 * 0.5) / 2) = 1 */
    cd_value *tall = image(1, 4, 2, 1, p4);
    out = upscale(*state, tall, 2, 2, "nearest-exact", "center");
    float want_tall[] = {3, 4, 5, 6};
    expect_values(out, want_tall, 4);
    cd_value_unref(out);
    cd_value_unref(tall);
    /* a crop that leaves nothing fails (torch refuses the empty input): 4x2 to 1x2 gives
     * x = round(1.5) = 2 and a width of 4 - 2 * 2 = 0 */
    run_t r;
    run(&r, *state, "ImageInvert", NULL);
    assert_null(cd_img_upscale(&r.call, in4, 1, 2, "nearest-exact", "center"));
    assert_non_null(strstr(r.call.error_message, "is empty"));
    run_end(&r);
    cd_value_unref(in4);
    cd_value_unref(in);
}

/* Pillow 9.4: Image.fromarray(u8).resize((ow, oh), LANCZOS) */
static void check_lanczos(const cd_registry *reg, int64_t h, int64_t w, int64_t c, int64_t ow, int64_t oh, int seed,
                          const uint8_t *want) {
    cd_value *in = pattern(h, w, c, seed);
    cd_value *out = upscale(reg, in, ow, oh, "lanczos", "disabled");
    expect_shape(out, 4, 1, oh, ow, c);
    const float *d = cd_value_tensor_data(out);
    for (int64_t i = 0; i < ow * oh * c; i++)
        if (d[i] != (float)want[i] / 255.0f)
            fail_msg("%lldx%lldx%lld -> %lldx%lld: sample %lld is %g (%g), Pillow gives %d", (long long)w, (long long)h,
                     (long long)c, (long long)ow, (long long)oh, (long long)i, (double)d[i], (double)d[i] * 255,
                     want[i]);
    cd_value_unref(out);
    cd_value_unref(in);
}

static void test_lanczos_matches_pillow(void **state) {
    static const uint8_t a[] = {104, 142, 88, 163, 113, 160, 114, 115, 123, 155, 149, 157, 133, 113, 160, 127, 184, 130};
    check_lanczos(*state, 4, 4, 3, 3, 2, 1, a);
    static const uint8_t b[] = {7,   33,  64,  34,  101, 158, 124, 161, 243, 241, 75,  132, 255, 0,   28,
                                35,  65,  110, 76,  133, 144, 156, 193, 170, 202, 107, 118, 207, 29,  74,
                                71,  106, 171, 131, 174, 127, 197, 234, 75,  151, 148, 101, 99,  70,  135,
                                99,  138, 217, 173, 206, 113, 229, 255, 2,   112, 180, 87,  15,  102, 181};
    check_lanczos(*state, 2, 3, 3, 5, 4, 2, b);
    /* RGBA: premultiplied around the resize */
    static const uint8_t c[] = {52, 91, 94, 92, 126, 123, 143, 147, 111, 105, 143, 128, 69, 121, 137, 113};
    check_lanczos(*state, 3, 5, 4, 2, 2, 3, c);
    /* one band (mode L): horizontal down, vertical up */
    static const uint8_t d[] = {69, 175, 146, 70, 176, 147, 72, 178, 149, 74, 180, 151,
                                75, 181, 152, 76, 182, 153, 78, 184, 155, 80, 186, 157, 81, 187, 158};
    cd_value *in = pattern(5, 7, 1, 4);
    int64_t shape[3] = {1, 5, 7};
    cd_value *m = cd_value_tensor_view(in, "MASK", 3, shape, 0);
    cd_value *out = upscale(*state, m, 3, 9, "lanczos", NULL);
    expect_shape(out, 3, 1, 9, 3, 0);
    for (int i = 0; i < 27; i++) assert_true(cd_value_tensor_data(out)[i] == (float)d[i] / 255.0f);
    cd_value_unref(out);
    cd_value_unref(m);
    cd_value_unref(in);
    static const uint8_t e[] = {
        46,  81,  136, 187, 62,  97,  118, 146, 127, 157, 54,  84,  222, 255, 36,  63,  123, 189, 149, 143, 97,
        139, 173, 218, 128, 102, 152, 189, 216, 49,  92,  118, 255, 0,   0,   74,  138, 185, 229, 255, 116, 161,
        197, 238, 82,  124, 145, 180, 29,  68,  66,  104, 47,  94,  80,  54,  156, 197, 230, 62,  126, 141, 186,
        115, 99,  104, 141, 169, 91,  92,  129, 201, 247, 168, 187, 109, 178, 125, 166, 150, 120, 125, 174, 208,
        80,  119, 171, 227, 49,  91,  143, 156, 0,   19,  59,  64,  0,   46,  53,  38,  0,   132, 163, 56,  30,
        149, 193, 75,  46,  0,   0,   76,  97,  12,  30,  84,  156, 138, 123, 101, 147, 188, 172, 142, 87,  141,
        154, 195, 54,  91,  127, 196, 85,  60,  101, 123, 255, 0,   31,  41,  47,  0,   0,   0,   71,  119, 170,
        241, 70,  118, 156, 189, 67,  107, 87,  102, 55,  103, 0,   37,  83,  171, 106, 67,  84,  147, 180, 133,
        103, 103, 151, 145, 131, 46,  89,  126, 149, 22,  42,  114, 151, 185, 207, 203, 123, 159, 183, 203, 77,
        117, 151, 195, 31,  66,  115, 146, 63,  13,  59,  56,  255, 34,  68,  15,  127, 127, 161, 76,  74,  119,
        157, 164, 65,  120, 158, 215, 255, 255, 0,   24,  161, 213, 65,  74,  103, 163, 156, 158, 100, 132, 171,
        210, 144, 75,  125, 159, 235, 21,  58,  105, 198, 112, 145, 149, 148, 165, 202, 228, 142, 199, 237, 255};
    check_lanczos(*state, 6, 4, 4, 9, 7, 5, e);
}

static void test_upscale_errors_and_batches(void **state) {
    cd_value *in = pattern(2, 2, 3, 0);
    run_t r;
    run(&r, *state, "ImageInvert", NULL);
    assert_null(cd_img_upscale(&r.call, in, 0, 3, "bilinear", NULL));
    assert_non_null(strstr(r.call.error_message, "Input and output sizes should be greater than 0"));
    run_end(&r);
    run(&r, *state, "ImageInvert", NULL);
    assert_null(cd_img_upscale(&r.call, in, 3, 3, "bislerp", NULL));
    assert_string_equal(r.call.error_type, "ValueError");
    run_end(&r);
    cd_value_unref(in);
    /* every image of a batch is resized on its own */
    float px[] = {0, 0, 1, 1, 0.5f, 0.5f, 0.5f, 0.5f};
    cd_value *b = image(2, 2, 2, 1, px);
    cd_value *out = upscale(*state, b, 1, 1, "area", NULL);
    float want[] = {0.5f, 0.5f};
    expect_shape(out, 4, 2, 1, 1, 1);
    expect_values(out, want, 2);
    cd_value_unref(out);
    cd_value_unref(b);
    assert_int_equal(cd_py_round(2.5), 2);
    assert_int_equal(cd_py_round(3.5), 4);
    assert_int_equal(cd_py_round(-0.5), 0);
}

/* ---- scale nodes ---- */

static void test_image_scale(void **state) {
    run_t r;
    /* width 0 keeps the aspect: round(4 * 3 / 2) = 6 */
    run(&r, *state, "ImageScale", "image", pattern(2, 4, 3, 1), "upscale_method", cd_value_string("nearest-exact"),
        "width", cd_value_int(0), "height", cd_value_int(3), "crop", cd_value_string("disabled"), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 3, 6, 3);
    run_end(&r);
    /* both 0: the input itself */
    cd_value *in = pattern(2, 4, 3, 1);
    run(&r, *state, "ImageScale", "image", cd_value_ref(in), "upscale_method", cd_value_string("bilinear"), "width",
        cd_value_int(0), "height", cd_value_int(0), "crop", cd_value_string("center"), NULL);
    assert_ptr_equal(ok_output(&r, 0), in);
    run_end(&r);
    cd_value_unref(in);
    run(&r, *state, "ImageScale", "image", pattern(2, 4, 3, 1), "upscale_method", cd_value_string("cubic"), "width",
        cd_value_int(8), "height", cd_value_int(8), NULL);
    expect_failure(&r, "ValueError", "unknown upscale method: cubic");
    run(&r, *state, "ImageScale", "image", cd_value_string("not an image"), "upscale_method",
        cd_value_string("area"), "width", cd_value_int(8), "height", cd_value_int(8), NULL);
    expect_failure(&r, "ValueError", "image: expected an IMAGE tensor");

    /* ImageScaleBy: round(5 * 0.5) = 2 (half to even), round(3 * 0.5) = 2 */
    run(&r, *state, "ImageScaleBy", "image", pattern(3, 5, 4, 1), "upscale_method", cd_value_string("area"),
        "scale_by", cd_value_float(0.5), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 2, 2, 4);
    run_end(&r);

    /* ImageScaleToMaxDimension: 4x2 (w x h) to 8 -> 8x4; a square goes to the size itself */
    run(&r, *state, "ImageScaleToMaxDimension", "image", pattern(2, 4, 3, 1), "upscale_method",
        cd_value_string("bicubic"), "largest_size", cd_value_int(8), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 4, 8, 3);
    run_end(&r);
    run(&r, *state, "ImageScaleToMaxDimension", "image", pattern(3, 2, 3, 1), "upscale_method",
        cd_value_string("lanczos"), "largest_size", cd_value_int(5), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 5, 3, 3); /* round(2 / 3 * 5) = round(3.33) = 3 */
    run_end(&r);

    /* ImageScaleToTotalPixels: 0.01 MP of a 4x2 image: sqrt(10485.76 / 8) = 36.2..., width
     * round(144.8 / 16) * 16 = 144, height round(72.4 / 16) * 16 = 80 */
    run(&r, *state, "ImageScaleToTotalPixels", "image", pattern(2, 4, 3, 1), "upscale_method",
        cd_value_string("nearest-exact"), "megapixels", cd_value_float(0.01), "resolution_steps", cd_value_int(16),
        NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 80, 144, 3);
    run_end(&r);
}

static void test_resize_and_pad(void **state) {
    /* 2x1 (w x h) into 4x4: scale min(2, 4) = 2 -> 4x2, centred at y = 1; black padding */
    float px[] = {0.25f, 0.75f};
    run_t r;
    run(&r, *state, "ResizeAndPadImage", "image", image(1, 1, 2, 1, px), "target_width", cd_value_int(4),
        "target_height", cd_value_int(4), "padding_color", cd_value_string("black"), "interpolation",
        cd_value_string("nearest-exact"), NULL);
    const cd_value *out = ok_output(&r, 0);
    expect_shape(out, 4, 1, 4, 4, 1);
    float want[] = {0, 0, 0, 0, 0.25f, 0.25f, 0.75f, 0.75f, 0.25f, 0.25f, 0.75f, 0.75f, 0, 0, 0, 0};
    expect_values(out, want, 16);
    run_end(&r);
    /* white pads with 1.0 and the offset is (target - new) // 2 along x too */
    run(&r, *state, "ResizeAndPadImage", "image", image(1, 1, 1, 1, px), "target_width", cd_value_int(3),
        "target_height", cd_value_int(2), "padding_color", cd_value_string("white"), "interpolation",
        cd_value_string("area"), NULL);
    out = ok_output(&r, 0);
    /* 1x1 into 3x2: scale 2 -> 2x2 at x = 0 */
    float want3[] = {0.25f, 0.25f, 1, 0.25f, 0.25f, 1};
    expect_values(out, want3, 6);
    run_end(&r);
}

static void test_resize_image_mask(void **state) {
    run_t r;
    /* a MASK stays a MASK */
    float m[] = {0, 1, 0, 1};
    run(&r, *state, "ResizeImageMaskNode", "input", mask(1, 2, 2, m), "resize_type",
        cd_value_string("scale by multiplier"), "resize_type.multiplier", cd_value_float(2.0), "scale_method",
        cd_value_string("nearest-exact"), NULL);
    const cd_value *out = ok_output(&r, 0);
    expect_shape(out, 3, 1, 4, 4, 0);
    assert_string_equal(cd_value_tensor_type(out), "MASK");
    run_end(&r);
    /* scale dimensions with width 0, the crop default is center */
    run(&r, *state, "ResizeImageMaskNode", "input", pattern(2, 4, 3, 1), "resize_type",
        cd_value_string("scale dimensions"), "resize_type.width", cd_value_int(0), "resize_type.height",
        cd_value_int(4), "scale_method", cd_value_string("area"), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 4, 8, 3);
    run_end(&r);
    /* center crop by default: a 4x2 image into 2x2 keeps its middle columns */
    float p4[] = {1, 2, 3, 4, 5, 6, 7, 8};
    run(&r, *state, "ResizeImageMaskNode", "input", image(1, 2, 4, 1, p4), "resize_type",
        cd_value_string("scale dimensions"), "resize_type.width", cd_value_int(2), "resize_type.height",
        cd_value_int(2), "scale_method", cd_value_string("nearest-exact"), NULL);
    float want[] = {2, 3, 6, 7};
    expect_values(ok_output(&r, 0), want, 4);
    run_end(&r);
    /* longer / shorter / width / height / total pixels / match */
    run(&r, *state, "ResizeImageMaskNode", "input", pattern(2, 4, 3, 1), "resize_type",
        cd_value_string("scale longer dimension"), "resize_type.longer_size", cd_value_int(6), "scale_method",
        cd_value_string("bilinear"), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 3, 6, 3);
    run_end(&r);
    run(&r, *state, "ResizeImageMaskNode", "input", pattern(2, 4, 3, 1), "resize_type",
        cd_value_string("scale shorter dimension"), "resize_type.shorter_size", cd_value_int(3), "scale_method",
        cd_value_string("bilinear"), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 3, 6, 3);
    run_end(&r);
    run(&r, *state, "ResizeImageMaskNode", "input", pattern(2, 4, 3, 1), "resize_type", cd_value_string("scale height"),
        "resize_type.height", cd_value_int(1), "scale_method", cd_value_string("area"), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 1, 2, 3);
    run_end(&r);
    run(&r, *state, "ResizeImageMaskNode", "input", pattern(2, 4, 3, 1), "resize_type",
        cd_value_string("scale total pixels"), "resize_type.megapixels", cd_value_float(0.01), "scale_method",
        cd_value_string("area"), NULL);
    /* int(0.01 * 1048576) = 10485; sqrt(10485 / 8) = 36.20...; 144.8 -> 145, 72.4 -> 72 */
    expect_shape(ok_output(&r, 0), 4, 1, 72, 145, 3);
    run_end(&r);
    run(&r, *state, "ResizeImageMaskNode", "input", pattern(2, 4, 3, 1), "resize_type", cd_value_string("match size"),
        "resize_type.match", mask(2, 5, 3, NULL), "resize_type.crop", cd_value_string("disabled"), "scale_method",
        cd_value_string("bicubic"), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 5, 3, 3);
    run_end(&r);
    run(&r, *state, "ResizeImageMaskNode", "input", pattern(2, 4, 3, 1), "resize_type", cd_value_string("scale up"),
        "scale_method", cd_value_string("area"), NULL);
    expect_failure(&r, "ValueError", "Unsupported resize type: scale up");
}

static void test_flux_kontext(void **state) {
    /* 2:1 is nearest to 1456x720 (2.022); a square goes to 1024x1024 */
    run_t r;
    run(&r, *state, "FluxKontextImageScale", "image", pattern(4, 8, 3, 1), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 720, 1456, 3);
    run_end(&r);
    run(&r, *state, "FluxKontextImageScale", "image", pattern(3, 3, 3, 1), NULL);
    const cd_value *out = ok_output(&r, 0);
    expect_shape(out, 4, 1, 1024, 1024, 3);
    /* lanczos output is a multiple of 1/255 */
    float v = cd_value_tensor_data(out)[12345] * 255.0f;
    assert_true(fabsf(v - roundf(v)) < 1e-4f);
    run_end(&r);
}

/* ---- crop, flip, rotate ---- */

static const float grid[] = {1, 2, 3, 4, 5, 6}; /* 2 rows of 3 */

static void test_crop_flip_rotate(void **state) {
    run_t r;
    run(&r, *state, "ImageCrop", "image", image(1, 2, 3, 1, grid), "width", cd_value_int(2), "height",
        cd_value_int(5), "x", cd_value_int(1), "y", cd_value_int(1), NULL);
    float crop[] = {5, 6};
    expect_shape(ok_output(&r, 0), 4, 1, 1, 2, 1);
    expect_values(ok_output(&r, 0), crop, 2);
    run_end(&r);
    /* x beyond the image is pulled back to the last column */
    run(&r, *state, "ImageCrop", "image", image(1, 2, 3, 1, grid), "width", cd_value_int(4), "height",
        cd_value_int(4), "x", cd_value_int(99), "y", cd_value_int(0), NULL);
    float last[] = {3, 6};
    expect_values(ok_output(&r, 0), last, 2);
    run_end(&r);

    run(&r, *state, "ImageFlip", "image", image(1, 2, 3, 1, grid), "flip_method", cd_value_string("x-axis: vertically"),
        NULL);
    float fx[] = {4, 5, 6, 1, 2, 3};
    expect_values(ok_output(&r, 0), fx, 6);
    run_end(&r);
    run(&r, *state, "ImageFlip", "image", image(1, 2, 3, 1, grid), "flip_method",
        cd_value_string("y-axis: horizontally"), NULL);
    float fy[] = {3, 2, 1, 6, 5, 4};
    expect_values(ok_output(&r, 0), fy, 6);
    run_end(&r);

    /* rot90(k=1, dims=[2, 1]) turns clockwise: 1 2 3 / 4 5 6 -> 4 1 / 5 2 / 6 3 */
    run(&r, *state, "ImageRotate", "image", image(1, 2, 3, 1, grid), "rotation", cd_value_string("90 degrees"), NULL);
    float r90[] = {4, 1, 5, 2, 6, 3};
    expect_shape(ok_output(&r, 0), 4, 1, 3, 2, 1);
    expect_values(ok_output(&r, 0), r90, 6);
    run_end(&r);
    run(&r, *state, "ImageRotate", "image", image(1, 2, 3, 1, grid), "rotation", cd_value_string("180 degrees"), NULL);
    float r180[] = {6, 5, 4, 3, 2, 1};
    expect_values(ok_output(&r, 0), r180, 6);
    run_end(&r);
    run(&r, *state, "ImageRotate", "image", image(1, 2, 3, 1, grid), "rotation", cd_value_string("270 degrees"), NULL);
    float r270[] = {3, 6, 2, 5, 1, 4};
    expect_values(ok_output(&r, 0), r270, 6);
    run_end(&r);
    /* RGB pixels move whole, every image of a batch */
    float rgb[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    run(&r, *state, "ImageRotate", "image", image(2, 1, 2, 3, rgb), "rotation", cd_value_string("90 degrees"), NULL);
    float rr[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    expect_shape(ok_output(&r, 0), 4, 2, 2, 1, 3);
    expect_values(ok_output(&r, 0), rr, 12);
    run_end(&r);
}

/* ---- ImageStitch ---- */

static void test_image_stitch(void **state) {
    run_t r;
    float a[] = {0.1f, 0.2f, 0.3f, 0.4f};
    float b[] = {0.5f, 0.6f};
    /* no match: image2 (1x2) padded to height 2 with white (pad_top 0, bottom 1), then spacing 1
     * (made even: 2) of red between; RGB images */
    float a3[12], b3[6];
    for (int i = 0; i < 4; i++) a3[i * 3] = a3[i * 3 + 1] = a3[i * 3 + 2] = a[i];
    for (int i = 0; i < 2; i++) b3[i * 3] = b3[i * 3 + 1] = b3[i * 3 + 2] = b[i];
    run(&r, *state, "ImageStitch", "image1", image(1, 2, 2, 3, a3), "image2", image(1, 1, 2, 3, b3), "direction",
        cd_value_string("right"), "match_image_size", cd_value_bool(0), "spacing_width", cd_value_int(1),
        "spacing_color", cd_value_string("red"), NULL);
    const cd_value *out = ok_output(&r, 0);
    expect_shape(out, 4, 1, 2, 6, 3);
    const float *d = cd_value_tensor_data(out);
    /* row 0: a0 a1 red red b0 b1; row 1: a2 a3 red red pad pad (0.0: a colour pads with 0) */
    float row0[] = {0.1f, 0.2f, 1, 1, 0.5f, 0.6f}, row1[] = {0.3f, 0.4f, 1, 1, 0, 0};
    for (int x = 0; x < 6; x++) {
        assert_true(d[x * 3] == row0[x]);
        assert_true(d[18 + x * 3] == row1[x]);
    }
    assert_true(d[2 * 3 + 1] == 0.0f && d[2 * 3 + 2] == 0.0f); /* red is (1, 0, 0) */
    run_end(&r);
    /* left puts image2 first; down/up stack; white padding is 1.0; RGBA meets RGB (alpha 1.0) */
    float b4[] = {0.5f, 0.5f, 0.5f, 0.25f};
    run(&r, *state, "ImageStitch", "image1", image(1, 2, 2, 3, a3), "image2", image(1, 1, 1, 4, b4), "direction",
        cd_value_string("left"), "match_image_size", cd_value_bool(0), "spacing_width", cd_value_int(0),
        "spacing_color", cd_value_string("white"), NULL);
    out = ok_output(&r, 0);
    expect_shape(out, 4, 1, 2, 3, 4);
    d = cd_value_tensor_data(out);
    float px0[] = {0.5f, 0.5f, 0.5f, 0.25f}, px1[] = {0.1f, 0.1f, 0.1f, 1.0f}, pad[] = {1, 1, 1, 1};
    assert_memory_equal(d, px0, sizeof px0);
    assert_memory_equal(d + 4, px1, sizeof px1);
    assert_memory_equal(d + 12, pad, sizeof pad); /* row 1 of image2's column: pad, alpha 1 */
    run_end(&r);
    run(&r, *state, "ImageStitch", "image1", image(1, 2, 2, 1, a), "image2", image(1, 1, 2, 1, b), "direction",
        cd_value_string("up"), "match_image_size", cd_value_bool(0), "spacing_width", cd_value_int(0),
        "spacing_color", cd_value_string("black"), NULL);
    float up[] = {0.5f, 0.6f, 0.1f, 0.2f, 0.3f, 0.4f};
    expect_shape(ok_output(&r, 0), 4, 1, 3, 2, 1);
    expect_values(ok_output(&r, 0), up, 6);
    run_end(&r);
    /* match_image_size: image2 (2x1, w x h) scaled by lanczos to height 2 -> 4x2; batch 2 vs 1
     * repeats the last image of the shorter batch */
    run(&r, *state, "ImageStitch", "image1", image(2, 2, 2, 1, (float[]){0, 0, 0, 0, 1, 1, 1, 1}), "image2",
        image(1, 1, 2, 1, b), "direction", cd_value_string("right"), "match_image_size", cd_value_bool(1),
        "spacing_width", cd_value_int(0), "spacing_color", cd_value_string("white"), NULL);
    out = ok_output(&r, 0);
    expect_shape(out, 4, 2, 2, 6, 1);
    d = cd_value_tensor_data(out);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 6; x++) {
            float b0 = d[y * 6 + x], b1 = d[12 + y * 6 + x];
            if (x < 2) { /* image1: zeros, then ones */
                assert_true(b0 == 0.0f && b1 == 1.0f);
            } else { /* image2, the same in both: lanczos of 0.5 | 0.6, left half darker */
                assert_true(b0 == b1);
                assert_true(b0 >= 0.4f && b0 <= 0.7f);
            }
        }
    assert_true(d[2] < d[5]);
    run_end(&r);
    /* without image2: image1 itself */
    cd_value *one = image(1, 2, 2, 1, a);
    run(&r, *state, "ImageStitch", "image1", cd_value_ref(one), "direction", cd_value_string("right"), NULL);
    assert_ptr_equal(ok_output(&r, 0), one);
    run_end(&r);
    cd_value_unref(one);
}

/* ---- batches ---- */

static void test_image_batch(void **state) {
    run_t r;
    /* RGB + RGBA: image1 gains alpha 1.0; image2 (1x1) is resized to 2x1 by bilinear/center */
    float a[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    float b[] = {0.75f, 0.5f, 0.25f, 0.5f};
    run(&r, *state, "ImageBatch", "image1", image(1, 1, 2, 3, a), "image2", image(1, 1, 1, 4, b), NULL);
    const cd_value *out = ok_output(&r, 0);
    expect_shape(out, 4, 2, 1, 2, 4);
    float want[] = {0.1f, 0.2f, 0.3f, 1, 0.4f, 0.5f, 0.6f, 1, 0.75f, 0.5f, 0.25f, 0.5f, 0.75f, 0.5f, 0.25f, 0.5f};
    expect_values(out, want, 16);
    run_end(&r);
    /* BatchImagesNode: autogrow inputs in index order, whatever the prompt's order */
    run(&r, *state, "BatchImagesNode", "images.image1", image(1, 1, 1, 1, (float[]){0.5f}), "images.image0",
        image(2, 1, 1, 1, (float[]){0.25f, 0.75f}), "images.image2", image(1, 1, 1, 1, (float[]){1}), NULL);
    float want2[] = {0.25f, 0.75f, 0.5f, 1};
    expect_values(ok_output(&r, 0), want2, 4);
    run_end(&r);
    run(&r, *state, "BatchImagesNode", NULL);
    expect_failure(&r, "ValueError", "no image");
    run(&r, *state, "ImageBatch", "image1", image(1, 1, 1, 1, a), "image2", mask(1, 1, 1, a), NULL);
    expect_failure(&r, "ValueError", "image2: expected an IMAGE");
}

static void test_from_repeat_rebatch(void **state) {
    run_t r;
    float px[] = {1, 2, 3, 4};
    run(&r, *state, "ImageFromBatch", "image", image(4, 1, 1, 1, px), "batch_index", cd_value_int(2), "length",
        cd_value_int(5), NULL);
    float want[] = {3, 4};
    expect_shape(ok_output(&r, 0), 4, 2, 1, 1, 1);
    expect_values(ok_output(&r, 0), want, 2);
    run_end(&r);
    run(&r, *state, "ImageFromBatch", "image", image(4, 1, 1, 1, px), "batch_index", cd_value_int(9), "length",
        cd_value_int(1), NULL);
    float last[] = {4};
    expect_values(ok_output(&r, 0), last, 1);
    run_end(&r);

    run(&r, *state, "RepeatImageBatch", "image", image(2, 1, 1, 1, px), "amount", cd_value_int(3), NULL);
    float rep[] = {1, 2, 1, 2, 1, 2};
    expect_shape(ok_output(&r, 0), 4, 6, 1, 1, 1);
    expect_values(ok_output(&r, 0), rep, 6);
    run_end(&r);

    /* RebatchImages: batches of 3 and 2 regrouped by 2 -> [2, 2, 1] */
    const cd_node_type *t = cd_registry_get(*state, "RebatchImages");
    assert_true(t->def->flags & CD_NODE_INPUT_IS_LIST);
    assert_int_equal(t->def->outputs[0].is_list, 1);
    cd_value *list = cd_value_list_new(2), *bs = cd_value_list_new(1);
    cd_value_list_push(list, image(3, 1, 1, 1, px));
    cd_value_list_push(list, image(2, 1, 1, 1, px + 2));
    cd_value_list_push(bs, cd_value_int(2));
    run(&r, *state, "RebatchImages", "images", list, "batch_size", bs, NULL);
    const cd_value *out = ok_output(&r, 0);
    assert_int_equal(cd_value_kind_of(out), CD_VALUE_LIST);
    assert_int_equal(cd_value_list_len(out), 3);
    float b0[] = {1, 2}, b1[] = {3, 3}, b2[] = {4};
    expect_values(cd_value_list_at(out, 0), b0, 2);
    expect_values(cd_value_list_at(out, 1), b1, 2);
    expect_values(cd_value_list_at(out, 2), b2, 1);
    run_end(&r);
    /* images of different sizes cannot share a batch */
    list = cd_value_list_new(2), bs = cd_value_list_new(1);
    cd_value_list_push(list, image(1, 1, 1, 1, px));
    cd_value_list_push(list, image(1, 2, 1, 1, px));
    cd_value_list_push(bs, cd_value_int(2));
    run(&r, *state, "RebatchImages", "images", list, "batch_size", bs, NULL);
    expect_failure(&r, "RuntimeError", "Sizes of tensors must match");
}

/* ---- ImagePadForOutpaint, ImageCompositeMasked ---- */

static void test_pad_for_outpaint(void **state) {
    run_t r;
    float px[16];
    for (int k = 0; k < 16; k++) px[k] = 0.25f;
    run(&r, *state, "ImagePadForOutpaint", "image", image(1, 4, 4, 1, px), "left", cd_value_int(1), "top",
        cd_value_int(0), "right", cd_value_int(0), "bottom", cd_value_int(0), "feathering", cd_value_int(1), NULL);
    const cd_value *img = ok_output(&r, 0), *m = r.call.outputs[1];
    expect_shape(img, 4, 1, 4, 5, 1);
    expect_shape(m, 2, 4, 5, 0, 0);
    const float *d = cd_value_tensor_data(img), *md = cd_value_tensor_data(m);
    assert_true(d[0] == 0.5f && d[1] == 0.25f);
    /* the padded column is 1; inside, the left edge (distance 0 < 1) gets ((1 - 0) / 1)^2 = 1 and
     * the rest 0 (top/right/bottom not padded count the full size) */
    for (int y = 0; y < 4; y++) {
        assert_true(md[y * 5] == 1.0f);
        assert_true(md[y * 5 + 1] == 1.0f);
        for (int x = 2; x < 5; x++) assert_true(md[y * 5 + x] == 0.0f);
    }
    run_end(&r);
    /* feathering 2 on a 5x5 image padded on top: rows at distance 0 and 1 get 1 and 0.25 */
    float p25[25] = {0};
    run(&r, *state, "ImagePadForOutpaint", "image", image(1, 5, 5, 1, p25), "left", cd_value_int(0), "top",
        cd_value_int(8), "right", cd_value_int(0), "bottom", cd_value_int(0), "feathering", cd_value_int(2), NULL);
    md = cd_value_tensor_data(r.call.outputs[1]);
    assert_true(md[0] == 1.0f);
    assert_true(md[8 * 5] == 1.0f && md[9 * 5] == 0.25f && md[10 * 5] == 0.0f);
    run_end(&r);
}

static void test_composite_masked(void **state) {
    run_t r;
    float dst[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    float src[4] = {1, 1, 1, 1};
    float m[4] = {1, 0.5f, 0.25f, 0};
    /* source 2x2 at (2, 1) of a 3x3: only its left column is visible */
    run(&r, *state, "ImageCompositeMasked", "destination", image(1, 3, 3, 1, dst), "source", image(1, 2, 2, 1, src),
        "x", cd_value_int(2), "y", cd_value_int(1), "resize_source", cd_value_bool(0), "mask", mask(1, 2, 2, m), NULL);
    float want[] = {0, 0, 0, 0, 0, 1, 0, 0, 0.25f};
    expect_values(ok_output(&r, 0), want, 9);
    run_end(&r);
    /* no mask: the source replaces; resize_source stretches it to the destination (bilinear);
     * a source without alpha on an RGBA destination writes alpha 1.0 */
    float d4[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    float s3[3] = {0.5f, 0.25f, 0.125f};
    run(&r, *state, "ImageCompositeMasked", "destination", image(1, 1, 2, 4, d4), "source", image(1, 1, 1, 3, s3), "x",
        cd_value_int(0), "y", cd_value_int(0), "resize_source", cd_value_bool(1), NULL);
    float want2[] = {0.5f, 0.25f, 0.125f, 1, 0.5f, 0.25f, 0.125f, 1};
    expect_values(ok_output(&r, 0), want2, 8);
    run_end(&r);
    /* an RGBA source on an RGB destination loses its alpha (not used as a mask) */
    float s4[4] = {0.5f, 0.25f, 0.125f, 0.0f};
    run(&r, *state, "ImageCompositeMasked", "destination", image(1, 1, 1, 3, d4), "source", image(1, 1, 1, 4, s4), "x",
        cd_value_int(0), "y", cd_value_int(0), "resize_source", cd_value_bool(0), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 1, 1, 3);
    expect_values(ok_output(&r, 0), s4, 3);
    run_end(&r);
    /* a mask of another size is resized to the source (bilinear); batches repeat */
    float m1[] = {0.5f};
    run(&r, *state, "ImageCompositeMasked", "destination", image(2, 1, 2, 1, (float[]){0, 0, 1, 1}), "source",
        image(1, 1, 2, 1, (float[]){1, 1}), "x", cd_value_int(0), "y", cd_value_int(0), "resize_source",
        cd_value_bool(0), "mask", mask(1, 1, 1, m1), NULL);
    float want3[] = {0.5f, 0.5f, 1, 1};
    expect_values(ok_output(&r, 0), want3, 4);
    run_end(&r);
}

static void test_resize_images_by_edge(void **state) {
    run_t r;
    /* 5x3 (w x h), longer edge 10: h = int(3 * (10 / 5)) = 6 */
    run(&r, *state, "ResizeImagesByLongerEdge", "images", pattern(3, 5, 3, 1), "longer_edge", cd_value_int(10), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 6, 10, 3);
    run_end(&r);
    /* shorter edge 2 of a 3x7: w = 2, h = int(7 * (2 / 3)) = int(4.67) = 4 */
    run(&r, *state, "ResizeImagesByShorterEdge", "images", pattern(7, 3, 3, 1), "shorter_edge", cd_value_int(2), NULL);
    expect_shape(ok_output(&r, 0), 4, 1, 4, 2, 3);
    run_end(&r);
    /* the same as common_upscale's lanczos (one Pillow resize) */
    cd_value *in = pattern(4, 4, 3, 1);
    run(&r, *state, "ResizeImagesByLongerEdge", "images", cd_value_ref(in), "longer_edge", cd_value_int(3), NULL);
    cd_value *ref = upscale(*state, in, 3, 3, "lanczos", NULL);
    expect_values(ok_output(&r, 0), cd_value_tensor_data(ref), 27);
    cd_value_unref(ref);
    run_end(&r);
    cd_value_unref(in);
    run(&r, *state, "ResizeImagesByLongerEdge", "images", image(2, 2, 2, 3, NULL), "longer_edge", cd_value_int(3),
        NULL);
    expect_failure(&r, "TypeError", "Cannot handle this data type: (1, 1, 2, 3), |u1");
    run(&r, *state, "ResizeImagesByShorterEdge", "images", image(1, 2, 2, 1, NULL), "shorter_edge", cd_value_int(3),
        NULL);
    expect_failure(&r, "TypeError", "Cannot handle this data type: (1, 1, 1), |u1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nearest_exact),
        cmocka_unit_test(test_bilinear),
        cmocka_unit_test(test_bilinear_kernel_choice),
        cmocka_unit_test(test_area),
        cmocka_unit_test(test_bicubic),
        cmocka_unit_test(test_center_crop),
        cmocka_unit_test(test_lanczos_matches_pillow),
        cmocka_unit_test(test_upscale_errors_and_batches),
        cmocka_unit_test(test_image_scale),
        cmocka_unit_test(test_resize_and_pad),
        cmocka_unit_test(test_resize_image_mask),
        cmocka_unit_test(test_flux_kontext),
        cmocka_unit_test(test_crop_flip_rotate),
        cmocka_unit_test(test_image_stitch),
        cmocka_unit_test(test_image_batch),
        cmocka_unit_test(test_from_repeat_rebatch),
        cmocka_unit_test(test_pad_for_outpaint),
        cmocka_unit_test(test_composite_masked),
        cmocka_unit_test(test_resize_images_by_edge),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
