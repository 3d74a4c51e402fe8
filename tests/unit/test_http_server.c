/* The HTTP server and the instance's routes, in-process: JSON shapes, /api copies, 404/405,
 * limits (413, 414, 431, 400), keep-alive with pipelining, chunked bodies, CORS and the
 * origin check, and the WebSocket greeting seen through our own WebSocket client. */
#include "support.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <poll.h>
#include <sys/socket.h>

#include "net/ws.h"

static void system_stats_and_features(void **state) {
    (void)state;
    test_server ts;
    test_server_start(&ts, NULL);
    fetch_result r;
    test_fetch(&ts, "GET", "/api/system_stats", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json; charset=utf-8");
    json_t *v = json_loads(r.body.data, 0, NULL);
    assert_non_null(v);
    json_t *sys = json_object_get(v, "system");
    assert_true(json_integer_value(json_object_get(sys, "ram_total")) > 0);
    assert_true(json_integer_value(json_object_get(sys, "ram_free")) <= json_integer_value(json_object_get(sys, "ram_total")));
    assert_string_equal(json_string_value(json_object_get(sys, "os")), "posix");
    assert_string_equal(json_string_value(json_array_get(json_object_get(sys, "argv"), 1)), "serve");
    json_t *dev = json_array_get(json_object_get(v, "devices"), 0);
    assert_string_equal(json_string_value(json_object_get(dev, "type")), "cpu");
    assert_true(json_is_null(json_object_get(dev, "index")));
    json_decref(v);
    fetch_result_free(&r);

    test_fetch(&ts, "GET", "/features", NULL, NULL, &r);
    assert_string_equal(r.body.data, "{\"supports_preview_metadata\": true, \"max_upload_size\": 104857600}");
    fetch_result_free(&r);
    test_server_stop(&ts);
}

static void features_float_when_flag_given(void **state) {
    (void)state;
    test_server ts;
    const char *extra[] = {"--max-upload-size", "1.5", NULL};
    test_server_start(&ts, extra);
    fetch_result r;
    test_fetch(&ts, "GET", "/api/features", NULL, NULL, &r);
    assert_string_equal(r.body.data, "{\"supports_preview_metadata\": true, \"max_upload_size\": 1572864.0}");
    fetch_result_free(&r);
    test_server_stop(&ts);
}

static void not_found_and_method_not_allowed(void **state) {
    (void)state;
    test_server ts;
    test_server_start(&ts, NULL);
    fetch_result r;
    test_fetch(&ts, "GET", "/no/such/route", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    fetch_result_free(&r);
    test_fetch(&ts, "POST", "/system_stats", NULL, "{}", &r);
    assert_int_equal(r.status, 405);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "comfyd"));
    fetch_result_free(&r);
    test_server_stop(&ts);
}

static void embeddings_listed_without_extension(void **state) {
    (void)state;
    test_server ts;
    test_server_start(&ts, NULL);
    char dir[128], f1[160], f2[160], f3[160];
    snprintf(dir, sizeof dir, "%s/models/embeddings/sub", ts.base);
    assert_int_equal(cd_path_mkdirs(dir, 0755), 0);
    snprintf(f1, sizeof f1, "%s/models/embeddings/zeta.safetensors", ts.base);
    snprintf(f2, sizeof f2, "%s/models/embeddings/sub/alpha.pt", ts.base);
    snprintf(f3, sizeof f3, "%s/models/embeddings/notes.txt", ts.base);
    const char *files[] = {f1, f2, f3};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(files[i], "w");
        assert_non_null(f);
        fclose(f);
    }
    fetch_result r;
    test_fetch(&ts, "GET", "/embeddings", NULL, NULL, &r);
    assert_string_equal(r.body.data, "[\"sub/alpha\", \"zeta\"]");
    fetch_result_free(&r);
    test_server_stop(&ts);
}

static void cors_headers_and_options(void **state) {
    (void)state;
    test_server ts;
    const char *extra[] = {"--enable-cors-header", NULL};
    test_server_start(&ts, extra);
    fetch_result r;
    test_fetch(&ts, "OPTIONS", "/prompt", "Origin: http://elsewhere.example\r\n", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    fetch_result_free(&r);
    test_server_stop(&ts);
}

static void origin_check_without_cors(void **state) {
    (void)state;
    test_server ts;
    test_server_start(&ts, NULL);
    fetch_result r;
    /* cd_http_fetch sends Host: 127.0.0.1:<port> */
    test_fetch(&ts, "GET", "/features", "Origin: http://evil.example\r\n", NULL, &r);
    assert_int_equal(r.status, 403);
    fetch_result_free(&r);
    test_fetch(&ts, "GET", "/features", "Origin: http://127.0.0.1\r\n", NULL, &r);
    assert_int_equal(r.status, 200); /* no port on the origin: hostnames compared */
    fetch_result_free(&r);
    char origin[80];
    snprintf(origin, sizeof origin, "Origin: http://127.0.0.1:%d\r\n", ts.port + 1);
    test_fetch(&ts, "GET", "/features", origin, NULL, &r);
    assert_int_equal(r.status, 403);
    fetch_result_free(&r);
    test_server_stop(&ts);
}

/* ---- raw sockets: the bytes the server answers with ---- */

typedef struct {
    test_server *ts;
    int fd;
    cd_buf in;
} raw_client;

static void raw_connect(raw_client *c, test_server *ts) {
    c->ts = ts;
    c->in = (cd_buf)CD_BUF_INIT;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ts->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
}

static void raw_send(raw_client *c, const char *data, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
        if (n < 0) break; /* the server may close early (413) */
        off += (size_t)n;
        uv_run(&c->ts->loop, UV_RUN_NOWAIT);
    }
}

/* Reads until the server closes the connection or until `until` appears; runs the loop. */
static void raw_read(raw_client *c, const char *until) {
    uint64_t start = uv_now(&c->ts->loop);
    for (;;) {
        uv_run(&c->ts->loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 1) > 0) {
            char buf[65536];
            ssize_t n = recv(c->fd, buf, sizeof buf, 0);
            if (n <= 0) return;
            cd_buf_append(&c->in, buf, (size_t)n);
            if (until && strstr(c->in.data, until)) return;
        }
        uv_update_time(&c->ts->loop);
        if (uv_now(&c->ts->loop) - start > 10000) fail_msg("raw read timed out");
    }
}

static void raw_close(raw_client *c) {
    close(c->fd);
    cd_buf_free(&c->in);
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void pipelined_requests_answered_in_order(void **state) {
    (void)state;
    test_server ts;
    test_server_start(&ts, NULL);
    raw_client c;
    raw_connect(&c, &ts);
    const char *reqs = "GET /features HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /features HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                       "GET /api/features HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    raw_send(&c, reqs, strlen(reqs));
    raw_read(&c, NULL);
    const char *a = strstr(c.in.data, "HTTP/1.1 200");
    const char *b = strstr(c.in.data, "HTTP/1.1 404");
    const char *d = strstr(c.in.data, "HTTP/1.1 405");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(d);
    assert_true(a < b && b < d);
    assert_int_equal(count(c.in.data, "HTTP/1.1 200"), 2);
    assert_non_null(strstr(d, "Connection: close"));
    raw_close(&c);
    test_server_stop(&ts);
}

static void expect_status(test_server *ts, const char *request, size_t len, const char *status_line) {
    raw_client c;
    raw_connect(&c, ts);
    raw_send(&c, request, len);
    raw_read(&c, "\r\n\r\n");
    if (!c.in.data || strncmp(c.in.data, status_line, strlen(status_line)) != 0)
        fail_msg("expected %s, got %.60s", status_line, c.in.data ? c.in.data : "(nothing)");
    raw_close(&c);
}

static void limits(void **state) {
    (void)state;
    test_server ts;
    const char *extra[] = {"--max-upload-size", "1", NULL};
    test_server_start(&ts, extra);
    /* 413 from Content-Length alone */
    const char *big = "POST /prompt HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n";
    expect_status(&ts, big, strlen(big), "HTTP/1.1 413");
    /* 413 from a chunked body that grows past the limit */
    cd_buf chunked = CD_BUF_INIT;
    cd_buf_append_str(&chunked, "POST /prompt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[65536 + 16];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 20; i++) {
        cd_buf_append_str(&chunked, "10000\r\n");
        cd_buf_append(&chunked, chunk, 65536);
        cd_buf_append_str(&chunked, "\r\n");
    }
    expect_status(&ts, chunked.data, chunked.len, "HTTP/1.1 413");
    cd_buf_free(&chunked);
    /* 414: a 9 KiB URL */
    cd_buf url = CD_BUF_INIT;
    cd_buf_append_str(&url, "GET /");
    for (int i = 0; i < 9216; i++) cd_buf_append(&url, "a", 1);
    cd_buf_append_str(&url, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_status(&ts, url.data, url.len, "HTTP/1.1 414");
    cd_buf_free(&url);
    /* 431: one 9 KiB header, then 70 KiB of small ones */
    cd_buf h = CD_BUF_INIT;
    cd_buf_append_str(&h, "GET / HTTP/1.1\r\nX-Big: ");
    for (int i = 0; i < 9216; i++) cd_buf_append(&h, "b", 1);
    cd_buf_append_str(&h, "\r\n\r\n");
    expect_status(&ts, h.data, h.len, "HTTP/1.1 431");
    cd_buf_reset(&h);
    cd_buf_append_str(&h, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 1000; i++) cd_buf_printf(&h, "X-H%d: %070d\r\n", i, i);
    cd_buf_append_str(&h, "\r\n");
    expect_status(&ts, h.data, h.len, "HTTP/1.1 431");
    cd_buf_free(&h);
    /* 400: garbage */
    expect_status(&ts, "HELLO\r\n\r\n", 9, "HTTP/1.1 400");
    /* and the server is still fine */
    fetch_result r;
    test_fetch(&ts, "GET", "/features", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    fetch_result_free(&r);
    test_server_stop(&ts);
}

/* ---- WebSocket through our own client ---- */

typedef struct {
    int connected, closed, messages;
    cd_ws *ws;
    char first[512], second[512];
    uint16_t close_code;
} ws_state;

static void ws_on_text(cd_ws *ws, const char *data, size_t len, void *user) {
    (void)ws;
    ws_state *s = user;
    char *slot = s->messages == 0 ? s->first : s->second;
    if (s->messages < 2) snprintf(slot, 512, "%.*s", (int)len, data);
    s->messages++;
}

static void ws_on_close(cd_ws *ws, uint16_t code, void *user) {
    (void)ws;
    ws_state *s = user;
    s->closed = 1;
    s->close_code = code;
}

static void ws_on_connect(cd_ws *ws, const char *error, void *user) {
    ws_state *s = user;
    if (error) fail_msg("ws connect: %s", error);
    s->ws = ws;
    s->connected = 1;
}

static void websocket_greeting_and_feature_flags(void **state) {
    (void)state;
    test_server ts;
    test_server_start(&ts, NULL);
    ws_state s = {0};
    cd_ws_callbacks cbs = {.on_text = ws_on_text, .on_close = ws_on_close};
    assert_int_equal(cd_ws_connect(&ts.loop, "127.0.0.1", ts.port, "/ws?clientId=abc123", NULL, NULL, &cbs, 5000,
                                   ws_on_connect, &s),
                     0);
    test_run_until(&ts, &s.connected);
    int one = 0;
    while (s.messages < 1) {
        test_run_until(&ts, &one);
        break;
    }
    /* wait for the greeting */
    for (int i = 0; i < 10000 && s.messages < 1; i++) {
        uv_run(&ts.loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    assert_string_equal(s.first, "{\"type\": \"status\", \"data\": {\"status\": {\"exec_info\": {\"queue_remaining\": 0}}, "
                                 "\"sid\": \"abc123\"}}");
    const char *flags = "{\"type\": \"feature_flags\", \"data\": {\"supports_preview_metadata\": true}}";
    assert_int_equal(cd_ws_send_text(s.ws, flags, strlen(flags)), 0);
    for (int i = 0; i < 10000 && s.messages < 2; i++) {
        uv_run(&ts.loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    assert_string_equal(s.second, "{\"type\": \"feature_flags\", \"data\": {\"supports_preview_metadata\": true, "
                                  "\"max_upload_size\": 104857600}}");
    cd_ws_close(s.ws, 1000, "bye");
    test_run_until(&ts, &s.closed);
    assert_int_equal(s.close_code, 1000);
    test_server_stop(&ts);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(system_stats_and_features),
        cmocka_unit_test(features_float_when_flag_given),
        cmocka_unit_test(not_found_and_method_not_allowed),
        cmocka_unit_test(embeddings_listed_without_extension),
        cmocka_unit_test(cors_headers_and_options),
        cmocka_unit_test(origin_check_without_cors),
        cmocka_unit_test(pipelined_requests_answered_in_order),
        cmocka_unit_test(limits),
        cmocka_unit_test(websocket_greeting_and_feature_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
