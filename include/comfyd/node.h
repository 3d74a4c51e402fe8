/* comfyd/node.h: the public, versioned interface between comfyd and node packs.
 *
 * A node pack is a shared library in custom_nodes/<pack>/ (or a built-in pack compiled into
 * comfyd) that exports one function, comfyd_pack_init(), which registers node types with
 * cd_pack_register(). Built-in packs use nothing but this header, so what they can do, an
 * external pack can do too.
 *
 * The model is ComfyUI's (API reference §7, §9):
 *  - A node type is described by its INPUT_TYPES as JSON text, its outputs, flags (output node,
 *    INPUT_IS_LIST, NOT_IDEMPOTENT, ...) and callbacks: execute, check_lazy_status,
 *    fingerprint (IS_CHANGED) and validate_inputs (VALIDATE_INPUTS).
 *  - Values flowing between nodes are immutable and reference-counted (cd_value). Every input
 *    is a list of per-call values; the engine calls execute once per element (mapping) unless
 *    the node sets CD_NODE_INPUT_IS_LIST, in which case each input arrives as a whole list.
 *  - A node can return an execution blocker (cd_value_blocker) instead of a value, ask for lazy
 *    inputs (cd_call_need_input), report progress and see interrupts (cd_call_progress), and
 *    expand into a subgraph (cd_call_graph_* and link values as outputs).
 *
 *  - An async node (execute_async, ABI 3) starts its work and returns at once; the work goes on
 *    elsewhere (a thread of the pack, a timer, a remote service) and ends with cd_call_finish.
 *    Several async nodes of a prompt are in flight together, as ComfyUI's async nodes are,
 *    while every other node still runs one at a time.
 *
 * Ownership: functions that take a `cd_value *` named `v` "consume" it (the caller's reference
 * moves to the callee); functions returning `const cd_value *` lend a reference valid for the
 * duration of the callback. Every string passed in is copied unless stated otherwise. All
 * callbacks run on the executor thread, one node at a time; only the work of an async node
 * goes on elsewhere (see execute_async for what it may call from there).
 */
#ifndef COMFYD_NODE_H
#define COMFYD_NODE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when the header changes what a pack sees. A pack states the version it was built for
 * in each cd_node_def. comfyd takes definitions from CD_NODE_ABI_MIN_VERSION up to its own
 * version: a newer version only adds fields at the end of cd_node_def, and comfyd reads only the
 * fields the definition's version has (the rest count as NULL/0). A change that breaks older
 * packs raises CD_NODE_ABI_MIN_VERSION too. Others are refused.
 *   2: tensors, combo_options.  3: execute_async and cd_call_finish (async nodes). */
#define CD_NODE_ABI_VERSION 3
#define CD_NODE_ABI_MIN_VERSION 2

/* Return codes of callbacks and of the cd_call_* functions that can fail. */
#define CD_OK 0
#define CD_ERROR (-1)       /* the node failed; cd_call_fail() said why */
#define CD_INTERRUPTED (-2) /* the user interrupted the prompt; return it as it is */
#define CD_PENDING 1        /* execute_async: the work goes on; cd_call_finish will end it */

/* ------------------------------------------------------------------------------------------ */
/* Values                                                                                      */

typedef struct cd_value cd_value;

typedef enum {
    CD_VALUE_NONE,    /* Python's None */
    CD_VALUE_INT,     /* int64 */
    CD_VALUE_FLOAT,   /* double */
    CD_VALUE_BOOL,
    CD_VALUE_STRING,  /* UTF-8 */
    CD_VALUE_JSON,    /* any other JSON constant (objects, lists given as {"__value__": [...]}) */
    CD_VALUE_LIST,    /* a list of values: INPUT_IS_LIST inputs, OUTPUT_IS_LIST outputs */
    CD_VALUE_LINK,    /* [node_id, slot]: rawLink inputs, and outputs of an expansion */
    CD_VALUE_OPAQUE,  /* a pack's own type (a model, a tensor of its own), with its free function */
    CD_VALUE_BLOCKER, /* ExecutionBlocker: consumers are not run */
    CD_VALUE_TENSOR,  /* a float32 array: IMAGE, MASK, LATENT samples (see Tensors below) */
} cd_value_kind;

cd_value *cd_value_none(void);
cd_value *cd_value_int(int64_t i);
cd_value *cd_value_float(double f);
cd_value *cd_value_bool(int b);
cd_value *cd_value_string(const char *s);
cd_value *cd_value_stringn(const char *s, size_t len);
/* NULL when json_text is not valid JSON. Numbers, strings, booleans and null become the
 * matching scalar kinds; objects and arrays stay CD_VALUE_JSON. */
cd_value *cd_value_json(const char *json_text);
cd_value *cd_value_link(const char *node_id, int slot);
/* An empty list with room for `capacity` items; fill it with cd_value_list_push before handing
 * it to anyone (values are immutable once shared). */
cd_value *cd_value_list_new(size_t capacity);
int cd_value_list_push(cd_value *list, cd_value *v);
/* type_name is the ComfyUI type it travels as ("MODEL", "MY_PACK_THING"). free_fn(ptr) runs
 * when the last reference goes; it may be NULL. */
cd_value *cd_value_opaque(const char *type_name, void *ptr, void (*free_fn)(void *ptr));
/* message NULL: a silent blocker. With a message, the engine reports it to the client as an
 * execution_error of the consumer ("Execution Blocked: <message>") without failing the prompt. */
cd_value *cd_value_blocker(const char *message);

cd_value *cd_value_ref(const cd_value *v);
void cd_value_unref(cd_value *v);

cd_value_kind cd_value_kind_of(const cd_value *v);
/* INT, FLOAT and BOOL convert among themselves; anything else gives 0. */
int64_t cd_value_as_int(const cd_value *v);
double cd_value_as_float(const cd_value *v);
int cd_value_as_bool(const cd_value *v);
/* The text of a STRING (NULL for other kinds), or the JSON text of a JSON value. */
const char *cd_value_as_string(const cd_value *v);
const char *cd_value_json_text(const cd_value *v);
size_t cd_value_list_len(const cd_value *v);
const cd_value *cd_value_list_at(const cd_value *v, size_t i);
const char *cd_value_link_node(const cd_value *v);
int cd_value_link_slot(const cd_value *v);
const char *cd_value_opaque_type(const cd_value *v);
void *cd_value_opaque_ptr(const cd_value *v);
const char *cd_value_blocker_message(const cd_value *v); /* NULL for a silent blocker */
/* Tensors: dense float32 arrays in row-major (C) order, as ComfyUI's torch tensors are.
 * `type` is the ComfyUI type the value travels as, with ComfyUI's layouts:
 *   "IMAGE"  [B, H, W, C], C = 3 (RGB) or 4 (RGBA), values 0..1
 *   "MASK"   [B, H, W] (or [H, W]), values 0..1
 *   "LATENT" samples [B, C, H, W]
 * The storage is reference-counted and shared: views (one image of a batch) and cached outputs
 * never copy pixels. A tensor is immutable once shared: write its data only between creating it
 * and handing it to anyone. */
#define CD_TENSOR_MAX_DIMS 5
/* A zero-filled tensor. NULL when ndim is out of 1..CD_TENSOR_MAX_DIMS, a dimension is
 * negative, or the size overflows or cannot be allocated. */
cd_value *cd_value_tensor_new(const char *type, int ndim, const int64_t *shape);
/* Takes over `data` (numel floats), which free_fn(data) releases when the last reference goes:
 * for buffers that a library (libvips) allocated. On failure free_fn(data) has run. */
cd_value *cd_value_tensor_wrap(const char *type, int ndim, const int64_t *shape, float *data,
                               void (*free_fn)(void *data));
/* A view of `base`'s storage from element `offset` with another type or shape (one image of a
 * batch, a MASK read as [B,H,W,1]); NULL when it does not fit inside base. */
cd_value *cd_value_tensor_view(const cd_value *base, const char *type, int ndim, const int64_t *shape,
                               size_t offset);
const char *cd_value_tensor_type(const cd_value *v); /* NULL for other kinds */
int cd_value_tensor_ndim(const cd_value *v);         /* 0 for other kinds */
/* Dimension i; negative i counts from the end (-1 is the last), as in Python. 0 when absent. */
int64_t cd_value_tensor_dim(const cd_value *v, int i);
size_t cd_value_tensor_numel(const cd_value *v);
const float *cd_value_tensor_data(const cd_value *v);
/* Writable data of a tensor this node has just created and not yet shared; NULL otherwise. */
float *cd_value_tensor_data_mut(cd_value *v);

/* The value as JSON text (caller frees with cd_free): what PreviewAny shows and UI outputs
 * carry. Opaque values become a string naming their type. */
char *cd_value_to_json(const cd_value *v);
void cd_free(void *p);

/* ------------------------------------------------------------------------------------------ */
/* Node types                                                                                  */

typedef struct cd_node_call cd_node_call;
typedef struct cd_pack cd_pack;

enum {
    CD_NODE_OUTPUT = 1u << 0,         /* OUTPUT_NODE: prompts run towards these */
    CD_NODE_INPUT_IS_LIST = 1u << 1,  /* INPUT_IS_LIST: one call with whole lists */
    CD_NODE_NOT_IDEMPOTENT = 1u << 2, /* NOT_IDEMPOTENT: the node id enters its cache key */
    CD_NODE_DEPRECATED = 1u << 3,
    CD_NODE_EXPERIMENTAL = 1u << 4,
    /* Describe the node in /object_info the way ComfyUI describes its V3 nodes: every key
     * present (output_tooltips, deprecated, experimental, api_node), as clients may expect for
     * node classes that are V3 in ComfyUI. */
    CD_NODE_V3_INFO = 1u << 5,
};

typedef struct {
    const char *type;    /* "INT", "IMAGE", "*", a custom name, or a JSON array of combo options */
    const char *name;    /* RETURN_NAMES; NULL means the type */
    /* OUTPUT_IS_LIST: 1 or 0; -1 means "not stated" (a V3 output whose is_output_list is None:
     * /object_info shows null) and behaves as 0. */
    int is_list;
    const char *tooltip;    /* OUTPUT_TOOLTIPS; NULL for none */
    const char *match_type; /* V3 MatchType template id ("switch") shown in output_matchtypes; NULL */
} cd_output_def;

typedef struct cd_node_def {
    int abi_version; /* CD_NODE_ABI_VERSION */
    const char *name;
    const char *display_name; /* NULL: the name (null for CD_NODE_V3_INFO nodes, as ComfyUI shows them) */
    const char *category;     /* NULL: "sd", as in ComfyUI */
    const char *description;  /* NULL: "" */
    /* NULL: "custom_nodes.<pack directory>". Built-in packs give ComfyUI's module, e.g.
     * "comfy_extras.nodes_primitive", so that clients see the same /object_info. */
    const char *python_module;
    /* INPUT_TYPES() as JSON text, exactly what /object_info shows under "input", e.g.
     * {"required": {"value": ["INT", {"default": 0, "min": 0}]}, "optional": {...},
     *  "hidden": {"unique_id": "UNIQUE_ID"}}. Key order is declaration order. Options the
     * engine interprets: min, max (validation), lazy, rawLink (execution); the rest is passed
     * to clients verbatim. */
    const char *inputs;
    const cd_output_def *outputs;
    int n_outputs;
    unsigned flags;

    /* Runs the node for one call (or once with whole lists, for INPUT_IS_LIST). Sets its
     * outputs with cd_call_set_output and its UI with cd_call_ui; returns CD_OK, CD_ERROR
     * (after cd_call_fail) or CD_INTERRUPTED. Required. */
    int (*execute)(cd_node_call *call);
    /* check_lazy_status: calls cd_call_need_input for each lazy input it needs now, given the
     * inputs available so far (unevaluated ones read as NULL). Optional. */
    int (*check_lazy_status)(cd_node_call *call);
    /* IS_CHANGED / fingerprint_inputs: a value that enters the cache key; it sees constant
     * inputs only (linked ones read as NULL). A float NaN means "never cached". Returning NULL
     * counts as NaN. Optional. */
    cd_value *(*fingerprint)(cd_node_call *call);
    /* VALIDATE_INPUTS: runs at submission with the constant inputs (linked ones read as NULL).
     * Returns CD_OK, or CD_ERROR after cd_call_fail(call, NULL, "message") to reject. Optional. */
    int (*validate_inputs)(cd_node_call *call);
    /* The inputs validate_inputs takes, comma-separated, as its Python argument list would
     * name them; those skip the built-in min/max/combo checks. "**kwargs" means all inputs.
     * Add "input_types" to receive linked inputs' types (cd_call_input_type) and to skip the
     * link type check. */
    const char *validate_inputs_args;
    void *user; /* for the pack: cd_call_user() returns it */
    /* Combo inputs whose options are only known when asked, such as the files in input/ that
     * LoadImage offers: returns the options of combo input `input` as a JSON array text
     * (malloc'd; comfyd frees it), or NULL to keep the declared list. Called for /object_info
     * with a call that has no inputs; cd_call_directory() works. Optional. (ABI 2) */
    char *(*combo_options)(cd_node_call *call, const char *input);
    /* (ABI 3) An async node: ComfyUI's `async def` FUNCTION. Called on the executor thread, like
     * execute, once per call; it starts the work and returns CD_PENDING, after which the work
     * (on a thread of the pack's own, a timer, ...) ends the call with cd_call_finish, exactly
     * once. It may also return CD_OK, CD_ERROR or CD_INTERRUPTED at once, as execute does, and
     * then never calls cd_call_finish. While calls are pending the executor runs other nodes,
     * other async nodes included, and waits for these only when nothing else can run.
     * From another thread, until cd_call_finish, the work may use the call with: the
     * cd_call_input readers (inputs stay valid), cd_call_set_output, cd_call_ui, cd_call_fail,
     * cd_call_progress, cd_call_interrupted, cd_call_send_text, cd_call_send_preview,
     * cd_call_directory, cd_call_user and cd_call_unique_id; the rest only on the executor
     * thread, inside execute_async. One call is never used by two threads at a time. When the
     * prompt fails or is interrupted, cd_call_interrupted turns true for every pending call: end
     * it soon with CD_INTERRUPTED (the prompt's end waits for it). Outputs that are links
     * (expansion) work as they do for execute. Set it instead of, or besides, execute (then
     * execute is not used). Optional. */
    int (*execute_async)(cd_node_call *call);
} cd_node_def;

/* Registers a node type. def and everything it points to must stay valid while comfyd runs
 * (static data in the pack). Returns CD_OK, or CD_ERROR when the definition is invalid (bad
 * JSON, wrong ABI version, a name already taken); comfyd logs why and leaves it out. */
int cd_pack_register(cd_pack *pack, const cd_node_def *def);
const char *cd_pack_name(const cd_pack *pack);

/* The symbol every pack exports. Return CD_OK; CD_ERROR leaves the whole pack out. */
#define CD_PACK_INIT_SYMBOL "comfyd_pack_init"
typedef int (*cd_pack_init_fn)(cd_pack *pack);

/* ------------------------------------------------------------------------------------------ */
/* Inside a callback                                                                           */

void *cd_call_user(const cd_node_call *call);
const char *cd_call_class(const cd_node_call *call);

/* An input's value for this call: a single value, or a CD_VALUE_LIST for INPUT_IS_LIST nodes.
 * NULL when the input is absent, or is a lazy input not evaluated yet. */
const cd_value *cd_call_input(const cd_node_call *call, const char *name);
/* Convenience readers with a fallback for absent inputs. */
int64_t cd_call_int(const cd_node_call *call, const char *name, int64_t fallback);
double cd_call_float(const cd_node_call *call, const char *name, double fallback);
int cd_call_bool(const cd_node_call *call, const char *name, int fallback);
const char *cd_call_string(const cd_node_call *call, const char *name, const char *fallback);
/* The names of all inputs given to this call (declared ones and undeclared links), in the
 * prompt's order: for variadic nodes. Returns the count; name_at gives each. */
size_t cd_call_input_count(const cd_node_call *call);
const char *cd_call_input_name_at(const cd_node_call *call, size_t i);
/* validate_inputs with "input_types": the type linked into an input, or NULL. */
const char *cd_call_input_type(const cd_node_call *call, const char *name);

/* Sets output `slot` (0-based) for this call. For OUTPUT_IS_LIST outputs, give a list. A link
 * value (cd_value_link) makes this call an expansion (see the graph functions). */
int cd_call_set_output(cd_node_call *call, int slot, cd_value *v);
/* Appends v to the UI output list under key ("text", "images", ...): what the client receives
 * in `executed` and what history keeps. */
int cd_call_ui(cd_node_call *call, const char *key, cd_value *v);
/* Records why the node failed. exception_type NULL means "RuntimeError". Returns CD_ERROR. */
int cd_call_fail(cd_node_call *call, const char *exception_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Ends a call whose execute_async returned CD_PENDING, from any thread, with what execute would
 * have returned: CD_OK (outputs set), CD_ERROR (after cd_call_fail) or CD_INTERRUPTED. The
 * call belongs to comfyd again as soon as this is called. (ABI 3) */
void cd_call_finish(cd_node_call *call, int rc);

/* check_lazy_status: asks for a lazy input to be evaluated. */
int cd_call_need_input(cd_node_call *call, const char *name);

/* Progress of a long node: sends `progress`; returns CD_INTERRUPTED when the user interrupted
 * (the node should then return CD_INTERRUPTED), else CD_OK. */
int cd_call_progress(cd_node_call *call, double value, double max);
int cd_call_interrupted(const cd_node_call *call);
/* Text shown under the node in the UI (binary TEXT frame). */
void cd_call_send_text(cd_node_call *call, const char *text);
/* A preview image (binary PREVIEW_IMAGE frame). mime is "image/png" or "image/jpeg". */
int cd_call_send_preview(cd_node_call *call, const char *mime, const void *bytes, size_t len);

/* Hidden inputs. */
const char *cd_call_unique_id(const cd_node_call *call);          /* UNIQUE_ID */
const char *cd_call_prompt_json(const cd_node_call *call);        /* PROMPT, as JSON text */
const char *cd_call_extra_pnginfo_json(const cd_node_call *call); /* EXTRA_PNGINFO or NULL */
/* DYNPROMPT: the prompt as it runs, nodes added by expansions included (ComfyUI's
 * DynamicPrompt.get_node), for nodes that rebuild part of the graph around them, such as loop
 * ends that clone the nodes between the loop's open and close. node_id is any node of the
 * prompt, original or ephemeral. The class, or NULL when the prompt has no such node. */
const char *cd_call_prompt_node_class(cd_node_call *call, const char *node_id);
/* The node's inputs in the prompt's order (0 for an unknown node): the name and the value of
 * input i, a CD_VALUE_LINK ([source node id, slot]) for a link and the constant otherwise.
 * Both are lent for the duration of the callback; NULL when i is out of range. */
size_t cd_call_prompt_node_input_count(cd_node_call *call, const char *node_id);
const char *cd_call_prompt_node_input_name(cd_node_call *call, const char *node_id, size_t i);
const cd_value *cd_call_prompt_node_input_value(cd_node_call *call, const char *node_id, size_t i);
/* Whether saved files carry the prompt and workflow (not with --disable-metadata). */
int cd_call_save_metadata(const cd_node_call *call);
/* Where SaveImage-like nodes write: "output", "temp", "input" directories. */
const char *cd_call_directory(const cd_node_call *call, const char *type);

/* Expansion (GraphBuilder). Each call to cd_call_graph_begin starts a new graph whose node ids
 * are "<this node's id>.<call index>.<graph index>.<local id>". Nodes are added by class;
 * inputs are constants or cd_value_link()s to nodes of the graph (by the id that
 * cd_call_graph_add returned) or of the prompt. Setting outputs of the call to links into the
 * graph makes the engine run the graph and use those values as this node's outputs. */
int cd_call_graph_begin(cd_node_call *call);
/* Adds a node; local_id NULL picks "1", "2", ... Returns the node's full id (valid during the
 * callback), or NULL when the id is taken. */
const char *cd_call_graph_add(cd_node_call *call, const char *class_type, const char *local_id);
int cd_call_graph_set_input(cd_node_call *call, const char *node_id, const char *input, cd_value *v);
/* override_display_id: the id clients see for this node in `executing` and progress. */
int cd_call_graph_set_display(cd_node_call *call, const char *node_id, const char *display_id);

#ifdef __cplusplus
}
#endif

#endif
