/* `comfyd models ...`: the catalog's models (model-list.json) and downloads into models/,
 * through the same manager as the server's /manager/queue/install_model (with resume of a
 * partial file and a SHA-256 check). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cli/commands.h"
#include "manager/manager.h"

static void models_usage(FILE *f) {
    fprintf(f, "usage: comfyd models [--base-directory D] [--channel URL|DIR] [--mode local|cache|remote] VERB\n"
               "verbs:\n"
               "  list                              the catalog's models and whether they are installed\n"
               "  download NAME|FILENAME            a model of the catalog (model-list.json)\n"
               "  download --url URL --folder F [--filename N] [--sha256 HEX]\n"
               "                                    any file into models/F/ (resumes a partial download)\n");
}

int cd_cmd_models(int argc, char **argv) {
    cd_cli_manager_opts o;
    cd_cli_manager_parse(argc, argv, &o);
    if (o.first >= argc || !strcmp(argv[o.first], "--help") || !strcmp(argv[o.first], "-h")) {
        models_usage(o.first >= argc ? stderr : stdout);
        return o.first >= argc ? 2 : 0;
    }
    cd_log_setup(CD_LOG_WARNING, false);
    const char *verb = argv[o.first];
    if (strcmp(verb, "list") && strcmp(verb, "download")) {
        fprintf(stderr, "comfyd models: unknown verb '%s'\n", verb);
        models_usage(stderr);
        return 2;
    }
    cd_manager *m = cd_cli_manager_open(&o);
    if (!m) return 1;
    char err[1024] = "";
    int rc = 0;
    json_t *list = cd_manager_model_list(m, o.mode, err, sizeof err);
    json_t *models = json_object_get(list, "models");
    if (!strcmp(verb, "list")) {
        if (!list) {
            fprintf(stderr, "comfyd: %s\n", err);
            rc = 1;
        } else {
            printf("%-40s %-16s %-9s %s\n", "NAME", "FOLDER", "INSTALLED", "FILENAME");
            size_t i;
            json_t *e;
            json_array_foreach(models, i, e) {
                const char *name = json_string_value(json_object_get(e, "name"));
                printf("%-40s %-16s %-9s %s\n", name ? name : "", json_string_value(json_object_get(e, "save_path")),
                       json_string_value(json_object_get(e, "installed")), json_string_value(json_object_get(e, "filename")));
            }
        }
    } else {
        const char *url = NULL, *folder = NULL, *filename = NULL, *sha = NULL, *name = NULL;
        for (int i = o.first + 1; i < argc; i++) {
            if (!strcmp(argv[i], "--url") && i + 1 < argc) url = argv[++i];
            else if (!strcmp(argv[i], "--folder") && i + 1 < argc) folder = argv[++i];
            else if (!strcmp(argv[i], "--filename") && i + 1 < argc) filename = argv[++i];
            else if (!strcmp(argv[i], "--sha256") && i + 1 < argc) sha = argv[++i];
            else name = argv[i];
        }
        json_t *item = NULL;
        if (url) {
            if (!filename) {
                filename = strrchr(url, '/');
                filename = filename ? filename + 1 : url;
            }
            item = json_pack("{s:s, s:s, s:s, s:s}", "url", url, "filename", filename, "save_path", folder ? folder : "etc",
                             "mode", o.mode);
            if (sha) json_object_set_new(item, "sha256", json_string(sha));
        } else if (name) {
            size_t i;
            json_t *e;
            json_array_foreach(models, i, e) {
                const char *n = json_string_value(json_object_get(e, "name"));
                const char *f = json_string_value(json_object_get(e, "filename"));
                if ((n && !strcmp(n, name)) || (f && !strcmp(f, name))) {
                    item = json_deep_copy(e);
                    json_object_set_new(item, "mode", json_string(o.mode));
                    break;
                }
            }
            if (!item) fprintf(stderr, "comfyd: no model named %s in the catalog\n", name);
        } else {
            models_usage(stderr);
        }
        if (!item) rc = 2;
        else {
            int r = cd_manager_run(m, CD_TASK_INSTALL_MODEL, item, cd_cli_manager_progress, NULL, err, sizeof err);
            rc = cd_cli_manager_report("download", json_string_value(json_object_get(item, "filename")), r, err);
            json_decref(item);
        }
    }
    json_decref(list);
    cd_manager_free(m);
    return rc;
}
