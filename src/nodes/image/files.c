/* Image files as ComfyUI's LoadImage and SaveImage handle them: decoding every frame into an
 * IMAGE and a MASK, sha256 for IS_CHANGED, annotated names ("x.png [output]") confined to their
 * directory, PNG writing with tEXt chunks, and folder_paths.get_save_image_path's naming. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nodes/image/image.h"
#include "nodes/text_util.h"

/* ---- loading ---- */

static int vips_shift_high_byte(VipsImage *in, VipsImage **out) {
    VipsImage *t = NULL;
    if (vips_rshift_const1(in, &t, 8, NULL)) return -1;
    int rc = vips_cast(t, out, VIPS_FORMAT_UCHAR, NULL);
    g_object_unref(t);
    return rc;
}

/* The frame in RGB plus its alpha band (NULL when it has none), both uchar. */
static int split_rgb_alpha(VipsImage *frame, VipsImage **rgb, VipsImage **alpha) {
    VipsImage *u8 = NULL, *srgb = NULL;
    *rgb = *alpha = NULL;
    if (vips_image_get_format(frame) == VIPS_FORMAT_UCHAR) {
        u8 = frame;
        g_object_ref(u8);
    } else if (vips_image_get_format(frame) == VIPS_FORMAT_USHORT) {
        if (vips_shift_high_byte(frame, &u8)) return -1;
    } else if (vips_cast(frame, &u8, VIPS_FORMAT_UCHAR, NULL)) {
        return -1;
    }
    bool has_alpha = vips_image_hasalpha(u8);
    int bands = vips_image_get_bands(u8);
    if (has_alpha && vips_extract_band(u8, alpha, bands - 1, NULL)) goto fail;
    VipsImage *colour = NULL;
    if (vips_extract_band(u8, &colour, 0, "n", has_alpha ? bands - 1 : bands, NULL)) goto fail;
    if (vips_image_get_bands(colour) == 1) {
        /* L to RGB: the grey value in each channel, as Pillow's convert("RGB"). */
        VipsImage *in3[3] = {colour, colour, colour};
        int rc = vips_bandjoin(in3, &srgb, 3, NULL);
        g_object_unref(colour);
        if (rc) goto fail;
    } else if (vips_image_get_bands(colour) == 3 && u8->Type != VIPS_INTERPRETATION_CMYK) {
        srgb = colour;
    } else {
        int rc = vips_colourspace(colour, &srgb, VIPS_INTERPRETATION_sRGB, NULL);
        g_object_unref(colour);
        if (rc) goto fail;
        if (vips_image_get_bands(srgb) > 3) {
            VipsImage *t = srgb;
            rc = vips_extract_band(t, &srgb, 0, "n", 3, NULL);
            g_object_unref(t);
            if (rc) goto fail;
        }
    }
    g_object_unref(u8);
    *rgb = srgb;
    return 0;
fail:
    if (*alpha) g_object_unref(*alpha);
    *alpha = NULL;
    g_object_unref(u8);
    return -1;
}

/* Bytes of a uchar image, row-major with its bands interleaved (malloc'd by libvips). */
static unsigned char *uchar_pixels(VipsImage *im) {
    VipsImage *c = NULL;
    if (vips_image_get_format(im) != VIPS_FORMAT_UCHAR) {
        if (vips_cast(im, &c, VIPS_FORMAT_UCHAR, NULL)) return NULL;
    } else {
        c = im;
        g_object_ref(c);
    }
    size_t size;
    unsigned char *mem = vips_image_write_to_memory(c, &size);
    g_object_unref(c);
    return mem;
}

int cd_img_load_file(cd_node_call *call, const char *path, cd_value **image, cd_value **mask) {
    *image = *mask = NULL;
    VipsImage *all = vips_image_new_from_file(path, "n", -1, NULL);
    if (!all) {
        /* Formats without pages refuse "n": try again plainly. */
        vips_error_clear();
        all = vips_image_new_from_file(path, NULL);
    }
    if (!all) return cd_img_fail_vips(call, "cannot read the image");
    int page_h = vips_image_get_page_height(all);
    int width = vips_image_get_width(all);
    int frames = page_h > 0 ? vips_image_get_height(all) / page_h : 1;
    if (frames < 1) frames = 1;
    /* MPO files (JPEG with a second view) keep only their first frame, as ComfyUI. */
    const char *loader = NULL;
    if (vips_image_get_typeof(all, VIPS_META_LOADER) && !vips_image_get_string(all, VIPS_META_LOADER, &loader) &&
        loader && strstr(loader, "jpeg"))
        frames = 1;
    cd_value **imgs = calloc((size_t)frames, sizeof *imgs), **masks = calloc((size_t)frames, sizeof *masks);
    int n = 0, rc = CD_OK;
    for (int f = 0; f < frames && imgs && masks; f++) {
        VipsImage *frame = NULL, *rgb = NULL, *alpha = NULL;
        if (vips_crop(all, &frame, 0, f * page_h, width, frames > 1 ? page_h : vips_image_get_height(all), NULL) ||
            split_rgb_alpha(frame, &rgb, &alpha)) {
            if (frame) g_object_unref(frame);
            rc = cd_img_fail_vips(call, "cannot decode the image");
            break;
        }
        g_object_unref(frame);
        VipsImage *rgb_rot = NULL, *alpha_rot = NULL;
        /* exif_transpose: the orientation tag travels with the decoded image. */
        if (vips_autorot(rgb, &rgb_rot, NULL) || (alpha && vips_autorot(alpha, &alpha_rot, NULL))) {
            g_object_unref(rgb);
            if (alpha) g_object_unref(alpha);
            if (rgb_rot) g_object_unref(rgb_rot);
            rc = cd_img_fail_vips(call, "cannot decode the image");
            break;
        }
        g_object_unref(rgb);
        if (alpha) g_object_unref(alpha);
        int64_t h = vips_image_get_height(rgb_rot), w = vips_image_get_width(rgb_rot);
        if (n > 0 && (h != cd_value_tensor_dim(imgs[0], 1) || w != cd_value_tensor_dim(imgs[0], 2))) {
            g_object_unref(rgb_rot); /* frames of another size are skipped, as in ComfyUI */
            if (alpha_rot) g_object_unref(alpha_rot);
            continue;
        }
        unsigned char *px = uchar_pixels(rgb_rot);
        unsigned char *ax = alpha_rot ? uchar_pixels(alpha_rot) : NULL;
        g_object_unref(rgb_rot);
        if (alpha_rot) g_object_unref(alpha_rot);
        cd_value *img = px ? cd_img_new(call, 1, h, w, 3) : NULL;
        cd_value *m = !img ? NULL : ax ? cd_mask_new(call, 1, h, w) : cd_mask_new(call, 1, 64, 64);
        if (!px || (alpha_rot && !ax) || !img || !m) {
            g_free(px);
            g_free(ax);
            cd_value_unref(img);
            cd_value_unref(m);
            rc = img && m ? cd_img_fail_vips(call, "cannot decode the image") : CD_ERROR;
            break;
        }
        /* np.array(image).astype(np.float32) / 255.0, and 1 - alpha / 255 for the mask */
        float *d = cd_value_tensor_data_mut(img);
        for (size_t i = 0, k = (size_t)(h * w * 3); i < k; i++) d[i] = (float)px[i] / 255.0f;
        if (ax) {
            float *md = cd_value_tensor_data_mut(m);
            for (size_t i = 0, k = (size_t)(h * w); i < k; i++) md[i] = 1.0f - (float)ax[i] / 255.0f;
        }
        g_free(px);
        g_free(ax);
        imgs[n] = img;
        masks[n] = m;
        n++;
    }
    g_object_unref(all);
    if (!imgs || !masks) rc = cd_call_fail(call, "MemoryError", "out of memory");
    if (rc == CD_OK && n == 0) rc = cd_call_fail(call, "RuntimeError", "the image has no frames");
    if (rc == CD_OK) {
        /* Masks of frames without alpha are 64x64: a batch of mixed masks cannot be stacked,
         * which fails in ComfyUI too (torch.cat). */
        *image = cd_img_cat(call, imgs, (size_t)n);
        *mask = *image ? cd_img_cat(call, masks, (size_t)n) : NULL;
        if (!*mask) {
            if (*image) cd_value_unref(*image);
            *image = NULL;
            for (int i = 0; i < n; i++) cd_value_unref(masks[i]);
            rc = CD_ERROR;
        }
    } else {
        for (int i = 0; i < n; i++) {
            cd_value_unref(imgs[i]);
            cd_value_unref(masks[i]);
        }
    }
    free(imgs);
    free(masks);
    return rc;
}

int cd_img_file_sha256(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return CD_ERROR;
    GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) g_checksum_update(sum, buf, (gssize)n);
    int err = ferror(f);
    fclose(f);
    snprintf(hex, 65, "%s", g_checksum_get_string(sum));
    g_checksum_free(sum);
    return err ? CD_ERROR : CD_OK;
}

/* ---- names and directories ---- */

/* Is `path` (which exists, or whose parent exists) inside `dir`, symlinks resolved? */
static bool inside(const char *dir, const char *path) {
    char rd[PATH_MAX], rp[PATH_MAX];
    if (!realpath(dir, rd)) return false;
    if (!realpath(path, rp)) {
        /* Not there yet: judge by its parent. */
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

/* A relative name without "..", NUL or a leading "/". */
static bool plain_relative(const char *name) {
    if (!name[0] || name[0] == '/') return false;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return false;
        if (!e) break;
        p = e + 1;
    }
    return true;
}

char *cd_img_annotated_path(cd_node_call *call, const char *name, const char *default_type) {
    static const struct {
        const char *suffix, *type;
    } notes[] = {{"[output]", "output"}, {"[input]", "input"}, {"[temp]", "temp"}};
    const char *type = default_type;
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++) {
        size_t sl = strlen(notes[i].suffix);
        if (len >= sl && !strcmp(name + len - sl, notes[i].suffix)) {
            type = notes[i].type;
            len -= sl;
            while (len && name[len - 1] == ' ') len--; /* "x.png [output]": the space goes too */
            break;
        }
    }
    const char *dir = cd_call_directory(call, type);
    if (!dir) return NULL;
    char *rel = strndup(name, len);
    if (!rel) return NULL;
    char *path = NULL;
    if (plain_relative(rel) && asprintf(&path, "%s/%s", dir, rel) >= 0 && !inside(dir, path)) {
        free(path);
        path = NULL;
    }
    free(rel);
    return path;
}

/* The extensions Python's mimetypes maps to image types: what LoadImage lists. */
static bool is_image_name(const char *name) {
    static const char *exts[] = {".png", ".jpg",  ".jpeg", ".jpe", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ico",
                                 ".svg", ".avif", ".heic", ".heif", ".pnm", ".pbm", ".pgm", ".ppm",  ".xbm",  ".xpm",
                                 ".ras", ".ief",  ".rgb",  ".xwd",  ".jxl", ".exr", ".psd"};
    const char *dot = strrchr(name, '.');
    if (!dot) return false;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (!strcasecmp(dot, exts[i])) return true;
    return false;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void json_put_string(GString *out, const char *s) {
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') g_string_append_printf(out, "\\%c", *p);
        else if (*p < 0x20) g_string_append_printf(out, "\\u%04x", *p);
        else g_string_append_c(out, (char)*p);
    }
    g_string_append_c(out, '"');
}

char *cd_img_list_dir_json(const char *dir) {
    DIR *d = dir ? opendir(dir) : NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        if (!is_image_name(e->d_name)) continue;
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) || !S_ISREG(st.st_mode)) continue; /* files only, as os.path.isfile */
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        names[n++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    GString *out = g_string_new("[");
    for (size_t i = 0; i < n; i++) {
        if (names[i]) {
            if (out->len > 1) g_string_append(out, ", ");
            json_put_string(out, names[i]);
        }
        free(names[i]);
    }
    free(names);
    g_string_append_c(out, ']');
    char *text = strdup(out->str);
    g_string_free(out, TRUE);
    return text;
}

/* ---- PNG ---- */

static uint8_t to_u8(float v) {
    /* np.clip(255. * v, 0, 255).astype(np.uint8): float32 product, truncated */
    float t = 255.0f * v;
    if (!(t > 0.0f)) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

int cd_img_write_png(const char *path, const float *pixels, int64_t h, int64_t w, int64_t c, const cd_png_text *texts,
                     size_t n_texts, int compress_level, char *err, size_t errlen) {
    if (h <= 0 || w <= 0 || h > INT32_MAX || w > INT32_MAX || (c != 1 && c != 2 && c != 3 && c != 4)) {
        snprintf(err, errlen, "cannot save an image of %lld x %lld with %lld channels as PNG", (long long)w,
                 (long long)h, (long long)c);
        return CD_ERROR;
    }
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) return CD_ERROR;
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        free(tmp);
        return CD_ERROR;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *row = malloc((size_t)(w * c));
    png_textp chunks = calloc(n_texts ? n_texts : 1, sizeof *chunks);
    int rc = CD_ERROR;
    if (!png || !info || !row || !chunks) {
        snprintf(err, errlen, "out of memory writing %s", path);
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) {
        snprintf(err, errlen, "libpng failed writing %s", path);
        goto done;
    }
    png_init_io(png, f);
    static const int colour[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, colour[c], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, compress_level);
    for (size_t i = 0; i < n_texts; i++) {
        chunks[i].compression = PNG_TEXT_COMPRESSION_NONE; /* tEXt, as Pillow's add_text */
        chunks[i].key = (char *)texts[i].key;
        chunks[i].text = (char *)texts[i].text;
        chunks[i].text_length = strlen(texts[i].text);
    }
    if (n_texts) png_set_text(png, info, chunks, (int)n_texts);
    png_write_info(png, info);
    size_t per_row = (size_t)(w * c);
    for (int64_t y = 0; y < h; y++) {
        const float *src = pixels + (size_t)y * per_row;
        for (size_t i = 0; i < per_row; i++) row[i] = to_u8(src[i]);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    rc = CD_OK;
done:
    png_destroy_write_struct(&png, &info);
    free(row);
    free(chunks);
    if (fclose(f) != 0 && rc == CD_OK) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = CD_ERROR;
    }
    if (rc == CD_OK && rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = CD_ERROR;
    }
    if (rc != CD_OK) unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- get_save_image_path ---- */

static void replace_all(GString *s, const char *find, const char *with) {
    g_string_replace(s, find, with, 0);
}

/* os.path.normpath for a relative path: "." and empty parts dropped, ".." folds its parent
 * (leading ".." kept, which the confinement check then refuses). */
static char *normpath(const char *p) {
    bool absolute = p[0] == '/';
    GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
    gchar **split = g_strsplit(p, "/", -1);
    for (gchar **s = split; *s; s++) {
        if (!**s || !strcmp(*s, ".")) continue;
        if (!strcmp(*s, "..") && parts->len && strcmp(g_ptr_array_index(parts, parts->len - 1), "..")) {
            g_ptr_array_remove_index(parts, parts->len - 1);
            continue;
        }
        if (!strcmp(*s, "..") && absolute) continue;
        g_ptr_array_add(parts, g_strdup(*s));
    }
    g_strfreev(split);
    GString *out = g_string_new(absolute ? "/" : "");
    for (guint i = 0; i < parts->len; i++) {
        if (i) g_string_append_c(out, '/');
        g_string_append(out, g_ptr_array_index(parts, i));
    }
    if (!out->len) g_string_append_c(out, '.');
    g_ptr_array_free(parts, TRUE);
    char *r = strdup(out->str);
    g_string_free(out, TRUE);
    return r;
}

/* Python's int() of the text before the next "_": optional spaces and sign, digits. */
static bool parse_counter(const char *s, long *out) {
    const char *e = strchr(s, '_');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    char buf[32];
    if (len == 0 || len >= sizeof buf) return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\n') end++;
    if (errno || end == buf || *end) return false;
    *out = v;
    return true;
}

int cd_img_save_path(cd_node_call *call, const char *dir, const char *prefix, int64_t width, int64_t height,
                     cd_save_path *out) {
    memset(out, 0, sizeof *out);
    if (!dir) return cd_call_fail(call, "RuntimeError", "no directory to save into");
    GString *p = g_string_new(prefix);
    if (strchr(prefix, '%')) {
        char num[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        snprintf(num, sizeof num, "%lld", (long long)width);
        replace_all(p, "%width%", num);
        snprintf(num, sizeof num, "%lld", (long long)height);
        replace_all(p, "%height%", num);
        snprintf(num, sizeof num, "%d", tm.tm_year + 1900);
        replace_all(p, "%year%", num);
        const struct {
            const char *var;
            int v;
        } two[] = {{"%month%", tm.tm_mon + 1}, {"%day%", tm.tm_mday}, {"%hour%", tm.tm_hour},
                   {"%minute%", tm.tm_min},    {"%second%", tm.tm_sec}};
        for (size_t i = 0; i < sizeof two / sizeof two[0]; i++) {
            snprintf(num, sizeof num, "%02d", two[i].v);
            replace_all(p, two[i].var, num);
        }
    }
    char *norm = normpath(p->str);
    g_string_free(p, TRUE);
    char *slash = strrchr(norm, '/');
    out->filename = strdup(slash ? slash + 1 : norm);
    out->subfolder = slash ? strndup(norm, (size_t)(slash - norm)) : strdup("");
    bool escapes = norm[0] == '/' || !strcmp(norm, "..") || !strncmp(norm, "../", 3);
    free(norm);
    if (!out->filename || !out->subfolder) {
        cd_save_path_free(out);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    if (escapes) {
        int rc = cd_call_fail(call, "Exception",
                              "**** ERROR: Saving image outside the output folder is not allowed.\n"
                              " full_output_folder: %s/%s\n         output_dir: %s",
                              dir, out->subfolder, dir);
        cd_save_path_free(out);
        return rc;
    }
    if (asprintf(&out->folder, "%s%s%s", dir, out->subfolder[0] ? "/" : "", out->subfolder) < 0) {
        out->folder = NULL;
        cd_save_path_free(out);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    /* Create the subfolders, then check that symlinks do not lead the folder out of dir. */
    for (char *q = out->folder + strlen(dir) + 1; out->subfolder[0] && q && *q; q = strchr(q + 1, '/')) {
        char saved = *q;
        *q = '\0';
        mkdir(out->folder, 0755);
        *q = saved;
        if (!saved) break;
    }
    mkdir(out->folder, 0755);
    if (!inside(dir, out->folder)) {
        int rc = cd_call_fail(call, "Exception", "**** ERROR: Saving image outside the output folder is not allowed.");
        cd_save_path_free(out);
        return rc;
    }
    long counter = 0;
    bool any = false;
    size_t plen = strlen(out->filename);
    DIR *d = opendir(out->folder);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        /* f[:p] == name (case-sensitively, as on Linux) and f[p] == "_" */
        if (strncmp(e->d_name, out->filename, plen) || e->d_name[plen] != '_') continue;
        long v;
        if (!parse_counter(e->d_name + plen + 1, &v)) v = 0;
        if (!any || v > counter) counter = v;
        any = true;
    }
    if (d) closedir(d);
    out->counter = any ? counter + 1 : 1;
    return CD_OK;
}

void cd_save_path_free(cd_save_path *p) {
    free(p->folder);
    free(p->filename);
    free(p->subfolder);
    memset(p, 0, sizeof *p);
}

/* ---- SaveImage / PreviewImage ---- */

/* The tEXt chunks: "prompt", then one per extra_pnginfo key, each json.dumps of the value as
 * Python writes it. texts[i].key/text point into *owned (freed by the caller). */
static size_t metadata_texts(cd_node_call *call, cd_png_text **texts, char ***owned) {
    *texts = NULL;
    *owned = NULL;
    if (!cd_call_save_metadata(call)) return 0;
    json_t *extra = NULL;
    const char *extra_text = cd_call_extra_pnginfo_json(call);
    if (extra_text) extra = json_loads(extra_text, JSON_DECODE_ANY, NULL);
    size_t cap = 1 + (json_is_object(extra) ? json_object_size(extra) : 0), n = 0;
    *texts = calloc(cap, sizeof **texts);
    *owned = calloc(2 * cap + 1, sizeof **owned);
    if (!*texts || !*owned) {
        json_decref(extra);
        return 0;
    }
    const char *prompt = cd_call_prompt_json(call);
    if (prompt && ((*owned)[0] = cd_py_json_dumps(prompt))) {
        (*texts)[n].key = "prompt";
        (*texts)[n].text = (*owned)[0];
        n++;
    }
    const char *key;
    json_t *value;
    size_t o = 1;
    json_object_foreach(json_is_object(extra) ? extra : NULL, key, value) {
        char *raw = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        char *py = raw ? cd_py_json_dumps(raw) : NULL;
        free(raw);
        char *k = strdup(key);
        if (!py || !k) {
            free(py);
            free(k);
            continue;
        }
        (*owned)[o++] = py;
        (*owned)[o++] = k;
        (*texts)[n].key = k;
        (*texts)[n].text = py;
        n++;
    }
    json_decref(extra);
    return n;
}

int cd_img_save_batch(cd_node_call *call, const cd_value *images, const char *type, const char *prefix,
                      int compress_level) {
    cd_img_shape s;
    if (!cd_img_shape_of(call, "images", images, &s)) return CD_ERROR;
    cd_save_path sp;
    if (cd_img_save_path(call, cd_call_directory(call, type), prefix, s.w, s.h, &sp) != CD_OK) return CD_ERROR;
    cd_png_text *texts;
    char **owned;
    size_t n_texts = metadata_texts(call, &texts, &owned);
    int rc = CD_OK;
    size_t per = (size_t)(s.h * s.w * s.c);
    for (int64_t b = 0; b < s.b && rc == CD_OK; b++) {
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)b);
        GString *name = g_string_new(sp.filename);
        g_string_replace(name, "%batch_num%", num, 0);
        char *file = NULL, *path = NULL;
        if (asprintf(&file, "%s_%05ld_.png", name->str, sp.counter) < 0) file = NULL;
        g_string_free(name, TRUE);
        if (!file || asprintf(&path, "%s/%s", sp.folder, file) < 0) path = NULL;
        char err[512] = "out of memory";
        if (!path || cd_img_write_png(path, cd_value_tensor_data(images) + per * (size_t)b, s.h, s.w, s.c, texts,
                                      n_texts, compress_level, err, sizeof err) != CD_OK) {
            rc = cd_call_fail(call, "OSError", "%s", err);
        } else {
            json_t *entry = json_pack("{s:s, s:s, s:s}", "filename", file, "subfolder", sp.subfolder, "type", type);
            char *text = json_dumps(entry, JSON_COMPACT);
            json_decref(entry);
            cd_value *v = text ? cd_value_json(text) : NULL;
            free(text);
            if (v) cd_call_ui(call, "images", v);
        }
        free(file);
        free(path);
        sp.counter++;
    }
    for (size_t i = 0; owned && i < 2 * n_texts + 1; i++) free(owned[i]);
    free(owned);
    free(texts);
    cd_save_path_free(&sp);
    return rc;
}
