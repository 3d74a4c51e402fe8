/* base/: percent-decoding, query strings, path confinement, SHA-1 and the WebSocket accept
 * key, buffers, JSON text in Python's format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/path.h"
#include "base/sha1.h"
#include "base/str.h"
#include "net/ws.h"

static void percent_decode(void **state) {
    (void)state;
    char *s = cd_str_percent_decode("a%20b%2Fc+d", 11, false);
    assert_string_equal(s, "a b/c+d");
    free(s);
    s = cd_str_percent_decode("a+b", 3, true);
    assert_string_equal(s, "a b");
    free(s);
    assert_null(cd_str_percent_decode("%", 1, false));
    assert_null(cd_str_percent_decode("%2", 2, false));
    assert_null(cd_str_percent_decode("%zz", 3, false));
    assert_null(cd_str_percent_decode("a%00b", 5, false)); /* an encoded NUL would truncate paths */
}

static void query_lookup(void **state) {
    (void)state;
    char *v = cd_str_query_get("clientId=abc&x=1", "clientId");
    assert_string_equal(v, "abc");
    free(v);
    v = cd_str_query_get("a=1&clientId=x%20y&clientId=2", "clientId");
    assert_string_equal(v, "x y");
    free(v);
    v = cd_str_query_get("flag&b=2", "flag");
    assert_string_equal(v, "");
    free(v);
    assert_null(cd_str_query_get("a=1", "clientId"));
    assert_null(cd_str_query_get("", "a"));
    assert_null(cd_str_query_get("a=%zz", "a"));
}

static void random_ids(void **state) {
    (void)state;
    char a[33], b[33], u[37];
    cd_str_random_hex(a, 16);
    cd_str_random_hex(b, 16);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 32; i++) assert_non_null(strchr("0123456789abcdef", a[i]));
    cd_str_uuid4(u);
    assert_int_equal(strlen(u), 36);
    assert_int_equal(u[14], '4');
    assert_non_null(strchr("89ab", u[19]));
}

static void safe_relative_paths(void **state) {
    (void)state;
    assert_true(cd_path_rel_is_safe("a/b.png"));
    assert_true(cd_path_rel_is_safe(""));
    assert_true(cd_path_rel_is_safe("..a/b..")); /* names that merely contain dots are fine */
    assert_false(cd_path_rel_is_safe("../x"));
    assert_false(cd_path_rel_is_safe("a/../../x"));
    assert_false(cd_path_rel_is_safe("a/.."));
    assert_false(cd_path_rel_is_safe("/etc/passwd"));
    assert_false(cd_path_rel_is_safe("a\\..\\b"));
}

static void confinement_follows_symlinks(void **state) {
    (void)state;
    char root[] = "/tmp/cd-test-XXXXXX";
    assert_non_null(mkdtemp(root));
    char inner[256], outside[] = "/tmp/cd-out-XXXXXX", link[256];
    snprintf(inner, sizeof inner, "%s/in", root);
    assert_int_equal(cd_path_mkdirs(inner, 0755), 0);
    assert_non_null(mkdtemp(outside));
    snprintf(link, sizeof link, "%s/escape", root);
    assert_int_equal(symlink(outside, link), 0);
    char *p = cd_path_join_confined(root, "in/new-file.txt");
    assert_non_null(p);
    free(p);
    assert_null(cd_path_join_confined(root, "escape/secret"));
    assert_null(cd_path_join_confined(root, "escape"));
    assert_null(cd_path_join_confined(root, "../x"));
    assert_null(cd_path_join_confined("/nonexistent-root-dir", "a"));
    assert_int_equal(cd_path_remove_tree(root), 0);
    assert_false(cd_path_is_dir(root));
    assert_true(cd_path_is_dir(outside)); /* removal does not follow the symlink */
    rmdir(outside);
}

static void sha1_vectors(void **state) {
    (void)state;
    uint8_t d[20];
    char hex[41];
    const char *inputs[] = {"", "abc", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"};
    const char *expect[] = {"da39a3ee5e6b4b0d3255bfef95601890afd80709", "a9993e364706816aba3e25717850c26c9cd0d89d",
                            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"};
    for (int i = 0; i < 3; i++) {
        cd_sha1(inputs[i], strlen(inputs[i]), d);
        for (int k = 0; k < 20; k++) snprintf(hex + 2 * k, 3, "%02x", d[k]);
        assert_string_equal(hex, expect[i]);
    }
    /* RFC 6455 section 1.3's example */
    char accept[29];
    cd_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", accept);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void buffers(void **state) {
    (void)state;
    cd_buf b = CD_BUF_INIT;
    for (int i = 0; i < 1000; i++) assert_int_equal(cd_buf_printf(&b, "%d,", i), 0);
    assert_true(b.len > 2000);
    assert_memory_equal(b.data, "0,1,2,", 6);
    cd_buf_consume(&b, 2);
    assert_memory_equal(b.data, "1,2,", 4);
    assert_int_equal(b.data[b.len], '\0');
    char *taken = cd_buf_take(&b);
    assert_null(b.data);
    free(taken);
    cd_buf_free(&b);
}

static void json_like_python(void **state) {
    (void)state;
    json_t *v = json_pack("{s:i, s:f, s:s, s:[i,b,n]}", "z", 1, "max_upload_size", 104857600.0, "t", "\xc3\xa9", "l",
                          2, 1);
    char *s = cd_json_dumps(v);
    assert_string_equal(s, "{\"z\": 1, \"max_upload_size\": 104857600.0, \"t\": \"\\u00e9\", \"l\": [2, true, null]}");
    free(s);
    json_decref(v);
}

/* The hand-written JSON of hot events must read exactly like cd_json_dumps / Python. */
static void json_writers(void **state) {
    (void)state;
    static const struct { double x; const char *repr; } nums[] = {
        {0.0, "0.0"}, {1.0, "1.0"}, {0.5, "0.5"}, {0.1, "0.1"}, {100.0, "100.0"}, {1e15, "1000000000000000.0"},
        {1e16, "1e+16"}, {1.5e16, "1.5e+16"}, {1e-4, "0.0001"}, {1e-5, "1e-05"}, {-2.5, "-2.5"},
        {123456789.125, "123456789.125"}, {1.0 / 3, "0.3333333333333333"}, {2.5e-7, "2.5e-07"},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        cd_buf b = CD_BUF_INIT;
        assert_int_equal(cd_json_append_number(&b, nums[i].x), 0);
        assert_string_equal(b.data, nums[i].repr);
        cd_buf_free(&b);
    }
    const char *strings[] = {"plain", "quote\" back\\ slash", "tab\tnew\nline\x01", "\xc3\xa9t\xc3\xa9",
                             "\xf0\x9f\x98\x80 emoji"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        cd_buf b = CD_BUF_INIT;
        assert_int_equal(cd_json_append_string(&b, strings[i]), 0);
        json_t *j = json_string(strings[i]);
        char *expect = cd_json_dumps(j);
        assert_string_equal(b.data, expect);
        free(expect);
        json_decref(j);
        cd_buf_free(&b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percent_decode),      cmocka_unit_test(query_lookup),
        cmocka_unit_test(random_ids),          cmocka_unit_test(safe_relative_paths),
        cmocka_unit_test(confinement_follows_symlinks), cmocka_unit_test(sha1_vectors),
        cmocka_unit_test(buffers),             cmocka_unit_test(json_like_python),
        cmocka_unit_test(json_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
