/* Fuzzes the WebSocket path: a valid upgrade request, then the input as the client's frames
 * (framing, masking, fragments, control frames, close codes, the JSON of text messages). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_exchange("GET /ws?clientId=fuzz HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                  data, size);
    return 0;
}
