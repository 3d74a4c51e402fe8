#include "hub/page_badge.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool cd_hub_badge_wanted(const char *method, const char *rest) {
    if (strcmp(method, "GET") != 0) return false;
    size_t n = strcspn(rest, "?");
    return (n == 1 && rest[0] == '/') || (n == 11 && !strncmp(rest, "/index.html", 11));
}

/* The first "</tag" of html, case-insensitively, ending the name ("</head>", "</head >", not
 * "</header>"), or NULL. */
static const char *find_closing(const char *html, size_t len, const char *tag) {
    size_t tl = strlen(tag);
    for (size_t i = 0; i + tl < len; i++) {
        if (html[i] != '<' || strncasecmp(html + i, tag, tl) != 0) continue;
        char after = html[i + tl];
        if (after == '>' || after == ' ' || after == '\t' || after == '\n' || after == '\r' || after == '/') return html + i;
    }
    return NULL;
}

char *cd_hub_badge_inject(const char *html, size_t len, size_t *out_len) {
    const char *at = find_closing(html, len, "</head");
    if (!at) at = find_closing(html, len, "</body");
    size_t before = at ? (size_t)(at - html) : len, tag = strlen(CD_HUB_BADGE_TAG);
    char *out = malloc(len + tag + 1);
    if (!out) return NULL;
    memcpy(out, html, before);
    memcpy(out + before, CD_HUB_BADGE_TAG, tag);
    memcpy(out + before + tag, html + before, len - before);
    out[len + tag] = '\0';
    *out_len = len + tag;
    return out;
}
