/* The batch nodes: ImageBatch (nodes.py), BatchImagesNode (nodes_post_processing),
 * ImageFromBatch and RepeatImageBatch (nodes_images), RebatchImages (nodes_rebatch).
 *
 * Batching images of different sizes follows ComfyUI: a missing alpha channel is added as 1.0,
 * then every image is resized to the first one's size with common_upscale(bilinear, center). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"
#include "nodes/image/resample.h"

/* `img` made to match the first image of a batch: one more channel of 1.0 when it has fewer
 * channels than `c` (torch.nn.functional.pad(image, (0, 1), value=1.0)), then resized to (h, w)
 * when its size differs. Returns a new reference, or NULL after cd_call_fail. */
static cd_value *conform(cd_node_call *call, const cd_value *img, int64_t h, int64_t w, int64_t c) {
    cd_img_shape s;
    if (!cd_img_shape_of(call, "image", img, &s)) return NULL;
    cd_value *padded = NULL;
    if (s.c < c) {
        padded = cd_img_new(call, s.b, s.h, s.w, s.c + 1);
        if (!padded) return NULL;
        const float *src = cd_value_tensor_data(img);
        float *d = cd_value_tensor_data_mut(padded);
        for (size_t i = 0, n = (size_t)(s.b * s.h * s.w); i < n; i++) {
            memcpy(d + i * (size_t)(s.c + 1), src + i * (size_t)s.c, (size_t)s.c * sizeof(float));
            d[i * (size_t)(s.c + 1) + (size_t)s.c] = 1.0f;
        }
        img = padded;
        s.c++;
    }
    if (s.h == h && s.w == w && s.c == c) return padded ? padded : cd_value_ref(img);
    if (s.c != c) {
        cd_value_unref(padded);
        cd_call_fail(call, "RuntimeError", "Sizes of tensors must match except in dimension 0: %lld and %lld channels",
                     (long long)c, (long long)s.c);
        return NULL;
    }
    cd_value *out = cd_img_upscale(call, img, w, h, "bilinear", "center");
    cd_value_unref(padded);
    return out;
}

/* batch_images: all of `imgs` in one batch, in order. */
static int batch_list(cd_node_call *call, const cd_value **imgs, size_t n) {
    if (n == 0) return cd_call_fail(call, "ValueError", "no images to batch");
    int64_t c = 0;
    cd_img_shape s0;
    for (size_t i = 0; i < n; i++) {
        cd_img_shape s;
        if (!cd_img_shape_of(call, "image", imgs[i], &s)) return CD_ERROR;
        if (s.c > c) c = s.c;
        if (i == 0) s0 = s;
    }
    cd_value **parts = calloc(n, sizeof *parts);
    if (!parts) return cd_call_fail(call, "MemoryError", "out of memory");
    /* the first image sets the size (after its own alpha padding) */
    for (size_t i = 0; i < n; i++) {
        parts[i] = conform(call, imgs[i], s0.h, s0.w, c);
        if (!parts[i]) {
            for (size_t k = 0; k < i; k++) cd_value_unref(parts[k]);
            free(parts);
            return CD_ERROR;
        }
    }
    cd_value *out = cd_img_cat(call, parts, n);
    free(parts);
    return out ? cd_call_set_output(call, 0, out) : CD_ERROR;
}

static int image_batch(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *imgs[2] = {cd_img_input(call, "image1", &s), NULL};
    if (!imgs[0] || !(imgs[1] = cd_img_input(call, "image2", &s))) return CD_ERROR;
    return batch_list(call, imgs, 2);
}

/* Autogrow inputs "images.image0", "images.image1", ... (or bare "image0"...), in index order. */
static int autogrow_index(const char *name) {
    if (!strncmp(name, "images.", 7)) name += 7;
    if (strncmp(name, "image", 5) || !name[5]) return -1;
    int k = 0;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9' || k > 1000) return -1;
        k = k * 10 + (*p - '0');
    }
    return k;
}

static int batch_images_node(cd_node_call *call) {
    const cd_value *slots[100] = {0};
    size_t n = 0;
    for (size_t i = 0; i < cd_call_input_count(call); i++) {
        const char *name = cd_call_input_name_at(call, i);
        int k = autogrow_index(name);
        const cd_value *v = cd_call_input(call, name);
        if (k < 0 || k >= 100 || !v || cd_value_kind_of(v) == CD_VALUE_NONE) continue;
        slots[k] = v;
    }
    const cd_value *imgs[100];
    for (int k = 0; k < 100; k++)
        if (slots[k]) imgs[n++] = slots[k];
    if (n == 0) return cd_call_fail(call, "ValueError", "images: no image connected");
    return batch_list(call, imgs, n);
}

static int image_from_batch(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    int64_t idx = cd_call_int(call, "batch_index", 0), len = cd_call_int(call, "length", 1);
    idx = idx < s.b - 1 ? idx : s.b - 1;
    idx = idx < 0 ? 0 : idx;
    len = len < s.b - idx ? len : s.b - idx;
    len = len < 0 ? 0 : len;
    int64_t shape[4] = {len, s.h, s.w, s.c};
    /* a view: the slice shares the batch's pixels, which nobody writes once shared */
    cd_value *out = cd_value_tensor_view(img, "IMAGE", 4, shape, (size_t)(idx * s.h * s.w * s.c));
    if (!out) return cd_call_fail(call, "MemoryError", "out of memory");
    return cd_call_set_output(call, 0, out);
}

static int repeat_image_batch(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    int64_t amount = cd_call_int(call, "amount", 1);
    if (amount < 1) return cd_call_fail(call, "ValueError", "amount must be at least 1");
    if (amount == 1) return cd_call_set_output(call, 0, cd_value_ref(img));
    cd_value *out = cd_img_new(call, s.b * amount, s.h, s.w, s.c);
    if (!out) return CD_ERROR;
    size_t n = cd_value_tensor_numel(img);
    float *d = cd_value_tensor_data_mut(out);
    for (int64_t k = 0; k < amount; k++) memcpy(d + n * (size_t)k, cd_value_tensor_data(img), n * sizeof(float));
    return cd_call_set_output(call, 0, out);
}

/* INPUT_IS_LIST: every image of every batch of the list, regrouped batch_size at a time. */
static int rebatch_images(cd_node_call *call) {
    const cd_value *images = cd_call_input(call, "images");
    const cd_value *bs = cd_call_input(call, "batch_size");
    if (cd_value_kind_of(bs) == CD_VALUE_LIST) bs = cd_value_list_len(bs) ? cd_value_list_at(bs, 0) : NULL;
    int64_t batch = bs ? cd_value_as_int(bs) : 1;
    if (batch < 1) return cd_call_fail(call, "ValueError", "batch_size must be at least 1");
    if (!images) return cd_call_fail(call, "ValueError", "images is missing");
    size_t n_in = cd_value_kind_of(images) == CD_VALUE_LIST ? cd_value_list_len(images) : 1;
    size_t total = 0;
    for (size_t i = 0; i < n_in; i++) {
        const cd_value *v = cd_value_kind_of(images) == CD_VALUE_LIST ? cd_value_list_at(images, i) : images;
        cd_img_shape s;
        if (!cd_img_shape_of(call, "images", v, &s)) return CD_ERROR;
        total += (size_t)s.b;
    }
    cd_value *list = cd_value_list_new((total + (size_t)batch - 1) / (size_t)batch);
    cd_value **chunk = calloc((size_t)batch < total ? (size_t)batch : total + 1, sizeof *chunk);
    if (!list || !chunk) {
        cd_value_unref(list);
        free(chunk);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    size_t filled = 0;
    int rc = CD_OK;
    for (size_t i = 0; i < n_in && rc == CD_OK; i++) {
        const cd_value *v = cd_value_kind_of(images) == CD_VALUE_LIST ? cd_value_list_at(images, i) : images;
        cd_img_shape s;
        cd_img_shape_of(NULL, NULL, v, &s);
        int64_t shape[4] = {1, s.h, s.w, s.c};
        for (int64_t b = 0; b < s.b && rc == CD_OK; b++) {
            chunk[filled] = cd_value_tensor_view(v, "IMAGE", 4, shape, (size_t)(b * s.h * s.w * s.c));
            if (!chunk[filled]) {
                rc = cd_call_fail(call, "MemoryError", "out of memory");
                break;
            }
            if (++filled == (size_t)batch) {
                cd_value *cat = cd_img_cat(call, chunk, filled);
                filled = 0;
                if (!cat || cd_value_list_push(list, cat) != CD_OK) rc = CD_ERROR;
            }
        }
    }
    if (rc == CD_OK && filled) {
        cd_value *cat = cd_img_cat(call, chunk, filled);
        filled = 0;
        if (!cat || cd_value_list_push(list, cat) != CD_OK) rc = CD_ERROR;
    }
    for (size_t k = 0; k < filled; k++) cd_value_unref(chunk[k]);
    free(chunk);
    if (rc != CD_OK) {
        cd_value_unref(list);
        return rc;
    }
    return cd_call_set_output(call, 0, list);
}

static const cd_output_def image_out[] = {{"IMAGE", NULL, 0, NULL, NULL}};
static const cd_output_def image_list_out[] = {{"IMAGE", NULL, 1, NULL, NULL}};

#define DEF(...) {.abi_version = CD_NODE_ABI_VERSION, __VA_ARGS__}

static const cd_node_def defs[] = {
    DEF(.name = "ImageBatch", .display_name = "Batch Images", .category = "image", .python_module = "nodes",
        .inputs = "{\"required\": {\"image1\": [\"IMAGE\"], \"image2\": [\"IMAGE\"]}}", .outputs = image_out,
        .n_outputs = 1, .flags = CD_NODE_DEPRECATED, .execute = image_batch),
    DEF(.name = "BatchImagesNode", .display_name = "Batch Images", .category = "image",
        .python_module = "comfy_extras.nodes_post_processing",
        .inputs = "{\"required\": {\"images\": [\"COMFY_AUTOGROW_V3\", {\"template\": {\"input\": {\"required\": "
                  "{\"image\": [\"IMAGE\", {}]}}, \"prefix\": \"image\", \"min\": 2, \"max\": 50}}]}}",
        .outputs = image_out, .n_outputs = 1, .flags = CD_NODE_V3_INFO, .execute = batch_images_node),
    DEF(.name = "ImageFromBatch", .category = "image/batch", .python_module = "comfy_extras.nodes_images",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}], \"batch_index\": [\"INT\", {\"default\": 0, \"min\": 0, "
                  "\"max\": 4095}], \"length\": [\"INT\", {\"default\": 1, \"min\": 1, \"max\": 4096}]}}",
        .outputs = image_out, .n_outputs = 1, .flags = CD_NODE_V3_INFO, .execute = image_from_batch),
    DEF(.name = "RebatchImages", .display_name = "Rebatch Images", .category = "image/batch",
        .python_module = "comfy_extras.nodes_rebatch",
        .inputs = "{\"required\": {\"images\": [\"IMAGE\", {}], \"batch_size\": [\"INT\", {\"default\": 1, \"min\": 1, "
                  "\"max\": 4096}]}}",
        .outputs = image_list_out, .n_outputs = 1, .flags = CD_NODE_V3_INFO | CD_NODE_INPUT_IS_LIST,
        .execute = rebatch_images),
    DEF(.name = "RepeatImageBatch", .category = "image/batch", .python_module = "comfy_extras.nodes_images",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}], \"amount\": [\"INT\", {\"default\": 1, \"min\": 1, "
                  "\"max\": 4096}]}}",
        .outputs = image_out, .n_outputs = 1, .flags = CD_NODE_V3_INFO, .execute = repeat_image_batch),
};

int cd_nodes_image_batch_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
