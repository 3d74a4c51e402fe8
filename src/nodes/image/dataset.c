/* The image nodes of comfy_extras.nodes_dataset (category dataset/image): AdjustBrightness,
 * AdjustContrast, NormalizeImages, CenterCropImages, RandomCropImages, ShuffleDataset,
 * ShuffleImageTextDataset, MergeImageLists, ImageDeduplication and ImageGrid. The folder nodes of
 * the same module are in dataset_files.c.
 *
 * How ComfyUI declares them (ImageProcessingNode), and what follows here:
 *  - A node with _process takes one IMAGE per call (the engine maps it over lists) and its
 *    output is not a list; execute() returns `NodeOutput(result)`, the tensor itself. A node
 *    with _group_process is INPUT_IS_LIST and its output is a list (ImageGrid's is not).
 *    Parameters of a group node arrive as lists and one-element lists are unwrapped.
 *  - The arithmetic nodes are torch expressions on float32 with a Python float, which torch
 *    rounds to float32 first: computed here in float32 the same way, so results are exact.
 *  - The crop, grid and hashing nodes go through PIL: tensor_to_pil() is
 *    uint8(clip(x * 255, 0, 255)) of image [0] of a one-image batch (Image.fromarray refuses
 *    anything else, and so do we, with its message), pil_to_tensor() is u8 / 255 in float32.
 *    Resizing is Pillow's Lanczos resampler (libImaging/Resample.c's fixed-point two-pass
 *    algorithm), reimplemented once for the image pack in resample.c (cd_img_pil_resize), with
 *    Pillow's premultiplied alpha for RGBA and LA: libvips' lanczos3 uses other kernels and
 *    rounding, so it would not give Pillow's pixels.
 *  - The seeded nodes call np.random.seed(seed % (2**32 - 1)) and draw from numpy's legacy
 *    RandomState, whose generator (MT19937 seeded by init_genrand) and bounded draws (masked
 *    rejection) are reproduced below: the same seed gives the same crops and permutations as
 *    ComfyUI. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"
#include "nodes/image/resample.h"

#define MODULE "comfy_extras.nodes_dataset"

int cd_nodes_image_dataset_files_init(cd_pack *pack);

/* ---- parameters ---- */

/* A group node's parameter: `params[k] = v[0]` for one-element lists. A longer list reaches
 * the Python code as a list, which its arithmetic refuses; so do we. */
static const cd_value *group_param(cd_node_call *call, const char *name) {
    const cd_value *v = cd_call_input(call, name);
    if (!v) {
        cd_call_fail(call, "TypeError", "missing required argument: '%s'", name);
        return NULL;
    }
    if (cd_value_kind_of(v) != CD_VALUE_LIST) return v;
    if (cd_value_list_len(v) == 1) return cd_value_list_at(v, 0);
    cd_call_fail(call, "TypeError", "%s: expected one value, got a list of %zu", name, cd_value_list_len(v));
    return NULL;
}

/* The "images" list of a group node, every item an IMAGE tensor; NULL after cd_call_fail. */
static const cd_value *image_list(cd_node_call *call, const char *name) {
    const cd_value *v = cd_call_input(call, name);
    if (!v) {
        cd_call_fail(call, "TypeError", "missing required argument: '%s'", name);
        return NULL;
    }
    if (cd_value_kind_of(v) != CD_VALUE_LIST) {
        cd_call_fail(call, "TypeError", "%s: expected a list of images", name);
        return NULL;
    }
    for (size_t i = 0; i < cd_value_list_len(v); i++) {
        cd_img_shape s;
        if (!cd_img_shape_of(call, name, cd_value_list_at(v, i), &s)) return NULL;
    }
    return v;
}

/* numpy's seed % (2**32 - 1), Python's modulo (never negative). */
static uint32_t np_seed(int64_t seed) {
    int64_t m = seed % 4294967295LL;
    if (m < 0) m += 4294967295LL;
    return (uint32_t)m;
}

/* ---- numpy's legacy RandomState ---- */

typedef struct {
    uint32_t key[624];
    int pos;
} mt19937;

static void mt_seed(mt19937 *mt, uint32_t seed) {
    for (int i = 0; i < 624; i++) {
        mt->key[i] = seed;
        seed = 1812433253u * (seed ^ (seed >> 30)) + (uint32_t)i + 1u;
    }
    mt->pos = 624;
}

static uint32_t mt_next32(mt19937 *mt) {
    if (mt->pos == 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (mt->key[i] & 0x80000000u) | (mt->key[(i + 1) % 624] & 0x7fffffffu);
            mt->key[i] = mt->key[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        mt->pos = 0;
    }
    uint32_t y = mt->key[mt->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* A value in [0, max]: the smallest all-ones mask >= max, and draws until one fits. This is
 * both random_interval (shuffle) and randint's masked bounded draw for ranges below 2^32. */
static uint32_t mt_interval(mt19937 *mt, uint32_t max) {
    if (max == 0) return 0;
    uint32_t mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    uint32_t v;
    while ((v = mt_next32(mt) & mask) > max) {
    }
    return v;
}

/* np.random.permutation(n) after np.random.seed(seed): the Fisher-Yates walk of
 * RandomState.shuffle over arange(n). */
static size_t *np_permutation(int64_t seed, size_t n) {
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx) return NULL;
    for (size_t i = 0; i < n; i++) idx[i] = i;
    mt19937 *mt = malloc(sizeof *mt);
    if (!mt) {
        free(idx);
        return NULL;
    }
    mt_seed(mt, np_seed(seed));
    for (size_t i = n; i-- > 1;) {
        size_t j = mt_interval(mt, (uint32_t)i);
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    free(mt);
    return idx;
}

/* ---- PIL images ---- */

typedef struct {
    int64_t w, h, c; /* c: 2 (LA), 3 (RGB) or 4 (RGBA) */
    uint8_t *px;     /* interleaved, row-major */
} pil_img;

static uint8_t to_u8(float v) {
    /* (x * 255).clip(0, 255).astype(np.uint8): float32 product, truncated; NaN gives 0 */
    float t = v * 255.0f;
    if (!(t > 0.0f)) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

/* tensor_to_pil(): Image.fromarray of the squeezed one-image batch. */
static bool to_pil(cd_node_call *call, const cd_value *t, pil_img *out) {
    cd_img_shape s;
    out->px = NULL;
    if (!cd_img_shape_of(call, "images", t, &s)) return false;
    if (s.b != 1) {
        cd_call_fail(call, "TypeError", "Cannot handle this data type: (1, 1, %lld, %lld), |u1", (long long)s.w,
                     (long long)s.c);
        return false;
    }
    if (s.c < 2 || s.c > 4) {
        cd_call_fail(call, "TypeError", "Cannot handle this data type: (1, 1, %lld), |u1", (long long)s.c);
        return false;
    }
    size_t n = cd_value_tensor_numel(t);
    out->px = malloc(n ? n : 1);
    if (!out->px) {
        cd_call_fail(call, "MemoryError", "out of memory");
        return false;
    }
    const float *d = cd_value_tensor_data(t);
    for (size_t i = 0; i < n; i++) out->px[i] = to_u8(d[i]);
    out->w = s.w;
    out->h = s.h;
    out->c = s.c;
    return true;
}

/* pil_to_tensor(): [1, H, W, C] of u8 / 255. */
static cd_value *from_pil(cd_node_call *call, const pil_img *im) {
    cd_value *v = cd_img_new(call, 1, im->h, im->w, im->c);
    if (!v) return NULL;
    float *d = cd_value_tensor_data_mut(v);
    for (size_t i = 0, n = (size_t)(im->w * im->h * im->c); i < n; i++) d[i] = (float)im->px[i] / 255.0f;
    return v;
}

/* Image.crop((left, top, right, bottom)) inside the image. */
static bool pil_crop(const pil_img *in, int64_t left, int64_t top, int64_t right, int64_t bottom, pil_img *out) {
    out->w = right - left;
    out->h = bottom - top;
    out->c = in->c;
    size_t row = (size_t)(out->w * out->c);
    out->px = malloc(row * (size_t)out->h + 1);
    if (!out->px) return false;
    for (int64_t y = 0; y < out->h; y++)
        memcpy(out->px + (size_t)y * row, in->px + ((size_t)(top + y) * (size_t)in->w + (size_t)left) * (size_t)in->c,
               row);
    return true;
}

/* Image.resize((w, h), LANCZOS) into a new image: Pillow's resampler is resample.h's. */
static bool pil_resize(const pil_img *in, int64_t w, int64_t h, pil_img *out) {
    out->w = w;
    out->h = h;
    out->c = in->c;
    out->px = malloc((size_t)(w * h * in->c) + 1);
    if (out->px && !cd_img_pil_resize(in->px, (int)in->w, (int)in->h, (int)in->c, out->px, (int)w, (int)h))
        return true;
    free(out->px);
    out->px = NULL;
    return false;
}

/* ---- per-image nodes ---- */

static int adjust(cd_node_call *call, int kind) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "images", &s);
    if (!in) return CD_ERROR;
    cd_value *out = cd_img_new(call, s.b, s.h, s.w, s.c);
    if (!out) return CD_ERROR;
    const float *x = cd_value_tensor_data(in);
    float *d = cd_value_tensor_data_mut(out);
    size_t n = cd_value_tensor_numel(in);
    if (kind == 2) {
        /* (image - mean) / std */
        float mean = (float)cd_call_float(call, "mean", 0.5), std = (float)cd_call_float(call, "std", 0.5);
        for (size_t i = 0; i < n; i++) d[i] = (x[i] - mean) / std;
    } else {
        /* brightness: (image * factor).clamp(0, 1); contrast: ((image - 0.5) * factor + 0.5).clamp(0, 1).
         * clamp keeps NaN, as torch's does. */
        float f = (float)cd_call_float(call, "factor", 1.0);
        for (size_t i = 0; i < n; i++) {
            float v = kind == 0 ? x[i] * f : (x[i] - 0.5f) * f + 0.5f;
            d[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    }
    return cd_call_set_output(call, 0, out);
}

static int adjust_brightness(cd_node_call *call) { return adjust(call, 0); }
static int adjust_contrast(cd_node_call *call) { return adjust(call, 1); }
static int normalize_images(cd_node_call *call) { return adjust(call, 2); }

/* The crop box of CenterCropImages / RandomCropImages, applied through PIL. */
static int crop(cd_node_call *call, bool random) {
    const cd_value *in = cd_call_input(call, "images");
    if (!in) return cd_call_fail(call, "TypeError", "missing required argument: 'images'");
    int64_t width = cd_call_int(call, "width", 512), height = cd_call_int(call, "height", 512);
    pil_img im, part;
    if (!to_pil(call, in, &im)) return CD_ERROR;
    int64_t left, top;
    if (random) {
        mt19937 *mt = malloc(sizeof *mt);
        if (!mt) {
            free(im.px);
            return cd_call_fail(call, "MemoryError", "out of memory");
        }
        mt_seed(mt, np_seed(cd_call_int(call, "seed", 0)));
        int64_t max_left = im.w - width > 0 ? im.w - width : 0, max_top = im.h - height > 0 ? im.h - height : 0;
        /* np.random.randint(0, max + 1) draws nothing when the range is one value */
        left = max_left > 0 ? mt_interval(mt, (uint32_t)max_left) : 0;
        top = max_top > 0 ? mt_interval(mt, (uint32_t)max_top) : 0;
        free(mt);
    } else {
        left = im.w > width ? (im.w - width) / 2 : 0;
        top = im.h > height ? (im.h - height) / 2 : 0;
    }
    int64_t right = im.w < left + width ? im.w : left + width, bottom = im.h < top + height ? im.h : top + height;
    bool ok = pil_crop(&im, left, top, right, bottom, &part);
    free(im.px);
    if (!ok) return cd_call_fail(call, "MemoryError", "out of memory");
    cd_value *out = from_pil(call, &part);
    free(part.px);
    return out ? cd_call_set_output(call, 0, out) : CD_ERROR;
}

static int center_crop(cd_node_call *call) { return crop(call, false); }
static int random_crop(cd_node_call *call) { return crop(call, true); }

/* ---- group nodes ---- */

static int set_list(cd_node_call *call, int slot, const cd_value *from, const size_t *idx, size_t n) {
    cd_value *list = cd_value_list_new(n);
    for (size_t i = 0; list && i < n; i++)
        if (cd_value_list_push(list, cd_value_ref(cd_value_list_at(from, idx ? idx[i] : i))) != CD_OK) {
            cd_value_unref(list);
            list = NULL;
        }
    if (!list) return cd_call_fail(call, "MemoryError", "out of memory");
    return cd_call_set_output(call, slot, list);
}

static int merge_image_lists(cd_node_call *call) {
    const cd_value *images = image_list(call, "images");
    if (!images) return CD_ERROR;
    return set_list(call, 0, images, NULL, cd_value_list_len(images));
}

static int shuffle_dataset(cd_node_call *call) {
    const cd_value *images = image_list(call, "images");
    const cd_value *seed = images ? group_param(call, "seed") : NULL;
    if (!seed) return CD_ERROR;
    size_t n = cd_value_list_len(images);
    size_t *idx = np_permutation(cd_value_as_int(seed), n);
    if (!idx) return cd_call_fail(call, "MemoryError", "out of memory");
    int rc = set_list(call, 0, images, idx, n);
    free(idx);
    return rc;
}

static int shuffle_image_text(cd_node_call *call) {
    const cd_value *images = image_list(call, "images");
    const cd_value *texts = images ? cd_call_input(call, "texts") : NULL;
    if (images && cd_value_kind_of(texts) != CD_VALUE_LIST)
        return cd_call_fail(call, "TypeError", "texts: expected a list of texts");
    /* seed = seed[0] */
    const cd_value *seed = texts ? cd_call_input(call, "seed") : NULL;
    if (cd_value_kind_of(seed) == CD_VALUE_LIST) seed = cd_value_list_len(seed) ? cd_value_list_at(seed, 0) : NULL;
    if (!seed) return texts ? cd_call_fail(call, "IndexError", "list index out of range") : CD_ERROR;
    size_t n = cd_value_list_len(images);
    size_t *idx = np_permutation(cd_value_as_int(seed), n);
    if (!idx) return cd_call_fail(call, "MemoryError", "out of memory");
    int rc = CD_OK;
    /* texts[i] for i in indices: fewer texts than images fails as Python's indexing does */
    for (size_t i = 0; i < n && rc == CD_OK; i++)
        if (idx[i] >= cd_value_list_len(texts)) rc = cd_call_fail(call, "IndexError", "list index out of range");
    if (rc == CD_OK) rc = set_list(call, 0, images, idx, n);
    if (rc == CD_OK) rc = set_list(call, 1, texts, idx, n);
    free(idx);
    return rc;
}

/* The 64-bit average hash of ImageDeduplication: the image resized to 8x8 (Lanczos), in L,
 * each pixel against the mean. Fills bits[64] with 0/1. */
static bool average_hash(cd_node_call *call, const cd_value *t, uint8_t bits[64]) {
    pil_img im, small;
    if (!to_pil(call, t, &im)) return false;
    bool ok = pil_resize(&im, 8, 8, &small);
    free(im.px);
    if (!ok) {
        cd_call_fail(call, "MemoryError", "out of memory");
        return false;
    }
    unsigned l[64], sum = 0;
    for (int i = 0; i < 64; i++) {
        const uint8_t *p = small.px + (size_t)i * (size_t)small.c;
        /* convert("L"): ITU-R 601-2 luma in 16-bit fixed point; LA keeps its L */
        l[i] = small.c == 2 ? p[0] : (p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16;
        sum += l[i];
    }
    free(small.px);
    double avg = sum / 64.0;
    for (int i = 0; i < 64; i++) bits[i] = l[i] > avg;
    return true;
}

static int image_dedup(cd_node_call *call) {
    const cd_value *images = image_list(call, "images");
    const cd_value *th = images ? group_param(call, "similarity_threshold") : NULL;
    if (!th) return CD_ERROR;
    double threshold = cd_value_as_float(th);
    size_t n = cd_value_list_len(images);
    uint8_t(*hashes)[64] = malloc((n ? n : 1) * sizeof *hashes);
    size_t *keep = malloc((n ? n : 1) * sizeof *keep), kept = 0;
    int rc = hashes && keep ? CD_OK : cd_call_fail(call, "MemoryError", "out of memory");
    for (size_t i = 0; i < n && rc == CD_OK; i++)
        if (!average_hash(call, cd_value_list_at(images, i), hashes[i])) rc = CD_ERROR;
    for (size_t i = 0; i < n && rc == CD_OK; i++) {
        bool dup = false;
        for (size_t k = 0; k < kept && !dup; k++) {
            int distance = 0;
            for (int b = 0; b < 64; b++) distance += hashes[i][b] != hashes[keep[k]][b];
            dup = 1.0 - distance / 64.0 >= threshold;
        }
        if (!dup) keep[kept++] = i;
    }
    if (rc == CD_OK) rc = set_list(call, 0, images, keep, kept);
    free(hashes);
    free(keep);
    return rc;
}

static int image_grid(cd_node_call *call) {
    const cd_value *images = image_list(call, "images");
    const cd_value *pc = images ? group_param(call, "columns") : NULL;
    const cd_value *pw = pc ? group_param(call, "cell_width") : NULL;
    const cd_value *ph = pw ? group_param(call, "cell_height") : NULL;
    const cd_value *pp = ph ? group_param(call, "padding") : NULL;
    if (!pp) return CD_ERROR;
    int64_t columns = cd_value_as_int(pc), cw = cd_value_as_int(pw), ch = cd_value_as_int(ph),
            pad = cd_value_as_int(pp);
    size_t n = cd_value_list_len(images);
    if (n == 0) return cd_call_fail(call, "ValueError", "Cannot create grid from empty image list");
    if (columns < 1 || cw < 1 || ch < 1 || pad < 0)
        return cd_call_fail(call, "ValueError", "columns, cell_width and cell_height must be positive");
    int64_t rows = ((int64_t)n + columns - 1) / columns;
    int64_t gw = columns * cw + (columns - 1) * pad, gh = rows * ch + (rows - 1) * pad;
    cd_value *out = cd_img_new(call, 1, gh, gw, 3); /* Image.new("RGB", ..., (0, 0, 0)) */
    if (!out) return CD_ERROR;
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0; i < n; i++) {
        pil_img im, cell;
        if (!to_pil(call, cd_value_list_at(images, i), &im)) {
            cd_value_unref(out);
            return CD_ERROR;
        }
        bool ok = pil_resize(&im, cw, ch, &cell);
        free(im.px);
        if (!ok) {
            cd_value_unref(out);
            return cd_call_fail(call, "MemoryError", "out of memory");
        }
        /* paste: an RGBA or LA cell lends its colour bytes to the RGB grid, alpha unused
         * (LA is stored as L, L, L, A in Pillow) */
        int64_t x0 = (int64_t)(i % (size_t)columns) * (cw + pad), y0 = (int64_t)(i / (size_t)columns) * (ch + pad);
        for (int64_t y = 0; y < ch; y++)
            for (int64_t x = 0; x < cw; x++) {
                const uint8_t *p = cell.px + ((size_t)y * (size_t)cw + (size_t)x) * (size_t)cell.c;
                float *q = d + (((size_t)(y0 + y)) * (size_t)gw + (size_t)(x0 + x)) * 3;
                for (int k = 0; k < 3; k++) q[k] = (float)p[cell.c == 2 ? 0 : k] / 255.0f;
            }
        free(cell.px);
    }
    return cd_call_set_output(call, 0, out);
}

/* ---- definitions ---- */

static const cd_output_def out_image[] = {{"IMAGE", "images", 0, "Processed images", NULL}};
static const cd_output_def out_image_list[] = {{"IMAGE", "images", 1, "Processed images", NULL}};
static const cd_output_def out_shuffled[] = {{"IMAGE", "images", 1, "Shuffled images", NULL},
                                             {"STRING", "texts", 1, "Shuffled texts", NULL}};

#define ONE_IMAGE "\"images\": [\"IMAGE\", {\"tooltip\": \"Image to process.\"}]"
#define IMAGE_LIST "\"images\": [\"IMAGE\", {\"tooltip\": \"List of images to process.\"}]"
/* 2^64 - 1 as a real: jansson holds no integer past 2^63 - 1 (the reference reads it so too) */
#define SEED                                                                                                         \
    "\"seed\": [\"INT\", {\"tooltip\": \"Random seed.\", \"default\": 0, \"min\": 0, \"max\": "                       \
    "1.8446744073709552e+19}]"
#define CROP_SIZE                                                                                                    \
    "\"width\": [\"INT\", {\"tooltip\": \"Crop width.\", \"default\": 512, \"min\": 1, \"max\": 8192}], "            \
    "\"height\": [\"INT\", {\"tooltip\": \"Crop height.\", \"default\": 512, \"min\": 1, \"max\": 8192}]"
#define FACTOR(TIP)                                                                                                  \
    "\"factor\": [\"FLOAT\", {\"tooltip\": \"" TIP "\", \"default\": 1.0, \"min\": 0.0, \"max\": 2.0}]"

#define IMAGE_NODE(NAME, DISPLAY, INPUTS, OUTS, NOUT, FN, FLAGS)                                                     \
    {.abi_version = CD_NODE_ABI_VERSION, .name = NAME, .display_name = DISPLAY, .category = "dataset/image",         \
     .python_module = MODULE, .inputs = "{\"required\": {" INPUTS "}}", .outputs = OUTS, .n_outputs = NOUT,          \
     .flags = CD_NODE_V3_INFO | CD_NODE_EXPERIMENTAL | (FLAGS), .execute = FN}

static const cd_node_def defs[] = {
    IMAGE_NODE("CenterCropImages", "Center Crop Images", ONE_IMAGE ", " CROP_SIZE, out_image, 1, center_crop, 0),
    IMAGE_NODE("RandomCropImages", "Random Crop Images", ONE_IMAGE ", " CROP_SIZE ", " SEED, out_image, 1,
               random_crop, 0),
    IMAGE_NODE("NormalizeImages", "Normalize Images",
               ONE_IMAGE ", \"mean\": [\"FLOAT\", {\"tooltip\": \"Mean value for normalization.\", \"default\": 0.5, "
                         "\"min\": 0.0, \"max\": 1.0}], \"std\": [\"FLOAT\", {\"tooltip\": \"Standard deviation for "
                         "normalization.\", \"default\": 0.5, \"min\": 0.001, \"max\": 1.0}]",
               out_image, 1, normalize_images, 0),
    IMAGE_NODE("AdjustBrightness", "Adjust Brightness",
               ONE_IMAGE ", " FACTOR("Brightness factor. 1.0 = no change, <1.0 = darker, >1.0 = brighter."), out_image,
               1, adjust_brightness, 0),
    IMAGE_NODE("AdjustContrast", "Adjust Contrast",
               ONE_IMAGE ", " FACTOR("Contrast factor. 1.0 = no change, <1.0 = less contrast, >1.0 = more contrast."),
               out_image, 1, adjust_contrast, 0),
    IMAGE_NODE("ShuffleDataset", "Shuffle Image Dataset", IMAGE_LIST ", " SEED, out_image_list, 1, shuffle_dataset,
               CD_NODE_INPUT_IS_LIST),
    IMAGE_NODE("ShuffleImageTextDataset", "Shuffle Image-Text Dataset",
               "\"images\": [\"IMAGE\", {\"tooltip\": \"List of images to shuffle.\"}], \"texts\": [\"STRING\", "
               "{\"tooltip\": \"List of texts to shuffle.\", \"multiline\": false}], " SEED,
               out_shuffled, 2, shuffle_image_text, CD_NODE_INPUT_IS_LIST),
    IMAGE_NODE("ImageDeduplication", "Image Deduplication",
               IMAGE_LIST ", \"similarity_threshold\": [\"FLOAT\", {\"tooltip\": \"Similarity threshold (0-1). Higher "
                          "means more similar. Images above this threshold are considered duplicates.\", \"default\": "
                          "0.95, \"min\": 0.0, \"max\": 1.0}]",
               out_image_list, 1, image_dedup, CD_NODE_INPUT_IS_LIST),
    IMAGE_NODE("ImageGrid", "Image Grid",
               IMAGE_LIST ", \"columns\": [\"INT\", {\"tooltip\": \"Number of columns in the grid.\", \"default\": 4, "
                          "\"min\": 1, \"max\": 20}], \"cell_width\": [\"INT\", {\"tooltip\": \"Width of each cell in "
                          "the grid.\", \"default\": 256, \"min\": 32, \"max\": 2048}], \"cell_height\": [\"INT\", "
                          "{\"tooltip\": \"Height of each cell in the grid.\", \"default\": 256, \"min\": 32, \"max\": "
                          "2048}], \"padding\": [\"INT\", {\"tooltip\": \"Padding between images.\", \"default\": 4, "
                          "\"min\": 0, \"max\": 50}]",
               out_image, 1, image_grid, CD_NODE_INPUT_IS_LIST),
    IMAGE_NODE("MergeImageLists", "Merge Image Lists", IMAGE_LIST, out_image_list, 1, merge_image_lists,
               CD_NODE_INPUT_IS_LIST),
};

int cd_nodes_image_dataset_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return cd_nodes_image_dataset_files_init(pack);
}
