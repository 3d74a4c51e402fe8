/* Differential fuzzing of cd_json_parse: on any input it must agree with its reference
 * (cd_json_loadb_bigint, or json_loadb itself under CD_JSON_REJECT_BIGINT), with and without
 * JSON_DECODE_ANY: both refuse, or both give the same tree (key order, big-integer marks,
 * reals bit for bit). A disagreement aborts, leaving the input as the artifact. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "json_same.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const size_t flags[] = {0, JSON_DECODE_ANY, CD_JSON_REJECT_BIGINT, JSON_DECODE_ANY | CD_JSON_REJECT_BIGINT};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (!json_parse_agrees((const char *)data, size, flags[i])) {
            fprintf(stderr, "fuzz_json: cd_json_parse disagrees with its reference (flags %#zx)\n", flags[i]);
            abort();
        }
    }
    return 0;
}
