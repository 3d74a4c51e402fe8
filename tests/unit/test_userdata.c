/* The user data layer: path decoding and confinement, atomic writes, listings, the user table
 * and settings (userdata_fs.c), then the routes through a real instance in-process. */
#include "support.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/json.h"
#include "base/str.h"
#include "server/userdata.h"

static char *tmpdir(void) {
    char *d = strdup("/tmp/cd-ud-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void write_file(const char *dir, const char *rel, const char *text) {
    char *p = cd_path_join(dir, rel);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void test_unquote(void **state) {
    (void)state;
    char *s = cd_userdata_unquote("a%2Fb%20c%zz%4");
    assert_string_equal(s, "a/b c%zz%4"); /* malformed escapes stay, like urllib.parse.unquote */
    free(s);
    assert_null(cd_userdata_unquote("a%00b"));
    s = cd_userdata_unquote("%");
    assert_string_equal(s, "%");
    free(s);
}

static void test_normalize(void **state) {
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {{"a.json", "a.json"}, {"a/./b//c", "a/b/c"}, {"a/../b", "b"}, {"a/b/..", "a"},
              {".", ""},            {"", ""},               {"a/", "a"},      {"..a/b..", "..a/b.."}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *out = NULL;
        assert_int_equal(cd_userdata_normalize(ok[i].in, &out), CD_UD_OK);
        assert_string_equal(out, ok[i].out);
        free(out);
    }
    static const char *const bad[] = {"..", "../x", "a/../../x", "/etc/passwd", "a\\b", "./.."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        assert_int_equal(cd_userdata_normalize(bad[i], &out), CD_UD_FORBIDDEN);
        assert_null(out);
    }
}

static void test_resolve(void **state) {
    (void)state;
    char *base = tmpdir();
    char *root = cd_path_join(base, "u");
    char *out = cd_path_join(base, "outside");
    assert_int_equal(cd_path_mkdirs(out, 0755), 0);
    char *path = NULL, *rel = NULL;
    /* a missing root: lexical check only, nothing created */
    assert_int_equal(cd_userdata_resolve(root, "x/y.json", 0, &path, &rel), CD_UD_OK);
    assert_string_equal(rel, "x/y.json");
    assert_false(cd_path_is_dir(root));
    free(path);
    free(rel);
    assert_int_equal(cd_userdata_resolve(root, "w%2Fa.json", CD_UD_MKROOT | CD_UD_MKPARENT, &path, &rel), CD_UD_OK);
    assert_string_equal(rel, "w/a.json");
    char *w = cd_path_join(root, "w");
    assert_true(cd_path_is_dir(w));
    free(w);
    free(path);
    free(rel);
    /* symlinks out: a directory and a file */
    char *link = cd_path_join(root, "esc");
    assert_int_equal(symlink(out, link), 0);
    assert_int_equal(cd_userdata_resolve(root, "esc/new/x", CD_UD_MKROOT | CD_UD_MKPARENT, &path, &rel),
                     CD_UD_FORBIDDEN);
    char *created = cd_path_join(out, "new");
    assert_false(cd_path_is_dir(created)); /* nothing was created out there */
    free(created);
    assert_int_equal(cd_userdata_resolve(root, "%2E%2E/x", CD_UD_MKROOT, &path, &rel), CD_UD_FORBIDDEN);
    assert_int_equal(cd_userdata_resolve(root, "a%00b", CD_UD_MKROOT, &path, &rel), CD_UD_FORBIDDEN);
    assert_int_equal(cd_userdata_resolve(root, "/etc/passwd", CD_UD_MKROOT, &path, &rel), CD_UD_FORBIDDEN);
    /* a "user root" that is a file (an id such as "users.json" in a hand-edited table) */
    char *f = cd_path_join(base, "users.json");
    write_file(base, "users.json", "{}");
    assert_int_equal(cd_userdata_resolve(f, ".", CD_UD_MKROOT, &path, &rel), CD_UD_FORBIDDEN);
    assert_int_equal(cd_userdata_resolve(f, NULL, 0, &path, &rel), CD_UD_FORBIDDEN);
    free(f);
    /* the root itself */
    assert_int_equal(cd_userdata_resolve(root, NULL, 0, &path, &rel), CD_UD_OK);
    assert_string_equal(rel, "");
    free(path);
    free(rel);
    free(link);
    free(root);
    free(out);
    cd_path_remove_tree(base);
    free(base);
}

static void test_write_atomic(void **state) {
    (void)state;
    char *base = tmpdir();
    char *p = cd_path_join(base, "f.txt");
    assert_int_equal(cd_userdata_write_atomic(p, "one", 3), 0);
    assert_int_equal(cd_userdata_write_atomic(p, "second", 6), 0);
    char *text = read_file(p);
    assert_string_equal(text, "second");
    free(text);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true((st.st_mode & 0444) == 0444 || (st.st_mode & 0400)); /* not left at mkstemp's 0600 */
    /* a directory in the way: an error, and no temp file left */
    char *d = cd_path_join(base, "dir");
    assert_int_equal(cd_path_mkdirs(d, 0755), 0);
    assert_true(cd_userdata_write_atomic(d, "x", 1) < 0);
    json_t *all = cd_userdata_list_v2(base, base);
    assert_int_equal(json_array_size(all), 2); /* dir and f.txt only */
    json_decref(all);
    char *missing = cd_path_join(base, "no/such/dir/f");
    assert_true(cd_userdata_write_atomic(missing, "x", 1) < 0);
    free(missing);
    free(d);
    free(p);
    cd_path_remove_tree(base);
    free(base);
}

static void test_listings(void **state) {
    (void)state;
    char *root = tmpdir();
    char *sub = cd_path_join(root, "w/sub");
    cd_path_mkdirs(sub, 0755);
    char *hid = cd_path_join(root, "w/.hid");
    cd_path_mkdirs(hid, 0755);
    write_file(root, "w/b.json", "bb");
    write_file(root, "w/A.json", "a");
    write_file(root, "w/.dot", "d");
    write_file(root, "w/sub/c.json", "c");
    write_file(root, "w/.hid/h.json", "h");
    char *w = cd_path_join(root, "w");
    json_t *l = cd_userdata_list(root, w, false, false, false);
    char *s = cd_json_dumps(l);
    assert_string_equal(s, "[\"A.json\", \"b.json\"]");
    free(s);
    json_decref(l);
    l = cd_userdata_list(root, w, true, false, true);
    s = cd_json_dumps(l);
    assert_string_equal(s, "[[\"A.json\", \"A.json\"], [\"b.json\", \"b.json\"], [\"sub/c.json\", \"sub\", \"c.json\"]]");
    free(s);
    json_decref(l);
    l = cd_userdata_list(root, w, true, true, false);
    assert_int_equal(json_array_size(l), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(l, 1), "size")), 2);
    json_decref(l);
    l = cd_userdata_list_v2(root, w);
    /* directories first, then by lowercase *name* (not path); dotfiles included; paths from the root */
    const char *want[] = {"w/.hid", "w/sub", "w/.dot", "w/A.json", "w/b.json", "w/sub/c.json", "w/.hid/h.json"};
    assert_int_equal(json_array_size(l), 7);
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(l, i), "path")), want[i]);
    json_decref(l);
    free(w);
    free(hid);
    free(sub);
    cd_path_remove_tree(root);
    free(root);
}

static void test_users_and_settings(void **state) {
    (void)state;
    char *dir = tmpdir();
    char *id = NULL;
    const char *msg = NULL;
    assert_int_equal(cd_userdata_user_id(dir, true, "x", &id), CD_UD_UNKNOWN_USER);
    assert_int_equal(cd_userdata_user_id(dir, true, NULL, &id), CD_UD_UNKNOWN_USER);
    assert_int_equal(cd_userdata_user_id(dir, false, "x", &id), CD_UD_OK);
    assert_string_equal(id, "default");
    free(id);
    assert_int_equal(cd_userdata_users_add(dir, true, " Zoë & co ", &id, &msg), 0);
    assert_true(cd_str_starts_with(id, "Zo-co_"));
    assert_int_equal(strlen(id), strlen("Zo-co_") + 36);
    char *uid = id;
    assert_int_equal(cd_userdata_users_add(dir, true, " Zoë & co ", &id, &msg), 0); /* the raw name differs */
    free(id);
    assert_int_equal(cd_userdata_users_add(dir, true, "Zoë & co", &id, &msg), 1);
    assert_int_equal(cd_userdata_users_add(dir, true, "", &id, &msg), 2);
    assert_string_equal(msg, "username not provided");
    assert_int_equal(cd_userdata_users_add(dir, true, "__x", &id, &msg), 2);
    assert_int_equal(cd_userdata_users_add(dir, true, "!_x", &id, &msg), 0);
    assert_true(cd_str_starts_with(id, "-_x_"));
    free(id);
    assert_int_equal(cd_userdata_user_id(dir, true, uid, &id), CD_UD_OK);
    free(id);
    assert_int_equal(cd_userdata_user_id(dir, true, "__manager", &id), CD_UD_UNKNOWN_USER);
    assert_null(cd_userdata_user_root(dir, ".."));
    assert_null(cd_userdata_user_root(dir, "a/b"));
    assert_null(cd_userdata_user_root(dir, "__m"));
    free(uid);

    char *sp = cd_path_join(dir, "comfy.settings.json");
    json_t *s = cd_userdata_settings_load(sp);
    assert_int_equal(json_object_size(s), 0);
    json_decref(s);
    json_t *v = json_pack("{s:i, s:s}", "a", 1, "b", "\xc3\xa9");
    assert_int_equal(cd_userdata_settings_update(sp, NULL, v), 0);
    json_decref(v);
    v = json_pack("[i]", 2);
    assert_int_equal(cd_userdata_settings_update(sp, "c", v), 0);
    json_decref(v);
    char *text = read_file(sp);
    assert_string_equal(text, "{\n    \"a\": 1,\n    \"b\": \"\\u00e9\",\n    \"c\": [\n        2\n    ]\n}");
    free(text);
    write_file(dir, "comfy.settings.json", "[1, 2]");
    s = cd_userdata_settings_load(sp);
    assert_true(json_is_object(s) && json_object_size(s) == 0);
    json_decref(s);
    free(sp);
    cd_path_remove_tree(dir);
    free(dir);
}

/* ---- through the server ---- */

static void test_routes(void **state) {
    (void)state;
    test_server ts;
    test_server_start(&ts, NULL);
    fetch_result r;
    test_fetch(&ts, "POST", "/api/userdata/workflows%2Fa.json?overwrite=true&full_info=true", NULL, "{\"a\":1}", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "\"path\": \"workflows/a.json\""));
    fetch_result_free(&r);
    test_fetch(&ts, "POST", "/userdata/workflows%2Fa.json?overwrite=false", NULL, "x", &r);
    assert_int_equal(r.status, 409);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/userdata/workflows%2Fa.json", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"a\":1}");
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/userdata/..%2Fcomfyd-history.sqlite3", NULL, NULL, &r);
    assert_int_equal(r.status, 403);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/userdata?dir=workflows", NULL, NULL, &r);
    assert_string_equal(r.body.data, "[\"a.json\"]");
    fetch_result_free(&r);
    test_fetch(&ts, "POST", "/userdata/workflows%2Fa.json/move/b.json", NULL, NULL, &r);
    assert_string_equal(r.body.data, "\"b.json\"");
    fetch_result_free(&r);
    test_fetch(&ts, "DELETE", "/userdata/b.json", NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    fetch_result_free(&r);
    test_fetch(&ts, "POST", "/settings/Comfy.X", NULL, "true", &r);
    assert_int_equal(r.status, 200);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/settings", NULL, NULL, &r);
    assert_string_equal(r.body.data, "{\"Comfy.X\": true}");
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/users", NULL, NULL, &r);
    assert_string_equal(r.body.data, "{\"storage\": \"server\", \"migrated\": true}");
    fetch_result_free(&r);

    /* many writers at once: the file ends as exactly one of the bodies */
    enum { N = 24 };
    fetch_result rs[N];
    char bodies[N][64];
    for (int i = 0; i < N; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        snprintf(bodies[i], sizeof bodies[i], "writer %d %s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        cd_http_client_request req = {.method = "POST", .host = "127.0.0.1", .port = ts.port,
                                      .target = "/userdata/race.txt", .body = bodies[i],
                                      .body_len = strlen(bodies[i]), .timeout_ms = 10000};
        assert_int_equal(cd_http_fetch(&ts.loop, &req, on_fetch, &rs[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        test_run_until(&ts, &rs[i].done);
        assert_int_equal(rs[i].status, 200);
        fetch_result_free(&rs[i]);
    }
    char *p = cd_path_join(ts.inst.user_dir, "default/race.txt");
    char *text = read_file(p);
    bool one = false;
    for (int i = 0; i < N; i++) one |= !strcmp(text, bodies[i]);
    assert_true(one);
    free(text);
    free(p);
    test_server_stop(&ts);
}

static void test_routes_multi_user(void **state) {
    (void)state;
    test_server ts;
    const char *extra[] = {"--multi-user", NULL};
    test_server_start(&ts, extra);
    fetch_result r;
    test_fetch(&ts, "POST", "/users", NULL, "{\"username\": \"ann\"}", &r);
    assert_int_equal(r.status, 200);
    char hdr[200];
    /* the reply is a JSON string */
    snprintf(hdr, sizeof hdr, "comfy-user: %.*s\r\n", (int)r.body.len - 2, r.body.data + 1);
    fetch_result_free(&r);
    test_fetch(&ts, "POST", "/userdata/a.txt", hdr, "ann's", &r);
    assert_int_equal(r.status, 200);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/userdata/a.txt", "comfy-user: bob\r\n", NULL, &r);
    assert_int_equal(r.status, 500);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/settings", "comfy-user: bob\r\n", NULL, &r);
    assert_int_equal(r.status, 401);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/v2/userdata", "comfy-user: bob\r\n", NULL, &r);
    assert_int_equal(r.status, 403);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/v2/userdata", hdr, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "\"a.txt\""));
    fetch_result_free(&r);
    test_server_stop(&ts);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unquote),        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_resolve),        cmocka_unit_test(test_write_atomic),
        cmocka_unit_test(test_listings),       cmocka_unit_test(test_users_and_settings),
        cmocka_unit_test(test_routes),         cmocka_unit_test(test_routes_multi_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
