/* The ssh launcher (see launcher.h): instances on another machine, reached with OpenSSH.
 *
 * A started instance is watched through its ssh session, a child process of the hub: the
 * remote command runs in that session's foreground, so the session ending means the instance
 * exited or the link died (ServerAliveInterval ends a session whose link is dead within about
 * 15 s). The session's stdout comes through a pipe and carries the line "COMFYD-PID-NONCE n",
 * after whatever the remote login prints (which goes to the log); the instance's output goes to
 * its stderr, the log file. There is no pidfd for a remote process: an
 * instance adopted after a hub restart gets a watcher session instead, a remote loop that ends
 * when the pid is no longer the instance. Stopping is `ssh HOST kill -SIG PID`, guarded the same
 * way; the session's end says it worked. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "hub/launcher.h"

/* ---- the ssh command line ---- */

/* Options a host may add. Nothing that runs a command (ProxyCommand, LocalCommand,
 * KnownHostsCommand) or loads code (PKCS11Provider, SecurityKeyProvider) on the hub's machine. */
static const char *const allowed_options[] = {
    "StrictHostKeyChecking", "UserKnownHostsFile", "ConnectTimeout", "ConnectionAttempts", "ServerAliveInterval",
    "ServerAliveCountMax", "Compression", "HostKeyAlias", "IdentitiesOnly", "User", "LogLevel", "AddressFamily",
    "CheckHostIP", NULL,
};

/* ssh appends a new host's key to UserKnownHostsFile as "ALIAS KEY": pointed at an
 * authorized_keys file with a HostKeyAlias such as "no-pty", that line would let the host's key
 * log into the hub's machine. So the file is /dev/null or a known_hosts file, and the alias a
 * host name. */
static const char *value_problem(const char *key, size_t klen, const char *v, size_t vlen) {
    if (klen == 18 && !strncasecmp(key, "UserKnownHostsFile", klen)) {
        bool devnull = vlen == 9 && !memcmp(v, "/dev/null", 9);
        bool known_hosts = vlen >= 11 && !memcmp(v + vlen - 11, "known_hosts", 11);
        if (!devnull && !known_hosts) return "UserKnownHostsFile is /dev/null or a file named ...known_hosts";
    }
    if (klen == 12 && !strncasecmp(key, "HostKeyAlias", klen)) {
        for (size_t i = 0; i < vlen; i++)
            if (!isalnum((unsigned char)v[i]) && v[i] != '.' && v[i] != '-') return "HostKeyAlias is a host name";
    }
    return NULL;
}

const char *cd_launcher_ssh_option_problem(const char *line, size_t len) {
    const char *eq = memchr(line, '=', len);
    if (!eq || eq == line || eq + 1 == line + len) return "an ssh option is Key=Value";
    bool known = false;
    for (const char *const *o = allowed_options; *o && !known; o++)
        known = strlen(*o) == (size_t)(eq - line) && !strncasecmp(*o, line, (size_t)(eq - line));
    if (!known)
        return "ssh options allowed: StrictHostKeyChecking, UserKnownHostsFile, ConnectTimeout, ConnectionAttempts, "
               "ServerAliveInterval, ServerAliveCountMax, Compression, HostKeyAlias, IdentitiesOnly, User, LogLevel, "
               "AddressFamily, CheckHostIP";
    for (const char *p = eq + 1; p < line + len; p++)
        if (!isgraph((unsigned char)*p)) return "an ssh option's value has no blanks or control characters";
    return value_problem(line, (size_t)(eq - line), eq + 1, (size_t)(line + len - eq - 1));
}

typedef struct {
    char *v[64];
    int n;
} argv_b;

static void push(argv_b *a, const char *s) {
    if (a->n < 62) a->v[a->n++] = strdup(s);
    a->v[a->n] = NULL;
}

static void argv_free(argv_b *a) {
    for (int i = 0; i < a->n; i++) free(a->v[i]);
    a->n = 0;
}

/* ssh [options] TARGET REMOTE: BatchMode so that nothing ever waits for a password. */
static void ssh_argv(const cd_launcher_ssh *l, const char *remote, argv_b *a) {
    char port[16];
    snprintf(port, sizeof port, "%d", l->port);
    push(a, "ssh");
    push(a, "-T");
    push(a, "-p");
    push(a, port);
    if (l->key[0]) {
        push(a, "-i");
        push(a, l->key);
    }
    const char *fixed[] = {"BatchMode=yes", "ConnectTimeout=10", "ServerAliveInterval=5", "ServerAliveCountMax=3"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        push(a, "-o");
        push(a, fixed[i]);
    }
    for (const char *p = l->options; *p;) {
        size_t len = strcspn(p, "\n");
        if (len) {
            char opt[256];
            snprintf(opt, sizeof opt, "%.*s", (int)len, p);
            push(a, "-o");
            push(a, opt);
        }
        p += len + (p[len] == '\n');
    }
    push(a, l->target);
    push(a, remote);
}

/* One word for the remote shell: 'it''s' as 'it'\''s'. */
static void sh_quote(cd_buf *b, const char *word) {
    cd_buf_append_str(b, "'");
    for (const char *p = word; *p; p++) {
        if (*p == '\'') cd_buf_append_str(b, "'\\''");
        else cd_buf_append(b, p, 1);
    }
    cd_buf_append_str(b, "'");
}

/* ---- helper commands: checks and kills ---- */

typedef void (*run_cb)(int64_t status, const char *last_line, void *user);
typedef struct {
    cd_launcher_ssh *l;
    uv_process_t process;
    uv_pipe_t err;
    uv_timer_t deadline; /* a helper that hangs (a host that accepts and then says nothing) is killed */
    char text[512]; /* the end of stderr */
    size_t len;
    int64_t status;
    int open;
    run_cb cb;
    void *user;
} run;

static void run_closed(uv_handle_t *h) {
    run *r = h->data;
    if (--r->open > 0) return;
    /* every handle is closed: stderr is complete */
    while (r->len && (r->text[r->len - 1] == '\n' || r->text[r->len - 1] == '\r')) r->len--;
    r->text[r->len] = '\0';
    char *last = strrchr(r->text, '\n');
    if (r->cb) r->cb(r->status, last ? last + 1 : r->text, r->user);
    r->l->running--;
    free(r);
}

static void run_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char scratch[4096]; /* read and kept at once: the loop is single-threaded */
    buf->base = scratch;
    buf->len = sizeof scratch;
}

static void run_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    run *r = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, run_closed);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (r->len == sizeof r->text - 1) { /* keep the end */
            memmove(r->text, r->text + sizeof r->text / 2, r->len - sizeof r->text / 2);
            r->len -= sizeof r->text / 2;
        }
        r->text[r->len++] = buf->base[i];
    }
}

static void run_exit(uv_process_t *p, int64_t status, int sig) {
    run *r = p->data;
    r->status = sig ? -sig : status;
    uv_close((uv_handle_t *)p, run_closed);
    uv_close((uv_handle_t *)&r->deadline, run_closed);
}

static void run_overdue(uv_timer_t *t) {
    run *r = t->data;
    uv_process_kill(&r->process, SIGKILL); /* run_exit follows, with status -9 */
}

static int run_ssh(cd_launcher_ssh *l, const char *remote, run_cb cb, void *user) {
    run *r = calloc(1, sizeof *r);
    if (!r) return -1;
    r->l = l;
    r->cb = cb;
    r->user = user;
    r->process.data = r->err.data = r->deadline.data = r;
    uv_pipe_init(l->base.loop, &r->err, 0);
    uv_timer_init(l->base.loop, &r->deadline);
    argv_b a = {0};
    ssh_argv(l, remote, &a);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->err},
    };
    uv_process_options_t o = {.exit_cb = run_exit, .file = a.v[0], .args = a.v, .stdio_count = 3, .stdio = stdio};
    int rc = uv_spawn(l->base.loop, &r->process, &o);
    argv_free(&a);
    l->running++;
    r->open = 3;
    if (rc < 0) {
        r->cb = NULL;
        uv_close((uv_handle_t *)&r->process, run_closed);
        uv_close((uv_handle_t *)&r->err, run_closed);
        uv_close((uv_handle_t *)&r->deadline, run_closed);
        return -1;
    }
    uv_read_start((uv_stream_t *)&r->err, run_alloc, run_read);
    /* ConnectTimeout is 10 s and each helper is one short command */
    uv_timer_start(&r->deadline, run_overdue, 30000, 0);
    return 0;
}

typedef struct {
    cd_ssh_check_cb cb;
    void *user;
} check_ctx;

static void check_done(int64_t status, const char *last, void *user) {
    check_ctx *c = user;
    char why[300];
    if (status == 0) why[0] = '\0';
    else if (status == -SIGKILL && !last[0]) snprintf(why, sizeof why, "ssh did not finish within 30 s");
    else snprintf(why, sizeof why, "%s", last[0] ? last : status < 0 ? "ssh was killed" : "ssh failed");
    c->cb(status == 0, why, c->user);
    free(c);
}

int cd_launcher_ssh_check(cd_launcher_ssh *l, cd_ssh_check_cb cb, void *user) {
    check_ctx *c = malloc(sizeof *c);
    if (!c) return -1;
    *c = (check_ctx){cb, user};
    if (run_ssh(l, "true", check_done, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

/* ---- processes ---- */

/* Each process has a session: for a started instance, the session it runs in; for an adopted
 * one, a watcher session that polls every second whether the pid still is the instance. Either way
 * the session's end is the instance's end, or the link's. */
typedef struct {
    cd_proc base;
    int port;     /* the instance's, to tell it from a recycled pid */
    bool adopted; /* the session is a watcher: the exit status is not known */
    uv_process_t session;
    uv_pipe_t out; /* a started session's stdout: the pid line */
    int log_fd;
    char nonce[CD_LAUNCHER_NONCE_LEN + 1]; /* this spawn's, in the pid line */
    char line[128]; /* the stdout line as it arrives, until the pid line */
    size_t line_len;
    bool pid_seen;
    int open; /* handles still to close, and a SIGKILL under way */
    bool session_ended;
    bool gone_announced;
    cd_proc_exit_cb cb;
    void *user;
} ssh_proc;

static cd_launcher_ssh *L(const ssh_proc *p) { return (cd_launcher_ssh *)p->base.launcher; }

static void announce_exit(ssh_proc *p, int64_t status, int sig) {
    if (p->gone_announced) return;
    p->gone_announced = true;
    cd_proc_exit_cb cb = p->cb;
    p->cb = NULL;
    if (cb) cb(&p->base, status, sig, p->user);
}

static void proc_unref(ssh_proc *p) {
    if (--p->open > 0) return;
    if (p->log_fd >= 0) close(p->log_fd);
    free(p);
}

static void proc_closed(uv_handle_t *h) { proc_unref(h->data); }

static void out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char scratch[4096];
    buf->base = scratch;
    buf->len = sizeof scratch;
}

static void to_log(ssh_proc *p, const char *data, size_t n) {
    if (p->log_fd >= 0 && n && write(p->log_fd, data, n) < 0) {
        /* a full disk loses log lines, never the instance */
    }
}

int cd_launcher_ssh_pid_of_line(const char *line, size_t len, const char *nonce) {
    char tag[32];
    int tlen = snprintf(tag, sizeof tag, "COMFYD-PID-%s ", nonce);
    if (len <= (size_t)tlen || memcmp(line, tag, (size_t)tlen) != 0) return 0;
    long pid = 0;
    for (size_t i = (size_t)tlen; i < len; i++) {
        if (line[i] == '\r' && i + 1 == len) break;
        if (line[i] < '0' || line[i] > '9' || (pid = pid * 10 + (line[i] - '0')) > 0x7fffffff) return 0;
    }
    return (int)pid;
}

/* Lines until the one tagged with our nonce (printed by the remote shell just before it execs
 * the instance): anything else is what the remote login printed, kept in the log. */
static void take_lines(ssh_proc *p, const char *data, size_t n, size_t *used) {
    size_t i = 0;
    while (i < n && !p->pid_seen) {
        char c = data[i++];
        if (c != '\n' && p->line_len < sizeof p->line - 1) {
            p->line[p->line_len++] = c;
            continue;
        }
        int pid = c == '\n' ? cd_launcher_ssh_pid_of_line(p->line, p->line_len, p->nonce) : 0;
        if (pid > 0) {
            p->base.pid = pid;
            p->pid_seen = true;
        } else {
            to_log(p, p->line, p->line_len);
            to_log(p, &c, 1); /* the newline, or the character a long line had no room for */
        }
        p->line_len = 0;
    }
    *used = i;
}

static void out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    ssh_proc *p = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, proc_closed);
        return;
    }
    size_t used = 0;
    if (!p->pid_seen) take_lines(p, buf->base, (size_t)n, &used);
    to_log(p, buf->base + used, (size_t)n - used);
}

static void session_exit(uv_process_t *proc, int64_t status, int sig) {
    ssh_proc *p = proc->data;
    p->session_ended = true;
    uv_close((uv_handle_t *)proc, proc_closed);
    /* ssh says 255 for its own failures (the link); the remote's code otherwise */
    if (p->adopted) announce_exit(p, -1, -1);
    else announce_exit(p, sig ? -1 : status, sig);
}

static ssh_proc *proc_new(cd_launcher *l, cd_proc_exit_cb cb, void *user) {
    ssh_proc *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base.launcher = l;
    p->log_fd = -1;
    p->cb = cb;
    p->user = user;
    p->session.data = p->out.data = p;
    return p;
}

/* A shell function `ours`: true while the process of pid still names the instance's port (its
 * command line's NULs read as spaces), so that a pid recycled on that host is never signalled
 * nor mistaken for the instance. */
static void define_ours(cd_buf *b, int pid, int port) {
    char text[200];
    snprintf(text, sizeof text,
             "ours() { case \"$(tr '\\0' ' ' 2>/dev/null </proc/%d/cmdline)\" in *' --port %d '*) return 0;; esac; "
             "return 1; }; ",
             pid, port);
    cd_buf_append_str(b, text);
}

char *cd_launcher_ssh_spawn_command(const cd_launch_spec *spec, const char *nonce) {
    cd_buf b = CD_BUF_INIT;
    if (spec->make_dir) {
        cd_buf_append_str(&b, "mkdir -p ");
        sh_quote(&b, spec->make_dir);
        cd_buf_append_str(&b, " && ");
    }
    if (spec->cwd && spec->cwd[0]) { /* a checkout such as a Python ComfyUI's runs in its directory */
        cd_buf_append_str(&b, "cd ");
        sh_quote(&b, spec->cwd);
        cd_buf_append_str(&b, " && ");
    }
    /* $$ is the remote shell's pid, which exec hands to the instance. After that line the
     * instance writes only to stderr, which goes straight to the log file: nothing passes
     * through the hub's pipe, so a hub that dies (and closes it) does not break the session. */
    cd_buf_printf(&b, "echo COMFYD-PID-%s $$ && exec", nonce);
    for (char **w = spec->argv; *w; w++) {
        cd_buf_append_str(&b, " ");
        sh_quote(&b, *w);
    }
    cd_buf_append_str(&b, " >&2");
    return cd_buf_take(&b);
}

/* Starts p's session running remote; stdout is piped (the PID line) when out is set, stderr
 * goes to log_fd (or nowhere). */
static int start_session(ssh_proc *p, const char *remote, bool out, int log_fd, char *err, size_t errlen) {
    cd_launcher *base = p->base.launcher;
    argv_b a = {0};
    ssh_argv((cd_launcher_ssh *)base, remote, &a);
    if (out) uv_pipe_init(base->loop, &p->out, 0);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        out ? (uv_stdio_container_t){.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->out}
            : (uv_stdio_container_t){.flags = UV_IGNORE},
        log_fd >= 0 ? (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = log_fd}
                    : (uv_stdio_container_t){.flags = UV_IGNORE},
    };
    /* detached like local instances: a Ctrl-C in the hub's terminal must not end the sessions */
    uv_process_options_t o = {.exit_cb = session_exit, .file = a.v[0], .args = a.v, .flags = UV_PROCESS_DETACHED,
                              .stdio_count = 3, .stdio = stdio};
    int rc = uv_spawn(base->loop, &p->session, &o);
    argv_free(&a);
    p->open = out ? 2 : 1;
    if (rc < 0) {
        snprintf(err, errlen, "cannot start 'ssh': %s", uv_strerror(rc));
        p->cb = NULL;
        uv_close((uv_handle_t *)&p->session, proc_closed);
        if (out) uv_close((uv_handle_t *)&p->out, proc_closed);
        return -1;
    }
    if (out) uv_read_start((uv_stream_t *)&p->out, out_alloc, out_read);
    return 0;
}

static int ssh_spawn(cd_launcher *base, const cd_launch_spec *spec, cd_proc_exit_cb cb, void *user, cd_proc **out,
                     char *err, size_t errlen) {
    int fd = open(spec->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the instance log %s: %s", spec->log_path, strerror(errno));
        return -1;
    }
    ssh_proc *p = proc_new(base, cb, user);
    if (p) cd_launcher_nonce(p->nonce);
    char *remote = p ? cd_launcher_ssh_spawn_command(spec, p->nonce) : NULL;
    if (!remote) {
        free(p);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->log_fd = fd;
    p->port = spec->port;
    int rc = start_session(p, remote, true, fd, err, errlen);
    free(remote);
    if (rc == 0) *out = &p->base;
    return rc;
}

static int ssh_adopt(cd_launcher *l, int pid, int port, cd_proc_exit_cb cb, void *user, cd_proc **out) {
    ssh_proc *p = proc_new(l, cb, user);
    if (!p) return -1;
    p->adopted = true;
    p->base.pid = pid;
    p->port = port;
    cd_buf remote = CD_BUF_INIT;
    define_ours(&remote, pid, port);
    cd_buf_append_str(&remote, "while ours; do sleep 1; done");
    char err[128];
    int rc = remote.data ? start_session(p, remote.data, false, -1, err, sizeof err) : -1;
    if (!remote.data) free(p);
    cd_buf_free(&remote);
    if (rc == 0) *out = &p->base;
    return rc;
}

static int ssh_is_instance(cd_launcher *l, int pid, int port) { return pid > 0; }

char *cd_launcher_ssh_kill_command(int pid, int port, int sig) {
    cd_buf b = CD_BUF_INIT;
    define_ours(&b, pid, port);
    /* a pid that is no longer the instance is left alone, and said so (exit 3) */
    cd_buf_printf(&b,
                  "if ours; then kill -%d %d; else echo \"pid %d is not the instance on port %d (gone, or another "
                  "process): not signalled\" >&2; exit 3; fi",
                  sig, pid, pid, port);
    return b.data ? cd_buf_take(&b) : NULL;
}

typedef struct {
    int pid, sig;
} kill_ctx;

static void soft_kill_done(int64_t status, const char *last, void *user) {
    kill_ctx *k = user;
    if (status != 0)
        cd_warn("hub: ssh kill -%d of pid %d failed (%s)", k->sig, k->pid, last[0] ? last : "no reason given");
    free(k);
}

typedef struct {
    cd_ssh_signal_cb cb;
    void *user;
} signal_ctx;

static void signal_done(int64_t status, const char *last, void *user) {
    signal_ctx *c = user;
    /* the kill command's own codes: 0 signalled, 3 not the instance; ssh's are 255 and signals */
    int result = status == 0 ? 1 : status == 3 ? 0 : -1;
    char why[300] = "";
    if (result < 0) snprintf(why, sizeof why, "%s", last[0] ? last : status < 0 ? "ssh was killed" : "ssh failed");
    c->cb(result, why, c->user);
    free(c);
}

int cd_launcher_ssh_signal(cd_launcher_ssh *l, int pid, int port, int sig, cd_ssh_signal_cb cb, void *user) {
    signal_ctx *c = malloc(sizeof *c);
    char *remote = c ? cd_launcher_ssh_kill_command(pid, port, sig) : NULL;
    if (!remote) {
        free(c);
        return -1;
    }
    *c = (signal_ctx){cb, user};
    int rc = run_ssh(l, remote, signal_done, c);
    free(remote);
    if (rc < 0) free(c);
    return rc;
}

/* SIGKILL is the last word: once the remote kill has landed (the session then ends by itself),
 * or failed because the host cannot be reached (the session might linger until its keep-alives
 * give up), the session is ended here, so that the exit is seen now and never before the kill. */
static void hard_kill_done(int64_t status, const char *last, void *user) {
    ssh_proc *p = user;
    if (status != 0)
        cd_warn("hub: ssh kill -9 of pid %d failed (%s); letting it go", p->base.pid, last[0] ? last : "no reason");
    if (!p->session_ended) uv_process_kill(&p->session, SIGKILL);
    proc_unref(p);
}

static int ssh_kill(cd_proc *base, int sig) {
    ssh_proc *p = (ssh_proc *)base;
    if (!p->base.pid) {
        /* it has not said its pid yet: ending the session is all we can do */
        return uv_process_kill(&p->session, SIGTERM);
    }
    char *remote = cd_launcher_ssh_kill_command(p->base.pid, p->port, sig);
    int rc;
    if (sig == SIGKILL) {
        p->open++; /* held until the kill is done */
        if ((rc = remote ? run_ssh(L(p), remote, hard_kill_done, p) : -1) < 0) hard_kill_done(-1, "", p);
    } else {
        kill_ctx *k = malloc(sizeof *k);
        if (k) *k = (kill_ctx){p->base.pid, sig};
        rc = remote && k ? run_ssh(L(p), remote, soft_kill_done, k) : -1;
        if (rc < 0) free(k);
    }
    free(remote);
    return rc;
}

static void ssh_release(cd_proc *base) {
    ssh_proc *p = (ssh_proc *)base;
    p->cb = NULL;
    p->gone_announced = true;
    /* The session may hang on a dead link: end it (the remote process keeps running, or dies with
     * the link; the host's operator or the next adoption decides). */
    if (!p->session_ended) uv_process_kill(&p->session, SIGKILL);
}

static const cd_launcher_ops ssh_ops = {
    .name = "ssh",
    .spawn = ssh_spawn,
    .adopt = ssh_adopt,
    .is_instance = ssh_is_instance,
    .kill = ssh_kill,
    .release = ssh_release,
};

void cd_launcher_ssh_init(cd_launcher_ssh *l, uv_loop_t *loop, const char *target, int port, const char *key,
                          const char *options) {
    l->base.ops = &ssh_ops;
    l->base.loop = loop;
    snprintf(l->target, sizeof l->target, "%s", target);
    l->port = port;
    snprintf(l->key, sizeof l->key, "%s", key);
    snprintf(l->options, sizeof l->options, "%s", options);
}
