/* Launchers start and stop instance processes on a host. The supervisor only speaks to this
 * interface, so that an instance on another machine (started over ssh, or as a systemd unit)
 * is another launcher, not another supervisor. An instance has a host (the launcher's name and
 * the address the hub reaches it at), not only a port.
 *
 * A cd_proc is one watched process. Its exit callback runs exactly once, on the loop, when the
 * process is gone, whether the launcher started it (exit code and signal known) or adopted it
 * after a hub restart (then neither is known: -1). */
#ifndef CD_HUB_LAUNCHER_H
#define CD_HUB_LAUNCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct cd_launcher cd_launcher;

/* What every launcher's record of a process starts with. */
typedef struct cd_proc {
    cd_launcher *launcher; /* the one that started or adopted it */
    int pid;               /* on its host; 0 while a remote launcher has not learnt it yet */
} cd_proc;
/* exit_status and term_signal are -1 when unknown. p is freed after the callback returns. */
typedef void (*cd_proc_exit_cb)(cd_proc *p, int64_t exit_status, int term_signal, void *user);

typedef struct {
    char **argv;         /* argv[0] is looked up in PATH (on the host that runs it) */
    const char *cwd;     /* NULL: the hub's own (local) or the login directory (ssh) */
    const char *log_path; /* stdout and stderr are appended here, on the hub's machine */
    const char *make_dir; /* remote launchers create it first (the local one's caller prepares it) */
    int port;             /* the instance's: a remote launcher tells its process from a recycled pid by it */
} cd_launch_spec;

typedef struct {
    const char *name; /* "local", "ssh", "systemd" */
    /* Starts a process. Returns 0 and *out, or a negative error with a message. */
    int (*spawn)(cd_launcher *l, const cd_launch_spec *spec, cd_proc_exit_cb cb, void *user, cd_proc **out, char *err,
                 size_t errlen);
    /* Watches a process that runs already (a hub restarted while its instances ran), the
     * instance on that port. Returns 0, or -1 when no such process exists. */
    int (*adopt)(cd_launcher *l, int pid, int port, cd_proc_exit_cb cb, void *user, cd_proc **out);
    /* True when pid names a running process that looks like the instance on that port (its
     * command line names the port), so that a recycled pid is never signalled. A remote
     * launcher cannot tell without a round trip and says yes: the health check that follows an
     * adoption decides. */
    int (*is_instance)(cd_launcher *l, int pid, int port);
    int (*kill)(cd_proc *p, int sig);
    /* Stops watching (the process keeps running); the exit callback will not run. */
    void (*release)(cd_proc *p);
} cd_launcher_ops;

struct cd_launcher {
    const cd_launcher_ops *ops;
    uv_loop_t *loop;
};

/* Child processes of the hub, in a session of their own so that a Ctrl-C in the hub's terminal
 * does not reach them (the hub stops them itself, in order). */
void cd_launcher_local_init(cd_launcher *l, uv_loop_t *loop);
static inline int cd_proc_pid(const cd_proc *p) { return p->pid; }

/* Instances on the hub's machine as transient units of the user's systemd manager
 * (COMFYUI_LAUNCHER=systemd): `systemd-run --user --unit=comfyd-PORT-NONCE --collect --wait
 * -p StandardOutput=append:LOG -p StandardError=append:LOG [-p MemoryMax=…] [-p CPUQuota=…]
 * [--working-directory=CWD] --setenv=NAME… -- COMMAND…`, the client a child of the hub whose
 * end is the unit's end (and whose last lines say the exit code or signal). The pid is the
 * unit's MainPID (`systemctl --user show`), signals go to the whole unit (`systemctl --user
 * kill`), and an instance adopted after a hub restart is found in its unit by its cgroup and
 * watched through a pidfd. Needs a running user manager (`systemd --user`, reached through
 * XDG_RUNTIME_DIR) for the hub's user. Otherwise it is "local" for the supervisor: the same
 * machine, ports checked here, the instance directory prepared here. */
typedef struct {
    cd_launcher base;    /* first: the host's cd_launcher * is this */
    char memory_max[32]; /* MemoryMax=, "" : none */
    char cpu_quota[32];  /* CPUQuota=, "" : none */
    int running;         /* systemctl commands under way */
} cd_launcher_systemd;
void cd_launcher_systemd_init(cd_launcher_systemd *l, uv_loop_t *loop, const char *memory_max, const char *cpu_quota);

/* ---- what launchers share (launcher.c) ---- */

/* A random tag per spawn (hex), so that a launcher's own marks (the pid line of an ssh session,
 * a unit's name) are never confused with anything a shell or another process prints. */
#define CD_LAUNCHER_NONCE_LEN 16
void cd_launcher_nonce(char out[CD_LAUNCHER_NONCE_LEN + 1]);
/* Whether a process of this machine has "--port" and then the port among its arguments: the
 * instance on that port, not a process that got its recycled pid. */
bool cd_launcher_cmdline_names_port(int pid, int port);

/* Instances on another machine, started with OpenSSH's `ssh` (the operator's key, BatchMode).
 * The remote command is `mkdir -p DIR && cd CWD && echo COMFYD-PID-NONCE $$ && exec COMMAND…`
 * (each word quoted for the remote shell; DIR and CWD when the spec has them): the line tagged
 * with this spawn's nonce gives the pid, wherever it comes in the output, so that what a login
 * banner or an rc file prints first is never taken for it (it goes to the log). Since the
 * instance runs in the foreground of that ssh session, the session's end is the instance's exit
 * (or the link's death). Stopping is `ssh HOST kill -SIG PID`, sent only when /proc/PID/cmdline
 * there still names " --port N " (so a host's command must pass --port {port}); otherwise the
 * remote script fails and the hub logs why, and a recycled pid is never signalled. The remote
 * user's shell must be a POSIX one (sh, bash, dash, zsh). The hub-side ssh is always run from an
 * argv: no local shell sees any of these values. */
typedef struct {
    cd_launcher base;
    char target[129];   /* [user@]host */
    int port;
    char key[1024];     /* "" : ssh's default identity */
    char options[1024]; /* Key=Value lines, passed as -o */
    int running;        /* helper ssh commands under way (checks, kills) */
} cd_launcher_ssh;
void cd_launcher_ssh_init(cd_launcher_ssh *l, uv_loop_t *loop, const char *target, int port, const char *key,
                          const char *options);
/* Whether the host can be reached: runs `ssh HOST true`. cb gets ok, or the reason (ssh's last
 * line of stderr). Returns 0, or -1 when ssh could not even be started (cb then does not run). */
typedef void (*cd_ssh_check_cb)(bool ok, const char *why, void *user);
int cd_launcher_ssh_check(cd_launcher_ssh *l, cd_ssh_check_cb cb, void *user);
/* Sends sig to pid on the host through the guarded kill (only when pid still names that port):
 * for a process the hub no longer watches (let go while its host was unreachable). cb gets 1
 * when it was signalled, 0 when pid is not the instance (gone, or another process), -1 when it
 * could not tell (ssh failed: why). Returns 0, or -1 when ssh could not be started (cb then does
 * not run). */
typedef void (*cd_ssh_signal_cb)(int result, const char *why, void *user);
int cd_launcher_ssh_signal(cd_launcher_ssh *l, int pid, int port, int sig, cd_ssh_signal_cb cb, void *user);
/* Validates an -o option line for ssh: Key=Value with a key from a short allowlist (nothing that
 * runs a command or loads a library on the hub's machine). Returns the problem or NULL. */
const char *cd_launcher_ssh_option_problem(const char *line, size_t len);
/* The remote shell's commands, exposed for the tests (which run them through a local sh): the
 * one a spawn runs, and the guarded kill. Both are malloc'd (the caller frees), NULL when out
 * of memory. */
char *cd_launcher_ssh_spawn_command(const cd_launch_spec *spec, const char *nonce);
char *cd_launcher_ssh_kill_command(int pid, int port, int sig);
/* The pid on a line "COMFYD-PID-<nonce> <pid>" of that nonce, or 0 when the line is not it. */
int cd_launcher_ssh_pid_of_line(const char *line, size_t len, const char *nonce);

#endif
