/* Values (include/comfyd/node.h): immutable once shared, reference-counted with atomics because
 * the executor thread creates them and the loop thread may read them (UI outputs, history). */
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comfyd/node.h"
#include "engine/value.h"

#include <xxhash.h>

/* The memory behind one or more tensor values (a batch and its views share one). */
typedef struct {
    atomic_int refs;
    float *data;
    size_t numel;
    void (*free_fn)(void *);
} tensor_store;

struct cd_value {
    atomic_int refs;
    cd_value_kind kind;
    union {
        int64_t i;
        double f;
        int b;
        struct {
            char *text; /* STRING text, JSON text, BLOCKER message (may be NULL), LINK node id */
            size_t len;
            int slot; /* LINK */
        } s;
        struct {
            cd_value **items;
            size_t len, cap;
        } list;
        struct {
            char *type;
            void *ptr;
            void (*free_fn)(void *);
        } opaque;
        struct {
            char *type;
            tensor_store *store;
            float *data; /* inside store->data */
            size_t numel;
            int ndim;
            int64_t shape[CD_TENSOR_MAX_DIMS];
        } tensor;
    } u;
};

static cd_value *alloc(cd_value_kind kind) {
    cd_value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    atomic_init(&v->refs, 1);
    v->kind = kind;
    return v;
}

cd_value *cd_value_none(void) { return alloc(CD_VALUE_NONE); }

cd_value *cd_value_int(int64_t i) {
    cd_value *v = alloc(CD_VALUE_INT);
    if (v) v->u.i = i;
    return v;
}

cd_value *cd_value_float(double f) {
    cd_value *v = alloc(CD_VALUE_FLOAT);
    if (v) v->u.f = f;
    return v;
}

cd_value *cd_value_bool(int b) {
    cd_value *v = alloc(CD_VALUE_BOOL);
    if (v) v->u.b = b ? 1 : 0;
    return v;
}

static cd_value *text_value(cd_value_kind kind, const char *s, size_t len) {
    cd_value *v = alloc(kind);
    if (!v) return NULL;
    if (s) {
        v->u.s.text = malloc(len + 1);
        if (!v->u.s.text) {
            free(v);
            return NULL;
        }
        memcpy(v->u.s.text, s, len);
        v->u.s.text[len] = '\0';
        v->u.s.len = len;
    }
    return v;
}

cd_value *cd_value_stringn(const char *s, size_t len) { return text_value(CD_VALUE_STRING, s ? s : "", s ? len : 0); }
cd_value *cd_value_string(const char *s) { return cd_value_stringn(s, s ? strlen(s) : 0); }

cd_value *cd_value_json(const char *json_text) {
    json_t *j = json_loads(json_text, JSON_DECODE_ANY, NULL);
    if (!j) return NULL;
    cd_value *v = cd_value_from_json(j);
    json_decref(j);
    return v;
}

cd_value *cd_value_link(const char *node_id, int slot) {
    cd_value *v = text_value(CD_VALUE_LINK, node_id, strlen(node_id));
    if (v) v->u.s.slot = slot;
    return v;
}

cd_value *cd_value_list_new(size_t capacity) {
    cd_value *v = alloc(CD_VALUE_LIST);
    if (!v) return NULL;
    if (capacity) {
        v->u.list.items = malloc(capacity * sizeof(cd_value *));
        if (!v->u.list.items) {
            free(v);
            return NULL;
        }
        v->u.list.cap = capacity;
    }
    return v;
}

int cd_value_list_push(cd_value *list, cd_value *v) {
    if (!list || list->kind != CD_VALUE_LIST || !v) {
        cd_value_unref(v);
        return CD_ERROR;
    }
    if (list->u.list.len == list->u.list.cap) {
        size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
        cd_value **items = realloc(list->u.list.items, cap * sizeof *items);
        if (!items) {
            cd_value_unref(v);
            return CD_ERROR;
        }
        list->u.list.items = items;
        list->u.list.cap = cap;
    }
    list->u.list.items[list->u.list.len++] = v;
    return CD_OK;
}

cd_value *cd_value_opaque(const char *type_name, void *ptr, void (*free_fn)(void *)) {
    cd_value *v = alloc(CD_VALUE_OPAQUE);
    if (!v) return NULL;
    v->u.opaque.type = strdup(type_name ? type_name : "*");
    v->u.opaque.ptr = ptr;
    v->u.opaque.free_fn = free_fn;
    return v;
}

cd_value *cd_value_blocker(const char *message) {
    return text_value(CD_VALUE_BLOCKER, message, message ? strlen(message) : 0);
}

/* ---- tensors ---- */

static bool tensor_numel(int ndim, const int64_t *shape, size_t *numel) {
    if (ndim < 1 || ndim > CD_TENSOR_MAX_DIMS || !shape) return false;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX / sizeof(float)) return false;
        if (shape[i] && n > SIZE_MAX / sizeof(float) / (size_t)shape[i]) return false;
        n *= (size_t)shape[i];
    }
    *numel = n;
    return true;
}

static void store_unref(tensor_store *st) {
    if (!st || atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1) return;
    if (st->free_fn) st->free_fn(st->data);
    free(st);
}

/* A tensor value over `store` (whose reference it takes) from element `offset`. */
static cd_value *tensor_value(const char *type, int ndim, const int64_t *shape, size_t numel, tensor_store *st,
                              size_t offset) {
    cd_value *v = alloc(CD_VALUE_TENSOR);
    char *t = strdup(type ? type : "*");
    if (!v || !t) {
        free(v);
        free(t);
        store_unref(st);
        return NULL;
    }
    v->u.tensor.type = t;
    v->u.tensor.store = st;
    v->u.tensor.data = st->data + offset;
    v->u.tensor.numel = numel;
    v->u.tensor.ndim = ndim;
    memcpy(v->u.tensor.shape, shape, (size_t)ndim * sizeof *shape);
    return v;
}

cd_value *cd_value_tensor_wrap(const char *type, int ndim, const int64_t *shape, float *data,
                               void (*free_fn)(void *)) {
    size_t numel;
    tensor_store *st = NULL;
    if (!tensor_numel(ndim, shape, &numel) || (!data && numel) || !(st = malloc(sizeof *st))) {
        if (free_fn) free_fn(data);
        return NULL;
    }
    atomic_init(&st->refs, 1);
    st->data = data;
    st->numel = numel;
    st->free_fn = free_fn;
    return tensor_value(type, ndim, shape, numel, st, 0);
}

cd_value *cd_value_tensor_new(const char *type, int ndim, const int64_t *shape) {
    size_t numel;
    if (!tensor_numel(ndim, shape, &numel)) return NULL;
    /* calloc of at least one element: a zero-sized tensor (an empty batch) still has storage. */
    float *data = calloc(numel ? numel : 1, sizeof(float));
    if (!data) return NULL;
    return cd_value_tensor_wrap(type, ndim, shape, data, free);
}

cd_value *cd_value_tensor_view(const cd_value *base, const char *type, int ndim, const int64_t *shape,
                               size_t offset) {
    size_t numel;
    if (!base || base->kind != CD_VALUE_TENSOR || !tensor_numel(ndim, shape, &numel)) return NULL;
    size_t start = (size_t)(base->u.tensor.data - base->u.tensor.store->data) + offset;
    if (offset > base->u.tensor.numel || numel > base->u.tensor.numel - offset) return NULL;
    tensor_store *st = base->u.tensor.store;
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
    return tensor_value(type ? type : base->u.tensor.type, ndim, shape, numel, st, start);
}

const char *cd_value_tensor_type(const cd_value *v) { return v && v->kind == CD_VALUE_TENSOR ? v->u.tensor.type : NULL; }
int cd_value_tensor_ndim(const cd_value *v) { return v && v->kind == CD_VALUE_TENSOR ? v->u.tensor.ndim : 0; }
int64_t cd_value_tensor_dim(const cd_value *v, int i) {
    if (!v || v->kind != CD_VALUE_TENSOR) return 0;
    if (i < 0) i += v->u.tensor.ndim;
    return i >= 0 && i < v->u.tensor.ndim ? v->u.tensor.shape[i] : 0;
}
size_t cd_value_tensor_numel(const cd_value *v) { return v && v->kind == CD_VALUE_TENSOR ? v->u.tensor.numel : 0; }
const float *cd_value_tensor_data(const cd_value *v) { return v && v->kind == CD_VALUE_TENSOR ? v->u.tensor.data : NULL; }
float *cd_value_tensor_data_mut(cd_value *v) {
    /* Writable only while nobody else can see it: one reference to the value and its storage. */
    if (!v || v->kind != CD_VALUE_TENSOR) return NULL;
    if (atomic_load(&v->refs) != 1 || atomic_load(&v->u.tensor.store->refs) != 1) return NULL;
    return v->u.tensor.data;
}

cd_value *cd_value_ref(const cd_value *cv) {
    cd_value *v = (cd_value *)cv;
    if (v) atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

void cd_value_unref(cd_value *v) {
    if (!v || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) return;
    switch (v->kind) {
    case CD_VALUE_LIST:
        for (size_t i = 0; i < v->u.list.len; i++) cd_value_unref(v->u.list.items[i]);
        free(v->u.list.items);
        break;
    case CD_VALUE_OPAQUE:
        if (v->u.opaque.free_fn) v->u.opaque.free_fn(v->u.opaque.ptr);
        free(v->u.opaque.type);
        break;
    case CD_VALUE_TENSOR:
        store_unref(v->u.tensor.store);
        free(v->u.tensor.type);
        break;
    case CD_VALUE_STRING:
    case CD_VALUE_JSON:
    case CD_VALUE_LINK:
    case CD_VALUE_BLOCKER: free(v->u.s.text); break;
    default: break;
    }
    free(v);
}

cd_value_kind cd_value_kind_of(const cd_value *v) { return v ? v->kind : CD_VALUE_NONE; }

int64_t cd_value_as_int(const cd_value *v) {
    if (!v) return 0;
    switch (v->kind) {
    case CD_VALUE_INT: return v->u.i;
    case CD_VALUE_FLOAT: return isfinite(v->u.f) && fabs(v->u.f) < 9.2e18 ? (int64_t)v->u.f : 0;
    case CD_VALUE_BOOL: return v->u.b;
    default: return 0;
    }
}

double cd_value_as_float(const cd_value *v) {
    if (!v) return 0;
    switch (v->kind) {
    case CD_VALUE_INT: return (double)v->u.i;
    case CD_VALUE_FLOAT: return v->u.f;
    case CD_VALUE_BOOL: return v->u.b;
    default: return 0;
    }
}

int cd_value_as_bool(const cd_value *v) {
    if (!v) return 0;
    switch (v->kind) {
    case CD_VALUE_INT: return v->u.i != 0;
    case CD_VALUE_FLOAT: return v->u.f != 0;
    case CD_VALUE_BOOL: return v->u.b;
    case CD_VALUE_STRING: return v->u.s.len > 0;
    case CD_VALUE_LIST: return v->u.list.len > 0;
    default: return 0;
    }
}

const char *cd_value_as_string(const cd_value *v) { return v && v->kind == CD_VALUE_STRING ? v->u.s.text : NULL; }
const char *cd_value_json_text(const cd_value *v) { return v && v->kind == CD_VALUE_JSON ? v->u.s.text : NULL; }
size_t cd_value_list_len(const cd_value *v) { return v && v->kind == CD_VALUE_LIST ? v->u.list.len : 0; }
const cd_value *cd_value_list_at(const cd_value *v, size_t i) {
    return v && v->kind == CD_VALUE_LIST && i < v->u.list.len ? v->u.list.items[i] : NULL;
}
const char *cd_value_link_node(const cd_value *v) { return v && v->kind == CD_VALUE_LINK ? v->u.s.text : NULL; }
int cd_value_link_slot(const cd_value *v) { return v && v->kind == CD_VALUE_LINK ? v->u.s.slot : -1; }
const char *cd_value_opaque_type(const cd_value *v) { return v && v->kind == CD_VALUE_OPAQUE ? v->u.opaque.type : NULL; }
void *cd_value_opaque_ptr(const cd_value *v) { return v && v->kind == CD_VALUE_OPAQUE ? v->u.opaque.ptr : NULL; }
const char *cd_value_blocker_message(const cd_value *v) {
    return v && v->kind == CD_VALUE_BLOCKER ? v->u.s.text : NULL;
}

void cd_free(void *p) { free(p); }

/* ---- JSON conversion (engine side) ---- */

cd_value *cd_value_from_json(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_NULL: return cd_value_none();
    case JSON_TRUE: return cd_value_bool(1);
    case JSON_FALSE: return cd_value_bool(0);
    case JSON_INTEGER: return cd_value_int(json_integer_value(j));
    case JSON_REAL: return cd_value_float(json_real_value(j));
    case JSON_STRING: return cd_value_stringn(json_string_value(j), json_string_length(j));
    default: {
        char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) return NULL;
        cd_value *v = text_value(CD_VALUE_JSON, text, strlen(text));
        free(text);
        return v;
    }
    }
}

json_t *cd_value_to_json_t(const cd_value *v) {
    if (!v) return json_null();
    switch (v->kind) {
    case CD_VALUE_NONE: return json_null();
    case CD_VALUE_INT: return json_integer(v->u.i);
    case CD_VALUE_FLOAT: return isfinite(v->u.f) ? json_real(v->u.f) : json_null(); /* JSON has no NaN */
    case CD_VALUE_BOOL: return json_boolean(v->u.b);
    case CD_VALUE_STRING: return json_stringn(v->u.s.text, v->u.s.len);
    case CD_VALUE_JSON: {
        json_t *j = json_loads(v->u.s.text, JSON_DECODE_ANY, NULL);
        return j ? j : json_null();
    }
    case CD_VALUE_LIST: {
        json_t *a = json_array();
        for (size_t i = 0; i < v->u.list.len; i++) json_array_append_new(a, cd_value_to_json_t(v->u.list.items[i]));
        return a;
    }
    case CD_VALUE_LINK: return json_pack("[s, i]", v->u.s.text, v->u.s.slot);
    case CD_VALUE_OPAQUE: {
        char buf[160];
        snprintf(buf, sizeof buf, "<%s>", v->u.opaque.type);
        return json_string(buf);
    }
    case CD_VALUE_BLOCKER: return json_null();
    case CD_VALUE_TENSOR: {
        /* What a client can use of a tensor in JSON: its type and shape, "<IMAGE [1, 64, 64, 3]>". */
        char buf[256];
        int n = snprintf(buf, sizeof buf, "<%.64s [", v->u.tensor.type);
        for (int i = 0; i < v->u.tensor.ndim && n < (int)sizeof buf; i++)
            n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%lld", i ? ", " : "", (long long)v->u.tensor.shape[i]);
        if (n < (int)sizeof buf) snprintf(buf + n, sizeof buf - (size_t)n, "]>");
        return json_string(buf);
    }
    }
    return json_null();
}

char *cd_value_to_json(const cd_value *v) {
    /* Python's json.dumps writes these tokens (allow_nan), which JSON itself lacks. */
    if (v && v->kind == CD_VALUE_FLOAT && !isfinite(v->u.f))
        return strdup(isnan(v->u.f) ? "NaN" : v->u.f > 0 ? "Infinity" : "-Infinity");
    json_t *j = cd_value_to_json_t(v);
    char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    json_decref(j);
    return s;
}

/* ---- signatures for cache keys ---- */

void cd_sig_begin(cd_sig_builder *b) {
    cd_buf_reset(&b->bytes);
    b->uncacheable = b->oom = false;
}

void cd_sig_bytes(cd_sig_builder *b, char tag, const void *data, size_t len) {
    /* tag, length, bytes: no two different sequences of items serialise alike */
    uint64_t n = len;
    if (cd_buf_append(&b->bytes, &tag, 1) < 0 || cd_buf_append(&b->bytes, &n, sizeof n) < 0 ||
        cd_buf_append(&b->bytes, data, len) < 0)
        b->oom = true;
}

void cd_sig_str(cd_sig_builder *b, const char *s) { cd_sig_bytes(b, 's', s, strlen(s)); }
void cd_sig_u64(cd_sig_builder *b, uint64_t x) { cd_sig_bytes(b, 'u', &x, sizeof x); }

void cd_sig_end(cd_sig_builder *b, cd_sig *out) {
    XXH128_hash_t h = XXH3_128bits(b->bytes.data ? b->bytes.data : "", b->bytes.len);
    out->h1 = h.low64;
    out->h2 = h.high64;
    out->uncacheable = b->uncacheable || b->oom;
}

void cd_sig_builder_free(cd_sig_builder *b) { cd_buf_free(&b->bytes); }

void cd_sig_value(cd_sig_builder *sig, const cd_value *v) {
    if (!v) {
        cd_sig_bytes(sig, 'N', "", 0);
        return;
    }
    switch (v->kind) {
    case CD_VALUE_NONE: cd_sig_bytes(sig, 'N', "", 0); break;
    case CD_VALUE_INT: cd_sig_bytes(sig, 'i', &v->u.i, sizeof v->u.i); break;
    case CD_VALUE_FLOAT:
        if (isnan(v->u.f)) sig->uncacheable = true; /* NaN never equals NaN */
        cd_sig_bytes(sig, 'f', &v->u.f, sizeof v->u.f);
        break;
    case CD_VALUE_BOOL: cd_sig_bytes(sig, 'b', &v->u.b, sizeof v->u.b); break;
    case CD_VALUE_STRING: cd_sig_bytes(sig, 's', v->u.s.text, v->u.s.len); break;
    case CD_VALUE_JSON: cd_sig_bytes(sig, 'j', v->u.s.text, v->u.s.len); break;
    case CD_VALUE_LINK:
        cd_sig_bytes(sig, 'l', v->u.s.text, v->u.s.len);
        cd_sig_bytes(sig, 'L', &v->u.s.slot, sizeof v->u.s.slot);
        break;
    case CD_VALUE_LIST:
        cd_sig_u64(sig, v->u.list.len);
        for (size_t i = 0; i < v->u.list.len; i++) cd_sig_value(sig, v->u.list.items[i]);
        break;
    case CD_VALUE_TENSOR:
    case CD_VALUE_OPAQUE:
    case CD_VALUE_BLOCKER:
        /* Python hashes such objects by identity: "unhashable", never a cache hit. */
        sig->uncacheable = true;
        break;
    }
}
