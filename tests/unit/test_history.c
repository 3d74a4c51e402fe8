/* engine/history: entries in completion order, capped, persisted in SQLite, and read back the
 * same whether an entry is still the executor's tree or already its stored text; each entry's
 * job (engine/jobs.h) kept beside it, also for a database written before there were jobs. */
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "engine/history.h"
#include "engine/jobs.h"

typedef struct {
    char dir[64];
    char db[96];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cd-history-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->db, sizeof f->db, "%s/history.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    unlink(f->db);
    char side[128];
    snprintf(side, sizeof side, "%s-wal", f->db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", f->db);
    unlink(side);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* An entry shaped like the executor's, with a big integer and non-ASCII text in it. */
static json_t *entry(int i) {
    json_t *graph = json_object();
    for (int k = 0; k < 40; k++) { /* large enough for the writer's shared-graph path */
        char id[16];
        snprintf(id, sizeof id, "%d", k);
        json_object_set_new(graph, id, json_pack("{s:s, s:{s:i}}", "class_type", "PrimitiveInt", "inputs", "value", k + i));
    }
    json_t *e = json_pack("{s:[i, s, o, {s:s}, [s]], s:{s:{s:[s]}}, s:{s:s, s:b, s:[]}, s:{}}", "prompt", i, "id",
                          graph, "client_id", "caf\xc3\xa9", "0", "outputs", "0", "text", "r\xc3\xa9sultat", "status",
                          "status_str", "success", "completed", 1, "messages", "meta");
    json_object_set_new(json_object_get(e, "meta"), "big", cd_json_bigint("123456789012345678901234567890"));
    return e;
}

static char *id_of(int i) {
    static char buf[32];
    snprintf(buf, sizeof buf, "prompt-%d", i);
    return buf;
}

static void reads_are_the_same_as_tree_and_as_text(void **state) {
    fixture *f = *state;
    char err[256] = "";
    cd_history *h = cd_history_open(f->db, 100, err, sizeof err);
    assert_non_null(h);
    cd_history_add(h, id_of(1), entry(1));
    json_t *as_tree = cd_history_get(h, id_of(1)); /* possibly before the writer got to it */
    cd_history_sync(h);
    cd_history_collect(h);
    json_t *as_text = cd_history_get(h, id_of(1)); /* now the stored text, parsed */
    json_t *want = json_pack("{s:o}", id_of(1), entry(1));
    assert_true(json_equal(as_tree, want));
    assert_true(json_equal(as_text, want));
    const char *big = cd_json_bigint_text(json_object_get(json_object_get(json_object_get(as_text, id_of(1)), "meta"), "big"));
    assert_non_null(big);
    assert_string_equal(big, "123456789012345678901234567890");
    json_decref(as_tree);
    json_decref(as_text);
    json_decref(want);
    cd_history_close(h);
}

static void order_cap_delete_and_restart(void **state) {
    fixture *f = *state;
    char err[256] = "";
    cd_history *h = cd_history_open(f->db, 3, err, sizeof err);
    assert_non_null(h);
    for (int i = 1; i <= 5; i++) cd_history_add(h, id_of(i), entry(i));
    /* ComfyUI keeps at most max_items + 1 until the next add trims */
    json_t *all = cd_history_list(h, -1, -1);
    assert_true(json_object_size(all) <= 4);
    assert_null(json_object_get(all, id_of(1)));
    assert_non_null(json_object_get(all, id_of(5)));
    json_decref(all);
    cd_history_delete(h, id_of(4));
    json_t *last_two = cd_history_list(h, 2, -1);
    assert_int_equal(json_object_size(last_two), 2);
    assert_non_null(json_object_get(last_two, id_of(5)));
    assert_null(json_object_get(last_two, id_of(4)));
    json_decref(last_two);
    size_t before = cd_history_count(h);
    cd_history_close(h); /* writes what is queued */

    h = cd_history_open(f->db, 3, err, sizeof err);
    assert_non_null(h);
    assert_int_equal(cd_history_count(h), before);
    json_t *e5 = cd_history_get(h, id_of(5));
    json_t *want = json_pack("{s:o}", id_of(5), entry(5));
    assert_true(json_equal(e5, want));
    json_decref(e5);
    json_decref(want);
    json_t *gone = cd_history_get(h, id_of(4));
    assert_int_equal(json_object_size(gone), 0);
    json_decref(gone);
    cd_history_clear(h);
    assert_int_equal(cd_history_count(h), 0);
    cd_history_close(h);

    h = cd_history_open(f->db, 3, err, sizeof err);
    assert_int_equal(cd_history_count(h), 0);
    cd_history_close(h);
}

static void replacing_an_id_keeps_one_entry(void **state) {
    fixture *f = *state;
    char err[256] = "";
    cd_history *h = cd_history_open(f->db, 10, err, sizeof err);
    cd_history_add(h, id_of(7), entry(7));
    cd_history_sync(h);
    cd_history_add(h, id_of(7), entry(8)); /* the same prompt id again */
    cd_history_sync(h);
    cd_history_collect(h);
    assert_int_equal(cd_history_count(h), 1);
    json_t *got = cd_history_get(h, id_of(7));
    json_t *want = json_pack("{s:o}", id_of(7), entry(8));
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    cd_history_close(h);
}

/* A workflow run again: entries share one graph object (as repeats of one request do), or hold
 * graphs of the same text; each reads back whole once stored. */
static void repeated_graphs_read_back_whole(void **state) {
    fixture *f = *state;
    char err[256] = "";
    cd_history *h = cd_history_open(f->db, 10, err, sizeof err);
    json_t *first = entry(3);
    json_t *graph = json_array_get(json_object_get(first, "prompt"), 2);
    json_t *wants[4];
    for (int i = 0; i < 4; i++) {
        json_t *e = json_deep_copy(first);
        /* i < 2: the very same graph object; then equal graphs of their own */
        if (i < 2) json_array_set(json_object_get(e, "prompt"), 2, graph);
        json_array_set_new(json_object_get(e, "prompt"), 1, json_string(id_of(20 + i)));
        wants[i] = json_deep_copy(e);
        cd_history_add(h, id_of(20 + i), e);
    }
    cd_history_sync(h);
    cd_history_collect(h);
    for (int i = 0; i < 4; i++) {
        json_t *got = cd_history_get(h, id_of(20 + i));
        assert_true(json_equal(json_object_get(got, id_of(20 + i)), wants[i]));
        json_decref(got);
    }
    cd_history_close(h);
    h = cd_history_open(f->db, 10, err, sizeof err); /* and from the database */
    for (int i = 0; i < 4; i++) {
        json_t *got = cd_history_get(h, id_of(20 + i));
        assert_true(json_equal(json_object_get(got, id_of(20 + i)), wants[i]));
        json_decref(got);
        json_decref(wants[i]);
    }
    cd_history_close(h);
    json_decref(first);
}

/* cd_history_jobs(h, statuses) as "id:status,..." */
static void expect_jobs(cd_history *h, unsigned statuses, const char *want) {
    json_t *jobs = cd_history_jobs(h, statuses);
    assert_non_null(jobs);
    char got[512] = "";
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job) {
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s:%s", i ? "," : "",
                 json_string_value(json_object_get(job, "id")), json_string_value(json_object_get(job, "status")));
        json_t *whole = cd_history_get(h, json_string_value(json_object_get(job, "id")));
        json_t *made = cd_job_from_history(json_string_value(json_object_get(job, "id")),
                                           json_object_get(whole, json_string_value(json_object_get(job, "id"))), false);
        assert_true(json_equal(job, made)); /* the same as made from the entry now */
        json_decref(made);
        json_decref(whole);
    }
    if (strcmp(got, want)) print_error("jobs: got %s, expected %s\n", got, want);
    assert_string_equal(got, want);
    json_decref(jobs);
}

static json_t *failed_entry(int i) {
    json_t *e = entry(i);
    json_object_set_new(json_object_get(e, "status"), "status_str", json_string("error"));
    return e;
}

static void jobs_are_kept_with_their_entries(void **state) {
    fixture *f = *state;
    char err[256] = "";
    cd_history *h = cd_history_open(f->db, 3, err, sizeof err);
    cd_history_add(h, id_of(1), entry(1));
    cd_history_add(h, id_of(2), failed_entry(2));
    expect_jobs(h, CD_JOB_ALL, "prompt-1:completed,prompt-2:failed"); /* maybe before the writer */
    cd_history_add(h, id_of(3), entry(3));
    cd_history_add(h, id_of(4), entry(4));
    cd_history_sync(h);
    cd_history_collect(h);
    expect_jobs(h, CD_JOB_ALL, "prompt-1:completed,prompt-2:failed,prompt-3:completed,prompt-4:completed");
    expect_jobs(h, CD_JOB_FAILED, "prompt-2:failed");
    expect_jobs(h, CD_JOB_PENDING | CD_JOB_IN_PROGRESS, "");
    cd_history_add(h, id_of(5), entry(5)); /* over the cap: the oldest goes, and its job */
    cd_history_delete(h, id_of(3));
    expect_jobs(h, CD_JOB_COMPLETED | CD_JOB_FAILED, "prompt-2:failed,prompt-4:completed,prompt-5:completed");
    cd_history_close(h);
    h = cd_history_open(f->db, 3, err, sizeof err); /* read back from their column */
    expect_jobs(h, CD_JOB_ALL, "prompt-2:failed,prompt-4:completed,prompt-5:completed");
    cd_history_close(h);
}

/* A database from before the jobs API (no job column): its entries get their jobs when first
 * listed, and those are stored. */
static void a_database_without_jobs_gets_them(void **state) {
    fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, prompt_id TEXT UNIQUE "
                                  "NOT NULL, entry TEXT NOT NULL)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 1; i <= 2; i++) {
        json_t *e = i == 1 ? entry(i) : failed_entry(i);
        char *text = cd_json_dumps_compact(e, 0);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO history (prompt_id, entry) VALUES (?, ?)", -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, id_of(i), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        free(text);
        json_decref(e);
    }
    sqlite3_close(db);

    char err[256] = "";
    cd_history *h = cd_history_open(f->db, 10, err, sizeof err);
    assert_non_null(h);
    expect_jobs(h, CD_JOB_ALL, "prompt-1:completed,prompt-2:failed");
    cd_history_sync(h);
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM history WHERE job IS NOT NULL", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
    cd_history_close(h);
    h = cd_history_open(f->db, 10, err, sizeof err);
    expect_jobs(h, CD_JOB_ALL, "prompt-1:completed,prompt-2:failed");
    cd_history_close(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reads_are_the_same_as_tree_and_as_text, setup, teardown),
        cmocka_unit_test_setup_teardown(order_cap_delete_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(replacing_an_id_keeps_one_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(repeated_graphs_read_back_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(jobs_are_kept_with_their_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(a_database_without_jobs_gets_them, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
