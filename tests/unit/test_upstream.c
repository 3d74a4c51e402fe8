/* The upstream pool's keep-alive: each upstream keeps its own idle connections.
 *
 * Tiny HTTP servers on loopback count the connections they accept and answer every request
 * with a fixed keep-alive response; rounds of concurrent requests go through one pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "net/upstream.h"
#include "net/upstream_fetch.h"

#define SERVERS 3
#define PER_ROUND 2 /* requests to each server at once */
#define ROUNDS 4

typedef struct {
    uv_tcp_t listener;
    int port;
    int accepted;
    int answered;
} server;

typedef struct {
    uv_tcp_t tcp;
    server *srv;
    char seen[4]; /* the last bytes read, to find "\r\n\r\n" across reads */
} server_conn;

/* every accepted connection, freed once the loop has closed them all */
static server_conn *conns[64];
static int nconns;

static void free_conns(void) {
    for (int i = 0; i < nconns; i++) free(conns[i]);
    nconns = 0;
}

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void on_written(uv_write_t *w, int status) {
    (void)status;
    free(w);
}

/* The requests carry no body here: each blank line ends one, which gets one answer. */
static void on_server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    server_conn *sc = s->data;
    for (ssize_t i = 0; i < n; i++) {
        memmove(sc->seen, sc->seen + 1, 3);
        sc->seen[3] = buf->base[i];
        if (!memcmp(sc->seen, "\r\n\r\n", 4)) {
            uv_write_t *w = malloc(sizeof *w);
            uv_buf_t b = uv_buf_init((char *)RESPONSE, sizeof RESPONSE - 1);
            uv_write(w, s, &b, 1, on_written);
            sc->srv->answered++;
        }
    }
    free(buf->base);
    if (n < 0) uv_close((uv_handle_t *)s, NULL);
}

static void on_connection(uv_stream_t *l, int status) {
    assert_int_equal(status, 0);
    server *srv = l->data;
    assert_true(nconns < 64);
    server_conn *sc = calloc(1, sizeof *sc);
    conns[nconns++] = sc;
    sc->srv = srv;
    uv_tcp_init(l->loop, &sc->tcp);
    sc->tcp.data = sc;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&sc->tcp), 0);
    srv->accepted++;
    uv_read_start((uv_stream_t *)&sc->tcp, alloc_cb, on_server_read);
}

static void server_start(uv_loop_t *loop, server *srv) {
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    assert_int_equal(uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listener, 64, on_connection), 0);
    struct sockaddr_storage name;
    int len = sizeof name;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&name, &len);
    srv->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
}

static int pending, failures;

static void on_fetched(const char *error, const cd_http_client_response *res, void *user) {
    (void)user;
    if (error || res->status != 200 || res->body.len != 2) failures++;
    pending--;
}

static void close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Rounds of PER_ROUND requests at once to each of SERVERS upstreams, through a pool that keeps
 * PER_ROUND idle per upstream: after the first round every request reuses a connection, though
 * the pool holds SERVERS * PER_ROUND idle in all. */
static void test_each_upstream_keeps_its_own(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    server srv[SERVERS] = {0};
    for (int i = 0; i < SERVERS; i++) server_start(&loop, &srv[i]);
    cd_upstream_pool *pool = cd_upstream_pool_new(&loop, PER_ROUND);
    assert_non_null(pool);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < SERVERS; i++)
            for (int k = 0; k < PER_ROUND; k++) {
                cd_http_client_request r = {.method = "GET", .host = "127.0.0.1", .port = srv[i].port,
                                            .target = "/x", .timeout_ms = 5000};
                assert_int_equal(cd_upstream_fetch(pool, &r, on_fetched, NULL), 0);
                pending++;
            }
        while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
        assert_int_equal(cd_upstream_pool_idle_count(pool), SERVERS * PER_ROUND);
    }
    assert_int_equal(failures, 0);
    for (int i = 0; i < SERVERS; i++) {
        assert_int_equal(srv[i].answered, ROUNDS * PER_ROUND);
        assert_int_equal(srv[i].accepted, PER_ROUND);
    }
    cd_upstream_pool_free(pool);
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free_conns();
}

/* Past max_idle for one upstream, the extra connections close; the others' stay. */
static void test_extra_connections_close(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    server a = {0}, b = {0};
    server_start(&loop, &a);
    server_start(&loop, &b);
    cd_upstream_pool *pool = cd_upstream_pool_new(&loop, 1);
    for (int k = 0; k < 3; k++) {
        cd_http_client_request r = {.method = "GET", .host = "127.0.0.1", .port = a.port, .target = "/", .timeout_ms = 5000};
        assert_int_equal(cd_upstream_fetch(pool, &r, on_fetched, NULL), 0);
        pending++;
    }
    cd_http_client_request r = {.method = "GET", .host = "127.0.0.1", .port = b.port, .target = "/", .timeout_ms = 5000};
    assert_int_equal(cd_upstream_fetch(pool, &r, on_fetched, NULL), 0);
    pending++;
    while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(failures, 0);
    assert_int_equal(cd_upstream_pool_idle_count(pool), 2); /* one for a, one for b */
    /* the next request to each reuses its one */
    cd_http_client_request again_a = {.method = "GET", .host = "127.0.0.1", .port = a.port, .target = "/", .timeout_ms = 5000};
    cd_http_client_request again_b = {.method = "GET", .host = "127.0.0.1", .port = b.port, .target = "/", .timeout_ms = 5000};
    assert_int_equal(cd_upstream_fetch(pool, &again_a, on_fetched, NULL), 0);
    assert_int_equal(cd_upstream_fetch(pool, &again_b, on_fetched, NULL), 0);
    pending += 2;
    while (pending > 0) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(failures, 0);
    assert_int_equal(a.accepted, 3);
    assert_int_equal(b.accepted, 1);
    assert_int_equal(a.answered, 4);
    cd_upstream_pool_shut(pool);
    assert_int_equal(cd_upstream_pool_idle_count(pool), 0);
    cd_upstream_pool_free(pool);
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free_conns();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_upstream_keeps_its_own),
        cmocka_unit_test(test_extra_connections_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
