#include "base/json.h"

#include <ctype.h>

char *cd_json_dumps(const json_t *value) {
    /* jansson's non-compact mode already uses Python's separators; ENCODE_ANY allows scalars. */
    char *s = json_dumps(value, JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
    if (s) cd_json_lower_escapes(s);
    return s;
}

void cd_json_lower_escapes(char *s) {
    /* Walk escapes pairwise so that an escaped backslash followed by a 'u' is left alone. */
    for (char *p = s; *p; p++) {
        if (*p != '\\') continue;
        if (p[1] == 'u') {
            for (int i = 2; i < 6 && p[i]; i++) p[i] = (char)tolower((unsigned char)p[i]);
            p += 5;
        } else if (p[1]) {
            p++;
        }
    }
}
