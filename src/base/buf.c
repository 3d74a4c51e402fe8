#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(cd_buf *b, size_t extra) {
    if (extra > ((size_t)-1) / 2 - b->len) return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int cd_buf_reserve(cd_buf *b, size_t extra) { return reserve(b, extra); }

int cd_buf_append(cd_buf *b, const void *data, size_t len) {
    if (reserve(b, len) < 0) return -1;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cd_buf_append_str(cd_buf *b, const char *s) { return cd_buf_append(b, s, strlen(s)); }

int cd_buf_vprintf(cd_buf *b, const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0 || reserve(b, (size_t)n) < 0) return -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int cd_buf_printf(cd_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = cd_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void cd_buf_consume(cd_buf *b, size_t n) {
    if (n >= b->len) {
        cd_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void cd_buf_reset(cd_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

char *cd_buf_take(cd_buf *b) {
    char *p = b->data;
    if (!p) p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void cd_buf_free(cd_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
