/* Fuzzes the multipart/form-data parser: the first line of the input is the Content-Type
 * header value (so boundary extraction is fuzzed too), the rest the body. Every part found
 * must lie inside the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    char *ct = strndup((const char *)data, hlen);
    if (!ct) return 0;
    char *boundary = cd_multipart_boundary(ct);
    free(ct);
    if (!boundary) return 0;
    size_t blen = nl ? size - hlen - 1 : 0;
    /* A copy of exactly the body, so that ASan sees any read past its end. */
    char *body = malloc(blen ? blen : 1);
    if (!body) {
        free(boundary);
        return 0;
    }
    if (blen) memcpy(body, nl + 1, blen);
    cd_multipart mp;
    char err[128];
    if (cd_multipart_parse(body, blen, boundary, &mp, err, sizeof err) == 0) {
        for (size_t i = 0; i < mp.n; i++) {
            const cd_multipart_part *p = &mp.parts[i];
            if (p->data < body || p->data + p->len > body + blen) abort();
            if (!p->name) abort();
            (void)cd_multipart_get(&mp, p->name);
        }
        cd_multipart_free(&mp);
    }
    free(body);
    free(boundary);
    return 0;
}
