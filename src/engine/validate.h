/* Prompt validation with ComfyUI's error shapes (API reference §5).
 *
 * POST /prompt runs every submitted API-format prompt through cd_validate_prompt before it is
 * queued. Clients show ComfyUI's error objects to users and some compare them, so the error
 * types, messages, details and extra_info shapes are ComfyUI's byte for byte, including the
 * Python formatting of values inside them (repr of strings and lists, float repr, exception
 * texts of int()/float()). Where a value cannot be what Python would produce (a traceback, a
 * float NaN in JSON) the nearest JSON-safe form is used; validate.c says where.
 *
 * The walk over the graph is ComfyUI's recursive validate_inputs, one memo shared by all
 * outputs, but driven by an explicit stack so that a chain of any length validates in memory
 * linear in the graph. Cycles are detected on the way, as later ComfyUI versions do, and
 * reject the prompt. */
#ifndef CD_ENGINE_VALIDATE_H
#define CD_ENGINE_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/registry.h"

typedef struct {
    json_t *error;       /* owned; NULL when the prompt is accepted, else the 400 "error" object
                          * {type, message, details, extra_info} */
    json_t *node_errors; /* owned; always an object (possibly empty), ComfyUI's node_errors shape:
                          * {node_id: {errors, dependent_outputs, class_type}} */
    char **outputs;      /* owned; ids of the output nodes to execute (the valid ones, restricted
                          * by the partial targets), in prompt order; none when rejected */
    size_t n_outputs;
    /* The same prompt would validate the same way again: no node of it has a VALIDATE_INPUTS
     * callback or options that change while the server runs (the files LoadImage offers). */
    bool repeatable;
} cd_validation;

/* Validates an API-format prompt ({id: {class_type, inputs, _meta?}}; any JSON value is
 * accepted and anything else than an object is an invalid_prompt error). Converts constants in
 * place as ComfyUI does (INT via int(), FLOAT via float(), STRING via str(), BOOLEAN via bool();
 * {"__value__": v} unwrapped), so the queued prompt holds the converted values.
 * partial_targets: NULL, JSON null, or a JSON array of node ids (borrowed).
 * Returns 0 with the result in *out (release it with cd_validation_clear), or -1 when memory ran
 * out (*out is then empty; the prompt may be partly converted). */
int cd_validate_prompt(const cd_registry *reg, json_t *prompt, const json_t *partial_targets, cd_validation *out);
void cd_validation_clear(cd_validation *v);

/* Python's str() of a JSON value: strings as they are, None/True/False, float repr (0.5, 1.0,
 * 1e-05), lists and dicts as Python prints them. New string (caller frees) or NULL on OOM. */
char *cd_validate_py_str(const json_t *v);

/* Python's float() of a JSON value, for FLOAT inputs whose validated value stayed a string
 * because JSON cannot hold it ("nan", "inf", "1e400"). Returns 0 and sets *out, or -1 when
 * float() would fail. */
int cd_validate_py_float(const json_t *v, double *out);

/* Python's int() of a text (surrounding whitespace, a sign, underscores between digits): a JSON
 * integer, or a big integer (base/json.h) beyond 64 bits. NULL when int() would raise (or memory
 * ran out). */
json_t *cd_validate_py_int_text(const char *text, size_t len);

#endif
