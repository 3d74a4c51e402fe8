/* The subcommands of `comfyd`. Each takes the full argv (argv[1] is its own name) and returns
 * the process exit code. */
#ifndef CD_CLI_COMMANDS_H
#define CD_CLI_COMMANDS_H

int cd_cmd_run(int argc, char **argv);

#endif
