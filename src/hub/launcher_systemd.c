/* The systemd launcher (see launcher.h): each instance on the hub's machine is a transient unit
 * of the user's systemd manager, so that it has a memory and CPU limit of its own and its whole
 * process tree is one cgroup.
 *
 * A start runs `systemd-run --user --unit=comfyd-PORT-NONCE --collect --wait ... -- COMMAND…`
 * as a child of the hub. --wait keeps that client until the unit is gone, so its exit is the
 * instance's exit; it then prints how the main process ended ("Main processes terminated with:
 * code=killed/status=KILL"), which gives the exit code or signal (its own exit status says only
 * 255 for a signal). The unit writes its output to the log file itself (StandardOutput=append:),
 * so nothing of the instance passes through the hub: a hub that dies leaves its units running,
 * and adopts them when it starts again. The client's own lines come through a pipe and go to the
 * log too, so a unit that cannot start (no user manager, a bad limit) says why there.
 *
 * The pid the hub records is the unit's MainPID, asked with `systemctl --user show` once the
 * client says the unit runs. Signals go to the whole unit with `systemctl --user kill`; an
 * adopted instance is found in its unit by /proc/PID/cgroup and watched through a pidfd, like
 * the local launcher's. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "base/log.h"
#include "hub/launcher.h"

extern char **environ;

_Static_assert(offsetof(cd_launcher_systemd, base) == 0, "a cd_launcher * is the systemd launcher");

/* ---- argv ---- */

typedef struct {
    char **v;
    size_t n, cap;
    bool failed;
} argv_b;

static void push(argv_b *a, const char *s) {
    if (a->failed) return;
    if (a->n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        char **grown = realloc(a->v, cap * sizeof *grown);
        if (!grown) {
            a->failed = true;
            return;
        }
        a->v = grown;
        a->cap = cap;
    }
    if (!(a->v[a->n] = strdup(s))) a->failed = true;
    else a->v[++a->n] = NULL;
}

/* prefix and value as one word, e.g. "--unit=" and the unit's name */
static void push2(argv_b *a, const char *prefix, const char *value) {
    size_t len = strlen(prefix) + strlen(value) + 1;
    char *s = malloc(len);
    if (!s) {
        a->failed = true;
        return;
    }
    snprintf(s, len, "%s%s", prefix, value);
    push(a, s);
    free(s);
}

static void argv_free(argv_b *a) {
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    *a = (argv_b){0};
}

/* Variables that describe the hub's own place under a service manager, not the instance's. */
static bool env_passed(const char *entry, size_t name_len) {
    static const char *const own[] = {"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "INVOCATION_ID",
                                      "JOURNAL_STREAM", "MANAGERPID", "SYSTEMD_EXEC_PID", "WATCHDOG_PID",
                                      "WATCHDOG_USEC", NULL};
    if (!name_len || (entry[0] >= '0' && entry[0] <= '9')) return false;
    for (size_t i = 0; i < name_len; i++) {
        char c = entry[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
    }
    for (const char *const *o = own; *o; o++)
        if (strlen(*o) == name_len && !strncmp(*o, entry, name_len)) return false;
    return true;
}

/* ---- helper commands (systemctl) ---- */

/* Runs argv with stdout and stderr on one pipe, the read end in *out. Returns 0 or a libuv error;
 * either way *out is initialised and must be closed, and so is *proc when *proc_open says so
 * (uv_spawn sets up the handle even when it fails). */
static int spawn_piped(uv_loop_t *loop, uv_process_t *proc, uv_exit_cb on_exit, uv_pipe_t *out, char **argv,
                       unsigned flags, bool *proc_open) {
    int fds[2];
    uv_pipe_init(loop, out, 0);
    *proc_open = false;
    if (pipe2(fds, O_CLOEXEC) < 0) return uv_translate_sys_error(errno);
    *proc_open = true;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
        {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
    };
    uv_process_options_t o = {.exit_cb = on_exit, .file = argv[0], .args = argv, .flags = flags, .stdio_count = 3,
                              .stdio = stdio};
    int rc = uv_spawn(loop, proc, &o);
    close(fds[1]);
    if (rc == 0 && uv_pipe_open(out, fds[0]) == 0) return 0;
    if (rc == 0) uv_process_kill(proc, SIGKILL); /* cannot happen short of running out of memory */
    close(fds[0]);
    return rc < 0 ? rc : UV_ENOMEM;
}

typedef struct sd_proc sd_proc;
/* status: the command's exit status (-SIG when killed); output: the start of what it printed. */
typedef void (*ctl_cb)(sd_proc *p, int64_t status, const char *output, int arg);

typedef struct {
    cd_launcher_systemd *l;
    sd_proc *p;
    uv_process_t process;
    uv_pipe_t out;
    uv_timer_t deadline; /* a manager that does not answer must not hold a stop forever */
    char text[512];
    size_t len;
    int64_t status;
    int open;
    ctl_cb cb;
    int arg;
} ctl;

static void proc_unref(sd_proc *p);

static void ctl_closed(uv_handle_t *h) {
    ctl *c = h->data;
    if (--c->open > 0) return;
    c->text[c->len] = '\0';
    while (c->len && (c->text[c->len - 1] == '\n' || c->text[c->len - 1] == '\r')) c->text[--c->len] = '\0';
    if (c->cb) c->cb(c->p, c->status, c->text, c->arg);
    c->l->running--;
    proc_unref(c->p);
    free(c);
}

static void ctl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    ctl *c = h->data;
    /* what does not fit is read into the spare byte and dropped: the start says it */
    buf->base = c->len < sizeof c->text - 1 ? c->text + c->len : c->text + sizeof c->text - 1;
    buf->len = c->len < sizeof c->text - 1 ? sizeof c->text - 1 - c->len : 1;
}

static void ctl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    ctl *c = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, ctl_closed);
        return;
    }
    if (c->len < sizeof c->text - 1) c->len += (size_t)n;
}

static void ctl_exit(uv_process_t *proc, int64_t status, int sig) {
    ctl *c = proc->data;
    c->status = sig ? -sig : status;
    uv_close((uv_handle_t *)proc, ctl_closed);
    uv_close((uv_handle_t *)&c->deadline, ctl_closed);
}

static void ctl_overdue(uv_timer_t *t) {
    ctl *c = t->data;
    uv_process_kill(&c->process, SIGKILL);
}

/* Runs `systemctl --user ARGS… UNIT` for p (held until cb has run). Returns 0, or -1 when it
 * could not be started (cb then does not run). */
static int run_ctl(sd_proc *p, cd_launcher_systemd *l, const char *const *args, const char *unit, ctl_cb cb, int arg);

/* ---- processes ---- */

struct sd_proc {
    cd_proc base;
    int port;
    char unit[96];  /* "comfyd-PORT-NONCE.service"; "" for an adopted process in no unit of ours */
    bool adopted;
    uv_process_t client; /* started: systemd-run --wait */
    uv_pipe_t out;       /* started: the client's stdout and stderr */
    uv_timer_t retry;    /* started: asks for MainPID again */
    int tries;
    uv_poll_t poll;      /* adopted: its pidfd */
    int pidfd;
    int log_fd;
    char line[512]; /* the client's line as it arrives */
    size_t line_len;
    bool main_known; /* "Main processes terminated with" was read */
    int64_t main_status;
    int main_signal;
    int64_t client_status;
    int client_signal;
    bool client_ended, out_ended;
    bool done; /* the exit was announced or the proc released: cb never runs again */
    int refs;  /* open handles and helpers under way */
    cd_proc_exit_cb cb;
    void *user;
};

static cd_launcher_systemd *L(sd_proc *p) { return (cd_launcher_systemd *)p->base.launcher; }

static void proc_unref(sd_proc *p) {
    if (--p->refs > 0) return;
    if (p->log_fd >= 0) close(p->log_fd);
    if (p->pidfd >= 0) close(p->pidfd);
    free(p);
}

static void proc_closed(uv_handle_t *h) { proc_unref(h->data); }

static void close_once(sd_proc *p, uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, proc_closed);
}

/* Closes what p still has open; p is freed once the last handle and helper are done. */
static void close_all(sd_proc *p) {
    if (p->adopted) {
        close_once(p, (uv_handle_t *)&p->poll);
        return;
    }
    close_once(p, (uv_handle_t *)&p->client);
    close_once(p, (uv_handle_t *)&p->out);
    close_once(p, (uv_handle_t *)&p->retry);
}

static void announce(sd_proc *p, int64_t status, int sig) {
    if (p->done) return;
    p->done = true;
    cd_proc_exit_cb cb = p->cb;
    p->cb = NULL;
    if (cb) cb(&p->base, status, sig, p->user);
}

static void to_log(sd_proc *p, const char *data, size_t n) {
    if (p->log_fd >= 0 && n && write(p->log_fd, data, n) < 0) {
        /* a full disk loses log lines, never the instance */
    }
}

static int signal_of(const char *name, size_t len) {
    for (int s = 1; s < NSIG; s++) {
        const char *abbrev = sigabbrev_np(s);
        if (abbrev && strlen(abbrev) == len && !strncmp(abbrev, name, len)) return s;
    }
    return -1;
}

/* "code=exited/status=3", "code=exited/status=200/CHDIR", "code=killed/status=TERM",
 * "code=dumped/status=SEGV" (systemd-run's words for how the main process ended). */
static void take_termination(sd_proc *p, const char *what) {
    const char *code = strstr(what, "code="), *status = strstr(what, "/status=");
    if (!code || !status) return;
    code += 5;
    status += 8;
    bool exited = !strncmp(code, "exited", 6);
    size_t digits = strspn(status, "0123456789");
    p->main_known = true;
    p->main_status = -1;
    p->main_signal = -1;
    if (exited && digits) p->main_status = strtol(status, NULL, 10);
    else if (!exited && digits) p->main_signal = (int)strtol(status, NULL, 10);
    else if (!exited) p->main_signal = signal_of(status, strcspn(status, "/ \r"));
}

static void ask_main_pid(sd_proc *p);

/* systemd's own exit statuses for a unit that failed before its command ran (systemd.exec(5)),
 * the ones an operator meets: the log's last line says what went wrong, not only a number. */
static const char *step_failed(int64_t status) {
    switch (status) {
    case 200: return "CHDIR: systemd could not enter the working directory (COMFYUI_REPO_PATH)";
    case 203: return "EXEC: systemd could not execute the command";
    case 204: return "MEMORY: systemd ran out of memory starting it";
    case 209: return "STDOUT: systemd could not open the log file for its output";
    case 211: return "STDERR: systemd could not open the log file for its errors";
    default: return NULL;
    }
}

static void take_line(sd_proc *p, const char *line, size_t len) {
    static const char running[] = "Running as unit: ", ended[] = "Main processes terminated with: ",
                      runtime[] = "Service runtime: ";
    char text[sizeof p->line];
    snprintf(text, sizeof text, "%.*s", (int)len, line);
    if (!strncmp(text, running, sizeof running - 1)) ask_main_pid(p);
    /* how long it ran says nothing about why it stopped: the line before is the log's last */
    if (!strncmp(text, runtime, sizeof runtime - 1)) return;
    to_log(p, line, len);
    to_log(p, "\n", 1);
    if (!strncmp(text, ended, sizeof ended - 1)) {
        take_termination(p, text + sizeof ended - 1);
        const char *step = p->main_status >= 200 ? step_failed(p->main_status) : NULL;
        char note[160];
        if (step) to_log(p, note, (size_t)snprintf(note, sizeof note, "exit status %lld is systemd's %s\n",
                                                   (long long)p->main_status, step));
    }
}

static void out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char scratch[4096]; /* read and used at once: the loop is single-threaded */
    buf->base = scratch;
    buf->len = sizeof scratch;
}

static void maybe_ended(sd_proc *p) {
    if (!p->client_ended || !p->out_ended) return;
    /* the client's status says 255 for any signal: its last words say which */
    if (p->main_known) announce(p, p->main_status, p->main_signal > 0 ? p->main_signal : 0);
    else announce(p, p->client_signal ? -1 : p->client_status, p->client_signal);
    close_all(p);
}

static void out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    sd_proc *p = s->data;
    if (n < 0) {
        if (p->line_len) take_line(p, p->line, p->line_len);
        p->line_len = 0;
        p->out_ended = true;
        close_once(p, (uv_handle_t *)s);
        maybe_ended(p);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf->base[i] == '\n' || p->line_len == sizeof p->line - 1) {
            take_line(p, p->line, p->line_len);
            p->line_len = 0;
            if (buf->base[i] == '\n') continue;
        }
        p->line[p->line_len++] = buf->base[i];
    }
}

static void client_exit(uv_process_t *proc, int64_t status, int sig) {
    sd_proc *p = proc->data;
    p->client_ended = true;
    p->client_status = status;
    p->client_signal = sig;
    close_once(p, (uv_handle_t *)proc);
    maybe_ended(p);
}

/* ---- MainPID ---- */

static void on_retry(uv_timer_t *t) { ask_main_pid(t->data); }

static void main_pid_known(sd_proc *p, int64_t status, const char *output, int arg) {
    if (p->done || p->base.pid) return;
    long pid = status == 0 ? strtol(output, NULL, 10) : 0;
    if (pid > 0) {
        p->base.pid = (int)pid;
        return;
    }
    /* not started yet, or the manager is slow: again soon, for ten seconds */
    if (!p->client_ended && ++p->tries < 40) uv_timer_start(&p->retry, on_retry, 250, 0);
    else cd_warn("hub: cannot learn the pid of unit %s (%s)", p->unit, output[0] ? output : "MainPID is 0");
}

static void ask_main_pid(sd_proc *p) {
    static const char *const args[] = {"show", "-p", "MainPID", "--value", NULL};
    if (p->done || p->base.pid || uv_is_active((uv_handle_t *)&p->retry)) return;
    if (run_ctl(p, L(p), args, p->unit, main_pid_known, 0) < 0) cd_warn("hub: cannot start systemctl");
}

/* ---- the operations ---- */

static sd_proc *proc_new(cd_launcher *l, int port, cd_proc_exit_cb cb, void *user) {
    sd_proc *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base.launcher = l;
    p->port = port;
    p->log_fd = p->pidfd = -1;
    p->cb = cb;
    p->user = user;
    p->client.data = p->out.data = p->retry.data = p->poll.data = p;
    return p;
}

static int sd_spawn(cd_launcher *base, const cd_launch_spec *spec, cd_proc_exit_cb cb, void *user, cd_proc **out,
                    char *err, size_t errlen) {
    cd_launcher_systemd *l = (cd_launcher_systemd *)base;
    int fd = open(spec->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the instance log %s: %s", spec->log_path, strerror(errno));
        return -1;
    }
    sd_proc *p = proc_new(base, spec->port, cb, user);
    if (!p) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->log_fd = fd;
    char nonce[CD_LAUNCHER_NONCE_LEN + 1];
    cd_launcher_nonce(nonce);
    snprintf(p->unit, sizeof p->unit, "comfyd-%d-%s.service", spec->port, nonce);

    argv_b a = {0};
    push(&a, "systemd-run");
    push(&a, "--user");
    push2(&a, "--unit=", p->unit);
    push(&a, "--collect"); /* a failed unit is unloaded too: its name is never reused anyway */
    push(&a, "--wait");
    push2(&a, "--property=StandardOutput=append:", spec->log_path);
    push2(&a, "--property=StandardError=append:", spec->log_path);
    if (l->memory_max[0]) push2(&a, "--property=MemoryMax=", l->memory_max);
    if (l->cpu_quota[0]) push2(&a, "--property=CPUQuota=", l->cpu_quota);
    if (spec->cwd && spec->cwd[0]) push2(&a, "--working-directory=", spec->cwd);
    /* The instance sees the hub's environment, as a child of the hub would; by name only, so
     * that no value (a password) shows in the client's command line. */
    for (char **e = environ; *e; e++) {
        size_t name_len = strcspn(*e, "=");
        if (!env_passed(*e, name_len)) continue;
        char name[256];
        if (name_len >= sizeof name) continue;
        snprintf(name, sizeof name, "%.*s", (int)name_len, *e);
        push2(&a, "--setenv=", name);
    }
    push(&a, "--");
    for (char **w = spec->argv; *w; w++) push(&a, *w);
    if (a.failed) {
        argv_free(&a);
        close(fd);
        free(p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uv_timer_init(base->loop, &p->retry);
    /* detached like local instances: a Ctrl-C in the hub's terminal must not end the client */
    bool client_open;
    int rc = spawn_piped(base->loop, &p->client, client_exit, &p->out, a.v, UV_PROCESS_DETACHED, &client_open);
    argv_free(&a);
    p->refs = client_open ? 3 : 2; /* client, out, retry */
    if (rc < 0) {
        snprintf(err, errlen, "cannot start 'systemd-run': %s", uv_strerror(rc));
        p->done = true;
        p->cb = NULL;
        if (client_open) close_once(p, (uv_handle_t *)&p->client);
        close_once(p, (uv_handle_t *)&p->out);
        close_once(p, (uv_handle_t *)&p->retry);
        return -1;
    }
    uv_read_start((uv_stream_t *)&p->out, out_alloc, out_read);
    *out = &p->base;
    return 0;
}

static void on_pidfd(uv_poll_t *poll, int status, int events) {
    sd_proc *p = poll->data;
    uv_poll_stop(poll);
    announce(p, -1, -1);
    close_all(p);
}

/* The unit of ours the process is in: the last part of its cgroup path, when it is
 * comfyd-PORT-….service. */
static void unit_of(int pid, int port, char *unit, size_t n) {
    unit[0] = '\0';
    char path[64], want[32], text[4096];
    snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
    int len = snprintf(want, sizeof want, "comfyd-%d-", port);
    FILE *f = fopen(path, "re");
    if (!f) return;
    while (fgets(text, sizeof text, f)) {
        text[strcspn(text, "\n")] = '\0';
        const char *last = strrchr(text, '/');
        if (!last++) continue;
        size_t l = strlen(last);
        if (!strncmp(last, want, (size_t)len) && l > 8 && !strcmp(last + l - 8, ".service") && l < n) {
            snprintf(unit, n, "%s", last);
            break;
        }
    }
    fclose(f);
}

static int sd_adopt(cd_launcher *l, int pid, int port, cd_proc_exit_cb cb, void *user, cd_proc **out) {
    int fd = pidfd_open(pid, 0);
    if (fd < 0) return -1;
    sd_proc *p = proc_new(l, port, cb, user);
    if (!p) {
        close(fd);
        return -1;
    }
    p->adopted = true;
    p->base.pid = pid;
    p->pidfd = fd;
    /* A process in no unit of ours (started by the local launcher before the setting changed)
     * is signalled through its pidfd. */
    unit_of(pid, port, p->unit, sizeof p->unit);
    if (uv_poll_init(l->loop, &p->poll, fd) < 0) {
        close(fd);
        free(p);
        return -1;
    }
    p->refs = 1;
    uv_poll_start(&p->poll, UV_READABLE, on_pidfd);
    *out = &p->base;
    return 0;
}

static int sd_is_instance(cd_launcher *l, int pid, int port) { return cd_launcher_cmdline_names_port(pid, port); }

static void kill_done(sd_proc *p, int64_t status, const char *output, int sig) {
    if (status == 0) return;
    const char *last = strrchr(output, '\n');
    cd_warn("hub: systemctl --user kill --signal=%d %s failed (%s)", sig, p->unit,
            last ? last + 1 : output[0] ? output : "no reason given");
    /* the last word must land: the main process itself, while it still is the instance */
    if (sig == SIGKILL && !p->done && p->base.pid && cd_launcher_cmdline_names_port(p->base.pid, p->port))
        kill(p->base.pid, SIGKILL);
}

static int sd_kill(cd_proc *base, int sig) {
    sd_proc *p = (sd_proc *)base;
    if (!p->unit[0]) return pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
    /* the whole unit: whatever the instance started goes too */
    char signal[32];
    snprintf(signal, sizeof signal, "--signal=%d", sig);
    const char *const args[] = {"kill", signal, NULL};
    return run_ctl(p, L(p), args, p->unit, kill_done, sig);
}

static void sd_release(cd_proc *base) {
    sd_proc *p = (sd_proc *)base;
    p->cb = NULL;
    p->done = true;
    if (p->adopted) uv_poll_stop(&p->poll);
    /* the unit runs on, and so does its client until the unit ends */
    close_all(p);
}

static int run_ctl(sd_proc *p, cd_launcher_systemd *l, const char *const *args, const char *unit, ctl_cb cb, int arg) {
    ctl *c = calloc(1, sizeof *c);
    if (!c) return -1;
    argv_b a = {0};
    push(&a, "systemctl");
    push(&a, "--user");
    for (const char *const *w = args; *w; w++) push(&a, *w);
    push(&a, unit);
    if (a.failed) {
        argv_free(&a);
        free(c);
        return -1;
    }
    *c = (ctl){.l = l, .p = p, .cb = cb, .arg = arg};
    c->process.data = c->out.data = c->deadline.data = c;
    uv_timer_init(l->base.loop, &c->deadline);
    bool process_open;
    int rc = spawn_piped(l->base.loop, &c->process, ctl_exit, &c->out, a.v, 0, &process_open);
    argv_free(&a);
    l->running++;
    p->refs++;
    c->open = process_open ? 3 : 2;
    if (rc < 0) {
        c->cb = NULL;
        if (process_open) uv_close((uv_handle_t *)&c->process, ctl_closed);
        uv_close((uv_handle_t *)&c->out, ctl_closed);
        uv_close((uv_handle_t *)&c->deadline, ctl_closed);
        return -1;
    }
    uv_read_start((uv_stream_t *)&c->out, ctl_alloc, ctl_read);
    uv_timer_start(&c->deadline, ctl_overdue, 30000, 0);
    return 0;
}

static const cd_launcher_ops systemd_ops = {
    .name = "systemd",
    .spawn = sd_spawn,
    .adopt = sd_adopt,
    .is_instance = sd_is_instance,
    .kill = sd_kill,
    .release = sd_release,
};

void cd_launcher_systemd_init(cd_launcher_systemd *l, uv_loop_t *loop, const char *memory_max, const char *cpu_quota) {
    l->base.ops = &systemd_ops;
    l->base.loop = loop;
    snprintf(l->memory_max, sizeof l->memory_max, "%s", memory_max ? memory_max : "");
    snprintf(l->cpu_quota, sizeof l->cpu_quota, "%s", cpu_quota ? cpu_quota : "");
    l->running = 0;
}
