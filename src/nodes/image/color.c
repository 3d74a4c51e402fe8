/* ImageRGBToYUV and ImageYUVToRGB (comfy_extras.nodes_morphology): kornia.color's YCbCr
 * conversions, each of Y, U and V travelling as a grey IMAGE (the channel repeated three times).
 *
 *   Y  = 0.299 R + 0.587 G + 0.114 B        R = Y + 1.403 (Cr - 0.5)
 *   Cb = (B - Y) * 0.564 + 0.5              G = Y - 0.714 (Cr - 0.5) - 0.344 (Cb - 0.5)
 *   Cr = (R - Y) * 0.713 + 0.5              B = Y + 1.773 (Cb - 0.5)
 *
 * in float32, in kornia's order of operations, so the values are ComfyUI's to the bit (the mean
 * over the channels that ImageYUVToRGB takes first is the float32 sum divided by the count, as
 * torch.mean computes it for three values). An RGBA input converts its RGB, as recent ComfyUI
 * does (image[..., :3]); the snapshot's kornia call would refuse four channels.
 */
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"

static int rgb_to_yuv(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *in = cd_img_input(call, "image", &s);
    if (!in) return CD_ERROR;
    if (s.c < 3) return cd_call_fail(call, "ValueError", "Input size must have a shape of (*, 3, H, W). Got %lld channels", (long long)s.c);
    cd_value *out[3];
    for (int i = 0; i < 3; i++) {
        out[i] = cd_img_new(call, s.b, s.h, s.w, 3);
        if (!out[i]) {
            while (i--) cd_value_unref(out[i]);
            return CD_ERROR;
        }
    }
    const float *src = cd_value_tensor_data(in);
    float *y = cd_value_tensor_data_mut(out[0]), *u = cd_value_tensor_data_mut(out[1]),
          *v = cd_value_tensor_data_mut(out[2]);
    size_t n = (size_t)(s.b * s.h * s.w);
    for (size_t i = 0; i < n; i++) {
        const float *p = src + i * (size_t)s.c;
        float r = p[0], g = p[1], b = p[2];
        float yy = 0.299f * r + 0.587f * g + 0.114f * b;
        float cb = (b - yy) * 0.564f + 0.5f;
        float cr = (r - yy) * 0.713f + 0.5f;
        for (int c = 0; c < 3; c++) {
            y[i * 3 + (size_t)c] = yy;
            u[i * 3 + (size_t)c] = cb;
            v[i * 3 + (size_t)c] = cr;
        }
    }
    for (int i = 0; i < 3; i++) cd_call_set_output(call, i, out[i]);
    return CD_OK;
}

/* torch.mean(x[..., :3], dim=-1): float32 sum in order, divided by the count */
static inline float channel_mean(const float *p, int64_t c) {
    int64_t k = c < 3 ? c : 3;
    float sum = 0.0f;
    for (int64_t i = 0; i < k; i++) sum += p[i];
    return sum / (float)k;
}

static int yuv_to_rgb(cd_node_call *call) {
    cd_img_shape sy, su, sv;
    const cd_value *y = cd_img_input(call, "Y", &sy);
    if (!y) return CD_ERROR;
    const cd_value *u = cd_img_input(call, "U", &su);
    if (!u) return CD_ERROR;
    const cd_value *v = cd_img_input(call, "V", &sv);
    if (!v) return CD_ERROR;
    if (sy.b != su.b || sy.b != sv.b || sy.h != su.h || sy.h != sv.h || sy.w != su.w || sy.w != sv.w)
        return cd_call_fail(call, "RuntimeError",
                            "Sizes of tensors must match except in dimension 3: Y is [%lld, %lld, %lld], U [%lld, "
                            "%lld, %lld], V [%lld, %lld, %lld]",
                            (long long)sy.b, (long long)sy.h, (long long)sy.w, (long long)su.b, (long long)su.h,
                            (long long)su.w, (long long)sv.b, (long long)sv.h, (long long)sv.w);
    if (sy.c < 1 || su.c < 1 || sv.c < 1) return cd_call_fail(call, "ValueError", "Y, U and V need at least one channel");
    cd_value *out = cd_img_new(call, sy.b, sy.h, sy.w, 3);
    if (!out) return CD_ERROR;
    const float *py = cd_value_tensor_data(y), *pu = cd_value_tensor_data(u), *pv = cd_value_tensor_data(v);
    float *o = cd_value_tensor_data_mut(out);
    size_t n = (size_t)(sy.b * sy.h * sy.w);
    for (size_t i = 0; i < n; i++) {
        float yy = channel_mean(py + i * (size_t)sy.c, sy.c);
        float cb = channel_mean(pu + i * (size_t)su.c, su.c) - 0.5f;
        float cr = channel_mean(pv + i * (size_t)sv.c, sv.c) - 0.5f;
        o[i * 3] = yy + 1.403f * cr;
        o[i * 3 + 1] = yy - 0.714f * cr - 0.344f * cb;
        o[i * 3 + 2] = yy + 1.773f * cb;
    }
    return cd_call_set_output(call, 0, out);
}

static const cd_output_def yuv_out[] = {
    {"IMAGE", "Y", 0, NULL, NULL}, {"IMAGE", "U", 0, NULL, NULL}, {"IMAGE", "V", 0, NULL, NULL}};
static const cd_output_def image_out[] = {{"IMAGE", NULL, 0, NULL, NULL}};

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "ImageRGBToYUV", .category = "image/batch",
     .python_module = "comfy_extras.nodes_morphology", .inputs = "{\"required\": {\"image\": [\"IMAGE\", {}]}}",
     .outputs = yuv_out, .n_outputs = 3, .flags = CD_NODE_V3_INFO, .execute = rgb_to_yuv},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "ImageYUVToRGB", .category = "image/batch",
     .python_module = "comfy_extras.nodes_morphology",
     .inputs = "{\"required\": {\"Y\": [\"IMAGE\", {}], \"U\": [\"IMAGE\", {}], \"V\": [\"IMAGE\", {}]}}",
     .outputs = image_out, .n_outputs = 1, .flags = CD_NODE_V3_INFO, .execute = yuv_to_rgb},
};

int cd_nodes_image_color_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
