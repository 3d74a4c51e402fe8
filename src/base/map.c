#include "base/map.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *key; /* NULL: empty; TOMBSTONE: deleted */
    void *value;
    uint64_t hash; /* compared before the key: most probes then end without a strcmp */
} slot;

static const char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

struct cd_map {
    slot *slots;
    size_t cap, used, live; /* used counts tombstones too */
    bool borrowed;          /* keys are the caller's, neither copied nor freed */
};

static uint64_t hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    while (*s) h = (h ^ (unsigned char)*s++) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static bool is_live(const slot *s) { return s->key && s->key != TOMBSTONE; }

static cd_map *map_new(bool borrowed) {
    cd_map *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 16;
    m->borrowed = borrowed;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

cd_map *cd_map_new(void) { return map_new(false); }
cd_map *cd_map_new_borrowed(void) { return map_new(true); }

void cd_map_free(cd_map *m) {
    if (!m) return;
    if (!m->borrowed)
        for (size_t i = 0; i < m->cap; i++)
            if (is_live(&m->slots[i])) free((char *)m->slots[i].key);
    free(m->slots);
    free(m);
}

static slot *find(const cd_map *m, const char *key, uint64_t h, slot **free_slot) {
    size_t mask = m->cap - 1, i = h & mask;
    if (free_slot) *free_slot = NULL;
    for (;;) {
        slot *s = &m->slots[i];
        if (!s->key) {
            if (free_slot && !*free_slot) *free_slot = s;
            return NULL;
        }
        if (s->key == TOMBSTONE) {
            if (free_slot && !*free_slot) *free_slot = s;
        } else if (s->hash == h && strcmp(s->key, key) == 0) {
            return s;
        }
        i = (i + 1) & mask;
    }
}

/* Rehashes into cap slots (a power of two that keeps the map at most half full). */
static int rehash(cd_map *m, size_t cap) {
    slot *old = m->slots;
    size_t old_cap = m->cap;
    slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    m->slots = slots;
    m->cap = cap;
    m->used = m->live = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (!is_live(&old[i])) continue;
        slot *fs;
        find(m, old[i].key, old[i].hash, &fs);
        *fs = old[i];
        m->used++;
        m->live++;
    }
    free(old);
    return 0;
}

static int grow(cd_map *m) {
    size_t cap = m->live * 4 > m->cap ? m->cap * 2 : m->cap; /* rehash in place if mostly tombstones */
    while ((m->live + 1) * 2 > cap) cap *= 2;
    return rehash(m, cap);
}

int cd_map_reserve(cd_map *m, size_t n) {
    size_t cap = m->cap;
    while (n * 2 > cap) cap *= 2;
    return cap == m->cap ? 0 : rehash(m, cap);
}

int cd_map_set(cd_map *m, const char *key, void *value) {
    /* At most half full: linear probing stays short (prompts look nodes up by id a lot). */
    if ((m->used + 1) * 2 > m->cap && grow(m) < 0) return -1;
    uint64_t h = hash(key);
    slot *fs;
    slot *s = find(m, key, h, &fs);
    if (s) {
        s->value = value;
        return 0;
    }
    const char *k = m->borrowed ? key : strdup(key);
    if (!k) return -1;
    if (!fs->key) m->used++;
    fs->key = k;
    fs->value = value;
    fs->hash = h;
    m->live++;
    return 0;
}

void *cd_map_get(const cd_map *m, const char *key) {
    slot *s = find(m, key, hash(key), NULL);
    return s ? s->value : NULL;
}

void *cd_map_remove(cd_map *m, const char *key) {
    slot *s = find(m, key, hash(key), NULL);
    if (!s) return NULL;
    void *v = s->value;
    if (!m->borrowed) free((char *)s->key);
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
        if (is_live(&m->slots[i])) out[n++] = m->slots[i].value;
    return out;
}
