/* One call of a node's callback (execute, check_lazy_status, fingerprint, validate_inputs):
 * the inputs it sees, the outputs and UI it sets, its error, the lazy inputs it asks for and
 * the subgraph it builds. The executor creates these; the public cd_call_* functions of
 * node.h read and fill them. */
#ifndef CD_ENGINE_CALL_H
#define CD_ENGINE_CALL_H

#include <jansson.h>
#include <stdbool.h>

#include "comfyd/node.h"
#include "engine/prompt.h"
#include "engine/registry.h"

/* What a call can reach of the executor around it. All may be NULL (validation, tests). */
typedef struct {
    void *ctx;
    int (*interrupted)(void *ctx);
    void (*progress)(void *ctx, const char *node_id, double value, double max);
    void (*text)(void *ctx, const char *node_id, const char *text);
    void (*preview)(void *ctx, const char *node_id, const char *mime, const void *bytes, size_t len);
    const char *(*directory)(void *ctx, const char *type);
    const char *prompt_json;        /* PROMPT */
    const char *extra_pnginfo_json; /* EXTRA_PNGINFO or NULL */
    /* Optional: fills prompt_json and extra_pnginfo_json when a node first asks for them
     * (serialising a large prompt on every run is not free, and few nodes read it). */
    void (*make_texts)(void *ctx);
    const cd_registry *registry;    /* for expansions */
    const cd_prompt *dynprompt;     /* DYNPROMPT: the running prompt, expansions included; or NULL */
    bool no_metadata;               /* --disable-metadata */
    /* cd_call_finish of an async call (any thread); NULL where no call can be pending. */
    void (*finish)(void *ctx, cd_node_call *call, int rc);
} cd_call_env;

#define CD_CALL_SMALL_INPUTS 8
#define CD_CALL_SMALL_OUTPUTS 4

struct cd_node_call {
    const cd_node_type *type;
    const cd_call_env *env;
    const char *node_id;
    size_t call_index;
    /* inputs */
    const char **names;
    const cd_value **values; /* NULL entries: absent for this call / unevaluated */
    const char **input_types;
    size_t n_inputs;
    /* results */
    cd_value **outputs; /* n = type->def->n_outputs */
    json_t *ui;         /* {key: [..]} or NULL */
    char *error_type, *error_message;
    char **needed; /* check_lazy_status */
    size_t n_needed;
    /* expansion */
    cd_prompt_node **graph; /* nodes built by this call (owned until taken) */
    size_t n_graph;
    int graph_index; /* -1 before cd_call_graph_begin */
    int graph_local_counter;
    char *graph_prefix;
    char *returned_id; /* storage for cd_call_graph_add's answer */
    cd_value **lent;   /* link values lent by cd_call_prompt_node_input_value, freed at clear */
    size_t n_lent;
    void *async; /* the executor's record of an async call in flight (see cd_call_env.finish) */
    /* Most calls have a few inputs and outputs: they live here, and a call made for every node
     * of a large prompt allocates nothing. names/values/input_types point here until they
     * outgrow it (so a call must not be copied once initialised). */
    size_t cap_inputs;
    const char *small_names[CD_CALL_SMALL_INPUTS];
    const cd_value *small_values[CD_CALL_SMALL_INPUTS];
    const char *small_types[CD_CALL_SMALL_INPUTS];
    cd_value *small_outputs[CD_CALL_SMALL_OUTPUTS];
};

void cd_call_init(cd_node_call *call, const cd_node_type *type, const cd_call_env *env, const char *node_id,
                  size_t call_index);
/* Adds an input for this call (borrowed name and value). */
int cd_call_add_input(cd_node_call *call, const char *name, const cd_value *value, const char *type_name);
void cd_call_clear(cd_node_call *call);

/* Runs validate_inputs with constants (name → JSON value; linked inputs are passed as None) and
 * input_types (name → type). Returns CD_OK, or CD_ERROR with *message set (malloc'd; "" when the
 * node gave no reason). */
int cd_call_run_validate(const cd_node_type *t, const cd_call_env *env, json_t *constants, json_t *input_types,
                         char **message);

#endif
