/* The string nodes of comfy_extras.nodes_string: StringConcatenate, StringSubstring,
 * StringLength, CaseConverter, StringTrim, StringReplace, StringContains, StringCompare,
 * RegexMatch, RegexExtract, RegexReplace.
 *
 * Each is a one-line wrapper around a Python str method or the `re` module in ComfyUI, so the
 * work is in matching Python: code point indexing and full case mappings (text_util.c), and
 * Python patterns on POSIX regex (pyregex.c, whose header lists what differs).
 *
 * How errors follow ComfyUI: RegexMatch and RegexExtract catch re.error (an invalid pattern
 * gives False / ""), RegexReplace does not (the node fails with re.error). A pattern that is
 * valid Python but beyond what POSIX can express fails the node with re.error in every case,
 * saying so, rather than answering differently from ComfyUI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comfyd/node.h"
#include "nodes/pyregex.h"
#include "nodes/text_util.h"

#define MODULE "comfy_extras.nodes_string"
#define CATEGORY "utils/string"

/* A required string input; fails the call (TypeError, as Python's str methods would) when it
 * is missing or not a string. */
static int get_str(cd_node_call *call, const char *name, const char **s, size_t *len) {
    *s = ""; /* set on every path: the optimiser cannot see that failures return non-zero */
    *len = 0;
    const cd_value *v = cd_call_input(call, name);
    const char *text = cd_value_as_string(v);
    if (!text) {
        if (!v) return cd_call_fail(call, "TypeError", "missing required argument: '%s'", name);
        return cd_call_fail(call, "TypeError", "%s must be str, not %s", name, cd_text_py_type(v));
    }
    *s = text;
    *len = strlen(text);
    return CD_OK;
}

static int set_buf(cd_node_call *call, cd_text_buf *b) {
    cd_value *v = cd_text_buf_value(b);
    if (!v) return cd_call_fail(call, "MemoryError", "out of memory");
    return cd_call_set_output(call, 0, v);
}

static int set_range(cd_node_call *call, const char *s, size_t from, size_t to) {
    cd_value *v = cd_value_stringn(s + from, to - from);
    if (!v) return cd_call_fail(call, "MemoryError", "out of memory");
    return cd_call_set_output(call, 0, v);
}

/* ---- plain string nodes ---- */

/* delimiter.join((string_a, string_b)) */
static int concatenate(cd_node_call *call) {
    const char *a, *b, *d;
    size_t na, nb, nd;
    if (get_str(call, "string_a", &a, &na) || get_str(call, "string_b", &b, &nb) ||
        get_str(call, "delimiter", &d, &nd))
        return CD_ERROR;
    cd_text_buf out;
    cd_text_buf_init(&out);
    cd_text_append(&out, a, na);
    cd_text_append(&out, d, nd);
    cd_text_append(&out, b, nb);
    return set_buf(call, &out);
}

/* string[start:end] */
static int substring(cd_node_call *call) {
    const char *s;
    size_t n;
    if (get_str(call, "string", &s, &n)) return CD_ERROR;
    size_t from, to;
    cd_text_slice(s, n, cd_call_int(call, "start", 0), cd_call_int(call, "end", 0), &from, &to);
    return set_range(call, s, from, to);
}

/* len(string) */
static int length(cd_node_call *call) {
    const char *s;
    size_t n;
    if (get_str(call, "string", &s, &n)) return CD_ERROR;
    return cd_call_set_output(call, 0, cd_value_int((int64_t)cd_text_length(s, n)));
}

static int case_converter(cd_node_call *call) {
    const char *s;
    size_t n;
    if (get_str(call, "string", &s, &n)) return CD_ERROR;
    const char *mode = cd_call_string(call, "mode", "");
    cd_text_buf out;
    cd_text_buf_init(&out);
    if (!strcmp(mode, "UPPERCASE")) cd_text_upper(&out, s, n);
    else if (!strcmp(mode, "lowercase")) cd_text_lower(&out, s, n);
    else if (!strcmp(mode, "Capitalize")) cd_text_capitalize(&out, s, n);
    else if (!strcmp(mode, "Title Case")) cd_text_title(&out, s, n);
    else cd_text_append(&out, s, n);
    return set_buf(call, &out);
}

static int trim(cd_node_call *call) {
    const char *s;
    size_t n;
    if (get_str(call, "string", &s, &n)) return CD_ERROR;
    const char *mode = cd_call_string(call, "mode", "");
    int left = !strcmp(mode, "Both") || !strcmp(mode, "Left");
    int right = !strcmp(mode, "Both") || !strcmp(mode, "Right");
    size_t from, to;
    cd_text_strip(s, n, left, right, &from, &to);
    return set_range(call, s, from, to);
}

/* string.replace(find, replace) */
static int replace(cd_node_call *call) {
    const char *s, *f, *r;
    size_t ns, nf, nr;
    if (get_str(call, "string", &s, &ns) || get_str(call, "find", &f, &nf) || get_str(call, "replace", &r, &nr))
        return CD_ERROR;
    cd_text_buf out;
    cd_text_buf_init(&out);
    cd_text_replace(&out, s, ns, f, nf, r, nr);
    return set_buf(call, &out);
}

/* The two strings as compared: as given, or both through str.lower(). */
typedef struct {
    cd_text_buf a, b;
} folded;

static void fold_pair(folded *f, const char *a, size_t na, const char *b, size_t nb, int case_sensitive) {
    cd_text_buf_init(&f->a);
    cd_text_buf_init(&f->b);
    if (case_sensitive) {
        cd_text_append(&f->a, a, na);
        cd_text_append(&f->b, b, nb);
    } else {
        cd_text_lower(&f->a, a, na);
        cd_text_lower(&f->b, b, nb);
    }
    /* an empty buffer has no data yet */
    cd_text_append(&f->a, "", 0);
    cd_text_append(&f->b, "", 0);
}

static void fold_free(folded *f) {
    cd_text_buf_free(&f->a);
    cd_text_buf_free(&f->b);
}

static int contains(cd_node_call *call) {
    const char *s, *sub;
    size_t ns, nsub;
    if (get_str(call, "string", &s, &ns) || get_str(call, "substring", &sub, &nsub)) return CD_ERROR;
    folded f;
    fold_pair(&f, s, ns, sub, nsub, cd_call_bool(call, "case_sensitive", 1));
    if (f.a.oom || f.b.oom) {
        fold_free(&f);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    int r = cd_text_contains(f.a.data, f.a.len, f.b.data, f.b.len);
    fold_free(&f);
    return cd_call_set_output(call, 0, cd_value_bool(r));
}

static int compare(cd_node_call *call) {
    const char *a, *b;
    size_t na, nb;
    if (get_str(call, "string_a", &a, &na) || get_str(call, "string_b", &b, &nb)) return CD_ERROR;
    folded f;
    fold_pair(&f, a, na, b, nb, cd_call_bool(call, "case_sensitive", 1));
    if (f.a.oom || f.b.oom) {
        fold_free(&f);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    const char *mode = cd_call_string(call, "mode", "");
    cd_value *out;
    size_t la = f.a.len, lb = f.b.len;
    if (!strcmp(mode, "Equal")) out = cd_value_bool(la == lb && !memcmp(f.a.data, f.b.data, la));
    else if (!strcmp(mode, "Starts With")) out = cd_value_bool(la >= lb && !memcmp(f.a.data, f.b.data, lb));
    else if (!strcmp(mode, "Ends With")) out = cd_value_bool(la >= lb && !memcmp(f.a.data + la - lb, f.b.data, lb));
    else out = cd_value_none(); /* Python's execute falls off its if/elif chain */
    fold_free(&f);
    return cd_call_set_output(call, 0, out);
}

/* ---- regular expressions ---- */

static unsigned regex_flags(cd_node_call *call) {
    unsigned flags = 0;
    if (cd_call_bool(call, "case_insensitive", 1)) flags |= CD_PYRE_IGNORECASE;
    if (cd_call_bool(call, "multiline", 0)) flags |= CD_PYRE_MULTILINE;
    if (cd_call_bool(call, "dotall", 0)) flags |= CD_PYRE_DOTALL;
    return flags;
}

/* Compiles the node's pattern. Returns 1 with *re set, 0 when the pattern is invalid in
 * Python too (*re NULL; the caller does what the Python node does with re.error), or
 * CD_ERROR after failing the call. */
static int compile_pattern(cd_node_call *call, unsigned flags, cd_pyre **re, int invalid_fails) {
    const char *p;
    size_t np;
    *re = NULL;
    if (get_str(call, "regex_pattern", &p, &np)) return CD_ERROR;
    char err[256];
    int rc = cd_pyre_compile(re, p, np, flags, err, sizeof err);
    if (rc == CD_PYRE_OK) return 1;
    if (rc == CD_PYRE_INVALID && !invalid_fails) return 0;
    if (rc == CD_PYRE_NOMEM) return cd_call_fail(call, "MemoryError", "out of memory");
    if (rc == CD_PYRE_UNSUPPORTED)
        return cd_call_fail(call, "re.error", "comfyd cannot run this Python regular expression: %s", err);
    return cd_call_fail(call, "re.error", "%s", err);
}

static int search_failed(cd_node_call *call) { return cd_call_fail(call, "re.error", "regular expression search failed"); }

/* re.search(pattern, string, flags) is not None */
static int regex_match(cd_node_call *call) {
    const char *s;
    size_t n;
    if (get_str(call, "string", &s, &n)) return CD_ERROR;
    cd_pyre *re;
    int rc = compile_pattern(call, regex_flags(call) | CD_PYRE_LAZY_AS_GREEDY, &re, 0);
    if (rc == CD_ERROR) return CD_ERROR;
    if (rc == 0) return cd_call_set_output(call, 0, cd_value_bool(0)); /* except re.error: False */
    int64_t *spans = malloc(2 * ((size_t)cd_pyre_groups(re) + 1) * sizeof *spans);
    int found = spans ? cd_pyre_search(re, s, n, 0, spans) : -1;
    free(spans);
    cd_pyre_free(re);
    if (found < 0) return search_failed(call);
    return cd_call_set_output(call, 0, cd_value_bool(found));
}

typedef struct {
    cd_node_call *call;
    const char *s;
    int group;    /* which group each match contributes */
    int count;    /* items joined so far */
    int none_at;  /* All Groups: index of the first None item, or -1 */
    cd_text_buf out;
} extract_ctx;

/* Appends s[start:end] to the "\n"-joined result. */
static void join_span(extract_ctx *x, int64_t start, int64_t end) {
    if (x->count++) cd_text_append(&x->out, "\n", 1);
    if (start >= 0) cd_text_append(&x->out, x->s + start, (size_t)(end - start));
}

/* findall(): group 1 when the pattern has groups (a non-participating group reads ""), else
 * the whole match; "First element of each tuple" in the node is group 1 as well. */
static int each_findall(void *ctx, const int64_t *spans) {
    extract_ctx *x = ctx;
    join_span(x, spans[2 * x->group], spans[2 * x->group + 1]);
    return 0;
}

/* finditer(): match.group(group_index), None for a group that did not take part. */
static int each_group(void *ctx, const int64_t *spans) {
    extract_ctx *x = ctx;
    if (spans[2 * x->group] < 0 && x->none_at < 0) x->none_at = x->count;
    join_span(x, spans[2 * x->group], spans[2 * x->group + 1]);
    return 0;
}

static int regex_extract(cd_node_call *call) {
    const char *s;
    size_t n;
    if (get_str(call, "string", &s, &n)) return CD_ERROR;
    const char *mode = cd_call_string(call, "mode", "");
    int64_t group_index = cd_call_int(call, "group_index", 1);
    cd_pyre *re;
    int rc = compile_pattern(call, regex_flags(call), &re, 0);
    if (rc == CD_ERROR) return CD_ERROR;
    if (rc == 0) return cd_call_set_output(call, 0, cd_value_string("")); /* except re.error: "" */
    int groups = cd_pyre_groups(re);
    extract_ctx x = {.call = call, .s = s, .none_at = -1};
    cd_text_buf_init(&x.out);
    cd_value *result = NULL;
    int64_t *spans = malloc(2 * ((size_t)groups + 1) * sizeof *spans);
    if (!spans) {
        cd_pyre_free(re);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    if (!strcmp(mode, "First Match") || !strcmp(mode, "First Group")) {
        int found = cd_pyre_search(re, s, n, 0, spans);
        int first_group = !strcmp(mode, "First Group");
        if (found < 0) {
            rc = search_failed(call);
        } else if (found == 0 || (first_group && groups < group_index)) {
            result = cd_value_string("");
        } else {
            int64_t g = first_group ? group_index : 0;
            if (g < 0) {
                rc = cd_call_fail(call, "IndexError", "no such group");
            } else if (spans[2 * g] < 0) {
                result = cd_value_none(); /* match.group() of a group that did not match */
            } else {
                result = cd_value_stringn(s + spans[2 * g], (size_t)(spans[2 * g + 1] - spans[2 * g]));
            }
        }
    } else if (!strcmp(mode, "All Matches")) {
        x.group = groups ? 1 : 0;
        if (cd_pyre_finditer(re, s, n, 0, each_findall, &x) < 0) rc = search_failed(call);
        else result = cd_text_buf_value(&x.out);
    } else if (!strcmp(mode, "All Groups")) {
        /* `if match.groups() and len(match.groups()) >= group_index`: nothing from a pattern
         * without groups or with fewer than group_index */
        if (groups == 0 || groups < group_index) {
            result = cd_value_string("");
        } else if (group_index < 0) {
            /* match.group(-1) raises, but only when there is a match */
            long found = cd_pyre_search(re, s, n, 0, spans);
            if (found < 0) rc = search_failed(call);
            else if (found) rc = cd_call_fail(call, "IndexError", "no such group");
            else result = cd_value_string("");
        } else {
            x.group = (int)group_index;
            if (cd_pyre_finditer(re, s, n, 0, each_group, &x) < 0) rc = search_failed(call);
            else if (x.none_at >= 0)
                rc = cd_call_fail(call, "TypeError", "sequence item %d: expected str instance, NoneType found",
                                  x.none_at);
            else result = cd_text_buf_value(&x.out);
        }
    } else {
        result = cd_value_string("");
    }
    free(spans);
    cd_text_buf_free(&x.out);
    cd_pyre_free(re);
    if (rc == CD_ERROR) {
        cd_value_unref(result);
        return CD_ERROR;
    }
    if (!result) return cd_call_fail(call, "MemoryError", "out of memory");
    return cd_call_set_output(call, 0, result);
}

/* A parsed re.sub() replacement template: literal text and group references. */
typedef struct {
    int group; /* -1: literal text lit[off, off + len) */
    size_t off, len;
} tpl_piece;

typedef struct {
    tpl_piece *p;
    size_t n, cap;
    cd_text_buf lit;
} tpl;

static int tpl_push(tpl *t, int group, size_t off, size_t len) {
    if (group < 0 && t->n && t->p[t->n - 1].group < 0) { /* extend the previous literal */
        t->p[t->n - 1].len += len;
        return 0;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        tpl_piece *p = realloc(t->p, cap * sizeof *p);
        if (!p) return -1;
        t->p = p;
        t->cap = cap;
    }
    t->p[t->n++] = (tpl_piece){group, off, len};
    return 0;
}

static int tpl_literal(tpl *t, const char *s, size_t n) {
    size_t off = t->lit.len;
    cd_text_append(&t->lit, s, n);
    return t->lit.oom ? -1 : tpl_push(t, -1, off, n);
}

static int tpl_char(tpl *t, uint32_t cp) {
    size_t off = t->lit.len;
    cd_text_putc(&t->lit, cp);
    return t->lit.oom ? -1 : tpl_push(t, -1, off, t->lit.len - off);
}

static int is_ident(const char *s, size_t n) {
    if (!n || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (!(c == '_' || c >= 0x80 || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))) return 0;
    }
    return 1;
}

/* Python's re._parser.parse_template: \g<name>, \g<number>, \1..\99, octal escapes, the
 * escapes \a \b \f \n \r \t \v \\; other escapes of ASCII letters are errors, any other
 * escaped character stays as it is, backslash included. */
static int tpl_parse(cd_node_call *call, tpl *t, const char *r, size_t n, const cd_pyre *re) {
    int groups = cd_pyre_groups(re);
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (i < n && r[i] != '\\') i++;
        if (i > run && tpl_literal(t, r + run, i - run) < 0) return -2;
        if (i >= n) break;
        size_t at = i;
        if (i + 1 >= n) return cd_call_fail(call, "re.error", "bad escape (end of pattern) at position %zu", at);
        char c = r[i + 1];
        i += 2;
        if (c == 'g') {
            if (i >= n || r[i] != '<') return cd_call_fail(call, "re.error", "missing < at position %zu", i);
            size_t start = ++i;
            while (i < n && r[i] != '>') i++;
            if (i >= n) return cd_call_fail(call, "re.error", "missing >, unterminated name at position %zu", start);
            size_t len = i - start;
            i++;
            if (!len) return cd_call_fail(call, "re.error", "missing group name at position %zu", start);
            long index;
            if (is_ident(r + start, len)) {
                index = cd_pyre_group_index(re, r + start, len);
                if (index < 0) return cd_call_fail(call, "IndexError", "unknown group name '%.*s'", (int)len, r + start);
            } else {
                index = 0;
                for (size_t k = 0; k < len; k++) {
                    if (r[start + k] < '0' || r[start + k] > '9')
                        return cd_call_fail(call, "re.error", "bad character in group name '%.*s' at position %zu",
                                            (int)len, r + start, start);
                    if (index < 1000000) index = index * 10 + (r[start + k] - '0');
                }
                if (index > groups)
                    return cd_call_fail(call, "re.error", "invalid group reference %ld at position %zu", index, start);
            }
            if (tpl_push(t, (int)index, 0, 0) < 0) return -2;
        } else if (c == '0') {
            unsigned v = 0;
            for (int k = 0; k < 2 && i < n && r[i] >= '0' && r[i] <= '7'; k++) v = v * 8 + (unsigned)(r[i++] - '0');
            if (tpl_char(t, v & 0xff) < 0) return -2;
        } else if (c >= '1' && c <= '9') {
            int g = c - '0';
            int octal = 0;
            if (i < n && r[i] >= '0' && r[i] <= '9') {
                char d = r[i++];
                if (c <= '7' && d <= '7' && i < n && r[i] >= '0' && r[i] <= '7') {
                    unsigned v = (unsigned)((c - '0') * 64 + (d - '0') * 8 + (r[i++] - '0'));
                    if (v > 0377)
                        return cd_call_fail(call, "re.error",
                                            "octal escape value \\%.3s outside of range 0-0o377 at position %zu",
                                            r + at + 1, at);
                    if (tpl_char(t, v) < 0) return -2;
                    octal = 1;
                } else {
                    g = g * 10 + (d - '0');
                }
            }
            if (!octal) {
                if (g > groups)
                    return cd_call_fail(call, "re.error", "invalid group reference %d at position %zu", g, at + 1);
                if (tpl_push(t, g, 0, 0) < 0) return -2;
            }
        } else {
            const char *esc = strchr("abfnrtv\\", c);
            if (c && esc) {
                static const char values[] = "\a\b\f\n\r\t\v\\";
                if (tpl_char(t, (unsigned char)values[esc - "abfnrtv\\"]) < 0) return -2;
            } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
                return cd_call_fail(call, "re.error", "bad escape \\%c at position %zu", c, at);
            } else {
                /* kept with its backslash; a multi-byte character is copied whole */
                size_t end = at + 1;
                cd_text_next(r, n, &end);
                i = end;
                if (tpl_literal(t, r + at, end - at) < 0) return -2;
            }
        }
    }
    return 0;
}

typedef struct {
    const char *s;
    size_t last; /* end of the previous match */
    const tpl *t;
    cd_text_buf out;
} sub_ctx;

static int each_sub(void *ctx, const int64_t *spans) {
    sub_ctx *x = ctx;
    cd_text_append(&x->out, x->s + x->last, (size_t)spans[0] - x->last);
    for (size_t k = 0; k < x->t->n; k++) {
        const tpl_piece *p = &x->t->p[k];
        if (p->group < 0) cd_text_append(&x->out, x->t->lit.data + p->off, p->len);
        else if (spans[2 * p->group] >= 0) /* a group that did not match gives "" */
            cd_text_append(&x->out, x->s + spans[2 * p->group], (size_t)(spans[2 * p->group + 1] - spans[2 * p->group]));
    }
    x->last = (size_t)spans[1];
    return 0;
}

/* re.sub(regex_pattern, replace, string, count=count, flags=flags); errors propagate. */
static int regex_replace(cd_node_call *call) {
    const char *s, *r;
    size_t n, nr;
    if (get_str(call, "string", &s, &n) || get_str(call, "replace", &r, &nr)) return CD_ERROR;
    int64_t count = cd_call_int(call, "count", 0);
    cd_pyre *re;
    if (compile_pattern(call, regex_flags(call), &re, 1) == CD_ERROR) return CD_ERROR;
    tpl t = {0};
    cd_text_buf_init(&t.lit);
    int rc = tpl_parse(call, &t, r, nr, re);
    if (rc == -2) rc = cd_call_fail(call, "MemoryError", "out of memory");
    sub_ctx x = {.s = s, .t = &t};
    cd_text_buf_init(&x.out);
    if (rc == CD_OK && count >= 0) { /* a negative count replaces nothing */
        long max = count > 0 ? (count > 0x7fffffff ? 0x7fffffff : (long)count) : 0;
        if (cd_pyre_finditer(re, s, n, max, each_sub, &x) < 0) rc = search_failed(call);
    }
    cd_text_append(&x.out, s + x.last, n - x.last);
    free(t.p);
    cd_text_buf_free(&t.lit);
    cd_pyre_free(re);
    if (rc != CD_OK) {
        cd_text_buf_free(&x.out);
        return CD_ERROR;
    }
    return set_buf(call, &x.out);
}

/* ---- definitions ---- */

static const cd_output_def out_string[] = {{"STRING", NULL, 0, NULL, NULL}};
static const cd_output_def out_length[] = {{"INT", "length", 0, NULL, NULL}};
static const cd_output_def out_contains[] = {{"BOOLEAN", "contains", 0, NULL, NULL}};
static const cd_output_def out_bool[] = {{"BOOLEAN", NULL, 0, NULL, NULL}};
static const cd_output_def out_matches[] = {{"BOOLEAN", "matches", 0, NULL, NULL}};

#define STRING_NODE(NAME, DISPLAY, INPUTS, OUTS, FN)                                                                 \
    {.abi_version = CD_NODE_ABI_VERSION, .name = NAME, .display_name = DISPLAY, .category = CATEGORY,                \
     .python_module = MODULE, .inputs = INPUTS, .outputs = OUTS, .n_outputs = 1, .flags = CD_NODE_V3_INFO,           \
     .execute = FN}

#define ML "[\"STRING\", {\"multiline\": true}]"
#define CASE_SENSITIVE "[\"BOOLEAN\", {\"default\": true}]"

static const cd_node_def defs[] = {
    STRING_NODE("StringConcatenate", "Concatenate",
                "{\"required\": {\"string_a\": " ML ", \"string_b\": " ML ", \"delimiter\": "
                "[\"STRING\", {\"default\": \"\", \"multiline\": false}]}}",
                out_string, concatenate),
    STRING_NODE("StringSubstring", "Substring",
                "{\"required\": {\"string\": " ML ", \"start\": [\"INT\", {}], \"end\": [\"INT\", {}]}}", out_string,
                substring),
    STRING_NODE("StringLength", "Length", "{\"required\": {\"string\": " ML "}}", out_length, length),
    STRING_NODE("CaseConverter", "Case Converter",
                "{\"required\": {\"string\": " ML ", \"mode\": [\"COMBO\", {\"multiselect\": false, \"options\": "
                "[\"UPPERCASE\", \"lowercase\", \"Capitalize\", \"Title Case\"]}]}}",
                out_string, case_converter),
    STRING_NODE("StringTrim", "Trim",
                "{\"required\": {\"string\": " ML ", \"mode\": [\"COMBO\", {\"multiselect\": false, \"options\": "
                "[\"Both\", \"Left\", \"Right\"]}]}}",
                out_string, trim),
    STRING_NODE("StringReplace", "Replace",
                "{\"required\": {\"string\": " ML ", \"find\": " ML ", \"replace\": " ML "}}", out_string, replace),
    STRING_NODE("StringContains", "Contains",
                "{\"required\": {\"string\": " ML ", \"substring\": " ML ", \"case_sensitive\": " CASE_SENSITIVE "}}",
                out_contains, contains),
    STRING_NODE("StringCompare", "Compare",
                "{\"required\": {\"string_a\": " ML ", \"string_b\": " ML ", \"mode\": [\"COMBO\", {\"multiselect\": "
                "false, \"options\": [\"Starts With\", \"Ends With\", \"Equal\"]}], \"case_sensitive\": " CASE_SENSITIVE
                "}}",
                out_bool, compare),
    STRING_NODE("RegexMatch", "Regex Match",
                "{\"required\": {\"string\": " ML ", \"regex_pattern\": " ML ", \"case_insensitive\": [\"BOOLEAN\", "
                "{\"default\": true}], \"multiline\": [\"BOOLEAN\", {\"default\": false}], \"dotall\": [\"BOOLEAN\", "
                "{\"default\": false}]}}",
                out_matches, regex_match),
    STRING_NODE("RegexExtract", "Regex Extract",
                "{\"required\": {\"string\": " ML ", \"regex_pattern\": " ML ", \"mode\": [\"COMBO\", "
                "{\"multiselect\": false, \"options\": [\"First Match\", \"All Matches\", \"First Group\", \"All "
                "Groups\"]}], \"case_insensitive\": [\"BOOLEAN\", {\"default\": true}], \"multiline\": [\"BOOLEAN\", "
                "{\"default\": false}], \"dotall\": [\"BOOLEAN\", {\"default\": false}], \"group_index\": [\"INT\", "
                "{\"default\": 1, \"min\": 0, \"max\": 100}]}}",
                out_string, regex_extract),
    {.abi_version = CD_NODE_ABI_VERSION, .name = "RegexReplace", .display_name = "Regex Replace",
     .category = CATEGORY, .description = "Find and replace text using regex patterns.", .python_module = MODULE,
     .inputs = "{\"required\": {\"string\": " ML ", \"regex_pattern\": " ML ", \"replace\": " ML "}, \"optional\": "
               "{\"case_insensitive\": [\"BOOLEAN\", {\"default\": true}], \"multiline\": [\"BOOLEAN\", "
               "{\"default\": false}], \"dotall\": [\"BOOLEAN\", {\"tooltip\": \"When enabled, the dot (.) character "
               "will match any character including newline characters. When disabled, dots won't match newlines.\", "
               "\"default\": false}], \"count\": [\"INT\", {\"tooltip\": \"Maximum number of replacements to make. Set "
               "to 0 to replace all occurrences (default). Set to 1 to replace only the first match, 2 for the first "
               "two matches, etc.\", \"default\": 0, \"min\": 0, \"max\": 100}]}}",
     .outputs = out_string, .n_outputs = 1, .flags = CD_NODE_V3_INFO, .execute = regex_replace},
};

int cd_nodes_string_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
