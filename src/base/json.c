#include "base/json.h"

#include <ctype.h>
#include <stdbool.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Big integers come out of json_dumps as "\u0000<digits>": turn each back into <digits>, in
 * place. Only a string that is exactly the mark and an integer text is touched. */
static void restore_bigints(char *s) {
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '"' && !strncmp(r + 1, "\\u0000", 6)) {
            char *d = r + 7, *q = d + (*d == '-');
            char *e = q;
            while (*e >= '0' && *e <= '9') e++;
            if (e > q && *e == '"') {
                size_t n = (size_t)(e - d);
                memmove(w, d, n);
                w += n;
                r = e + 1;
                continue;
            }
        }
        if (*r == '"') {
            /* copy the whole string, escapes included, so a quote inside is not taken for a mark */
            *w++ = *r++;
            while (*r && *r != '"') {
                if (*r == '\\' && r[1]) *w++ = *r++;
                *w++ = *r++;
            }
            if (*r) *w++ = *r++;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
}

char *cd_json_dumps(const json_t *value) {
    /* jansson's non-compact mode already uses Python's separators; ENCODE_ANY allows scalars. */
    char *s = json_dumps(value, JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
    if (s && strstr(s, "\\u0000")) restore_bigints(s);
    if (s) cd_json_lower_escapes(s);
    return s;
}

char *cd_json_dumps_compact(const json_t *value, size_t flags) {
    char *s = json_dumps(value, JSON_COMPACT | flags);
    if (s && strstr(s, "\\u0000")) restore_bigints(s);
    return s;
}

json_t *cd_json_bigint(const char *digits) {
    size_t n = strlen(digits);
    char *b = malloc(n + 2);
    if (!b) return NULL;
    b[0] = '\0';
    memcpy(b + 1, digits, n + 1);
    json_t *j = json_stringn_nocheck(b, n + 1);
    free(b);
    return j;
}

const char *cd_json_bigint_text(const json_t *v) {
    if (!json_is_string(v) || json_string_length(v) < 2) return NULL;
    const char *s = json_string_value(v);
    return s[0] == '\0' ? s + 1 : NULL;
}

/* Is the number token [p, e) an integer that jansson reads ([-]digits, no leading zero) but
 * that does not fit a json_int_t? Anything else is left for jansson to read or refuse. */
static bool is_big_int_text(const char *p, const char *e) {
    bool neg = *p == '-';
    if (neg) p++;
    size_t n = (size_t)(e - p);
    if (n < 19 || *p == '0') return false;
    for (const char *q = p; q < e; q++)
        if (*q < '0' || *q > '9') return false;
    const char *lim = neg ? "9223372036854775808" : "9223372036854775807";
    return n > 19 || memcmp(p, lim, 19) > 0;
}

static bool is_number_char(char c) {
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

json_t *cd_json_loadb_bigint(const char *text, size_t len, size_t flags, json_error_t *error) {
    json_error_t e;
    json_t *j = json_loadb(text, len, flags, &e);
    if (j || !strstr(e.text, "too big")) {
        if (error) *error = e;
        return j;
    }
    /* Again, with every integer that does not fit written as a marked string. The text is
     * walked token by token: strings are copied as they are, numbers looked at. */
    cd_buf b = CD_BUF_INIT;
    size_t i = 0;
    bool ok = true;
    while (i < len && ok) {
        char c = text[i];
        if (c == '"') {
            size_t j0 = i++;
            while (i < len && text[i] != '"') {
                if (text[i] == '\\' && i + 6 <= len && !memcmp(text + i, "\\u0000", 6))
                    ok = false; /* a NUL of the client's own: refused as the first try did */
                i += text[i] == '\\' ? 2 : 1;
            }
            if (i < len) i++;
            if (i > len) i = len;
            ok = ok && cd_buf_append(&b, text + j0, i - j0) == 0;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            /* the whole token, fraction and exponent included: their digits are no integers */
            size_t j0 = i++;
            while (i < len && is_number_char(text[i])) i++;
            if (is_big_int_text(text + j0, text + i)) {
                ok = cd_buf_append(&b, "\"\\u0000", 7) == 0 && cd_buf_append(&b, text + j0, i - j0) == 0 &&
                     cd_buf_append(&b, "\"", 1) == 0;
            } else {
                ok = cd_buf_append(&b, text + j0, i - j0) == 0;
            }
        } else {
            ok = cd_buf_append(&b, &text[i], 1) == 0;
            i++;
        }
    }
    if (!ok) {
        cd_buf_free(&b);
        if (error) *error = e;
        return NULL;
    }
    /* The marks are \u0000 escapes: allowed here, while a NUL in the original text is not. */
    j = b.data ? json_loadb(b.data, b.len, flags | JSON_ALLOW_NUL, error) : NULL;
    cd_buf_free(&b);
    if (!j && error) *error = e; /* report the first reading's error */
    return j;
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
