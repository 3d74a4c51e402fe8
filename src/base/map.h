/* A string-keyed hash map (open addressing, linear probing). Keys are copied; values are
 * borrowed pointers. Prompts of 100,000 nodes index their nodes with it. */
#ifndef CD_BASE_MAP_H
#define CD_BASE_MAP_H

#include <stddef.h>

typedef struct cd_map cd_map;

cd_map *cd_map_new(void);
void cd_map_free(cd_map *m);
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
