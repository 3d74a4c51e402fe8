/* base/map: the string-keyed hash map that indexes prompts, caches and registries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"

#define N 5000

static void set_get_replace(void **state) {
    (void)state;
    cd_map *m = cd_map_new();
    char key[32];
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof key, "node-%lu", (unsigned long)i);
        assert_int_equal(cd_map_set(m, key, (void *)(i + 1)), 0);
    }
    assert_int_equal(cd_map_size(m), N);
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof key, "node-%lu", (unsigned long)i);
        assert_ptr_equal(cd_map_get(m, key), (void *)(i + 1));
    }
    assert_null(cd_map_get(m, "node-5000"));
    assert_null(cd_map_get(m, ""));
    /* replacing keeps the size */
    assert_int_equal(cd_map_set(m, "node-7", (void *)99), 0);
    assert_ptr_equal(cd_map_get(m, "node-7"), (void *)99);
    assert_int_equal(cd_map_size(m), N);
    /* keys are copied: the caller's buffer may change */
    snprintf(key, sizeof key, "mutable");
    cd_map_set(m, key, (void *)1);
    key[0] = 'X';
    assert_ptr_equal(cd_map_get(m, "mutable"), (void *)1);
    assert_null(cd_map_get(m, key));
    cd_map_free(m);
}

static void remove_leaves_others_reachable(void **state) {
    (void)state;
    cd_map *m = cd_map_new();
    char key[32];
    for (uintptr_t i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "%lu", (unsigned long)i);
        cd_map_set(m, key, (void *)(i + 1));
    }
    for (uintptr_t i = 0; i < 200; i += 2) {
        snprintf(key, sizeof key, "%lu", (unsigned long)i);
        assert_ptr_equal(cd_map_remove(m, key), (void *)(i + 1));
    }
    assert_null(cd_map_remove(m, "0"));
    assert_int_equal(cd_map_size(m), 100);
    for (uintptr_t i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "%lu", (unsigned long)i);
        if (i % 2) assert_ptr_equal(cd_map_get(m, key), (void *)(i + 1));
        else assert_null(cd_map_get(m, key));
    }
    /* many insert/remove rounds reuse tombstones without growing without bound */
    for (int round = 0; round < 50; round++) {
        for (uintptr_t i = 0; i < 100; i++) {
            snprintf(key, sizeof key, "r%d-%lu", round, (unsigned long)i);
            cd_map_set(m, key, (void *)1);
        }
        for (uintptr_t i = 0; i < 100; i++) {
            snprintf(key, sizeof key, "r%d-%lu", round, (unsigned long)i);
            assert_non_null(cd_map_remove(m, key));
        }
    }
    assert_int_equal(cd_map_size(m), 100);
    void **values = cd_map_values(m);
    assert_non_null(values);
    uintptr_t sum = 0;
    for (size_t i = 0; i < 100; i++) sum += (uintptr_t)values[i];
    assert_int_equal(sum, 100 * 101); /* the odd i+1 values: 2, 4, ..., 200 */
    free(values);
    cd_map_free(m);
}

static void borrowed_keys_and_reserve(void **state) {
    (void)state;
    cd_map *m = cd_map_new_borrowed();
    assert_int_equal(cd_map_reserve(m, N), 0);
    char (*keys)[16] = malloc(N * sizeof *keys);
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "%lu", (unsigned long)i);
        assert_int_equal(cd_map_set(m, keys[i], (void *)(i + 1)), 0);
    }
    /* the map holds the caller's pointers: a lookup by an equal string finds them */
    assert_ptr_equal(cd_map_get(m, "4999"), (void *)5000);
    assert_ptr_equal(cd_map_remove(m, "0"), (void *)1);
    assert_int_equal(cd_map_size(m), N - 1);
    cd_map_free(m); /* frees no key */
    free(keys);
    cd_map *empty = cd_map_new_borrowed();
    assert_null(cd_map_values(empty));
    cd_map_free(empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_get_replace),
        cmocka_unit_test(remove_leaves_others_reachable),
        cmocka_unit_test(borrowed_keys_and_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
