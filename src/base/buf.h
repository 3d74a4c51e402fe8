/* A growable byte buffer, always NUL-terminated so that text can be used as a C string. */
#ifndef CD_BASE_BUF_H
#define CD_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
} cd_buf;

#define CD_BUF_INIT {NULL, 0, 0}

/* Each append returns 0, or -1 when memory ran out (the buffer is then unchanged). */
int cd_buf_append(cd_buf *b, const void *data, size_t len);
int cd_buf_append_str(cd_buf *b, const char *s);
int cd_buf_printf(cd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cd_buf_vprintf(cd_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Makes room for extra more bytes and the NUL (cap >= len + extra + 1), for writers that fill
 * data + len themselves and then move len. */
int cd_buf_reserve(cd_buf *b, size_t extra);
/* Removes the first n bytes. */
void cd_buf_consume(cd_buf *b, size_t n);
void cd_buf_reset(cd_buf *b);
/* Hands the data to the caller (who frees it) and empties the buffer. */
char *cd_buf_take(cd_buf *b);
void cd_buf_free(cd_buf *b);

#endif
