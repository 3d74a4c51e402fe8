/* The resize, crop, flip, rotate, stitch, pad and composite nodes: ImageScale, ImageScaleBy and
 * ImagePadForOutpaint (nodes.py), ImageScaleToMaxDimension, ResizeAndPadImage, ImageCrop,
 * ImageFlip, ImageRotate and ImageStitch (comfy_extras.nodes_images), ImageScaleToTotalPixels and
 * ResizeImageMaskNode (nodes_post_processing), FluxKontextImageScale (nodes_flux),
 * ImageCompositeMasked (nodes_mask) and ResizeImagesByLongerEdge/ShorterEdge (nodes_dataset).
 *
 * Sizes are computed as the Python computes them (true division in double, round() half to
 * even, int() truncating); the pixels go through the shared resampler (resample.h). Crops, flips
 * and rotations are plain copies, exact by construction. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"
#include "nodes/image/resample.h"

/* An IMAGE resized, set as output 0. */
static int set_upscaled(cd_node_call *call, const cd_value *img, int64_t w, int64_t h, const char *method,
                        const char *crop) {
    cd_value *out = cd_img_upscale(call, img, w, h, method, crop);
    return out ? cd_call_set_output(call, 0, out) : CD_ERROR;
}

/* ---- ImageScale, ImageScaleBy, ImageScaleToMaxDimension, ImageScaleToTotalPixels ---- */

static int image_scale(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    int64_t w = cd_call_int(call, "width", 512), h = cd_call_int(call, "height", 512);
    if (w == 0 && h == 0) return cd_call_set_output(call, 0, cd_value_ref(img));
    if (w == 0) w = cd_py_round((double)(s.w * h) / (double)s.h), w = w < 1 ? 1 : w;
    else if (h == 0) h = cd_py_round((double)(s.h * w) / (double)s.w), h = h < 1 ? 1 : h;
    return set_upscaled(call, img, w, h, cd_call_string(call, "upscale_method", "nearest-exact"),
                        cd_call_string(call, "crop", "disabled"));
}

static int image_scale_by(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    double by = cd_call_float(call, "scale_by", 1.0);
    return set_upscaled(call, img, cd_py_round((double)s.w * by), cd_py_round((double)s.h * by),
                        cd_call_string(call, "upscale_method", "nearest-exact"), "disabled");
}

/* The (width, height) whose longer side is `size`, the other kept in proportion. */
static void longer_side(int64_t w, int64_t h, int64_t size, int64_t *ow, int64_t *oh) {
    if (h > w) *ow = cd_py_round((double)w / (double)h * (double)size), *oh = size;
    else if (w > h) *oh = cd_py_round((double)h / (double)w * (double)size), *ow = size;
    else *ow = *oh = size;
}

static int image_scale_to_max(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    int64_t w, h;
    longer_side(s.w, s.h, cd_call_int(call, "largest_size", 512), &w, &h);
    return set_upscaled(call, img, w, h, cd_call_string(call, "upscale_method", "area"), "disabled");
}

static int image_scale_total(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    double total = cd_call_float(call, "megapixels", 1.0) * 1024 * 1024;
    int64_t steps = cd_call_int(call, "resolution_steps", 1);
    if (steps < 1) return cd_call_fail(call, "ValueError", "resolution_steps must be at least 1");
    double by = sqrt(total / (double)(s.w * s.h));
    int64_t w = cd_py_round((double)s.w * by / (double)steps) * steps;
    int64_t h = cd_py_round((double)s.h * by / (double)steps) * steps;
    return set_upscaled(call, img, w, h, cd_call_string(call, "upscale_method", "nearest-exact"), "disabled");
}

/* ---- ResizeAndPadImage ---- */

static int resize_and_pad(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    int64_t tw = cd_call_int(call, "target_width", 512), th = cd_call_int(call, "target_height", 512);
    double sw = (double)tw / (double)s.w, sh = (double)th / (double)s.h, scale = sw < sh ? sw : sh;
    int64_t nw = (int64_t)((double)s.w * scale), nh = (int64_t)((double)s.h * scale);
    cd_value *r = cd_img_upscale(call, img, nw, nh, cd_call_string(call, "interpolation", "area"), "disabled");
    if (!r) return CD_ERROR;
    cd_value *out = cd_img_new(call, s.b, th, tw, s.c);
    if (!out) {
        cd_value_unref(r);
        return CD_ERROR;
    }
    float pad = strcmp(cd_call_string(call, "padding_color", "white"), "black") ? 1.0f : 0.0f;
    float *d = cd_value_tensor_data_mut(out);
    for (size_t i = 0, n = cd_value_tensor_numel(out); i < n; i++) d[i] = pad;
    int64_t y0 = (th - nh) / 2, x0 = (tw - nw) / 2; /* both >= 0: the scale fits the target */
    const float *src = cd_value_tensor_data(r);
    for (int64_t b = 0; b < s.b; b++)
        for (int64_t y = 0; y < nh; y++)
            memcpy(d + ((b * th + y0 + y) * tw + x0) * s.c, src + ((b * nh + y) * nw) * s.c,
                   (size_t)(nw * s.c) * sizeof(float));
    cd_value_unref(r);
    return cd_call_set_output(call, 0, out);
}

/* ---- ResizeImageMaskNode ---- */

/* A dynamic combo's sub-input: "resize_type.<key>" as V3 names it, or the bare key. */
static const cd_value *rt_input(cd_node_call *call, const char *key) {
    char name[64];
    snprintf(name, sizeof name, "resize_type.%s", key);
    const cd_value *v = cd_call_input(call, name);
    return v ? v : cd_call_input(call, key);
}

static int64_t rt_int(cd_node_call *call, const char *key, int64_t fallback) {
    const cd_value *v = rt_input(call, key);
    return v ? cd_value_as_int(v) : fallback;
}

static int resize_image_mask(cd_node_call *call) {
    const cd_value *in = cd_call_input(call, "input");
    cd_img_shape s;
    if (!in) return cd_call_fail(call, "ValueError", "input is missing");
    bool image = cd_value_tensor_ndim(in) == 4;
    if (image ? !cd_img_shape_of(call, "input", in, &s) : !cd_mask_shape_of(call, "input", in, &s)) return CD_ERROR;
    /* a MASK travels as MASK even when a caller did not type it */
    cd_value *view = NULL;
    if (!image && strcmp(cd_value_tensor_type(in), "MASK")) {
        int64_t shape[3] = {s.b, s.h, s.w};
        in = view = cd_value_tensor_view(in, "MASK", 3, shape, 0);
    }
    const char *type = cd_value_as_string(cd_call_input(call, "resize_type"));
    const char *method = cd_call_string(call, "scale_method", "area");
    const cd_value *crop_v = rt_input(call, "crop");
    const char *crop = crop_v && cd_value_as_string(crop_v) ? cd_value_as_string(crop_v) : "center";
    int64_t w = s.w, h = s.h;
    int rc = CD_OK;
    if (!type) {
        rc = cd_call_fail(call, "ValueError", "resize_type is missing");
    } else if (!strcmp(type, "scale by multiplier")) {
        const cd_value *m = rt_input(call, "multiplier");
        double by = m ? cd_value_as_float(m) : 1.0;
        w = cd_py_round((double)s.w * by), h = cd_py_round((double)s.h * by), crop = "disabled";
    } else if (!strcmp(type, "scale dimensions") || !strcmp(type, "scale width") || !strcmp(type, "scale height")) {
        bool dims = type[6] == 'd';
        w = type[6] == 'h' ? 0 : rt_int(call, "width", 512);
        h = type[6] == 'w' ? 0 : rt_int(call, "height", 512);
        if (!dims) crop = "disabled";
        if (w == 0 && h == 0) {
            cd_value_unref(view);
            return cd_call_set_output(call, 0, cd_value_ref(cd_call_input(call, "input")));
        }
        if (w == 0) w = cd_py_round((double)(s.w * h) / (double)s.h), w = w < 1 ? 1 : w;
        else if (h == 0) h = cd_py_round((double)(s.h * w) / (double)s.w), h = h < 1 ? 1 : h;
    } else if (!strcmp(type, "scale longer dimension")) {
        longer_side(s.w, s.h, rt_int(call, "longer_size", 512), &w, &h);
        crop = "disabled";
    } else if (!strcmp(type, "scale shorter dimension")) {
        int64_t size = rt_int(call, "shorter_size", 512);
        if (s.h < s.w) w = cd_py_round((double)s.w / (double)s.h * (double)size), h = size;
        else if (s.w < s.h) h = cd_py_round((double)s.h / (double)s.w * (double)size), w = size;
        else w = h = size;
        crop = "disabled";
    } else if (!strcmp(type, "scale total pixels")) {
        const cd_value *m = rt_input(call, "megapixels");
        /* int(megapixels * 1024 * 1024) here, unlike ImageScaleToTotalPixels */
        double total = (double)(int64_t)((m ? cd_value_as_float(m) : 1.0) * 1024 * 1024);
        double by = sqrt(total / (double)(s.w * s.h));
        w = cd_py_round((double)s.w * by), h = cd_py_round((double)s.h * by), crop = "disabled";
    } else if (!strcmp(type, "match size")) {
        const cd_value *match = rt_input(call, "match");
        cd_img_shape ms;
        if (!match) rc = cd_call_fail(call, "ValueError", "match is missing");
        else if (cd_value_tensor_ndim(match) == 4 ? !cd_img_shape_of(call, "match", match, &ms)
                                                   : !cd_mask_shape_of(call, "match", match, &ms))
            rc = CD_ERROR;
        else w = ms.w, h = ms.h;
    } else {
        rc = cd_call_fail(call, "ValueError", "Unsupported resize type: %s", type);
    }
    cd_value *out = rc == CD_OK ? cd_img_upscale(call, in, w, h, method, crop) : NULL;
    cd_value_unref(view);
    return out ? cd_call_set_output(call, 0, out) : CD_ERROR;
}

/* ---- FluxKontextImageScale ---- */

static const int kontext_sizes[][2] = {
    {672, 1568}, {688, 1504}, {720, 1456}, {752, 1392}, {800, 1328},  {832, 1248},
    {880, 1184}, {944, 1104}, {1024, 1024}, {1104, 944}, {1184, 880}, {1248, 832},
    {1328, 800}, {1392, 752}, {1456, 720}, {1504, 688}, {1568, 672},
};

static int flux_kontext_scale(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    double aspect = (double)s.w / (double)s.h, best = INFINITY;
    int bw = 0, bh = 0;
    /* min over (|aspect - w / h|, w, h) tuples: ties go to the smaller width, then height */
    for (size_t i = 0; i < sizeof kontext_sizes / sizeof kontext_sizes[0]; i++) {
        int w = kontext_sizes[i][0], h = kontext_sizes[i][1];
        double d = fabs(aspect - (double)w / (double)h);
        if (d < best || (d == best && (w < bw || (w == bw && h < bh)))) best = d, bw = w, bh = h;
    }
    return set_upscaled(call, img, bw, bh, "lanczos", "center");
}

/* ---- ImageCrop, ImageFlip, ImageRotate ---- */

static int image_crop(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    int64_t x = cd_call_int(call, "x", 0), y = cd_call_int(call, "y", 0);
    int64_t w = cd_call_int(call, "width", 512), h = cd_call_int(call, "height", 512);
    /* x = min(x, W - 1); image[:, y:y + height, x:x + width] clipped as Python slices are */
    x = x < s.w - 1 ? x : s.w - 1;
    y = y < s.h - 1 ? y : s.h - 1;
    x = x < 0 ? 0 : x, y = y < 0 ? 0 : y;
    int64_t ow = x + w < s.w ? w : s.w - x, oh = y + h < s.h ? h : s.h - y;
    ow = ow < 0 ? 0 : ow, oh = oh < 0 ? 0 : oh;
    cd_value *out = cd_img_new(call, s.b, oh, ow, s.c);
    if (!out) return CD_ERROR;
    const float *src = cd_value_tensor_data(img);
    float *d = cd_value_tensor_data_mut(out);
    for (int64_t b = 0; b < s.b; b++)
        for (int64_t r = 0; r < oh; r++)
            memcpy(d + (b * oh + r) * ow * s.c, src + ((b * s.h + y + r) * s.w + x) * s.c,
                   (size_t)(ow * s.c) * sizeof(float));
    return cd_call_set_output(call, 0, out);
}

static int image_flip(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    const char *m = cd_call_string(call, "flip_method", "x-axis: vertically");
    if (m[0] != 'x' && m[0] != 'y') return cd_call_set_output(call, 0, cd_value_ref(img));
    cd_value *out = cd_img_new(call, s.b, s.h, s.w, s.c);
    if (!out) return CD_ERROR;
    const float *src = cd_value_tensor_data(img);
    float *d = cd_value_tensor_data_mut(out);
    for (int64_t b = 0; b < s.b; b++)
        for (int64_t y = 0; y < s.h; y++)
            for (int64_t x = 0; x < s.w; x++) {
                int64_t sy = m[0] == 'x' ? s.h - 1 - y : y, sx = m[0] == 'y' ? s.w - 1 - x : x;
                memcpy(d + ((b * s.h + y) * s.w + x) * s.c, src + ((b * s.h + sy) * s.w + sx) * s.c,
                       (size_t)s.c * sizeof(float));
            }
    return cd_call_set_output(call, 0, out);
}

static int image_rotate(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    const char *r = cd_call_string(call, "rotation", "none");
    int k = !strncmp(r, "90", 2) ? 1 : !strncmp(r, "180", 3) ? 2 : !strncmp(r, "270", 3) ? 3 : 0;
    if (k == 0) return cd_call_set_output(call, 0, cd_value_ref(img));
    /* torch.rot90(image, k, dims=[2, 1]): k = 1 turns clockwise */
    int64_t oh = k == 2 ? s.h : s.w, ow = k == 2 ? s.w : s.h;
    cd_value *out = cd_img_new(call, s.b, oh, ow, s.c);
    if (!out) return CD_ERROR;
    const float *src = cd_value_tensor_data(img);
    float *d = cd_value_tensor_data_mut(out);
    for (int64_t b = 0; b < s.b; b++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                int64_t sy, sx;
                if (k == 1) sy = s.h - 1 - j, sx = i;
                else if (k == 2) sy = s.h - 1 - i, sx = s.w - 1 - j;
                else sy = j, sx = s.w - 1 - i;
                memcpy(d + ((b * oh + i) * ow + j) * s.c, src + ((b * s.h + sy) * s.w + sx) * s.c,
                       (size_t)s.c * sizeof(float));
            }
    return cd_call_set_output(call, 0, out);
}

/* ---- ImageStitch ---- */

/* One image's block in the stitched result: the block (by, bx, bh, bw) is first filled with
 * `pad` in the image's own channels and 1.0 in the channels it gains, then the image (batch
 * index min(b, B - 1)) is copied at (by + py, bx + px). */
typedef struct {
    const cd_value *t;
    cd_img_shape s;
    int64_t by, bx, bh, bw, py, px;
} stitch_part;

static void stitch_paste(float *d, int64_t oh, int64_t ow, int64_t oc, int64_t b, const stitch_part *p, float pad) {
    for (int64_t y = 0; y < p->bh; y++)
        for (int64_t x = 0; x < p->bw; x++) {
            float *o = d + ((b * oh + p->by + y) * ow + p->bx + x) * oc;
            for (int64_t k = 0; k < oc; k++) o[k] = k < p->s.c ? pad : 1.0f;
        }
    int64_t sb = b < p->s.b ? b : p->s.b - 1;
    const float *src = cd_value_tensor_data(p->t) + sb * p->s.h * p->s.w * p->s.c;
    for (int64_t y = 0; y < p->s.h; y++)
        for (int64_t x = 0; x < p->s.w; x++)
            memcpy(d + ((b * oh + p->by + p->py + y) * ow + p->bx + p->px + x) * oc, src + (y * p->s.w + x) * p->s.c,
                   (size_t)p->s.c * sizeof(float));
}

static int image_stitch(cd_node_call *call) {
    cd_img_shape s1, s2;
    const cd_value *i1 = cd_img_input(call, "image1", &s1);
    if (!i1) return CD_ERROR;
    if (!cd_call_input(call, "image2") || cd_value_kind_of(cd_call_input(call, "image2")) == CD_VALUE_NONE)
        return cd_call_set_output(call, 0, cd_value_ref(i1));
    const cd_value *i2 = cd_img_input(call, "image2", &s2);
    if (!i2) return CD_ERROR;
    const char *dir = cd_call_string(call, "direction", "right");
    bool horiz = !strcmp(dir, "left") || !strcmp(dir, "right"), second_first = !strcmp(dir, "left") || !strcmp(dir, "up");
    const char *color = cd_call_string(call, "spacing_color", "white");
    int64_t spacing = cd_call_int(call, "spacing_width", 0);
    int64_t nb = s1.b > s2.b ? s1.b : s2.b;
    cd_value *scaled = NULL;
    if (cd_call_bool(call, "match_image_size", 1)) {
        double aspect = (double)s2.w / (double)s2.h;
        int64_t tw = horiz ? (int64_t)((double)s1.h * aspect) : s1.w, th = horiz ? s1.h : (int64_t)((double)s1.w / aspect);
        /* image2 extended to the batch size first, as the Python repeats its last image */
        cd_value *src = NULL;
        if (s2.b < nb) {
            cd_value *parts[2] = {cd_value_ref(i2), NULL};
            int64_t shape[4] = {nb - s2.b, s2.h, s2.w, s2.c};
            cd_value *rep = cd_img_new(call, shape[0], s2.h, s2.w, s2.c);
            if (!rep) {
                cd_value_unref(parts[0]);
                return CD_ERROR;
            }
            size_t per = (size_t)(s2.h * s2.w * s2.c);
            for (int64_t k = 0; k < shape[0]; k++)
                memcpy(cd_value_tensor_data_mut(rep) + per * (size_t)k, cd_value_tensor_data(i2) + per * (size_t)(s2.b - 1),
                       per * sizeof(float));
            parts[1] = rep;
            src = cd_img_cat(call, parts, 2);
            if (!src) return CD_ERROR;
        }
        scaled = cd_img_upscale(call, src ? src : i2, tw, th, "lanczos", "disabled");
        cd_value_unref(src);
        if (!scaled) return CD_ERROR;
        i2 = scaled;
        cd_img_shape_of(NULL, NULL, i2, &s2);
    }
    /* white pads with 1.0, any other colour with 0.0; the spacing takes the colour itself */
    float pad = !strcmp(color, "white") ? 1.0f : 0.0f;
    float rgb[3] = {pad, pad, pad};
    if (!strcmp(color, "red")) rgb[0] = 1.0f;
    else if (!strcmp(color, "green")) rgb[1] = 1.0f;
    else if (!strcmp(color, "blue")) rgb[2] = 1.0f;
    int64_t oc = s1.c > s2.c ? s1.c : s2.c;
    if (spacing > 0) spacing += spacing % 2;
    stitch_part p1 = {i1, s1, 0, 0, s1.h, s1.w, 0, 0}, p2 = {i2, s2, 0, 0, s2.h, s2.w, 0, 0};
    int64_t oh, ow;
    if (horiz) {
        int64_t h = s1.h > s2.h ? s1.h : s2.h;
        p1.bh = p2.bh = h;
        p1.py = (h - s1.h) / 2, p2.py = (h - s2.h) / 2;
        stitch_part *a = second_first ? &p2 : &p1, *b = second_first ? &p1 : &p2;
        b->bx = a->bw + spacing;
        oh = h, ow = a->bw + spacing + b->bw;
    } else {
        int64_t w = s1.w > s2.w ? s1.w : s2.w;
        p1.bw = p2.bw = w;
        p1.px = (w - s1.w) / 2, p2.px = (w - s2.w) / 2;
        stitch_part *a = second_first ? &p2 : &p1, *b = second_first ? &p1 : &p2;
        b->by = a->bh + spacing;
        ow = w, oh = a->bh + spacing + b->bh;
    }
    cd_value *out = cd_img_new(call, nb, oh, ow, oc);
    if (!out) {
        cd_value_unref(scaled);
        return CD_ERROR;
    }
    float *d = cd_value_tensor_data_mut(out);
    int64_t sy = horiz ? 0 : (second_first ? p2.bh : p1.bh), sx = horiz ? (second_first ? p2.bw : p1.bw) : 0;
    for (int64_t b = 0; b < nb; b++) {
        stitch_paste(d, oh, ow, oc, b, &p1, pad);
        stitch_paste(d, oh, ow, oc, b, &p2, pad);
        for (int64_t y = 0; spacing > 0 && y < (horiz ? oh : spacing); y++)
            for (int64_t x = 0; x < (horiz ? spacing : ow); x++) {
                float *o = d + ((b * oh + sy + y) * ow + sx + x) * oc;
                for (int64_t k = 0; k < oc; k++) o[k] = k < 3 ? rgb[k] : 1.0f;
            }
    }
    cd_value_unref(scaled);
    return cd_call_set_output(call, 0, out);
}

/* ---- ImagePadForOutpaint ---- */

static int pad_for_outpaint(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "image", &s);
    if (!img) return CD_ERROR;
    int64_t l = cd_call_int(call, "left", 0), t = cd_call_int(call, "top", 0), r = cd_call_int(call, "right", 0),
            bo = cd_call_int(call, "bottom", 0), f = cd_call_int(call, "feathering", 40);
    if (l < 0 || t < 0 || r < 0 || bo < 0) return cd_call_fail(call, "ValueError", "padding must not be negative");
    int64_t oh = s.h + t + bo, ow = s.w + l + r;
    cd_value *out = cd_img_new(call, s.b, oh, ow, s.c);
    /* the mask is [H, W], without a batch dimension, as ComfyUI returns it */
    int64_t mshape[2] = {oh, ow};
    cd_value *mask = out ? cd_value_tensor_new("MASK", 2, mshape) : NULL;
    if (!mask) {
        cd_value_unref(out);
        return out ? cd_call_fail(call, "MemoryError", "cannot allocate the mask") : CD_ERROR;
    }
    float *d = cd_value_tensor_data_mut(out), *m = cd_value_tensor_data_mut(mask);
    for (size_t i = 0, n = cd_value_tensor_numel(out); i < n; i++) d[i] = 0.5f;
    for (size_t i = 0, n = cd_value_tensor_numel(mask); i < n; i++) m[i] = 1.0f;
    const float *src = cd_value_tensor_data(img);
    for (int64_t b = 0; b < s.b; b++)
        for (int64_t y = 0; y < s.h; y++)
            memcpy(d + ((b * oh + t + y) * ow + l) * s.c, src + (b * s.h + y) * s.w * s.c,
                   (size_t)(s.w * s.c) * sizeof(float));
    bool feather = f > 0 && f * 2 < s.h && f * 2 < s.w;
    for (int64_t i = 0; i < s.h; i++)
        for (int64_t j = 0; j < s.w; j++) {
            float v = 0.0f;
            if (feather) {
                int64_t dt = t ? i : s.h, db = bo ? s.h - i : s.h, dl = l ? j : s.w, dr = r ? s.w - j : s.w;
                int64_t dd = dt < db ? dt : db;
                dd = dd < dl ? dd : dl;
                dd = dd < dr ? dd : dr;
                if (dd < f) {
                    double q = (double)(f - dd) / (double)f;
                    v = (float)(q * q);
                }
            }
            m[(t + i) * ow + l + j] = v;
        }
    cd_call_set_output(call, 0, out);
    return cd_call_set_output(call, 1, mask);
}

/* ---- ImageCompositeMasked ---- */

static int composite_masked(cd_node_call *call) {
    cd_img_shape ds, ss;
    const cd_value *dst = cd_img_input(call, "destination", &ds);
    const cd_value *src = dst ? cd_img_input(call, "source", &ss) : NULL;
    if (!src) return CD_ERROR;
    const cd_value *mask = cd_call_input(call, "mask");
    cd_img_shape ms = {0};
    if (mask && cd_value_kind_of(mask) == CD_VALUE_NONE) mask = NULL;
    if (mask && !cd_mask_shape_of(call, "mask", mask, &ms)) return CD_ERROR;
    int64_t x = cd_call_int(call, "x", 0), y = cd_call_int(call, "y", 0);
    cd_value *rsrc = NULL, *rmask = NULL, *mview = NULL, *fixed = NULL;
    /* node_helpers.image_alpha_fix first (the resize then sees the channels torch sees): a
     * source with more channels is cut to the destination's, one with fewer gains an opaque
     * alpha (older ComfyUI padded the destination instead, which then failed on the channel
     * mismatch) */
    if (ss.c != ds.c && (ss.c > ds.c || ss.c + 1 == ds.c)) {
        fixed = cd_img_new(call, ss.b, ss.h, ss.w, ds.c);
        if (!fixed) return CD_ERROR;
        const float *sp = cd_value_tensor_data(src);
        float *fp = cd_value_tensor_data_mut(fixed);
        for (size_t i = 0, n = (size_t)(ss.b * ss.h * ss.w); i < n; i++)
            for (int64_t k = 0; k < ds.c; k++) fp[i * (size_t)ds.c + (size_t)k] = k < ss.c ? sp[i * (size_t)ss.c + (size_t)k] : 1.0f;
        src = fixed;
        ss.c = ds.c;
    }
    if (cd_call_bool(call, "resize_source", 0)) {
        rsrc = cd_img_upscale(call, src, ds.w, ds.h, "bilinear", "disabled");
        cd_value_unref(fixed);
        fixed = NULL;
        if (!rsrc) return CD_ERROR;
        src = rsrc;
        cd_img_shape_of(NULL, NULL, src, &ss);
    }
    if (mask && (ms.h != ss.h || ms.w != ss.w)) {
        int64_t shape[3] = {ms.b, ms.h, ms.w};
        mview = cd_value_tensor_view(mask, "MASK", 3, shape, 0);
        rmask = mview ? cd_img_upscale(call, mview, ss.w, ss.h, "bilinear", "disabled") : NULL;
        cd_value_unref(mview);
        if (!rmask) {
            cd_value_unref(rsrc);
            cd_value_unref(fixed);
            return mview ? CD_ERROR : cd_call_fail(call, "MemoryError", "out of memory");
        }
        mask = rmask;
        ms.h = ss.h, ms.w = ss.w;
    }
    cd_value *out = cd_img_new(call, ds.b, ds.h, ds.w, ds.c);
    if (!out) {
        cd_value_unref(rsrc);
        cd_value_unref(rmask);
        cd_value_unref(fixed);
        return CD_ERROR;
    }
    float *d = cd_value_tensor_data_mut(out);
    memcpy(d, cd_value_tensor_data(dst), cd_value_tensor_numel(dst) * sizeof(float));
    x = x < 0 ? 0 : x > ds.w ? ds.w : x;
    y = y < 0 ? 0 : y > ds.h ? ds.h : y;
    int64_t vw = ss.w < ds.w - x ? ss.w : ds.w - x, vh = ss.h < ds.h - y ? ss.h : ds.h - y;
    const float *sp = cd_value_tensor_data(src), *mp = mask ? cd_value_tensor_data(mask) : NULL;
    for (int64_t b = 0; b < ds.b; b++) {
        int64_t sb = b % ss.b, mb = mask ? b % ms.b : 0; /* repeat_to_batch_size */
        for (int64_t r = 0; r < vh; r++)
            for (int64_t c = 0; c < vw; c++) {
                float m = mp ? mp[(mb * ms.h + r) * ms.w + c] : 1.0f;
                float *o = d + ((b * ds.h + y + r) * ds.w + x + c) * ds.c;
                const float *si = sp + ((sb * ss.h + r) * ss.w + c) * ss.c;
                for (int64_t k = 0; k < ds.c; k++) {
                    float sv = k < ss.c ? si[k] : 1.0f;
                    o[k] = m * sv + (1.0f - m) * o[k];
                }
            }
    }
    cd_value_unref(rsrc);
    cd_value_unref(rmask);
    cd_value_unref(fixed);
    return cd_call_set_output(call, 0, out);
}

/* ---- ResizeImagesByLongerEdge, ResizeImagesByShorterEdge ---- */

/* tensor_to_pil -> Image.resize(LANCZOS) -> pil_to_tensor: one image per call; a batch of more
 * fails as Image.fromarray does on a 4-D array. */
static int resize_edge(cd_node_call *call, bool longer) {
    cd_img_shape s;
    const cd_value *img = cd_img_input(call, "images", &s);
    if (!img) return CD_ERROR;
    /* Image.fromarray's refusals: a 4-D array, or one band as [H, W, 1] */
    if (s.b != 1)
        return cd_call_fail(call, "TypeError", "Cannot handle this data type: (1, 1, %lld, %lld), |u1", (long long)s.w,
                            (long long)s.c);
    if (s.c < 2 || s.c > 4)
        return cd_call_fail(call, "TypeError", "Cannot handle this data type: (1, 1, %lld), |u1", (long long)s.c);
    int64_t e = cd_call_int(call, longer ? "longer_edge" : "shorter_edge", longer ? 1024 : 512), w, h;
    if (longer ? s.w > s.h : s.w < s.h) w = e, h = (int64_t)((double)s.h * ((double)e / (double)s.w));
    else h = e, w = (int64_t)((double)s.w * ((double)e / (double)s.h));
    if (w <= 0 || h <= 0) return cd_call_fail(call, "ValueError", "height and width must be > 0");
    return set_upscaled(call, img, w, h, "lanczos", "disabled");
}

static int resize_longer(cd_node_call *call) { return resize_edge(call, true); }
static int resize_shorter(cd_node_call *call) { return resize_edge(call, false); }

/* ---- definitions ---- */

static const cd_output_def image_out[] = {{"IMAGE", NULL, 0, NULL, NULL}};
static const cd_output_def pad_out[] = {{"IMAGE", NULL, 0, NULL, NULL}, {"MASK", NULL, 0, NULL, NULL}};
static const cd_output_def resized_out[] = {{"COMFY_MATCHTYPE_V3", "resized", 0, NULL, "input_type"}};
static const cd_output_def dataset_out[] = {{"IMAGE", "images", 0, "Processed images", NULL}};

#define METHODS "[\"nearest-exact\", \"bilinear\", \"area\", \"bicubic\", \"lanczos\"]"
#define RES(name, def, lo) "\"" name "\": [\"INT\", {\"default\": " #def ", \"min\": " #lo ", \"max\": 16384, \"step\": 1}]"
#define V3 (CD_NODE_V3_INFO)
#define DEF(...) {.abi_version = CD_NODE_ABI_VERSION, __VA_ARGS__}

static const cd_node_def defs[] = {
    DEF(.name = "ImageScale", .display_name = "Upscale Image", .category = "image/upscaling", .python_module = "nodes",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\"], \"upscale_method\": [" METHODS "], " RES("width", 512, 0)
                  ", " RES("height", 512, 0) ", \"crop\": [[\"disabled\", \"center\"]]}}",
        .outputs = image_out, .n_outputs = 1, .execute = image_scale),
    DEF(.name = "ImageScaleBy", .display_name = "Upscale Image By", .category = "image/upscaling",
        .python_module = "nodes",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\"], \"upscale_method\": [" METHODS "], \"scale_by\": [\"FLOAT\", "
                  "{\"default\": 1.0, \"min\": 0.01, \"max\": 8.0, \"step\": 0.01}]}}",
        .outputs = image_out, .n_outputs = 1, .execute = image_scale_by),
    DEF(.name = "ImageScaleToMaxDimension", .category = "image/upscaling",
        .python_module = "comfy_extras.nodes_images",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}], \"upscale_method\": [\"COMBO\", {\"multiselect\": false, "
                  "\"options\": [\"area\", \"lanczos\", \"bilinear\", \"nearest-exact\", \"bilinear\", \"bicubic\"]}], " RES(
                      "largest_size", 512, 0) "}}",
        .outputs = image_out, .n_outputs = 1, .flags = V3, .execute = image_scale_to_max),
    DEF(.name = "ImageScaleToTotalPixels", .category = "image/upscaling",
        .python_module = "comfy_extras.nodes_post_processing",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}], \"upscale_method\": [\"COMBO\", {\"multiselect\": false, "
                  "\"options\": " METHODS "}], \"megapixels\": [\"FLOAT\", {\"default\": 1.0, \"min\": 0.01, \"max\": 16.0, "
                  "\"step\": 0.01}], \"resolution_steps\": [\"INT\", {\"default\": 1, \"min\": 1, \"max\": 256}]}}",
        .outputs = image_out, .n_outputs = 1, .flags = V3, .execute = image_scale_total),
    DEF(.name = "ResizeAndPadImage", .category = "image/transform", .python_module = "comfy_extras.nodes_images",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}], " RES("target_width", 512, 1) ", " RES(
                      "target_height", 512, 1) ", \"padding_color\": [\"COMBO\", {\"multiselect\": false, \"options\": "
                                               "[\"white\", \"black\"]}], \"interpolation\": [\"COMBO\", {\"multiselect\": "
                                               "false, \"options\": [\"area\", \"bicubic\", \"nearest-exact\", "
                                               "\"bilinear\", \"lanczos\"]}]}}",
        .outputs = image_out, .n_outputs = 1, .flags = V3, .execute = resize_and_pad),
    DEF(.name = "ResizeImageMaskNode", .display_name = "Resize Image/Mask", .category = "transform",
        .python_module = "comfy_extras.nodes_post_processing",
        .inputs =
            "{\"required\": {\"input\": [\"COMFY_MATCHTYPE_V3\", {\"template\": {\"template_id\": \"input_type\", "
            "\"allowed_types\": \"IMAGE,MASK\"}}], \"resize_type\": [\"COMFY_DYNAMICCOMBO_V3\", {\"options\": ["
            "{\"key\": \"scale by multiplier\", \"inputs\": {\"required\": {\"multiplier\": [\"FLOAT\", {\"default\": 1.0, "
            "\"min\": 0.01, \"max\": 8.0, \"step\": 0.01}]}}}, "
            "{\"key\": \"scale dimensions\", \"inputs\": {\"required\": {" RES("width", 512, 0) ", " RES(
                "height", 512, 0) ", \"crop\": [\"COMBO\", {\"default\": \"center\", \"multiselect\": false, \"options\": "
                                  "[\"disabled\", \"center\"]}]}}}, "
                                  "{\"key\": \"scale longer dimension\", \"inputs\": {\"required\": {" RES(
                                      "longer_size", 512, 0) "}}}, "
                                                             "{\"key\": \"scale shorter dimension\", \"inputs\": "
                                                             "{\"required\": {" RES("shorter_size", 512, 0) "}}}, "
            "{\"key\": \"scale width\", \"inputs\": {\"required\": {" RES("width", 512, 0) "}}}, "
            "{\"key\": \"scale height\", \"inputs\": {\"required\": {" RES("height", 512, 0) "}}}, "
            "{\"key\": \"scale total pixels\", \"inputs\": {\"required\": {\"megapixels\": [\"FLOAT\", {\"default\": 1.0, "
            "\"min\": 0.01, \"max\": 16.0, \"step\": 0.01}]}}}, "
            "{\"key\": \"match size\", \"inputs\": {\"required\": {\"match\": [\"IMAGE,MASK\", {}], \"crop\": [\"COMBO\", "
            "{\"default\": \"center\", \"multiselect\": false, \"options\": [\"disabled\", \"center\"]}]}}}]}], "
            "\"scale_method\": [\"COMBO\", {\"default\": \"area\", \"multiselect\": false, \"options\": " METHODS "}]}}",
        .outputs = resized_out, .n_outputs = 1, .flags = V3, .execute = resize_image_mask),
    DEF(.name = "FluxKontextImageScale", .category = "advanced/conditioning/flux",
        .python_module = "comfy_extras.nodes_flux",
        .description = "This node resizes the image to one that is more optimal for flux kontext.",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}]}}", .outputs = image_out, .n_outputs = 1, .flags = V3,
        .execute = flux_kontext_scale),
    DEF(.name = "ImageCrop", .display_name = "Image Crop", .category = "image/transform",
        .python_module = "comfy_extras.nodes_images",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}], " RES("width", 512, 1) ", " RES("height", 512, 1) ", " RES(
            "x", 0, 0) ", " RES("y", 0, 0) "}}",
        .outputs = image_out, .n_outputs = 1, .flags = V3, .execute = image_crop),
    DEF(.name = "ImageFlip", .category = "image/transform", .python_module = "comfy_extras.nodes_images",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}], \"flip_method\": [\"COMBO\", {\"multiselect\": false, "
                  "\"options\": [\"x-axis: vertically\", \"y-axis: horizontally\"]}]}}",
        .outputs = image_out, .n_outputs = 1, .flags = V3, .execute = image_flip),
    DEF(.name = "ImageRotate", .category = "image/transform", .python_module = "comfy_extras.nodes_images",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}], \"rotation\": [\"COMBO\", {\"multiselect\": false, "
                  "\"options\": [\"none\", \"90 degrees\", \"180 degrees\", \"270 degrees\"]}]}}",
        .outputs = image_out, .n_outputs = 1, .flags = V3, .execute = image_rotate),
    DEF(.name = "ImageStitch", .display_name = "Image Stitch", .category = "image/transform",
        .python_module = "comfy_extras.nodes_images",
        .description = "Stitches image2 to image1 in the specified direction.\nIf image2 is not provided, returns image1 "
                       "unchanged.\nOptional spacing can be added between images.",
        .inputs = "{\"required\": {\"image1\": [\"IMAGE\", {}], \"direction\": [\"COMBO\", {\"default\": \"right\", "
                  "\"multiselect\": false, \"options\": [\"right\", \"down\", \"left\", \"up\"]}], \"match_image_size\": "
                  "[\"BOOLEAN\", {\"default\": true}], \"spacing_width\": [\"INT\", {\"default\": 0, \"min\": 0, \"max\": "
                  "1024, \"step\": 2}], \"spacing_color\": [\"COMBO\", {\"default\": \"white\", \"multiselect\": false, "
                  "\"options\": [\"white\", \"black\", \"red\", \"green\", \"blue\"]}]}, \"optional\": {\"image2\": "
                  "[\"IMAGE\", {}]}}",
        .outputs = image_out, .n_outputs = 1, .flags = V3, .execute = image_stitch),
    DEF(.name = "ImagePadForOutpaint", .display_name = "Pad Image for Outpainting", .category = "image",
        .python_module = "nodes",
        .inputs = "{\"required\": {\"image\": [\"IMAGE\"], \"left\": [\"INT\", {\"default\": 0, \"min\": 0, \"max\": 16384, "
                  "\"step\": 8}], \"top\": [\"INT\", {\"default\": 0, \"min\": 0, \"max\": 16384, \"step\": 8}], "
                  "\"right\": [\"INT\", {\"default\": 0, \"min\": 0, \"max\": 16384, \"step\": 8}], \"bottom\": [\"INT\", "
                  "{\"default\": 0, \"min\": 0, \"max\": 16384, \"step\": 8}], \"feathering\": [\"INT\", {\"default\": 40, "
                  "\"min\": 0, \"max\": 16384, \"step\": 1}]}}",
        .outputs = pad_out, .n_outputs = 2, .execute = pad_for_outpaint),
    DEF(.name = "ImageCompositeMasked", .category = "image", .python_module = "comfy_extras.nodes_mask",
        .inputs = "{\"required\": {\"destination\": [\"IMAGE\", {}], \"source\": [\"IMAGE\", {}], " RES("x", 0, 0) ", " RES(
            "y", 0, 0) ", \"resize_source\": [\"BOOLEAN\", {\"default\": false}]}, \"optional\": {\"mask\": [\"MASK\", "
                       "{}]}}",
        .outputs = image_out, .n_outputs = 1, .flags = V3, .execute = composite_masked),
    DEF(.name = "ResizeImagesByLongerEdge", .display_name = "Resize Images by Longer Edge", .category = "dataset/image",
        .python_module = "comfy_extras.nodes_dataset",
        .inputs = "{\"required\": {\"images\": [\"IMAGE\", {\"tooltip\": \"Image to process.\"}], \"longer_edge\": "
                  "[\"INT\", {\"tooltip\": \"Target length for the longer edge.\", \"default\": 1024, \"min\": 1, "
                  "\"max\": 8192}]}}",
        .outputs = dataset_out, .n_outputs = 1, .flags = V3 | CD_NODE_EXPERIMENTAL, .execute = resize_longer),
    DEF(.name = "ResizeImagesByShorterEdge", .display_name = "Resize Images by Shorter Edge",
        .category = "dataset/image", .python_module = "comfy_extras.nodes_dataset",
        .inputs = "{\"required\": {\"images\": [\"IMAGE\", {\"tooltip\": \"Image to process.\"}], \"shorter_edge\": "
                  "[\"INT\", {\"tooltip\": \"Target length for the shorter edge.\", \"default\": 512, \"min\": 1, "
                  "\"max\": 8192}]}}",
        .outputs = dataset_out, .n_outputs = 1, .flags = V3 | CD_NODE_EXPERIMENTAL, .execute = resize_shorter),
};

int cd_nodes_image_transform_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
