/* IMAGE and MASK tensors: shape checks, allocation, batching, and the bridge to libvips. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"

bool cd_img_shape_of(cd_node_call *call, const char *input, const cd_value *v, cd_img_shape *s) {
    if (cd_value_kind_of(v) != CD_VALUE_TENSOR || cd_value_tensor_ndim(v) != 4) {
        if (call) cd_call_fail(call, "ValueError", "%s: expected an IMAGE tensor [B, H, W, C]", input);
        return false;
    }
    s->b = cd_value_tensor_dim(v, 0);
    s->h = cd_value_tensor_dim(v, 1);
    s->w = cd_value_tensor_dim(v, 2);
    s->c = cd_value_tensor_dim(v, 3);
    return true;
}

bool cd_mask_shape_of(cd_node_call *call, const char *input, const cd_value *v, cd_img_shape *s) {
    int nd = cd_value_tensor_ndim(v);
    if (cd_value_kind_of(v) != CD_VALUE_TENSOR || (nd != 2 && nd != 3)) {
        if (call) cd_call_fail(call, "ValueError", "%s: expected a MASK tensor [B, H, W]", input);
        return false;
    }
    s->b = nd == 3 ? cd_value_tensor_dim(v, 0) : 1;
    s->h = cd_value_tensor_dim(v, -2);
    s->w = cd_value_tensor_dim(v, -1);
    s->c = 1;
    return true;
}

const cd_value *cd_img_input(cd_node_call *call, const char *name, cd_img_shape *s) {
    const cd_value *v = cd_call_input(call, name);
    if (!v) {
        cd_call_fail(call, "ValueError", "%s is missing", name);
        return NULL;
    }
    return cd_img_shape_of(call, name, v, s) ? v : NULL;
}

const cd_value *cd_mask_input(cd_node_call *call, const char *name, cd_img_shape *s) {
    const cd_value *v = cd_call_input(call, name);
    if (!v) {
        cd_call_fail(call, "ValueError", "%s is missing", name);
        return NULL;
    }
    return cd_mask_shape_of(call, name, v, s) ? v : NULL;
}

cd_value *cd_img_new(cd_node_call *call, int64_t b, int64_t h, int64_t w, int64_t c) {
    int64_t shape[4] = {b, h, w, c};
    cd_value *v = cd_value_tensor_new("IMAGE", 4, shape);
    if (!v && call)
        cd_call_fail(call, "MemoryError", "cannot allocate an image of %lld x %lld x %lld x %lld", (long long)b,
                     (long long)h, (long long)w, (long long)c);
    return v;
}

cd_value *cd_mask_new(cd_node_call *call, int64_t b, int64_t h, int64_t w) {
    int64_t shape[3] = {b, h, w};
    cd_value *v = cd_value_tensor_new("MASK", 3, shape);
    if (!v && call)
        cd_call_fail(call, "MemoryError", "cannot allocate a mask of %lld x %lld x %lld", (long long)b, (long long)h,
                     (long long)w);
    return v;
}

int cd_img_fail_vips(cd_node_call *call, const char *what) {
    const char *msg = vips_error_buffer();
    char copy[512];
    snprintf(copy, sizeof copy, "%s", msg && *msg ? msg : "unknown libvips error");
    vips_error_clear();
    size_t n = strlen(copy);
    while (n && (copy[n - 1] == '\n' || copy[n - 1] == ' ')) copy[--n] = '\0';
    return cd_call_fail(call, "RuntimeError", "%s: %s", what, copy);
}

/* ---- libvips ---- */

static void release_value(VipsImage *im, void *value) {
    (void)im;
    cd_value_unref(value);
}

VipsImage *cd_img_to_vips(const cd_value *t, int64_t index) {
    cd_img_shape s;
    if (!cd_img_shape_of(NULL, NULL, t, &s) && !cd_mask_shape_of(NULL, NULL, t, &s)) return NULL;
    if (index < 0 || index >= s.b || s.w <= 0 || s.h <= 0 || s.c <= 0 || s.w > INT32_MAX || s.h > INT32_MAX)
        return NULL;
    size_t per = (size_t)(s.h * s.w * s.c);
    const float *data = cd_value_tensor_data(t) + per * (size_t)index;
    VipsImage *im = vips_image_new_from_memory(data, per * sizeof(float), (int)s.w, (int)s.h, (int)s.c,
                                               VIPS_FORMAT_FLOAT);
    if (!im) return NULL;
    /* The memory belongs to the tensor: keep it alive as long as libvips may read it. */
    cd_value *ref = cd_value_ref(t);
    g_signal_connect(im, "postclose", G_CALLBACK(release_value), ref);
    im->Type = s.c >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
    return im;
}

cd_value *cd_img_from_vips(VipsImage *im, bool as_mask) {
    VipsImage *f = NULL;
    if (vips_image_get_format(im) == VIPS_FORMAT_FLOAT) {
        f = im;
        g_object_ref(f);
    } else if (vips_cast(im, &f, VIPS_FORMAT_FLOAT, NULL)) {
        return NULL;
    }
    VipsImage *src = f;
    if (as_mask && vips_image_get_bands(f) > 1) {
        if (vips_extract_band(f, &src, 0, NULL)) {
            g_object_unref(f);
            return NULL;
        }
        g_object_unref(f);
    }
    size_t size = 0;
    float *mem = vips_image_write_to_memory(src, &size);
    int64_t h = vips_image_get_height(src), w = vips_image_get_width(src), c = vips_image_get_bands(src);
    g_object_unref(src);
    if (!mem) return NULL;
    if (as_mask) {
        int64_t shape[3] = {1, h, w};
        return cd_value_tensor_wrap("MASK", 3, shape, mem, g_free);
    }
    int64_t shape[4] = {1, h, w, c};
    return cd_value_tensor_wrap("IMAGE", 4, shape, mem, g_free);
}

cd_value *cd_img_cat(cd_node_call *call, cd_value **parts, size_t n) {
    cd_value *out = NULL;
    if (n == 0) {
        cd_call_fail(call, "ValueError", "no images to concatenate");
        return NULL;
    }
    int nd = cd_value_tensor_ndim(parts[0]);
    int64_t shape[CD_TENSOR_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) shape[d] = cd_value_tensor_dim(parts[0], d);
    shape[0] = 0;
    bool ok = nd >= 1;
    for (size_t i = 0; i < n && ok; i++) {
        ok = cd_value_tensor_ndim(parts[i]) == nd;
        for (int d = 1; d < nd && ok; d++) ok = cd_value_tensor_dim(parts[i], d) == shape[d];
        if (ok) shape[0] += cd_value_tensor_dim(parts[i], 0);
    }
    if (!ok) {
        cd_call_fail(call, "RuntimeError", "Sizes of tensors must match except in dimension 0");
        goto done;
    }
    if (n == 1) { /* nothing to copy */
        out = parts[0];
        parts[0] = NULL;
        goto done;
    }
    out = cd_value_tensor_new(cd_value_tensor_type(parts[0]), nd, shape);
    if (!out) {
        cd_call_fail(call, "MemoryError", "cannot allocate the batch");
        goto done;
    }
    float *dst = cd_value_tensor_data_mut(out);
    for (size_t i = 0; i < n; i++) {
        size_t k = cd_value_tensor_numel(parts[i]);
        memcpy(dst, cd_value_tensor_data(parts[i]), k * sizeof(float));
        dst += k;
    }
done:
    for (size_t i = 0; i < n; i++) cd_value_unref(parts[i]);
    return out;
}
