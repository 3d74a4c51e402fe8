#include "base/json.h"

#include <ctype.h>
#include <stdbool.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Decodes one UTF-8 sequence at *p; returns the code point and advances, or U+FFFD for a
 * malformed byte (which is then skipped alone). */
static uint32_t next_code_point(const unsigned char **p) {
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n < 0) {
        *p = s + 1;
        return 0xFFFD;
    }
    c = n == 0 ? c : n == 1 ? (c & 0x1F) : n == 2 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *p = s + 1;
            return 0xFFFD;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    *p = s + n + 1;
    return c;
}

int cd_json_append_string(cd_buf *b, const char *s) {
    char tmp[16];
    if (cd_buf_append(b, "\"", 1) < 0) return -1;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\') p++;
        if (p > run && cd_buf_append(b, run, (size_t)(p - run)) < 0) return -1;
        if (!*p) break;
        int n;
        if (*p == '"' || *p == '\\') {
            n = snprintf(tmp, sizeof tmp, "\\%c", *p);
            p++;
        } else if (*p == '\n') {
            n = snprintf(tmp, sizeof tmp, "\\n");
            p++;
        } else if (*p == '\r') {
            n = snprintf(tmp, sizeof tmp, "\\r");
            p++;
        } else if (*p == '\t') {
            n = snprintf(tmp, sizeof tmp, "\\t");
            p++;
        } else {
            uint32_t c = next_code_point(&p);
            if (c >= 0x10000) {
                c -= 0x10000;
                n = snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF));
            } else {
                n = snprintf(tmp, sizeof tmp, "\\u%04x", c);
            }
        }
        if (cd_buf_append(b, tmp, (size_t)n) < 0) return -1;
    }
    return cd_buf_append(b, "\"", 1);
}

int cd_json_append_number(cd_buf *b, double x) {
    if (isnan(x)) return cd_buf_append_str(b, "NaN");
    if (isinf(x)) return cd_buf_append_str(b, x > 0 ? "Infinity" : "-Infinity");
    if (x == 0) return cd_buf_append_str(b, signbit(x) ? "-0.0" : "0.0");
    /* Python's repr: the shortest digits that round-trip, written plainly when the decimal
     * exponent is in [-4, 16), else as d.ddde+XX. */
    char e[40];
    int prec;
    for (prec = 0; prec <= 16; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, x);
        if (strtod(e, NULL) == x) break;
    }
    char digits[24];
    size_t nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    if (neg) q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    digits[nd] = '\0';
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = '\0';
    char out[64];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int k = -1; k > exp10; k--) out[o++] = '0';
            for (size_t k = 0; k < nd; k++) out[o++] = digits[k];
        } else {
            for (int k = 0; k <= exp10; k++) out[o++] = (size_t)k < nd ? digits[k] : '0';
            out[o++] = '.';
            if ((size_t)exp10 + 1 < nd)
                for (size_t k = (size_t)exp10 + 1; k < nd; k++) out[o++] = digits[k];
            else
                out[o++] = '0';
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (size_t k = 1; k < nd; k++) out[o++] = digits[k];
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    return cd_buf_append_str(b, out);
}
