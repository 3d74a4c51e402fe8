/* The blocking half of the user data API: see userdata.h. Everything here runs in the thread
 * pool (or in tests), never on the loop thread. */
#include "server/userdata.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/file.h"
#include "base/json.h"
#include "base/path.h"
#include "base/str.h"

#define MAX_DEPTH 64

/* ---- small helpers ---- */

static bool is_inside(const char *root_real, const char *candidate) {
    size_t n = strlen(root_real);
    if (strncmp(candidate, root_real, n) != 0) return false;
    return candidate[n] == '\0' || candidate[n] == '/' || (n == 1 && root_real[0] == '/');
}

/* A symlink below the root is followed only when its target stays inside. */
static bool link_ok(const char *root_real, const char *path) {
    char *real = realpath(path, NULL);
    if (!real) return false;
    bool ok = is_inside(root_real, real);
    free(real);
    return ok;
}

static char *dir_of(const char *path) {
    char *d = strdup(path);
    if (!d) return NULL;
    char *slash = strrchr(d, '/');
    if (slash == d) slash[1] = '\0';
    else if (slash) *slash = '\0';
    return d;
}

/* Reads a whole (small) file; NULL when missing or unreadable. */
static char *read_small(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    cd_buf b = CD_BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (cd_buf_append(&b, chunk, n) < 0) {
            fclose(f);
            cd_buf_free(&b);
            return NULL;
        }
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        cd_buf_free(&b);
        return NULL;
    }
    if (!b.data) cd_buf_append(&b, "", 0);
    if (len) *len = b.len;
    return cd_buf_take(&b);
}

static json_t *load_json_file(const char *path) {
    size_t len = 0;
    char *text = read_small(path, &len);
    if (!text) return NULL;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    free(text);
    return v;
}


/* ---- users ---- */

char *cd_userdata_user_root(const char *user_dir, const char *id) {
    if (!id[0] || strchr(id, '/') || !strcmp(id, ".") || !strcmp(id, "..") || cd_str_starts_with(id, "__"))
        return NULL;
    return cd_path_join(user_dir, id);
}

json_t *cd_userdata_users_load(const char *user_dir, bool multi_user) {
    if (!multi_user) return json_pack("{s:s}", "default", "default");
    char *file = cd_path_join(user_dir, "users.json");
    json_t *v = file ? load_json_file(file) : NULL;
    free(file);
    if (!json_is_object(v)) {
        json_decref(v);
        return json_object();
    }
    return v;
}

int cd_userdata_user_id(const char *user_dir, bool multi_user, const char *header, char **id) {
    *id = NULL;
    const char *user = multi_user && header ? header : "default";
    if (cd_str_starts_with(user, "__")) return CD_UD_UNKNOWN_USER;
    json_t *users = cd_userdata_users_load(user_dir, multi_user);
    if (!users) return CD_UD_NOMEM;
    bool known = json_object_get(users, user) != NULL;
    json_decref(users);
    if (!known) return CD_UD_UNKNOWN_USER;
    *id = strdup(user);
    return *id ? CD_UD_OK : CD_UD_NOMEM;
}

int cd_userdata_users_add(const char *user_dir, bool multi_user, const char *username, char **id, const char **msg) {
    *id = NULL;
    *msg = NULL;
    int lk = cd_file_lock_dir(user_dir);
    char *file = cd_path_join(user_dir, "users.json");
    json_t *users = NULL;
    int rc = -1;
    if (!file) goto out;
    /* Single-user mode keeps "default" and whatever an earlier POST /users added. */
    users = multi_user ? cd_userdata_users_load(user_dir, true) : load_json_file(file);
    if (!json_is_object(users)) {
        json_decref(users);
        users = json_object();
    }
    if (!multi_user && !json_object_get(users, "default")) json_object_set_new(users, "default", json_string("default"));
    const char *k;
    json_t *v;
    json_object_foreach(users, k, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), username)) {
            rc = 1;
            goto out;
        }
    }
    /* name.strip() */
    const char *s = username;
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (!n) {
        *msg = "username not provided";
        rc = 2;
        goto out;
    }
    if (n >= 2 && s[0] == '_' && s[1] == '_') {
        *msg = "System User prefix not allowed";
        rc = 2;
        goto out;
    }
    /* re.sub("[^a-zA-Z0-9-_]+", "-", name) + "_" + uuid4 */
    cd_buf b = CD_BUF_INIT;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) && c < 128) {
            cd_buf_append(&b, &s[i], 1);
            i++;
        } else if (c == '-' || c == '_') {
            cd_buf_append(&b, &s[i], 1);
            i++;
        } else {
            while (i < n) {
                c = (unsigned char)s[i];
                if ((isalnum(c) && c < 128) || c == '-' || c == '_') break;
                i++;
            }
            cd_buf_append(&b, "-", 1);
        }
    }
    if (b.len >= 2 && b.data[0] == '_' && b.data[1] == '_') {
        cd_buf_free(&b);
        *msg = "System User prefix not allowed";
        rc = 2;
        goto out;
    }
    char uuid[37];
    cd_str_uuid4(uuid);
    if (cd_buf_printf(&b, "_%s", uuid) < 0) {
        cd_buf_free(&b);
        goto out;
    }
    json_object_set_new(users, b.data, json_stringn(s, n));
    char *text = cd_json_dumps(users);
    if (text && cd_userdata_write_atomic(file, text, strlen(text)) == 0) {
        *id = cd_buf_take(&b);
        rc = 0;
    }
    free(text);
    cd_buf_free(&b);
out:
    json_decref(users);
    free(file);
    cd_file_unlock(lk);
    return rc;
}

/* ---- paths ---- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *cd_userdata_unquote(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
            char c = (char)(hi * 16 + lo);
            if (c == '\0') {
                free(out);
                return NULL;
            }
            out[o++] = c;
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

int cd_userdata_normalize(const char *file, char **out) {
    *out = NULL;
    if (file[0] == '/' || strchr(file, '\\')) return CD_UD_FORBIDDEN;
    size_t n = strlen(file);
    char *res = malloc(n + 1);
    if (!res) return CD_UD_NOMEM;
    size_t len = 0;
    const char *p = file;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t cl = slash ? (size_t)(slash - p) : strlen(p);
        if (cl == 0 || (cl == 1 && p[0] == '.')) {
            /* nothing */
        } else if (cl == 2 && p[0] == '.' && p[1] == '.') {
            if (len == 0) {
                free(res);
                return CD_UD_FORBIDDEN;
            }
            char *last = memrchr(res, '/', len);
            len = last ? (size_t)(last - res) : 0;
        } else {
            if (len) res[len++] = '/';
            memcpy(res + len, p, cl);
            len += cl;
        }
        if (!slash) break;
        p = slash + 1;
    }
    res[len] = '\0';
    *out = res;
    return CD_UD_OK;
}

int cd_userdata_resolve(const char *root, const char *file, int flags, char **path, char **rel) {
    *path = NULL;
    *rel = NULL;
    char *decoded = NULL, *norm = NULL;
    int rc;
    if (file && strchr(file, '%')) {
        if (!(decoded = cd_userdata_unquote(file))) return CD_UD_FORBIDDEN; /* an encoded NUL */
        file = decoded;
    }
    rc = cd_userdata_normalize(file ? file : "", &norm);
    free(decoded);
    if (rc != CD_UD_OK) return rc;
    if (flags & CD_UD_MKROOT) cd_path_mkdirs(root, 0755);
    struct stat rst;
    bool root_exists = stat(root, &rst) == 0;
    if (root_exists && !S_ISDIR(rst.st_mode)) {
        /* a user id naming a file in the user directory (users.json, the history database) */
        free(norm);
        return CD_UD_FORBIDDEN;
    }
    char *joined;
    if (!root_exists && !(flags & CD_UD_MKROOT)) {
        joined = cd_path_join(root, norm);
        if (!joined) {
            free(norm);
            return CD_UD_NOMEM;
        }
    } else {
        joined = cd_path_join_confined(root, norm);
        if (!joined) {
            free(norm);
            return CD_UD_FORBIDDEN;
        }
    }
    if ((flags & CD_UD_MKPARENT) && norm[0]) {
        char *parent = dir_of(joined);
        if (parent) cd_path_mkdirs(parent, 0755); /* a failure shows when the file is written */
        free(parent);
    }
    *path = joined;
    *rel = norm;
    return CD_UD_OK;
}

/* ---- writing ---- */

int cd_userdata_write_atomic(const char *path, const void *data, size_t len) {
    return cd_file_write_atomic(path, data, len) == 0 ? 0 : -errno;
}

/* ---- listings ---- */

json_t *cd_userdata_file_info(const char *path, const char *rel) {
    struct stat st;
    if (stat(path, &st) < 0) return NULL;
    json_int_t mod = (json_int_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    json_int_t ctm = (json_int_t)st.st_ctim.tv_sec * 1000 + st.st_ctim.tv_nsec / 1000000;
    return json_pack("{s:s, s:I, s:I, s:I}", "path", rel, "size", (json_int_t)st.st_size, "modified", mod, "created",
                     ctm);
}

static int name_cmp(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* Like Python's glob of "dir" + "/" + "*" (with recurse, "**" then "*"): files of a directory first,
 * then its sub-directories in order, dotfiles and dot-directories skipped. */
static void list_v1(const char *root_real, const char *abs, const char *rel, bool recurse, bool full_info, bool split,
                    json_t *out, int depth) {
    if (depth > MAX_DEPTH) return;
    struct dirent **names = NULL;
    int n = scandir(abs, &names, NULL, name_cmp);
    if (n < 0) return;
    for (int pass = 0; pass < (recurse ? 2 : 1); pass++) {
        for (int i = 0; i < n; i++) {
            const char *name = names[i]->d_name;
            if (name[0] == '.') continue;
            char *child = cd_path_join(abs, name);
            char *child_rel = rel[0] ? cd_path_join(rel, name) : strdup(name);
            struct stat st;
            bool ok = child && child_rel && lstat(child, &st) == 0;
            if (ok && S_ISLNK(st.st_mode)) ok = link_ok(root_real, child) && stat(child, &st) == 0;
            if (ok && pass == 0 && S_ISREG(st.st_mode)) {
                json_t *item;
                if (full_info) {
                    item = cd_userdata_file_info(child, child_rel);
                } else if (split) {
                    item = json_array();
                    json_array_append_new(item, json_string(child_rel));
                    char *parts = strdup(child_rel);
                    char *save = NULL;
                    for (char *t = parts ? strtok_r(parts, "/", &save) : NULL; t; t = strtok_r(NULL, "/", &save))
                        json_array_append_new(item, json_string(t));
                    free(parts);
                } else {
                    item = json_string(child_rel);
                }
                if (item) json_array_append_new(out, item);
            } else if (ok && pass == 1 && S_ISDIR(st.st_mode)) {
                list_v1(root_real, child, child_rel, recurse, full_info, split, out, depth + 1);
            }
            free(child);
            free(child_rel);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

json_t *cd_userdata_list(const char *root, const char *dir, bool recurse, bool full_info, bool split) {
    json_t *out = json_array();
    char *root_real = realpath(root, NULL);
    if (out && root_real) list_v1(root_real, dir, "", recurse, full_info, split, out, 0);
    free(root_real);
    return out;
}

typedef struct {
    json_t *item;
    bool is_dir;
    char *lname;
    size_t seq;
} v2_entry;

typedef struct {
    v2_entry *v;
    size_t n, cap;
} v2_list;

static void v2_push(v2_list *l, json_t *item, bool is_dir, const char *name) {
    if (!item) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        v2_entry *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) {
            json_decref(item);
            return;
        }
        l->v = nv;
        l->cap = cap;
    }
    char *lname = strdup(name);
    for (char *p = lname; p && *p; p++) *p = (char)tolower((unsigned char)*p);
    l->v[l->n] = (v2_entry){item, is_dir, lname, l->n};
    l->n++;
}

/* Like os.walk(topdown=True, followlinks=False): a symlink to a directory is listed as a
 * directory but not entered. Symlinks that lead out of the root are left out altogether. */
static void walk_v2(const char *root_real, const char *abs, const char *rel, v2_list *l, int depth) {
    if (depth > MAX_DEPTH) return;
    struct dirent **names = NULL;
    int n = scandir(abs, &names, NULL, name_cmp);
    if (n < 0) return;
    char **subdirs = calloc((size_t)n + 1, sizeof *subdirs);
    char **subrels = calloc((size_t)n + 1, sizeof *subrels);
    size_t nsub = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            const char *name = names[i]->d_name;
            if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
            char *child = cd_path_join(abs, name);
            char *child_rel = rel[0] ? cd_path_join(rel, name) : strdup(name);
            if (!child || !child_rel) goto next;
            struct stat lst, st;
            if (lstat(child, &lst) < 0) goto next;
            bool is_link = S_ISLNK(lst.st_mode);
            bool has_stat = stat(child, &st) == 0;
            if (is_link && has_stat && !link_ok(root_real, child)) goto next;
            bool is_dir = has_stat && S_ISDIR(st.st_mode);
            if (pass == 0 && is_dir) {
                v2_push(l, json_pack("{s:s, s:s, s:s}", "name", name, "path", child_rel, "type", "directory"), true,
                        name);
                if (!is_link && subdirs && subrels) {
                    subdirs[nsub] = child;
                    subrels[nsub++] = child_rel;
                    child = child_rel = NULL;
                }
            } else if (pass == 1 && !is_dir) {
                json_t *item = json_pack("{s:s, s:s, s:s}", "name", name, "path", child_rel, "type", "file");
                if (item && has_stat) {
                    json_object_set_new(item, "size", json_integer((json_int_t)st.st_size));
                    json_object_set_new(item, "modified",
                                        json_real((double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9));
                }
                v2_push(l, item, false, name);
            }
        next:
            free(child);
            free(child_rel);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    for (size_t i = 0; i < nsub; i++) {
        walk_v2(root_real, subdirs[i], subrels[i], l, depth + 1);
        free(subdirs[i]);
        free(subrels[i]);
    }
    free(subdirs);
    free(subrels);
}

static int v2_cmp(const void *a, const void *b) {
    const v2_entry *x = a, *y = b;
    if (x->is_dir != y->is_dir) return x->is_dir ? -1 : 1;
    int c = strcmp(x->lname ? x->lname : "", y->lname ? y->lname : "");
    if (c) return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

json_t *cd_userdata_list_v2(const char *root, const char *dir) {
    json_t *out = json_array();
    char *root_real = realpath(root, NULL);
    v2_list l = {0};
    if (out && root_real) {
        /* paths are relative to the root, so walk dir with its own relative prefix */
        char *dir_real = realpath(dir, NULL);
        const char *rel = "";
        if (dir_real && is_inside(root_real, dir_real)) {
            rel = dir_real + strlen(root_real);
            while (*rel == '/') rel++;
        }
        walk_v2(root_real, dir, rel, &l, 0);
        free(dir_real);
    }
    if (l.n) qsort(l.v, l.n, sizeof *l.v, v2_cmp);
    for (size_t i = 0; i < l.n; i++) {
        json_array_append_new(out, l.v[i].item);
        free(l.v[i].lname);
    }
    free(l.v);
    free(root_real);
    return out;
}

/* ---- settings ---- */

json_t *cd_userdata_settings_load(const char *path) {
    json_t *v = load_json_file(path);
    if (!json_is_object(v)) {
        json_decref(v);
        return json_object();
    }
    return v;
}

int cd_userdata_settings_update(const char *path, const char *id, json_t *value) {
    char *dir = dir_of(path);
    if (!dir) return -ENOMEM;
    int lk = cd_file_lock_dir(dir);
    free(dir);
    json_t *settings = cd_userdata_settings_load(path);
    int rc = -ENOMEM;
    if (settings) {
        if (id) json_object_set(settings, id, value);
        else json_object_update(settings, value);
        char *text = json_dumps(settings, JSON_INDENT(4) | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
        if (text) {
            cd_json_lower_escapes(text);
            rc = cd_userdata_write_atomic(path, text, strlen(text));
            free(text);
        }
        json_decref(settings);
    }
    cd_file_unlock(lk);
    return rc;
}
