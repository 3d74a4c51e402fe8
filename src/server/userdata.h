/* ComfyUI's per-user storage (app/user_manager.py, app/app_settings.py) as blocking file
 * operations: who the user is, where their root is, how a client-named path is confined to it,
 * listings, atomic writes, the user table and the settings file. routes_userdata.c runs these
 * in the thread pool and maps their results to ComfyUI's status codes.
 *
 * There is no in-memory state: the user table (users.json) and the settings are read from disk
 * on every request, so an edit by another process (a hub adding users) is seen at once, and
 * read-modify-write cycles are serialised with flock() on the directory that holds the file,
 * which also covers several comfyd processes sharing a user directory.
 *
 * Confinement: a client path is percent-decoded once more if it still holds '%' (as ComfyUI
 * does), normalised lexically like os.path.abspath (".." may not climb above the user root),
 * and then checked with symlinks resolved (cd_path_join_confined), so absolute paths, "..",
 * encoded slashes and symlinks pointing out all stay out. */
#ifndef CD_SERVER_USERDATA_H
#define CD_SERVER_USERDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

enum {
    CD_UD_OK = 0,
    CD_UD_UNKNOWN_USER = -1, /* ComfyUI's KeyError("Unknown user") */
    CD_UD_FORBIDDEN = -2,    /* the path leaves the user root, or the user id is not a directory name */
    CD_UD_NOMEM = -3,
};

/* The request's user id (caller frees): "default", or with multi_user the comfy-user header
 * (header may be NULL). Ids starting with "__" (system users) and ids missing from the table
 * give CD_UD_UNKNOWN_USER. */
int cd_userdata_user_id(const char *user_dir, bool multi_user, const char *header, char **id);

/* <user_dir>/<id> (caller frees), or NULL (CD_UD_FORBIDDEN) when id cannot be a directory name. */
char *cd_userdata_user_root(const char *user_dir, const char *id);

/* The user table: single-user {"default": "default"}; multi-user users.json, {} when it is
 * missing or corrupt. New reference. */
json_t *cd_userdata_users_load(const char *user_dir, bool multi_user);

/* POST /users. Returns 0 with *id (caller frees), 1 for a duplicate name, 2 for a refused name
 * (*msg points at a static message), or -1 when users.json cannot be written. */
int cd_userdata_users_add(const char *user_dir, bool multi_user, const char *username, char **id, const char **msg);

/* Percent-decodes like Python's urllib.parse.unquote: malformed escapes stay as they are.
 * Returns NULL on OOM or when the result would hold a NUL byte. */
char *cd_userdata_unquote(const char *s);

/* Lexical normalisation of a relative path: "." and empty components dropped, ".." applied.
 * Returns 0 with *out (caller frees; "" is the root itself) or CD_UD_FORBIDDEN for an absolute
 * path, a backslash, or a ".." that climbs above the root. */
int cd_userdata_normalize(const char *file, char **out);

#define CD_UD_MKROOT 1   /* create the user root first */
#define CD_UD_MKPARENT 2 /* create the parent directories of the file (ComfyUI's create_dir) */
/* Resolves file (NULL: the root) inside root. Fills *path (absolute) and *rel (normalised,
 * relative to root, '/' separated); both caller frees. Returns CD_UD_OK, CD_UD_FORBIDDEN or
 * CD_UD_NOMEM. When root does not exist (and MKROOT is not given) the check is lexical only:
 * nothing below a missing directory can be a symlink. */
int cd_userdata_resolve(const char *root, const char *file, int flags, char **path, char **rel);

/* Writes data to path atomically: a temp file in the same directory, fsync, rename, fsync of
 * the directory. A crash leaves the old or the new content. Returns 0 or -errno. */
int cd_userdata_write_atomic(const char *path, const void *data, size_t len);

/* ComfyUI's FileInfo {"path": rel, "size", "modified", "created"} (integer milliseconds), or
 * NULL when path cannot be stat'ed. */
json_t *cd_userdata_file_info(const char *path, const char *rel);

/* GET /userdata listing of dir (an existing, confined directory) inside root: files only, no
 * dotfiles, relative to dir. Each item is a string, a FileInfo (full_info) or [rel, parts...]
 * (split). */
json_t *cd_userdata_list(const char *root, const char *dir, bool recurse, bool full_info, bool split);

/* GET /v2/userdata: everything below dir (recursively, dotfiles included), paths relative to
 * root; directories first, then by lowercase name. */
json_t *cd_userdata_list_v2(const char *root, const char *dir);

/* The settings object in path: {} when missing, corrupt or not an object. New reference. */
json_t *cd_userdata_settings_load(const char *path);

/* Read-modify-write of the settings file under a lock on its directory: with id, sets
 * settings[id] = value; without, shallow-merges the object value. value is borrowed. Written
 * with indent 4 like Python's json.dumps(indent=4). Returns 0 or -errno. */
int cd_userdata_settings_update(const char *path, const char *id, json_t *value);

#endif
