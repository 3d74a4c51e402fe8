/* base/json.c: cd_json_parse against its reference. Every input of the table is read by both
 * cd_json_parse and cd_json_loadb_bigint (json_loadb under CD_JSON_REJECT_BIGINT) with and
 * without JSON_DECODE_ANY; they must agree (both refuse, or the same tree: key order, big-
 * integer marks, reals bit for bit), and the table says which of them accept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/json_same.h"
#include "base/buf.h"
#include "base/json.h"

/* What is accepted: with flags 0 (a container at the top), only with JSON_DECODE_ANY, never. */
enum { BOTH, ANY_ONLY, NEVER };

typedef struct {
    const char *text;
    size_t len;
    int accepted;
} sample;

#define S(lit, acc) {lit, sizeof lit - 1, acc}

static const sample samples[] = {
    /* documents */
    S("{}", BOTH), S("[]", BOTH), S(" \t\r\n[ 1 , 2 ]\n", BOTH),
    S("{\"a\" : [1, 2.5e3, {\"b\": null}], \"c\": \"x\\n\\t\\\"\", \"d\": true, \"e\": false}", BOTH),
    S("{\"prompt\":{\"1\":{\"class_type\":\"IntAdd\",\"inputs\":{\"a\":[\"0\",0],\"b\":1}}},\"client_id\":\"c\"}", BOTH),
    S("{\"k\":{\"k\":{\"k\":[[],{}]}}}", BOTH),
    /* top-level scalars: only with JSON_DECODE_ANY */
    S("1", ANY_ONLY), S("\"abc\"", ANY_ONLY), S("true", ANY_ONLY), S("null", ANY_ONLY), S(" -1.5e-3 ", ANY_ONLY),
    /* empty, whitespace, trailing garbage */
    S("", NEVER), S("   ", NEVER), S("[] x", NEVER), S("[]]", NEVER), S("{}{}", NEVER), S("[1,]", NEVER),
    S("[,1]", NEVER), S("{\"a\":1,}", NEVER), S("{\"a\"}", NEVER), S("{\"a\" 1}", NEVER), S("{1:2}", NEVER),
    S("[\f]", NEVER), S("[\v1]", NEVER), S("\xef\xbb\xbf[]", NEVER), S("[1", NEVER), S("{\"a\":", NEVER),
    S("[\"abc", NEVER), S("[1 2]", NEVER), S("[truex]", NEVER), S("[True]", NEVER), S("[nul]", NEVER),
    /* jansson loses a NUL byte put back after a number or word: accepted, as it does */
    S("[1\0]", BOTH), S("1\0", ANY_ONLY), S("[true\0]", BOTH), S("[1.5\0, 2]", BOTH), S("[1\0\0]", NEVER),
    S("[1]\0", NEVER), S("[\"a\"\0]", NEVER), S("\0", NEVER), S("[99999999999999999999\0]", NEVER),
    /* numbers */
    S("[0, -0, 1, -1, 10, 123456789012345678]", BOTH), S("[-0.0, 0.0, 0e5, 1E+2, 1e-2, 2.5E3]", BOTH),
    S("[0.1, 0.30000000000000004, 1e22, 1e23, 4.9e-324, 2.2250738585072014e-308, 1.7976931348623157e308]", BOTH),
    S("[123456789.123456789e-5, 9007199254740993, 9007199254740993.0, 1.00000000000000000000000001]", BOTH),
    S("[1e-400, -1e-99999999999999999999]", BOTH), /* underflow is accepted */
    S("[1e400]", NEVER), S("[-1.7976931348623159e308]", NEVER), S("[1e99999999999999999999]", NEVER),
    S("[01]", NEVER), S("[-01]", NEVER), S("[00]", NEVER), S("[-]", NEVER), S("[-a]", NEVER), S("[1.]", NEVER),
    S("[.5]", NEVER), S("[1e]", NEVER), S("[1e+]", NEVER), S("[1.e5]", NEVER), S("[+1]", NEVER),
    S("[0x10]", NEVER), S("[1.5.2]", NEVER), S("[NaN]", NEVER), S("[Infinity]", NEVER), S("[-Infinity]", NEVER),
    /* integers at and beyond json_int_t: the big ones become marked strings */
    S("[9223372036854775807, -9223372036854775808]", BOTH), S("[9223372036854775808]", BOTH),
    S("[-9223372036854775809, 123456789012345678901234567890]", BOTH), S("-99999999999999999999", ANY_ONLY),
    S("{\"seed\": 18446744073709551616, \"x\": [1.12345678901234567890, 1e12345678901234567890123]}", NEVER),
    S("{\"seed\": 18446744073709551616, \"x\": [1.12345678901234567890, 1e-12345678901234567890123]}", BOTH),
    S("[99999999999999999999, 012345678901234567890]", NEVER), S("{12345678901234567890123: 1}", NEVER),
    S("[99999999999999999999, \"\\u0000\"]", NEVER), S("[\"too big\", 99999999999999999999]", BOTH),
    /* strings: escapes, unicode, control characters, UTF-8 */
    S("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", BOTH), S("[\"\\u00e9\\u00E9\\u20AC\\uFFFF\"]", BOTH),
    S("[\"\\ud83d\\ude00 \\uD834\\uDD1E\"]", BOTH), S("[\"\\ud800\"]", NEVER), S("[\"\\udc00\"]", NEVER),
    S("[\"\\ud800\\ud800\"]", NEVER), S("[\"\\ud800x\"]", NEVER), S("[\"\\ude00\\ud83d\"]", NEVER),
    S("[\"\\u0000\"]", NEVER), S("{\"a\\u0000\":1}", NEVER), S("[\"\\u12\"]", NEVER), S("[\"\\u12g4\"]", NEVER),
    S("[\"\\x41\"]", NEVER), S("[\"\\'\"]", NEVER), S("[\"\\", NEVER), S("[\"a\x01\"]", NEVER),
    S("[\"a\nb\"]", NEVER), S("[\"a\tb\"]", NEVER), S("[\"a\0b\"]", NEVER), S("[\"a\x7f\"]", BOTH),
    S("[\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"]", BOTH),
    S("[\"\xc3\"]", NEVER), S("[\"\xc3\xc3\"]", NEVER), S("[\"\xc0\xaf\"]", NEVER), S("[\"\xe0\x80\xaf\"]", NEVER),
    S("[\"\xed\xa0\x80\"]", NEVER), S("[\"\xf4\x90\x80\x80\"]", NEVER), S("[\"\xf5\x80\x80\x80\"]", NEVER),
    S("[\"\xff\"]", NEVER), S("[\"\x80\"]", NEVER), S("[\"\xe6\x97\"]", NEVER), S("[\xc3\xa9]", NEVER),
    S("{\"\xc3\xa9\\n\": \"a long string that crosses eight-byte words \\\" with an escape, then more text\"}",
      BOTH),
    /* duplicate keys: the first position, the last value */
    S("{\"a\":1,\"b\":2,\"a\":3}", BOTH), S("{\"a\":{\"x\":1},\"a\":[2]}", BOTH), S("{\"\":1,\"\":2}", BOTH),
};

static void check_sample(const char *text, size_t len, int accepted, const char *label) {
    const size_t flags[] = {0, JSON_DECODE_ANY};
    for (int f = 0; f < 2; f++) {
        bool ok = accepted == BOTH || (accepted == ANY_ONLY && flags[f] == JSON_DECODE_ANY);
        json_t *ours = cd_json_parse(text, len, flags[f], NULL);
        if ((ours != NULL) != ok)
            fail_msg("%s: flags %zu: expected %s", label, flags[f], ok ? "accepted" : "refused");
        json_decref(ours);
        if (!json_parse_agrees(text, len, flags[f]))
            fail_msg("%s: flags %zu: cd_json_parse and cd_json_loadb_bigint disagree", label, flags[f]);
        if (!json_parse_agrees(text, len, flags[f] | CD_JSON_REJECT_BIGINT))
            fail_msg("%s: flags %zu: with CD_JSON_REJECT_BIGINT, cd_json_parse and json_loadb disagree", label,
                     flags[f]);
    }
}

static void table_agrees(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "sample %zu (%.30s)", i, samples[i].text);
        check_sample(samples[i].text, samples[i].len, samples[i].accepted, label);
    }
}

/* open levels of '[' (or {"a": when object), an optional scalar, then the closing brackets */
static char *nested(int levels, bool object, bool scalar, size_t *len) {
    cd_buf b = CD_BUF_INIT;
    for (int i = 0; i < levels; i++) cd_buf_append_str(&b, object ? "{\"a\":" : "[");
    if (scalar || object) cd_buf_append_str(&b, "1");
    for (int i = 0; i < levels; i++) cd_buf_append_str(&b, object ? "}" : "]");
    *len = b.len;
    return cd_buf_take(&b);
}

/* jansson counts every value, the top-level one as 1, and refuses a level above 2048. */
static void depth_limit(void **state) {
    (void)state;
    for (int levels = 2045; levels <= 2051; levels++) {
        size_t len;
        char label[64];
        char *t = nested(levels, false, false, &len);
        snprintf(label, sizeof label, "%d empty arrays", levels);
        check_sample(t, len, levels <= 2048 ? BOTH : NEVER, label);
        free(t);
        t = nested(levels, false, true, &len);
        snprintf(label, sizeof label, "%d arrays and a number", levels);
        check_sample(t, len, levels <= 2047 ? BOTH : NEVER, label);
        free(t);
        t = nested(levels, true, true, &len);
        snprintf(label, sizeof label, "%d objects", levels);
        check_sample(t, len, levels <= 2047 ? BOTH : NEVER, label);
        free(t);
    }
    size_t len;
    char *t = nested(100000, false, false, &len); /* far beyond: refused without a deep stack */
    check_sample(t, len, NEVER, "100000 arrays");
    free(t);
}

static void trees(void **state) {
    (void)state;
    json_error_t e;
    const char dup[] = "{\"b\":1,\"a\":2,\"b\":3}";
    json_t *j = cd_json_parse(dup, sizeof dup - 1, 0, &e);
    assert_non_null(j);
    char *s = cd_json_dumps_compact(j, 0);
    assert_string_equal(s, "{\"b\":3,\"a\":2}");
    free(s);
    json_decref(j);

    const char big[] = "[-123456789012345678901234567890, 9223372036854775808, -9223372036854775808]";
    j = cd_json_parse(big, sizeof big - 1, 0, NULL);
    assert_non_null(j);
    assert_string_equal(cd_json_bigint_text(json_array_get(j, 0)), "-123456789012345678901234567890");
    assert_string_equal(cd_json_bigint_text(json_array_get(j, 1)), "9223372036854775808");
    assert_true(json_is_integer(json_array_get(j, 2)));
    assert_true(json_integer_value(json_array_get(j, 2)) == INT64_MIN);
    json_decref(j);
    assert_null(cd_json_parse(big, sizeof big - 1, CD_JSON_REJECT_BIGINT, NULL));

    const char mixed[] = "[-0, -0.0, \"\\ud83d\\ude00\\u00e9\"]";
    j = cd_json_parse(mixed, sizeof mixed - 1, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_integer(json_array_get(j, 0)));
    assert_true(json_is_real(json_array_get(j, 1)) && signbit(json_real_value(json_array_get(j, 1))));
    assert_string_equal(json_string_value(json_array_get(j, 2)), "\xf0\x9f\x98\x80\xc3\xa9");
    json_decref(j);
}

static void errors(void **state) {
    (void)state;
    json_error_t e;
    const char bad[] = "{\n  \"a\": [1,\n  2 x]}";
    assert_null(cd_json_parse(bad, sizeof bad - 1, 0, &e));
    assert_true(e.text[0] != '\0');
    assert_int_equal(e.line, 3);
    assert_int_equal(e.column, 5);
    assert_int_equal(e.position, 17);
    assert_null(cd_json_parse("[]", 2, JSON_REJECT_DUPLICATES, &e)); /* flags it does not implement */
    assert_string_equal(e.text, "unsupported flags");
    assert_null(cd_json_parse(NULL, 0, 0, &e));
}

/* A prompt of every shape the engine sees, large enough to cross the parser's buffers. */
static void large_prompt(void **state) {
    (void)state;
    cd_buf b = CD_BUF_INIT;
    cd_buf_append_str(&b, "{\"prompt\": {");
    for (int i = 0; i < 3000; i++)
        cd_buf_printf(&b, "%s\"%d\": {\"class_type\": \"IntAdd\", \"inputs\": {\"a\": [\"%d\", 0], \"b\": %d, "
                          "\"f\": %d.%de-%d, \"s\": \"t\\u00e9xt \\\"%d\\\"\\n\"}, \"_meta\": {\"title\": \"\xc3\xa9%d\"}}",
                      i ? ", " : "", i, i - 1, i * 7919, i, i % 97, i % 30, i, i);
    cd_buf_append_str(&b, "}, \"client_id\": \"x\", \"extra_data\": {\"seed\": 123456789012345678901234567890}}");
    check_sample(b.data, b.len, BOTH, "large prompt");
    cd_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_agrees), cmocka_unit_test(depth_limit), cmocka_unit_test(trees),
        cmocka_unit_test(errors),       cmocka_unit_test(large_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
