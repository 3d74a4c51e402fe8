/* Safe path handling. Every file a client names (static files, uploads, /view, user data) goes
 * through these functions so that nothing outside the directory it belongs to is read or
 * written: no "..", no absolute paths, no NUL, and no symlink that leads out. */
#ifndef CD_BASE_PATH_H
#define CD_BASE_PATH_H

#include <stdbool.h>

/* True when rel is a relative path with no ".." component, no NUL and no backslash. An empty
 * string is safe (it names the directory itself). */
bool cd_path_rel_is_safe(const char *rel);

/* dir + "/" + rel, as a new string (caller frees), or NULL on OOM. */
char *cd_path_join(const char *dir, const char *rel);

/* Joins dir and rel after checking rel with cd_path_rel_is_safe, then checks that the result,
 * with symlinks resolved (for a path that does not exist yet: its nearest existing ancestor),
 * lies inside dir's own resolved path. Returns the joined path (caller frees) or NULL. */
char *cd_path_join_confined(const char *dir, const char *rel);

/* Absolute form of path without resolving symlinks (like Python's os.path.abspath). Caller frees. */
char *cd_path_absolute(const char *path);

/* mkdir -p. Returns 0 or -1 with errno set. */
int cd_path_mkdirs(const char *path, int mode);

/* Deletes a directory tree (used for temp/, which ComfyUI clears at start and stop). Returns 0
 * or -1. Symlinks are removed, never followed. */
int cd_path_remove_tree(const char *path);

bool cd_path_is_dir(const char *path);

#endif
