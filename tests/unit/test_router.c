/* The router: literal and parameter segments, /api copies, 405 versus 404, HEAD as GET,
 * percent-decoding of parameters, first match wins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "net/router.h"

static int marker_a, marker_b, marker_c;
static void fn(cd_http_req *req, void *ctx) { (void)req; (void)ctx; }

static cd_router *make(void) {
    cd_router *r = cd_router_new();
    assert_int_equal(cd_router_add_api(r, "GET", "/system_stats", fn, &marker_a), 0);
    assert_int_equal(cd_router_add_api(r, "GET", "/object_info/{node_class}", fn, &marker_b), 0);
    assert_int_equal(cd_router_add_api(r, "POST", "/userdata/{file}/move/{dest}", fn, &marker_c), 0);
    assert_int_equal(cd_router_add(r, "GET", "/files/{path*}", fn, &marker_a), 0);
    assert_int_equal(cd_router_add_api(r, "GET", "/", fn, &marker_c), 0);
    return r;
}

static void literal_and_api_prefix(void **state) {
    (void)state;
    cd_router *r = make();
    cd_route_match m;
    assert_int_equal(cd_router_match(r, "GET", "/system_stats", &m), CD_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &marker_a);
    assert_int_equal(cd_router_match(r, "GET", "/api/system_stats", &m), CD_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &marker_a);
    assert_int_equal(cd_router_match(r, "GET", "/system_stats/", &m), CD_ROUTE_NOT_FOUND);
    assert_int_equal(cd_router_match(r, "GET", "/system_statsx", &m), CD_ROUTE_NOT_FOUND);
    assert_int_equal(cd_router_match(r, "GET", "/api/api/system_stats", &m), CD_ROUTE_NOT_FOUND);
    assert_int_equal(cd_router_match(r, "GET", "", &m), CD_ROUTE_NOT_FOUND);
    cd_router_free(r);
}

static void root_and_api_root(void **state) {
    (void)state;
    cd_router *r = make();
    cd_route_match m;
    assert_int_equal(cd_router_match(r, "GET", "/", &m), CD_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &marker_c);
    assert_int_equal(cd_router_match(r, "GET", "/api/", &m), CD_ROUTE_FOUND);
    assert_int_equal(cd_router_match(r, "GET", "/api", &m), CD_ROUTE_NOT_FOUND);
    cd_router_free(r);
}

static void parameters_are_decoded(void **state) {
    (void)state;
    cd_router *r = make();
    cd_route_match m;
    assert_int_equal(cd_router_match(r, "POST", "/api/userdata/workflows%2Fa%20b.json/move/c.json", &m), CD_ROUTE_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.names[0], "file");
    assert_string_equal(m.values[0], "workflows/a b.json");
    assert_string_equal(m.names[1], "dest");
    assert_string_equal(m.values[1], "c.json");
    cd_route_match_clear(&m);
    /* an empty segment does not match a parameter */
    assert_int_equal(cd_router_match(r, "GET", "/object_info/", &m), CD_ROUTE_NOT_FOUND);
    /* a malformed escape does not match */
    assert_int_equal(cd_router_match(r, "GET", "/object_info/%zz", &m), CD_ROUTE_NOT_FOUND);
    assert_int_equal(cd_router_match(r, "GET", "/files/a/b/c.txt", &m), CD_ROUTE_FOUND);
    assert_string_equal(m.values[0], "a/b/c.txt");
    cd_route_match_clear(&m);
    cd_router_free(r);
}

static void method_not_allowed_lists_methods(void **state) {
    (void)state;
    cd_router *r = make();
    cd_route_match m;
    assert_int_equal(cd_router_match(r, "POST", "/system_stats", &m), CD_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET");
    assert_int_equal(cd_router_match(r, "HEAD", "/system_stats", &m), CD_ROUTE_FOUND);
    assert_int_equal(cd_router_match(r, "DELETE", "/nothing", &m), CD_ROUTE_NOT_FOUND);
    cd_router_free(r);
}

static void first_registered_wins(void **state) {
    (void)state;
    cd_router *r = cd_router_new();
    cd_router_add(r, "GET", "/a/{x}", fn, &marker_a);
    cd_router_add(r, "GET", "/a/fixed", fn, &marker_b);
    cd_route_match m;
    assert_int_equal(cd_router_match(r, "GET", "/a/fixed", &m), CD_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &marker_a);
    cd_route_match_clear(&m);
    cd_router_free(r);
}

static void bad_patterns_are_refused(void **state) {
    (void)state;
    cd_router *r = cd_router_new();
    assert_int_equal(cd_router_add(r, "GET", "no-slash", fn, NULL), -1);
    assert_int_equal(cd_router_add(r, "GET", "/{rest*}/more", fn, NULL), -1);
    assert_int_equal(cd_router_add(r, "AVERYLONGMETHODNAME", "/x", fn, NULL), -1);
    cd_router_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_and_api_prefix),   cmocka_unit_test(root_and_api_root),
        cmocka_unit_test(parameters_are_decoded),   cmocka_unit_test(method_not_allowed_lists_methods),
        cmocka_unit_test(first_registered_wins),    cmocka_unit_test(bad_patterns_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
