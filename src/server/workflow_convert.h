/* Workflow format conversion: the UI format the ComfyUI frontend saves (nodes, links, groups,
 * widgets_values) to the API format POST /prompt takes ({id: {class_type, inputs, _meta}}),
 * the way the frontend's graphToPrompt does it, with the server's node definitions standing in
 * for the frontend's widgets:
 *
 * - widgets_values map onto the node type's widget inputs (INT, FLOAT, STRING, BOOLEAN, COMBO
 *   without forceInput) in declaration order, required before optional. A widget with
 *   `control_after_generate` in its options is followed by the control's own value ("fixed",
 *   "increment", "decrement", "randomize"), which is skipped; so is the upload button's value after a
 *   combo with image_upload/video_upload/audio_upload. An object widgets_values ({name: value}) is
 *   read by name.
 * - A linked input becomes [origin_id, origin_slot] and overrides a widget of the same name.
 * - Muted nodes (mode 2) and bypassed nodes (mode 4) are left out. A link from a bypassed node is
 *   followed to that node's input of the same type (the input at the same slot first), as the
 *   frontend does. A link that leads nowhere leaves the input to its widget value, if any.
 * - Frontend-only nodes: Reroute is followed through; a legacy PrimitiveNode gives its first
 *   widget value as a constant; Note and MarkdownNote are dropped.
 * - _meta.title is the node's title, or the type's display name when the file has no title.
 *
 * Not handled: subgraphs (definitions.subgraphs) and legacy group nodes ("workflow>…"): they
 * are reported as unknown node types. */
#ifndef CD_SERVER_WORKFLOW_CONVERT_H
#define CD_SERVER_WORKFLOW_CONVERT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct cd_registry cd_registry;

/* Does doc look like a UI-format workflow (an object with a "nodes" array) rather than an
 * API-format prompt? */
bool cd_workflow_is_ui_format(const json_t *doc);

/* Converts ui (not consumed) into a new API-format object in *api_out. Returns 0, or -1 with a
 * message in err (a node type unknown to reg, a malformed document). */
int cd_workflow_to_api(const cd_registry *reg, const json_t *ui, json_t **api_out, char *err, size_t errlen);

#endif
