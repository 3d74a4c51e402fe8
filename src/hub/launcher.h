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

#include <stdint.h>
#include <uv.h>

typedef struct cd_proc cd_proc;
/* exit_status and term_signal are -1 when unknown. p is freed after the callback returns. */
typedef void (*cd_proc_exit_cb)(cd_proc *p, int64_t exit_status, int term_signal, void *user);

typedef struct {
    char **argv;         /* argv[0] is looked up in PATH */
    const char *cwd;     /* NULL: the hub's own */
    const char *log_path; /* stdout and stderr are appended here */
} cd_launch_spec;

typedef struct cd_launcher cd_launcher;
typedef struct {
    const char *name; /* "local" */
    /* Starts a process. Returns 0 and *out, or a negative error with a message. */
    int (*spawn)(cd_launcher *l, const cd_launch_spec *spec, cd_proc_exit_cb cb, void *user, cd_proc **out, char *err,
                 size_t errlen);
    /* Watches a process that runs already (a hub restarted while its instances ran). Returns 0,
     * or -1 when no such process exists. */
    int (*adopt)(cd_launcher *l, int pid, cd_proc_exit_cb cb, void *user, cd_proc **out);
    /* True when pid names a running process that looks like the instance on that port (its
     * command line names the port), so that a recycled pid is never signalled. */
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
int cd_proc_pid(const cd_proc *p);

#endif
