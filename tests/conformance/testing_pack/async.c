/* async_test_nodes.py and api_test_nodes.py. The nodes whose FUNCTION is `async def` are async
 * nodes here too (execute_async): each call sleeps on a thread of its own (tp_spawn), checking
 * for interrupts, where the Python node awaits, so several of them run at the same time as in
 * ComfyUI. The others (a sync FUNCTION with an async VALIDATE_INPUTS or check_lazy_status, which
 * comfyd runs synchronously) stay plain nodes. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp.h"

static cd_value *input_or_none(cd_node_call *call, const char *name) {
    const cd_value *v = cd_call_input(call, name);
    return v ? cd_value_ref(v) : cd_value_none();
}

static int validate_threshold(cd_node_call *call) {
    double v = cd_call_float(call, "value", 5.0), t = cd_call_float(call, "threshold", 10.0);
    if (v > t) {
        char a[40], b[40];
        tp_pyfloat(v, a, sizeof a);
        tp_pyfloat(t, b, sizeof b);
        return cd_call_fail(call, NULL, "Value %s exceeds threshold %s", a, b);
    }
    return CD_OK;
}

static int async_validation(cd_node_call *call) {
    cd_value *r = tp_image_fill(1, 512, 512, 1.0f);
    cd_value *s = r ? tp_tensor_scale(r, cd_call_float(call, "value", 5.0) / 10.0) : NULL;
    cd_value_unref(r);
    return s ? cd_call_set_output(call, 0, s) : cd_call_fail(call, "RuntimeError", "out of memory");
}

static int async_error(cd_node_call *call) {
    int rc = tp_sleep(call, cd_call_float(call, "error_after", 0.1), false);
    if (rc != CD_OK) return rc;
    return cd_call_fail(call, "RuntimeError", "Intentional async execution error for testing");
}
TP_ASYNC(async_error_start, async_error)

static int validate_max(cd_node_call *call) {
    double v = cd_call_float(call, "value", 5.0), m = cd_call_float(call, "max_value", 10.0);
    if (v > m) {
        char a[40], b[40];
        tp_pyfloat(v, a, sizeof a);
        tp_pyfloat(m, b, sizeof b);
        return cd_call_fail(call, NULL, "Async validation failed: %s > %s", a, b);
    }
    return CD_OK;
}

static int async_validation_error(cd_node_call *call) {
    cd_value *r = tp_image_fill(1, 512, 512, 1.0f);
    cd_value *s = r ? tp_tensor_scale(r, cd_call_float(call, "value", 5.0) / cd_call_float(call, "max_value", 10.0))
                    : NULL;
    cd_value_unref(r);
    return s ? cd_call_set_output(call, 0, s) : cd_call_fail(call, "RuntimeError", "out of memory");
}

static int async_timeout(cd_node_call *call) {
    double timeout = cd_call_float(call, "timeout", 1.0), op = cd_call_float(call, "operation_time", 2.0);
    int rc = tp_sleep(call, op < timeout ? op : timeout, false);
    if (rc != CD_OK) return rc;
    if (op >= timeout) {
        char t[40];
        tp_pyfloat(timeout, t, sizeof t);
        return cd_call_fail(call, "RuntimeError", "Operation timed out after %s seconds", t);
    }
    return cd_call_set_output(call, 0, input_or_none(call, "value"));
}
TP_ASYNC(async_timeout_start, async_timeout)

static int sync_error(cd_node_call *call) {
    return cd_call_fail(call, "RuntimeError", "Intentional sync execution error for testing");
}

static int async_lazy_check(cd_node_call *call) {
    bool cond = cd_call_bool(call, "condition", 1);
    if (cond && !cd_call_input(call, "input1")) cd_call_need_input(call, "input1");
    if (!cond && !cd_call_input(call, "input2")) cd_call_need_input(call, "input2");
    return CD_OK;
}

static int async_lazy_process(cd_node_call *call) {
    cd_value *r = tp_image_fill(1, 512, 512, 1.0f);
    return r ? cd_call_set_output(call, 0, r) : cd_call_fail(call, "RuntimeError", "out of memory");
}

static int dynamic_async_generation(cd_node_call *call) {
    int64_t n = cd_call_int(call, "num_async_nodes", 3);
    if (n < 1 || n > 10) return cd_call_fail(call, "ValueError", "num_async_nodes out of range");
    const char *ids[10];
    char *owned[10] = {0};
    int rc = CD_OK;
    for (int64_t i = 0; i < n && rc == CD_OK; i++) {
        const char *id = cd_call_graph_add(call, "TestSleep", NULL);
        if (!id || !(owned[i] = strdup(id))) {
            rc = cd_call_fail(call, "RuntimeError", "cannot build the expansion");
            break;
        }
        ids[i] = owned[i];
        const cd_value *img = cd_call_input(call, i % 2 == 0 ? "image1" : "image2");
        cd_call_graph_set_input(call, ids[i], "value", img ? cd_value_ref(img) : cd_value_none());
        cd_call_graph_set_input(call, ids[i], "seconds", input_or_none(call, "sleep_duration"));
    }
    if (rc == CD_OK) {
        if (n == 1) rc = cd_call_set_output(call, 0, cd_value_link(ids[0], 0));
        else {
            const char *avg = cd_call_graph_add(call, "TestVariadicAverage", NULL);
            if (!avg) rc = cd_call_fail(call, "RuntimeError", "cannot build the expansion");
            for (int64_t i = 0; avg && i < n; i++) {
                char key[32];
                snprintf(key, sizeof key, "input%d", (int)i + 1);
                cd_call_graph_set_input(call, avg, key, cd_value_link(ids[i], 0));
            }
            if (avg) rc = cd_call_set_output(call, 0, cd_value_link(avg, 0));
        }
    }
    for (int i = 0; i < 10; i++) free(owned[i]);
    return rc;
}

/* TestAsyncResourceUser's class-level table of resources in use, shared by the calls' threads. */
static char active[16][64];
static pthread_mutex_t active_mu = PTHREAD_MUTEX_INITIALIZER;

static int async_resource_user(cd_node_call *call) {
    const char *rid = cd_call_string(call, "resource_id", "resource_0");
    pthread_mutex_lock(&active_mu);
    for (int i = 0; i < 16; i++)
        if (active[i][0] && !strcmp(active[i], rid)) {
            pthread_mutex_unlock(&active_mu);
            return cd_call_fail(call, "RuntimeError", "Resource %s is already in use!", rid);
        }
    int slot = -1;
    for (int i = 0; i < 16 && slot < 0; i++)
        if (!active[i][0]) slot = i;
    if (slot >= 0) snprintf(active[slot], sizeof active[slot], "%s", rid);
    pthread_mutex_unlock(&active_mu);
    int rc = tp_sleep(call, cd_call_float(call, "duration", 0.1), false);
    pthread_mutex_lock(&active_mu);
    if (slot >= 0) active[slot][0] = 0;
    pthread_mutex_unlock(&active_mu);
    if (rc != CD_OK) return rc;
    return cd_call_set_output(call, 0, input_or_none(call, "value"));
}
TP_ASYNC(async_resource_user_start, async_resource_user)

static int async_batch_processing(cd_node_call *call) {
    const cd_value *images = cd_call_input(call, "images");
    if (cd_value_kind_of(images) != CD_VALUE_TENSOR) return cd_call_fail(call, "TypeError", "images is not a tensor");
    int64_t b = cd_value_tensor_dim(images, 0);
    cd_value *out = tp_tensor_copy(images);
    if (!out) return cd_call_fail(call, "RuntimeError", "out of memory");
    float *d = cd_value_tensor_data_mut(out);
    size_t per = b ? cd_value_tensor_numel(out) / (size_t)b : 0;
    double per_item = cd_call_float(call, "process_time_per_item", 0.1);
    for (int64_t i = 0; i < b; i++) {
        int rc = tp_sleep(call, per_item, false);
        if (rc == CD_OK) rc = cd_call_progress(call, (double)(i + 1), (double)b);
        if (rc != CD_OK) {
            cd_value_unref(out);
            return rc;
        }
        for (size_t k = 0; k < per; k++) d[(size_t)i * per + k] = 1.0f - d[(size_t)i * per + k];
    }
    return cd_call_set_output(call, 0, out);
}
TP_ASYNC(async_batch_processing_start, async_batch_processing)

/* TestAsyncConcurrentLimit's asyncio.Semaphore(2): at most two sleep at a time. */
static pthread_mutex_t limit_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t limit_cv = PTHREAD_COND_INITIALIZER;
static int limit_free = 2;

static int async_concurrent_limit(cd_node_call *call) {
    pthread_mutex_lock(&limit_mu);
    while (limit_free == 0) pthread_cond_wait(&limit_cv, &limit_mu);
    limit_free--;
    pthread_mutex_unlock(&limit_mu);
    int rc = tp_sleep(call, cd_call_float(call, "duration", 0.5), false);
    pthread_mutex_lock(&limit_mu);
    limit_free++;
    pthread_cond_signal(&limit_cv);
    pthread_mutex_unlock(&limit_mu);
    if (rc != CD_OK) return rc;
    return cd_call_set_output(call, 0, input_or_none(call, "value"));
}
TP_ASYNC(async_concurrent_limit_start, async_concurrent_limit)

/* api_test_nodes.py: progress as a fraction of 1.0 through the node's progress callback. */
static int progress_update(cd_node_call *call) {
    double secs = cd_call_float(call, "sleep_seconds", 1.0);
    double start = tp_now(), now = start;
    while (now < start + secs) {
        now = tp_now();
        double v = secs > 0 ? (now - start) / secs : 1.0;
        if (cd_call_progress(call, v > 1.0 ? 1.0 : v, 1.0) == CD_INTERRUPTED) return CD_INTERRUPTED;
        tp_sleep(call, 0.01, false);
    }
    return cd_call_set_output(call, 0, input_or_none(call, "value"));
}
TP_ASYNC(progress_update_start, progress_update)

static const cd_output_def out_image[] = {{"IMAGE", NULL, 0, NULL, NULL}};
static const cd_output_def out_any[] = {{"*", NULL, 0, NULL, NULL}};

#define BASE(cls, disp) \
    .abi_version = CD_NODE_ABI_VERSION, .name = cls, .display_name = disp, .category = "experimental/async", \
    .python_module = TP_MODULE

static const cd_node_def defs[] = {
    {BASE("TestAsyncValidation", "Test Async Validation"),
     .inputs = "{\"required\": {\"value\": [\"FLOAT\", {\"default\": 5.0}], \"threshold\": [\"FLOAT\", {\"default\": "
               "10.0}]}}",
     .outputs = out_image, .n_outputs = 1, .execute = async_validation, .validate_inputs = validate_threshold,
     .validate_inputs_args = "value, threshold"},
    {BASE("TestAsyncError", "Test Async Error"),
     .inputs = "{\"required\": {\"value\": [\"*\", {}], \"error_after\": [\"FLOAT\", {\"default\": 0.1, \"min\": 0.0, "
               "\"max\": 10.0}]}}",
     .outputs = out_any, .n_outputs = 1, .execute_async = async_error_start},
    {BASE("TestAsyncValidationError", "Test Async Validation Error"),
     .inputs = "{\"required\": {\"value\": [\"FLOAT\", {\"default\": 5.0}], \"max_value\": [\"FLOAT\", {\"default\": "
               "10.0}]}}",
     .outputs = out_image, .n_outputs = 1, .execute = async_validation_error, .validate_inputs = validate_max,
     .validate_inputs_args = "value, max_value"},
    {BASE("TestAsyncTimeout", "Test Async Timeout"),
     .inputs = "{\"required\": {\"value\": [\"*\", {}], \"timeout\": [\"FLOAT\", {\"default\": 1.0, \"min\": 0.1, "
               "\"max\": 10.0}], \"operation_time\": [\"FLOAT\", {\"default\": 2.0, \"min\": 0.1, \"max\": 10.0}]}}",
     .outputs = out_any, .n_outputs = 1, .execute_async = async_timeout_start},
    {BASE("TestSyncError", "Test Sync Error"), .inputs = "{\"required\": {\"value\": [\"*\", {}]}}",
     .outputs = out_any, .n_outputs = 1, .execute = sync_error},
    {BASE("TestAsyncLazyCheck", "Test Async Lazy Check"),
     .inputs = "{\"required\": {\"input1\": [\"*\", {\"lazy\": true}], \"input2\": [\"*\", {\"lazy\": true}], "
               "\"condition\": [\"BOOLEAN\", {\"default\": true}]}}",
     .outputs = out_image, .n_outputs = 1, .execute = async_lazy_process, .check_lazy_status = async_lazy_check},
    {BASE("TestDynamicAsyncGeneration", "Test Dynamic Async Generation"),
     .inputs = "{\"required\": {\"image1\": [\"IMAGE\"], \"image2\": [\"IMAGE\"], \"num_async_nodes\": [\"INT\", "
               "{\"default\": 3, \"min\": 1, \"max\": 10}], \"sleep_duration\": [\"FLOAT\", {\"default\": 0.2, "
               "\"min\": 0.1, \"max\": 1.0}]}}",
     .outputs = out_image, .n_outputs = 1, .execute = dynamic_async_generation},
    {BASE("TestAsyncResourceUser", "Test Async Resource User"),
     .inputs = "{\"required\": {\"value\": [\"*\", {}], \"resource_id\": [\"STRING\", {\"default\": \"resource_0\"}], "
               "\"duration\": [\"FLOAT\", {\"default\": 0.1, \"min\": 0.0, \"max\": 1.0}]}}",
     .outputs = out_any, .n_outputs = 1, .execute_async = async_resource_user_start},
    {BASE("TestAsyncBatchProcessing", "Test Async Batch Processing"),
     .inputs = "{\"required\": {\"images\": [\"IMAGE\"], \"process_time_per_item\": [\"FLOAT\", {\"default\": 0.1, "
               "\"min\": 0.01, \"max\": 1.0}]}, \"hidden\": {\"unique_id\": \"UNIQUE_ID\"}}",
     .outputs = out_image, .n_outputs = 1, .execute_async = async_batch_processing_start},
    {BASE("TestAsyncConcurrentLimit", "Test Async Concurrent Limit"),
     .inputs = "{\"required\": {\"value\": [\"*\", {}], \"duration\": [\"FLOAT\", {\"default\": 0.5, \"min\": 0.1, "
               "\"max\": 2.0}], \"node_id\": [\"INT\", {\"default\": 0}]}}",
     .outputs = out_any, .n_outputs = 1, .execute_async = async_concurrent_limit_start},
};

static const cd_node_def api_defs[] = {
    {BASE("TestAsyncProgressUpdate", "Async Progress Update Test Node"),
     .inputs = "{\"required\": {\"value\": [\"*\", {}], \"sleep_seconds\": [\"FLOAT\", {\"default\": 1.0}]}}",
     .outputs = out_any, .n_outputs = 1, .execute_async = progress_update_start},
    {BASE("TestSyncProgressUpdate", "Sync Progress Update Test Node"),
     .inputs = "{\"required\": {\"value\": [\"*\", {}], \"sleep_seconds\": [\"FLOAT\", {\"default\": 1.0}]}}",
     .outputs = out_any, .n_outputs = 1, .execute = progress_update},
};

void tp_register_async(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
}

void tp_register_api(cd_pack *pack) {
    for (size_t i = 0; i < sizeof api_defs / sizeof api_defs[0]; i++) cd_pack_register(pack, &api_defs[i]);
}
