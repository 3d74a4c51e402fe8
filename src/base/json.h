/* JSON text the way ComfyUI's Python server writes it (json.dumps defaults): ", " and ": "
 * separators, non-ASCII escaped as \uXXXX, insertion order kept. Clients compare some bodies
 * byte for byte, so every JSON response goes through here. */
#ifndef CD_BASE_JSON_H
#define CD_BASE_JSON_H

#include <jansson.h>

#include "base/buf.h"

/* Serialises value (not consumed). Returns a new string (caller frees) or NULL on OOM. */
char *cd_json_dumps(const json_t *value);
/* Writers for JSON text built by hand on hot paths (events sent for every node), in the same
 * format as cd_json_dumps: a string with its quotes, non-ASCII as \uXXXX (surrogate pairs above
 * the BMP), and a number as Python's repr (shortest round-trip, "1.0" for integral values;
 * NaN and infinities as Python's json.dumps writes them). Return 0 or -1 (out of memory). */
int cd_json_append_string(cd_buf *b, const char *s);
int cd_json_append_number(cd_buf *b, double x);

/* Lowercases the hex of \uXXXX escapes in jansson's output, in place (Python writes \u00e9). */
void cd_json_lower_escapes(char *text);

#endif
