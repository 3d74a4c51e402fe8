#include "hub_harness.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "hub/auth.h"
#include "hub/hub.h"
#include "hub/session.h"

static struct {
    int started;
    uv_loop_t loop;
    cd_hub_config cfg;
    cd_hub hub;
    char token[64];
    fuzz_hub out;
} h;

const fuzz_hub *fuzz_hub_start(void) {
    if (h.started) return &h.out;
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
    cd_store_user u = {.role = CD_ROLE_STUDENT};
    snprintf(u.name, sizeof u.name, "student");
    if (cd_auth_hash_password_now("student-password", u.password_hash, sizeof u.password_hash) < 0 ||
        h.hub.store->ops->user_create(h.hub.store, &u) < 0)
        abort();
    cd_store_project p = {.owner_id = u.id};
    snprintf(p.name, sizeof p.name, "fuzzed");
    if (h.hub.store->ops->project_create(h.hub.store, &p) < 0) abort();
    if (cd_hub_session_create(&h.hub, 1, CD_TOKEN_API, "fuzz", 0, h.token, sizeof h.token) < 0) abort();
    h.out = (fuzz_hub){.loop = &h.loop, .port = cd_http_server_port(h.hub.http), .token = h.token};
    return &h.out;
}
