/* What the launchers share (see launcher.h): the nonce that tags a spawn's own output and units,
 * and the check that a local pid is still the instance on its port. */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hub/launcher.h"

void cd_launcher_nonce(char out[CD_LAUNCHER_NONCE_LEN + 1]) {
    unsigned char raw[CD_LAUNCHER_NONCE_LEN / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, CD_LAUNCHER_NONCE_LEN + 1, raw, sizeof raw);
}

bool cd_launcher_cmdline_names_port(int pid, int port) {
    char path[64], buf[8192], want[16];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    snprintf(want, sizeof want, "%d", port);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    /* The arguments are NUL-separated: look for "--port" followed by the port. */
    for (char *a = buf; a < buf + n; a += strlen(a) + 1) {
        char *next = a + strlen(a) + 1;
        if (!strcmp(a, "--port") && next < buf + n && !strcmp(next, want)) return true;
    }
    return false;
}
