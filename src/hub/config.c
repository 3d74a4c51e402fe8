/* The hub's settings: one table says each setting's name, flag, default and meaning, so that
 * the parser, the environment, the config file and --help can never disagree. */
#include "hub/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/path.h"

typedef enum { T_STR, T_INT, T_I64, T_RANGE, T_LEVEL } setting_type;

typedef struct {
    const char *env;   /* the name in the environment and the config file */
    const char *flag;  /* the short flag, or NULL for the derived one */
    setting_type type;
    size_t offset;
    const char *def;   /* NULL: none; "" with a derived default said in help */
    long long min, max;
    const char *help;
} setting;

#define OFF(field) offsetof(cd_hub_config, field)
static const setting settings[] = {
    {"COMFYD_HUB_LISTEN", "--listen", T_STR, OFF(listen), "127.0.0.1", 0, 0,
     "address the hub listens on (an IPv4 or IPv6 literal)"},
    {"COMFYD_HUB_PORT", "--port", T_INT, OFF(port), "8188", 0, 65535, "port the hub listens on (0: any free one)"},
    {"COMFYD_HUB_DATA_DIR", "--data-dir", T_STR, OFF(data_dir), "./hub-data",
     0, 0, "the hub's directory: its store (hub.sqlite3) and the defaults below"},
    {"COMFYD_HUB_STORE", "--store", T_STR, OFF(store), "", 0, 0,
     "where users, projects and the queue live: sqlite:PATH (default DATA_DIR/hub.sqlite3) or a PostgreSQL "
     "URI, postgres://USER:PASSWORD@HOST:PORT/DB"},
    {"COMFYD_HUB_ID", NULL, T_STR, OFF(hub_id), "", 0, 0,
     "this hub's name among several on one PostgreSQL store (default HOSTNAME:a hash of the data directory; "
     "each hub needs its own)"},
    {"COMFYD_HUB_SILENT_AFTER_SECONDS", NULL, T_INT, OFF(hub_silent_after_s), "15", 2, 3600,
     "several hubs: one not heard from for this long is taken for dead, and the others take over its "
     "prompts and instances"},
    {"COMFYD_ADMIN_PASSWORD", NULL, T_STR, OFF(admin_password), NULL, 0, 0,
     "password of the 'admin' account created on first start (else one is generated and printed once)"},
    {"COMFYD_SESSION_HOURS", NULL, T_INT, OFF(session_hours), "168", 1, 24 * 366, "how long a login lasts"},
    {"COMFYD_HUB_MAX_BODY_BYTES", NULL, T_I64, OFF(max_body_bytes), "1048576", 1024, (long long)1 << 40,
     "largest request body the hub's own API accepts"},
    {"COMFYD_LOG_LEVEL", "--verbose", T_LEVEL, OFF(log_level), "INFO", 0, 0, "DEBUG, INFO, WARNING or ERROR"},
    {"COMFYUI_LISTEN", NULL, T_STR, OFF(instance_listen), "127.0.0.1", 0, 0,
     "address instances listen on (keep it loopback: the hub is their only door)"},
    {"COMFYUI_PORT_RANGE", NULL, T_RANGE, OFF(port_min), "8200-8299", 1, 65535,
     "ports for instances, FIRST-LAST; a port something else holds is skipped"},
    {"COMFYUI_INSTANCE_BASE_DIR", NULL, T_STR, OFF(instance_base_dir), "", 0, 0,
     "instance directories, one per user and project (default DATA_DIR/instances)"},
    {"COMFYUI_CUSTOM_NODES_DIR", NULL, T_STR, OFF(custom_nodes_dir), "", 0, 0,
     "the shared custom_nodes every instance links to (default DATA_DIR/shared/custom_nodes)"},
    {"COMFYUI_MODELS_DIR", NULL, T_STR, OFF(models_dir), "", 0, 0,
     "the shared models every instance links to (default DATA_DIR/shared/models)"},
    {"COMFYUI_LOG_DIR", NULL, T_STR, OFF(log_dir), "", 0, 0,
     "instance logs, comfy_u{user}_p{project}_{port}.log (default DATA_DIR/logs)"},
    {"COMFYUI_LOG_MAX_BYTES", NULL, T_I64, OFF(log_max_bytes), "10485760", 4096, (long long)1 << 40,
     "an instance log larger than this is rotated"},
    {"COMFYUI_LOG_KEEP", NULL, T_INT, OFF(log_keep), "3", 1, 100, "rotated logs kept per instance (.1, .2, ...)"},
    {"COMFYUI_COMMAND", NULL, T_STR, OFF(command), "", 0, 0,
     "instance command template (default '{comfyd} serve --listen {listen} --port {port} --base-directory "
     "{base_dir}', or with COMFYUI_REPO_PATH '{python} main.py --disable-auto-launch --listen {listen} --port "
     "{port} --base-directory {base_dir}' run in that checkout)"},
    {"COMFYUI_REPO_PATH", NULL, T_STR, OFF(repo_path), NULL, 0, 0, "a Python ComfyUI checkout to run as the instance"},
    {"COMFYUI_PYTHON", NULL, T_STR, OFF(python), "python3", 0, 0, "the Python for COMFYUI_REPO_PATH"},
    {"COMFYUI_LAUNCHER", NULL, T_STR, OFF(launcher), "local", 0, 0,
     "how instances start on the hub's machine: local (child processes of the hub) or systemd (a `systemd-run "
     "--user` unit each, with the limits below)"},
    {"COMFYUI_MEMORY_MAX", NULL, T_STR, OFF(memory_max), "", 0, 0,
     "with COMFYUI_LAUNCHER=systemd: each instance's MemoryMax, bytes with an optional K, M, G or T suffix (4G), "
     "a percentage of the machine's memory (25%) or infinity (default: none)"},
    {"COMFYUI_CPU_QUOTA", NULL, T_STR, OFF(cpu_quota), "", 0, 0,
     "with COMFYUI_LAUNCHER=systemd: each instance's CPUQuota, a percentage of one CPU (200% is two CPUs; default: "
     "none)"},
    {"COMFYUI_STARTUP_TIMEOUT_SECONDS", NULL, T_INT, OFF(startup_timeout_s), "240", 1, 86400,
     "how long a starting instance may take to answer GET /system_stats"},
    {"COMFYUI_HEARTBEAT_INTERVAL_SECONDS", NULL, T_INT, OFF(heartbeat_interval_s), "30", 1, 86400,
     "how often each instance is probed (GET /system_stats)"},
    {"COMFYUI_HEARTBEAT_TIMEOUT_MS", NULL, T_INT, OFF(heartbeat_timeout_ms), "2500", 100, 600000,
     "a probe not answered within this marks the instance offline"},
    {"COMFYUI_IDLE_STOP_SECONDS", NULL, T_INT, OFF(idle_stop_s), "3600", 0, 100000000,
     "an instance with no prompt and no request for this long is stopped (0: never)"},
    {"COMFYUI_MAX_INSTANCES", NULL, T_INT, OFF(max_instances), "0", 0, 65535,
     "most instances running at once (0: as many as the port range holds)"},
    {"COMFYUI_STOP_GRACE_SECONDS", NULL, T_INT, OFF(stop_grace_s), "10", 0, 3600,
     "after SIGTERM, how long an instance has before SIGKILL"},
    {"COMFYUI_MAX_RESTARTS", NULL, T_INT, OFF(max_restarts), "5", 0, 1000,
     "crashes in a row after which an instance is no longer restarted"},
    {"COMFYD_PROXY_MAX_BODY_BYTES", NULL, T_I64, OFF(proxy_max_body_bytes), "104857600", 0, (long long)1 << 50,
     "largest request body through /comfyui/... (uploads aside)"},
    {"COMFYD_PROXY_MAX_UPLOAD_BYTES", NULL, T_I64, OFF(proxy_max_upload_bytes), "1073741824", 0, (long long)1 << 50,
     "largest body sent to an instance's /upload/... routes"},
    {"COMFYD_PROXY_TIMEOUT_SECONDS", NULL, T_INT, OFF(proxy_timeout_s), "300", 1, 86400,
     "an instance silent this long while an answer is due gets 504"},
    {"COMFYD_PROXY_WS_PING_SECONDS", NULL, T_INT, OFF(proxy_ws_ping_s), "30", 0, 86400,
     "pings to browsers on proxied WebSockets (0: none)"},
    {"COMFY_MAX_CONCURRENT", NULL, T_INT, OFF(max_concurrent), "10", 0, 100000,
     "prompts running at once across all instances; the rest wait in the hub's fair queue (0: no queue)"},
    {"COMFY_PROMPT_TIMEOUT_SECONDS", NULL, T_INT, OFF(prompt_timeout_s), "3600", 1, 10000000,
     "a prompt running longer is interrupted"},
    {"COMFY_MAX_WAITING_PER_USER", NULL, T_INT, OFF(max_waiting_per_user), "200", 1, 1000000,
     "prompts one user may have waiting (beyond: 429)"},
    {"COMFY_MAX_RUNNING_PER_USER", NULL, T_INT, OFF(max_running_per_user), "0", 0, 100000,
     "prompts of one user running at once (0: only the global limit)"},
    {"COMFYD_PROXY_AUTOSTART", NULL, T_INT, OFF(proxy_autostart), "0", 0, 1,
     "1: a request to a stopped project's /comfyui/... starts its instance (else 503)"},
    {"COMFYD_QUEUE_BADGE", NULL, T_INT, OFF(queue_badge), "1", 0, 1,
     "1: the proxied ComfyUI page shows the user's place in the hub's queue (a script the hub adds)"},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

/* --comfyui-port-range from COMFYUI_PORT_RANGE. */
static void derived_flag(const setting *s, char *out, size_t n) {
    if (s->flag) {
        snprintf(out, n, "%s", s->flag);
        return;
    }
    size_t j = 0;
    out[j++] = '-';
    out[j++] = '-';
    for (const char *p = s->env; *p && j + 1 < n; p++) out[j++] = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
    out[j] = '\0';
}

static int parse_int(const char *text, long long min, long long max, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static int apply(cd_hub_config *cfg, const setting *s, const char *value, const char *from, char *err, size_t errlen) {
    char *base = (char *)cfg + s->offset;
    long long v;
    switch (s->type) {
    case T_STR: {
        char **slot = (char **)base;
        free(*slot);
        *slot = strdup(value);
        return *slot ? 0 : -1;
    }
    case T_INT:
    case T_I64:
        if (parse_int(value, s->min, s->max, &v) < 0) {
            snprintf(err, errlen, "%s (%s): '%s' is not a whole number from %lld to %lld", s->env, from, value, s->min,
                     s->max);
            return -1;
        }
        if (s->type == T_INT) *(int *)base = (int)v;
        else *(int64_t *)base = v;
        return 0;
    case T_RANGE: {
        long long a, b;
        const char *dash = strchr(value, '-');
        char first[32];
        if (dash && (size_t)(dash - value) < sizeof first) {
            snprintf(first, sizeof first, "%.*s", (int)(dash - value), value);
            if (parse_int(first, s->min, s->max, &a) == 0 && parse_int(dash + 1, s->min, s->max, &b) == 0 && a <= b) {
                cfg->port_min = (int)a;
                cfg->port_max = (int)b;
                return 0;
            }
        }
        snprintf(err, errlen, "%s (%s): '%s' is not a port range FIRST-LAST (e.g. 8200-8299)", s->env, from, value);
        return -1;
    }
    case T_LEVEL:
        if (cd_log_level_parse(value, (cd_log_level *)base) < 0) {
            snprintf(err, errlen, "%s (%s): '%s' is not DEBUG, INFO, WARNING or ERROR", s->env, from, value);
            return -1;
        }
        return 0;
    }
    return -1;
}

static const setting *by_env(const char *name) {
    for (size_t i = 0; i < NSETTINGS; i++)
        if (!strcmp(settings[i].env, name)) return &settings[i];
    return NULL;
}

static const setting *by_flag(const char *flag) {
    char f[64];
    for (size_t i = 0; i < NSETTINGS; i++) {
        derived_flag(&settings[i], f, sizeof f);
        if (!strcmp(f, flag)) return &settings[i];
    }
    return NULL;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* NAME=VALUE lines; blank lines and lines starting with '#' are skipped; a value may be quoted
 * with "" (nothing is escaped inside). An unknown name is an error: a typo must not pass
 * silently. */
static int read_config_file(cd_hub_config *cfg, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read the config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        char from[64];
        snprintf(from, sizeof from, "line %d", lineno);
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected NAME=VALUE", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = '\0';
            value++;
        }
        const setting *st = by_env(name);
        if (!st) {
            snprintf(err, errlen, "%s:%d: unknown setting '%s' (comfyd hub --help lists them)", path, lineno, name);
            rc = -1;
        } else {
            rc = apply(cfg, st, value, from, err, errlen);
        }
    }
    fclose(f);
    return rc;
}

static void print_help(FILE *out) {
    fprintf(out, "usage: comfyd hub [options]\n\n"
                 "The platform: users, projects, and one supervised ComfyUI instance per project.\n"
                 "Every setting comes from (later wins) its default, the config file (NAME=VALUE lines;\n"
                 "--config FILE, COMFYD_HUB_CONFIG, or DATA_DIR/hub.conf when it exists), the environment\n"
                 "variable NAME, and the flag.\n\n");
    fprintf(out, "  --config FILE  (COMFYD_HUB_CONFIG)\n      a config file of NAME=VALUE lines\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        char f[64];
        derived_flag(&settings[i], f, sizeof f);
        const setting *s = &settings[i];
        fprintf(out, "  %s VALUE  (%s", f, s->env);
        if (s->def && *s->def) fprintf(out, ", default %s", s->def);
        fprintf(out, ")\n      %s\n", s->help);
    }
}

static int set_defaults(cd_hub_config *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].def && apply(cfg, &settings[i], settings[i].def, "default", err, errlen) < 0) return -1;
    return 0;
}

/* A directory setting left empty becomes DATA_DIR/sub; every directory is made absolute. */
static int resolve_dir(char **slot, const char *data_dir, const char *sub) {
    char *abs = (*slot && **slot) ? cd_path_absolute(*slot) : cd_path_join(data_dir, sub);
    free(*slot);
    *slot = abs;
    return abs ? 0 : -1;
}

/* A decimal number at *s (digits, then optionally '.' and digits); moves *s past it. */
static bool number(const char **s) {
    const char *p = *s;
    size_t whole = strspn(p, "0123456789");
    if (!whole) return false;
    p += whole;
    if (*p == '.') {
        size_t frac = strspn(p + 1, "0123456789");
        if (!frac) return false;
        p += 1 + frac;
    }
    *s = p;
    return true;
}

/* "4G", "512M", "1073741824", "25%", "infinity": what systemd's MemoryMax= takes. */
static bool memory_max_ok(const char *v) {
    if (!strcmp(v, "infinity")) return true;
    const char *p = v;
    if (!number(&p) || strtod(v, NULL) <= 0) return false;
    if (*p == '%') return p[1] == '\0' && strtod(v, NULL) <= 100;
    if (*p && strchr("KMGTPE", *p)) return p[1] == '\0';
    return *p == '\0' && !strchr(v, '.'); /* a whole number of bytes */
}

/* "50%", "200%": what systemd's CPUQuota= takes. */
static bool cpu_quota_ok(const char *v) {
    const char *p = v;
    return number(&p) && p[0] == '%' && p[1] == '\0' && strtod(v, NULL) > 0;
}

/* The launcher of the hub's machine and its limits (hosts.c hands them to the systemd one). */
static int check_launcher(const cd_hub_config *cfg, char *err, size_t errlen) {
    bool systemd = !strcmp(cfg->launcher, "systemd");
    if (!systemd && strcmp(cfg->launcher, "local") != 0) {
        snprintf(err, errlen, "COMFYUI_LAUNCHER: '%s' is local or systemd", cfg->launcher);
        return -1;
    }
    if (cfg->memory_max[0] && !memory_max_ok(cfg->memory_max)) {
        snprintf(err, errlen,
                 "COMFYUI_MEMORY_MAX: '%s' is bytes with an optional K, M, G or T suffix (4G), a percentage of the "
                 "machine's memory (25%%) or infinity",
                 cfg->memory_max);
        return -1;
    }
    if (cfg->cpu_quota[0] && !cpu_quota_ok(cfg->cpu_quota)) {
        snprintf(err, errlen, "COMFYUI_CPU_QUOTA: '%s' is a percentage of one CPU (50%%, or 200%% for two)",
                 cfg->cpu_quota);
        return -1;
    }
    const char *limit = cfg->memory_max[0] ? "COMFYUI_MEMORY_MAX" : cfg->cpu_quota[0] ? "COMFYUI_CPU_QUOTA" : NULL;
    if (limit && !systemd) {
        snprintf(err, errlen, "%s needs COMFYUI_LAUNCHER=systemd (a child process of the hub has no limits of its own)",
                 limit);
        return -1;
    }
    return 0;
}

static int finish(cd_hub_config *cfg, char *err, size_t errlen) {
    if (check_launcher(cfg, err, errlen) < 0) return -1;
    char *abs = cd_path_absolute(cfg->data_dir);
    if (!abs) return -1;
    free(cfg->data_dir);
    cfg->data_dir = abs;
    if (resolve_dir(&cfg->instance_base_dir, cfg->data_dir, "instances") < 0 ||
        resolve_dir(&cfg->custom_nodes_dir, cfg->data_dir, "shared/custom_nodes") < 0 ||
        resolve_dir(&cfg->models_dir, cfg->data_dir, "shared/models") < 0 ||
        resolve_dir(&cfg->log_dir, cfg->data_dir, "logs") < 0)
        return -1;
    if (cfg->repo_path && !*cfg->repo_path) {
        free(cfg->repo_path);
        cfg->repo_path = NULL;
    }
    if (cfg->repo_path) {
        char *r = cd_path_absolute(cfg->repo_path);
        free(cfg->repo_path);
        cfg->repo_path = r;
        if (!r) return -1;
    }
    if (!*cfg->command) {
        free(cfg->command);
        cfg->command = strdup(cfg->repo_path ? "{python} main.py --disable-auto-launch --listen {listen} --port {port} "
                                               "--base-directory {base_dir}"
                                             : "{comfyd} serve --listen {listen} --port {port} --base-directory {base_dir}");
        if (!cfg->command) return -1;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(err, errlen, "cannot find this executable (/proc/self/exe)");
        return -1;
    }
    exe[n] = '\0';
    cfg->comfyd_bin = strdup(exe);
    return cfg->comfyd_bin ? 0 : -1;
}

int cd_hub_config_load(cd_hub_config *cfg, int argc, char **argv, int first, FILE *out, char *err, size_t errlen) {
    if (set_defaults(cfg, err, errlen) < 0) return -1;
    /* The data directory and the config file decide where the file is, so find them first. */
    const char *config = getenv("COMFYD_HUB_CONFIG");
    const char *data_dir = getenv("COMFYD_HUB_DATA_DIR");
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_help(out);
            return 1;
        }
        if (i + 1 < argc && !strcmp(argv[i], "--config")) config = argv[i + 1];
        if (i + 1 < argc && !strcmp(argv[i], "--data-dir")) data_dir = argv[i + 1];
    }
    char *default_conf = NULL;
    if (!config) {
        default_conf = cd_path_join(data_dir ? data_dir : cfg->data_dir, "hub.conf");
        if (default_conf && access(default_conf, F_OK) == 0) config = default_conf;
    }
    int rc = 0;
    if (config) {
        rc = read_config_file(cfg, config, err, errlen);
        if (rc == 0) cfg->config_file = cd_path_absolute(config);
    }
    free(default_conf);
    if (rc < 0) return -1;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && apply(cfg, &settings[i], v, "environment", err, errlen) < 0) return -1;
    }
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        const setting *s = by_flag(argv[i]);
        if (!s) {
            snprintf(err, errlen, "unknown option '%s' (comfyd hub --help lists them)", argv[i]);
            return -1;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "%s needs a value", argv[i]);
            return -1;
        }
        const char *flag = argv[i++];
        if (apply(cfg, s, argv[i], flag, err, errlen) < 0) return -1;
    }
    if (finish(cfg, err, errlen) < 0) {
        if (!err[0]) snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void cd_hub_config_free(cd_hub_config *cfg) {
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].type == T_STR) {
            char **slot = (char **)((char *)cfg + settings[i].offset);
            free(*slot);
        }
    free(cfg->config_file);
    free(cfg->comfyd_bin);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- the instance command ---- */

static int expand_word(cd_buf *out, const char *word, const cd_hub_config *cfg, const cd_hub_command_vars *v,
                       char *err, size_t errlen) {
    char num[32];
    for (const char *p = word; *p;) {
        if (*p != '{') {
            cd_buf_append(out, p++, 1);
            continue;
        }
        const char *close = strchr(p, '}');
        size_t n = close ? (size_t)(close - p - 1) : 0;
        const char *val = NULL;
#define IS(name) (close && n == strlen(name) && !strncmp(p + 1, name, n))
        if (IS("comfyd")) val = cfg->comfyd_bin;
        else if (IS("python")) val = cfg->python;
        else if (IS("repo")) val = cfg->repo_path ? cfg->repo_path : "";
        else if (IS("listen")) val = v->listen;
        else if (IS("base_dir")) val = v->base_dir;
        else if (IS("user")) val = v->user;
        else if (IS("port")) snprintf(num, sizeof num, "%d", v->port), val = num;
        else if (IS("project")) snprintf(num, sizeof num, "%lld", v->project), val = num;
#undef IS
        if (!val) {
            snprintf(err, errlen, "COMFYUI_COMMAND: unknown placeholder in '%s' (known: {comfyd} {python} {repo} "
                     "{listen} {port} {base_dir} {user} {project})", word);
            return -1;
        }
        cd_buf_append_str(out, val);
        p = close + 1;
    }
    return 0;
}

char **cd_hub_config_command_argv(const cd_hub_config *cfg, const cd_hub_command_vars *v, char *err, size_t errlen) {
    size_t cap = 8, n = 0;
    char **argv = calloc(cap, sizeof *argv);
    const char *p = v->template ? v->template : cfg->command;
    while (argv && *p) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        size_t len = strcspn(p, " \t");
        char *word = strndup(p, len);
        p += len;
        cd_buf b = CD_BUF_INIT;
        int rc = word ? expand_word(&b, word, cfg, v, err, errlen) : -1;
        free(word);
        if (rc < 0 || n + 2 > cap) {
            char **grown = rc < 0 ? NULL : realloc(argv, (cap *= 2) * sizeof *argv);
            if (!grown) {
                cd_buf_free(&b);
                cd_hub_argv_free(argv);
                return NULL;
            }
            argv = grown;
        }
        argv[n++] = b.data ? cd_buf_take(&b) : strdup("");
        argv[n] = NULL;
    }
    if (argv && n == 0) {
        snprintf(err, errlen, "COMFYUI_COMMAND is empty");
        cd_hub_argv_free(argv);
        return NULL;
    }
    return argv;
}

bool cd_hub_command_names_port(const char *template) {
    bool after_flag = false;
    for (const char *p = template; *p;) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, " \t");
        if (!len) break;
        if (after_flag && len == 6 && !strncmp(p, "{port}", 6)) return true;
        after_flag = len == 6 && !strncmp(p, "--port", 6);
        p += len;
    }
    return false;
}

void cd_hub_argv_free(char **argv) {
    if (!argv) return;
    for (char **p = argv; *p; p++) free(*p);
    free(argv);
}
