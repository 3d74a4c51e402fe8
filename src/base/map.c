#include "base/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key; /* NULL: empty; TOMBSTONE: deleted */
    void *value;
} slot;

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

struct cd_map {
    slot *slots;
    size_t cap, used, live; /* used counts tombstones too */
};

static uint64_t hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    while (*s) h = (h ^ (unsigned char)*s++) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

cd_map *cd_map_new(void) {
    cd_map *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void cd_map_free(cd_map *m) {
    if (!m) return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMBSTONE) free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static slot *find(const cd_map *m, const char *key, slot **free_slot) {
    size_t mask = m->cap - 1, i = hash(key) & mask;
    if (free_slot) *free_slot = NULL;
    for (;;) {
        slot *s = &m->slots[i];
        if (!s->key) {
            if (free_slot && !*free_slot) *free_slot = s;
            return NULL;
        }
        if (s->key == TOMBSTONE) {
            if (free_slot && !*free_slot) *free_slot = s;
        } else if (strcmp(s->key, key) == 0) {
            return s;
        }
        i = (i + 1) & mask;
    }
}

static int grow(cd_map *m) {
    size_t old_cap = m->cap;
    slot *old = m->slots;
    size_t cap = m->live * 4 > old_cap ? old_cap * 2 : old_cap; /* rehash in place if mostly tombstones */
    while ((m->live + 1) * 2 > cap) cap *= 2;
    slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    m->slots = slots;
    m->cap = cap;
    m->used = m->live = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].key || old[i].key == TOMBSTONE) continue;
        slot *fs;
        find(m, old[i].key, &fs);
        *fs = old[i];
        m->used++;
        m->live++;
    }
    free(old);
    return 0;
}

int cd_map_set(cd_map *m, const char *key, void *value) {
    /* At most half full: linear probing stays short (prompts look nodes up by id a lot). */
    if ((m->used + 1) * 2 > m->cap && grow(m) < 0) return -1;
    slot *fs;
    slot *s = find(m, key, &fs);
    if (s) {
        s->value = value;
        return 0;
    }
    char *k = strdup(key);
    if (!k) return -1;
    if (!fs->key) m->used++;
    fs->key = k;
    fs->value = value;
    m->live++;
    return 0;
}

void *cd_map_get(const cd_map *m, const char *key) {
    slot *s = find(m, key, NULL);
    return s ? s->value : NULL;
}

void *cd_map_remove(cd_map *m, const char *key) {
    slot *s = find(m, key, NULL);
    if (!s) return NULL;
    void *v = s->value;
    free(s->key);
    s->key = TOMBSTONE;
    s->value = NULL;
    m->live--;
    return v;
}

size_t cd_map_size(const cd_map *m) { return m->live; }

void **cd_map_values(const cd_map *m) {
    if (m->live == 0) return NULL;
    void **out = malloc(m->live * sizeof *out);
    if (!out) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMBSTONE) out[n++] = m->slots[i].value;
    return out;
}
