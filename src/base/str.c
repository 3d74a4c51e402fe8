#include "base/str.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool cd_str_ieq(const char *a, const char *b) { return strcasecmp(a, b) == 0; }

bool cd_str_starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool cd_str_ends_with_ci(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcasecmp(s + ls - lx, suffix) == 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *cd_str_percent_decode(const char *src, size_t len, bool plus_space) {
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len) goto bad;
            int h = hexval(src[i + 1]), l = hexval(src[i + 2]);
            if (h < 0 || l < 0) goto bad;
            c = (char)(h * 16 + l);
            if (c == '\0') goto bad;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        } else if (c == '\0') {
            goto bad;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

char *cd_str_query_get(const char *query, const char *name) {
    if (!query) return NULL;
    size_t nlen = strlen(name);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t seglen = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', seglen);
        size_t keylen = eq ? (size_t)(eq - p) : seglen;
        char *key = cd_str_percent_decode(p, keylen, true);
        bool match = key && strlen(key) == nlen && memcmp(key, name, nlen) == 0;
        free(key);
        if (match) {
            if (!eq) return strdup("");
            return cd_str_percent_decode(eq + 1, seglen - keylen - 1, true);
        }
        if (!end) break;
        p = end + 1;
    }
    return NULL;
}

void cd_str_random_hex(char *out, size_t n) {
    static const char digits[] = "0123456789abcdef";
    unsigned char bytes[64];
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done < sizeof bytes ? n - done : sizeof bytes;
        randombytes_buf(bytes, chunk);
        for (size_t i = 0; i < chunk; i++) {
            out[2 * (done + i)] = digits[bytes[i] >> 4];
            out[2 * (done + i) + 1] = digits[bytes[i] & 15];
        }
        done += chunk;
    }
    out[2 * n] = '\0';
}

void cd_str_uuid4(char out[37]) {
    static const char digits[] = "0123456789abcdef";
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = digits[b[i] >> 4];
        out[o++] = digits[b[i] & 15];
    }
    out[o] = '\0';
}
