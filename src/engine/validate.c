/* Prompt validation: ComfyUI's validate_prompt / validate_inputs (API reference §5), with the
 * explicit dependency-cycle check of later ComfyUI versions.
 *
 * How the Python original behaves, and therefore how this file behaves:
 *
 *  - validate_inputs(node) is recursive and memoised in one table `validated` shared by all
 *    outputs. Entries are added when a node finishes, or earlier by the cycle check and by a
 *    parent that caught an exception from the node. Dict order is insertion order and an
 *    overwrite keeps the first position; node_errors is built by walking that table, so we
 *    keep each node's first insertion position (`seq`).
 *  - An exception raised while a node is being validated (a link to a node id that is not in
 *    the prompt, a bad slot, a comparison Python cannot make) leaves that node's frame; its
 *    parent records it as the node's memo entry (exception_during_inner_validation), or, for
 *    an output, validate_prompt records exception_during_validation. The recursion is replaced
 *    by an explicit stack of frames; "raising" pops a frame and hands the exception to the
 *    frame below, which is exactly where Python's try/except sits.
 *  - The stack is also Python's `visiting` list: meeting a node that is on the stack is a
 *    dependency cycle.
 *  - For every output that fails, every memo entry that is invalid and has errors is added to
 *    node_errors and gets that output appended to its dependent_outputs, even when the entry
 *    belongs to another output's failure. That is ComfyUI's behaviour and kept as is.
 *
 * Python values inside the messages (str(), repr(), int()/float() errors) are reproduced by
 * the py_* helpers below. Where JSON cannot carry what Python would produce:
 *  - tracebacks are empty lists;
 *  - float() results that are NaN or infinite stay in the prompt as the original string (JSON
 *    has no NaN); the range checks still see the float;
 *  - integers beyond 64 bits (which Python reads from JSON and int() makes from text or large
 *    floats) are big-integer marks (base/json.h): compared, printed and converted exactly as
 *    Python would, so the range and combo checks give Python's errors; one that passes them
 *    cannot be held by the engine (64-bit integers) and fails with Python's OverflowError text
 *    for C longs, instead of being wrapped.
 */
#include "engine/validate.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/map.h"
#include "engine/call.h"

/* ------------------------------------------------------------------------------------------ */
/* A string builder that remembers running out of memory, so callers check once at the end.  */

typedef struct {
    cd_buf b;
    bool oom;
} sb;

static void sb_add(sb *s, const void *p, size_t n) {
    if (cd_buf_append(&s->b, p, n) < 0) s->oom = true;
}
static void sb_str(sb *s, const char *p) { sb_add(s, p, strlen(p)); }
static void sb_chr(sb *s, char c) { sb_add(s, &c, 1); }
__attribute__((format(printf, 2, 3))) static void sb_printf(sb *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (cd_buf_vprintf(&s->b, fmt, ap) < 0) s->oom = true;
    va_end(ap);
}
static void sb_free(sb *s) { cd_buf_free(&s->b); }
static const char *sb_cstr(const sb *s) { return s->b.data ? s->b.data : ""; }
/* The text as a JSON string (new reference), NULL on OOM; the builder is freed. */
static json_t *sb_json(sb *s) {
    json_t *j = s->oom ? NULL : json_stringn(sb_cstr(s), s->b.len);
    sb_free(s);
    return j;
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8 and Python's notion of whitespace and printability                                   */

/* Decodes one code point at s[i]. Returns its length (>= 1); *bad is set for a byte that does
 * not start a valid sequence (then *cp is the byte). */
static size_t utf8_next(const unsigned char *s, size_t len, size_t i, uint32_t *cp, bool *bad) {
    unsigned char c = s[i];
    *bad = false;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (n == 0 || i + n > len) goto invalid;
    uint32_t v = c & (0xff >> (n + 1));
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xc0) != 0x80) goto invalid;
        v = (v << 6) | (s[i + k] & 0x3f);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) || (v >= 0xd800 && v <= 0xdfff))
        goto invalid;
    *cp = v;
    return n;
invalid:
    *cp = c;
    *bad = true;
    return 1;
}

/* str.isspace(), which int() and float() strip. */
static bool py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/* str.isprintable() for non-ASCII code points, as far as it matters for repr(): separators,
 * format characters, surrogates, private use and the non-characters. Unassigned code points
 * (which Python also escapes) are not tabulated here. */
static bool py_isprintable_nonascii(uint32_t c) {
    if (c < 0xa1 || c == 0xad) return false;
    static const uint32_t ranges[][2] = {
        {0x0600, 0x0605}, {0x061c, 0x061c}, {0x06dd, 0x06dd}, {0x070f, 0x070f}, {0x0890, 0x0891},
        {0x08e2, 0x08e2}, {0x1680, 0x1680}, {0x180e, 0x180e}, {0x2000, 0x200f}, {0x2028, 0x202f},
        {0x205f, 0x2064}, {0x2066, 0x206f}, {0x3000, 0x3000}, {0xd800, 0xf8ff}, {0xfeff, 0xfeff},
        {0xfff9, 0xfffb}, {0xfffe, 0xffff}, {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x1343f},
        {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f}, {0xf0000, 0x10ffff},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (c >= ranges[i][0] && c <= ranges[i][1]) return false;
    return (c & 0xfffe) != 0xfffe;
}

/* ------------------------------------------------------------------------------------------ */
/* Python's str() and repr() of JSON values                                                    */

/* repr() of a str: single quotes unless the text has ' and no ", escapes as CPython's
 * unicode_repr. */
static void py_repr_str(sb *s, const char *text, size_t len) {
    const unsigned char *u = (const unsigned char *)text;
    bool sq = memchr(text, '\'', len) != NULL, dq = memchr(text, '"', len) != NULL;
    char q = sq && !dq ? '"' : '\'';
    sb_chr(s, q);
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        bool bad;
        size_t n = utf8_next(u, len, i, &cp, &bad);
        if (bad) sb_printf(s, "\\x%02x", (unsigned)cp);
        else if (cp == (uint32_t)q || cp == '\\') {
            sb_chr(s, '\\');
            sb_chr(s, (char)cp);
        } else if (cp == '\t') sb_str(s, "\\t");
        else if (cp == '\n') sb_str(s, "\\n");
        else if (cp == '\r') sb_str(s, "\\r");
        else if (cp < 0x20 || cp == 0x7f) sb_printf(s, "\\x%02x", (unsigned)cp);
        else if (cp < 0x7f || py_isprintable_nonascii(cp)) sb_add(s, text + i, n);
        else if (cp <= 0xff) sb_printf(s, "\\x%02x", (unsigned)cp);
        else if (cp <= 0xffff) sb_printf(s, "\\u%04x", (unsigned)cp);
        else sb_printf(s, "\\U%08x", (unsigned)cp);
        i += n;
    }
    sb_chr(s, q);
}

/* repr() of a float: the shortest text that reads back to the same double, fixed notation for
 * decimal exponents -4..15 and scientific otherwise (1e-05, 1e+16), always with a fractional
 * part in fixed notation (1.0). */
static void py_repr_float(sb *s, double d) {
    if (isnan(d)) {
        sb_str(s, "nan");
        return;
    }
    if (isinf(d)) {
        sb_str(s, d > 0 ? "inf" : "-inf");
        return;
    }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d) break;
    }
    /* buf: [-]D[.DDD]e(+|-)XX */
    const char *p = buf;
    bool neg = *p == '-';
    if (neg) p++;
    char digits[24];
    size_t nd = 0;
    while (*p && *p != 'e') {
        if (*p != '.' && nd < sizeof digits - 1) digits[nd++] = *p;
        p++;
    }
    digits[nd] = '\0';
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = '\0';
    int exp = *p == 'e' ? atoi(p + 1) : 0;
    if (neg) sb_chr(s, '-');
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            sb_str(s, "0.");
            for (int k = 0; k < -exp - 1; k++) sb_chr(s, '0');
            sb_str(s, digits);
        } else {
            size_t int_len = (size_t)exp + 1;
            if (nd <= int_len) {
                sb_str(s, digits);
                for (size_t k = nd; k < int_len; k++) sb_chr(s, '0');
                sb_str(s, ".0");
            } else {
                sb_add(s, digits, int_len);
                sb_chr(s, '.');
                sb_str(s, digits + int_len);
            }
        }
    } else {
        sb_chr(s, digits[0]);
        if (nd > 1) {
            sb_chr(s, '.');
            sb_str(s, digits + 1);
        }
        sb_printf(s, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

#define PY_MAX_DEPTH 4096 /* deeper than any parsed JSON (jansson stops at 2048) */

static void py_repr(sb *s, const json_t *v, int depth) {
    if (depth > PY_MAX_DEPTH) {
        sb_str(s, "...");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_NULL: sb_str(s, "None"); break;
    case JSON_TRUE: sb_str(s, "True"); break;
    case JSON_FALSE: sb_str(s, "False"); break;
    case JSON_INTEGER: sb_printf(s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: py_repr_float(s, json_real_value(v)); break;
    case JSON_STRING:
        if (cd_json_bigint_text(v)) sb_str(s, cd_json_bigint_text(v));
        else py_repr_str(s, json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY: {
        sb_chr(s, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) sb_str(s, ", ");
            py_repr(s, json_array_get(v, i), depth + 1);
        }
        sb_chr(s, ']');
        break;
    }
    case JSON_OBJECT: {
        sb_chr(s, '{');
        const char *k;
        json_t *x;
        bool first = true;
        json_object_foreach((json_t *)v, k, x) {
            if (!first) sb_str(s, ", ");
            first = false;
            py_repr_str(s, k, strlen(k));
            sb_str(s, ": ");
            py_repr(s, x, depth + 1);
        }
        sb_chr(s, '}');
        break;
    }
    }
}

static void py_str(sb *s, const json_t *v) {
    if (json_is_string(v) && !cd_json_bigint_text(v)) sb_add(s, json_string_value(v), json_string_length(v));
    else py_repr(s, v, 0);
}

char *cd_validate_py_str(const json_t *v) {
    sb s = {CD_BUF_INIT, false};
    py_str(&s, v);
    if (s.oom) {
        sb_free(&s);
        return NULL;
    }
    char *r = s.b.data ? cd_buf_take(&s.b) : strdup("");
    return r;
}

static const char *py_typename(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_NULL: return "NoneType";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_STRING: return cd_json_bigint_text(v) ? "int" : "str";
    case JSON_ARRAY: return "list";
    default: return "dict";
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Python's == and < on JSON values                                                            */

static bool py_is_num(const json_t *v) {
    return json_is_integer(v) || json_is_real(v) || json_is_boolean(v) || cd_json_bigint_text(v);
}
static bool py_is_intlike(const json_t *v) { return json_is_integer(v) || json_is_boolean(v) || cd_json_bigint_text(v); }
/* The value of an int or bool; not for big integers. */
static int64_t py_int(const json_t *v) { return json_is_integer(v) ? json_integer_value(v) : json_is_true(v); }

/* Two integers as canonical decimal texts ([-]digits, no leading zeros): -1, 0, 1. */
static int cmp_int_text(const char *a, const char *b) {
    bool na = *a == '-', nb = *b == '-';
    if (na != nb) return na ? -1 : 1;
    a += na;
    b += nb;
    size_t la = strlen(a), lb = strlen(b);
    int c = la < lb ? -1 : la > lb ? 1 : strcmp(a, b) < 0 ? -1 : strcmp(a, b) > 0 ? 1 : 0;
    return na ? -c : c;
}

/* A big integer's text against a double, exactly: -1, 0, 1, or 2 when unordered (NaN). */
static int cmp_big_double(const char *big, double d) {
    if (isnan(d)) return 2;
    if (isinf(d)) return d > 0 ? -1 : 1;
    double t = trunc(d);
    char buf[400];
    snprintf(buf, sizeof buf, "%.0f", t); /* exact: every double is a finite decimal */
    int c = cmp_int_text(big, buf[0] == '-' && buf[1] == '0' && !buf[2] ? "0" : buf);
    if (c) return c;
    double frac = d - t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

/* Exact comparison of an integer and a double, as Python does: -1, 0, 1, or 2 when unordered
 * (NaN). */
static int cmp_int_double(int64_t i, double d) {
    if (isnan(d)) return 2;
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    double t = trunc(d);
    int64_t ti = (int64_t)t;
    if (i < ti) return -1;
    if (i > ti) return 1;
    double frac = d - t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

static int cmp_double(double a, double b) {
    if (isnan(a) || isnan(b)) return 2;
    return a < b ? -1 : a > b ? 1 : 0;
}

static int num_cmp(const json_t *a, const json_t *b) {
    const char *ba = cd_json_bigint_text(a), *bb = cd_json_bigint_text(b);
    if (ba || bb) {
        if (!ba && json_is_real(a)) {
            int c = cmp_big_double(bb, json_real_value(a));
            return c == 2 ? 2 : -c;
        }
        if (!bb && json_is_real(b)) return cmp_big_double(ba, json_real_value(b));
        char ta[24], tb[24];
        if (!ba) snprintf(ta, sizeof ta, "%" PRId64, py_int(a)), ba = ta;
        if (!bb) snprintf(tb, sizeof tb, "%" PRId64, py_int(b)), bb = tb;
        return cmp_int_text(ba, bb);
    }
    if (py_is_intlike(a) && py_is_intlike(b)) {
        int64_t x = py_int(a), y = py_int(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (json_is_real(a) && json_is_real(b)) return cmp_double(json_real_value(a), json_real_value(b));
    if (json_is_real(a)) {
        int c = cmp_int_double(py_int(b), json_real_value(a));
        return c == 2 ? 2 : -c;
    }
    return cmp_int_double(py_int(a), json_real_value(b));
}

static bool py_eq(const json_t *a, const json_t *b, int depth) {
    if (py_is_num(a) && py_is_num(b)) return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b) || depth > PY_MAX_DEPTH) return false;
    switch (json_typeof(a)) {
    case JSON_NULL: return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!py_eq(json_array_get(a, i), json_array_get(b, i), depth + 1)) return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)a, k, x) {
            json_t *y = json_object_get(b, k);
            if (!y || !py_eq(x, y, depth + 1)) return false;
        }
        return true;
    }
    default: return false;
    }
}

/* a < b (op '<') or a > b (op '>') with Python's rules. Returns 0 with *res set, or -1 with
 * Python's TypeError text in *err. */
static int py_richcmp(const json_t *a, const json_t *b, char op, bool *res, sb *err, int depth) {
    int c;
    if (py_is_num(a) && py_is_num(b)) {
        c = num_cmp(a, b);
    } else if (json_is_string(a) && json_is_string(b)) {
        size_t la = json_string_length(a), lb = json_string_length(b);
        int m = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
        c = m < 0 ? -1 : m > 0 ? 1 : la < lb ? -1 : la > lb ? 1 : 0;
    } else if (json_is_array(a) && json_is_array(b) && depth <= PY_MAX_DEPTH) {
        size_t na = json_array_size(a), nb = json_array_size(b), i = 0;
        while (i < na && i < nb && py_eq(json_array_get(a, i), json_array_get(b, i), depth + 1)) i++;
        if (i < na && i < nb) return py_richcmp(json_array_get(a, i), json_array_get(b, i), op, res, err, depth + 1);
        c = na < nb ? -1 : na > nb ? 1 : 0;
    } else {
        sb_printf(err, "'%c' not supported between instances of '%s' and '%s'", op, py_typename(a), py_typename(b));
        return -1;
    }
    *res = c != 2 && (op == '<' ? c < 0 : c > 0);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* int(), float(), str(), bool()                                                               */

#define INT_OVERFLOW_TEXT "Python int too large to convert to C long"

/* The digits of a decimal literal with PEP 515 underscores ("1_000"): returns how many digits
 * were read from s[*p], advancing *p; an underscore must sit between two digits. */
static size_t scan_digits(const char *s, size_t end, size_t *p) {
    size_t n = 0;
    while (*p < end) {
        char ch = s[*p];
        if (ch >= '0' && ch <= '9') {
            n++;
            (*p)++;
        } else if (ch == '_' && n > 0 && *p + 1 < end && s[*p + 1] >= '0' && s[*p + 1] <= '9') {
            (*p)++;
        } else break;
    }
    return n;
}

static void int_literal_error(sb *ex, const char *s, size_t len) {
    /* CPython formats this with %.200R: the repr cut to 200 characters. */
    sb r = {CD_BUF_INIT, false};
    py_repr_str(&r, s, len);
    const unsigned char *u = (const unsigned char *)sb_cstr(&r);
    size_t i = 0, chars = 0;
    while (i < r.b.len && chars < 200) {
        uint32_t cp;
        bool bad;
        i += utf8_next(u, r.b.len, i, &cp, &bad);
        chars++;
    }
    sb_str(ex, "invalid literal for int() with base 10: ");
    sb_add(ex, sb_cstr(&r), i);
    if (r.oom) ex->oom = true;
    sb_free(&r);
}

/* The first code point of each block of ten decimal digits in Unicode 15 (Python 3.12's
 * unicodedata): int() and float() read digits of every script. */
static const uint32_t digit_zeros[] = {
    0x30,    0x660,   0x6f0,   0x7c0,   0x966,   0x9e6,   0xa66,   0xae6,   0xb66,   0xbe6,   0xc66,   0xce6,
    0xd66,   0xde6,   0xe50,   0xed0,   0xf20,   0x1040,  0x1090,  0x17e0,  0x1810,  0x1946,  0x19d0,  0x1a80,
    0x1a90,  0x1b50,  0x1bb0,  0x1c40,  0x1c50,  0xa620,  0xa8d0,  0xa900,  0xa9d0,  0xa9f0,  0xaa50,  0xabf0,
    0xff10,  0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0,
    0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x11f50, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8,
    0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e4f0, 0x1e950, 0x1fbf0,
};

/* CPython's _PyUnicode_TransformDecimalAndSpaceToASCII, which int() and float() parse from:
 * non-ASCII whitespace becomes ' ', any decimal digit its ASCII digit, and the text ends at
 * the first other non-ASCII character (as '?'). Returns a new buffer, NULL on OOM. */
static char *py_to_ascii(const char *s, size_t len, size_t *out_len) {
    char *buf = malloc(len + 1);
    if (!buf) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        bool bad;
        i += utf8_next(u, len, i, &cp, &bad);
        if (!bad && cp < 0x80) {
            buf[o++] = (char)cp;
            continue;
        }
        int digit = -1;
        for (size_t k = 0; !bad && digit < 0 && k < sizeof digit_zeros / sizeof digit_zeros[0]; k++)
            if (cp >= digit_zeros[k] && cp < digit_zeros[k] + 10) digit = (int)(cp - digit_zeros[k]);
        if (!bad && py_isspace(cp)) buf[o++] = ' ';
        else if (digit >= 0) buf[o++] = (char)('0' + digit);
        else {
            buf[o++] = '?';
            break;
        }
    }
    buf[o] = '\0';
    *out_len = o;
    return buf;
}

/* Py_ISSPACE: what int() and float() skip around the (transformed) text. */
static bool ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static void ascii_strip(const char *s, size_t len, size_t *a, size_t *b) {
    *a = 0;
    *b = len;
    while (*a < *b && ascii_space(s[*a])) (*a)++;
    while (*b > *a && ascii_space(s[*b - 1])) (*b)--;
}

/* What int() and float() share: the text in ASCII (other scripts' digits mapped), stripped,
 * with its sign read. Returns the text (caller frees) with [*p, *b) the unsigned part, or
 * NULL out of memory (ex->oom set). */
static char *py_number_text(const char *orig, size_t orig_len, size_t *p, size_t *b, bool *neg, sb *ex) {
    size_t len, a;
    char *s = py_to_ascii(orig, orig_len, &len);
    if (!s) {
        ex->oom = true;
        return NULL;
    }
    ascii_strip(s, len, &a, b);
    *p = a;
    *neg = false;
    if (*p < *b && (s[*p] == '+' || s[*p] == '-')) *neg = s[(*p)++] == '-';
    return s;
}

/* int() of a text: a new JSON integer, a big integer beyond 64 bits, or NULL with the exception
 * text in *ex. */
static json_t *parse_py_int(const char *orig, size_t orig_len, sb *ex) {
    size_t p, b;
    bool neg;
    char *s = py_number_text(orig, orig_len, &p, &b, &neg, ex);
    if (!s) return NULL;
    size_t start = p;
    size_t nd = scan_digits(s, b, &p);
    json_t *res = NULL;
    if (nd == 0 || p != b) {
        int_literal_error(ex, orig, orig_len);
    } else if (nd > 4300) {
        sb_printf(ex,
                  "Exceeds the limit (4300 digits) for integer string conversion: value has %zu digits; use "
                  "sys.set_int_max_str_digits() to increase the limit",
                  nd);
    } else {
        uint64_t acc = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        bool big = false;
        for (size_t i = start; i < b && !big; i++) {
            if (s[i] == '_') continue;
            unsigned d = (unsigned)(s[i] - '0');
            if (acc > (limit - d) / 10) big = true;
            else acc = acc * 10 + d;
        }
        if (!big) {
            res = json_integer(neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)acc) : (json_int_t)acc);
        } else {
            /* Python's int is unbounded: keep the exact value, canonical (sign, no zeros ahead) */
            char *t = malloc(b - start + 2);
            size_t n = 0;
            if (t) {
                if (neg) t[n++] = '-';
                for (size_t i = start; i < b; i++)
                    if (s[i] != '_' && (s[i] != '0' || n > (size_t)neg)) t[n++] = s[i];
                t[n] = '\0';
                res = cd_json_bigint(t);
                free(t);
            }
        }
        if (!res) ex->oom = true;
    }
    free(s);
    return res;
}

static bool word_ieq(const char *s, size_t len, const char *w) {
    if (strlen(w) != len) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != w[i]) return false;
    }
    return true;
}

static int parse_py_float(const char *orig, size_t orig_len, double *out, sb *ex) {
    size_t p, b;
    bool neg;
    char *s = py_number_text(orig, orig_len, &p, &b, &neg, ex);
    if (!s) return -1;
    int rc = 0;
    if (word_ieq(s + p, b - p, "inf") || word_ieq(s + p, b - p, "infinity")) {
        *out = neg ? -INFINITY : INFINITY;
    } else if (word_ieq(s + p, b - p, "nan")) {
        *out = neg ? -NAN : NAN;
    } else {
        size_t num = p;
        size_t int_digits = scan_digits(s, b, &p), frac_digits = 0;
        bool ok = true;
        if (p < b && s[p] == '.') {
            p++;
            frac_digits = scan_digits(s, b, &p);
        }
        if (int_digits + frac_digits == 0) ok = false;
        if (ok && p < b && (s[p] == 'e' || s[p] == 'E')) {
            p++;
            if (p < b && (s[p] == '+' || s[p] == '-')) p++;
            if (scan_digits(s, b, &p) == 0) ok = false;
        }
        if (!ok || p != b) {
            sb_str(ex, "could not convert string to float: ");
            py_repr_str(ex, orig, orig_len);
            rc = -1;
        } else {
            /* In place: drop the underscores, keep the sign. */
            size_t n = 0;
            if (neg) s[n++] = '-';
            for (size_t i = num; i < b; i++)
                if (s[i] != '_') s[n++] = s[i];
            s[n] = '\0';
            *out = strtod(s, NULL);
        }
    }
    free(s);
    return rc;
}

/* int(v). Returns a new JSON integer, or NULL with the exception text in *ex. */
static json_t *py_to_int(const json_t *v, sb *ex) {
    switch (json_typeof(v)) {
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_INTEGER: return json_integer(py_int(v));
    case JSON_REAL: {
        double d = json_real_value(v);
        if (isnan(d)) sb_str(ex, "cannot convert float NaN to integer");
        else if (isinf(d)) sb_str(ex, "cannot convert float infinity to integer");
        else if (d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
            char buf[400];
            snprintf(buf, sizeof buf, "%.0f", trunc(d)); /* exact */
            json_t *j = cd_json_bigint(buf);
            if (!j) ex->oom = true;
            return j;
        } else return json_integer((json_int_t)trunc(d));
        return NULL;
    }
    case JSON_STRING:
        if (cd_json_bigint_text(v)) return json_incref((json_t *)v);
        return parse_py_int(json_string_value(v), json_string_length(v), ex);
    default:
        sb_printf(ex, "int() argument must be a string, a bytes-like object or a real number, not '%s'",
                  py_typename(v));
        return NULL;
    }
}

static int py_to_double(const json_t *v, double *out, sb *ex) {
    switch (json_typeof(v)) {
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_INTEGER: *out = (double)py_int(v); return 0;
    case JSON_REAL: *out = json_real_value(v); return 0;
    case JSON_STRING:
        if (cd_json_bigint_text(v)) {
            *out = strtod(cd_json_bigint_text(v), NULL); /* correctly rounded, as int.__float__ */
            if (isfinite(*out)) return 0;
            sb_str(ex, "int too large to convert to float");
            return -1;
        }
        return parse_py_float(json_string_value(v), json_string_length(v), out, ex);
    default:
        sb_printf(ex, "float() argument must be a string or a real number, not '%s'", py_typename(v));
        return -1;
    }
}

json_t *cd_validate_py_int_text(const char *text, size_t len) {
    sb ex = {CD_BUF_INIT, false};
    json_t *v = parse_py_int(text, len, &ex);
    sb_free(&ex);
    return v;
}

int cd_validate_py_float(const json_t *v, double *out) {
    sb ex = {CD_BUF_INIT, false};
    int rc = py_to_double(v, out, &ex);
    sb_free(&ex);
    return rc < 0 ? -1 : 0;
}

static bool py_truthy(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE: return false;
    case JSON_TRUE: return true;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0.0;
    case JSON_STRING: return json_string_length(v) != 0;
    case JSON_ARRAY: return json_array_size(v) != 0;
    default: return json_object_size(v) != 0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The validation state                                                                        */

typedef struct {
    const char *id; /* the prompt's key (borrowed) */
    const char *class_type;
    json_t *inputs; /* borrowed; NULL when the node has no "inputs" */
    const cd_node_type *type;
    /* the memo entry (Python's validated[id]) */
    bool memo_set, ok;
    json_t *errors;  /* owned; NULL = [] */
    size_t seq;      /* first insertion position */
    bool listed;     /* in err_list */
    bool visiting;   /* on the stack */
    size_t stack_pos;
} vnode;

typedef struct {
    size_t node;
    size_t next;            /* cursor over the declared inputs */
    json_t *errors;         /* own errors so far (owned, NULL = none) */
    bool valid;
    json_t *received_types; /* for VALIDATE_INPUTS(input_types); owned, NULL until needed */
    const cd_input_def *pending_in; /* the link being followed */
    json_t *pending_val;            /* its [id, slot] (owned reference) */
} frame;

typedef struct {
    const cd_registry *reg;
    vnode *nodes;
    size_t n;
    cd_map *by_id;
    frame *stack;
    size_t depth, cap;
    size_t *err_list; /* memo entries that are invalid with errors, by seq */
    size_t n_err;
    size_t next_seq;
    const char *exc_type; /* the exception a frame raised */
    sb exc_msg;
    json_t *first_cycle_error;
    bool repeatable;
    bool oom;
} vctx;

static json_t *chk(vctx *c, json_t *j) {
    if (!j) c->oom = true;
    return j;
}
/* Both take v over, also when they fail. */
static void oset(vctx *c, json_t *o, const char *key, json_t *v) {
    if (!v || !o) {
        json_decref(v);
        c->oom = true;
    } else if (json_object_set_new(o, key, v) < 0) c->oom = true;
}
static void apush(vctx *c, json_t *a, json_t *v) {
    if (!v || !a) {
        json_decref(v);
        c->oom = true;
    } else if (json_array_append_new(a, v) < 0) c->oom = true;
}
static json_t *str_of(vctx *c, sb *s) {
    if (s->oom) c->oom = true;
    return chk(c, sb_json(s));
}

/* {type, message, details, extra_info}; details and extra_info are stolen. */
static json_t *error_new(vctx *c, const char *type, const char *message, json_t *details, json_t *extra) {
    json_t *e = chk(c, json_object());
    oset(c, e, "type", json_string(type));
    oset(c, e, "message", json_string(message));
    oset(c, e, "details", details);
    oset(c, e, "extra_info", extra);
    return e;
}

/* [type, options]: the input_config ComfyUI reports, (type, extra_info) of get_input_info. */
static json_t *input_config(vctx *c, const cd_input_def *in) {
    json_t *a = chk(c, json_array());
    apush(c, a, in->combo ? json_deep_copy(in->combo) : json_string(in->type));
    apush(c, a, in->options ? json_deep_copy(in->options) : json_object());
    return a;
}

/* input_config of a combo whose options the node listed when asked (`live`, or NULL for the
 * declared ones): the declaration as INPUT_TYPES would give it then, in either form. */
static json_t *combo_config(vctx *c, const cd_input_def *in, const json_t *live) {
    if (!live) return input_config(c, in);
    json_t *a = chk(c, json_array());
    json_t *opts = in->options ? json_deep_copy(in->options) : json_object();
    if (in->combo) {
        apush(c, a, json_deep_copy(live));
    } else {
        apush(c, a, json_string(in->type));
        if (opts && json_object_set_new(opts, "options", json_deep_copy(live)) < 0) c->oom = true;
    }
    apush(c, a, chk(c, opts));
    return a;
}

/* The declared type as Python sees it: the option list of a legacy combo, else the string. */
static json_t *declared_type(vctx *c, const cd_input_def *in) {
    return chk(c, in->combo ? json_deep_copy(in->combo) : json_string(in->type));
}

static void frame_error(vctx *c, frame *f, json_t *e) {
    if (!f->errors) f->errors = chk(c, json_array());
    apush(c, f->errors, e);
}

/* Sets validated[node] (errors stolen; NULL = []). */
static void memo_set(vctx *c, size_t idx, bool ok, json_t *errors) {
    vnode *v = &c->nodes[idx];
    json_decref(v->errors);
    v->errors = errors;
    v->ok = ok;
    if (!v->memo_set) {
        v->memo_set = true;
        v->seq = c->next_seq++;
    }
    if (!ok && errors && json_array_size(errors) > 0 && !v->listed) {
        /* Entries reach this state on first insertion in practice; keep seq order anyway. */
        size_t pos = c->n_err;
        while (pos > 0 && c->nodes[c->err_list[pos - 1]].seq > v->seq) pos--;
        memmove(&c->err_list[pos + 1], &c->err_list[pos], (c->n_err - pos) * sizeof *c->err_list);
        c->err_list[pos] = idx;
        c->n_err++;
        v->listed = true;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Type compatibility (comfy_execution/validation.py validate_node_input, non-strict)          */

static bool type_set_has(const char *s, const char *item, size_t item_len) {
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *a = p, *b = p + n;
        while (a < b && (*a == ' ' || (*a >= '\t' && *a <= '\r'))) a++;
        while (b > a && (b[-1] == ' ' || (b[-1] >= '\t' && b[-1] <= '\r'))) b--;
        if ((size_t)(b - a) == item_len && memcmp(a, item, item_len) == 0) return true;
        if (!e) return false;
        p = e + 1;
    }
}

static bool types_compatible(const json_t *received, const json_t *declared) {
    if (py_eq(received, declared, 0)) return true;
    if ((json_is_string(received) && !strcmp(json_string_value(received), "*")) ||
        (json_is_string(declared) && !strcmp(json_string_value(declared), "*")))
        return true;
    /* V3 MatchType sockets take whatever is connected (comfy_execution/validation.py). */
    if ((json_is_string(received) && !strcmp(json_string_value(received), "COMFY_MATCHTYPE_V3")) ||
        (json_is_string(declared) && !strcmp(json_string_value(declared), "COMFY_MATCHTYPE_V3")))
        return true;
    /* Custom nodes that output a list of options as their type may feed V3 COMBO inputs. */
    if (json_is_array(received) && json_is_string(declared) && !strcmp(json_string_value(declared), "COMBO"))
        return true;
    if (!json_is_string(received) || !json_is_string(declared)) return false;
    const char *r = json_string_value(received), *d = json_string_value(declared);
    if (type_set_has(r, "*", 1) || type_set_has(d, "*", 1)) return true;
    const char *p = r;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *a = p, *b = p + n;
        while (a < b && (*a == ' ' || (*a >= '\t' && *a <= '\r'))) a++;
        while (b > a && (b[-1] == ' ' || (b[-1] >= '\t' && b[-1] <= '\r'))) b--;
        if (type_set_has(d, a, (size_t)(b - a))) return true;
        if (!e) return false;
        p = e + 1;
    }
}

/* RETURN_TYPES[slot] of a node type as JSON: a string, or a combo output's option list. */
static json_t *output_type(vctx *c, const cd_node_type *t, size_t slot) {
    const char *type = t->def->outputs[slot].type;
    json_t *j = type[0] == '[' ? json_loads(type, 0, NULL) : NULL;
    return chk(c, j ? j : json_string(type));
}

/* ------------------------------------------------------------------------------------------ */
/* One node's validation, as a resumable frame                                                */

enum { STEP_DONE, STEP_CALL, STEP_RAISE };

static int raise_exc(vctx *c, const char *type) {
    c->exc_type = type;
    return STEP_RAISE;
}

/* The k-th declared input: required ones first, then optional ones (an optional input that is
 * also required counts as required, as get_input_info says). NULL for other slots. */
static const cd_input_def *declared_at(const cd_node_type *t, size_t k) {
    size_t n = t->n_inputs;
    if (k < n) return t->inputs[k].section == CD_INPUT_REQUIRED ? &t->inputs[k] : NULL;
    const cd_input_def *in = &t->inputs[k - n];
    if (in->section != CD_INPUT_OPTIONAL) return NULL;
    for (size_t j = 0; j < n; j++)
        if (t->inputs[j].section == CD_INPUT_REQUIRED && !strcmp(t->inputs[j].name, in->name)) return NULL;
    return in;
}

/* graph_utils.is_link: [str, int|float]. */
static bool py_is_link(const json_t *v) {
    return json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
           py_is_num(json_array_get(v, 1));
}

/* A link input: resolves the source and its type, then asks the caller to validate the source.
 * Returns STEP_CALL with *child set, STEP_RAISE, or -1 when the input got an error and the
 * frame goes on. */
static int step_link(vctx *c, frame *f, const cd_input_def *in, json_t *val, size_t *child) {
    const cd_node_type *t = c->nodes[f->node].type;
    if (json_array_size(val) != 2) {
        json_t *extra = chk(c, json_object());
        oset(c, extra, "input_name", json_string(in->name));
        oset(c, extra, "input_config", input_config(c, in));
        oset(c, extra, "received_value", json_deep_copy(val));
        frame_error(c, f,
                    error_new(c, "bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                              json_string(in->name), extra));
        return -1;
    }
    json_t *src = json_array_get(val, 0), *slot = json_array_get(val, 1);
    /* prompt[o_id]['class_type'] */
    vnode *o = NULL;
    if (json_is_string(src) && strlen(json_string_value(src)) == json_string_length(src))
        o = cd_map_get(c->by_id, json_string_value(src));
    if (!o) {
        if (json_is_array(src) || json_is_object(src)) {
            sb_printf(&c->exc_msg, "unhashable type: '%s'", py_typename(src));
            return raise_exc(c, "TypeError");
        }
        py_repr(&c->exc_msg, src, 0); /* str(KeyError(k)) is repr(k) */
        return raise_exc(c, "KeyError");
    }
    /* RETURN_TYPES[val[1]] */
    if (!py_is_intlike(slot)) {
        sb_printf(&c->exc_msg, "tuple indices must be integers or slices, not %s", py_typename(slot));
        return raise_exc(c, "TypeError");
    }
    if (cd_json_bigint_text(slot)) {
        sb_str(&c->exc_msg, "cannot fit 'int' into an index-sized integer");
        return raise_exc(c, "IndexError");
    }
    int64_t n_out = o->type->def->n_outputs, idx = py_int(slot);
    if (idx < 0) idx += n_out;
    if (idx < 0 || idx >= n_out) {
        sb_str(&c->exc_msg, "tuple index out of range");
        return raise_exc(c, "IndexError");
    }
    const char *out_type = o->type->def->outputs[idx].type;
    if (!t->validate_takes_types && out_type[0] != '[' && !in->combo && in->type && !strcmp(out_type, in->type)) {
        /* The same type name on both ends (the common case): compatible, nothing to build. */
        f->pending_in = in;
        f->pending_val = json_incref(val);
        *child = (size_t)(o - c->nodes);
        return STEP_CALL;
    }
    json_t *received = output_type(c, o->type, (size_t)idx);
    if (t->validate_takes_types) {
        if (!f->received_types) f->received_types = chk(c, json_object());
        if (received) oset(c, f->received_types, in->name, json_incref(received));
    } else {
        json_t *declared = declared_type(c, in);
        if (received && declared && !types_compatible(received, declared)) {
            sb d = {CD_BUF_INIT, false};
            sb_printf(&d, "%s, received_type(", in->name);
            py_str(&d, received);
            sb_str(&d, ") mismatch input_type(");
            py_str(&d, declared);
            sb_str(&d, ")");
            json_t *extra = chk(c, json_object());
            oset(c, extra, "input_name", json_string(in->name));
            oset(c, extra, "input_config", input_config(c, in));
            oset(c, extra, "received_type", json_incref(received));
            oset(c, extra, "linked_node", json_deep_copy(val));
            frame_error(c, f,
                        error_new(c, "return_type_mismatch", "Return type mismatch between linked nodes", str_of(c, &d),
                                  extra));
            json_decref(declared);
            json_decref(received);
            return -1;
        }
        json_decref(declared);
    }
    json_decref(received);
    f->pending_in = in;
    f->pending_val = json_incref(val);
    *child = (size_t)(o - c->nodes);
    return STEP_CALL;
}

/* val < bound (op '<') or val > bound, where val is the converted value, or the float d when
 * it is not finite (and so could not be stored as JSON). */
static int compare_bound(vctx *c, const json_t *val, bool nonfinite, double d, const json_t *bound, char op,
                         bool *res) {
    if (nonfinite) {
        if (!py_is_num(bound)) {
            sb_printf(&c->exc_msg, "'%c' not supported between instances of 'float' and '%s'", op,
                      py_typename(bound));
            return -1;
        }
        double b = json_is_real(bound)               ? json_real_value(bound)
                   : cd_json_bigint_text(bound) ? strtod(cd_json_bigint_text(bound), NULL)
                                                : (double)py_int(bound);
        *res = op == '<' ? d < b : d > b;
        return 0;
    }
    return py_richcmp(val, bound, op, res, &c->exc_msg, 0);
}

static void value_str(sb *s, const json_t *val, bool nonfinite, double d) {
    if (nonfinite) py_repr_float(s, d);
    else py_str(s, val);
}

/* The first big integer in v (itself, or inside a list or dict constant), or NULL. */
static const json_t *find_bigint(const json_t *v, int depth) {
    if (cd_json_bigint_text(v)) return v;
    if (depth > PY_MAX_DEPTH) return NULL;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *b = find_bigint(json_array_get(v, i), depth + 1);
            if (b) return b;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            const json_t *b = find_bigint(x, depth + 1);
            if (b) return b;
        }
    }
    return NULL;
}

/* A constant input: unwrap, convert, range and combo checks. Returns STEP_RAISE or -1 (go on). */
static int step_constant(vctx *c, frame *f, const cd_input_def *in, json_t *val) {
    vnode *node = &c->nodes[f->node];
    const cd_node_type *t = node->type;
    json_t *cur = json_incref(val); /* our reference to the current value */
    if (json_is_object(cur)) {
        json_t *inner = json_object_get(cur, "__value__");
        if (inner) {
            json_incref(inner);
            json_decref(cur);
            cur = inner;
            if (json_object_set(node->inputs, in->name, cur) < 0) c->oom = true;
        }
    }
    json_t *received = json_incref(cur); /* as received (unwrapped), for the overflow error */
    bool nonfinite = false;
    double d = 0;
    const char *conv = NULL;
    if (!in->combo && in->type) {
        if (!strcmp(in->type, "INT") || !strcmp(in->type, "FLOAT") || !strcmp(in->type, "STRING") ||
            !strcmp(in->type, "BOOLEAN"))
            conv = in->type;
    }
    /* A value already of the declared type stays as it is: converting it would give an equal
     * value, and making it anew for every input of a large prompt is not free. */
    if (conv && ((!strcmp(conv, "INT") && json_is_integer(cur)) ||
                 (!strcmp(conv, "FLOAT") && json_is_real(cur) && isfinite(json_real_value(cur))) ||
                 (!strcmp(conv, "STRING") && json_is_string(cur) && !cd_json_bigint_text(cur)) ||
                 (!strcmp(conv, "BOOLEAN") && json_is_boolean(cur))))
        conv = NULL;
    if (conv) {
        sb ex = {CD_BUF_INIT, false};
        json_t *nv = NULL;
        bool failed = false;
        if (!strcmp(conv, "INT")) {
            nv = py_to_int(cur, &ex);
            failed = !nv && !ex.oom && ex.b.len > 0;
            if (!nv && !failed) c->oom = true;
        } else if (!strcmp(conv, "FLOAT")) {
            if (py_to_double(cur, &d, &ex) < 0) {
                failed = !ex.oom;
                if (ex.oom) c->oom = true;
            } else if (isfinite(d)) {
                nv = chk(c, json_real(d));
            } else {
                nonfinite = true; /* JSON has no NaN or infinity: the prompt keeps the text */
            }
        } else if (!strcmp(conv, "STRING")) {
            sb s = {CD_BUF_INIT, false};
            py_str(&s, cur);
            nv = str_of(c, &s);
        } else {
            nv = chk(c, json_boolean(py_truthy(cur)));
        }
        if (failed) {
            sb det = {CD_BUF_INIT, false};
            sb_printf(&det, "%s, ", in->name);
            py_str(&det, cur);
            sb_str(&det, ", ");
            sb_str(&det, sb_cstr(&ex));
            sb msg = {CD_BUF_INIT, false};
            sb_printf(&msg, "Failed to convert an input value to a %s value", conv);
            json_t *extra = chk(c, json_object());
            oset(c, extra, "input_name", json_string(in->name));
            oset(c, extra, "input_config", input_config(c, in));
            oset(c, extra, "received_value", json_deep_copy(cur));
            oset(c, extra, "exception_message", str_of(c, &ex));
            if (msg.oom) c->oom = true;
            frame_error(c, f, error_new(c, "invalid_input_type", sb_cstr(&msg), str_of(c, &det), extra));
            sb_free(&msg);
            json_decref(cur);
            json_decref(received);
            return -1;
        }
        sb_free(&ex);
        if (nv) {
            if (json_object_set(node->inputs, in->name, nv) < 0) c->oom = true;
            json_decref(cur);
            cur = nv;
        }
    }
    if (!cd_node_type_validates(t, in->name)) {
        static const struct {
            const char *key, *type, *word;
            char op;
        } bounds[] = {{"min", "value_smaller_than_min", "smaller than min", '<'},
                      {"max", "value_bigger_than_max", "bigger than max", '>'}};
        for (int k = 0; k < 2; k++) {
            json_t *bound = in->options ? json_object_get(in->options, bounds[k].key) : NULL;
            bool out_of_range = false;
            if (!bound) continue;
            if (compare_bound(c, cur, nonfinite, d, bound, bounds[k].op, &out_of_range) < 0) {
                json_decref(cur);
                json_decref(received);
                return raise_exc(c, "TypeError");
            }
            if (!out_of_range) continue;
            sb msg = {CD_BUF_INIT, false};
            sb_str(&msg, "Value ");
            value_str(&msg, cur, nonfinite, d);
            sb_printf(&msg, " %s of ", bounds[k].word);
            py_str(&msg, bound);
            json_t *extra = chk(c, json_object());
            oset(c, extra, "input_name", json_string(in->name));
            oset(c, extra, "input_config", input_config(c, in));
            oset(c, extra, "received_value", json_deep_copy(cur));
            if (msg.oom) c->oom = true;
            frame_error(c, f, error_new(c, bounds[k].type, sb_cstr(&msg), json_string(in->name), extra));
            sb_free(&msg);
            json_decref(cur);
            json_decref(received);
            return -1;
        }
        if (cd_input_is_combo(in)) {
            /* Both declaration forms, and the options as the node lists them now (ComfyUI
             * reads INPUT_TYPES at validation time). */
            bool live = false;
            json_t *choices = chk(c, cd_node_type_combo_choices(t, in, cd_registry_call_env(c->reg), &live));
            bool found = !choices; /* out of memory: reported through c->oom */
            for (size_t i = 0; i < json_array_size(choices) && !found; i++)
                found = py_eq(cur, json_array_get(choices, i), 0);
            if (!found) {
                size_t n = json_array_size(choices);
                sb det = {CD_BUF_INIT, false};
                sb_printf(&det, "%s: '", in->name);
                py_str(&det, cur);
                sb_str(&det, "' not in ");
                if (n > 20) sb_printf(&det, "(list of length %zu)", n);
                else py_repr(&det, choices, 0);
                json_t *extra = chk(c, json_object());
                oset(c, extra, "input_name", json_string(in->name));
                oset(c, extra, "input_config", n > 20 ? json_null() : combo_config(c, in, live ? choices : NULL));
                oset(c, extra, "received_value", json_deep_copy(cur));
                frame_error(c, f, error_new(c, "value_not_in_list", "Value not in list", str_of(c, &det), extra));
                json_decref(choices);
                json_decref(cur);
                json_decref(received);
                return -1;
            }
            json_decref(choices);
        }
    }
    const json_t *big = find_bigint(cur, 0);
    if (big) {
        /* Valid for ComfyUI, but the engine's integers are 64-bit: refused here rather than
         * wrapped, with the OverflowError a Python node would raise converting it. */
        sb det = {CD_BUF_INIT, false};
        sb_printf(&det, "%s, ", in->name);
        py_str(&det, received);
        sb_str(&det, ", " INT_OVERFLOW_TEXT);
        json_t *extra = chk(c, json_object());
        oset(c, extra, "input_name", json_string(in->name));
        oset(c, extra, "input_config", input_config(c, in));
        oset(c, extra, "received_value", json_deep_copy(received));
        oset(c, extra, "exception_message", json_string(INT_OVERFLOW_TEXT));
        frame_error(c, f,
                    error_new(c, "invalid_input_type", "Failed to convert an input value to a INT value",
                              str_of(c, &det), extra));
    }
    json_decref(cur);
    json_decref(received);
    return -1;
}

/* VALIDATE_INPUTS: what get_input_data would give it with no execution list, filtered to the
 * arguments it takes. */
static void run_custom_validation(vctx *c, frame *f) {
    vnode *node = &c->nodes[f->node];
    const cd_node_type *t = node->type;
    if (!t->def->validate_inputs) return;
    json_t *all = chk(c, json_object());
    const char *name;
    json_t *v;
    json_object_foreach(node->inputs, name, v) {
        const cd_input_def *in = cd_node_type_input(t, name);
        if (py_is_link(v) && !(in && in->raw_link)) oset(c, all, name, json_null()); /* linked: None */
        else if (in) oset(c, all, name, json_incref(v));
    }
    for (size_t i = 0; i < t->n_inputs; i++) {
        const cd_input_def *in = &t->inputs[i];
        if (in->section != CD_INPUT_HIDDEN || !in->hidden_kind) continue;
        json_t *hv;
        if (!strcmp(in->hidden_kind, "PROMPT")) hv = json_object(); /* no dynprompt yet: {} */
        else if (!strcmp(in->hidden_kind, "UNIQUE_ID")) hv = json_string(node->id);
        else hv = json_null();
        oset(c, all, in->name, hv);
    }
    json_t *filtered = chk(c, json_object());
    json_object_foreach(all, name, v) {
        if (cd_node_type_validates(t, name)) oset(c, filtered, name, json_incref(v));
    }
    json_decref(all);
    json_t *types = t->validate_takes_types ? json_incref(f->received_types) : NULL;
    if (t->validate_takes_types && !types) types = chk(c, json_object());
    char *message = NULL;
    int rc = filtered ? cd_call_run_validate(t, cd_registry_call_env(c->reg), filtered, types, &message) : CD_OK;
    if (rc != CD_OK) {
        if (!message) c->oom = true;
        const char *msg = message ? message : "";
        /* One error per argument passed in, input_types included; with none, one bare error
         * (later ComfyUI; the snapshot would let such a node pass). */
        void *it = json_object_iter(filtered);
        bool types_done = !t->validate_takes_types, any = false;
        for (;;) {
            const char *x = NULL;
            if (it) {
                x = json_object_iter_key(it);
                it = json_object_iter_next(filtered, it);
            } else if (!types_done) {
                x = "input_types";
                types_done = true;
            } else if (any) break;
            any = true;
            sb det = {CD_BUF_INIT, false};
            if (x && msg[0]) sb_printf(&det, "%s - %s", x, msg);
            else if (x) sb_str(&det, x);
            else sb_str(&det, msg);
            json_t *extra = chk(c, json_object());
            if (x) oset(c, extra, "input_name", json_string(x));
            frame_error(c, f, error_new(c, "custom_validation_failed", "Custom validation failed for node",
                                        str_of(c, &det), extra));
            if (!x) break;
        }
    }
    free(message);
    json_decref(filtered);
    json_decref(types);
}

/* A V3 Autogrow input ("COMFY_AUTOGROW_V3") arrives as "<name>.<prefix><i>" entries, not under
 * its own name: it is given when one of those is. The node checks its minimum itself. */
static bool autogrow_given(json_t *inputs, const cd_input_def *in) {
    if (!in->type || strcmp(in->type, "COMFY_AUTOGROW_V3")) return false;
    size_t n = strlen(in->name);
    const char *key;
    json_t *v;
    json_object_foreach(inputs, key, v) {
        if (!strncmp(key, in->name, n) && key[n] == '.') return true;
    }
    return false;
}

/* Runs a frame until it needs a source validated (STEP_CALL), finishes (STEP_DONE) or raises. */
static int frame_step(vctx *c, frame *f, size_t *child) {
    vnode *node = &c->nodes[f->node];
    const cd_node_type *t = node->type;
    if (f->next == 0 && !node->inputs) {
        sb_str(&c->exc_msg, "'inputs'"); /* prompt[unique_id]['inputs'] */
        return raise_exc(c, "KeyError");
    }
    while (f->next < 2 * t->n_inputs) {
        const cd_input_def *in = declared_at(t, f->next++);
        if (!in) continue;
        json_t *val = json_object_get(node->inputs, in->name);
        if (!val) {
            if (in->section == CD_INPUT_REQUIRED && !autogrow_given(node->inputs, in)) {
                json_t *extra = chk(c, json_object());
                oset(c, extra, "input_name", json_string(in->name));
                frame_error(c, f, error_new(c, "required_input_missing", "Required input is missing",
                                            json_string(in->name), extra));
            }
            continue;
        }
        int rc = json_is_array(val) ? step_link(c, f, in, val, child) : step_constant(c, f, in, val);
        if (rc == STEP_CALL || rc == STEP_RAISE) return rc;
    }
    run_custom_validation(c, f);
    return STEP_DONE;
}

/* ------------------------------------------------------------------------------------------ */
/* The walk                                                                                    */

static bool push_frame(vctx *c, size_t idx) {
    if (c->depth == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        frame *s = realloc(c->stack, cap * sizeof *s);
        if (!s) {
            c->oom = true;
            return false;
        }
        c->stack = s;
        c->cap = cap;
    }
    frame *f = &c->stack[c->depth];
    memset(f, 0, sizeof *f);
    f->node = idx;
    f->valid = true;
    c->nodes[idx].visiting = true;
    c->nodes[idx].stack_pos = c->depth;
    c->depth++;
    return true;
}

static void frame_release(vctx *c, frame *f) {
    c->nodes[f->node].visiting = false;
    json_decref(f->errors);
    json_decref(f->received_types);
    json_decref(f->pending_val);
    f->errors = f->received_types = f->pending_val = NULL;
}

static void clear_pending(frame *f) {
    json_decref(f->pending_val);
    f->pending_val = NULL;
    f->pending_in = NULL;
}

/* Cycles longer than this are reported by their first members only, so that the errors (one
 * per member, each naming the cycle) stay linear in the size of the graph. */
#define CYCLE_REPORT_MAX 32

/* The node at the top of the stack links to `idx`, which is on the stack: the nodes from idx
 * to the top form a cycle. Each gets a dependency_cycle error, as in later ComfyUI. */
static void report_cycle(vctx *c, size_t idx) {
    size_t from = c->nodes[idx].stack_pos, len = c->depth - from;
    sb path = {CD_BUF_INIT, false};
    json_t *members = chk(c, json_array());
    for (size_t k = 0; k <= len; k++) {
        if (k == CYCLE_REPORT_MAX && len > CYCLE_REPORT_MAX) {
            sb_printf(&path, " -> ... (%zu nodes)", len);
            k = len; /* close the cycle with its first node */
        }
        const vnode *v = &c->nodes[k < len ? c->stack[from + k].node : idx];
        if (k) sb_str(&path, " -> ");
        sb_printf(&path, "%s (%s)", v->id, v->class_type);
        if (k < len) apush(c, members, json_string(v->id));
    }
    json_t *details = str_of(c, &path);
    for (size_t k = 0; k < len; k++) {
        size_t n = c->stack[from + k].node;
        json_t *extra = chk(c, json_object());
        oset(c, extra, "node_id", json_string(c->nodes[n].id));
        oset(c, extra, "cycle_nodes", json_incref(members));
        json_t *e = error_new(c, "dependency_cycle", "Dependency cycle detected", json_incref(details), extra);
        if (!c->first_cycle_error && e) c->first_cycle_error = json_incref(e);
        json_t *errs = chk(c, json_array());
        apush(c, errs, e);
        memo_set(c, n, false, errs);
    }
    json_decref(details);
    json_decref(members);
}

/* The memo entry joined with what the frame found (the cycle check may have put an error on
 * the node while it was on the stack). */
static void frame_finish(vctx *c, frame *f) {
    vnode *v = &c->nodes[f->node];
    bool prev_ok = v->memo_set ? v->ok : true;
    size_t n_prev = v->memo_set && v->errors ? json_array_size(v->errors) : 0;
    if (n_prev == 0 && !(f->errors && json_array_size(f->errors) > 0)) { /* nothing to join: [] */
        memo_set(c, f->node, prev_ok && f->valid, NULL);
        return;
    }
    json_t *errs = chk(c, json_array());
    for (size_t i = 0; i < n_prev; i++) apush(c, errs, json_incref(json_array_get(v->errors, i)));
    for (size_t i = 0; f->errors && i < json_array_size(f->errors); i++) {
        json_t *e = json_array_get(f->errors, i);
        bool dup = false;
        for (size_t j = 0; j < n_prev && !dup; j++) dup = json_equal(e, json_array_get(v->errors, j));
        if (!dup) apush(c, errs, json_incref(e));
    }
    bool ok = prev_ok && f->valid && !(f->errors && json_array_size(f->errors) > 0);
    memo_set(c, f->node, ok, errs);
}

/* validate_inputs(output) with validate_prompt's try/except around it. */
static void validate_output(vctx *c, size_t out) {
    if (c->nodes[out].memo_set) return;
    if (!push_frame(c, out)) return;
    while (c->depth > 0 && !c->oom) {
        frame *f = &c->stack[c->depth - 1];
        size_t child = 0;
        int rc = frame_step(c, f, &child);
        if (rc == STEP_CALL) {
            vnode *ch = &c->nodes[child];
            if (ch->memo_set) {
                if (!ch->ok) f->valid = false;
                clear_pending(f);
            } else if (ch->visiting) {
                report_cycle(c, child);
                f->valid = false;
                clear_pending(f);
            } else {
                push_frame(c, child);
            }
        } else if (rc == STEP_DONE) {
            frame_finish(c, f);
            size_t done = f->node;
            frame_release(c, f);
            c->depth--;
            if (c->depth > 0) {
                frame *parent = &c->stack[c->depth - 1];
                if (!c->nodes[done].ok) parent->valid = false;
                clear_pending(parent);
            }
        } else { /* STEP_RAISE: the frame is gone; the one below catches */
            size_t raised = f->node;
            frame_release(c, f);
            c->depth--;
            json_t *extra = chk(c, json_object());
            const char *msg = sb_cstr(&c->exc_msg);
            json_t *e;
            if (c->depth > 0) {
                frame *parent = &c->stack[c->depth - 1];
                oset(c, extra, "input_name", json_string(parent->pending_in->name));
                oset(c, extra, "input_config", input_config(c, parent->pending_in));
                oset(c, extra, "exception_message", json_string(msg));
                oset(c, extra, "exception_type", json_string(c->exc_type));
                oset(c, extra, "traceback", json_array());
                oset(c, extra, "linked_node", json_deep_copy(parent->pending_val));
                e = error_new(c, "exception_during_inner_validation", "Exception when validating inner node",
                              json_string(msg), extra);
                parent->valid = false;
                clear_pending(parent);
            } else {
                oset(c, extra, "exception_type", json_string(c->exc_type));
                oset(c, extra, "traceback", json_array());
                e = error_new(c, "exception_during_validation", "Exception when validating node", json_string(msg),
                              extra);
            }
            if (c->exc_msg.oom) c->oom = true;
            cd_buf_reset(&c->exc_msg.b);
            json_t *errs = chk(c, json_array());
            apush(c, errs, e);
            memo_set(c, raised, false, errs);
        }
    }
    while (c->depth > 0) frame_release(c, &c->stack[--c->depth]); /* only after OOM */
}

/* ------------------------------------------------------------------------------------------ */
/* validate_prompt                                                                             */

static json_t *top_error(const char *type, const char *message, const char *details) {
    return json_pack("{s:s, s:s, s:s, s:{}}", "type", type, "message", message, "details", details, "extra_info");
}

static json_t *node_id_error(vctx *c, const char *message, const char *id) {
    sb d = {CD_BUF_INIT, false};
    sb_printf(&d, "Node ID '#%s'", id);
    json_t *e = top_error("invalid_prompt", message, sb_cstr(&d));
    if (d.oom) c->oom = true;
    sb_free(&d);
    return chk(c, e);
}

/* Is node id `id` among the partial execution targets? Python's `x in targets`. */
static bool is_target(const json_t *targets, const cd_map *target_set, const char *id) {
    if (!targets || json_is_null(targets)) return true;
    if (json_is_array(targets)) return cd_map_get(target_set, id) != NULL;
    if (json_is_object(targets)) return json_object_get(targets, id) != NULL;
    if (json_is_string(targets)) return strstr(json_string_value(targets), id) != NULL;
    return false; /* Python raises TypeError here; treat as "no target" */
}

/* The class checks; returns the error object (new) or NULL when every node is known. */
static json_t *check_classes(vctx *c, json_t *prompt) {
    cd_map *cache = cd_map_new(); /* class name -> type: cd_registry_get is a linear scan */
    if (!cache) {
        c->oom = true;
        return NULL;
    }
    json_t *err = NULL;
    const char *id;
    json_t *node;
    size_t i = 0;
    json_object_foreach(prompt, id, node) {
        vnode *v = &c->nodes[i++];
        v->id = id;
        json_t *ct = json_is_object(node) ? json_object_get(node, "class_type") : NULL;
        if (!ct) {
            err = node_id_error(c, "Cannot execute because a node is missing the class_type property.", id);
            break;
        }
        const cd_node_type *t = NULL;
        if (json_is_string(ct) && strlen(json_string_value(ct)) == json_string_length(ct)) {
            t = cd_map_get(cache, json_string_value(ct));
            if (!t && (t = cd_registry_get(c->reg, json_string_value(ct))) &&
                cd_map_set(cache, json_string_value(ct), (void *)t) < 0)
                c->oom = true;
        }
        if (!t) {
            sb m = {CD_BUF_INIT, false};
            sb_str(&m, "Cannot execute because node ");
            py_str(&m, ct);
            sb_str(&m, " does not exist.");
            if (m.oom) c->oom = true;
            err = node_id_error(c, sb_cstr(&m), id);
            sb_free(&m);
            break;
        }
        json_t *inputs = json_object_get(node, "inputs");
        if (inputs && !json_is_object(inputs)) {
            /* Python would fail later with a TypeError; reject the shape outright. */
            err = node_id_error(c, "Cannot execute because the inputs of a node are not an object.", id);
            break;
        }
        v->class_type = json_string_value(ct);
        v->type = t;
        if (t->def->validate_inputs || t->def->combo_options) c->repeatable = false;
        v->inputs = inputs;
        if (cd_map_set(c->by_id, id, v) < 0) c->oom = true;
    }
    cd_map_free(cache);
    return err;
}

static void add_node_errors(vctx *c, json_t *node_errors, const char *output) {
    for (size_t k = 0; k < c->n_err; k++) {
        const vnode *v = &c->nodes[c->err_list[k]];
        json_t *entry = json_object_get(node_errors, v->id);
        if (!entry) {
            entry = chk(c, json_object());
            oset(c, entry, "errors", json_incref(v->errors));
            oset(c, entry, "dependent_outputs", json_array());
            oset(c, entry, "class_type", json_string(v->class_type));
            oset(c, node_errors, v->id, entry);
            if (c->oom) return;
        }
        apush(c, json_object_get(entry, "dependent_outputs"), json_string(output));
    }
}

static int validate(vctx *c, json_t *prompt, const json_t *targets, cd_validation *out) {
    if (!json_is_object(prompt)) {
        out->error = chk(c, top_error("invalid_prompt", "Cannot execute because the prompt is not a JSON object.", ""));
        return 0;
    }
    c->n = json_object_size(prompt);
    c->nodes = calloc(c->n ? c->n : 1, sizeof *c->nodes);
    c->err_list = calloc(c->n ? c->n : 1, sizeof *c->err_list);
    c->by_id = cd_map_new_borrowed(); /* keys: the prompt's own, which outlives the validation */
    if (!c->nodes || !c->err_list || !c->by_id || cd_map_reserve(c->by_id, c->n) < 0) return -1;
    out->error = check_classes(c, prompt);
    if (out->error || c->oom) return 0;

    cd_map *target_set = NULL;
    if (json_is_array(targets)) {
        if (!(target_set = cd_map_new())) return -1;
        for (size_t i = 0; i < json_array_size(targets); i++) {
            json_t *x = json_array_get(targets, i);
            if (json_is_string(x) && cd_map_set(target_set, json_string_value(x), (void *)x) < 0) c->oom = true;
        }
    }
    size_t *outputs = malloc((c->n ? c->n : 1) * sizeof *outputs), n_outputs = 0;
    if (!outputs) c->oom = true;
    for (size_t i = 0; outputs && i < c->n; i++)
        if (cd_node_type_is_output(c->nodes[i].type) && is_target(targets, target_set, c->nodes[i].id))
            outputs[n_outputs++] = i;
    cd_map_free(target_set);
    if (c->oom) {
        free(outputs);
        return -1;
    }
    if (n_outputs == 0) {
        free(outputs);
        out->error = chk(c, top_error("prompt_no_outputs", "Prompt has no outputs", ""));
        return 0;
    }

    out->outputs = calloc(n_outputs, sizeof *out->outputs);
    sb failed = {CD_BUF_INIT, false}; /* "message: details" of the failed outputs' own errors */
    bool any_failed_line = false;
    for (size_t k = 0; k < n_outputs && out->outputs && !c->oom; k++) {
        size_t o = outputs[k];
        validate_output(c, o);
        if (c->oom) break;
        const vnode *v = &c->nodes[o];
        if (v->ok) {
            if (!(out->outputs[out->n_outputs] = strdup(v->id))) c->oom = true;
            else out->n_outputs++;
            continue;
        }
        for (size_t i = 0; v->errors && i < json_array_size(v->errors); i++) {
            json_t *e = json_array_get(v->errors, i);
            if (any_failed_line) sb_chr(&failed, '\n');
            any_failed_line = true;
            sb_add(&failed, json_string_value(json_object_get(e, "message")),
                   json_string_length(json_object_get(e, "message")));
            sb_str(&failed, ": ");
            sb_add(&failed, json_string_value(json_object_get(e, "details")),
                   json_string_length(json_object_get(e, "details")));
        }
        add_node_errors(c, out->node_errors, v->id);
    }
    free(outputs);
    if (!out->outputs || failed.oom) c->oom = true;
    if (!c->oom) {
        if (c->first_cycle_error) {
            /* Later ComfyUI reports the cycle on its nodes; a cycle is never runnable, so the
             * whole prompt is refused with the cycle as the reason. */
            out->error = chk(c, json_deep_copy(c->first_cycle_error));
        } else if (out->n_outputs == 0) {
            out->error =
                chk(c, top_error("prompt_outputs_failed_validation", "Prompt outputs failed validation", sb_cstr(&failed)));
        }
        if (out->error) {
            for (size_t i = 0; i < out->n_outputs; i++) free(out->outputs[i]);
            out->n_outputs = 0;
        }
    }
    sb_free(&failed);
    return 0;
}

int cd_validate_prompt(const cd_registry *reg, json_t *prompt, const json_t *partial_targets, cd_validation *out) {
    memset(out, 0, sizeof *out);
    if (!(out->node_errors = json_object())) return -1;
    vctx c = {.reg = reg, .exc_msg = {CD_BUF_INIT, false}, .repeatable = true};
    int rc = validate(&c, prompt, partial_targets, out);
    out->repeatable = c.repeatable;
    for (size_t i = 0; c.nodes && i < c.n; i++) json_decref(c.nodes[i].errors);
    free(c.nodes);
    free(c.err_list);
    free(c.stack);
    cd_map_free(c.by_id);
    sb_free(&c.exc_msg);
    json_decref(c.first_cycle_error);
    if (rc < 0 || c.oom) {
        cd_validation_clear(out);
        return -1;
    }
    return 0;
}

void cd_validation_clear(cd_validation *v) {
    if (!v) return;
    json_decref(v->error);
    json_decref(v->node_errors);
    for (size_t i = 0; i < v->n_outputs; i++) free(v->outputs[i]);
    free(v->outputs);
    memset(v, 0, sizeof *v);
}
