/* Serving files from disk over HTTP: content types, ETag and Last-Modified with 304 answers,
 * single byte ranges (206, 416), HEAD, and streaming through the loop's thread pool with
 * back-pressure, so a 1 GB file costs 64 KiB of memory and never blocks the loop. */
#ifndef CD_NET_STATIC_FILES_H
#define CD_NET_STATIC_FILES_H

#include "net/http_server.h"

/* Serves rel (already percent-decoded) from inside root. A path that escapes root, a directory,
 * or a missing file gets 404. */
void cd_static_serve(cd_http_req *req, const char *root, const char *rel);

/* Serves an exact path the caller has already confined, with an optional forced content type
 * and Content-Disposition filename. */
void cd_static_serve_path(cd_http_req *req, const char *path, const char *content_type, const char *download_name);

/* "text/html; charset=utf-8" and so on, from the file name's extension; a generic binary type
 * when unknown. */
const char *cd_static_content_type(const char *name);

#endif
