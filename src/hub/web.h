/* The hub's own pages (web/hub/ in the source tree), built into the binary. */
#ifndef CD_HUB_WEB_H
#define CD_HUB_WEB_H

#include <stddef.h>

typedef struct {
    const char *name; /* "login.html" */
    const unsigned char *data;
    size_t len;
} cd_hub_web_file;

/* Ends with a {NULL} entry. */
extern const cd_hub_web_file cd_hub_web_files[];
const cd_hub_web_file *cd_hub_web_find(const char *name);

#endif
