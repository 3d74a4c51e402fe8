/* Saving a batch as one animation, and sending images over the WebSocket:
 *  - SaveAnimatedPNG and SaveAnimatedWEBP (comfy_extras.nodes_images, ComfyUI's
 *    ImageSaveHelper): one file in output/ named "<prefix>_<counter:05>_.png/.webp" by
 *    get_save_image_path, ui {"images": [{filename, subfolder, type}]} plus "animated": [true]
 *    when the batch has more than one image.
 *  - SaveImageWebsocket (ComfyUI's custom_nodes/websocket_image_save.py): each image as a PNG
 *    in a binary preview frame, with the progress ComfyUI's ProgressBar sends alongside.
 *
 * APNG: libpng has no APNG writer here and libvips writes none, so the file is assembled the
 * way Pillow's APNG writer lays it out: each frame is compressed by libvips' PNG encoder (zlib
 * at compress_level), its IDAT data becomes the first frame's IDAT or a later frame's fdAT,
 * framed by acTL/fcTL (delay int(1000 / fps) / 1000 s, no disposal, source blend, endless loop).
 * As Pillow does, a frame identical to the previous one is not written again but lengthens the
 * previous frame's delay, and a batch that collapses to one frame is written as a plain PNG.
 * Pillow also crops each later frame to the rectangle that changed; this writer keeps full frames,
 * which shows the same animation. The prompt and extra_pnginfo go into "comf" chunks after the
 * image data ("key\0json"), as ComfyUI asks Pillow to.
 *
 * WebP: libvips' animated WebP writer (a tall image with page-height, delays in ms, loop 0, Q,
 * lossless, effort = ComfyUI's method 0/4/6), with the metadata as EXIF in the first frame as
 * ComfyUI writes it: IFD0 tag 0x0110 (Model) "prompt:<json>", then 0x010f (Make), 0x010e, ... one
 * per extra_pnginfo key, "<key>:<json>".
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"
#include "nodes/text_util.h"

/* np.clip(255. * v, 0, 255).astype(np.uint8) */
static inline uint8_t to_u8(float v) {
    float t = 255.0f * v;
    if (!(t > 0.0f)) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

/* One image of the batch as 8-bit samples (malloc'd). */
static uint8_t *image_u8(const cd_value *images, const cd_img_shape *s, int64_t index) {
    size_t n = (size_t)(s->h * s->w * s->c);
    uint8_t *out = malloc(n ? n : 1);
    if (!out) return NULL;
    const float *src = cd_value_tensor_data(images) + n * (size_t)index;
    for (size_t i = 0; i < n; i++) out[i] = to_u8(src[i]);
    return out;
}

/* 8-bit samples as PNG bytes through libvips (g_free them); NULL when libvips fails. */
static void *png_bytes(const uint8_t *px, const cd_img_shape *s, int compression, size_t *len) {
    VipsImage *im = vips_image_new_from_memory(px, (size_t)(s->h * s->w * s->c), (int)s->w, (int)s->h, (int)s->c,
                                               VIPS_FORMAT_UCHAR);
    if (!im) return NULL;
    im->Type = s->c >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
    void *buf = NULL;
    if (vips_pngsave_buffer(im, &buf, len, "compression", compression, "strip", TRUE, NULL)) buf = NULL;
    g_object_unref(im);
    return buf;
}

/* The ui entry {filename, subfolder, type: "output"}, and "animated": [true] for a batch. */
static void add_ui(cd_node_call *call, const char *file, const char *subfolder, bool animated) {
    json_t *entry = json_pack("{s:s, s:s, s:s}", "filename", file, "subfolder", subfolder, "type", "output");
    char *text = json_dumps(entry, JSON_COMPACT);
    json_decref(entry);
    cd_value *v = text ? cd_value_json(text) : NULL;
    free(text);
    if (v) cd_call_ui(call, "images", v);
    if (animated) cd_call_ui(call, "animated", cd_value_bool(1));
}

/* The metadata ComfyUI stores: (key, json.dumps(value)) for the prompt then each extra_pnginfo
 * key; *n pairs, keys and values malloc'd in one array (free with free_pairs). */
static char **metadata_pairs(cd_node_call *call, size_t *n) {
    *n = 0;
    if (!cd_call_save_metadata(call)) return NULL;
    json_t *extra = NULL;
    const char *extra_text = cd_call_extra_pnginfo_json(call);
    if (extra_text) extra = json_loads(extra_text, JSON_DECODE_ANY, NULL);
    size_t cap = 1 + (json_is_object(extra) ? json_object_size(extra) : 0);
    char **pairs = calloc(2 * cap, sizeof *pairs);
    if (!pairs) {
        json_decref(extra);
        return NULL;
    }
    const char *prompt = cd_call_prompt_json(call);
    char *dumped = prompt ? cd_py_json_dumps(prompt) : NULL;
    if (dumped) {
        pairs[0] = strdup("prompt");
        pairs[1] = dumped;
        *n = 1;
    }
    const char *key;
    json_t *value;
    json_object_foreach(json_is_object(extra) ? extra : NULL, key, value) {
        char *raw = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        char *py = raw ? cd_py_json_dumps(raw) : NULL;
        free(raw);
        if (!py) continue;
        pairs[2 * *n] = strdup(key);
        pairs[2 * *n + 1] = py;
        (*n)++;
    }
    json_decref(extra);
    return pairs;
}

static void free_pairs(char **pairs, size_t n) {
    for (size_t i = 0; pairs && i < 2 * n; i++) free(pairs[i]);
    free(pairs);
}

/* ---- PNG chunks ---- */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Writes one chunk: type, then the parts' bytes as its data. */
static bool chunk(FILE *f, const char *type, const void *a, size_t alen, const void *b, size_t blen) {
    uint8_t head[8];
    put32(head, (uint32_t)(alen + blen));
    memcpy(head + 4, type, 4);
    uint32_t crc = crc_update(0xffffffffu, head + 4, 4);
    if (alen) crc = crc_update(crc, a, alen);
    if (blen) crc = crc_update(crc, b, blen);
    uint8_t tail[4];
    put32(tail, crc ^ 0xffffffffu);
    return fwrite(head, 1, 8, f) == 8 && (!alen || fwrite(a, 1, alen, f) == alen) &&
           (!blen || fwrite(b, 1, blen, f) == blen) && fwrite(tail, 1, 4, f) == 4;
}

/* One chunk of a PNG in memory: its type and data. */
typedef struct {
    const uint8_t *type, *data;
    uint32_t len;
} png_chunk;

/* The chunk at *off (starting after the signature), advancing *off; false at the end or on a
 * malformed chunk. */
static bool next_chunk(const uint8_t *buf, size_t len, size_t *off, png_chunk *c) {
    if (*off + 12 > len) return false;
    uint32_t n = get32(buf + *off);
    if (n > len - *off - 12) return false;
    c->type = buf + *off + 4;
    c->data = buf + *off + 8;
    c->len = n;
    *off += 12 + (size_t)n;
    return true;
}

static bool is_png(const uint8_t *buf, size_t len) {
    return len >= 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8);
}

typedef struct {
    uint8_t *px;  /* 8-bit samples */
    void *png;    /* libvips' PNG of it */
    size_t png_len;
    long duration; /* ms, after merging identical followers */
} apng_frame;

static int write_apng(cd_node_call *call, const char *path, apng_frame *frames, size_t n, char **meta,
                      size_t n_meta) {
    FILE *f = fopen(path, "wb");
    if (!f) return cd_call_fail(call, "OSError", "cannot write %s", path);
    bool ok = fwrite("\x89PNG\r\n\x1a\n", 1, 8, f) == 8;
    uint32_t seq = 0;
    for (size_t i = 0; ok && i < n; i++) {
        const uint8_t *png = frames[i].png;
        size_t len = frames[i].png_len, off = 8;
        png_chunk c;
        const uint8_t *ihdr = NULL;
        ok = is_png(png, len);
        while (ok && next_chunk(png, len, &off, &c) && !ihdr)
            if (!memcmp(c.type, "IHDR", 4) && c.len == 13) ihdr = c.data;
        if (!ihdr) {
            ok = false;
            break;
        }
        if (i == 0) {
            ok = chunk(f, "IHDR", ihdr, 13, NULL, 0);
            if (ok && n > 1) {
                uint8_t actl[8];
                put32(actl, (uint32_t)n);
                put32(actl + 4, 0); /* loop forever */
                ok = chunk(f, "acTL", actl, 8, NULL, 0);
            }
        }
        if (ok && n > 1) {
            uint8_t fctl[26];
            put32(fctl, seq++);
            memcpy(fctl + 4, ihdr, 8); /* width, height */
            put32(fctl + 12, 0);
            put32(fctl + 16, 0);
            long d = frames[i].duration > 65535 ? 65535 : frames[i].duration;
            fctl[20] = (uint8_t)(d >> 8);
            fctl[21] = (uint8_t)d;
            fctl[22] = 1000 >> 8;
            fctl[23] = 1000 & 0xff;
            fctl[24] = 0; /* APNG_DISPOSE_OP_NONE */
            fctl[25] = 0; /* APNG_BLEND_OP_SOURCE */
            ok = chunk(f, "fcTL", fctl, 26, NULL, 0);
        }
        /* the image data, however many IDAT chunks the encoder cut it into */
        bool any = false;
        for (off = 8; ok && next_chunk(png, len, &off, &c);) {
            if (memcmp(c.type, "IDAT", 4)) continue;
            any = true;
            if (i == 0) {
                ok = chunk(f, "IDAT", c.data, c.len, NULL, 0);
            } else {
                uint8_t s4[4];
                put32(s4, seq++);
                ok = chunk(f, "fdAT", s4, 4, c.data, c.len);
            }
        }
        ok = ok && any;
    }
    for (size_t i = 0; ok && i < n_meta; i++)
        ok = chunk(f, "comf", meta[2 * i], strlen(meta[2 * i]) + 1, meta[2 * i + 1], strlen(meta[2 * i + 1]));
    ok = ok && chunk(f, "IEND", NULL, 0, NULL, 0);
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        remove(path);
        return cd_call_fail(call, "OSError", "cannot write %s", path);
    }
    return CD_OK;
}

/* get_save_image_path for the batch and the file name "<name>_<counter:05>_.<ext>" */
static int target(cd_node_call *call, const cd_img_shape *s, const char *ext, cd_save_path *sp, char **file,
                  char **path) {
    const char *prefix = cd_call_string(call, "filename_prefix", "ComfyUI");
    if (cd_img_save_path(call, cd_call_directory(call, "output"), prefix, s->w, s->h, sp) != CD_OK) return CD_ERROR;
    *file = NULL;
    *path = NULL;
    if (asprintf(file, "%s_%05ld_.%s", sp->filename, sp->counter, ext) < 0) *file = NULL;
    if (!*file || asprintf(path, "%s/%s", sp->folder, *file) < 0) {
        free(*file);
        *file = NULL;
        *path = NULL;
        cd_save_path_free(sp);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    return CD_OK;
}

static bool check_batch(cd_node_call *call, const cd_value *images, cd_img_shape *s) {
    if (!images) {
        cd_call_fail(call, "ValueError", "images is missing");
        return false;
    }
    if (!cd_img_shape_of(call, "images", images, s)) return false;
    if (s->b < 1 || s->h < 1 || s->w < 1 || (s->c != 1 && s->c != 3 && s->c != 4)) {
        cd_call_fail(call, "ValueError", "images: cannot save a [%lld, %lld, %lld, %lld] batch", (long long)s->b,
                     (long long)s->h, (long long)s->w, (long long)s->c);
        return false;
    }
    return true;
}

static int save_animated_png(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *images = cd_call_input(call, "images");
    if (!check_batch(call, images, &s)) return CD_ERROR;
    double fps = cd_call_float(call, "fps", 6.0);
    int level = (int)cd_call_int(call, "compress_level", 4);
    if (!(fps > 0.0)) return cd_call_fail(call, "ValueError", "fps must be positive");
    if (level < 0 || level > 9) return cd_call_fail(call, "ValueError", "compress_level must be between 0 and 9");
    long duration = (long)(1000.0 / fps);
    crc_init();
    apng_frame *frames = calloc((size_t)s.b, sizeof *frames);
    if (!frames) return cd_call_fail(call, "MemoryError", "out of memory");
    size_t n = 0, bytes = (size_t)(s.h * s.w * s.c);
    int rc = CD_OK;
    for (int64_t b = 0; b < s.b && rc == CD_OK; b++) {
        uint8_t *px = image_u8(images, &s, b);
        if (!px) {
            rc = cd_call_fail(call, "MemoryError", "out of memory");
            break;
        }
        if (n && !memcmp(frames[n - 1].px, px, bytes)) { /* Pillow merges a repeated frame */
            frames[n - 1].duration += duration;
            free(px);
            continue;
        }
        frames[n].px = px;
        frames[n].duration = duration;
        frames[n].png = png_bytes(px, &s, level, &frames[n].png_len);
        if (!frames[n].png) rc = cd_img_fail_vips(call, "cannot encode the frame");
        n++;
    }
    cd_save_path sp;
    char *file = NULL, *path = NULL;
    if (rc == CD_OK) rc = target(call, &s, "png", &sp, &file, &path);
    if (rc == CD_OK) {
        size_t n_meta;
        char **meta = metadata_pairs(call, &n_meta);
        rc = write_apng(call, path, frames, n, meta, n_meta);
        free_pairs(meta, n_meta);
        if (rc == CD_OK) add_ui(call, file, sp.subfolder, s.b > 1);
        cd_save_path_free(&sp);
    }
    free(file);
    free(path);
    for (size_t i = 0; i < n; i++) {
        free(frames[i].px);
        g_free(frames[i].png);
    }
    free(frames);
    return rc;
}

/* ---- WebP ---- */

/* A little-endian TIFF directory of ASCII entries, as Pillow's Exif.tobytes() writes it (tags in
 * ascending order), behind the "Exif\0\0" header; malloc'd, *len set. */
static uint8_t *exif_blob(char **meta, size_t n_meta, size_t *len) {
    size_t n = n_meta;
    uint16_t *tags = calloc(n ? n : 1, sizeof *tags);
    char **texts = calloc(n ? n : 1, sizeof *texts);
    size_t total = 6 + 8 + 2 + 12 * n + 4;
    bool ok = tags && texts;
    for (size_t i = 0; ok && i < n; i++) {
        /* the prompt at 0x0110, then 0x010f, 0x010e, ... in extra_pnginfo's order */
        tags[i] = (uint16_t)(0x0110 - (strcmp(meta[0], "prompt") ? i + 1 : i));
        if (asprintf(&texts[i], "%s:%s", meta[2 * i], meta[2 * i + 1]) < 0) {
            texts[i] = NULL;
            ok = false;
        } else {
            size_t l = strlen(texts[i]) + 1;
            if (l > 4) total += l;
        }
    }
    uint8_t *out = ok ? calloc(1, total) : NULL;
    if (out) {
        /* order the entries by tag */
        size_t *order = calloc(n ? n : 1, sizeof *order);
        for (size_t i = 0; order && i < n; i++) order[i] = i;
        for (size_t i = 0; order && i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (tags[order[j]] < tags[order[i]]) {
                    size_t t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
        memcpy(out, "Exif\0\0II*\0\x08\0\0\0", 14);
        uint8_t *t = out + 6;
        size_t data = 8 + 2 + 12 * n + 4;
        t[8] = (uint8_t)n;
        t[9] = (uint8_t)(n >> 8);
        for (size_t k = 0; order && k < n; k++) {
            size_t i = order[k];
            uint8_t *e = t + 10 + 12 * k;
            uint32_t count = (uint32_t)strlen(texts[i]) + 1;
            e[0] = (uint8_t)tags[i];
            e[1] = (uint8_t)(tags[i] >> 8);
            e[2] = 2; /* ASCII */
            for (int b = 0; b < 4; b++) e[4 + b] = (uint8_t)(count >> (8 * b));
            if (count <= 4) {
                memcpy(e + 8, texts[i], count);
            } else {
                for (int b = 0; b < 4; b++) e[8 + b] = (uint8_t)(data >> (8 * b));
                memcpy(t + data, texts[i], count);
                data += count;
            }
        }
        free(order);
        *len = total;
    }
    for (size_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
    free(tags);
    return out;
}

static int save_animated_webp(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *images = cd_call_input(call, "images");
    if (!check_batch(call, images, &s)) return CD_ERROR;
    double fps = cd_call_float(call, "fps", 6.0);
    if (!(fps > 0.0)) return cd_call_fail(call, "ValueError", "fps must be positive");
    bool lossless = cd_call_bool(call, "lossless", 1);
    int quality = (int)cd_call_int(call, "quality", 80);
    const char *method = cd_call_string(call, "method", "default");
    int effort = !strcmp(method, "fastest") ? 0 : !strcmp(method, "slowest") ? 6 : !strcmp(method, "default") ? 4 : -1;
    if (effort < 0) return cd_call_fail(call, "ValueError", "method: unsupported value '%s'", method);
    if (s.h > 16383 || s.w > 16383)
        return cd_call_fail(call, "ValueError", "images: %lld x %lld is too large for WebP (16383 at most)",
                            (long long)s.w, (long long)s.h);
    size_t per = (size_t)(s.h * s.w * s.c);
    uint8_t *px = malloc(per * (size_t)s.b);
    int *delays = calloc((size_t)s.b, sizeof *delays);
    if (!px || !delays) {
        free(px);
        free(delays);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    const float *src = cd_value_tensor_data(images);
    for (size_t i = 0; i < per * (size_t)s.b; i++) px[i] = to_u8(src[i]);
    for (int64_t b = 0; b < s.b; b++) delays[b] = (int)(1000.0 / fps);
    VipsImage *im = vips_image_new_from_memory(px, per * (size_t)s.b, (int)s.w, (int)(s.h * s.b), (int)s.c,
                                               VIPS_FORMAT_UCHAR);
    int rc = CD_OK;
    if (!im) {
        rc = cd_img_fail_vips(call, "cannot build the animation");
    } else {
        im->Type = s.c >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
        vips_image_set_int(im, "page-height", (int)s.h);
        vips_image_set_array_int(im, "delay", delays, (int)s.b);
        vips_image_set_int(im, "loop", 0);
        size_t n_meta;
        char **meta = metadata_pairs(call, &n_meta);
        if (n_meta) {
            size_t len;
            uint8_t *blob = exif_blob(meta, n_meta, &len);
            if (blob) vips_image_set_blob_copy(im, VIPS_META_EXIF_NAME, blob, len);
            free(blob);
        }
        free_pairs(meta, n_meta);
        cd_save_path sp;
        char *file = NULL, *path = NULL;
        rc = target(call, &s, "webp", &sp, &file, &path);
        if (rc == CD_OK) {
            if (vips_webpsave(im, path, "Q", quality, "lossless", lossless ? TRUE : FALSE, "effort", effort, NULL))
                rc = cd_img_fail_vips(call, "cannot write the WebP");
            else add_ui(call, file, sp.subfolder, s.b > 1);
            cd_save_path_free(&sp);
        }
        free(file);
        free(path);
        g_object_unref(im);
    }
    free(px);
    free(delays);
    return rc;
}

/* ---- SaveImageWebsocket ---- */

static int save_image_websocket(cd_node_call *call) {
    cd_img_shape s;
    const cd_value *images = cd_call_input(call, "images");
    if (!check_batch(call, images, &s)) return CD_ERROR;
    for (int64_t b = 0; b < s.b; b++) {
        /* ProgressBar.update_absolute(step, total, ("PNG", img, None)): progress, then the image
         * (the server encodes previews with compress_level=1) */
        if (cd_call_progress(call, (double)b, (double)s.b) == CD_INTERRUPTED) return CD_INTERRUPTED;
        uint8_t *px = image_u8(images, &s, b);
        if (!px) return cd_call_fail(call, "MemoryError", "out of memory");
        size_t len = 0;
        void *png = png_bytes(px, &s, 1, &len);
        free(px);
        if (!png) return cd_img_fail_vips(call, "cannot encode the image");
        int rc = cd_call_send_preview(call, "image/png", png, len);
        g_free(png);
        if (rc != CD_OK) return cd_call_fail(call, "RuntimeError", "cannot send the image");
    }
    return CD_OK;
}

/* IS_CHANGED returns time.time(): never the same, so never cached. */
static cd_value *always_changed(cd_node_call *call) {
    (void)call;
    return cd_value_float(NAN);
}

/* ---- definitions ---- */

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "SaveAnimatedPNG", .category = "image/animation",
     .python_module = "comfy_extras.nodes_images",
     .inputs = "{\"required\": {\"images\": [\"IMAGE\", {}], "
               "\"filename_prefix\": [\"STRING\", {\"default\": \"ComfyUI\", \"multiline\": false}], "
               "\"fps\": [\"FLOAT\", {\"default\": 6.0, \"min\": 0.01, \"max\": 1000.0, \"step\": 0.01}], "
               "\"compress_level\": [\"INT\", {\"default\": 4, \"min\": 0, \"max\": 9}]}, "
               "\"hidden\": {\"prompt\": [\"PROMPT\"], \"extra_pnginfo\": [\"EXTRA_PNGINFO\"]}}",
     .flags = CD_NODE_OUTPUT | CD_NODE_V3_INFO, .execute = save_animated_png},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "SaveAnimatedWEBP", .category = "image/animation",
     .python_module = "comfy_extras.nodes_images",
     .inputs = "{\"required\": {\"images\": [\"IMAGE\", {}], "
               "\"filename_prefix\": [\"STRING\", {\"default\": \"ComfyUI\", \"multiline\": false}], "
               "\"fps\": [\"FLOAT\", {\"default\": 6.0, \"min\": 0.01, \"max\": 1000.0, \"step\": 0.01}], "
               "\"lossless\": [\"BOOLEAN\", {\"default\": true}], "
               "\"quality\": [\"INT\", {\"default\": 80, \"min\": 0, \"max\": 100}], "
               "\"method\": [\"COMBO\", {\"multiselect\": false, \"options\": [\"default\", \"fastest\", "
               "\"slowest\"]}]}, "
               "\"hidden\": {\"prompt\": [\"PROMPT\"], \"extra_pnginfo\": [\"EXTRA_PNGINFO\"]}}",
     .flags = CD_NODE_OUTPUT | CD_NODE_V3_INFO, .execute = save_animated_webp},
    {.abi_version = CD_NODE_ABI_VERSION, .name = "SaveImageWebsocket", .category = "api/image",
     .python_module = "custom_nodes.websocket_image_save", .inputs = "{\"required\": {\"images\": [\"IMAGE\"]}}",
     .flags = CD_NODE_OUTPUT, .execute = save_image_websocket, .fingerprint = always_changed},
};

int cd_nodes_image_animation_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
