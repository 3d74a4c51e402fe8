/* specific_tests.py: lazy inputs, custom validation, IS_CHANGED, expansions, sleeping. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp.h"

/* ---- TestLazyMixImages ---- */

static int lazy_mix_check(cd_node_call *call) {
    const cd_value *mask = cd_call_input(call, "mask");
    float mn = 0, mx = 0;
    if (cd_value_kind_of(mask) == CD_VALUE_TENSOR) tp_minmax(mask, &mn, &mx);
    if (!cd_call_input(call, "image1") && (mn != 1.0f || mx != 1.0f)) cd_call_need_input(call, "image1");
    if (!cd_call_input(call, "image2") && (mn != 0.0f || mx != 0.0f)) cd_call_need_input(call, "image2");
    return CD_OK;
}

static int lazy_mix(cd_node_call *call) {
    const cd_value *mask = cd_call_input(call, "mask");
    const cd_value *i1 = cd_call_input(call, "image1"), *i2 = cd_call_input(call, "image2");
    if (cd_value_kind_of(mask) != CD_VALUE_TENSOR) return cd_call_fail(call, "AttributeError", "mask is not a tensor");
    float mn, mx;
    tp_minmax(mask, &mn, &mx);
    if (mn == 0.0f && mx == 0.0f) return cd_call_set_output(call, 0, i1 ? cd_value_ref(i1) : cd_value_none());
    if (mn == 1.0f && mx == 1.0f) return cd_call_set_output(call, 0, i2 ? cd_value_ref(i2) : cd_value_none());
    if (cd_value_kind_of(i1) != CD_VALUE_TENSOR || cd_value_kind_of(i2) != CD_VALUE_TENSOR)
        return cd_call_fail(call, "TypeError", "unsupported operand type(s) for *: 'NoneType' and 'Tensor'");
    /* mask [H,W] -> [1,H,W] -> [B,H,W,1]; broadcasting then repeats it over the channels. */
    int64_t shape[4];
    int nd = cd_value_tensor_ndim(mask);
    if (nd == 2) {
        shape[0] = 1;
        shape[1] = cd_value_tensor_dim(mask, 0);
        shape[2] = cd_value_tensor_dim(mask, 1);
    } else {
        for (int i = 0; i < 3 && i < nd; i++) shape[i] = cd_value_tensor_dim(mask, i);
    }
    shape[3] = 1;
    cd_value *m = nd <= 3 ? cd_value_tensor_view(mask, "MASK", 4, shape, 0) : cd_value_ref(mask);
    cd_value *inv = m ? tp_tensor_copy(m) : NULL;
    if (!inv) {
        cd_value_unref(m);
        return cd_call_fail(call, "RuntimeError", "out of memory");
    }
    float *d = cd_value_tensor_data_mut(inv);
    for (size_t i = 0, n = cd_value_tensor_numel(inv); i < n; i++) d[i] = 1.0f - d[i];
    cd_value *a = tp_broadcast(call, i1, inv, '*');
    cd_value *b = a ? tp_broadcast(call, i2, m, '*') : NULL;
    cd_value *r = b ? tp_broadcast(call, a, b, '+') : NULL;
    cd_value_unref(a);
    cd_value_unref(b);
    cd_value_unref(inv);
    cd_value_unref(m);
    return r ? cd_call_set_output(call, 0, r) : CD_ERROR;
}

/* ---- TestVariadicAverage ---- */

static int variadic_average(cd_node_call *call) {
    const cd_value *in[64];
    size_t n = 0;
    char name[32];
    for (;;) {
        snprintf(name, sizeof name, "input%zu", n + 1);
        const cd_value *v = cd_call_input(call, name);
        if (!v || n == 64) break;
        if (cd_value_kind_of(v) != CD_VALUE_TENSOR)
            return cd_call_fail(call, "TypeError", "expected Tensor as element %zu in argument 0", n);
        in[n++] = v;
    }
    if (!n) return cd_call_fail(call, "TypeError", "variadic_average() missing input1");
    size_t numel = cd_value_tensor_numel(in[0]);
    for (size_t k = 1; k < n; k++) {
        bool same = cd_value_tensor_ndim(in[k]) == cd_value_tensor_ndim(in[0]);
        for (int d = 0; same && d < cd_value_tensor_ndim(in[0]); d++)
            same = cd_value_tensor_dim(in[k], d) == cd_value_tensor_dim(in[0], d);
        if (!same) return cd_call_fail(call, "RuntimeError", "stack expects each tensor to be equal size");
    }
    cd_value *out = tp_tensor_copy(in[0]);
    if (!out) return cd_call_fail(call, "RuntimeError", "out of memory");
    float *o = cd_value_tensor_data_mut(out);
    for (size_t i = 0; i < numel; i++) {
        double s = 0;
        for (size_t k = 0; k < n; k++) s += cd_value_tensor_data(in[k])[i];
        o[i] = (float)(s / (double)n);
    }
    return cd_call_set_output(call, 0, out);
}

/* ---- IS_CHANGED ---- */

static int pass_image(cd_node_call *call) {
    const cd_value *v = cd_call_input(call, "image");
    return cd_call_set_output(call, 0, v ? cd_value_ref(v) : cd_value_none());
}

static cd_value *custom_is_changed_fp(cd_node_call *call) {
    return cd_call_bool(call, "should_change", 0) ? cd_value_float(NAN) : cd_value_bool(0);
}

static int scale_image(cd_node_call *call) {
    const cd_value *img = cd_call_input(call, "image");
    if (cd_value_kind_of(img) != CD_VALUE_TENSOR) return cd_call_fail(call, "TypeError", "image is not a tensor");
    cd_value *r = tp_tensor_scale(img, cd_call_float(call, "value", 1.0));
    return r ? cd_call_set_output(call, 0, r) : cd_call_fail(call, "RuntimeError", "out of memory");
}

static cd_value *is_changed_constants_fp(cd_node_call *call) {
    const cd_value *img = cd_call_input(call, "image");
    double value = cd_call_float(call, "value", 1.0);
    if (cd_value_kind_of(img) != CD_VALUE_TENSOR) return cd_value_float(value);
    double s = 0;
    size_t n = cd_value_tensor_numel(img);
    for (size_t i = 0; i < n; i++) s += cd_value_tensor_data(img)[i];
    return cd_value_float((double)(float)(n ? s / (double)n : NAN) * value);
}

/* ---- custom validation ---- */

static const char *py_type(const cd_value *v) {
    switch (cd_value_kind_of(v)) {
    case CD_VALUE_INT: return "<class 'int'>";
    case CD_VALUE_FLOAT: return "<class 'float'>";
    case CD_VALUE_BOOL: return "<class 'bool'>";
    case CD_VALUE_STRING: return "<class 'str'>";
    case CD_VALUE_TENSOR: return "<class 'torch.Tensor'>";
    case CD_VALUE_LIST: return "<class 'list'>";
    case CD_VALUE_JSON: return cd_value_json_text(v) && cd_value_json_text(v)[0] == '{' ? "<class 'dict'>" : "<class 'list'>";
    default: return "<class 'object'>";
    }
}

static int check_tensor_or_float(cd_node_call *call, bool tensor_ok) {
    static const char *names[] = {"input1", "input2"};
    for (int i = 0; i < 2; i++) {
        const cd_value *v = cd_call_input(call, names[i]);
        if (!v || cd_value_kind_of(v) == CD_VALUE_NONE) continue;
        cd_value_kind k = cd_value_kind_of(v);
        if (!(k == CD_VALUE_FLOAT || (tensor_ok && k == CD_VALUE_TENSOR)))
            return cd_call_fail(call, NULL, "Invalid type of %s: %s", names[i], py_type(v));
    }
    return CD_OK;
}

static int validate1(cd_node_call *call) { return check_tensor_or_float(call, true); }

static int validate2(cd_node_call *call) {
    if (check_tensor_or_float(call, true) != CD_OK) return CD_ERROR;
    static const char *names[] = {"input1", "input2"};
    for (int i = 0; i < 2; i++) {
        const char *t = cd_call_input_type(call, names[i]);
        if (t && strcmp(t, "IMAGE") && strcmp(t, "FLOAT"))
            return cd_call_fail(call, NULL, "Invalid type of %s: %s", names[i], t);
    }
    return CD_OK;
}

static int validate4(cd_node_call *call) { return check_tensor_or_float(call, false); }

static int validate5(cd_node_call *call) {
    const cd_value *v = cd_call_input(call, "input2");
    cd_value_kind k = cd_value_kind_of(v);
    if (v && (k == CD_VALUE_FLOAT || k == CD_VALUE_INT || k == CD_VALUE_BOOL) && cd_value_as_float(v) == 7.0)
        return cd_call_fail(call, NULL, "7s are not allowed. I've never liked 7s.");
    return CD_OK;
}

static int custom_validation_mul(cd_node_call *call) {
    cd_value *r = tp_mul_values(call, cd_call_input(call, "input1"), cd_call_input(call, "input2"));
    return r ? cd_call_set_output(call, 0, r) : CD_ERROR;
}

static int custom_validation4(cd_node_call *call) {
    cd_value *ones = tp_image_fill(1, 512, 512, 1.0f);
    cd_value *a = ones ? tp_tensor_scale(ones, cd_call_float(call, "input1", 0)) : NULL;
    cd_value *r = a ? tp_tensor_scale(a, cd_call_float(call, "input2", 0)) : NULL;
    cd_value_unref(ones);
    cd_value_unref(a);
    return r ? cd_call_set_output(call, 0, r) : cd_call_fail(call, "RuntimeError", "out of memory");
}

static int custom_validation5(cd_node_call *call) {
    double value = cd_call_float(call, "input1", 0) * cd_call_float(call, "input2", 0);
    cd_value *ones = tp_image_fill(1, 512, 512, 1.0f);
    cd_value *r = ones ? tp_tensor_scale(ones, value) : NULL;
    cd_value_unref(ones);
    return r ? cd_call_set_output(call, 0, r) : cd_call_fail(call, "RuntimeError", "out of memory");
}

/* ---- expansions ---- */

static cd_value *input_or_none(cd_node_call *call, const char *name) {
    const cd_value *v = cd_call_input(call, name);
    return v ? cd_value_ref(v) : cd_value_none();
}

/* Adds a node or fails the call; *ok turns false on the first failure. */
static const char *add(cd_node_call *call, const char *cls, bool *ok) {
    const char *id = *ok ? cd_call_graph_add(call, cls, NULL) : NULL;
    if (!id) *ok = false;
    return id;
}

static void set(cd_node_call *call, const char *id, const char *input, cd_value *v, bool *ok) {
    if (!*ok || !id) {
        cd_value_unref(v);
        return;
    }
    if (cd_call_graph_set_input(call, id, input, v) != CD_OK) *ok = false;
}

static void stub_node_inputs(cd_node_call *call, const char *id, bool *ok) {
    set(call, id, "height", cd_value_int(512), ok);
    set(call, id, "width", cd_value_int(512), ok);
    set(call, id, "batch_size", cd_value_int(1), ok);
}

static int dynamic_dependency_cycle(cd_node_call *call) {
    bool ok = true;
    const char *mask = add(call, "StubMask", &ok);
    set(call, mask, "value", cd_value_float(0.5), &ok);
    stub_node_inputs(call, mask, &ok);
    const char *mix1 = add(call, "TestLazyMixImages", &ok);
    set(call, mix1, "image1", input_or_none(call, "input1"), &ok);
    set(call, mix1, "mask", tp_link(mask, 0), &ok);
    const char *mix2 = add(call, "TestLazyMixImages", &ok);
    set(call, mix2, "image1", tp_link(mix1, 0), &ok);
    set(call, mix2, "image2", input_or_none(call, "input2"), &ok);
    set(call, mix2, "mask", tp_link(mask, 0), &ok);
    set(call, mix1, "image2", tp_link(mix2, 0), &ok); /* the cycle */
    if (!ok) return cd_call_fail(call, "RuntimeError", "cannot build the expansion");
    return cd_call_set_output(call, 0, cd_value_link(mix2, 0));
}

static int mixed_expansion_returns(cd_node_call *call) {
    double x = cd_call_float(call, "input1", 0);
    cd_value *white = tp_image_fill(1, 512, 512, 1.0f);
    if (!white) return cd_call_fail(call, "RuntimeError", "out of memory");
    if (x <= 0.1 || x <= 0.2) { /* a plain tuple, or {"result": ...}: the same to comfyd */
        cd_value *ones = tp_image_fill(1, 512, 512, 1.0f);
        cd_value *r = ones ? tp_tensor_scale(ones, x <= 0.1 ? 0.1 : 0.2) : NULL;
        cd_value_unref(ones);
        cd_call_set_output(call, 1, white);
        return r ? cd_call_set_output(call, 0, r) : cd_call_fail(call, "RuntimeError", "out of memory");
    }
    bool ok = true;
    const char *mask = add(call, "StubMask", &ok);
    set(call, mask, "value", cd_value_float(0.3), &ok);
    stub_node_inputs(call, mask, &ok);
    const char *black = add(call, "StubImage", &ok);
    set(call, black, "content", cd_value_string("BLACK"), &ok);
    stub_node_inputs(call, black, &ok);
    const char *wnode = add(call, "StubImage", &ok);
    set(call, wnode, "content", cd_value_string("WHITE"), &ok);
    stub_node_inputs(call, wnode, &ok);
    const char *mix = add(call, "TestLazyMixImages", &ok);
    set(call, mix, "image1", tp_link(black, 0), &ok);
    set(call, mix, "image2", tp_link(wnode, 0), &ok);
    set(call, mix, "mask", tp_link(mask, 0), &ok);
    if (!ok) {
        cd_value_unref(white);
        return cd_call_fail(call, "RuntimeError", "cannot build the expansion");
    }
    cd_call_set_output(call, 1, white);
    return cd_call_set_output(call, 0, cd_value_link(mix, 0));
}

static int sampling_in_expansion(cd_node_call *call) {
    bool ok = true;
    const char *pos = add(call, "CLIPTextEncode", &ok);
    set(call, pos, "text", input_or_none(call, "prompt"), &ok);
    set(call, pos, "clip", input_or_none(call, "clip"), &ok);
    const char *neg = add(call, "CLIPTextEncode", &ok);
    set(call, neg, "text", input_or_none(call, "negative_prompt"), &ok);
    set(call, neg, "clip", input_or_none(call, "clip"), &ok);
    const char *lat = add(call, "EmptyLatentImage", &ok);
    set(call, lat, "width", cd_value_int(512), &ok);
    set(call, lat, "height", cd_value_int(512), &ok);
    set(call, lat, "batch_size", cd_value_int(1), &ok);
    const char *ks = add(call, "KSampler", &ok);
    set(call, ks, "model", input_or_none(call, "model"), &ok);
    set(call, ks, "positive", tp_link(pos, 0), &ok);
    set(call, ks, "negative", tp_link(neg, 0), &ok);
    set(call, ks, "latent_image", tp_link(lat, 0), &ok);
    set(call, ks, "seed", input_or_none(call, "seed"), &ok);
    set(call, ks, "steps", input_or_none(call, "steps"), &ok);
    set(call, ks, "cfg", input_or_none(call, "cfg"), &ok);
    set(call, ks, "sampler_name", cd_value_string("euler_ancestral"), &ok);
    set(call, ks, "scheduler", cd_value_string("normal"), &ok);
    const char *dec = add(call, "VAEDecode", &ok);
    set(call, dec, "samples", tp_link(ks, 0), &ok);
    set(call, dec, "vae", input_or_none(call, "vae"), &ok);
    if (!ok) return cd_call_fail(call, "RuntimeError", "cannot build the sampling expansion");
    return cd_call_set_output(call, 0, cd_value_link(dec, 0));
}

/* ---- sleeping ---- */

static int test_sleep(cd_node_call *call) {
    int rc = tp_sleep(call, cd_call_float(call, "seconds", 1.0), true);
    if (rc != CD_OK) return rc;
    return cd_call_set_output(call, 0, input_or_none(call, "value"));
}
/* `async def sleep`: several TestSleeps of a prompt sleep at the same time. */
TP_ASYNC(test_sleep_async, test_sleep)

static int parallel_sleep(cd_node_call *call) {
    bool ok = true;
    const char *s[3];
    for (int i = 0; i < 3; i++) {
        char img[16], sec[16];
        snprintf(img, sizeof img, "image%d", i + 1);
        snprintf(sec, sizeof sec, "sleep%d", i + 1);
        s[i] = add(call, "TestSleep", &ok);
        set(call, s[i], "value", input_or_none(call, img), &ok);
        set(call, s[i], "seconds", input_or_none(call, sec), &ok);
    }
    const char *avg = add(call, "TestVariadicAverage", &ok);
    for (int i = 0; i < 3; i++) {
        char in[16];
        snprintf(in, sizeof in, "input%d", i + 1);
        set(call, avg, in, ok ? cd_value_link(s[i], 0) : NULL, &ok);
    }
    if (!ok) return cd_call_fail(call, "RuntimeError", "cannot build the expansion");
    return cd_call_set_output(call, 0, cd_value_link(avg, 0));
}

/* ---- definitions ---- */

static const cd_output_def out_image[] = {{"IMAGE", NULL, 0, NULL, NULL}};
static const cd_output_def out_image2[] = {{"IMAGE", NULL, 0, NULL, NULL}, {"IMAGE", NULL, 0, NULL, NULL}};
static const cd_output_def out_any[] = {{"*", NULL, 0, NULL, NULL}};
static const char *const variant3[] = {"input1", "IMAGE,FLOAT", "input2", "IMAGE,FLOAT", NULL};

#define IMAGE_OR_FLOAT "{\"required\": {\"input1\": [\"IMAGE,FLOAT\"], \"input2\": [\"IMAGE,FLOAT\"]}}"
#define BASE(cls, disp, cat) \
    .abi_version = CD_NODE_ABI_VERSION, .name = cls, .display_name = disp, .category = cat, .python_module = TP_MODULE

static const cd_node_def defs[] = {
    {BASE("TestLazyMixImages", "Lazy Mix Images", "Testing/Nodes"),
     .inputs = "{\"required\": {\"image1\": [\"IMAGE\", {\"lazy\": true}], \"image2\": [\"IMAGE\", {\"lazy\": true}], "
               "\"mask\": [\"MASK\"]}}",
     .outputs = out_image, .n_outputs = 1, .execute = lazy_mix, .check_lazy_status = lazy_mix_check},
    {BASE("TestVariadicAverage", "Variadic Average", "Testing/Nodes"),
     .inputs = "{\"required\": {\"input1\": [\"IMAGE\"]}}", .outputs = out_image, .n_outputs = 1,
     .execute = variadic_average},
    {BASE("TestCustomIsChanged", "Custom IsChanged", "Testing/Nodes"),
     .inputs = "{\"required\": {\"image\": [\"IMAGE\"]}, \"optional\": {\"should_change\": [\"BOOL\", {\"default\": "
               "false}]}}",
     .outputs = out_image, .n_outputs = 1, .execute = pass_image, .fingerprint = custom_is_changed_fp},
    {BASE("TestIsChangedWithConstants", "IsChanged With Constants", "Testing/Nodes"),
     .inputs = "{\"required\": {\"image\": [\"IMAGE\"], \"value\": [\"FLOAT\", {\"default\": 1.0, \"min\": 0.0, "
               "\"max\": 10.0}]}}",
     .outputs = out_image, .n_outputs = 1, .execute = scale_image, .fingerprint = is_changed_constants_fp},
    {BASE("TestCustomValidation1", "Custom Validation 1", "Testing/Nodes"), .inputs = IMAGE_OR_FLOAT,
     .outputs = out_image, .n_outputs = 1, .execute = custom_validation_mul, .validate_inputs = validate1,
     .validate_inputs_args = "input1, input2"},
    {BASE("TestCustomValidation2", "Custom Validation 2", "Testing/Nodes"), .inputs = IMAGE_OR_FLOAT,
     .outputs = out_image, .n_outputs = 1, .execute = custom_validation_mul, .validate_inputs = validate2,
     .validate_inputs_args = "input_types, input1, input2"},
    {BASE("TestCustomValidation3", "Custom Validation 3", "Testing/Nodes"), .inputs = IMAGE_OR_FLOAT,
     .outputs = out_image, .n_outputs = 1, .execute = custom_validation_mul, TP_VARIANT, .user = (void *)variant3},
    {BASE("TestCustomValidation4", "Custom Validation 4", "Testing/Nodes"),
     .inputs = "{\"required\": {\"input1\": [\"FLOAT\"], \"input2\": [\"FLOAT\"]}}", .outputs = out_image,
     .n_outputs = 1, .execute = custom_validation4, .validate_inputs = validate4,
     .validate_inputs_args = "input1, input2"},
    {BASE("TestCustomValidation5", "Custom Validation 5", "Testing/Nodes"),
     .inputs = "{\"required\": {\"input1\": [\"FLOAT\", {\"min\": 0.0, \"max\": 1.0}], \"input2\": [\"FLOAT\", "
               "{\"min\": 0.0, \"max\": 1.0}]}}",
     .outputs = out_image, .n_outputs = 1, .execute = custom_validation5, .validate_inputs = validate5,
     .validate_inputs_args = "**kwargs"},
    {BASE("TestDynamicDependencyCycle", "Dynamic Dependency Cycle", "Testing/Nodes"),
     .inputs = "{\"required\": {\"input1\": [\"IMAGE\"], \"input2\": [\"IMAGE\"]}}", .outputs = out_image,
     .n_outputs = 1, .execute = dynamic_dependency_cycle},
    {BASE("TestMixedExpansionReturns", "Mixed Expansion Returns", "Testing/Nodes"),
     .inputs = "{\"required\": {\"input1\": [\"FLOAT\"]}}", .outputs = out_image2, .n_outputs = 2,
     .execute = mixed_expansion_returns},
    {BASE("TestSamplingInExpansion", "Sampling In Expansion", "Testing/Nodes"),
     .inputs = "{\"required\": {\"model\": [\"MODEL\"], \"clip\": [\"CLIP\"], \"vae\": [\"VAE\"], "
               "\"seed\": [\"INT\", {\"default\": 0, \"min\": 0, \"max\": 1.8446744073709552e+19}], "
               "\"steps\": [\"INT\", {\"default\": 20, \"min\": 1, \"max\": 100}], "
               "\"cfg\": [\"FLOAT\", {\"default\": 7.0, \"min\": 0.0, \"max\": 30.0}], "
               "\"prompt\": [\"STRING\", {\"multiline\": true, \"default\": \"a beautiful landscape with mountains "
               "and trees\"}], \"negative_prompt\": [\"STRING\", {\"multiline\": true, \"default\": \"blurry, bad "
               "quality, worst quality\"}]}}",
     .outputs = out_image, .n_outputs = 1, .execute = sampling_in_expansion},
    {BASE("TestSleep", "Test Sleep", "_for_testing"),
     .inputs = "{\"required\": {\"value\": [\"*\", {}], \"seconds\": [\"FLOAT\", {\"default\": 1.0, \"min\": 0.0, "
               "\"max\": 9999.0, \"step\": 0.01, \"tooltip\": \"The amount of seconds to sleep.\"}]}, "
               "\"hidden\": {\"unique_id\": \"UNIQUE_ID\"}}",
     .outputs = out_any, .n_outputs = 1, .execute_async = test_sleep_async},
    {BASE("TestParallelSleep", "Test Parallel Sleep", "_for_testing"),
     .inputs = "{\"required\": {\"image1\": [\"IMAGE\"], \"image2\": [\"IMAGE\"], \"image3\": [\"IMAGE\"], "
               "\"sleep1\": [\"FLOAT\", {\"default\": 0.5, \"min\": 0.0, \"max\": 10.0, \"step\": 0.01}], "
               "\"sleep2\": [\"FLOAT\", {\"default\": 0.5, \"min\": 0.0, \"max\": 10.0, \"step\": 0.01}], "
               "\"sleep3\": [\"FLOAT\", {\"default\": 0.5, \"min\": 0.0, \"max\": 10.0, \"step\": 0.01}]}, "
               "\"hidden\": {\"unique_id\": \"UNIQUE_ID\"}}",
     .outputs = out_image, .n_outputs = 1, .flags = CD_NODE_OUTPUT, .execute = parallel_sleep},
    {BASE("TestOutputNodeWithSocketOutput", "Test Output Node With Socket Output", "_for_testing"),
     .inputs = "{\"required\": {\"image\": [\"IMAGE\"], \"value\": [\"FLOAT\", {\"default\": 1.0, \"min\": 0.0, "
               "\"max\": 10.0}]}}",
     .outputs = out_image, .n_outputs = 1, .flags = CD_NODE_OUTPUT, .execute = scale_image},
};

void tp_register_specific(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
}
