/* The mask nodes of ComfyUI's comfy_extras/nodes_mask.py (MaskToImage, ImageToMask,
 * ImageColorToMask, SolidMask, InvertMask, CropMask, MaskComposite, FeatherMask, GrowMask,
 * ThresholdMask, MaskPreview) and BatchMasksNode of nodes_post_processing.py. The compositing
 * nodes live in compositing.c and register with this group.
 *
 * Masks arrive as [B, H, W] (a bare [H, W] counts as one mask) and leave as ComfyUI's nodes
 * leave them: those that reshape to [-1, H, W] return 3 dimensions, the element-wise ones
 * (InvertMask, ThresholdMask) keep the input's shape. Arithmetic is float32 in the order of
 * ComfyUI's torch expressions, so results are bit-exact; GrowMask replaces scipy's grey
 * dilation/erosion with the same 3x3 max/min filter.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"

int cd_nodes_image_compositing_init(cd_pack *pack);
/* compositing.c */
void cd_img_center_crop(int64_t h, int64_t w, int64_t out_h, int64_t out_w, int64_t *y0, int64_t *x0, int64_t *ch,
                        int64_t *cw);
void cd_img_resample(const float *src, int64_t w, int64_t c, int64_t y0, int64_t x0, int64_t ch, int64_t cw,
                     float *dst, int64_t out_h, int64_t out_w, bool bicubic);
bool cd_img_resample_ok(cd_node_call *call, int64_t h, int64_t w, int64_t out_h, int64_t out_w);

/* A new tensor of the same type and shape as `like` (for the element-wise nodes). */
static cd_value *same_shape(cd_node_call *call, const cd_value *like) {
    int nd = cd_value_tensor_ndim(like);
    int64_t shape[CD_TENSOR_MAX_DIMS];
    for (int d = 0; d < nd; d++) shape[d] = cd_value_tensor_dim(like, d);
    cd_value *v = cd_value_tensor_new("MASK", nd, shape);
    if (!v) cd_call_fail(call, "MemoryError", "cannot allocate a mask");
    return v;
}

/* ---- MaskToImage, ImageToMask, ImageColorToMask ---- */

static int mask_to_image(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *m = cd_mask_input(call, "mask", &s);
    if (!m) return CD_ERROR;
    cd_value *out = cd_img_new(call, s.b, s.h, s.w, 3);
    if (!out) return CD_ERROR;
    const float *src = cd_value_tensor_data(m);
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0, n = cd_value_tensor_numel(m); i < n; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = src[i];
    return cd_call_set_output(call, 0, out);
}

static int image_to_mask(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    static const char *const channels[] = {"red", "green", "blue", "alpha"};
    const char *name = cd_call_string(call, "channel", "red");
    int64_t ch = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, channels[i])) ch = i;
    if (ch < 0) return cd_call_fail(call, "ValueError", "'%s' is not in list", name);
    if (ch >= s.c)
        return cd_call_fail(call, "IndexError", "index %lld is out of bounds for dimension 3 with size %lld",
                            (long long)ch, (long long)s.c);
    cd_value *out = cd_mask_new(call, s.b, s.h, s.w);
    if (!out) return CD_ERROR;
    const float *src = cd_value_tensor_data(in);
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0, n = (size_t)(s.b * s.h * s.w); i < n; i++) d[i] = src[i * (size_t)s.c + (size_t)ch];
    return cd_call_set_output(call, 0, out);
}

/* (clamp(v, 0, 1) * 255).round().to(torch.int): torch.round is half-to-even, as rintf in the
 * default rounding mode. A NaN sample stays NaN through the clamp and converts to INT32_MIN, as
 * x86's cvttss2si gives it. */
static int32_t to_byte(float v) {
    if (isnan(v)) return INT32_MIN;
    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    return (int32_t)rintf(v * 255.0f);
}

static int image_color_to_mask(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    if (s.c < 3)
        return cd_call_fail(call, "IndexError", "index %lld is out of bounds for dimension 3 with size %lld",
                            (long long)s.c, (long long)s.c);
    int64_t color = cd_call_int(call, "color", 0);
    cd_value *out = cd_mask_new(call, s.b, s.h, s.w);
    if (!out) return CD_ERROR;
    const float *src = cd_value_tensor_data(in);
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0, n = (size_t)(s.b * s.h * s.w); i < n; i++) {
        const float *p = src + i * (size_t)s.c;
        /* int32 arithmetic that wraps, as torch's bitwise_left_shift and + do: a NaN red or
         * green sample shifts out to 0 */
        uint32_t v = ((uint32_t)to_byte(p[0]) << 16) + ((uint32_t)to_byte(p[1]) << 8) + (uint32_t)to_byte(p[2]);
        d[i] = (int64_t)(int32_t)v == color ? 1.0f : 0.0f;
    }
    return cd_call_set_output(call, 0, out);
}

/* ---- SolidMask, InvertMask, ThresholdMask ---- */

static int solid_mask(cd_node_call *call) {
    float value = (float)cd_call_float(call, "value", 1.0);
    int64_t w = cd_call_int(call, "width", 512), h = cd_call_int(call, "height", 512);
    cd_value *out = cd_mask_new(call, 1, h, w);
    if (!out) return CD_ERROR;
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0, n = (size_t)(h * w); i < n; i++) d[i] = value;
    return cd_call_set_output(call, 0, out);
}

static int invert_mask(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *m = cd_mask_input(call, "mask", &s);
    cd_value *out = m ? same_shape(call, m) : NULL;
    if (!out) return CD_ERROR;
    const float *src = cd_value_tensor_data(m);
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0, n = cd_value_tensor_numel(m); i < n; i++) d[i] = 1.0f - src[i];
    return cd_call_set_output(call, 0, out);
}

static int threshold_mask(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *m = cd_mask_input(call, "mask", &s);
    cd_value *out = m ? same_shape(call, m) : NULL;
    if (!out) return CD_ERROR;
    /* mask > value compares in the tensor's float32: the Python float is rounded first */
    float value = (float)cd_call_float(call, "value", 0.5);
    const float *src = cd_value_tensor_data(m);
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0, n = cd_value_tensor_numel(m); i < n; i++) d[i] = src[i] > value ? 1.0f : 0.0f;
    return cd_call_set_output(call, 0, out);
}

/* ---- CropMask, MaskComposite ---- */

/* Python's slice [start:stop] of a dimension of length n, for start >= 0: the first index
 * and the count. A negative stop counts from the end. */
static void py_slice(int64_t start, int64_t stop, int64_t n, int64_t *first, int64_t *count) {
    if (stop < 0) stop += n;
    if (stop < 0) stop = 0;
    if (stop > n) stop = n;
    if (start > n) start = n;
    *first = start;
    *count = stop > start ? stop - start : 0;
}

static int crop_mask(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *m = cd_mask_input(call, "mask", &s);
    if (!m) return CD_ERROR;
    int64_t x = cd_call_int(call, "x", 0), y = cd_call_int(call, "y", 0);
    int64_t w = cd_call_int(call, "width", 512), h = cd_call_int(call, "height", 512);
    int64_t x0, cw, y0, ch;
    py_slice(y, y + h, s.h, &y0, &ch);
    py_slice(x, x + w, s.w, &x0, &cw);
    cd_value *out = cd_mask_new(call, s.b, ch, cw);
    if (!out) return CD_ERROR;
    const float *src = cd_value_tensor_data(m);
    float *d = cd_value_tensor_data_mut(out);
    for (int64_t b = 0; b < s.b; b++)
        for (int64_t r = 0; r < ch; r++)
            memcpy(d + (b * ch + r) * cw, src + (b * s.h + y0 + r) * s.w + x0, (size_t)cw * sizeof *d);
    return cd_call_set_output(call, 0, out);
}

/* torch's broadcasting of the source portion (n) against the destination's (m): the result
 * must keep the destination's size to be assigned back. */
static bool fits(int64_t m, int64_t n) { return n == m || n == 1; }

static int mask_composite(cd_node_call *call) {
    cd_img_shape ds, ss;
    const cd_value *dst = cd_mask_input(call, "destination", &ds);
    const cd_value *src = dst ? cd_mask_input(call, "source", &ss) : NULL;
    if (!src) return CD_ERROR;
    int64_t left = cd_call_int(call, "x", 0), top = cd_call_int(call, "y", 0);
    const char *op = cd_call_string(call, "operation", "multiply");
    int kind = !strcmp(op, "multiply") ? 0
               : !strcmp(op, "add")    ? 1
               : !strcmp(op, "subtract") ? 2
               : !strcmp(op, "and")    ? 3
               : !strcmp(op, "or")     ? 4
               : !strcmp(op, "xor")    ? 5
                                       : -1;
    if (kind < 0) return cd_call_fail(call, "ValueError", "unknown operation '%s'", op);
    int64_t right = left + ss.w < ds.w ? left + ss.w : ds.w;
    int64_t bottom = top + ss.h < ds.h ? top + ss.h : ds.h;
    /* output[:, top:bottom, left:right] and source[:, :bottom - top, :right - left] */
    int64_t dy, dh, dx, dw, sy, sh, sx, sw;
    py_slice(top, bottom, ds.h, &dy, &dh);
    py_slice(left, right, ds.w, &dx, &dw);
    py_slice(0, bottom - top, ss.h, &sy, &sh);
    py_slice(0, right - left, ss.w, &sx, &sw);
    bool touched = dh > 0 && dw > 0 && ds.b > 0;
    if (!fits(ds.b, ss.b) || !fits(dh, sh) || !fits(dw, sw)) {
        /* torch would fail either broadcasting or assigning; an empty destination region
         * still fails when the source part is not a single row/column */
        int64_t a = !fits(ds.b, ss.b) ? ds.b : !fits(dh, sh) ? dh : dw;
        int64_t b = !fits(ds.b, ss.b) ? ss.b : !fits(dh, sh) ? sh : sw;
        int dim = !fits(ds.b, ss.b) ? 0 : !fits(dh, sh) ? 1 : 2;
        return cd_call_fail(call, "RuntimeError",
                            "The size of tensor a (%lld) must match the size of tensor b (%lld) at non-singleton "
                            "dimension %d",
                            (long long)a, (long long)b, dim);
    }
    cd_value *out = cd_mask_new(call, ds.b, ds.h, ds.w);
    if (!out) return CD_ERROR;
    float *o = cd_value_tensor_data_mut(out);
    memcpy(o, cd_value_tensor_data(dst), cd_value_tensor_numel(dst) * sizeof *o);
    const float *s = cd_value_tensor_data(src);
    for (int64_t b = 0; touched && b < ds.b; b++) {
        int64_t sb = ss.b == 1 ? 0 : b;
        for (int64_t r = 0; r < dh; r++) {
            int64_t srow = sh == 1 ? 0 : r;
            float *orow = o + (b * ds.h + dy + r) * ds.w + dx;
            const float *irow = s + (sb * ss.h + sy + srow) * ss.w + sx;
            for (int64_t c = 0; c < dw; c++) {
                float dv = orow[c], sv = irow[sw == 1 ? 0 : c];
                /* .round().bool(): half-to-even, then nonzero */
                bool db = rintf(dv) != 0.0f, sbool = rintf(sv) != 0.0f;
                switch (kind) {
                case 0: orow[c] = dv * sv; break;
                case 1: orow[c] = dv + sv; break;
                case 2: orow[c] = dv - sv; break;
                case 3: orow[c] = db && sbool ? 1.0f : 0.0f; break;
                case 4: orow[c] = db || sbool ? 1.0f : 0.0f; break;
                default: orow[c] = db != sbool ? 1.0f : 0.0f; break;
                }
            }
        }
    }
    /* torch.clamp(output, 0.0, 1.0) over the whole mask; NaN stays NaN as in torch */
    for (size_t i = 0, n = cd_value_tensor_numel(out); i < n; i++)
        o[i] = o[i] < 0.0f ? 0.0f : o[i] > 1.0f ? 1.0f : o[i];
    return cd_call_set_output(call, 0, out);
}

/* ---- FeatherMask ---- */

static int feather_mask(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *m = cd_mask_input(call, "mask", &s);
    if (!m) return CD_ERROR;
    int64_t left = cd_call_int(call, "left", 0), top = cd_call_int(call, "top", 0);
    int64_t right = cd_call_int(call, "right", 0), bottom = cd_call_int(call, "bottom", 0);
    if (left > s.w) left = s.w;
    if (right > s.w) right = s.w;
    if (top > s.h) top = s.h;
    if (bottom > s.h) bottom = s.h;
    cd_value *out = cd_mask_new(call, s.b, s.h, s.w);
    if (!out) return CD_ERROR;
    float *o = cd_value_tensor_data_mut(out);
    memcpy(o, cd_value_tensor_data(m), cd_value_tensor_numel(m) * sizeof *o);
    /* The loops of ComfyUI, in its order, each a float32 multiply by the rate (a Python float
     * rounded to float32). The right and bottom loops index with -x, so x = 0 lands on the
     * first column / row, not the last: kept, as that is what ComfyUI computes. */
    for (int64_t b = 0; b < s.b; b++) {
        float *p = o + b * s.h * s.w;
        for (int64_t x = 0; x < left; x++) {
            float rate = (float)(((double)x + 1.0) / (double)left);
            for (int64_t r = 0; r < s.h; r++) p[r * s.w + x] *= rate;
        }
        for (int64_t x = 0; x < right; x++) {
            float rate = (float)((double)(x + 1) / (double)right);
            int64_t col = x == 0 ? 0 : s.w - x;
            for (int64_t r = 0; r < s.h; r++) p[r * s.w + col] *= rate;
        }
        for (int64_t y = 0; y < top; y++) {
            float rate = (float)((double)(y + 1) / (double)top);
            for (int64_t c = 0; c < s.w; c++) p[y * s.w + c] *= rate;
        }
        for (int64_t y = 0; y < bottom; y++) {
            float rate = (float)((double)(y + 1) / (double)bottom);
            int64_t row = y == 0 ? 0 : s.h - y;
            for (int64_t c = 0; c < s.w; c++) p[row * s.w + c] *= rate;
        }
    }
    return cd_call_set_output(call, 0, out);
}

/* ---- GrowMask ---- */

/* One step of scipy.ndimage.grey_dilation (grow) or grey_erosion with the 3x3 footprint
 * [[c,1,c],[1,1,1],[c,1,c]]: the max (min) over the footprint, the border mirrored ("reflect"),
 * which for a 3x3 window repeats the edge sample. Returns whether anything changed. */
static bool morph_step(const float *in, float *out, int64_t h, int64_t w, bool grow, bool corners) {
    bool changed = false;
    for (int64_t y = 0; y < h; y++) {
        int64_t ys[3] = {y > 0 ? y - 1 : 0, y, y < h - 1 ? y + 1 : h - 1};
        for (int64_t x = 0; x < w; x++) {
            int64_t xs[3] = {x > 0 ? x - 1 : 0, x, x < w - 1 ? x + 1 : w - 1};
            float v = in[y * w + x];
            for (int j = 0; j < 3; j++)
                for (int i = 0; i < 3; i++) {
                    if (!corners && i != 1 && j != 1) continue;
                    float n = in[ys[j] * w + xs[i]];
                    if (grow ? n > v : n < v) v = n;
                }
            if (v != in[y * w + x]) changed = true;
            out[y * w + x] = v;
        }
    }
    return changed;
}

static int grow_mask(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *m = cd_mask_input(call, "mask", &s);
    if (!m) return CD_ERROR;
    int64_t expand = cd_call_int(call, "expand", 0);
    bool corners = !cd_call_bool(call, "tapered_corners", 1); /* c = 0 when tapered */
    cd_value *out = cd_mask_new(call, s.b, s.h, s.w);
    if (!out) return CD_ERROR;
    float *o = cd_value_tensor_data_mut(out);
    memcpy(o, cd_value_tensor_data(m), cd_value_tensor_numel(m) * sizeof *o);
    size_t plane = (size_t)(s.h * s.w);
    float *tmp = malloc(plane * sizeof *tmp + 1);
    if (!tmp) {
        cd_value_unref(out);
        return cd_call_fail(call, "MemoryError", "cannot allocate a mask");
    }
    int64_t steps = expand < 0 ? -expand : expand;
    for (int64_t b = 0; b < s.b; b++) {
        float *p = o + (size_t)b * plane;
        for (int64_t k = 0; k < steps; k++) {
            if (cd_call_interrupted(call)) {
                free(tmp);
                cd_value_unref(out);
                return CD_INTERRUPTED;
            }
            bool changed = morph_step(p, tmp, s.h, s.w, expand > 0, corners);
            memcpy(p, tmp, plane * sizeof *p);
            if (!changed) break; /* a fixed point: the remaining steps change nothing either */
        }
    }
    free(tmp);
    return cd_call_set_output(call, 0, out);
}

/* ---- MaskPreview ---- */

static int mask_preview(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *m = cd_mask_input(call, "mask", &s);
    if (!m) return CD_ERROR;
    /* UI.PreviewMask: the mask as a grey RGB image, saved as PreviewImage saves (temp folder,
     * "ComfyUI_temp_" + 5 letters, compress level 1), with "animated": [false] beside it */
    cd_value *img = cd_img_new(call, s.b, s.h, s.w, 3);
    if (!img) return CD_ERROR;
    const float *src = cd_value_tensor_data(m);
    float *d = cd_value_tensor_data_mut(img);
    for (size_t i = 0, n = cd_value_tensor_numel(m); i < n; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = src[i];
    static const char letters[] = "abcdefghijklmnopqrstupvxyz";
    char prefix[32] = "ComfyUI_temp_";
    size_t n = strlen(prefix);
    for (int i = 0; i < 5; i++) prefix[n + (size_t)i] = letters[g_random_int_range(0, (int)sizeof letters - 1)];
    prefix[n + 5] = '\0';
    int rc = cd_img_save_batch(call, img, "temp", prefix, 1);
    cd_value_unref(img);
    if (rc != CD_OK) return rc;
    return cd_call_ui(call, "animated", cd_value_bool(0));
}

/* ---- BatchMasksNode ---- */

/* The autogrow slots "masks.mask0" .. "masks.mask49" (or bare "mask0" ..): their index, or -1. */
static int slot_index(const char *name) {
    if (!strncmp(name, "masks.", 6)) name += 6;
    if (strncmp(name, "mask", 4) || !name[4]) return -1;
    char *end;
    long i = strtol(name + 4, &end, 10);
    return *end || i < 0 || i >= 100 ? -1 : (int)i;
}

static int batch_masks(cd_node_call *call) {
    const cd_value *slots[100] = {0};
    const char *names[100] = {0};
    for (size_t i = 0, n = cd_call_input_count(call); i < n; i++) {
        const char *name = cd_call_input_name_at(call, i);
        int k = slot_index(name);
        const cd_value *v = k >= 0 ? cd_call_input(call, name) : NULL;
        if (v) slots[k] = v, names[k] = name;
    }
    /* the masks in slot order, each resized (bilinear, centre crop: common_upscale) to the
     * first one's size; compositing.c says how exact that resampling is */
    cd_img_shape first = {0}, s;
    int64_t total = 0;
    int count = 0;
    for (int k = 0; k < 100; k++) {
        if (!slots[k]) continue;
        if (!cd_mask_shape_of(call, names[k], slots[k], &s)) return CD_ERROR;
        if (!count++) first = s;
        else if ((s.h != first.h || s.w != first.w) && !cd_img_resample_ok(call, s.h, s.w, first.h, first.w))
            return CD_ERROR;
        total += s.b;
    }
    if (!count) return cd_call_fail(call, "ValueError", "Batch Masks needs at least one mask");
    cd_value *out = cd_mask_new(call, total, first.h, first.w);
    if (!out) return CD_ERROR;
    float *o = cd_value_tensor_data_mut(out);
    size_t plane = (size_t)(first.h * first.w);
    for (int k = 0; k < 100; k++) {
        if (!slots[k]) continue;
        cd_mask_shape_of(NULL, NULL, slots[k], &s);
        const float *src = cd_value_tensor_data(slots[k]);
        if (s.h == first.h && s.w == first.w) {
            memcpy(o, src, (size_t)s.b * plane * sizeof *o);
        } else {
            int64_t y0, x0, ch, cw;
            cd_img_center_crop(s.h, s.w, first.h, first.w, &y0, &x0, &ch, &cw);
            for (int64_t b = 0; b < s.b; b++)
                cd_img_resample(src + (size_t)(b * s.h * s.w), s.w, 1, y0, x0, ch, cw, o + (size_t)b * plane,
                                first.h, first.w, false);
        }
        o += (size_t)s.b * plane;
    }
    return cd_call_set_output(call, 0, out);
}

/* ---- definitions ---- */

static const cd_output_def mask_out[] = {{"MASK", NULL, 0, NULL, NULL}};
static const cd_output_def image_out[] = {{"IMAGE", NULL, 0, NULL, NULL}};

#define V3(NAME, DISPLAY, INPUTS, OUTPUTS, FN)                                                                        \
    {.abi_version = CD_NODE_ABI_VERSION, .name = NAME, .display_name = DISPLAY, .category = "mask",                   \
     .python_module = "comfy_extras.nodes_mask", .inputs = INPUTS, .outputs = OUTPUTS, .n_outputs = 1,                \
     .flags = CD_NODE_V3_INFO, .execute = FN}
#define INT_INPUT(NAME, DEF, MIN)                                                                                     \
    "\"" NAME "\": [\"INT\", {\"default\": " #DEF ", \"min\": " #MIN ", \"max\": 16384, \"step\": 1}]"

static const cd_node_def defs[] = {
    V3("MaskToImage", "Convert Mask to Image", "{\"required\": {\"mask\": [\"MASK\", {}]}}", image_out, mask_to_image),
    V3("ImageToMask", "Convert Image to Mask",
       "{\"required\": {\"image\": [\"IMAGE\", {}], \"channel\": [\"COMBO\", {\"multiselect\": false, \"options\": "
       "[\"red\", \"green\", \"blue\", \"alpha\"]}]}}",
       mask_out, image_to_mask),
    V3("ImageColorToMask", NULL,
       "{\"required\": {\"image\": [\"IMAGE\", {}], \"color\": [\"INT\", {\"default\": 0, \"min\": 0, \"max\": "
       "16777215, \"step\": 1, \"display\": \"number\"}]}}",
       mask_out, image_color_to_mask),
    V3("SolidMask", NULL,
       "{\"required\": {\"value\": [\"FLOAT\", {\"default\": 1.0, \"min\": 0.0, \"max\": 1.0, \"step\": 0.01}], "
       INT_INPUT("width", 512, 1) ", " INT_INPUT("height", 512, 1) "}}",
       mask_out, solid_mask),
    V3("InvertMask", NULL, "{\"required\": {\"mask\": [\"MASK\", {}]}}", mask_out, invert_mask),
    V3("CropMask", NULL,
       "{\"required\": {\"mask\": [\"MASK\", {}], " INT_INPUT("x", 0, 0) ", " INT_INPUT("y", 0, 0) ", "
       INT_INPUT("width", 512, 1) ", " INT_INPUT("height", 512, 1) "}}",
       mask_out, crop_mask),
    V3("MaskComposite", NULL,
       "{\"required\": {\"destination\": [\"MASK\", {}], \"source\": [\"MASK\", {}], " INT_INPUT("x", 0, 0) ", "
       INT_INPUT("y", 0, 0) ", \"operation\": [\"COMBO\", {\"multiselect\": false, \"options\": [\"multiply\", "
       "\"add\", \"subtract\", \"and\", \"or\", \"xor\"]}]}}",
       mask_out, mask_composite),
    V3("FeatherMask", NULL,
       "{\"required\": {\"mask\": [\"MASK\", {}], " INT_INPUT("left", 0, 0) ", " INT_INPUT("top", 0, 0) ", "
       INT_INPUT("right", 0, 0) ", " INT_INPUT("bottom", 0, 0) "}}",
       mask_out, feather_mask),
    V3("GrowMask", "Grow Mask",
       "{\"required\": {\"mask\": [\"MASK\", {}], " INT_INPUT("expand", 0, -16384) ", "
       "\"tapered_corners\": [\"BOOLEAN\", {\"default\": true}]}}",
       mask_out, grow_mask),
    V3("ThresholdMask", NULL,
       "{\"required\": {\"mask\": [\"MASK\", {}], \"value\": [\"FLOAT\", {\"default\": 0.5, \"min\": 0.0, \"max\": "
       "1.0, \"step\": 0.01}]}}",
       mask_out, threshold_mask),
    {.abi_version = CD_NODE_ABI_VERSION, .name = "MaskPreview", .display_name = "Preview Mask", .category = "mask",
     .python_module = "comfy_extras.nodes_mask",
     .description = "Saves the input images to your ComfyUI output directory.",
     .inputs = "{\"required\": {\"mask\": [\"MASK\", {}]}, \"hidden\": {\"prompt\": [\"PROMPT\"], \"extra_pnginfo\": "
               "[\"EXTRA_PNGINFO\"]}}",
     .flags = CD_NODE_OUTPUT | CD_NODE_V3_INFO, .execute = mask_preview},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "BatchMasksNode", .display_name = "Batch Masks", .category = "mask",
     .python_module = "comfy_extras.nodes_post_processing",
     .inputs = "{\"required\": {\"masks\": [\"COMFY_AUTOGROW_V3\", {\"template\": {\"input\": {\"required\": "
               "{\"mask\": [\"MASK\", {}]}}, \"prefix\": \"mask\", \"min\": 2, \"max\": 50}}]}}",
     .outputs = mask_out, .n_outputs = 1, .flags = CD_NODE_V3_INFO, .execute = batch_masks},
};

int cd_nodes_image_mask_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return cd_nodes_image_compositing_init(pack);
}
