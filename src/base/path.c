#include "base/path.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool cd_path_rel_is_safe(const char *rel) {
    if (rel[0] == '/') return false;
    if (strchr(rel, '\\')) return false;
    const char *p = rel;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return false;
        if (!slash) break;
        p = slash + 1;
    }
    return true;
}

char *cd_path_join(const char *dir, const char *rel) {
    size_t ld = strlen(dir), lr = strlen(rel);
    while (ld > 1 && dir[ld - 1] == '/') ld--;
    char *out = malloc(ld + 1 + lr + 1);
    if (!out) return NULL;
    memcpy(out, dir, ld);
    size_t o = ld;
    if (lr) out[o++] = '/';
    memcpy(out + o, rel, lr);
    out[o + lr] = '\0';
    return out;
}

/* Resolves the longest existing prefix of path and returns it (caller frees), or NULL. */
static char *resolve_existing_prefix(const char *path) {
    char *work = strdup(path);
    if (!work) return NULL;
    for (;;) {
        char *real = realpath(work, NULL);
        if (real) {
            free(work);
            return real;
        }
        char *slash = strrchr(work, '/');
        if (!slash || slash == work) {
            free(work);
            return NULL;
        }
        *slash = '\0';
    }
}

static bool inside(const char *root, const char *candidate) {
    size_t n = strlen(root);
    if (strncmp(candidate, root, n) != 0) return false;
    return candidate[n] == '\0' || candidate[n] == '/' || (n == 1 && root[0] == '/');
}

char *cd_path_join_confined(const char *dir, const char *rel) {
    if (!cd_path_rel_is_safe(rel)) return NULL;
    char *root = realpath(dir, NULL);
    if (!root) return NULL;
    char *joined = cd_path_join(dir, rel);
    char *resolved = joined ? resolve_existing_prefix(joined) : NULL;
    bool ok = resolved && inside(root, resolved);
    free(root);
    free(resolved);
    if (!ok) {
        free(joined);
        return NULL;
    }
    return joined;
}

char *cd_path_absolute(const char *path) {
    if (path[0] == '/') return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    return cd_path_join(cwd, path);
}

int cd_path_mkdirs(const char *path, int mode) {
    char *work = strdup(path);
    if (!work) return -1;
    for (char *p = work + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(work, (mode_t)mode) < 0 && errno != EEXIST) {
            free(work);
            return -1;
        }
        *p = '/';
    }
    int rc = mkdir(work, (mode_t)mode);
    free(work);
    if (rc < 0 && errno != EEXIST) return -1;
    return cd_path_is_dir(path) ? 0 : -1;
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int cd_path_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -1;
    return nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS);
}

bool cd_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
