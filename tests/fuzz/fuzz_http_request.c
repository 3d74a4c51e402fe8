/* Fuzzes HTTP request parsing and dispatch: the input is the raw bytes a client sends. */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_exchange(NULL, data, size);
    return 0;
}
