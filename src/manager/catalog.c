#include "manager/catalog.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/path.h"
#include "manager/download.h"

static json_t *parse_root(const char *text, size_t len, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY, &je);
    if (!root) snprintf(err, errlen, "invalid JSON at line %d: %s", je.line, je.text);
    return root;
}

json_t *cd_catalog_parse_nodes(const char *text, size_t len, char *err, size_t errlen) {
    json_t *root = parse_root(text, len, err, errlen);
    if (!root) return NULL;
    json_t *list = json_object_get(root, "custom_nodes");
    if (!json_is_array(list)) {
        snprintf(err, errlen, "custom-node-list.json: no \"custom_nodes\" array");
        json_decref(root);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        json_t *files = json_object_get(e, "files");
        if (!json_is_object(e) || !json_is_array(files) || json_array_size(files) == 0) continue;
        bool ok = true;
        size_t j;
        json_t *f;
        json_array_foreach(files, j, f) if (!json_is_string(f) || !*json_string_value(f)) ok = false;
        json_t *id = json_object_get(e, "id");
        if (id && !json_is_string(id)) ok = false;
        if (ok) json_array_append(out, e);
    }
    json_decref(root);
    return out;
}

json_t *cd_catalog_parse_models(const char *text, size_t len, char *err, size_t errlen) {
    json_t *root = parse_root(text, len, err, errlen);
    if (!root) return NULL;
    json_t *list = json_object_get(root, "models");
    if (!json_is_array(list)) {
        snprintf(err, errlen, "model-list.json: no \"models\" array");
        json_decref(root);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        if (json_is_object(e) && json_is_string(json_object_get(e, "filename")) &&
            json_is_string(json_object_get(e, "url")) && json_is_string(json_object_get(e, "save_path")))
            json_array_append(out, e);
    }
    json_decref(root);
    return out;
}

json_t *cd_catalog_parse_ext_map(const char *text, size_t len, char *err, size_t errlen) {
    json_t *root = parse_root(text, len, err, errlen);
    if (!root) return NULL;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "extension-node-map.json: not an object");
        json_decref(root);
        return NULL;
    }
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (json_is_array(v) && json_array_size(v) >= 1 && json_is_array(json_array_get(v, 0))) {
            json_t *meta = json_array_get(v, 1);
            json_t *pair = json_array();
            json_array_append(pair, json_array_get(v, 0));
            if (json_is_object(meta)) json_array_append(pair, meta);
            else json_array_append_new(pair, json_object());
            json_object_set_new(out, k, pair);
        }
    }
    json_decref(root);
    return out;
}

static bool is_url(const char *s) { return strstr(s, "://") != NULL; }

/* Reads <location>/<name>; *text NULL (and 0 returned) when the file is absent. */
static int read_part(const cd_catalog *cat, const char *name, char **text, size_t *len, char *err, size_t errlen) {
    *text = NULL;
    *len = 0;
    if (cat->local_dir) {
        char *p = cd_path_join(cat->local_dir, name);
        FILE *f = p ? fopen(p, "rb") : NULL;
        free(p);
        if (!f) return 0;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        *text = malloc((size_t)(n > 0 ? n : 0) + 1);
        if (!*text) {
            fclose(f);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        *len = n > 0 ? fread(*text, 1, (size_t)n, f) : 0;
        (*text)[*len] = 0;
        fclose(f);
        return 0;
    }
    size_t ul = strlen(cat->location);
    char url[4096];
    snprintf(url, sizeof url, "%s%s%s", cat->location, ul && cat->location[ul - 1] == '/' ? "" : "/", name);
    if (cd_dl_fetch(url, text, len, err, errlen) < 0) {
        /* Only the node list is required; a missing optional file is not an error. */
        free(*text);
        *text = NULL;
        return -1;
    }
    return 0;
}

int cd_catalog_load(const char *location, cd_catalog **out, char *err, size_t errlen) {
    *out = NULL;
    cd_catalog *cat = calloc(1, sizeof *cat);
    if (!cat || !(cat->location = strdup(location))) {
        free(cat);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!strncasecmp(location, "file://", 7)) cat->local_dir = cd_path_absolute(location + 7);
    else if (!is_url(location)) cat->local_dir = cd_path_absolute(location);
    /* A path to custom-node-list.json itself names its folder. */
    if (cat->local_dir && !cd_path_is_dir(cat->local_dir)) {
        char *slash = strrchr(cat->local_dir, '/');
        if (slash && slash != cat->local_dir) *slash = 0;
    }
    char *text;
    size_t len;
    if (read_part(cat, "custom-node-list.json", &text, &len, err, errlen) < 0) goto fail;
    if (!text) {
        snprintf(err, errlen, "channel %s has no custom-node-list.json", location);
        goto fail;
    }
    cat->nodes = cd_catalog_parse_nodes(text, len, err, errlen);
    free(text);
    if (!cat->nodes) goto fail;
    char ignore[256];
    if (read_part(cat, "extension-node-map.json", &text, &len, ignore, sizeof ignore) == 0 && text)
        cat->ext_map = cd_catalog_parse_ext_map(text, len, ignore, sizeof ignore);
    free(text);
    if (read_part(cat, "model-list.json", &text, &len, ignore, sizeof ignore) == 0 && text)
        cat->models = cd_catalog_parse_models(text, len, ignore, sizeof ignore);
    free(text);
    if (!cat->ext_map) cat->ext_map = json_object();
    if (!cat->models) cat->models = json_array();
    *out = cat;
    return 0;
fail:
    cd_catalog_free(cat);
    return -1;
}

void cd_catalog_free(cd_catalog *cat) {
    if (!cat) return;
    free(cat->location);
    free(cat->local_dir);
    json_decref(cat->nodes);
    json_decref(cat->ext_map);
    json_decref(cat->models);
    free(cat);
}

/* The URL without a trailing "/" or ".git", lowercased host part kept as is. */
static size_t norm_len(const char *u) {
    size_t n = strlen(u);
    while (n && u[n - 1] == '/') n--;
    if (n >= 4 && !strncasecmp(u + n - 4, ".git", 4)) n -= 4;
    return n;
}

static bool same_url(const char *a, const char *b) {
    size_t na = norm_len(a), nb = norm_len(b);
    return na == nb && !strncmp(a, b, na);
}

char *cd_catalog_entry_key(const json_t *entry) {
    const char *id = json_string_value(json_object_get(entry, "id"));
    if (id && *id) return strdup(id);
    const char *f = json_string_value(json_array_get(json_object_get(entry, "files"), 0));
    if (!f) return strdup("");
    size_t n = norm_len(f);
    size_t s = n;
    while (s && f[s - 1] != '/') s--;
    return strndup(f + s, n - s);
}

json_t *cd_catalog_find(const cd_catalog *cat, const char *key_or_url) {
    if (!cat || !key_or_url) return NULL;
    size_t i;
    json_t *e;
    json_array_foreach(cat->nodes, i, e) {
        char *k = cd_catalog_entry_key(e);
        bool hit = k && !strcmp(k, key_or_url);
        free(k);
        if (hit) return e;
    }
    json_array_foreach(cat->nodes, i, e) {
        size_t j;
        json_t *f;
        json_array_foreach(json_object_get(e, "files"), j, f) if (same_url(json_string_value(f), key_or_url)) return e;
        const char *ref = json_string_value(json_object_get(e, "reference"));
        if (ref && same_url(ref, key_or_url)) return e;
    }
    return NULL;
}

bool cd_catalog_url_listed(const cd_catalog *cat, const char *url) {
    if (!cat || !url) return false;
    size_t i, j;
    json_t *e, *f;
    json_array_foreach(cat->nodes, i, e) {
        json_array_foreach(json_object_get(e, "files"), j, f) if (same_url(json_string_value(f), url)) return true;
    }
    return false;
}

static bool str_eq(const json_t *v, const char *s) {
    const char *t = json_string_value(v);
    return t && s && !strcmp(t, s);
}

json_t *cd_catalog_find_model(const cd_catalog *cat, const char *save_path, const char *base, const char *filename) {
    if (!cat) return NULL;
    size_t i;
    json_t *m;
    json_array_foreach(cat->models, i, m) {
        if (str_eq(json_object_get(m, "save_path"), save_path) && str_eq(json_object_get(m, "filename"), filename) &&
            (!json_object_get(m, "base") || str_eq(json_object_get(m, "base"), base ? base : "")))
            return m;
    }
    return NULL;
}

char *cd_catalog_model_folder(const json_t *model) {
    const char *filename = json_string_value(json_object_get(model, "filename"));
    if (!filename || !*filename || strpbrk(filename, "/\\:") || !strcmp(filename, ".") || !strcmp(filename, ".."))
        return NULL;
    const char *save_path = json_string_value(json_object_get(model, "save_path"));
    if (!save_path || !*save_path) save_path = "default";
    if (!strcmp(save_path, "default")) {
        static const struct {
            const char *type, *folder;
        } map[] = {{"checkpoints", "checkpoints"},   {"checkpoint", "checkpoints"},  {"unclip", "checkpoints"},
                   {"text_encoders", "text_encoders"}, {"clip", "text_encoders"},    {"vae", "vae"},
                   {"lora", "loras"},                 {"t2i-adapter", "controlnet"}, {"t2i-style", "controlnet"},
                   {"controlnet", "controlnet"},      {"clip_vision", "clip_vision"}, {"gligen", "gligen"},
                   {"upscale", "upscale_models"},     {"embedding", "embeddings"},   {"embeddings", "embeddings"},
                   {"unet", "diffusion_models"},      {"diffusion_model", "diffusion_models"}};
        const char *type = json_string_value(json_object_get(model, "type"));
        for (size_t i = 0; type && i < sizeof map / sizeof map[0]; i++)
            if (!strcasecmp(type, map[i].type)) return strdup(map[i].folder);
        return strdup("etc");
    }
    if (save_path[0] == '/' || strstr(save_path, "..") || strchr(save_path, '\\') || !cd_path_rel_is_safe(save_path))
        return strdup("etc");
    return strdup(save_path);
}

char *cd_catalog_resolve_file(const cd_catalog *cat, const char *file) {
    if (cat && cat->local_dir && !is_url(file) && file[0] != '/' && cd_path_rel_is_safe(file))
        return cd_path_join(cat->local_dir, file);
    return strdup(file);
}
