/* Tensor helpers, SmartType validation, sleeping with progress, and the pack's entry point. */
#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp.h"

cd_value *tp_image_fill(int64_t b, int64_t h, int64_t w, float value) {
    int64_t shape[4] = {b, h, w, 3};
    cd_value *t = cd_value_tensor_new("IMAGE", 4, shape);
    if (!t) return NULL;
    float *d = cd_value_tensor_data_mut(t);
    size_t n = cd_value_tensor_numel(t);
    for (size_t i = 0; i < n; i++) d[i] = value;
    return t;
}

cd_value *tp_tensor_copy(const cd_value *t) {
    int nd = cd_value_tensor_ndim(t);
    int64_t shape[CD_TENSOR_MAX_DIMS];
    for (int i = 0; i < nd; i++) shape[i] = cd_value_tensor_dim(t, i);
    cd_value *c = cd_value_tensor_new(cd_value_tensor_type(t), nd, shape);
    if (!c) return NULL;
    size_t n = cd_value_tensor_numel(t);
    if (n) memcpy(cd_value_tensor_data_mut(c), cd_value_tensor_data(t), n * sizeof(float));
    return c;
}

cd_value *tp_tensor_scale(const cd_value *t, double s) {
    cd_value *c = tp_tensor_copy(t);
    if (!c) return NULL;
    float *d = cd_value_tensor_data_mut(c);
    float f = (float)s;
    size_t n = cd_value_tensor_numel(c);
    for (size_t i = 0; i < n; i++) d[i] = d[i] * f;
    return c;
}

void tp_minmax(const cd_value *t, float *mn, float *mx) {
    size_t n = cd_value_tensor_numel(t);
    const float *d = cd_value_tensor_data(t);
    *mn = *mx = 0;
    if (!n) return;
    *mn = *mx = d[0];
    for (size_t i = 1; i < n; i++) {
        if (d[i] < *mn) *mn = d[i];
        if (d[i] > *mx) *mx = d[i];
    }
}

cd_value *tp_broadcast(cd_node_call *call, const cd_value *a, const cd_value *b, char op) {
    int na = cd_value_tensor_ndim(a), nb = cd_value_tensor_ndim(b);
    int nd = na > nb ? na : nb;
    int64_t sa[CD_TENSOR_MAX_DIMS], sb[CD_TENSOR_MAX_DIMS], so[CD_TENSOR_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - na), ib = i - (nd - nb);
        sa[i] = ia >= 0 ? cd_value_tensor_dim(a, ia) : 1;
        sb[i] = ib >= 0 ? cd_value_tensor_dim(b, ib) : 1;
        if (sa[i] != sb[i] && sa[i] != 1 && sb[i] != 1) {
            cd_call_fail(call, "RuntimeError",
                         "The size of tensor a (%lld) must match the size of tensor b (%lld) at non-singleton "
                         "dimension %d",
                         (long long)sa[i], (long long)sb[i], i);
            return NULL;
        }
        so[i] = sa[i] == 1 ? sb[i] : sa[i];
    }
    const char *type = cd_value_tensor_type(na >= nb ? a : b);
    cd_value *out = cd_value_tensor_new(type, nd, so);
    if (!out) {
        cd_call_fail(call, "RuntimeError", "out of memory");
        return NULL;
    }
    float *o = cd_value_tensor_data_mut(out);
    const float *da = cd_value_tensor_data(a), *db = cd_value_tensor_data(b);
    size_t n = cd_value_tensor_numel(out);
    /* strides of a and b in the output's index space (0 along broadcast dimensions) */
    int64_t st_a[CD_TENSOR_MAX_DIMS], st_b[CD_TENSOR_MAX_DIMS];
    int64_t ra = 1, rb = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st_a[i] = sa[i] == 1 ? 0 : ra;
        st_b[i] = sb[i] == 1 ? 0 : rb;
        ra *= sa[i];
        rb *= sb[i];
    }
    int64_t idx[CD_TENSOR_MAX_DIMS] = {0};
    int64_t oa = 0, ob = 0;
    for (size_t k = 0; k < n; k++) {
        float x = da[oa], y = db[ob];
        o[k] = op == '+' ? x + y : op == '-' ? x - y : x * y;
        for (int i = nd - 1; i >= 0; i--) {
            idx[i]++;
            oa += st_a[i];
            ob += st_b[i];
            if (idx[i] < so[i]) break;
            oa -= st_a[i] * so[i];
            ob -= st_b[i] * so[i];
            idx[i] = 0;
        }
    }
    return out;
}

cd_value *tp_mul_values(cd_node_call *call, const cd_value *a, const cd_value *b) {
    cd_value_kind ka = cd_value_kind_of(a), kb = cd_value_kind_of(b);
    bool fa = ka == CD_VALUE_FLOAT || ka == CD_VALUE_INT, fb = kb == CD_VALUE_FLOAT || kb == CD_VALUE_INT;
    if (ka == CD_VALUE_FLOAT && kb == CD_VALUE_FLOAT) {
        cd_value *ones = tp_image_fill(1, 512, 512, 1.0f);
        cd_value *t = ones ? tp_tensor_scale(ones, cd_value_as_float(a)) : NULL;
        cd_value_unref(ones);
        cd_value *r = t ? tp_tensor_scale(t, cd_value_as_float(b)) : NULL;
        cd_value_unref(t);
        if (!r) cd_call_fail(call, "RuntimeError", "out of memory");
        return r;
    }
    if (ka == CD_VALUE_TENSOR && fb) return tp_tensor_scale(a, cd_value_as_float(b));
    if (fa && kb == CD_VALUE_TENSOR) return tp_tensor_scale(b, cd_value_as_float(a));
    if (ka == CD_VALUE_TENSOR && kb == CD_VALUE_TENSOR) return tp_broadcast(call, a, b, '*');
    if (fa && fb) {
        cd_call_fail(call, "AttributeError", "'float' object has no attribute 'shape'");
        return NULL;
    }
    cd_call_fail(call, "TypeError", "unsupported operand type(s) for *");
    return NULL;
}

/* ---- SmartType ---- */

/* Is every comma-separated element of `sub` in `super`? */
static bool type_subset(const char *sub, const char *super) {
    const char *p = sub;
    while (1) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool found = false;
        const char *q = super;
        while (1) {
            const char *f = strchr(q, ',');
            size_t l2 = f ? (size_t)(f - q) : strlen(q);
            if (l2 == len && !strncmp(p, q, len)) found = true;
            if (!f || found) break;
            q = f + 1;
        }
        if (!found) return false;
        if (!e) return true;
        p = e + 1;
    }
}

/* cd_node_def.user of a SmartType node: NULL-terminated {input, declared type} pairs for the
 * inputs whose declared type is not "*" (those match anything). */
int tp_variant_validate(cd_node_call *call) {
    const char *const *decl = cd_call_user(call);
    for (size_t i = 0; i < cd_call_input_count(call); i++) {
        const char *name = cd_call_input_name_at(call, i);
        const char *received = cd_call_input_type(call, name);
        if (!received || !decl) continue;
        for (size_t k = 0; decl[k]; k += 2) {
            if (strcmp(decl[k], name)) continue;
            const char *expected = decl[k + 1];
            if (strcmp(received, "*") && strcmp(expected, "*") && !type_subset(received, expected))
                return cd_call_fail(call, NULL, "Invalid type of %s: %s (expected %s)", name, received, expected);
        }
    }
    return CD_OK;
}

void tp_pyfloat(double d, char *buf, size_t len) {
    if (isnan(d)) {
        snprintf(buf, len, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, len, d > 0 ? "inf" : "-inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    if (!strpbrk(buf, ".e")) strncat(buf, ".0", len - strlen(buf) - 1);
}

double tp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int tp_sleep(cd_node_call *call, double seconds, bool report) {
    double start = tp_now(), now = start, end = start + seconds;
    while (now < end) {
        now = tp_now();
        double v = now - start;
        if (v > seconds) v = seconds;
        if (report) {
            if (cd_call_progress(call, v, seconds) == CD_INTERRUPTED) return CD_INTERRUPTED;
        } else if (cd_call_interrupted(call)) {
            return CD_INTERRUPTED;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
    }
    return CD_OK;
}

typedef struct {
    cd_node_call *call;
    int (*work)(cd_node_call *call);
} spawned;

static void *spawned_main(void *arg) {
    spawned sp = *(spawned *)arg;
    free(arg);
    cd_call_finish(sp.call, sp.work(sp.call));
    return NULL;
}

int tp_spawn(cd_node_call *call, int (*work)(cd_node_call *call)) {
    spawned *sp = malloc(sizeof *sp);
    pthread_attr_t attr;
    pthread_t th;
    if (!sp) return work(call);
    sp->call = call;
    sp->work = work;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &attr, spawned_main, sp);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(sp);
        return work(call);
    }
    return CD_PENDING;
}

int comfyd_pack_init(cd_pack *pack) {
    tp_register_specific(pack);
    tp_register_flow(pack);
    tp_register_util(pack);
    tp_register_conditions(pack);
    tp_register_stubs(pack);
    tp_register_async(pack);
    tp_register_api(pack);
    return CD_OK;
}
