#include "engine/registry.h"

#include "engine/call.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/map.h"
#include "base/path.h"
#include "base/str.h"

struct cd_pack {
    cd_registry *reg;
    const char *name;
    const char *module;
    size_t first_index; /* types registered from here on belong to this pack */
    int errors;
};

struct cd_registry {
    cd_map *by_name;
    cd_node_type **types;
    size_t n, cap;
    void **handles; /* dlopen handles, closed at the end */
    size_t nhandles;
    const void *call_env;
};

void cd_registry_set_call_env(cd_registry *reg, const void *call_env) { reg->call_env = call_env; }
const void *cd_registry_call_env(const cd_registry *reg) { return reg->call_env; }

cd_registry *cd_registry_new(void) {
    cd_registry *reg = calloc(1, sizeof(cd_registry));
    if (reg && !(reg->by_name = cd_map_new())) {
        free(reg);
        return NULL;
    }
    return reg;
}

static void type_free(cd_node_type *t) {
    if (!t) return;
    json_decref(t->inputs_json);
    json_decref(t->info);
    free(t->inputs);
    for (size_t i = 0; i < t->n_validate_args; i++) free(t->validate_args[i]);
    free(t->validate_args);
    free(t->pack_name);
    free(t);
}

void cd_registry_free(cd_registry *reg) {
    if (!reg) return;
    for (size_t i = 0; i < reg->n; i++) type_free(reg->types[i]);
    free(reg->types);
    cd_map_free(reg->by_name);
    /* Packs' code must stay mapped until every value they made is gone; the process ends soon
     * after the registry is freed, so handles are closed last. */
    for (size_t i = 0; i < reg->nhandles; i++) dlclose(reg->handles[i]);
    free(reg->handles);
    free(reg);
}

const char *cd_pack_name(const cd_pack *pack) { return pack->name; }

const cd_node_type *cd_registry_get(const cd_registry *reg, const char *name) { return cd_map_get(reg->by_name, name); }

size_t cd_registry_count(const cd_registry *reg) { return reg->n; }
const cd_node_type *cd_registry_at(const cd_registry *reg, size_t i) { return i < reg->n ? reg->types[i] : NULL; }

const cd_input_def *cd_node_type_input(const cd_node_type *t, const char *name) {
    for (size_t i = 0; i < t->n_inputs; i++)
        if (strcmp(t->inputs[i].name, name) == 0) return &t->inputs[i];
    return NULL;
}

bool cd_node_type_is_output(const cd_node_type *t) { return (t->def->flags & CD_NODE_OUTPUT) != 0; }

bool cd_node_type_validates(const cd_node_type *t, const char *input_name) {
    if (!t->def->validate_inputs) return false;
    if (t->validate_takes_all) return true;
    for (size_t i = 0; i < t->n_validate_args; i++)
        if (strcmp(t->validate_args[i], input_name) == 0) return true;
    return false;
}

/* ---- parsing a definition ---- */

static const char *hidden_kinds[] = {"PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "AUTH_TOKEN_COMFY_ORG",
                                     "API_KEY_COMFY_ORG"};

static int parse_input(cd_input_def *in, const char *name, json_t *decl, cd_input_section section, char *err,
                       size_t errlen) {
    memset(in, 0, sizeof *in);
    in->name = name;
    in->section = section;
    in->config = decl;
    json_t *first = json_is_array(decl) ? json_array_get(decl, 0) : decl;
    if (section == CD_INPUT_HIDDEN && json_is_string(decl)) {
        /* V1 hidden inputs are bare strings: "PROMPT". */
        first = decl;
    }
    if (json_is_string(first)) {
        in->type = json_string_value(first);
    } else if (json_is_array(first)) {
        in->type = "COMBO";
        in->combo = first;
        in->choices = first;
    } else {
        snprintf(err, errlen, "input '%s': the type must be a string or a list of options", name);
        return -1;
    }
    json_t *opts = json_is_array(decl) ? json_array_get(decl, 1) : NULL;
    if (opts && !json_is_object(opts)) {
        snprintf(err, errlen, "input '%s': options must be an object", name);
        return -1;
    }
    in->options = opts;
    if (!in->combo && !strcmp(in->type, "COMBO") && opts) {
        /* V3's form (and V1 nodes that copy it): the list is an option. Anything but a list
         * there reads as none, as ComfyUI's `val not in options` would refuse every value. */
        json_t *listed = json_object_get(opts, "options");
        if (json_is_array(listed)) in->choices = listed;
    }
    in->lazy = opts && json_is_true(json_object_get(opts, "lazy"));
    in->raw_link = opts && json_is_true(json_object_get(opts, "rawLink"));
    if (section == CD_INPUT_HIDDEN && json_is_string(first))
        for (size_t k = 0; k < sizeof hidden_kinds / sizeof hidden_kinds[0]; k++)
            if (strcmp(in->type, hidden_kinds[k]) == 0) in->hidden_kind = hidden_kinds[k];
    return 0;
}

static int parse_inputs(cd_node_type *t, char *err, size_t errlen) {
    json_error_t jerr;
    t->inputs_json = json_loads(t->def->inputs ? t->def->inputs : "{}", 0, &jerr);
    if (!t->inputs_json || !json_is_object(t->inputs_json)) {
        snprintf(err, errlen, "inputs are not a JSON object: %s", t->inputs_json ? "" : jerr.text);
        return -1;
    }
    static const char *sections[] = {"required", "optional", "hidden"};
    size_t total = 0;
    for (int s = 0; s < 3; s++) total += json_object_size(json_object_get(t->inputs_json, sections[s]));
    t->inputs = calloc(total ? total : 1, sizeof *t->inputs);
    if (!t->inputs) return -1;
    const char *key;
    json_t *val;
    json_object_foreach(t->inputs_json, key, val) {
        int s = -1;
        for (int k = 0; k < 3; k++)
            if (!strcmp(key, sections[k])) s = k;
        if (s < 0 || !json_is_object(val)) {
            snprintf(err, errlen, "unknown input section '%s' (want required, optional, hidden)", key);
            return -1;
        }
        const char *name;
        json_t *decl;
        json_object_foreach(val, name, decl) {
            if (parse_input(&t->inputs[t->n_inputs], name, decl, (cd_input_section)s, err, errlen) < 0) return -1;
            t->n_inputs++;
        }
    }
    return 0;
}

static int parse_validate_args(cd_node_type *t) {
    const char *args = t->def->validate_inputs_args;
    if (!t->def->validate_inputs || !args) return 0;
    const char *p = args;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *end = e;
        while (end > p && end[-1] == ' ') end--;
        if (end > p) {
            char *arg = strndup(p, (size_t)(end - p));
            if (!arg) return -1;
            if (!strcmp(arg, "**kwargs")) {
                t->validate_takes_all = true;
                free(arg);
            } else if (!strcmp(arg, "input_types")) {
                t->validate_takes_types = true;
                free(arg);
            } else {
                char **a = realloc(t->validate_args, (t->n_validate_args + 1) * sizeof *a);
                if (!a) {
                    free(arg);
                    return -1;
                }
                t->validate_args = a;
                a[t->n_validate_args++] = arg;
            }
        }
        p = e;
    }
    return 0;
}

/* The /object_info entry, key order as ComfyUI's (API reference §9.1/§9.2). */
static json_t *build_info(const cd_node_type *t, const char *module) {
    const cd_node_def *d = t->def;
    bool v3 = (d->flags & CD_NODE_V3_INFO) != 0;
    json_t *info = json_object();
    json_object_set(info, "input", t->inputs_json);
    json_t *order = json_object();
    static const char *sections[] = {"required", "optional", "hidden"};
    for (int s = 0; s < 3; s++) {
        json_t *sec = json_object_get(t->inputs_json, sections[s]);
        if (!sec) continue;
        json_t *names = json_array();
        const char *name;
        json_t *decl;
        json_object_foreach(sec, name, decl) json_array_append_new(names, json_string(name));
        json_object_set_new(order, sections[s], names);
    }
    json_object_set_new(info, "input_order", order);
    json_t *out = json_array(), *is_list = json_array(), *names = json_array(), *tips = json_array();
    json_t *matchtypes = json_array();
    bool any_tip = false, any_match = false;
    for (int i = 0; i < d->n_outputs; i++) {
        const cd_output_def *o = &d->outputs[i];
        json_t *type = o->type[0] == '[' ? json_loads(o->type, 0, NULL) : NULL;
        json_array_append_new(out, type ? type : json_string(o->type));
        json_array_append_new(is_list, o->is_list < 0 ? json_null() : json_boolean(o->is_list));
        json_array_append_new(names, json_string(o->name ? o->name : o->type));
        json_array_append_new(tips, o->tooltip ? json_string(o->tooltip) : json_null());
        if (o->tooltip) any_tip = true;
        json_array_append_new(matchtypes, o->match_type ? json_string(o->match_type) : json_null());
        if (o->match_type) any_match = true;
    }
    json_object_set_new(info, "output", out);
    json_object_set_new(info, "output_is_list", is_list);
    json_object_set_new(info, "output_name", names);
    if (v3) {
        json_object_set(info, "output_tooltips", tips);
        json_object_set(info, "output_matchtypes", any_match ? matchtypes : json_null());
    }
    json_object_set_new(info, "name", json_string(d->name));
    /* ComfyUI shows a V3 node's schema display_name, None when it has none; a V1 node's falls
     * back to its class name. */
    json_object_set_new(info, "display_name",
                        d->display_name ? json_string(d->display_name) : v3 ? json_null() : json_string(d->name));
    json_object_set_new(info, "description", json_string(d->description ? d->description : ""));
    json_object_set_new(info, "python_module", json_string(d->python_module ? d->python_module : module));
    json_object_set_new(info, "category", json_string(d->category ? d->category : "sd"));
    json_object_set_new(info, "output_node", json_boolean(d->flags & CD_NODE_OUTPUT));
    if (v3) {
        json_object_set_new(info, "deprecated", json_boolean(d->flags & CD_NODE_DEPRECATED));
        json_object_set_new(info, "experimental", json_boolean(d->flags & CD_NODE_EXPERIMENTAL));
        json_object_set_new(info, "api_node", json_false());
    } else {
        if (any_tip) json_object_set(info, "output_tooltips", tips);
        if (d->flags & CD_NODE_DEPRECATED) json_object_set_new(info, "deprecated", json_true());
        if (d->flags & CD_NODE_EXPERIMENTAL) json_object_set_new(info, "experimental", json_true());
    }
    json_decref(tips);
    json_decref(matchtypes);
    return info;
}

int cd_pack_register(cd_pack *pack, const cd_node_def *def) {
    cd_registry *reg = pack->reg;
    char err[256] = "";
    const char *name = def && def->name ? def->name : "(unnamed)";
    cd_node_type *t = NULL;
    if (!def || !def->name || !def->name[0]) {
        snprintf(err, sizeof err, "a node definition has no name");
    } else if (def->abi_version < CD_NODE_ABI_MIN_VERSION || def->abi_version > CD_NODE_ABI_VERSION) {
        snprintf(err, sizeof err, "built for node ABI %d, this comfyd takes %d to %d", def->abi_version,
                 CD_NODE_ABI_MIN_VERSION, CD_NODE_ABI_VERSION);
    } else if (!def->execute && !(def->abi_version >= 3 && def->execute_async)) {
        snprintf(err, sizeof err, "no execute function");
    } else if (def->n_outputs < 0 || (def->n_outputs > 0 && !def->outputs)) {
        snprintf(err, sizeof err, "bad output list");
    } else if (cd_registry_get(reg, def->name)) {
        snprintf(err, sizeof err, "the name is already taken by another pack");
    } else {
        for (int i = 0; i < def->n_outputs && !err[0]; i++)
            if (!def->outputs[i].type) snprintf(err, sizeof err, "output %d has no type", i);
    }
    if (!err[0]) {
        t = calloc(1, sizeof *t);
        if (!t) snprintf(err, sizeof err, "out of memory");
    }
    if (t) {
        /* An older pack's array of definitions has the older, shorter struct: read only what
         * its version has. */
        memcpy(&t->def_copy, def, def->abi_version >= 3 ? sizeof *def : offsetof(cd_node_def, execute_async));
        t->def = &t->def_copy;
        t->pack_name = strdup(pack->name);
        if (parse_inputs(t, err, sizeof err) < 0 || parse_validate_args(t) < 0) {
            if (!err[0]) snprintf(err, sizeof err, "out of memory");
        } else {
            t->info = build_info(t, pack->module);
        }
    }
    if (!err[0] && reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 128;
        cd_node_type **types = realloc(reg->types, cap * sizeof *types);
        if (!types) snprintf(err, sizeof err, "out of memory");
        else {
            reg->types = types;
            reg->cap = cap;
        }
    }
    if (err[0]) {
        cd_warn("node pack %s: node %s left out: %s", pack->name, name, err);
        type_free(t);
        pack->errors++;
        return CD_ERROR;
    }
    if (cd_map_set(reg->by_name, def->name, t) < 0) {
        cd_warn("node pack %s: node %s left out: out of memory", pack->name, name);
        type_free(t);
        return CD_ERROR;
    }
    reg->types[reg->n++] = t;
    return CD_OK;
}

int cd_registry_add_pack(cd_registry *reg, const char *pack_name, const char *module, cd_pack_init_fn init) {
    cd_pack pack = {.reg = reg, .name = pack_name, .module = module, .first_index = reg->n};
    int rc = init(&pack);
    if (rc != CD_OK) {
        cd_warn("node pack %s: its init function failed (%d); the pack is left out", pack_name, rc);
        while (reg->n > pack.first_index) {
            cd_node_type *t = reg->types[--reg->n];
            cd_map_remove(reg->by_name, t->def->name);
            type_free(t);
        }
        return -1;
    }
    return (int)(reg->n - pack.first_index);
}

int cd_registry_load_dir(cd_registry *reg, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int loaded = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || cd_str_ends_with_ci(e->d_name, ".disabled")) continue;
        char *pack_dir = cd_path_join(dir, e->d_name);
        if (!pack_dir || !cd_path_is_dir(pack_dir)) {
            free(pack_dir);
            continue;
        }
        DIR *pd = opendir(pack_dir);
        struct dirent *f;
        while (pd && (f = readdir(pd))) {
            if (!cd_str_ends_with_ci(f->d_name, ".so")) continue;
            char *so = cd_path_join(pack_dir, f->d_name);
            void *h = so ? dlopen(so, RTLD_NOW | RTLD_LOCAL) : NULL;
            if (!h) {
                cd_warn("node pack %s: cannot load %s: %s", e->d_name, f->d_name, dlerror());
                free(so);
                continue;
            }
            cd_pack_init_fn init = (cd_pack_init_fn)(uintptr_t)dlsym(h, CD_PACK_INIT_SYMBOL);
            if (!init) {
                cd_warn("node pack %s: %s has no %s function", e->d_name, f->d_name, CD_PACK_INIT_SYMBOL);
                dlclose(h);
                free(so);
                continue;
            }
            char module[300];
            snprintf(module, sizeof module, "custom_nodes.%s", e->d_name);
            int n = cd_registry_add_pack(reg, e->d_name, module, init);
            void **hs = realloc(reg->handles, (reg->nhandles + 1) * sizeof *hs);
            if (hs) {
                reg->handles = hs;
                hs[reg->nhandles++] = h;
            }
            if (n >= 0) {
                cd_info("node pack %s: %d node type(s) from %s", e->d_name, n, f->d_name);
                loaded++;
            }
            free(so);
        }
        if (pd) closedir(pd);
        free(pack_dir);
    }
    closedir(d);
    return loaded;
}

json_t *cd_node_type_info(const cd_node_type *t, const json_t *dynamic) {
    json_t *lists = dynamic ? json_object_get(dynamic, t->def->name) : NULL;
    if (!lists) return json_incref(t->info);
    /* Copy only what changes: the entry, its "input" object, the sections and declarations
     * that hold a replaced combo. The rest stays shared with the static entry. */
    json_t *info = json_copy(t->info);
    json_t *inputs = json_copy(json_object_get(info, "input"));
    json_object_set_new(info, "input", inputs);
    static const char *sections[] = {"required", "optional"};
    for (int s = 0; s < 2; s++) {
        json_t *sec = json_object_get(inputs, sections[s]);
        if (!sec) continue;
        sec = json_copy(sec);
        json_object_set_new(inputs, sections[s], sec);
        const char *name;
        json_t *options;
        json_object_foreach(lists, name, options) {
            json_t *decl = json_object_get(sec, name);
            if (!json_is_array(decl)) continue;
            json_t *copy = json_copy(decl);
            json_t *opts = json_array_get(copy, 1);
            if (json_is_string(json_array_get(copy, 0)) && json_is_object(opts)) {
                /* V3 ["COMBO", {..., "options": [...]}]: the list lives in the options */
                opts = json_copy(opts);
                json_object_set(opts, "options", options);
                json_array_set_new(copy, 1, opts);
            } else {
                json_array_set(copy, 0, options);
            }
            json_object_set_new(sec, name, copy);
        }
    }
    return info;
}

json_t *cd_registry_object_info(const cd_registry *reg, const json_t *dynamic) {
    json_t *all = json_object();
    for (size_t i = 0; i < reg->n; i++)
        json_object_set_new(all, reg->types[i]->def->name, cd_node_type_info(reg->types[i], dynamic));
    return all;
}

bool cd_input_is_combo(const cd_input_def *in) { return in->combo || (in->type && !strcmp(in->type, "COMBO")); }

/* The combo_options callback's list for one input (new reference), or NULL when the type has
 * no callback or it keeps the declared list. */
static json_t *dynamic_choices(const cd_node_type *t, const cd_input_def *in, const void *call_env) {
    if (!t->def->combo_options) return NULL;
    cd_node_call call;
    cd_call_init(&call, t, call_env, "", 0);
    char *text = t->def->combo_options(&call, in->name);
    cd_call_clear(&call);
    json_t *options = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (json_is_array(options)) return options;
    json_decref(options);
    return NULL;
}

json_t *cd_node_type_combo_choices(const cd_node_type *t, const cd_input_def *in, const void *call_env, bool *live) {
    if (live) *live = false;
    if (!cd_input_is_combo(in)) return NULL;
    json_t *options = dynamic_choices(t, in, call_env);
    if (live) *live = options != NULL;
    if (options) return options;
    return in->choices ? json_incref(in->choices) : json_array();
}

json_t *cd_registry_dynamic_combos(const cd_registry *reg, const void *call_env) {
    json_t *all = json_object();
    for (size_t i = 0; i < reg->n; i++) {
        const cd_node_type *t = reg->types[i];
        if (!t->def->combo_options) continue;
        json_t *lists = json_object();
        for (size_t k = 0; k < t->n_inputs; k++) {
            if (!cd_input_is_combo(&t->inputs[k])) continue;
            json_t *options = dynamic_choices(t, &t->inputs[k], call_env);
            if (options) json_object_set_new(lists, t->inputs[k].name, options);
        }
        if (json_object_size(lists)) json_object_set_new(all, t->def->name, lists);
        else json_decref(lists);
    }
    return all;
}
