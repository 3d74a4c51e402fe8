/* A prompt as the executor sees it: nodes with their class, inputs (constants as values, or
 * links to another node's output slot), and, for nodes created by expansion, their parent and
 * display ids. Nodes are kept in insertion order and indexed by id. This is ComfyUI's
 * DynamicPrompt: the original graph plus the ephemeral nodes expansions add while it runs. */
#ifndef CD_ENGINE_PROMPT_H
#define CD_ENGINE_PROMPT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/arena.h"
#include "base/map.h"
#include "comfyd/node.h"
#include "engine/registry.h"

typedef struct cd_prompt_node cd_prompt_node;

typedef struct {
    char *name;
    bool is_link;
    char *src; /* link: source node id */
    int slot;  /* link: source output slot */
    cd_value *value; /* constant (owned), NULL for links */
    /* link: the source node once the executor looked it up (nodes are never removed while a
     * prompt runs), so a link is resolved by id once, not at every use. */
    cd_prompt_node *src_node;
} cd_prompt_input;

struct cd_prompt_node {
    char *id;
    char *class_type;
    const cd_node_type *type; /* NULL if the class is unknown */
    cd_prompt_input *inputs;
    size_t n_inputs;
    char *parent;   /* expansion: the node that created it; NULL for original nodes */
    char *display;  /* expansion: override_display_id or the parent's display id */
    bool ephemeral;
    /* An original node: it, its inputs array and its strings belong to the prompt's arena or
     * to the prompt's JSON (which the prompt holds and nobody changes once validated); only
     * its values are its own. Ephemeral nodes own everything. */
    bool in_arena;
    size_t index;   /* position in the prompt */
};

typedef struct cd_prompt {
    cd_prompt_node **nodes;
    size_t n, cap;
    size_t n_original;
    cd_map *by_id; /* keys borrowed from the nodes */
    cd_arena arena;
    json_t *json; /* the original prompt (validated and converted), for PROMPT hidden inputs */
    char *json_text;
} cd_prompt;

/* Builds the executor's graph from a validated API-format prompt (new reference kept). */
cd_prompt *cd_prompt_from_json(const cd_registry *reg, json_t *prompt, char *err, size_t errlen);
void cd_prompt_free(cd_prompt *p);

cd_prompt_node *cd_prompt_get(const cd_prompt *p, const char *id);
const cd_prompt_input *cd_prompt_node_input(const cd_prompt_node *n, const char *name);

/* Adds an ephemeral node (takes ownership of n). Returns 0, or -1 if the id exists. */
int cd_prompt_add(cd_prompt *p, cd_prompt_node *n);
cd_prompt_node *cd_prompt_node_new(const cd_registry *reg, const char *id, const char *class_type);
void cd_prompt_node_free(cd_prompt_node *n);
/* Adds or replaces an input (takes ownership of value; a link value becomes a link). */
int cd_prompt_node_set_input(cd_prompt_node *n, const char *name, cd_value *value);

/* The id a client sees for a node, and the original node it belongs to. */
const char *cd_prompt_display_id(const cd_prompt *p, const cd_prompt_node *n);
const char *cd_prompt_real_id(const cd_prompt *p, const cd_prompt_node *n);

#endif
