/* GET /system_stats, /features, /embeddings, /extensions (API reference §3.12–3.15). */
#include <stdlib.h>
#include <string.h>

#include "base/path.h"
#include "base/sysinfo.h"
#include "comfyd_version.h"
#include "server/features.h"
#include "server/folder_paths.h"
#include "server/instance.h"

json_t *cd_features_json(const cd_instance *inst) {
    json_t *size = inst->opts->max_upload_given ? json_real((double)inst->max_upload_bytes)
                                                : json_integer((json_int_t)inst->max_upload_bytes);
    return json_pack("{s:b, s:o}", "supports_preview_metadata", 1, "max_upload_size", size);
}

static void handle_features(cd_http_req *req, void *ctx) { cd_respond_json(req, 200, cd_features_json(ctx)); }

static void handle_system_stats(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    /* /proc/meminfo costs several syscalls; a figure half a second old is as good. */
    uint64_t now = uv_now(inst->loop);
    if (!inst->ram_read_at || now - inst->ram_read_at >= 500) {
        cd_sysinfo_ram(&inst->ram_total, &inst->ram_free);
        inst->ram_read_at = now ? now : 1;
    }
    uint64_t total = inst->ram_total, avail = inst->ram_free;
    json_t *argv = json_array();
    for (int i = 0; i < inst->opts->argc; i++) json_array_append_new(argv, json_string(inst->opts->argv[i]));
    /* The fields a Python ComfyUI fills from its runtime say what comfyd is instead: clients
     * show them, none computes with them. comfyui_version is the ComfyUI API comfyd follows
     * (clients and node packs compare it); comfyd_version, our own field, is this program's. */
    json_t *system = json_pack("{s:s, s:I, s:I, s:s, s:n, s:n, s:n, s:s, s:s, s:b, s:o, s:s}", "os", "posix",
                               "ram_total", (json_int_t)total, "ram_free", (json_int_t)avail, "comfyui_version",
                               COMFYD_COMFYUI_API_VERSION, "required_frontend_version", "installed_templates_version",
                               "required_templates_version", "python_version", "comfyd " COMFYD_VERSION " (C)",
                               "pytorch_version", "", "embedded_python", 0, "argv", argv, "comfyd_version",
                               COMFYD_VERSION);
    /* No GPU: one cpu device whose "VRAM" is the RAM, as ComfyUI reports with --cpu. */
    json_t *device = json_pack("{s:s, s:s, s:n, s:I, s:I, s:I, s:I}", "name", "cpu", "type", "cpu", "index",
                               "vram_total", (json_int_t)total, "vram_free", (json_int_t)avail, "torch_vram_total",
                               (json_int_t)total, "torch_vram_free", (json_int_t)avail);
    cd_respond_json(req, 200, json_pack("{s:o, s:[o]}", "system", system, "devices", device));
}

/* ---- listings done in the thread pool ---- */

typedef struct {
    cd_instance *inst;
    json_t *result;
} listing;

static void embeddings_work(void *arg) {
    listing *l = arg;
    json_t *files = cd_folder_paths_list(l->inst->folders, "embeddings");
    json_t *names = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *name = json_string_value(f);
        const char *dot = strrchr(name, '.');
        const char *slash = strrchr(name, '/');
        size_t len = dot && (!slash || dot > slash) ? (size_t)(dot - name) : strlen(name);
        json_array_append_new(names, json_stringn(name, len));
    }
    json_decref(files);
    l->result = names;
}

/* Every .js under dir/rel, as "/extensions/<relpath>". */
static void collect_js(const char *root, const char *rel, json_t *out, int depth);

static void extensions_work(void *arg) {
    listing *l = arg;
    json_t *out = json_array();
    if (l->inst->front_end_root) {
        char *ext = cd_path_join(l->inst->front_end_root, "extensions");
        if (ext) collect_js(ext, "", out, 0);
        free(ext);
    }
    l->result = out;
}

#include <dirent.h>
#include <sys/stat.h>

static void collect_js(const char *root, const char *rel, json_t *out, int depth) {
    if (depth > 16) return;
    char *dir = rel[0] ? cd_path_join(root, rel) : strdup(root);
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) {
        free(dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *child_rel = rel[0] ? cd_path_join(rel, e->d_name) : strdup(e->d_name);
        char *child = cd_path_join(dir, e->d_name);
        struct stat st;
        if (child && child_rel && stat(child, &st) == 0) {
            if (S_ISDIR(st.st_mode)) collect_js(root, child_rel, out, depth + 1);
            else if (S_ISREG(st.st_mode) && strlen(e->d_name) > 3 && !strcmp(e->d_name + strlen(e->d_name) - 3, ".js")) {
                char *url = cd_path_join("/extensions", child_rel);
                if (url) json_array_append_new(out, json_string(url));
                free(url);
            }
        }
        free(child);
        free(child_rel);
    }
    closedir(d);
    free(dir);
}

static void listing_done(cd_http_req *req, void *arg) {
    listing *l = arg;
    if (req) cd_respond_json(req, 200, l->result ? l->result : json_array());
    else json_decref(l->result);
    free(l);
}

static void start_listing(cd_http_req *req, cd_instance *inst, cd_offload_work_fn work) {
    listing *l = calloc(1, sizeof *l);
    if (!l) {
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    l->inst = inst;
    cd_offload(inst, req, work, listing_done, l);
}

static void handle_embeddings(cd_http_req *req, void *ctx) { start_listing(req, ctx, embeddings_work); }

/* GET /models: the folder names, in the registry's order (§3.14). */
static void handle_models(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    cd_respond_json(req, 200, cd_folder_paths_names(inst->folders));
}

typedef struct {
    cd_instance *inst;
    char *folder;
    json_t *result; /* NULL: unknown folder */
} folder_listing;

static void folder_work(void *arg) {
    folder_listing *l = arg;
    l->result = cd_folder_paths_list(l->inst->folders, l->folder);
}

static void folder_done(cd_http_req *req, void *arg) {
    folder_listing *l = arg;
    if (req) {
        if (l->result) cd_respond_json(req, 200, l->result);
        else cd_http_respond_text(req, 404, "404: Not Found"); /* legacy aliases (clip, unet) too */
    } else {
        json_decref(l->result);
    }
    free(l->folder);
    free(l);
}

/* GET /models/{folder}: the files of one folder, sorted, recursively (§3.14). */
static void handle_models_folder(cd_http_req *req, void *ctx) {
    folder_listing *l = calloc(1, sizeof *l);
    if (!l || !(l->folder = strdup(cd_http_req_param(req, "folder")))) {
        free(l);
        cd_http_respond_text(req, 500, "500: out of memory");
        return;
    }
    l->inst = ctx;
    cd_offload(ctx, req, folder_work, folder_done, l);
}
static void handle_extensions(cd_http_req *req, void *ctx) { start_listing(req, ctx, extensions_work); }

/* POST /api/server/restart: 202 first, then a graceful stop and the same command again. */
static void handle_restart(cd_http_req *req, void *ctx) {
    cd_instance *inst = ctx;
    cd_respond_json(req, 202, json_pack("{s:s}", "message", "restarting"));
    cd_instance_reboot(inst);
}

void cd_routes_system_register(cd_instance *inst) {
    cd_router_add(inst->router, "POST", "/api/server/restart", handle_restart, inst);
    cd_router_add_api(inst->router, "GET", "/system_stats", handle_system_stats, inst);
    cd_router_add_api(inst->router, "GET", "/features", handle_features, inst);
    cd_router_add_api(inst->router, "GET", "/embeddings", handle_embeddings, inst);
    cd_router_add_api(inst->router, "GET", "/extensions", handle_extensions, inst);
    cd_router_add_api(inst->router, "GET", "/models", handle_models, inst);
    cd_router_add_api(inst->router, "GET", "/models/{folder}", handle_models_folder, inst);
}
