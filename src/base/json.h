/* JSON text the way ComfyUI's Python server writes it (json.dumps defaults): ", " and ": "
 * separators, non-ASCII escaped as \uXXXX, insertion order kept. Clients compare some bodies
 * byte for byte, so every JSON response goes through here. */
#ifndef CD_BASE_JSON_H
#define CD_BASE_JSON_H

#include <jansson.h>

#include "base/buf.h"

#include <stdbool.h>

/* Serialises value (not consumed). Returns a new string (caller frees) or NULL on OOM. The
 * text is cd_json_dumps_reference's, byte for byte, for every tree (tests/fuzz/fuzz_json_dump),
 * written in one pass without jansson's writer. */
char *cd_json_dumps(const json_t *value);
/* Appends to out what cd_json_dumps(value) returns (compact: cd_json_dumps_compact(value,
 * JSON_ENCODE_ANY)), without the copy. Returns 0, or -1 where those return NULL (out of
 * memory, a string that is not UTF-8, a cycle), out's text then unchanged. */
int cd_json_write(cd_buf *out, const json_t *value, bool compact);
/* The jansson pipelines the writers above match: json_dumps(value, JSON_ENSURE_ASCII |
 * JSON_ENCODE_ANY), big integers restored, cd_json_lower_escapes; and json_dumps(value,
 * JSON_COMPACT | flags), big integers restored. For tests and flags without a fast path. */
char *cd_json_dumps_reference(const json_t *value);
char *cd_json_dumps_compact_reference(const json_t *value, size_t flags);
/* Writers for JSON text built by hand on hot paths (events sent for every node), in the same
 * format as cd_json_dumps: a string with its quotes, non-ASCII as \uXXXX (surrogate pairs above
 * the BMP), and a number as Python's repr (shortest round-trip, "1.0" for integral values;
 * NaN and infinities as Python's json.dumps writes them). Return 0 or -1 (out of memory). */
int cd_json_append_string(cd_buf *b, const char *s);
int cd_json_append_number(cd_buf *b, double x);

/* Integers beyond 64 bits. Python's json reads any integer; jansson refuses those that do not
 * fit a json_int_t. cd_json_loadb_bigint reads them as "big integer" strings: a NUL byte then
 * the decimal text ("\0-123..."). JSON from outside cannot produce such a string (it is read
 * without JSON_ALLOW_NUL), so the mark is unambiguous. Validation decides what they become;
 * cd_json_dumps and cd_json_dumps_compact write them back as bare integers, as Python does.
 * Same contract as json_loadb; the fast path is json_loadb itself. Hot paths read with
 * cd_json_parse below; this stays as its reference (tests/fuzz/fuzz_json). */
json_t *cd_json_loadb_bigint(const char *text, size_t len, size_t flags, json_error_t *error);
/* What cd_json_loadb_bigint(text, len, flags, error) returns, for every input (the same tree:
 * key order, values, big integers), several times faster: jansson's lexer is bypassed, its
 * tree-building calls are kept. Flags: JSON_DECODE_ANY and CD_JSON_REJECT_BIGINT; any other
 * is refused (NULL and "unsupported flags"). error, when given, says what was wrong in words
 * of its own (not jansson's) and where: line and column (in characters) from 1, byte offset. */
json_t *cd_json_parse(const char *text, size_t len, size_t flags, json_error_t *error);
/* cd_json_parse flag: integers beyond json_int_t are an error, as with json_loadb itself, which
 * cd_json_parse then matches instead. Above jansson's decoding flags. */
#define CD_JSON_REJECT_BIGINT ((size_t)1 << 30)
/* A new big-integer string for the decimal text [-]digits (no leading zeros), NULL on OOM. */
json_t *cd_json_bigint(const char *digits);
/* The decimal text of a big integer, or NULL when v is not one. */
const char *cd_json_bigint_text(const json_t *v);
/* json_dumps(value, JSON_COMPACT | flags) with big integers written back as bare integers
 * (cd_json_dumps_compact_reference). Flags 0 and JSON_ENCODE_ANY, those callers pass, take
 * cd_json_write; any other goes to jansson. */
char *cd_json_dumps_compact(const json_t *value, size_t flags);

/* Lowercases the hex of \uXXXX escapes in jansson's output, in place (Python writes \u00e9). */
void cd_json_lower_escapes(char *text);

#endif
