#include "manager/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

bool cd_archive_entry_is_safe(const char *name) {
    if (!name || !*name) return false;
    if (name[0] == '/' || name[0] == '\\') return false;
    /* C:\ or C:/ : a drive letter is absolute on the system that wrote it */
    if (((name[0] | 32) >= 'a' && (name[0] | 32) <= 'z') && name[1] == ':') return false;
    const char *p = name;
    while (*p) {
        const char *q = p;
        while (*q && *q != '/' && *q != '\\') q++;
        if (q - p == 2 && p[0] == '.' && p[1] == '.') return false;
        p = *q ? q + 1 : q;
    }
    return true;
}

bool cd_archive_link_is_safe(const char *name, const char *target) {
    if (!cd_archive_entry_is_safe(name) || !target || !*target) return false;
    if (target[0] == '/' || target[0] == '\\') return false;
    /* Walk the link's folder, then the target, tracking the depth below the root. */
    int depth = 0;
    const char *last = NULL;
    for (const char *s = name; *s; s++)
        if (*s == '/' || *s == '\\') last = s;
    char *buf = malloc(strlen(name) + strlen(target) + 2);
    if (!buf) return false;
    buf[0] = 0;
    if (last) {
        memcpy(buf, name, (size_t)(last - name));
        buf[last - name] = 0;
        strcat(buf, "/");
    }
    strcat(buf, target);
    bool ok = true;
    const char *p = buf;
    while (*p) {
        const char *q = p;
        while (*q && *q != '/' && *q != '\\') q++;
        size_t n = (size_t)(q - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0) {
                ok = false;
                break;
            }
        } else if (n && !(n == 1 && p[0] == '.')) {
            depth++;
        }
        p = *q ? q + 1 : q;
    }
    free(buf);
    return ok;
}

static struct archive *open_reader(const char *path, char *err, size_t errlen) {
    struct archive *a = archive_read_new();
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
        snprintf(err, errlen, "not a readable archive: %s", archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Skips "./" prefixes. */
static const char *clean(const char *name) {
    while (name[0] == '.' && name[1] == '/') name += 2;
    return name;
}

int cd_archive_extract(const char *path, const char *dest, char **files, char *err, size_t errlen) {
    if (files) *files = NULL;
    /* Pass 1: check every entry and find a common top-level folder. */
    struct archive *a = open_reader(path, err, errlen);
    if (!a) return -1;
    struct archive_entry *e;
    char *top = NULL;
    bool common = true;
    size_t count = 0;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (!name || !cd_archive_entry_is_safe(name)) {
            snprintf(err, errlen, "archive refused: entry '%s' would be written outside the pack folder",
                     name ? name : "(no name)");
            goto refuse;
        }
        const char *hl = archive_entry_hardlink(e);
        if (hl && !cd_archive_entry_is_safe(hl)) {
            snprintf(err, errlen, "archive refused: hard link '%s' points outside the pack folder", name);
            goto refuse;
        }
        if (archive_entry_filetype(e) == AE_IFLNK && !cd_archive_link_is_safe(name, archive_entry_symlink(e))) {
            snprintf(err, errlen, "archive refused: symbolic link '%s' points outside the pack folder", name);
            goto refuse;
        }
        const char *c = clean(name);
        if (!*c) continue;
        count++;
        const char *slash = strchr(c, '/');
        size_t tl = slash ? (size_t)(slash - c) : strlen(c);
        bool is_dir_entry = archive_entry_filetype(e) == AE_IFDIR;
        if (!slash && !is_dir_entry) common = false; /* a file at the top */
        if (!top) {
            top = strndup(c, tl);
        } else if (strlen(top) != tl || strncmp(top, c, tl)) {
            common = false;
        }
        archive_read_data_skip(a);
    }
    if (r != ARCHIVE_EOF) {
        snprintf(err, errlen, "broken archive: %s", archive_error_string(a));
        goto refuse;
    }
    archive_read_free(a);
    if (!count) {
        free(top);
        snprintf(err, errlen, "the archive is empty");
        return -1;
    }
    size_t strip = common && top ? strlen(top) + 1 : 0;

    /* Pass 2: write. */
    a = open_reader(path, err, errlen);
    if (!a) {
        free(top);
        return -1;
    }
    struct archive *w = archive_write_disk_new();
    archive_write_disk_set_options(w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    /* (not SECURE_NOABSOLUTEPATHS: every entry was checked above and is written under dest,
     * an absolute path) */
    cd_buf list = CD_BUF_INIT;
    int ret = 0;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *c = clean(archive_entry_pathname(e));
        if (strlen(c) <= strip) {
            archive_read_data_skip(a);
            continue;
        }
        /* rel is copied: setting the entry's path below frees the text it points into */
        char *rel = strdup(c + strip);
        if (!rel) {
            snprintf(err, errlen, "out of memory");
            ret = -1;
            break;
        }
        cd_buf full = CD_BUF_INIT;
        cd_buf_printf(&full, "%s/%s", dest, rel);
        archive_entry_set_pathname(e, full.data);
        const char *hl = archive_entry_hardlink(e);
        if (hl) {
            const char *hc = clean(hl);
            cd_buf hfull = CD_BUF_INIT;
            cd_buf_printf(&hfull, "%s/%s", dest, strlen(hc) > strip ? hc + strip : hc);
            archive_entry_set_hardlink(e, hfull.data);
            cd_buf_free(&hfull);
        }
        cd_buf_free(&full);
        /* Owner and odd bits are not restored: the files belong to the server's user. */
        archive_entry_set_perm(e, archive_entry_perm(e) & 0755);
        if (archive_write_header(w, e) != ARCHIVE_OK) {
            snprintf(err, errlen, "cannot unpack %s: %s", rel, archive_error_string(w));
            free(rel);
            ret = -1;
            break;
        }
        const void *buf;
        size_t size;
        la_int64_t off;
        int dr;
        while ((dr = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK) {
            if (archive_write_data_block(w, buf, size, off) != ARCHIVE_OK) {
                dr = ARCHIVE_FATAL;
                break;
            }
        }
        if (dr != ARCHIVE_EOF) {
            snprintf(err, errlen, "cannot unpack %s: %s", rel, archive_error_string(a));
            free(rel);
            ret = -1;
            break;
        }
        archive_write_finish_entry(w);
        if (archive_entry_filetype(e) != AE_IFDIR) cd_buf_printf(&list, "%s\n", rel);
        free(rel);
    }
    if (ret == 0 && r != ARCHIVE_EOF) {
        snprintf(err, errlen, "broken archive: %s", archive_error_string(a));
        ret = -1;
    }
    archive_write_close(w);
    archive_write_free(w);
    archive_read_free(a);
    free(top);
    if (ret == 0 && files) *files = list.data ? cd_buf_take(&list) : strdup("");
    cd_buf_free(&list);
    return ret;
refuse:
    archive_read_free(a);
    free(top);
    return -1;
}
