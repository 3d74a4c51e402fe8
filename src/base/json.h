/* JSON text the way ComfyUI's Python server writes it (json.dumps defaults): ", " and ": "
 * separators, non-ASCII escaped as \uXXXX, insertion order kept. Clients compare some bodies
 * byte for byte, so every JSON response goes through here. */
#ifndef CD_BASE_JSON_H
#define CD_BASE_JSON_H

#include <jansson.h>

/* Serialises value (not consumed). Returns a new string (caller frees) or NULL on OOM. */
char *cd_json_dumps(const json_t *value);
/* Lowercases the hex of \uXXXX escapes in jansson's output, in place (Python writes \u00e9). */
void cd_json_lower_escapes(char *text);

#endif
