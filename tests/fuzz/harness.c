#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "server/instance.h"

static struct {
    int started;
    uv_loop_t loop;
    cd_serve_options opts;
    cd_instance inst;
    int port;
} h;

static void start_once(void) {
    if (h.started) return;
    h.started = 1;
    if (sodium_init() < 0) abort();
    cd_log_setup(CD_LOG_ERROR, false);
    char base[] = "/tmp/cd-fuzz-XXXXXX";
    if (!mkdtemp(base)) abort();
    static char *argv[] = {"comfyd", "serve", "--port", "0", "--dont-print-server", "--header-timeout", "1",
                           "--max-upload-size", "1", "--base-directory", NULL, NULL};
    argv[10] = strdup(base);
    char err[256];
    if (cd_serve_options_parse(&h.opts, 11, argv, 2, err, sizeof err) != 0) abort();
    h.opts.handle_signals = false;
    uv_loop_init(&h.loop);
    if (cd_instance_start(&h.inst, &h.opts, &h.loop, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz harness: %s\n", err);
        abort();
    }
    h.port = cd_instance_port(&h.inst);
}

static void send_all(uv_loop_t *loop, int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        uv_run(loop, UV_RUN_NOWAIT);
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        if (poll(&pf, 1, 1) <= 0) continue;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) return; /* the server hung up early: fine */
        p += n;
        len -= (size_t)n;
    }
}

void fuzz_exchange(const char *prefix, const uint8_t *data, size_t size) {
    start_once();
    fuzz_exchange_with(&h.loop, h.port, prefix, data, size);
}

void fuzz_exchange_with(uv_loop_t *loop, int port, const char *prefix, const uint8_t *data, size_t size) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc != 0 && errno == EINTR) { /* libFuzzer's timer signal: the connect goes on */
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        while (poll(&pf, 1, 1000) < 0 && errno == EINTR) {}
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        rc = soerr ? -1 : 0;
        errno = soerr;
    }
    if (rc != 0) {
        perror("fuzz harness: connect");
        abort();
    }
    if (prefix) send_all(loop, fd, prefix, strlen(prefix));
    send_all(loop, fd, data, size);
    shutdown(fd, SHUT_WR);
    /* Read until the server closes; every server must close a half-closed connection within
     * its header timeout (1 s here), so a hang is a bug the fuzzer reports as a timeout. */
    for (;;) {
        uv_run(loop, UV_RUN_NOWAIT);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 1) > 0) {
            char buf[65536];
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
        }
    }
    /* Reset rather than close politely: the server closed first, and a polite close would leave
     * its side in TIME_WAIT, using up the ephemeral ports after some ten thousand inputs. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    uv_run(loop, UV_RUN_NOWAIT);
}
