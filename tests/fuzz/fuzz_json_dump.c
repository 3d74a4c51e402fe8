/* Differential fuzzing of the JSON writers: on any tree, cd_json_dumps, cd_json_dumps_compact
 * (flags 0 and JSON_ENCODE_ANY) and cd_json_write must give the bytes of the jansson pipelines
 * they replace (cd_json_dumps_reference, cd_json_dumps_compact_reference), or fail where those
 * fail. Each input gives two trees:
 *   - the input read as JSON by cd_json_parse (when it is JSON), the trees clients send;
 *   - the input run as a little program that builds a tree with jansson's calls directly: strings
 *     of any bytes (json_stringn_nocheck: NULs, big-integer marks and near misses, text that is
 *     not UTF-8), keys of any bytes, reals from raw bits and from the range written in fixed
 *     notation, integers of any 64 bits, and containers put in twice or inside themselves.
 * A disagreement aborts, leaving the input as the artifact. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"

static void same_or_abort(const char *ours, const char *ref, const char *what) {
    if (!ours && !ref) return;
    if (ours && ref && !strcmp(ours, ref)) return;
    fprintf(stderr, "fuzz_json_dump: %s disagrees with its reference\n  ours: %.200s\n  ref:  %.200s\n", what,
            ours ? ours : "(NULL)", ref ? ref : "(NULL)");
    abort();
}

static void check_write(const json_t *v, bool compact, const char *ref) {
    cd_buf b = CD_BUF_INIT;
    cd_buf_append_str(&b, "<>");
    int rc = cd_json_write(&b, v, compact);
    if ((rc == 0) != (ref != NULL) || memcmp(b.data, "<>", 2) != 0 || (!ref && b.len != 2)) {
        fprintf(stderr, "fuzz_json_dump: cd_json_write (compact %d) returned %d\n", compact, rc);
        abort();
    }
    if (ref) same_or_abort(b.data + 2, ref, compact ? "cd_json_write (compact)" : "cd_json_write");
    cd_buf_free(&b);
}

static void check_tree(const json_t *v) {
    char *ours = cd_json_dumps(v), *ref = cd_json_dumps_reference(v);
    same_or_abort(ours, ref, "cd_json_dumps");
    check_write(v, false, ref);
    free(ours);
    free(ref);
    static const size_t flags[] = {0, JSON_ENCODE_ANY};
    for (size_t i = 0; i < 2; i++) {
        ours = cd_json_dumps_compact(v, flags[i]);
        ref = cd_json_dumps_compact_reference(v, flags[i]);
        same_or_abort(ours, ref, flags[i] ? "cd_json_dumps_compact(JSON_ENCODE_ANY)" : "cd_json_dumps_compact(0)");
        if (flags[i]) check_write(v, true, ref);
        free(ours);
        free(ref);
    }
}

/* ---- the tree-building program ---- */

enum { MAX_DEPTH = 600, MAX_CONTAINERS = 4096, MAX_SHARES = 6 };

typedef struct {
    const uint8_t *p, *end;
    json_t *stack[MAX_DEPTH];
    size_t depth;
    json_t *containers[MAX_CONTAINERS]; /* every container made, a reference each */
    size_t ncontainers;
    int shares;
} builder;

static uint8_t next_byte(builder *b) { return b->p < b->end ? *b->p++ : 0; }

static uint64_t next_u64(builder *b) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | next_byte(b);
    return u;
}

/* n bytes of input (fewer at its end), as they are */
static size_t next_bytes(builder *b, char *out, size_t n) {
    size_t k = (size_t)(b->end - b->p) < n ? (size_t)(b->end - b->p) : n;
    memcpy(out, b->p, k);
    b->p += k;
    return k;
}

/* A string that is or nearly is a big integer's: a NUL, then characters among "-0123456789"
 * and a few others. */
static size_t bigint_like(builder *b, char *out) {
    static const char alphabet[] = "0123456789-0123456789 a\x01";
    size_t n = next_byte(b) % 24;
    out[0] = '\0';
    for (size_t i = 1; i <= n; i++) out[i] = alphabet[next_byte(b) % (sizeof alphabet - 1)];
    return n + 1;
}

/* Code points encoded as UTF-8: any from U+0001 to U+10FFFF but surrogates. */
static size_t utf8_text(builder *b, char *out) {
    size_t n = next_byte(b) % 16, o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)next_byte(b) << 16 | (uint32_t)next_byte(b) << 8 | next_byte(b);
        c = c % 0x10FFFF + 1;
        if (c >= 0xD800 && c <= 0xDFFF) c -= 0x800;
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xC0 | c >> 6);
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xE0 | c >> 12);
            out[o++] = (char)(0x80 | (c >> 6 & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | c >> 18);
            out[o++] = (char)(0x80 | (c >> 12 & 0x3F));
            out[o++] = (char)(0x80 | (c >> 6 & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return o;
}

/* The text of a string or key: raw bytes, a big-integer look-alike, or UTF-8. */
static size_t any_text(builder *b, char *out) {
    switch (next_byte(b) % 3) {
    case 0: return next_bytes(b, out, next_byte(b) % 32);
    case 1: return bigint_like(b, out);
    default: return utf8_text(b, out);
    }
}

static json_t *real_of(double x) {
    json_t *r = json_real(x); /* NaN and infinities are refused */
    return r ? r : json_real(0.0);
}

/* The next value, or NULL for "close the innermost container". */
static json_t *next_value(builder *b, bool *container) {
    char text[128];
    *container = false;
    switch (next_byte(b) % 12) {
    case 0:
        *container = true;
        return json_array();
    case 1:
        *container = true;
        return json_object();
    case 2: return NULL;
    case 3:
    case 4: {
        size_t n = any_text(b, text);
        return json_stringn_nocheck(text, n);
    }
    case 5: {
        uint64_t u = next_u64(b);
        double x;
        memcpy(&x, &u, sizeof x);
        return real_of(x);
    }
    case 6: { /* 53 bits scaled into about [2^-75, 2^66): fixed notation and its edges */
        uint64_t u = next_u64(b);
        double x = ldexp((double)(u >> 11), (int)(u % 130) - 128);
        return real_of(u & 1024 ? -x : x);
    }
    case 7: return real_of((double)(int64_t)next_u64(b) / (double)(1 + next_byte(b) % 8));
    case 8: return json_integer((json_int_t)next_u64(b));
    case 9: {
        uint8_t c = next_byte(b) % 3;
        return c == 0 ? json_true() : c == 1 ? json_false() : json_null();
    }
    case 10: { /* a container again: shared, or inside itself (a cycle) */
        if (!b->ncontainers || b->shares >= MAX_SHARES) return json_null();
        b->shares++;
        return json_incref(b->containers[next_byte(b) % b->ncontainers]);
    }
    default: return json_integer((json_int_t)(int8_t)next_byte(b));
    }
}

/* Puts v (consumed) into the innermost container, under a key of any bytes in an object. */
static void attach(builder *b, json_t *v) {
    json_t *top = b->stack[b->depth - 1];
    if (json_is_object(top)) {
        char key[128];
        size_t n = any_text(b, key);
        json_object_setn_new_nocheck(top, key, n, v);
    } else {
        json_array_append_new(top, v);
    }
}

static json_t *build(builder *b) {
    bool container;
    json_t *root = next_value(b, &container);
    if (!root || !container) return root ? root : json_null();
    b->containers[b->ncontainers++] = json_incref(root);
    b->stack[b->depth++] = root;
    while (b->p < b->end) {
        json_t *v = next_value(b, &container);
        if (!v) {
            if (b->depth > 1) b->depth--;
            continue;
        }
        if (container && (b->depth == MAX_DEPTH || b->ncontainers == MAX_CONTAINERS)) {
            json_decref(v);
            continue;
        }
        attach(b, v);
        if (container) {
            b->containers[b->ncontainers++] = json_incref(v);
            b->stack[b->depth++] = v;
        }
    }
    return root;
}

/* Empties every container, which breaks the cycles, then lets them go. */
static void release(builder *b, json_t *root) {
    for (size_t i = 0; i < b->ncontainers; i++) {
        json_t *c = b->containers[i];
        if (json_is_array(c)) json_array_clear(c);
        else json_object_clear(c);
    }
    for (size_t i = 0; i < b->ncontainers; i++) json_decref(b->containers[i]);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *parsed = cd_json_parse((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (parsed) check_tree(parsed);
    json_decref(parsed);

    static builder b; /* large: kept off the stack */
    b.p = data;
    b.end = data + size;
    b.depth = b.ncontainers = 0;
    b.shares = 0;
    json_t *built = build(&b);
    check_tree(built);
    release(&b, built);
    return 0;
}
