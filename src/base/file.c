#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"

int cd_file_fsync_dir(const char *dir) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -1;
    int rc = fsync(dfd);
    int e = errno;
    close(dfd);
    errno = e;
    return rc;
}

int cd_file_write_atomic(const char *path, const void *data, size_t len) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    cd_buf dir = CD_BUF_INIT, tmp = CD_BUF_INIT;
    if ((slash ? cd_buf_append(&dir, path, (size_t)(slash - path)) : cd_buf_append_str(&dir, ".")) < 0 ||
        cd_buf_printf(&tmp, "%s/.%.64s.tmp-XXXXXX", dir.data[0] ? dir.data : "/", base) < 0) {
        cd_buf_free(&dir);
        cd_buf_free(&tmp);
        errno = ENOMEM;
        return -1;
    }
    int err = 0;
    int fd = mkostemp(tmp.data, O_CLOEXEC);
    if (fd < 0) err = errno;
    const char *p = data;
    size_t left = len;
    while (!err && left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno != EINTR) err = errno;
            continue;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!err) { /* mkstemp makes the file 0600; these are ordinary files */
        mode_t um = umask(0);
        umask(um);
        if (fchmod(fd, 0666 & ~um) < 0 || fsync(fd) < 0) err = errno;
    }
    if (fd >= 0 && close(fd) < 0 && !err) err = errno;
    if (!err && rename(tmp.data, path) < 0) err = errno;
    if (err) {
        if (fd >= 0) unlink(tmp.data);
    } else if (cd_file_fsync_dir(dir.data[0] ? dir.data : "/") < 0) {
        err = errno;
    }
    cd_buf_free(&dir);
    cd_buf_free(&tmp);
    errno = err;
    return err ? -1 : 0;
}

int cd_file_lock_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    return fd;
}

void cd_file_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing releases the lock */
}
