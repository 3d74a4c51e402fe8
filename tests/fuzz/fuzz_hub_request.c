/* Fuzzes the hub's handling of its own JSON bodies: the first byte picks a route, the rest is
 * the body, sent over loopback to a real hub (in this process) as an admin with an API token.
 * Routes that start processes or wait on purpose (open_comfy, the login delay) are left out:
 * their bodies go through the same parser. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "harness.h"
#include "hub/auth.h"
#include "hub/hub.h"
#include "hub/session.h"

static struct {
    int started;
    uv_loop_t loop;
    cd_hub_config cfg;
    cd_hub hub;
    int port;
    char token[64];
} h;

static void start_once(void) {
    if (h.started) return;
    h.started = 1;
    if (sodium_init() < 0) abort();
    cd_log_setup(CD_LOG_ERROR, false);
    char dir[] = "/tmp/cd-fuzz-hub-XXXXXX";
    if (!mkdtemp(dir)) abort();
    setenv("COMFYD_ADMIN_PASSWORD", "fuzz-admin-password", 1);
    char *argv[] = {"comfyd", "hub", "--port", "0", "--data-dir", dir, NULL};
    char err[512];
    if (cd_hub_config_load(&h.cfg, 6, argv, 2, stdout, err, sizeof err) != 0) abort();
    uv_loop_init(&h.loop);
    if (cd_hub_start(&h.hub, &h.cfg, &h.loop, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz hub: %s\n", err);
        abort();
    }
    h.port = cd_http_server_port(h.hub.http);
    /* user 1 is the admin; user 2 a student whose record PATCH may change freely */
    cd_store_user u = {.role = CD_ROLE_STUDENT};
    snprintf(u.name, sizeof u.name, "student");
    if (cd_auth_hash_password_now("student-password", u.password_hash, sizeof u.password_hash) < 0 ||
        h.hub.store->ops->user_create(h.hub.store, &u) < 0)
        abort();
    cd_store_project p = {.owner_id = u.id};
    snprintf(p.name, sizeof p.name, "fuzzed");
    if (h.hub.store->ops->project_create(h.hub.store, &p) < 0) abort();
    if (cd_hub_session_create(&h.hub, 1, CD_TOKEN_API, "fuzz", 0, h.token, sizeof h.token) < 0) abort();
}

static const char *const routes[] = {
    "POST /api/projects", "PATCH /api/projects/1", "POST /api/users", "PATCH /api/users/2", "POST /api/tokens",
    "GET /api/audit?limit=3", "GET /api/projects/1", "POST /api/logout?x=1",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    start_once();
    if (size == 0) return 0;
    const char *route = routes[data[0] % (sizeof routes / sizeof routes[0])];
    /* logout would revoke the token every later input needs: send it with a bogus token */
    const char *token = strstr(route, "logout") ? "cdt_bogus" : h.token;
    char head[512];
    snprintf(head, sizeof head,
             "%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             route, token, size - 1);
    fuzz_exchange_with(&h.loop, h.port, head, data + 1, size - 1);
    return 0;
}
