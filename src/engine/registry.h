/* The node registry: every node type from the built-in packs and the packs in custom_nodes/,
 * with its parsed input declarations and its /object_info entry. Built at start-up, read-only
 * afterwards, so the executor thread and the loop thread share it without locks. */
#ifndef CD_ENGINE_REGISTRY_H
#define CD_ENGINE_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>

#include "comfyd/node.h"

typedef enum { CD_INPUT_REQUIRED, CD_INPUT_OPTIONAL, CD_INPUT_HIDDEN } cd_input_section;

typedef struct {
    const char *name;        /* borrowed from the parsed JSON */
    const char *type;        /* "INT", "IMAGE,MASK", "*", "COMBO"; legacy combos have type "COMBO" too */
    json_t *config;          /* the declaration as given, e.g. ["INT", {"min": 0}] (borrowed) */
    json_t *options;         /* its options object, or NULL (borrowed) */
    json_t *combo;           /* legacy combo's option array, or NULL (borrowed) */
    /* The options a combo accepts as declared, in either form: the legacy list, or the
     * "options" list of ["COMBO", {"options": [...]}] (borrowed). NULL for a "COMBO" that
     * declares none, which ComfyUI treats as an empty list, and for inputs that are no combo. */
    json_t *choices;
    cd_input_section section;
    bool lazy, raw_link;
    /* Hidden inputs the engine fills: "PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "UNIQUE_ID",
     * "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"; NULL for ordinary inputs. */
    const char *hidden_kind;
} cd_input_def;

typedef struct cd_node_type {
    /* Points at def_copy: the pack's definition as this comfyd's cd_node_def, the fields its
     * ABI version lacks left NULL/0 (node.h, CD_NODE_ABI_MIN_VERSION). */
    const cd_node_def *def;
    cd_node_def def_copy;
    char *pack_name;
    json_t *inputs_json; /* owns what cd_input_def borrows */
    cd_input_def *inputs;
    size_t n_inputs;
    json_t *info; /* the /object_info entry */
    bool validate_takes_all, validate_takes_types;
    char **validate_args;
    size_t n_validate_args;
} cd_node_type;

typedef struct cd_registry cd_registry;

cd_registry *cd_registry_new(void);
void cd_registry_free(cd_registry *reg);

/* Runs a pack's init function. module is the python_module default for its nodes
 * ("custom_nodes.<name>" for external packs). Returns the number of node types it registered,
 * or -1 when init failed (its nodes are then removed). */
int cd_registry_add_pack(cd_registry *reg, const char *pack_name, const char *module, cd_pack_init_fn init);

/* Loads the .so files in each custom_nodes/<dir>/ (dlopen + comfyd_pack_init). Failures are logged and
 * skipped. Returns the number of packs loaded. */
int cd_registry_load_dir(cd_registry *reg, const char *custom_nodes_dir);

/* What validate_inputs and combo_options callbacks can reach (the directories): a cd_call_env
 * that must outlive the registry's use, or NULL. */
void cd_registry_set_call_env(cd_registry *reg, const void *call_env);
const void *cd_registry_call_env(const cd_registry *reg);

const cd_node_type *cd_registry_get(const cd_registry *reg, const char *name);
size_t cd_registry_count(const cd_registry *reg);
const cd_node_type *cd_registry_at(const cd_registry *reg, size_t i);
/* {name: info} for every type, in registration order (new reference). `dynamic` (or NULL) is
 * what cd_registry_dynamic_combos returned: those option lists replace the declared ones. */
json_t *cd_registry_object_info(const cd_registry *reg, const json_t *dynamic);
/* One type's /object_info entry with its dynamic combos applied (new reference). */
json_t *cd_node_type_info(const cd_node_type *t, const json_t *dynamic);
/* Asks every type with a combo_options callback for its current lists: {class: {input:
 * [options]}} (new reference; {} when there are none). env gives the directories. */
json_t *cd_registry_dynamic_combos(const cd_registry *reg, const void *call_env);

/* Is this input a combo, in the legacy form (a list) or declared as "COMBO"? */
bool cd_input_is_combo(const cd_input_def *in);
/* The options combo input `in` of type t accepts now, as ComfyUI's validation reads them from
 * INPUT_TYPES at that moment: the combo_options callback's list when the type has one and it
 * answers, else the declared list ([] when a "COMBO" declares none). New reference; NULL when
 * `in` is no combo or memory ran out. env as for cd_registry_dynamic_combos. *live (may be
 * NULL) tells whether the list came from the callback. */
json_t *cd_node_type_combo_choices(const cd_node_type *t, const cd_input_def *in, const void *call_env, bool *live);

const cd_input_def *cd_node_type_input(const cd_node_type *t, const char *name);
bool cd_node_type_is_output(const cd_node_type *t);
/* Does validate_inputs take this input by name (so the built-in range checks skip it)? */
bool cd_node_type_validates(const cd_node_type *t, const char *input_name);

#endif
