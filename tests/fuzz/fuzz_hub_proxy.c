/* Fuzzes the proxy's request handling: the input is what follows "/comfyui/" in a request of a
 * logged-in admin (the rest of the target, more header lines, a body), sent over loopback to a
 * real hub in this process. The first byte picks the method. Project 1 of user "student" exists
 * and is not running, so paths reach routing, access checks, redirects, body limits and the
 * streamed-body handling of the HTTP server, and end in their answers (404, 403, 301, 413, 503). */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "hub_harness.h"

static const char *const methods[] = {"GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const fuzz_hub *hub = fuzz_hub_start();
    if (size == 0) return 0;
    const char *method = methods[data[0] % (sizeof methods / sizeof methods[0])];
    char head[256];
    snprintf(head, sizeof head, "%s /comfyui/", method);
    /* the fuzzed bytes carry the rest of the target; the request line ends with them, then the
     * Authorization line the fuzzer cannot know comes first among the headers */
    const uint8_t *nl = memchr(data + 1, '\n', size - 1);
    size_t target_len = nl ? (size_t)(nl - data - 1) : size - 1;
    char req[512];
    snprintf(req, sizeof req, "%s%.*s HTTP/1.1\r\nAuthorization: Bearer %s\r\n", head,
             (int)(target_len < 300 ? target_len : 300), (const char *)data + 1, hub->token);
    const uint8_t *rest = nl ? nl + 1 : data + size;
    fuzz_exchange_with(hub->loop, hub->port, req, rest, (size_t)(data + size - rest));
    return 0;
}
