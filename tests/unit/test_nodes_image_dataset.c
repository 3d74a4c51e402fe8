/* The dataset image nodes (comfy_extras.nodes_dataset, src/nodes/image/dataset*.c). Expected
 * values come from ComfyUI's own formulas run with numpy 1.24 and Pillow 9.4 on the same inputs:
 * float32 results as hex literals, PIL results as bytes, numpy's seeded draws as indices. The
 * test images are img(h, w, c, mul, add): element i is ((i * mul + add) % 256) / 255 in float32. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node_call.h"
#include "nodes/image/image.h"

int cd_nodes_image_init(cd_pack *pack);

typedef struct {
    char root[256], input[300], output[300];
    cd_call_env env;
} fixture;

static const char *dir_of(void *ctx, const char *type) {
    fixture *f = ctx;
    if (!strcmp(type, "input")) return f->input;
    if (!strcmp(type, "output")) return f->output;
    return NULL;
}

static cd_registry *reg_of(void **state) { return ((void **)*state)[0]; }
static fixture *fix_of(void **state) { return ((void **)*state)[1]; }

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state) {
    void **s = calloc(2, sizeof *s);
    cd_registry *reg = cd_registry_new();
    if (cd_registry_add_pack(reg, "image", "nodes", cd_nodes_image_init) < 14) return -1;
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/cd-dataset-XXXXXX");
    if (!mkdtemp(f->root)) return -1;
    snprintf(f->input, sizeof f->input, "%s/input", f->root);
    snprintf(f->output, sizeof f->output, "%s/output", f->root);
    mkdir(f->input, 0755);
    mkdir(f->output, 0755);
    f->env.ctx = f;
    f->env.directory = dir_of;
    s[0] = reg;
    s[1] = f;
    *state = s;
    return 0;
}

static int teardown_all(void **state) {
    (void)teardown; /* node_call.h's, for a bare registry */
    void **s = *state;
    fixture *f = s[1];
    nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    cd_registry_free(s[0]);
    free(f);
    free(s);
    return 0;
}

/* Runs node with the fixture's directories and (name, value) pairs, values consumed. */
static void run_in(run_t *r, void **state, const char *node, ...) {
    const cd_node_type *t = cd_registry_get(reg_of(state), node);
    if (!t) fail_msg("no node %s", node);
    memset(r, 0, sizeof *r);
    cd_call_init(&r->call, t, &fix_of(state)->env, "1", 0);
    va_list ap;
    va_start(ap, node);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        cd_value *v = va_arg(ap, cd_value *);
        if (r->n == sizeof r->vals / sizeof r->vals[0]) fail_msg("too many inputs");
        r->vals[r->n++] = v;
        cd_call_add_input(&r->call, name, v, NULL);
    }
    va_end(ap);
    r->rc = t->def->execute(&r->call);
}

static cd_value *img(int64_t b, int64_t h, int64_t w, int64_t c, unsigned mul, unsigned add) {
    int64_t shape[4] = {b, h, w, c};
    cd_value *v = cd_value_tensor_new("IMAGE", 4, shape);
    float *d = cd_value_tensor_data_mut(v);
    for (size_t i = 0, n = cd_value_tensor_numel(v); i < n; i++) d[i] = (float)((i * mul + add) % 256) / 255.0f;
    return v;
}

/* A list of n values, consumed. */
static cd_value *list_of(int n, ...) {
    cd_value *l = cd_value_list_new((size_t)n);
    va_list ap;
    va_start(ap, n);
    for (int k = 0; k < n; k++) cd_value_list_push(l, va_arg(ap, cd_value *));
    va_end(ap);
    return l;
}

static void expect_ok(run_t *r) {
    if (r->rc != CD_OK) fail_msg("failed: %s: %s", r->call.error_type, r->call.error_message);
}

static void expect_failure(run_t *r, const char *type, const char *message) {
    if (r->rc != CD_ERROR) fail_msg("succeeded, expected %s", type);
    assert_string_equal(r->call.error_type, type);
    if (message) assert_string_equal(r->call.error_message, message);
    run_end(r);
}

static void expect_floats(const cd_value *t, const float *want, size_t n) {
    assert_int_equal(cd_value_kind_of(t), CD_VALUE_TENSOR);
    assert_int_equal(cd_value_tensor_numel(t), n);
    const float *d = cd_value_tensor_data(t);
    for (size_t i = 0; i < n; i++)
        if (memcmp(&d[i], &want[i], sizeof(float))) fail_msg("element %zu: %a, expected %a", i, d[i], want[i]);
}

/* The tensor is bytes / 255. */
static void expect_bytes(const cd_value *t, const unsigned char *want, size_t n) {
    assert_int_equal(cd_value_tensor_numel(t), n);
    const float *d = cd_value_tensor_data(t);
    for (size_t i = 0; i < n; i++)
        if (d[i] != (float)want[i] / 255.0f) fail_msg("element %zu: %a, expected %u / 255", i, d[i], want[i]);
}

static void expect_dims(const cd_value *t, int64_t b, int64_t h, int64_t w, int64_t c) {
    assert_int_equal(cd_value_tensor_ndim(t), 4);
    assert_int_equal(cd_value_tensor_dim(t, 0), b);
    assert_int_equal(cd_value_tensor_dim(t, 1), h);
    assert_int_equal(cd_value_tensor_dim(t, 2), w);
    assert_int_equal(cd_value_tensor_dim(t, 3), c);
}

/* ---- per-image nodes ---- */

static void test_adjust_and_normalize(void **state) {
    run_t r;
    static const float bright[] = {
        0x1.cb64fep-5f, 0x1.f5285ap-3f, 0x1.bbbbbcp-2f, 0x1.3e71a4p-1f, 0x1.9f056cp-1f, 0x1.ff9932p-1f,
        0x1p+0f,        0x1.24578ap-4f, 0x1.0a3d7p-2f,  0x1.cb64fep-2f, 0x1.464646p-1f, 0x1.a6da0ep-1f,
        0x1p+0f,        0x1p+0f,        0x1.62fc96p-4f, 0x1.19e6b4p-2f, 0x1.db0e42p-2f, 0x1.4e1ae8p-1f};
    run_in(&r, state, "AdjustBrightness", "images", img(1, 2, 3, 3, 37, 11), "factor", cd_value_float(1.3), NULL);
    expect_ok(&r);
    expect_dims(r.call.outputs[0], 1, 2, 3, 3);
    expect_floats(r.call.outputs[0], bright, 18);
    run_end(&r);

    static const float contrast[] = {
        0x1.710aa4p-3f, 0x1.2086ecp-2f, 0x1.888888p-2f, 0x1.f08a24p-2f, 0x1.2c45ep-1f,  0x1.6046aep-1f,
        0x1.94477cp-1f, 0x1.81e85p-3f,  0x1.28f5c2p-2f, 0x1.90f75ep-2f, 0x1.f8f8f8p-2f, 0x1.307d4ap-1f,
        0x1.647e18p-1f, 0x1.987ee4p-1f, 0x1.92c5f8p-3f, 0x1.316498p-2f, 0x1.996634p-2f, 0x1.00b3e8p-1f};
    run_in(&r, state, "AdjustContrast", "images", img(1, 2, 3, 3, 37, 11), "factor", cd_value_float(0.7), NULL);
    expect_ok(&r);
    expect_floats(r.call.outputs[0], contrast, 18);
    run_end(&r);

    static const float normalized[] = {
        -0x1.3085dap+0f, -0x1.696968p-1f, -0x1.c71c6ep-3f, 0x1.0bb66p-2f,  0x1.7d7d7ep-1f,  0x1.3a8fe4p+0f,
        0x1.b6610cp+0f,  -0x1.267bd0p+0f, -0x1.555554p-1f, -0x1.76cc2p-3f, 0x1.33de88p-2f,  0x1.919192p-1f,
        0x1.4499eep+0f,  0x1.c06b12p+0f,  -0x1.1c71c6p+0f, -0x1.41414p-1f, -0x1.267bd0p-3f, 0x1.5c06b6p-2f};
    run_in(&r, state, "NormalizeImages", "images", img(1, 2, 3, 3, 37, 11), "mean", cd_value_float(0.4), "std",
           cd_value_float(0.3), NULL);
    expect_ok(&r);
    expect_floats(r.call.outputs[0], normalized, 18);
    run_end(&r);

    /* a batch goes through whole, as a torch expression does; factor 0 clamps to 0 */
    run_in(&r, state, "AdjustBrightness", "images", img(3, 2, 2, 4, 5, 1), "factor", cd_value_float(0.0), NULL);
    expect_ok(&r);
    expect_dims(r.call.outputs[0], 3, 2, 2, 4);
    for (size_t i = 0; i < 48; i++) assert_true(cd_value_tensor_data(r.call.outputs[0])[i] == 0.0f);
    run_end(&r);

    run_in(&r, state, "AdjustContrast", "images", cd_value_string("x"), "factor", cd_value_float(1.0), NULL);
    expect_failure(&r, "ValueError", "images: expected an IMAGE tensor [B, H, W, C]");
}

static void test_crops(void **state) {
    run_t r;
    /* 5x4 RGB, 3x2 from the centre: box (1, 1, 4, 3) */
    static const unsigned char center[] = {165, 202, 239, 20,  57,  94,  131, 168, 205,
                                           208, 245, 26,  63,  100, 137, 174, 211, 248};
    run_in(&r, state, "CenterCropImages", "images", img(1, 4, 5, 3, 37, 11), "width", cd_value_int(3), "height",
           cd_value_int(2), NULL);
    expect_ok(&r);
    expect_dims(r.call.outputs[0], 1, 2, 3, 3);
    expect_bytes(r.call.outputs[0], center, sizeof center);
    run_end(&r);

    /* larger than the image: the whole image, quantized to 8 bits */
    run_in(&r, state, "CenterCropImages", "images", img(1, 2, 2, 3, 37, 11), "width", cd_value_int(512), "height",
           cd_value_int(512), NULL);
    expect_ok(&r);
    expect_dims(r.call.outputs[0], 1, 2, 2, 3);
    run_end(&r);

    /* 7x6 RGBA, 3x2 at numpy's randint draws for seed 42: left 3, top 4 */
    static const unsigned char random42[] = {247, 28,  65,  102, 139, 176, 213, 250, 31, 68,  105, 142,
                                             3,   40,  77,  114, 151, 188, 225, 6,   43, 80,  117, 154};
    run_in(&r, state, "RandomCropImages", "images", img(1, 6, 7, 4, 37, 11), "width", cd_value_int(3), "height",
           cd_value_int(2), "seed", cd_value_int(42), NULL);
    expect_ok(&r);
    expect_dims(r.call.outputs[0], 1, 2, 3, 4);
    expect_bytes(r.call.outputs[0], random42, sizeof random42);
    run_end(&r);

    /* seed 2^40 + 7 goes through seed % (2^32 - 1): left 3, top 3 */
    run_in(&r, state, "RandomCropImages", "images", img(1, 6, 7, 4, 37, 11), "width", cd_value_int(3), "height",
           cd_value_int(2), "seed", cd_value_int(1099511627783LL), NULL);
    expect_ok(&r);
    const cd_value *src = r.vals[0];
    const float *in = cd_value_tensor_data(src), *d = cd_value_tensor_data(r.call.outputs[0]);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3 * 4; x++) {
            float t = in[((3 + y) * 7 + 3) * 4 + x] * 255.0f;
            assert_true(d[y * 12 + x] == (float)(unsigned char)(t > 255.0f ? 255.0f : t) / 255.0f);
        }
    run_end(&r);

    /* PIL refuses what Image.fromarray cannot take */
    run_in(&r, state, "CenterCropImages", "images", img(2, 4, 5, 3, 1, 0), "width", cd_value_int(2), "height",
           cd_value_int(2), NULL);
    expect_failure(&r, "TypeError", "Cannot handle this data type: (1, 1, 5, 3), |u1");
    run_in(&r, state, "RandomCropImages", "images", img(1, 4, 5, 1, 1, 0), "width", cd_value_int(2), "height",
           cd_value_int(2), "seed", cd_value_int(0), NULL);
    expect_failure(&r, "TypeError", "Cannot handle this data type: (1, 1, 1), |u1");
}

/* ---- group nodes ---- */

/* The output list holds exactly `want` of `inputs` (same values, by reference). */
static void expect_order(const cd_value *out, cd_value *const *inputs, const size_t *want, size_t n) {
    assert_int_equal(cd_value_kind_of(out), CD_VALUE_LIST);
    assert_int_equal(cd_value_list_len(out), n);
    for (size_t i = 0; i < n; i++)
        if (cd_value_list_at(out, i) != inputs[want[i]]) fail_msg("item %zu is not input %zu", i, want[i]);
}

static void test_shuffles_and_merge(void **state) {
    run_t r;
    cd_value *ims[10];
    for (int i = 0; i < 10; i++) ims[i] = img(1, 1, 1, 3, 1, (unsigned)i);
    cd_value *all = cd_value_list_new(10);
    for (int i = 0; i < 10; i++) cd_value_list_push(all, cd_value_ref(ims[i]));

    /* np.random.seed(12345); np.random.permutation(10) */
    static const size_t perm12345[] = {0, 7, 3, 9, 6, 4, 1, 8, 5, 2};
    run_in(&r, state, "ShuffleDataset", "images", cd_value_ref(all), "seed", list_of(1, cd_value_int(12345)), NULL);
    expect_ok(&r);
    expect_order(r.call.outputs[0], ims, perm12345, 10);
    run_end(&r);

    /* seed 0 over 5: [2, 0, 1, 3, 4]; with texts alongside */
    cd_value *five = list_of(5, cd_value_ref(ims[0]), cd_value_ref(ims[1]), cd_value_ref(ims[2]), cd_value_ref(ims[3]),
                             cd_value_ref(ims[4]));
    cd_value *texts = list_of(5, cd_value_string("a"), cd_value_string("b"), cd_value_string("c"),
                              cd_value_string("d"), cd_value_string("e"));
    static const size_t perm0[] = {2, 0, 1, 3, 4};
    run_in(&r, state, "ShuffleImageTextDataset", "images", cd_value_ref(five), "texts", cd_value_ref(texts), "seed",
           list_of(1, cd_value_int(0)), NULL);
    expect_ok(&r);
    expect_order(r.call.outputs[0], ims, perm0, 5);
    const cd_value *tout = r.call.outputs[1];
    assert_int_equal(cd_value_list_len(tout), 5);
    const char *want_texts = "cabde";
    for (size_t i = 0; i < 5; i++) assert_true(cd_value_as_string(cd_value_list_at(tout, i))[0] == want_texts[i]);
    run_end(&r);

    /* seed 2^40 + 7 over 7: [4, 0, 1, 2, 6, 3, 5] */
    cd_value *seven = cd_value_list_new(7);
    for (int i = 0; i < 7; i++) cd_value_list_push(seven, cd_value_ref(ims[i]));
    static const size_t perm_big[] = {4, 0, 1, 2, 6, 3, 5};
    run_in(&r, state, "ShuffleDataset", "images", seven, "seed", list_of(1, cd_value_int(1099511627783LL)), NULL);
    expect_ok(&r);
    expect_order(r.call.outputs[0], ims, perm_big, 7);
    run_end(&r);

    /* fewer texts than images: texts[i] fails as in Python */
    run_in(&r, state, "ShuffleImageTextDataset", "images", cd_value_ref(five), "texts",
           list_of(2, cd_value_string("a"), cd_value_string("b")), "seed", list_of(1, cd_value_int(0)), NULL);
    expect_failure(&r, "IndexError", "list index out of range");

    /* a list of several seeds is not one seed */
    run_in(&r, state, "ShuffleDataset", "images", cd_value_ref(five), "seed",
           list_of(2, cd_value_int(1), cd_value_int(2)), NULL);
    expect_failure(&r, "TypeError", "seed: expected one value, got a list of 2");

    static const size_t same[] = {0, 1, 2, 3, 4};
    run_in(&r, state, "MergeImageLists", "images", cd_value_ref(five), NULL);
    expect_ok(&r);
    expect_order(r.call.outputs[0], ims, same, 5);
    run_end(&r);

    run_in(&r, state, "MergeImageLists", "images", list_of(1, cd_value_string("no")), NULL);
    expect_failure(&r, "ValueError", "images: expected an IMAGE tensor [B, H, W, C]");

    cd_value_unref(five);
    cd_value_unref(texts);
    cd_value_unref(all);
    for (int i = 0; i < 10; i++) cd_value_unref(ims[i]);
}

static void test_deduplication(void **state) {
    run_t r;
    /* Hash similarities (Pillow's 8x8 Lanczos, L, mean): 0~4 0.984375, 2~3 and 2~5 0.59375,
     * 1~2 0.546875, 0~2 0.515625, 2~4 0.53125; kept sets checked at the edges. Image 2 is LA,
     * image 1 RGBA (premultiplied resize), image 3 already 8x8 (no resize). */
    cd_value *ims[6] = {img(1, 11, 13, 3, 37, 11), img(1, 11, 13, 4, 53, 5), img(1, 20, 9, 2, 91, 17),
                        img(1, 8, 8, 3, 37, 11),   img(1, 11, 13, 3, 37, 12), img(1, 11, 13, 3, 41, 11)};
    static const struct {
        double threshold;
        size_t n;
        size_t keep[6];
    } cases[] = {{0.984375, 5, {0, 1, 2, 3, 5}}, {0.9844, 6, {0, 1, 2, 3, 4, 5}}, {0.53125, 4, {0, 1, 3, 5}},
                 {0.5, 3, {0, 1, 5}},             {0.45, 2, {0, 1}},              {0.0, 1, {0}}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cd_value *l = cd_value_list_new(6);
        for (int i = 0; i < 6; i++) cd_value_list_push(l, cd_value_ref(ims[i]));
        run_in(&r, state, "ImageDeduplication", "images", l, "similarity_threshold",
               list_of(1, cd_value_float(cases[k].threshold)), NULL);
        expect_ok(&r);
        expect_order(r.call.outputs[0], ims, cases[k].keep, cases[k].n);
        run_end(&r);
    }
    run_in(&r, state, "ImageDeduplication", "images", cd_value_list_new(0), "similarity_threshold",
           list_of(1, cd_value_float(0.95)), NULL);
    expect_ok(&r);
    assert_int_equal(cd_value_list_len(r.call.outputs[0]), 0);
    run_end(&r);
    run_in(&r, state, "ImageDeduplication", "images", list_of(1, img(2, 4, 4, 3, 1, 0)), "similarity_threshold",
           list_of(1, cd_value_float(0.95)), NULL);
    expect_failure(&r, "TypeError", "Cannot handle this data type: (1, 1, 4, 3), |u1");
    for (int i = 0; i < 6; i++) cd_value_unref(ims[i]);
}

static void test_grid(void **state) {
    run_t r;
    /* 2 columns of 4x3 cells, padding 1: a 7x5 RGBA shrunk, a 3x2 LA grown, a 3x3 RGB grown */
    static const unsigned char want[] = {
        128, 48,  67,  176, 197, 106, 62,  111, 176, 170, 94,  106, 0,   0,   0,   9,   9,   9,   36,  36,  36,
        155, 155, 155, 117, 117, 117, 171, 166, 72,  50,  103, 165, 143, 81,  96,  255, 255, 74,  0,   0,   0,
        34,  34,  34,  100, 100, 100, 186, 186, 186, 143, 143, 143, 33,  94,  157, 118, 60,  87,  195, 192, 115,
        58,  125, 189, 0,   0,   0,   51,  51,  51,  125, 125, 125, 206, 206, 206, 168, 168, 168, 0,   0,   0,
        0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
        0,   0,   0,   214, 243, 0,   89,  118, 41,  44,  73,  137, 128, 157, 180, 0,   0,   0,   0,   0,   0,
        0,   0,   0,   0,   0,   0,   0,   0,   0,   219, 248, 3,   94,  123, 46,  49,  78,  142, 133, 162, 185,
        0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   224, 253, 8,   99,  128, 51,
        54,  83,  147, 138, 167, 190, 0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0};
    run_in(&r, state, "ImageGrid", "images",
           list_of(3, img(1, 5, 7, 4, 53, 5), img(1, 2, 3, 2, 91, 17), img(1, 3, 3, 3, 29, 200)), "columns",
           list_of(1, cd_value_int(2)), "cell_width", list_of(1, cd_value_int(4)), "cell_height",
           list_of(1, cd_value_int(3)), "padding", list_of(1, cd_value_int(1)), NULL);
    expect_ok(&r);
    assert_int_equal(cd_value_kind_of(r.call.outputs[0]), CD_VALUE_TENSOR); /* one image, not a list */
    expect_dims(r.call.outputs[0], 1, 7, 9, 3);
    expect_bytes(r.call.outputs[0], want, sizeof want);
    run_end(&r);

    /* larger factors, both ways, with real alpha: RGBA 37x23 and 17x31, LA 29x19, into 40x33
     * cells; the grid's bytes summed, and summed weighted by position, as numpy gives them */
    run_in(&r, state, "ImageGrid", "images",
           list_of(3, img(1, 23, 37, 4, 53, 5), img(1, 19, 29, 2, 91, 17), img(1, 31, 17, 4, 7, 3)), "columns",
           list_of(1, cd_value_int(2)), "cell_width", list_of(1, cd_value_int(40)), "cell_height",
           list_of(1, cd_value_int(33)), "padding", list_of(1, cd_value_int(2)), NULL);
    expect_ok(&r);
    expect_dims(r.call.outputs[0], 1, 68, 82, 3);
    const float *d = cd_value_tensor_data(r.call.outputs[0]);
    uint64_t sum = 0;
    uint32_t weighted = 0;
    for (size_t i = 0; i < 68 * 82 * 3; i++) {
        unsigned v = (unsigned)(d[i] * 255.0f + 0.5f);
        assert_true((float)v / 255.0f == d[i]);
        sum += v;
        weighted += (uint32_t)(v * (i + 1));
    }
    assert_int_equal(sum, 1408406);
    assert_int_equal(weighted, 1576270626u);
    run_end(&r);

    run_in(&r, state, "ImageGrid", "images", cd_value_list_new(0), "columns", list_of(1, cd_value_int(2)),
           "cell_width", list_of(1, cd_value_int(32)), "cell_height", list_of(1, cd_value_int(32)), "padding",
           list_of(1, cd_value_int(0)), NULL);
    expect_failure(&r, "ValueError", "Cannot create grid from empty image list");
}

/* ---- folders ---- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A PNG of c channels with bytes (i * mul + add) % 256. */
static void write_png(const char *path, int64_t h, int64_t w, int64_t c, unsigned mul, unsigned add) {
    cd_value *t = img(1, h, w, c, mul, add);
    char err[256];
    /* values k / 255 round-trip through 255 * v truncated only where the product is exact; the
     * expected values below are read back from the file, so that does not matter here */
    assert_int_equal(cd_img_write_png(path, cd_value_tensor_data(t), h, w, c, NULL, 0, 6, err, sizeof err), CD_OK);
    cd_value_unref(t);
}

/* The 8-bit samples of a PNG file, read with libvips. */
static unsigned char *png_bytes(const char *path, int *h, int *w, int *bands) {
    VipsImage *im = vips_image_new_from_file(path, NULL);
    if (!im) fail_msg("cannot read %s", path);
    *h = vips_image_get_height(im);
    *w = vips_image_get_width(im);
    *bands = vips_image_get_bands(im);
    size_t size;
    unsigned char *px = vips_image_write_to_memory(im, &size);
    g_object_unref(im);
    return px;
}

static void make_tree(fixture *f) {
    char p[512], q[512];
    const char *dirs[] = {"3d", "a", "a/b", "t", "t/3_sub", "empty"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", f->input, dirs[i]);
        mkdir(p, 0755);
    }
    snprintf(p, sizeof p, "%s/outside", f->root);
    mkdir(p, 0755);
    snprintf(q, sizeof q, "%s/link", f->input);
    symlink(p, q); /* a symlinked folder: not offered, not loaded */
    snprintf(p, sizeof p, "%s/outside/secret.png", f->root);
    write_png(p, 1, 1, 3, 1, 0);
    snprintf(p, sizeof p, "%s/x.png", f->input);
    write_png(p, 1, 1, 3, 1, 0);
    snprintf(p, sizeof p, "%s/a/2.png", f->input);
    write_png(p, 1, 2, 3, 37, 11); /* RGB */
    snprintf(p, sizeof p, "%s/a/1.PNG", f->input);
    write_png(p, 2, 1, 4, 53, 5); /* RGBA: alpha dropped */
    snprintf(p, sizeof p, "%s/a/notes.txt", f->input);
    write_file(p, "not an image");
    snprintf(p, sizeof p, "%s/a/b/g.png", f->input);
    write_png(p, 1, 2, 1, 91, 17); /* grey: spread to RGB */
    snprintf(p, sizeof p, "%s/t/img1.png", f->input);
    write_png(p, 1, 1, 3, 1, 10);
    snprintf(p, sizeof p, "%s/t/img1.txt", f->input);
    write_file(p, " \t hello\r\nworld\r \n");
    snprintf(p, sizeof p, "%s/t/img2.png", f->input);
    write_png(p, 1, 1, 3, 1, 20);
    snprintf(p, sizeof p, "%s/t/3_sub/s.png", f->input);
    write_png(p, 1, 1, 3, 1, 30);
    snprintf(p, sizeof p, "%s/t/3_sub/s.txt", f->input);
    write_file(p, "sub caption");
    snprintf(p, sizeof p, "%s/t/dup.png.png", f->input);
    write_png(p, 1, 1, 3, 1, 40);
    snprintf(p, sizeof p, "%s/t/dup.txt.txt", f->input); /* str.replace replaces every ".png" */
    write_file(p, "double");
    snprintf(p, sizeof p, "%s/t/0_none", f->input); /* zero repeats */
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/t/0_none/z.png", f->input);
    write_png(p, 1, 1, 3, 1, 50);
    /* a JPEG whose EXIF says "rotate 90": the dataset loaders do not apply it (no exif_transpose) */
    cd_value *t = img(1, 2, 3, 3, 37, 11);
    VipsImage *im = cd_img_to_vips(t, 0), *u8 = NULL;
    assert_non_null(im);
    assert_int_equal(vips_linear1(im, &u8, 255.0, 0.0, "uchar", TRUE, NULL), 0);
    vips_image_set_int(u8, VIPS_META_ORIENTATION, 6);
    snprintf(p, sizeof p, "%s/a/b/r.jpg", f->input);
    assert_int_equal(vips_jpegsave(u8, p, NULL), 0);
    g_object_unref(u8);
    VipsImage *back = vips_image_new_from_file(p, NULL);
    assert_non_null(back);
    assert_int_equal(vips_image_get_orientation(back), 6); /* the tag is there to be ignored */
    g_object_unref(back);
    g_object_unref(im);
    cd_value_unref(t);
    /* 16-bit grey, as Pillow 9 reads it: min(255, int(v * (1 / 255))) */
    static const unsigned short grey16[6] = {0, 255, 256, 1000, 32768, 65535};
    VipsImage *g16 = vips_image_new_from_memory_copy(grey16, sizeof grey16, 6, 1, 1, VIPS_FORMAT_USHORT);
    snprintf(p, sizeof p, "%s/a/b/s16.png", f->input);
    assert_int_equal(vips_pngsave(g16, p, "bitdepth", 16, NULL), 0);
    g_object_unref(g16);
    snprintf(p, sizeof p, "%s/t/readme.md", f->input);
    write_file(p, "skip me");
}

static void test_folder_combo(void **state) {
    fixture *f = fix_of(state);
    make_tree(f);
    cd_registry *reg = reg_of(state);
    json_t *dynamic = cd_registry_dynamic_combos(reg, &f->env);
    const char *names[] = {"LoadImageDataSetFromFolder", "LoadImageTextDataSetFromFolder"};
    for (int k = 0; k < 2; k++) {
        const cd_node_type *t = cd_registry_get(reg, names[k]);
        json_t *info = cd_node_type_info(t, dynamic);
        json_t *decl = json_object_get(json_object_get(json_object_get(info, "input"), "required"), "folder");
        /* V3 combo: the list goes into the options, the type stays "COMBO" */
        assert_string_equal(json_string_value(json_array_get(decl, 0)), "COMBO");
        char *options = json_dumps(json_object_get(json_array_get(decl, 1), "options"), JSON_COMPACT);
        assert_string_equal(options, "[\"3d\",\"a\",\"a/b\",\"empty\",\"t\",\"t/0_none\",\"t/3_sub\"]");
        free(options);
        assert_string_equal(json_string_value(json_object_get(json_array_get(decl, 1), "tooltip")),
                            "The folder to load images from.");
        json_decref(info);

        /* validation: listed folders only */
        const char *good[] = {"a", "a/b", "t/3_sub"};
        const char *bad[] = {"../input", "link", "a/../a", "/tmp", "x.png", "nope", "a/", ""};
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
            char *msg;
            json_t *c = json_pack("{s:s}", "folder", good[i]);
            if (cd_call_run_validate(t, &f->env, c, NULL, &msg) != CD_OK) fail_msg("%s refused: %s", good[i], msg);
            json_decref(c);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char *msg = NULL;
            json_t *c = json_pack("{s:s}", "folder", bad[i]);
            if (cd_call_run_validate(t, &f->env, c, NULL, &msg) == CD_OK) fail_msg("%s accepted", bad[i]);
            assert_non_null(strstr(msg, "is not a folder of the input directory"));
            free(msg);
            json_decref(c);
        }
    }
    json_decref(dynamic);
}

static void test_load_folder(void **state) {
    run_t r;
    run_in(&r, state, "LoadImageDataSetFromFolder", "folder", cd_value_string("a"), NULL);
    expect_ok(&r);
    const cd_value *out = r.call.outputs[0];
    assert_int_equal(cd_value_list_len(out), 2); /* 1.PNG then 2.png; notes.txt and b/ skipped */
    /* 1.PNG: RGBA 2x1 written from bytes (i * 53 + 5) % 256 (through to_u8); alpha dropped */
    const cd_value *a = cd_value_list_at(out, 0), *b = cd_value_list_at(out, 1);
    expect_dims(a, 1, 2, 1, 3);
    expect_dims(b, 1, 1, 2, 3);
    char path[512];
    int h, w, bands;
    snprintf(path, sizeof path, "%s/a/1.PNG", fix_of(state)->input);
    unsigned char *px = png_bytes(path, &h, &w, &bands);
    assert_int_equal(bands, 4);
    unsigned char want[6] = {px[0], px[1], px[2], px[4], px[5], px[6]};
    g_free(px);
    expect_bytes(a, want, 6);
    run_end(&r);

    run_in(&r, state, "LoadImageDataSetFromFolder", "folder", cd_value_string("a/b"), NULL);
    expect_ok(&r);
    assert_int_equal(cd_value_list_len(r.call.outputs[0]), 3);
    expect_dims(cd_value_list_at(r.call.outputs[0], 1), 1, 2, 3, 3); /* r.jpg, not rotated */
    static const unsigned char grey16[18] = {0, 0, 0, 1, 1, 1, 1, 1, 1, 3, 3, 3, 128, 128, 128, 255, 255, 255};
    expect_bytes(cd_value_list_at(r.call.outputs[0], 2), grey16, 18); /* s16.png */
    const cd_value *g = cd_value_list_at(r.call.outputs[0], 0);
    expect_dims(g, 1, 1, 2, 3);
    const float *d = cd_value_tensor_data(g);
    assert_true(d[0] == d[1] && d[1] == d[2] && d[3] == d[4] && d[0] != d[3]);
    run_end(&r);

    run_in(&r, state, "LoadImageDataSetFromFolder", "folder", cd_value_string("empty"), NULL);
    expect_failure(&r, "ValueError", "No valid images found in input");
    run_in(&r, state, "LoadImageDataSetFromFolder", "folder", cd_value_string("../outside"), NULL);
    expect_failure(&r, "FileNotFoundError", NULL);
    run_in(&r, state, "LoadImageDataSetFromFolder", "folder", cd_value_string("link"), NULL);
    expect_failure(&r, "FileNotFoundError", NULL);
}

static void test_load_image_text_folder(void **state) {
    run_t r;
    run_in(&r, state, "LoadImageTextDataSetFromFolder", "folder", cd_value_string("t"), NULL);
    expect_ok(&r);
    const cd_value *images = r.call.outputs[0], *texts = r.call.outputs[1];
    /* sorted: 0_none/ (no repeat), 3_sub/ (three times: its images repeated), dup.png.png,
     * img1.png, img2.png; readme.md skipped */
    const char *want[] = {"sub caption", "sub caption", "sub caption", "double", "hello\nworld", ""};
    const unsigned first_byte[] = {30, 30, 30, 40, 10, 20};
    assert_int_equal(cd_value_list_len(images), 6);
    assert_int_equal(cd_value_list_len(texts), 6);
    for (int i = 0; i < 6; i++) {
        assert_string_equal(cd_value_as_string(cd_value_list_at(texts, i)), want[i]);
        const cd_value *im = cd_value_list_at(images, i);
        expect_dims(im, 1, 1, 1, 3);
        /* written from k / 255, which 255 * v gives back as k */
        assert_true(cd_value_tensor_data(im)[0] == (float)first_byte[i] / 255.0f);
    }
    run_end(&r);
}

static void test_save_folder(void **state) {
    fixture *f = fix_of(state);
    run_t r;
    cd_value *rgb = img(1, 2, 3, 3, 37, 11), *rgba = img(1, 1, 2, 4, 53, 5);
    run_in(&r, state, "SaveImageTextDataSetToFolder", "images", list_of(2, cd_value_ref(rgb), cd_value_ref(rgba)),
           "texts", list_of(3, cd_value_string("one"), cd_value_string("two\nlines"), cd_value_string("extra")),
           "folder_name", list_of(1, cd_value_string("ds/sub")), "filename_prefix", list_of(1, cd_value_string("pic")),
           NULL);
    expect_ok(&r);
    assert_null(r.call.ui);
    run_end(&r);
    char path[512];
    int h, w, bands;
    snprintf(path, sizeof path, "%s/ds/sub/pic_00000.png", f->output);
    unsigned char *px = png_bytes(path, &h, &w, &bands);
    assert_int_equal(h, 2);
    assert_int_equal(w, 3);
    assert_int_equal(bands, 3);
    const float *d = cd_value_tensor_data(rgb);
    for (int i = 0; i < 18; i++) {
        float t = d[i] * 255.0f; /* np.clip(x * 255.0, 0, 255).astype(np.uint8) */
        assert_int_equal(px[i], (unsigned char)(t < 0 ? 0 : t > 255 ? 255 : t));
    }
    g_free(px);
    snprintf(path, sizeof path, "%s/ds/sub/pic_00001.png", f->output);
    px = png_bytes(path, &h, &w, &bands);
    assert_int_equal(bands, 4);
    g_free(px);
    gchar *text = NULL;
    snprintf(path, sizeof path, "%s/ds/sub/pic_00001.txt", f->output);
    assert_true(g_file_get_contents(path, &text, NULL, NULL));
    assert_string_equal(text, "two\nlines");
    g_free(text);
    snprintf(path, sizeof path, "%s/ds/sub/pic_00002.txt", f->output);
    assert_int_not_equal(access(path, F_OK), 0); /* zip() stops at the images */

    /* the image-only node overwrites the same names */
    run_in(&r, state, "SaveImageDataSetToFolder", "images", list_of(1, cd_value_ref(rgba)), "folder_name",
           list_of(1, cd_value_string("ds/sub")), "filename_prefix", list_of(1, cd_value_string("pic")), NULL);
    expect_ok(&r);
    run_end(&r);
    snprintf(path, sizeof path, "%s/ds/sub/pic_00000.png", f->output);
    px = png_bytes(path, &h, &w, &bands);
    assert_int_equal(bands, 4);
    g_free(px);

    /* confined to output/ */
    const char *escapes[] = {"../escaped", "/tmp/cd-dataset-abs", "a/../../escaped"};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        run_in(&r, state, "SaveImageDataSetToFolder", "images", list_of(1, cd_value_ref(rgb)), "folder_name",
               list_of(1, cd_value_string(escapes[i])), "filename_prefix", list_of(1, cd_value_string("x")), NULL);
        expect_failure(&r, "ValueError", NULL);
    }
    run_in(&r, state, "SaveImageDataSetToFolder", "images", list_of(1, cd_value_ref(rgb)), "folder_name",
           list_of(1, cd_value_string("ok")), "filename_prefix", list_of(1, cd_value_string("../../escaped")), NULL);
    expect_failure(&r, "ValueError", NULL);
    snprintf(path, sizeof path, "%s/escaped", f->root);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_not_equal(access("/tmp/cd-dataset-abs", F_OK), 0);
    snprintf(path, sizeof path, "%s/escaped_00000.png", f->root);
    assert_int_not_equal(access(path, F_OK), 0);

    /* what Image.fromarray and f.write refuse */
    run_in(&r, state, "SaveImageDataSetToFolder", "images", list_of(1, img(2, 2, 2, 3, 1, 0)), "folder_name",
           list_of(1, cd_value_string("ds")), "filename_prefix", list_of(1, cd_value_string("b")), NULL);
    expect_failure(&r, "TypeError", "Cannot handle this data type: (1, 1, 2, 3), |u1");
    run_in(&r, state, "SaveImageTextDataSetToFolder", "images", list_of(1, cd_value_ref(rgb)), "texts",
           list_of(1, list_of(1, cd_value_string("wrapped"))), "folder_name", list_of(1, cd_value_string("ds")),
           "filename_prefix", list_of(1, cd_value_string("w")), NULL);
    expect_failure(&r, "TypeError", "write() argument must be str, not list");
    cd_value_unref(rgb);
    cd_value_unref(rgba);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adjust_and_normalize), cmocka_unit_test(test_crops),
        cmocka_unit_test(test_shuffles_and_merge),   cmocka_unit_test(test_deduplication),
        cmocka_unit_test(test_grid),                 cmocka_unit_test(test_folder_combo),
        cmocka_unit_test(test_load_folder),          cmocka_unit_test(test_load_image_text_folder),
        cmocka_unit_test(test_save_folder),
    };
    return cmocka_run_group_tests(tests, setup, teardown_all);
}
