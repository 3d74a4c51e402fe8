#include "base/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cd_arena_chunk {
    cd_arena_chunk *next;
    alignas(max_align_t) char data[];
};

/* Chunks start at 16 KiB and double with the arena (up to 1 MiB), so a prompt of 100,000 nodes
 * takes a few dozen chunks and one of ten nodes one small one. */
#define FIRST_CHUNK (16u * 1024)
#define MAX_CHUNK (1024u * 1024)

static size_t round_up(size_t n) {
    size_t a = alignof(max_align_t);
    return (n + a - 1) & ~(a - 1);
}

static void *alloc_slow(cd_arena *a, size_t n) {
    size_t size = a->chunks ? (size_t)(a->end - a->chunks->data) * 2 : FIRST_CHUNK;
    if (size > MAX_CHUNK) size = MAX_CHUNK;
    if (size < n) size = n; /* a large block gets a chunk of its own */
    cd_arena_chunk *c = malloc(sizeof *c + size);
    if (!c) return NULL;
    c->next = a->chunks;
    a->chunks = c;
    a->next = c->data + n;
    a->end = c->data + size;
    return c->data;
}

void *cd_arena_alloc(cd_arena *a, size_t n) {
    if (n > SIZE_MAX / 2) return NULL;
    n = round_up(n ? n : 1);
    if ((size_t)(a->end - a->next) >= n && a->next) {
        void *p = a->next;
        a->next += n;
        return p;
    }
    return alloc_slow(a, n);
}

void *cd_arena_calloc(cd_arena *a, size_t n) {
    void *p = cd_arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

char *cd_arena_strdup(cd_arena *a, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = cd_arena_alloc(a, n);
    if (p) memcpy(p, s, n);
    return p;
}

void cd_arena_free(cd_arena *a) {
    cd_arena_chunk *c = a->chunks;
    while (c) {
        cd_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->next = a->end = NULL;
}
