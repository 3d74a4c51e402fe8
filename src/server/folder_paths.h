/* The model folder registry (ComfyUI's folder_names_and_paths): each name maps to the folders
 * searched for it and the file extensions that count. /embeddings and /models read it. */
#ifndef CD_SERVER_FOLDER_PATHS_H
#define CD_SERVER_FOLDER_PATHS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

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

/* ComfyUI's add_model_folder_path: adds dir to folder name (legacy names "unet" and "clip"
 * mapped), first when is_default, last otherwise; a known dir only moves to the front with
 * is_default. An unknown name becomes a new folder that counts every file. Returns 0 or -1. */
int cd_folder_paths_add(cd_folder_paths *fp, const char *name, const char *dir, bool is_default);

/* The folders searched for name, in order (borrowed), or NULL with *n = 0. */
const char *const *cd_folder_paths_dirs(const cd_folder_paths *fp, const char *name, size_t *n);

/* ComfyUI's get_full_path: the first existing regular file `file` (made relative; ".." cannot
 * climb out of the folder) in folder name's directories. Returns a new path or NULL. */
char *cd_folder_paths_find(const cd_folder_paths *fp, const char *name, const char *file);

/* Reads an extra_model_paths.yaml (§10.3): each top-level section may set base_path (~ and
 * $VARS expanded, relative to the YAML's folder) and is_default; every other key is a folder
 * name whose value holds one path per line, relative ones joined to base_path or else to the
 * YAML's folder. Returns 0, or -1 with a message in err (the registry may then hold the
 * sections read before the error). */
int cd_folder_paths_load_yaml(cd_folder_paths *fp, const char *yaml_path, char *err, size_t errlen);

#endif
