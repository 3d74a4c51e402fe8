/* The launchers' pieces that can be tried without another machine or a systemd: the ssh
 * launcher's remote commands, run here through a local sh (the pid line found behind what a
 * login prints, the working directory, the kill that leaves a pid alone unless it is the
 * instance on its port), and the shared helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hub/launcher.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

/* Runs text as a script of sh, stdout and stderr to files in dir; returns sh's exit status. */
static int run_sh(const char *dir, const char *text) {
    char script[512], cmd[2048];
    snprintf(script, sizeof script, "%s/script.sh", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "sh '%s' >'%s/out' 2>'%s/err'", script, dir, dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_nonce(void **state) {
    (void)state;
    char a[CD_LAUNCHER_NONCE_LEN + 1], b[CD_LAUNCHER_NONCE_LEN + 1];
    cd_launcher_nonce(a);
    cd_launcher_nonce(b);
    assert_int_equal(strlen(a), CD_LAUNCHER_NONCE_LEN);
    assert_int_equal(strspn(a, "0123456789abcdef"), CD_LAUNCHER_NONCE_LEN);
    assert_string_not_equal(a, b);
}

static void test_pid_line(void **state) {
    (void)state;
    const char *n = "0123456789abcdef";
#define PID(s) cd_launcher_ssh_pid_of_line(s, strlen(s), n)
    assert_int_equal(PID("COMFYD-PID-0123456789abcdef 4242"), 4242);
    assert_int_equal(PID("COMFYD-PID-0123456789abcdef 17\r"), 17);
    assert_int_equal(PID("PID 4242"), 0);                             /* the old, untagged line */
    assert_int_equal(PID("COMFYD-PID-fedcba9876543210 4242"), 0);     /* another spawn's */
    assert_int_equal(PID("COMFYD-PID-0123456789abcdef 42x"), 0);
    assert_int_equal(PID("COMFYD-PID-0123456789abcdef "), 0);
    assert_int_equal(PID("COMFYD-PID-0123456789abcdef 99999999999"), 0);
    assert_int_equal(PID(" COMFYD-PID-0123456789abcdef 4242"), 0);
#undef PID
}

/* What the remote shell runs for a spawn: the directory made, cwd entered (quoted: a blank and
 * a quote in it), the tagged pid line on stdout after whatever the login printed, the command on
 * stderr. */
static void test_ssh_spawn_command(void **state) {
    (void)state;
    char dir[64] = "/tmp/cd-launch-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cwd[256], made[256];
    snprintf(cwd, sizeof cwd, "%s/it's a repo", dir);
    snprintf(made, sizeof made, "%s/made $(touch pwned)", dir);
    assert_int_equal(mkdir(cwd, 0755), 0);
    char *argv[] = {"sh", "-c", "echo ran in \"$(pwd)\"; echo to stdout", "x", "--port", "8200", NULL};
    cd_launch_spec spec = {.argv = argv, .cwd = cwd, .make_dir = made, .port = 8200};
    const char *nonce = "00112233445566aa";
    char *cmd = cd_launcher_ssh_spawn_command(&spec, nonce);
    assert_non_null(cmd);
    char script[4096];
    /* a login that prints first, including an untagged line that the old parser took for the pid */
    snprintf(script, sizeof script, "echo 'Welcome to gpu1'\necho 'PID 1'\n%s\n", cmd);
    free(cmd);
    assert_int_equal(run_sh(dir, script), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/out", dir);
    char *out = slurp(path);
    snprintf(path, sizeof path, "%s/err", dir);
    char *err = slurp(path);
    int pid = 0, lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"), lines++)
        if (!pid) pid = cd_launcher_ssh_pid_of_line(line, strlen(line), nonce);
    assert_true(pid > 1);
    assert_int_equal(lines, 3); /* the banner's two lines and ours: the instance's stdout went to stderr */
    char want[512];
    snprintf(want, sizeof want, "ran in %s\nto stdout\n", cwd);
    assert_string_equal(err, want);
    struct stat st;
    assert_int_equal(stat(made, &st), 0);
    snprintf(path, sizeof path, "%s/pwned", dir);
    assert_int_not_equal(stat(path, &st), 0);
    free(out);
    free(err);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    assert_int_equal(system(rm), 0);
}

/* The remote kill: a pid whose command line does not name the port is left alone and the
 * script fails, saying so; the instance's own pid is signalled. */
static void test_ssh_kill_command(void **state) {
    (void)state;
    char dir[64] = "/tmp/cd-launch-XXXXXX";
    assert_non_null(mkdtemp(dir));
    pid_t child = fork();
    if (child == 0) {
        /* a loop, not one command: sh would exec it and its command line would be sleep's */
        execlp("sh", "sh", "-c", "while :; do sleep 0.1; done", "x", "--port", "4321", "y", (char *)NULL);
        _exit(127);
    }
    assert_true(child > 0);
    /* until the exec has happened: the command line names the port */
    for (int i = 0; i < 200 && !cd_launcher_cmdline_names_port(child, 4321); i++) usleep(10000);
    assert_true(cd_launcher_cmdline_names_port(child, 4321));
    assert_false(cd_launcher_cmdline_names_port(child, 432));

    char *cmd = cd_launcher_ssh_kill_command(child, 4322, SIGTERM);
    assert_int_equal(run_sh(dir, cmd), 3);
    free(cmd);
    char path[128];
    snprintf(path, sizeof path, "%s/err", dir);
    char *err = slurp(path);
    assert_non_null(strstr(err, "is not the instance on port 4322"));
    free(err);
    assert_int_equal(kill(child, 0), 0);

    cmd = cd_launcher_ssh_kill_command(child, 4321, SIGTERM);
    assert_int_equal(run_sh(dir, cmd), 0);
    free(cmd);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    /* gone: the guard fails rather than signal whatever gets the pid next */
    cmd = cd_launcher_ssh_kill_command(child, 4321, SIGKILL);
    assert_int_equal(run_sh(dir, cmd), 3);
    free(cmd);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    assert_int_equal(system(rm), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nonce),
        cmocka_unit_test(test_pid_line),
        cmocka_unit_test(test_ssh_spawn_command),
        cmocka_unit_test(test_ssh_kill_command),
    };
    return cmocka_run_group_tests_name("hub_launchers", tests, NULL, NULL);
}
