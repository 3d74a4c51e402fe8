/* Helpers for unit tests that run a real instance in-process on its own loop and talk to it
 * with the project's own HTTP and WebSocket clients or with raw sockets. */
#ifndef CD_TEST_SUPPORT_H
#define CD_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/path.h"
#include "net/http_client.h"
#include "server/instance.h"

typedef struct {
    uv_loop_t loop;
    cd_serve_options opts;
    cd_instance inst;
    char base[64];
    int port;
} test_server;

/* Starts an instance on 127.0.0.1, a free port, a fresh temp base directory; extra argv
 * (NULL-terminated) as on the command line. */
static inline void test_server_start(test_server *ts, const char *const *extra) {
    memset(ts, 0, sizeof *ts);
    snprintf(ts->base, sizeof ts->base, "/tmp/cd-unit-XXXXXX");
    assert_non_null(mkdtemp(ts->base));
    static char *argv[64];
    int argc = 0;
    argv[argc++] = "comfyd";
    argv[argc++] = "serve";
    argv[argc++] = "--port";
    argv[argc++] = "0";
    argv[argc++] = "--dont-print-server";
    argv[argc++] = "--base-directory";
    argv[argc++] = ts->base;
    for (size_t i = 0; extra && extra[i]; i++) argv[argc++] = (char *)extra[i];
    char err[256];
    assert_int_equal(cd_serve_options_parse(&ts->opts, argc, argv, 2, err, sizeof err), 0);
    ts->opts.handle_signals = false;
    assert_int_equal(uv_loop_init(&ts->loop), 0);
    int rc = cd_instance_start(&ts->inst, &ts->opts, &ts->loop, err, sizeof err);
    if (rc != 0) fail_msg("start: %s", err);
    ts->port = cd_instance_port(&ts->inst);
    assert_true(ts->port > 0);
}

static inline void test_server_stop(test_server *ts) {
    cd_instance_destroy(&ts->inst);
    uv_run(&ts->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&ts->loop), 0);
    cd_serve_options_free(&ts->opts);
    cd_path_remove_tree(ts->base);
}

/* Runs the loop until *flag is set (or 10 s pass, which fails the test). */
static inline void test_run_until(test_server *ts, const int *flag) {
    uint64_t start = uv_now(&ts->loop);
    while (!*flag) {
        uv_run(&ts->loop, UV_RUN_NOWAIT);
        if (!*flag) usleep(200);
        uv_update_time(&ts->loop);
        if (uv_now(&ts->loop) - start > 10000) fail_msg("timed out waiting for the loop");
    }
}

typedef struct {
    int done;
    char *error;
    int status;
    cd_buf body;
    char content_type[128];
} fetch_result;

static inline void on_fetch(const char *error, const cd_http_client_response *res, void *user) {
    fetch_result *r = user;
    r->done = 1;
    if (error) {
        r->error = strdup(error);
        return;
    }
    r->status = res->status;
    cd_buf_append(&r->body, res->body.data ? res->body.data : "", res->body.len);
    cd_http_client_header(res, "content-type", r->content_type, sizeof r->content_type);
}

/* A whole request through cd_http_fetch. Free r->body and r->error after. */
static inline void test_fetch(test_server *ts, const char *method, const char *target, const char *headers,
                              const char *body, fetch_result *r) {
    memset(r, 0, sizeof *r);
    cd_http_client_request req = {.method = method, .host = "127.0.0.1", .port = ts->port, .target = target,
                                  .headers = headers, .body = body, .body_len = body ? strlen(body) : 0,
                                  .timeout_ms = 5000};
    assert_int_equal(cd_http_fetch(&ts->loop, &req, on_fetch, r), 0);
    test_run_until(ts, &r->done);
    if (r->error) fail_msg("fetch %s: %s", target, r->error);
}

static inline void fetch_result_free(fetch_result *r) {
    cd_buf_free(&r->body);
    free(r->error);
}

#endif
