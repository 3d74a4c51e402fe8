/* The hub's settings. Each one has a name (the environment variable, e.g. COMFYUI_PORT_RANGE),
 * a command-line flag derived from it (--comfyui-port-range, with short forms for the common
 * ones: --listen, --port, --data-dir, --config) and a default. They are read in this order, each
 * overriding the one before: defaults, the config file (NAME=VALUE lines), the environment,
 * the command line. `comfyd hub --help` prints the table. */
#ifndef CD_HUB_CONFIG_H
#define CD_HUB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/log.h"

typedef struct {
    /* the hub itself */
    char *listen;
    int port;
    char *data_dir;    /* absolute */
    char *store;       /* COMFYD_HUB_STORE: "" (DATA_DIR/hub.sqlite3), sqlite:PATH or postgres://… */
    char *config_file; /* NULL when none was read */
    char *admin_password;
    int session_hours;
    int64_t max_body_bytes;
    cd_log_level log_level;
    /* its instances */
    char *instance_listen;
    int port_min, port_max;
    char *instance_base_dir, *log_dir, *custom_nodes_dir, *models_dir; /* absolute */
    char *command;   /* the template; see cd_hub_config_command_argv */
    char *repo_path; /* a Python ComfyUI checkout, or NULL */
    char *python;
    char *comfyd_bin; /* this executable, for the default command */
    char *launcher;   /* COMFYUI_LAUNCHER: "local" or "systemd" (hosts.h) */
    char *memory_max, *cpu_quota; /* systemd's MemoryMax= and CPUQuota= per instance; "" : none */
    int startup_timeout_s, heartbeat_interval_s, heartbeat_timeout_ms, idle_stop_s, max_instances;
    int stop_grace_s, max_restarts;
    int64_t log_max_bytes;
    int log_keep;
    /* the proxy /comfyui/{user}/{project}/ */
    int64_t proxy_max_body_bytes, proxy_max_upload_bytes;
    int proxy_timeout_s, proxy_ws_ping_s, proxy_autostart;
    int queue_badge; /* 1: the proxied page gets the hub's queue-position badge */
    /* the admission queue in front of POST /prompt */
    int max_concurrent, prompt_timeout_s, max_waiting_per_user, max_running_per_user;
    /* several hubs on one PostgreSQL store (peers.h) */
    char *hub_id;
    int hub_silent_after_s;
} cd_hub_config;

/* Parses argv[first..] over the defaults, the config file and the environment. Returns 0, 1
 * when --help was printed (to out), or -1 with a message in err. The config owns its strings. */
int cd_hub_config_load(cd_hub_config *cfg, int argc, char **argv, int first, FILE *out, char *err, size_t errlen);
void cd_hub_config_free(cd_hub_config *cfg);

/* The instance command for one start: the template split on blanks, each word with its
 * {placeholders} replaced ({comfyd} {python} {repo} {listen} {port} {base_dir} {user}
 * {project}); no shell is involved, so a value never becomes two words. Returns a
 * NULL-terminated array (free with cd_hub_argv_free) or NULL with a message. */
typedef struct {
    const char *listen, *base_dir, *user;
    int port;
    long long project;
    const char *template; /* NULL: COMFYUI_COMMAND's (a host may have its own) */
} cd_hub_command_vars;
char **cd_hub_config_command_argv(const cd_hub_config *cfg, const cd_hub_command_vars *v, char *err, size_t errlen);
/* Whether a template passes the port as the two words `--port {port}`: how a pid is told to
 * be the instance on its port (a remote kill's guard, an adoption) rather than a recycled one. */
bool cd_hub_command_names_port(const char *template);
void cd_hub_argv_free(char **argv);

#endif
