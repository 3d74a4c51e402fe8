/* `comfyd nodes ...`: the comfy-cli verbs over the same manager the
 * server's /manager routes drive (src/manager/manager.h). The operator at a shell is trusted
 * as cm-cli trusts it: no security level applies here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/path.h"
#include "cli/commands.h"
#include "manager/manager.h"

int cd_cli_manager_parse(int argc, char **argv, cd_cli_manager_opts *o) {
    memset(o, 0, sizeof *o);
    o->base = ".";
    o->mode = "cache";
    int i = 2;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--base-directory") || !strcmp(a, "--user-directory") || !strcmp(a, "--channel") ||
             !strcmp(a, "--mode")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--base-directory")) o->base = v;
            else if (!strcmp(a, "--user-directory")) o->user = v;
            else if (!strcmp(a, "--channel")) o->channel = v;
            else o->mode = v;
        } else {
            break;
        }
    }
    o->first = i;
    return 0;
}

cd_manager *cd_cli_manager_open(const cd_cli_manager_opts *o) {
    char *base = cd_path_absolute(o->base);
    char *cn = base ? cd_path_join(base, "custom_nodes") : NULL;
    char *models = base ? cd_path_join(base, "models") : NULL;
    char *user = o->user ? cd_path_absolute(o->user) : base ? cd_path_join(base, "user") : NULL;
    cd_manager *m = NULL;
    char err[512];
    if (cn && models && user && cd_path_mkdirs(user, 0755) == 0) {
        cd_manager_options mo = {.custom_nodes_dir = cn, .models_dir = models, .user_dir = user, .loopback = true};
        m = cd_manager_new(&mo, err, sizeof err);
        if (!m) fprintf(stderr, "comfyd: %s\n", err);
        else if (o->channel) cd_mconfig_set(&cd_manager_config(m)->channel_url, o->channel);
    } else {
        fprintf(stderr, "comfyd: cannot use the base directory %s\n", o->base);
    }
    free(base);
    free(cn);
    free(models);
    free(user);
    return m;
}

/* A progress bar on a terminal; nothing otherwise. */
void cd_cli_manager_progress(void *ctx, uint64_t done, uint64_t total) {
    (void)ctx;
    if (!isatty(2)) return;
    if (total) {
        int width = 30, fill = (int)(done * (uint64_t)width / total);
        fprintf(stderr, "\r  [%.*s%*s] %3d%% %.1f/%.1f MB", fill, "##############################", width - fill, "",
                (int)(done * 100 / total), done / 1048576.0, total / 1048576.0);
    } else {
        fprintf(stderr, "\r  %.1f MB", done / 1048576.0);
    }
}

int cd_cli_manager_report(const char *what, const char *name, int rc, const char *msg) {
    if (isatty(2)) fprintf(stderr, "\r\033[K");
    if (rc == 0) printf("%s %s: %s\n", what, name, msg[0] ? msg : "done");
    else fprintf(stderr, "%s %s: failed: %s\n", what, name, msg);
    return rc == 0 ? 0 : 1;
}

static void nodes_usage(FILE *f) {
    fprintf(f, "usage: comfyd nodes [--base-directory D] [--user-directory U] [--channel URL|DIR] [--mode local|cache|remote]\n"
               "                    VERB [ARGS]\n"
               "verbs:\n"
               "  list [all|installed|enabled|disabled|not-installed]   packs of the catalog and on disk\n"
               "  show NAME                 one pack: catalog entry and installed state\n"
               "  install NAME|GIT-URL...   install from the catalog (or a git URL) and build\n"
               "  uninstall NAME...         remove the pack and its disabled copies\n"
               "  update NAME...|all        to the newest commit (or the catalog's pin/version)\n"
               "  disable NAME...           move to custom_nodes/.disabled/\n"
               "  enable NAME...            move back\n"
               "  fix NAME...               rebuild from its sources\n"
               "  snapshot save|list|restore NAME|remove NAME\n"
               "The server loads packs at start: restart it (POST /manager/reboot) after a change.\n");
}

static json_t *item_for(const char *arg, const char *mode) {
    if (strstr(arg, "://") || arg[0] == '/')
        return json_pack("{s:s, s:[s], s:s}", "version", "unknown", "files", arg, "mode", mode);
    return json_pack("{s:s, s:s}", "id", arg, "mode", mode);
}

static int cmd_list(cd_manager *m, const cd_cli_manager_opts *o, const char *filter) {
    char err[512];
    json_t *list = cd_manager_getlist(m, o->mode, false, err, sizeof err);
    json_t *installed = cd_manager_installed(m);
    if (!list) {
        fprintf(stderr, "comfyd: %s\n", err);
        json_decref(installed);
        return 1;
    }
    json_t *packs = json_object_get(list, "node_packs");
    /* Installed packs the catalog does not list show too. */
    const char *k;
    json_t *v;
    json_object_foreach(installed, k, v) {
        if (!json_object_get(packs, k))
            json_object_set_new(packs, k, json_pack("{s:s, s:s, s:s}", "state", json_is_true(json_object_get(v, "enabled")) ? "enabled" : "disabled",
                                                    "version", json_string_value(json_object_get(v, "ver")), "title", ""));
    }
    printf("%-32s %-14s %-14s %s\n", "NAME", "STATE", "VERSION", "TITLE");
    json_object_foreach(packs, k, v) {
        const char *state = json_string_value(json_object_get(v, "state"));
        if (!state) continue;
        if (strcmp(filter, "all") && !(!strcmp(filter, "installed") && strcmp(state, "not-installed")) &&
            strcmp(filter, state))
            continue;
        const char *ver = json_string_value(json_object_get(v, "version"));
        const char *title = json_string_value(json_object_get(v, "title"));
        printf("%-32s %-14s %-14.14s %s\n", k, state, ver ? ver : "", title ? title : "");
    }
    json_decref(list);
    json_decref(installed);
    return 0;
}

static int cmd_show(cd_manager *m, const cd_cli_manager_opts *o, const char *name) {
    char err[512];
    json_t *list = cd_manager_getlist(m, o->mode, false, err, sizeof err);
    json_t *installed = cd_manager_installed(m);
    json_t *out = json_object();
    json_t *e = list ? json_object_get(json_object_get(list, "node_packs"), name) : NULL;
    if (e) json_object_set(out, "catalog", e);
    if (json_object_get(installed, name)) json_object_set(out, "installed", json_object_get(installed, name));
    int rc = json_object_size(out) ? 0 : 1;
    if (rc) fprintf(stderr, "comfyd: no pack named %s in the catalog or custom_nodes/\n", name);
    else {
        char *t = json_dumps(out, JSON_INDENT(2));
        if (t) puts(t);
        free(t);
    }
    json_decref(out);
    json_decref(list);
    json_decref(installed);
    return rc;
}

static int cmd_snapshot(cd_manager *m, int argc, char **argv, int i) {
    const char *verb = i < argc ? argv[i] : "list";
    char err[512] = "";
    if (!strcmp(verb, "save")) {
        char *name = NULL;
        if (cd_manager_snapshot_save(m, &name, err, sizeof err) < 0) {
            fprintf(stderr, "comfyd: %s\n", err);
            return 1;
        }
        printf("saved snapshot %s\n", name);
        free(name);
        return 0;
    }
    if (!strcmp(verb, "list")) {
        json_t *l = cd_manager_snapshot_list(m);
        size_t k;
        json_t *v;
        json_array_foreach(l, k, v) puts(json_string_value(v));
        json_decref(l);
        return 0;
    }
    if ((!strcmp(verb, "restore") || !strcmp(verb, "remove")) && i + 1 < argc) {
        const char *name = argv[i + 1];
        if (!cd_manager_snapshot_name_ok(name)) {
            fprintf(stderr, "comfyd: invalid snapshot name\n");
            return 1;
        }
        if (!strcmp(verb, "remove")) return cd_manager_snapshot_remove(m, name) == 0 ? 0 : 1;
        json_t *snap = cd_manager_snapshot_load(m, name);
        if (!snap) {
            fprintf(stderr, "comfyd: no snapshot %s\n", name);
            return 1;
        }
        int rc = cd_manager_run(m, CD_TASK_RESTORE, snap, cd_cli_manager_progress, NULL, err, sizeof err);
        json_decref(snap);
        return cd_cli_manager_report("restore", name, rc, err);
    }
    fprintf(stderr, "usage: comfyd nodes snapshot save|list|restore NAME|remove NAME\n");
    return 2;
}

int cd_cmd_nodes(int argc, char **argv) {
    cd_cli_manager_opts o;
    cd_cli_manager_parse(argc, argv, &o);
    if (o.first >= argc || !strcmp(argv[o.first], "--help") || !strcmp(argv[o.first], "-h")) {
        nodes_usage(o.first >= argc ? stderr : stdout);
        return o.first >= argc ? 2 : 0;
    }
    cd_log_setup(CD_LOG_WARNING, false);
    const char *verb = argv[o.first];
    static const struct {
        const char *name;
        cd_task_kind kind;
    } ops[] = {{"install", CD_TASK_INSTALL}, {"uninstall", CD_TASK_UNINSTALL}, {"update", CD_TASK_UPDATE},
               {"disable", CD_TASK_DISABLE}, {"enable", CD_TASK_ENABLE},       {"fix", CD_TASK_FIX},
               {"reinstall", CD_TASK_REINSTALL}};
    int op = -1;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(verb, ops[k].name)) op = (int)k;
    if (op < 0 && strcmp(verb, "list") && strcmp(verb, "show") && strcmp(verb, "snapshot")) {
        fprintf(stderr, "comfyd nodes: unknown verb '%s'\n", verb);
        nodes_usage(stderr);
        return 2;
    }
    cd_manager *m = cd_cli_manager_open(&o);
    if (!m) return 1;
    int rc = 0;
    if (!strcmp(verb, "list")) rc = cmd_list(m, &o, o.first + 1 < argc ? argv[o.first + 1] : "all");
    else if (!strcmp(verb, "show")) {
        if (o.first + 1 >= argc) {
            fprintf(stderr, "usage: comfyd nodes show NAME\n");
            rc = 2;
        } else rc = cmd_show(m, &o, argv[o.first + 1]);
    } else if (!strcmp(verb, "snapshot")) rc = cmd_snapshot(m, argc, argv, o.first + 1);
    else {
        if (o.first + 1 >= argc) {
            fprintf(stderr, "usage: comfyd nodes %s NAME...\n", verb);
            cd_manager_free(m);
            return 2;
        }
        json_t *targets = json_array();
        if ((ops[op].kind == CD_TASK_UPDATE || ops[op].kind == CD_TASK_FIX || ops[op].kind == CD_TASK_DISABLE ||
             ops[op].kind == CD_TASK_ENABLE) &&
            !strcmp(argv[o.first + 1], "all")) {
            json_t *inst = cd_manager_installed(m);
            const char *k;
            json_t *v;
            json_object_foreach(inst, k, v) json_array_append_new(targets, json_string(k));
            json_decref(inst);
        } else {
            for (int i = o.first + 1; i < argc; i++) json_array_append_new(targets, json_string(argv[i]));
        }
        size_t i;
        json_t *t;
        json_array_foreach(targets, i, t) {
            const char *arg = json_string_value(t);
            json_t *item = item_for(arg, o.mode);
            char err[1024];
            int r = cd_manager_run(m, ops[op].kind, item, cd_cli_manager_progress, NULL, err, sizeof err);
            json_decref(item);
            if (cd_cli_manager_report(verb, arg, r, err)) rc = 1;
        }
        json_decref(targets);
    }
    cd_manager_free(m);
    return rc;
}

