#include "manager/download.h"

#include <curl/curl.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"

static void hex(const unsigned char *h, char out[65]) {
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[h[i] >> 4];
        out[2 * i + 1] = d[h[i] & 15];
    }
    out[64] = 0;
}

static size_t mem_write(char *p, size_t size, size_t n, void *ud) {
    cd_buf *b = ud;
    return cd_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

static CURL *easy(const char *url) {
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled transfer fails instead of hanging the queue: under 1 byte/s for 60 s. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "comfyd-manager");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    return c;
}

int cd_dl_fetch(const char *url, char **out, size_t *len, char *err, size_t errlen) {
    CURL *c = easy(url);
    if (!c) {
        snprintf(err, errlen, "curl init failed");
        return -1;
    }
    cd_buf b = CD_BUF_INIT;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(rc));
        cd_buf_free(&b);
        return -1;
    }
    if (strncasecmp(url, "file:", 5) && (status < 200 || status > 299)) {
        snprintf(err, errlen, "%s: HTTP %ld", url, status);
        cd_buf_free(&b);
        return -1;
    }
    if (cd_buf_append(&b, "", 0) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *len = b.len;
    *out = cd_buf_take(&b);
    if (!*out) *out = calloc(1, 1);
    return 0;
}

int cd_dl_sha256_file(const char *path, char out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) crypto_hash_sha256_update(&st, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return -1;
    unsigned char h[32];
    crypto_hash_sha256_final(&st, h);
    hex(h, out);
    return 0;
}

typedef struct {
    FILE *f;
    long status;      /* of the last response head, to decide append vs start over */
    uint64_t offset;  /* bytes already on disk when the request was made */
    bool decided;
    bool restart;     /* the server ignored the Range: truncate first */
    cd_dl_progress_fn progress;
    void *ctx;
    uint64_t done, total;
    int write_errno;
} file_dl;

static size_t file_write(char *p, size_t size, size_t n, void *ud) {
    file_dl *d = ud;
    size_t len = size * n;
    if (!d->decided) {
        d->decided = true;
        if (d->offset && d->status == 200) {
            /* The server sent the whole file: start over. */
            if (ftruncate(fileno(d->f), 0) < 0 || fseek(d->f, 0, SEEK_SET) < 0) {
                d->write_errno = errno;
                return 0;
            }
            d->restart = true;
            d->done = 0;
        }
    }
    if (d->status >= 300) return len; /* an error body: not written */
    if (fwrite(p, 1, len, d->f) != len) {
        d->write_errno = errno ? errno : EIO;
        return 0;
    }
    d->done += len;
    return len;
}

static size_t file_header(char *p, size_t size, size_t n, void *ud) {
    file_dl *d = ud;
    size_t len = size * n;
    if (len > 5 && !strncmp(p, "HTTP/", 5)) {
        const char *sp = memchr(p, ' ', len);
        if (sp) d->status = strtol(sp + 1, NULL, 10);
        d->decided = false;
    }
    return len;
}

static int file_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    file_dl *d = ud;
    if (dltotal > 0 && d->status != 416) d->total = (uint64_t)dltotal + (d->restart || d->status == 200 ? 0 : d->offset);
    if (d->progress) return d->progress(d->ctx, d->done, d->total);
    return 0;
}

int cd_dl_file(const char *url, const char *final_path, const char *sha256_hex, cd_dl_progress_fn progress,
               void *ctx, uint64_t *resumed_from, char sha256_out[65], char *err, size_t errlen) {
    if (resumed_from) *resumed_from = 0;
    size_t plen = strlen(final_path) + 9;
    char *partial = malloc(plen);
    if (!partial) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(partial, plen, "%s.partial", final_path);
    struct stat st;
    uint64_t offset = stat(partial, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    FILE *f = fopen(partial, offset ? "r+b" : "wb");
    if (!f || (offset && fseek(f, 0, SEEK_END) < 0)) {
        snprintf(err, errlen, "cannot write %s: %s", partial, strerror(errno));
        if (f) fclose(f);
        free(partial);
        return -1;
    }
    if (resumed_from) *resumed_from = offset;
    CURL *c = easy(url);
    if (!c) {
        fclose(f);
        free(partial);
        snprintf(err, errlen, "curl init failed");
        return -1;
    }
    file_dl d = {.f = f, .offset = offset, .progress = progress, .ctx = ctx, .done = offset};
    char range[64];
    if (offset) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)offset);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, file_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, file_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &d);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, file_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    int closed = fclose(f);
    int ret = -1;
    bool is_file = !strncasecmp(url, "file:", 5);
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(err, errlen, "cancelled (%llu bytes kept for a resume)", (unsigned long long)d.done);
    } else if (rc == CURLE_WRITE_ERROR && d.write_errno) {
        snprintf(err, errlen, "cannot write %s: %s", partial, strerror(d.write_errno));
    } else if (rc != CURLE_OK && !(rc == CURLE_HTTP_RETURNED_ERROR)) {
        snprintf(err, errlen, "%s: %s (%llu bytes kept for a resume)", url, curl_easy_strerror(rc),
                 (unsigned long long)d.done);
    } else if (!is_file && status == 416 && offset) {
        /* Nothing left to fetch: the partial file is complete (checked below). */
        ret = 0;
    } else if (!is_file && (status < 200 || status > 299)) {
        snprintf(err, errlen, "%s: HTTP %ld", url, status);
    } else if (closed != 0) {
        snprintf(err, errlen, "cannot write %s: %s", partial, strerror(errno));
    } else {
        ret = 0;
    }
    if (ret == 0) {
        char got[65];
        if (cd_dl_sha256_file(partial, got) < 0) {
            snprintf(err, errlen, "cannot read %s", partial);
            ret = -1;
        } else if (sha256_hex && *sha256_hex && strcasecmp(got, sha256_hex)) {
            snprintf(err, errlen, "checksum mismatch: expected sha256 %s, got %s", sha256_hex, got);
            unlink(partial);
            ret = -1;
        } else if (rename(partial, final_path) < 0) {
            snprintf(err, errlen, "cannot rename to %s: %s", final_path, strerror(errno));
            ret = -1;
        } else if (sha256_out) {
            memcpy(sha256_out, got, 65);
        }
    }
    free(partial);
    return ret;
}
