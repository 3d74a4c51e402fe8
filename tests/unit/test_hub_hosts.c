/* The hosts registry (hub/hosts.h): the implicit local host from the settings, hosts read from a
 * real store, placement (least loaded with room, pins to a name or a label, unreachable and
 * disabled hosts skipped, the reasons given), reloads after changes and the checks of a host
 * record before it is stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/hosts.h"

/* The settings a host record is checked against: "local" on 8200-8299, the default command. */
static char default_command[] = "{comfyd} serve --listen {listen} --port {port} --base-directory {base_dir}";
static const cd_hub_config cfg_for_checks = {.port_min = 8200, .port_max = 8299, .command = default_command};

typedef struct {
    char dir[64], path[96];
    cd_store *st;
    uv_loop_t loop;
    cd_hub_config cfg;
    cd_hosts *hs;
    int load[8]; /* running instances, by position in the list */
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cd-hubhosts-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/hub.db", f->dir);
    char err[256] = "";
    assert_int_equal(cd_store_sqlite_open(f->path, &f->st, err, sizeof err), 0);
    uv_loop_init(&f->loop);
    f->cfg.instance_listen = "127.0.0.1";
    f->cfg.port_min = 8200;
    f->cfg.port_max = 8203;
    f->cfg.heartbeat_interval_s = 30;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    cd_hosts_free(f->hs);
    cd_store_close(f->st);
    uv_loop_close(&f->loop);
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static cd_store_host ssh_host(const char *name, const char *labels, int max) {
    cd_store_host h = {.ssh_port = 22, .port_min = 9000, .port_max = 9009, .max_instances = max};
    snprintf(h.name, sizeof h.name, "%s", name);
    snprintf(h.address, sizeof h.address, "10.0.0.7");
    snprintf(h.launcher, sizeof h.launcher, "ssh");
    snprintf(h.ssh_target, sizeof h.ssh_target, "comfy@%s", name);
    snprintf(h.labels, sizeof h.labels, "%s", labels);
    return h;
}

static void add(fixture *f, cd_store_host h) {
    assert_null(cd_hosts_record_problem(&h, &cfg_for_checks));
    assert_int_equal(f->st->ops->host_create(f->st, &h), 0);
}

static void open_hosts(fixture *f) {
    char err[256] = "";
    assert_int_equal(cd_hosts_new(&f->loop, &f->cfg, f->st, &f->hs, err, sizeof err), 0);
}

static int position(fixture *f, const cd_host *h) {
    int i = 0;
    for (cd_host *x = cd_hosts_list(f->hs); x; x = x->next, i++)
        if (x == h) return i;
    fail_msg("host not in the list");
    return -1;
}

static int load_of(const cd_host *h, void *arg) {
    fixture *f = arg;
    return f->load[position(f, h)];
}

static const char *place(fixture *f, const char *pin, char *why) {
    why[0] = '\0';
    cd_host *h = cd_hosts_place(f->hs, pin, load_of, f, why, 256);
    return h ? h->rec.name : NULL;
}

static void test_local_only(void **state) {
    fixture *f = *state;
    f->cfg.max_instances = 2;
    open_hosts(f);
    cd_host *local = cd_hosts_list(f->hs);
    assert_string_equal(local->rec.name, "local");
    assert_string_equal(local->rec.launcher, "local");
    assert_string_equal(local->rec.address, "127.0.0.1");
    assert_null(local->next);
    assert_int_equal(cd_host_cap(local), 2);
    char why[256];
    assert_string_equal(place(f, "", why), "local");
    f->load[0] = 2;
    /* the message the hub gave before it had hosts */
    assert_null(place(f, "", why));
    assert_string_equal(why, "the hub already runs its maximum of 2 instances; stop one first");
}

static void test_placement(void **state) {
    fixture *f = *state;
    add(f, ssh_host("gpu1", "gpu,a100", 2));
    add(f, ssh_host("gpu2", "gpu,h100", 4));
    open_hosts(f);
    char why[256];
    /* all empty: the first, local */
    assert_string_equal(place(f, "", why), "local");
    f->load[0] = 1; /* local 1/4 */
    assert_string_equal(place(f, "", why), "gpu1"); /* 0/2 */
    f->load[1] = 1; /* gpu1 1/2 */
    assert_string_equal(place(f, "", why), "gpu2");
    f->load[2] = 1; /* gpu2 1/4 ties with local: the earlier */
    assert_string_equal(place(f, "", why), "local");
    /* pins: a label, a name, both gpus by "gpu" */
    assert_string_equal(place(f, "a100", why), "gpu1");
    assert_string_equal(place(f, "gpu2", why), "gpu2");
    assert_string_equal(place(f, "gpu", why), "gpu2"); /* 1/4 < 1/2 */
    assert_string_equal(place(f, "local", why), "local");
    assert_null(place(f, "a10", why)); /* a label is matched whole */
    assert_string_equal(why, "no host is named or labelled 'a10' (or it is disabled)");
    f->load[1] = 2;
    assert_null(place(f, "a100", why));
    assert_string_equal(why, "every host for 'a100' runs its maximum of instances; stop one first");
    f->load[0] = 4;
    f->load[2] = 4;
    assert_null(place(f, "", why));
    assert_string_equal(why, "every host runs its maximum of instances; stop one first");
}

static void test_unreachable_and_disabled(void **state) {
    fixture *f = *state;
    add(f, ssh_host("gpu1", "gpu", 0));
    cd_store_host off = ssh_host("gpu2", "gpu", 0);
    off.disabled = true;
    add(f, off);
    open_hosts(f);
    cd_host *gpu1 = cd_hosts_find(f->hs, "gpu1");
    assert_non_null(gpu1);
    assert_true(gpu1->reachable);
    assert_int_equal(cd_host_cap(gpu1), 10); /* the port range */
    gpu1->reachable = false;
    snprintf(gpu1->reason, sizeof gpu1->reason, "Connection refused");
    char why[256];
    assert_null(place(f, "gpu", why));
    assert_string_equal(why, "host gpu1 is unreachable: Connection refused");
    assert_string_equal(place(f, "", why), "local");
}

static void test_reload(void **state) {
    fixture *f = *state;
    add(f, ssh_host("gpu1", "gpu", 0));
    open_hosts(f);
    cd_host *gpu1 = cd_hosts_find(f->hs, "gpu1");
    assert_non_null(gpu1);
    assert_string_equal(gpu1->ssh.target, "comfy@gpu1");
    cd_store_host *list;
    size_t n;
    assert_int_equal(f->st->ops->host_list(f->st, &list, &n), 0);
    cd_store_host h = list[0];
    free(list);
    snprintf(h.ssh_target, sizeof h.ssh_target, "other@gpu1");
    assert_int_equal(f->st->ops->host_update(f->st, &h), 0);
    add(f, ssh_host("gpu2", "", 0));
    assert_int_equal(cd_hosts_reload(f->hs), 0);
    /* changed in place: an instance's pointer to it stays good */
    assert_ptr_equal(cd_hosts_find(f->hs, "gpu1"), gpu1);
    assert_string_equal(gpu1->ssh.target, "other@gpu1");
    assert_non_null(cd_hosts_find(f->hs, "gpu2"));
    assert_int_equal(f->st->ops->host_delete(f->st, h.id), 0);
    assert_int_equal(cd_hosts_reload(f->hs), 0);
    assert_null(cd_hosts_find(f->hs, "gpu1"));
    assert_true(gpu1->removed); /* kept in memory while the hub runs */
    char why[256];
    assert_null(place(f, "gpu1", why));
}

static void test_record_problems(void **state) {
    (void)state;
    cd_store_host ok = ssh_host("gpu1", "gpu,a100", 0);
    assert_null(cd_hosts_record_problem(&ok, &cfg_for_checks));
    struct {
        const char *field, *value;
    } bad[] = {
        {"name", "local"}, {"name", ""}, {"name", "-x"}, {"name", "a b"}, {"name", "a/b"},
        {"address", "gpu1.lan"}, {"address", "10.0.0.1; rm -rf /"}, {"launcher", "systemd"},
        {"ssh_target", "-oProxyCommand=x"}, {"ssh_target", "a b"}, {"ssh_target", "a@b@c"}, {"ssh_target", "x;y"},
        {"ssh_key", "key"}, {"ssh_options", "ProxyCommand=nc %h %p"}, {"ssh_options", "LocalCommand=id"},
        {"ssh_options", "PKCS11Provider=/tmp/x.so"}, {"ssh_options", "LogLevel=ERROR\nKnownHostsCommand=/bin/x"},
        {"ssh_options", "StrictHostKeyChecking no"},
        {"ssh_options", "UserKnownHostsFile=/root/.ssh/authorized_keys"}, /* a key line appended there */
        {"ssh_options", "HostKeyAlias=no-pty,command=x"}, {"address", "0.0.0.0"}, {"address", "::"},
        {"base_dir", "relative"}, {"labels", "a,,b"},
        {"labels", "a b"}, {"labels", ","},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cd_store_host h = ok;
        char *dst = !strcmp(bad[i].field, "name")          ? h.name
                    : !strcmp(bad[i].field, "address")     ? h.address
                    : !strcmp(bad[i].field, "launcher")    ? h.launcher
                    : !strcmp(bad[i].field, "ssh_target")  ? h.ssh_target
                    : !strcmp(bad[i].field, "ssh_key")     ? h.ssh_key
                    : !strcmp(bad[i].field, "ssh_options") ? h.ssh_options
                    : !strcmp(bad[i].field, "base_dir")    ? h.base_dir
                                                           : h.labels;
        strcpy(dst, bad[i].value);
        if (!cd_hosts_record_problem(&h, &cfg_for_checks)) fail_msg("%s '%s' was accepted", bad[i].field, bad[i].value);
    }
    cd_store_host opts = ok;
    strcpy(opts.ssh_options, "StrictHostKeyChecking=no\nUserKnownHostsFile=/dev/null\nLogLevel=ERROR");
    assert_null(cd_hosts_record_problem(&opts, &cfg_for_checks));
    cd_store_host ports = ok;
    ports.port_min = 9010;
    ports.port_max = 9000;
    assert_non_null(cd_hosts_record_problem(&ports, &cfg_for_checks));
    cd_store_host v6 = ok;
    strcpy(v6.address, "fd00::7");
    assert_null(cd_hosts_record_problem(&v6, &cfg_for_checks));
}

/* A remote kill is guarded by " --port N " in the pid's command line: a command must say it. */
static void test_record_command_names_port(void **state) {
    (void)state;
    cd_store_host h = ssh_host("gpu1", "", 0);
    const char *good[] = {"", "{comfyd} serve --port {port}", "python3 main.py --listen {listen} --port {port}",
                          "  x  --port  {port}  "};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        strcpy(h.command, good[i]);
        if (cd_hosts_record_problem(&h, &cfg_for_checks)) fail_msg("'%s' was refused", good[i]);
    }
    const char *bad[] = {"{comfyd} serve", "{comfyd} serve --port={port}", "{comfyd} serve --port 8200",
                         "{comfyd} serve -p {port}", "{comfyd} serve --port", "{comfyd} serve {port} --port"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(h.command, bad[i]);
        const char *why = cd_hosts_record_problem(&h, &cfg_for_checks);
        if (!why || !strstr(why, "--port {port}")) fail_msg("'%s' was accepted (%s)", bad[i], why ? why : "");
    }
    /* no command of its own: COMFYUI_COMMAND's is the one checked */
    char no_port[] = "{comfyd} serve --listen {listen}";
    cd_hub_config cfg = cfg_for_checks;
    cfg.command = no_port;
    h.command[0] = '\0';
    const char *why = cd_hosts_record_problem(&h, &cfg);
    assert_non_null(why);
    assert_non_null(strstr(why, "COMFYUI_COMMAND"));
}

/* A host on this machine's loopback shares its ports with "local". */
static void test_record_loopback_ports(void **state) {
    (void)state;
    struct {
        const char *address;
        int min, max;
        bool ok;
    } cases[] = {
        {"127.0.0.1", 8250, 8260, false}, {"127.0.0.1", 8100, 8200, false}, {"127.0.0.1", 8299, 8400, false},
        {"127.9.8.7", 8200, 8299, false}, {"::1", 8000, 9000, false},        {"::ffff:127.0.0.1", 8210, 8210, false},
        {"127.0.0.1", 9000, 9009, true},  {"127.0.0.1", 8100, 8199, true},  {"::1", 8300, 8400, true},
        {"10.0.0.7", 8200, 8299, true},   {"128.0.0.1", 8200, 8299, true},  {"::2", 8200, 8299, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cd_store_host h = ssh_host("gpu1", "", 0);
        strcpy(h.address, cases[i].address);
        h.port_min = cases[i].min;
        h.port_max = cases[i].max;
        const char *why = cd_hosts_record_problem(&h, &cfg_for_checks);
        if (cases[i].ok && why) fail_msg("%s %d-%d refused: %s", cases[i].address, cases[i].min, cases[i].max, why);
        if (!cases[i].ok && (!why || !strstr(why, "COMFYUI_PORT_RANGE")))
            fail_msg("%s %d-%d accepted (%s)", cases[i].address, cases[i].min, cases[i].max, why ? why : "");
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_local_only), T(test_placement), T(test_unreachable_and_disabled), T(test_reload),
        cmocka_unit_test(test_record_problems), cmocka_unit_test(test_record_command_names_port),
        cmocka_unit_test(test_record_loopback_ports),
    };
    return cmocka_run_group_tests_name("hub_hosts", tests, NULL, NULL);
}
