/* Python `re` patterns translated to POSIX ERE; see pyregex.h for what is translated how. */
#include "nodes/pyregex.h"

#include <limits.h>
#include <locale.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/text_util.h"

struct cd_pyre {
    regex_t re;
    int compiled;
    locale_t loc; /* C.UTF-8 for this thread while compiling and matching; 0 if unavailable */
    int groups;   /* Python's groups */
    int *map;     /* Python group -> POSIX subexpression, [groups + 1] */
    char **names; /* group names, [groups + 1], NULL where unnamed */
    regmatch_t *pm;
    size_t npm;
    regex_t re_empty; /* for empty strings, when the pattern has \B (see parse_escape) */
    int has_empty;
};

/* The most characters a non-ASCII range may list (see pyregex.h); a whole plane fits. */
#define MAX_EXPANDED 70000
/* glibc's RE_DUP_MAX */
#define MAX_REPEAT 0x7fff

enum { CLS_DIGIT = 1, CLS_WORD = 2, CLS_SPACE = 4 };

typedef struct {
    uint32_t lo, hi;
} span;

typedef struct {
    span *r;
    size_t n, cap;
    unsigned pos_cls, neg_cls;
    int negate;
} cset;

typedef struct {
    const char *p;
    size_t len, i;
    unsigned flags;
    int verbose;
    cd_text_buf out;
    int groups, posix;
    int *map;
    char **names;
    unsigned char *closed;
    size_t cap; /* of map, names, closed */
    struct {
        int group; /* 0 for a hidden group */
        size_t pos;
    } *stack;
    size_t depth, stack_cap;
    int can_quantify, after_quant;
    int has_nonboundary, empty_variant;
    char unsup[200]; /* the first construct POSIX cannot express, if any */
    int rc;
    char *err;
    size_t errlen;
} tr;

static int fail(tr *t, int rc, size_t pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(tr *t, int rc, size_t pos, const char *fmt, ...) {
    if (t->rc) return -1;
    t->rc = rc;
    if (t->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->err, t->errlen, fmt, ap);
        va_end(ap);
        size_t n = strlen(t->err);
        if (rc == CD_PYRE_INVALID && n < t->errlen)
            snprintf(t->err + n, t->errlen - n, " at position %zu", cd_text_length(t->p, pos < t->len ? pos : t->len));
    }
    return -1;
}

static int oom(tr *t) { return fail(t, CD_PYRE_NOMEM, 0, "out of memory"); }

/* Notes a construct POSIX cannot express and goes on parsing: if the pattern is invalid
 * further on, Python raises re.error for it, and so must the translation. */
static int unsupported(tr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int unsupported(tr *t, const char *fmt, ...) {
    if (!t->unsup[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->unsup, sizeof t->unsup, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static int peek(const tr *t) { return t->i < t->len ? (unsigned char)t->p[t->i] : -1; }

static uint32_t next_cp(tr *t) { return cd_text_next(t->p, t->len, &t->i); }

static void put(tr *t, const char *s) { cd_text_puts(&t->out, s); }

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_oct(int c) { return c >= '0' && c <= '7'; }
static int is_ascii_letter(uint32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* ---- groups ---- */

static int group_slot(tr *t) {
    if ((size_t)t->groups + 1 < t->cap) return 0;
    size_t cap = t->cap ? t->cap * 2 : 16;
    int *map = realloc(t->map, cap * sizeof *map);
    if (!map) return oom(t);
    t->map = map;
    char **names = realloc(t->names, cap * sizeof *names);
    if (!names) return oom(t);
    t->names = names;
    unsigned char *closed = realloc(t->closed, cap);
    if (!closed) return oom(t);
    t->closed = closed;
    for (size_t k = t->cap; k < cap; k++) {
        map[k] = 0;
        names[k] = NULL;
        closed[k] = 0;
    }
    t->cap = cap;
    return 0;
}

static int push_group(tr *t, int group, size_t pos) {
    if (t->depth == t->stack_cap) {
        size_t cap = t->stack_cap ? t->stack_cap * 2 : 8;
        void *s = realloc(t->stack, cap * sizeof *t->stack);
        if (!s) return oom(t);
        t->stack = s;
        t->stack_cap = cap;
    }
    t->stack[t->depth].group = group;
    t->stack[t->depth].pos = pos;
    t->depth++;
    return 0;
}

/* Opens a POSIX group; a capturing one gets the next Python group number. */
static int open_group(tr *t, int capturing, char *name, size_t pos) {
    t->posix++;
    int g = 0;
    if (capturing) {
        if (group_slot(t) < 0) {
            free(name);
            return -1;
        }
        g = ++t->groups;
        t->map[g] = t->posix;
        t->names[g] = name;
        t->closed[g] = 0;
    } else {
        free(name);
    }
    put(t, "(");
    t->can_quantify = 0;
    t->after_quant = 0;
    return push_group(t, g, pos);
}

/* A group only the translation needs (an alternation); it takes a POSIX number. */
static void open_hidden(tr *t) {
    t->posix++;
    put(t, "(");
}

/* ---- literals and sets ---- */

static int emit_literal(tr *t, uint32_t cp, size_t pos) {
    (void)pos;
    if (cp == 0) unsupported(t, "a NUL character cannot be matched");
    else if (cp >= 0xD800 && cp <= 0xDFFF) unsupported(t, "a lone surrogate cannot be matched");
    else if (cp < 0x80 && strchr(".[]()*+?{}|^$\\", (int)cp)) {
        char e[3] = {'\\', (char)cp, 0};
        put(t, e);
    } else {
        cd_text_putc(&t->out, cp);
    }
    t->can_quantify = 1;
    t->after_quant = 0;
    return 0;
}

static int set_add(tr *t, cset *s, uint32_t lo, uint32_t hi) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        span *r = realloc(s->r, cap * sizeof *r);
        if (!r) return oom(t);
        s->r = r;
        s->cap = cap;
    }
    s->r[s->n].lo = lo;
    s->r[s->n].hi = hi;
    s->n++;
    return 0;
}

static int set_has_literal(const cset *s, uint32_t cp) {
    for (size_t k = 0; k < s->n; k++)
        if (s->r[k].lo <= cp && cp <= s->r[k].hi) return 1;
    return 0;
}

/* Whether the set (its positive part) contains "\n". */
static int set_has_newline(const cset *s) { return (s->pos_cls & CLS_SPACE) || set_has_literal(s, '\n'); }

static void put_spaces(cd_text_buf *b) {
    for (size_t k = 0; k < cd_uc_n_spaces; k++) cd_text_putc(b, cd_uc_spaces[k]);
}

/* The inside of a POSIX bracket expression for these ranges and classes. POSIX gives "]",
 * "-", "^" and "[" meanings by position, so they are placed where they are literal: "]"
 * first, "[" and "^" late, "-" last. Returns the body in *body; *caret_only when the body is
 * just "^" (no bracket can say that on its own). */
static int bracket_body(tr *t, const span *r, size_t n, unsigned cls, cd_text_buf *body, int *caret_only, size_t pos) {
    int rb = 0, dash = 0, lb = 0, caret = 0;
    cd_text_buf mid;
    cd_text_buf_init(&mid);
    size_t expanded = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t lo = r[k].lo, hi = r[k].hi;
        if (lo < 0x80) {
            uint32_t ahi = hi < 0x80 ? hi : 0x7F;
            int special_ends = strchr("]-[^", (int)lo) || strchr("]-[^", (int)ahi);
            if (lo != ahi && !special_ends && lo != 0) {
                cd_text_putc(&mid, lo);
                cd_text_putc(&mid, '-');
                cd_text_putc(&mid, ahi);
            } else {
                for (uint32_t c = lo; c <= ahi; c++) {
                    if (c == ']') rb = 1;
                    else if (c == '-') dash = 1;
                    else if (c == '[') lb = 1;
                    else if (c == '^') caret = 1;
                    else if (c != 0) cd_text_putc(&mid, c); /* NUL never occurs in a C string */
                }
            }
            if (hi < 0x80) continue;
            lo = 0x80;
        }
        expanded += hi - lo + 1;
        if (expanded > MAX_EXPANDED) {
            unsupported(t, "a character range too wide for POSIX regular expressions");
            continue;
        }
        for (uint32_t c = lo; c <= hi; c++)
            if (c < 0xD800 || c > 0xDFFF) cd_text_putc(&mid, c);
    }
    if (cls & CLS_DIGIT) cd_text_puts(&mid, "0-9");
    if (cls & CLS_WORD) cd_text_puts(&mid, "[:alnum:]_");
    if (cls & CLS_SPACE) put_spaces(&mid);
    if (mid.oom) {
        cd_text_buf_free(&mid);
        return oom(t);
    }
    *caret_only = 0;
    if (rb) cd_text_puts(body, "]");
    cd_text_append(body, mid.data ? mid.data : "", mid.len);
    if (lb) cd_text_puts(body, "[");
    if (!rb && !mid.len && !lb && caret) {
        if (dash) cd_text_puts(body, "-^");
        else *caret_only = 1;
    } else {
        if (caret) cd_text_puts(body, "^");
        if (dash) cd_text_puts(body, "-");
    }
    cd_text_buf_free(&mid);
    if (body->oom) return oom(t);
    if (!body->len && !*caret_only) unsupported(t, "a character set that matches nothing");
    return 0;
}

/* Emits [body] or [^body]. */
static int emit_bracket(tr *t, const span *r, size_t n, unsigned cls, int negate, size_t pos) {
    cd_text_buf body;
    cd_text_buf_init(&body);
    int caret_only = 0;
    if (bracket_body(t, r, n, cls, &body, &caret_only, pos) < 0) {
        cd_text_buf_free(&body);
        return -1;
    }
    if (caret_only) put(t, negate ? "[^^]" : "\\^");
    else {
        put(t, negate ? "[^" : "[");
        cd_text_append(&t->out, body.data, body.len);
        put(t, "]");
    }
    cd_text_buf_free(&body);
    return 0;
}

/* The complement of one class, as one bracket. */
static int emit_negated_class(tr *t, unsigned cls, size_t pos) { return emit_bracket(t, NULL, 0, cls, 1, pos); }

/* Python's [^...] that contains \D, \W or \S is an intersection, which POSIX cannot write;
 * the common cases are computed into a plain set ([^\S\n], [^\W\d_], [^\D5]). */
static int emit_negated_with_complements(tr *t, const cset *s, size_t pos) {
    unsigned neg = s->neg_cls;
    t->can_quantify = 1;
    t->after_quant = 0;
    if (neg != CLS_DIGIT && neg != CLS_WORD && neg != CLS_SPACE)
        return unsupported(t, "a negated set with several complemented classes");
    cset keep = {0};
    int rc = 0;
    if (neg == CLS_SPACE || neg == CLS_DIGIT) {
        /* the characters of the class that the rest of the set does not name */
        for (size_t k = 0; k < (neg == CLS_SPACE ? cd_uc_n_spaces : 10) && rc == 0; k++) {
            uint32_t c = neg == CLS_SPACE ? cd_uc_spaces[k] : (uint32_t)('0' + k);
            int named = set_has_literal(s, c) || ((s->pos_cls & CLS_SPACE) && cd_text_is_space(c)) ||
                        ((s->pos_cls & (CLS_DIGIT | CLS_WORD)) && c >= '0' && c <= '9');
            if (!named) rc = set_add(t, &keep, c, c);
        }
        if (rc == 0) rc = emit_bracket(t, keep.r, keep.n, 0, 0, pos);
        free(keep.r);
        if (rc == 0) {
            t->can_quantify = 1;
            t->after_quant = 0;
        }
        return rc;
    }
    /* word characters minus what the set names: only digits and "_" can be taken out */
    if (s->pos_cls & CLS_WORD) return unsupported(t, "a character set that matches nothing");
    int no_underscore = set_has_literal(s, '_');
    int ndigits = 0;
    for (int c = '0'; c <= '9'; c++) ndigits += (s->pos_cls & CLS_DIGIT) || set_has_literal(s, (uint32_t)c);
    for (size_t k = 0; k < s->n; k++)
        for (uint32_t c = s->r[k].lo; c <= s->r[k].hi; c++) {
            if (c >= 0x80 || is_ascii_letter(c))
                return unsupported(t, "a negated set of \\W with letters in it");
            if (c == 0x7F) break;
        }
    if (ndigits != 0 && ndigits != 10)
        return unsupported(t, "a negated set of \\W with some of the digits in it");
    put(t, ndigits ? "[[:alpha:]" : "[[:alnum:]");
    put(t, no_underscore ? "]" : "_]");
    t->can_quantify = 1;
    t->after_quant = 0;
    return 0;
}

/* Emits a parsed set. Under REG_NEWLINE (MULTILINE) a POSIX negated list never matches "\n",
 * while Python's does unless the set names it: such sets get a "|\n" alternative. */
static int emit_set(tr *t, const cset *s, size_t pos) {
    int nl_mode = (t->flags & CD_PYRE_MULTILINE) != 0;
    if (s->negate) {
        if (s->neg_cls) return emit_negated_with_complements(t, s, pos);
        int wrap = nl_mode && !set_has_newline(s);
        if (wrap) open_hidden(t);
        if (emit_bracket(t, s->r, s->n, s->pos_cls, 1, pos) < 0) return -1;
        if (wrap) put(t, "|\n)");
    } else {
        int alts = (s->n || s->pos_cls ? 1 : 0);
        for (unsigned c = 1; c <= CLS_SPACE; c <<= 1) alts += (s->neg_cls & c) != 0;
        /* the complements of \d and \w contain "\n", the complement of \s does not */
        int nl_alt = nl_mode && (s->neg_cls & (CLS_DIGIT | CLS_WORD)) && !set_has_newline(s);
        int group = alts > 1 || nl_alt;
        if (group) open_hidden(t);
        int first = 1;
        if (s->n || s->pos_cls) {
            if (emit_bracket(t, s->r, s->n, s->pos_cls, 0, pos) < 0) return -1;
            first = 0;
        }
        for (unsigned c = 1; c <= CLS_SPACE; c <<= 1) {
            if (!(s->neg_cls & c)) continue;
            if (!first) put(t, "|");
            if (emit_negated_class(t, c, pos) < 0) return -1;
            first = 0;
        }
        if (nl_alt) put(t, "|\n");
        if (group) put(t, ")");
    }
    t->can_quantify = 1;
    t->after_quant = 0;
    return 0;
}

/* Reads exactly n hex digits (Python's \xhh, \uhhhh, \Uhhhhhhhh). */
static int read_hex(tr *t, int n, char which, uint32_t *out, size_t pos) {
    uint32_t v = 0;
    for (int k = 0; k < n; k++) {
        int c = peek(t);
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return fail(t, CD_PYRE_INVALID, pos, "incomplete escape \\%c", which);
        v = v * 16 + (uint32_t)d;
        t->i++;
    }
    if (v > 0x10FFFF) return fail(t, CD_PYRE_INVALID, pos, "bad escape \\%c", which);
    *out = v;
    return 0;
}

typedef struct {
    int is_class; /* then cls and neg */
    unsigned cls;
    int neg;
    uint32_t cp;
} item;

/* The escapes both inside and outside sets: classes and character escapes. Returns 1 when
 * it handled the escape, 0 when the caller must, -1 on error. */
static int common_escape(tr *t, uint32_t c, item *it, size_t pos) {
    memset(it, 0, sizeof *it);
    switch (c) {
    case 'd': case 'D': it->is_class = 1; it->cls = CLS_DIGIT; it->neg = c == 'D'; return 1;
    case 'w': case 'W': it->is_class = 1; it->cls = CLS_WORD; it->neg = c == 'W'; return 1;
    case 's': case 'S': it->is_class = 1; it->cls = CLS_SPACE; it->neg = c == 'S'; return 1;
    case 'n': it->cp = '\n'; return 1;
    case 't': it->cp = '\t'; return 1;
    case 'r': it->cp = '\r'; return 1;
    case 'f': it->cp = '\f'; return 1;
    case 'v': it->cp = '\v'; return 1;
    case 'a': it->cp = '\a'; return 1;
    case 'x': return read_hex(t, 2, 'x', &it->cp, pos) < 0 ? -1 : 1;
    case 'u': return read_hex(t, 4, 'u', &it->cp, pos) < 0 ? -1 : 1;
    case 'U': return read_hex(t, 8, 'U', &it->cp, pos) < 0 ? -1 : 1;
    case 'N':
        if (peek(t) != '{') return fail(t, CD_PYRE_INVALID, pos, "missing {");
        while (t->i < t->len && t->p[t->i] != '}') t->i++;
        if (t->i >= t->len) return fail(t, CD_PYRE_INVALID, pos, "missing }, unterminated name");
        t->i++;
        it->cp = 'N';
        unsupported(t, "\\N{...} named characters");
        return 1;
    default: return 0;
    }
}

/* An escape inside [...]. */
static int class_escape(tr *t, item *it, size_t pos) {
    if (t->i >= t->len) return fail(t, CD_PYRE_INVALID, pos, "bad escape (end of pattern)");
    uint32_t c = next_cp(t);
    int r = common_escape(t, c, it, pos);
    if (r) return r < 0 ? -1 : 0;
    if (c == 'b') {
        it->cp = '\b';
        return 0;
    }
    if (is_oct((int)c)) {
        uint32_t v = c - '0';
        for (int k = 0; k < 2 && is_oct(peek(t)); k++) v = v * 8 + (uint32_t)(t->p[t->i++] - '0');
        if (v > 0377) return fail(t, CD_PYRE_INVALID, pos, "octal escape value outside of range 0-0o377");
        it->cp = v;
        return 0;
    }
    if (is_digit((int)c) || is_ascii_letter(c)) return fail(t, CD_PYRE_INVALID, pos, "bad escape \\%c", (char)c);
    it->cp = c;
    return 0;
}

static int set_add_item(tr *t, cset *s, const item *it) {
    if (it->is_class) {
        if (it->neg) s->neg_cls |= it->cls;
        else s->pos_cls |= it->cls;
        return 0;
    }
    return set_add(t, s, it->cp, it->cp);
}

/* [...] after the "[". */
static int parse_set(tr *t, size_t start) {
    cset s = {0};
    if (peek(t) == '^') {
        s.negate = 1;
        t->i++;
    }
    int first = 1, rc = 0;
    for (;;) {
        if (t->i >= t->len) {
            rc = fail(t, CD_PYRE_INVALID, start, "unterminated character set");
            break;
        }
        size_t here = t->i;
        uint32_t c = next_cp(t);
        if (c == ']' && !first) break;
        first = 0;
        item a;
        if (c == '\\') {
            if ((rc = class_escape(t, &a, here)) < 0) break;
        } else {
            memset(&a, 0, sizeof a);
            a.cp = c;
        }
        if (peek(t) == '-') {
            t->i++;
            if (t->i >= t->len) {
                rc = fail(t, CD_PYRE_INVALID, start, "unterminated character set");
                break;
            }
            size_t there = t->i;
            uint32_t c2 = next_cp(t);
            if (c2 == ']') {
                item dash = {.cp = '-'};
                if ((rc = set_add_item(t, &s, &a)) < 0 || (rc = set_add_item(t, &s, &dash)) < 0) break;
                break;
            }
            item b;
            if (c2 == '\\') {
                if ((rc = class_escape(t, &b, there)) < 0) break;
            } else {
                memset(&b, 0, sizeof b);
                b.cp = c2;
            }
            if (a.is_class || b.is_class || b.cp < a.cp) {
                rc = fail(t, CD_PYRE_INVALID, here, "bad character range %.*s", (int)(t->i - here), t->p + here);
                break;
            }
            if ((rc = set_add(t, &s, a.cp, b.cp)) < 0) break;
        } else if ((rc = set_add_item(t, &s, &a)) < 0) {
            break;
        }
    }
    if (rc == 0) rc = emit_set(t, &s, start);
    free(s.r);
    return rc;
}

/* "." as Python means it. */
static void emit_dot(tr *t) {
    int ml = (t->flags & CD_PYRE_MULTILINE) != 0, all = (t->flags & CD_PYRE_DOTALL) != 0;
    if (ml && all) {
        open_hidden(t);
        put(t, ".|\n)");
    } else if (!ml && !all) {
        put(t, "[^\n]");
    } else {
        put(t, ".");
    }
    t->can_quantify = 1;
    t->after_quant = 0;
}

static int emit_class_item(tr *t, const item *it, size_t pos) {
    cset s = {0};
    if (it->neg) s.neg_cls = it->cls;
    else s.pos_cls = it->cls;
    return emit_set(t, &s, pos);
}

static int emit_backref(tr *t, int g, size_t pos) {
    if (!t->closed[g]) return fail(t, CD_PYRE_INVALID, pos, "cannot refer to an open group");
    if (t->map[g] > 9) {
        unsupported(t, "a back-reference to group %d (POSIX has \\1 to \\9)", g);
    } else {
        char e[4] = {'\\', (char)('0' + t->map[g]), 0};
        put(t, e);
    }
    t->can_quantify = 1;
    t->after_quant = 0;
    return 0;
}

static int anchor(tr *t, const char *text) {
    put(t, text);
    t->can_quantify = 0;
    t->after_quant = 0;
    return 0;
}

/* An escape outside sets, after the backslash. */
static int parse_escape(tr *t, size_t pos) {
    if (t->i >= t->len) return fail(t, CD_PYRE_INVALID, pos, "bad escape (end of pattern)");
    uint32_t c = next_cp(t);
    item it;
    int r = common_escape(t, c, &it, pos);
    if (r < 0) return -1;
    if (r) return it.is_class ? emit_class_item(t, &it, pos) : emit_literal(t, it.cp, pos);
    switch (c) {
    case 'b': return anchor(t, "\\b");
    case 'B':
        /* Python's \B never matches in an empty string, glibc's does: the variant compiled
         * for empty strings says "a boundary and not a boundary", which nothing matches. */
        t->has_nonboundary = 1;
        return anchor(t, t->empty_variant ? "\\b\\B" : "\\B");
    case 'A': return anchor(t, "\\`");
    case 'Z': return anchor(t, "\\'");
    case '0': {
        uint32_t v = 0;
        for (int k = 0; k < 2 && is_oct(peek(t)); k++) v = v * 8 + (uint32_t)(t->p[t->i++] - '0');
        return emit_literal(t, v, pos);
    }
    default: break;
    }
    if (is_digit((int)c)) {
        /* an octal escape of three digits, else a group reference (sre_parse's rule) */
        int d1 = (int)c, g = d1 - '0';
        if (is_digit(peek(t))) {
            int d2 = t->p[t->i++];
            if (is_oct(d1) && is_oct(d2) && is_oct(peek(t))) {
                int d3 = t->p[t->i++];
                uint32_t v = (uint32_t)((d1 - '0') * 64 + (d2 - '0') * 8 + (d3 - '0'));
                if (v > 0377) return fail(t, CD_PYRE_INVALID, pos, "octal escape value outside of range 0-0o377");
                return emit_literal(t, v, pos);
            }
            g = g * 10 + (d2 - '0');
        }
        if (g > t->groups) return fail(t, CD_PYRE_INVALID, pos, "invalid group reference %d", g);
        return emit_backref(t, g, pos);
    }
    if (is_ascii_letter(c)) return fail(t, CD_PYRE_INVALID, pos, "bad escape \\%c", (char)c);
    return emit_literal(t, c, pos);
}

static int is_name_char(int c, int first) {
    return c == '_' || is_ascii_letter((uint32_t)c) || c >= 0x80 || (!first && is_digit(c));
}

/* Reads a group name up to `end`; returns a copy (caller frees) or NULL after fail(). */
static char *read_name(tr *t, char end, size_t pos) {
    size_t start = t->i;
    while (t->i < t->len && t->p[t->i] != end) t->i++;
    if (t->i >= t->len)
        return fail(t, CD_PYRE_INVALID, pos, end == '>' ? "missing >, unterminated name" : "missing ), unterminated name"),
               NULL;
    size_t n = t->i - start;
    t->i++;
    if (!n) return fail(t, CD_PYRE_INVALID, pos, "missing group name"), NULL;
    for (size_t k = 0; k < n; k++)
        if (!is_name_char((unsigned char)t->p[start + k], k == 0))
            return fail(t, CD_PYRE_INVALID, pos, "bad character in group name '%.*s'", (int)n, t->p + start), NULL;
    char *name = strndup(t->p + start, n);
    if (!name) oom(t);
    return name;
}

static int find_name(const tr *t, const char *name) {
    for (int g = 1; g <= t->groups; g++)
        if (t->names[g] && !strcmp(t->names[g], name)) return g;
    return -1;
}

static const char FLAG_LETTERS[] = "aiLmsux";

/* After "(" */
static int parse_group(tr *t, size_t pos) {
    if (peek(t) != '?') return open_group(t, 1, NULL, pos);
    t->i++;
    int c = peek(t);
    if (c < 0) return fail(t, CD_PYRE_INVALID, pos, "unexpected end of pattern");
    t->i++;
    switch (c) {
    case ':': return open_group(t, 0, NULL, pos);
    case 'P': {
        int d = peek(t);
        if (d == '<') {
            t->i++;
            char *name = read_name(t, '>', pos);
            if (!name) return -1;
            if (find_name(t, name) >= 0) {
                free(name);
                return fail(t, CD_PYRE_INVALID, pos, "redefinition of group name");
            }
            return open_group(t, 1, name, pos);
        }
        if (d == '=') {
            t->i++;
            char *name = read_name(t, ')', pos);
            if (!name) return -1;
            int g = find_name(t, name);
            if (g < 0) {
                fail(t, CD_PYRE_INVALID, pos, "unknown group name '%s'", name);
                free(name);
                return -1;
            }
            free(name);
            return emit_backref(t, g, pos);
        }
        return fail(t, CD_PYRE_INVALID, pos, "unknown extension ?P%c", d < 0 ? ' ' : d);
    }
    /* what POSIX lacks is parsed as a plain group, to find later errors (see unsupported) */
    case '=': case '!':
        unsupported(t, "lookahead assertions (?%c...)", c);
        return open_group(t, 0, NULL, pos);
    case '<':
        if (peek(t) == '=' || peek(t) == '!') {
            unsupported(t, "lookbehind assertions (?<%c...)", peek(t));
            t->i++;
            return open_group(t, 0, NULL, pos);
        }
        return fail(t, CD_PYRE_INVALID, pos, "unknown extension ?<%c", peek(t) < 0 ? ' ' : peek(t));
    case '#':
        while (t->i < t->len && t->p[t->i] != ')') t->i++;
        if (t->i >= t->len) return fail(t, CD_PYRE_INVALID, pos, "missing ), unterminated comment");
        t->i++;
        return 0; /* a comment leaves the state as it was */
    case '>':
        unsupported(t, "atomic groups (?>...)");
        return open_group(t, 0, NULL, pos);
    case '(':
        while (t->i < t->len && t->p[t->i] != ')') t->i++;
        if (t->i >= t->len) return fail(t, CD_PYRE_INVALID, pos, "missing ), unterminated name");
        t->i++;
        unsupported(t, "conditional groups (?(...)...)");
        return open_group(t, 0, NULL, pos);
    default: break;
    }
    if ((c && strchr(FLAG_LETTERS, c)) || c == '-') {
        while (t->i < t->len && ((t->p[t->i] && strchr(FLAG_LETTERS, t->p[t->i])) || t->p[t->i] == '-')) t->i++;
        if (peek(t) == ')') return fail(t, CD_PYRE_INVALID, pos, "global flags not at the start of the expression");
        if (peek(t) == ':') {
            t->i++;
            unsupported(t, "scoped inline flags (?flags:...)");
            return open_group(t, 0, NULL, pos);
        }
        return fail(t, CD_PYRE_INVALID, pos, "missing -, : or )");
    }
    return fail(t, CD_PYRE_INVALID, pos, "unknown extension ?%c", c);
}

/* A repeat: "*", "+", "?" or a parsed "{m,n}" (text). */
static int quantifier(tr *t, const char *text, size_t pos) {
    if (t->after_quant) return fail(t, CD_PYRE_INVALID, pos, "multiple repeat");
    if (!t->can_quantify) return fail(t, CD_PYRE_INVALID, pos, "nothing to repeat");
    put(t, text);
    t->can_quantify = 0;
    t->after_quant = 1;
    if (peek(t) == '?') {
        t->i++;
        /* POSIX has only greedy repeats; whether a match exists does not depend on it */
        if (!(t->flags & CD_PYRE_LAZY_AS_GREEDY)) unsupported(t, "lazy repeats (*?, +?, ??, {m,n}?)");
    } else if (peek(t) == '+') {
        t->i++;
        unsupported(t, "possessive repeats (*+, ++, ?+, {m,n}+)");
    }
    return 0;
}

/* After "{": a repeat if it reads {m}, {m,}, {,n}, {m,n} or {,}; else a literal "{". */
static int parse_brace(tr *t, size_t pos) {
    size_t save = t->i;
    long lo = -1, hi = -1;
    int comma = 0, ok = 0;
    if (peek(t) != '}') {
        while (is_digit(peek(t))) {
            lo = (lo < 0 ? 0 : lo) * 10 + (t->p[t->i++] - '0');
            if (lo > 100000000) lo = 100000000;
        }
        if (peek(t) == ',') {
            comma = 1;
            t->i++;
            while (is_digit(peek(t))) {
                hi = (hi < 0 ? 0 : hi) * 10 + (t->p[t->i++] - '0');
                if (hi > 100000000) hi = 100000000;
            }
        }
        if (peek(t) == '}') {
            t->i++;
            ok = 1;
        }
    }
    if (!ok) {
        t->i = save;
        return emit_literal(t, '{', pos);
    }
    long min = lo < 0 ? 0 : lo;
    long max = comma ? hi : lo; /* -1: no maximum */
    if (max >= 0 && max < min) return fail(t, CD_PYRE_INVALID, pos, "min repeat greater than max repeat");
    if (min > MAX_REPEAT || max > MAX_REPEAT) {
        unsupported(t, "a repeat count above %d", MAX_REPEAT);
        return quantifier(t, "*", pos);
    }
    char text[32];
    if (max < 0) snprintf(text, sizeof text, "{%ld,}", min);
    else if (comma) snprintf(text, sizeof text, "{%ld,%ld}", min, max);
    else snprintf(text, sizeof text, "{%ld}", min);
    return quantifier(t, text, pos);
}

/* Leading (?imsx) groups: Python 3.11 takes global flags only at the start. */
static int leading_flags(tr *t) {
    for (;;) {
        if (t->len - t->i < 3 || t->p[t->i] != '(' || t->p[t->i + 1] != '?') return 0;
        size_t k = t->i + 2;
        while (k < t->len && strchr(FLAG_LETTERS, t->p[k]) && t->p[k]) k++;
        if (k == t->i + 2 || k >= t->len || t->p[k] != ')') return 0;
        int a = 0, u = 0;
        for (size_t j = t->i + 2; j < k; j++) {
            switch (t->p[j]) {
            case 'i': t->flags |= CD_PYRE_IGNORECASE; break;
            case 'm': t->flags |= CD_PYRE_MULTILINE; break;
            case 's': t->flags |= CD_PYRE_DOTALL; break;
            case 'x': t->verbose = 1; break;
            case 'u': u = 1; break;
            case 'a': a = 1; break;
            case 'L': return fail(t, CD_PYRE_INVALID, t->i, "bad inline flags: cannot use 'L' flag with a str pattern");
            }
        }
        if (a && u) return fail(t, CD_PYRE_INVALID, t->i, "bad inline flags: flags 'a', 'u' and 'L' are incompatible");
        if (a) unsupported(t, "the ASCII flag (?a)");
        t->i = k + 1;
    }
}

static int translate(tr *t) {
    if (leading_flags(t) < 0) return -1;
    while (t->i < t->len && !t->rc) {
        if (t->verbose) {
            int c = peek(t);
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
                t->i++;
                continue;
            }
            if (c == '#') {
                while (t->i < t->len && t->p[t->i] != '\n') t->i++;
                continue;
            }
        }
        size_t pos = t->i;
        uint32_t c = next_cp(t);
        int rc = 0;
        switch (c) {
        case '(': rc = parse_group(t, pos); break;
        case ')':
            if (!t->depth) return fail(t, CD_PYRE_INVALID, pos, "unbalanced parenthesis");
            t->depth--;
            if (t->stack[t->depth].group) t->closed[t->stack[t->depth].group] = 1;
            put(t, ")");
            t->can_quantify = 1;
            t->after_quant = 0;
            break;
        case '|': rc = anchor(t, "|"); break;
        case '[': rc = parse_set(t, pos); break;
        case '.': emit_dot(t); break;
        /* Without REG_NEWLINE, glibc still lets a ^ or $ that is not at the edge of the
         * pattern match next to a "\n"; the buffer anchors say what Python means. */
        case '^': rc = anchor(t, (t->flags & CD_PYRE_MULTILINE) ? "^" : "\\`"); break;
        case '$': rc = anchor(t, (t->flags & CD_PYRE_MULTILINE) ? "$" : "\\'"); break;
        case '*': rc = quantifier(t, "*", pos); break;
        case '+': rc = quantifier(t, "+", pos); break;
        case '?': rc = quantifier(t, "?", pos); break;
        case '{': rc = parse_brace(t, pos); break;
        case '\\': rc = parse_escape(t, pos); break;
        default: rc = emit_literal(t, c, pos); break;
        }
        if (rc < 0) return -1;
    }
    if (t->rc) return -1;
    if (t->depth) return fail(t, CD_PYRE_INVALID, t->stack[t->depth - 1].pos, "missing ), unterminated subpattern");
    if (t->unsup[0]) return fail(t, CD_PYRE_UNSUPPORTED, 0, "%s", t->unsup);
    if (t->out.oom) return oom(t);
    return 0;
}

static locale_t utf8_locale(void) {
    locale_t l = newlocale(LC_CTYPE_MASK | LC_COLLATE_MASK, "C.UTF-8", (locale_t)0);
    if (!l) l = newlocale(LC_CTYPE_MASK | LC_COLLATE_MASK, "C.utf8", (locale_t)0);
    return l;
}

static void tr_free(tr *t) {
    if (t->names)
        for (int g = 0; g <= t->groups; g++) free(t->names[g]);
    free(t->names);
    free(t->map);
    free(t->closed);
    free(t->stack);
    cd_text_buf_free(&t->out);
}

/* Translates and compiles into *re_out under the C.UTF-8 locale. */
static int build(tr *t, locale_t loc, regex_t *re_out) {
    if (group_slot(t) < 0 || translate(t) < 0) return -1;
    locale_t old = loc ? uselocale(loc) : (locale_t)0;
    int cflags = REG_EXTENDED | ((t->flags & CD_PYRE_IGNORECASE) ? REG_ICASE : 0) |
                 ((t->flags & CD_PYRE_MULTILINE) ? REG_NEWLINE : 0);
    int r = regcomp(re_out, t->out.data ? t->out.data : "", cflags);
    char msg[160] = "";
    if (r != 0) regerror(r, re_out, msg, sizeof msg);
    if (loc) uselocale(old);
    if (r != 0)
        return fail(t, r == REG_ESPACE ? CD_PYRE_NOMEM : CD_PYRE_UNSUPPORTED, 0,
                    "the POSIX translation of the pattern does not compile: %s", msg);
    return 0;
}

int cd_pyre_compile(cd_pyre **out, const char *pattern, size_t len, unsigned flags, char *err, size_t errlen) {
    *out = NULL;
    if (errlen) err[0] = '\0';
    cd_pyre *re = calloc(1, sizeof *re);
    if (!re) {
        if (errlen) snprintf(err, errlen, "out of memory");
        return CD_PYRE_NOMEM;
    }
    re->loc = utf8_locale();
    tr t = {.p = pattern, .len = len, .flags = flags, .err = err, .errlen = errlen};
    cd_text_buf_init(&t.out);
    int rc = build(&t, re->loc, &re->re);
    if (rc == 0) {
        re->compiled = 1;
        re->groups = t.groups;
        re->map = t.map;
        re->names = t.names;
        t.map = NULL;
        t.names = NULL;
        re->npm = re->re.re_nsub + 1;
        re->pm = calloc(re->npm, sizeof *re->pm);
        if (!re->pm) rc = oom(&t);
    }
    if (rc == 0 && t.has_nonboundary) {
        tr e = {.p = pattern, .len = len, .flags = flags, .empty_variant = 1, .err = err, .errlen = errlen};
        cd_text_buf_init(&e.out);
        rc = build(&e, re->loc, &re->re_empty);
        if (rc == 0) re->has_empty = 1;
        else t.rc = e.rc;
        tr_free(&e);
    }
    int code = t.rc;
    tr_free(&t);
    if (rc != 0) {
        cd_pyre_free(re);
        return code ? code : CD_PYRE_NOMEM;
    }
    *out = re;
    return CD_PYRE_OK;
}

void cd_pyre_free(cd_pyre *re) {
    if (!re) return;
    if (re->compiled) regfree(&re->re);
    if (re->has_empty) regfree(&re->re_empty);
    if (re->loc) freelocale(re->loc);
    if (re->names)
        for (int g = 0; g <= re->groups; g++) free(re->names[g]);
    free(re->names);
    free(re->map);
    free(re->pm);
    free(re);
}

int cd_pyre_groups(const cd_pyre *re) { return re->groups; }

int cd_pyre_group_index(const cd_pyre *re, const char *name, size_t name_len) {
    for (int g = 1; g <= re->groups; g++)
        if (re->names[g] && strlen(re->names[g]) == name_len && !memcmp(re->names[g], name, name_len)) return g;
    return -1;
}

int cd_pyre_search(cd_pyre *re, const char *s, size_t len, size_t pos, int64_t *spans) {
    if (pos > len) return 0;
    if (len > INT_MAX) return -1; /* regoff_t is an int in glibc */
    locale_t old = re->loc ? uselocale(re->loc) : (locale_t)0;
    re->pm[0].rm_so = (regoff_t)pos;
    re->pm[0].rm_eo = (regoff_t)len;
    /* REG_STARTEND: the search starts at pos but sees the text before it, as Python's
     * pattern.search(s, pos) does for ^ and \b. */
    int rc = regexec(len == 0 && re->has_empty ? &re->re_empty : &re->re, s, re->npm, re->pm, REG_STARTEND);
    if (re->loc) uselocale(old);
    if (rc == REG_NOMATCH) return 0;
    if (rc != 0) return -1;
    for (int g = 0; g <= re->groups; g++) {
        const regmatch_t *m = &re->pm[g ? re->map[g] : 0];
        spans[2 * g] = m->rm_so < 0 ? -1 : m->rm_so;
        spans[2 * g + 1] = m->rm_so < 0 ? -1 : m->rm_eo;
    }
    return 1;
}

long cd_pyre_finditer(cd_pyre *re, const char *s, size_t len, long max, cd_pyre_each_fn fn, void *ctx) {
    int64_t *spans = malloc(2 * ((size_t)re->groups + 1) * sizeof *spans);
    if (!spans) return -1;
    long count = 0;
    size_t pos = 0;
    int must_advance = 0;
    while (pos <= len) {
        int rc = cd_pyre_search(re, s, len, pos, spans);
        if (rc < 0) {
            count = -1;
            break;
        }
        if (rc == 0) break;
        /* After an empty match the next one may not be empty at the same place (Python 3.7+).
         * A leftmost-longest match that is empty there means no longer one starts there, so
         * the search moves on by one character. */
        if (must_advance && spans[0] == (int64_t)pos && spans[1] == (int64_t)pos) {
            if (pos >= len) break;
            cd_text_next(s, len, &pos);
            must_advance = 0;
            continue;
        }
        count++;
        if (fn(ctx, spans)) break;
        if (max > 0 && count >= max) break;
        must_advance = spans[1] == spans[0];
        pos = (size_t)spans[1];
    }
    free(spans);
    return count;
}
