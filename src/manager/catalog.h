/* Catalog channels in ComfyUI-Manager's formats: custom-node-list.json ({"custom_nodes":[..]}),
 * extension-node-map.json ({url: [[class names], {title_aux, ...}]}) and model-list.json
 * ({"models":[..]}). A channel is a directory, a file:// URL or an http(s) URL holding those
 * files. Our additions to an entry, all optional: "version", "ref" (a tag, branch or commit a
 * git install is pinned to), "sha256" (of an archive or model file). In a local channel a
 * relative path in "files" names a folder or archive next to the lists. */
#ifndef CD_MANAGER_CATALOG_H
#define CD_MANAGER_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *location;  /* as given (owned) */
    char *local_dir; /* the directory when the channel is local, else NULL (owned) */
    json_t *nodes;   /* array of valid entries (owned) */
    json_t *ext_map; /* object (owned) */
    json_t *models;  /* array of valid model entries (owned) */
} cd_catalog;

/* Parses custom-node-list.json text. Keeps the entries that are objects with a non-empty
 * "files" array of strings; returns a new array, or NULL with a message when the text is not
 * JSON of that shape. */
json_t *cd_catalog_parse_nodes(const char *text, size_t len, char *err, size_t errlen);
/* model-list.json: keeps objects whose filename, url and save_path are strings. */
json_t *cd_catalog_parse_models(const char *text, size_t len, char *err, size_t errlen);
/* extension-node-map.json: keeps url -> [[names...], {...}] pairs. */
json_t *cd_catalog_parse_ext_map(const char *text, size_t len, char *err, size_t errlen);

/* Loads a channel. The node list is required; the other two files may be missing. */
int cd_catalog_load(const char *location, cd_catalog **out, char *err, size_t errlen);
void cd_catalog_free(cd_catalog *cat);

/* The key of an entry in /customnode/getlist: its "id", else the last segment of files[0]
 * without ".git". Returns a new string. */
char *cd_catalog_entry_key(const json_t *entry);
/* An entry by key, or by one of its file URLs (borrowed; NULL when absent). */
json_t *cd_catalog_find(const cd_catalog *cat, const char *key_or_url);
/* True when url (compared without a trailing "/" or ".git") is among some entry's files. */
bool cd_catalog_url_listed(const cd_catalog *cat, const char *url);
/* The model entry with this save_path, base and filename (borrowed), or NULL. */
json_t *cd_catalog_find_model(const cd_catalog *cat, const char *save_path, const char *base, const char *filename);
/* The folder under models/ a model entry goes to (ComfyUI-Manager's rules: "default" maps the
 * type; ".." or an absolute save_path goes to "etc"). Returns a new string, or NULL when the
 * filename is not a plain name. */
char *cd_catalog_model_folder(const json_t *model);
/* A "files" item as something to fetch: a relative path in a local channel becomes an absolute
 * path; anything else is returned as is. New string. */
char *cd_catalog_resolve_file(const cd_catalog *cat, const char *file);

#endif
