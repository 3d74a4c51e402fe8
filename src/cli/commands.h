/* The subcommands of `comfyd`. Each takes the full argv (argv[1] is its own name) and returns
 * the process exit code. */
#ifndef CD_CLI_COMMANDS_H
#define CD_CLI_COMMANDS_H

#include <stdint.h>

int cd_cmd_run(int argc, char **argv);
/* comfyd hub: users, projects and their supervised instances (cmd_hub.c). */
int cd_cmd_hub(int argc, char **argv);
/* comfyd nodes / comfyd models: the node-pack manager from the command line (cmd_nodes.c). */
int cd_cmd_nodes(int argc, char **argv);
int cd_cmd_models(int argc, char **argv);

/* Shared by cmd_nodes.c and cmd_models.c: [--base-directory D] [--user-directory U]
 * [--channel URL] [--mode M] before the verb. */
typedef struct {
    const char *base, *user, *channel, *mode;
    int first; /* index of the verb */
} cd_cli_manager_opts;
typedef struct cd_manager cd_manager;
int cd_cli_manager_parse(int argc, char **argv, cd_cli_manager_opts *o);
cd_manager *cd_cli_manager_open(const cd_cli_manager_opts *o);
void cd_cli_manager_progress(void *ctx, uint64_t done, uint64_t total);
int cd_cli_manager_report(const char *what, const char *name, int rc, const char *msg);

#endif
