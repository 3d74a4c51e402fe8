/* The queue badge's script tag in a proxied page: where it goes, and which requests get it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "hub/page_badge.h"

static void check_inject(const char *html, const char *want) {
    size_t len = 0;
    char *out = cd_hub_badge_inject(html, strlen(html), &len);
    assert_non_null(out);
    assert_int_equal(len, strlen(want));
    assert_string_equal(out, want);
    free(out);
}

static void test_before_head_end(void **state) {
    check_inject("<html><head><title>x</title></head><body>b</body></html>",
                 "<html><head><title>x</title>" CD_HUB_BADGE_TAG "</head><body>b</body></html>");
    /* the first closing head, whatever its case */
    check_inject("<HEAD></HEAD></head>", "<HEAD>" CD_HUB_BADGE_TAG "</HEAD></head>");
}

static void test_fallbacks(void **state) {
    check_inject("<body>b</BODY>", "<body>b" CD_HUB_BADGE_TAG "</BODY>");
    check_inject("just text", "just text" CD_HUB_BADGE_TAG);
    check_inject("", CD_HUB_BADGE_TAG);
    check_inject("</hea", "</hea" CD_HUB_BADGE_TAG); /* a cut tag is no tag */
    check_inject("</head", "</head" CD_HUB_BADGE_TAG);
    /* </header> is no </head>: the tag goes before </body> */
    check_inject("<header>h</header><body>b</body>", "<header>h</header><body>b" CD_HUB_BADGE_TAG "</body>");
    check_inject("<head></head >", "<head>" CD_HUB_BADGE_TAG "</head >");
}

static void test_binary_page(void **state) {
    const char html[] = "<head>\0</head>"; /* a NUL inside: lengths, not strings */
    size_t len = 0;
    char *out = cd_hub_badge_inject(html, sizeof html - 1, &len);
    assert_non_null(out);
    assert_int_equal(len, sizeof html - 1 + strlen(CD_HUB_BADGE_TAG));
    assert_memory_equal(out, "<head>\0" CD_HUB_BADGE_TAG "</head>", len);
    free(out);
}

static void test_wanted(void **state) {
    assert_true(cd_hub_badge_wanted("GET", "/"));
    assert_true(cd_hub_badge_wanted("GET", "/?x=1"));
    assert_true(cd_hub_badge_wanted("GET", "/index.html"));
    assert_false(cd_hub_badge_wanted("HEAD", "/"));
    assert_false(cd_hub_badge_wanted("POST", "/"));
    assert_false(cd_hub_badge_wanted("GET", "/index.htm"));
    assert_false(cd_hub_badge_wanted("GET", "/index.html/x"));
    assert_false(cd_hub_badge_wanted("GET", "/queue"));
    assert_false(cd_hub_badge_wanted("GET", ""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_head_end),
        cmocka_unit_test(test_fallbacks),
        cmocka_unit_test(test_binary_page),
        cmocka_unit_test(test_wanted),
    };
    return cmocka_run_group_tests_name("hub_page_badge", tests, NULL, NULL);
}
