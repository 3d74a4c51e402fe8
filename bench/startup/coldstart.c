/* coldstart: time from exec of a server to its first 200 answer, and its resident memory.
 *
 *   coldstart [-p PORT] [-u PATH] [-t TIMEOUT_MS] [-s POLL_US] [-r RSS_AFTER_MS] [-l LOG] [-o BODY]
 *             -- CMD ARGS...
 *
 * Spawns CMD (in its own process group, stdout and stderr to LOG or /dev/null), then loops: connect
 * to 127.0.0.1:PORT, send "GET PATH HTTP/1.1" with Connection: close, read the whole response; on
 * "HTTP/1.x 200" it stops the clock, otherwise it sleeps POLL_US and tries again. The clock starts
 * just before posix_spawn and stops when the last byte of the response arrived.
 *
 * With -r, it then waits until RSS_AFTER_MS after the spawn and sums VmRSS (and Pss, when
 * /proc/PID/smaps_rollup exists) over every process in the child's process group (nginx: master and
 * workers). Finally SIGTERM to the child, up to 5 s for it to exit, then SIGKILL to the group.
 *
 * With -o, the body of that 200 response is written to BODY.
 *
 * Prints on stdout:  ready_us N            and with -r:  rss_kb N pss_kb N procs N
 * Exits 0 on success, 1 when the server exited or did not answer 200 in time, 2 on bad usage.
 * Built by bench/startup/run.sh with `cc -O2`; loopback only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static char buf[1 << 16]; /* the last response */
static const char *last_body;
static size_t last_body_len;

/* One attempt: returns the HTTP status (>0); 0 when the connect failed (nothing listens yet); -1 when
 * it connected but got no complete HTTP response. */
static int try_request(int port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return 0;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path,
                     port);
    if (n <= 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }

    /* Read the head, then Content-Length bytes of body (or to EOF when there is no length). */
    size_t len = 0;
    long body_start = -1, content_length = -1;
    last_body = NULL;
    last_body_len = 0;
    for (;;) {
        if (len == sizeof buf) break; /* big enough for what we look at */
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        if (body_start < 0) {
            char *end = memmem(buf, len, "\r\n\r\n", 4);
            if (!end) continue;
            body_start = end + 4 - buf;
            for (char *p = buf; p < end;) { /* find Content-Length among the header lines */
                char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
                if (!eol) eol = end;
                if (eol - p > 15 && strncasecmp(p, "content-length:", 15) == 0)
                    content_length = strtol(p + 15, NULL, 10);
                p = eol + 2;
            }
        }
        if (content_length >= 0 && (long)len - body_start >= content_length) break;
    }
    close(fd);
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) return -1;
    if (body_start < 0) return -1; /* incomplete head */
    if (content_length >= 0 && (long)len - body_start < content_length) return -1;
    last_body = buf + body_start;
    last_body_len = content_length >= 0 ? (size_t)content_length : len - (size_t)body_start;
    return atoi(buf + 9);
}

/* Sums VmRSS and Pss (kB) over all processes whose process group is pgid. */
static void group_memory(pid_t pgid, long *rss_kb, long *pss_kb, int *procs) {
    *rss_kb = 0;
    *pss_kb = 0;
    *procs = 0;
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0])) continue;
        char path[300], line[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        char stat[1024];
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = 0;
        char *rp = strrchr(stat, ')'); /* after "pid (comm)": state ppid pgrp ... */
        char state;
        int ppid, pgrp;
        if (!rp || sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) != 3 || pgrp != pgid) continue;
        if (state == 'Z') continue;
        ++*procs;
        snprintf(path, sizeof path, "/proc/%s/status", de->d_name);
        if ((f = fopen(path, "r"))) {
            while (fgets(line, sizeof line, f))
                if (!strncmp(line, "VmRSS:", 6)) *rss_kb += strtol(line + 6, NULL, 10);
            fclose(f);
        }
        snprintf(path, sizeof path, "/proc/%s/smaps_rollup", de->d_name);
        if ((f = fopen(path, "r"))) {
            while (fgets(line, sizeof line, f))
                if (!strncmp(line, "Pss:", 4)) *pss_kb += strtol(line + 4, NULL, 10);
            fclose(f);
        }
    }
    closedir(d);
}

static pid_t child = -1;

static void stop_child(void) {
    if (child <= 0) return;
    int status;
    kill(child, SIGTERM);
    double deadline = now_us() + 5e6;
    while (waitpid(child, &status, WNOHANG) == 0) {
        if (now_us() > deadline) {
            kill(-child, SIGKILL);
            waitpid(child, &status, 0);
            break;
        }
        sleep_us(2000);
    }
    kill(-child, SIGKILL); /* leftovers in the group (e.g. a worker that outlived its master) */
    child = -1;
}

static void on_signal(int sig) {
    if (child > 0) kill(-child, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(void) {
    fprintf(stderr, "usage: coldstart [-p PORT] [-u PATH] [-t TIMEOUT_MS] [-s POLL_US] [-r RSS_AFTER_MS] [-l LOG] "
                    "[-o BODY] -- CMD ARGS...\n");
    exit(2);
}

int main(int argc, char **argv) {
    int port = 8188, opt;
    const char *path = "/system_stats", *log = "/dev/null", *body_out = NULL;
    long timeout_ms = 10000, poll_us = 200, rss_after_ms = -1;
    while ((opt = getopt(argc, argv, "+p:u:t:s:r:l:o:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'u': path = optarg; break;
        case 't': timeout_ms = atol(optarg); break;
        case 's': poll_us = atol(optarg); break;
        case 'r': rss_after_ms = atol(optarg); break;
        case 'l': log = optarg; break;
        case 'o': body_out = optarg; break;
        default: usage();
        }
    }
    if (optind >= argc || port <= 0 || port > 65535 || timeout_ms <= 0 || poll_us < 0) usage();

    /* Nothing may listen on the port before the server starts, or we would time someone else. */
    if (try_request(port, path) != 0) {
        fprintf(stderr, "coldstart: something already answers on 127.0.0.1:%d\n", port);
        return 1;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);

    double t0 = now_us();
    int err = posix_spawn(&child, argv[optind], &fa, &attr, argv + optind, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (err) {
        fprintf(stderr, "coldstart: cannot run %s: %s\n", argv[optind], strerror(err));
        child = -1;
        return 1;
    }

    double deadline = t0 + (double)timeout_ms * 1e3, ready = -1;
    int last_status = 0;
    for (;;) {
        int st = try_request(port, path);
        double t = now_us();
        if (st == 200) {
            ready = t;
            break;
        }
        if (st > 0) last_status = st;
        int ws;
        if (waitpid(child, &ws, WNOHANG) == child) {
            fprintf(stderr, "coldstart: %s exited (%s %d) before answering 200\n", argv[optind],
                    WIFEXITED(ws) ? "status" : "signal", WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
            kill(-child, SIGKILL);
            child = -1;
            return 1;
        }
        if (t > deadline) {
            fprintf(stderr, "coldstart: no 200 on 127.0.0.1:%d%s within %ld ms (last status %d)\n", port, path,
                    timeout_ms, last_status);
            stop_child();
            return 1;
        }
        if (poll_us > 0) sleep_us(poll_us);
    }
    printf("ready_us %.0f\n", ready - t0);
    fflush(stdout);
    if (body_out) {
        FILE *f = fopen(body_out, "wb");
        if (!f || fwrite(last_body, 1, last_body_len, f) != last_body_len || fclose(f) != 0) {
            fprintf(stderr, "coldstart: cannot write %s\n", body_out);
            stop_child();
            return 1;
        }
    }

    if (rss_after_ms >= 0) {
        double at = t0 + (double)rss_after_ms * 1e3, t = now_us();
        if (at > t) sleep_us((long)(at - t));
        int ws;
        if (waitpid(child, &ws, WNOHANG) == child) {
            fprintf(stderr, "coldstart: %s exited before the memory reading\n", argv[optind]);
            kill(-child, SIGKILL);
            child = -1;
            return 1;
        }
        long rss, pss;
        int procs;
        group_memory(child, &rss, &pss, &procs);
        printf("rss_kb %ld pss_kb %ld procs %d\n", rss, pss, procs);
        fflush(stdout);
    }
    stop_child();
    return 0;
}
