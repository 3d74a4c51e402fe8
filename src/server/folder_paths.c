#include "server/folder_paths.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/path.h"
#include "base/str.h"

#define MAX_DIRS 4

typedef struct {
    char *name;
    char *dirs[MAX_DIRS];
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

static void add_dir(cd_folder_paths *fp, const char *name, const char *dir) {
    for (size_t i = 0; i < fp->n; i++) {
        folder *f = &fp->folders[i];
        if (strcmp(f->name, name) == 0 && f->ndirs < MAX_DIRS && dir) {
            char *d = strdup(dir);
            if (d) f->dirs[f->ndirs++] = d;
            return;
        }
    }
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
