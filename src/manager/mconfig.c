#include "manager/mconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/file.h"

int cd_mconfig_set(char **field, const char *value) {
    size_t n = strlen(value);
    char *s = malloc(n + 1), *o = s;
    if (!s) return -1;
    for (size_t i = 0; i < n; i++)
        if (value[i] != '\r' && value[i] != '\n') *o++ = value[i];
    *o = 0;
    free(*field);
    *field = s;
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

int cd_mconfig_load(cd_mconfig *cfg, const char *path, char **warning) {
    memset(cfg, 0, sizeof *cfg);
    if (warning) *warning = NULL;
    cfg->security_level = CD_SEC_NORMAL;
    cfg->build_timeout_s = 300;
    if (cd_mconfig_set(&cfg->db_mode, "cache") || cd_mconfig_set(&cfg->component_policy, "workflow") ||
        cd_mconfig_set(&cfg->update_policy, "stable-comfyui") || cd_mconfig_set(&cfg->preview_method, "none") ||
        cd_mconfig_set(&cfg->share_option, "all"))
        return -1;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return 0;
    char line[4096];
    bool in_default = true;
    while (fgets(line, sizeof line, f)) {
        char *l = trim(line);
        if (!*l || *l == '#' || *l == ';') continue;
        if (*l == '[') {
            in_default = !strncmp(l, "[default]", 9);
            continue;
        }
        char *eq = strchr(l, '=');
        if (!eq || !in_default) continue;
        *eq = 0;
        char *key = trim(l), *val = trim(eq + 1);
        if (!strcmp(key, "security_level")) {
            if (cd_policy_level_parse(val, &cfg->security_level) < 0) {
                cfg->security_level = CD_SEC_NORMAL;
                if (warning) {
                    cd_buf b = CD_BUF_INIT;
                    cd_buf_printf(&b, "config.ini: security_level '%s' is not one of strong, normal, normal-, weak: using normal", val);
                    free(*warning);
                    *warning = cd_buf_take(&b);
                }
            }
        } else if (!strcmp(key, "db_mode")) cd_mconfig_set(&cfg->db_mode, val);
        else if (!strcmp(key, "channel_url")) cd_mconfig_set(&cfg->channel_url, val);
        else if (!strcmp(key, "component_policy")) cd_mconfig_set(&cfg->component_policy, val);
        else if (!strcmp(key, "update_policy")) cd_mconfig_set(&cfg->update_policy, val);
        else if (!strcmp(key, "preview_method")) cd_mconfig_set(&cfg->preview_method, val);
        else if (!strcmp(key, "share_option")) cd_mconfig_set(&cfg->share_option, val);
        /* A bool is true only for the case-insensitive text "true", as in ComfyUI-Manager. */
        else if (!strcmp(key, "allow_git_url_install")) cfg->allow_git_url_install = !strcasecmp(val, "true");
        else if (!strcmp(key, "allow_pip_install")) cfg->allow_pip_install = !strcasecmp(val, "true");
        else if (!strcmp(key, "build_timeout")) {
            int t = atoi(val);
            if (t > 0) cfg->build_timeout_s = t;
        }
    }
    fclose(f);
    return 0;
}

int cd_mconfig_save(const cd_mconfig *cfg, const char *path) {
    cd_buf b = CD_BUF_INIT;
    cd_buf_printf(&b,
                  "[default]\nsecurity_level = %s\ndb_mode = %s\n%s%s%scomponent_policy = %s\nupdate_policy = %s\n"
                  "preview_method = %s\nshare_option = %s\nallow_git_url_install = %s\nallow_pip_install = %s\n"
                  "build_timeout = %d\n",
                  cd_policy_level_name(cfg->security_level), cfg->db_mode, cfg->channel_url ? "channel_url = " : "",
                  cfg->channel_url ? cfg->channel_url : "", cfg->channel_url ? "\n" : "", cfg->component_policy,
                  cfg->update_policy, cfg->preview_method, cfg->share_option,
                  cfg->allow_git_url_install ? "True" : "False", cfg->allow_pip_install ? "True" : "False",
                  cfg->build_timeout_s);
    int rc = b.data ? cd_file_write_atomic(path, b.data, b.len) : -1;
    cd_buf_free(&b);
    return rc;
}

void cd_mconfig_free(cd_mconfig *cfg) {
    free(cfg->db_mode);
    free(cfg->channel_url);
    free(cfg->component_policy);
    free(cfg->update_policy);
    free(cfg->preview_method);
    free(cfg->share_option);
    memset(cfg, 0, sizeof *cfg);
}
