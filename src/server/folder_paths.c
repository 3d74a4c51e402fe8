#include "server/folder_paths.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/path.h"
#include "base/str.h"

typedef struct {
    char *name;
    char **dirs; /* owned, searched in order */
    size_t ndirs;
    const char *const *exts; /* NULL-terminated; NULL = all files; {"", NULL} = no extension */
} folder;

struct cd_folder_paths {
    folder *folders;
    size_t n;
};

static const char *const model_exts[] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft", NULL};
static const char *const yaml_exts[] = {".yaml", NULL};
static const char *const folder_exts[] = {"folder", NULL};
static const char *const no_ext[] = {"", NULL};

static int add(cd_folder_paths *fp, const char *name, const char *const *exts) {
    folder *f = realloc(fp->folders, (fp->n + 1) * sizeof *f);
    if (!f) return -1;
    fp->folders = f;
    folder *nf = &f[fp->n++];
    memset(nf, 0, sizeof *nf);
    nf->name = strdup(name);
    nf->exts = exts;
    return nf->name ? 0 : -1;
}

static folder *find_folder(const cd_folder_paths *fp, const char *name) {
    for (size_t i = 0; i < fp->n; i++)
        if (strcmp(fp->folders[i].name, name) == 0) return &fp->folders[i];
    return NULL;
}

/* ComfyUI's add_model_folder_path: a known path only moves to the front when is_default; a new
 * one goes first (is_default) or last. */
static int add_dir_at(folder *f, const char *dir, bool first) {
    for (size_t i = 0; i < f->ndirs; i++) {
        if (strcmp(f->dirs[i], dir) == 0) {
            if (first && i > 0) {
                char *d = f->dirs[i];
                memmove(f->dirs + 1, f->dirs, i * sizeof *f->dirs);
                f->dirs[0] = d;
            }
            return 0;
        }
    }
    char **dirs = realloc(f->dirs, (f->ndirs + 1) * sizeof *dirs);
    if (!dirs) return -1;
    f->dirs = dirs;
    char *d = strdup(dir);
    if (!d) return -1;
    if (first) {
        memmove(f->dirs + 1, f->dirs, f->ndirs * sizeof *f->dirs);
        f->dirs[0] = d;
    } else {
        f->dirs[f->ndirs] = d;
    }
    f->ndirs++;
    return 0;
}

static void add_dir(cd_folder_paths *fp, const char *name, const char *dir) {
    folder *f = find_folder(fp, name);
    if (f && dir) add_dir_at(f, dir, false);
}

static void add_model_dir(cd_folder_paths *fp, const char *name, const char *models_dir, const char *sub) {
    char *d = cd_path_join(models_dir, sub);
    add_dir(fp, name, d);
    free(d);
}

cd_folder_paths *cd_folder_paths_new(const char *models_dir, const char *custom_nodes_dir, const char *output_dir) {
    cd_folder_paths *fp = calloc(1, sizeof *fp);
    if (!fp) return NULL;
    static const struct {
        const char *name, *sub1, *sub2;
        int exts; /* 0 model, 1 yaml, 2 folder, 3 no extension, 4 all */
    } table[] = {
        {"checkpoints", "checkpoints", NULL, 0}, {"configs", "configs", NULL, 1}, {"loras", "loras", NULL, 0},
        {"vae", "vae", NULL, 0}, {"text_encoders", "text_encoders", "clip", 0},
        {"diffusion_models", "unet", "diffusion_models", 0}, {"clip_vision", "clip_vision", NULL, 0},
        {"style_models", "style_models", NULL, 0}, {"embeddings", "embeddings", NULL, 0},
        {"diffusers", "diffusers", NULL, 2}, {"vae_approx", "vae_approx", NULL, 0},
        {"controlnet", "controlnet", "t2i_adapter", 0}, {"gligen", "gligen", NULL, 0},
        {"upscale_models", "upscale_models", NULL, 0}, {"custom_nodes", NULL, NULL, 4},
        {"hypernetworks", "hypernetworks", NULL, 0}, {"photomaker", "photomaker", NULL, 0},
        {"classifiers", "classifiers", NULL, 3}, {"model_patches", "model_patches", NULL, 0},
        {"audio_encoders", "audio_encoders", NULL, 0},
    };
    const char *const *ext_sets[] = {model_exts, yaml_exts, folder_exts, no_ext, NULL};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (add(fp, table[i].name, ext_sets[table[i].exts]) < 0) {
            cd_folder_paths_free(fp);
            return NULL;
        }
        if (table[i].sub1) add_model_dir(fp, table[i].name, models_dir, table[i].sub1);
        if (table[i].sub2) add_model_dir(fp, table[i].name, models_dir, table[i].sub2);
    }
    add_dir(fp, "custom_nodes", custom_nodes_dir);
    /* main.py adds these output folders so that saved models can be loaded again. */
    static const struct { const char *name, *sub; } outs[] = {
        {"checkpoints", "checkpoints"}, {"text_encoders", "clip"}, {"vae", "vae"},
        {"diffusion_models", "diffusion_models"}, {"loras", "loras"},
    };
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) add_model_dir(fp, outs[i].name, output_dir, outs[i].sub);
    return fp;
}

void cd_folder_paths_free(cd_folder_paths *fp) {
    if (!fp) return;
    for (size_t i = 0; i < fp->n; i++) {
        free(fp->folders[i].name);
        for (size_t d = 0; d < fp->folders[i].ndirs; d++) free(fp->folders[i].dirs[d]);
        free(fp->folders[i].dirs);
    }
    free(fp->folders);
    free(fp);
}

json_t *cd_folder_paths_names(const cd_folder_paths *fp) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < fp->n; i++) json_array_append_new(arr, json_string(fp->folders[i].name));
    return arr;
}

static bool ext_counts(const folder *f, const char *file) {
    if (!f->exts) return true;
    const char *dot = strrchr(file, '.');
    for (size_t i = 0; f->exts[i]; i++) {
        if (f->exts[i][0] == '\0') {
            if (!dot || dot == file) return true;
        } else if (cd_str_ends_with_ci(file, f->exts[i])) {
            return true;
        }
    }
    return false;
}

/* Walks dir/rel recursively, appending matching relative paths. Depth is bounded so that a
 * symlink loop cannot recurse forever. */
static void walk(const folder *f, const char *root, const char *rel, json_t *out, int depth) {
    if (depth > 32) return;
    char *dir = rel[0] ? cd_path_join(root, rel) : strdup(root);
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) {
        free(dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, ".git")) continue;
        char *child_rel = rel[0] ? cd_path_join(rel, e->d_name) : strdup(e->d_name);
        char *child = cd_path_join(dir, e->d_name);
        struct stat st;
        if (child && child_rel && stat(child, &st) == 0) { /* stat: symlinks are followed */
            if (S_ISDIR(st.st_mode)) walk(f, root, child_rel, out, depth + 1);
            else if (S_ISREG(st.st_mode) && ext_counts(f, e->d_name)) json_array_append_new(out, json_string(child_rel));
        }
        free(child);
        free(child_rel);
    }
    closedir(d);
    free(dir);
}

static int cmp_json_str(const void *a, const void *b) {
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

json_t *cd_folder_paths_list(const cd_folder_paths *fp, const char *name) {
    const folder *f = NULL;
    for (size_t i = 0; i < fp->n; i++)
        if (strcmp(fp->folders[i].name, name) == 0) f = &fp->folders[i];
    if (!f) return NULL;
    json_t *found = json_array();
    for (size_t i = 0; i < f->ndirs; i++) walk(f, f->dirs[i], "", found, 0);
    size_t n = json_array_size(found);
    json_t **items = malloc((n ? n : 1) * sizeof *items);
    for (size_t i = 0; items && i < n; i++) items[i] = json_array_get(found, i);
    if (items) qsort(items, n, sizeof *items, cmp_json_str);
    json_t *out = json_array();
    for (size_t i = 0; items && i < n; i++) {
        if (i > 0 && strcmp(json_string_value(items[i]), json_string_value(items[i - 1])) == 0) continue;
        json_array_append(out, items[i]);
    }
    free(items);
    json_decref(found);
    return out;
}

static const char *map_legacy(const char *name) {
    if (!strcmp(name, "unet")) return "diffusion_models";
    if (!strcmp(name, "clip")) return "text_encoders";
    return name;
}

int cd_folder_paths_add(cd_folder_paths *fp, const char *name, const char *dir, bool is_default) {
    name = map_legacy(name);
    folder *f = find_folder(fp, name);
    if (!f) {
        if (add(fp, name, NULL) < 0) return -1; /* a new folder counts every file */
        f = &fp->folders[fp->n - 1];
    }
    return add_dir_at(f, dir, is_default);
}

const char *const *cd_folder_paths_dirs(const cd_folder_paths *fp, const char *name, size_t *n) {
    const folder *f = find_folder(fp, map_legacy(name));
    *n = f ? f->ndirs : 0;
    return f ? (const char *const *)f->dirs : NULL;
}

/* relpath(join("/", name), "/"): the name made relative, with ".." unable to climb above the
 * folder (ComfyUI's get_full_path). Caller frees. */
static char *rooted_rel(const char *name) {
    size_t len = strlen(name);
    char *work = strdup(name), *out = malloc(len + 1);
    if (!work || !out) {
        free(work);
        free(out);
        return NULL;
    }
    size_t o = 0;
    char *save = NULL;
    for (char *c = strtok_r(work, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, ".")) continue;
        if (!strcmp(c, "..")) {
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
            continue;
        }
        if (o) out[o++] = '/';
        memcpy(out + o, c, strlen(c));
        o += strlen(c);
    }
    out[o] = '\0';
    free(work);
    return out;
}

char *cd_folder_paths_find(const cd_folder_paths *fp, const char *name, const char *file) {
    const folder *f = find_folder(fp, map_legacy(name));
    if (!f || strchr(file, '\\')) return NULL;
    char *rel = rooted_rel(file);
    if (!rel || !rel[0]) {
        free(rel);
        return NULL;
    }
    for (size_t i = 0; i < f->ndirs; i++) {
        char *full = cd_path_join(f->dirs[i], rel);
        struct stat st;
        if (full && stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            free(rel);
            return full;
        }
        free(full);
    }
    free(rel);
    return NULL;
}

/* ---- extra_model_paths.yaml ---- */

#include <ctype.h>
#include <stdio.h>
#include <yaml.h>

/* os.path.expanduser then os.path.expandvars: a leading ~ becomes $HOME; $NAME and ${NAME}
 * become the variable's value, and are left as they are when it is not set. Caller frees. */
static char *expand(const char *in) {
    size_t cap = strlen(in) + 1, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
#define PUT(s, l)                                          \
    do {                                                   \
        size_t l_ = (l);                                   \
        if (n + l_ + 1 > cap) {                            \
            cap = (n + l_ + 1) * 2;                        \
            char *r_ = realloc(out, cap);                  \
            if (!r_) {                                     \
                free(out);                                 \
                return NULL;                               \
            }                                              \
            out = r_;                                      \
        }                                                  \
        memcpy(out + n, (s), l_);                          \
        n += l_;                                           \
    } while (0)
    const char *p = in;
    const char *home = getenv("HOME");
    if (p[0] == '~' && (p[1] == '/' || p[1] == '\0') && home) {
        PUT(home, strlen(home));
        p++;
    }
    while (*p) {
        if (*p == '$') {
            bool brace = p[1] == '{';
            const char *s = p + 1 + brace, *e = s;
            while (isalnum((unsigned char)*e) || *e == '_') e++;
            if (e > s && (!brace || *e == '}')) {
                char name[256];
                size_t l = (size_t)(e - s) < sizeof name - 1 ? (size_t)(e - s) : sizeof name - 1;
                memcpy(name, s, l);
                name[l] = '\0';
                const char *v = getenv(name);
                const char *after = brace ? e + 1 : e;
                if (v) PUT(v, strlen(v));
                else PUT(p, (size_t)(after - p));
                p = after;
                continue;
            }
        }
        PUT(p, 1);
        p++;
    }
    out[n] = '\0';
#undef PUT
    return out;
}

/* os.path.normpath of an absolute path, lexically. Caller frees. */
static char *normpath_abs(const char *path) {
    char *rel = rooted_rel(path);
    if (!rel) return NULL;
    size_t n = strlen(rel);
    char *out = malloc(n + 2);
    if (out) {
        out[0] = '/';
        memcpy(out + 1, rel, n + 1);
    }
    free(rel);
    return out;
}

/* join(base, p) unless p is absolute, then normpath. */
static char *resolve(const char *base, const char *p) {
    char *joined = p[0] == '/' ? strdup(p) : cd_path_join(base, p);
    char *out = joined ? normpath_abs(joined) : NULL;
    free(joined);
    return out;
}

static const char *scalar(yaml_node_t *node) {
    return node && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

/* YAML 1.1's true (what PyYAML's safe_load reads as True). */
static bool yaml_true(const char *s) {
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"};
    for (size_t i = 0; s && i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i])) return true;
    return false;
}

static int load_section(cd_folder_paths *fp, yaml_document_t *doc, yaml_node_t *sec, const char *yaml_dir,
                        char *err, size_t errlen) {
    char *base = NULL;
    bool is_default = false;
    yaml_node_pair_t *pr;
    for (pr = sec->data.mapping.pairs.start; pr < sec->data.mapping.pairs.top; pr++) {
        const char *k = scalar(yaml_document_get_node(doc, pr->key));
        yaml_node_t *v = yaml_document_get_node(doc, pr->value);
        if (!k) continue;
        if (!strcmp(k, "base_path") && scalar(v)) {
            char *e = expand(scalar(v));
            free(base);
            base = e ? resolve(yaml_dir, e) : NULL;
            free(e);
        } else if (!strcmp(k, "is_default")) {
            is_default = yaml_true(scalar(v));
        }
    }
    int rc = 0;
    for (pr = sec->data.mapping.pairs.start; pr < sec->data.mapping.pairs.top && rc == 0; pr++) {
        const char *k = scalar(yaml_document_get_node(doc, pr->key));
        const char *v = scalar(yaml_document_get_node(doc, pr->value));
        if (!k || !strcmp(k, "base_path") || !strcmp(k, "is_default")) continue;
        if (!v) {
            snprintf(err, errlen, "folder %s: the value must be a path, or several paths one per line", k);
            rc = -1;
            break;
        }
        /* One path per line; empty lines are skipped. */
        const char *p = v;
        while (*p && rc == 0) {
            size_t l = strcspn(p, "\n");
            if (l > 0) {
                char *line = strndup(p, l);
                char *full = line ? resolve(base ? base : yaml_dir, line) : NULL;
                if (!full || cd_folder_paths_add(fp, k, full, is_default) < 0) {
                    snprintf(err, errlen, "out of memory");
                    rc = -1;
                }
                free(line);
                free(full);
            }
            p += l;
            if (*p == '\n') p++;
        }
    }
    free(base);
    return rc;
}

int cd_folder_paths_load_yaml(cd_folder_paths *fp, const char *yaml_path, char *err, size_t errlen) {
    FILE *f = fopen(yaml_path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s", yaml_path);
        return -1;
    }
    char *abs = cd_path_absolute(yaml_path);
    char *slash = abs ? strrchr(abs, '/') : NULL;
    if (slash) *slash = '\0';
    const char *yaml_dir = abs && abs[0] ? abs : "/";
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = -1;
    if (!abs || !yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "out of memory");
        fclose(f);
        free(abs);
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s:%zu: %s", yaml_path, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "invalid YAML");
        goto done_parser;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    rc = 0;
    if (root && root->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
            yaml_node_t *sec = yaml_document_get_node(&doc, pr->value);
            if (!sec || sec->type != YAML_MAPPING_NODE) continue; /* an empty section */
            if (load_section(fp, &doc, sec, yaml_dir, err, errlen) < 0) {
                rc = -1;
                break;
            }
        }
    } else if (root && !(root->type == YAML_SCALAR_NODE && !scalar(root)[0])) {
        snprintf(err, errlen, "%s: the top level must be a mapping of sections", yaml_path);
        rc = -1;
    }
    yaml_document_delete(&doc);
done_parser:
    yaml_parser_delete(&parser);
    fclose(f);
    free(abs);
    return rc;
}
