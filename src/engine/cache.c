#include "engine/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
    cd_cache_entry e;
    uint64_t generation;
    cd_sig key;
} stored;

/* The entries are in a table of their own keyed by the 128-bit signature: it is a hash already,
 * so its first half picks the slot, and a lookup (one per node, several times per prompt)
 * neither formats nor copies a key. Open addressing, at most half full. */
struct cd_cache {
    cd_cache_policy policy;
    size_t lru_size;
    stored **slots; /* NULL: empty */
    size_t cap;     /* a power of two */
    size_t n_stored;
    uint64_t generation;
    uint64_t version; /* moves whenever an entry is stored or dropped */
    /* Results that may not be cached (NaN signatures) still serve the rest of their prompt. */
    stored **scratch;
    size_t n_scratch;
    /* Entries a new prompt evicted, freed by cd_cache_collect: when a large prompt replaces
     * another, freeing the old results would delay the new one's start for nothing. */
    stored **evicted;
    size_t n_evicted, cap_evicted;
};

static bool same_key(const cd_sig *a, const cd_sig *b) { return a->h1 == b->h1 && a->h2 == b->h2; }

/* The slot holding key, or the empty slot where it would go. */
static stored **slot_for(const cd_cache *c, const cd_sig *key) {
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)key->h1 & mask;; i = (i + 1) & mask)
        if (!c->slots[i] || same_key(&c->slots[i]->key, key)) return &c->slots[i];
}

static stored *lookup(const cd_cache *c, const cd_sig *key) { return *slot_for(c, key); }

/* Moves every entry into a fresh table of cap slots (a power of two, at least twice the
 * entries). */
static int rehash(cd_cache *c, size_t cap) {
    stored **slots = calloc(cap, sizeof *slots), **old = c->slots;
    size_t old_cap = c->cap;
    if (!slots) return -1;
    c->slots = slots;
    c->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) *slot_for(c, &old[i]->key) = old[i];
    free(old);
    return 0;
}

static int insert(cd_cache *c, stored *s) {
    if ((c->n_stored + 1) * 2 > c->cap && rehash(c, c->cap * 2) < 0) return -1;
    *slot_for(c, &s->key) = s;
    c->n_stored++;
    c->version++;
    return 0;
}

static void stored_free(stored *s) {
    if (!s) return;
    for (int i = 0; i < s->e.n_outputs; i++) cd_value_unref(s->e.outputs[i]);
    free(s->e.outputs);
    json_decref(s->e.ui);
    free(s);
}

cd_cache *cd_cache_new(cd_cache_policy policy, size_t lru_size) {
    cd_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->policy = policy;
    c->lru_size = lru_size;
    c->cap = 64;
    c->slots = calloc(c->cap, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return NULL;
    }
    return c;
}

static void clear_scratch(cd_cache *c) {
    for (size_t i = 0; i < c->n_scratch; i++) stored_free(c->scratch[i]);
    free(c->scratch);
    c->scratch = NULL;
    c->n_scratch = 0;
}

/* Drops every stored entry for which keep() says no. */
typedef bool (*keep_fn)(cd_cache *c, stored *s, void *arg);

/* Does the entry hold a tensor or an opaque value (a model, say)? Those can be large: their
 * memory must not wait, and freeing them is a handful of large frees anyway. */
static bool holds_heavy_values(const stored *s) {
    for (int k = 0; k < s->e.n_outputs; k++) {
        const cd_value *list = s->e.outputs[k];
        for (size_t i = 0; i < cd_value_list_len(list); i++) {
            cd_value_kind kind = cd_value_kind_of(cd_value_list_at(list, i));
            if (kind == CD_VALUE_TENSOR || kind == CD_VALUE_OPAQUE) return true;
        }
    }
    return false;
}

/* An evicted entry of small values waits for cd_cache_collect (freeing thousands of them one
 * by one is what costs time); one with heavy values, or one that cannot wait (no memory), is
 * freed at once. */
static void evict(cd_cache *c, stored *s) {
    if (holds_heavy_values(s)) {
        stored_free(s);
        return;
    }
    if (c->n_evicted == c->cap_evicted) {
        size_t cap = c->cap_evicted ? c->cap_evicted * 2 : 256;
        stored **e = realloc(c->evicted, cap * sizeof *e);
        if (!e) {
            stored_free(s);
            return;
        }
        c->evicted = e;
        c->cap_evicted = cap;
    }
    c->evicted[c->n_evicted++] = s;
}

void cd_cache_collect(cd_cache *c) {
    for (size_t i = 0; i < c->n_evicted; i++) stored_free(c->evicted[i]);
    free(c->evicted);
    c->evicted = NULL;
    c->n_evicted = c->cap_evicted = 0;
}

static void sweep(cd_cache *c, keep_fn keep, void *arg) {
    /* The entries that stay are packed at the front of the table, which is then rehashed into
     * one sized for them (removing from a linear-probing table in place would need
     * tombstones, and a large prompt's table would stay large). */
    size_t n = 0;
    for (size_t i = 0; i < c->cap; i++) {
        stored *s = c->slots[i];
        if (!s) continue;
        c->slots[i] = NULL;
        if (keep(c, s, arg)) c->slots[n++] = s;
        else evict(c, s);
    }
    if (n != c->n_stored) c->version++;
    c->n_stored = n;
    size_t cap = 64;
    while (n * 2 > cap) cap *= 2;
    if (rehash(c, cap) < 0) { /* out of memory: the cache empties, which costs only recomputation */
        for (size_t i = 0; i < n; i++) stored_free(c->slots[i]);
        memset(c->slots, 0, c->cap * sizeof *c->slots);
        c->n_stored = 0;
    }
}

void cd_cache_free(cd_cache *c) {
    if (!c) return;
    cd_cache_reset(c);
    free(c->slots);
    free(c);
}

static bool keep_none(cd_cache *c, stored *s, void *arg) {
    (void)c;
    (void)s;
    (void)arg;
    return false;
}

static bool keep_current_generation(cd_cache *c, stored *s, void *arg) {
    (void)arg;
    return s->generation == c->generation;
}

typedef struct {
    uint64_t min_generation;
} lru_arg;

static bool keep_recent(cd_cache *c, stored *s, void *arg) {
    (void)c;
    return s->generation >= ((lru_arg *)arg)->min_generation;
}

void cd_cache_begin_prompt(cd_cache *c, const cd_sig *keys, size_t n) {
    clear_scratch(c);
    c->generation++;
    if (c->policy == CD_CACHE_POLICY_NONE) {
        sweep(c, keep_none, NULL);
        return;
    }
    size_t marked = 0;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].uncacheable) continue;
        stored *s = lookup(c, &keys[i]);
        if (s && s->generation != c->generation) {
            s->generation = c->generation;
            marked++;
        }
    }
    if (c->policy == CD_CACHE_POLICY_CLASSIC) {
        /* Rebuilding the map costs as much as the prompt is large: only when something goes
         * (not when the same prompt comes again). */
        if (marked < c->n_stored) sweep(c, keep_current_generation, NULL);
    } else {
        /* LRU: while over size, raise the cut-off generation; never evict the current one. */
        lru_arg a = {.min_generation = 0};
        while (c->n_stored > c->lru_size && a.min_generation < c->generation) {
            a.min_generation++;
            sweep(c, keep_recent, &a);
        }
    }
}

const cd_cache_entry *cd_cache_get(cd_cache *c, const cd_sig *key) {
    if (key->uncacheable) return NULL;
    stored *s = lookup(c, key);
    if (!s) return NULL;
    s->generation = c->generation;
    return &s->e;
}

const cd_cache_entry *cd_cache_put(cd_cache *c, const cd_sig *key, cd_value **outputs, int n_outputs, json_t *ui) {
    stored *s = calloc(1, sizeof *s);
    if (!s) {
        for (int i = 0; i < n_outputs; i++) cd_value_unref(outputs[i]);
        free(outputs);
        json_decref(ui);
        return NULL;
    }
    s->e.outputs = outputs;
    s->e.n_outputs = n_outputs;
    s->e.ui = ui;
    s->generation = c->generation;
    s->key = *key;
    if (!key->uncacheable) {
        stored *old = lookup(c, key);
        if (old) { /* the same result, computed twice in one prompt: keep the one others hold */
            stored_free(s);
            return &old->e;
        }
        if (insert(c, s) == 0) return &s->e;
    }
    stored **sc = realloc(c->scratch, (c->n_scratch + 1) * sizeof *sc);
    if (!sc) {
        stored_free(s);
        return NULL;
    }
    c->scratch = sc;
    sc[c->n_scratch++] = s;
    return &s->e;
}

void cd_cache_reset(cd_cache *c) {
    clear_scratch(c);
    sweep(c, keep_none, NULL);
    cd_cache_collect(c);
}

size_t cd_cache_size(const cd_cache *c) { return c->n_stored; }
uint64_t cd_cache_version(const cd_cache *c) { return c->version; }
