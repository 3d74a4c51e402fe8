/* Python str semantics over UTF-8; see text_util.h. */
#include "nodes/text_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ---- */

void cd_text_buf_init(cd_text_buf *b) { memset(b, 0, sizeof *b); }

void cd_text_buf_free(cd_text_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int reserve(cd_text_buf *b, size_t extra) {
    if (b->oom) return -1;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void cd_text_append(cd_text_buf *b, const char *s, size_t n) {
    if (reserve(b, n) < 0) return;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void cd_text_puts(cd_text_buf *b, const char *s) { cd_text_append(b, s, strlen(s)); }

void cd_text_printf(cd_text_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0 && reserve(b, (size_t)n) == 0) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void cd_text_putc(cd_text_buf *b, uint32_t cp) {
    char o[4];
    size_t n;
    if (cp & CD_TEXT_RAW) {
        o[0] = (char)(cp & 0xFF);
        n = 1;
    } else if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    cd_text_append(b, o, n);
}

cd_value *cd_text_buf_value(cd_text_buf *b) {
    cd_value *v = b->oom ? NULL : cd_value_stringn(b->data ? b->data : "", b->len);
    cd_text_buf_free(b);
    return v;
}

/* ---- decoding ---- */

uint32_t cd_text_next(const char *s, size_t len, size_t *i) {
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = len - *i;
    unsigned c = p[0];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    size_t n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        (*i)++;
        return CD_TEXT_RAW | c;
    }
    if (left < n) {
        (*i)++;
        return CD_TEXT_RAW | c;
    }
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80) {
            (*i)++;
            return CD_TEXT_RAW | c;
        }
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        (*i)++;
        return CD_TEXT_RAW | c;
    }
    *i += n;
    return cp;
}

size_t cd_text_length(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; n++) cd_text_next(s, len, &i);
    return n;
}

size_t cd_text_offset(const char *s, size_t len, size_t index) {
    size_t i = 0;
    for (size_t k = 0; k < index && i < len; k++) cd_text_next(s, len, &i);
    return i;
}

/* Python's PySlice_AdjustIndices for step 1. */
void cd_text_slice(const char *s, size_t len, int64_t start, int64_t stop, size_t *from, size_t *to) {
    int64_t n = (int64_t)cd_text_length(s, len);
    if (start < 0) {
        start = start < -n ? 0 : start + n;
    } else if (start > n) {
        start = n;
    }
    if (stop < 0) {
        stop = stop < -n ? 0 : stop + n;
    } else if (stop > n) {
        stop = n;
    }
    if (stop < start) stop = start;
    *from = cd_text_offset(s, len, (size_t)start);
    *to = *from + cd_text_offset(s + *from, len - *from, (size_t)(stop - start));
}

/* ---- Unicode properties ---- */

static const cd_uc_map *find_map(uint32_t cp) {
    size_t lo = 0, hi = cd_uc_n_maps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cd_uc_maps[mid].cp == cp) return &cd_uc_maps[mid];
        if (cd_uc_maps[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int in_ranges(const cd_uc_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].first) hi = mid;
        else if (cp > r[mid].last) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int is_cased(uint32_t cp) { return !(cp & CD_TEXT_RAW) && in_ranges(cd_uc_cased, cd_uc_n_cased, cp); }
static int is_case_ignorable(uint32_t cp) {
    return !(cp & CD_TEXT_RAW) && in_ranges(cd_uc_case_ignorable, cd_uc_n_case_ignorable, cp);
}

int cd_text_is_space(uint32_t cp) {
    for (size_t i = 0; i < cd_uc_n_spaces; i++)
        if (cd_uc_spaces[i] == cp) return 1;
    return 0;
}

typedef enum { MAP_UPPER, MAP_LOWER, MAP_TITLE } map_kind;

static void put_mapped(cd_text_buf *out, uint32_t cp, map_kind kind) {
    const cd_uc_map *m = (cp & CD_TEXT_RAW) ? NULL : find_map(cp);
    if (!m) {
        cd_text_putc(out, cp);
        return;
    }
    uint32_t v = kind == MAP_UPPER ? m->upper : kind == MAP_LOWER ? m->lower : m->title;
    if (v < CD_UC_MULTI) {
        cd_text_putc(out, v);
        return;
    }
    const uint32_t *seq = cd_uc_multi[v - CD_UC_MULTI];
    for (int k = 0; k < 3 && seq[k]; k++) cd_text_putc(out, seq[k]);
}

/* The string as code points (caller frees); *n gets the count. */
static uint32_t *decode_all(const char *s, size_t len, size_t *n) {
    uint32_t *cps = malloc((len ? len : 1) * sizeof *cps);
    *n = 0;
    if (!cps) return NULL;
    for (size_t i = 0; i < len;) cps[(*n)++] = cd_text_next(s, len, &i);
    return cps;
}

/* CPython's lower_ucs4: a capital sigma becomes final sigma (U+03C2) at the end of a word:
 * after a cased letter (case-ignorable characters between) and not before one. */
static void put_lower_at(cd_text_buf *out, const uint32_t *cps, size_t n, size_t i) {
    if (cps[i] != 0x3A3) {
        put_mapped(out, cps[i], MAP_LOWER);
        return;
    }
    size_t j = i;
    while (j > 0 && is_case_ignorable(cps[j - 1])) j--;
    int final = j > 0 && is_cased(cps[j - 1]);
    if (final) {
        size_t k = i + 1;
        while (k < n && is_case_ignorable(cps[k])) k++;
        final = k == n || !is_cased(cps[k]);
    }
    cd_text_putc(out, final ? 0x3C2 : 0x3C3);
}

void cd_text_upper(cd_text_buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len;) put_mapped(out, cd_text_next(s, len, &i), MAP_UPPER);
}

void cd_text_lower(cd_text_buf *out, const char *s, size_t len) {
    size_t n;
    uint32_t *cps = decode_all(s, len, &n);
    if (!cps) {
        out->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) put_lower_at(out, cps, n, i);
    free(cps);
}

void cd_text_title(cd_text_buf *out, const char *s, size_t len) {
    size_t n;
    uint32_t *cps = decode_all(s, len, &n);
    if (!cps) {
        out->oom = 1;
        return;
    }
    int previous_is_cased = 0;
    for (size_t i = 0; i < n; i++) {
        if (previous_is_cased) put_lower_at(out, cps, n, i);
        else put_mapped(out, cps[i], MAP_TITLE);
        previous_is_cased = is_cased(cps[i]);
    }
    free(cps);
}

/* Python 3.8+: the first character in title case, the rest lower case. */
void cd_text_capitalize(cd_text_buf *out, const char *s, size_t len) {
    size_t n;
    uint32_t *cps = decode_all(s, len, &n);
    if (!cps) {
        out->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (i == 0) put_mapped(out, cps[i], MAP_TITLE);
        else put_lower_at(out, cps, n, i);
    }
    free(cps);
}

void cd_text_strip(const char *s, size_t len, int left, int right, size_t *from, size_t *to) {
    size_t a = 0, b = len;
    if (left) {
        while (a < len) {
            size_t i = a;
            if (!cd_text_is_space(cd_text_next(s, len, &i))) break;
            a = i;
        }
    }
    if (right) {
        size_t i = a, end = a;
        while (i < len)
            if (!cd_text_is_space(cd_text_next(s, len, &i))) end = i;
        b = end;
    }
    *from = a;
    *to = b;
}

void cd_text_replace(cd_text_buf *out, const char *s, size_t len, const char *find, size_t flen, const char *repl,
                     size_t rlen) {
    if (flen == 0) {
        cd_text_append(out, repl, rlen);
        for (size_t i = 0; i < len;) {
            size_t start = i;
            cd_text_next(s, len, &i);
            cd_text_append(out, s + start, i - start);
            cd_text_append(out, repl, rlen);
        }
        return;
    }
    size_t i = 0;
    while (i < len) {
        const char *hit = len - i >= flen ? memmem(s + i, len - i, find, flen) : NULL;
        if (!hit) break;
        size_t at = (size_t)(hit - s);
        cd_text_append(out, s + i, at - i);
        cd_text_append(out, repl, rlen);
        i = at + flen;
    }
    cd_text_append(out, s + i, len - i);
}

int cd_text_contains(const char *hay, size_t hlen, const char *needle, size_t nlen) {
    if (nlen == 0) return 1;
    return nlen <= hlen && memmem(hay, hlen, needle, nlen) != NULL;
}

/* ---- numbers ---- */

/* CPython's float_repr_style "short": the shortest digits that round-trip, in positional
 * notation when the decimal exponent is in [-4, 16), else in scientific notation. */
void cd_text_float_repr(double f, char out[32]) {
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        strcpy(out, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp is [-]d[.ddd]e(+|-)xx */
    const char *p = tmp;
    int neg = *p == '-';
    if (neg) p++;
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int exp = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    int decpt = exp + 1;
    char *o = out;
    if (neg) *o++ = '-';
    if (decpt > 16 || decpt < -3) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        int e = exp < 0 ? -exp : exp; /* at most 324 */
        *o++ = 'e';
        *o++ = exp < 0 ? '-' : '+';
        if (e >= 100) *o++ = (char)('0' + e / 100);
        *o++ = (char)('0' + e / 10 % 10);
        *o++ = (char)('0' + e % 10);
        *o = '\0';
        return;
    }
    if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int k = 0; k < -decpt; k++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else if (decpt >= nd) {
        memcpy(o, digits, (size_t)nd);
        o += nd;
        for (int k = nd; k < decpt; k++) *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    } else {
        memcpy(o, digits, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(nd - decpt));
        o += nd - decpt;
    }
    *o = '\0';
}

const char *cd_text_py_type(const cd_value *v) {
    switch (cd_value_kind_of(v)) {
    case CD_VALUE_NONE: return "NoneType";
    case CD_VALUE_INT: return "int";
    case CD_VALUE_FLOAT: return "float";
    case CD_VALUE_BOOL: return "bool";
    case CD_VALUE_STRING: return "str";
    case CD_VALUE_JSON: {
        const char *t = cd_value_json_text(v);
        return t && t[0] == '{' ? "dict" : "list";
    }
    case CD_VALUE_LIST: return "list";
    case CD_VALUE_LINK: return "list";
    case CD_VALUE_OPAQUE: return cd_value_opaque_type(v);
    case CD_VALUE_BLOCKER: return "ExecutionBlocker";
    case CD_VALUE_TENSOR: return "Tensor";
    }
    return "object";
}
