/* Running one node callback directly, for the built-in packs' unit tests: a registry holding
 * one pack, and run()/run_end() around cd_call_init, cd_call_add_input and execute. */
#ifndef CD_TEST_NODE_CALL_H
#define CD_TEST_NODE_CALL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "engine/call.h"
#include "engine/registry.h"

static int teardown(void **state) {
    cd_registry_free(*state);
    return 0;
}

typedef struct {
    cd_node_call call;
    cd_value *vals[8];
    size_t n;
    int rc;
} run_t;

/* Runs node with (name, value) pairs, values consumed; end with NULL. */
static inline void run(run_t *r, const cd_registry *reg, const char *node, ...) {
    const cd_node_type *t = cd_registry_get(reg, node);
    if (!t) fail_msg("no node %s", node);
    memset(r, 0, sizeof *r);
    cd_call_init(&r->call, t, NULL, "1", 0);
    va_list ap;
    va_start(ap, node);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        cd_value *v = va_arg(ap, cd_value *);
        if (r->n == sizeof r->vals / sizeof r->vals[0]) fail_msg("too many inputs");
        r->vals[r->n++] = v;
        cd_call_add_input(&r->call, name, v, NULL);
    }
    va_end(ap);
    r->rc = t->def->execute(&r->call);
}

static inline void run_end(run_t *r) {
    cd_call_clear(&r->call);
    for (size_t k = 0; k < r->n; k++) cd_value_unref(r->vals[k]);
}

#endif
