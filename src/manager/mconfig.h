/* The manager's config.ini ([default] section, ComfyUI-Manager's keys), kept in
 * <user>/__manager/config.ini. Read once at start; setters write it back at once. */
#ifndef CD_MANAGER_MCONFIG_H
#define CD_MANAGER_MCONFIG_H

#include <stdbool.h>

#include "manager/policy.h"

typedef struct {
    cd_sec_level security_level;
    char *db_mode;          /* local | cache | remote */
    char *channel_url;      /* a directory, file:// or http(s):// URL; NULL: the bundled channel */
    char *component_policy; /* workflow | higher | mine */
    char *update_policy;    /* stable-comfyui | nightly-comfyui */
    char *preview_method;
    char *share_option;
    bool allow_git_url_install, allow_pip_install;
    int build_timeout_s; /* our own key: the time limit of a pack build */
} cd_mconfig;

/* Defaults, then the file's values (a missing file is not an error). An unknown security level
 * falls back to "normal" with a warning in *warning (caller frees, may be NULL). Returns 0 or -1
 * (OOM). */
int cd_mconfig_load(cd_mconfig *cfg, const char *path, char **warning);
/* Writes every key. Returns 0 or -1 with errno. */
int cd_mconfig_save(const cd_mconfig *cfg, const char *path);
void cd_mconfig_free(cd_mconfig *cfg);
/* Replaces one string field (CR, LF and NUL are dropped, as ComfyUI-Manager does). */
int cd_mconfig_set(char **field, const char *value);

#endif
