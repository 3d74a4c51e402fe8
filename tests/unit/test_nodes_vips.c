/* The nodes generated from libvips' introspection: what is exposed (and what never is), their
 * inputs as read from the GParamSpecs, and running them on small tensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "node_call.h"

int cd_nodes_vips_init(cd_pack *pack);

static int setup(void **state) {
    cd_registry *reg = cd_registry_new();
    if (cd_registry_add_pack(reg, "vips", "comfyd.nodes_vips", cd_nodes_vips_init) < 100) return -1;
    *state = reg;
    return 0;
}

/* A 1 x h x w x 3 IMAGE whose pixels are given as 0..255 levels. */
static cd_value *image_of(int64_t b, int64_t h, int64_t w, const unsigned char *levels) {
    int64_t shape[4] = {b, h, w, 3};
    cd_value *v = cd_value_tensor_new("IMAGE", 4, shape);
    float *d = cd_value_tensor_data_mut(v);
    for (int64_t i = 0; i < b * h * w * 3; i++) d[i] = (float)levels[i] / 255.0f;
    return v;
}

static void test_no_file_or_command_operations(void **state) {
    const cd_registry *reg = *state;
    static const char *words[] = {"Load", "Save", "System", "Print", "Profile", "Icc", "Cache", "Sequential"};
    size_t n = cd_registry_count(reg);
    assert_true(n >= 100);
    for (size_t i = 0; i < n; i++) {
        const char *name = cd_registry_at(reg, i)->def->name;
        for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
            if (strstr(name, words[k])) fail_msg("%s is exposed", name);
        if (!strncmp(name, "VipsThumbnail", 13) && strcmp(name, "VipsThumbnailImage")) fail_msg("%s is exposed", name);
        if (!strncmp(name, "VipsDraw", 8)) fail_msg("%s draws in place and is exposed", name);
        /* no input that names a file */
        const cd_node_type *t = cd_registry_at(reg, i);
        for (size_t k = 0; k < t->n_inputs; k++)
            if (strstr(t->inputs[k].name, "file")) fail_msg("%s.%s names a file", name, t->inputs[k].name);
    }
    assert_null(cd_registry_get(reg, "VipsSystem"));
    assert_null(cd_registry_get(reg, "VipsPngsave"));
    assert_non_null(cd_registry_get(reg, "VipsThumbnailImage"));
}

static void test_inputs_come_from_introspection(void **state) {
    const cd_node_type *t = cd_registry_get(*state, "VipsGaussblur");
    assert_non_null(t);
    assert_string_equal(json_string_value(json_object_get(t->info, "category")), "vips/convolution");
    const cd_input_def *sigma = cd_node_type_input(t, "sigma");
    assert_non_null(sigma);
    assert_string_equal(sigma->type, "FLOAT");
    assert_int_equal(sigma->section, CD_INPUT_REQUIRED);
    assert_true(fabs(json_number_value(json_object_get(sigma->options, "default")) - 1.5) < 1e-9);
    const cd_input_def *precision = cd_node_type_input(t, "precision");
    assert_non_null(precision);
    assert_int_equal(precision->section, CD_INPUT_OPTIONAL);
    assert_non_null(precision->combo);
    assert_string_equal(json_string_value(json_array_get(precision->combo, 0)), "integer");
    /* min-ampl becomes min_ampl */
    assert_non_null(cd_node_type_input(t, "min_ampl"));
}

static void test_invert_runs_per_image_of_a_batch(void **state) {
    static const unsigned char px[] = {0, 10, 255, 100, 128, 7, /* second image */ 1, 2, 3, 4, 5, 6};
    run_t r;
    run(&r, *state, "VipsInvert", "in", image_of(2, 1, 2, px), NULL);
    assert_int_equal(r.rc, CD_OK);
    const cd_value *out = r.call.outputs[0];
    assert_int_equal(cd_value_tensor_dim(out, 0), 2);
    assert_int_equal(cd_value_tensor_dim(out, 3), 3);
    const float *d = cd_value_tensor_data(out);
    for (int i = 0; i < 12; i++) assert_true(fabsf(d[i] - (float)(255 - px[i]) / 255.0f) < 1e-6f);
    run_end(&r);
}

static void test_scalar_output_and_number_lists(void **state) {
    static const unsigned char px[] = {0, 30, 60, 90, 120, 150};
    run_t r;
    run(&r, *state, "VipsAvg", "in", image_of(1, 1, 2, px), NULL);
    assert_int_equal(r.rc, CD_OK);
    assert_true(fabs(cd_value_as_float(r.call.outputs[0]) - 75.0) < 1e-9);
    run_end(&r);
    run(&r, *state, "VipsLinear", "in", image_of(1, 1, 2, px), "a", cd_value_string("1"), "b",
        cd_value_string("10, 20, 30"), NULL);
    assert_int_equal(r.rc, CD_OK);
    const float *d = cd_value_tensor_data(r.call.outputs[0]);
    assert_true(fabsf(d[0] - 10.0f / 255.0f) < 1e-6f);
    assert_true(fabsf(d[4] - 140.0f / 255.0f) < 1e-6f);
    run_end(&r);
    run(&r, *state, "VipsLinear", "in", image_of(1, 1, 2, px), "a", cd_value_string("one"), "b", cd_value_string("0"),
        NULL);
    assert_int_equal(r.rc, CD_ERROR);
    assert_non_null(strstr(r.call.error_message, "numbers separated by commas"));
    run_end(&r);
}

static void test_create_operation_and_enum(void **state) {
    run_t r;
    run(&r, *state, "VipsBlack", "width", cd_value_int(3), "height", cd_value_int(2), NULL);
    assert_int_equal(r.rc, CD_OK);
    const cd_value *out = r.call.outputs[0];
    assert_int_equal(cd_value_tensor_dim(out, 1), 2);
    assert_int_equal(cd_value_tensor_dim(out, 2), 3);
    assert_int_equal(cd_value_tensor_dim(out, 3), 3); /* one band spread to RGB */
    run_end(&r);
    static const unsigned char px[] = {1, 2, 3, 4, 5, 6};
    run(&r, *state, "VipsFlip", "in", image_of(1, 1, 2, px), "direction", cd_value_string("horizontal"), NULL);
    assert_int_equal(r.rc, CD_OK);
    const float *d = cd_value_tensor_data(r.call.outputs[0]);
    assert_true(fabsf(d[0] - 4.0f / 255.0f) < 1e-6f);
    run_end(&r);
    run(&r, *state, "VipsFlip", "in", image_of(1, 1, 2, px), "direction", cd_value_string("sideways"), NULL);
    assert_int_equal(r.rc, CD_ERROR);
    run_end(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_file_or_command_operations),
        cmocka_unit_test(test_inputs_come_from_introspection),
        cmocka_unit_test(test_invert_runs_per_image_of_a_batch),
        cmocka_unit_test(test_scalar_output_and_number_lists),
        cmocka_unit_test(test_create_operation_and_enum),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
