/* Archive entry checks and unpacking: one entry that would escape the pack folder refuses the
 * whole archive before anything is written; a single top folder is stripped; .tracking lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/path.h"
#include "manager/archive.h"

static void entry_names(void **state) {
    (void)state;
    const char *good[] = {"a", "a/b.c", "./a", "a/", "a/..b", "..a/b", "a/b..", "dir/./x"};
    const char *bad[] = {"", "/etc/passwd", "../x", "a/../../x", "a/..", "..", "a\\..\\..\\x", "\\x", "C:\\x", "c:/x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) assert_true(cd_archive_entry_is_safe(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_false(cd_archive_entry_is_safe(bad[i]));
    assert_false(cd_archive_entry_is_safe(NULL));
}

static void link_targets(void **state) {
    (void)state;
    assert_true(cd_archive_link_is_safe("a/link", "b"));
    assert_true(cd_archive_link_is_safe("a/link", "../b"));
    assert_true(cd_archive_link_is_safe("a/b/link", "../../c"));
    assert_false(cd_archive_link_is_safe("a/link", "../../b"));
    assert_false(cd_archive_link_is_safe("link", "../b"));
    assert_false(cd_archive_link_is_safe("link", "/etc/passwd"));
    assert_false(cd_archive_link_is_safe("a/link", "b/../../../c"));
    assert_false(cd_archive_link_is_safe("a/link", ""));
}

typedef struct {
    const char *name;
    const char *content; /* NULL: a directory */
    const char *symlink;
} ent;

static void write_tar(const char *path, const ent *ents, size_t n) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, ents[i].name);
        if (ents[i].symlink) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, ents[i].symlink);
            archive_entry_set_perm(e, 0777);
        } else if (ents[i].content) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, (la_int64_t)strlen(ents[i].content));
        } else {
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
        }
        archive_write_header(a, e);
        if (ents[i].content) archive_write_data(a, ents[i].content, strlen(ents[i].content));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static bool exists(const char *dir, const char *rel) {
    char *p = cd_path_join(dir, rel);
    struct stat st;
    bool r = lstat(p, &st) == 0;
    free(p);
    return r;
}

static void unpack(void **state) {
    (void)state;
    char root[] = "/tmp/cd-arch-XXXXXX";
    assert_non_null(mkdtemp(root));
    char *tgz = cd_path_join(root, "a.tar.gz"), *dest = cd_path_join(root, "dest");
    char err[256];
    char *files = NULL;

    /* GitHub-style: one top folder, stripped */
    const ent good[] = {{"pack-1.0/", NULL, NULL}, {"pack-1.0/a.c", "int x;", NULL}, {"pack-1.0/sub/b.txt", "b", NULL},
                        {"pack-1.0/sub/l", NULL, "b.txt"}};
    write_tar(tgz, good, 4);
    mkdir(dest, 0755);
    assert_int_equal(cd_archive_extract(tgz, dest, &files, err, sizeof err), 0);
    assert_true(exists(dest, "a.c"));
    assert_true(exists(dest, "sub/b.txt"));
    assert_true(exists(dest, "sub/l"));
    assert_false(exists(dest, "pack-1.0"));
    assert_string_equal(files, "a.c\nsub/b.txt\nsub/l\n");
    free(files);
    cd_path_remove_tree(dest);

    /* no common folder: kept as is */
    const ent flat[] = {{"a.c", "1", NULL}, {"dir/b.c", "2", NULL}};
    write_tar(tgz, flat, 2);
    mkdir(dest, 0755);
    assert_int_equal(cd_archive_extract(tgz, dest, NULL, err, sizeof err), 0);
    assert_true(exists(dest, "a.c"));
    assert_true(exists(dest, "dir/b.c"));
    cd_path_remove_tree(dest);

    /* one bad entry, last: nothing at all is written */
    const ent evil[] = {{"p/a.c", "1", NULL}, {"p/b.c", "2", NULL}, {"p/../../escaped.txt", "x", NULL}};
    write_tar(tgz, evil, 3);
    mkdir(dest, 0755);
    assert_int_equal(cd_archive_extract(tgz, dest, &files, err, sizeof err), -1);
    assert_non_null(strstr(err, "archive refused"));
    assert_non_null(strstr(err, "p/../../escaped.txt"));
    assert_false(exists(dest, "a.c"));
    assert_false(exists(dest, "p"));
    assert_false(exists(root, "escaped.txt"));

    const ent abs[] = {{"/tmp/cd-abs-escape", "x", NULL}};
    write_tar(tgz, abs, 1);
    assert_int_equal(cd_archive_extract(tgz, dest, NULL, err, sizeof err), -1);
    assert_int_equal(access("/tmp/cd-abs-escape", F_OK), -1);

    const ent link[] = {{"p/a.c", "1", NULL}, {"p/l", NULL, "../../../etc"}};
    write_tar(tgz, link, 2);
    assert_int_equal(cd_archive_extract(tgz, dest, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "symbolic link"));
    assert_false(exists(dest, "l"));

    /* not an archive */
    FILE *f = fopen(tgz, "w");
    fputs("plain text", f);
    fclose(f);
    assert_int_equal(cd_archive_extract(tgz, dest, NULL, err, sizeof err), -1);

    cd_path_remove_tree(root);
    free(tgz);
    free(dest);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(entry_names),
        cmocka_unit_test(link_targets),
        cmocka_unit_test(unpack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
