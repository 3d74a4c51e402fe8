/* Text helpers shared by the built-in string packs (string.c, dataset_text.c, preview_any.c):
 * Python's str semantics over UTF-8. ComfyUI's string nodes are thin wrappers around Python str
 * methods, which count and index code points, not bytes, and use Unicode's full case mappings
 * ("ß".upper() == "SS", final sigma in lower()). These helpers give the same results; the case
 * data in unicase_table.c is generated from Python itself (unicase_gen.py).
 *
 * Private to src/nodes: packs still use nothing of comfyd but include/comfyd/node.h.
 *
 * Strings carry explicit lengths (a Python str may hold U+0000). Bytes that are not valid UTF-8
 * never come from JSON prompts, but are passed through unchanged, one "code point" per byte. */
#ifndef CD_NODES_TEXT_UTIL_H
#define CD_NODES_TEXT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "comfyd/node.h"

/* A growable byte buffer; any allocation failure sets oom and later appends do nothing. */
typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} cd_text_buf;

void cd_text_buf_init(cd_text_buf *b);
void cd_text_buf_free(cd_text_buf *b);
void cd_text_append(cd_text_buf *b, const char *s, size_t n);
void cd_text_puts(cd_text_buf *b, const char *s);
void cd_text_printf(cd_text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a code point as UTF-8 (an invalid-byte marker as that byte). */
void cd_text_putc(cd_text_buf *b, uint32_t cp);
/* The buffer as a new STRING value (NULL after an allocation failure); the buffer is freed. */
cd_value *cd_text_buf_value(cd_text_buf *b);

/* Marks a byte that does not start valid UTF-8: decoded as CD_TEXT_RAW | byte. */
#define CD_TEXT_RAW 0x80000000u

/* Decodes the code point at s[*i] (i < len) and advances *i past it. */
uint32_t cd_text_next(const char *s, size_t len, size_t *i);
/* Number of code points: Python's len(). */
size_t cd_text_length(const char *s, size_t len);
/* Byte offset of code point `index` (len when index is past the end). */
size_t cd_text_offset(const char *s, size_t len, size_t index);
/* Python's s[start:stop] on code points, with its negative-index and clamping rules; returns
 * the byte range. */
void cd_text_slice(const char *s, size_t len, int64_t start, int64_t stop, size_t *from, size_t *to);

/* str.upper(), str.lower(), str.title(), str.capitalize() appended to out. */
void cd_text_upper(cd_text_buf *out, const char *s, size_t len);
void cd_text_lower(cd_text_buf *out, const char *s, size_t len);
void cd_text_title(cd_text_buf *out, const char *s, size_t len);
void cd_text_capitalize(cd_text_buf *out, const char *s, size_t len);
/* str.isspace() for one code point. */
int cd_text_is_space(uint32_t cp);
/* str.strip() / lstrip() / rstrip(): the byte range that remains. */
void cd_text_strip(const char *s, size_t len, int left, int right, size_t *from, size_t *to);
/* str.replace(find, repl) (all occurrences; an empty `find` inserts repl around every code
 * point, as Python does) appended to out. */
void cd_text_replace(cd_text_buf *out, const char *s, size_t len, const char *find, size_t flen, const char *repl,
                     size_t rlen);
/* Python's `needle in hay` on bytes (UTF-8 keeps code point boundaries). */
int cd_text_contains(const char *hay, size_t hlen, const char *needle, size_t nlen);

/* repr(float) / str(float): the shortest text that reads back as f ("0.1", "1e+16", "inf"). */
void cd_text_float_repr(double f, char out[32]);
/* Python's type(x).__name__ for a value, for error messages. */
const char *cd_text_py_type(const cd_value *v);

/* ---- the generated tables (unicase_table.c) ---- */

/* A mapping value below CD_UC_MULTI is one code point; CD_UC_MULTI + k is cd_uc_multi[k],
 * up to three code points, 0-terminated. */
#define CD_UC_MULTI 0x110000u
typedef struct {
    uint32_t cp, upper, lower, title;
} cd_uc_map;
typedef struct {
    uint32_t first, last;
} cd_uc_range;

extern const cd_uc_map cd_uc_maps[];
extern const size_t cd_uc_n_maps;
extern const uint32_t cd_uc_multi[][3];
extern const cd_uc_range cd_uc_cased[];
extern const size_t cd_uc_n_cased;
extern const cd_uc_range cd_uc_case_ignorable[];
extern const size_t cd_uc_n_case_ignorable;
extern const uint32_t cd_uc_spaces[];
extern const size_t cd_uc_n_spaces;

/* Python's json.dumps(value) (default separators ", " and ": ", ASCII escapes) of JSON text;
 * NULL when it is not JSON. malloc'd. (Lives in preview_any.c with the rest of the printer.) */
char *cd_py_json_dumps(const char *json_text);

#endif
