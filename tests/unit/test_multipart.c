/* The multipart/form-data parser: boundaries from Content-Type, fields and files, quoting and
 * RFC 5987 file names, preambles and epilogues, and malformed bodies refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/multipart.h"

static void boundary_from_content_type(void **state) {
    (void)state;
    char *b = cd_multipart_boundary("multipart/form-data; boundary=----abc123");
    assert_string_equal(b, "----abc123");
    free(b);
    b = cd_multipart_boundary("Multipart/Form-Data;charset=utf-8;  boundary=\"quoted b\"");
    assert_string_equal(b, "quoted b");
    free(b);
    assert_null(cd_multipart_boundary("application/json"));
    assert_null(cd_multipart_boundary("multipart/form-data"));
    assert_null(cd_multipart_boundary("multipart/form-data; boundary="));
    assert_null(cd_multipart_boundary("multipart/form-data; boundary=\"unterminated"));
    char long_ct[200];
    snprintf(long_ct, sizeof long_ct, "multipart/form-data; boundary=%071d", 0);
    assert_null(cd_multipart_boundary(long_ct));
    assert_null(cd_multipart_boundary(NULL));
}

#define BODY(s) s, sizeof(s) - 1

static void fields_and_files(void **state) {
    (void)state;
    static const char body[] = "preamble to ignore\r\n"
                               "--XyZ\r\n"
                               "Content-Disposition: form-data; name=\"type\"\r\n"
                               "\r\n"
                               "input\r\n"
                               "--XyZ\r\n"
                               "content-disposition: form-data; name=\"image\"; filename=\"a \\\"b\\\".png\"\r\n"
                               "Content-Type: image/png\r\n"
                               "\r\n"
                               "\x89PNG\r\n--X not a boundary\0binary\r\n"
                               "--XyZ\r\n"
                               "Content-Disposition: form-data; name=\"empty\"\r\n"
                               "\r\n"
                               "\r\n"
                               "--XyZ--\r\n"
                               "epilogue";
    cd_multipart mp;
    char err[128];
    assert_int_equal(cd_multipart_parse(BODY(body), "XyZ", &mp, err, sizeof err), 0);
    assert_int_equal(mp.n, 3);
    const cd_multipart_part *t = cd_multipart_get(&mp, "type");
    assert_non_null(t);
    assert_null(t->filename);
    assert_int_equal(t->len, 5);
    assert_memory_equal(t->data, "input", 5);
    const cd_multipart_part *img = cd_multipart_get(&mp, "image");
    assert_string_equal(img->filename, "a \"b\".png");
    assert_string_equal(img->content_type, "image/png");
    static const char content[] = "\x89PNG\r\n--X not a boundary\0binary";
    assert_int_equal(img->len, sizeof content - 1);
    assert_memory_equal(img->data, content, sizeof content - 1);
    assert_int_equal(cd_multipart_get(&mp, "empty")->len, 0);
    assert_null(cd_multipart_get(&mp, "missing"));
    cd_multipart_free(&mp);
}

static void rfc5987_filename_wins(void **state) {
    (void)state;
    static const char body[] = "--b\r\n"
                               "Content-Disposition: form-data; name=image; filename=\"plain.png\"; "
                               "filename*=UTF-8''caf%C3%A9%20x.png\r\n"
                               "\r\n"
                               "data\r\n"
                               "--b--";
    cd_multipart mp;
    char err[128];
    assert_int_equal(cd_multipart_parse(BODY(body), "b", &mp, err, sizeof err), 0);
    assert_string_equal(mp.parts[0].name, "image");
    assert_string_equal(mp.parts[0].filename, "caf\xc3\xa9 x.png");
    cd_multipart_free(&mp);
}

static void malformed_bodies_are_refused(void **state) {
    (void)state;
    static const struct {
        const char *body, *why;
    } cases[] = {
        {"no boundary here", "no boundary"},
        {"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nnever closed", "closing boundary"},
        {"--b\r\nContent-Disposition: form-data; name=\"x\"", "headers"},
        {"--bjunk\r\n", "delimiter"},
        {"--b\r\nContent-Disposition: form-data; name=\"x; filename=y\r\n\r\nv\r\n--b--", "Content-Disposition"},
        {"--b\r\nContent-Disposition: form-data; name=\"x\"; filename*=UTF-8''a%00b\r\n\r\nv\r\n--b--",
         "Content-Disposition"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cd_multipart mp;
        char err[128] = "";
        assert_int_equal(cd_multipart_parse(cases[i].body, strlen(cases[i].body), "b", &mp, err, sizeof err), -1);
        if (!strstr(err, cases[i].why)) fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].why);
        assert_int_equal(mp.n, 0);
        assert_null(mp.parts);
    }
}

static void many_parts_are_bounded(void **state) {
    (void)state;
    size_t n = 300, cap = n * 64 + 16, len = 0;
    char *body = malloc(cap);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len, "--b\r\nContent-Disposition: form-data; name=\"f%zu\"\r\n\r\nv\r\n", i);
    len += (size_t)snprintf(body + len, cap - len, "--b--");
    cd_multipart mp;
    char err[128];
    assert_int_equal(cd_multipart_parse(body, len, "b", &mp, err, sizeof err), -1);
    assert_non_null(strstr(err, "too many"));
    free(body);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(boundary_from_content_type),   cmocka_unit_test(fields_and_files),
        cmocka_unit_test(rfc5987_filename_wins),        cmocka_unit_test(malformed_bodies_are_refused),
        cmocka_unit_test(many_parts_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
