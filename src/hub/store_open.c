/* Choosing the store's backend from the COMFYD_HUB_STORE setting (store.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/path.h"
#include "hub/store.h"

static bool has_prefix(const char *s, const char *prefix) {
    return !strncmp(s, prefix, strlen(prefix));
}

static bool is_postgres(const char *spec) {
    return has_prefix(spec, "postgres://") || has_prefix(spec, "postgresql://");
}

int cd_store_open(const char *spec, const char *data_dir, cd_store **out, char *err, size_t errlen) {
    *out = NULL;
    if (!spec || !*spec) {
        char *path = cd_path_join(data_dir, "hub.sqlite3");
        if (!path) {
            snprintf(err, errlen, "out of memory");
            return CD_STORE_ERROR;
        }
        int rc = cd_store_sqlite_open(path, out, err, errlen);
        free(path);
        return rc;
    }
    if (has_prefix(spec, "sqlite:")) {
        const char *path = spec + strlen("sqlite:");
        if (!*path) {
            snprintf(err, errlen, "COMFYD_HUB_STORE: sqlite: needs a path (sqlite:/var/lib/comfyd/hub.sqlite3)");
            return CD_STORE_ERROR;
        }
        return cd_store_sqlite_open(path, out, err, errlen);
    }
    if (is_postgres(spec)) return cd_store_pg_open(spec, out, err, errlen);
    snprintf(err, errlen, "COMFYD_HUB_STORE: \"%.200s\" is neither sqlite:PATH nor a postgres:// URI", spec);
    return CD_STORE_ERROR;
}

/* postgres://user:secret@host/db → postgres://user:***@host/db: the log is no place for it. A
 * password given as ?password=… is cut the same way. */
static void redact_uri(const char *uri, char *out, size_t outlen) {
    snprintf(out, outlen, "%s", uri);
    char *rest = strstr(out, "://");
    if (!rest) return;
    rest += 3;
    char *at = strchr(rest, '@'), *slash = strchr(rest, '/');
    char *colon = strchr(rest, ':');
    if (at && colon && colon < at && (!slash || at < slash)) {
        size_t tail = strlen(at);
        if ((size_t)(colon + 1 - out) + 3 + tail < outlen) {
            memmove(colon + 4, at, tail + 1);
            memcpy(colon + 1, "***", 3);
        }
    }
    char *pw = strstr(out, "password=");
    if (pw) {
        pw += strlen("password=");
        char *end = strchr(pw, '&');
        size_t tail = end ? strlen(end) : 0;
        if ((size_t)(pw - out) + 3 + tail < outlen) {
            memmove(pw + 3, end ? end : pw + strlen(pw), tail + 1);
            memcpy(pw, "***", 3);
        }
    }
}

void cd_store_describe(const char *spec, const char *data_dir, char *out, size_t outlen) {
    if (!spec || !*spec) {
        snprintf(out, outlen, "%s/hub.sqlite3", data_dir);
    } else if (has_prefix(spec, "sqlite:")) {
        snprintf(out, outlen, "%s", spec + strlen("sqlite:"));
    } else {
        redact_uri(spec, out, outlen);
    }
}
