/* The folder nodes of comfy_extras.nodes_dataset: LoadImageDataSetFromFolder and
 * LoadImageTextDataSetFromFolder (a folder of input/, chosen from a combo of input/'s
 * subfolders), SaveImageDataSetToFolder and SaveImageTextDataSetToFolder (a folder of output/).
 *
 * What ComfyUI does, and where comfyd differs on purpose:
 *  - The combo lists every subfolder of input/ at any depth, as folder_paths.get_input_subfolders
 *    (os.walk, which does not enter symlinked folders), sorted. The chosen folder must be one of
 *    them: a relative path of real folders, without "..", so nothing outside input/ is read
 *    (ComfyUI joins whatever string it gets). Files and kohya subfolders reached through
 *    symlinks are refused when they lead outside input/.
 *  - Files are taken in os.listdir order there, which is the file system's; comfyd sorts names
 *    (bytewise) so that a dataset has the same order on every machine.
 *  - Images are read as Image.open + convert("RGB") reads them: the first frame, no EXIF
 *    rotation (unlike LoadImage), grey spread to RGB, alpha dropped (not composited). 16-bit
 *    colour keeps its high byte, as Pillow reads it; 16-bit grey is Pillow 9's mode "I" path,
 *    min(255, int(v / 255)) (Pillow 10 and later open it as "I;16", which clips at 255 and
 *    ignores ComfyUI's scaling). CMYK JPEGs go through libvips' colour conversion, not
 *    Pillow's naive formula.
 *  - A caption is the image's path with its extension replaced by ".txt" (Python's
 *    str.replace, so every occurrence), read as UTF-8 with universal newlines and stripped;
 *    comfyd replaces within the path below input/ only, so the caption stays inside it.
 *  - Saving writes <prefix>_<idx:05>.png (overwriting, no metadata) and <prefix>_<idx:05>.txt;
 *    folder_name and the file names must stay inside output/ (ComfyUI does not check). */
#include <errno.h>
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nodes/image/image.h"
#include "nodes/text_util.h"

#define MODULE "comfy_extras.nodes_dataset"
#define MAX_DEPTH 64
#define MAX_IMAGES 1000000

/* ---- paths ---- */

/* Is `path` (or, when it does not exist yet, its parent) inside `dir`, symlinks resolved? */
static bool inside(const char *dir, const char *path) {
    char rd[PATH_MAX], rp[PATH_MAX];
    if (!realpath(dir, rd)) return false;
    if (!realpath(path, rp)) {
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", path);
        char *slash = strrchr(parent, '/');
        if (!slash) return false;
        *slash = '\0';
        if (!realpath(parent, rp)) return false;
    }
    size_t n = strlen(rd);
    return !strncmp(rd, rp, n) && (rp[n] == '/' || rp[n] == '\0');
}

/* A relative path whose parts are names: no "", ".", ".." or leading "/". */
static bool plain_relative(const char *p) {
    if (!*p || *p == '/') return false;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return false;
        if (!e) return true;
        p = e + 1;
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Names in a directory but "." and "..", sorted; NULL (errno set) when it cannot be read. */
static GPtrArray *list_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) g_ptr_array_add(names, g_strdup(e->d_name));
    closedir(d);
    g_ptr_array_sort(names, cmp_str);
    return names;
}

/* os.walk below input/: every real (not symlinked) folder, as a relative path. */
static void walk(GPtrArray *out, const char *root, const char *rel, int depth) {
    char *dir = rel ? g_strdup_printf("%s/%s", root, rel) : g_strdup(root);
    GPtrArray *names = depth < MAX_DEPTH ? list_dir(dir) : NULL;
    for (guint i = 0; names && i < names->len; i++) {
        const char *name = g_ptr_array_index(names, i);
        char *path = g_strdup_printf("%s/%s", dir, name);
        struct stat st;
        if (!lstat(path, &st) && S_ISDIR(st.st_mode)) {
            char *sub = rel ? g_strdup_printf("%s/%s", rel, name) : g_strdup(name);
            g_ptr_array_add(out, sub);
            walk(out, root, sub, depth + 1);
        }
        g_free(path);
    }
    if (names) g_ptr_array_free(names, TRUE);
    g_free(dir);
}

static char *folder_options(cd_node_call *call, const char *input) {
    if (strcmp(input, "folder")) return NULL;
    const char *root = cd_call_directory(call, "input");
    GPtrArray *all = g_ptr_array_new_with_free_func(g_free);
    if (root) walk(all, root, NULL, 0);
    g_ptr_array_sort(all, cmp_str);
    json_t *arr = json_array();
    for (guint i = 0; i < all->len; i++) json_array_append_new(arr, json_string(g_ptr_array_index(all, i)));
    g_ptr_array_free(all, TRUE);
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

/* Is `folder` one of the combo's options: real folders all the way down from input/? */
static bool is_input_folder(const char *root, const char *folder) {
    if (!root || !plain_relative(folder)) return false;
    GString *p = g_string_new(root);
    bool ok = true;
    for (const char *s = folder; ok && *s;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        g_string_append_c(p, '/');
        g_string_append_len(p, s, (gssize)len);
        struct stat st;
        ok = !lstat(p->str, &st) && S_ISDIR(st.st_mode);
        s = e ? e + 1 : s + len;
    }
    g_string_free(p, TRUE);
    return ok;
}

static int folder_validate(cd_node_call *call) {
    const char *folder = cd_call_string(call, "folder", NULL);
    if (!folder || is_input_folder(cd_call_directory(call, "input"), folder)) return CD_OK;
    return cd_call_fail(call, NULL, "folder: '%s' is not a folder of the input directory", folder);
}

/* ---- reading ---- */

/* f.lower().endswith(ext) for ComfyUI's four dataset extensions. */
static bool dataset_image_name(const char *name) {
    static const char *exts[] = {".png", ".jpg", ".jpeg", ".webp"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t k = strlen(exts[i]);
        if (n >= k && !g_ascii_strcasecmp(name + n - k, exts[i])) return true;
    }
    return false;
}

/* Image.open(path).convert("RGB") / 255 as an IMAGE [1, H, W, 3]. */
static cd_value *load_rgb(cd_node_call *call, const char *path) {
    VipsImage *im = vips_image_new_from_file(path, NULL);
    if (!im) {
        vips_error_clear();
        cd_call_fail(call, "UnidentifiedImageError", "cannot identify image file '%s'", path);
        return NULL;
    }
    VipsImage *u8 = NULL, *rgb = NULL, *t = NULL;
    int rc;
    if (vips_image_get_format(im) == VIPS_FORMAT_USHORT && vips_image_get_bands(im) == 1) {
        /* 16-bit grey opens as mode "I": img.point(lambda i: i * (1 / 255)) truncates each
         * product to an int, and convert("RGB") clips it to 255 */
        size_t size = 0;
        unsigned short *px = vips_image_write_to_memory(im, &size);
        int64_t h = vips_image_get_height(im), w = vips_image_get_width(im);
        g_object_unref(im);
        if (!px) {
            cd_img_fail_vips(call, "cannot decode the image");
            return NULL;
        }
        cd_value *out = cd_img_new(call, 1, h, w, 3);
        float *d = out ? cd_value_tensor_data_mut(out) : NULL;
        for (size_t i = 0, n = (size_t)(h * w); d && i < n; i++) {
            int v = (int)(px[i] * (1.0 / 255));
            d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = (float)(v > 255 ? 255 : v) / 255.0f;
        }
        g_free(px);
        return out;
    }
    if (vips_image_get_format(im) == VIPS_FORMAT_USHORT) {
        rc = vips_rshift_const1(im, &t, 8, NULL) || vips_cast(t, &u8, VIPS_FORMAT_UCHAR, NULL);
    } else if (vips_image_get_interpretation(im) == VIPS_INTERPRETATION_CMYK) {
        rc = vips_colourspace(im, &t, VIPS_INTERPRETATION_sRGB, NULL) || vips_cast(t, &u8, VIPS_FORMAT_UCHAR, NULL);
    } else {
        rc = vips_cast(im, &u8, VIPS_FORMAT_UCHAR, NULL);
    }
    if (t) g_object_unref(t);
    g_object_unref(im);
    if (!rc) {
        int bands = vips_image_get_bands(u8);
        if (bands >= 3) {
            rc = vips_extract_band(u8, &rgb, 0, "n", 3, NULL);
        } else { /* L or LA: the grey value in each channel */
            VipsImage *grey = NULL;
            rc = vips_extract_band(u8, &grey, 0, NULL);
            if (!rc) {
                VipsImage *in3[3] = {grey, grey, grey};
                rc = vips_bandjoin(in3, &rgb, 3, NULL);
                g_object_unref(grey);
            }
        }
    }
    if (u8) g_object_unref(u8);
    size_t size = 0;
    unsigned char *px = rc ? NULL : vips_image_write_to_memory(rgb, &size);
    int64_t h = rgb ? vips_image_get_height(rgb) : 0, w = rgb ? vips_image_get_width(rgb) : 0;
    if (rgb) g_object_unref(rgb);
    if (!px) {
        cd_img_fail_vips(call, "cannot decode the image");
        return NULL;
    }
    cd_value *out = cd_img_new(call, 1, h, w, 3);
    if (out) {
        float *d = cd_value_tensor_data_mut(out);
        for (size_t i = 0, n = (size_t)(h * w * 3); i < n; i++) d[i] = (float)px[i] / 255.0f;
    }
    g_free(px);
    return out;
}

/* The folder input as a path inside input/, or NULL after cd_call_fail. */
static char *input_folder(cd_node_call *call) {
    const char *root = cd_call_directory(call, "input");
    const char *folder = cd_call_string(call, "folder", NULL);
    if (!folder) {
        cd_call_fail(call, "TypeError", "folder must be a string");
        return NULL;
    }
    if (!root || !is_input_folder(root, folder)) {
        cd_call_fail(call, "FileNotFoundError", "[Errno 2] No such file or directory: '%s/%s'", root ? root : "input",
                     folder);
        return NULL;
    }
    return g_strdup_printf("%s/%s", root, folder);
}

/* Loads every path of `rel` (relative to input/) into a list of one-image tensors. */
static cd_value *load_all(cd_node_call *call, const char *root, GPtrArray *rel) {
    if (rel->len == 0) {
        cd_call_fail(call, "ValueError", "No valid images found in input");
        return NULL;
    }
    cd_value *list = cd_value_list_new(rel->len);
    for (guint i = 0; list && i < rel->len; i++) {
        char *path = g_strdup_printf("%s/%s", root, (const char *)g_ptr_array_index(rel, i));
        cd_value *img = NULL;
        if (!inside(root, path))
            cd_call_fail(call, "PermissionError", "%s leads outside the input directory", path);
        else
            img = load_rgb(call, path);
        g_free(path);
        if (!img || cd_value_list_push(list, img) != CD_OK) {
            if (img) cd_call_fail(call, "MemoryError", "out of memory");
            cd_value_unref(list);
            return NULL;
        }
        if (cd_call_progress(call, i + 1, rel->len) == CD_INTERRUPTED) {
            cd_value_unref(list);
            return NULL;
        }
    }
    if (!list) cd_call_fail(call, "MemoryError", "out of memory");
    return list;
}

static int load_image_dataset(cd_node_call *call) {
    char *dir = input_folder(call);
    if (!dir) return CD_ERROR;
    const char *folder = cd_call_string(call, "folder", "");
    GPtrArray *names = list_dir(dir);
    if (!names) {
        int rc = cd_call_fail(call, "FileNotFoundError", "[Errno %d] %s: '%s'", errno, strerror(errno), dir);
        g_free(dir);
        return rc;
    }
    g_free(dir);
    GPtrArray *rel = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < names->len; i++)
        if (dataset_image_name(g_ptr_array_index(names, i)))
            g_ptr_array_add(rel, g_strdup_printf("%s/%s", folder, (const char *)g_ptr_array_index(names, i)));
    g_ptr_array_free(names, TRUE);
    cd_value *images = load_all(call, cd_call_directory(call, "input"), rel);
    g_ptr_array_free(rel, TRUE);
    if (!images) return cd_call_interrupted(call) ? CD_INTERRUPTED : CD_ERROR;
    return cd_call_set_output(call, 0, images);
}

/* os.path.splitext(p)[1]: from the last dot of the last part, unless only dots precede it. */
static const char *path_ext(const char *p) {
    const char *base = strrchr(p, '/');
    base = base ? base + 1 : p;
    const char *dot = strrchr(base, '.');
    if (!dot) return "";
    for (const char *q = base; q < dot; q++)
        if (*q != '.') return dot;
    return "";
}

/* The caption of image `rel`: "" when there is no caption file, NULL after cd_call_fail. */
static cd_value *read_caption(cd_node_call *call, const char *root, const char *rel) {
    const char *ext = path_ext(rel);
    if (!*ext) return cd_value_string(""); /* replace("", ".txt") names no file that exists */
    cd_text_buf b;
    cd_text_buf_init(&b);
    cd_text_replace(&b, rel, strlen(rel), ext, strlen(ext), ".txt", 4);
    cd_value *rv = cd_text_buf_value(&b);
    if (!rv) {
        cd_call_fail(call, "MemoryError", "out of memory");
        return NULL;
    }
    char *path = g_strdup_printf("%s/%s", root, cd_value_as_string(rv));
    cd_value_unref(rv);
    struct stat st;
    if (stat(path, &st) || !inside(root, path)) {
        g_free(path);
        return cd_value_string("");
    }
    gchar *text = NULL;
    gsize len = 0;
    GError *err = NULL;
    if (S_ISDIR(st.st_mode) || !g_file_get_contents(path, &text, &len, &err)) {
        cd_call_fail(call, S_ISDIR(st.st_mode) ? "IsADirectoryError" : "OSError", "%s: '%s'",
                     err ? err->message : "[Errno 21] Is a directory", path);
        if (err) g_error_free(err);
        g_free(path);
        return NULL;
    }
    const gchar *bad;
    if (!g_utf8_validate(text, (gssize)len, &bad)) {
        cd_call_fail(call, "UnicodeDecodeError",
                     "'utf-8' codec can't decode byte 0x%02x in position %zu of '%s'", (unsigned char)*bad,
                     (size_t)(bad - text), path);
        g_free(text);
        g_free(path);
        return NULL;
    }
    g_free(path);
    /* universal newlines: "\r\n" and "\r" read as "\n" */
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r') {
            text[n++] = '\n';
            if (i + 1 < len && text[i + 1] == '\n') i++;
        } else {
            text[n++] = text[i];
        }
    }
    size_t from, to;
    cd_text_strip(text, n, 1, 1, &from, &to);
    cd_value *v = cd_value_stringn(text + from, to - from);
    g_free(text);
    if (!v) cd_call_fail(call, "MemoryError", "out of memory");
    return v;
}

/* The leading number of a kohya folder name ("10_cat": 10 repeats), else 1. */
static int64_t kohya_repeat(const char *name) {
    const char *u = strchr(name, '_');
    size_t len = u ? (size_t)(u - name) : strlen(name);
    if (len == 0) return 1;
    int64_t r = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] < '0' || name[i] > '9') return 1;
        r = r * 10 + (name[i] - '0');
        if (r > MAX_IMAGES) r = MAX_IMAGES + 1;
    }
    return r;
}

static int load_image_text_dataset(cd_node_call *call) {
    char *dir = input_folder(call);
    if (!dir) return CD_ERROR;
    const char *root = cd_call_directory(call, "input"), *folder = cd_call_string(call, "folder", "");
    GPtrArray *names = list_dir(dir);
    if (!names) {
        int rc = cd_call_fail(call, "FileNotFoundError", "[Errno %d] %s: '%s'", errno, strerror(errno), dir);
        g_free(dir);
        return rc;
    }
    GPtrArray *rel = g_ptr_array_new_with_free_func(g_free);
    int rc = CD_OK;
    for (guint i = 0; i < names->len && rc == CD_OK; i++) {
        const char *item = g_ptr_array_index(names, i);
        char *path = g_strdup_printf("%s/%s", dir, item);
        struct stat st;
        if (dataset_image_name(item)) {
            g_ptr_array_add(rel, g_strdup_printf("%s/%s", folder, item));
        } else if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
            /* kohya-ss/sd-scripts layout: "<repeats>_<name>/" holds images taken that many times */
            GPtrArray *sub = inside(root, path) ? list_dir(path) : NULL;
            if (!sub) {
                rc = cd_call_fail(call, "PermissionError", "%s cannot be read inside the input directory", path);
            } else {
                int64_t repeat = kohya_repeat(item);
                guint before = rel->len;
                for (guint k = 0; k < sub->len; k++)
                    if (dataset_image_name(g_ptr_array_index(sub, k)))
                        g_ptr_array_add(rel, g_strdup_printf("%s/%s/%s", folder, item,
                                                             (const char *)g_ptr_array_index(sub, k)));
                guint one = rel->len - before;
                if (one && (int64_t)rel->len + one * (repeat - 1) > MAX_IMAGES) {
                    rc = cd_call_fail(call, "MemoryError", "%s: too many images (%lld repeats)", item,
                                      (long long)repeat);
                } else if (repeat == 0) {
                    g_ptr_array_set_size(rel, before);
                } else {
                    for (int64_t r = 1; r < repeat; r++)
                        for (guint k = 0; k < one; k++)
                            g_ptr_array_add(rel, g_strdup(g_ptr_array_index(rel, before + k)));
                }
                g_ptr_array_free(sub, TRUE);
            }
        }
        g_free(path);
    }
    g_ptr_array_free(names, TRUE);
    g_free(dir);
    cd_value *captions = rc == CD_OK ? cd_value_list_new(rel->len) : NULL;
    for (guint i = 0; captions && i < rel->len; i++) {
        cd_value *c = read_caption(call, root, g_ptr_array_index(rel, i));
        if (!c || cd_value_list_push(captions, c) != CD_OK) {
            cd_value_unref(captions);
            captions = NULL;
            rc = CD_ERROR;
        }
    }
    cd_value *images = rc == CD_OK ? load_all(call, root, rel) : NULL;
    g_ptr_array_free(rel, TRUE);
    if (!images) {
        cd_value_unref(captions);
        return cd_call_interrupted(call) ? CD_INTERRUPTED : CD_ERROR;
    }
    cd_call_set_output(call, 0, images);
    return cd_call_set_output(call, 1, captions);
}

/* ---- saving ---- */

/* `v[0]` of a list input as a string. */
static const char *first_string(cd_node_call *call, const char *name) {
    const cd_value *v = cd_call_input(call, name);
    if (cd_value_kind_of(v) == CD_VALUE_LIST) v = cd_value_list_len(v) ? cd_value_list_at(v, 0) : NULL;
    const char *s = cd_value_as_string(v);
    if (!s) cd_call_fail(call, "TypeError", "%s must be a string", name);
    return s;
}

/* output/<folder_name>, created, or NULL after cd_call_fail. */
static char *output_folder(cd_node_call *call, const char *folder_name) {
    const char *root = cd_call_directory(call, "output");
    if (!root) {
        cd_call_fail(call, "RuntimeError", "no output directory");
        return NULL;
    }
    if (*folder_name && !plain_relative(folder_name)) {
        cd_call_fail(call, "ValueError", "Saving outside the output folder is not allowed: '%s'", folder_name);
        return NULL;
    }
    char *dir = g_strdup_printf("%s/%s", root, folder_name);
    /* os.makedirs(exist_ok=True), each level checked so that a symlink cannot lead out */
    for (char *p = dir + strlen(root) + 1; *folder_name;) {
        char *e = strchr(p, '/');
        if (e) *e = '\0';
        bool ok = (mkdir(dir, 0755) == 0 || errno == EEXIST) && inside(root, dir);
        int saved = errno;
        if (e) *e = '/';
        if (!ok) {
            cd_call_fail(call, "OSError", "cannot create %s inside the output directory: %s", dir, strerror(saved));
            g_free(dir);
            return NULL;
        }
        if (!e) break;
        p = e + 1;
    }
    return dir;
}

/* save_images_to_folder: <prefix>_<idx:05>.png per image; `files` gets the names. */
static int save_images(cd_node_call *call, GPtrArray *files) {
    const cd_value *images = cd_call_input(call, "images");
    const char *folder_name = first_string(call, "folder_name");
    const char *prefix = folder_name ? first_string(call, "filename_prefix") : NULL;
    if (!prefix) return CD_ERROR;
    if (cd_value_kind_of(images) != CD_VALUE_LIST) return cd_call_fail(call, "TypeError", "images must be a list");
    const char *root = cd_call_directory(call, "output");
    char *dir = output_folder(call, folder_name);
    if (!dir) return CD_ERROR;
    int rc = CD_OK;
    for (size_t i = 0; i < cd_value_list_len(images) && rc == CD_OK; i++) {
        const cd_value *t = cd_value_list_at(images, i);
        cd_img_shape s;
        if (!cd_img_shape_of(NULL, NULL, t, &s)) {
            rc = cd_call_fail(call, "ValueError", "Expected torch.Tensor, got %s",
                              cd_value_kind_of(t) == CD_VALUE_TENSOR ? "a tensor of another shape"
                                                                     : cd_text_py_type(t));
            break;
        }
        /* Image.fromarray of the squeezed batch */
        if (s.b != 1) {
            rc = cd_call_fail(call, "TypeError", "Cannot handle this data type: (1, 1, %lld, %lld), |u1",
                              (long long)s.w, (long long)s.c);
            break;
        }
        if (s.c < 2 || s.c > 4) {
            rc = cd_call_fail(call, "TypeError", "Cannot handle this data type: (1, 1, %lld), |u1", (long long)s.c);
            break;
        }
        char *file = g_strdup_printf("%s_%05zu.png", prefix, i);
        char *path = g_strdup_printf("%s/%s", dir, file);
        char err[512] = "";
        if (strstr(file, "..") && !inside(root, path)) {
            rc = cd_call_fail(call, "ValueError", "Saving outside the output folder is not allowed: '%s'", file);
        } else if (!inside(root, path)) {
            rc = cd_call_fail(call, "FileNotFoundError", "[Errno 2] No such file or directory: '%s'", path);
        } else if (cd_img_write_png(path, cd_value_tensor_data(t), s.h, s.w, s.c, NULL, 0, 6, err, sizeof err) !=
                   CD_OK) {
            rc = cd_call_fail(call, "OSError", "%s", err);
        } else {
            g_ptr_array_add(files, file);
            file = NULL;
        }
        g_free(file);
        g_free(path);
    }
    g_free(dir);
    return rc;
}

static int save_image_dataset(cd_node_call *call) {
    GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
    int rc = save_images(call, files);
    g_ptr_array_free(files, TRUE);
    return rc;
}

static int save_image_text_dataset(cd_node_call *call) {
    const cd_value *texts = cd_call_input(call, "texts");
    if (cd_value_kind_of(texts) != CD_VALUE_LIST) return cd_call_fail(call, "TypeError", "texts must be a list");
    GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
    int rc = save_images(call, files);
    const char *folder_name = rc == CD_OK ? first_string(call, "folder_name") : NULL;
    char *dir = folder_name ? g_strdup_printf("%s/%s", cd_call_directory(call, "output"), folder_name) : NULL;
    /* zip(saved_files, texts): as many captions as both have */
    for (guint i = 0; dir && i < files->len && i < cd_value_list_len(texts) && rc == CD_OK; i++) {
        const cd_value *t = cd_value_list_at(texts, i);
        const char *caption = cd_value_as_string(t);
        if (!caption) {
            rc = cd_call_fail(call, "TypeError", "write() argument must be str, not %s", cd_text_py_type(t));
            break;
        }
        const char *file = g_ptr_array_index(files, i);
        cd_text_buf b;
        cd_text_buf_init(&b);
        cd_text_replace(&b, file, strlen(file), ".png", 4, ".txt", 4);
        cd_value *name = cd_text_buf_value(&b);
        char *path = name ? g_strdup_printf("%s/%s", dir, cd_value_as_string(name)) : NULL;
        cd_value_unref(name);
        FILE *f = path ? fopen(path, "w") : NULL;
        size_t len = strlen(caption);
        if (!f || fwrite(caption, 1, len, f) != len)
            rc = cd_call_fail(call, "OSError", "cannot write %s: %s", path ? path : "caption", strerror(errno));
        if (f && fclose(f) && rc == CD_OK)
            rc = cd_call_fail(call, "OSError", "cannot write %s: %s", path, strerror(errno));
        g_free(path);
    }
    g_free(dir);
    g_ptr_array_free(files, TRUE);
    return rc;
}

/* ---- definitions ---- */

static const cd_output_def out_images[] = {{"IMAGE", "images", 1, "List of loaded images", NULL}};
static const cd_output_def out_images_texts[] = {{"IMAGE", "images", 1, "List of loaded images", NULL},
                                                 {"STRING", "texts", 1, "List of text captions", NULL}};

/* The options are listed when asked (folder_options); the declaration holds none. */
#define FOLDER                                                                                                       \
    "{\"required\": {\"folder\": [\"COMBO\", {\"tooltip\": \"The folder to load images from.\", \"multiselect\": "   \
    "false, \"options\": []}]}}"
#define SAVE_INPUTS(TEXTS)                                                                                           \
    "{\"required\": {\"images\": [\"IMAGE\", {\"tooltip\": \"List of images to save.\"}], " TEXTS                   \
    "\"folder_name\": [\"STRING\", {\"tooltip\": \"Name of the folder to save images to (inside output "            \
    "directory).\", \"default\": \"dataset\", \"multiline\": false}], \"filename_prefix\": [\"STRING\", "           \
    "{\"tooltip\": \"Prefix for saved image filenames.\", \"default\": \"image\", \"multiline\": false}]}, "        \
    "\"hidden\": {\"prompt\": [\"PROMPT\"], \"extra_pnginfo\": [\"EXTRA_PNGINFO\"]}}"

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "LoadImageDataSetFromFolder",
     .display_name = "Load Image Dataset from Folder", .category = "dataset", .python_module = MODULE,
     .inputs = FOLDER, .outputs = out_images, .n_outputs = 1, .flags = CD_NODE_V3_INFO | CD_NODE_EXPERIMENTAL,
     .execute = load_image_dataset, .validate_inputs = folder_validate, .validate_inputs_args = "folder",
     .combo_options = folder_options},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "LoadImageTextDataSetFromFolder",
     .display_name = "Load Image and Text Dataset from Folder", .category = "dataset", .python_module = MODULE,
     .inputs = FOLDER, .outputs = out_images_texts, .n_outputs = 2, .flags = CD_NODE_V3_INFO | CD_NODE_EXPERIMENTAL,
     .execute = load_image_text_dataset, .validate_inputs = folder_validate, .validate_inputs_args = "folder",
     .combo_options = folder_options},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "SaveImageDataSetToFolder",
     .display_name = "Save Image Dataset to Folder", .category = "dataset", .python_module = MODULE,
     .inputs = SAVE_INPUTS(""),
     .flags = CD_NODE_V3_INFO | CD_NODE_EXPERIMENTAL | CD_NODE_OUTPUT | CD_NODE_INPUT_IS_LIST,
     .execute = save_image_dataset},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "SaveImageTextDataSetToFolder",
     .display_name = "Save Image and Text Dataset to Folder", .category = "dataset", .python_module = MODULE,
     .inputs = SAVE_INPUTS("\"texts\": [\"STRING\", {\"tooltip\": \"List of text captions to save.\", "
                           "\"multiline\": false}], "),
     .flags = CD_NODE_V3_INFO | CD_NODE_EXPERIMENTAL | CD_NODE_OUTPUT | CD_NODE_INPUT_IS_LIST,
     .execute = save_image_text_dataset},
};

int cd_nodes_image_dataset_files_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
