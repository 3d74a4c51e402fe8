/* The project store (server/projects.h) directly, and its routes through an in-process
 * instance: ids and traversal, atomic writes, ETag/If-Match, every error code. */
#include "support.h"

#include <jansson.h>
#include <stdio.h>

#include "base/file.h"
#include "server/projects.h"

static char *make_base(void) {
    char *b = strdup("/tmp/cd-proj-XXXXXX");
    assert_non_null(mkdtemp(b));
    char err[256];
    assert_int_equal(cd_projects_init(b, err, sizeof err), 0);
    return b;
}

static void drop_base(char *b) {
    cd_path_remove_tree(b);
    free(b);
}

static void test_ids(void **state) {
    (void)state;
    const char *good[] = {"a", "My_Project", "proj-1.2", "日本語", "a b", "0b0d6a7e-6a8e-4c1b-9f7e-2d1c3b4a5f60"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) assert_true(cd_projects_id_is_valid(good[i]));
    const char *bad[] = {"", ".", "..", ".hidden", "a/b", "../x", "a\\b", "x.", "x ", "a\nb", "a:b", "a%2Fb",
                         "\xff\xfe", "a*", "a?b", "a\"b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_false(cd_projects_id_is_valid(bad[i]));
    char long_id[200];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_false(cd_projects_id_is_valid(long_id));
    char *id = cd_projects_id_from_name("My Project: v2/final?");
    assert_string_equal(id, "My Project_ v2_final_");
    free(id);
    id = cd_projects_id_from_name("..");
    assert_false(cd_projects_id_is_valid(id));
    free(id);
}

static void test_etag(void **state) {
    (void)state;
    char a[CD_PROJECTS_ETAG_SIZE], b[CD_PROJECTS_ETAG_SIZE];
    cd_projects_etag("x", 1, a);
    cd_projects_etag("y", 1, b);
    assert_int_equal(strlen(a), 66);
    assert_true(a[0] == '"' && a[65] == '"');
    assert_string_not_equal(a, b);
    assert_true(cd_projects_etag_matches(NULL, a));
    assert_true(cd_projects_etag_matches("*", a));
    assert_true(cd_projects_etag_matches(a, a));
    char list[200];
    snprintf(list, sizeof list, "%s, %s", b, a);
    assert_true(cd_projects_etag_matches(list, a));
    assert_false(cd_projects_etag_matches(b, a));
    snprintf(list, sizeof list, "W/%s", a);
    assert_false(cd_projects_etag_matches(list, a));
    assert_false(cd_projects_etag_matches("\"nope", a));
}

static void test_atomic_write(void **state) {
    (void)state;
    char *b = make_base();
    char path[256];
    snprintf(path, sizeof path, "%s/f.json", b);
    assert_int_equal(cd_file_write_atomic(path, "one", 3), 0);
    assert_int_equal(cd_file_write_atomic(path, "second", 6), 0);
    FILE *f = fopen(path, "r");
    char buf[16] = {0};
    assert_int_equal(fread(buf, 1, sizeof buf, f), 6);
    fclose(f);
    assert_string_equal(buf, "second");
    /* no temp file left behind */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 3", b); /* f.json, projects, library */
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/missing/f.json", b);
    assert_int_equal(cd_file_write_atomic(path, "x", 1), -1);
    drop_base(b);
}

static json_t *J(const char *text) {
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    return v;
}

static void test_store(void **state) {
    (void)state;
    char *b = make_base();
    char err[512];
    cd_projects_doc doc, doc2;
    json_t *body = J("{\"name\": \"My Project\", \"description\": \"d\"}");
    assert_int_equal(cd_projects_create(b, body, &doc, err, sizeof err), 0);
    json_t *meta = json_loadb(doc.text, doc.len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(meta, "id")), "My Project");
    assert_string_equal(json_string_value(json_object_get(meta, "description")), "d");
    assert_non_null(json_object_get(meta, "createdAt"));
    json_decref(meta);
    cd_projects_doc_free(&doc);
    assert_int_equal(cd_projects_create(b, body, &doc, err, sizeof err), CD_PROJECTS_EEXIST);
    json_decref(body);
    body = J("{\"name\": \"..\"}");
    assert_int_equal(cd_projects_create(b, body, &doc, err, sizeof err), CD_PROJECTS_EINVAL);
    json_decref(body);
    body = J("{\"name\": \"\"}");
    assert_int_equal(cd_projects_create(b, body, &doc, err, sizeof err), CD_PROJECTS_EINVAL);
    json_decref(body);

    json_t *list;
    assert_int_equal(cd_projects_list(b, &list, err, sizeof err), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);

    /* workflows */
    body = J("{\"id\": \"wf1\", \"name\": \"First\", \"nodes\": [], \"links\": []}");
    assert_int_equal(cd_projects_create_workflow(b, "My Project", body, &doc, err, sizeof err), 0);
    assert_int_equal(cd_projects_create_workflow(b, "My Project", body, &doc2, err, sizeof err), CD_PROJECTS_EEXIST);
    assert_int_equal(cd_projects_create_workflow(b, "Nope", body, &doc2, err, sizeof err), CD_PROJECTS_ENOENT);
    json_decref(body);
    body = J("{\"name\": \"First\"}");
    assert_int_equal(cd_projects_create_workflow(b, "My Project", body, &doc2, err, sizeof err), CD_PROJECTS_EEXIST);
    json_decref(body);
    assert_int_equal(cd_projects_get_workflow(b, "My Project", "wf1", &doc2, err, sizeof err), 0);
    assert_string_equal(doc.etag, doc2.etag);
    cd_projects_doc_free(&doc2);

    /* If-Match: the current tag wins once; the old one is then stale */
    char old_tag[CD_PROJECTS_ETAG_SIZE];
    memcpy(old_tag, doc.etag, sizeof old_tag);
    cd_projects_doc_free(&doc);
    body = J("{\"name\": \"First\", \"nodes\": [1]}");
    assert_int_equal(cd_projects_put_workflow(b, "My Project", "wf1", body, old_tag, &doc, err, sizeof err), 0);
    assert_string_not_equal(doc.etag, old_tag);
    assert_int_equal(cd_projects_put_workflow(b, "My Project", "wf1", body, old_tag, &doc2, err, sizeof err),
                     CD_PROJECTS_ESTALE);
    assert_int_equal(cd_projects_put_workflow(b, "My Project", "wf2", body, NULL, &doc2, err, sizeof err),
                     CD_PROJECTS_ENOENT);
    assert_int_equal(cd_projects_put_workflow(b, "My Project", "../x", body, NULL, &doc2, err, sizeof err),
                     CD_PROJECTS_EINVAL);
    json_decref(body);
    body = J("{\"id\": \"other\", \"name\": \"First\"}");
    assert_int_equal(cd_projects_put_workflow(b, "My Project", "wf1", body, NULL, &doc2, err, sizeof err),
                     CD_PROJECTS_EINVAL);
    json_decref(body);
    cd_projects_doc_free(&doc);

    assert_int_equal(cd_projects_list_workflows(b, "My Project", &list, err, sizeof err), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "format")), "ui");
    json_decref(list);

    assert_int_equal(cd_projects_delete_workflow(b, "My Project", "wf1", "\"stale\"", err, sizeof err),
                     CD_PROJECTS_ESTALE);
    assert_int_equal(cd_projects_delete_workflow(b, "My Project", "wf1", NULL, err, sizeof err), 0);
    assert_int_equal(cd_projects_delete_workflow(b, "My Project", "wf1", NULL, err, sizeof err), CD_PROJECTS_ENOENT);
    assert_int_equal(cd_projects_delete(b, "My Project", NULL, err, sizeof err), 0);
    assert_int_equal(cd_projects_delete(b, "My Project", NULL, err, sizeof err), CD_PROJECTS_ENOENT);
    assert_int_equal(cd_projects_list(b, &list, err, sizeof err), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    drop_base(b);
}

/* A symlinked project folder that leads outside is refused. */
static void test_symlink_escape(void **state) {
    (void)state;
    char *b = make_base();
    char link[256];
    snprintf(link, sizeof link, "%s/projects/evil", b);
    assert_int_equal(symlink("/tmp", link), 0);
    cd_projects_doc doc;
    char err[256];
    assert_int_equal(cd_projects_get_meta(b, "evil", &doc, err, sizeof err), CD_PROJECTS_EINVAL);
    drop_base(b);
}

/* ---- routes ---- */

static void test_routes(void **state) {
    (void)state;
    test_server ts;
    test_server_start(&ts, NULL);
    fetch_result r;
    test_fetch(&ts, "GET", "/api/projects", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "[]");
    fetch_result_free(&r);

    test_fetch(&ts, "POST", "/api/projects", "Content-Type: application/json\r\n", "{\"name\": \"p1\"}", &r);
    assert_int_equal(r.status, 201);
    fetch_result_free(&r);
    test_fetch(&ts, "POST", "/api/projects", NULL, "{\"name\": \"p1\"}", &r);
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(r.body.data, "\"error\""));
    fetch_result_free(&r);
    test_fetch(&ts, "POST", "/api/projects", NULL, "not json", &r);
    assert_int_equal(r.status, 400);
    fetch_result_free(&r);

    test_fetch(&ts, "GET", "/api/projects/p1/metadata", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/api/projects/%2e%2e/metadata", NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/api/projects/nope/metadata", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    fetch_result_free(&r);

    test_fetch(&ts, "POST", "/api/projects/p1/workflows", NULL, "{\"id\": \"w\", \"name\": \"W\", \"nodes\": []}", &r);
    assert_int_equal(r.status, 201);
    fetch_result_free(&r);
    test_fetch(&ts, "PUT", "/api/projects/p1/workflows/w", "If-Match: \"0000\"\r\n", "{\"name\": \"W\"}", &r);
    assert_int_equal(r.status, 412);
    fetch_result_free(&r);
    test_fetch(&ts, "PUT", "/api/projects/p1/workflows/w", NULL, "{\"name\": \"W2\"}", &r);
    assert_int_equal(r.status, 200);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/api/projects/p1/workflows/a%2Fb", NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    fetch_result_free(&r);
    test_fetch(&ts, "DELETE", "/api/projects/p1/workflows/w", NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    fetch_result_free(&r);
    test_fetch(&ts, "DELETE", "/api/projects/p1", NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    fetch_result_free(&r);

    test_fetch(&ts, "POST", "/api/workflow/convert", NULL,
               "{\"nodes\": [{\"id\": 1, \"type\": \"PrimitiveInt\", \"widgets_values\": [7, \"fixed\"]}], \"links\": []}", &r);
    assert_int_equal(r.status, 200);
    json_t *api = json_loads(r.body.data, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(api, "1"), "inputs"), "value")), 7);
    json_decref(api);
    fetch_result_free(&r);
    test_fetch(&ts, "POST", "/api/workflow/convert", NULL, "{\"nodes\": [{\"id\": 1, \"type\": \"Nope\"}]}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body.data, "Nope"));
    fetch_result_free(&r);
    test_server_stop(&ts);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),   cmocka_unit_test(test_etag),           cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_store), cmocka_unit_test(test_symlink_escape), cmocka_unit_test(test_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
