/* Fuzzes the hub's handling of its own JSON bodies: the first byte picks a route, the rest is
 * the body, sent over loopback to a real hub (in this process) as an admin with an API token.
 * Routes that start processes or wait on purpose (open_comfy, the login delay) are left out:
 * their bodies go through the same parser. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "hub_harness.h"

static const char *const routes[] = {
    "POST /api/projects", "PATCH /api/projects/1", "POST /api/users", "PATCH /api/users/2", "POST /api/tokens",
    "GET /api/audit?limit=3", "GET /api/projects/1", "POST /api/logout?x=1",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const fuzz_hub *hub = fuzz_hub_start();
    if (size == 0) return 0;
    const char *route = routes[data[0] % (sizeof routes / sizeof routes[0])];
    /* logout would revoke the token every later input needs: send it with a bogus token */
    const char *token = strstr(route, "logout") ? "cdt_bogus" : hub->token;
    char head[512];
    snprintf(head, sizeof head,
             "%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             route, token, size - 1);
    fuzz_exchange_with(hub->loop, hub->port, head, data + 1, size - 1);
    return 0;
}
