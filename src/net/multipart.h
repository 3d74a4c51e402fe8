/* multipart/form-data bodies (RFC 7578), as browsers and ComfyUI clients send them to
 * /upload/image and /upload/mask. The whole body is already in memory (the HTTP server limits
 * it to --max-upload-size), so parsing is a single pass that records where each part's headers
 * and content lie; part contents are not copied. */
#ifndef CD_NET_MULTIPART_H
#define CD_NET_MULTIPART_H

#include <stddef.h>

typedef struct {
    char *name;            /* the form field name (owned), "" if absent */
    char *filename;        /* the file name (owned), or NULL when the part is not a file */
    char *content_type;    /* owned, or NULL */
    const char *data;      /* the content, borrowed from the body */
    size_t len;
} cd_multipart_part;

typedef struct {
    cd_multipart_part *parts; /* owned */
    size_t n;
} cd_multipart;

/* Extracts the boundary from a Content-Type header value ("multipart/form-data;
 * boundary=..."; quoted or not). Returns a new string (caller frees) or NULL when the type is
 * not multipart/form-data or has no usable boundary (1..70 characters). */
char *cd_multipart_boundary(const char *content_type);

/* Parses body. Returns 0 and fills out (free with cd_multipart_free; parts borrow from body, so
 * body must outlive out), or -1 with a message in err. */
int cd_multipart_parse(const char *body, size_t len, const char *boundary, cd_multipart *out, char *err, size_t errlen);
void cd_multipart_free(cd_multipart *mp);

/* The first part named name, or NULL. */
const cd_multipart_part *cd_multipart_get(const cd_multipart *mp, const char *name);

#endif
