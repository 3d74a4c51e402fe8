/* The model folder registry (ComfyUI's folder_names_and_paths): each name maps to the folders
 * searched for it and the file extensions that count. /embeddings and /models read it. */
#ifndef CD_SERVER_FOLDER_PATHS_H
#define CD_SERVER_FOLDER_PATHS_H

#include <jansson.h>

typedef struct cd_folder_paths cd_folder_paths;

/* The default registry for a models dir (§10.2 of the API reference, same order). */
cd_folder_paths *cd_folder_paths_new(const char *models_dir, const char *custom_nodes_dir, const char *output_dir);
void cd_folder_paths_free(cd_folder_paths *fp);

/* Sorted, de-duplicated relative paths of the files in folder `name` whose extension counts,
 * recursing into subfolders (skipping .git). Returns a new JSON array, or NULL for an unknown
 * name. Blocking: call it from the thread pool. */
json_t *cd_folder_paths_list(const cd_folder_paths *fp, const char *name);

/* The registry's names, in order, as a new JSON array. */
json_t *cd_folder_paths_names(const cd_folder_paths *fp);

#endif
