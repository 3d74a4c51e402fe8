/* base/arena: the bump allocator behind prompts and runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"

static void allocations_are_aligned_distinct_and_usable(void **state) {
    (void)state;
    cd_arena a = CD_ARENA_INIT;
    char *prev = NULL;
    /* enough small blocks to fill several chunks, plus one larger than any chunk */
    for (size_t i = 0; i < 20000; i++) {
        size_t n = 1 + i % 61;
        char *p = cd_arena_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        memset(p, (int)(i & 0xff), n); /* ASan would object to writing outside a block */
        assert_true(p != prev);
        prev = p;
    }
    unsigned char *big = cd_arena_alloc(&a, 3u * 1024 * 1024);
    assert_non_null(big);
    big[0] = 1;
    big[3u * 1024 * 1024 - 1] = 2;
    unsigned char *z = cd_arena_calloc(&a, 4096);
    for (size_t i = 0; i < 4096; i++) assert_int_equal(z[i], 0);
    char *s = cd_arena_strdup(&a, "node 42");
    assert_string_equal(s, "node 42");
    cd_arena_free(&a);
    /* usable again after a free, and freeing an empty arena is fine */
    assert_non_null(cd_arena_alloc(&a, 8));
    cd_arena_free(&a);
    cd_arena_free(&a);
}

static void blocks_do_not_overlap(void **state) {
    (void)state;
    cd_arena a = CD_ARENA_INIT;
    enum { N = 3000 };
    uint32_t *blocks[N];
    for (uint32_t i = 0; i < N; i++) {
        blocks[i] = cd_arena_alloc(&a, (1 + i % 7) * sizeof(uint32_t));
        for (uint32_t k = 0; k < 1 + i % 7; k++) blocks[i][k] = i;
    }
    for (uint32_t i = 0; i < N; i++)
        for (uint32_t k = 0; k < 1 + i % 7; k++) assert_int_equal(blocks[i][k], i);
    assert_null(cd_arena_alloc(&a, SIZE_MAX - 8));
    cd_arena_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(allocations_are_aligned_distinct_and_usable),
        cmocka_unit_test(blocks_do_not_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
