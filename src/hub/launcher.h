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
    const char *name; /* "local", "ssh" */
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

/* Instances on another machine, started with OpenSSH's `ssh` (the operator's key, BatchMode).
 * The remote command is `mkdir -p DIR && echo PID $$ && exec COMMAND…` (each word quoted for
 * the remote shell): the first line of its output gives the pid, and since the instance runs in
 * the foreground of that ssh session, the session's end is the instance's exit (or the link's
 * death). Stopping is `ssh HOST kill -SIG PID`, sent only when /proc/PID/cmdline there still
 * names the instance's port (a recycled pid is never signalled). The remote user's shell must
 * be a POSIX one (sh, bash, dash, zsh). The hub-side ssh is always run from an argv:
 * no local shell sees any of these values. */
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
/* Validates an -o option line for ssh: Key=Value with a key from a short allowlist (nothing that
 * runs a command or loads a library on the hub's machine). Returns the problem or NULL. */
const char *cd_launcher_ssh_option_problem(const char *line, size_t len);

#endif
