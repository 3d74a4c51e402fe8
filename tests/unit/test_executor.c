/* The executor, driven directly (no HTTP): dependency order, only what outputs need, the
 * event sequence of ComfyUI, caching by signature in the three policies, lazy inputs,
 * execution blockers, list mapping, expansion, failures, interrupt, a 100,000-node chain, and
 * async nodes in flight together (timed as ratios of their summed durations). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/executor.h"
#include "engine/registry.h"
#include "nodes/builtin.h"

/* ---- a test pack ---- */

static int const_exec(cd_node_call *c) { return cd_call_set_output(c, 0, cd_value_int(cd_call_int(c, "value", 0))); }
static int add_exec(cd_node_call *c) {
    return cd_call_set_output(c, 0, cd_value_int(cd_call_int(c, "a", 0) + cd_call_int(c, "b", 0)));
}
static int out_exec(cd_node_call *c) {
    const cd_value *v = cd_call_input(c, "value");
    char *text = cd_value_to_json(v);
    cd_call_ui(c, "text", cd_value_string(text ? text : "?"));
    cd_free(text);
    return CD_OK;
}
static int fail_exec(cd_node_call *c) { return cd_call_fail(c, "ValueError", "boom %d", 42); }
static int switch_lazy(cd_node_call *c) {
    return cd_call_need_input(c, cd_call_bool(c, "switch", 0) ? "on_true" : "on_false");
}
static int switch_exec(cd_node_call *c) {
    const cd_value *v = cd_call_input(c, cd_call_bool(c, "switch", 0) ? "on_true" : "on_false");
    return cd_call_set_output(c, 0, v ? cd_value_ref(v) : cd_value_none());
}
static int block_exec(cd_node_call *c) {
    if (cd_call_bool(c, "block", 0)) return cd_call_set_output(c, 0, cd_value_blocker(cd_call_string(c, "message", NULL)));
    return cd_call_set_output(c, 0, cd_value_int(cd_call_int(c, "value", 0)));
}
static int list_exec(cd_node_call *c) {
    cd_value *l = cd_value_list_new(3);
    for (int i = 1; i <= cd_call_int(c, "count", 3); i++) cd_value_list_push(l, cd_value_int(i * 10));
    return cd_call_set_output(c, 0, l);
}
static int sum_exec(cd_node_call *c) {
    const cd_value *l = cd_call_input(c, "values");
    int64_t sum = 0;
    for (size_t i = 0; i < cd_value_list_len(l); i++) sum += cd_value_as_int(cd_value_list_at(l, i));
    return cd_call_set_output(c, 0, cd_value_int(sum));
}
/* Expands into: 1 = TestAdd(a, a), 2 = TestAdd(1, b); returns 2's output. */
static int expand_exec(cd_node_call *c) {
    const char *n1 = cd_call_graph_add(c, "TestAdd", NULL);
    cd_call_graph_set_input(c, n1, "a", cd_value_int(cd_call_int(c, "a", 0)));
    cd_call_graph_set_input(c, n1, "b", cd_value_int(cd_call_int(c, "a", 0)));
    char first[64];
    snprintf(first, sizeof first, "%s", n1);
    const char *n2 = cd_call_graph_add(c, "TestAdd", NULL);
    cd_call_graph_set_input(c, n2, "a", cd_value_link(first, 0));
    cd_call_graph_set_input(c, n2, "b", cd_value_int(cd_call_int(c, "b", 0)));
    return cd_call_set_output(c, 0, cd_value_link(n2, 0));
}
static cd_value *nan_fingerprint(cd_node_call *c) {
    (void)c;
    return cd_value_float(NAN);
}
/* IS_CHANGED of an INPUT_IS_LIST node: constants arrive as [v], links as [None]; anything
 * else gives NaN (never cached), which the test would notice. */
static cd_value *list_fingerprint(cd_node_call *c) {
    const cd_value *v = cd_call_input(c, "values"), *o = cd_call_input(c, "other");
    if (cd_value_kind_of(v) != CD_VALUE_LIST || cd_value_list_len(v) != 1) return cd_value_float(NAN);
    if (o && (cd_value_kind_of(o) != CD_VALUE_LIST || cd_value_list_len(o) != 1 ||
              cd_value_kind_of(cd_value_list_at(o, 0)) != CD_VALUE_NONE))
        return cd_value_float(NAN);
    return cd_value_ref(cd_value_list_at(v, 0));
}
static int slow_exec(cd_node_call *c) {
    for (int i = 0; i < 1000000; i++) {
        if (cd_call_progress(c, i, 1000000) == CD_INTERRUPTED) return CD_INTERRUPTED;
    }
    return cd_call_set_output(c, 0, cd_value_int(1));
}

/* ---- async nodes: each call sleeps `ms` on a thread of its own, reporting progress ---- */

static atomic_int async_running, async_most;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int async_sleep_work(cd_node_call *c) {
    int running = atomic_fetch_add(&async_running, 1) + 1;
    for (int most = atomic_load(&async_most); running > most && !atomic_compare_exchange_weak(&async_most, &most, running);) {
    }
    int64_t ms = cd_call_int(c, "ms", 100);
    double end = now_s() + (double)ms / 1000.0;
    int rc = CD_OK;
    for (int step = 0; now_s() < end; step++) {
        if (cd_call_progress(c, step, (double)ms / 5) == CD_INTERRUPTED) {
            rc = CD_INTERRUPTED;
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_sub(&async_running, 1);
    if (rc != CD_OK) return rc;
    if (cd_call_bool(c, "fail", 0)) return cd_call_fail(c, "RuntimeError", "async failure");
    const cd_value *v = cd_call_input(c, "value");
    return cd_call_set_output(c, 0, v ? cd_value_ref(v) : cd_value_none());
}

static void *async_thread(void *arg) {
    cd_node_call *c = arg;
    cd_call_finish(c, async_sleep_work(c));
    return NULL;
}

static int async_sleep_start(cd_node_call *c) {
    pthread_t th;
    if (pthread_create(&th, NULL, async_thread, c) != 0) return async_sleep_work(c);
    pthread_detach(th);
    return CD_PENDING;
}

/* An async node whose work is done by the time it returns: no cd_call_finish. */
static int async_at_once(cd_node_call *c) { return cd_call_set_output(c, 0, cd_value_int(cd_call_int(c, "value", 0) * 2)); }

static const cd_output_def int_out[] = {{"INT", NULL, 0, NULL, NULL}};
static const cd_output_def any_out[] = {{"*", NULL, 0, NULL, NULL}};
static const cd_output_def list_out[] = {{"INT", NULL, 1, NULL, NULL}};

#define DEF(NAME, INPUTS, OUTS, NOUT, FLAGS, ...)                                                                    \
    {.abi_version = CD_NODE_ABI_VERSION, .name = NAME, .inputs = INPUTS, .outputs = OUTS, .n_outputs = NOUT,        \
     .flags = FLAGS, __VA_ARGS__}

static const cd_node_def test_defs[] = {
    DEF("TestConst", "{\"required\": {\"value\": [\"INT\", {}]}}", int_out, 1, 0, .execute = const_exec),
    DEF("TestAdd", "{\"required\": {\"a\": [\"INT\", {}], \"b\": [\"INT\", {}]}}", int_out, 1, 0, .execute = add_exec),
    DEF("TestOut", "{\"required\": {\"value\": [\"*\", {}]}}", NULL, 0, CD_NODE_OUTPUT, .execute = out_exec),
    DEF("TestFail", "{\"required\": {\"value\": [\"INT\", {}]}}", int_out, 1, 0, .execute = fail_exec),
    DEF("TestSwitch",
        "{\"required\": {\"switch\": [\"BOOLEAN\", {}], \"on_true\": [\"*\", {\"lazy\": true}], \"on_false\": [\"*\", "
        "{\"lazy\": true}]}}",
        any_out, 1, 0, .execute = switch_exec, .check_lazy_status = switch_lazy),
    DEF("TestBlock",
        "{\"required\": {\"value\": [\"INT\", {}], \"block\": [\"BOOLEAN\", {}]}, \"optional\": {\"message\": "
        "[\"STRING\", {}]}}",
        int_out, 1, 0, .execute = block_exec),
    DEF("TestList", "{\"required\": {\"count\": [\"INT\", {}]}}", list_out, 1, 0, .execute = list_exec),
    DEF("TestSum", "{\"required\": {\"values\": [\"INT\", {}]}}", int_out, 1, CD_NODE_INPUT_IS_LIST,
        .execute = sum_exec),
    DEF("TestExpand", "{\"required\": {\"a\": [\"INT\", {}], \"b\": [\"INT\", {}]}}", int_out, 1, 0,
        .execute = expand_exec),
    DEF("TestNaN", "{\"required\": {\"value\": [\"INT\", {}]}}", int_out, 1, 0, .execute = const_exec,
        .fingerprint = nan_fingerprint),
    DEF("TestSumFp", "{\"required\": {\"values\": [\"INT\", {}]}, \"optional\": {\"other\": [\"INT\", {}]}}",
        int_out, 1, CD_NODE_INPUT_IS_LIST, .execute = sum_exec, .fingerprint = list_fingerprint),
    DEF("TestSlow", "{\"required\": {}}", int_out, 1, 0, .execute = slow_exec),
    DEF("TestFloatOut", "{\"required\": {\"value\": [\"FLOAT\", {}]}}", NULL, 0, CD_NODE_OUTPUT, .execute = out_exec),
    DEF("TestAsyncSleep",
        "{\"required\": {\"value\": [\"INT\", {}], \"ms\": [\"INT\", {}]}, \"optional\": {\"fail\": [\"BOOLEAN\", {}]}}",
        int_out, 1, 0, .execute_async = async_sleep_start),
    DEF("TestAsyncNow", "{\"required\": {\"value\": [\"INT\", {}]}}", int_out, 1, 0, .execute_async = async_at_once),
};

static int test_pack_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof test_defs / sizeof test_defs[0]; i++)
        assert_int_equal(cd_pack_register(pack, &test_defs[i]), CD_OK);
    return CD_OK;
}

/* ---- a recording sink ---- */

typedef struct {
    json_t *events; /* [[type, data, sid], ...] */
    cd_executor *ex;
    int interrupt_after_progress;
} recorder;

static void record(void *ctx, const char *type, json_t *data, const char *sid) {
    recorder *r = ctx;
    json_array_append_new(r->events, json_pack("[s, o, s?]", type, data, sid));
    if (r->interrupt_after_progress && !strcmp(type, "progress") && --r->interrupt_after_progress == 0)
        cd_executor_interrupt(r->ex);
}

typedef struct {
    cd_registry *reg;
    recorder rec;
    cd_executor *ex;
} fixture;

static fixture *fixture_new(cd_cache_policy policy, size_t lru) {
    fixture *f = calloc(1, sizeof *f);
    f->reg = cd_registry_new();
    assert_true(cd_registry_add_pack(f->reg, "test", "custom_nodes.test", test_pack_init) > 0);
    f->rec.events = json_array();
    cd_event_sink sink = {.ctx = &f->rec, .event = record};
    f->ex = cd_executor_new(f->reg, policy, lru, &sink);
    f->rec.ex = f->ex;
    return f;
}

static void fixture_free(fixture *f) {
    cd_executor_free(f->ex);
    cd_registry_free(f->reg);
    json_decref(f->rec.events);
    free(f);
}

static cd_exec_result run(fixture *f, const char *prompt_json, const char *outputs_json, const char *client) {
    json_array_clear(f->rec.events);
    json_t *prompt = json_loads(prompt_json, 0, NULL);
    json_t *outputs = json_loads(outputs_json, 0, NULL);
    assert_non_null(prompt);
    assert_non_null(outputs);
    json_t *extra = client ? json_pack("{s:s}", "client_id", client) : json_object();
    cd_exec_request req = {.prompt_id = "p1", .prompt = prompt, .extra_data = extra, .outputs = outputs};
    cd_exec_result res;
    assert_int_equal(cd_executor_run(f->ex, &req, &res), 0);
    json_decref(prompt);
    json_decref(outputs);
    json_decref(extra);
    return res;
}

/* The node ids of the `executing` events, as "a,b,c". */
static void executing_order(fixture *f, char *out, size_t n) {
    out[0] = '\0';
    size_t i;
    json_t *ev;
    json_array_foreach(f->rec.events, i, ev) {
        if (strcmp(json_string_value(json_array_get(ev, 0)), "executing")) continue;
        const char *node = json_string_value(json_object_get(json_array_get(ev, 1), "node"));
        if (!node) continue;
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%s", len ? "," : "", node);
    }
}

static json_t *find_event(fixture *f, const char *type) {
    size_t i;
    json_t *ev;
    json_array_foreach(f->rec.events, i, ev) if (!strcmp(json_string_value(json_array_get(ev, 0)), type)) return json_array_get(ev, 1);
    return NULL;
}

static const char *ui_text(cd_exec_result *res, const char *node) {
    return json_string_value(json_array_get(json_object_get(json_object_get(res->outputs, node), "text"), 0));
}

static const char *diamond =
    "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 2}},"
    " \"2\": {\"class_type\": \"TestAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 3}},"
    " \"3\": {\"class_type\": \"TestAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": [\"2\", 0]}},"
    " \"4\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"3\", 0]}},"
    " \"9\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 99}}}";

static void runs_in_dependency_order_and_only_what_is_needed(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    cd_exec_result res = run(f, diamond, "[\"4\"]", "client");
    assert_true(res.success);
    assert_string_equal(ui_text(&res, "4"), "7");
    char order[256];
    executing_order(f, order, sizeof order);
    assert_string_equal(order, "1,2,3,4"); /* node 9 feeds no output: never runs */
    /* ComfyUI's sequence: start, cached, per-node events, success */
    assert_string_equal(json_string_value(json_array_get(json_array_get(f->rec.events, 0), 0)), "execution_start");
    assert_string_equal(json_string_value(json_array_get(json_array_get(f->rec.events, 1), 0)), "execution_cached");
    json_t *last = json_array_get(f->rec.events, json_array_size(f->rec.events) - 1);
    assert_string_equal(json_string_value(json_array_get(last, 0)), "execution_success");
    json_t *executed = find_event(f, "executed");
    assert_string_equal(json_string_value(json_object_get(executed, "node")), "4");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(executed, "output"), "text"), 0)), "7");
    /* history messages: start, cached, success */
    assert_int_equal(json_array_size(res.messages), 3);
    assert_non_null(json_object_get(res.meta, "4"));
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void repeated_prompt_is_cached(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    cd_exec_result res = run(f, diamond, "[\"4\"]", "client");
    cd_exec_result_clear(&res);
    res = run(f, diamond, "[\"4\"]", "client");
    assert_true(res.success);
    json_t *cached = json_object_get(find_event(f, "execution_cached"), "nodes");
    assert_int_equal(json_array_size(cached), 4); /* 1,2,3,4 (9 was never run) */
    char order[256];
    executing_order(f, order, sizeof order);
    assert_string_equal(order, ""); /* nothing runs again */
    /* the cached output node still reports its UI, and history still has it */
    assert_string_equal(ui_text(&res, "4"), "7");
    cd_exec_result_clear(&res);
    /* a changed constant re-runs only what depends on it */
    const char *changed = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 2}},"
                          " \"2\": {\"class_type\": \"TestAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 4}},"
                          " \"3\": {\"class_type\": \"TestAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": [\"2\", 0]}},"
                          " \"4\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    res = run(f, changed, "[\"4\"]", "client");
    executing_order(f, order, sizeof order);
    assert_string_equal(order, "2,3,4");
    assert_string_equal(ui_text(&res, "4"), "8");
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void cache_none_reruns_everything(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_NONE, 0);
    cd_exec_result res = run(f, diamond, "[\"4\"]", "c");
    cd_exec_result_clear(&res);
    res = run(f, diamond, "[\"4\"]", "c");
    char order[256];
    executing_order(f, order, sizeof order);
    assert_string_equal(order, "1,2,3,4");
    assert_int_equal(json_array_size(json_object_get(find_event(f, "execution_cached"), "nodes")), 0);
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void lru_keeps_results_across_prompts(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_LRU, 100);
    const char *other = "{\"5\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 5}},"
                        " \"6\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"5\", 0]}}}";
    cd_exec_result res = run(f, diamond, "[\"4\"]", "c");
    cd_exec_result_clear(&res);
    res = run(f, other, "[\"6\"]", "c");
    cd_exec_result_clear(&res);
    res = run(f, diamond, "[\"4\"]", "c"); /* classic would have lost these */
    char order[256];
    executing_order(f, order, sizeof order);
    assert_string_equal(order, "");
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void nan_fingerprint_is_never_cached(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *p = "{\"1\": {\"class_type\": \"TestNaN\", \"inputs\": {\"value\": 1}},"
                    " \"2\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"1\", 0]}}}";
    cd_exec_result res = run(f, p, "[\"2\"]", "c");
    cd_exec_result_clear(&res);
    res = run(f, p, "[\"2\"]", "c");
    char order[256];
    executing_order(f, order, sizeof order);
    assert_string_equal(order, "1,2"); /* and its consumer too */
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void input_is_list_fingerprint_sees_lists(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *p = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 1}},"
                    " \"2\": {\"class_type\": \"TestSumFp\", \"inputs\": {\"values\": 5, \"other\": [\"1\", 0]}},"
                    " \"3\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    cd_exec_result res = run(f, p, "[\"3\"]", "c");
    assert_true(res.success);
    cd_exec_result_clear(&res);
    res = run(f, p, "[\"3\"]", "c");
    char order[256];
    executing_order(f, order, sizeof order);
    assert_string_equal(order, ""); /* the fingerprint was not NaN: everything cached */
    cd_exec_result_clear(&res);
    fixture_free(f);
}

/* [[type, data, sid], ...] or [[type, data], ...] without the timestamps. */
static json_t *untimed(const json_t *list) {
    json_t *copy = json_deep_copy(list);
    size_t i;
    json_t *ev;
    json_array_foreach(copy, i, ev) json_object_del(json_array_get(ev, 1), "timestamp");
    return copy;
}

/* A repeat of the very same (validated, shared) prompt object with everything cached skips
 * building and signing the graph: it must send and record exactly what the full run does. */
static void rerun_of_the_same_prompt_object(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *text = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 2}},"
                       " \"2\": {\"class_type\": \"TestAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 3}},"
                       " \"3\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"2\", 0]}},"
                       " \"4\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"1\", 0]}}}";
    json_t *prompt = json_loads(text, 0, NULL), *copy = json_loads(text, 0, NULL);
    json_t *outputs = json_loads("[\"4\", \"3\", \"4\"]", 0, NULL);
    json_t *extra = json_pack("{s:s}", "client_id", "c");
    cd_exec_request req = {.prompt_id = "p1", .prompt = prompt, .extra_data = extra, .outputs = outputs};
    cd_exec_result res, fast, full;
    assert_int_equal(cd_executor_run(f->ex, &req, &res), 0);
    assert_true(res.success);
    cd_exec_result_clear(&res);
    json_array_clear(f->rec.events);
    assert_int_equal(cd_executor_run(f->ex, &req, &fast), 0);
    json_t *fast_events = untimed(f->rec.events);
    json_array_clear(f->rec.events);
    /* a second repeat reuses what the first found in the cache, and sends the same */
    cd_exec_result again;
    assert_int_equal(cd_executor_run(f->ex, &req, &again), 0);
    json_t *again_events = untimed(f->rec.events);
    json_array_clear(f->rec.events);
    assert_true(json_equal(fast_events, again_events));
    assert_true(again.success);
    assert_int_equal(again.cached_count, 4);
    assert_true(json_equal(fast.outputs, again.outputs));
    json_decref(again_events);
    cd_exec_result_clear(&again);
    req.prompt = copy; /* another object: the full run, everything cached */
    assert_int_equal(cd_executor_run(f->ex, &req, &full), 0);
    json_t *full_events = untimed(f->rec.events);
    assert_true(json_equal(fast_events, full_events));
    assert_true(json_array_size(fast_events) >= 6);
    assert_true(fast.success && full.success);
    assert_int_equal(fast.executed_count, full.executed_count);
    assert_int_equal(fast.cached_count, 4);
    assert_int_equal(full.cached_count, 4);
    assert_true(json_equal(fast.outputs, full.outputs));
    assert_true(json_equal(fast.meta, full.meta));
    json_t *m1 = untimed(fast.messages), *m2 = untimed(full.messages);
    assert_true(json_equal(m1, m2));
    assert_string_equal(ui_text(&fast, "3"), "5");
    json_decref(m1);
    json_decref(m2);
    json_decref(fast_events);
    json_decref(full_events);
    cd_exec_result_clear(&fast);
    cd_exec_result_clear(&full);
    json_decref(prompt);
    json_decref(copy);
    json_decref(outputs);
    json_decref(extra);
    fixture_free(f);
}

static void failure_reports_and_stops(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *p = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 1}},"
                    " \"2\": {\"class_type\": \"TestFail\", \"inputs\": {\"value\": [\"1\", 0]}},"
                    " \"3\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    cd_exec_result res = run(f, p, "[\"3\"]", "c");
    assert_false(res.success);
    json_t *err = find_event(f, "execution_error");
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "node_id")), "2");
    assert_string_equal(json_string_value(json_object_get(err, "node_type")), "TestFail");
    assert_string_equal(json_string_value(json_object_get(err, "exception_type")), "ValueError");
    assert_string_equal(json_string_value(json_object_get(err, "exception_message")), "boom 42\n"); /* ComfyUI's "{ex}\n{tips}" */
    assert_int_equal(json_integer_value(json_array_get(json_object_get(json_object_get(err, "current_inputs"), "value"), 0)), 1);
    char order[256];
    executing_order(f, order, sizeof order);
    assert_string_equal(order, "1,2"); /* 3 never runs */
    cd_exec_result_clear(&res);
    /* the next prompt runs normally */
    res = run(f, diamond, "[\"4\"]", "c");
    assert_true(res.success);
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void lazy_inputs_run_only_when_asked(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *p = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 1}},"
                    " \"2\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 2}},"
                    " \"3\": {\"class_type\": \"TestSwitch\", \"inputs\": {\"switch\": false, \"on_true\": [\"1\", 0], "
                    "\"on_false\": [\"2\", 0]}},"
                    " \"4\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    cd_exec_result res = run(f, p, "[\"4\"]", "c");
    assert_true(res.success);
    assert_string_equal(ui_text(&res, "4"), "2");
    char order[256];
    executing_order(f, order, sizeof order);
    /* the switch starts, asks for on_false, runs again: node 1 never runs */
    assert_string_equal(order, "3,2,3,4");
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void blockers_stop_consumers(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *p = "{\"1\": {\"class_type\": \"TestBlock\", \"inputs\": {\"value\": 1, \"block\": true, \"message\": \"no\"}},"
                    " \"2\": {\"class_type\": \"TestAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
                    " \"3\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    cd_exec_result res = run(f, p, "[\"3\"]", "c");
    assert_true(res.success); /* a blocker does not fail the prompt */
    json_t *err = find_event(f, "execution_error");
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "exception_type")), "ExecutionBlocked");
    assert_string_equal(json_string_value(json_object_get(err, "exception_message")), "Execution Blocked: no");
    assert_string_equal(json_string_value(json_object_get(err, "node_id")), "2");
    assert_null(json_object_get(res.outputs, "3")); /* the output node got nothing */
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void lists_map_and_merge(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    /* TestList gives [10,20,30]; TestAdd maps over it (+1 each); TestOut maps too (3 UI texts);
     * TestSum takes the whole list. */
    const char *p = "{\"1\": {\"class_type\": \"TestList\", \"inputs\": {\"count\": 3}},"
                    " \"2\": {\"class_type\": \"TestAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
                    " \"3\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"2\", 0]}},"
                    " \"4\": {\"class_type\": \"TestSum\", \"inputs\": {\"values\": [\"2\", 0]}},"
                    " \"5\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"4\", 0]}}}";
    cd_exec_result res = run(f, p, "[\"3\", \"5\"]", "c");
    assert_true(res.success);
    json_t *texts = json_object_get(json_object_get(res.outputs, "3"), "text");
    assert_int_equal(json_array_size(texts), 3);
    assert_string_equal(json_string_value(json_array_get(texts, 2)), "31");
    assert_string_equal(ui_text(&res, "5"), "63");
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void expansion_runs_the_subgraph(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *p = "{\"7\": {\"class_type\": \"TestExpand\", \"inputs\": {\"a\": 3, \"b\": 4}},"
                    " \"8\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"7\", 0]}}}";
    cd_exec_result res = run(f, p, "[\"8\"]", "c");
    assert_true(res.success);
    assert_string_equal(ui_text(&res, "8"), "10"); /* (3+3)+4 */
    char order[256];
    executing_order(f, order, sizeof order);
    assert_string_equal(order, "7,7.0.0.1,7.0.0.2,8");
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void no_client_no_per_prompt_events(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    cd_exec_result res = run(f, diamond, "[\"4\"]", NULL);
    assert_true(res.success);
    assert_null(find_event(f, "execution_start"));
    assert_null(find_event(f, "executing"));
    assert_null(find_event(f, "executed"));
    assert_int_equal(json_array_size(res.messages), 3); /* history still has them */
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void interrupt_stops_a_long_node(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    f->rec.interrupt_after_progress = 5;
    const char *p = "{\"1\": {\"class_type\": \"TestSlow\", \"inputs\": {}},"
                    " \"2\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"1\", 0]}}}";
    cd_exec_result res = run(f, p, "[\"2\"]", "c");
    assert_false(res.success);
    assert_true(res.interrupted);
    json_t *ev = find_event(f, "execution_interrupted");
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "node_id")), "1");
    assert_string_equal(json_string_value(json_object_get(ev, "node_type")), "TestSlow");
    cd_exec_result_clear(&res);
    f->rec.interrupt_after_progress = 0;
    res = run(f, diamond, "[\"4\"]", "c");
    assert_true(res.success);
    cd_exec_result_clear(&res);
    fixture_free(f);
}

static void long_chain_without_recursion(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    enum { N = 100000 };
    json_t *p = json_object();
    json_object_set_new(p, "0", json_pack("{s:s, s:{s:i}}", "class_type", "TestConst", "inputs", "value", 1));
    for (int i = 1; i < N; i++) {
        char id[16], prev[16];
        snprintf(id, sizeof id, "%d", i);
        snprintf(prev, sizeof prev, "%d", i - 1);
        json_object_set_new(p, id, json_pack("{s:s, s:{s:[s,i], s:i}}", "class_type", "TestAdd", "inputs", "a", prev, 0, "b", 1));
    }
    char last[16];
    snprintf(last, sizeof last, "%d", N - 1);
    json_object_set_new(p, "out", json_pack("{s:s, s:{s:[s,i]}}", "class_type", "TestOut", "inputs", "value", last, 0));
    char *text = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    cd_exec_result res = run(f, text, "[\"out\"]", NULL);
    assert_true(res.success);
    char expect[16];
    snprintf(expect, sizeof expect, "%d", N);
    assert_string_equal(ui_text(&res, "out"), expect);
    assert_int_equal(res.executed_count, N + 1);
    cd_exec_result_clear(&res);
    res = run(f, text, "[\"out\"]", NULL); /* all cached */
    assert_int_equal(res.cached_count, N + 1);
    cd_exec_result_clear(&res);
    free(text);
    fixture_free(f);
}

/* Validation keeps "inf"/"nan" FLOAT constants as text (JSON has no such numbers); the
 * executor must hand the node a float. */
static void float_text_constants_become_floats(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    cd_exec_result res = run(f, "{\"1\": {\"class_type\": \"TestFloatOut\", \"inputs\": {\"value\": \"-inf\"}}}", "[\"1\"]", "c");
    assert_true(res.success);
    assert_string_equal(ui_text(&res, "1"), "-Infinity"); /* json.dumps(float("-inf")) */
    cd_exec_result_clear(&res);
    fixture_free(f);
}

/* ---- async nodes ---- */

static double timed_run(fixture *f, const char *prompt, const char *outputs, cd_exec_result *res) {
    atomic_store(&async_most, 0);
    double t0 = now_s();
    *res = run(f, prompt, outputs, "c");
    return now_s() - t0;
}

static int count_events(fixture *f, const char *type, const char *node) {
    int n = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(f->rec.events, i, ev) {
        if (strcmp(json_string_value(json_array_get(ev, 0)), type)) continue;
        const char *id = json_string_value(json_object_get(json_array_get(ev, 1), "node"));
        if (!node || (id && !strcmp(id, node))) n++;
    }
    return n;
}

/* test_parallel_sleep_nodes: three 0.5 s async sleeps take about 0.5 s, not 1.5 s. (Their
 * durations differ a little: identical nodes would share one cache entry.) */
static void async_nodes_run_concurrently(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *p = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 7}},"
                    " \"2\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 500}},"
                    " \"3\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 490}},"
                    " \"4\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 510}},"
                    " \"5\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"2\", 0]}},"
                    " \"6\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"3\", 0]}},"
                    " \"7\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"4\", 0]}}}";
    cd_exec_result res;
    double secs = timed_run(f, p, "[\"5\", \"6\", \"7\"]", &res);
    assert_true(res.success);
    assert_string_equal(ui_text(&res, "5"), "7");
    assert_string_equal(ui_text(&res, "7"), "7");
    assert_int_equal(atomic_load(&async_most), 3);
    assert_true(secs >= 0.51);
    assert_true(secs / 1.5 < 0.6); /* in parallel: well under the sum */
    /* one `executing` per node, none when an async node's results are taken */
    for (int i = 1; i <= 7; i++) {
        char id[4];
        snprintf(id, sizeof id, "%d", i);
        assert_int_equal(count_events(f, "executing", id), 1);
    }
    assert_true(count_events(f, "progress", "2") > 0); /* sent from the calls' threads */
    assert_int_equal(res.executed_count, 7);
    cd_exec_result_clear(&res);
    /* cached the second time: nothing runs */
    double again = timed_run(f, p, "[\"5\", \"6\", \"7\"]", &res);
    assert_true(res.success);
    assert_true(again < 0.25);
    assert_int_equal(atomic_load(&async_most), 0);
    cd_exec_result_clear(&res);
    fixture_free(f);
}

/* Links still order async nodes (a chain takes the sum); the calls of a node mapped over a
 * list are in flight together; an async node done at once needs no cd_call_finish; async
 * nodes are started before other ready nodes (ux_friendly_pick_node). */
static void async_nodes_keep_dependencies_and_lists(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *chain = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 1}},"
                        " \"2\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 200}},"
                        " \"3\": {\"class_type\": \"TestAdd\", \"inputs\": {\"a\": [\"2\", 0], \"b\": 10}},"
                        " \"4\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"3\", 0], \"ms\": 200}},"
                        " \"5\": {\"class_type\": \"TestAsyncNow\", \"inputs\": {\"value\": [\"4\", 0]}},"
                        " \"6\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"5\", 0]}}}";
    cd_exec_result res;
    double secs = timed_run(f, chain, "[\"6\"]", &res);
    assert_true(res.success);
    assert_string_equal(ui_text(&res, "6"), "22");
    assert_true(secs >= 0.4);
    assert_int_equal(atomic_load(&async_most), 1);
    char order[128];
    executing_order(f, order, sizeof order);
    assert_string_equal(order, "1,2,3,4,5,6");
    cd_exec_result_clear(&res);

    const char *mapped = "{\"1\": {\"class_type\": \"TestList\", \"inputs\": {\"count\": 3}},"
                         " \"2\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 400}},"
                         " \"3\": {\"class_type\": \"TestSum\", \"inputs\": {\"values\": [\"2\", 0]}},"
                         " \"4\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    secs = timed_run(f, mapped, "[\"4\"]", &res);
    assert_true(res.success);
    assert_string_equal(ui_text(&res, "4"), "60");
    assert_int_equal(atomic_load(&async_most), 3);
    assert_true(secs / 1.2 < 0.6);
    cd_exec_result_clear(&res);

    /* 3 (sync) and 2 (async) are ready together, both feeding an output: 2 starts first, 3 and
     * its output run while 2 sleeps, then 2's output. */
    const char *pick = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 2}},"
                       " \"3\": {\"class_type\": \"TestAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
                       " \"5\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"3\", 0]}},"
                       " \"2\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 100}},"
                       " \"4\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    secs = timed_run(f, pick, "[\"5\", \"4\"]", &res);
    assert_true(res.success);
    executing_order(f, order, sizeof order);
    assert_string_equal(order, "1,2,3,5,4");
    cd_exec_result_clear(&res);
    fixture_free(f);
}

/* A failing async node fails the prompt; the sleep still in flight is told to stop, and the run
 * waits for it (no call outlives its prompt). The next prompt runs. */
static void async_failure_stops_the_others(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    const char *p = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 1}},"
                    " \"2\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 5000}},"
                    " \"3\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 50, \"fail\": true}},"
                    " \"4\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"2\", 0]}},"
                    " \"5\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    cd_exec_result res;
    double secs = timed_run(f, p, "[\"4\", \"5\"]", &res);
    assert_false(res.success);
    assert_false(res.interrupted);
    assert_non_null(res.error);
    assert_string_equal(json_string_value(json_object_get(res.error, "node_id")), "3");
    assert_string_equal(json_string_value(json_object_get(res.error, "exception_message")), "async failure\n");
    assert_true(secs < 2.0);
    assert_int_equal(atomic_load(&async_running), 0);
    cd_exec_result_clear(&res);
    res = run(f, diamond, "[\"4\"]", "c");
    assert_true(res.success);
    cd_exec_result_clear(&res);
    fixture_free(f);
}

/* An interrupt while only async nodes run stops them and names one of them. */
static void async_interrupt(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    f->rec.interrupt_after_progress = 10;
    const char *p = "{\"1\": {\"class_type\": \"TestConst\", \"inputs\": {\"value\": 1}},"
                    " \"2\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 5000}},"
                    " \"3\": {\"class_type\": \"TestAsyncSleep\", \"inputs\": {\"value\": [\"1\", 0], \"ms\": 5000}},"
                    " \"4\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"2\", 0]}},"
                    " \"5\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    cd_exec_result res;
    double secs = timed_run(f, p, "[\"4\", \"5\"]", &res);
    assert_false(res.success);
    assert_true(res.interrupted);
    json_t *ev = find_event(f, "execution_interrupted");
    assert_non_null(ev);
    const char *node = json_string_value(json_object_get(ev, "node_id"));
    assert_true(!strcmp(node, "2") || !strcmp(node, "3"));
    assert_string_equal(json_string_value(json_object_get(ev, "node_type")), "TestAsyncSleep");
    assert_true(secs < 2.0);
    assert_int_equal(atomic_load(&async_running), 0);
    cd_exec_result_clear(&res);
    fixture_free(f);
}

/* node.h's ABI rule: a definition of ABI 2 (the struct without execute_async) still registers
 * and runs, and comfyd reads none of the fields ABI 3 added; versions outside the range are
 * refused. */
static int never_called(cd_node_call *c) { return cd_call_fail(c, NULL, "execute_async read from an ABI 2 definition"); }
static int abi_pack_init(cd_pack *pack) {
    static const cd_node_def old = {.abi_version = 2, .name = "OldConst", .inputs = "{\"required\": {\"value\": [\"INT\", {}]}}",
                                    .outputs = int_out, .n_outputs = 1, .execute = const_exec,
                                    /* beyond an ABI 2 struct: what a real one would have there is garbage */
                                    .execute_async = never_called};
    static const cd_node_def too_old = {.abi_version = 1, .name = "AncientConst", .inputs = "{}", .outputs = int_out,
                                        .n_outputs = 1, .execute = const_exec};
    static const cd_node_def async_only = {.abi_version = 2, .name = "OldAsync", .inputs = "{}", .outputs = int_out,
                                           .n_outputs = 1, .execute_async = async_at_once};
    assert_int_equal(cd_pack_register(pack, &old), CD_OK);
    assert_int_equal(cd_pack_register(pack, &too_old), CD_ERROR);
    assert_int_equal(cd_pack_register(pack, &async_only), CD_ERROR); /* no execute in ABI 2 */
    return CD_OK;
}

static void abi_2_definitions_still_work(void **state) {
    (void)state;
    fixture *f = fixture_new(CD_CACHE_POLICY_CLASSIC, 0);
    assert_true(cd_registry_add_pack(f->reg, "old", "custom_nodes.old", abi_pack_init) > 0);
    assert_null(cd_registry_get(f->reg, "AncientConst"));
    cd_exec_result res = run(f,
                             "{\"1\": {\"class_type\": \"OldConst\", \"inputs\": {\"value\": 5}},"
                             " \"2\": {\"class_type\": \"TestOut\", \"inputs\": {\"value\": [\"1\", 0]}}}",
                             "[\"2\"]", "c");
    assert_true(res.success);
    assert_string_equal(ui_text(&res, "2"), "5");
    cd_exec_result_clear(&res);
    fixture_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(float_text_constants_become_floats),
        cmocka_unit_test(runs_in_dependency_order_and_only_what_is_needed),
        cmocka_unit_test(repeated_prompt_is_cached),
        cmocka_unit_test(cache_none_reruns_everything),
        cmocka_unit_test(lru_keeps_results_across_prompts),
        cmocka_unit_test(nan_fingerprint_is_never_cached),
        cmocka_unit_test(input_is_list_fingerprint_sees_lists),
        cmocka_unit_test(rerun_of_the_same_prompt_object),
        cmocka_unit_test(failure_reports_and_stops),
        cmocka_unit_test(lazy_inputs_run_only_when_asked),
        cmocka_unit_test(blockers_stop_consumers),
        cmocka_unit_test(lists_map_and_merge),
        cmocka_unit_test(expansion_runs_the_subgraph),
        cmocka_unit_test(no_client_no_per_prompt_events),
        cmocka_unit_test(interrupt_stops_a_long_node),
        cmocka_unit_test(long_chain_without_recursion),
        cmocka_unit_test(async_nodes_run_concurrently),
        cmocka_unit_test(async_nodes_keep_dependencies_and_lists),
        cmocka_unit_test(async_failure_stops_the_others),
        cmocka_unit_test(async_interrupt),
        cmocka_unit_test(abi_2_definitions_still_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
