/* Tensor values: shapes and their limits, shared storage between views, who may write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "comfyd/node.h"
#include "engine/value.h"

static void test_new_tensor_is_zeroed_and_shaped(void **state) {
    (void)state;
    int64_t shape[4] = {2, 3, 4, 3};
    cd_value *t = cd_value_tensor_new("IMAGE", 4, shape);
    assert_non_null(t);
    assert_int_equal(cd_value_kind_of(t), CD_VALUE_TENSOR);
    assert_string_equal(cd_value_tensor_type(t), "IMAGE");
    assert_int_equal(cd_value_tensor_ndim(t), 4);
    assert_int_equal(cd_value_tensor_dim(t, -1), 3);
    assert_int_equal(cd_value_tensor_dim(t, 1), 3);
    assert_int_equal(cd_value_tensor_dim(t, 4), 0);
    assert_int_equal(cd_value_tensor_numel(t), 72);
    for (size_t i = 0; i < 72; i++) assert_true(cd_value_tensor_data(t)[i] == 0.0f);
    char *json = cd_value_to_json(t);
    assert_string_equal(json, "\"<IMAGE [2, 3, 4, 3]>\"");
    cd_free(json);
    cd_value_unref(t);
}

static void test_bad_shapes_are_refused(void **state) {
    (void)state;
    int64_t neg[2] = {2, -1};
    assert_null(cd_value_tensor_new("MASK", 2, neg));
    int64_t huge[3] = {INT64_MAX, INT64_MAX, 4};
    assert_null(cd_value_tensor_new("MASK", 3, huge));
    int64_t six[6] = {1, 1, 1, 1, 1, 1};
    assert_null(cd_value_tensor_new("X", 6, six));
    assert_null(cd_value_tensor_new("X", 0, six));
    int64_t empty[3] = {0, 5, 5}; /* an empty batch is a valid tensor */
    cd_value *e = cd_value_tensor_new("MASK", 3, empty);
    assert_non_null(e);
    assert_int_equal(cd_value_tensor_numel(e), 0);
    cd_value_unref(e);
}

static void test_views_share_storage_and_outlive_their_base(void **state) {
    (void)state;
    int64_t shape[3] = {3, 2, 2};
    cd_value *batch = cd_value_tensor_new("MASK", 3, shape);
    float *d = cd_value_tensor_data_mut(batch);
    for (int i = 0; i < 12; i++) d[i] = (float)i;
    int64_t one[3] = {1, 2, 2};
    cd_value *second = cd_value_tensor_view(batch, NULL, 3, one, 4);
    assert_non_null(second);
    assert_string_equal(cd_value_tensor_type(second), "MASK");
    assert_ptr_equal(cd_value_tensor_data(second), cd_value_tensor_data(batch) + 4);
    /* shared now: nobody may write */
    assert_null(cd_value_tensor_data_mut(batch));
    assert_null(cd_value_tensor_data_mut(second));
    /* a view past the end is refused */
    assert_null(cd_value_tensor_view(batch, NULL, 3, one, 9));
    assert_null(cd_value_tensor_view(second, NULL, 3, shape, 0));
    cd_value_unref(batch);
    assert_true(cd_value_tensor_data(second)[3] == 7.0f); /* the storage lives on with the view */
    int64_t as_image[4] = {1, 2, 2, 1};
    cd_value *img = cd_value_tensor_view(second, "IMAGE", 4, as_image, 0);
    assert_true(cd_value_tensor_data(img)[0] == 4.0f);
    cd_value_unref(second);
    cd_value_unref(img);
}

static int freed;
static void count_free(void *p) {
    freed++;
    free(p);
}

static void test_wrapped_memory_is_released_once(void **state) {
    (void)state;
    freed = 0;
    int64_t shape[1] = {4};
    float *mem = calloc(4, sizeof *mem);
    cd_value *t = cd_value_tensor_wrap("LATENT", 1, shape, mem, count_free);
    cd_value *r = cd_value_ref(t);
    assert_null(cd_value_tensor_data_mut(t)); /* two references */
    cd_value_unref(r);
    assert_non_null(cd_value_tensor_data_mut(t));
    cd_value_unref(t);
    assert_int_equal(freed, 1);
    /* a bad shape still releases what it was given */
    int64_t bad[1] = {-4};
    assert_null(cd_value_tensor_wrap("LATENT", 1, bad, calloc(1, sizeof(float)), count_free));
    assert_int_equal(freed, 2);
}

static void test_tensors_are_never_cache_keys(void **state) {
    (void)state;
    int64_t shape[1] = {1};
    cd_value *t = cd_value_tensor_new("IMAGE", 1, shape);
    cd_sig_builder b = {CD_BUF_INIT, false, false};
    cd_sig sig;
    cd_sig_begin(&b);
    cd_sig_value(&b, t);
    cd_sig_end(&b, &sig);
    assert_true(sig.uncacheable);
    /* an int is a key, and equal ints give equal keys */
    cd_sig again;
    cd_value *i = cd_value_int(7);
    cd_sig_begin(&b);
    cd_sig_value(&b, i);
    cd_sig_end(&b, &sig);
    cd_sig_begin(&b);
    cd_sig_value(&b, i);
    cd_sig_end(&b, &again);
    assert_false(sig.uncacheable);
    assert_true(sig.h1 == again.h1 && sig.h2 == again.h2);
    cd_sig_builder_free(&b);
    cd_value_unref(i);
    cd_value_unref(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_tensor_is_zeroed_and_shaped),
        cmocka_unit_test(test_bad_shapes_are_refused),
        cmocka_unit_test(test_views_share_storage_and_outlive_their_base),
        cmocka_unit_test(test_wrapped_memory_is_released_once),
        cmocka_unit_test(test_tensors_are_never_cache_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
