#include "net/static_files.h"

#include <fcntl.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/log.h"
#include "base/path.h"
#include "base/str.h"

#define CHUNK 65536

typedef struct {
    cd_http_req *req; /* NULL once the client went away */
    uv_loop_t *loop;
    uv_fs_t fs;
    uv_file fd;
    char *path;
    char *content_type;
    char *download_name;
    int64_t offset, remaining;
    bool waiting_drain; /* no file operation in flight: waiting for the socket to drain */
    char buf[CHUNK];
} file_send;

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"}, {".json", "application/json"},
    {".map", "application/json"}, {".txt", "text/plain; charset=utf-8"},
    {".md", "text/markdown; charset=utf-8"}, {".svg", "image/svg+xml"},
    {".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
    {".gif", "image/gif"}, {".webp", "image/webp"}, {".bmp", "image/bmp"},
    {".ico", "image/x-icon"}, {".tif", "image/tiff"}, {".tiff", "image/tiff"},
    {".avif", "image/avif"}, {".ppm", "image/x-portable-pixmap"}, {".pgm", "image/x-portable-graymap"},
    {".woff", "font/woff"}, {".woff2", "font/woff2"}, {".ttf", "font/ttf"}, {".otf", "font/otf"},
    {".wasm", "application/wasm"}, {".mp4", "video/mp4"}, {".webm", "video/webm"},
    {".mp3", "audio/mpeg"}, {".wav", "audio/wav"}, {".flac", "audio/flac"}, {".ogg", "audio/ogg"},
    {".yaml", "application/yaml"}, {".yml", "application/yaml"}, {".xml", "application/xml"},
    {".pdf", "application/pdf"}, {".zip", "application/zip"},
};

const char *cd_static_content_type(const char *name) {
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (cd_str_ends_with_ci(name, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

static void fs_free(file_send *fsnd) {
    free(fsnd->path);
    free(fsnd->content_type);
    free(fsnd->download_name);
    free(fsnd);
}

static void on_closed_file(uv_fs_t *r) {
    file_send *fsnd = r->data;
    uv_fs_req_cleanup(r);
    fs_free(fsnd);
}

/* Ends the transfer: closes the file (if open) then frees. */
static void fs_finish(file_send *fsnd) {
    if (fsnd->req) {
        cd_http_req_on_abort(fsnd->req, NULL, NULL);
        cd_http_on_drain(fsnd->req, NULL, NULL);
        fsnd->req = NULL;
    }
    if (fsnd->fd >= 0) {
        uv_fs_close(fsnd->loop, &fsnd->fs, fsnd->fd, on_closed_file);
        fsnd->fd = -1;
    } else {
        fs_free(fsnd);
    }
}

static void on_abort(cd_http_req *req, void *arg) {
    (void)req;
    file_send *fsnd = arg;
    fsnd->req = NULL;
    /* With a file operation in flight, its callback notices and finishes; while waiting for
     * the socket to drain there is none, so finish here. */
    if (fsnd->waiting_drain) fs_finish(fsnd);
}

static void read_next(file_send *fsnd);

static void on_drained(cd_http_req *req, void *arg) {
    (void)req;
    file_send *fsnd = arg;
    fsnd->waiting_drain = false;
    read_next(fsnd);
}

static void on_read_done(uv_fs_t *r) {
    file_send *fsnd = r->data;
    ssize_t n = r->result;
    uv_fs_req_cleanup(r);
    if (!fsnd->req) {
        fs_finish(fsnd);
        return;
    }
    if (n <= 0) {
        /* The file shrank or failed under us: the promised length cannot be met, so end the
         * connection rather than send a short body that looks complete. */
        cd_warn("static: read of %s failed or hit end early", fsnd->path);
        cd_http_req *req = fsnd->req;
        fs_finish(fsnd);
        cd_http_abort(req);
        return;
    }
    cd_http_write(fsnd->req, fsnd->buf, (size_t)n);
    fsnd->offset += n;
    fsnd->remaining -= n;
    if (!fsnd->req) { /* the write found the connection gone */
        fs_finish(fsnd);
        return;
    }
    if (fsnd->remaining <= 0) {
        cd_http_req *req = fsnd->req;
        fs_finish(fsnd);
        cd_http_end(req);
        return;
    }
    if (cd_http_queued(fsnd->req) > CHUNK * 4) {
        fsnd->waiting_drain = true;
        cd_http_on_drain(fsnd->req, on_drained, fsnd);
    } else {
        read_next(fsnd);
    }
}

static void read_next(file_send *fsnd) {
    size_t want = fsnd->remaining < CHUNK ? (size_t)fsnd->remaining : CHUNK;
    uv_buf_t b = uv_buf_init(fsnd->buf, (unsigned)want);
    fsnd->fs.data = fsnd;
    if (uv_fs_read(fsnd->loop, &fsnd->fs, fsnd->fd, &b, 1, fsnd->offset, on_read_done) < 0) {
        cd_http_req *req = fsnd->req;
        fs_finish(fsnd);
        if (req) cd_http_abort(req);
    }
}

/* Parses "bytes=a-b", "bytes=a-" or "bytes=-n" against size. Returns 1 with [start,end] filled,
 * 0 when the header should be ignored (malformed, several ranges), -1 when unsatisfiable. */
static int parse_range(const char *h, int64_t size, int64_t *start, int64_t *end) {
    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ',')) return 0;
    const char *p = h + 6;
    char *e;
    if (*p == '-') {
        long long n = strtoll(p + 1, &e, 10);
        if (e == p + 1 || *e || n < 0) return 0;
        if (n == 0 || size == 0) return -1;
        *start = n >= size ? 0 : size - n;
        *end = size - 1;
        return 1;
    }
    long long a = strtoll(p, &e, 10);
    if (e == p || *e != '-' || a < 0) return 0;
    p = e + 1;
    long long b = size - 1;
    if (*p) {
        b = strtoll(p, &e, 10);
        if (*e || b < a) return 0;
    }
    if (a >= size) return -1;
    if (b >= size) b = size - 1;
    *start = a;
    *end = b;
    return 1;
}

static void respond_404(cd_http_req *req) { cd_http_respond_text(req, 404, "404: Not Found"); }

static void on_stat(uv_fs_t *r) {
    file_send *fsnd = r->data;
    int rc = (int)r->result;
    uv_stat_t st = r->statbuf;
    uv_fs_req_cleanup(r);
    cd_http_req *req = fsnd->req;
    if (!req) {
        fs_finish(fsnd);
        return;
    }
    if (rc < 0 || !S_ISREG(st.st_mode)) {
        fs_finish(fsnd);
        respond_404(req);
        return;
    }
    int64_t size = (int64_t)st.st_size;
    char etag[80], lastmod[64];
    snprintf(etag, sizeof etag, "\"%" PRIx64 "%09lx-%" PRIx64 "\"", (uint64_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
             (uint64_t)size);
    struct tm tm;
    time_t mt = (time_t)st.st_mtim.tv_sec;
    gmtime_r(&mt, &tm);
    strftime(lastmod, sizeof lastmod, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cd_http_add_header(req, "ETag", etag);
    cd_http_add_header(req, "Last-Modified", lastmod);
    cd_http_add_header(req, "Accept-Ranges", "bytes");
    if (fsnd->download_name) {
        char disp[600];
        snprintf(disp, sizeof disp, "filename=\"%s\"", fsnd->download_name);
        cd_http_add_header(req, "Content-Disposition", disp);
    }
    const char *inm = cd_http_req_header(req, "If-None-Match");
    const char *ims = cd_http_req_header(req, "If-Modified-Since");
    bool not_modified = inm ? (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0) : (ims && strcmp(ims, lastmod) == 0);
    if (not_modified) {
        fs_finish(fsnd);
        cd_http_respond(req, 304, NULL, NULL, 0);
        return;
    }
    int64_t start = 0, end = size - 1;
    int status = 200;
    const char *range = cd_http_req_header(req, "Range");
    const char *if_range = cd_http_req_header(req, "If-Range");
    if (range && (!if_range || strcmp(if_range, etag) == 0 || strcmp(if_range, lastmod) == 0)) {
        int pr = parse_range(range, size, &start, &end);
        if (pr < 0) {
            char cr[64];
            snprintf(cr, sizeof cr, "bytes */%lld", (long long)size);
            cd_http_add_header(req, "Content-Range", cr);
            fs_finish(fsnd);
            cd_http_respond_text(req, 416, "416: Range Not Satisfiable");
            return;
        }
        if (pr > 0) {
            char cr[96];
            snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", (long long)start, (long long)end, (long long)size);
            cd_http_add_header(req, "Content-Range", cr);
            status = 206;
        }
    }
    fsnd->offset = start;
    fsnd->remaining = size == 0 ? 0 : end - start + 1;
    const char *type = fsnd->content_type ? fsnd->content_type : cd_static_content_type(fsnd->path);
    cd_http_start(req, status, type, fsnd->remaining);
    if (fsnd->remaining == 0 || strcmp(cd_http_req_method(req), "HEAD") == 0) {
        fs_finish(fsnd);
        cd_http_end(req);
        return;
    }
    if (!fsnd->req) { /* the connection died while the head was written */
        fs_finish(fsnd);
        return;
    }
    read_next(fsnd);
}

static void on_open(uv_fs_t *r) {
    file_send *fsnd = r->data;
    int fd = (int)r->result;
    uv_fs_req_cleanup(r);
    if (fd >= 0) fsnd->fd = fd;
    cd_http_req *req = fsnd->req;
    if (!req) {
        fs_finish(fsnd);
        return;
    }
    if (fd < 0) {
        fs_finish(fsnd);
        respond_404(req);
        return;
    }
    fsnd->fs.data = fsnd;
    if (uv_fs_fstat(fsnd->loop, &fsnd->fs, fd, on_stat) < 0) {
        fs_finish(fsnd);
        respond_404(req);
    }
}

void cd_static_serve_path(cd_http_req *req, const char *path, const char *content_type, const char *download_name) {
    file_send *fsnd = calloc(1, sizeof *fsnd);
    if (!fsnd || !(fsnd->path = strdup(path))) {
        free(fsnd);
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    fsnd->content_type = content_type ? strdup(content_type) : NULL;
    fsnd->download_name = download_name ? strdup(download_name) : NULL;
    fsnd->req = req;
    fsnd->fd = -1;
    fsnd->loop = cd_http_server_loop(cd_http_req_server(req));
    fsnd->fs.data = fsnd;
    cd_http_req_on_abort(req, on_abort, fsnd);
    /* O_NOFOLLOW is not used: the caller has already resolved symlinks against the root. */
    if (uv_fs_open(fsnd->loop, &fsnd->fs, path, O_RDONLY | O_CLOEXEC, 0, on_open) < 0) {
        fs_finish(fsnd);
        respond_404(req);
    }
}

void cd_static_serve(cd_http_req *req, const char *root, const char *rel) {
    while (*rel == '/') rel++;
    char *path = cd_path_join_confined(root, rel);
    if (!path) {
        respond_404(req);
        return;
    }
    cd_static_serve_path(req, path, NULL, NULL);
    free(path);
}
