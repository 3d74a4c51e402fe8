/* bench/json: jansson against comfyd's own JSON code, both directions, in one process.
 * Bodies: the 5,000-node chain bench/engine/run.mjs posts (PrimitiveInt, IntAdd chain,
 * PreviewAny), written compact as JSON.stringify does; and a body of long strings (prompt
 * texts with escapes and non-ASCII).
 *
 * Reading: json_loadb against cd_json_parse. Prints the median time of one parse of each, the
 * ratio, and the time of building the same tree with the same jansson calls and no parsing at
 * all ("tree alone"): jansson's allocations and key hashing, which cd_json_parse keeps, so
 * json_loadb / tree alone is the ceiling of any speed-up.
 *
 * Writing: the tree of each body written back, in both forms: compact (cd_json_dumps_compact,
 * what the history writer stores) and Python's (cd_json_dumps, replies and events). "before" is
 * the jansson pipeline each replaced (json_dumps, then the big-integer and \u-escape passes:
 * cd_json_dumps_reference / cd_json_dumps_compact_reference); json_dumps alone is shown too.
 *
 * Exits non-zero only when the two sides disagree (then nothing is comparable).
 *
 *   bench_json [runs]   (default 60: timed runs of each body by each side, taking turns; the
 *                        figure is CPU time, so other load on a shared machine counts less) */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/json.h"

static void chain_body(cd_buf *b, int n) {
    cd_buf_append_str(b, "{\"prompt\":{\"0\":{\"class_type\":\"PrimitiveInt\",\"inputs\":{\"value\":1}}");
    for (int i = 1; i < n; i++)
        cd_buf_printf(b, ",\"%d\":{\"class_type\":\"IntAdd\",\"inputs\":{\"a\":[\"%d\",0],\"b\":1}}", i, i - 1);
    cd_buf_printf(b, ",\"out\":{\"class_type\":\"PreviewAny\",\"inputs\":{\"source\":[\"%d\",0]}}}", n - 1);
    cd_buf_append_str(b, ",\"client_id\":\"bench\"}");
}

/* n text-encode nodes, each with a prompt of about len bytes: mostly ASCII, a line break
 * (an escape) every 200 bytes, a non-ASCII word every 500. */
static void strings_body(cd_buf *b, int n, int len) {
    cd_buf_append_str(b, "{\"prompt\":{");
    for (int i = 0; i < n; i++) {
        cd_buf_printf(b, "%s\"%d\":{\"class_type\":\"CLIPTextEncode\",\"inputs\":{\"text\":\"", i ? "," : "", i);
        for (int k = 0; k < len; k += 50) {
            cd_buf_append_str(b, k % 500 == 450 ? "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e photo, 4k "
                                                : "a photograph of a cat sitting on a red chair, ");
            if (k % 200 == 150) cd_buf_append_str(b, "\\n");
        }
        cd_buf_append_str(b, "\",\"clip\":[\"4\",1]}}");
    }
    cd_buf_append_str(b, "},\"client_id\":\"bench\"}");
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The tree as a tape of the calls cd_json_parse makes, its strings and keys copied in order
 * into one text, so that replaying it reads memory as a parser reads its input. Replaying
 * builds the same tree with the same jansson calls and nothing to parse: what building a
 * jansson tree costs alone, the floor for any parser of it. */
typedef enum { OP_OBJECT, OP_ARRAY, OP_CLOSE, OP_KEY, OP_STRING, OP_INTEGER, OP_REAL, OP_CONST } op_kind;
typedef struct {
    op_kind kind;
    size_t off, len; /* OP_KEY, OP_STRING: the bytes in the tape's text */
    json_int_t i;
    double d;
    json_t *constant; /* true, false, null */
} op;
typedef struct {
    op *ops;
    size_t n, cap;
    cd_buf text;
} tape;

static void tape_put(tape *t, op o) {
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->ops = realloc(t->ops, t->cap * sizeof *t->ops);
        if (!t->ops) abort();
    }
    t->ops[t->n++] = o;
}

static void tape_text(tape *t, op_kind kind, const char *s, size_t n) {
    tape_put(t, (op){.kind = kind, .off = t->text.len, .len = n});
    cd_buf_append(&t->text, s, n);
}

static void tape_record(tape *t, json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        tape_put(t, (op){.kind = OP_OBJECT});
        const char *k;
        size_t n;
        json_t *x;
        json_object_keylen_foreach(v, k, n, x) {
            tape_text(t, OP_KEY, k, n);
            tape_record(t, x);
        }
        tape_put(t, (op){.kind = OP_CLOSE});
        return;
    }
    case JSON_ARRAY:
        tape_put(t, (op){.kind = OP_ARRAY});
        for (size_t i = 0; i < json_array_size(v); i++) tape_record(t, json_array_get(v, i));
        tape_put(t, (op){.kind = OP_CLOSE});
        return;
    case JSON_STRING:
        tape_text(t, OP_STRING, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
        tape_put(t, (op){.kind = OP_INTEGER, .i = json_integer_value(v)});
        return;
    case JSON_REAL:
        tape_put(t, (op){.kind = OP_REAL, .d = json_real_value(v)});
        return;
    default:
        tape_put(t, (op){.kind = OP_CONST, .constant = v});
    }
}

static json_t *tape_replay(const tape *t) {
    json_t *stack[64], *root = NULL;
    bool object[64];
    size_t depth = 0;
    const char *key = NULL, *text = t->text.data;
    size_t key_len = 0;
    for (size_t i = 0; i < t->n; i++) {
        const op *o = &t->ops[i];
        json_t *v;
        switch (o->kind) {
        case OP_KEY:
            key = text + o->off;
            key_len = o->len;
            continue;
        case OP_CLOSE:
            depth--;
            continue;
        case OP_OBJECT: v = json_object(); break;
        case OP_ARRAY: v = json_array(); break;
        case OP_STRING: v = json_stringn_nocheck(text + o->off, o->len); break;
        case OP_INTEGER: v = json_integer(o->i); break;
        case OP_REAL: v = json_real(o->d); break;
        default: v = o->constant;
        }
        if (!depth) root = v;
        else if (object[depth - 1]) json_object_setn_new_nocheck(stack[depth - 1], key, key_len, v);
        else json_array_append_new(stack[depth - 1], v);
        if (o->kind == OP_OBJECT || o->kind == OP_ARRAY) {
            stack[depth] = v;
            object[depth++] = o->kind == OP_OBJECT;
        }
    }
    return root;
}

enum { JANSSON, OURS, FLOOR };

static json_t *run(int which, const cd_buf *body, const tape *tree) {
    return which == OURS    ? cd_json_parse(body->data, body->len, JSON_DECODE_ANY, NULL)
           : which == FLOOR ? tape_replay(tree)
                            : json_loadb(body->data, body->len, JSON_DECODE_ANY, NULL);
}

/* Median milliseconds of one run of each (t[JANSSON], t[OURS], t[FLOOR]), the tree freed
 * outside the clock. They take turns, so that load from elsewhere on a shared machine weighs
 * on all alike. */
static void time_runs(const cd_buf *body, const tape *tree, int runs, double t[3]) {
    double *s[3];
    for (int k = 0; k < 3; k++) s[k] = malloc(sizeof(double) * (size_t)runs);
    for (int i = -3; i < runs; i++) {
        for (int k = 0; k < 3; k++) {
            double t0 = now_ms();
            json_t *j = run(k, body, tree);
            double t1 = now_ms();
            json_decref(j);
            if (i >= 0) s[k][i] = t1 - t0;
        }
    }
    for (int k = 0; k < 3; k++) {
        qsort(s[k], (size_t)runs, sizeof(double), cmp_double);
        t[k] = s[k][runs / 2];
        free(s[k]);
    }
}

static int bench(const char *name, const cd_buf *body, int runs, double target) {
    json_t *a = run(JANSSON, body, NULL), *b = run(OURS, body, NULL);
    int same = a && b && json_equal(a, b);
    json_decref(b);
    if (!same) {
        fprintf(stderr, "bench_json: the parsers disagree on the %s body\n", name);
        json_decref(a);
        return 1;
    }
    tape tp = {0};
    tape_record(&tp, a);
    json_t *c = tape_replay(&tp);
    same = json_equal(a, c);
    json_decref(a);
    json_decref(c);
    if (!same) {
        fprintf(stderr, "bench_json: the replayed tree differs on the %s body\n", name);
        return 1;
    }
    double t[3];
    time_runs(body, &tp, runs, t);
    free(tp.ops);
    cd_buf_free(&tp.text);
    printf("%-24s %8.1f %12.2f %14.2f %9.1fx %14.2f %7.1fx", name, body->len / 1024.0, t[JANSSON], t[OURS],
           t[JANSSON] / t[OURS], t[FLOOR], t[JANSSON] / t[FLOOR]);
    if (target > 0) printf("   target >= %.0fx: %s", target, t[JANSSON] / t[OURS] >= target ? "met" : "NOT met");
    printf("\n");
    return 0;
}

/* ---- writing ---- */

enum { W_JANSSON, W_BEFORE, W_OURS, W_KINDS };

static char *write_run(int which, const json_t *tree, bool compact) {
    if (which == W_JANSSON)
        return json_dumps(tree, compact ? JSON_COMPACT : JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
    if (which == W_BEFORE) return compact ? cd_json_dumps_compact_reference(tree, 0) : cd_json_dumps_reference(tree);
    return compact ? cd_json_dumps_compact(tree, 0) : cd_json_dumps(tree);
}

static int bench_write(const char *name, const cd_buf *body, bool compact, int runs, double target) {
    json_t *tree = cd_json_parse(body->data, body->len, 0, NULL);
    char *before = tree ? write_run(W_BEFORE, tree, compact) : NULL;
    char *ours = tree ? write_run(W_OURS, tree, compact) : NULL;
    bool same = before && ours && !strcmp(before, ours);
    size_t len = before ? strlen(before) : 0;
    free(before);
    free(ours);
    if (!same) {
        fprintf(stderr, "bench_json: the writers disagree on the %s body\n", name);
        json_decref(tree);
        return 1;
    }
    double *s[W_KINDS];
    for (int k = 0; k < W_KINDS; k++) s[k] = malloc(sizeof(double) * (size_t)runs);
    for (int i = -3; i < runs; i++) {
        for (int k = 0; k < W_KINDS; k++) {
            double t0 = now_ms();
            char *text = write_run(k, tree, compact);
            double t1 = now_ms();
            free(text);
            if (i >= 0) s[k][i] = t1 - t0;
        }
    }
    double t[W_KINDS];
    for (int k = 0; k < W_KINDS; k++) {
        qsort(s[k], (size_t)runs, sizeof(double), cmp_double);
        t[k] = s[k][runs / 2];
        free(s[k]);
    }
    json_decref(tree);
    printf("%-24s %-8s %8.1f %13.2f %10.2f %10.2f %9.1fx", name, compact ? "compact" : "python", len / 1024.0,
           t[W_JANSSON], t[W_BEFORE], t[W_OURS], t[W_BEFORE] / t[W_OURS]);
    if (target > 0) printf("   target >= %.0fx: %s", target, t[W_BEFORE] / t[W_OURS] >= target ? "met" : "NOT met");
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 60;
    if (runs < 1) runs = 1;
    cd_buf chain = CD_BUF_INIT, strings = CD_BUF_INIT;
    chain_body(&chain, 5000);
    strings_body(&strings, 100, 8000);
    printf("reading: one parse of the body\n");
    printf("%-24s %8s %12s %14s %10s %14s %8s\n", "body", "KB", "json_loadb ms", "cd_json_parse ms",
           "speed-up", "tree alone ms", "ceiling");
    int rc = bench("chain, 5000 nodes", &chain, runs, 4.0);
    rc |= bench("long strings, 100x8KB", &strings, runs, 0);
    printf("\nwriting: the body's tree written back\n");
    printf("%-24s %-8s %8s %13s %10s %10s %10s\n", "body", "form", "KB", "json_dumps ms", "before ms", "ours ms",
           "speed-up");
    rc |= bench_write("chain, 5000 nodes", &chain, true, runs, 3.0);
    rc |= bench_write("chain, 5000 nodes", &chain, false, runs, 3.0);
    rc |= bench_write("long strings, 100x8KB", &strings, true, runs, 0);
    rc |= bench_write("long strings, 100x8KB", &strings, false, runs, 0);
    cd_buf_free(&chain);
    cd_buf_free(&strings);
    return rc;
}
