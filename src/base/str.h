/* Small string helpers the HTTP layers share: case-insensitive comparison, suffix tests,
 * percent-decoding and query-string lookup. */
#ifndef CD_BASE_STR_H
#define CD_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>

bool cd_str_ieq(const char *a, const char *b);
bool cd_str_starts_with(const char *s, const char *prefix);
bool cd_str_ends_with_ci(const char *s, const char *suffix);

/* Percent-decodes src[0..len) into a new NUL-terminated string (caller frees). With plus_space,
 * '+' becomes ' ' (query strings). Returns NULL on a malformed escape, an encoded NUL or OOM. */
char *cd_str_percent_decode(const char *src, size_t len, bool plus_space);

/* Looks up `name` in a raw query string ("a=1&b=x%20y"). Returns the decoded value of the first
 * occurrence (caller frees; "" for "a" or "a="), or NULL when absent or malformed. */
char *cd_str_query_get(const char *query, const char *name);

/* Writes 2*n lowercase hex digits of random bytes plus a NUL into out (size >= 2n+1). */
void cd_str_random_hex(char *out, size_t n);
/* A random (version 4) UUID in its 36-character hyphenated form plus NUL. */
void cd_str_uuid4(char out[37]);

#endif
