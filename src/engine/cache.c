#include "engine/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"

typedef struct {
    cd_cache_entry e;
    uint64_t generation;
    char key[40];
} stored;

struct cd_cache {
    cd_cache_policy policy;
    size_t lru_size;
    cd_map *map; /* key text -> stored */
    uint64_t generation;
    /* Results that may not be cached (NaN signatures) still serve the rest of their prompt. */
    stored **scratch;
    size_t n_scratch;
    size_t n_stored;
};

/* The signature as 32 hex digits (the map's key); no printf, it runs for every node. */
static void key_text(const cd_sig *k, char out[40]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(k->h1 >> (60 - 4 * i)) & 15];
        out[16 + i] = hex[(k->h2 >> (60 - 4 * i)) & 15];
    }
    out[32] = '\0';
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
    c->map = cd_map_new();
    if (!c->map) {
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

static void sweep(cd_cache *c, keep_fn keep, void *arg) {
    /* Rebuild the map from the entries that stay. */
    cd_map *fresh = cd_map_new();
    if (!fresh) return;
    size_t n = cd_map_size(c->map);
    stored **all = (stored **)cd_map_values(c->map);
    if (!all) n = 0;
    for (size_t i = 0; i < n; i++) {
        if (keep(c, all[i], arg)) cd_map_set(fresh, all[i]->key, all[i]);
        else {
            stored_free(all[i]);
            c->n_stored--;
        }
    }
    free(all);
    cd_map_free(c->map);
    c->map = fresh;
}

void cd_cache_free(cd_cache *c) {
    if (!c) return;
    cd_cache_reset(c);
    cd_map_free(c->map);
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
        char k[40];
        key_text(&keys[i], k);
        stored *s = cd_map_get(c->map, k);
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
    char k[40];
    key_text(key, k);
    stored *s = cd_map_get(c->map, k);
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
    key_text(key, s->key);
    if (!key->uncacheable) {
        stored *old = cd_map_get(c->map, s->key);
        if (old) { /* the same result, computed twice in one prompt: keep the one others hold */
            stored_free(s);
            return &old->e;
        }
        if (cd_map_set(c->map, s->key, s) == 0) {
            c->n_stored++;
            return &s->e;
        }
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
}

size_t cd_cache_size(const cd_cache *c) { return c->n_stored; }
