/* The fuzz targets drive a real instance, started once per process on its own loop: each input
 * goes over a loopback TCP connection, so the whole path (socket, parser, limits, router,
 * handlers, WebSocket framing) is exercised, not a copy of it. */
#ifndef CD_FUZZ_HARNESS_H
#define CD_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Sends prefix (may be NULL) then data, half-closes, and reads until the server hangs up,
 * running the server's loop meanwhile. */
void fuzz_exchange(const char *prefix, const uint8_t *data, size_t size);
/* The same against any server on this loop and port (the hub's fuzz target starts its own). */
#include <uv.h>
void fuzz_exchange_with(uv_loop_t *loop, int port, const char *prefix, const uint8_t *data, size_t size);

#endif
