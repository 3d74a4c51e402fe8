#include "manager/manager.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <comfyd/node.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/log.h"
#include "base/path.h"
#include "base/str.h"
#include "manager/archive.h"
#include "manager/catalog.h"
#include "manager/download.h"
#include "manager/gitops.h"
#include "manager/packs.h"

#ifndef COMFYD_DEFAULT_CHANNEL_DIR
#define COMFYD_DEFAULT_CHANNEL_DIR "catalog"
#endif

/* The text of include/comfyd/node.h, built in (src/manager/CMake), so that packs are built
 * against the header of the very binary that will load them. */
extern const unsigned char cd_node_h_text[];
extern const size_t cd_node_h_len;

typedef struct task {
    uint64_t id;
    cd_task_kind kind;
    char *ui_id;
    json_t *params;
    struct task *next;
} task;

struct cd_manager {
    char *custom_nodes_dir, *models_dir, *user_dir, *dir, *include_dir, *default_channel, *config_path;
    bool loopback, git_ready;
    cd_manager_event_fn on_event;
    void *ctx;
    cd_mconfig cfg;

    pthread_mutex_t lock; /* everything below */
    task *head, *tail;
    size_t queued;
    bool processing, thread_live;
    pthread_t thread;
    uint64_t next_id;
    json_t *nodepack_result, *model_result;
    size_t done_count, in_progress;
    volatile int cancel;
    /* progress throttling of the running download */
    const char *dl_ui_id;
    const char *dl_name;
    uint64_t dl_last_ms;
    void (*cli_progress)(void *ctx, uint64_t done, uint64_t total);
    void *cli_ctx;
};

static void emit(cd_manager *m, const char *type, json_t *data) {
    if (m->on_event) m->on_event(m->ctx, type, data);
    else json_decref(data);
}

static int write_sdk_header(cd_manager *m) {
    char *dir = cd_path_join(m->include_dir, "comfyd");
    char *file = dir ? cd_path_join(dir, "node.h") : NULL;
    int rc = -1;
    if (file && cd_path_mkdirs(dir, 0755) == 0) rc = cd_file_write_atomic(file, cd_node_h_text, cd_node_h_len);
    free(dir);
    free(file);
    return rc;
}

cd_manager *cd_manager_new(const cd_manager_options *o, char *err, size_t errlen) {
    cd_manager *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    pthread_mutex_init(&m->lock, NULL);
    m->custom_nodes_dir = strdup(o->custom_nodes_dir);
    m->models_dir = strdup(o->models_dir);
    m->user_dir = strdup(o->user_dir);
    m->dir = cd_path_join(o->user_dir, "__manager");
    m->include_dir = m->dir ? cd_path_join(m->dir, "sdk/include") : NULL;
    m->config_path = m->dir ? cd_path_join(m->dir, "config.ini") : NULL;
    const char *dc = o->default_channel ? o->default_channel : getenv("COMFYD_DEFAULT_CHANNEL");
    m->default_channel = strdup(dc && *dc ? dc : COMFYD_DEFAULT_CHANNEL_DIR);
    m->nodepack_result = json_object();
    m->model_result = json_object();
    if (!m->custom_nodes_dir || !m->models_dir || !m->user_dir || !m->include_dir || !m->config_path ||
        !m->default_channel || !m->nodepack_result || !m->model_result)
        goto oom;
    m->loopback = o->loopback;
    m->on_event = o->on_event;
    m->ctx = o->ctx;
    m->next_id = 1;
    char *warning = NULL;
    if (cd_mconfig_load(&m->cfg, m->config_path, &warning) < 0) goto oom;
    if (warning) {
        cd_warn("%s", warning);
        free(warning);
    }
    char *snap = cd_path_join(m->dir, "snapshots");
    if (!snap || cd_path_mkdirs(snap, 0755) < 0 || cd_path_mkdirs(m->custom_nodes_dir, 0755) < 0) {
        snprintf(err, errlen, "cannot create %s", snap ? snap : m->dir);
        free(snap);
        cd_manager_free(m);
        return NULL;
    }
    free(snap);
    if (write_sdk_header(m) < 0) cd_warn("manager: cannot write the SDK header under %s", m->include_dir);
    cd_git_init();
    m->git_ready = true;
    return m;
oom:
    snprintf(err, errlen, "out of memory");
    cd_manager_free(m);
    return NULL;
}

static void task_free(task *t) {
    if (!t) return;
    free(t->ui_id);
    json_decref(t->params);
    free(t);
}

void cd_manager_free(cd_manager *m) {
    if (!m) return;
    pthread_mutex_lock(&m->lock);
    m->cancel = 1;
    for (task *t = m->head, *n; t; t = n) {
        n = t->next;
        task_free(t);
    }
    m->head = m->tail = NULL;
    m->queued = 0;
    bool live = m->thread_live;
    pthread_mutex_unlock(&m->lock);
    if (live) {
        pthread_join(m->thread, NULL);
    }
    if (m->git_ready) cd_git_shutdown();
    cd_mconfig_free(&m->cfg);
    json_decref(m->nodepack_result);
    json_decref(m->model_result);
    free(m->custom_nodes_dir);
    free(m->models_dir);
    free(m->user_dir);
    free(m->dir);
    free(m->include_dir);
    free(m->default_channel);
    free(m->config_path);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

cd_mconfig *cd_manager_config(cd_manager *m) { return &m->cfg; }
int cd_manager_save_config(cd_manager *m) { return cd_mconfig_save(&m->cfg, m->config_path); }
const char *cd_manager_dir(const cd_manager *m) { return m->dir; }
bool cd_manager_loopback(const cd_manager *m) { return m->loopback; }
bool cd_manager_allowed(const cd_manager *m, cd_risk risk) {
    return cd_policy_allowed(m->cfg.security_level, m->loopback, risk);
}

/* ---- catalog ---- */

static const char *channel_for(cd_manager *m, const char *mode) {
    if (mode && !strcmp(mode, "local")) return m->default_channel;
    return m->cfg.channel_url && *m->cfg.channel_url ? m->cfg.channel_url : m->default_channel;
}

static cd_catalog *load_catalog(cd_manager *m, const char *mode, char *err, size_t errlen) {
    cd_catalog *cat = NULL;
    if (cd_catalog_load(channel_for(m, mode), &cat, err, errlen) < 0) {
        /* ComfyUI-Manager falls back to the bundled copy on a network error. */
        char e2[256];
        if (strcmp(channel_for(m, mode), m->default_channel)) {
            cd_warn("manager: channel %s: %s; using the bundled channel", channel_for(m, mode), err);
            if (cd_catalog_load(m->default_channel, &cat, e2, sizeof e2) == 0) return cat;
        }
        return NULL;
    }
    return cat;
}

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

json_t *cd_manager_installed(cd_manager *m) {
    json_t *all = cd_packs_installed(m->custom_nodes_dir);
    /* ComfyUI-Manager's shape; our extra fields stay for the command line. */
    return all;
}

json_t *cd_manager_getlist(cd_manager *m, const char *mode, bool check_updates, char *err, size_t errlen) {
    cd_catalog *cat = load_catalog(m, mode, err, errlen);
    if (!cat) return NULL;
    json_t *installed = cd_manager_installed(m);
    json_t *packs = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(cat->nodes, i, e) {
        char *key = cd_catalog_entry_key(e);
        if (!key || !*key) {
            free(key);
            continue;
        }
        json_t *p = json_deep_copy(e);
        json_t *inst = json_object_get(installed, key);
        const char *state = !inst ? "not-installed" : json_is_true(json_object_get(inst, "enabled")) ? "enabled" : "disabled";
        const char *cat_ver = str(e, "version");
        const char *ver = inst ? str(inst, "ver") : cat_ver ? cat_ver : "unknown";
        json_object_set_new(p, "state", json_string(state));
        json_object_set_new(p, "version", json_string(ver ? ver : "unknown"));
        if (inst) json_object_set_new(p, "active_version", json_string(ver ? ver : "unknown"));
        const char *update_state = "false";
        if (check_updates && inst && json_is_true(json_object_get(inst, "git"))) {
            char *dir = cd_path_join(m->custom_nodes_dir, str(inst, "path"));
            char target[41], e2[256];
            int r = dir ? cd_git_check_update(dir, str(e, "ref"), target, e2, sizeof e2) : -1;
            update_state = r > 0 ? "true" : r == 0 ? "false" : "fail";
            free(dir);
        }
        json_object_set_new(p, "update-state", json_string(update_state));
        json_object_set_new(p, "health", json_string("-"));
        const char *f0 = json_string_value(json_array_get(json_object_get(e, "files"), 0));
        json_object_set_new(p, "repository", json_string(str(e, "repository") ? str(e, "repository") : f0));
        json_object_set_new(p, "stars", json_integer(-1));
        json_object_set_new(p, "last_update", json_integer(-1));
        json_object_set_new(p, "trust", json_false());
        if (!json_object_get(p, "id")) json_object_set_new(p, "id", json_string(key));
        json_object_set_new(packs, key, p);
        free(key);
    }
    json_t *out = json_pack("{s:s, s:o}", "channel", strcmp(channel_for(m, mode), m->default_channel) ? "custom" : "default",
                            "node_packs", packs);
    json_decref(installed);
    cd_catalog_free(cat);
    return out;
}

json_t *cd_manager_mappings(cd_manager *m, const char *mode, char *err, size_t errlen) {
    cd_catalog *cat = load_catalog(m, mode && !strcmp(mode, "nickname") ? "local" : mode, err, errlen);
    if (!cat) return NULL;
    json_t *out = json_object();
    const char *url;
    json_t *v;
    json_object_foreach(cat->ext_map, url, v) {
        /* Keyed by the pack id where the catalog knows the URL, as ComfyUI-Manager re-keys by
         * registry id. */
        json_t *e = cd_catalog_find(cat, url);
        const char *id = e ? str(e, "id") : NULL;
        json_object_set(out, id ? id : url, v);
    }
    cd_catalog_free(cat);
    return out;
}

json_t *cd_manager_model_list(cd_manager *m, const char *mode, char *err, size_t errlen) {
    cd_catalog *cat = load_catalog(m, mode, err, errlen);
    if (!cat) return NULL;
    json_t *models = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(cat->models, i, e) {
        json_t *c = json_deep_copy(e);
        char *folder = cd_catalog_model_folder(e);
        bool installed = false;
        if (folder) {
            cd_buf rel = CD_BUF_INIT;
            cd_buf_printf(&rel, "%s/%s", folder, str(e, "filename"));
            char *p = rel.data ? cd_path_join_confined(m->models_dir, rel.data) : NULL;
            struct stat st;
            installed = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
            free(p);
            cd_buf_free(&rel);
        }
        free(folder);
        json_object_set_new(c, "installed", json_string(installed ? "True" : "False"));
        json_array_append_new(models, c);
    }
    cd_catalog_free(cat);
    return json_pack("{s:o}", "models", models);
}

int cd_manager_fetch_updates(cd_manager *m, char *err, size_t errlen) {
    json_t *installed = cd_manager_installed(m);
    int any = 0;
    const char *name;
    json_t *v;
    json_object_foreach(installed, name, v) {
        if (!json_is_true(json_object_get(v, "git")) || !json_is_true(json_object_get(v, "enabled"))) continue;
        char *dir = cd_path_join(m->custom_nodes_dir, str(v, "path"));
        char target[41], e[256];
        int r = dir ? cd_git_check_update(dir, NULL, target, e, sizeof e) : -1;
        if (r < 0) cd_warn("manager: %s: %s", name, e);
        if (r > 0) any = 1;
        free(dir);
    }
    json_decref(installed);
    (void)err;
    (void)errlen;
    return any;
}

/* ---- request checks ---- */

/* The pack name a request item means: its id, or for version "unknown" the last segment of
 * files[0] (ComfyUI-Manager's rule). New string or NULL. */
static char *item_name(const json_t *item) {
    const char *id = str(item, "id");
    const char *ver = str(item, "version");
    const char *f0 = json_string_value(json_array_get(json_object_get(item, "files"), 0));
    if (!f0) f0 = str(item, "repository");
    if (!f0) f0 = str(item, "url");
    if ((!id || (ver && !strcmp(ver, "unknown"))) && f0) {
        json_t *tmp = json_pack("{s:[s]}", "files", f0);
        char *k = cd_catalog_entry_key(tmp);
        json_decref(tmp);
        return k;
    }
    return id ? strdup(id) : NULL;
}

int cd_manager_install_risk(cd_manager *m, const json_t *item, cd_risk *risk, bool *unknown_url, char *err,
                            size_t errlen) {
    *unknown_url = false;
    if (!json_is_object(item)) {
        snprintf(err, errlen, "Invalid installation request");
        return -1;
    }
    char *name = item_name(item);
    if (!name || !cd_pack_name_is_valid(name)) {
        free(name);
        snprintf(err, errlen, "Invalid installation request");
        return -1;
    }
    free(name);
    cd_catalog *cat = load_catalog(m, str(item, "mode") ? str(item, "mode") : "cache", err, errlen);
    const char *ver = str(item, "version");
    const char *f0 = json_string_value(json_array_get(json_object_get(item, "files"), 0));
    if (!f0) f0 = str(item, "repository");
    *risk = CD_RISK_MIDDLE;
    if (ver && !strcmp(ver, "unknown")) {
        if (!f0) {
            cd_catalog_free(cat);
            snprintf(err, errlen, "Invalid installation request");
            return -1;
        }
        if (!cd_catalog_url_listed(cat, f0)) {
            *risk = CD_RISK_HIGH;
            *unknown_url = true;
        }
    } else if (str(item, "id") && !cd_catalog_find(cat, str(item, "id"))) {
        /* not in the catalog by id: only its git URL can say what it is */
        if (f0 && !cd_catalog_url_listed(cat, f0)) {
            *risk = CD_RISK_HIGH;
            *unknown_url = true;
        } else if (!f0) {
            cd_catalog_free(cat);
            snprintf(err, errlen, "Node '%s' not found in the catalog", str(item, "id"));
            return -2;
        }
    }
    /* pip packages are never installed by comfyd (no Python): ComfyUI-Manager's "block" */
    if (json_array_size(json_object_get(item, "pip")) > 0) *risk = CD_RISK_BLOCK;
    cd_catalog_free(cat);
    return 0;
}

int cd_manager_check_model(cd_manager *m, const json_t *item, char *err, size_t errlen) {
    if (!json_is_object(item) || !str(item, "filename") || !str(item, "save_path")) {
        snprintf(err, errlen, "Invalid model install request is detected");
        return -1;
    }
    cd_catalog *cat = load_catalog(m, str(item, "mode") ? str(item, "mode") : "cache", err, errlen);
    json_t *entry = cat ? cd_catalog_find_model(cat, str(item, "save_path"), str(item, "base"), str(item, "filename")) : NULL;
    int rc = 0;
    char *folder = entry ? cd_catalog_model_folder(entry) : NULL;
    if (!entry || !folder) {
        snprintf(err, errlen, "Invalid model install request is detected");
        rc = -1;
    } else if (!cd_str_ends_with_ci(str(entry, "filename"), ".safetensors") && !cd_manager_allowed(m, CD_RISK_HIGH)) {
        /* A pickle-capable file is allowed only when the default channel lists its URL. */
        cd_catalog *def = NULL;
        char e2[256];
        bool listed = false;
        if (cd_catalog_load(m->default_channel, &def, e2, sizeof e2) == 0) {
            size_t i;
            json_t *d;
            json_array_foreach(def->models, i, d) if (str(d, "url") && str(entry, "url") && !strcmp(str(d, "url"), str(entry, "url"))) listed = true;
        }
        cd_catalog_free(def);
        if (!listed) {
            snprintf(err, errlen, "A security error has occurred. Please check the terminal logs");
            rc = -2;
        }
    }
    free(folder);
    cd_catalog_free(cat);
    return rc;
}

/* ---- filesystem helpers ---- */

static char *staging_path(cd_manager *m, const char *what, const char *name) {
    char rnd[17];
    cd_str_random_hex(rnd, 8);
    cd_buf b = CD_BUF_INIT;
    cd_buf_printf(&b, "%s/.%s-%s-%s", m->custom_nodes_dir, what, name, rnd);
    return cd_buf_take(&b);
}

static int run_simple(const char *cmd, const char *dir, char *err, size_t errlen) {
    char log[] = "/dev/null";
    int rc = cd_pack_run(cmd, dir, log, 600, NULL);
    if (rc != 0) snprintf(err, errlen, "command failed: %s", cmd);
    return rc == 0 ? 0 : -1;
}

static int copy_tree(const char *src, const char *dst, char *err, size_t errlen) {
    if (cd_path_mkdirs(dst, 0755) < 0) {
        snprintf(err, errlen, "cannot create %s", dst);
        return -1;
    }
    cd_buf cmd = CD_BUF_INIT;
    cd_buf_append_str(&cmd, "cp -R '");
    for (const char *s = src; *s; s++) cd_buf_append_str(&cmd, *s == '\'' ? "'\\''" : (char[]){*s, 0});
    cd_buf_append_str(&cmd, "'/. .");
    int rc = cmd.data ? run_simple(cmd.data, dst, err, errlen) : -1;
    cd_buf_free(&cmd);
    return rc;
}

/* Puts staging where target is: the old folder (if any) moves aside and is deleted only once
 * the new one is in place, so a failure leaves the previous state. */
static int swap_in(cd_manager *m, const char *staging, const char *target, char *err, size_t errlen) {
    /* The one step that makes a pack installed: never after a cancel, since a hub that stops
     * gives up on a worker stuck in a clone and exits while it runs (api_packs.c). */
    if (m->cancel) {
        snprintf(err, errlen, "cancelled");
        return -1;
    }
    char *trash = NULL;
    if (cd_path_is_dir(target)) {
        trash = staging_path(m, "trash", "old");
        if (!trash || rename(target, trash) < 0) {
            snprintf(err, errlen, "cannot move %s aside: %s", target, strerror(errno));
            free(trash);
            return -1;
        }
    }
    if (rename(staging, target) < 0) {
        snprintf(err, errlen, "cannot move the new pack into %s: %s", target, strerror(errno));
        if (trash) rename(trash, target);
        free(trash);
        return -1;
    }
    if (trash) cd_path_remove_tree(trash);
    free(trash);
    return 0;
}

static bool looks_like_archive(const char *f, const char *install_type) {
    if (install_type && !strcmp(install_type, "unzip")) return true;
    return cd_str_ends_with_ci(f, ".zip") || cd_str_ends_with_ci(f, ".tar.gz") || cd_str_ends_with_ci(f, ".tgz") ||
           cd_str_ends_with_ci(f, ".tar") || cd_str_ends_with_ci(f, ".tar.xz") || cd_str_ends_with_ci(f, ".tar.bz2");
}

static int dl_progress(void *ctx, uint64_t done, uint64_t total);

/* Fetches `file` (a URL, or a local path of a local channel) into a new staging folder and
 * builds it there. */
static int fetch_and_build(cd_manager *m, const char *name, const json_t *entry, const char *file, const char *ref,
                           char **staging_out, char *err, size_t errlen) {
    *staging_out = NULL;
    char *staging = staging_path(m, "staging", name);
    if (!staging) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *itype = entry ? str(entry, "install_type") : NULL;
    int rc = -1;
    bool local = !strstr(file, "://");
    if (looks_like_archive(file, itype)) {
        cd_buf url = CD_BUF_INIT, dl = CD_BUF_INIT;
        cd_buf_printf(&url, "%s%s", local ? "file://" : "", file);
        cd_buf_printf(&dl, "%s.download", staging);
        char *files = NULL;
        if (cd_path_mkdirs(staging, 0755) < 0) snprintf(err, errlen, "cannot create %s", staging);
        else if (cd_dl_file(url.data, dl.data, entry ? str(entry, "sha256") : NULL, dl_progress, m, NULL, NULL, err,
                            errlen) == 0 &&
                 cd_archive_extract(dl.data, staging, &files, err, errlen) == 0) {
            char *tracking = cd_path_join(staging, ".tracking");
            if (tracking) cd_file_write_atomic(tracking, files, strlen(files));
            free(tracking);
            rc = 0;
        }
        free(files);
        unlink(dl.data);
        cd_buf_reset(&dl);
        cd_buf_printf(&dl, "%s.download.partial", staging);
        unlink(dl.data);
        cd_buf_free(&url);
        cd_buf_free(&dl);
    } else if (local && cd_path_is_dir(file) && !(itype && !strcmp(itype, "git-clone"))) {
        rc = copy_tree(file, staging, err, errlen);
    } else {
        rc = cd_git_clone(file, staging, ref, &m->cancel, err, errlen);
    }
    if (rc == 0) {
        cd_pack_manifest man;
        char merr[256];
        int mr = cd_pack_manifest_read(staging, &man, merr, sizeof merr);
        if (mr < 0) {
            snprintf(err, errlen, "%s", merr);
            rc = -1;
        } else if (mr == 0 && man.abi && (man.abi < CD_NODE_ABI_MIN_VERSION || man.abi > CD_NODE_ABI_VERSION)) {
            snprintf(err, errlen, "%s needs node ABI %d; this comfyd takes ABI %d to %d", name, man.abi,
                     CD_NODE_ABI_MIN_VERSION, CD_NODE_ABI_VERSION);
            rc = -1;
        } else {
            rc = cd_pack_build(staging, m->include_dir, m->cfg.build_timeout_s, &m->cancel, err, errlen);
        }
    }
    if (rc < 0) {
        /* Keep the build log next to the packs, where the user finds it. */
        char *log = cd_path_join(staging, CD_PACK_BUILD_LOG);
        cd_buf keep = CD_BUF_INIT;
        cd_buf_printf(&keep, "%s/.logs", m->custom_nodes_dir);
        struct stat st;
        if (log && keep.data && stat(log, &st) == 0 && cd_path_mkdirs(keep.data, 0755) == 0) {
            cd_buf_printf(&keep, "/%s.build.log", name);
            rename(log, keep.data);
        }
        cd_buf_free(&keep);
        free(log);
        cd_path_remove_tree(staging);
        free(staging);
        return -1;
    }
    *staging_out = staging;
    return 0;
}

static char *active_path(cd_manager *m, const char *name) { return cd_path_join_confined(m->custom_nodes_dir, name); }

static int do_enable(cd_manager *m, const char *name, char *err, size_t errlen);

/* ---- the operations ---- */

static int do_install(cd_manager *m, const json_t *item, bool force, char *err, size_t errlen) {
    char *name = item_name(item);
    if (!name || !cd_pack_name_is_valid(name)) {
        free(name);
        snprintf(err, errlen, "Invalid installation request");
        return -1;
    }
    int rc = -1;
    char *target = active_path(m, name);
    cd_catalog *cat = load_catalog(m, str(item, "mode") ? str(item, "mode") : "cache", err, errlen);
    char *staging = NULL, *file = NULL;
    bool enabled = false;
    char *where = cd_packs_locate(m->custom_nodes_dir, name, &enabled);
    if (!target) {
        snprintf(err, errlen, "Invalid installation request");
        goto out;
    }
    if (where && !force) {
        if (enabled) {
            snprintf(err, errlen, "skip: %s is already installed", name);
            rc = 0;
        } else {
            rc = do_enable(m, name, err, errlen);
        }
        goto out;
    }
    const char *ver = str(item, "version");
    json_t *entry = NULL;
    if (!(ver && !strcmp(ver, "unknown"))) entry = cd_catalog_find(cat, str(item, "id") ? str(item, "id") : name);
    const char *f0 = json_string_value(json_array_get(json_object_get(item, "files"), 0));
    if (!f0) f0 = str(item, "repository");
    if (!entry && f0) entry = cd_catalog_find(cat, f0);
    const char *src = entry ? json_string_value(json_array_get(json_object_get(entry, "files"), 0)) : f0;
    if (!src) {
        snprintf(err, errlen, "Node '%s' not found in the catalog", name);
        goto out;
    }
    file = entry ? cd_catalog_resolve_file(cat, src) : strdup(src);
    const char *sel = str(item, "selected_version");
    const char *ref = entry && !(sel && !strcmp(sel, "nightly")) ? str(entry, "ref") : NULL;
    if (fetch_and_build(m, name, entry, file, ref, &staging, err, errlen) < 0) goto out;
    if (swap_in(m, staging, target, err, errlen) < 0) {
        cd_path_remove_tree(staging);
        goto out;
    }
    cd_info("manager: installed %s from %s", name, src);
    rc = 0;
out:
    free(where);
    free(staging);
    free(file);
    free(target);
    cd_catalog_free(cat);
    free(name);
    return rc;
}

static int do_disable(cd_manager *m, const char *name, char *err, size_t errlen) {
    bool enabled;
    char *where = cd_packs_locate(m->custom_nodes_dir, name, &enabled);
    if (!where) {
        snprintf(err, errlen, "skip: %s is not installed", name);
        free(where);
        return 0;
    }
    if (!enabled) {
        snprintf(err, errlen, "skip: %s is already disabled", name);
        free(where);
        return 0;
    }
    cd_buf dis = CD_BUF_INIT;
    cd_buf_printf(&dis, "%s/.disabled", m->custom_nodes_dir);
    cd_path_mkdirs(dis.data, 0755);
    cd_buf_printf(&dis, "/%s", name);
    if (cd_path_is_dir(dis.data)) cd_path_remove_tree(dis.data); /* an older disabled copy */
    int rc = rename(where, dis.data);
    if (rc < 0) snprintf(err, errlen, "cannot disable %s: %s", name, strerror(errno));
    cd_buf_free(&dis);
    free(where);
    return rc < 0 ? -1 : 0;
}

static int do_enable(cd_manager *m, const char *name, char *err, size_t errlen) {
    bool enabled;
    char *where = cd_packs_locate(m->custom_nodes_dir, name, &enabled);
    if (!where) {
        snprintf(err, errlen, "%s is not installed", name);
        return -1;
    }
    if (enabled) {
        snprintf(err, errlen, "skip: %s is already enabled", name);
        free(where);
        return 0;
    }
    char *target = active_path(m, name);
    int rc = target ? rename(where, target) : -1;
    if (rc < 0) snprintf(err, errlen, "cannot enable %s: %s", name, strerror(errno));
    free(target);
    free(where);
    return rc < 0 ? -1 : 0;
}

static int do_uninstall(cd_manager *m, const char *name, char *err, size_t errlen) {
    bool enabled;
    char *where;
    int n = 0;
    /* the active copy and every disabled one */
    while ((where = cd_packs_locate(m->custom_nodes_dir, name, &enabled))) {
        char *trash = staging_path(m, "trash", name);
        if (!trash || rename(where, trash) < 0) {
            snprintf(err, errlen, "cannot remove %s: %s", where, strerror(errno));
            free(trash);
            free(where);
            return -1;
        }
        cd_path_remove_tree(trash);
        free(trash);
        free(where);
        n++;
    }
    if (!n) snprintf(err, errlen, "skip: %s is not installed", name);
    return 0;
}

/* Rebuilds a copy of the active pack from its sources and swaps it in. */
static int do_fix(cd_manager *m, const char *name, char *err, size_t errlen) {
    bool enabled;
    char *where = cd_packs_locate(m->custom_nodes_dir, name, &enabled);
    if (!where || !enabled) {
        snprintf(err, errlen, "not found: %s", name);
        free(where);
        return -1;
    }
    char *staging = staging_path(m, "staging", name);
    int rc = -1;
    if (staging && copy_tree(where, staging, err, errlen) == 0) {
        /* Built libraries go, so that the build really runs (unless the pack ships only them). */
        cd_buf cmd = CD_BUF_INIT;
        cd_buf_append_str(&cmd, "if ls *.c Makefile makefile CMakeLists.txt >/dev/null 2>&1; then rm -rf *.so .comfyd-build; fi");
        run_simple(cmd.data, staging, err, errlen);
        cd_buf_free(&cmd);
        rc = cd_pack_build(staging, m->include_dir, m->cfg.build_timeout_s, &m->cancel, err, errlen);
        if (rc == 0) rc = swap_in(m, staging, where, err, errlen);
        if (rc < 0) cd_path_remove_tree(staging);
    }
    free(staging);
    free(where);
    return rc;
}

/* Versions compared as ComfyUI-Manager normalises them: "2.5" is "2.5.0". */
static bool same_version(const char *a, const char *b) {
    char na[80], nb[80];
    const char *in[2] = {a, b};
    char *out[2] = {na, nb};
    for (int i = 0; i < 2; i++) {
        int dots = 0;
        for (const char *p = in[i]; *p; p++) dots += *p == '.';
        snprintf(out[i], 80, "%s%s%s", in[i], dots < 2 ? ".0" : "", dots < 1 ? ".0" : "");
    }
    return !strcmp(na, nb);
}

static int do_update(cd_manager *m, const char *name, bool *updated, char *err, size_t errlen) {
    *updated = false;
    bool enabled;
    char *where = cd_packs_locate(m->custom_nodes_dir, name, &enabled);
    if (!where || !enabled) {
        snprintf(err, errlen, "not found: %s", name);
        free(where);
        return -1;
    }
    int rc = -1;
    char head[41], target[41];
    char *url = NULL, *staging = NULL;
    cd_catalog *cat = load_catalog(m, "cache", err, errlen);
    json_t *entry = cd_catalog_find(cat, name);
    if (cd_git_head(where, head) == 0) {
        const char *ref = entry ? str(entry, "ref") : NULL;
        int r = cd_git_check_update(where, ref, target, err, errlen);
        if (r < 0) goto out;
        if (r == 0) {
            snprintf(err, errlen, "skip: %s is up to date", name);
            rc = 0;
            goto out;
        }
        url = cd_git_origin_url(where);
        if (!url) {
            snprintf(err, errlen, "%s has no origin", name);
            goto out;
        }
        if (fetch_and_build(m, name, NULL, url, target, &staging, err, errlen) < 0) goto out;
    } else {
        /* An archive or folder install: newer when the catalog's version differs. */
        cd_pack_manifest man;
        char merr[128];
        const char *cv = entry ? str(entry, "version") : NULL;
        if (!entry || !cv || (cd_pack_manifest_read(where, &man, merr, sizeof merr) == 0 && same_version(man.version, cv))) {
            snprintf(err, errlen, "skip: %s is up to date", name);
            rc = 0;
            goto out;
        }
        char *file = cd_catalog_resolve_file(cat, json_string_value(json_array_get(json_object_get(entry, "files"), 0)));
        int fr = file ? fetch_and_build(m, name, entry, file, NULL, &staging, err, errlen) : -1;
        free(file);
        if (fr < 0) goto out;
    }
    if (swap_in(m, staging, where, err, errlen) < 0) {
        cd_path_remove_tree(staging);
        goto out;
    }
    *updated = true;
    cd_info("manager: updated %s", name);
    rc = 0;
out:
    free(staging);
    free(url);
    cd_catalog_free(cat);
    free(where);
    return rc;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int dl_progress(void *ctx, uint64_t done, uint64_t total) {
    cd_manager *m = ctx;
    if (m->cancel) return 1;
    if (m->cli_progress) m->cli_progress(m->cli_ctx, done, total);
    uint64_t now = mono_ms();
    if (m->dl_ui_id && now - m->dl_last_ms >= 200) {
        m->dl_last_ms = now;
        emit(m, "cm-download-progress",
             json_pack("{s:s, s:s, s:I, s:I}", "ui_id", m->dl_ui_id, "filename", m->dl_name ? m->dl_name : "",
                       "downloaded", (json_int_t)done, "total", (json_int_t)total));
    }
    return 0;
}

static int do_install_model(cd_manager *m, const json_t *item, const char *ui_id, char *err, size_t errlen) {
    cd_catalog *cat = load_catalog(m, str(item, "mode") ? str(item, "mode") : "cache", err, errlen);
    json_t *entry = cat ? cd_catalog_find_model(cat, str(item, "save_path"), str(item, "base"), str(item, "filename")) : NULL;
    /* The command line may name a model by URL only: then the item itself is the entry. */
    const json_t *e = entry ? entry : item;
    char *folder = cd_catalog_model_folder(e);
    int rc = -1;
    char *dir = NULL, *dest = NULL;
    const char *url = str(e, "url");
    if (!folder || !url) {
        snprintf(err, errlen, "Invalid model install request is detected");
        goto out;
    }
    cd_path_mkdirs(m->models_dir, 0755);
    dir = cd_path_join_confined(m->models_dir, folder);
    if (!dir || cd_path_mkdirs(dir, 0755) < 0) {
        snprintf(err, errlen, "the folder '%s' is outside models/ or cannot be created", folder);
        goto out;
    }
    /* Checked again once the folder exists: a symlink must not lead out. */
    free(dir);
    dir = cd_path_join_confined(m->models_dir, folder);
    dest = dir ? cd_path_join_confined(dir, str(e, "filename")) : NULL;
    if (!dest) {
        snprintf(err, errlen, "the model path is outside models/");
        goto out;
    }
    struct stat st;
    if (stat(dest, &st) == 0) {
        snprintf(err, errlen, "skip: %s/%s is already installed", folder, str(e, "filename"));
        rc = 0;
        goto out;
    }
    m->dl_ui_id = ui_id;
    m->dl_name = str(e, "filename");
    m->dl_last_ms = 0;
    uint64_t resumed = 0;
    rc = cd_dl_file(url, dest, str(e, "sha256"), dl_progress, m, &resumed, NULL, err, errlen);
    m->dl_ui_id = m->dl_name = NULL;
    if (rc == 0) cd_info("manager: model %s/%s downloaded%s", folder, str(e, "filename"), resumed ? " (resumed)" : "");
out:
    free(dest);
    free(dir);
    free(folder);
    cd_catalog_free(cat);
    return rc;
}

static int do_restore(cd_manager *m, const json_t *snap, char *err, size_t errlen) {
    json_t *want = json_object_get(snap, "comfyd_custom_nodes");
    json_t *git = json_object_get(snap, "git_custom_nodes");
    int failures = 0;
    const char *k;
    json_t *v;
    /* Git packs to their commit, by URL. */
    json_object_foreach(git, k, v) {
        json_t *tmp = json_pack("{s:[s]}", "files", k);
        char *name = cd_catalog_entry_key(tmp);
        json_decref(tmp);
        if (!name || !cd_pack_name_is_valid(name)) {
            free(name);
            continue;
        }
        const char *hash = str(v, "hash");
        bool enabled;
        char *where = cd_packs_locate(m->custom_nodes_dir, name, &enabled);
        char head[41] = "";
        char e[256] = "";
        if (where && !enabled) do_enable(m, name, e, sizeof e);
        free(where);
        where = cd_packs_locate(m->custom_nodes_dir, name, &enabled);
        if (!where || cd_git_head(where, head) < 0 || (hash && strcmp(head, hash))) {
            char *staging = NULL;
            char *target = active_path(m, name);
            if (target && fetch_and_build(m, name, NULL, k, hash, &staging, e, sizeof e) == 0 &&
                swap_in(m, staging, target, e, sizeof e) == 0) {
            } else {
                cd_warn("manager: restore %s: %s", name, e);
                failures++;
            }
            if (staging && cd_path_is_dir(staging)) cd_path_remove_tree(staging);
            free(staging);
            free(target);
        }
        if (json_is_true(json_object_get(v, "disabled"))) do_disable(m, name, e, sizeof e);
        free(where);
        free(name);
    }
    /* Our own record: enabled or disabled per name. */
    json_object_foreach(want, k, v) {
        char e[256];
        if (!cd_pack_name_is_valid(k)) continue;
        if (json_is_true(json_object_get(v, "disabled"))) do_disable(m, k, e, sizeof e);
        else do_enable(m, k, e, sizeof e);
    }
    if (failures) snprintf(err, errlen, "%d pack(s) could not be restored (see the log)", failures);
    return failures ? -1 : 0;
}

/* One task; msg gets the reason of a failure or skip. */
static int run_task(cd_manager *m, cd_task_kind kind, const json_t *params, const char *ui_id, char *msg, size_t msglen) {
    msg[0] = 0;
    int lock = cd_file_lock_dir(m->custom_nodes_dir);
    int rc = -1;
    char *name = NULL;
    if (m->cancel) { /* cancelled while it waited for another process's lock */
        snprintf(msg, msglen, "cancelled");
        goto out;
    }
    if (kind != CD_TASK_INSTALL_MODEL && kind != CD_TASK_INSTALL && kind != CD_TASK_RESTORE &&
        kind != CD_TASK_REINSTALL) {
        name = str(params, "node_name") ? strdup(str(params, "node_name")) : item_name(params);
        if (!name || !cd_pack_name_is_valid(name)) {
            snprintf(msg, msglen, "invalid pack name");
            goto out;
        }
    }
    bool updated;
    switch (kind) {
    case CD_TASK_INSTALL: rc = do_install(m, params, false, msg, msglen); break;
    case CD_TASK_REINSTALL: {
        char *n = item_name(params);
        rc = n && cd_pack_name_is_valid(n) ? do_uninstall(m, n, msg, msglen) : -1;
        free(n);
        if (rc == 0) rc = do_install(m, params, true, msg, msglen);
        break;
    }
    case CD_TASK_UNINSTALL: rc = do_uninstall(m, name, msg, msglen); break;
    case CD_TASK_DISABLE: rc = do_disable(m, name, msg, msglen); break;
    case CD_TASK_ENABLE: rc = do_enable(m, name, msg, msglen); break;
    case CD_TASK_FIX: rc = do_fix(m, name, msg, msglen); break;
    case CD_TASK_UPDATE:
    case CD_TASK_UPDATE_MAIN: rc = do_update(m, name, &updated, msg, msglen); break;
    case CD_TASK_INSTALL_MODEL: rc = do_install_model(m, params, ui_id, msg, msglen); break;
    case CD_TASK_RESTORE: rc = do_restore(m, params, msg, msglen); break;
    }
out:
    if (lock >= 0) cd_file_unlock(lock);
    free(name);
    return rc;
}

/* ---- the queue ---- */

uint64_t cd_manager_enqueue(cd_manager *m, cd_task_kind kind, const char *ui_id, const json_t *params) {
    task *t = calloc(1, sizeof *t);
    if (!t) return 0;
    t->kind = kind;
    t->ui_id = strdup(ui_id && *ui_id ? ui_id : "");
    t->params = params ? json_deep_copy(params) : json_object();
    if (!t->ui_id || !t->params) {
        task_free(t);
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    t->id = m->next_id++;
    if (!*t->ui_id) {
        free(t->ui_id);
        char buf[32];
        snprintf(buf, sizeof buf, "task-%llu", (unsigned long long)t->id);
        t->ui_id = strdup(buf);
    }
    if (m->tail) m->tail->next = t;
    else m->head = t;
    m->tail = t;
    m->queued++;
    uint64_t id = t->id;
    pthread_mutex_unlock(&m->lock);
    return t->ui_id ? id : 0;
}

int cd_manager_enqueue_update_all(cd_manager *m) {
    json_t *installed = cd_manager_installed(m);
    int n = 0;
    const char *name;
    json_t *v;
    json_object_foreach(installed, name, v) {
        if (!json_is_true(json_object_get(v, "enabled"))) continue;
        json_t *p = json_pack("{s:s, s:s}", "node_name", name, "url", str(v, "url") ? str(v, "url") : "");
        if (cd_manager_enqueue(m, CD_TASK_UPDATE_MAIN, name, p)) n++;
        json_decref(p);
    }
    json_decref(installed);
    return n;
}

static const char *ui_target(cd_task_kind k) {
    return k == CD_TASK_INSTALL_MODEL ? "model_manager" : k == CD_TASK_UPDATE_MAIN ? "main" : "nodepack_manager";
}

static void *worker(void *arg) {
    cd_manager *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->lock);
        task *t = m->cancel ? NULL : m->head;
        if (!t) {
            m->processing = false;
            json_t *done = json_pack("{s:s, s:O, s:O, s:I, s:I}", "status", "done", "nodepack_result", m->nodepack_result,
                                     "model_result", m->model_result, "total_count", (json_int_t)m->done_count,
                                     "done_count", (json_int_t)m->done_count);
            bool cancelled = m->cancel;
            pthread_mutex_unlock(&m->lock);
            if (!cancelled) emit(m, "cm-queue-status", done);
            else json_decref(done);
            return NULL;
        }
        m->head = t->next;
        if (!m->head) m->tail = NULL;
        m->queued--;
        m->in_progress = 1;
        size_t total = m->done_count + m->in_progress + m->queued, done_before = m->done_count;
        pthread_mutex_unlock(&m->lock);

        char msg[1024];
        int rc = run_task(m, t->kind, t->params, t->ui_id, msg, sizeof msg);
        bool ok = rc == 0;
        if (!ok) cd_warn("manager: %s failed: %s", t->ui_id, msg);
        else if (msg[0]) cd_info("manager: %s: %s", t->ui_id, msg);
        json_t *result;
        if (t->kind == CD_TASK_UPDATE_MAIN)
            result = json_pack("{s:s, s:s, s:s}", "url", str(t->params, "url") ? str(t->params, "url") : "", "title",
                               t->ui_id, "msg", ok ? (!strncmp(msg, "skip", 4) ? "skip" : "success") : msg);
        else result = json_string(ok ? "success" : msg);

        pthread_mutex_lock(&m->lock);
        json_object_set_new(t->kind == CD_TASK_INSTALL_MODEL ? m->model_result : m->nodepack_result, t->ui_id, result);
        m->done_count++;
        m->in_progress = 0;
        pthread_mutex_unlock(&m->lock);
        emit(m, "cm-task-done", json_pack("{s:I, s:b, s:s}", "task_id", (json_int_t)t->id, "ok", ok, "msg", msg));
        /* ComfyUI-Manager counts done before the item, so the last in_progress shows n-1. */
        emit(m, "cm-queue-status",
             json_pack("{s:s, s:s, s:s, s:I, s:I}", "status", "in_progress", "target", t->ui_id, "ui_target",
                       ui_target(t->kind), "total_count", (json_int_t)total, "done_count", (json_int_t)done_before));
        task_free(t);
    }
}

int cd_manager_start(cd_manager *m) {
    pthread_mutex_lock(&m->lock);
    if (m->processing) {
        pthread_mutex_unlock(&m->lock);
        return 1;
    }
    bool join = m->thread_live;
    m->thread_live = false;
    pthread_t old = m->thread;
    pthread_mutex_unlock(&m->lock);
    if (join) pthread_join(old, NULL); /* finished: it cleared `processing` on its way out */
    pthread_mutex_lock(&m->lock);
    json_object_clear(m->nodepack_result);
    json_object_clear(m->model_result);
    m->done_count = 0;
    m->processing = true;
    int rc = pthread_create(&m->thread, NULL, worker, m);
    if (rc == 0) m->thread_live = true;
    else m->processing = false;
    pthread_mutex_unlock(&m->lock);
    return rc == 0 ? 0 : -1;
}

void cd_manager_reset(cd_manager *m) {
    pthread_mutex_lock(&m->lock);
    task *list = m->head;
    m->head = m->tail = NULL;
    m->queued = 0;
    pthread_mutex_unlock(&m->lock);
    /* Whoever waits on a dropped task hears about it. */
    for (task *t = list, *n; t; t = n) {
        n = t->next;
        emit(m, "cm-task-done", json_pack("{s:I, s:b, s:s}", "task_id", (json_int_t)t->id, "ok", 0, "msg",
                                          "removed from the queue (reset)"));
        task_free(t);
    }
}

void cd_manager_cancel(cd_manager *m) {
    cd_manager_reset(m);
    pthread_mutex_lock(&m->lock);
    m->cancel = 1;
    pthread_mutex_unlock(&m->lock);
}

bool cd_manager_is_processing(cd_manager *m) {
    pthread_mutex_lock(&m->lock);
    bool p = m->processing;
    pthread_mutex_unlock(&m->lock);
    return p;
}

json_t *cd_manager_status(cd_manager *m) {
    pthread_mutex_lock(&m->lock);
    json_t *s = json_pack("{s:I, s:I, s:I, s:b}", "total_count", (json_int_t)(m->done_count + m->in_progress + m->queued),
                          "done_count", (json_int_t)m->done_count, "in_progress_count", (json_int_t)m->in_progress,
                          "is_processing", m->processing);
    pthread_mutex_unlock(&m->lock);
    return s;
}

int cd_manager_run(cd_manager *m, cd_task_kind kind, const json_t *params,
                   void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx, char *err, size_t errlen) {
    m->cli_progress = progress;
    m->cli_ctx = ctx;
    int rc = run_task(m, kind, params, NULL, err, errlen);
    m->cli_progress = NULL;
    return rc;
}

/* ---- snapshots ---- */

bool cd_manager_snapshot_name_ok(const char *name) {
    return name && *name && !strchr(name, '/') && !strchr(name, '\\') && !strstr(name, "..") && strlen(name) < 200;
}

static char *snapshot_path(cd_manager *m, const char *name) {
    if (!cd_manager_snapshot_name_ok(name)) return NULL;
    cd_buf b = CD_BUF_INIT;
    cd_buf_printf(&b, "%s/snapshots/%s.json", m->dir, name);
    return cd_buf_take(&b);
}

json_t *cd_manager_snapshot_current(cd_manager *m) {
    json_t *installed = cd_manager_installed(m);
    json_t *git = json_object(), *ours = json_object();
    const char *name;
    json_t *v;
    json_object_foreach(installed, name, v) {
        bool disabled = !json_is_true(json_object_get(v, "enabled"));
        if (json_is_true(json_object_get(v, "git")) && str(v, "url"))
            json_object_set_new(git, str(v, "url"), json_pack("{s:s, s:b}", "hash", str(v, "ver"), "disabled", disabled));
        json_object_set_new(ours, name, json_pack("{s:s, s:b}", "version", str(v, "ver") ? str(v, "ver") : "", "disabled", disabled));
    }
    json_decref(installed);
    return json_pack("{s:n, s:o, s:{}, s:[], s:{}, s:o}", "comfyui", "git_custom_nodes", git, "cnr_custom_nodes",
                     "file_custom_nodes", "pips", "comfyd_custom_nodes", ours);
}

int cd_manager_snapshot_save(cd_manager *m, char **name, char *err, size_t errlen) {
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char n[64];
    strftime(n, sizeof n, "%Y-%m-%d_%H-%M-%S_snapshot", &tm);
    json_t *snap = cd_manager_snapshot_current(m);
    char *text = json_dumps(snap, JSON_INDENT(4));
    json_decref(snap);
    char *path = snapshot_path(m, n);
    int rc = text && path ? cd_file_write_atomic(path, text, strlen(text)) : -1;
    if (rc < 0) snprintf(err, errlen, "cannot write %s", path ? path : "snapshot");
    else if (name) *name = strdup(n);
    free(text);
    free(path);
    return rc;
}

static int cmp_desc(const void *a, const void *b) { return strcmp(*(char *const *)b, *(char *const *)a); }

json_t *cd_manager_snapshot_list(cd_manager *m) {
    char *dir = cd_path_join(m->dir, "snapshots");
    DIR *d = dir ? opendir(dir) : NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".json")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strndup(e->d_name, l - 5);
    }
    if (d) closedir(d);
    free(dir);
    if (n) qsort(names, n, sizeof *names, cmp_desc);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        if (names[i]) json_array_append_new(items, json_string(names[i]));
        free(names[i]);
    }
    free(names);
    return items;
}

int cd_manager_snapshot_remove(cd_manager *m, const char *name) {
    char *p = snapshot_path(m, name);
    if (!p) return -1;
    unlink(p);
    free(p);
    return 0;
}

json_t *cd_manager_snapshot_load(cd_manager *m, const char *name) {
    char *p = snapshot_path(m, name);
    if (!p) return NULL;
    json_t *j = json_load_file(p, 0, NULL);
    free(p);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}
