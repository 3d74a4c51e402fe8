/* comfyd: the command line. `comfyd serve` runs a workflow server, `comfyd hub` the platform
 * around many of them; run, nodes and models work without a server. */
#include <errno.h>
#include <malloc.h>
#include <sodium.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/commands.h"
#include "comfyd_version.h"
#include "server/instance.h"
#include "server/options.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: comfyd <command> [options]\n"
            "\n"
            "comfyd %s: a ComfyUI-compatible workflow server.\n"
            "\n"
            "commands:\n"
            "  serve      run a workflow server speaking ComfyUI's HTTP and WebSocket API\n"
            "             (comfyd serve --help lists its flags, which are ComfyUI's)\n"
            "  hub        the platform: users, projects, one supervised instance per project\n"
            "             (comfyd hub --help lists its settings)\n"
            "  run FILE   run one workflow (API or UI format) in this process (comfyd run --help)\n"
            "  nodes      node packs: list, show, install, uninstall, update, disable, enable, fix,\n"
            "             snapshot (comfyd nodes --help)\n"
            "  models     models: list, download (comfyd models --help)\n"
            "  version    print the version\n"
            "  help       this text\n",
            COMFYD_VERSION);
}

static int cmd_serve(int argc, char **argv) {
    cd_serve_options opts;
    char err[512];
    int rc = cd_serve_options_parse(&opts, argc, argv, 2, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "comfyd serve: error: %s\n", err);
        cd_serve_options_free(&opts);
        return rc < 0 ? 2 : 0;
    }
    cd_log_setup(opts.log_level, opts.log_stdout);
    int code = cd_instance_run(&opts);
    cd_serve_options_free(&opts);
    if (code == CD_INSTANCE_RESTART) {
        /* In place: same executable, same arguments, same pid (a supervisor sees no exit); the
         * listening port is free again and SO_REUSEADDR lets the new image bind it at once. */
        fflush(NULL);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "comfyd serve: cannot restart: %s\n", strerror(errno));
        return 1;
    }
    return code;
}

/* A prompt is parsed, validated and run through many small allocations that are all freed at
 * its end. With glibc's defaults the freed top of the heap goes back to the kernel (and large
 * buffers such as a request body are mmap'd and unmapped) every time, so the next prompt
 * page-faults all of it in again: for a 5,000-node prompt that was a fifth of the time. Keep
 * up to 64 MiB of freed memory for reuse instead. */
static void tune_malloc(void) {
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    mallopt(M_TOP_PAD, 4 << 20);
}

int main(int argc, char **argv) {
    tune_malloc();
    if (sodium_init() < 0) {
        fprintf(stderr, "comfyd: libsodium failed to initialise\n");
        return 1;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) return cmd_serve(argc, argv);
    if (!strcmp(cmd, "hub")) return cd_cmd_hub(argc, argv);
    if (!strcmp(cmd, "run")) return cd_cmd_run(argc, argv);
    if (!strcmp(cmd, "nodes")) return cd_cmd_nodes(argc, argv);
    if (!strcmp(cmd, "models")) return cd_cmd_models(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("comfyd %s (ComfyUI API %s)\n", COMFYD_VERSION, COMFYD_COMFYUI_API_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "comfyd: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
