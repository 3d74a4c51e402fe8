/* The project store (see projects.h for the layout and the write discipline). */
#include "server/projects.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "base/path.h"
#include "base/str.h"
#include "comfyd_version.h"

#define ID_MAX 128
#define NAME_MAX_BYTES 256

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int cd_projects_status(int rc) {
    switch (rc) {
    case CD_PROJECTS_OK: return 200;
    case CD_PROJECTS_EINVAL: return 400;
    case CD_PROJECTS_ENOENT: return 404;
    case CD_PROJECTS_EEXIST: return 409;
    case CD_PROJECTS_ESTALE: return 412;
    default: return 500;
    }
}

/* ---- tags ---- */

void cd_projects_etag(const void *data, size_t len, char out[CD_PROJECTS_ETAG_SIZE]) {
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, len);
    out[0] = '"';
    sodium_bin2hex(out + 1, 65, h, sizeof h);
    out[65] = '"';
    out[66] = '\0';
}

bool cd_projects_etag_matches(const char *if_match, const char *etag) {
    if (!if_match) return true;
    const char *p = if_match;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return true;
    size_t elen = strlen(etag);
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        const char *start = p;
        if (*p == '"') {
            const char *q = strchr(p + 1, '"');
            if (!q) return false;
            p = q + 1;
        } else {
            while (*p && *p != ',' && *p != ' ' && *p != '\t') p++;
        }
        size_t n = (size_t)(p - start);
        if (n == 1 && *start == '*') return true;
        if (n == elen && !memcmp(start, etag, n)) return true;
        /* a weak tag W/"…" is skipped: it never compares strongly */
    }
    return false;
}

/* ---- ids and names ---- */

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned cp;
    if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static bool id_char_ok(unsigned char c) { return c >= 0x20 && c != 0x7F && !strchr("/\\?<>:*|\"%", c); }

bool cd_projects_id_is_valid(const char *id) {
    if (!id) return false;
    size_t len = strlen(id);
    if (len == 0 || len > ID_MAX || id[0] == '.' || id[len - 1] == '.' || id[len - 1] == ' ') return false;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x80) {
            if (!id_char_ok(c)) return false;
            i++;
            continue;
        }
        size_t n = utf8_len((const unsigned char *)id + i);
        if (!n) return false;
        i += n;
    }
    return true;
}

char *cd_projects_id_from_name(const char *name) {
    size_t len = strlen(name);
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x80) {
            out[o++] = id_char_ok(c) ? (char)c : '_';
            i++;
            continue;
        }
        size_t n = utf8_len((const unsigned char *)name + i);
        if (!n) {
            out[o++] = '_';
            i++;
            continue;
        }
        if (o + n > ID_MAX) break;
        memcpy(out + o, name + i, n);
        o += n;
        i += n;
        if (o >= ID_MAX) break;
    }
    if (o > ID_MAX) o = ID_MAX;
    /* sanitize-filename also trims trailing dots and spaces (Windows rules) */
    while (o > 0 && (out[o - 1] == '.' || out[o - 1] == ' ')) o--;
    out[o] = '\0';
    return out;
}

/* ---- files ---- */

/* Reads a whole file (NUL-terminated). Returns 0, or -1 with errno (ENOENT when missing). */
static int read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) { /* a folder named like a document is no document */
        close(fd);
        errno = ENOENT;
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                close(fd);
                errno = ENOMEM;
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

void cd_projects_doc_free(cd_projects_doc *doc) {
    if (!doc) return;
    free(doc->text);
    doc->text = NULL;
    doc->len = 0;
}

static int load_doc(const char *path, cd_projects_doc *doc) {
    if (read_file(path, &doc->text, &doc->len) < 0) return -1;
    cd_projects_etag(doc->text, doc->len, doc->etag);
    return 0;
}

/* Serialises value the way files are kept (2-space indent, a final newline) and writes it. */
static int save_json(const char *path, const json_t *value, cd_projects_doc *out, char *err, size_t errlen) {
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    if (!text) return fail(err, errlen, CD_PROJECTS_EIO, "out of memory");
    size_t len = strlen(text);
    char *t2 = realloc(text, len + 2);
    if (!t2) {
        free(text);
        return fail(err, errlen, CD_PROJECTS_EIO, "out of memory");
    }
    text = t2;
    text[len++] = '\n';
    text[len] = '\0';
    if (cd_file_write_atomic(path, text, len) < 0) {
        int e = errno;
        free(text);
        return fail(err, errlen, CD_PROJECTS_EIO, "cannot write %s: %s", path, strerror(e));
    }
    if (out) {
        out->text = text;
        out->len = len;
        cd_projects_etag(text, len, out->etag);
    } else {
        free(text);
    }
    return 0;
}

static void now_iso(char out[32]) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static long long now_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- paths ---- */

typedef struct {
    char root[4096];     /* <base>/projects */
    char project[4400];  /* <root>/<pid> */
    char workflows[4500];/* <project>/workflows */
    char file[4700];     /* the document */
} paths;

static int fill_paths(paths *p, const char *base_dir, const char *pid, const char *wid, char *err, size_t errlen) {
    if ((size_t)snprintf(p->root, sizeof p->root, "%s/projects", base_dir) >= sizeof p->root)
        return fail(err, errlen, CD_PROJECTS_EIO, "base directory path too long");
    if (pid) {
        if (!cd_projects_id_is_valid(pid)) return fail(err, errlen, CD_PROJECTS_EINVAL, "Invalid project ID");
        snprintf(p->project, sizeof p->project, "%s/%s", p->root, pid);
        snprintf(p->workflows, sizeof p->workflows, "%s/workflows", p->project);
        snprintf(p->file, sizeof p->file, "%s/project.json", p->project);
    }
    if (wid) {
        if (!cd_projects_id_is_valid(wid)) return fail(err, errlen, CD_PROJECTS_EINVAL, "Invalid workflow ID");
        snprintf(p->file, sizeof p->file, "%s/%s.json", p->workflows, wid);
    }
    /* The ids cannot hold '/', '..' or a leading '.', so the paths stay inside root; this also
     * refuses a project folder that is a symlink leading elsewhere. */
    if (pid) {
        char *c = cd_path_join_confined(p->root, pid);
        if (!c) return fail(err, errlen, CD_PROJECTS_EINVAL, "Invalid project ID");
        free(c);
    }
    return 0;
}

/* The store-wide writer lock (see projects.h): an flock on the projects root. Returns the fd or
 * -1. */
static int lock_store(const char *root) {
    if (cd_path_mkdirs(root, 0755) < 0) return -1;
    return cd_file_lock_dir(root);
}

/* Removes what interrupted writes left in dir: ".<name>.tmp-XXXXXX" files and, in the
 * projects root, ".new-XXXXXX" folders of interrupted creates. */
static void sweep_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.') continue;
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        if (strstr(e->d_name, ".tmp-")) unlink(full);
        else if (!strncmp(e->d_name, ".new-", 5)) cd_path_remove_tree(full);
    }
    closedir(d);
}

int cd_projects_init(const char *base_dir, char *err, size_t errlen) {
    char p[4200];
    snprintf(p, sizeof p, "%s/projects", base_dir);
    if (cd_path_mkdirs(p, 0755) < 0) return fail(err, errlen, CD_PROJECTS_EIO, "cannot create %s: %s", p, strerror(errno));
    /* Under the writer lock, so a write in flight in another process keeps its temp file. */
    int lock = lock_store(p);
    if (lock >= 0) {
        sweep_temps(p);
        DIR *d = opendir(p);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char sub[8192];
            snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
            sweep_temps(sub);
            snprintf(sub, sizeof sub, "%s/%s/workflows", p, e->d_name);
            sweep_temps(sub);
        }
        if (d) closedir(d);
        cd_file_unlock(lock);
    }
    snprintf(p, sizeof p, "%s/library/workflows", base_dir);
    if (cd_path_mkdirs(p, 0755) < 0) return fail(err, errlen, CD_PROJECTS_EIO, "cannot create %s: %s", p, strerror(errno));
    return 0;
}

static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The visible entries of dir (no '.' prefix) with the given suffix (NULL: directories), sorted.
 * Returns the count or -1 (errno ENOENT when dir is missing). */
static long list_dir(const char *dir, const char *suffix, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return -1;
    size_t n = 0, cap = 0;
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(full, &st) < 0) continue;
        if (suffix) {
            size_t l = strlen(e->d_name), sl = strlen(suffix);
            if (!S_ISREG(st.st_mode) || l <= sl || strcmp(e->d_name + l - sl, suffix)) continue;
        } else if (!S_ISDIR(st.st_mode)) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, compare_strings);
    *out = names;
    return (long)n;
}

static void free_names(char **names, long n) {
    for (long i = 0; i < n; i++) free(names[i]);
    free(names);
}

static json_t *load_json_file(const char *path) {
    char *text;
    size_t len;
    if (read_file(path, &text, &len) < 0) return NULL;
    json_t *v = json_loadb(text, len, 0, NULL);
    free(text);
    return v;
}

/* The leading string members of a JSON object text ({"id": "…", "name": "…", …}), read
 * without parsing the rest: stored workflows put id, name, createdAt and updatedAt first, so a
 * write can check names and keep createdAt without parsing every (possibly large) workflow.
 * Returns a new object (maybe empty) or NULL when text does not start like an object. */
static json_t *leading_strings(const char *text, size_t len) {
    size_t i = 0;
#define SKIP_WS                                                                                                        \
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) i++
    SKIP_WS;
    if (i >= len || text[i] != '{') return NULL;
    i++;
    json_t *out = json_object();
    for (;;) {
        json_t *tok[2] = {NULL, NULL};
        for (int t = 0; t < 2; t++) {
            SKIP_WS;
            if (t == 1) {
                if (i >= len || text[i] != ':') break;
                i++;
                SKIP_WS;
            }
            if (i >= len || text[i] != '"') break;
            size_t start = i++;
            while (i < len && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
            if (i >= len) break;
            i++;
            tok[t] = json_loadb(text + start, i - start, JSON_DECODE_ANY, NULL);
            if (!tok[t]) break;
        }
        bool ok = json_is_string(tok[0]) && json_is_string(tok[1]);
        if (ok) json_object_set(out, json_string_value(tok[0]), tok[1]);
        json_decref(tok[0]);
        json_decref(tok[1]);
        SKIP_WS;
        if (!ok || i >= len || text[i] != ',') break;
        i++;
    }
#undef SKIP_WS
    return out;
}

/* A stored workflow's name (and createdAt when wanted): from its leading members when they
 * hold it, else from a full parse. Returns a new object with what was found, or NULL. */
static json_t *workflow_head(const char *text, size_t len) {
    json_t *h = leading_strings(text, len);
    if (h && json_is_string(json_object_get(h, "name")) && json_is_string(json_object_get(h, "createdAt"))) return h;
    json_decref(h);
    json_t *full = json_loadb(text, len, 0, NULL);
    if (!json_is_object(full)) {
        json_decref(full);
        return NULL;
    }
    return full;
}

/* ---- projects ---- */

int cd_projects_list(const char *base_dir, json_t **out, char *err, size_t errlen) {
    paths p;
    int rc = fill_paths(&p, base_dir, NULL, NULL, err, errlen);
    if (rc) return rc;
    *out = json_array();
    char **names;
    long n = list_dir(p.root, NULL, &names);
    if (n < 0) return errno == ENOENT ? 0 : fail(err, errlen, CD_PROJECTS_EIO, "cannot list projects: %s", strerror(errno));
    for (long i = 0; i < n; i++) {
        if (!cd_projects_id_is_valid(names[i])) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s/project.json", p.root, names[i]);
        json_t *meta = load_json_file(path);
        /* ComfyTavern skips folders whose metadata does not validate */
        if (json_is_object(meta) && json_is_string(json_object_get(meta, "name"))) {
            json_object_set_new(meta, "id", json_string(names[i]));
            json_array_append_new(*out, meta);
        } else {
            json_decref(meta);
        }
    }
    free_names(names, n);
    return 0;
}

static bool name_ok(const json_t *name) {
    return json_is_string(name) && json_string_length(name) > 0 && json_string_length(name) <= NAME_MAX_BYTES;
}

int cd_projects_create(const char *base_dir, const json_t *body, cd_projects_doc *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(body)) return fail(err, errlen, CD_PROJECTS_EINVAL, "The body must be a JSON object");
    json_t *name = json_object_get(body, "name");
    if (!name_ok(name)) return fail(err, errlen, CD_PROJECTS_EINVAL, "name must be a string of 1 to %d bytes", NAME_MAX_BYTES);
    json_t *desc = json_object_get(body, "description");
    if (desc && !json_is_string(desc)) return fail(err, errlen, CD_PROJECTS_EINVAL, "description must be a string");
    json_t *idv = json_object_get(body, "id");
    if (idv && !json_is_string(idv)) return fail(err, errlen, CD_PROJECTS_EINVAL, "id must be a string");
    char *id = idv ? strdup(json_string_value(idv)) : cd_projects_id_from_name(json_string_value(name));
    if (!id) return fail(err, errlen, CD_PROJECTS_EIO, "out of memory");
    paths p;
    int rc = fill_paths(&p, base_dir, id, NULL, err, errlen);
    if (rc) {
        if (rc == CD_PROJECTS_EINVAL) fail(err, errlen, rc, "The project id '%s' is not valid", id);
        free(id);
        return rc;
    }
    char now[32];
    now_iso(now);
    json_t *meta = json_object();
    json_object_set_new(meta, "id", json_string(id));
    json_object_set(meta, "name", name);
    if (desc) json_object_set(meta, "description", desc);
    else json_object_set_new(meta, "description", json_sprintf("Project created on %s", now));
    json_object_set_new(meta, "version", json_string(COMFYD_VERSION));
    json_object_set_new(meta, "createdAt", json_string(now));
    json_object_set_new(meta, "updatedAt", json_string(now));
    const char *keep[] = {"templateUsed", "preferredView", "panels", "enableChatPage", "customMetadata"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        json_t *v = json_object_get(body, keep[i]);
        if (v) json_object_set(meta, keep[i], v);
    }
    json_object_set_new(meta, "schemaVersion", json_string(COMFYD_VERSION));

    int lock = lock_store(p.root);
    if (lock < 0) {
        json_decref(meta);
        free(id);
        return fail(err, errlen, CD_PROJECTS_EIO, "cannot lock the project store: %s", strerror(errno));
    }
    struct stat st;
    char tmpdir[4400];
    snprintf(tmpdir, sizeof tmpdir, "%s/.new-XXXXXX", p.root);
    if (lstat(p.project, &st) == 0) {
        rc = fail(err, errlen, CD_PROJECTS_EEXIST, "Project '%s' already exists", id);
    } else if (!mkdtemp(tmpdir)) {
        rc = fail(err, errlen, CD_PROJECTS_EIO, "cannot create a project folder: %s", strerror(errno));
    } else {
        /* Built aside and renamed in, so a crash never leaves a half-made project. */
        char sub[4500], file[4500];
        snprintf(sub, sizeof sub, "%s/workflows", tmpdir);
        snprintf(file, sizeof file, "%s/project.json", tmpdir);
        chmod(tmpdir, 0755);
        if (mkdir(sub, 0755) < 0) rc = fail(err, errlen, CD_PROJECTS_EIO, "cannot create %s: %s", sub, strerror(errno));
        else rc = save_json(file, meta, out, err, errlen);
        if (rc == 0 && (cd_file_fsync_dir(tmpdir) < 0 || rename(tmpdir, p.project) < 0 || cd_file_fsync_dir(p.root) < 0)) {
            rc = fail(err, errlen, CD_PROJECTS_EIO, "cannot create project '%s': %s", id, strerror(errno));
            cd_projects_doc_free(out);
        }
        if (rc) cd_path_remove_tree(tmpdir);
    }
    cd_file_unlock(lock);
    json_decref(meta);
    free(id);
    return rc;
}

int cd_projects_get_meta(const char *base_dir, const char *id, cd_projects_doc *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    paths p;
    int rc = fill_paths(&p, base_dir, id, NULL, err, errlen);
    if (rc) return rc;
    if (load_doc(p.file, out) < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return fail(err, errlen, CD_PROJECTS_ENOENT, "Project '%s' not found", id);
        return fail(err, errlen, CD_PROJECTS_EIO, "cannot read project '%s': %s", id, strerror(errno));
    }
    return 0;
}

/* Loads a document under the lock and checks If-Match. On success *cur holds it. */
static int load_checked(const char *path, const char *what, const char *if_match, cd_projects_doc *cur, char *err,
                        size_t errlen) {
    memset(cur, 0, sizeof *cur);
    if (load_doc(path, cur) < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return fail(err, errlen, CD_PROJECTS_ENOENT, "%s not found", what);
        return fail(err, errlen, CD_PROJECTS_EIO, "cannot read %s: %s", what, strerror(errno));
    }
    if (!cd_projects_etag_matches(if_match, cur->etag)) {
        cd_projects_doc_free(cur);
        return fail(err, errlen, CD_PROJECTS_ESTALE, "%s was changed by someone else (If-Match does not match)", what);
    }
    return 0;
}

int cd_projects_update_meta(const char *base_dir, const char *id, const json_t *patch, const char *if_match,
                            cd_projects_doc *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    paths p;
    int rc = fill_paths(&p, base_dir, id, NULL, err, errlen);
    if (rc) return rc;
    if (!json_is_object(patch)) return fail(err, errlen, CD_PROJECTS_EINVAL, "The body must be a JSON object");
    json_t *name = json_object_get(patch, "name");
    if (name && !name_ok(name)) return fail(err, errlen, CD_PROJECTS_EINVAL, "name must be a string of 1 to %d bytes", NAME_MAX_BYTES);
    json_t *desc = json_object_get(patch, "description");
    if (desc && !json_is_string(desc)) return fail(err, errlen, CD_PROJECTS_EINVAL, "description must be a string");
    json_t *pid = json_object_get(patch, "id");
    if (pid && !(json_is_string(pid) && !strcmp(json_string_value(pid), id)))
        return fail(err, errlen, CD_PROJECTS_EINVAL, "The project id cannot be changed");

    int lock = lock_store(p.root);
    if (lock < 0) return fail(err, errlen, CD_PROJECTS_EIO, "cannot lock the project store: %s", strerror(errno));
    char what[200];
    snprintf(what, sizeof what, "Project '%s'", id);
    cd_projects_doc cur;
    rc = load_checked(p.file, what, if_match, &cur, err, errlen);
    if (rc == 0) {
        json_t *meta = json_loadb(cur.text, cur.len, 0, NULL);
        if (!json_is_object(meta)) {
            json_decref(meta);
            meta = json_object(); /* a damaged project.json is replaced by what the client sends */
        }
        json_t *created = json_incref(json_object_get(meta, "createdAt"));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)patch, k, v) {
            if (strcmp(k, "id") && strcmp(k, "createdAt")) json_object_set(meta, k, v);
        }
        json_object_set_new(meta, "id", json_string(id));
        if (created) json_object_set_new(meta, "createdAt", created);
        char now[32];
        now_iso(now);
        json_object_set_new(meta, "updatedAt", json_string(now));
        if (!json_is_string(json_object_get(meta, "name"))) json_object_set_new(meta, "name", json_string(id));
        rc = save_json(p.file, meta, out, err, errlen);
        json_decref(meta);
        cd_projects_doc_free(&cur);
    }
    cd_file_unlock(lock);
    return rc;
}

/* Makes dir (and its parents) for the recycle bin. */
static int make_bin(const char *path, char *err, size_t errlen) {
    if (cd_path_mkdirs(path, 0755) < 0)
        return fail(err, errlen, CD_PROJECTS_EIO, "cannot create %s: %s", path, strerror(errno));
    return 0;
}

int cd_projects_delete(const char *base_dir, const char *id, const char *if_match, char *err, size_t errlen) {
    paths p;
    int rc = fill_paths(&p, base_dir, id, NULL, err, errlen);
    if (rc) return rc;
    int lock = lock_store(p.root);
    if (lock < 0) return fail(err, errlen, CD_PROJECTS_EIO, "cannot lock the project store: %s", strerror(errno));
    struct stat st;
    if (lstat(p.project, &st) < 0 || !S_ISDIR(st.st_mode)) {
        rc = fail(err, errlen, CD_PROJECTS_ENOENT, "Project '%s' not found", id);
    } else if (if_match) {
        char what[200];
        snprintf(what, sizeof what, "Project '%s'", id);
        cd_projects_doc cur;
        rc = load_checked(p.file, what, if_match, &cur, err, errlen);
        cd_projects_doc_free(&cur);
    }
    if (rc == 0) {
        char bin[4200], dest[4500];
        snprintf(bin, sizeof bin, "%s/.recycle_bin", p.root);
        snprintf(dest, sizeof dest, "%s/%s_%lld", bin, id, now_ms());
        rc = make_bin(bin, err, errlen);
        if (rc == 0 && (rename(p.project, dest) < 0 || cd_file_fsync_dir(p.root) < 0))
            rc = fail(err, errlen, CD_PROJECTS_EIO, "cannot delete project '%s': %s", id, strerror(errno));
    }
    cd_file_unlock(lock);
    return rc;
}

/* ---- workflows ---- */

const char *cd_projects_workflow_format(const json_t *wf) {
    if (!json_is_object(wf)) return "unknown";
    json_t *nodes = json_object_get(wf, "nodes");
    if (json_is_array(nodes)) {
        if (json_is_array(json_object_get(wf, "edges"))) return "tavern";
        return "ui";
    }
    if (json_is_object(json_object_get(wf, "prompt"))) return "api";
    return "unknown";
}

/* The listing entry of a stored workflow. */
static json_t *summary(const char *id, const json_t *wf) {
    json_t *s = json_object();
    json_object_set_new(s, "id", json_string(id));
    json_t *name = json_object_get(wf, "name");
    json_object_set_new(s, "name", json_string(json_is_string(name) ? json_string_value(name) : id));
    const char *opt[] = {"description", "updatedAt", "creationMethod", "referencedWorkflows"};
    for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
        json_t *v = json_object_get(wf, opt[i]);
        if (v) json_object_set(s, opt[i], v);
    }
    json_object_set_new(s, "format", json_string(cd_projects_workflow_format(wf)));
    return s;
}

/* Lists the *.json workflows of dir as summaries (only those that parse as objects). */
static int list_workflow_dir(const char *dir, json_t **out, char *err, size_t errlen) {
    *out = json_array();
    char **names;
    long n = list_dir(dir, ".json", &names);
    if (n < 0) {
        if (errno == ENOENT) return 0;
        return fail(err, errlen, CD_PROJECTS_EIO, "cannot list %s: %s", dir, strerror(errno));
    }
    for (long i = 0; i < n; i++) {
        names[i][strlen(names[i]) - 5] = '\0';
        if (!cd_projects_id_is_valid(names[i])) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s.json", dir, names[i]);
        json_t *wf = load_json_file(path);
        if (json_is_object(wf)) json_array_append_new(*out, summary(names[i], wf));
        json_decref(wf);
    }
    free_names(names, n);
    return 0;
}

static bool project_exists(const paths *p) {
    struct stat st;
    return lstat(p->project, &st) == 0 && S_ISDIR(st.st_mode);
}

int cd_projects_list_workflows(const char *base_dir, const char *pid, json_t **out, char *err, size_t errlen) {
    *out = NULL;
    paths p;
    int rc = fill_paths(&p, base_dir, pid, NULL, err, errlen);
    if (rc) return rc;
    if (!project_exists(&p)) return fail(err, errlen, CD_PROJECTS_ENOENT, "Project '%s' not found", pid);
    return list_workflow_dir(p.workflows, out, err, errlen);
}

/* Checks a workflow body: an object whose known members have the right types. */
static int check_workflow(const json_t *body, bool need_name, char *err, size_t errlen) {
    if (!json_is_object(body)) return fail(err, errlen, CD_PROJECTS_EINVAL, "The body must be a JSON object");
    json_t *name = json_object_get(body, "name");
    if ((need_name || name) && !name_ok(name))
        return fail(err, errlen, CD_PROJECTS_EINVAL, "name must be a string of 1 to %d bytes", NAME_MAX_BYTES);
    json_t *v;
    if ((v = json_object_get(body, "id")) && !json_is_string(v)) return fail(err, errlen, CD_PROJECTS_EINVAL, "id must be a string");
    if ((v = json_object_get(body, "description")) && !json_is_string(v) && !json_is_null(v))
        return fail(err, errlen, CD_PROJECTS_EINVAL, "description must be a string");
    if ((v = json_object_get(body, "nodes")) && !json_is_array(v)) return fail(err, errlen, CD_PROJECTS_EINVAL, "nodes must be an array");
    if ((v = json_object_get(body, "links")) && !json_is_array(v)) return fail(err, errlen, CD_PROJECTS_EINVAL, "links must be an array");
    if ((v = json_object_get(body, "edges")) && !json_is_array(v)) return fail(err, errlen, CD_PROJECTS_EINVAL, "edges must be an array");
    if ((v = json_object_get(body, "prompt"))) {
        if (!json_is_object(v)) return fail(err, errlen, CD_PROJECTS_EINVAL, "prompt must be an API-format object");
        const char *k;
        json_t *node;
        json_object_foreach(v, k, node) {
            if (!json_is_object(node) || !json_is_string(json_object_get(node, "class_type")))
                return fail(err, errlen, CD_PROJECTS_EINVAL, "prompt node '%s' has no class_type", k);
        }
    }
    return 0;
}

/* Is name taken by another workflow (not skip_id) in dir? */
static bool name_taken(const char *dir, const char *name, const char *skip_id) {
    char **names;
    long n = list_dir(dir, ".json", &names);
    bool taken = false;
    for (long i = 0; i < n && !taken; i++) {
        names[i][strlen(names[i]) - 5] = '\0';
        if (!cd_projects_id_is_valid(names[i]) || (skip_id && !strcmp(names[i], skip_id))) continue;
        char path[8192], *text;
        size_t len;
        snprintf(path, sizeof path, "%s/%s.json", dir, names[i]);
        if (read_file(path, &text, &len) < 0) continue;
        json_t *h = workflow_head(text, len);
        free(text);
        const char *other = json_string_value(json_object_get(h, "name"));
        taken = other ? !strcmp(other, name) : !strcmp(names[i], name);
        json_decref(h);
    }
    if (n > 0) free_names(names, n);
    else free(names);
    return taken;
}

/* The stored form: id, name, createdAt, updatedAt (first, see leading_strings), then the body's
 * other members. */
static json_t *stored_workflow(const char *id, const char *name, const json_t *body, const json_t *created,
                               const char *now) {
    json_t *wf = json_object();
    json_object_set_new(wf, "id", json_string(id));
    json_object_set_new(wf, "name", json_string(name));
    if (created) json_object_set(wf, "createdAt", (json_t *)created);
    else json_object_set_new(wf, "createdAt", json_string(now));
    json_object_set_new(wf, "updatedAt", json_string(now));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v) {
        if (strcmp(k, "id") && strcmp(k, "name") && strcmp(k, "createdAt") && strcmp(k, "updatedAt"))
            json_object_set(wf, k, v);
    }
    return wf;
}

int cd_projects_create_workflow(const char *base_dir, const char *pid, const json_t *body, cd_projects_doc *out,
                                char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    paths p;
    int rc = fill_paths(&p, base_dir, pid, NULL, err, errlen);
    if (rc) return rc;
    if ((rc = check_workflow(body, true, err, errlen))) return rc;
    char id[ID_MAX + 1];
    json_t *idv = json_object_get(body, "id");
    if (idv) {
        if (!cd_projects_id_is_valid(json_string_value(idv)))
            return fail(err, errlen, CD_PROJECTS_EINVAL, "The workflow id is not valid");
        snprintf(id, sizeof id, "%s", json_string_value(idv));
    } else {
        cd_str_uuid4(id);
    }
    if ((rc = fill_paths(&p, base_dir, pid, id, err, errlen))) return rc;
    const char *name = json_string_value(json_object_get(body, "name"));

    int lock = lock_store(p.root);
    if (lock < 0) return fail(err, errlen, CD_PROJECTS_EIO, "cannot lock the project store: %s", strerror(errno));
    struct stat st;
    if (!project_exists(&p)) {
        rc = fail(err, errlen, CD_PROJECTS_ENOENT, "Project '%s' not found", pid);
    } else if (cd_path_mkdirs(p.workflows, 0755) < 0) {
        rc = fail(err, errlen, CD_PROJECTS_EIO, "cannot create %s: %s", p.workflows, strerror(errno));
    } else if (lstat(p.file, &st) == 0) {
        rc = fail(err, errlen, CD_PROJECTS_EEXIST, "A workflow with id '%s' already exists", id);
    } else if (name_taken(p.workflows, name, NULL)) {
        rc = fail(err, errlen, CD_PROJECTS_EEXIST, "A workflow named '%s' already exists", name);
    } else {
        char now[32];
        now_iso(now);
        json_t *wf = stored_workflow(id, name, body, NULL, now);
        rc = save_json(p.file, wf, out, err, errlen);
        json_decref(wf);
    }
    cd_file_unlock(lock);
    return rc;
}

int cd_projects_get_workflow(const char *base_dir, const char *pid, const char *wid, cd_projects_doc *out, char *err,
                             size_t errlen) {
    memset(out, 0, sizeof *out);
    paths p;
    int rc = fill_paths(&p, base_dir, pid, wid, err, errlen);
    if (rc) return rc;
    if (!project_exists(&p)) return fail(err, errlen, CD_PROJECTS_ENOENT, "Project '%s' not found", pid);
    if (load_doc(p.file, out) < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return fail(err, errlen, CD_PROJECTS_ENOENT, "Workflow '%s' not found", wid);
        return fail(err, errlen, CD_PROJECTS_EIO, "cannot read workflow '%s': %s", wid, strerror(errno));
    }
    return 0;
}

int cd_projects_put_workflow(const char *base_dir, const char *pid, const char *wid, const json_t *body,
                             const char *if_match, cd_projects_doc *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    paths p;
    int rc = fill_paths(&p, base_dir, pid, wid, err, errlen);
    if (rc) return rc;
    if ((rc = check_workflow(body, false, err, errlen))) return rc;
    json_t *idv = json_object_get(body, "id");
    if (idv && strcmp(json_string_value(idv), wid))
        return fail(err, errlen, CD_PROJECTS_EINVAL, "The workflow id in the body does not match the URL");

    int lock = lock_store(p.root);
    if (lock < 0) return fail(err, errlen, CD_PROJECTS_EIO, "cannot lock the project store: %s", strerror(errno));
    char what[200];
    snprintf(what, sizeof what, "Workflow '%s'", wid);
    cd_projects_doc cur = {0};
    if (!project_exists(&p)) rc = fail(err, errlen, CD_PROJECTS_ENOENT, "Project '%s' not found", pid);
    else rc = load_checked(p.file, what, if_match, &cur, err, errlen);
    if (rc == 0) {
        json_t *old = workflow_head(cur.text, cur.len);
        json_t *bname = json_object_get(body, "name");
        const char *name = bname ? json_string_value(bname) : json_string_value(json_object_get(old, "name"));
        if (!name) name = wid;
        if (name_taken(p.workflows, name, wid)) {
            rc = fail(err, errlen, CD_PROJECTS_EEXIST, "A workflow named '%s' already exists", name);
        } else {
            char now[32];
            now_iso(now);
            json_t *created = json_object_get(old, "createdAt");
            json_t *wf = stored_workflow(wid, name, body, json_is_string(created) ? created : NULL, now);
            rc = save_json(p.file, wf, out, err, errlen);
            json_decref(wf);
        }
        json_decref(old);
    }
    cd_projects_doc_free(&cur);
    cd_file_unlock(lock);
    return rc;
}

int cd_projects_delete_workflow(const char *base_dir, const char *pid, const char *wid, const char *if_match,
                                char *err, size_t errlen) {
    paths p;
    int rc = fill_paths(&p, base_dir, pid, wid, err, errlen);
    if (rc) return rc;
    int lock = lock_store(p.root);
    if (lock < 0) return fail(err, errlen, CD_PROJECTS_EIO, "cannot lock the project store: %s", strerror(errno));
    char what[200];
    snprintf(what, sizeof what, "Workflow '%s'", wid);
    cd_projects_doc cur = {0};
    if (!project_exists(&p)) rc = fail(err, errlen, CD_PROJECTS_ENOENT, "Project '%s' not found", pid);
    else rc = load_checked(p.file, what, if_match, &cur, err, errlen);
    cd_projects_doc_free(&cur);
    if (rc == 0) {
        char bin[8192], dest[8400];
        snprintf(bin, sizeof bin, "%s/.recycle_bin/%s/workflows", p.root, pid);
        snprintf(dest, sizeof dest, "%s/%s_%lld.json", bin, wid, now_ms());
        rc = make_bin(bin, err, errlen);
        if (rc == 0 && (rename(p.file, dest) < 0 || cd_file_fsync_dir(p.workflows) < 0))
            rc = fail(err, errlen, CD_PROJECTS_EIO, "cannot delete workflow '%s': %s", wid, strerror(errno));
    }
    cd_file_unlock(lock);
    return rc;
}

/* ---- the shared library ---- */

int cd_projects_library_list(const char *base_dir, json_t **out, char *err, size_t errlen) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/library/workflows", base_dir);
    int rc = list_workflow_dir(dir, out, err, errlen);
    if (rc) return rc;
    /* ComfyTavern lists only {id, name} here */
    size_t i;
    json_t *s;
    json_array_foreach(*out, i, s) {
        json_t *slim = json_pack("{s:O, s:O}", "id", json_object_get(s, "id"), "name", json_object_get(s, "name"));
        json_array_set_new(*out, i, slim);
    }
    return 0;
}

int cd_projects_library_get(const char *base_dir, const char *wid, cd_projects_doc *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!cd_projects_id_is_valid(wid)) return fail(err, errlen, CD_PROJECTS_EINVAL, "Invalid workflow ID");
    char path[4400];
    snprintf(path, sizeof path, "%s/library/workflows/%s.json", base_dir, wid);
    if (load_doc(path, out) < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return fail(err, errlen, CD_PROJECTS_ENOENT, "Workflow '%s' not found", wid);
        return fail(err, errlen, CD_PROJECTS_EIO, "cannot read workflow '%s': %s", wid, strerror(errno));
    }
    return 0;
}
