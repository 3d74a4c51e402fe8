/* A bump allocator: many small allocations that all end together (the nodes of one prompt,
 * the per-node state of one run). Allocating is a pointer bump in a chunk; nothing is freed
 * one by one; cd_arena_free releases every chunk at once. Memory is aligned for any type. */
#ifndef CD_BASE_ARENA_H
#define CD_BASE_ARENA_H

#include <stddef.h>

typedef struct cd_arena_chunk cd_arena_chunk;

typedef struct {
    cd_arena_chunk *chunks; /* newest first */
    char *next, *end;       /* free space in the newest chunk */
} cd_arena;

#define CD_ARENA_INIT {NULL, NULL, NULL}

/* n bytes, uninitialised; NULL when out of memory. */
void *cd_arena_alloc(cd_arena *a, size_t n);
/* n zeroed bytes. */
void *cd_arena_calloc(cd_arena *a, size_t n);
char *cd_arena_strdup(cd_arena *a, const char *s);
/* Releases everything allocated from a; the arena can be used again. */
void cd_arena_free(cd_arena *a);

#endif
