/* A small cache of recent store look-ups, so that the proxy's hot path (who is this token, which
 * project is /comfyui/u/p) does not ask SQLite four times per request. Entries live ttl_ms; the
 * hub clears the whole cache whenever it changes what they say (a logout, a user or project
 * change), so within one hub nothing stale is ever seen, and across several hubs (sharing a
 * store) at most ttl_ms. Direct-mapped: a key hashes to one slot, a newer entry replaces it. */
#ifndef CD_HUB_LOOKUP_CACHE_H
#define CD_HUB_LOOKUP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cd_lookup_cache cd_lookup_cache;

cd_lookup_cache *cd_lookup_cache_new(size_t slots, size_t value_size, unsigned ttl_ms);
/* Copies the value of key into out when a fresh entry holds it. */
bool cd_lookup_cache_get(cd_lookup_cache *c, const char *key, int64_t now_ms, void *out);
void cd_lookup_cache_put(cd_lookup_cache *c, const char *key, int64_t now_ms, const void *value);
void cd_lookup_cache_clear(cd_lookup_cache *c);
void cd_lookup_cache_free(cd_lookup_cache *c);

#endif
