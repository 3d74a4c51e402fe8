/* The local launcher: instances are child processes of the hub. A child's exit is seen at once
 * through libuv's exit callback; a process adopted after a hub restart is no longer our child,
 * so it is watched through a pidfd, which becomes readable when it exits (and which also makes
 * signalling it safe against a recycled pid). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "base/log.h"
#include "hub/launcher.h"

typedef struct {
    cd_proc base; /* first: a cd_proc * is one of these */
    union {
        uv_handle_t handle;
        uv_process_t process; /* spawned */
        uv_poll_t poll;       /* adopted: watches pidfd */
    } h;
    bool adopted;
    int pidfd; /* adopted only */
    cd_proc_exit_cb cb;
    void *user;
} local_proc;

static void free_on_close(uv_handle_t *h) {
    local_proc *p = h->data;
    if (p->pidfd >= 0) close(p->pidfd);
    free(p);
}

static void finish(local_proc *p, int64_t status, int sig) {
    cd_proc_exit_cb cb = p->cb;
    p->cb = NULL;
    if (cb) cb(&p->base, status, sig, p->user);
    uv_close(&p->h.handle, free_on_close);
}

static void on_child_exit(uv_process_t *proc, int64_t status, int sig) { finish(proc->data, status, sig); }

static void on_pidfd(uv_poll_t *poll, int status, int events) {
    uv_poll_stop(poll);
    finish(poll->data, -1, -1);
}

static int local_spawn(cd_launcher *l, const cd_launch_spec *spec, cd_proc_exit_cb cb, void *user, cd_proc **out,
                       char *err, size_t errlen) {
    int fd = open(spec->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the instance log %s: %s", spec->log_path, strerror(errno));
        return -1;
    }
    local_proc *p = calloc(1, sizeof *p);
    if (!p) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->base.launcher = l;
    p->pidfd = -1;
    p->cb = cb;
    p->user = user;
    p->h.process.data = p;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = fd},
        {.flags = UV_INHERIT_FD, .data.fd = fd},
    };
    uv_process_options_t o = {
        .exit_cb = on_child_exit,
        .file = spec->argv[0],
        .args = spec->argv,
        .cwd = spec->cwd,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(l->loop, &p->h.process, &o);
    close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start '%s': %s", spec->argv[0], uv_strerror(rc));
        /* uv_spawn initialised the handle even when it failed: it must be closed. */
        p->cb = NULL;
        uv_close(&p->h.handle, free_on_close);
        return -1;
    }
    p->base.pid = p->h.process.pid;
    *out = &p->base;
    return 0;
}

static int local_adopt(cd_launcher *l, int pid, int port, cd_proc_exit_cb cb, void *user, cd_proc **out) {
    int fd = pidfd_open(pid, 0);
    if (fd < 0) return -1;
    local_proc *p = calloc(1, sizeof *p);
    if (!p) {
        close(fd);
        return -1;
    }
    p->base.launcher = l;
    p->adopted = true;
    p->base.pid = pid;
    p->pidfd = fd;
    p->cb = cb;
    p->user = user;
    p->h.poll.data = p;
    if (uv_poll_init(l->loop, &p->h.poll, fd) < 0) {
        close(fd);
        free(p);
        return -1;
    }
    uv_poll_start(&p->h.poll, UV_READABLE, on_pidfd);
    *out = &p->base;
    return 0;
}

static int local_is_instance(cd_launcher *l, int pid, int port) { return cd_launcher_cmdline_names_port(pid, port); }

static int local_kill(cd_proc *base, int sig) {
    local_proc *p = (local_proc *)base;
    if (p->adopted) return pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
    return uv_process_kill(&p->h.process, sig);
}

static void local_release(cd_proc *base) {
    local_proc *p = (local_proc *)base;
    p->cb = NULL;
    if (p->adopted) uv_poll_stop(&p->h.poll);
    uv_close(&p->h.handle, free_on_close);
}

static const cd_launcher_ops local_ops = {
    .name = "local",
    .spawn = local_spawn,
    .adopt = local_adopt,
    .is_instance = local_is_instance,
    .kill = local_kill,
    .release = local_release,
};

void cd_launcher_local_init(cd_launcher *l, uv_loop_t *loop) {
    l->ops = &local_ops;
    l->loop = loop;
}
