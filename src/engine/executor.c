#include "engine/executor.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "base/arena.h"
#include "base/json.h"
#include "base/log.h"
#include "base/map.h"
#include "engine/call.h"
#include "engine/prompt.h"
#include "engine/value.h"

#define MAX_KEPT_RUNS 16

struct cd_executor {
    const cd_registry *reg;
    cd_cache *cache;
    cd_cache_policy policy;
    cd_event_sink sink;
    atomic_int interrupt;
    /* The last prompt that ran to the end with every node's result in the cache, for a repeat
     * of it (see rerun_cached). */
    struct {
        json_t *prompt; /* the validated prompt object (a reference: it is never changed) */
        cd_sig *keys;   /* each node's signature, in the prompt's order */
        /* made by the first repeat: */
        cd_map *index;  /* node id -> position + 1 (keys borrowed from prompt) */
        json_t *ids;    /* every node id, in order: execution_cached of a repeat (shared) */
        char *ids_text; /* ids as the event writes them, made by the first repeat with a client */
        /* each node's cache entry, as the last repeat found them, and the cache version then */
        const cd_cache_entry **entries;
        uint64_t entries_version;
        size_t n;
    } last;
    /* Runs that ended, freed by cd_executor_collect: a large graph takes as long to free as
     * to build, and neither the client waiting for the prompt's last event nor the next prompt
     * in the queue needs that done first. At most MAX_KEPT_RUNS wait. */
    struct run_ctx *finished[MAX_KEPT_RUNS];
    size_t n_finished;
    /* Async nodes: the threads that end their calls hand over through these (see async_job). */
    pthread_mutex_t amu;
    pthread_cond_t acond;
};

static void forget_last(cd_executor *ex) {
    json_decref(ex->last.prompt);
    free(ex->last.keys);
    cd_map_free(ex->last.index);
    json_decref(ex->last.ids);
    free(ex->last.ids_text);
    free(ex->last.entries);
    memset(&ex->last, 0, sizeof ex->last);
}

/* Per-node state for one run. */
typedef struct nstate nstate;
struct nstate {
    cd_prompt_node *node;
    cd_sig sig;
    bool sig_done, sig_busy;
    cd_value *fingerprint; /* IS_CHANGED value, or NULL when the class has none */
    const cd_cache_entry *entry; /* results (cached or computed this run) */
    int block_count;
    bool pending, ready, done;
    nstate **dependents;
    size_t n_dep, cap_dep;
    /* expansion: the per-call outputs waiting for the subgraph */
    cd_value ***exp_outputs; /* [call][slot] */
    json_t *exp_ui;
    size_t exp_calls;
    bool expanding;
    /* an async node whose calls started and whose results are not taken yet: its job is in
     * the run's jobs (a flag, not a pointer, so that the state stays as small as it was) */
    bool in_flight;
    size_t order; /* insertion order into the execution list */
};

typedef struct run_ctx {
    cd_executor *ex;
    cd_prompt *prompt;
    /* Node states by the node's position in the prompt (NULL until needed), allocated from
     * the run's arena: a run of 100,000 nodes makes one state each, and they all end together. */
    nstate **by_index;
    size_t cap_index;
    cd_arena arena;
    nstate **all;   /* every state, in the order made */
    size_t n_all, cap_all;
    nstate **ready; /* sorted by order */
    size_t n_ready, cap_ready, n_ready_first;
    size_t n_pending;
    size_t order_counter;
    const char *prompt_id;
    const char *client_id; /* NULL: no per-prompt events */
    /* The nodes that ran, in order: their ids are listed only in error and interrupt events,
     * so they are kept as states and written out when one is sent. */
    nstate **executed;
    size_t n_executed, cap_executed;
    json_t *messages;
    cd_call_env env;
    char *extra_pnginfo;
    const json_t *prompt_json, *extra_data; /* for env_make_texts */
    bool texts_made;
    const char *current_node;
    nstate *current;
    bool failed, interrupted;
    json_t *error;
    /* A node's progress_state "finished" entry not sent yet (see progress_state_text). */
    cd_buf held;
    cd_buf msg; /* the per-node messages are written here; the sink copies them */
    cd_sig_builder sig; /* the key being made (sign_node) */
    /* Async nodes (see async_job). jobs and n_jobs are the executor thread's; done and events
     * are filled by the threads that end async calls, under ex->amu. */
    struct async_job **jobs;
    size_t n_jobs, cap_jobs;
    struct async_job *done;
    struct async_event *events, **events_tail;
    atomic_int cancel; /* the prompt ended: pending async calls see an interrupt */
    pthread_t thread;  /* the executor thread */
    cd_call_env aenv;  /* the environment of async calls */
} run_ctx;

/* ---- events ---- */

static int64_t now_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void flush_held(run_ctx *r);
static nstate *state_of(run_ctx *r, const cd_prompt_node *n);

static void emit(run_ctx *r, const char *type, json_t *data, const char *sid) {
    flush_held(r);
    if (r->ex->sink.event) r->ex->sink.event(r->ex->sink.ctx, type, data, sid);
    else json_decref(data);
}

/* Events only the submitting client gets, and nobody when the prompt has no client. */
static void emit_client(run_ctx *r, const char *type, json_t *data) {
    if (!r->client_id) {
        json_decref(data);
        return;
    }
    emit(r, type, data, r->client_id);
}

/* Status messages also go into the history entry. */
static void add_message(run_ctx *r, const char *type, json_t *data, bool broadcast_without_client) {
    json_array_append_new(r->messages, json_pack("[s, O]", type, data));
    if (r->client_id || broadcast_without_client) emit(r, type, data, r->client_id);
    else json_decref(data);
}

/* Sends {"type": "progress_state", "data": {"prompt_id", "nodes": {<entries>}}}, written into
 * r->msg (which keeps its memory from node to node). */
static bool send_progress_state(run_ctx *r, const char *entries, size_t len) {
    cd_buf *b = &r->msg;
    cd_buf_reset(b);
    int rc = cd_buf_append_str(b, "{\"type\": \"progress_state\", \"data\": {\"prompt_id\": ");
    rc |= cd_json_append_string(b, r->prompt_id);
    rc |= cd_buf_append_str(b, ", \"nodes\": {");
    rc |= cd_buf_append(b, entries, len);
    rc |= cd_buf_append_str(b, "}}}");
    if (rc < 0) return false;
    r->ex->sink.event_text(r->ex->sink.ctx, "progress_state", NULL, b->data, b->len, r->client_id);
    return true;
}

/* The held "finished" entry goes out on its own: before any other event, so that the order of
 * events stays what it was. */
static void flush_held(run_ctx *r) {
    if (!r->held.len) return;
    send_progress_state(r, r->held.data, r->held.len);
    cd_buf_reset(&r->held);
}

/* One node's entry of a progress_state message, appended to b. */
static int append_progress_entry(run_ctx *r, cd_buf *b, nstate *s, const char *state, double value, double max) {
    const cd_prompt_node *n = s->node;
    int rc = cd_json_append_string(b, n->id);
    rc |= cd_buf_append_str(b, ": {\"value\": ");
    rc |= cd_json_append_number(b, value);
    rc |= cd_buf_append_str(b, ", \"max\": ");
    rc |= cd_json_append_number(b, max);
    rc |= cd_buf_append_str(b, ", \"state\": \"");
    rc |= cd_buf_append_str(b, state);
    rc |= cd_buf_append_str(b, "\", \"node_id\": ");
    rc |= cd_json_append_string(b, n->id);
    rc |= cd_buf_append_str(b, ", \"prompt_id\": ");
    rc |= cd_json_append_string(b, r->prompt_id);
    rc |= cd_buf_append_str(b, ", \"display_node_id\": ");
    rc |= cd_json_append_string(b, cd_prompt_display_id(r->prompt, n));
    rc |= cd_buf_append_str(b, ", \"parent_node_id\": ");
    rc |= n->parent ? cd_json_append_string(b, n->parent) : cd_buf_append_str(b, "null");
    rc |= cd_buf_append_str(b, ", \"real_node_id\": ");
    rc |= cd_json_append_string(b, cd_prompt_real_id(r->prompt, n));
    rc |= cd_buf_append_str(b, "}");
    return rc;
}

/* progress_state written straight to text: it goes out twice per node, and building it through
 * jansson and serialising it again was most of the per-node cost.
 * A node's "finished" is held back and sent in the same message as the next node's "running"
 * when nothing else comes between them: ComfyUI's own progress_state lists every node that
 * is not pending, so a message naming both is one it could send itself, and a chain of N
 * nodes costs N such messages instead of 2N. */
static bool progress_state_text(run_ctx *r, nstate *s, const char *state, double value, double max) {
    if (!strcmp(state, "finished")) {
        flush_held(r);
        if (append_progress_entry(r, &r->held, s, state, value, max) == 0) return true;
        cd_buf_reset(&r->held);
        return false;
    }
    /* "running": after the held entry, if any, in one message */
    size_t mark = r->held.len;
    int rc = mark ? cd_buf_append_str(&r->held, ", ") : 0;
    rc |= append_progress_entry(r, &r->held, s, state, value, max);
    bool ok = rc == 0 && send_progress_state(r, r->held.data, r->held.len);
    if (!ok && mark) { /* the held entry alone still goes out, and the caller sends the rest */
        r->held.len = mark;
        r->held.data[mark] = '\0';
        flush_held(r);
    }
    cd_buf_reset(&r->held);
    return ok;
}

static void progress_state(run_ctx *r, nstate *s, const char *state, double value, double max) {
    if (r->ex->sink.event_text && progress_state_text(r, s, state, value, max)) return;
    const cd_prompt_node *n = s->node;
    const char *parent = n->parent;
    json_t *node = json_pack("{s:f, s:f, s:s, s:s, s:s, s:s, s:o, s:s}", "value", value, "max", max, "state", state,
                             "node_id", n->id, "prompt_id", r->prompt_id, "display_node_id",
                             cd_prompt_display_id(r->prompt, n), "parent_node_id",
                             parent ? json_string(parent) : json_null(), "real_node_id",
                             cd_prompt_real_id(r->prompt, n));
    json_t *nodes = json_object();
    json_object_set_new(nodes, n->id, node);
    /* Only the node that changed: ComfyUI resends every node each time, which makes the
     * traffic quadratic in the graph size. */
    emit(r, "progress_state", json_pack("{s:s, s:o}", "prompt_id", r->prompt_id, "nodes", nodes), r->client_id);
}

/* `executing` for a node that starts running: to the prompt's client only. */
static void emit_executing(run_ctx *r, const char *node, const char *display) {
    flush_held(r);
    if (!r->client_id) return;
    if (r->ex->sink.event_text) {
        cd_buf *b = &r->msg;
        cd_buf_reset(b);
        int rc = cd_buf_append_str(b, "{\"type\": \"executing\", \"data\": {\"node\": ");
        rc |= cd_json_append_string(b, node);
        rc |= cd_buf_append_str(b, ", \"display_node\": ");
        rc |= cd_json_append_string(b, display);
        rc |= cd_buf_append_str(b, ", \"prompt_id\": ");
        rc |= cd_json_append_string(b, r->prompt_id);
        rc |= cd_buf_append_str(b, "}}");
        if (rc == 0) {
            r->ex->sink.event_text(r->ex->sink.ctx, "executing", display, b->data, b->len, r->client_id);
            return;
        }
    }
    emit(r, "executing", json_pack("{s:s, s:s, s:s}", "node", node, "display_node", display, "prompt_id", r->prompt_id),
         r->client_id);
}

/* ---- call environment (progress and interrupt from inside nodes) ---- */

/* PROMPT and EXTRA_PNGINFO as JSON text, made when a node first asks: most prompts have no
 * node that reads them, and serialising a large prompt (and the frontend's workflow) on every
 * run is not free. */
static void env_make_texts(void *ctx) {
    run_ctx *r = ctx;
    if (r->texts_made) return;
    r->texts_made = true;
    r->prompt->json_text = cd_json_dumps_compact(r->prompt_json, 0);
    json_t *pnginfo = json_object_get(r->extra_data, "extra_pnginfo");
    r->extra_pnginfo = pnginfo ? cd_json_dumps_compact(pnginfo, JSON_ENCODE_ANY) : NULL;
    r->env.prompt_json = r->aenv.prompt_json = r->prompt->json_text;
    r->env.extra_pnginfo_json = r->aenv.extra_pnginfo_json = r->extra_pnginfo;
}

static int env_interrupted(void *ctx) {
    run_ctx *r = ctx;
    return atomic_load(&r->ex->interrupt) != 0;
}

static void env_progress(void *ctx, const char *node_id, double value, double max) {
    run_ctx *r = ctx;
    cd_prompt_node *n = cd_prompt_get(r->prompt, node_id);
    nstate *s = n ? state_of(r, n) : NULL;
    emit(r, "progress",
         json_pack("{s:f, s:f, s:s, s:s}", "value", value, "max", max, "prompt_id", r->prompt_id, "node", node_id),
         r->client_id);
    if (s) progress_state(r, s, "running", value, max);
}

static void env_text(void *ctx, const char *node_id, const char *text) {
    run_ctx *r = ctx;
    if (!r->ex->sink.binary) return;
    flush_held(r);
    size_t idlen = strlen(node_id), tlen = strlen(text);
    unsigned char *buf = malloc(4 + idlen + tlen);
    if (!buf) return;
    buf[0] = (unsigned char)(idlen >> 24);
    buf[1] = (unsigned char)(idlen >> 16);
    buf[2] = (unsigned char)(idlen >> 8);
    buf[3] = (unsigned char)idlen;
    memcpy(buf + 4, node_id, idlen);
    memcpy(buf + 4 + idlen, text, tlen);
    /* Node text goes to everyone, as ComfyUI's send_progress_text without a sid. */
    r->ex->sink.binary(r->ex->sink.ctx, 3, buf, 4 + idlen + tlen, NULL);
    free(buf);
}

static void env_preview(void *ctx, const char *node_id, const char *mime, const void *bytes, size_t len) {
    run_ctx *r = ctx;
    (void)node_id;
    if (!r->ex->sink.binary) return;
    flush_held(r);
    unsigned char *buf = malloc(4 + len);
    if (!buf) return;
    uint32_t fmt = strcmp(mime, "image/png") == 0 ? 2 : 1;
    buf[0] = buf[1] = buf[2] = 0;
    buf[3] = (unsigned char)fmt;
    memcpy(buf + 4, bytes, len);
    r->ex->sink.binary(r->ex->sink.ctx, 1, buf, 4 + len, r->client_id);
    free(buf);
}

static const char *env_directory(void *ctx, const char *type) {
    run_ctx *r = ctx;
    return r->ex->sink.directory ? r->ex->sink.directory(r->ex->sink.ctx, type) : NULL;
}

/* ---- states ---- */

/* The state of node n if it has one. */
static nstate *state_of(run_ctx *r, const cd_prompt_node *n) {
    return n->index < r->cap_index ? r->by_index[n->index] : NULL;
}

static nstate *state_for(run_ctx *r, cd_prompt_node *n) {
    nstate *s = state_of(r, n);
    if (s) return s;
    if (n->index >= r->cap_index) { /* expansions add nodes while the prompt runs */
        size_t cap = r->cap_index ? r->cap_index : 64;
        while (cap <= n->index) cap *= 2;
        nstate **by = realloc(r->by_index, cap * sizeof *by);
        if (!by) return NULL;
        memset(by + r->cap_index, 0, (cap - r->cap_index) * sizeof *by);
        r->by_index = by;
        r->cap_index = cap;
    }
    if (r->n_all == r->cap_all) {
        size_t cap = r->cap_all ? r->cap_all * 2 : 64;
        nstate **all = realloc(r->all, cap * sizeof *all);
        if (!all) return NULL;
        r->all = all;
        r->cap_all = cap;
    }
    s = cd_arena_calloc(&r->arena, sizeof *s);
    if (!s) return NULL;
    s->node = n;
    r->by_index[n->index] = s;
    r->all[r->n_all++] = s;
    return s;
}

/* The state of the node with this id (made when needed); NULL when there is no such node. */
static nstate *state_by_id(run_ctx *r, const char *id) {
    cd_prompt_node *n = cd_prompt_get(r->prompt, id);
    return n ? state_for(r, n) : NULL;
}

/* The state of a link's source: looked up by id once, then remembered by the input. */
static nstate *link_source(run_ctx *r, const cd_prompt_input *in) {
    cd_prompt_input *mut = (cd_prompt_input *)in; /* the cache is not part of the input's value */
    if (!mut->src_node) mut->src_node = cd_prompt_get(r->prompt, in->src);
    return mut->src_node ? state_for(r, mut->src_node) : NULL;
}

static void free_exp(nstate *s) {
    for (size_t c = 0; c < s->exp_calls; c++) {
        int n = s->node->type ? s->node->type->def->n_outputs : 0;
        for (int k = 0; k < n; k++) cd_value_unref(s->exp_outputs[c][k]);
        free(s->exp_outputs[c]);
    }
    free(s->exp_outputs);
    s->exp_outputs = NULL;
    s->exp_calls = 0;
    json_decref(s->exp_ui);
    s->exp_ui = NULL;
}

/* What a state owns besides its arena memory. */
static void state_release(nstate *s) {
    free(s->dependents);
    cd_value_unref(s->fingerprint);
    free_exp(s);
}

/* ---- signatures (cache keys) ---- */

static cd_value *single_list(cd_value *v) {
    cd_value *l = cd_value_list_new(1);
    if (l) cd_value_list_push(l, v);
    else cd_value_unref(v);
    return l;
}

/* IS_CHANGED: the node's fingerprint callback on its constant inputs. */
static void compute_fingerprint(run_ctx *r, nstate *s) {
    const cd_node_type *t = s->node->type;
    if (!t || !t->def->fingerprint) return;
    cd_node_call call;
    cd_call_init(&call, t, &r->env, s->node->id, 0);
    /* Mapped over lists like the node: an INPUT_IS_LIST node sees [constant] and [None]. */
    bool whole = (t->def->flags & CD_NODE_INPUT_IS_LIST) != 0;
    cd_value **lists = whole ? calloc(s->node->n_inputs + 1, sizeof *lists) : NULL;
    for (size_t i = 0; i < s->node->n_inputs; i++) {
        const cd_prompt_input *in = &s->node->inputs[i];
        const cd_value *v = in->is_link ? NULL : in->value;
        if (lists) {
            lists[i] = single_list(v ? cd_value_ref(v) : cd_value_none());
            v = lists[i];
        }
        cd_call_add_input(&call, in->name, v, NULL);
    }
    cd_value *v = t->def->fingerprint(&call);
    cd_call_clear(&call);
    for (size_t i = 0; lists && i < s->node->n_inputs; i++) cd_value_unref(lists[i]);
    free(lists);
    if (!v) v = cd_value_float(NAN);
    if (cd_value_kind_of(v) == CD_VALUE_BLOCKER) {
        cd_value_unref(v);
        v = cd_value_none();
    }
    s->fingerprint = v;
}

static int cmp_input_names(const void *a, const void *b) {
    return strcmp((*(const cd_prompt_input *const *)a)->name, (*(const cd_prompt_input *const *)b)->name);
}

/* The node's own part of the key: class, fingerprint, id where it matters, and its inputs in
 * name order, links by their source's signature. Sources must be signed already. */
static void sign_node(run_ctx *r, nstate *s) {
    cd_prompt_node *n = s->node;
    cd_sig_builder *b = &r->sig;
    cd_sig_begin(b);
    cd_sig_str(b, n->class_type);
    if (!n->type) {
        b->uncacheable = true;
        cd_sig_end(b, &s->sig);
        return;
    }
    cd_sig_value(b, s->fingerprint);
    bool by_id = (n->type->def->flags & CD_NODE_NOT_IDEMPOTENT) != 0;
    for (size_t i = 0; i < n->type->n_inputs && !by_id; i++)
        if (n->type->inputs[i].hidden_kind && !strcmp(n->type->inputs[i].hidden_kind, "UNIQUE_ID")) by_id = true;
    if (by_id) cd_sig_str(b, n->id);
    const cd_prompt_input *stack_sorted[64];
    const cd_prompt_input **sorted = n->n_inputs <= 64 ? stack_sorted : malloc(n->n_inputs * sizeof *sorted);
    if (!sorted) {
        b->uncacheable = true;
        cd_sig_end(b, &s->sig);
        return;
    }
    for (size_t i = 0; i < n->n_inputs; i++) sorted[i] = &n->inputs[i];
    qsort(sorted, n->n_inputs, sizeof *sorted, cmp_input_names);
    for (size_t i = 0; i < n->n_inputs; i++) {
        const cd_prompt_input *in = sorted[i];
        cd_sig_str(b, in->name);
        if (in->is_link) {
            nstate *src = link_source(r, in);
            if (!src || !src->sig_done || src->sig.uncacheable) {
                b->uncacheable = true;
                continue;
            }
            cd_sig_bytes(b, 'A', &src->sig.h1, sizeof src->sig.h1);
            cd_sig_bytes(b, 'B', &src->sig.h2, sizeof src->sig.h2);
            cd_sig_u64(b, (uint64_t)in->slot);
        } else {
            cd_sig_value(b, in->value);
        }
    }
    if (sorted != stack_sorted) free(sorted);
    cd_sig_end(b, &s->sig);
}

/* Signs s and, first, every unsigned ancestor: an explicit stack, since a chain may be
 * 100,000 nodes long. A cycle (possible only through expansions) makes the key unusable. */
static void ensure_signed(run_ctx *r, nstate *root) {
    if (root->sig_done) return;
    size_t cap = 64, n = 0;
    nstate **stack = malloc(cap * sizeof *stack);
    if (!stack) {
        memset(&root->sig, 0, sizeof root->sig);
        root->sig.uncacheable = root->sig_done = true;
        return;
    }
    stack[n++] = root;
    root->sig_busy = true;
    while (n > 0) {
        nstate *s = stack[n - 1];
        bool pushed = false;
        for (size_t i = 0; i < s->node->n_inputs; i++) {
            const cd_prompt_input *in = &s->node->inputs[i];
            if (!in->is_link) continue;
            nstate *src = link_source(r, in);
            if (!src || src->sig_done || src->sig_busy) continue;
            if (n == cap) {
                nstate **st = realloc(stack, cap * 2 * sizeof *st);
                if (!st) break;
                stack = st;
                cap *= 2;
            }
            src->sig_busy = true;
            stack[n++] = src;
            pushed = true;
            break;
        }
        if (pushed) continue;
        compute_fingerprint(r, s);
        sign_node(r, s);
        s->sig_busy = false;
        s->sig_done = true;
        n--;
    }
    free(stack);
}

/* ---- the execution list ---- */

static bool is_output(const nstate *s);
static bool first_rank(const nstate *s);

static void make_ready(run_ctx *r, nstate *s) {
    if (s->ready || s->done) return;
    if (r->n_ready == r->cap_ready) {
        size_t cap = r->cap_ready ? r->cap_ready * 2 : 64;
        nstate **rd = realloc(r->ready, cap * sizeof *rd);
        if (!rd) return;
        r->ready = rd;
        r->cap_ready = cap;
    }
    /* Kept sorted by insertion order: ties between equally good candidates go to the node
     * added first, as ComfyUI's pending dict does, and the pick can stop at the first fit. */
    size_t lo = 0, hi = r->n_ready;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->ready[mid]->order < s->order) lo = mid + 1;
        else hi = mid;
    }
    memmove(&r->ready[lo + 1], &r->ready[lo], (r->n_ready - lo) * sizeof *r->ready);
    r->ready[lo] = s;
    r->n_ready++;
    if (first_rank(s)) r->n_ready_first++;
    s->ready = true;
}

static bool has_results(run_ctx *r, nstate *s) {
    if (s->entry) return true;
    ensure_signed(r, s);
    const cd_cache_entry *e = cd_cache_get(r->ex->cache, &s->sig);
    if (e) s->entry = e;
    return e != NULL;
}

static void add_pending(run_ctx *r, nstate *s) {
    if (s->pending || s->done) return;
    s->pending = true;
    s->order = r->order_counter++;
    r->n_pending++;
}

static void link_block(run_ctx *r, nstate *src, nstate *dst) {
    for (size_t i = src->n_dep; i-- > 0;)
        if (src->dependents[i] == dst) return;
    if (src->n_dep == src->cap_dep) {
        size_t cap = src->cap_dep ? src->cap_dep * 2 : 4;
        nstate **d = realloc(src->dependents, cap * sizeof *d);
        if (!d) return;
        src->dependents = d;
        src->cap_dep = cap;
    }
    src->dependents[src->n_dep++] = dst;
    dst->block_count++;
    if (dst->ready) { /* no longer ready: remove it from the ready list */
        for (size_t i = 0; i < r->n_ready; i++)
            if (r->ready[i] == dst) {
                memmove(&r->ready[i], &r->ready[i + 1], (r->n_ready - i - 1) * sizeof *r->ready);
                r->n_ready--;
                break;
            }
        if (first_rank(dst)) r->n_ready_first--;
        dst->ready = false;
    }
}

/* ExecutionList.add_node: the node, and (iteratively) every uncached non-lazy source. */
static void add_node(run_ctx *r, nstate *root) {
    if (root->pending || root->done) return;
    /* stack: nodes still to expand; added: every node made pending here (to check readiness). */
    size_t cap = 64, n = 0, cap_added = 64, n_added = 0;
    nstate **stack = malloc(cap * sizeof *stack);
    nstate **added = malloc(cap_added * sizeof *added);
    if (!stack || !added) {
        free(stack);
        free(added);
        return;
    }
    add_pending(r, root);
    stack[n++] = root;
    added[n_added++] = root;
    while (n > 0) {
        nstate *s = stack[--n];
        const cd_node_type *t = s->node->type;
        for (size_t i = 0; i < s->node->n_inputs; i++) {
            const cd_prompt_input *in = &s->node->inputs[i];
            if (!in->is_link) continue;
            const cd_input_def *def = t ? cd_node_type_input(t, in->name) : NULL;
            if (def && def->lazy) continue;
            nstate *src = link_source(r, in);
            if (!src || has_results(r, src)) continue;
            bool fresh = !src->pending && !src->done;
            if (fresh) add_pending(r, src);
            link_block(r, src, s);
            if (fresh) {
                if (n == cap) {
                    nstate **st = realloc(stack, cap * 2 * sizeof *st);
                    if (!st) break;
                    stack = st;
                    cap *= 2;
                }
                if (n_added == cap_added) {
                    nstate **ad = realloc(added, cap_added * 2 * sizeof *ad);
                    if (!ad) break;
                    added = ad;
                    cap_added *= 2;
                }
                stack[n++] = src;
                added[n_added++] = src;
            }
        }
    }
    /* Ready: the new pending nodes nothing blocks. Insertion order is kept by `order`. */
    for (size_t i = 0; i < n_added; i++)
        if (added[i]->block_count == 0) make_ready(r, added[i]);
    free(stack);
    free(added);
}

/* A strong link added later (lazy inputs, expansions): src must run before dst runs again. */
static void add_strong_link(run_ctx *r, nstate *src, nstate *dst) {
    if (has_results(r, src)) return;
    add_node(r, src);
    link_block(r, src, dst);
}

static bool is_output(const nstate *s) { return s->node->type && cd_node_type_is_output(s->node->type); }
static bool is_async(const nstate *s) { return s->node->type && s->node->type->def->execute_async; }
/* ux_friendly_pick_node's first choice: an output node, or an async one (started early, it
 * runs while the others do). n_ready_first counts these. */
static bool first_rank(const nstate *s) { return is_output(s) || is_async(s); }

static bool blocks_output(const nstate *s, int depth) {
    for (size_t i = 0; i < s->n_dep; i++) {
        if (is_output(s->dependents[i])) return true;
        if (depth > 1 && blocks_output(s->dependents[i], depth - 1)) return true;
    }
    return false;
}

/* stage_node_execution's preference: an output or async node, then a node feeding an output,
 * then one two steps away, then the earliest added. */
static nstate *pick_ready(run_ctx *r) {
    if (r->n_ready == 0) return NULL;
    /* The list is in insertion order, so the first node of the best rank wins. */
    size_t best = 0;
    bool found = false;
    for (size_t i = 0; r->n_ready_first && i < r->n_ready && !found; i++)
        if (first_rank(r->ready[i])) best = i, found = true;
    for (int depth = 1; depth <= 2 && !found; depth++)
        for (size_t i = 0; i < r->n_ready && !found; i++)
            if (blocks_output(r->ready[i], depth)) best = i, found = true;
    nstate *s = r->ready[best];
    memmove(&r->ready[best], &r->ready[best + 1], (r->n_ready - best - 1) * sizeof *r->ready);
    r->n_ready--;
    if (first_rank(s)) r->n_ready_first--;
    s->ready = false;
    return s;
}

static void complete(run_ctx *r, nstate *s) {
    s->done = true;
    s->pending = false;
    r->n_pending--;
    for (size_t i = 0; i < s->n_dep; i++) {
        nstate *d = s->dependents[i];
        if (--d->block_count == 0 && d->pending && !d->done) make_ready(r, d);
    }
    s->n_dep = 0;
}

/* ---- running one node ---- */

typedef enum { NODE_SUCCESS, NODE_PENDING, NODE_FAILURE } node_result;

/* The input lists of a node: name -> CD_VALUE_LIST (owned), NULL where missing. */
typedef struct {
    const char **names;
    cd_value **lists;
    size_t n;
    /* room for the usual few inputs, so that most nodes allocate nothing here */
    const char *small_names[8];
    cd_value *small_lists[8];
} input_lists;

static void input_lists_free(input_lists *il) {
    for (size_t i = 0; i < il->n; i++) cd_value_unref(il->lists[i]);
    if (il->names != il->small_names) free(il->names);
    if (il->lists != il->small_lists) free(il->lists);
}

/* A V3 DynamicCombo or Autogrow input carries its sub-inputs as "<input>.<name>" (the widgets of
 * the chosen option, the grown sockets): those constants are the node's, though undeclared. */
static bool v3_sub_input(const cd_node_type *t, const char *name) {
    const char *dot = strchr(name, '.');
    if (!dot) return false;
    for (size_t i = 0; i < t->n_inputs; i++) {
        const cd_input_def *def = &t->inputs[i];
        if (strlen(def->name) == (size_t)(dot - name) && !strncmp(def->name, name, (size_t)(dot - name)) && def->type &&
            (!strcmp(def->type, "COMFY_DYNAMICCOMBO_V3") || !strcmp(def->type, "COMFY_AUTOGROW_V3")))
            return true;
    }
    return false;
}

static int gather_inputs(run_ctx *r, nstate *s, input_lists *il) {
    cd_prompt_node *n = s->node;
    const cd_node_type *t = n->type;
    size_t cap = n->n_inputs + t->n_inputs + 1;
    il->n = 0;
    if (cap <= 8) {
        il->names = il->small_names;
        il->lists = il->small_lists;
    } else {
        il->names = calloc(cap, sizeof *il->names);
        il->lists = calloc(cap, sizeof *il->lists);
        if (!il->names || !il->lists) return -1;
    }
    for (size_t i = 0; i < n->n_inputs; i++) {
        const cd_prompt_input *in = &n->inputs[i];
        const cd_input_def *def = cd_node_type_input(t, in->name);
        cd_value *list = NULL;
        if (in->is_link && def && def->raw_link) {
            list = single_list(cd_value_link(in->src, in->slot));
        } else if (in->is_link) {
            nstate *src = link_source(r, in);
            if (src && !src->entry) has_results(r, src);
            if (src && src->entry && in->slot >= 0 && in->slot < src->entry->n_outputs)
                list = cd_value_ref(src->entry->outputs[in->slot]);
        } else if (def || v3_sub_input(t, in->name)) {
            list = single_list(cd_value_ref(in->value));
        } else {
            continue; /* undeclared constants are dropped; undeclared links are kept */
        }
        il->names[il->n] = in->name;
        il->lists[il->n++] = list;
    }
    for (size_t i = 0; i < t->n_inputs; i++) {
        const cd_input_def *def = &t->inputs[i];
        if (!def->hidden_kind || !strcmp(def->hidden_kind, "")) continue;
        cd_value *v = NULL;
        if (!strcmp(def->hidden_kind, "UNIQUE_ID")) v = cd_value_string(n->id);
        else if (!strcmp(def->hidden_kind, "PROMPT")) {
            env_make_texts(r);
            v = cd_value_json(r->env.prompt_json);
        } else if (!strcmp(def->hidden_kind, "EXTRA_PNGINFO")) {
            env_make_texts(r);
            v = r->extra_pnginfo ? cd_value_json(r->extra_pnginfo) : cd_value_none();
        }
        else continue;
        if (!v) continue;
        il->names[il->n] = def->name;
        il->lists[il->n++] = single_list(v);
    }
    return 0;
}

/* Fills call with element i of each list (the last element when a list is shorter). */
static void fill_call(cd_node_call *call, const input_lists *il, size_t i, bool whole_lists) {
    for (size_t k = 0; k < il->n; k++) {
        const cd_value *v = NULL;
        if (il->lists[k]) {
            if (whole_lists) v = il->lists[k];
            else {
                size_t len = cd_value_list_len(il->lists[k]);
                if (len) v = cd_value_list_at(il->lists[k], i < len ? i : len - 1);
            }
        }
        cd_call_add_input(call, il->names[k], v, NULL);
    }
}

static const cd_value *find_blocker(const cd_node_call *call) {
    for (size_t k = 0; k < call->n_inputs; k++) {
        const cd_value *v = call->values[k];
        if (cd_value_kind_of(v) == CD_VALUE_BLOCKER) return v;
        if (cd_value_kind_of(v) == CD_VALUE_LIST)
            for (size_t j = 0; j < cd_value_list_len(v); j++)
                if (cd_value_kind_of(cd_value_list_at(v, j)) == CD_VALUE_BLOCKER) return cd_value_list_at(v, j);
    }
    return NULL;
}

static json_t *format_inputs(const input_lists *il) {
    json_t *o = json_object();
    for (size_t k = 0; k < il->n; k++) {
        json_t *vals = json_array();
        for (size_t j = 0; il->lists[k] && j < cd_value_list_len(il->lists[k]); j++) {
            const cd_value *v = cd_value_list_at(il->lists[k], j);
            cd_value_kind kind = cd_value_kind_of(v);
            if (kind == CD_VALUE_INT || kind == CD_VALUE_FLOAT || kind == CD_VALUE_BOOL || kind == CD_VALUE_STRING ||
                kind == CD_VALUE_NONE)
                json_array_append_new(vals, cd_value_to_json_t(v));
            else {
                char *text = cd_value_to_json(v);
                json_array_append_new(vals, json_string(text ? text : "?"));
                free(text);
            }
        }
        json_object_set_new(o, il->names[k], vals);
    }
    return o;
}

static void note_executed(run_ctx *r, nstate *s) {
    if (r->n_executed == r->cap_executed) {
        size_t cap = r->cap_executed ? r->cap_executed * 2 : 64;
        nstate **e = realloc(r->executed, cap * sizeof *e);
        if (!e) return; /* the list in an error event misses it */
        r->executed = e;
        r->cap_executed = cap;
    }
    r->executed[r->n_executed++] = s;
}

/* The ids of the nodes that ran, for error and interrupt events. */
static json_t *executed_json(const run_ctx *r) {
    json_t *ids = json_array();
    for (size_t i = 0; i < r->n_executed; i++) json_array_append_new(ids, json_string(r->executed[i]->node->id));
    return ids;
}

/* Reports execution_error for node s with exception_message as given and stops the prompt. */
static void report_failure(run_ctx *r, nstate *s, const char *type, const char *exception_message,
                           const input_lists *il) {
    r->failed = true;
    const char *real = cd_prompt_real_id(r->prompt, s->node);
    cd_prompt_node *realn = cd_prompt_get(r->prompt, real);
    json_t *outs = json_array();
    for (size_t i = 0; i < r->n_all; i++)
        if (r->all[i]->entry && !r->all[i]->node->ephemeral) json_array_append_new(outs, json_string(r->all[i]->node->id));
    json_t *data = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:[], s:o, s:o, s:I}", "prompt_id", r->prompt_id,
                             "node_id", real, "node_type", realn ? realn->class_type : s->node->class_type, "executed",
                             executed_json(r), "exception_message", exception_message, "exception_type", type,
                             "traceback", "current_inputs", il ? format_inputs(il) : json_array(), "current_outputs",
                             outs, "timestamp", (json_int_t)now_ms());
    r->error = json_incref(data);
    add_message(r, "execution_error", data, false);
}

/* A node raised: ComfyUI's exception_message is "{exception}\n{tips}", its tips (about running
 * out of GPU memory) never apply here, so the text ends with the newline alone. */
static void fail_node(run_ctx *r, nstate *s, const char *type, const char *message, const input_lists *il) {
    char *text = NULL;
    if (asprintf(&text, "%s\n", message ? message : "") < 0) text = NULL;
    report_failure(r, s, type, text ? text : "\n", il);
    free(text);
}

/* Merges per-call outputs into one list per slot (OUTPUT_IS_LIST slots concatenate). */
static cd_value **merge_outputs(const cd_node_type *t, cd_value ***per_call, size_t calls) {
    int n = t->def->n_outputs;
    cd_value **out = calloc(n > 0 ? (size_t)n : 1, sizeof *out);
    if (!out) return NULL;
    for (int k = 0; k < n; k++) {
        out[k] = cd_value_list_new(calls);
        for (size_t c = 0; c < calls; c++) {
            cd_value *v = per_call[c][k];
            if (t->def->outputs[k].is_list > 0 && cd_value_kind_of(v) == CD_VALUE_LIST) {
                for (size_t j = 0; j < cd_value_list_len(v); j++)
                    cd_value_list_push(out[k], cd_value_ref(cd_value_list_at(v, j)));
            } else {
                cd_value_list_push(out[k], v ? cd_value_ref(v) : cd_value_none());
            }
        }
    }
    return out;
}

static void merge_ui(json_t **into, json_t *ui) {
    if (!ui) return;
    if (!*into) *into = json_object();
    const char *key;
    json_t *list;
    json_object_foreach(ui, key, list) {
        json_t *have = json_object_get(*into, key);
        if (!have) json_object_set(*into, key, list);
        else json_array_extend(have, list);
    }
}

static void store_results(run_ctx *r, nstate *s, cd_value ***per_call, size_t calls, json_t *ui) {
    cd_prompt_node *n = s->node;
    cd_value **outputs = merge_outputs(n->type, per_call, calls);
    json_t *ui_entry = NULL;
    if (ui && json_object_size(ui)) {
        json_t *meta = json_pack("{s:s, s:s, s:o, s:s}", "node_id", n->id, "display_node",
                                 cd_prompt_display_id(r->prompt, n), "parent_node",
                                 n->parent ? json_string(n->parent) : json_null(), "real_node_id",
                                 cd_prompt_real_id(r->prompt, n));
        ui_entry = json_pack("{s:o, s:O}", "meta", meta, "output", ui);
        emit_client(r, "executed",
                    json_pack("{s:s, s:s, s:O, s:s}", "node", n->id, "display_node", cd_prompt_display_id(r->prompt, n),
                              "output", ui, "prompt_id", r->prompt_id));
    }
    s->entry = cd_cache_put(r->ex->cache, &s->sig, outputs, outputs ? n->type->def->n_outputs : 0, ui_entry);
}

/* Handles a call whose outputs contain links: the subgraph joins the prompt. */
static int start_expansion(run_ctx *r, nstate *s, cd_node_call *calls, size_t n_calls) {
    for (size_t c = 0; c < n_calls; c++) {
        for (size_t g = 0; g < calls[c].n_graph; g++) {
            cd_prompt_node *gn = calls[c].graph[g];
            if (!gn->display) gn->display = strdup(cd_prompt_display_id(r->prompt, s->node));
            if (cd_prompt_add(r->prompt, gn) < 0) {
                char msg[300];
                snprintf(msg, sizeof msg, "Node with id %s already exists", gn->id);
                fail_node(r, s, "comfy_execution.graph_utils.DuplicateNodeError", msg, NULL);
                /* the rest of this call's graph is freed by cd_call_clear */
                memmove(&calls[c].graph[0], &calls[c].graph[g], (calls[c].n_graph - g) * sizeof *calls[c].graph);
                calls[c].n_graph -= g;
                return -1;
            }
            calls[c].graph[g] = NULL;
        }
        calls[c].n_graph = 0;
    }
    /* New output nodes run too; every link in the results must be computed before s resumes. */
    for (size_t i = 0; i < r->prompt->n; i++) {
        cd_prompt_node *pn = r->prompt->nodes[i];
        if (!pn->ephemeral || state_of(r, pn)) continue;
        nstate *ns = state_for(r, pn);
        if (ns && pn->type && cd_node_type_is_output(pn->type)) add_node(r, ns);
    }
    for (size_t c = 0; c < s->exp_calls; c++)
        for (int k = 0; k < s->node->type->def->n_outputs; k++) {
            cd_value *v = s->exp_outputs[c][k];
            if (cd_value_kind_of(v) != CD_VALUE_LINK) continue;
            nstate *src = state_by_id(r, cd_value_link_node(v));
            if (src) add_strong_link(r, src, s);
        }
    return 0;
}

/* The node resumes after its subgraph ran: links become the sources' values. */
static void finish_expansion(run_ctx *r, nstate *s) {
    int n = s->node->type->def->n_outputs;
    for (size_t c = 0; c < s->exp_calls; c++)
        for (int k = 0; k < n; k++) {
            cd_value *v = s->exp_outputs[c][k];
            if (cd_value_kind_of(v) != CD_VALUE_LINK) continue;
            nstate *src = state_by_id(r, cd_value_link_node(v));
            int slot = cd_value_link_slot(v);
            cd_value *resolved;
            if (src && src->entry && slot >= 0 && slot < src->entry->n_outputs) {
                const cd_value *list = src->entry->outputs[slot];
                if (cd_value_list_len(list) == 1) resolved = cd_value_ref(cd_value_list_at(list, 0));
                else resolved = cd_value_ref(list); /* several values: merged as a list below */
            } else {
                resolved = cd_value_none();
            }
            cd_value_unref(v);
            s->exp_outputs[c][k] = resolved;
        }
    store_results(r, s, s->exp_outputs, s->exp_calls, NULL);
    s->expanding = false;
    free_exp(s);
}

/* A call that an execution blocker stops: a blocker with a message is reported to the client
 * (without failing the prompt); the outputs become silent blockers. */
static void report_blocked(run_ctx *r, nstate *s, const cd_value *blocker) {
    const char *msg = cd_value_blocker_message(blocker);
    if (!msg) return;
    cd_prompt_node *n = s->node;
    json_t *data = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:[], s:[], s:[], s:I}", "prompt_id", r->prompt_id,
                             "node_id", n->id, "node_type", n->class_type, "executed", executed_json(r),
                             "exception_message", "", "exception_type", "ExecutionBlocked", "traceback",
                             "current_inputs", "current_outputs", "timestamp", (json_int_t)now_ms());
    char text[1100];
    snprintf(text, sizeof text, "Execution Blocked: %s", msg);
    json_object_set_new(data, "exception_message", json_string(text));
    emit(r, "execution_error", data, r->client_id);
}

/* ---- async nodes ----
 *
 * An async node (execute_async) starts each of its calls on the executor thread and gets
 * CD_PENDING back; the calls end on other threads with cd_call_finish. Like ComfyUI's
 * pending_async_nodes and ExecutionList.add_external_block: the node keeps an extra block
 * while its calls run, so it is not ready and the executor runs other nodes (other async nodes
 * included) meanwhile; when the last call ends the block goes and the node is picked again,
 * this time to take its results (async_conclude), with no second `executing`. With nothing
 * ready the executor waits for a call to end. The threads of the calls touch only their calls,
 * their job's counter and the run's done list and event queue, under ex->amu; progress, text
 * and previews they send are queued and sent by the executor thread, in order. When the prompt
 * ends (failed, interrupted) with calls still running, `cancel` makes them see an interrupt,
 * and the run waits for each to end before it frees anything. */

#define RC_BLOCKED 100 /* the call's inputs hold a blocker: not run */
#define RC_NOT_RUN 101 /* not started: an earlier call of the node failed at once */

typedef struct async_job {
    nstate *s;
    cd_node_call *calls; /* n_calls, `made` of them initialised */
    int *rc;             /* each call's result: CD_PENDING until cd_call_finish, under ex->amu */
    size_t n_calls, made;
    size_t waiting; /* under ex->amu: calls not ended, plus one while the executor starts them */
    input_lists il; /* the inputs the calls read, kept until the node ends */
    struct async_job *next_done;
} async_job;

typedef struct async_event {
    struct async_event *next;
    enum { AE_PROGRESS, AE_TEXT, AE_PREVIEW } kind;
    double value, max;
    const char *node_id, *mime; /* into data */
    const char *payload;        /* into data: the text or the image bytes */
    size_t len;
    char data[];
} async_event;

static bool on_executor(const run_ctx *r) { return pthread_equal(pthread_self(), r->thread) != 0; }

static void queue_event(run_ctx *r, int kind, const char *node_id, const char *mime, const void *payload, size_t len,
                        double value, double max) {
    size_t idlen = strlen(node_id), mlen = mime ? strlen(mime) : 0;
    async_event *e = malloc(sizeof *e + idlen + 1 + mlen + 1 + len + 1);
    if (!e) return; /* an event lost, the node goes on */
    e->next = NULL;
    e->kind = kind;
    e->value = value;
    e->max = max;
    char *p = e->data;
    memcpy(p, node_id, idlen + 1);
    e->node_id = p;
    p += idlen + 1;
    if (mime) memcpy(p, mime, mlen);
    p[mlen] = '\0';
    e->mime = p;
    p += mlen + 1;
    if (len) memcpy(p, payload, len);
    p[len] = '\0';
    e->payload = p;
    e->len = len;
    pthread_mutex_lock(&r->ex->amu);
    *r->events_tail = e;
    r->events_tail = &e->next;
    pthread_cond_broadcast(&r->ex->acond);
    pthread_mutex_unlock(&r->ex->amu);
}

static int aenv_interrupted(void *ctx) {
    run_ctx *r = ctx;
    return atomic_load(&r->ex->interrupt) != 0 || atomic_load(&r->cancel) != 0;
}

static void aenv_progress(void *ctx, const char *node_id, double value, double max) {
    run_ctx *r = ctx;
    if (on_executor(r)) env_progress(ctx, node_id, value, max);
    else queue_event(r, AE_PROGRESS, node_id, NULL, NULL, 0, value, max);
}

static void aenv_text(void *ctx, const char *node_id, const char *text) {
    run_ctx *r = ctx;
    if (on_executor(r)) env_text(ctx, node_id, text);
    else queue_event(r, AE_TEXT, node_id, NULL, text, strlen(text), 0, 0);
}

static void aenv_preview(void *ctx, const char *node_id, const char *mime, const void *bytes, size_t len) {
    run_ctx *r = ctx;
    if (on_executor(r)) env_preview(ctx, node_id, mime, bytes, len);
    else queue_event(r, AE_PREVIEW, node_id, mime, bytes, len, 0, 0);
}

/* The prompt's texts are made on the executor thread only (inside execute_async). */
static void aenv_make_texts(void *ctx) {
    run_ctx *r = ctx;
    if (on_executor(r)) env_make_texts(ctx);
}

static void aenv_finish(void *ctx, cd_node_call *call, int rc) {
    run_ctx *r = ctx;
    async_job *j = call->async;
    if (!j) return;
    pthread_mutex_lock(&r->ex->amu);
    j->rc[call - j->calls] = rc == CD_PENDING ? CD_ERROR : rc;
    if (--j->waiting == 0) {
        j->next_done = r->done;
        r->done = j;
        pthread_cond_broadcast(&r->ex->acond);
    }
    pthread_mutex_unlock(&r->ex->amu);
}

static void job_free(async_job *j) {
    for (size_t c = 0; c < j->made; c++) cd_call_clear(&j->calls[c]);
    free(j->calls);
    free(j->rc);
    input_lists_free(&j->il);
    free(j);
}

static async_job *job_of(const run_ctx *r, const nstate *s) {
    for (size_t i = 0; i < r->n_jobs; i++)
        if (r->jobs[i]->s == s) return r->jobs[i];
    return NULL;
}

static void job_forget(run_ctx *r, async_job *j) {
    for (size_t i = 0; i < r->n_jobs; i++)
        if (r->jobs[i] == j) {
            r->jobs[i] = r->jobs[--r->n_jobs];
            break;
        }
    j->s->in_flight = false;
}

/* Executor thread: what the calls' threads left. Their events go out (not once the prompt has
 * failed or was interrupted); nodes whose calls all ended lose their extra block. */
static void async_drain(run_ctx *r) {
    pthread_mutex_lock(&r->ex->amu);
    async_job *done = r->done;
    async_event *ev = r->events;
    r->done = NULL;
    r->events = NULL;
    r->events_tail = &r->events;
    pthread_mutex_unlock(&r->ex->amu);
    while (ev) {
        async_event *next = ev->next;
        if (!r->failed && !r->interrupted) {
            if (ev->kind == AE_PROGRESS) env_progress(r, ev->node_id, ev->value, ev->max);
            else if (ev->kind == AE_TEXT) env_text(r, ev->node_id, ev->payload);
            else env_preview(r, ev->node_id, ev->mime, ev->payload, ev->len);
        }
        free(ev);
        ev = next;
    }
    for (; done; done = done->next_done) {
        nstate *s = done->s;
        if (s->block_count > 0 && --s->block_count == 0 && s->pending && !s->done) make_ready(r, s);
    }
}

/* Executor thread, nothing ready: waits for a call to end or send something. An interrupt
 * that comes meanwhile stops the prompt at once, naming the first node in flight; the calls
 * see it and end (cd_executor_run waits for them). */
static void async_wait(run_ctx *r) {
    cd_executor *ex = r->ex;
    pthread_mutex_lock(&ex->amu);
    if (!r->done && !r->events && !atomic_load(&ex->interrupt)) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 20 * 1000 * 1000; /* interrupts are polled, as nodes poll them */
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ex->acond, &ex->amu, &until);
    }
    pthread_mutex_unlock(&ex->amu);
    if (atomic_exchange(&ex->interrupt, 0)) {
        r->interrupted = true;
        r->current = r->jobs[0]->s;
        return;
    }
    async_drain(r);
}

/* End of a run: calls still running see an interrupt; wait until every one has ended, then
 * free what they used. */
static void async_end_all(run_ctx *r) {
    if (!r->n_jobs) return;
    cd_executor *ex = r->ex;
    atomic_store(&r->cancel, 1);
    pthread_mutex_lock(&ex->amu);
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < r->n_jobs && !busy; i++) busy = r->jobs[i]->waiting > 0;
        if (!busy) break;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec++;
        pthread_cond_timedwait(&ex->acond, &ex->amu, &until);
    }
    async_event *ev = r->events;
    r->events = NULL;
    r->events_tail = &r->events;
    r->done = NULL;
    pthread_mutex_unlock(&ex->amu);
    while (ev) {
        async_event *next = ev->next;
        free(ev);
        ev = next;
    }
    while (r->n_jobs) {
        async_job *j = r->jobs[0];
        job_forget(r, j);
        job_free(j);
    }
}

static node_result async_conclude(run_ctx *r, nstate *s);

/* Starts the calls of async node s (inputs gathered into il, which this takes). */
static node_result async_start(run_ctx *r, nstate *s, input_lists *il, size_t n_calls, bool whole) {
    const cd_node_type *t = s->node->type;
    cd_executor *ex = r->ex;
    async_job *j = calloc(1, sizeof *j);
    if (j) {
        j->calls = calloc(n_calls, sizeof *j->calls);
        j->rc = calloc(n_calls, sizeof *j->rc);
    }
    if (r->n_jobs == r->cap_jobs && j) {
        size_t cap = r->cap_jobs ? r->cap_jobs * 2 : 8;
        async_job **jobs = realloc(r->jobs, cap * sizeof *jobs);
        if (jobs) {
            r->jobs = jobs;
            r->cap_jobs = cap;
        }
    }
    if (!j || !j->calls || !j->rc || r->n_jobs == r->cap_jobs) {
        if (j) {
            free(j->calls);
            free(j->rc);
            free(j);
        }
        fail_node(r, s, "MemoryError", "out of memory", il);
        input_lists_free(il);
        return NODE_FAILURE;
    }
    j->s = s;
    j->n_calls = n_calls;
    j->il = *il; /* moved: the small arrays move with it */
    if (il->names == il->small_names) j->il.names = j->il.small_names;
    if (il->lists == il->small_lists) j->il.lists = j->il.small_lists;
    il->n = 0;
    il->names = il->small_names;
    il->lists = il->small_lists;
    j->waiting = 1;
    s->in_flight = true;
    r->jobs[r->n_jobs++] = j;
    for (size_t c = 0; c < n_calls; c++) j->rc[c] = RC_NOT_RUN;
    for (size_t c = 0; c < n_calls; c++) {
        cd_node_call *call = &j->calls[c];
        cd_call_init(call, t, &r->aenv, s->node->id, c);
        j->made++;
        fill_call(call, &j->il, c, whole);
        call->async = j;
        const cd_value *blocker = find_blocker(call);
        if (blocker) {
            report_blocked(r, s, blocker);
            j->rc[c] = RC_BLOCKED;
            continue;
        }
        if (atomic_exchange(&ex->interrupt, 0)) {
            r->interrupted = true;
            break;
        }
        /* counted before it starts: its thread may end it before execute_async returns */
        pthread_mutex_lock(&ex->amu);
        j->rc[c] = CD_PENDING;
        j->waiting++;
        pthread_mutex_unlock(&ex->amu);
        int rc = t->def->execute_async(call);
        if (rc == CD_PENDING) continue;
        pthread_mutex_lock(&ex->amu);
        j->rc[c] = rc;
        j->waiting--;
        pthread_mutex_unlock(&ex->amu);
        if (rc != CD_OK) break; /* the node fails (or is interrupted) once its started calls end */
    }
    pthread_mutex_lock(&ex->amu);
    bool ended = --j->waiting == 0;
    pthread_mutex_unlock(&ex->amu);
    if (r->interrupted) return NODE_FAILURE; /* cd_executor_run ends the calls */
    if (ended) return async_conclude(r, s);  /* everything ended at once */
    s->block_count++;                       /* the external block, gone when the calls end */
    return NODE_PENDING;
}

/* A call's outputs move into its row of per_call; true when one is a link (an expansion). */
static bool take_outputs(cd_value **row, cd_node_call *call, int n_out) {
    bool link = false;
    for (int k = 0; k < n_out; k++) {
        row[k] = call->outputs[k];
        call->outputs[k] = NULL;
        if (cd_value_kind_of(row[k]) == CD_VALUE_LINK) link = true;
    }
    return link;
}

/* Once every call of a node ended, sync or async alike: an expansion starts (the UI of an
 * expanding call is sent now; the resumed node does not resend it), or the results are stored.
 * Takes per_call and ui. */
static node_result conclude_calls(run_ctx *r, nstate *s, cd_node_call *calls, size_t n_calls, cd_value ***per_call,
                                  json_t *ui, bool expand, node_result result) {
    cd_prompt_node *n = s->node;
    int n_out = n->type->def->n_outputs;
    if (result == NODE_SUCCESS && expand) {
        s->exp_outputs = per_call;
        s->exp_calls = n_calls;
        s->exp_ui = ui;
        s->expanding = true;
        per_call = NULL;
        ui = NULL;
        if (s->exp_ui && json_object_size(s->exp_ui))
            emit_client(r, "executed", json_pack("{s:s, s:s, s:O, s:s}", "node", n->id, "display_node",
                                                 cd_prompt_display_id(r->prompt, n), "output", s->exp_ui,
                                                 "prompt_id", r->prompt_id));
        result = start_expansion(r, s, calls, n_calls) == 0 ? NODE_PENDING : NODE_FAILURE;
    } else if (result == NODE_SUCCESS) {
        store_results(r, s, per_call, n_calls, ui);
    }
    if (per_call) {
        for (size_t c = 0; c < n_calls; c++) {
            if (!per_call[c]) continue;
            for (int k = 0; k < n_out; k++) cd_value_unref(per_call[c][k]);
            free(per_call[c]);
        }
        free(per_call);
    }
    json_decref(ui);
    return result;
}

/* The node is picked again after its calls ended: their results, as run_node takes a sync
 * node's. */
static node_result async_conclude(run_ctx *r, nstate *s) {
    async_job *j = job_of(r, s);
    cd_prompt_node *n = s->node;
    int n_out = n->type->def->n_outputs;
    size_t n_calls = j->n_calls;
    cd_value ***per_call = calloc(n_calls, sizeof *per_call);
    json_t *ui = NULL;
    bool expand = false;
    node_result result = NODE_SUCCESS;
    job_forget(r, j);
    if (!per_call) {
        fail_node(r, s, "MemoryError", "out of memory", &j->il);
        job_free(j);
        return NODE_FAILURE;
    }
    for (size_t c = 0; c < n_calls && result == NODE_SUCCESS; c++) {
        per_call[c] = calloc(n_out > 0 ? (size_t)n_out : 1, sizeof **per_call);
        if (!per_call[c]) {
            fail_node(r, s, "MemoryError", "out of memory", &j->il);
            result = NODE_FAILURE;
            break;
        }
        int rc = j->rc[c];
        if (rc == RC_BLOCKED) {
            for (int k = 0; k < n_out; k++) per_call[c][k] = cd_value_blocker(NULL);
            continue;
        }
        cd_node_call *call = &j->calls[c];
        if (rc == CD_INTERRUPTED || (rc != CD_OK && atomic_load(&r->ex->interrupt))) {
            atomic_store(&r->ex->interrupt, 0);
            r->interrupted = true;
            r->current = s;
            result = NODE_FAILURE;
            break;
        }
        if (rc != CD_OK) {
            fail_node(r, s, call->error_type ? call->error_type : "RuntimeError",
                      call->error_message ? call->error_message : "the node failed without saying why", &j->il);
            result = NODE_FAILURE;
            break;
        }
        expand |= take_outputs(per_call[c], call, n_out);
        merge_ui(&ui, call->ui);
    }
    result = conclude_calls(r, s, j->calls, n_calls, per_call, ui, expand, result);
    job_free(j);
    if (result == NODE_SUCCESS) note_executed(r, s);
    return result;
}

static node_result run_node(run_ctx *r, nstate *s) {
    cd_prompt_node *n = s->node;
    const cd_node_type *t = n->type;
    const char *display = cd_prompt_display_id(r->prompt, n);
    if (!t) {
        char msg[300];
        snprintf(msg, sizeof msg, "Node class %s does not exist", n->class_type);
        fail_node(r, s, "KeyError", msg, NULL);
        return NODE_FAILURE;
    }
    if (s->in_flight) return async_conclude(r, s);
    if (s->expanding) {
        finish_expansion(r, s);
        return NODE_SUCCESS;
    }
    if (!s->entry && has_results(r, s)) s->entry = cd_cache_get(r->ex->cache, &s->sig);
    if (s->entry) {
        /* Served from cache: the client still hears about its UI, but no `executing`. */
        const cd_cache_entry *e = s->entry;
        json_t *out = e->ui ? json_object_get(e->ui, "output") : NULL;
        emit_client(r, "executed",
                    json_pack("{s:s, s:s, s:O, s:s}", "node", n->id, "display_node", display, "output",
                              out ? out : json_null(), "prompt_id", r->prompt_id));
        return NODE_SUCCESS;
    }
    if (atomic_exchange(&r->ex->interrupt, 0)) {
        r->interrupted = true;
        r->current = s;
        return NODE_FAILURE;
    }
    input_lists il;
    if (gather_inputs(r, s, &il) < 0) {
        input_lists_free(&il);
        fail_node(r, s, "MemoryError", "out of memory", NULL);
        return NODE_FAILURE;
    }
    progress_state(r, s, "running", 0, 1);
    r->current_node = display;
    r->current = s;
    emit_executing(r, n->id, display);

    bool whole = (t->def->flags & CD_NODE_INPUT_IS_LIST) != 0;
    size_t n_calls = 1;
    if (!whole) {
        size_t max_len = 0;
        for (size_t k = 0; k < il.n; k++)
            if (il.lists[k] && cd_value_list_len(il.lists[k]) > max_len) max_len = cd_value_list_len(il.lists[k]);
        n_calls = max_len ? max_len : 1;
    }

    /* Lazy inputs: ask the node which ones it needs before running it. */
    if (t->def->check_lazy_status) {
        bool added = false;
        for (size_t c = 0; c < n_calls; c++) {
            cd_node_call call;
            cd_call_init(&call, t, &r->env, n->id, c);
            fill_call(&call, &il, c, whole);
            int rc = t->def->check_lazy_status(&call);
            if (rc != CD_OK) {
                fail_node(r, s, call.error_type ? call.error_type : "RuntimeError",
                          call.error_message ? call.error_message : "check_lazy_status failed", &il);
                cd_call_clear(&call);
                input_lists_free(&il);
                return NODE_FAILURE;
            }
            for (size_t k = 0; k < call.n_needed; k++) {
                const cd_prompt_input *in = cd_prompt_node_input(n, call.needed[k]);
                if (!in || !in->is_link) continue;
                nstate *src = link_source(r, in);
                if (src && !has_results(r, src)) {
                    add_strong_link(r, src, s);
                    added = true;
                }
            }
            cd_call_clear(&call);
        }
        if (added) {
            input_lists_free(&il);
            return NODE_PENDING;
        }
    }

    if (t->def->execute_async) return async_start(r, s, &il, n_calls, whole);

    int n_out = t->def->n_outputs;
    cd_node_call one_call; /* the usual case: one call, nothing to allocate */
    cd_node_call *calls = n_calls == 1 ? &one_call : calloc(n_calls, sizeof *calls);
    cd_value ***per_call = calloc(n_calls, sizeof *per_call);
    json_t *ui = NULL;
    bool expand = false;
    node_result result = NODE_SUCCESS;
    if (!calls || !per_call) {
        if (calls != &one_call) free(calls);
        free(per_call);
        input_lists_free(&il);
        fail_node(r, s, "MemoryError", "out of memory", NULL);
        return NODE_FAILURE;
    }
    size_t made = 0;
    for (size_t c = 0; c < n_calls && result == NODE_SUCCESS; c++) {
        cd_node_call *call = &calls[c];
        cd_call_init(call, t, &r->env, n->id, c);
        made++;
        fill_call(call, &il, c, whole);
        per_call[c] = calloc(n_out > 0 ? (size_t)n_out : 1, sizeof **per_call);
        const cd_value *blocker = find_blocker(call);
        if (blocker) {
            report_blocked(r, s, blocker);
            for (int k = 0; k < n_out; k++) per_call[c][k] = cd_value_blocker(NULL);
            continue;
        }
        if (atomic_exchange(&r->ex->interrupt, 0)) {
            r->interrupted = true;
            result = NODE_FAILURE;
            break;
        }
        int rc = t->def->execute(call);
        if (rc == CD_INTERRUPTED || (rc != CD_OK && atomic_load(&r->ex->interrupt))) {
            atomic_store(&r->ex->interrupt, 0);
            r->interrupted = true;
            result = NODE_FAILURE;
            break;
        }
        if (rc != CD_OK) {
            fail_node(r, s, call->error_type ? call->error_type : "RuntimeError",
                      call->error_message ? call->error_message : "the node failed without saying why", &il);
            result = NODE_FAILURE;
            break;
        }
        expand |= take_outputs(per_call[c], call, n_out);
        merge_ui(&ui, call->ui);
    }
    result = conclude_calls(r, s, calls, n_calls, per_call, ui, expand, result);
    for (size_t c = 0; c < made; c++) cd_call_clear(&calls[c]);
    if (calls != &one_call) free(calls);
    input_lists_free(&il);
    if (result == NODE_SUCCESS) note_executed(r, s);
    return result;
}

/* ---- a whole prompt ---- */

static void build_history(run_ctx *r, cd_exec_result *res) {
    res->outputs = json_object();
    res->meta = json_object();
    for (size_t i = 0; i < r->prompt->n; i++) {
        nstate *s = state_of(r, r->prompt->nodes[i]);
        if (!s || !s->entry || !s->entry->ui) continue;
        json_t *out = json_object_get(s->entry->ui, "output");
        json_t *meta = json_object_get(s->entry->ui, "meta");
        if (out) json_object_set(res->outputs, s->node->id, out);
        if (meta) json_object_set(res->meta, s->node->id, meta);
    }
}

/* Remembers a run that left every node of the prompt in the cache, and whose signatures are a
 * function of the prompt alone (no IS_CHANGED), so that running the same prompt object again
 * needs neither the graph nor the signatures. Only the keys are kept now; what a repeat needs
 * besides is made by the first repeat. */
static void remember_run(run_ctx *r, const cd_exec_request *req) {
    cd_executor *ex = r->ex;
    forget_last(ex);
    if (ex->policy != CD_CACHE_POLICY_CLASSIC || r->failed || r->interrupted) return;
    size_t n = r->prompt->n_original;
    if (n != json_object_size(req->prompt)) return;
    cd_sig *keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys) return;
    /* The original nodes are in the prompt object's order (cd_prompt_from_json). */
    for (size_t i = 0; i < n; i++) {
        const cd_prompt_node *pn = r->prompt->nodes[i];
        nstate *s = state_of(r, pn);
        if (!pn->type || pn->type->def->fingerprint || !s || !s->entry || !s->sig_done || s->sig.uncacheable) {
            free(keys);
            return;
        }
        keys[i] = s->sig;
    }
    ex->last.prompt = json_incref(req->prompt);
    ex->last.keys = keys;
    ex->last.n = n;
}

/* The first repeat of the remembered prompt indexes its node ids. Returns false when out of
 * memory. */
static bool index_last(cd_executor *ex) {
    if (ex->last.index) return true;
    cd_map *index = cd_map_new_borrowed(); /* keys: the remembered prompt object's, which it holds */
    json_t *ids = json_array();
    bool ok = index && ids && cd_map_reserve(index, ex->last.n) == 0;
    const char *id;
    json_t *node;
    size_t i = 0;
    json_object_foreach(ex->last.prompt, id, node) {
        if (!ok) break;
        ok = cd_map_set(index, id, (void *)(uintptr_t)(++i)) == 0 && json_array_append_new(ids, json_string(id)) == 0;
    }
    if (!ok) {
        cd_map_free(index);
        json_decref(ids);
        return false;
    }
    ex->last.index = index;
    ex->last.ids = ids;
    return true;
}

/* execution_cached of a repeat, written as text with the node list serialised once (it is the
 * longest message of a repeat): the history message, and the event to the client. Returns
 * false, having done nothing, when it cannot (the caller then sends it the usual way). */
static bool send_cached_repeat(run_ctx *r, json_t *data) {
    cd_executor *ex = r->ex;
    if (!r->client_id || !ex->sink.event_text) return false;
    if (!ex->last.ids_text && !(ex->last.ids_text = cd_json_dumps(ex->last.ids))) return false;
    cd_buf *b = &r->msg;
    cd_buf_reset(b);
    int rc = cd_buf_append_str(b, "{\"type\": \"execution_cached\", \"data\": {\"nodes\": ");
    rc |= cd_buf_append_str(b, ex->last.ids_text);
    rc |= cd_buf_append_str(b, ", \"prompt_id\": ");
    rc |= cd_json_append_string(b, r->prompt_id);
    rc |= cd_buf_printf(b, ", \"timestamp\": %" PRId64 "}}", (int64_t)json_integer_value(json_object_get(data, "timestamp")));
    if (rc < 0) return false;
    json_array_append_new(r->messages, json_pack("[s, o]", "execution_cached", data));
    ex->sink.event_text(ex->sink.ctx, "execution_cached", NULL, b->data, b->len, r->client_id);
    return true;
}

/* The same prompt object again, with every result still cached: what the full run would do
 * and send (start, every node cached, `executed` and "finished" for each output, success),
 * without building the graph or signing it. Returns false, having changed nothing a full run
 * would not do itself, when it does not apply. */
static bool rerun_cached(cd_executor *ex, const cd_exec_request *req, cd_exec_result *res) {
    size_t n = ex->last.n;
    if (!ex->last.prompt || ex->last.prompt != req->prompt || ex->policy != CD_CACHE_POLICY_CLASSIC) return false;
    if (!index_last(ex)) return false;
    bool *done = calloc(n ? n : 1, sizeof *done);
    if (!done) return false;
    const cd_cache_entry **entries = ex->last.entries;
    /* Nothing stored or dropped since the last repeat found every entry: the same entries, and
     * starting the prompt in the cache would change nothing. */
    if (!entries || ex->last.entries_version != cd_cache_version(ex->cache)) {
        /* Classic: the same keys as the full run would give; dropping the others is idempotent. */
        cd_cache_begin_prompt(ex->cache, ex->last.keys, n);
        free(ex->last.entries);
        ex->last.entries = entries = calloc(n ? n : 1, sizeof *entries);
        bool all = entries != NULL;
        for (size_t i = 0; all && i < n; i++) all = (entries[i] = cd_cache_get(ex->cache, &ex->last.keys[i])) != NULL;
        if (!all) {
            free(ex->last.entries);
            ex->last.entries = NULL;
            free(done);
            return false;
        }
        ex->last.entries_version = cd_cache_version(ex->cache);
    }
    run_ctx r = {.ex = ex, .prompt_id = req->prompt_id};
    r.messages = json_array();
    r.client_id = json_string_value(json_object_get(req->extra_data, "client_id"));
    atomic_store(&ex->interrupt, 0);
    add_message(&r, "execution_start",
                json_pack("{s:s, s:I}", "prompt_id", r.prompt_id, "timestamp", (json_int_t)now_ms()), false);
    const char *id;
    json_t *node;
    res->cached_count = n;
    /* The list is the same for every repeat, and nobody changes it: shared, not rebuilt, and
     * the event's text reuses its serialisation. */
    json_t *cached = json_pack("{s:O, s:s, s:I}", "nodes", ex->last.ids, "prompt_id", r.prompt_id, "timestamp",
                               (json_int_t)now_ms());
    if (!send_cached_repeat(&r, cached)) add_message(&r, "execution_cached", cached, false);
    size_t i_out;
    json_t *out_id;
    json_array_foreach(req->outputs, i_out, out_id) {
        const char *oid = json_string_value(out_id);
        uintptr_t pos = oid ? (uintptr_t)cd_map_get(ex->last.index, oid) : 0;
        if (!pos || done[pos - 1]) continue;
        done[pos - 1] = true;
        const cd_cache_entry *e = entries[pos - 1];
        json_t *out = e->ui ? json_object_get(e->ui, "output") : NULL;
        emit_client(&r, "executed",
                    json_pack("{s:s, s:s, s:O, s:s}", "node", oid, "display_node", oid, "output",
                              out ? out : json_null(), "prompt_id", r.prompt_id));
        cd_prompt_node pn = {.id = (char *)oid};
        nstate st = {.node = &pn};
        progress_state(&r, &st, "finished", 1, 1);
        res->executed_count++;
    }
    flush_held(&r);
    add_message(&r, "execution_success",
                json_pack("{s:s, s:I}", "prompt_id", r.prompt_id, "timestamp", (json_int_t)now_ms()), false);
    cd_buf_free(&r.held);
    cd_buf_free(&r.msg);
    res->success = true;
    res->messages = r.messages;
    res->outputs = json_object();
    res->meta = json_object();
    size_t i = 0;
    json_object_foreach(req->prompt, id, node) {
        const cd_cache_entry *e = entries[i++];
        json_t *out = e->ui ? json_object_get(e->ui, "output") : NULL;
        json_t *meta = e->ui ? json_object_get(e->ui, "meta") : NULL;
        if (out) json_object_set(res->outputs, id, out);
        if (meta) json_object_set(res->meta, id, meta);
    }
    free(done);
    return true;
}

/* Everything a run made for itself: its graph, node states and buffers. */
static void run_free(run_ctx *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_all; i++) state_release(r->all[i]);
    free(r->all);
    free(r->by_index);
    free(r->executed);
    free(r->ready);
    free(r->jobs);
    cd_arena_free(&r->arena);
    cd_buf_free(&r->held);
    cd_buf_free(&r->msg);
    cd_sig_builder_free(&r->sig);
    free(r->extra_pnginfo);
    cd_prompt_free(r->prompt);
    free(r);
}

size_t cd_executor_uncollected_nodes(const cd_executor *ex) {
    size_t n = 0;
    for (size_t i = 0; i < ex->n_finished; i++) n += ex->finished[i]->prompt->n;
    return n;
}

void cd_executor_collect(cd_executor *ex) {
    for (size_t i = 0; i < ex->n_finished; i++) run_free(ex->finished[i]);
    ex->n_finished = 0;
    cd_cache_collect(ex->cache);
}

/* The main loop: the ready node the scheduler prefers, until nothing is pending. */
static void run_pending(run_ctx *r, cd_exec_result *res) {
    while (!r->failed && !r->interrupted && r->n_pending > 0) {
        if (r->n_jobs) async_drain(r);
        nstate *s = pick_ready(r);
        if (!s && r->n_jobs) { /* async nodes in flight and nothing else to do */
            async_wait(r);
            continue;
        }
        if (!s) {
            /* Pending nodes but none ready: the graph has a cycle (only expansions can make one). */
            nstate *blame = NULL;
            for (size_t i = 0; i < r->n_all && !blame; i++)
                if (r->all[i]->pending && !r->all[i]->done && r->all[i]->node->ephemeral) blame = r->all[i];
            for (size_t i = 0; i < r->n_all && !blame; i++)
                if (r->all[i]->pending && !r->all[i]->done) blame = r->all[i];
            if (!blame) break;
            /* ComfyUI reports this one as str(ex), without the newline of a node's failure */
            report_failure(r, blame, "graph.DependencyCycleError", "Dependency cycle detected", NULL);
            break;
        }
        node_result nr = run_node(r, s);
        if (nr == NODE_SUCCESS) {
            progress_state(r, s, "finished", 1, 1);
            complete(r, s);
            res->executed_count++;
        } else if (nr == NODE_PENDING) {
            if (s->block_count == 0) make_ready(r, s);
        }
    }
}

/* Signs every original node, starts the prompt in the cache and lists the nodes served from it. */
static json_t *sign_and_list_cached(run_ctx *r, cd_exec_result *res) {
    cd_executor *ex = r->ex;
    size_t n_orig = r->prompt->n_original;
    cd_sig *keys = calloc(n_orig ? n_orig : 1, sizeof *keys);
    for (size_t i = 0; i < n_orig; i++) {
        nstate *s = state_for(r, r->prompt->nodes[i]);
        if (!s) continue;
        ensure_signed(r, s);
        if (keys) keys[i] = s->sig;
    }
    cd_cache_begin_prompt(ex->cache, keys, keys ? n_orig : 0);
    free(keys);
    json_t *cached = json_array();
    for (size_t i = 0; i < n_orig; i++) {
        nstate *s = state_of(r, r->prompt->nodes[i]);
        if (s && has_results(r, s)) {
            s->entry = cd_cache_get(ex->cache, &s->sig);
            json_array_append_new(cached, json_string(s->node->id));
            res->cached_count++;
        }
    }
    return cached;
}

int cd_executor_run(cd_executor *ex, const cd_exec_request *req, cd_exec_result *res) {
    memset(res, 0, sizeof *res);
    if (ex->n_finished == MAX_KEPT_RUNS) cd_executor_collect(ex);
    if (rerun_cached(ex, req, res)) return 0;
    char err[256];
    run_ctx *r = calloc(1, sizeof *r);
    if (!r) return -1;
    r->ex = ex;
    r->prompt_id = req->prompt_id;
    r->prompt = cd_prompt_from_json(ex->reg, req->prompt, err, sizeof err);
    r->messages = json_array();
    if (!r->prompt || !r->messages) {
        json_decref(r->messages);
        run_free(r);
        return -1;
    }
    r->client_id = json_string_value(json_object_get(req->extra_data, "client_id"));
    r->prompt_json = req->prompt;
    r->extra_data = req->extra_data;
    r->env = (cd_call_env){.ctx = r, .interrupted = env_interrupted, .progress = env_progress, .text = env_text,
                           .preview = env_preview, .directory = env_directory, .make_texts = env_make_texts,
                           .registry = ex->reg, .dynprompt = r->prompt,
                           .no_metadata = ex->sink.no_metadata};
    /* An interrupt that arrived while idle is lost, as in ComfyUI. */
    r->aenv = r->env;
    r->aenv.interrupted = aenv_interrupted;
    r->aenv.progress = aenv_progress;
    r->aenv.text = aenv_text;
    r->aenv.preview = aenv_preview;
    r->aenv.make_texts = aenv_make_texts;
    r->aenv.finish = aenv_finish;
    r->thread = pthread_self();
    r->events_tail = &r->events;
    atomic_init(&r->cancel, 0);
    atomic_store(&ex->interrupt, 0);
    add_message(r, "execution_start", json_pack("{s:s, s:I}", "prompt_id", r->prompt_id, "timestamp", (json_int_t)now_ms()),
                false);
    json_t *cached = sign_and_list_cached(r, res);
    add_message(r, "execution_cached",
                json_pack("{s:o, s:s, s:I}", "nodes", cached, "prompt_id", r->prompt_id, "timestamp", (json_int_t)now_ms()),
                false);

    size_t i_out;
    json_t *out_id;
    json_array_foreach(req->outputs, i_out, out_id) {
        nstate *s = state_by_id(r, json_string_value(out_id) ? json_string_value(out_id) : "");
        if (s) add_node(r, s);
    }
    run_pending(r, res);
    async_end_all(r); /* async calls still running after a failure or an interrupt */

    flush_held(r); /* the last node's "finished" */
    remember_run(r, req);
    if (r->interrupted) {
        const char *real = r->current ? cd_prompt_real_id(r->prompt, r->current->node) : NULL;
        cd_prompt_node *realn = real ? cd_prompt_get(r->prompt, real) : NULL;
        add_message(r, "execution_interrupted",
                    json_pack("{s:s, s:o, s:o, s:o, s:I}", "prompt_id", r->prompt_id, "node_id",
                              real ? json_string(real) : json_null(), "node_type",
                              realn ? json_string(realn->class_type) : json_null(), "executed", executed_json(r),
                              "timestamp", (json_int_t)now_ms()),
                    true);
    } else if (!r->failed) {
        add_message(r, "execution_success",
                    json_pack("{s:s, s:I}", "prompt_id", r->prompt_id, "timestamp", (json_int_t)now_ms()), false);
    }
    res->success = !r->failed && !r->interrupted;
    res->interrupted = r->interrupted;
    res->messages = r->messages;
    res->error = r->error;
    build_history(r, res);
    /* Freed by cd_executor_collect, once the prompt's last event is out. */
    ex->finished[ex->n_finished++] = r;
    return 0;
}

void cd_exec_result_clear(cd_exec_result *r) {
    json_decref(r->outputs);
    json_decref(r->messages);
    json_decref(r->meta);
    json_decref(r->error);
    memset(r, 0, sizeof *r);
}

cd_executor *cd_executor_new(const cd_registry *reg, cd_cache_policy policy, size_t lru_size, const cd_event_sink *sink) {
    cd_executor *ex = calloc(1, sizeof *ex);
    if (!ex) return NULL;
    ex->reg = reg;
    ex->cache = cd_cache_new(policy, lru_size);
    ex->policy = policy;
    if (!ex->cache) {
        free(ex);
        return NULL;
    }
    if (sink) ex->sink = *sink;
    atomic_init(&ex->interrupt, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&ex->amu, NULL);
    pthread_cond_init(&ex->acond, &ca);
    pthread_condattr_destroy(&ca);
    return ex;
}

void cd_executor_free(cd_executor *ex) {
    if (!ex) return;
    cd_executor_collect(ex);
    forget_last(ex);
    cd_cache_free(ex->cache);
    pthread_mutex_destroy(&ex->amu);
    pthread_cond_destroy(&ex->acond);
    free(ex);
}

void cd_executor_interrupt(cd_executor *ex) { atomic_store(&ex->interrupt, 1); }
void cd_executor_reset_caches(cd_executor *ex) {
    cd_executor_collect(ex);
    forget_last(ex);
    cd_cache_reset(ex->cache);
}
