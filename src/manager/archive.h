/* Unpacking node-pack archives (libarchive: zip, tar.gz, ...). Every entry is checked before
 * anything is written: one entry that would land outside the target folder (an absolute path,
 * a ".." component, a link pointing out) refuses the whole archive. */
#ifndef CD_MANAGER_ARCHIVE_H
#define CD_MANAGER_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>

/* True when an entry name stays inside the folder it is unpacked into: relative, no ".."
 * component (either separator), no NUL. "./a" and "a/" are fine. */
bool cd_archive_entry_is_safe(const char *name);
/* True when a symbolic link stored at `name` with `target` stays inside the folder. */
bool cd_archive_link_is_safe(const char *name, const char *target);

/* Unpacks the archive at path into dest (which must exist). When every entry sits under one
 * top-level folder (GitHub's archives), that folder is stripped. On success *files (may be
 * NULL) gets the unpacked relative paths, one per line (caller frees): ComfyUI-Manager's
 * .tracking content. Returns 0 or -1 with a message; on a refused archive nothing is written. */
int cd_archive_extract(const char *path, const char *dest, char **files, char *err, size_t errlen);

#endif
