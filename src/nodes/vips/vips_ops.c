/* Nodes generated from libvips' own operation introspection: every operation whose arguments
 * map onto ComfyUI types becomes a node "Vips<Nickname>" in category "vips/<group>", with its
 * inputs, defaults, ranges and enum options read from the operation's GParamSpecs.
 *
 * What is never exposed: operations that read or write files or run commands (loaders and
 * savers of every kind, `system`, thumbnail-from-file, ICC profile loading, printing to stdout),
 * operations that draw into their input in place, deprecated operations and arguments, and
 * string arguments that name files (filename, fontfile, *profile*); nor the pipeline plumbing
 * (caches, sequential), which does nothing for a node. An operation whose required
 * arguments cannot be mapped is left out; an optional argument that cannot be mapped is omitted
 * (libvips uses its default).
 *
 * How values travel: an IMAGE goes in as 8-bit sRGB (0..255, as libvips' operations expect
 * natural images) and every image result comes back as float divided by 255, with one band
 * spread to RGB and two bands read as grey + alpha. A batch runs the operation once per image
 * (inputs with one image are reused for every index); scalar results come from the first run.
 * Arrays of numbers (linear's a and b, an ink colour) are typed as text, "1, 0.5, 2".
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/image/image.h"

typedef enum { ARG_IMAGE, ARG_INT, ARG_DOUBLE, ARG_BOOL, ARG_STRING, ARG_ENUM, ARG_ARRAY_DOUBLE, ARG_ARRAY_INT } arg_kind;

typedef struct {
    char *name;     /* libvips' argument name, "min-ampl" */
    char *input;    /* the node input or output name, "min_ampl" */
    arg_kind kind;
    GType type;     /* the enum type for ARG_ENUM */
    bool required;
} vips_arg;

typedef struct {
    char *nickname;
    vips_arg *in, *out;
    size_t n_in, n_out;
} vips_op;

/* Everything the generated definitions point to lives as long as the process. */
typedef struct {
    vips_op *ops;
    cd_node_def *defs;
    cd_output_def *outs;
    size_t n, cap;
} op_table;

/* ---- which operations and arguments ---- */

static bool denied_operation(const char *nick) {
    static const char *words[] = {"load", "save", "print", "system", "profile", "icc_", "cache", "sequential"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(nick, words[i])) return true;
    /* thumbnail opens a file by name; thumbnail_image works on an image */
    return !strncmp(nick, "thumbnail", 9) && strcmp(nick, "thumbnail_image");
}

static bool denied_string(const char *name) {
    return strstr(name, "filename") || strstr(name, "file") || strstr(name, "profile");
}

static bool map_kind(GParamSpec *ps, arg_kind *kind) {
    GType t = G_PARAM_SPEC_VALUE_TYPE(ps);
    if (t == VIPS_TYPE_IMAGE) *kind = ARG_IMAGE;
    else if (t == G_TYPE_INT) *kind = ARG_INT;
    else if (t == G_TYPE_DOUBLE) *kind = ARG_DOUBLE;
    else if (t == G_TYPE_BOOLEAN) *kind = ARG_BOOL;
    else if (t == G_TYPE_STRING) *kind = ARG_STRING;
    else if (G_TYPE_IS_ENUM(t)) *kind = ARG_ENUM;
    else if (t == VIPS_TYPE_ARRAY_DOUBLE) *kind = ARG_ARRAY_DOUBLE;
    else if (t == VIPS_TYPE_ARRAY_INT) *kind = ARG_ARRAY_INT;
    else return false;
    return true;
}

/* Output kinds a node can return. */
static bool output_kind_ok(arg_kind k) {
    return k == ARG_IMAGE || k == ARG_INT || k == ARG_DOUBLE || k == ARG_BOOL || k == ARG_ARRAY_DOUBLE;
}

typedef struct {
    vips_op *op;
    bool reject;
} collect_ctx;

static char *underscored(const char *name) {
    char *s = strdup(name);
    for (char *p = s; p && *p; p++)
        if (*p == '-') *p = '_';
    return s;
}

static void *collect_arg(VipsObject *object, GParamSpec *ps, VipsArgumentClass *ac, VipsArgumentInstance *ai, void *a,
                         void *b) {
    (void)object;
    (void)ai;
    (void)b;
    collect_ctx *c = a;
    VipsArgumentFlags f = ac->flags;
    if (!(f & VIPS_ARGUMENT_CONSTRUCT)) return NULL; /* nickname, description */
    bool required = (f & VIPS_ARGUMENT_REQUIRED) != 0;
    if (f & VIPS_ARGUMENT_MODIFY) {
        c->reject = true; /* draws into its input */
        return NULL;
    }
    if (f & VIPS_ARGUMENT_DEPRECATED) {
        if (required) c->reject = true;
        return NULL;
    }
    arg_kind kind;
    bool ok = map_kind(ps, &kind);
    if (ok && kind == ARG_STRING && denied_string(ps->name)) ok = false;
    bool output = (f & VIPS_ARGUMENT_OUTPUT) != 0;
    if (ok && output && !output_kind_ok(kind)) ok = false;
    if (!ok) {
        if (required) c->reject = true;
        return NULL;
    }
    if (output && !required) return NULL; /* optional results are not offered */
    vips_arg **list = output ? &c->op->out : &c->op->in;
    size_t *n = output ? &c->op->n_out : &c->op->n_in;
    vips_arg *grown = realloc(*list, (*n + 1) * sizeof **list);
    if (!grown) {
        c->reject = true;
        return NULL;
    }
    *list = grown;
    grown[*n] = (vips_arg){.name = strdup(ps->name), .input = underscored(ps->name), .kind = kind,
                           .type = G_PARAM_SPEC_VALUE_TYPE(ps), .required = required};
    (*n)++;
    return NULL;
}

static void op_free(vips_op *op) {
    for (size_t i = 0; i < op->n_in; i++) {
        free(op->in[i].name);
        free(op->in[i].input);
    }
    for (size_t i = 0; i < op->n_out; i++) {
        free(op->out[i].name);
        free(op->out[i].input);
    }
    free(op->in);
    free(op->out);
    free(op->nickname);
}

/* ---- the node definition ---- */

static const char *group_of(GType type, const char *nick) {
    static const struct {
        const char *class_name, *group;
    } groups[] = {{"VipsArithmetic", "arithmetic"}, {"VipsColour", "colour"},       {"VipsConversion", "conversion"},
                  {"VipsConvolution", "convolution"}, {"VipsCorrelation", "convolution"}, {"VipsCreate", "create"},
                  {"VipsFreqfilt", "freqfilt"},   {"VipsHistogram", "histogram"}, {"VipsMorphology", "morphology"},
                  {"VipsResample", "resample"},   {"VipsStatistic", "statistic"}};
    for (GType t = type; t && t != VIPS_TYPE_OPERATION; t = g_type_parent(t))
        for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
            if (!strcmp(g_type_name(t), groups[i].class_name)) return groups[i].group;
    if (!strncmp(nick, "hist_", 5) || !strcmp(nick, "maplut") || !strcmp(nick, "percent") || !strcmp(nick, "stdif"))
        return "histogram";
    if (strstr(nick, "RGB") || strstr(nick, "XYZ") || strstr(nick, "CMYK") || !strcmp(nick, "colourspace"))
        return "colour";
    if (!strcmp(nick, "canny") || !strcmp(nick, "sobel") || !strcmp(nick, "gaussblur") || !strcmp(nick, "sharpen"))
        return "convolution";
    if (!strcmp(nick, "getpoint") || !strcmp(nick, "measure") || !strcmp(nick, "find_trim")) return "statistic";
    if (strstr(nick, "mosaic") || !strcmp(nick, "merge") || !strcmp(nick, "match") || !strcmp(nick, "globalbalance"))
        return "mosaicing";
    return "other";
}

static void json_number(json_t *o, const char *key, double v) {
    if (v == (double)(json_int_t)v && v > -9e15 && v < 9e15) json_object_set_new(o, key, json_integer((json_int_t)v));
    else json_object_set_new(o, key, json_real(v));
}

/* ["INT", {"default": .., "min": .., "max": ..}] and the like, from the GParamSpec. */
static json_t *input_decl(const vips_arg *a, GParamSpec *ps) {
    json_t *opts = json_object();
    json_t *decl = NULL;
    switch (a->kind) {
    case ARG_IMAGE: decl = json_pack("[s]", "IMAGE"); break;
    case ARG_INT: {
        GParamSpecInt *p = G_PARAM_SPEC_INT(ps);
        json_number(opts, "default", p->default_value);
        json_number(opts, "min", p->minimum);
        json_number(opts, "max", p->maximum);
        decl = json_pack("[s]", "INT");
        break;
    }
    case ARG_DOUBLE: {
        GParamSpecDouble *p = G_PARAM_SPEC_DOUBLE(ps);
        json_number(opts, "default", p->default_value);
        json_number(opts, "min", p->minimum > -1e300 ? p->minimum : -1e300);
        json_number(opts, "max", p->maximum < 1e300 ? p->maximum : 1e300);
        json_object_set_new(opts, "step", json_real(0.01));
        decl = json_pack("[s]", "FLOAT");
        break;
    }
    case ARG_BOOL:
        json_object_set_new(opts, "default", json_boolean(G_PARAM_SPEC_BOOLEAN(ps)->default_value));
        decl = json_pack("[s]", "BOOLEAN");
        break;
    case ARG_STRING: {
        const char *d = G_PARAM_SPEC_STRING(ps)->default_value;
        json_object_set_new(opts, "default", json_string(d ? d : ""));
        decl = json_pack("[s]", "STRING");
        break;
    }
    case ARG_ENUM: {
        GEnumClass *ec = G_PARAM_SPEC_ENUM(ps)->enum_class;
        json_t *names = json_array();
        for (guint i = 0; i < ec->n_values; i++) {
            if (!strcmp(ec->values[i].value_nick, "last")) continue; /* the sentinel */
            json_array_append_new(names, json_string(ec->values[i].value_nick));
        }
        GEnumValue *d = g_enum_get_value(ec, G_PARAM_SPEC_ENUM(ps)->default_value);
        if (d) json_object_set_new(opts, "default", json_string(d->value_nick));
        decl = json_pack("[o]", names);
        break;
    }
    case ARG_ARRAY_DOUBLE:
    case ARG_ARRAY_INT:
        json_object_set_new(opts, "default", json_string(""));
        json_object_set_new(opts, "tooltip", json_string("numbers separated by commas, e.g. 1, 0.5, 2"));
        decl = json_pack("[s]", "STRING");
        break;
    }
    const char *blurb = g_param_spec_get_blurb(ps);
    if (blurb && !json_object_get(opts, "tooltip")) json_object_set_new(opts, "tooltip", json_string(blurb));
    json_array_append_new(decl, opts);
    return decl;
}

static char *camel(const char *nick) {
    GString *s = g_string_new("Vips");
    bool up = true;
    for (const char *p = nick; *p; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        g_string_append_c(s, up ? (char)toupper((unsigned char)*p) : *p);
        up = false;
    }
    char *r = strdup(s->str);
    g_string_free(s, TRUE);
    return r;
}

static int vips_execute(cd_node_call *call);

static bool build_def(op_table *t, GType type, VipsObjectClass *klass, vips_op *op, VipsOperation *instance) {
    json_t *inputs = json_object(), *req = json_object(), *opt = json_object();
    for (size_t i = 0; i < op->n_in; i++) {
        GParamSpec *ps;
        VipsArgumentClass *ac;
        VipsArgumentInstance *ai;
        if (vips_object_get_argument(VIPS_OBJECT(instance), op->in[i].name, &ps, &ac, &ai)) return false;
        json_object_set_new(op->in[i].required ? req : opt, op->in[i].input, input_decl(&op->in[i], ps));
    }
    json_object_set_new(inputs, "required", req);
    if (json_object_size(opt)) json_object_set_new(inputs, "optional", opt);
    else json_decref(opt);
    char *inputs_text = json_dumps(inputs, JSON_COMPACT);
    json_decref(inputs);
    cd_output_def *outs = calloc(op->n_out ? op->n_out : 1, sizeof *outs);
    if (!inputs_text || !outs) {
        free(inputs_text);
        free(outs);
        return false;
    }
    for (size_t i = 0; i < op->n_out; i++) {
        static const char *types[] = {"IMAGE", "INT", "FLOAT", "BOOLEAN", "STRING", "STRING", "STRING", "STRING"};
        outs[i] = (cd_output_def){types[op->out[i].kind], op->out[i].input, 0, NULL, NULL};
    }
    char *category = NULL, *display = NULL;
    if (asprintf(&category, "vips/%s", group_of(type, klass->nickname)) < 0) category = NULL;
    if (asprintf(&display, "vips %s", klass->nickname) < 0) display = NULL;
    t->defs[t->n] = (cd_node_def){.abi_version = CD_NODE_ABI_VERSION,
                                  .name = camel(klass->nickname),
                                  .display_name = display,
                                  .category = category,
                                  .description = strdup(klass->description ? klass->description : ""),
                                  .python_module = "comfyd.nodes_vips",
                                  .inputs = inputs_text,
                                  .outputs = outs,
                                  .n_outputs = (int)op->n_out,
                                  .execute = vips_execute,
                                  .user = &t->ops[t->n]};
    t->ops[t->n] = *op;
    t->n++;
    return true;
}

static void *visit_type(GType type, void *a) {
    op_table *t = a;
    if (G_TYPE_IS_ABSTRACT(type)) return NULL;
    VipsObjectClass *klass = g_type_class_ref(type);
    VipsOperationClass *oc = VIPS_OPERATION_CLASS(klass);
    const char *nick = klass->nickname;
    bool foreign = g_type_is_a(type, g_type_from_name("VipsForeign"));
    if (!nick || foreign || denied_operation(nick) || (oc->flags & VIPS_OPERATION_DEPRECATED)) return NULL;
    /* Some operations are registered twice under one nickname (crop is an alias type of
     * extract_area): the first one stands. */
    char *name = camel(nick);
    for (size_t i = 0; i < t->n && name; i++)
        if (!strcmp(t->defs[i].name, name)) {
            free(name);
            return NULL;
        }
    free(name);
    VipsOperation *instance = vips_operation_new(nick);
    if (!instance) {
        vips_error_clear();
        return NULL;
    }
    vips_op op = {.nickname = strdup(nick)};
    collect_ctx c = {.op = &op};
    vips_argument_map(VIPS_OBJECT(instance), collect_arg, &c, NULL);
    bool keep = !c.reject && op.n_out > 0;
    if (keep && t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        vips_op *ops = realloc(t->ops, cap * sizeof *ops);
        cd_node_def *defs = ops ? realloc(t->defs, cap * sizeof *defs) : NULL;
        if (ops) t->ops = ops;
        if (defs) t->defs = defs;
        if (ops && defs) t->cap = cap;
        else keep = false;
    }
    /* The definitions point into t->ops, so growth must happen before any is registered:
     * they are registered only after every type has been visited. */
    if (!(keep && build_def(t, type, klass, &op, instance))) op_free(&op);
    g_object_unref(instance);
    return NULL;
}

/* ---- running an operation ---- */

static int parse_numbers(const char *text, double **out, int *n) {
    *out = NULL;
    *n = 0;
    int cap = 0;
    const char *p = text ? text : "";
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        char *end;
        double v = strtod(p, &end);
        if (end == p) {
            free(*out);
            return -1;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            double *g = realloc(*out, (size_t)cap * sizeof *g);
            if (!g) {
                free(*out);
                return -1;
            }
            *out = g;
        }
        (*out)[(*n)++] = v;
        p = end;
    }
    return 0;
}

/* One image of the batch as 8-bit sRGB. */
static VipsImage *image_in(const cd_value *t, int64_t index) {
    VipsImage *f = cd_img_to_vips(t, index), *u = NULL;
    if (!f) return NULL;
    int rc = vips_linear1(f, &u, 255.0, 0.0, "uchar", TRUE, NULL);
    g_object_unref(f);
    if (rc) return NULL;
    u->Type = vips_image_get_bands(u) >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
    return u;
}

/* A result as an IMAGE [1, H, W, 3 or 4], scaled by 1/255. */
static cd_value *image_out(VipsImage *im) {
    VipsImage *f = NULL, *shaped = NULL;
    if (vips_cast(im, &f, VIPS_FORMAT_FLOAT, NULL)) return NULL;
    int bands = vips_image_get_bands(f);
    int rc = 0;
    if (bands == 1) {
        VipsImage *in3[3] = {f, f, f};
        rc = vips_bandjoin(in3, &shaped, 3, NULL);
    } else if (bands == 2) {
        VipsImage *g = NULL, *al = NULL;
        rc = vips_extract_band(f, &g, 0, NULL) || vips_extract_band(f, &al, 1, NULL);
        if (!rc) {
            VipsImage *in4[4] = {g, g, g, al};
            rc = vips_bandjoin(in4, &shaped, 4, NULL);
        }
        if (g) g_object_unref(g);
        if (al) g_object_unref(al);
    } else if (bands > 4) {
        rc = vips_extract_band(f, &shaped, 0, "n", 4, NULL);
    } else {
        shaped = f;
        g_object_ref(shaped);
    }
    g_object_unref(f);
    if (rc) return NULL;
    VipsImage *scaled = NULL;
    rc = vips_linear1(shaped, &scaled, 1.0 / 255.0, 0.0, NULL);
    g_object_unref(shaped);
    if (rc) return NULL;
    cd_value *v = cd_img_from_vips(scaled, false);
    g_object_unref(scaled);
    return v;
}

static int set_input(cd_node_call *call, VipsOperation *op, const vips_arg *a, int64_t index) {
    const cd_value *v = cd_call_input(call, a->input);
    if (!v) return CD_OK; /* optional and absent: libvips' default */
    GValue gv = G_VALUE_INIT;
    switch (a->kind) {
    case ARG_IMAGE: {
        int64_t b = cd_value_tensor_dim(v, 0);
        VipsImage *im = cd_value_tensor_ndim(v) == 4 ? image_in(v, b == 1 ? 0 : index) : NULL;
        if (!im) return cd_call_fail(call, "ValueError", "%s: expected an IMAGE", a->input);
        g_value_init(&gv, VIPS_TYPE_IMAGE);
        g_value_take_object(&gv, im);
        break;
    }
    case ARG_INT:
        g_value_init(&gv, G_TYPE_INT);
        g_value_set_int(&gv, (int)cd_value_as_int(v));
        break;
    case ARG_DOUBLE:
        g_value_init(&gv, G_TYPE_DOUBLE);
        g_value_set_double(&gv, cd_value_as_float(v));
        break;
    case ARG_BOOL:
        g_value_init(&gv, G_TYPE_BOOLEAN);
        g_value_set_boolean(&gv, cd_value_as_bool(v));
        break;
    case ARG_STRING:
        g_value_init(&gv, G_TYPE_STRING);
        g_value_set_string(&gv, cd_value_as_string(v) ? cd_value_as_string(v) : "");
        break;
    case ARG_ENUM: {
        int e = vips_enum_from_nick("comfyd", a->type, cd_value_as_string(v) ? cd_value_as_string(v) : "");
        if (e < 0) {
            vips_error_clear();
            return cd_call_fail(call, "ValueError", "%s: unknown option", a->input);
        }
        g_value_init(&gv, a->type);
        g_value_set_enum(&gv, e);
        break;
    }
    case ARG_ARRAY_DOUBLE:
    case ARG_ARRAY_INT: {
        double *nums;
        int n;
        if (parse_numbers(cd_value_as_string(v), &nums, &n) < 0)
            return cd_call_fail(call, "ValueError", "%s: expected numbers separated by commas", a->input);
        if (n == 0) {
            if (!a->required) return CD_OK;
            return cd_call_fail(call, "ValueError", "%s: give at least one number", a->input);
        }
        if (a->kind == ARG_ARRAY_DOUBLE) {
            g_value_init(&gv, VIPS_TYPE_ARRAY_DOUBLE);
            vips_value_set_array_double(&gv, nums, n);
        } else {
            int *ints = malloc((size_t)n * sizeof *ints);
            for (int i = 0; ints && i < n; i++) ints[i] = (int)nums[i];
            g_value_init(&gv, VIPS_TYPE_ARRAY_INT);
            if (ints) vips_value_set_array_int(&gv, ints, n);
            free(ints);
        }
        free(nums);
        break;
    }
    }
    g_object_set_property(G_OBJECT(op), a->name, &gv);
    g_value_unset(&gv);
    return CD_OK;
}

/* Runs the operation for batch index `index`; images[i] collects image results. */
static int run_once(cd_node_call *call, const vips_op *spec, int64_t index, cd_value **images, bool scalars) {
    VipsOperation *op = vips_operation_new(spec->nickname);
    if (!op) return cd_img_fail_vips(call, spec->nickname);
    int rc = CD_OK;
    for (size_t i = 0; i < spec->n_in && rc == CD_OK; i++) rc = set_input(call, op, &spec->in[i], index);
    if (rc == CD_OK && vips_cache_operation_buildp(&op)) rc = cd_img_fail_vips(call, spec->nickname);
    for (size_t i = 0; i < spec->n_out && rc == CD_OK; i++) {
        const vips_arg *a = &spec->out[i];
        GValue gv = G_VALUE_INIT;
        g_value_init(&gv, a->type == VIPS_TYPE_IMAGE ? VIPS_TYPE_IMAGE : a->type);
        g_object_get_property(G_OBJECT(op), a->name, &gv);
        if (a->kind == ARG_IMAGE) {
            cd_value *img = image_out(g_value_get_object(&gv));
            if (!img) rc = cd_img_fail_vips(call, spec->nickname);
            images[i] = img;
        } else if (scalars) {
            cd_value *v = NULL;
            if (a->kind == ARG_INT) v = cd_value_int(g_value_get_int(&gv));
            else if (a->kind == ARG_DOUBLE) v = cd_value_float(g_value_get_double(&gv));
            else if (a->kind == ARG_BOOL) v = cd_value_bool(g_value_get_boolean(&gv));
            else {
                int n = 0;
                double *d = vips_value_get_array_double(&gv, &n);
                GString *s = g_string_new("");
                for (int k = 0; k < n; k++) g_string_append_printf(s, "%s%.17g", k ? ", " : "", d[k]);
                v = cd_value_string(s->str);
                g_string_free(s, TRUE);
            }
            cd_call_set_output(call, (int)i, v);
        }
        g_value_unset(&gv);
    }
    vips_object_unref_outputs(VIPS_OBJECT(op));
    g_object_unref(op);
    return rc;
}

static int vips_execute(cd_node_call *call) {
    const vips_op *spec = cd_call_user(call);
    /* The batch: the largest among the image inputs; others must have one image or as many. */
    int64_t batch = 1;
    for (size_t i = 0; i < spec->n_in; i++) {
        if (spec->in[i].kind != ARG_IMAGE) continue;
        const cd_value *v = cd_call_input(call, spec->in[i].input);
        int64_t b = v ? cd_value_tensor_dim(v, 0) : 1;
        if (b != 1 && batch != 1 && b != batch)
            return cd_call_fail(call, "ValueError", "image batches of %lld and %lld do not pair up", (long long)batch,
                                (long long)b);
        if (b > batch) batch = b;
    }
    cd_value ***parts = calloc(spec->n_out ? spec->n_out : 1, sizeof *parts);
    cd_value **row = calloc(spec->n_out ? spec->n_out : 1, sizeof *row);
    int rc = parts && row ? CD_OK : cd_call_fail(call, "MemoryError", "out of memory");
    for (size_t i = 0; i < spec->n_out && rc == CD_OK; i++)
        if (spec->out[i].kind == ARG_IMAGE && !(parts[i] = calloc((size_t)batch, sizeof **parts)))
            rc = cd_call_fail(call, "MemoryError", "out of memory");
    for (int64_t b = 0; b < batch && rc == CD_OK; b++) {
        if (cd_call_interrupted(call)) rc = CD_INTERRUPTED;
        else rc = run_once(call, spec, b, row, b == 0);
        for (size_t i = 0; i < spec->n_out; i++) {
            if (parts && parts[i]) parts[i][b] = row[i];
            else cd_value_unref(row[i]);
            row[i] = NULL;
        }
    }
    for (size_t i = 0; parts && i < spec->n_out; i++) {
        if (!parts[i]) continue;
        if (rc == CD_OK) {
            cd_value *all = cd_img_cat(call, parts[i], (size_t)batch);
            if (!all) rc = CD_ERROR;
            else cd_call_set_output(call, (int)i, all);
        } else {
            for (int64_t b = 0; b < batch; b++) cd_value_unref(parts[i][b]);
        }
        free(parts[i]);
    }
    free(parts);
    free(row);
    return rc;
}

int cd_nodes_vips_init(cd_pack *pack) {
    if (VIPS_INIT("comfyd")) return CD_ERROR;
    vips_cache_set_max(0);
    /* Built once per process (a restart builds it again); the registry keeps pointers into it. */
    static op_table table;
    if (!table.n) vips_type_map_all(VIPS_TYPE_OPERATION, visit_type, &table);
    /* Now that t->ops no longer moves, point each definition at its operation. */
    for (size_t i = 0; i < table.n; i++) {
        table.defs[i].user = &table.ops[i];
        cd_pack_register(pack, &table.defs[i]);
    }
    return CD_OK;
}
