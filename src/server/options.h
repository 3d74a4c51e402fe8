/* `comfyd serve`'s command line: ComfyUI's server flags under the same names (so existing
 * launchers and ComfyUI's own test harness work), plus a few of our own. */
#ifndef CD_SERVER_OPTIONS_H
#define CD_SERVER_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/log.h"

typedef enum { CD_CACHE_CLASSIC, CD_CACHE_LRU, CD_CACHE_NONE } cd_cache_mode;

typedef struct {
    char **listen; /* owned list of addresses */
    size_t nlisten;
    int port;
    char *base_dir, *output_dir, *input_dir, *temp_dir, *user_dir; /* owned; NULL = default */
    char **extra_model_paths;
    size_t nextra_model_paths;
    char *cors_origin; /* NULL: CORS off (the origin check applies instead) */
    double max_upload_mb;
    bool max_upload_given; /* ComfyUI then reports max_upload_size as a float */
    char *front_end_root;
    cd_cache_mode cache_mode;
    long cache_lru;
    bool disable_custom_nodes, multi_user, disable_metadata, quick_test_for_ci, dont_print_server;
    cd_log_level log_level;
    bool log_stdout;
    unsigned header_timeout_s, idle_timeout_s;
    bool handle_signals; /* SIGINT/SIGTERM stop the server (the command line sets it) */
    int argc; /* the process's argv, as /system_stats reports it (borrowed) */
    char **argv;
} cd_serve_options;

/* Parses argv[first..argc). Returns 0; 1 when --help was printed (exit 0); or -1 with a message in
 * err (exit 2, as argparse does). */
int cd_serve_options_parse(cd_serve_options *opts, int argc, char **argv, int first, char *err, size_t errlen);
void cd_serve_options_free(cd_serve_options *opts);
void cd_serve_options_print_help(void);

#endif
