/* SHA-1, only for the WebSocket handshake (RFC 6455 fixes it; libsodium has none). Never use it
 * for anything that needs a secure hash. */
#ifndef CD_BASE_SHA1_H
#define CD_BASE_SHA1_H

#include <stddef.h>
#include <stdint.h>

void cd_sha1(const void *data, size_t len, uint8_t out[20]);

#endif
