/* comfyd serve's own web page (web/serve/ in the source tree), built into the binary so that
 * `comfyd serve` without --front-end-root has a usable UI and nothing to install beside it.
 * CMakeLists.txt generates the table (serve_web_embed.c). */
#ifndef CD_SERVER_WEB_H
#define CD_SERVER_WEB_H

#include <stddef.h>

typedef struct {
    const char *name; /* "index.html", "app.js" */
    const unsigned char *data;
    size_t len;
} cd_serve_web_file;

/* Ends with a {NULL} entry. */
extern const cd_serve_web_file cd_serve_web_files[];
/* The embedded file of that name, or NULL. */
const cd_serve_web_file *cd_serve_web_find(const char *name);

#endif
