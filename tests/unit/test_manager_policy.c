/* The manager's security policy: ComfyUI-Manager's table of levels against risks, the
 * stricter rule beyond loopback, level names, loopback addresses; and config.ini reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager/mconfig.h"
#include "manager/policy.h"

static void table(void **state) {
    (void)state;
    /* level: strong, normal, normal-, weak; columns: low, middle, high (loopback), high (beyond), block */
    static const struct {
        cd_sec_level level;
        bool low, middle, high_lo, high_pub, block;
    } rows[] = {
        {CD_SEC_STRONG, 1, 0, 0, 0, 0},
        {CD_SEC_NORMAL, 1, 1, 0, 0, 0},
        {CD_SEC_NORMAL_MINUS, 1, 1, 1, 0, 0},
        {CD_SEC_WEAK, 1, 1, 1, 1, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        for (int lo = 0; lo < 2; lo++) {
            assert_int_equal(cd_policy_allowed(rows[i].level, lo, CD_RISK_LOW), rows[i].low);
            assert_int_equal(cd_policy_allowed(rows[i].level, lo, CD_RISK_MIDDLE), rows[i].middle);
            assert_int_equal(cd_policy_allowed(rows[i].level, lo, CD_RISK_BLOCK), rows[i].block);
        }
        assert_int_equal(cd_policy_allowed(rows[i].level, true, CD_RISK_HIGH), rows[i].high_lo);
        assert_int_equal(cd_policy_allowed(rows[i].level, false, CD_RISK_HIGH), rows[i].high_pub);
    }
}

static void level_names(void **state) {
    (void)state;
    cd_sec_level l;
    assert_int_equal(cd_policy_level_parse("normal-", &l), 0);
    assert_int_equal(l, CD_SEC_NORMAL_MINUS);
    assert_int_equal(cd_policy_level_parse("WEAK", &l), 0);
    assert_int_equal(l, CD_SEC_WEAK);
    /* a risk name is a common mistake; it is not a level */
    assert_int_equal(cd_policy_level_parse("middle", &l), -1);
    assert_int_equal(cd_policy_level_parse("", &l), -1);
    assert_int_equal(cd_policy_level_parse(NULL, &l), -1);
    for (int i = CD_SEC_STRONG; i <= CD_SEC_WEAK; i++) {
        assert_int_equal(cd_policy_level_parse(cd_policy_level_name((cd_sec_level)i), &l), 0);
        assert_int_equal(l, i);
    }
}

static void loopback(void **state) {
    (void)state;
    assert_true(cd_policy_addr_is_loopback("127.0.0.1"));
    assert_true(cd_policy_addr_is_loopback("127.8.9.10"));
    assert_true(cd_policy_addr_is_loopback("::1"));
    assert_true(cd_policy_addr_is_loopback("::ffff:127.0.0.1"));
    assert_true(cd_policy_addr_is_loopback("localhost"));
    assert_false(cd_policy_addr_is_loopback("0.0.0.0"));
    assert_false(cd_policy_addr_is_loopback("::"));
    assert_false(cd_policy_addr_is_loopback("192.168.1.2"));
    assert_false(cd_policy_addr_is_loopback("128.0.0.1"));
    assert_false(cd_policy_addr_is_loopback("example.com"));
    char *lo[] = {"127.0.0.1", "::1"}, *mixed[] = {"127.0.0.1", "0.0.0.0"};
    assert_true(cd_policy_listen_is_loopback(lo, 2));
    assert_false(cd_policy_listen_is_loopback(mixed, 2));
    assert_true(cd_policy_listen_is_loopback(NULL, 0));
}

static void config_file(void **state) {
    (void)state;
    char path[] = "/tmp/cd-mconfig-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[default]\nsecurity_level = weak\ndb_mode=remote\nallow_git_url_install = TRUE\n"
                       "allow_pip_install = yes\nchannel_url = http://x/y\nbuild_timeout = 7\n[other]\ndb_mode = local\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    cd_mconfig c;
    char *warning = NULL;
    assert_int_equal(cd_mconfig_load(&c, path, &warning), 0);
    assert_null(warning);
    assert_int_equal(c.security_level, CD_SEC_WEAK);
    assert_string_equal(c.db_mode, "remote");
    assert_true(c.allow_git_url_install);
    assert_false(c.allow_pip_install); /* only "true" is true */
    assert_string_equal(c.channel_url, "http://x/y");
    assert_int_equal(c.build_timeout_s, 7);
    /* written back and read again */
    cd_mconfig_set(&c.db_mode, "lo\r\ncal");
    assert_string_equal(c.db_mode, "local");
    assert_int_equal(cd_mconfig_save(&c, path), 0);
    cd_mconfig_free(&c);
    assert_int_equal(cd_mconfig_load(&c, path, NULL), 0);
    assert_string_equal(c.db_mode, "local");
    assert_int_equal(c.security_level, CD_SEC_WEAK);
    cd_mconfig_free(&c);
    /* an unknown level: normal, with a warning */
    FILE *f = fopen(path, "w");
    fputs("[default]\nsecurity_level = middle\n", f);
    fclose(f);
    assert_int_equal(cd_mconfig_load(&c, path, &warning), 0);
    assert_int_equal(c.security_level, CD_SEC_NORMAL);
    assert_non_null(warning);
    assert_non_null(strstr(warning, "middle"));
    free(warning);
    cd_mconfig_free(&c);
    unlink(path);
    /* no file: defaults */
    assert_int_equal(cd_mconfig_load(&c, "/nonexistent/config.ini", NULL), 0);
    assert_int_equal(c.security_level, CD_SEC_NORMAL);
    assert_string_equal(c.db_mode, "cache");
    assert_null(c.channel_url);
    cd_mconfig_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test(level_names),
        cmocka_unit_test(loopback),
        cmocka_unit_test(config_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
