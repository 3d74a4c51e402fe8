/* PreviewAny ("Preview as Text", comfy_extras.nodes_preview_any): an output node that shows
 * its input as text in the UI, {"text": ["..."]}. ComfyUI's rule:
 *
 *     value = 'None'
 *     if isinstance(source, str): value = source
 *     elif isinstance(source, (int, float, bool)): value = str(source)
 *     elif source is not None:
 *         try: value = json.dumps(source, indent=4)
 *         except Exception: value = str(source)
 *
 * so the text here is what Python prints: str() of numbers ("1.0", "1e+16", "True"), and
 * json.dumps' layout for lists and dicts (one item per line, four-space indents, "," after
 * items and ": " after keys, non-ASCII as \uXXXX, NaN and Infinity). Values JSON cannot hold (a pack's opaque objects)
 * take the str() path, written as Python's repr of the list around them with "<TYPE>" for the
 * object itself (a torch tensor's repr cannot be reproduced). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comfyd/node.h"
#include "nodes/text_util.h"

typedef enum { AS_JSON, AS_REPR } style;

typedef struct {
    cd_text_buf out;
    style style;
    int unserialisable; /* AS_JSON met something json.dumps rejects */
    int flat;           /* AS_JSON without indent: json.dumps(x) rather than json.dumps(x, indent=4) */
} printer;

static void newline_indent(printer *p, int depth) {
    if (p->flat) return;
    cd_text_putc(&p->out, '\n');
    for (int k = 0; k < depth * 4; k++) cd_text_putc(&p->out, ' ');
}

static void put_hex4(printer *p, unsigned v) { cd_text_printf(&p->out, "\\u%04x", v); }

/* json.dumps(ensure_ascii=True) */
static void json_string(printer *p, const char *s, size_t len) {
    cd_text_putc(&p->out, '"');
    for (size_t i = 0; i < len;) {
        uint32_t c = cd_text_next(s, len, &i);
        if (c & CD_TEXT_RAW) c = 0xDC00 | (c & 0xFF); /* Python's surrogateescape, for bytes that are not UTF-8 */
        switch (c) {
        case '"': cd_text_puts(&p->out, "\\\""); break;
        case '\\': cd_text_puts(&p->out, "\\\\"); break;
        case '\n': cd_text_puts(&p->out, "\\n"); break;
        case '\r': cd_text_puts(&p->out, "\\r"); break;
        case '\t': cd_text_puts(&p->out, "\\t"); break;
        case '\b': cd_text_puts(&p->out, "\\b"); break;
        case '\f': cd_text_puts(&p->out, "\\f"); break;
        default:
            if (c >= 0x20 && c < 0x7F) cd_text_putc(&p->out, c);
            else if (c < 0x10000) put_hex4(p, c);
            else {
                c -= 0x10000;
                put_hex4(p, 0xD800 | (c >> 10));
                put_hex4(p, 0xDC00 | (c & 0x3FF));
            }
        }
    }
    cd_text_putc(&p->out, '"');
}

/* Python's str.isprintable() for the characters repr() shows as they are; an approximation
 * outside Latin-1 that covers the separators and format characters seen in practice. */
static int printable(uint32_t c) {
    if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return 0;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x2064))
        return 0;
    if (c == 0x3000 || c == 0xFEFF || (c >= 0xD800 && c <= 0xDFFF) || (c >= 0xE000 && c <= 0xF8FF)) return 0;
    if ((c & 0xFFFE) == 0xFFFE || c >= 0xF0000) return 0;
    return 1;
}

/* repr(str) */
static void repr_string(printer *p, const char *s, size_t len) {
    int has_single = memchr(s, '\'', len) != NULL, has_double = memchr(s, '"', len) != NULL;
    char quote = has_single && !has_double ? '"' : '\'';
    cd_text_putc(&p->out, (uint32_t)quote);
    for (size_t i = 0; i < len;) {
        uint32_t c = cd_text_next(s, len, &i);
        if (c & CD_TEXT_RAW) c = 0xDC00 | (c & 0xFF);
        if (c == (uint32_t)quote || c == '\\') {
            cd_text_putc(&p->out, '\\');
            cd_text_putc(&p->out, c);
        } else if (c == '\n') cd_text_puts(&p->out, "\\n");
        else if (c == '\r') cd_text_puts(&p->out, "\\r");
        else if (c == '\t') cd_text_puts(&p->out, "\\t");
        else if (printable(c)) cd_text_putc(&p->out, c);
        else if (c <= 0xFF) cd_text_printf(&p->out, "\\x%02x", c);
        else if (c <= 0xFFFF) cd_text_printf(&p->out, "\\u%04x", c);
        else cd_text_printf(&p->out, "\\U%08x", c);
    }
    cd_text_putc(&p->out, (uint32_t)quote);
}

static void print_float(printer *p, double f) {
    if (p->style == AS_JSON && !isfinite(f)) {
        cd_text_puts(&p->out, isnan(f) ? "NaN" : f > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char buf[32];
    cd_text_float_repr(f, buf);
    cd_text_puts(&p->out, buf);
}

/* ---- JSON text (CD_VALUE_JSON) re-printed ---- */

typedef struct {
    const char *s;
    size_t i, len;
} reader;

static void skip_ws(reader *r) {
    while (r->i < r->len && strchr(" \t\r\n", r->s[r->i]) && r->s[r->i]) r->i++;
}

static int hex4(reader *r, unsigned *v) {
    if (r->len - r->i < 4) return -1;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = r->s[r->i++];
        int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
        if (d < 0) return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

/* A JSON string at r (after its quote), decoded into out as UTF-8. */
static int read_string(reader *r, cd_text_buf *out) {
    while (r->i < r->len) {
        char c = r->s[r->i++];
        if (c == '"') return 0;
        if (c != '\\') {
            cd_text_append(out, &c, 1);
            continue;
        }
        if (r->i >= r->len) return -1;
        char e = r->s[r->i++];
        unsigned v;
        switch (e) {
        case 'n': cd_text_putc(out, '\n'); break;
        case 't': cd_text_putc(out, '\t'); break;
        case 'r': cd_text_putc(out, '\r'); break;
        case 'b': cd_text_putc(out, '\b'); break;
        case 'f': cd_text_putc(out, '\f'); break;
        case 'u':
            if (hex4(r, &v) < 0) return -1;
            if (v >= 0xD800 && v < 0xDC00 && r->len - r->i >= 6 && r->s[r->i] == '\\' && r->s[r->i + 1] == 'u') {
                size_t save = r->i;
                unsigned lo;
                r->i += 2;
                if (hex4(r, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                else r->i = save;
            }
            cd_text_putc(out, v);
            break;
        default: cd_text_append(out, &e, 1); break; /* \" \\ \/ */
        }
    }
    return -1;
}

static int print_json(printer *p, reader *r, int depth) {
    skip_ws(r);
    if (r->i >= r->len) return -1;
    char c = r->s[r->i];
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        r->i++;
        skip_ws(r);
        cd_text_putc(&p->out, (uint32_t)c);
        if (r->i < r->len && r->s[r->i] == close) {
            r->i++;
            cd_text_putc(&p->out, (uint32_t)close);
            return 0;
        }
        for (int first = 1;; first = 0) {
            if (!first) cd_text_putc(&p->out, ',');
            if (p->style == AS_JSON && !p->flat) newline_indent(p, depth + 1);
            else if (!first) cd_text_putc(&p->out, ' ');
            if (c == '{') {
                skip_ws(r);
                if (r->i >= r->len || r->s[r->i] != '"') return -1;
                r->i++;
                cd_text_buf key;
                cd_text_buf_init(&key);
                int rc = read_string(r, &key);
                if (rc == 0) {
                    if (p->style == AS_JSON) json_string(p, key.data ? key.data : "", key.len);
                    else repr_string(p, key.data ? key.data : "", key.len);
                }
                cd_text_buf_free(&key);
                skip_ws(r);
                if (rc < 0 || r->i >= r->len || r->s[r->i] != ':') return -1;
                r->i++;
                cd_text_puts(&p->out, ": ");
            }
            if (print_json(p, r, depth + 1) < 0) return -1;
            skip_ws(r);
            if (r->i >= r->len) return -1;
            if (r->s[r->i] == ',') {
                r->i++;
                continue;
            }
            if (r->s[r->i] != close) return -1;
            r->i++;
            break;
        }
        if (p->style == AS_JSON) newline_indent(p, depth);
        cd_text_putc(&p->out, (uint32_t)close);
        return 0;
    }
    if (c == '"') {
        r->i++;
        cd_text_buf str;
        cd_text_buf_init(&str);
        int rc = read_string(r, &str);
        if (rc == 0) {
            if (p->style == AS_JSON) json_string(p, str.data ? str.data : "", str.len);
            else repr_string(p, str.data ? str.data : "", str.len);
        }
        cd_text_buf_free(&str);
        return rc;
    }
    static const struct {
        const char *word, *json, *py;
    } words[] = {{"true", "true", "True"}, {"false", "false", "False"}, {"null", "null", "None"}};
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(words[k].word);
        if (r->len - r->i >= n && !memcmp(r->s + r->i, words[k].word, n)) {
            r->i += n;
            cd_text_puts(&p->out, p->style == AS_JSON ? words[k].json : words[k].py);
            return 0;
        }
    }
    size_t start = r->i;
    int is_float = 0;
    while (r->i < r->len && r->s[r->i] && strchr("+-0123456789.eE", r->s[r->i])) {
        if (strchr(".eE", r->s[r->i])) is_float = 1;
        r->i++;
    }
    if (r->i == start) return -1;
    if (is_float) {
        char num[64];
        size_t n = r->i - start < sizeof num - 1 ? r->i - start : sizeof num - 1;
        memcpy(num, r->s + start, n);
        num[n] = '\0';
        print_float(p, strtod(num, NULL));
    } else {
        cd_text_append(&p->out, r->s + start, r->i - start);
    }
    return 0;
}

/* ---- values ---- */

static void print_value(printer *p, const cd_value *v, int depth) {
    switch (cd_value_kind_of(v)) {
    case CD_VALUE_NONE: cd_text_puts(&p->out, p->style == AS_JSON ? "null" : "None"); break;
    case CD_VALUE_BOOL:
        cd_text_puts(&p->out, cd_value_as_bool(v) ? (p->style == AS_JSON ? "true" : "True")
                                                  : (p->style == AS_JSON ? "false" : "False"));
        break;
    case CD_VALUE_INT: cd_text_printf(&p->out, "%lld", (long long)cd_value_as_int(v)); break;
    case CD_VALUE_FLOAT: print_float(p, cd_value_as_float(v)); break;
    case CD_VALUE_STRING: {
        const char *s = cd_value_as_string(v);
        if (p->style == AS_JSON) json_string(p, s, strlen(s));
        else repr_string(p, s, strlen(s));
        break;
    }
    case CD_VALUE_JSON: {
        const char *text = cd_value_json_text(v);
        reader r = {text, 0, strlen(text)};
        if (print_json(p, &r, depth) < 0) p->unserialisable = 1;
        break;
    }
    case CD_VALUE_LIST: {
        size_t n = cd_value_list_len(v);
        cd_text_putc(&p->out, '[');
        for (size_t k = 0; k < n; k++) {
            if (k) cd_text_putc(&p->out, ',');
            if (p->style == AS_JSON) newline_indent(p, depth + 1);
            else if (k) cd_text_putc(&p->out, ' ');
            print_value(p, cd_value_list_at(v, k), depth + 1);
        }
        if (n && p->style == AS_JSON) newline_indent(p, depth);
        cd_text_putc(&p->out, ']');
        break;
    }
    case CD_VALUE_LINK: /* a [node_id, slot] pair */
        cd_text_putc(&p->out, '[');
        if (p->style == AS_JSON) newline_indent(p, depth + 1);
        if (p->style == AS_JSON) json_string(p, cd_value_link_node(v), strlen(cd_value_link_node(v)));
        else repr_string(p, cd_value_link_node(v), strlen(cd_value_link_node(v)));
        cd_text_putc(&p->out, ',');
        if (p->style == AS_JSON) newline_indent(p, depth + 1);
        else cd_text_putc(&p->out, ' ');
        cd_text_printf(&p->out, "%d", cd_value_link_slot(v));
        if (p->style == AS_JSON) newline_indent(p, depth);
        cd_text_putc(&p->out, ']');
        break;
    case CD_VALUE_TENSOR: /* str(tensor) in Python prints every value; we print type and shape */
        if (p->style == AS_JSON) {
            p->unserialisable = 1;
        } else {
            cd_text_printf(&p->out, "<%s [", cd_value_tensor_type(v));
            for (int i = 0; i < cd_value_tensor_ndim(v); i++)
                cd_text_printf(&p->out, "%s%lld", i ? ", " : "", (long long)cd_value_tensor_dim(v, i));
            cd_text_puts(&p->out, "]>");
        }
        break;
    case CD_VALUE_OPAQUE:
    case CD_VALUE_BLOCKER:
        if (p->style == AS_JSON) p->unserialisable = 1;
        else cd_text_printf(&p->out, "<%s>", cd_text_py_type(v));
        break;
    }
}

static int preview(cd_node_call *call) {
    const cd_value *v = cd_call_input(call, "source");
    cd_text_buf text;
    cd_text_buf_init(&text);
    switch (cd_value_kind_of(v)) {
    case CD_VALUE_NONE: cd_text_puts(&text, "None"); break;
    case CD_VALUE_STRING: cd_text_puts(&text, cd_value_as_string(v)); break;
    case CD_VALUE_INT:
    case CD_VALUE_FLOAT:
    case CD_VALUE_BOOL: {
        printer p = {.style = AS_REPR};
        cd_text_buf_init(&p.out);
        print_value(&p, v, 0);
        text = p.out;
        break;
    }
    default: {
        printer p = {.style = AS_JSON};
        cd_text_buf_init(&p.out);
        print_value(&p, v, 0);
        if (p.unserialisable) { /* json.dumps raised: str(source) */
            cd_text_buf_free(&p.out);
            p.style = AS_REPR;
            p.unserialisable = 0;
            print_value(&p, v, 0);
        }
        text = p.out;
        break;
    }
    }
    cd_value *s = cd_text_buf_value(&text);
    if (!s) return cd_call_fail(call, "MemoryError", "out of memory");
    return cd_call_ui(call, "text", s);
}

char *cd_py_json_dumps(const char *json_text) {
    printer p = {.style = AS_JSON, .flat = 1};
    cd_text_buf_init(&p.out);
    reader r = {json_text, 0, strlen(json_text)};
    if (print_json(&p, &r, 0) < 0) {
        cd_text_buf_free(&p.out);
        return NULL;
    }
    char *text = p.out.oom ? NULL : strndup(p.out.data ? p.out.data : "", p.out.len);
    cd_text_buf_free(&p.out);
    return text;
}

static const cd_node_def defs[] = {
    {.abi_version = CD_NODE_ABI_VERSION, .name = "PreviewAny", .display_name = "Preview as Text", .category = "utils",
     .python_module = "comfy_extras.nodes_preview_any", .inputs = "{\"required\": {\"source\": [\"*\", {}]}}",
     .outputs = NULL, .n_outputs = 0, .flags = CD_NODE_OUTPUT, .execute = preview},
};

int cd_nodes_preview_any_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
