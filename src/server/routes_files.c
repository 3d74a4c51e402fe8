/* The file routes (API reference §3.16–3.19): POST /upload/image and /upload/mask, GET /view
 * and GET /view_metadata/{folder}.
 *
 * Every name a client sends is checked twice: first as text, the way ComfyUI's server.py does
 * (so the status codes match: 400 for a bad file name, 403 for a subfolder that leaves its
 * directory), then on disk with cd_path_join_confined, which resolves symlinks, so that a
 * symlink inside input/ that points elsewhere cannot be used to read or write outside. Blocking
 * work (hashing, writing, image conversion) runs in the thread pool; plain files are streamed by
 * static_files.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
#include <vips/vips.h>
#include <zlib.h>

#include "base/log.h"
#include "base/path.h"
#include "base/str.h"
#include "net/multipart.h"
#include "net/static_files.h"
#include "server/folder_paths.h"
#include "server/instance.h"

/* ---- names ---- */

static const char *dir_by_type(const cd_instance *inst, const char *type) {
    if (!strcmp(type, "input")) return inst->input_dir;
    if (!strcmp(type, "output")) return inst->output_dir;
    if (!strcmp(type, "temp")) return inst->temp_dir;
    return NULL;
}

/* ComfyUI's annotated_filepath: "x.png [output]" names x.png in output/. The annotation and the
 * one character before it are cut. Returns the directory type or NULL; *name is shortened. */
static const char *strip_annotation(char *name) {
    static const char *const types[] = {"output", "input", "temp"};
    size_t n = strlen(name);
    for (size_t i = 0; i < 3; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "[%s]", types[i]);
        size_t sl = strlen(suffix);
        if (n >= sl && strcmp(name + n - sl, suffix) == 0) {
            name[n - sl > 0 ? n - sl - 1 : 0] = '\0';
            return types[i];
        }
    }
    return NULL;
}

/* Lexical normalisation of a + "/" + b relative to a root (Python's normpath of a joined
 * path): "." and empty components vanish, ".." removes the previous component. Returns NULL when
 * either part is absolute or the result would climb above the root; "" for the root itself. */
static char *normalize_rel(const char *a, const char *b) {
    if (a[0] == '/' || b[0] == '/') return NULL;
    size_t la = strlen(a), lb = strlen(b);
    char *joined = malloc(la + lb + 2);
    if (!joined) return NULL;
    memcpy(joined, a, la);
    joined[la] = '/';
    memcpy(joined + la + 1, b, lb + 1);
    char *out = malloc(la + lb + 2);
    if (!out) {
        free(joined);
        return NULL;
    }
    size_t o = 0;
    char *save = NULL;
    bool ok = true;
    for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, ".")) continue;
        if (!strcmp(c, "..")) {
            if (o == 0) {
                ok = false;
                break;
            }
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--; /* the slash */
            continue;
        }
        if (o) out[o++] = '/';
        size_t n = strlen(c);
        memcpy(out + o, c, n);
        o += n;
    }
    out[o] = '\0';
    free(joined);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

static bool has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20) return true;
    return false;
}

static void respond_status(cd_http_req *req, int status, const char *message) {
    char text[512];
    snprintf(text, sizeof text, "%d: %s", status, message);
    cd_http_respond_text(req, status, text);
}

/* ---- images through libvips ---- */

/* The image as 8-bit sRGB with alpha (Pillow's convert("RGBA")). *had_alpha says whether the
 * source had an alpha channel. Returns a new image or NULL (vips error set). */
static VipsImage *to_rgba8(VipsImage *in, bool *had_alpha) {
    VipsImage *cur = in, *t = NULL;
    g_object_ref(cur);
    bool alpha = vips_image_hasalpha(in);
    if (had_alpha) *had_alpha = alpha;
    if (vips_image_guess_interpretation(cur) != VIPS_INTERPRETATION_sRGB || cur->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_colourspace(cur, &t, VIPS_INTERPRETATION_sRGB, NULL)) goto fail;
        g_object_unref(cur);
        cur = t;
    }
    if (cur->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_cast_uchar(cur, &t, NULL)) goto fail;
        g_object_unref(cur);
        cur = t;
    }
    if (cur->Bands == 1 || cur->Bands == 2) { /* grey that colourspace left alone */
        VipsImage *g = cur, *bands[3] = {g, g, g};
        VipsImage *rgb;
        if (cur->Bands == 2) {
            if (vips_extract_band(cur, &g, 0, NULL)) goto fail;
            bands[0] = bands[1] = bands[2] = g;
        }
        int rc = vips_bandjoin(bands, &rgb, 3, NULL);
        if (cur->Bands == 2) {
            VipsImage *a;
            if (!rc && !vips_extract_band(cur, &a, 1, NULL)) {
                VipsImage *both[2] = {rgb, a}, *j;
                rc = vips_bandjoin(both, &j, 2, NULL);
                g_object_unref(a);
                g_object_unref(rgb);
                rgb = rc ? NULL : j;
            } else {
                rc = -1;
            }
            g_object_unref(g);
        }
        if (rc) goto fail;
        g_object_unref(cur);
        cur = rgb;
    }
    if (cur->Bands == 3) {
        if (vips_bandjoin_const1(cur, &t, 255.0, NULL)) goto fail;
        g_object_unref(cur);
        cur = t;
    } else if (cur->Bands > 4) {
        if (vips_extract_band(cur, &t, 0, "n", 4, NULL)) goto fail;
        g_object_unref(cur);
        cur = t;
    }
    return cur;
fail:
    g_object_unref(cur);
    return NULL;
}

/* libvips 8.14 decodes a truncated or damaged PNG into a partly black picture with only a
 * warning (its fail_on option is not honoured by every PNG load path), while Pillow, and so
 * ComfyUI, refuses such a file. A full decode with libpng's own checks (CRCs, truncation)
 * gives the same answer. Returns 0 when data is not a PNG or decodes cleanly. */
static int png_check(const void *data, size_t len, char *err, size_t errlen) {
    if (len < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) return 0;
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, len)) {
        snprintf(err, errlen, "%s", image.message);
        return -1;
    }
    image.format = PNG_FORMAT_RGBA;
    size_t need = PNG_IMAGE_SIZE(image);
    if ((uint64_t)image.width * image.height > 200u * 1000 * 1000) {
        png_image_free(&image);
        snprintf(err, errlen, "the image is too large (%ux%u)", image.width, image.height);
        return -1;
    }
    void *pixels = malloc(need ? need : 1);
    if (!pixels) {
        png_image_free(&image);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int ok = png_image_finish_read(&image, NULL, pixels, 0, NULL);
    if (!ok) snprintf(err, errlen, "%s", image.message);
    free(pixels);
    png_image_free(&image);
    return ok ? 0 : -1;
}

static int png_check_file(const char *path, char *err, size_t errlen) {
    gchar *data = NULL;
    gsize len = 0;
    unsigned char sig[8];
    FILE *f = fopen(path, "rb");
    if (!f) return 0; /* the loader reports it */
    size_t n = fread(sig, 1, 8, f);
    fclose(f);
    if (n < 8 || png_sig_cmp(sig, 0, 8) != 0) return 0;
    if (!g_file_get_contents(path, &data, &len, NULL)) return 0;
    int rc = png_check(data, len, err, errlen);
    g_free(data);
    return rc;
}

/* Loads a file through a new source object: libvips caches loads by their arguments, and a
 * file name would hit the cache after the file was overwritten; a fresh source never does. */
static VipsImage *load_file(const char *path) {
    VipsSource *src = vips_source_new_from_file(path);
    if (!src) return NULL;
    /* A truncated or damaged file is an error, as in Pillow, not a half-grey picture. */
    VipsImage *img = vips_image_new_from_source(src, "", "fail_on", VIPS_FAIL_ON_ERROR, NULL);
    g_object_unref(src);
    return img;
}

static void vips_message(char *err, size_t errlen, const char *what) {
    const char *e = vips_error_buffer();
    snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(e, "\n"), e);
    vips_error_clear();
}

/* ---- uploads ---- */

typedef struct {
    cd_instance *inst;
    char *dir;       /* the type's directory */
    char *type;      /* as answered */
    char *subfolder; /* as given */
    char *filename;  /* as given; becomes the final name */
    char *data;
    size_t len;
    bool overwrite;
    bool mask;
    char *original; /* mask: the confined path of the original image */
    /* result */
    int status;
    char message[400];
} upload;

static void upload_free(upload *u) {
    free(u->dir);
    free(u->type);
    free(u->subfolder);
    free(u->filename);
    free(u->data);
    free(u->original);
    free(u);
}

static bool same_content(const char *path, const char *data, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    bool same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len;
    char buf[65536];
    size_t off = 0;
    while (same && off < len) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0 || (size_t)n > len - off || memcmp(buf, data + off, (size_t)n) != 0) same = false;
        else off += (size_t)n;
    }
    close(fd);
    return same;
}

/* "a/b.png" -> "a/b (i).png" (Python's splitext: the extension starts at the last dot of the
 * last component, unless that dot leads the component). */
static char *numbered_name(const char *name, int i) {
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    const char *b = base;
    while (*b == '.') b++;
    if (!dot || dot < b) dot = name + strlen(name);
    size_t stem = (size_t)(dot - name);
    size_t n = stem + strlen(dot) + 24;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%.*s (%d)%s", (int)stem, name, i, dot);
    return out;
}

static int write_temp(const char *dir, const char *data, size_t len, char **tmp_out) {
    char *tmp = cd_path_join(dir, ".comfyd-upload-XXXXXX");
    if (!tmp) return -1;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(tmp);
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        off += (size_t)n;
    }
    fchmod(fd, 0644);
    if (off < len || close(fd) < 0) {
        if (off < len) close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    *tmp_out = tmp;
    return 0;
}

static void *png_with_text(VipsImage *meta, const void *png, size_t len, size_t *out_len);

/* The mask upload: the original image with its alpha replaced by the mask's (Pillow's
 * convert("RGBA") then putalpha), PNG text chunks kept, written as PNG. */
static int make_mask_png(upload *u, void **png, size_t *png_len) {
    char why[200];
    if (png_check(u->data, u->len, why, sizeof why) < 0) {
        u->status = 400;
        snprintf(u->message, sizeof u->message, "the mask is a corrupt PNG: %s", why);
        return -1;
    }
    if (png_check_file(u->original, why, sizeof why) < 0) {
        u->status = 400;
        snprintf(u->message, sizeof u->message, "the original image is a corrupt PNG: %s", why);
        return -1;
    }
    VipsImage *orig = load_file(u->original), *mask = NULL, *orig_rgba = NULL, *mask_rgba = NULL;
    VipsImage *rgb = NULL, *alpha = NULL, *out = NULL;
    int rc = -1;
    if (!orig) {
        u->status = 400;
        vips_message(u->message, sizeof u->message, "the original image cannot be read");
        goto done;
    }
    VipsSource *src = vips_source_new_from_memory(u->data, u->len);
    mask = src ? vips_image_new_from_source(src, "", "fail_on", VIPS_FAIL_ON_ERROR, NULL) : NULL;
    if (src) g_object_unref(src);
    if (!mask) {
        u->status = 400;
        vips_message(u->message, sizeof u->message, "the mask is not an image libvips can read");
        goto done;
    }
    if (!(orig_rgba = to_rgba8(orig, NULL))) {
        u->status = 400;
        vips_message(u->message, sizeof u->message, "the original image cannot be decoded");
        goto done;
    }
    if (!(mask_rgba = to_rgba8(mask, NULL))) {
        u->status = 400;
        vips_message(u->message, sizeof u->message, "the mask cannot be decoded");
        goto done;
    }
    if (mask_rgba->Xsize != orig_rgba->Xsize || mask_rgba->Ysize != orig_rgba->Ysize) {
        u->status = 400;
        snprintf(u->message, sizeof u->message, "the mask is %dx%d but the original image is %dx%d",
                 mask_rgba->Xsize, mask_rgba->Ysize, orig_rgba->Xsize, orig_rgba->Ysize);
        goto done;
    }
    if (vips_extract_band(orig_rgba, &rgb, 0, "n", 3, NULL) || vips_extract_band(mask_rgba, &alpha, 3, NULL)) {
        u->status = 500;
        vips_message(u->message, sizeof u->message, "cannot split the image");
        goto done;
    }
    VipsImage *both[2] = {rgb, alpha};
    if (vips_bandjoin(both, &out, 2, NULL)) {
        u->status = 500;
        vips_message(u->message, sizeof u->message, "cannot join the channels");
        goto done;
    }
    /* Decoding happens here (libvips is lazy): a truncated or corrupt file fails now. */
    void *plain = NULL;
    size_t plain_len = 0;
    if (vips_pngsave_buffer(out, &plain, &plain_len, "compression", 4, "strip", TRUE, NULL)) {
        u->status = 400;
        vips_message(u->message, sizeof u->message, "the image or the mask is corrupt");
        goto done;
    }
    *png = png_with_text(orig, plain, plain_len, png_len);
    g_free(plain);
    if (!*png) {
        u->status = 500;
        snprintf(u->message, sizeof u->message, "cannot write the PNG");
        goto done;
    }
    rc = 0;
done:
    if (orig) g_object_unref(orig);
    if (mask) g_object_unref(mask);
    if (orig_rgba) g_object_unref(orig_rgba);
    if (mask_rgba) g_object_unref(mask_rgba);
    if (rgb) g_object_unref(rgb);
    if (alpha) g_object_unref(alpha);
    if (out) g_object_unref(out);
    return rc;
}

/* ---- PNG text chunks ---- */

typedef struct {
    int index;
    char *key, *value; /* borrowed from the image */
} png_text_field;

static void *collect_comment(VipsImage *img, const char *name, GValue *value, void *a) {
    (void)value;
    GArray *arr = a;
    int idx = -1, used = 0;
    if (sscanf(name, "png-comment-%d-%n", &idx, &used) != 1 || used == 0) return NULL;
    const char *text = NULL;
    if (vips_image_get_string(img, name, &text)) return NULL;
    png_text_field f = {idx, (char *)name + used, (char *)text};
    g_array_append_val(arr, f);
    return NULL;
}

static int cmp_text_field(const void *a, const void *b) {
    return ((const png_text_field *)a)->index - ((const png_text_field *)b)->index;
}

static void put_chunk(GByteArray *out, const char *type, const void *d1, size_t l1, const void *d2, size_t l2,
                      const void *d3, size_t l3) {
    size_t len = l1 + l2 + l3;
    unsigned char be[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                           (unsigned char)len};
    g_byte_array_append(out, be, 4);
    g_byte_array_append(out, (const guint8 *)type, 4);
    uLong crc = crc32(0, (const Bytef *)type, 4);
    const void *parts[3] = {d1, d2, d3};
    size_t lens[3] = {l1, l2, l3};
    for (int i = 0; i < 3; i++) {
        if (!lens[i]) continue;
        g_byte_array_append(out, parts[i], (guint)lens[i]);
        crc = crc32(crc, parts[i], (uInt)lens[i]);
    }
    unsigned char c[4] = {(unsigned char)(crc >> 24), (unsigned char)(crc >> 16), (unsigned char)(crc >> 8),
                          (unsigned char)crc};
    g_byte_array_append(out, c, 4);
}

/* Inserts the PNG text of `meta` (libvips keeps tEXt/zTXt/iTXt as png-comment-N-key fields)
 * after the IHDR chunk of png, as Pillow's PngInfo.add_text writes them: tEXt when the value
 * is Latin-1 (here: ASCII), iTXt otherwise. libvips would write zTXt, which ComfyUI's frontend
 * does not read. png is a stripped PNG from libvips; returns a new buffer (g_free) or NULL. */
static void *png_with_text(VipsImage *meta, const void *png, size_t len, size_t *out_len) {
    if (len < 33) return NULL;
    GArray *fields = g_array_new(FALSE, FALSE, sizeof(png_text_field));
    vips_image_map(meta, collect_comment, fields);
    g_array_sort(fields, cmp_text_field);
    GByteArray *out = g_byte_array_new();
    g_byte_array_append(out, png, 33); /* signature and IHDR */
    for (guint i = 0; i < fields->len; i++) {
        png_text_field *f = &g_array_index(fields, png_text_field, i);
        size_t kl = strlen(f->key), vl = strlen(f->value);
        if (kl == 0 || kl > 79) continue;
        bool ascii = true;
        for (size_t k = 0; k < vl; k++)
            if ((unsigned char)f->value[k] >= 0x80) ascii = false;
        if (ascii) {
            put_chunk(out, "tEXt", f->key, kl + 1, f->value, vl, NULL, 0);
        } else {
            static const unsigned char flags[5] = {0, 0, 0, 0, 0}; /* NUL after key: uncompressed, no lang */
            put_chunk(out, "iTXt", f->key, kl, flags, 5, f->value, vl);
        }
    }
    g_byte_array_append(out, (const guint8 *)png + 33, (guint)(len - 33));
    g_array_free(fields, TRUE);
    *out_len = out->len;
    return g_byte_array_free(out, FALSE);
}

static void upload_work(void *arg) {
    upload *u = arg;
    u->status = 200;
    char *rel = normalize_rel(u->subfolder, u->filename);
    if (!rel || !rel[0] || strchr(rel, '\\')) {
        u->status = 400;
        snprintf(u->message, sizeof u->message, "the file name or subfolder leaves the upload directory");
        free(rel);
        return;
    }
    /* The folder the file goes to, relative to the type's directory. */
    char *slash = strrchr(rel, '/');
    char *folder_rel = slash ? strndup(rel, (size_t)(slash - rel)) : strdup("");
    char *folder = folder_rel ? cd_path_join_confined(u->dir, folder_rel) : NULL;
    if (!folder || cd_path_mkdirs(folder, 0755) < 0) {
        u->status = folder ? 500 : 400;
        snprintf(u->message, sizeof u->message, "%s", folder ? "cannot create the subfolder" : "the subfolder leaves the upload directory");
        goto out;
    }
    free(folder);
    /* mkdirs may have walked through a symlink: check again now that the folder exists. */
    folder = cd_path_join_confined(u->dir, folder_rel);
    if (!folder) {
        u->status = 400;
        snprintf(u->message, sizeof u->message, "the subfolder leaves the upload directory");
        goto out;
    }
    void *png = NULL;
    size_t png_len = 0;
    const char *bytes = u->data;
    size_t nbytes = u->len;
    /* The name relative to subfolder, as answered (filename may itself hold a folder). */
    char *name = strdup(u->filename);
    char *target = NULL, *tmp = NULL;
    bool duplicate = false;
    for (int i = 1; name; i++) {
        char *r = normalize_rel(u->subfolder, name);
        free(target);
        target = r ? cd_path_join_confined(u->dir, r) : NULL;
        free(r);
        if (!target) {
            u->status = 400;
            snprintf(u->message, sizeof u->message, "the file name leaves the upload directory");
            goto cleanup;
        }
        struct stat st;
        if (u->overwrite || lstat(target, &st) < 0) break;
        if (same_content(target, u->data, u->len)) {
            duplicate = true;
            break;
        }
        free(name);
        name = numbered_name(u->filename, i);
    }
    if (!name) {
        u->status = 500;
        snprintf(u->message, sizeof u->message, "out of memory");
        goto cleanup;
    }
    if (!duplicate) {
        if (u->mask) {
            if (make_mask_png(u, &png, &png_len) < 0) goto cleanup;
            bytes = png;
            nbytes = png_len;
        }
        if (write_temp(folder, bytes, nbytes, &tmp) < 0) {
            u->status = 500;
            snprintf(u->message, sizeof u->message, "cannot write the file: %s", strerror(errno));
            goto cleanup;
        }
        /* rename replaces a symlink itself rather than writing through it; link refuses an
         * existing name, so two uploads of one name never overwrite each other. */
        for (int i = 1;; i++) {
            int rc = u->overwrite ? rename(tmp, target) : link(tmp, target);
            if (rc == 0) break;
            if (u->overwrite || errno != EEXIST || i > 10000) {
                u->status = 500;
                snprintf(u->message, sizeof u->message, "cannot write the file: %s", strerror(errno));
                goto cleanup;
            }
            free(name);
            name = numbered_name(u->filename, i);
            char *r = name ? normalize_rel(u->subfolder, name) : NULL;
            free(target);
            target = r ? cd_path_join_confined(u->dir, r) : NULL;
            free(r);
            if (!target) {
                u->status = 400;
                snprintf(u->message, sizeof u->message, "the file name leaves the upload directory");
                goto cleanup;
            }
        }
    }
    free(u->filename);
    u->filename = name;
    name = NULL;
cleanup:
    if (tmp) {
        if (!u->overwrite || u->status != 200) unlink(tmp);
        free(tmp);
    }
    free(name);
    free(target);
    g_free(png);
out:
    free(folder);
    free(folder_rel);
    free(rel);
}

static void upload_done(cd_http_req *req, void *arg) {
    upload *u = arg;
    if (req) {
        if (u->status == 200)
            cd_respond_json(req, 200, json_pack("{s:s, s:s, s:s}", "name", u->filename, "subfolder", u->subfolder,
                                                "type", u->type));
        else
            respond_status(req, u->status, u->message);
    }
    upload_free(u);
}

static char *field_text(const cd_multipart *mp, const char *name) {
    const cd_multipart_part *p = cd_multipart_get(mp, name);
    if (!p) return NULL;
    return strndup(p->data, p->len);
}

/* For /upload/mask: original_ref names the image whose alpha is replaced. The checks and their
 * statuses are those of server.py (400 for a bad name, 403 for a subfolder outside). */
static int resolve_original(cd_instance *inst, const char *ref_text, char **path, char *msg, size_t msglen) {
    json_t *ref = ref_text ? json_loads(ref_text, 0, NULL) : NULL;
    const char *fn = json_string_value(json_object_get(ref, "filename"));
    if (!fn) {
        json_decref(ref);
        snprintf(msg, msglen, "original_ref must be JSON with a filename");
        return 400;
    }
    char *name = strdup(fn);
    int status = 0;
    const char *ann = strip_annotation(name);
    const char *type = ann ? ann : json_string_value(json_object_get(ref, "type"));
    const char *sub = json_string_value(json_object_get(ref, "subfolder"));
    const char *dir = dir_by_type(inst, type ? type : "output");
    char *rel = NULL;
    if (!name[0] || name[0] == '/' || strstr(name, "..") || has_control(name)) {
        status = 400;
        snprintf(msg, msglen, "invalid original image name");
    } else if (!dir) {
        status = 400;
        snprintf(msg, msglen, "invalid original image type");
    } else if (!(rel = normalize_rel(sub ? sub : "", name))) {
        status = 403;
        snprintf(msg, msglen, "the original image's subfolder leaves its directory");
    } else {
        *path = cd_path_join_confined(dir, rel);
        struct stat st;
        if (!*path) {
            status = 403;
            snprintf(msg, msglen, "the original image's subfolder leaves its directory");
        } else if (stat(*path, &st) < 0 || !S_ISREG(st.st_mode)) {
            status = 404;
            snprintf(msg, msglen, "the original image does not exist");
        }
    }
    free(rel);
    free(name);
    json_decref(ref);
    return status;
}

static void handle_upload(cd_http_req *req, cd_instance *inst, bool mask) {
    char *boundary = cd_multipart_boundary(cd_http_req_header(req, "Content-Type"));
    if (!boundary) {
        respond_status(req, 400, "expected a multipart/form-data body");
        return;
    }
    size_t len;
    const char *body = cd_http_req_body(req, &len);
    cd_multipart mp;
    char err[200];
    if (cd_multipart_parse(body, len, boundary, &mp, err, sizeof err) < 0) {
        free(boundary);
        respond_status(req, 400, err);
        return;
    }
    free(boundary);
    const cd_multipart_part *image = cd_multipart_get(&mp, "image");
    if (!image || !image->filename || !image->filename[0]) {
        cd_multipart_free(&mp);
        respond_status(req, 400, "no image file in the upload (field \"image\" with a filename)");
        return;
    }
    upload *u = calloc(1, sizeof *u);
    if (!u) goto oom;
    u->inst = inst;
    u->mask = mask;
    u->type = field_text(&mp, "type");
    if (!u->type || !u->type[0]) {
        free(u->type);
        u->type = strdup("input");
    }
    u->subfolder = field_text(&mp, "subfolder");
    if (!u->subfolder) u->subfolder = strdup("");
    char *ow = field_text(&mp, "overwrite");
    u->overwrite = ow && (!strcmp(ow, "true") || !strcmp(ow, "1"));
    free(ow);
    u->filename = strdup(image->filename);
    u->data = malloc(image->len ? image->len : 1);
    if (!u->type || !u->subfolder || !u->filename || !u->data) goto oom;
    memcpy(u->data, image->data, image->len);
    u->len = image->len;
    const char *dir = dir_by_type(inst, u->type);
    if (!dir) {
        /* server.py's helper fails on an unknown type: an unhandled error, so 500. */
        respond_status(req, 500, "type must be input, temp or output");
        goto fail;
    }
    if (has_control(u->filename) || has_control(u->subfolder)) {
        respond_status(req, 400, "control characters in the file name or subfolder");
        goto fail;
    }
    /* The answer is JSON, which needs UTF-8: refuse other bytes before anything is written. */
    json_t *probe = json_pack("{s:s, s:s}", "n", u->filename, "s", u->subfolder);
    if (!probe) {
        respond_status(req, 400, "the file name and subfolder must be UTF-8");
        goto fail;
    }
    json_decref(probe);
    u->dir = strdup(dir);
    if (!u->dir) goto oom;
    if (mask) {
        char *ref = field_text(&mp, "original_ref");
        char msg[200];
        int st = resolve_original(inst, ref, &u->original, msg, sizeof msg);
        free(ref);
        if (st) {
            respond_status(req, st, msg);
            goto fail;
        }
    }
    cd_multipart_free(&mp);
    cd_offload(inst, req, upload_work, upload_done, u);
    return;
oom:
    respond_status(req, 500, "out of memory");
fail:
    cd_multipart_free(&mp);
    if (u) upload_free(u);
}

static void handle_upload_image(cd_http_req *req, void *ctx) { handle_upload(req, ctx, false); }
static void handle_upload_mask(cd_http_req *req, void *ctx) { handle_upload(req, ctx, true); }

/* ---- GET /view ---- */

typedef struct {
    char *path, *name;
    char *preview; /* NULL: none */
    char *channel; /* as given, "" when absent */
    /* result */
    int status;
    char message[300];
    void *body;
    size_t len;
    const char *content_type;
} view_job;

static void view_job_free(view_job *v) {
    free(v->path);
    free(v->name);
    free(v->preview);
    free(v->channel);
    g_free(v->body);
    free(v);
}

static void view_work(void *arg) {
    view_job *v = arg;
    char why[200];
    v->status = 500;
    if (png_check_file(v->path, why, sizeof why) < 0) {
        snprintf(v->message, sizeof v->message, "cannot decode the image: %s", why);
        return;
    }
    VipsImage *img = load_file(v->path), *rgba = NULL, *out = NULL;
    bool had_alpha = false;
    if (!img || !(rgba = to_rgba8(img, &had_alpha))) {
        vips_message(v->message, sizeof v->message, "cannot decode the image");
        goto done;
    }
    const char *ch = v->channel;
    int rc;
    if (v->preview) {
        /* "webp;90", "jpeg;80": format before the first ';', quality after the last one. */
        size_t flen = strcspn(v->preview, ";");
        bool jpeg = flen == 4 && !strncmp(v->preview, "jpeg", 4) && !strchr(ch, 'a'); /* any 'a': webp */
        const char *last = strrchr(v->preview, ';');
        const char *q = last ? last + 1 : v->preview;
        int quality = 90;
        if (q[0] && strspn(q, "0123456789") == strlen(q)) quality = atoi(q);
        if (quality < 1) quality = 1;
        if (quality > 100) quality = 100;
        bool rgb = jpeg || !strcmp(ch, "rgb") || !had_alpha;
        if (vips_extract_band(rgba, &out, 0, "n", rgb ? 3 : 4, NULL)) goto verr;
        rc = jpeg ? vips_jpegsave_buffer(out, &v->body, &v->len, "Q", quality, "strip", TRUE, NULL)
                  : vips_webpsave_buffer(out, &v->body, &v->len, "Q", quality, "strip", TRUE, NULL);
        v->content_type = jpeg ? "image/jpeg" : "image/webp";
    } else if (!strcmp(ch, "rgb")) {
        if (vips_extract_band(rgba, &out, 0, "n", 3, NULL)) goto verr;
        rc = vips_pngsave_buffer(out, &v->body, &v->len, "strip", TRUE, NULL);
        v->content_type = "image/png";
    } else {
        /* channel=a: black RGB, the source's alpha (255 without one). */
        VipsImage *black = NULL, *black8 = NULL, *alpha = NULL;
        rc = vips_black(&black, rgba->Xsize, rgba->Ysize, "bands", 3, NULL) || vips_cast_uchar(black, &black8, NULL) ||
             vips_extract_band(rgba, &alpha, 3, NULL);
        if (!rc) {
            VipsImage *both[2] = {black8, alpha};
            rc = vips_bandjoin(both, &out, 2, NULL);
        }
        if (black) g_object_unref(black);
        if (black8) g_object_unref(black8);
        if (alpha) g_object_unref(alpha);
        if (rc) goto verr;
        rc = vips_pngsave_buffer(out, &v->body, &v->len, "strip", TRUE, NULL);
        v->content_type = "image/png";
    }
    if (rc) goto verr;
    v->status = 200;
    goto done;
verr:
    vips_message(v->message, sizeof v->message, "cannot convert the image");
done:
    if (img) g_object_unref(img);
    if (rgba) g_object_unref(rgba);
    if (out) g_object_unref(out);
}

static void add_disposition(cd_http_req *req, const char *name) {
    size_t n = strlen(name) + 16;
    char *d = malloc(n);
    if (!d) return;
    snprintf(d, n, "filename=\"%s\"", name);
    cd_http_add_header(req, "Content-Disposition", d);
    free(d);
}

static void view_done(cd_http_req *req, void *arg) {
    view_job *v = arg;
    if (req) {
        if (v->status == 200) {
            add_disposition(req, v->name);
            cd_http_respond(req, 200, v->content_type, v->body, v->len);
        } else {
            respond_status(req, v->status, v->message);
        }
    }
    view_job_free(v);
}

/* Content types a browser would run are sent as plain bytes (server.py does the same). */
static const char *safe_content_type(const char *name) {
    const char *t = cd_static_content_type(name);
    static const char *const unsafe[] = {"text/html", "text/html-sandboxed", "application/xhtml+xml",
                                         "text/javascript", "text/css"};
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) {
        size_t n = strlen(unsafe[i]);
        if (!strncmp(t, unsafe[i], n) && (t[n] == '\0' || t[n] == ';')) return "application/octet-stream";
    }
    return t;
}

static void handle_view(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    const char *query = cd_http_req_query(req);
    char *filename = cd_str_query_get(query, "filename");
    char *type = NULL, *sub = NULL, *rel = NULL, *path = NULL, *preview = NULL, *channel = NULL;
    if (!filename) {
        respond_status(req, 404, "Not Found");
        goto out;
    }
    const char *ann = strip_annotation(filename);
    if (!filename[0] || filename[0] == '/' || strstr(filename, "..") || has_control(filename)) {
        respond_status(req, 400, "invalid file name");
        goto out;
    }
    type = cd_str_query_get(query, "type");
    const char *dir = dir_by_type(inst, ann ? ann : type ? type : "output");
    if (!dir) {
        respond_status(req, 400, "type must be input, temp or output");
        goto out;
    }
    sub = cd_str_query_get(query, "subfolder");
    const char *slash = strrchr(filename, '/');
    const char *base = slash ? slash + 1 : filename; /* only the base name counts */
    if (sub && (has_control(sub) || strchr(sub, '\\'))) {
        respond_status(req, 403, "Forbidden");
        goto out;
    }
    char *folder = normalize_rel(sub ? sub : "", "");
    if (!folder) {
        respond_status(req, 403, "Forbidden");
        goto out;
    }
    rel = normalize_rel(folder, base);
    free(folder);
    if (!rel || !base[0]) {
        respond_status(req, 404, "Not Found");
        goto out;
    }
    path = cd_path_join_confined(dir, rel);
    if (!path) {
        /* A symlink that leads out of the directory: refused like a subfolder outside. */
        respond_status(req, 403, "Forbidden");
        goto out;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        respond_status(req, 404, "Not Found");
        goto out;
    }
    preview = cd_str_query_get(query, "preview");
    channel = cd_str_query_get(query, "channel");
    const char *ch = channel ? channel : "rgba";
    if (preview || !strcmp(ch, "rgb") || !strcmp(ch, "a")) {
        view_job *v = calloc(1, sizeof *v);
        if (!v || !(v->path = strdup(path)) || !(v->name = strdup(base)) || !(v->channel = strdup(channel ? channel : "")) ||
            (preview && !(v->preview = strdup(preview)))) {
            if (v) view_job_free(v);
            respond_status(req, 500, "out of memory");
            goto out;
        }
        cd_offload(inst, req, view_work, view_done, v);
        goto out;
    }
    cd_static_serve_path(req, path, safe_content_type(base), base);
out:
    free(filename);
    free(type);
    free(sub);
    free(rel);
    free(path);
    free(preview);
    free(channel);
}

/* ---- GET /view_metadata/{folder} ---- */

typedef struct {
    cd_instance *inst;
    char *folder, *filename;
    json_t *result; /* NULL: 404 */
} meta_job;

static void meta_work(void *arg) {
    meta_job *m = arg;
    char *path = cd_folder_paths_find(m->inst->folders, m->folder, m->filename);
    if (!path) return;
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f) return;
    unsigned char head[8];
    if (fread(head, 1, 8, f) == 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = (n << 8) | head[i]; /* little-endian */
        if (n > 0 && n <= 1024 * 1024) {
            char *text = malloc((size_t)n);
            if (text && fread(text, 1, (size_t)n, f) == n) {
                json_t *doc = json_loadb(text, (size_t)n, 0, NULL);
                json_t *meta = json_object_get(doc, "__metadata__");
                if (meta) m->result = json_incref(meta);
                json_decref(doc);
            }
            free(text);
        }
    }
    fclose(f);
}

static void meta_done(cd_http_req *req, void *arg) {
    meta_job *m = arg;
    if (req) {
        if (m->result) cd_respond_json(req, 200, m->result);
        else cd_http_respond(req, 404, NULL, NULL, 0);
    } else {
        json_decref(m->result);
    }
    free(m->folder);
    free(m->filename);
    free(m);
}

static void handle_view_metadata(cd_http_req *req, void *ctx) {
    char *filename = cd_str_query_get(cd_http_req_query(req), "filename");
    if (!filename || !cd_str_ends_with_ci(filename, ".safetensors") ||
        strcmp(filename + strlen(filename) - 12, ".safetensors") != 0) {
        free(filename);
        cd_http_respond(req, 404, NULL, NULL, 0);
        return;
    }
    meta_job *m = calloc(1, sizeof *m);
    if (!m || !(m->folder = strdup(cd_http_req_param(req, "folder")))) {
        free(m);
        free(filename);
        respond_status(req, 500, "out of memory");
        return;
    }
    m->inst = ctx;
    m->filename = filename;
    cd_offload(ctx, req, meta_work, meta_done, m);
}

void cd_routes_files_register(cd_instance *inst) {
    /* Safe to call more than once; the image nodes may have started libvips already. */
    if (VIPS_INIT("comfyd")) cd_warn("libvips failed to start: %s", vips_error_buffer());
    cd_router_add_api(inst->router, "POST", "/upload/image", handle_upload_image, inst);
    cd_router_add_api(inst->router, "POST", "/upload/mask", handle_upload_mask, inst);
    cd_router_add_api(inst->router, "GET", "/view", handle_view, inst);
    cd_router_add_api(inst->router, "GET", "/view_metadata/{folder}", handle_view_metadata, inst);
}
