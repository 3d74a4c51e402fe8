#include "hub/lookup_cache.h"

#include <stdlib.h>
#include <string.h>

#define KEY_MAX 160

typedef struct {
    char key[KEY_MAX];
    int64_t expires;
    uint64_t generation; /* entries of an older generation were cleared */
} entry;

struct cd_lookup_cache {
    size_t slots, value_size, stride;
    unsigned ttl_ms;
    uint64_t generation;
    unsigned char *mem; /* slots of entry + value */
};

cd_lookup_cache *cd_lookup_cache_new(size_t slots, size_t value_size, unsigned ttl_ms) {
    cd_lookup_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->slots = slots;
    c->value_size = value_size;
    c->stride = (sizeof(entry) + value_size + 15) & ~(size_t)15;
    c->ttl_ms = ttl_ms;
    c->generation = 1;
    c->mem = calloc(slots, c->stride);
    if (!c->mem) {
        free(c);
        return NULL;
    }
    return c;
}

static entry *slot_of(cd_lookup_cache *c, const char *key) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return (entry *)(c->mem + (h % c->slots) * c->stride);
}

bool cd_lookup_cache_get(cd_lookup_cache *c, const char *key, int64_t now_ms, void *out) {
    if (!c || strlen(key) >= KEY_MAX) return false;
    entry *e = slot_of(c, key);
    if (e->generation != c->generation || e->expires <= now_ms || strcmp(e->key, key) != 0) return false;
    memcpy(out, e + 1, c->value_size);
    return true;
}

void cd_lookup_cache_put(cd_lookup_cache *c, const char *key, int64_t now_ms, const void *value) {
    if (!c || strlen(key) >= KEY_MAX) return;
    entry *e = slot_of(c, key);
    strcpy(e->key, key);
    e->expires = now_ms + c->ttl_ms;
    e->generation = c->generation;
    memcpy(e + 1, value, c->value_size);
}

void cd_lookup_cache_clear(cd_lookup_cache *c) {
    if (c) c->generation++;
}

void cd_lookup_cache_free(cd_lookup_cache *c) {
    if (!c) return;
    free(c->mem);
    free(c);
}
