/* engine/jobs: ComfyUI 0.8's job summaries, byte for byte (key order included, as Python's
 * json.dumps writes them), and the listing's filter, stable sort and pagination. The cases follow
 * the contract of ComfyUI's tests/execution/test_jobs.py, plus the corners Python decides
 * (pruned None values, ties, unbounded integers).
 *
 * Expected JSON is written with ` for " to keep it readable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "engine/jobs.h"

static char *unquote(const char *text) {
    char *s = strdup(text);
    for (char *p = s; *p; p++)
        if (*p == '`') *p = '"';
    return s;
}

static json_t *J(const char *text) {
    char *s = unquote(text);
    json_error_t e;
    json_t *j = cd_json_loadb_bigint(s, strlen(s), JSON_DECODE_ANY, &e);
    if (!j) print_error("bad test JSON (%s): %s\n", e.text, s);
    free(s);
    assert_non_null(j);
    return j;
}

/* Compares the text Python would write (key order matters); v is released. */
static void expect_text(json_t *v, const char *expected) {
    char *want = unquote(expected);
    char *got = v ? cd_json_dumps(v) : strdup("NULL");
    if (strcmp(got, want)) print_error("got:      %s\nexpected: %s\n", got, want);
    assert_string_equal(got, want);
    free(got);
    free(want);
    json_decref(v);
}

static void status_names(void **state) {
    (void)state;
    assert_int_equal(cd_job_status_bit("pending"), CD_JOB_PENDING);
    assert_int_equal(cd_job_status_bit("in_progress"), CD_JOB_IN_PROGRESS);
    assert_int_equal(cd_job_status_bit("completed"), CD_JOB_COMPLETED);
    assert_int_equal(cd_job_status_bit("failed"), CD_JOB_FAILED);
    assert_int_equal(cd_job_status_bit("Pending"), 0);
    assert_int_equal(cd_job_status_bit(""), 0);
    assert_int_equal(cd_job_status_bit(NULL), 0);
    assert_int_equal(CD_JOB_PENDING | CD_JOB_IN_PROGRESS | CD_JOB_COMPLETED | CD_JOB_FAILED, CD_JOB_ALL);
}

/* The preview of outputs_text, as text ("NULL" for none), and the count. */
static void summary(const char *outputs_text, json_int_t count, const char *preview) {
    json_t *outputs = J(outputs_text);
    json_int_t n = -1;
    json_t *p = cd_job_outputs_summary(outputs, &n);
    assert_int_equal(n, count);
    expect_text(p, preview);
    json_decref(outputs);
}

static void outputs_summary(void **state) {
    (void)state;
    summary("{}", 0, "NULL");
    summary("null", 0, "NULL");
    /* every item of every node counts */
    summary("{`n1`: {`images`: [{`filename`: `a.png`, `type`: `output`}]}, `n2`: {`images`: [{`filename`: `b.png`, "
            "`type`: `output`}]}, `n3`: {`images`: [{`filename`: `c.png`, `type`: `output`}, {`filename`: `d.png`, "
            "`type`: `output`}]}}",
            4, "{`filename`: `a.png`, `type`: `output`, `nodeId`: `n1`, `mediaType`: `images`}");
    /* "animated" and values that are not lists are no items; nor are list members that are no dicts */
    summary("{`n1`: {`images`: [{`filename`: `t.png`, `type`: `output`}, 5, `x`], `animated`: [true], `metadata`: "
            "`string`, `count`: 42}, `n2`: [1, 2], `n3`: {`animated`: [{`filename`: `a.png`}]}}",
            1, "{`filename`: `t.png`, `type`: `output`, `nodeId`: `n1`, `mediaType`: `images`}");
    /* type "output" wins over an earlier temp item, which is only the fallback */
    summary("{`n1`: {`images`: [{`filename`: `temp.png`, `type`: `temp`}, {`filename`: `output.png`, `type`: "
            "`output`}]}}",
            2, "{`filename`: `output.png`, `type`: `output`, `nodeId`: `n1`, `mediaType`: `images`}");
    summary("{`n1`: {`images`: [{`filename`: `temp1.png`, `type`: `temp`}, {`filename`: `temp2.png`, `type`: "
            "`temp`}]}}",
            2, "{`filename`: `temp1.png`, `type`: `temp`, `nodeId`: `n1`, `mediaType`: `images`}");
    /* the first output-type preview stays, later ones do not replace it */
    summary("{`a`: {`audio`: [{`filename`: `1.wav`, `type`: `output`}]}, `b`: {`video`: [{`filename`: `2.mp4`, "
            "`type`: `output`}]}}",
            2, "{`filename`: `1.wav`, `type`: `output`, `nodeId`: `a`, `mediaType`: `audio`}");
    /* counted but not previewable */
    summary("{`n1`: {`latents`: [{`filename`: `l1.safetensors`}, {`filename`: `l2.safetensors`}], `text`: [{`t`: "
            "1}]}}",
            3, "NULL");
    /* other media types: a video/ or audio/ format, or a 3D file by its extension in any case */
    summary("{`n1`: {`files`: [{`filename`: `f.custom`, `format`: `video/x-custom`, `type`: `output`}]}}", 1,
            "{`filename`: `f.custom`, `format`: `video/x-custom`, `type`: `output`, `nodeId`: `n1`, `mediaType`: "
            "`files`}");
    summary("{`n1`: {`files`: [{`filename`: `f.custom`, `format`: `audio/x-custom`}]}}", 1,
            "{`filename`: `f.custom`, `format`: `audio/x-custom`, `nodeId`: `n1`, `mediaType`: `files`}");
    summary("{`n1`: {`files`: [{`filename`: `f.json`, `format`: `application/json`}]}}", 1, "NULL");
    static const char *exts[] = {"model.obj", "model.fbx", "model.gltf", "model.glb", "MODEL.GLB"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        char out[256], want[256];
        snprintf(out, sizeof out, "{`n1`: {`3d`: [{`filename`: `%s`, `type`: `output`}]}}", exts[i]);
        snprintf(want, sizeof want, "{`filename`: `%s`, `type`: `output`, `nodeId`: `n1`, `mediaType`: `3d`}", exts[i]);
        summary(out, 1, want);
    }
    summary("{`n1`: {`files`: [{`filename`: `model.glb.txt`}, {`filename`: 5, `format`: 7}]}}", 2, "NULL");
    /* the preview keeps the item's fields in place; nodeId/mediaType it had are overwritten */
    summary("{`node123`: {`images`: [{`mediaType`: `old`, `filename`: `test.png`, `type`: `output`, `subfolder`: "
            "`outputs`}]}}",
            1, "{`mediaType`: `images`, `filename`: `test.png`, `type`: `output`, `subfolder`: `outputs`, `nodeId`: "
               "`node123`}");
}

static void queue_items(void **state) {
    (void)state;
    json_t *item = J("[10, `prompt-123`, {`nodes`: {}}, {`create_time`: 1234567890, `extra_pnginfo`: {`workflow`: "
                     "{`id`: `workflow-abc`}}}, [`node1`]]");
    expect_text(cd_job_from_queue_item(item, "pending"),
                "{`id`: `prompt-123`, `status`: `pending`, `priority`: 10, `create_time`: 1234567890, "
                "`outputs_count`: 0, `workflow_id`: `workflow-abc`}");
    json_decref(item);
    /* None values are left out; a client's float number stays a float */
    item = J("[-2.5, `p`, {}, {`client_id`: `c`, `extra_pnginfo`: {`workflow`: {`id`: null}}}, []]");
    expect_text(cd_job_from_queue_item(item, "in_progress"),
                "{`id`: `p`, `status`: `in_progress`, `priority`: -2.5, `outputs_count`: 0}");
    json_decref(item);
    /* extra_pnginfo that is no dict: no workflow id (ComfyUI would fail the request) */
    item = J("[1, `p`, {}, {`create_time`: 5, `extra_pnginfo`: [1]}, []]");
    expect_text(cd_job_from_queue_item(item, "pending"),
                "{`id`: `p`, `status`: `pending`, `priority`: 1, `create_time`: 5, `outputs_count`: 0}");
    json_decref(item);
}

static void history_items(void **state) {
    (void)state;
    json_t *e = J("{`prompt`: [5, `prompt-456`, {`nodes`: {}}, {`create_time`: 1234567890000, `extra_pnginfo`: "
                  "{`workflow`: {`id`: `workflow-xyz`}}}, [`node1`]], `outputs`: {}, `status`: {`status_str`: "
                  "`success`, `completed`: true, `messages`: [[`execution_start`, {`prompt_id`: `prompt-456`, "
                  "`timestamp`: 1234567890500}], [`execution_cached`, {`nodes`: [], `timestamp`: 1}], "
                  "[`execution_success`, {`prompt_id`: `prompt-456`, `timestamp`: 1234567893000}]]}, `meta`: {}}");
    expect_text(cd_job_from_history("prompt-456", e, false),
                "{`id`: `prompt-456`, `status`: `completed`, `priority`: 5, `create_time`: 1234567890000, "
                "`execution_start_time`: 1234567890500, `execution_end_time`: 1234567893000, `outputs_count`: 0, "
                "`workflow_id`: `workflow-xyz`}");
    json_decref(e);

    e = J("{`prompt`: [5, `prompt-789`, {`nodes`: {}}, {`create_time`: 1234567890000}, [`node1`]], `outputs`: {}, "
          "`status`: {`status_str`: `error`, `completed`: false, `messages`: [[`execution_start`, {`prompt_id`: "
          "`prompt-789`, `timestamp`: 1234567890500}], [`execution_error`, {`prompt_id`: `prompt-789`, `node_id`: "
          "`5`, `node_type`: `KSampler`, `exception_message`: `CUDA out of memory`, `exception_type`: "
          "`RuntimeError`, `traceback`: [`Traceback...`], `timestamp`: 1234567891000}]]}}");
    expect_text(cd_job_from_history("prompt-789", e, false),
                "{`id`: `prompt-789`, `status`: `failed`, `priority`: 5, `create_time`: 1234567890000, "
                "`execution_start_time`: 1234567890500, `execution_end_time`: 1234567891000, `execution_error`: "
                "{`prompt_id`: `prompt-789`, `node_id`: `5`, `node_type`: `KSampler`, `exception_message`: `CUDA out "
                "of memory`, `exception_type`: `RuntimeError`, `traceback`: [`Traceback...`], `timestamp`: "
                "1234567891000}, `outputs_count`: 0}");
    json_decref(e);

    /* GET /api/jobs/{id}: outputs, execution_status and workflow after the listing's fields */
    e = J("{`prompt`: [5, `prompt-123`, {`nodes`: {`1`: {}}}, {`create_time`: 1234567890, `client_id`: `abc`}, "
          "[`node1`]], `outputs`: {`node1`: {`images`: [{`filename`: `test.png`}]}}, `status`: {`status_str`: "
          "`success`, `completed`: true, `messages`: []}, `meta`: {}}");
    expect_text(cd_job_from_history("prompt-123", e, true),
                "{`id`: `prompt-123`, `status`: `completed`, `priority`: 5, `create_time`: 1234567890, "
                "`outputs_count`: 1, `preview_output`: {`filename`: `test.png`, `nodeId`: `node1`, `mediaType`: "
                "`images`}, `outputs`: {`node1`: {`images`: [{`filename`: `test.png`}]}}, `execution_status`: "
                "{`status_str`: `success`, `completed`: true, `messages`: []}, `workflow`: {`prompt`: {`nodes`: "
                "{`1`: {}}}, `extra_data`: {`create_time`: 1234567890, `client_id`: `abc`}}}");
    json_decref(e);

    /* interrupted: status_str "error", ended by execution_interrupted, no error; the last start
     * counts; malformed messages are skipped */
    e = J("{`prompt`: [1.5, `p`, {}, {}, []], `outputs`: {}, `status`: {`status_str`: `error`, `completed`: false, "
          "`messages`: [[`execution_start`, {`timestamp`: 10}], [`execution_start`, {`timestamp`: 20}], "
          "[`execution_error`], [`execution_success`, 5], `junk`, [`execution_interrupted`, {`node_id`: `3`, "
          "`timestamp`: 30}]]}}");
    expect_text(cd_job_from_history("p", e, false),
                "{`id`: `p`, `status`: `failed`, `priority`: 1.5, `execution_start_time`: 20, `execution_end_time`: "
                "30, `outputs_count`: 0}");
    json_decref(e);

    /* any status_str but "error" is completed, so is an empty status */
    e = J("{`prompt`: [1, `p`, {}, {}, []], `outputs`: {}, `status`: {}}");
    expect_text(cd_job_from_history("p", e, false),
                "{`id`: `p`, `status`: `completed`, `priority`: 1, `outputs_count`: 0}");
    json_decref(e);
    e = J("{`prompt`: [1, `p`, {}, {}, []], `outputs`: {}, `status`: {`status_str`: `odd`, `messages`: []}}");
    expect_text(cd_job_from_history("p", e, true),
                "{`id`: `p`, `status`: `completed`, `priority`: 1, `outputs_count`: 0, `outputs`: {}, "
                "`execution_status`: {`status_str`: `odd`, `messages`: []}, `workflow`: {`prompt`: {}, "
                "`extra_data`: {}}}");
    json_decref(e);
}

/* The ids of a page's jobs, comma-separated, and its pagination as text. */
static void expect_page(const json_t *jobs, const cd_jobs_query *q, const char *ids, const char *pagination) {
    json_t *page = cd_jobs_page(jobs, q);
    assert_non_null(page);
    char got[512] = "";
    size_t i;
    json_t *job;
    json_array_foreach(json_object_get(page, "jobs"), i, job) {
        if (i) strcat(got, ",");
        strcat(got, json_string_value(json_object_get(job, "id")));
    }
    if (strcmp(got, ids)) print_error("ids: got %s, expected %s\n", got, ids);
    assert_string_equal(got, ids);
    expect_text(json_incref(json_object_get(page, "pagination")), pagination);
    json_decref(page);
}

static void sorting(void **state) {
    (void)state;
    json_t *jobs = J("[{`id`: `a`, `status`: `completed`, `create_time`: 100}, {`id`: `b`, `status`: `completed`, "
                     "`create_time`: 300}, {`id`: `c`, `status`: `completed`, `create_time`: 200}]");
    cd_jobs_query q = {.statuses = CD_JOB_ALL, .sort_by = CD_JOBS_BY_CREATE_TIME, .descending = true};
    const char *all3 = "{`offset`: 0, `limit`: null, `total`: 3, `has_more`: false}";
    expect_page(jobs, &q, "b,c,a", all3);
    q.descending = false;
    expect_page(jobs, &q, "a,c,b", all3);
    json_decref(jobs);

    jobs = J("[{`id`: `a`, `status`: `failed`, `create_time`: 100, `execution_start_time`: 100, "
             "`execution_end_time`: 5100}, {`id`: `b`, `status`: `completed`, `create_time`: 300, "
             "`execution_start_time`: 300, `execution_end_time`: 1300}, {`id`: `c`, `status`: `completed`, "
             "`create_time`: 200, `execution_start_time`: 200, `execution_end_time`: 3200}, {`id`: `d`, `status`: "
             "`pending`, `create_time`: 400}]");
    q = (cd_jobs_query){.statuses = CD_JOB_ALL, .sort_by = CD_JOBS_BY_DURATION, .descending = true};
    const char *all4 = "{`offset`: 0, `limit`: null, `total`: 4, `has_more`: false}";
    expect_page(jobs, &q, "a,c,b,d", all4);
    q.descending = false; /* no times: a duration of 0, first */
    expect_page(jobs, &q, "d,b,c,a", all4);
    json_decref(jobs);

    /* equal keys keep the gathering order both ways (Python's sorted stays stable with reverse) */
    jobs = J("[{`id`: `r`, `status`: `in_progress`, `create_time`: 5}, {`id`: `p`, `status`: `pending`, "
             "`create_time`: 5}, {`id`: `x`, `status`: `completed`}, {`id`: `h`, `status`: `completed`, "
             "`create_time`: 5}, {`id`: `y`, `status`: `failed`, `create_time`: 0}]");
    q = (cd_jobs_query){.statuses = CD_JOB_ALL, .sort_by = CD_JOBS_BY_CREATE_TIME, .descending = true};
    const char *all5 = "{`offset`: 0, `limit`: null, `total`: 5, `has_more`: false}";
    expect_page(jobs, &q, "r,p,h,x,y", all5);
    q.descending = false;
    expect_page(jobs, &q, "x,y,r,p,h", all5);
    q.sort_by = CD_JOBS_BY_DURATION;
    expect_page(jobs, &q, "r,p,x,h,y", all5);
    json_decref(jobs);
}

static void filters_and_pages(void **state) {
    (void)state;
    json_t *jobs = J("[{`id`: `r`, `status`: `in_progress`, `create_time`: 50, `workflow_id`: `w1`}, {`id`: `p`, "
                     "`status`: `pending`, `create_time`: 40}, {`id`: `c1`, `status`: `completed`, `create_time`: 10, "
                     "`workflow_id`: `w1`}, {`id`: `f1`, `status`: `failed`, `create_time`: 20, `workflow_id`: 7}, "
                     "{`id`: `c2`, `status`: `completed`, `create_time`: 30, `workflow_id`: `w2`}]");
    cd_jobs_query q = {.statuses = CD_JOB_COMPLETED, .descending = true};
    expect_page(jobs, &q, "c2,c1", "{`offset`: 0, `limit`: null, `total`: 2, `has_more`: false}");
    q.statuses = CD_JOB_COMPLETED | CD_JOB_FAILED | CD_JOB_PENDING;
    expect_page(jobs, &q, "p,c2,f1,c1", "{`offset`: 0, `limit`: null, `total`: 4, `has_more`: false}");
    q.statuses = 0; /* status="," in the query: nothing */
    expect_page(jobs, &q, "", "{`offset`: 0, `limit`: null, `total`: 0, `has_more`: false}");
    q.statuses = CD_JOB_ALL;
    q.workflow_id = "w1";
    expect_page(jobs, &q, "r,c1", "{`offset`: 0, `limit`: null, `total`: 2, `has_more`: false}");
    q.workflow_id = "7"; /* a number is never equal to the query's string */
    expect_page(jobs, &q, "", "{`offset`: 0, `limit`: null, `total`: 0, `has_more`: false}");
    q.workflow_id = ""; /* empty: no filter */

    json_t *two = json_integer(2), *one = json_integer(1), *four = json_integer(4), *nine = json_integer(9);
    json_t *zero = json_integer(0), *big = cd_json_bigint("100000000000000000000000");
    q.limit = two;
    expect_page(jobs, &q, "r,p", "{`offset`: 0, `limit`: 2, `total`: 5, `has_more`: true}");
    q.offset = two;
    expect_page(jobs, &q, "c2,f1", "{`offset`: 2, `limit`: 2, `total`: 5, `has_more`: true}");
    q.offset = four;
    expect_page(jobs, &q, "c1", "{`offset`: 4, `limit`: 2, `total`: 5, `has_more`: false}");
    q.offset = nine;
    expect_page(jobs, &q, "", "{`offset`: 9, `limit`: 2, `total`: 5, `has_more`: false}");
    q.offset = one;
    q.limit = NULL;
    expect_page(jobs, &q, "p,c2,f1,c1", "{`offset`: 1, `limit`: null, `total`: 5, `has_more`: false}");
    q.offset = zero;
    q.limit = big; /* Python's ints are unbounded: echoed as they are */
    expect_page(jobs, &q, "r,p,c2,f1,c1",
                "{`offset`: 0, `limit`: 100000000000000000000000, `total`: 5, `has_more`: false}");
    q.offset = big;
    q.limit = one;
    expect_page(jobs, &q, "", "{`offset`: 100000000000000000000000, `limit`: 1, `total`: 5, `has_more`: false}");
    json_decref(two);
    json_decref(one);
    json_decref(four);
    json_decref(nine);
    json_decref(zero);
    json_decref(big);
    json_decref(jobs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_names),   cmocka_unit_test(outputs_summary),   cmocka_unit_test(queue_items),
        cmocka_unit_test(history_items),  cmocka_unit_test(sorting),           cmocka_unit_test(filters_and_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
