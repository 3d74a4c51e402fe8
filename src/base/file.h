/* Files that must survive a crash, and locks between threads and processes. */
#ifndef CD_BASE_FILE_H
#define CD_BASE_FILE_H

#include <stddef.h>

/* Replaces path with data atomically: a hidden temporary file in the same directory, written,
 * fsynced, renamed over path, then the directory fsynced. A crash leaves the old content or
 * the new, never a mix. The file gets the usual mode (0666 less the umask). Returns 0, or -1
 * with errno set (the temporary file is removed). */
int cd_file_write_atomic(const char *path, const void *data, size_t len);

/* fsync of a directory, after a rename in it. Returns 0 or -1 with errno. */
int cd_file_fsync_dir(const char *dir);

/* An exclusive flock() on a directory (waits for it). Returns the fd to give to
 * cd_file_unlock, or -1 with errno. */
int cd_file_lock_dir(const char *dir);
void cd_file_unlock(int fd);

#endif
