#include "net/multipart.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PARTS 256
#define MAX_HEADER_BYTES 16384

char *cd_multipart_boundary(const char *ct) {
    if (!ct) return NULL;
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, "multipart/form-data", 19) != 0) return NULL;
    const char *p = ct + 19;
    while (*p) {
        while (*p == ';' || *p == ' ' || *p == '\t') p++;
        const char *key = p;
        while (*p && *p != '=' && *p != ';') p++;
        size_t klen = (size_t)(p - key);
        while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t')) klen--;
        if (*p != '=') continue;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        char val[80];
        size_t vlen = 0;
        bool ok = true;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                if (vlen < sizeof val - 1) val[vlen++] = *p;
                else ok = false;
                p++;
            }
            if (*p == '"') p++;
            else ok = false;
        } else {
            while (*p && *p != ';' && *p != ' ' && *p != '\t') {
                if (vlen < sizeof val - 1) val[vlen++] = *p;
                else ok = false;
                p++;
            }
        }
        val[vlen] = '\0';
        if (klen == 8 && strncasecmp(key, "boundary", 8) == 0) {
            if (!ok || vlen == 0 || vlen > 70) return NULL;
            return strdup(val);
        }
    }
    return NULL;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Reads one parameter value of a header (token or quoted string) starting at *pp. Returns a new
 * string or NULL on OOM / malformed quoting. */
static char *read_value(const char **pp, const char *end) {
    const char *p = *pp;
    size_t cap = (size_t)(end - p) + 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t n = 0;
    if (p < end && *p == '"') {
        p++;
        while (p < end && *p != '"') {
            /* Browsers escape '"' as %22 and send backslashes raw, so a backslash only
             * escapes a quote or another backslash (as aiohttp reads it). */
            if (*p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\')) p++;
            out[n++] = *p++;
        }
        if (p >= end) {
            free(out);
            return NULL;
        }
        p++;
    } else {
        while (p < end && *p != ';') out[n++] = *p++;
        while (n && (out[n - 1] == ' ' || out[n - 1] == '\t')) n--;
    }
    out[n] = '\0';
    if (strlen(out) != n) { /* a raw NUL in a header value */
        free(out);
        return NULL;
    }
    *pp = p;
    return out;
}

/* RFC 5987 ext-value: charset'lang'percent-encoded. Only UTF-8 (and ASCII) are decoded; *out
 * stays NULL for another charset (the plain filename then counts). Returns -1 for an encoded
 * NUL, which would cut the name short. */
static int decode_ext_value(const char *v, char **out_name) {
    *out_name = NULL;
    const char *q1 = strchr(v, '\'');
    const char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
    if (!q2) return 0;
    size_t cs = (size_t)(q1 - v);
    if (!((cs == 5 && strncasecmp(v, "utf-8", 5) == 0) || (cs == 8 && strncasecmp(v, "us-ascii", 8) == 0)))
        return 0;
    const char *s = q2 + 1;
    char *out = malloc(strlen(s) + 1);
    if (!out) return -1;
    size_t n = 0;
    for (; *s; s++) {
        if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            out[n++] = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
    if (strlen(out) != n) {
        free(out);
        return -1;
    }
    *out_name = out;
    return 0;
}

/* Parses a Content-Disposition value: form-data; name="x"; filename="y" (filename* wins). */
static int parse_disposition(const char *v, const char *end, cd_multipart_part *part) {
    const char *p = v;
    while (p < end && *p != ';') p++; /* the disposition type itself */
    char *ext_filename = NULL;
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t')) p++;
        const char *key = p;
        while (p < end && *p != '=' && *p != ';') p++;
        size_t klen = (size_t)(p - key);
        while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t')) klen--;
        if (p >= end || *p != '=') continue;
        p++;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        char *val = read_value(&p, end);
        if (!val) {
            free(ext_filename);
            return -1;
        }
        if (klen == 4 && strncasecmp(key, "name", 4) == 0 && !part->name) {
            part->name = val;
        } else if (klen == 8 && strncasecmp(key, "filename", 8) == 0 && !part->filename) {
            part->filename = val;
        } else if (klen == 9 && strncasecmp(key, "filename*", 9) == 0 && !ext_filename) {
            int rc = decode_ext_value(val, &ext_filename);
            free(val);
            if (rc < 0) return -1;
        } else {
            free(val);
        }
    }
    if (ext_filename) {
        free(part->filename);
        part->filename = ext_filename;
    }
    return 0;
}

static const char *find(const char *hay, size_t hlen, const char *needle, size_t nlen) {
    return memmem(hay, hlen, needle, nlen);
}

/* Parses the header block [p, end) of one part. */
static int parse_headers(const char *p, const char *end, cd_multipart_part *part) {
    while (p < end) {
        const char *eol = find(p, (size_t)(end - p), "\r\n", 2);
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon) {
            size_t nlen = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < line_end && (*v == ' ' || *v == '\t')) v++;
            if (nlen == 19 && strncasecmp(p, "Content-Disposition", 19) == 0) {
                if (parse_disposition(v, line_end, part) < 0) return -1;
            } else if (nlen == 12 && strncasecmp(p, "Content-Type", 12) == 0 && !part->content_type) {
                part->content_type = strndup(v, (size_t)(line_end - v));
                if (!part->content_type) return -1;
            }
        }
        p = eol ? eol + 2 : end;
    }
    return 0;
}

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

int cd_multipart_parse(const char *body, size_t len, const char *boundary, cd_multipart *out, char *err,
                       size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t blen = strlen(boundary);
    if (blen == 0 || blen > 70) {
        set_err(err, errlen, "invalid multipart boundary");
        return -1;
    }
    /* "\r\n--" + boundary: the delimiter between parts. The first one may come without the
     * CRLF, at the very start of the body. */
    char *delim = malloc(blen + 5);
    if (!delim) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    size_t dlen = blen + 4;
    const char *end = body + len;
    const char *p;
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        p = body + dlen - 2;
    } else {
        const char *d = find(body, len, delim, dlen);
        if (!d) {
            free(delim);
            set_err(err, errlen, "multipart body has no boundary");
            return -1;
        }
        p = d + dlen;
    }
    int rc = -1;
    for (;;) {
        /* p is just after a delimiter: "--" closes, otherwise padding then CRLF. */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            rc = 0;
            break;
        }
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            set_err(err, errlen, "malformed multipart delimiter");
            break;
        }
        p += 2;
        if (out->n >= MAX_PARTS) {
            set_err(err, errlen, "too many multipart parts");
            break;
        }
        const char *hend;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hend = p; /* no headers at all */
        } else {
            hend = find(p, (size_t)(end - p), "\r\n\r\n", 4);
            if (!hend || hend - p > MAX_HEADER_BYTES) {
                set_err(err, errlen, "multipart part headers are malformed or too long");
                break;
            }
            hend += 2;
        }
        cd_multipart_part *parts = realloc(out->parts, (out->n + 1) * sizeof *parts);
        if (!parts) {
            set_err(err, errlen, "out of memory");
            break;
        }
        out->parts = parts;
        cd_multipart_part *part = &parts[out->n++];
        memset(part, 0, sizeof *part);
        if (parse_headers(p, hend, part) < 0) {
            set_err(err, errlen, "malformed Content-Disposition in a multipart part");
            break;
        }
        if (!part->name && !(part->name = strdup(""))) {
            set_err(err, errlen, "out of memory");
            break;
        }
        const char *data = hend + 2;
        const char *d = find(data, (size_t)(end - data), delim, dlen);
        if (!d) {
            set_err(err, errlen, "multipart body ends before its closing boundary");
            break;
        }
        part->data = data;
        part->len = (size_t)(d - data);
        p = d + dlen;
    }
    free(delim);
    if (rc < 0) cd_multipart_free(out);
    return rc;
}

void cd_multipart_free(cd_multipart *mp) {
    for (size_t i = 0; i < mp->n; i++) {
        free(mp->parts[i].name);
        free(mp->parts[i].filename);
        free(mp->parts[i].content_type);
    }
    free(mp->parts);
    mp->parts = NULL;
    mp->n = 0;
}

const cd_multipart_part *cd_multipart_get(const cd_multipart *mp, const char *name) {
    for (size_t i = 0; i < mp->n; i++)
        if (strcmp(mp->parts[i].name, name) == 0) return &mp->parts[i];
    return NULL;
}
