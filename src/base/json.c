#include "base/json.h"

#include <ctype.h>
#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
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

char *cd_json_dumps_reference(const json_t *value) {
    /* jansson's non-compact mode already uses Python's separators; ENCODE_ANY allows scalars. */
    char *s = json_dumps(value, JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
    if (s && strstr(s, "\\u0000")) restore_bigints(s);
    if (s) cd_json_lower_escapes(s);
    return s;
}

char *cd_json_dumps_compact_reference(const json_t *value, size_t flags) {
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
    /* Whole numbers below 2^53 (progress values and maxima, mostly) are their integer digits
     * and ".0": the repr search below costs a few printf/strtod rounds per number. */
    if (fabs(x) < 9007199254740992.0 && x == (double)(int64_t)x && fabs(x) < 1e16) {
        char whole[32];
        int n = snprintf(whole, sizeof whole, "%" PRId64 ".0", (int64_t)x);
        return cd_buf_append(b, whole, (size_t)n);
    }
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

/* ---- cd_json_parse: jansson's reading, without its per-character lexer ----
 *
 * jansson reads through a stream of single characters and copies every token into a growing
 * buffer before looking at it; here the text is walked in place. Strings without escapes go
 * straight from the text into json_stringn_nocheck (their UTF-8 checked here), integers are
 * read digit by digit, containers are kept on an explicit stack. The tree is built with
 * jansson's public calls in json_loadb's order, so keys keep their first position and a
 * repeated key its last value. What is accepted is exactly what cd_json_loadb_bigint accepts:
 * jansson 2.14's grammar and limits, quirks included (see skip_swallowed_nul), plus big
 * integers. tests/fuzz/fuzz_json holds it to that. */

enum {
    /* jansson's JSON_PARSER_MAX_DEPTH: it counts every value, scalars too, and refuses one whose
     * nesting level (the top-level value being 1) is above it. */
    PARSE_MAX_DEPTH = 2048,
    PARSE_INLINE_STACK = 32,
};

/* An open container; its kind kept here saves a look into the json_t for every value. */
typedef struct {
    json_t *c;
    bool object;
} parse_frame;

typedef struct {
    const char *p, *end;
    size_t flags;
    const char *err;    /* the first error (a static text), NULL while there is none */
    const char *err_at; /* where it was found */
    parse_frame *stack; /* the open containers, innermost last */
    size_t depth, stack_cap;
    parse_frame inline_stack[PARSE_INLINE_STACK];
    cd_buf key_buf, str_buf; /* strings with escapes, decoded: the pending key, the value */
    const char *key;
    size_t key_len;
} parser;

/* Records the first error; returns false (parse_fail_null: NULL) for the callers' returns. */
static bool parse_fail(parser *ps, const char *msg) {
    if (!ps->err) {
        ps->err = msg;
        ps->err_at = ps->p;
    }
    return false;
}

static json_t *parse_fail_null(parser *ps, const char *msg) {
    parse_fail(ps, msg);
    return NULL;
}

static inline void skip_space(parser *ps) {
    const char *p = ps->p, *end = ps->end;
    /* compact JSON, the common case, leaves at the first comparison */
    while (p < end && (unsigned char)*p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    ps->p = p;
}

/* jansson puts back the character that ends a number or a word; a NUL byte put back is lost
 * (its one-character buffer reads as empty), so "[1\0]" is read as [1]. Done after those
 * tokens to accept what json_loadb accepts. */
static void skip_swallowed_nul(parser *ps) {
    if (ps->p < ps->end && *ps->p == '\0') ps->p++;
}

/* The length of the valid UTF-8 sequence at p (its first byte >= 0x80), or 0: no overlong
 * forms, no surrogates, nothing above U+10FFFF, as jansson checks. */
static size_t utf8_sequence_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!n || (size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xF0 && p[1] < 0x90)) return 0; /* overlong */
    if (c == 0xED && p[1] >= 0xA0) return 0;                                 /* surrogate */
    if (c == 0xF4 && p[1] >= 0x90) return 0;                                 /* > U+10FFFF */
    return n;
}

static bool string_byte_is_plain(unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define STRING_WORDS 1
/* The bytes of the eight at p (little-endian) that a string cannot take as they are, each
 * flagged by its top bit: those below 0x20, equal to '"' or '\\' (a zero after the XOR), or
 * with the top bit set. The lowest flag is always a true one (borrows only run upwards). */
static inline uint64_t string_specials(const unsigned char *p) {
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | w) & high;
}
#else
#define STRING_WORDS 0
#endif

/* The first byte at or after p that a string cannot take as it is: a quote, a backslash, a
 * control character or a non-ASCII byte (to be checked). Eight bytes at a time. */
static const unsigned char *string_stop(const unsigned char *p, const unsigned char *end) {
#if STRING_WORDS
    while (end - p >= 8) {
        uint64_t m = string_specials(p);
        if (m) return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && string_byte_is_plain(*p)) p++;
    return p;
}

static int hex_digit(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code unit of the \u escape (a backslash, u, four hex digits) at p, or -1. */
static long read_u_escape(const unsigned char *p, const unsigned char *end) {
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return -1;
    long v = 0;
    for (int i = 2; i < 6; i++) {
        int d = hex_digit(p[i]);
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int append_utf8(cd_buf *b, unsigned long c) {
    unsigned char u[4];
    size_t n;
    if (c < 0x80) {
        u[0] = (unsigned char)c;
        n = 1;
    } else if (c < 0x800) {
        u[0] = (unsigned char)(0xC0 | (c >> 6));
        u[1] = (unsigned char)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (c >> 12));
        u[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (c >> 18));
        u[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (c & 0x3F));
        n = 4;
    }
    return cd_buf_append(b, u, n);
}

/* Decodes the escape at *pp (a backslash) into b and moves past it. A surrogate must come as a
 * high-low pair; \u0000 is refused (jansson allows it only with JSON_ALLOW_NUL). */
static bool decode_escape(parser *ps, const unsigned char **pp, const unsigned char *end, cd_buf *b) {
    const unsigned char *p = *pp;
    if (end - p < 2) return parse_fail(ps, "premature end of input");
    static const char simple_from[] = "\"\\/bfnrt", simple_to[] = "\"\\/\b\f\n\r\t";
    const char *s = p[1] ? strchr(simple_from, p[1]) : NULL;
    if (s) {
        *pp = p + 2;
        return cd_buf_append(b, &simple_to[s - simple_from], 1) == 0 || parse_fail(ps, "out of memory");
    }
    long c = read_u_escape(p, end);
    if (c < 0) return parse_fail(ps, "invalid escape");
    p += 6;
    if (c >= 0xD800 && c <= 0xDBFF) {
        long lo = read_u_escape(p, end);
        if (lo < 0xDC00 || lo > 0xDFFF) return parse_fail(ps, "invalid Unicode: unpaired surrogate");
        c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
    } else if (c >= 0xDC00 && c <= 0xDFFF) {
        return parse_fail(ps, "invalid Unicode: unpaired surrogate");
    } else if (c == 0) {
        return parse_fail(ps, "\\u0000 is not allowed");
    }
    *pp = p;
    return append_utf8(b, (unsigned long)c) == 0 || parse_fail(ps, "out of memory");
}

/* Reads the string whose opening quote is at ps->p. *out is its text: a span of the input when
 * it has no escape, else its decoded copy in b. */
static inline bool parse_string(parser *ps, cd_buf *b, const char **out, size_t *out_len) {
    const unsigned char *start = (const unsigned char *)ps->p + 1, *end = (const unsigned char *)ps->end;
    const unsigned char *p = start, *run = start;
    bool decoded = false;
    for (;;) {
        p = string_stop(p, end);
        ps->p = (const char *)p;
        if (p == end) return parse_fail(ps, "premature end of input");
        if (*p == '"') break;
        if (*p >= 0x80) {
            size_t n = utf8_sequence_len(p, end);
            if (!n) return parse_fail(ps, "invalid UTF-8");
            p += n;
        } else if (*p < 0x20) {
            return parse_fail(ps, "control character in string");
        } else {
            if (!decoded) cd_buf_reset(b);
            decoded = true;
            if (cd_buf_append(b, run, (size_t)(p - run)) < 0) return parse_fail(ps, "out of memory");
            if (!decode_escape(ps, &p, end, b)) return false;
            run = p;
        }
    }
    if (decoded) {
        if (cd_buf_append(b, run, (size_t)(p - run)) < 0) return parse_fail(ps, "out of memory");
        *out = b->data;
        *out_len = b->len;
    } else {
        *out = (const char *)start;
        *out_len = (size_t)(p - start);
    }
    ps->p = (const char *)p + 1;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }


/* Adds one digit to the significand m; false once it holds 19 significant digits. */
static bool add_digit(uint64_t *m, int *digits, char c) {
    if (*digits >= 19) return false;
    *m = *m * 10 + (uint64_t)(c - '0');
    if (*m) (*digits)++;
    return true;
}

/* The value of the real number text [s, e), already checked against the grammar. Up to 19
 * significant digits and a power of ten up to 22 take the exact path: the significand (at most
 * 2^53) and the power are exact doubles, so one rounded operation gives the correctly rounded
 * value, as glibc's strtod does. Anything else goes to strtod in the "C" locale. */
static double real_value(const char *s, const char *e) {
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = s;
    bool neg = *p == '-', exact = true;
    if (neg) p++;
    uint64_t m = 0;
    int digits = 0;
    long long exp10 = 0;
    for (; p < e && is_digit(*p); p++) exact = add_digit(&m, &digits, *p) && exact;
    if (p < e && *p == '.')
        for (p++; p < e && is_digit(*p); p++, exp10--) exact = add_digit(&m, &digits, *p) && exact;
    if (p < e) { /* the exponent */
        p++;
        bool eneg = *p == '-';
        if (*p == '-' || *p == '+') p++;
        long long x = 0;
        for (; p < e; p++) x = x < 100000 ? x * 10 + (*p - '0') : x;
        exp10 += eneg ? -x : x;
    }
#if FLT_EVAL_METHOD == 0
    if (exact && m == 0) return neg ? -0.0 : 0.0;
    if (exact && m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)m;
        d = exp10 < 0 ? d / pow10[-exp10] : d * pow10[exp10];
        return neg ? -d : d;
    }
#else
    (void)pow10;
    (void)exact;
#endif
    char small[128], *t = small;
    size_t n = (size_t)(e - s);
    if (n >= sizeof small && !(t = malloc(n + 1))) return NAN; /* out of memory: refused */
    memcpy(t, s, n);
    t[n] = '\0';
    pthread_once(&c_locale_once, c_locale_init);
    double d = c_locale ? strtod_l(t, NULL, c_locale) : strtod(t, NULL);
    if (t != small) free(t);
    return d;
}

/* A big integer's value, as cd_json_bigint makes it: a NUL, then the text [s, e). */
static json_t *bigint_value(parser *ps, const char *s, const char *e) {
    cd_buf *b = &ps->str_buf;
    cd_buf_reset(b);
    if (cd_buf_append(b, "", 1) < 0 || cd_buf_append(b, s, (size_t)(e - s)) < 0) return NULL;
    return json_stringn_nocheck(b->data, b->len);
}

/* Reads the number at ps->p: [-](0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, an integer when it
 * has neither fraction nor exponent. */
static json_t *parse_number(parser *ps) {
    const char *s = ps->p, *p = s, *end = ps->end;
    bool neg = *p == '-';
    if (neg) p++;
    const char *digits = p;
    if (p == end || !is_digit(*p)) return parse_fail_null(ps, "invalid number");
    if (*p == '0') {
        if (++p < end && is_digit(*p)) return parse_fail_null(ps, "invalid number: leading zero");
    } else {
        while (p < end && is_digit(*p)) p++;
    }
    if (p == end || (*p != '.' && *p != 'e' && *p != 'E')) {
        size_t n = (size_t)(p - digits);
        uint64_t u = 0;
        if (n <= 19)
            for (const char *q = digits; q < p; q++) u = u * 10 + (uint64_t)(*q - '0');
        uint64_t limit = neg ? UINT64_C(9223372036854775808) : UINT64_C(9223372036854775807);
        ps->p = p;
        if (n > 19 || u > limit) {
            if (ps->flags & CD_JSON_REJECT_BIGINT) return parse_fail_null(ps, "too big integer");
            /* cd_json_loadb_bigint turns it into a string token: no NUL is swallowed after it */
            return bigint_value(ps, s, p);
        }
        skip_swallowed_nul(ps);
        /* -2^63 has no positive counterpart: negate in unsigned arithmetic */
        return json_integer(neg ? (json_int_t)(0 - u) : (json_int_t)u);
    }
    if (*p == '.') {
        if (++p == end || !is_digit(*p)) return parse_fail_null(ps, "invalid number: no digit after '.'");
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        if (++p < end && (*p == '+' || *p == '-')) p++;
        if (p == end || !is_digit(*p)) return parse_fail_null(ps, "invalid number: no digit in the exponent");
        while (p < end && is_digit(*p)) p++;
    }
    double d = real_value(s, p);
    if (isinf(d)) return parse_fail_null(ps, "real number overflow");
    if (isnan(d)) return parse_fail_null(ps, "out of memory");
    ps->p = p;
    skip_swallowed_nul(ps);
    return json_real(d);
}

/* true, false or null. Like jansson, the word is the whole run of ASCII letters. */
static json_t *parse_word(parser *ps) {
    const char *p = ps->p, *q = p;
    while (q < ps->end && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z'))) q++;
    size_t n = (size_t)(q - p);
    json_t *v = n == 4 && !memcmp(p, "true", 4)    ? json_true()
                : n == 5 && !memcmp(p, "false", 5) ? json_false()
                : n == 4 && !memcmp(p, "null", 4)  ? json_null()
                                                   : NULL;
    if (!v) return parse_fail_null(ps, "invalid token");
    ps->p = q;
    skip_swallowed_nul(ps);
    return v;
}

static json_t *parse_scalar(parser *ps) {
    char c = *ps->p;
    if (c == '"') {
        const char *s;
        size_t n;
        if (!parse_string(ps, &ps->str_buf, &s, &n)) return NULL;
        return json_stringn_nocheck(s, n);
    }
    if (c == '-' || is_digit(c)) return parse_number(ps);
    return parse_word(ps);
}

/* Puts v (consumed) into the innermost open container, under the pending key in an object, or
 * makes it the root. */
static inline bool attach(parser *ps, json_t **root, json_t *v) {
    if (!v) return parse_fail(ps, "out of memory");
    if (!ps->depth) {
        *root = v;
        return true;
    }
    const parse_frame *top = &ps->stack[ps->depth - 1];
    int rc = top->object ? json_object_setn_new_nocheck(top->c, ps->key, ps->key_len, v)
                         : json_array_append_new(top->c, v);
    return rc == 0 || parse_fail(ps, "out of memory");
}

static bool push(parser *ps, json_t *container, bool object) {
    if (ps->depth == ps->stack_cap) {
        size_t cap = ps->stack_cap * 2;
        parse_frame *s = ps->stack == ps->inline_stack ? malloc(cap * sizeof *s) : realloc(ps->stack, cap * sizeof *s);
        if (!s) return parse_fail(ps, "out of memory");
        if (ps->stack == ps->inline_stack) memcpy(s, ps->inline_stack, sizeof ps->inline_stack);
        ps->stack = s;
        ps->stack_cap = cap;
    }
    ps->stack[ps->depth++] = (parse_frame){container, object};
    return true;
}

/* Reads an object's key and the ':' after it; ps->p is at the key's quote or what stands there. */
static inline bool parse_key(parser *ps) {
    if (ps->p == ps->end || *ps->p != '"') return parse_fail(ps, "string or '}' expected");
    if (!parse_string(ps, &ps->key_buf, &ps->key, &ps->key_len)) return false;
    skip_space(ps);
    if (ps->p == ps->end || *ps->p != ':') return parse_fail(ps, "':' expected");
    ps->p++;
    skip_space(ps);
    return true;
}

/* Opens the container at ps->p ('[' or '{'): attaches it, pushes it and reads up to its first
 * value. Returns 1 when that value follows, 0 when the container was empty (and is closed). */
static int open_container(parser *ps, json_t **root) {
    bool object = *ps->p == '{';
    json_t *c = object ? json_object() : json_array();
    if (!attach(ps, root, c) || !push(ps, c, object)) return -1;
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) {
        ps->p++;
        ps->depth--;
        return 0;
    }
    return object && !parse_key(ps) ? -1 : 1;
}

/* After a value: reads the ',' and the next key, or closes containers. Returns 1 when a value
 * follows, 0 at the end of the document, -1 on error. */
static int next_value(parser *ps) {
    while (ps->depth) {
        skip_space(ps);
        bool object = ps->stack[ps->depth - 1].object;
        char c = ps->p < ps->end ? *ps->p : '\0';
        if (c == ',') {
            ps->p++;
            skip_space(ps);
            return object && !parse_key(ps) ? -1 : 1;
        }
        if (c != (object ? '}' : ']')) {
            parse_fail(ps, object ? "'}' expected" : "']' expected");
            return -1;
        }
        ps->p++;
        ps->depth--;
    }
    return 0;
}

static json_t *parse_document(parser *ps) {
    skip_space(ps);
    bool container = ps->p < ps->end && (*ps->p == '[' || *ps->p == '{');
    if (!container && !(ps->flags & JSON_DECODE_ANY)) return parse_fail_null(ps, "'[' or '{' expected");
    json_t *root = NULL;
    for (;;) {
        /* ps->p is at a value */
        if (ps->depth >= PARSE_MAX_DEPTH) break;
        if (ps->p == ps->end) {
            parse_fail(ps, "premature end of input");
            break;
        }
        int more;
        if (*ps->p == '[' || *ps->p == '{') {
            more = open_container(ps, &root);
            if (more < 0) break;
            if (more) continue;
        } else if (!attach(ps, &root, parse_scalar(ps))) {
            break;
        }
        more = next_value(ps);
        if (more < 0) break;
        if (more) continue;
        skip_space(ps);
        if (ps->p == ps->end) return root;
        parse_fail(ps, "end of file expected");
        break;
    }
    if (ps->depth >= PARSE_MAX_DEPTH) parse_fail(ps, "maximum parsing depth reached");
    json_decref(root);
    return NULL;
}

/* Fills error for the byte where reading stopped: its line and column (in characters) from 1,
 * its offset in bytes. */
static void parse_error(json_error_t *error, const char *text, const parser *ps) {
    size_t pos = (size_t)(ps->err_at - text);
    int line = 1, column = 1;
    for (size_t i = 0; i < pos; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            line++;
            column = 1;
        } else if ((c & 0xC0) != 0x80) {
            column++;
        }
    }
    error->line = line;
    error->column = column;
    error->position = (int)pos;
    snprintf(error->text, sizeof error->text, "%s", ps->err);
}

json_t *cd_json_parse(const char *text, size_t len, size_t flags, json_error_t *error) {
    if (error) {
        memset(error, 0, sizeof *error);
        snprintf(error->source, sizeof error->source, "<buffer>");
        error->line = error->column = -1;
    }
    /* The flags callers use; jansson's others would need their own paths (JSON_ALLOW_NUL:
     * NULs in strings, JSON_REJECT_DUPLICATES: a lookup per key...), so they are refused. */
    if (!text || (flags & ~(size_t)(JSON_DECODE_ANY | CD_JSON_REJECT_BIGINT))) {
        if (error) snprintf(error->text, sizeof error->text, "%s", text ? "unsupported flags" : "wrong arguments");
        return NULL;
    }
    parser ps = {.p = text, .end = text + len, .flags = flags, .stack_cap = PARSE_INLINE_STACK};
    ps.stack = ps.inline_stack;
    json_t *root = parse_document(&ps);
    if (!root && error) parse_error(error, text, &ps);
    else if (error) error->position = (int)len;
    if (ps.stack != ps.inline_stack) free(ps.stack);
    cd_buf_free(&ps.key_buf);
    cd_buf_free(&ps.str_buf);
    return root;
}

/* ---- cd_json_write: jansson's json_dumps, without its writer ----
 *
 * json_dumps hands every token to a callback, escapes strings a code point at a time, formats
 * numbers with snprintf and keeps a hash table of open containers (a "%p" key each) to detect
 * cycles. Here the tree is walked with an explicit stack and the text written straight into a
 * cd_buf, in the two forms the code base asks for:
 *   - cd_json_dumps: JSON_ENSURE_ASCII | JSON_ENCODE_ANY, ", " and ": ", then big integers
 *     restored and the hex digits of \u escapes lowercased; here written lowercase at once;
 *   - cd_json_dumps_compact, flags 0 or JSON_ENCODE_ANY: "," and ":", non-ASCII as it is,
 *     control characters as \u00XX in jansson's capitals.
 * What jansson 2.14 does that matters: keys in insertion order; \" \\ \b \f \n \r \t and
 * \u00XX for the other characters below 0x20, nothing else escaped but non-ASCII under
 * ENSURE_ASCII (surrogate pairs above the BMP), "/" and DEL as they are; integers as %lld;
 * reals as jsonp_dtostr writes them (real_text); a string that is not UTF-8 fails the dump,
 * yet as an object key it is written in part and the dump goes on (its return is not
 * checked), so any such string sends the whole value to the reference (dump_fallback).
 * Big integers (is_bigint_string) come out as restore_bigints made them. jansson recurses once
 * per level, without a limit of its own, and fails on a cycle; here the stack is on the heap
 * and cycles fail too (dump_push). tests/fuzz/fuzz_json_dump holds the two to the same bytes. */

enum { DUMP_INLINE_STACK = 32 };

/* An open container and where its writing is: the member (object) or the element (array). */
typedef struct {
    const json_t *c;
    void *iter;
    size_t i, n;
    bool object;
} dump_frame;

typedef struct {
    cd_buf *out;
    bool compact;
    bool not_utf8; /* a string that is not UTF-8 was met: the reference writes this tree */
    dump_frame *stack;
    size_t depth, stack_cap;
    /* Cycles, found as Brent finds them, one comparison a container: the anchor is the open
     * container at the last power-of-two depth. A tree with a cycle descends forever along a
     * path that repeats, so it meets an anchor again, a few times the cycle's length down;
     * the anchor is always open, so meeting it is always a cycle. */
    const json_t *anchor;
    size_t anchor_depth;
    dump_frame inline_stack[DUMP_INLINE_STACK];
} dumper;

/* Room for n bytes (and the NUL) at out->data + out->len, or NULL when memory ran out. The
 * writers below fill it and move len; the NUL is put once, at the end. */
static inline char *dump_room(cd_buf *out, size_t n) {
    if (out->cap - out->len <= n && cd_buf_reserve(out, n) < 0) return NULL;
    return out->data + out->len;
}

static inline int dump_put(cd_buf *out, const void *s, size_t n) {
    char *w = dump_room(out, n);
    if (!w) return -1;
    memcpy(w, s, n);
    out->len += n;
    return 0;
}

static const char hex_lower[] = "0123456789abcdef", hex_upper[] = "0123456789ABCDEF";

static char *put_u_escape(char *w, unsigned u, const char *hex) {
    w[0] = '\\';
    w[1] = 'u';
    w[2] = hex[(u >> 12) & 15];
    w[3] = hex[(u >> 8) & 15];
    w[4] = hex[(u >> 4) & 15];
    w[5] = hex[u & 15];
    return w + 6;
}

/* The escape of an ASCII character that needs one: a quote, a backslash or a control. */
static char *put_ascii_escape(char *w, unsigned char c, const char *hex) {
    static const char short_form[0x20] = {['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
    char e = c == '"' || c == '\\' ? (char)c : short_form[c];
    if (!e) return put_u_escape(w, c, hex);
    w[0] = '\\';
    w[1] = e;
    return w + 2;
}

/* The \u escape (four hex digits) of the valid n-byte UTF-8 sequence at p: two escapes, a
 * surrogate pair, above U+FFFF. */
static char *put_code_point_escape(char *w, const unsigned char *p, size_t n) {
    uint32_t c = p[0] & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < n; i++) c = (c << 6) | (p[i] & 0x3F);
    if (c < 0x10000) return put_u_escape(w, c, hex_lower);
    c -= 0x10000;
    w = put_u_escape(w, 0xD800 + (c >> 10), hex_lower);
    return put_u_escape(w, 0xDC00 + (c & 0x3FF), hex_lower);
}

/* A big integer's string (cd_json_bigint): a NUL, then [-]digits. jansson writes it
 * "\u0000<digits>", which restore_bigints turned into the bare digits, and nothing else. */
static bool is_bigint_string(const char *s, size_t len) {
    if (len < 2 || s[0] != '\0') return false;
    size_t i = 1 + (s[1] == '-');
    if (i == len) return false;
    for (; i < len; i++)
        if (!is_digit(s[i])) return false;
    return true;
}

enum { DUMP_STRING_CHUNK = 4096 };

/* Copies the plain bytes at p to w, eight or sixteen at a time (the words are stored whole:
 * the room is there) and returns how many were plain, up to 16; 0 with fewer than 8 left. */
static inline size_t copy_plain_words(char *w, const unsigned char *p, const unsigned char *end) {
#if STRING_WORDS
    if (end - p < 8) return 0;
    bool two = end - p >= 16;
    memcpy(w, p, 8);
    if (two) memcpy(w + 8, p + 8, 8);
    uint64_t lo = string_specials(p), hi = two ? string_specials(p + 8) : 1;
    if (lo) return (size_t)(__builtin_ctzll(lo) >> 3);
    return hi ? 8 + (size_t)(__builtin_ctzll(hi) >> 3) : 16;
#else
    (void)w, (void)p, (void)end;
    return 0;
#endif
}

/* Writes the string's text into room reserved a chunk at a time (the most a byte can become
 * is six), so that nothing is checked but the bytes: sixteen at a time are copied, then looked
 * at, and the copy is kept up to the first that needs an escape or a UTF-8 check. */
static int dump_string(dumper *d, const char *s, size_t len) {
    cd_buf *out = d->out;
    if (is_bigint_string(s, len)) return dump_put(out, s + 1, len - 1);
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    const char *hex = d->compact ? hex_upper : hex_lower;
    char *w = dump_room(out, 1);
    if (!w) return -1;
    *w++ = '"';
    do {
        size_t chunk = (size_t)(end - p) < DUMP_STRING_CHUNK ? (size_t)(end - p) : DUMP_STRING_CHUNK;
        const unsigned char *stop = p + chunk;
        out->len = (size_t)(w - out->data);
        /* a step may pass stop by 15 bytes (two words) or 3 (a UTF-8 sequence); 16 more for
         * the words stored whole, and the closing quote */
        if (!(w = dump_room(out, 6 * (chunk + 16) + 32))) return -1;
        while (p < stop) {
            size_t k = copy_plain_words(w, p, end);
            if (k) {
                p += k;
                w += k;
                continue;
            }
            if (string_byte_is_plain(*p)) {
                *w++ = (char)*p++;
                continue;
            }
            if (*p < 0x80) {
                w = put_ascii_escape(w, *p++, hex);
                continue;
            }
            size_t n = utf8_sequence_len(p, end);
            if (!n) {
                d->not_utf8 = true;
                return -1;
            }
            if (d->compact) { /* as it is */
                memcpy(w, p, n);
                w += n;
            } else {
                w = put_code_point_escape(w, p, n);
            }
            p += n;
        }
    } while (p < end);
    *w++ = '"';
    out->len = (size_t)(w - out->data);
    return 0;
}

/* The decimal digits of u, written backwards ending at e; returns where they start. */
static char *put_digits_back(char *e, uint64_t u) {
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        *--e = pairs[2 * r + 1];
        *--e = pairs[2 * r];
    }
    if (u >= 10) {
        *--e = pairs[2 * u + 1];
        *--e = pairs[2 * u];
    } else {
        *--e = (char)('0' + u);
    }
    return e;
}

/* "%lld": INT64_MIN has no positive counterpart, hence the unsigned negation. */
static size_t integer_text(char *out, json_int_t v) {
    char tmp[24], *e = tmp + sizeof tmp;
    char *s = put_digits_back(e, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    if (v < 0) *--s = '-';
    memcpy(out, s, (size_t)(e - s));
    return (size_t)(e - s);
}

#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 dump_u128;

/* The 17 significant digits of a (positive, not integral, in [2^-14, 2^52)) rounded as printf
 * rounds (to nearest, ties to even), and the decimal exponent of the first: a = m * 2^-k
 * exactly, so a * 10^(16 - x) is m * 10^(16 - x) / 2^k, an exact quotient and remainder in
 * 128 bits (m < 2^53, 10^22 < 2^74). False outside that range. */
static bool real_digits(double a, uint64_t *digits, int *exp10) {
    static const uint64_t ten_to[20] = {1u,
                                        10u,
                                        100u,
                                        1000u,
                                        10000u,
                                        100000u,
                                        1000000u,
                                        10000000u,
                                        100000000u,
                                        1000000000u,
                                        10000000000u,
                                        100000000000u,
                                        1000000000000u,
                                        10000000000000u,
                                        100000000000000u,
                                        1000000000000000u,
                                        10000000000000000u,
                                        100000000000000000u,
                                        1000000000000000000u,
                                        10000000000000000000u};
    int e;
    double f = frexp(a, &e); /* a = f * 2^e, f in [0.5, 1) */
    if (e < -13 || e > 52) return false;
    uint64_t m = (uint64_t)ldexp(f, 53);
    int k = 53 - e; /* in [1, 66]: a is not integral */
    /* floor(log10(2^(e-1))): a's decimal exponent or one less */
    int x = (int)floor((e - 1) * 0.30102999566398120);
    dump_u128 q, p;
    for (int tries = 0;; tries++) {
        int s = 16 - x; /* in [1, 22] */
        if (tries > 3 || s < 1 || s > 22) return false;
        p = (dump_u128)m * ten_to[s > 19 ? 19 : s];
        if (s > 19) p *= ten_to[s - 19];
        q = p >> k;
        if (q < ten_to[16]) x--;
        else if (q >= ten_to[17]) x++;
        else break;
    }
    dump_u128 rest = p & (((dump_u128)1 << k) - 1), half = (dump_u128)1 << (k - 1);
    if (rest > half || (rest == half && (q & 1))) q++;
    if (q == ten_to[17]) { /* rounded up to a power of ten */
        q = ten_to[16];
        x++;
    }
    *digits = (uint64_t)q;
    *exp10 = x;
    return true;
}
#else
static bool real_digits(double a, uint64_t *digits, int *exp10) {
    (void)a, (void)digits, (void)exp10;
    return false;
}
#endif

/* "%.17g" in fixed notation from the 17 digits and the exponent x (in [-4, 16]): trailing
 * zeros and a bare point dropped, then jsonp_dtostr's ".0" when no point is left. */
static size_t fixed_text(char *out, bool neg, uint64_t digits, int x) {
    char d[17];
    put_digits_back(d + 17, digits);
    size_t nd = 17, o = 0;
    while (nd > 1 && d[nd - 1] == '0') nd--;
    if (neg) out[o++] = '-';
    if (x < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = -1; i > x; i--) out[o++] = '0';
        memcpy(out + o, d, nd);
        return o + nd;
    }
    size_t whole = (size_t)x + 1;
    memcpy(out + o, d, whole);
    o += whole;
    out[o++] = '.';
    if (nd > whole) {
        memcpy(out + o, d + whole, nd - whole);
        return o + nd - whole;
    }
    out[o++] = '0';
    return o;
}

/* printf's "%.17g" turned into jansson's text: the locale's decimal point becomes '.', the
 * exponent loses its '+' and leading zeros, and ".0" is added when there is neither point
 * nor exponent. For what real_text does not write itself (exponents below -4 or above 16). */
static size_t printf_real_text(char *out, double v) {
    char s[64];
    snprintf(s, sizeof s, "%.17g", v);
    size_t o = 0;
    bool point = false, exponent = false, lead = false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '+') continue;
        if (lead && c == '0') continue;
        lead = lead && c == '-';
        if ((c >= '0' && c <= '9') || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            if (c == 'e') exponent = lead = true;
            out[o++] = (char)c;
        } else if (!point) { /* the decimal point, one byte or more */
            point = true;
            out[o++] = '.';
        }
    }
    if (!point && !exponent) {
        out[o++] = '.';
        out[o++] = '0';
    }
    return o;
}

/* What jansson writes for a real (jsonp_dtostr, precision 17). Whole numbers below 10^17 are
 * their digits and ".0"; other values in fixed notation come from real_digits; the rest from
 * printf. jansson refuses NaN and infinities, so v is finite. out holds 40 bytes. */
static size_t real_text(char *out, double v) {
    bool neg = signbit(v);
    double a = fabs(v);
    if (a < 1e17 && a == (double)(uint64_t)a) {
        char tmp[24], *e = tmp + sizeof tmp;
        char *s = put_digits_back(e, (uint64_t)a);
        if (neg) *--s = '-';
        size_t n = (size_t)(e - s);
        memcpy(out, s, n);
        memcpy(out + n, ".0", 2);
        return n + 2;
    }
    uint64_t digits;
    int x;
    if (real_digits(a, &digits, &x) && x >= -4 && x < 17) return fixed_text(out, neg, digits, x);
    return printf_real_text(out, v);
}

static int dump_scalar(dumper *d, const json_t *v) {
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return dump_string(d, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return dump_put(d->out, num, integer_text(num, json_integer_value(v)));
    case JSON_REAL:
        return dump_put(d->out, num, real_text(num, json_real_value(v)));
    case JSON_TRUE:
        return dump_put(d->out, "true", 4);
    case JSON_FALSE:
        return dump_put(d->out, "false", 5);
    case JSON_NULL:
        return dump_put(d->out, "null", 4);
    default:
        return -1;
    }
}

static int dump_push(dumper *d, dump_frame f) {
    if (d->depth == d->stack_cap) {
        size_t cap = d->stack_cap * 2;
        dump_frame *s = d->stack == d->inline_stack ? malloc(cap * sizeof *s) : realloc(d->stack, cap * sizeof *s);
        if (!s) return -1;
        if (d->stack == d->inline_stack) memcpy(s, d->inline_stack, sizeof d->inline_stack);
        d->stack = s;
        d->stack_cap = cap;
    }
    if (f.c == d->anchor) return -1; /* a container inside itself: jansson fails too */
    if (!(d->depth & (d->depth - 1))) {
        d->anchor = f.c;
        d->anchor_depth = d->depth;
    }
    d->stack[d->depth++] = f;
    return 0;
}

static void dump_pop(dumper *d) {
    d->depth--;
    if (d->anchor && d->depth <= d->anchor_depth) d->anchor = NULL;
}

/* An object member's key and the separator after it. */
static int dump_key(dumper *d, void *iter) {
    if (dump_string(d, json_object_iter_key(iter), json_object_iter_key_len(iter)) < 0) return -1;
    return dump_put(d->out, d->compact ? ":" : ": ", d->compact ? 1 : 2);
}

/* Writes the opening of container c. Returns 1 with *first its first value to write, 0 when
 * it was empty (and is closed), -1 on error. */
static int dump_open(dumper *d, const json_t *c, const json_t **first) {
    if (json_is_object(c)) {
        void *iter = json_object_iter((json_t *)c);
        if (!iter) return dump_put(d->out, "{}", 2);
        if (dump_push(d, (dump_frame){.c = c, .iter = iter, .object = true}) < 0 || dump_put(d->out, "{", 1) < 0 ||
            dump_key(d, iter) < 0)
            return -1;
        *first = json_object_iter_value(iter);
        return 1;
    }
    size_t n = json_array_size(c);
    if (!n) return dump_put(d->out, "[]", 2);
    if (dump_push(d, (dump_frame){.c = c, .n = n}) < 0 || dump_put(d->out, "[", 1) < 0) return -1;
    *first = json_array_get(c, 0);
    return 1;
}

/* After a value: writes the separator (and key) before the next value of the innermost open
 * container, or closes containers. 1 with *next to write, 0 when the tree is done, -1. */
static int dump_advance(dumper *d, const json_t **next) {
    while (d->depth) {
        dump_frame *f = &d->stack[d->depth - 1];
        bool more;
        if (f->object) {
            f->iter = json_object_iter_next((json_t *)f->c, f->iter);
            more = f->iter != NULL;
        } else {
            more = ++f->i < f->n;
        }
        if (more) {
            if (dump_put(d->out, d->compact ? "," : ", ", d->compact ? 1 : 2) < 0) return -1;
            if (f->object && dump_key(d, f->iter) < 0) return -1;
            *next = f->object ? json_object_iter_value(f->iter) : json_array_get(f->c, f->i);
            return 1;
        }
        if (dump_put(d->out, f->object ? "}" : "]", 1) < 0) return -1;
        dump_pop(d);
    }
    return 0;
}

static int dump_tree(dumper *d, const json_t *v) {
    for (;;) {
        if (!v) return -1;
        if (json_is_object(v) || json_is_array(v)) {
            int rc = dump_open(d, v, &v);
            if (rc < 0) return -1;
            if (rc) continue;
        } else if (dump_scalar(d, v) < 0) {
            return -1;
        }
        int rc = dump_advance(d, &v);
        if (rc <= 0) return rc;
    }
}

/* jansson's own text for a value holding a string that is not UTF-8, appended to out. */
static int dump_fallback(cd_buf *out, const json_t *value, bool compact) {
    char *s = compact ? cd_json_dumps_compact_reference(value, JSON_ENCODE_ANY) : cd_json_dumps_reference(value);
    int rc = s && cd_buf_append_str(out, s) == 0 ? 0 : -1;
    free(s);
    return rc;
}

int cd_json_write(cd_buf *out, const json_t *value, bool compact) {
    size_t start = out->len;
    dumper d = {.out = out, .compact = compact, .stack_cap = DUMP_INLINE_STACK};
    d.stack = d.inline_stack;
    int rc = dump_tree(&d, value);
    if (d.stack != d.inline_stack) free(d.stack);
    if (rc == 0) {
        out->data[out->len] = '\0';
        return 0;
    }
    out->len = start;
    if (out->data) out->data[start] = '\0';
    return d.not_utf8 ? dump_fallback(out, value, compact) : -1;
}

/* The buffer's text as a string of its own. Texts may be kept (history entries, /object_info),
 * so a quarter or more unused is given back: in place for a small buffer; a large one is copied
 * out, since shrinking it with realloc hands its tail back to the system and drops malloc's
 * mmap threshold below the next large dump's buffer, which then maps fresh pages every time. */
static char *dump_take(cd_buf *b) {
    char *p = NULL;
    if (b->cap > 4096 && b->cap - b->len > b->len / 4) {
        if (b->cap <= 65536) {
            p = realloc(b->data, b->len + 1);
        } else if ((p = malloc(b->len + 1))) {
            memcpy(p, b->data, b->len + 1);
            free(b->data);
        }
    }
    if (!p) return cd_buf_take(b);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

char *cd_json_dumps(const json_t *value) {
    cd_buf b = CD_BUF_INIT;
    if (cd_json_write(&b, value, false) < 0) {
        cd_buf_free(&b);
        return NULL;
    }
    return dump_take(&b);
}

char *cd_json_dumps_compact(const json_t *value, size_t flags) {
    if (flags & ~(size_t)JSON_ENCODE_ANY) return cd_json_dumps_compact_reference(value, flags);
    if (!(flags & JSON_ENCODE_ANY) && !json_is_object(value) && !json_is_array(value)) return NULL;
    cd_buf b = CD_BUF_INIT;
    if (cd_json_write(&b, value, true) < 0) {
        cd_buf_free(&b);
        return NULL;
    }
    return dump_take(&b);
}
