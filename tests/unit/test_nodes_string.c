/* The string pack (comfy_extras.nodes_string) against what Python computes: every expected
 * value here was produced by running the ComfyUI node's Python body (str methods and `re`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine/call.h"
#include "engine/registry.h"

int cd_nodes_string_init(cd_pack *pack);

/* ---- running a node (the same few helpers in each test_nodes_*.c) ---- */

typedef struct {
    const char *name;
    char kind; /* s, i, b, f, n (None) */
    const char *s;
    int64_t i;
    double f;
} targ;

#define S(n, v) {n, 's', v, 0, 0}
#define I(n, v) {n, 'i', NULL, v, 0}
#define B(n, v) {n, 'b', NULL, v, 0}
#define END {NULL, 0, NULL, 0, 0}

typedef struct {
    cd_node_call call;
    cd_value *vals[16];
    size_t n;
    int rc;
} run_t;

static void run(run_t *r, const cd_registry *reg, const char *node, const targ *args) {
    const cd_node_type *t = cd_registry_get(reg, node);
    if (!t) fail_msg("no node %s", node);
    memset(r, 0, sizeof *r);
    cd_call_init(&r->call, t, NULL, "1", 0);
    for (; args->name; args++) {
        cd_value *v = args->kind == 's'   ? cd_value_string(args->s)
                      : args->kind == 'i' ? cd_value_int(args->i)
                      : args->kind == 'b' ? cd_value_bool((int)args->i)
                      : args->kind == 'f' ? cd_value_float(args->f)
                                          : cd_value_none();
        assert_true(r->n < 16);
        r->vals[r->n++] = v;
        cd_call_add_input(&r->call, args->name, v, NULL);
    }
    r->rc = t->def->execute(&r->call);
}

static void run_end(run_t *r) {
    cd_call_clear(&r->call);
    for (size_t k = 0; k < r->n; k++) cd_value_unref(r->vals[k]);
}

static void ok_or_fail(run_t *r, const char *node) {
    if (r->rc != CD_OK)
        fail_msg("%s failed: %s: %s", node, r->call.error_type ? r->call.error_type : "?",
                 r->call.error_message ? r->call.error_message : "?");
}

static void expect_str_at(int line, const cd_registry *reg, const char *node, const char *expected, const targ *args) {
    run_t r;
    run(&r, reg, node, args);
    ok_or_fail(&r, node);
    const char *got = cd_value_as_string(r.call.outputs[0]);
    if (!got || strcmp(got, expected))
        fail_msg("line %d: %s gave \"%s\", expected \"%s\"", line, node, got ? got : "(not a string)", expected);
    run_end(&r);
}

static void expect_int_at(int line, const cd_registry *reg, const char *node, int64_t expected, const targ *args) {
    run_t r;
    run(&r, reg, node, args);
    ok_or_fail(&r, node);
    if (cd_value_kind_of(r.call.outputs[0]) != CD_VALUE_INT || cd_value_as_int(r.call.outputs[0]) != expected)
        fail_msg("line %d: %s gave %lld, expected %lld", line, node, (long long)cd_value_as_int(r.call.outputs[0]),
                 (long long)expected);
    run_end(&r);
}

static void expect_bool_at(int line, const cd_registry *reg, const char *node, int expected, const targ *args) {
    run_t r;
    run(&r, reg, node, args);
    ok_or_fail(&r, node);
    if (cd_value_kind_of(r.call.outputs[0]) != CD_VALUE_BOOL || cd_value_as_bool(r.call.outputs[0]) != expected)
        fail_msg("line %d: %s gave %d, expected %d", line, node, cd_value_as_bool(r.call.outputs[0]), expected);
    run_end(&r);
}

/* The node fails with this exception type and a message containing `part`. */
static void expect_fail_at(int line, const cd_registry *reg, const char *node, const char *type, const char *part,
                           const targ *args) {
    run_t r;
    run(&r, reg, node, args);
    if (r.rc != CD_ERROR) fail_msg("line %d: %s succeeded, expected %s", line, node, type);
    assert_non_null(r.call.error_type);
    if (strcmp(r.call.error_type, type) || !strstr(r.call.error_message, part))
        fail_msg("line %d: %s failed with %s: %s; expected %s: ...%s...", line, node, r.call.error_type,
                 r.call.error_message, type, part);
    run_end(&r);
}

#define ARGS(...) ((const targ[]){__VA_ARGS__, END})
#define EXPECT_STR(node, expected, ...) expect_str_at(__LINE__, reg, node, expected, ARGS(__VA_ARGS__))
#define EXPECT_INT(node, expected, ...) expect_int_at(__LINE__, reg, node, expected, ARGS(__VA_ARGS__))
#define EXPECT_BOOL(node, expected, ...) expect_bool_at(__LINE__, reg, node, expected, ARGS(__VA_ARGS__))
#define EXPECT_FAIL(node, type, part, ...) expect_fail_at(__LINE__, reg, node, type, part, ARGS(__VA_ARGS__))

static int setup(void **state) {
    cd_registry *reg = cd_registry_new();
    if (cd_registry_add_pack(reg, "string", "comfy_extras.nodes_string", cd_nodes_string_init) != 11) return -1;
    *state = reg;
    return 0;
}

static int teardown(void **state) {
    cd_registry_free(*state);
    return 0;
}

/* ---- plain string nodes ---- */

static void test_concatenate(void **state) {
    cd_registry *reg = *state;
    EXPECT_STR("StringConcatenate", "ab-cd", S("string_a", "ab"), S("string_b", "cd"), S("delimiter", "-"));
    EXPECT_STR("StringConcatenate", "", S("string_a", ""), S("string_b", ""), S("delimiter", ""));
    EXPECT_STR("StringConcatenate", "é, 😀", S("string_a", "é"), S("string_b", "😀"), S("delimiter", ", "));
    EXPECT_FAIL("StringConcatenate", "TypeError", "string_b", S("string_a", "x"), S("delimiter", ""));
}

static void test_substring(void **state) {
    cd_registry *reg = *state;
    EXPECT_STR("StringSubstring", "hello", S("string", "hello world"), I("start", 0), I("end", 5));
    EXPECT_STR("StringSubstring", "world", S("string", "hello world"), I("start", -5), I("end", 100));
    EXPECT_STR("StringSubstring", "he", S("string", "hello world"), I("start", -100), I("end", 2));
    EXPECT_STR("StringSubstring", "", S("string", "hello world"), I("start", 3), I("end", 1));
    EXPECT_STR("StringSubstring", "worl", S("string", "hello world"), I("start", 6), I("end", -1));
    EXPECT_STR("StringSubstring", "", S("string", ""), I("start", 0), I("end", 5));
    /* code points, not bytes */
    EXPECT_STR("StringSubstring", "éllo😀", S("string", "héllo😀x"), I("start", 1), I("end", -1));
    EXPECT_STR("StringSubstring", "😀x", S("string", "héllo😀x"), I("start", -2), I("end", 100));
    EXPECT_STR("StringSubstring", "", S("string", "abc"), I("start", INT64_MIN), I("end", INT64_MIN));
    EXPECT_STR("StringSubstring", "abc", S("string", "abc"), I("start", INT64_MIN), I("end", INT64_MAX));
}

static void test_length(void **state) {
    cd_registry *reg = *state;
    EXPECT_INT("StringLength", 0, S("string", ""));
    EXPECT_INT("StringLength", 6, S("string", "héllo😀"));
    EXPECT_INT("StringLength", 3, S("string", "a\nb"));
    EXPECT_INT("StringLength", 3, S("string", "日本語"));
}

static void test_case_converter(void **state) {
    cd_registry *reg = *state;
    EXPECT_STR("CaseConverter", "HELLO, WORLD", S("string", "Hello, world"), S("mode", "UPPERCASE"));
    /* full case mappings: ß -> SS, the ligature fi -> FI, ǆ -> Ǆ */
    EXPECT_STR("CaseConverter", "STRASSE Ǆ FI", S("string", "straße ǆ ﬁ"), S("mode", "UPPERCASE"));
    /* final sigma, and İ -> i + combining dot */
    EXPECT_STR("CaseConverter", "οδος σας σ i̇", S("string", "ΟΔΟΣ ΣΑΣ Σ İ"), S("mode", "lowercase"));
    EXPECT_STR("CaseConverter", "Hello world", S("string", "hELLO wORLD"), S("mode", "Capitalize"));
    EXPECT_STR("CaseConverter", "ǅemal", S("string", "ǆemal"), S("mode", "Capitalize"));
    EXPECT_STR("CaseConverter", "They'Re Bill'S Friends", S("string", "they're bill's friends"), S("mode", "Title Case"));
    EXPECT_STR("CaseConverter", "Hello World 3Rd", S("string", "hello wORLD 3rd"), S("mode", "Title Case"));
    EXPECT_STR("CaseConverter", "", S("string", ""), S("mode", "Title Case"));
    EXPECT_STR("CaseConverter", "日本語 123", S("string", "日本語 123"), S("mode", "UPPERCASE"));
    EXPECT_STR("CaseConverter", "MiXeD", S("string", "MiXeD"), S("mode", "unknown mode"));
}

static void test_trim(void **state) {
    cd_registry *reg = *state;
    EXPECT_STR("StringTrim", "hi", S("string", "  \t hi \n "), S("mode", "Both"));
    EXPECT_STR("StringTrim", "hi \n ", S("string", "  \t hi \n "), S("mode", "Left"));
    EXPECT_STR("StringTrim", "  \t hi", S("string", "  \t hi \n "), S("mode", "Right"));
    /* str.isspace(): ideographic space, no-break space, em space, the separators U+001C..F */
    EXPECT_STR("StringTrim", "x", S("string", "\u3000\u00a0x\u2003\x1c"), S("mode", "Both"));
    EXPECT_STR("StringTrim", "", S("string", " \n\t "), S("mode", "Both"));
    EXPECT_STR("StringTrim", "", S("string", ""), S("mode", "Right"));
    EXPECT_STR("StringTrim", "é", S("string", "é "), S("mode", "Right"));
}

static void test_replace(void **state) {
    cd_registry *reg = *state;
    EXPECT_STR("StringReplace", "bbbbbb", S("string", "aaa"), S("find", "a"), S("replace", "bb"));
    EXPECT_STR("StringReplace", "bb", S("string", "aaaa"), S("find", "aa"), S("replace", "b"));
    /* an empty `find` goes around every code point */
    EXPECT_STR("StringReplace", "-a-b-c-", S("string", "abc"), S("find", ""), S("replace", "-"));
    EXPECT_STR("StringReplace", "|日|本|語|", S("string", "日本語"), S("find", ""), S("replace", "|"));
    EXPECT_STR("StringReplace", "x", S("string", ""), S("find", ""), S("replace", "x"));
    EXPECT_STR("StringReplace", "hee", S("string", "héé"), S("find", "é"), S("replace", "e"));
    EXPECT_STR("StringReplace", "abc", S("string", "abc"), S("find", "z"), S("replace", "y"));
}

static void test_contains(void **state) {
    cd_registry *reg = *state;
    EXPECT_BOOL("StringContains", 1, S("string", "Hello"), S("substring", "ell"), B("case_sensitive", 1));
    EXPECT_BOOL("StringContains", 0, S("string", "Hello"), S("substring", "ELL"), B("case_sensitive", 1));
    EXPECT_BOOL("StringContains", 1, S("string", "Hello"), S("substring", "ELL"), B("case_sensitive", 0));
    EXPECT_BOOL("StringContains", 1, S("string", "x"), S("substring", ""), B("case_sensitive", 1));
    EXPECT_BOOL("StringContains", 1, S("string", ""), S("substring", ""), B("case_sensitive", 0));
    EXPECT_BOOL("StringContains", 0, S("string", ""), S("substring", "a"), B("case_sensitive", 0));
    /* through str.lower(): "ΣΑΣ" becomes "σας" (final sigma), "STRASSE" never contains "ß" */
    EXPECT_BOOL("StringContains", 1, S("string", "ΣΑΣ"), S("substring", "σας"), B("case_sensitive", 0));
    EXPECT_BOOL("StringContains", 0, S("string", "STRASSE"), S("substring", "ß"), B("case_sensitive", 0));
}

static void test_compare(void **state) {
    cd_registry *reg = *state;
    EXPECT_BOOL("StringCompare", 1, S("string_a", "Hello"), S("string_b", "he"), S("mode", "Starts With"),
                B("case_sensitive", 0));
    EXPECT_BOOL("StringCompare", 0, S("string_a", "Hello"), S("string_b", "he"), S("mode", "Starts With"),
                B("case_sensitive", 1));
    EXPECT_BOOL("StringCompare", 1, S("string_a", "Hello"), S("string_b", "LLO"), S("mode", "Ends With"),
                B("case_sensitive", 0));
    EXPECT_BOOL("StringCompare", 0, S("string_a", "lo"), S("string_b", "Hello"), S("mode", "Ends With"),
                B("case_sensitive", 0));
    EXPECT_BOOL("StringCompare", 1, S("string_a", "a"), S("string_b", "A"), S("mode", "Equal"), B("case_sensitive", 0));
    EXPECT_BOOL("StringCompare", 0, S("string_a", "a"), S("string_b", "A"), S("mode", "Equal"), B("case_sensitive", 1));
    EXPECT_BOOL("StringCompare", 1, S("string_a", ""), S("string_b", ""), S("mode", "Starts With"),
                B("case_sensitive", 1));
    EXPECT_BOOL("StringCompare", 0, S("string_a", "ab"), S("string_b", "abc"), S("mode", "Starts With"),
                B("case_sensitive", 1));
    /* Python's execute returns nothing for another mode */
    run_t r;
    run(&r, reg, "StringCompare",
        ARGS(S("string_a", "a"), S("string_b", "a"), S("mode", "Other"), B("case_sensitive", 1)));
    assert_int_equal(r.rc, CD_OK);
    assert_int_equal(cd_value_kind_of(r.call.outputs[0]), CD_VALUE_NONE);
    run_end(&r);
}

/* ---- regular expressions ---- */

#define RX(s, p) S("string", s), S("regex_pattern", p)
#define FLAGS(ci, ml, da) B("case_insensitive", ci), B("multiline", ml), B("dotall", da)

static void test_regex_match(void **state) {
    cd_registry *reg = *state;
    EXPECT_BOOL("RegexMatch", 1, RX("Hello World", "world"), FLAGS(1, 0, 0));
    EXPECT_BOOL("RegexMatch", 0, RX("Hello World", "world"), FLAGS(0, 0, 0));
    EXPECT_BOOL("RegexMatch", 0, RX("abc", "^b"), FLAGS(1, 0, 0));
    EXPECT_BOOL("RegexMatch", 1, RX("a\nb", "^b"), FLAGS(1, 1, 0));
    EXPECT_BOOL("RegexMatch", 0, RX("a\nb", "a.b"), FLAGS(1, 0, 0));
    EXPECT_BOOL("RegexMatch", 1, RX("a\nb", "a.b"), FLAGS(1, 0, 1));
    EXPECT_BOOL("RegexMatch", 1, RX("x12", "\\d+"), FLAGS(1, 0, 0));
    EXPECT_BOOL("RegexMatch", 1, RX("", ""), FLAGS(1, 0, 0));
    /* whether a lazy repeat matches does not depend on its laziness */
    EXPECT_BOOL("RegexMatch", 1, RX("<a><b>", "<.+?>"), FLAGS(1, 0, 0));
    /* Python catches re.error: an invalid pattern does not match */
    EXPECT_BOOL("RegexMatch", 0, RX("x", "("), FLAGS(1, 0, 0));
    EXPECT_BOOL("RegexMatch", 0, RX("x", "a**"), FLAGS(1, 0, 0));
    EXPECT_BOOL("RegexMatch", 0, RX("x", "\\q"), FLAGS(1, 0, 0));
    /* Python's \B never matches in an empty string; a mid-pattern ^ only at the start */
    EXPECT_BOOL("RegexMatch", 0, RX("", "\\B"), FLAGS(1, 0, 0));
    EXPECT_BOOL("RegexMatch", 1, RX("ab", "a\\B"), FLAGS(1, 0, 0));
    EXPECT_BOOL("RegexMatch", 0, RX("a\nb", "a\n^b"), FLAGS(1, 0, 0));
    EXPECT_BOOL("RegexMatch", 1, RX("a\nb", "a\n^b"), FLAGS(1, 1, 0));
    /* an error after a construct POSIX lacks is still Python's re.error */
    EXPECT_BOOL("RegexMatch", 0, RX("a", "(?=a)("), FLAGS(1, 0, 0));
    /* valid Python that POSIX cannot run fails instead of answering differently */
    EXPECT_FAIL("RegexMatch", "re.error", "lookahead", RX("ab", "a(?=b)"), FLAGS(1, 0, 0));
    EXPECT_FAIL("RegexMatch", "re.error", "lookbehind", RX("ab", "(?<=a)b"), FLAGS(1, 0, 0));
}

#define EXTRACT(expected, s, p, mode, ci, ml, da, gi)                                                                \
    EXPECT_STR("RegexExtract", expected, RX(s, p), S("mode", mode), FLAGS(ci, ml, da), I("group_index", gi))

static void test_regex_extract(void **state) {
    cd_registry *reg = *state;
    EXTRACT("66", "order 66 and 42", "\\d+", "First Match", 1, 0, 0, 1);
    EXTRACT("", "order", "\\d+", "First Match", 1, 0, 0, 1);
    EXTRACT("B", "ABC", "b", "First Match", 1, 0, 0, 1);
    EXTRACT("1\n22\n333", "a1b22c333", "\\d+", "All Matches", 1, 0, 0, 1);
    /* findall gives group 1 when there are groups */
    EXTRACT("k1\nk2", "k1=v1;k2=v2", "(\\w+)=(\\w+)", "All Matches", 1, 0, 0, 1);
    EXTRACT("1\n2", "x=1 y=2", "=(\\d)", "All Matches", 1, 0, 0, 1);
    EXTRACT("c\nc", "abcabc", "(?:ab)(c)", "All Matches", 1, 0, 0, 1);
    /* empty matches: findall('x*', 'abc') == ['', '', '', ''] */
    EXTRACT("\n\n\n", "abc", "x*", "All Matches", 1, 0, 0, 1);
    EXTRACT("Smith", "John Smith", "(\\w+) (\\w+)", "First Group", 1, 0, 0, 2);
    EXTRACT("", "John Smith", "(\\w+) (\\w+)", "First Group", 1, 0, 0, 3);
    EXTRACT("John Smith", "John Smith", "(\\w+) (\\w+)", "First Group", 1, 0, 0, 0);
    EXTRACT("", "John Smith", "(\\d)", "First Group", 1, 0, 0, 1);
    EXTRACT("05", "2024-05-06", "(?P<y>\\d{4})-(?P<m>\\d\\d)", "First Group", 1, 0, 0, 2);
    EXTRACT("1\n2", "a=1, b=2", "(\\w)=(\\d)", "All Groups", 1, 0, 0, 2);
    EXTRACT("", "a=1, b=2", "\\w=\\d", "All Groups", 1, 0, 0, 0); /* no groups: nothing */
    EXTRACT("", "x", "(", "First Match", 1, 0, 0, 1);              /* re.error caught */
    EXTRACT("", "x", "abc", "Other mode", 1, 0, 0, 1);
    /* unicode */
    EXTRACT("naïve\ncafé", "naïve café", "\\w+", "All Matches", 1, 0, 0, 1);
    EXTRACT("ривет\nмир", "Привет мир", "[а-я]+", "All Matches", 0, 0, 0, 1);
    EXTRACT("Привет\nмир", "Привет мир", "[а-я]+", "All Matches", 1, 0, 0, 1);
    EXTRACT("a\u00a0b", "a\u00a0b", "a\\sb", "First Match", 1, 0, 0, 1);
    EXTRACT("é", "é", "\\xe9", "First Match", 1, 0, 0, 1);
    EXTRACT("é", "é", "\\u00e9", "First Match", 1, 0, 0, 1);
    EXTRACT("😀", "😀", "\\U0001F600", "First Match", 1, 0, 0, 1);
    /* flags */
    EXTRACT("a\nb\nc", "a1\nb2\nc3", "^\\w", "All Matches", 1, 1, 0, 1);
    EXTRACT("a", "a1\nb2\nc3", "^\\w", "All Matches", 1, 0, 0, 1);
    EXTRACT("<a>", "<a>\n<b>", "<.*>", "First Match", 1, 0, 0, 1);
    EXTRACT("<a>\n<b>", "<a>\n<b>", "<.*>", "First Match", 1, 0, 1, 1);
    EXTRACT("<a>\n<b>", "<a>\n<b>", "<.*>", "First Match", 1, 1, 1, 1);
    EXTRACT("a\nb", "a\nb", "a[^x]b", "First Match", 1, 1, 0, 1); /* Python's [^x] matches "\n" */
    EXTRACT("a\nb", "a\nb", "a\\Db", "First Match", 1, 1, 0, 1);
    EXTRACT("ab", "ab\ncd", "(?i)AB", "First Match", 0, 0, 0, 1);
    EXTRACT("b\nc", "ab\ncd", "(?s)b.c", "First Match", 0, 0, 0, 1);
    EXTRACT("foo bar", "foo bar", "(?x) foo \\s bar # comment", "First Match", 0, 0, 0, 1);
    /* syntax */
    EXTRACT(" \t", "a \t\nb", "[^\\S\\n]+", "First Match", 1, 0, 0, 1);
    EXTRACT("x", "1x", "[^\\W\\d_]", "First Match", 1, 0, 0, 1);
    EXTRACT("123", "abc 123", "[^\\D]+", "First Match", 1, 0, 0, 1);
    EXTRACT("A-B_C", "A-B_C", "[\\w-]+", "First Match", 1, 0, 0, 1);
    EXTRACT("]", "a]b", "[]]", "First Match", 1, 0, 0, 1);
    EXTRACT("^", "a^b", "[\\^]", "First Match", 1, 0, 0, 1);
    EXTRACT("a-", "a-b", "[a\\-]+", "First Match", 1, 0, 0, 1);
    EXTRACT("a{b}", "a{b}", "a{b}", "First Match", 1, 0, 0, 1);
    EXTRACT("aa", "aaa", "a{2}", "First Match", 1, 0, 0, 1);
    EXTRACT("x.y", "x.y", "x\\.y", "First Match", 1, 0, 0, 1);
    EXTRACT("\t", "tab\there", "\\t", "First Match", 1, 0, 0, 1);
    EXTRACT("a\nb", "a\nb", "a\\nb", "First Match", 1, 0, 0, 1);
    EXTRACT("abab", "abab", "(ab)\\1", "First Match", 1, 0, 0, 1);
    EXTRACT("zz", "xyzzy", "(?P<c>z)(?P=c)", "First Match", 1, 0, 0, 1);
    EXTRACT("hel", "hello", "\\bhel", "First Match", 1, 0, 0, 1);
    EXTRACT("", "ahello", "\\bhel", "First Match", 1, 0, 0, 1);
    EXTRACT("a", "abc", "\\Aa", "First Match", 1, 0, 0, 1);
    EXTRACT("c", "abc", "c\\Z", "First Match", 1, 0, 0, 1);
    EXTRACT("a(b)", "a(b)", "a\\(b\\)", "First Match", 1, 0, 0, 1);
    EXTRACT("x", "x", "(?#a comment)x", "First Match", 1, 0, 0, 1);
}

static void test_regex_extract_errors(void **state) {
    cd_registry *reg = *state;
    /* ''.join() meets None: a group that did not take part in a match */
    EXPECT_FAIL("RegexExtract", "TypeError", "sequence item 0: expected str instance, NoneType found",
                RX("ab", "(a)|(b)"), S("mode", "All Groups"), FLAGS(1, 0, 0), I("group_index", 2));
    EXPECT_FAIL("RegexExtract", "re.error", "lazy", RX("<a><b>", "<.+?>"), S("mode", "First Match"), FLAGS(1, 0, 0),
                I("group_index", 1));
    /* First Group of a group that did not take part: match.group() is None */
    run_t r;
    run(&r, reg, "RegexExtract",
        ARGS(RX("b", "(a)?b"), S("mode", "First Group"), FLAGS(1, 0, 0), I("group_index", 1)));
    assert_int_equal(r.rc, CD_OK);
    assert_int_equal(cd_value_kind_of(r.call.outputs[0]), CD_VALUE_NONE);
    run_end(&r);
}

#define SUB(expected, s, p, repl, count)                                                                             \
    EXPECT_STR("RegexReplace", expected, RX(s, p), S("replace", repl), I("count", count))

static void test_regex_replace(void **state) {
    cd_registry *reg = *state;
    SUB("hell0 w0rld", "hello world", "o", "0", 0);
    SUB("hell0 world", "hello world", "o", "0", 1);
    SUB("Smith, John", "John Smith", "(\\w+) (\\w+)", "\\2, \\1", 0);
    SUB("Smith John", "John Smith", "(?P<first>\\w+) (\\w+)", "\\g<2> \\g<first>", 0);
    SUB("-a-b--d-", "abxd", "x*", "-", 0); /* Python 3.7+ empty-match rules */
    SUB("dog dog", "Cat cat", "cat", "dog", 0);  /* case_insensitive defaults to true */
    SUB("b\nb", "bab", "a", "\\n", 0);
    SUB("b\\&b", "bab", "a", "\\&", 0);
    SUB("[][b]", "ab", "(a)|(b)", "[\\2]", 0); /* an unmatched group gives "" */
    SUB("bAb", "bab", "a", "\\101", 0);        /* octal escape */
    SUB("cafe", "café", "é", "e", 0);
    SUB("|日|本|語|", "日本語", "", "|", 0);
    SUB("abc", "abc", "x", "y", 0);
    SUB("", "", "x*", "", 0);
    /* the optional inputs are optional */
    EXPECT_STR("RegexReplace", "dog dog", RX("Cat cat", "cat"), S("replace", "dog"));
    EXPECT_STR("RegexReplace", ">a\n>b", RX("a\nb", "^"), S("replace", ">"), B("multiline", 1));
    EXPECT_STR("RegexReplace", "Cat dog", RX("Cat cat", "cat"), S("replace", "dog"), B("case_insensitive", 0));
}

static void test_regex_replace_errors(void **state) {
    cd_registry *reg = *state;
    /* RegexReplace does not catch re.error */
    EXPECT_FAIL("RegexReplace", "re.error", "missing ), unterminated subpattern at position 0", RX("ab", "("),
                S("replace", "x"));
    EXPECT_FAIL("RegexReplace", "re.error", "bad escape \\q", RX("ab", "a"), S("replace", "\\q"));
    EXPECT_FAIL("RegexReplace", "re.error", "invalid group reference 3", RX("ab", "(a)(b)"), S("replace", "\\3"));
    EXPECT_FAIL("RegexReplace", "re.error", "bad escape (end of pattern)", RX("ab", "a"), S("replace", "\\"));
    EXPECT_FAIL("RegexReplace", "IndexError", "unknown group name 'nope'", RX("ab", "(a)"), S("replace", "\\g<nope>"));
    EXPECT_FAIL("RegexReplace", "re.error", "nothing to repeat", RX("ab", "*a"), S("replace", ""));
    EXPECT_FAIL("RegexReplace", "re.error", "unterminated character set", RX("ab", "[a"), S("replace", ""));
    EXPECT_FAIL("RegexReplace", "re.error", "lazy", RX("ab", "a+?"), S("replace", ""));
    EXPECT_FAIL("RegexReplace", "re.error", "possessive", RX("ab", "a++"), S("replace", ""));
    EXPECT_FAIL("RegexReplace", "re.error", "global flags not at the start", RX("ab", "a(?i)"), S("replace", ""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concatenate),       cmocka_unit_test(test_substring),
        cmocka_unit_test(test_length),            cmocka_unit_test(test_case_converter),
        cmocka_unit_test(test_trim),              cmocka_unit_test(test_replace),
        cmocka_unit_test(test_contains),          cmocka_unit_test(test_compare),
        cmocka_unit_test(test_regex_match),       cmocka_unit_test(test_regex_extract),
        cmocka_unit_test(test_regex_extract_errors), cmocka_unit_test(test_regex_replace),
        cmocka_unit_test(test_regex_replace_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
