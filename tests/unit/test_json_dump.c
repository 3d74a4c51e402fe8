/* base/json.c: cd_json_dumps, cd_json_dumps_compact and cd_json_write against the jansson
 * pipelines they replace (cd_json_dumps_reference, cd_json_dumps_compact_reference). Every tree
 * of the table is written by both, in every form callers use; the texts must be the same bytes,
 * or both NULL. A few literal texts say what that form is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"

static void same_text(const char *got, const char *want, const char *label, const char *what) {
    if (!got || !want) {
        if (got != want) fail_msg("%s: %s: %s is NULL", label, what, got ? "the reference" : "ours");
        return;
    }
    if (strcmp(got, want) != 0) {
        size_t i = 0;
        while (got[i] && got[i] == want[i]) i++;
        size_t from = i > 40 ? i - 40 : 0;
        fail_msg("%s: %s differs at byte %zu:\n  ours: ...%.80s\n  ref:  ...%.80s", label, what, i, got + from,
                 want + from);
    }
}

/* Both forms, both compact flag sets, a flag left to jansson, and cd_json_write after text
 * already in the buffer. */
static void check(const json_t *v, const char *label) {
    char *got = cd_json_dumps(v), *want = cd_json_dumps_reference(v);
    same_text(got, want, label, "cd_json_dumps");
    cd_buf b = CD_BUF_INIT;
    cd_buf_append_str(&b, "prefix");
    int rc = cd_json_write(&b, v, false);
    assert_int_equal(rc, want ? 0 : -1);
    assert_int_equal(b.len, 6 + (want ? strlen(want) : 0));
    assert_memory_equal(b.data, "prefix", 6);
    if (want) same_text(b.data + 6, want, label, "cd_json_write");
    assert_int_equal(b.data[b.len], '\0');
    free(got);
    free(want);

    const size_t flags[] = {0, JSON_ENCODE_ANY, JSON_SORT_KEYS | JSON_ENCODE_ANY};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        got = cd_json_dumps_compact(v, flags[i]);
        want = cd_json_dumps_compact_reference(v, flags[i]);
        char what[64];
        snprintf(what, sizeof what, "cd_json_dumps_compact(%#zx)", flags[i]);
        same_text(got, want, label, what);
        if (flags[i] == JSON_ENCODE_ANY) {
            cd_buf_reset(&b);
            cd_buf_append_str(&b, "[");
            assert_int_equal(cd_json_write(&b, v, true), want ? 0 : -1);
            if (want) same_text(b.data + 1, want, label, "cd_json_write compact");
            else assert_string_equal(b.data, "[");
        }
        free(got);
        free(want);
    }
    cd_buf_free(&b);
}

static void check_text(const char *text, const char *label) {
    json_error_t e;
    json_t *v = cd_json_parse(text, strlen(text), JSON_DECODE_ANY, &e);
    if (!v) fail_msg("%s: does not parse: %s", label, e.text);
    check(v, label);
    json_decref(v);
}

/* Trees written as JSON text: each is parsed, then written back. */
static const char *const texts[] = {
    "{}", "[]", "[[]]", "[{}]", "{\"a\": {}}", "{\"a\": [], \"b\": [[], {}]}", "[[[[[]]]]]",
    "null", "true", "false", "0", "-1", "\"\"", "\"x\"", "1.5",
    "{\"b\": 1, \"a\": 2, \"c\": {\"z\": 1, \"y\": [1, 2, {\"x\": null}]}}",
    /* escapes */
    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"a/b\", \"\\u007f\", \"\\u0001\\u001f\\u000b\\u001b\"]",
    "{\"k\\n\\\"ey\\u0002\": \"v\"}",
    /* unicode: two, three and four bytes, at the edges of each; in keys too */
    "[\"\\u0080\\u07ff\\u0800\\uffff\", \"\\ud800\\udc00\\udbff\\udfff\", \"caf\\u00e9 \\u65e5\\u672c "
    "\\ud83d\\ude00\", \"\\u00e9\\\"\\u00e9\\n\"]",
    "{\"\\u00e9t\\u00e9\": 1, \"\\ud83d\\ude00\": [\"\\u20ac\"], \"plain\": \"\\u4e2d\\u6587\\u6587\\u672c\"}",
    /* integers */
    "[0, 1, -1, 9, 10, 99, 100, 12345, 9223372036854775807, -9223372036854775808, 1000000000000000000, "
    "-999999999999999999, 4294967296, -2147483648]",
    /* big integers: in arrays, objects, at the top level */
    "[9223372036854775808, -9223372036854775809, 123456789012345678901234567890]",
    "{\"seed\": 18446744073709551616, \"n\": {\"m\": -99999999999999999999}}", "99999999999999999999",
    "-99999999999999999999",
    /* reals */
    "[0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 0.2, 0.3, 1e300, 1e-300, -1e300, 1e308, 1.7976931348623157e308, "
    "4.9e-324, 2.2250738585072014e-308, 2.2250738585072009e-308, 123456789012345678.0, 1e16, 1e17, 1e22, 1e23, "
    "9007199254740993.0, 4503599627370495.5, 0.0001, 0.00001, 0.00009999999999999999, 0.000123456789, "
    "99999999999999999.0, 1.2345678901234567, 3.141592653589793, 2.718281828459045, 6.02214076e23, "
    "1.602176634e-19, 100.0, 104857600.0, 7.5, 0.05, 1e-7, 123.456, -0.001]",
    /* one of everything */
    "{\"prompt\": {\"1\": {\"class_type\": \"KSampler\", \"inputs\": {\"seed\": 123456789012345678901234, "
    "\"steps\": 20, \"cfg\": 7.5, \"denoise\": 1.0, \"model\": [\"4\", 0], \"positive\": [\"6\", 0], "
    "\"sampler_name\": \"euler\", \"add_noise\": true, \"note\": null}}}, \"client_id\": \"c\\u00e9\"}",
};

static void table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "text %zu (%.30s)", i, texts[i]);
        check_text(texts[i], label);
    }
}

/* Strings of any bytes, as json_stringn_nocheck can hold: every ASCII character, NULs, the
 * big-integer mark and the strings that merely look like it, and bytes that are not UTF-8 (a
 * value of them fails the dump; a key of them is written in jansson's own way). */
static void odd_strings(void **state) {
    (void)state;
    char all[128];
    for (int i = 0; i < 128; i++) all[i] = (char)i;
    static const struct {
        const char *s;
        size_t len;
    } odd[] = {
        {"\0" "12", 3},   {"\0-12", 4},    {"\0" "007", 4},  {"\0-0", 3},   {"\0", 1},        {"\0-", 2},
        {"\0" "12a", 4},  {"\0" "1-2", 4}, {"\0--1", 4},     {"\0 1", 3},   {"\0\0" "1", 3},  {"a\0" "1", 3},
        {"\0" "1\0", 3},  {"1\0", 2},      {"\0\xc3\xa9", 3}, {"\xff", 1},   {"a\xc3", 2},     {"\xc0\xaf", 2},
        {"\xed\xa0\x80", 3}, {"\xf4\x90\x80\x80", 4}, {"\xe0\x80\xaf", 3}, {"\x80", 1}, {"ok\n\xfe", 4},
        {"\"\\\xf5", 3},  {"x\xc3\xa9\xc3", 5},
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0] + 1; i++) {
        const char *s = i < sizeof odd / sizeof odd[0] ? odd[i].s : all;
        size_t len = i < sizeof odd / sizeof odd[0] ? odd[i].len : sizeof all;
        char label[64];
        snprintf(label, sizeof label, "odd string %zu", i);
        json_t *str = json_stringn_nocheck(s, len);
        check(str, label);
        json_t *arr = json_pack("[s, O, i]", "before", str, 1);
        check(arr, label);
        json_t *obj = json_object();
        json_object_set_new(obj, "first", json_integer(1));
        json_object_setn_nocheck(obj, s, len, str);
        json_object_set_new(obj, "after\xc3\xa9\n", json_string("v\x01"));
        check(obj, label);
        json_t *nested = json_pack("{s:[O]}", "k", obj);
        check(nested, label);
        json_decref(nested);
        json_decref(obj);
        json_decref(arr);
        json_decref(str);
    }
    assert_null(cd_json_dumps(NULL));
    assert_null(cd_json_dumps_compact(NULL, JSON_ENCODE_ANY));
}

/* Reals of every shape: near powers of ten (where printf's 17 digits round across them), whole
 * numbers around 2^53 and 10^17, denormals, and pseudo-random bit patterns. */
static void reals(void **state) {
    (void)state;
    json_t *arr = json_array();
    for (int p = -330; p <= 310; p++) {
        double x = pow(10, p);
        json_array_append_new(arr, json_real(x));
        json_array_append_new(arr, json_real(nextafter(x, 0)));
        json_array_append_new(arr, json_real(nextafter(x, INFINITY)));
        json_array_append_new(arr, json_real(-x * 1.5));
    }
    for (int e = -60; e <= 60; e++) {
        double x = ldexp(1, e);
        json_array_append_new(arr, json_real(x));
        json_array_append_new(arr, json_real(x + 0.5));
        json_array_append_new(arr, json_real(nextafter(x, 0)));
        json_array_append_new(arr, json_real(x / 3));
    }
    const double specials[] = {0.0, -0.0, DBL_MIN, DBL_MAX, -DBL_MAX, DBL_TRUE_MIN, DBL_EPSILON, 1e17, 1e17 - 16,
                               1e16 + 2, 9007199254740992.0, 9007199254740994.0, 4503599627370495.5, 0.5, 0.25};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        json_array_append_new(arr, json_real(specials[i]));
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double x;
        memcpy(&x, &s, sizeof x);
        if (isfinite(x)) json_array_append_new(arr, json_real(x));
        /* and one mostly in fixed notation: 53 random bits times 2^-73 to 2^6 */
        double y = ldexp((double)(s >> 11), (int)(s % 80) - 73);
        json_array_append_new(arr, json_real((s & 1) ? -y : y));
    }
    check(arr, "reals");
    /* a few spelled out, with jansson's printf form */
    const struct {
        double x;
        const char *text;
    } spelled[] = {
        {0.0, "0.0"}, {-0.0, "-0.0"}, {0.1, "0.10000000000000001"}, {1e300, "1.0000000000000001e300"},
        {1e22, "1e22"}, {1e-300, "1e-300"}, {123456789012345678.0, "1.2345678901234568e17"},
        {1e16, "10000000000000000.0"}, {1e-5, "1.0000000000000001e-5"}, {5e-324, "4.9406564584124654e-324"},
        {7.5, "7.5"}, {-2.0, "-2.0"}, {0.0001, "0.0001"},
    };
    for (size_t i = 0; i < sizeof spelled / sizeof spelled[0]; i++) {
        json_t *r = json_real(spelled[i].x);
        char *t = cd_json_dumps(r);
        assert_string_equal(t, spelled[i].text);
        free(t);
        json_decref(r);
    }
    json_decref(arr);
    assert_null(json_real(NAN)); /* jansson holds no NaN or infinity: nothing to write */
    assert_null(json_real(INFINITY));
}

/* The two forms, spelled out. */
static void forms(void **state) {
    (void)state;
    json_t *v = json_pack("{s:[i,f,s,b,n], s:{}, s:[]}", "a\xc3\xa9", 1, 2.5, "\x1f\xf0\x9f\x98\x80/", 1, "o", "l");
    json_array_append_new(json_object_get(v, "a\xc3\xa9"), cd_json_bigint("-123456789012345678901"));
    char *t = cd_json_dumps(v);
    assert_string_equal(t, "{\"a\\u00e9\": [1, 2.5, \"\\u001f\\ud83d\\ude00/\", true, null, -123456789012345678901], "
                           "\"o\": {}, \"l\": []}");
    free(t);
    t = cd_json_dumps_compact(v, 0);
    assert_string_equal(t, "{\"a\xc3\xa9\":[1,2.5,\"\\u001F\xf0\x9f\x98\x80/\",true,null,-123456789012345678901],"
                           "\"o\":{},\"l\":[]}");
    free(t);
    json_decref(v);
    v = json_integer(7); /* a scalar needs JSON_ENCODE_ANY, as with json_dumps */
    assert_null(cd_json_dumps_compact(v, 0));
    t = cd_json_dumps_compact(v, JSON_ENCODE_ANY);
    assert_string_equal(t, "7");
    free(t);
    json_decref(v);
}

/* open levels of arrays and objects in turn around a string */
static json_t *deep(int levels) {
    json_t *v = json_string("deep \xc3\xa9");
    for (int i = 0; i < levels; i++) {
        json_t *c = i % 2 ? json_pack("{s:o}", "k", v) : json_pack("[o]", v);
        assert_non_null(c);
        v = c;
    }
    return v;
}

static void nesting(void **state) {
    (void)state;
    json_t *v = deep(3000); /* as deep as jansson's recursion takes here, sanitizers included */
    check(v, "3000 levels");
    json_decref(v);
    /* far deeper: no recursion here; the text is known */
    int levels = 300000;
    v = deep(levels);
    char *t = cd_json_dumps_compact(v, 0);
    assert_non_null(t);
    cd_buf want = CD_BUF_INIT;
    for (int i = levels - 1; i >= 0; i--) cd_buf_append_str(&want, i % 2 ? "{\"k\":" : "[");
    cd_buf_append_str(&want, "\"deep \xc3\xa9\"");
    for (int i = 0; i < levels; i++) cd_buf_append_str(&want, i % 2 ? "}" : "]");
    assert_string_equal(t, want.data);
    free(t);
    cd_buf_free(&want);
    /* json_decref recurses too: take it apart from the top */
    while (json_is_array(v) || json_is_object(v)) {
        json_t *inner = json_incref(json_is_array(v) ? json_array_get(v, 0) : json_object_get(v, "k"));
        json_decref(v);
        v = inner;
    }
    json_decref(v);
}

/* A container inside itself: jansson's dump fails, so must ours (and not run forever). A
 * shared container that is no cycle is written each time it appears. */
static void cycles(void **state) {
    (void)state;
    json_t *a = json_array(), *b = json_object(), *c = json_array();
    json_array_append_new(a, json_integer(1));
    json_object_set(b, "a", a);
    json_array_append(c, b);
    json_array_append(a, c); /* a -> c -> b -> a */
    assert_null(cd_json_dumps_reference(a));
    check(a, "cycle");
    check(b, "cycle from inside");
    cd_buf out = CD_BUF_INIT;
    assert_int_equal(cd_json_write(&out, a, true), -1);
    assert_int_equal(out.len, 0);
    cd_buf_free(&out);
    json_array_clear(c); /* breaks the cycle so the tree can be freed */
    json_t *self = json_array();
    json_array_append(self, self);
    check(self, "itself");
    json_array_clear(self);
    json_decref(self);

    json_t *shared = deep(3000), *twice = json_pack("[O, {s:O}, O]", shared, "s", shared, shared);
    check(twice, "shared, deep");
    json_decref(twice);
    json_decref(shared);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void long_strings(void **state) {
    (void)state;
    cd_buf b = CD_BUF_INIT;
    for (int i = 0; i < 20000; i++) {
        cd_buf_append_str(&b, i % 7 == 3   ? "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 "
                              : i % 11 == 5 ? "line\n\ttab \"quoted\" back\\slash \x01 "
                                            : "a photograph of a cat on a red chair, ");
    }
    json_t *v = json_pack("{s:s%, s:[s%]}", "text", b.data, b.len, "k", b.data + 1, b.len - 1);
    assert_non_null(v);
    check(v, "long strings");
    json_decref(v);
    cd_buf_free(&b);
}

/* jansson writes '.' whatever LC_NUMERIC says; so must ours. Runs where such a locale is
 * installed (skipped otherwise). */
static void numeric_locale(void **state) {
    (void)state;
    const char *names[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", "fr_FR", "ru_RU.UTF-8"};
    const char *set = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !set; i++) set = setlocale(LC_NUMERIC, names[i]);
    if (!set) skip();
    check_text("[0.1, 1.5, 1e300, 1e-300, 2.5e-7, 100.0, 123456789012345678.0]", "decimal comma");
    setlocale(LC_NUMERIC, "C");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),   cmocka_unit_test(odd_strings),  cmocka_unit_test(reals),
        cmocka_unit_test(forms),   cmocka_unit_test(nesting),      cmocka_unit_test(cycles),
        cmocka_unit_test(long_strings), cmocka_unit_test(numeric_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
