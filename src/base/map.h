/* A string-keyed hash map (open addressing, linear probing). Values are borrowed pointers. Keys
 * are copied, unless the map was made with cd_map_new_borrowed: then the caller keeps every key
 * alive and unchanged while it is in the map (a prompt's node ids, owned by its nodes).
 * Prompts of 100,000 nodes index their nodes with it. */
#ifndef CD_BASE_MAP_H
#define CD_BASE_MAP_H

#include <stddef.h>

typedef struct cd_map cd_map;

cd_map *cd_map_new(void);
cd_map *cd_map_new_borrowed(void);
void cd_map_free(cd_map *m);
/* Makes room for n entries in all, so that filling the map does not rehash. Returns 0 or -1
 * on OOM (the map is unchanged). */
int cd_map_reserve(cd_map *m, size_t n);
/* Sets key to value (replacing). Returns 0 or -1 on OOM. */
int cd_map_set(cd_map *m, const char *key, void *value);
void *cd_map_get(const cd_map *m, const char *key);
/* Removes key; returns its value or NULL. */
void *cd_map_remove(cd_map *m, const char *key);
size_t cd_map_size(const cd_map *m);
/* All values, in no particular order, as a new array (caller frees) of cd_map_size() items;
 * NULL when empty or out of memory. */
void **cd_map_values(const cd_map *m);

#endif
