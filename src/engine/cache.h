/* The output cache: node results keyed by input signature (API reference §8), in ComfyUI's
 * three policies. An entry holds, per output slot, the list of values the node produced, and
 * the node's UI output. Only the executor thread touches the cache. */
#ifndef CD_ENGINE_CACHE_H
#define CD_ENGINE_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "comfyd/node.h"
#include "engine/value.h"

typedef enum { CD_CACHE_POLICY_CLASSIC, CD_CACHE_POLICY_LRU, CD_CACHE_POLICY_NONE } cd_cache_policy;

typedef struct {
    cd_value **outputs; /* one CD_VALUE_LIST per slot (owned) */
    int n_outputs;
    json_t *ui; /* {"meta": {...}, "output": {...}} or NULL */
} cd_cache_entry;

typedef struct cd_cache cd_cache;

cd_cache *cd_cache_new(cd_cache_policy policy, size_t lru_size);
void cd_cache_free(cd_cache *c);
/* Start of a prompt: `keys` are the signatures the prompt uses. Classic drops every other
 * entry; LRU marks these as used now and evicts the least recent beyond its size; None drops
 * everything. */
void cd_cache_begin_prompt(cd_cache *c, const cd_sig *keys, size_t n);
/* NULL when absent or the signature is uncacheable. The entry stays valid until the next
 * begin_prompt or reset. */
const cd_cache_entry *cd_cache_get(cd_cache *c, const cd_sig *key);
/* Stores an entry (takes ownership of outputs and ui) unless the signature is uncacheable, in
 * which case the caller keeps using the returned entry for the current prompt only: the
 * cache remembers it in a per-prompt area. */
const cd_cache_entry *cd_cache_put(cd_cache *c, const cd_sig *key, cd_value **outputs, int n_outputs, json_t *ui);
/* Frees the entries begin_prompt evicted (they are kept until then, unreachable). */
void cd_cache_collect(cd_cache *c);
/* /free with free_memory: everything goes. */
void cd_cache_reset(cd_cache *c);
size_t cd_cache_size(const cd_cache *c);
/* Changes whenever an entry is stored or dropped: equal versions mean the same entries. */
uint64_t cd_cache_version(const cd_cache *c);

#endif
