/* The mask and compositing nodes (src/nodes/image/mask.c, compositing.c) on small tensors, with
 * the values ComfyUI's torch code gives, worked out by hand: shapes, batches, RGBA, mismatched
 * sizes, the rounding and broadcasting corners, and the errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static cd_value *tensor_of(const char *type, int nd, const int64_t *shape, const float *values) {
    cd_value *v = cd_value_tensor_new(type, nd, shape);
    assert_non_null(v);
    if (values && cd_value_tensor_numel(v))
        memcpy(cd_value_tensor_data_mut(v), values, cd_value_tensor_numel(v) * sizeof(float));
    return v;
}

static cd_value *mask3(int64_t b, int64_t h, int64_t w, const float *values) {
    int64_t shape[3] = {b, h, w};
    return tensor_of("MASK", 3, shape, values);
}

static cd_value *image4(int64_t b, int64_t h, int64_t w, int64_t c, const float *values) {
    int64_t shape[4] = {b, h, w, c};
    return tensor_of("IMAGE", 4, shape, values);
}

static cd_value *filled_mask(int64_t b, int64_t h, int64_t w, float v) {
    int64_t shape[3] = {b, h, w};
    cd_value *t = cd_value_tensor_new("MASK", 3, shape);
    float *d = cd_value_tensor_data_mut(t);
    for (size_t i = 0; i < cd_value_tensor_numel(t); i++) d[i] = v;
    return t;
}

/* The output's shape is exactly dims[0..nd) and its data exactly `want` (bit for bit). */
static void expect_tensor(const cd_value *v, const char *type, int nd, const int64_t *dims, const float *want) {
    assert_non_null(v);
    assert_string_equal(cd_value_tensor_type(v), type);
    assert_int_equal(cd_value_tensor_ndim(v), nd);
    for (int d = 0; d < nd; d++)
        if (cd_value_tensor_dim(v, d) != dims[d])
            fail_msg("dimension %d is %lld, expected %lld", d, (long long)cd_value_tensor_dim(v, d),
                     (long long)dims[d]);
    const float *got = cd_value_tensor_data(v);
    for (size_t i = 0; i < cd_value_tensor_numel(v); i++)
        if (memcmp(&got[i], &want[i], sizeof(float)))
            fail_msg("element %zu is %.9g, expected %.9g", i, (double)got[i], (double)want[i]);
}

static void expect_ok(run_t *r) {
    if (r->rc != CD_OK) fail_msg("the node failed: %s: %s", r->call.error_type, r->call.error_message);
}

static void expect_fail(run_t *r, const char *type, const char *contains) {
    if (r->rc != CD_ERROR) fail_msg("the node did not fail");
    assert_string_equal(r->call.error_type, type);
    if (!strstr(r->call.error_message, contains))
        fail_msg("error '%s' does not contain '%s'", r->call.error_message, contains);
}

/* ---- registration ---- */

static void test_all_nodes_registered(void **state) {
    static const char *names[] = {"BatchMasksNode", "CropMask", "FeatherMask", "GrowMask", "ImageColorToMask",
                                  "ImageToMask", "InvertMask", "MaskComposite", "MaskPreview", "MaskToImage",
                                  "SolidMask", "ThresholdMask", "JoinImageWithAlpha", "PorterDuffImageComposite",
                                  "SplitImageWithAlpha"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const cd_node_type *t = cd_registry_get(*state, names[i]);
        if (!t) fail_msg("%s is not registered", names[i]);
    }
    /* a V3 schema without a display name shows null, as ComfyUI's /object_info does */
    const cd_node_type *t = cd_registry_get(*state, "CropMask");
    assert_true(json_is_null(json_object_get(t->info, "display_name")));
    t = cd_registry_get(*state, "GrowMask");
    assert_string_equal(json_string_value(json_object_get(t->info, "display_name")), "Grow Mask");
}

/* ---- MaskToImage, ImageToMask, ImageColorToMask ---- */

static void test_mask_to_image(void **state) {
    run_t r;
    static const float m[] = {0.25f, 0.5f, 0.75f, 1.0f};
    run(&r, *state, "MaskToImage", "mask", mask3(2, 1, 2, m), NULL);
    expect_ok(&r);
    static const float want[] = {0.25f, 0.25f, 0.25f, 0.5f, 0.5f, 0.5f, 0.75f, 0.75f, 0.75f, 1, 1, 1};
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){2, 1, 2, 3}, want);
    run_end(&r);
    /* a bare [H, W] mask is one image */
    run(&r, *state, "MaskToImage", "mask", tensor_of("MASK", 2, (int64_t[]){2, 1}, m), NULL);
    expect_ok(&r);
    static const float want2[] = {0.25f, 0.25f, 0.25f, 0.5f, 0.5f, 0.5f};
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){1, 2, 1, 3}, want2);
    run_end(&r);
}

static void test_image_to_mask(void **state) {
    static const float rgba[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    run_t r;
    run(&r, *state, "ImageToMask", "image", image4(2, 1, 1, 4, rgba), "channel", cd_value_string("alpha"), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 1, 1}, (float[]){0.4f, 0.8f});
    run_end(&r);
    run(&r, *state, "ImageToMask", "image", image4(1, 1, 2, 4, rgba), "channel", cd_value_string("green"), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 1, 2}, (float[]){0.2f, 0.6f});
    run_end(&r);
    /* alpha of an RGB image: torch's IndexError */
    run(&r, *state, "ImageToMask", "image", image4(1, 1, 2, 3, rgba), "channel", cd_value_string("alpha"), NULL);
    expect_fail(&r, "IndexError", "index 3 is out of bounds for dimension 3 with size 3");
    run_end(&r);
    /* a MASK where an IMAGE belongs */
    run(&r, *state, "ImageToMask", "image", mask3(1, 2, 2, rgba), "channel", cd_value_string("red"), NULL);
    expect_fail(&r, "ValueError", "expected an IMAGE");
    run_end(&r);
}

static void test_image_color_to_mask(void **state) {
    /* 0x1.414142p-7 * 255 is exactly 2.5: torch.round gives 2 (half to even), not 3 */
    float half = 0x1.414142p-7f;
    const float px[] = {1, 0, 0, /**/ 0, half, 0, /**/ 1.5f, -0.5f, 0, /**/ 0, 0.5f, 0, /**/ 0, 0x1.818182p-8f, 0};
    run_t r;
    run(&r, *state, "ImageColorToMask", "image", image4(1, 1, 5, 3, px), "color", cd_value_int(0xFF0000), NULL);
    expect_ok(&r);
    /* out-of-range samples are clamped first: (1.5, -0.5, 0) is 0xFF0000 too */
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 1, 5}, (float[]){1, 0, 1, 0, 0});
    run_end(&r);
    run(&r, *state, "ImageColorToMask", "image", image4(1, 1, 5, 3, px), "color", cd_value_int(0x000200), NULL);
    expect_ok(&r);
    /* 0.5 * 255 = 127.5 rounds to 128; 0x1.818182p-8 * 255 = 1.5 rounds to 2 */
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 1, 5}, (float[]){0, 1, 0, 0, 1});
    run_end(&r);
    run(&r, *state, "ImageColorToMask", "image", image4(1, 1, 5, 3, px), "color", cd_value_int(0x008000), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 1, 5}, (float[]){0, 0, 0, 1, 0});
    run_end(&r);
    /* NaN converts to INT32_MIN, which torch's int32 shift by 16 turns into 0: (NaN, 0, 0) is
     * colour 0, while (0, 0, NaN) is no colour */
    const float nan_px[] = {NAN, 0, 0, 0, 0, NAN, 0, 0, 0};
    run(&r, *state, "ImageColorToMask", "image", image4(1, 1, 3, 3, nan_px), "color", cd_value_int(0), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 1, 3}, (float[]){1, 0, 1});
    run_end(&r);
    /* RGBA: the alpha does not count */
    const float rgba[] = {0, 0, 1, 0.25f, 0, 0, 1, 1};
    run(&r, *state, "ImageColorToMask", "image", image4(2, 1, 1, 4, rgba), "color", cd_value_int(0x0000FF), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 1, 1}, (float[]){1, 1});
    run_end(&r);
}

/* ---- SolidMask, InvertMask, ThresholdMask ---- */

static void test_solid_and_invert(void **state) {
    run_t r;
    run(&r, *state, "SolidMask", "value", cd_value_float(0.3), "width", cd_value_int(3), "height", cd_value_int(2),
        NULL);
    expect_ok(&r);
    float v = 0.3f;
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 2, 3}, (float[]){v, v, v, v, v, v});
    run_end(&r);
    static const float m[] = {0, 0.25f, 1, 0.7f};
    run(&r, *state, "InvertMask", "mask", mask3(2, 1, 2, m), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 1, 2}, (float[]){1, 0.75f, 0, 1.0f - 0.7f});
    run_end(&r);
    /* 1.0 - mask keeps a bare [H, W] shape */
    run(&r, *state, "InvertMask", "mask", tensor_of("MASK", 2, (int64_t[]){2, 2}, m), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 2, (int64_t[]){2, 2}, (float[]){1, 0.75f, 0, 1.0f - 0.7f});
    run_end(&r);
}

static void test_threshold(void **state) {
    /* the comparison is in float32: 0.3f is not above 0.3 once 0.3 is a float, though it is
     * above the double 0.3 */
    static const float m[] = {0.2f, 0.5f, 0.7f, 0.3f, 0.30000004f, 1};
    run_t r;
    run(&r, *state, "ThresholdMask", "mask", mask3(1, 2, 3, m), "value", cd_value_float(0.3), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 2, 3}, (float[]){0, 1, 1, 0, 1, 1});
    run_end(&r);
    run(&r, *state, "ThresholdMask", "mask", mask3(2, 1, 3, m), "value", cd_value_float(0.5), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 1, 3}, (float[]){0, 0, 1, 0, 0, 1});
    run_end(&r);
}

/* ---- CropMask ---- */

static void test_crop(void **state) {
    float m[32];
    for (int i = 0; i < 32; i++) m[i] = (float)i / 32.0f;
    run_t r;
    run(&r, *state, "CropMask", "mask", mask3(2, 4, 4, m), "x", cd_value_int(1), "y", cd_value_int(2), "width",
        cd_value_int(2), "height", cd_value_int(5), NULL);
    expect_ok(&r);
    /* rows 2..3 (the slice stops at the edge), columns 1..2, of both masks */
    float want[] = {9, 10, 13, 14, 25, 26, 29, 30};
    for (int i = 0; i < 8; i++) want[i] /= 32.0f;
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 2, 2}, want);
    run_end(&r);
    /* starting past the edge: an empty mask, as the slice gives */
    run(&r, *state, "CropMask", "mask", mask3(1, 4, 4, m), "x", cd_value_int(7), "y", cd_value_int(0), "width",
        cd_value_int(2), "height", cd_value_int(2), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 2, 0}, NULL);
    run_end(&r);
}

/* ---- MaskComposite ---- */

static void composite(void **state, const char *op, const float *want) {
    /* destination 3x3, source 2x2 at (2, 1): only source[:2, :1] lands, on column 2, rows 1..2 */
    static const float dst[] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.6f};
    static const float src[] = {0.75f, 9, 0.5f, 9};
    run_t r;
    run(&r, *state, "MaskComposite", "destination", mask3(1, 3, 3, dst), "source", mask3(1, 2, 2, src), "x",
        cd_value_int(2), "y", cd_value_int(1), "operation", cd_value_string(op), NULL);
    expect_ok(&r);
    float full[9];
    memcpy(full, dst, sizeof full);
    full[5] = want[0];
    full[8] = want[1];
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 3, 3}, full);
    run_end(&r);
}

static void test_mask_composite(void **state) {
    composite(state, "multiply", (float[]){0.375f, 0.5f * 0.6f});
    composite(state, "add", (float[]){1.0f /* 1.25 clamped */, 1.0f /* 1.1 clamped */});
    composite(state, "subtract", (float[]){0.0f /* -0.25 clamped */, 0.6f - 0.5f});
    /* .round(): 0.5 -> 0 (half to even), 0.75 -> 1, 0.6 -> 1 */
    composite(state, "and", (float[]){0, 0});
    composite(state, "or", (float[]){1, 1});
    composite(state, "xor", (float[]){1, 1});

    /* a single source mask is broadcast over the destination's batch; the clamp covers the
     * whole output, outside the source too */
    static const float dst[] = {2, 0.5f, -1, 0.5f};
    static const float src[] = {0.25f};
    run_t r;
    run(&r, *state, "MaskComposite", "destination", mask3(2, 1, 2, dst), "source", mask3(1, 1, 1, src), "x",
        cd_value_int(1), "y", cd_value_int(0), "operation", cd_value_string("add"), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 1, 2}, (float[]){1, 0.75f, 0, 0.75f});
    run_end(&r);
    /* a source entirely outside the destination changes nothing */
    run(&r, *state, "MaskComposite", "destination", mask3(1, 2, 2, dst), "source", mask3(1, 1, 1, src), "x",
        cd_value_int(5), "y", cd_value_int(0), "operation", cd_value_string("multiply"), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 2, 2}, (float[]){1, 0.5f, 0, 0.5f});
    run_end(&r);
    /* two source masks into one destination: torch cannot assign the result */
    run(&r, *state, "MaskComposite", "destination", mask3(1, 1, 2, dst), "source", mask3(2, 1, 1, dst), "x",
        cd_value_int(0), "y", cd_value_int(0), "operation", cd_value_string("add"), NULL);
    expect_fail(&r, "RuntimeError", "must match the size");
    run_end(&r);
}

/* ---- FeatherMask ---- */

static void test_feather(void **state) {
    run_t r;
    run(&r, *state, "FeatherMask", "mask", filled_mask(1, 2, 5, 1.0f), "left", cd_value_int(4), "top",
        cd_value_int(0), "right", cd_value_int(0), "bottom", cd_value_int(0), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 2, 5},
                  (float[]){0.25f, 0.5f, 0.75f, 1, 1, 0.25f, 0.5f, 0.75f, 1, 1});
    run_end(&r);
    /* right and bottom: ComfyUI's output[:, :, -x] with x = 0 scales the FIRST column (row),
     * x = 1 the last one */
    run(&r, *state, "FeatherMask", "mask", filled_mask(2, 2, 4, 1.0f), "left", cd_value_int(0), "top",
        cd_value_int(0), "right", cd_value_int(2), "bottom", cd_value_int(2), NULL);
    expect_ok(&r);
    static const float want[] = {0.25f, 0.5f, 0.5f, 0.5f, 0.5f, 1, 1, 1, 0.25f, 0.5f, 0.5f, 0.5f, 0.5f, 1, 1, 1};
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 2, 4}, want);
    run_end(&r);
    /* amounts beyond the size are clamped to it: top = 9 on 2 rows is top = 2 */
    run(&r, *state, "FeatherMask", "mask", filled_mask(1, 2, 1, 1.0f), "left", cd_value_int(0), "top",
        cd_value_int(9), "right", cd_value_int(0), "bottom", cd_value_int(0), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, 2, 1}, (float[]){0.5f, 1});
    run_end(&r);
}

/* ---- GrowMask ---- */

static void grow(void **state, const float *in, int64_t h, int64_t w, int64_t expand, bool tapered,
                 const float *want) {
    run_t r;
    run(&r, *state, "GrowMask", "mask", mask3(1, h, w, in), "expand", cd_value_int(expand), "tapered_corners",
        cd_value_bool(tapered), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){1, h, w}, want);
    run_end(&r);
}

static void test_grow(void **state) {
    static const float dot[] = {0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 0, /**/ 0, 0, 0.5f, 0, 0, /**/ 0, 0, 0, 0, 0,
                                /**/ 0, 0, 0, 0, 0};
    static const float cross[] = {0, 0, 0, 0, 0, /**/ 0, 0, 0.5f, 0, 0, /**/ 0, 0.5f, 0.5f, 0.5f, 0, /**/ 0, 0,
                                  0.5f, 0, 0, /**/ 0, 0, 0, 0, 0};
    static const float square[] = {0, 0, 0, 0, 0, /**/ 0, 0.5f, 0.5f, 0.5f, 0, /**/ 0, 0.5f, 0.5f, 0.5f, 0,
                                   /**/ 0, 0.5f, 0.5f, 0.5f, 0, /**/ 0, 0, 0, 0, 0};
    static const float diamond[] = {0, 0, 0.5f, 0, 0, /**/ 0, 0.5f, 0.5f, 0.5f, 0, /**/ 0.5f, 0.5f, 0.5f, 0.5f,
                                    0.5f, /**/ 0, 0.5f, 0.5f, 0.5f, 0, /**/ 0, 0, 0.5f, 0, 0};
    grow(state, dot, 5, 5, 0, true, dot);
    grow(state, dot, 5, 5, 1, true, cross);
    grow(state, dot, 5, 5, 1, false, square);
    grow(state, dot, 5, 5, 2, true, diamond);
    /* erosion undoes it where the shape allows */
    grow(state, square, 5, 5, -1, false, dot);
    grow(state, square, 5, 5, -1, true, dot);
    /* the border repeats the edge sample (scipy's "reflect"): a full mask does not erode from
     * its edges, and a corner grows only inwards */
    static const float ones[] = {1, 1, 1, 1, 1, 1};
    grow(state, ones, 2, 3, -3, true, ones);
    static const float corner[] = {1, 0, 0, 0, 0, 0};
    grow(state, corner, 2, 3, 1, true, (float[]){1, 1, 0, 1, 0, 0});
    /* a huge expand stops at the fixed point with the same result */
    grow(state, corner, 2, 3, 16384, true, ones);
    /* grey-level: the max of the neighbourhood */
    static const float grey[] = {0.25f, 0.75f, 0.5f};
    grow(state, grey, 1, 3, 1, true, (float[]){0.75f, 0.75f, 0.75f});
    grow(state, grey, 1, 3, -1, true, (float[]){0.25f, 0.25f, 0.5f});
    /* each mask of a batch on its own */
    run_t r;
    static const float two[] = {1, 0, 0, 0, 0, 1};
    run(&r, *state, "GrowMask", "mask", mask3(2, 1, 3, two), "expand", cd_value_int(1), "tapered_corners",
        cd_value_bool(1), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 1, 3}, (float[]){1, 1, 0, 0, 1, 1});
    run_end(&r);
}

/* ---- MaskPreview ---- */

static const char *temp_dir(void *ctx, const char *type) { return strcmp(type, "temp") ? NULL : ctx; }

static void test_mask_preview(void **state) {
    char dir[] = "/tmp/comfyd-mask-XXXXXX";
    assert_non_null(mkdtemp(dir));
    cd_call_env env = {.ctx = dir, .directory = temp_dir, .prompt_json = "{}"};
    const cd_node_type *t = cd_registry_get(*state, "MaskPreview");
    cd_node_call call;
    cd_call_init(&call, t, &env, "1", 0);
    static const float m[] = {0, 0.5f, 1, 0.25f, 0.1f, 1, 1, 1};
    cd_value *mask = mask3(2, 2, 2, m);
    cd_call_add_input(&call, "mask", mask, NULL);
    if (t->def->execute(&call) != CD_OK) fail_msg("MaskPreview failed: %s", call.error_message);
    json_t *images = json_object_get(call.ui, "images");
    assert_int_equal(json_array_size(images), 2);
    json_t *animated = json_object_get(call.ui, "animated");
    assert_int_equal(json_array_size(animated), 1);
    assert_true(json_is_false(json_array_get(animated, 0)));
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(images, i);
        assert_string_equal(json_string_value(json_object_get(e, "type")), "temp");
        assert_string_equal(json_string_value(json_object_get(e, "subfolder")), "");
        const char *file = json_string_value(json_object_get(e, "filename"));
        assert_true(!strncmp(file, "ComfyUI_temp_", 13));
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        VipsImage *im = vips_image_new_from_file(path, NULL);
        if (!im) fail_msg("cannot read %s", path);
        assert_int_equal(vips_image_get_width(im), 2);
        assert_int_equal(vips_image_get_height(im), 2);
        assert_int_equal(vips_image_get_bands(im), 3);
        size_t size;
        unsigned char *px = vips_image_write_to_memory(im, &size);
        assert_int_equal(size, 12);
        /* grey RGB, 255 * v truncated as SaveImage does: 0.5 -> 127, 0.25 -> 63, 0.1 -> 25 */
        static const unsigned char levels[2][4] = {{0, 127, 255, 63}, {25, 255, 255, 255}};
        for (int p = 0; p < 4; p++)
            for (int c = 0; c < 3; c++) assert_int_equal(px[p * 3 + c], levels[i][p]);
        g_free(px);
        g_object_unref(im);
        unlink(path);
    }
    cd_call_clear(&call);
    cd_value_unref(mask);
    rmdir(dir);
}

/* ---- BatchMasksNode ---- */

static void test_batch_masks(void **state) {
    static const float a[] = {0.1f, 0.2f, 0.3f, 0.4f};
    static const float b[] = {0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 0.0f, 0.25f};
    run_t r;
    /* slots in index order, whatever order the prompt gives them */
    run(&r, *state, "BatchMasksNode", "masks.mask1", mask3(2, 2, 2, b), "masks.mask0", mask3(1, 2, 2, a), NULL);
    expect_ok(&r);
    static const float want[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 0.0f, 0.25f};
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){3, 2, 2}, want);
    run_end(&r);

    /* other sizes are resized to the first mask's: bilinear, align_corners=False. 4x4 -> 2x2
     * samples at 0.5 and 2.5, the mean of each 2x2 block. */
    float big[16];
    for (int i = 0; i < 16; i++) big[i] = (float)i / 16.0f;
    run(&r, *state, "BatchMasksNode", "masks.mask0", mask3(1, 2, 2, a), "masks.mask1", mask3(1, 4, 4, big), NULL);
    expect_ok(&r);
    static const float want2[] = {0.1f, 0.2f, 0.3f, 0.4f, 2.5f / 16, 4.5f / 16, 10.5f / 16, 12.5f / 16};
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 2, 2}, want2);
    run_end(&r);

    /* another aspect ratio: common_upscale's centre crop first (2x4 -> the middle 2x2) */
    static const float wide[] = {0, 0.1f, 0.2f, 0, 0, 0.3f, 0.4f, 0};
    run(&r, *state, "BatchMasksNode", "masks.mask0", mask3(1, 2, 2, a), "masks.mask1", mask3(1, 2, 4, wide), NULL);
    expect_ok(&r);
    static const float want3[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.1f, 0.2f, 0.3f, 0.4f};
    expect_tensor(r.call.outputs[0], "MASK", 3, (int64_t[]){2, 2, 2}, want3);
    run_end(&r);

    run(&r, *state, "BatchMasksNode", NULL);
    expect_fail(&r, "ValueError", "at least one mask");
    run_end(&r);
    /* an empty mask cannot be resized */
    run(&r, *state, "BatchMasksNode", "masks.mask0", mask3(1, 2, 2, a), "masks.mask1", mask3(1, 2, 0, NULL), NULL);
    expect_fail(&r, "RuntimeError", "sizes should be greater than 0");
    run_end(&r);
}

/* ---- SplitImageWithAlpha, JoinImageWithAlpha ---- */

static void test_split(void **state) {
    static const float rgba[] = {0.1f, 0.2f, 0.3f, 0.25f, 0.4f, 0.5f, 0.6f, 1.0f};
    run_t r;
    run(&r, *state, "SplitImageWithAlpha", "image", image4(2, 1, 1, 4, rgba), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){2, 1, 1, 3},
                  (float[]){0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f});
    expect_tensor(r.call.outputs[1], "MASK", 3, (int64_t[]){2, 1, 1}, (float[]){0.75f, 0});
    run_end(&r);
    /* RGB: opaque, so the mask is all 0 */
    run(&r, *state, "SplitImageWithAlpha", "image", image4(1, 1, 2, 3, rgba), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){1, 1, 2, 3}, rgba);
    expect_tensor(r.call.outputs[1], "MASK", 3, (int64_t[]){1, 1, 2}, (float[]){0, 0});
    run_end(&r);
}

static void test_join(void **state) {
    static const float rgb[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1, 1, 1};
    static const float m[] = {0.25f, 1};
    run_t r;
    /* two images, one mask: the mask is repeated */
    run(&r, *state, "JoinImageWithAlpha", "image", image4(2, 1, 2, 3, rgb), "alpha", mask3(1, 1, 2, m), NULL);
    expect_ok(&r);
    static const float want[] = {0.1f, 0.2f, 0.3f, 0.75f, 0.4f, 0.5f, 0.6f, 0,
                                 0.7f, 0.8f, 0.9f, 0.75f, 1,    1,    1,    0};
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){2, 1, 2, 4}, want);
    run_end(&r);
    /* one RGBA image, two masks of another size: the image's alpha is replaced, the image
     * repeated, the mask resized (bilinear: 2 -> 4 columns gives 0, 0.25, 0.75, 1) */
    static const float rgba[] = {0.5f, 0.5f, 0.5f, 0.9f, 0.5f, 0.5f, 0.5f, 0.9f,
                                 0.5f, 0.5f, 0.5f, 0.9f, 0.5f, 0.5f, 0.5f, 0.9f};
    static const float m2[] = {0, 1, 1, 1};
    run(&r, *state, "JoinImageWithAlpha", "image", image4(1, 1, 4, 4, rgba), "alpha", mask3(2, 1, 2, m2), NULL);
    expect_ok(&r);
    static const float want2[] = {0.5f, 0.5f, 0.5f, 1,    0.5f, 0.5f, 0.5f, 0.75f, 0.5f, 0.5f, 0.5f,
                                  0.25f, 0.5f, 0.5f, 0.5f, 0,    0.5f, 0.5f, 0.5f, 0,     0.5f, 0.5f,
                                  0.5f, 0,    0.5f, 0.5f, 0.5f, 0,    0.5f, 0.5f, 0.5f, 0};
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){2, 1, 4, 4}, want2);
    run_end(&r);
}

/* ---- PorterDuffImageComposite ---- */

/* One pixel: source colour 0.5 with mask 0.25 (alpha 0.75), destination colour 1.0 with mask
 * 0.5 (alpha 0.5). Premultiplied: s = 0.375, d = 0.5. */
static void porter_duff(void **state, const char *mode, float want_colour, float want_mask) {
    run_t r;
    run(&r, *state, "PorterDuffImageComposite", "source", image4(1, 1, 1, 3, (float[]){0.5f, 0.5f, 0.5f}),
        "source_alpha", mask3(1, 1, 1, (float[]){0.25f}), "destination", image4(1, 1, 1, 3, (float[]){1, 1, 1}),
        "destination_alpha", mask3(1, 1, 1, (float[]){0.5f}), "mode", cd_value_string(mode), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){1, 1, 1, 3},
                  (float[]){want_colour, want_colour, want_colour});
    expect_tensor(r.call.outputs[1], "MASK", 3, (int64_t[]){1, 1, 1}, (float[]){want_mask});
    run_end(&r);
}

static void test_porter_duff_modes(void **state) {
    porter_duff(state, "ADD", 0.875f, 0);                       /* clamp(1.25) alpha, clamp(0.875) */
    porter_duff(state, "CLEAR", 0, 1);
    porter_duff(state, "DARKEN", 0.6875f / 0.875f, 0.125f);     /* .1875 + .125 + min(.375, .5) */
    porter_duff(state, "DST", 1, 0.5f);
    porter_duff(state, "DST_ATOP", 0.5625f / 0.75f, 0.25f);     /* .75 * .5 + .5 * .375 */
    porter_duff(state, "DST_IN", 1, 0.625f);                    /* .5 * .75 / .375 */
    porter_duff(state, "DST_OUT", 1, 0.875f);                   /* .25 * .5 / .125 */
    porter_duff(state, "DST_OVER", 0.6875f / 0.875f, 0.125f);   /* .5 + .5 * .375 */
    porter_duff(state, "LIGHTEN", 0.8125f / 0.875f, 0.125f);    /* .3125 + max(.375, .5) */
    porter_duff(state, "MULTIPLY", 0.5f, 0.625f);               /* .1875 / .375 */
    porter_duff(state, "OVERLAY", 0.3125f / 0.875f, 0.125f);    /* 2d >= da: .375 - 2 * .125 * .25 */
    porter_duff(state, "SCREEN", 0.6875f / 0.875f, 0.125f);     /* .875 - .1875 */
    porter_duff(state, "SRC", 0.5f, 0.25f);
    porter_duff(state, "SRC_ATOP", 0.625f, 0.5f);               /* (.5 * .375 + .25 * .5) / .5 */
    porter_duff(state, "SRC_IN", 0.5f, 0.625f);
    porter_duff(state, "SRC_OUT", 0.5f, 0.625f);                /* .5 * .375 / (.5 * .75) */
    porter_duff(state, "SRC_OVER", 0.5f / 0.875f, 0.125f);      /* .375 + .25 * .5 */
    porter_duff(state, "XOR", 0.625f, 0.5f);                    /* (.1875 + .125) / (.375 + .125) */
}

static void test_porter_duff_resize_and_batch(void **state) {
    /* a 1x2 source [0, 1] onto a 1x4 destination: bicubic (A = -0.75) gives -0.10546875,
     * 0.2265625, 0.7734375, 1.10546875, which the final clamp bounds; a 1x1 destination alpha
     * is stretched to 1x4. Batches: min of the four (here 2 sources, 1 of the rest -> 1). */
    run_t r;
    run(&r, *state, "PorterDuffImageComposite", "source", image4(2, 1, 2, 1, (float[]){0, 1, 1, 1}),
        "source_alpha", mask3(1, 1, 2, (float[]){0, 0}), "destination", image4(1, 1, 4, 1, (float[]){0, 0, 0, 0}),
        "destination_alpha", mask3(1, 1, 1, (float[]){0}), "mode", cd_value_string("SRC"), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){1, 1, 4, 1}, (float[]){0, 0.2265625f, 0.7734375f, 1});
    expect_tensor(r.call.outputs[1], "MASK", 3, (int64_t[]){1, 1, 4}, (float[]){0, 0, 0, 0});
    run_end(&r);
    /* a transparent result has colour 0 (out_alpha <= 1e-5) */
    run(&r, *state, "PorterDuffImageComposite", "source", image4(1, 1, 1, 3, (float[]){1, 1, 1}), "source_alpha",
        mask3(1, 1, 1, (float[]){1}), "destination", image4(1, 1, 1, 3, (float[]){1, 1, 1}), "destination_alpha",
        mask3(1, 1, 1, (float[]){1}), "mode", cd_value_string("SRC_OVER"), NULL);
    expect_ok(&r);
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){1, 1, 1, 3}, (float[]){0, 0, 0});
    expect_tensor(r.call.outputs[1], "MASK", 3, (int64_t[]){1, 1, 1}, (float[]){1});
    run_end(&r);
    /* RGBA images: every channel is composited as colour, batches of two */
    static const float src4[] = {0.5f, 0.5f, 0.5f, 0.5f, 1, 1, 1, 1};
    static const float dst4[] = {1, 1, 1, 1, 0, 0, 0, 0};
    run(&r, *state, "PorterDuffImageComposite", "source", image4(2, 1, 1, 4, src4), "source_alpha",
        mask3(2, 1, 1, (float[]){0.25f, 0.5f}), "destination", image4(2, 1, 1, 4, dst4), "destination_alpha",
        mask3(2, 1, 1, (float[]){0.5f, 0}), "mode", cd_value_string("SRC_OVER"), NULL);
    expect_ok(&r);
    /* second pixel: s = 0.5, sa = 0.5 over d = 0, da = 1: oa = 1, o = 0.5 */
    float f = 0.5f / 0.875f;
    expect_tensor(r.call.outputs[0], "IMAGE", 4, (int64_t[]){2, 1, 1, 4},
                  (float[]){f, f, f, f, 0.5f, 0.5f, 0.5f, 0.5f});
    expect_tensor(r.call.outputs[1], "MASK", 3, (int64_t[]){2, 1, 1}, (float[]){0.125f, 0});
    run_end(&r);
    /* RGB onto RGBA: ComfyUI asserts the channel counts match */
    run(&r, *state, "PorterDuffImageComposite", "source", image4(1, 1, 1, 3, (float[]){1, 1, 1}), "source_alpha",
        mask3(1, 1, 1, (float[]){0}), "destination", image4(1, 1, 1, 4, (float[]){1, 1, 1, 1}), "destination_alpha",
        mask3(1, 1, 1, (float[]){0}), "mode", cd_value_string("SRC"), NULL);
    expect_fail(&r, "AssertionError", "channels");
    run_end(&r);
    run(&r, *state, "PorterDuffImageComposite", "source", image4(1, 1, 1, 3, (float[]){1, 1, 1}), "source_alpha",
        mask3(1, 1, 1, (float[]){0}), "destination", image4(1, 1, 1, 3, (float[]){1, 1, 1}), "destination_alpha",
        mask3(1, 1, 1, (float[]){0}), "mode", cd_value_string("BLEND"), NULL);
    expect_fail(&r, "KeyError", "BLEND");
    run_end(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_nodes_registered),
        cmocka_unit_test(test_mask_to_image),
        cmocka_unit_test(test_image_to_mask),
        cmocka_unit_test(test_image_color_to_mask),
        cmocka_unit_test(test_solid_and_invert),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_crop),
        cmocka_unit_test(test_mask_composite),
        cmocka_unit_test(test_feather),
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_mask_preview),
        cmocka_unit_test(test_batch_masks),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_porter_duff_modes),
        cmocka_unit_test(test_porter_duff_resize_and_batch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
