/* The hub's settings (defaults, config file, environment, flags, the instance command template)
 * and its credential helpers (delays, name rules, secrets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/auth.h"
#include "hub/config.h"

static char tmpdir[64];

static const char *const vars[] = {"COMFYD_HUB_CONFIG", "COMFYD_HUB_DATA_DIR", "COMFYD_HUB_PORT", "COMFYUI_PORT_RANGE",
                                   "COMFYUI_COMMAND", "COMFYUI_REPO_PATH", "COMFYUI_MAX_INSTANCES",
                                   "COMFYD_ADMIN_PASSWORD", "COMFYUI_LOG_DIR", "COMFYD_HUB_STORE", "COMFYUI_LAUNCHER",
                                   "COMFYUI_MEMORY_MAX", "COMFYUI_CPU_QUOTA", NULL};

static int setup(void **state) {
    for (const char *const *v = vars; *v; v++) unsetenv(*v);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cd-hubcfg-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
    for (const char *const *v = vars; *v; v++) unsetenv(*v);
    return 0;
}

static int load(cd_hub_config *cfg, char **extra, char *err) {
    char *argv[16] = {"comfyd", "hub", "--data-dir", tmpdir};
    int argc = 4;
    for (; extra && *extra; extra++) argv[argc++] = *extra;
    err[0] = '\0';
    return cd_hub_config_load(cfg, argc, argv, 2, stdout, err, 512);
}

static void test_defaults(void **state) {
    cd_hub_config cfg;
    char err[512];
    assert_int_equal(load(&cfg, NULL, err), 0);
    assert_string_equal(cfg.listen, "127.0.0.1");
    assert_int_equal(cfg.port, 8188);
    assert_int_equal(cfg.port_min, 8200);
    assert_int_equal(cfg.port_max, 8299);
    assert_string_equal(cfg.instance_listen, "127.0.0.1");
    assert_int_equal(cfg.startup_timeout_s, 240);
    assert_int_equal(cfg.heartbeat_interval_s, 30);
    assert_int_equal(cfg.heartbeat_timeout_ms, 2500);
    char want[256];
    snprintf(want, sizeof want, "%s/instances", tmpdir);
    assert_string_equal(cfg.instance_base_dir, want);
    snprintf(want, sizeof want, "%s/shared/models", tmpdir);
    assert_string_equal(cfg.models_dir, want);
    assert_non_null(strstr(cfg.command, "{comfyd} serve"));
    assert_null(cfg.repo_path);
    assert_null(cfg.config_file);
    assert_string_equal(cfg.store, ""); /* DATA_DIR/hub.sqlite3 */
    cd_hub_config_free(&cfg);
}

/* The store: the environment, overridden by --store. */
static void test_store(void **state) {
    cd_hub_config cfg;
    char err[512];
    setenv("COMFYD_HUB_STORE", "postgres://hub@db.example/comfyd", 1);
    assert_int_equal(load(&cfg, NULL, err), 0);
    assert_string_equal(cfg.store, "postgres://hub@db.example/comfyd");
    cd_hub_config_free(&cfg);
    char *flags[] = {"--store", "sqlite:/var/lib/comfyd/hub.sqlite3", NULL};
    assert_int_equal(load(&cfg, flags, err), 0);
    assert_string_equal(cfg.store, "sqlite:/var/lib/comfyd/hub.sqlite3");
    cd_hub_config_free(&cfg);
}

static void test_precedence(void **state) {
    char path[128];
    snprintf(path, sizeof path, "%s/hub.conf", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("# a comment\n\nCOMFYUI_PORT_RANGE = 9000-9009\nCOMFYUI_MAX_INSTANCES=\"3\"\nCOMFYD_HUB_PORT=7000\n", f);
    fclose(f);
    setenv("COMFYUI_MAX_INSTANCES", "4", 1);
    setenv("COMFYD_HUB_PORT", "7001", 1);
    cd_hub_config cfg;
    char err[512];
    char *flags[] = {"--port", "7002", NULL};
    assert_int_equal(load(&cfg, flags, err), 0);
    assert_string_equal(cfg.config_file, path); /* DATA_DIR/hub.conf is read when it exists */
    assert_int_equal(cfg.port_min, 9000);       /* file over default */
    assert_int_equal(cfg.port_max, 9009);
    assert_int_equal(cfg.max_instances, 4);     /* environment over file */
    assert_int_equal(cfg.port, 7002);           /* flag over environment */
    cd_hub_config_free(&cfg);
    char *derived[] = {"--comfyui-max-instances", "5", NULL};
    assert_int_equal(load(&cfg, derived, err), 0);
    assert_int_equal(cfg.max_instances, 5);
    cd_hub_config_free(&cfg);
}

static void test_errors(void **state) {
    cd_hub_config cfg;
    char err[512];
    char *range[] = {"--comfyui-port-range", "9000-8000", NULL};
    assert_int_equal(load(&cfg, range, err), -1);
    assert_non_null(strstr(err, "COMFYUI_PORT_RANGE"));
    cd_hub_config_free(&cfg);
    char *port[] = {"--port", "70000", NULL};
    assert_int_equal(load(&cfg, port, err), -1);
    cd_hub_config_free(&cfg);
    char *unknown[] = {"--no-such-flag", "1", NULL};
    assert_int_equal(load(&cfg, unknown, err), -1);
    assert_non_null(strstr(err, "--no-such-flag"));
    cd_hub_config_free(&cfg);
    char *missing[] = {"--port", NULL};
    assert_int_equal(load(&cfg, missing, err), -1);
    cd_hub_config_free(&cfg);
    char path[128];
    snprintf(path, sizeof path, "%s/other.conf", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("COMFYUI_PORT_RANG=1-2\n", f);
    fclose(f);
    char *conf[] = {"--config", path, NULL};
    assert_int_equal(load(&cfg, conf, err), -1);
    assert_non_null(strstr(err, "unknown setting 'COMFYUI_PORT_RANG'"));
    cd_hub_config_free(&cfg);
    setenv("COMFYUI_STARTUP_TIMEOUT_SECONDS", "soon", 1);
    assert_int_equal(load(&cfg, NULL, err), -1);
    assert_non_null(strstr(err, "environment"));
    unsetenv("COMFYUI_STARTUP_TIMEOUT_SECONDS");
    cd_hub_config_free(&cfg);
}

static void test_command_template(void **state) {
    cd_hub_config cfg;
    char err[512];
    setenv("COMFYUI_COMMAND", "{python} x.py --listen {listen} --port {port}  --base-directory {base_dir} "
                              "--tag u={user},p={project}", 1);
    assert_int_equal(load(&cfg, NULL, err), 0);
    cd_hub_command_vars v = {.listen = "127.0.0.1", .base_dir = "/a dir/with space", .user = "alice", .port = 8201,
                             .project = 7};
    char **argv = cd_hub_config_command_argv(&cfg, &v, err, sizeof err);
    assert_non_null(argv);
    const char *want[] = {"python3", "x.py", "--listen", "127.0.0.1", "--port", "8201", "--base-directory",
                          "/a dir/with space", "--tag", "u=alice,p=7", NULL};
    for (int i = 0; want[i]; i++) assert_string_equal(argv[i], want[i]);
    assert_null(argv[10]);
    cd_hub_argv_free(argv);
    cd_hub_config_free(&cfg);
    setenv("COMFYUI_COMMAND", "{comfyd} serve --port {prot}", 1);
    assert_int_equal(load(&cfg, NULL, err), 0);
    assert_null(cd_hub_config_command_argv(&cfg, &v, err, sizeof err));
    assert_non_null(strstr(err, "{prot}"));
    cd_hub_config_free(&cfg);
    /* a Python checkout changes the default command */
    unsetenv("COMFYUI_COMMAND");
    setenv("COMFYUI_REPO_PATH", tmpdir, 1);
    assert_int_equal(load(&cfg, NULL, err), 0);
    argv = cd_hub_config_command_argv(&cfg, &v, err, sizeof err);
    assert_string_equal(argv[0], "python3");
    assert_string_equal(argv[1], "main.py");
    assert_string_equal(argv[2], "--disable-auto-launch");
    cd_hub_argv_free(argv);
    cd_hub_config_free(&cfg);
}

/* COMFYUI_LAUNCHER and the systemd limits: checked at load, with the setting's name. */
static void test_launcher(void **state) {
    cd_hub_config cfg;
    char err[512];
    assert_int_equal(load(&cfg, NULL, err), 0);
    assert_string_equal(cfg.launcher, "local");
    assert_string_equal(cfg.memory_max, "");
    assert_string_equal(cfg.cpu_quota, "");
    cd_hub_config_free(&cfg);
    const char *memory_ok[] = {"4G", "512M", "1073741824", "1.5G", "25%", "100%", "0.5%", "infinity", "8T", "64K"};
    for (size_t i = 0; i < sizeof memory_ok / sizeof memory_ok[0]; i++) {
        char *flags[] = {"--comfyui-launcher", "systemd", "--comfyui-memory-max", (char *)memory_ok[i],
                         "--comfyui-cpu-quota", "150%", NULL};
        if (load(&cfg, flags, err) != 0) fail_msg("%s refused: %s", memory_ok[i], err);
        assert_string_equal(cfg.launcher, "systemd");
        assert_string_equal(cfg.memory_max, memory_ok[i]);
        assert_string_equal(cfg.cpu_quota, "150%");
        cd_hub_config_free(&cfg);
    }
    struct {
        const char *name, *value, *why;
    } bad[] = {
        {"COMFYUI_LAUNCHER", "docker", "COMFYUI_LAUNCHER: 'docker' is local or systemd"},
        {"COMFYUI_MEMORY_MAX", "4X", "COMFYUI_MEMORY_MAX: '4X'"},
        {"COMFYUI_MEMORY_MAX", "4GB", "COMFYUI_MEMORY_MAX"},
        {"COMFYUI_MEMORY_MAX", "1.5", "COMFYUI_MEMORY_MAX"},
        {"COMFYUI_MEMORY_MAX", "0", "COMFYUI_MEMORY_MAX"},
        {"COMFYUI_MEMORY_MAX", "-1G", "COMFYUI_MEMORY_MAX"},
        {"COMFYUI_MEMORY_MAX", "150%", "COMFYUI_MEMORY_MAX"},
        {"COMFYUI_MEMORY_MAX", "4G; rm", "COMFYUI_MEMORY_MAX"},
        {"COMFYUI_CPU_QUOTA", "2", "COMFYUI_CPU_QUOTA: '2' is a percentage"},
        {"COMFYUI_CPU_QUOTA", "0%", "COMFYUI_CPU_QUOTA"},
        {"COMFYUI_CPU_QUOTA", "%", "COMFYUI_CPU_QUOTA"},
        {"COMFYUI_CPU_QUOTA", "50%x", "COMFYUI_CPU_QUOTA"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("COMFYUI_LAUNCHER", "systemd", 1);
        setenv(bad[i].name, bad[i].value, 1);
        if (load(&cfg, NULL, err) == 0) fail_msg("%s=%s accepted", bad[i].name, bad[i].value);
        if (!strstr(err, bad[i].why)) fail_msg("%s=%s: %s", bad[i].name, bad[i].value, err);
        cd_hub_config_free(&cfg);
        unsetenv(bad[i].name);
    }
    /* a limit the local launcher could not apply is refused, not ignored */
    unsetenv("COMFYUI_LAUNCHER");
    setenv("COMFYUI_MEMORY_MAX", "4G", 1);
    assert_int_equal(load(&cfg, NULL, err), -1);
    assert_string_equal(err, "COMFYUI_MEMORY_MAX needs COMFYUI_LAUNCHER=systemd (a child process of the hub has no "
                             "limits of its own)");
    cd_hub_config_free(&cfg);
    unsetenv("COMFYUI_MEMORY_MAX");
    setenv("COMFYUI_CPU_QUOTA", "50%", 1);
    assert_int_equal(load(&cfg, NULL, err), -1);
    assert_non_null(strstr(err, "COMFYUI_CPU_QUOTA needs COMFYUI_LAUNCHER=systemd"));
    cd_hub_config_free(&cfg);
}

static void test_login_delay(void **state) {
    assert_int_equal(cd_auth_login_delay_ms(0), 0);
    assert_int_equal(cd_auth_login_delay_ms(2), 0);
    assert_int_equal(cd_auth_login_delay_ms(3), 1000);
    assert_int_equal(cd_auth_login_delay_ms(4), 2000);
    assert_int_equal(cd_auth_login_delay_ms(7), 16000);
    assert_int_equal(cd_auth_login_delay_ms(8), 30000);
    assert_int_equal(cd_auth_login_delay_ms(1000000), 30000);
}

static void test_names_and_passwords(void **state) {
    assert_null(cd_auth_username_problem("alice_1.b-c"));
    assert_non_null(cd_auth_username_problem(""));
    assert_non_null(cd_auth_username_problem(".hidden"));
    assert_non_null(cd_auth_username_problem("a/b"));
    assert_non_null(cd_auth_username_problem("a b"));
    assert_non_null(cd_auth_username_problem("\xc3\xa9t\xc3\xa9"));
    char longname[80];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    assert_non_null(cd_auth_username_problem(longname));
    assert_null(cd_auth_password_problem("12345678"));
    assert_non_null(cd_auth_password_problem("1234567"));
    assert_non_null(cd_auth_password_problem(NULL));
}

static void test_secrets(void **state) {
    char a[64], b[64], h[65];
    cd_auth_new_secret("cdt_", a, sizeof a);
    cd_auth_new_secret("cdt_", b, sizeof b);
    assert_int_equal(strlen(a), 4 + 43);
    assert_memory_equal(a, "cdt_", 4);
    assert_string_not_equal(a, b);
    cd_auth_secret_hash("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char hash[128];
    assert_int_equal(cd_auth_hash_password_now("correct horse", hash, sizeof hash), 0);
    assert_non_null(strstr(hash, "$argon2id$"));
    assert_int_equal(crypto_pwhash_str_verify(hash, "correct horse", 13), 0);
    assert_int_not_equal(crypto_pwhash_str_verify(hash, "correct horsf", 13), 0);
}

int main(void) {
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_template, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launcher, setup, teardown),
        cmocka_unit_test(test_login_delay),
        cmocka_unit_test(test_names_and_passwords),
        cmocka_unit_test(test_secrets),
    };
    return cmocka_run_group_tests_name("hub config and auth", tests, NULL, NULL);
}
