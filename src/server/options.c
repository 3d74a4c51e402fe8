#include "server/options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    ARG_NONE,     /* --flag */
    ARG_ONE,      /* --flag VALUE */
    ARG_OPTIONAL, /* --flag [VALUE] (argparse nargs='?') */
    ARG_MANY,     /* --flag V [V ...] (nargs='+') */
} arg_kind;

/* ComfyUI flags that change nothing in comfyd (GPU, precision, attention, previews of latent
 * models, front-end download). They are accepted so that launchers written for ComfyUI work. */
static const struct {
    const char *name;
    arg_kind kind;
} ignored[] = {
    {"--cpu", ARG_NONE}, {"--gpu-only", ARG_NONE}, {"--highvram", ARG_NONE}, {"--normalvram", ARG_NONE},
    {"--lowvram", ARG_NONE}, {"--novram", ARG_NONE}, {"--force-fp16", ARG_NONE}, {"--force-fp32", ARG_NONE},
    {"--fp16-vae", ARG_NONE}, {"--bf16-vae", ARG_NONE}, {"--fp32-vae", ARG_NONE}, {"--cpu-vae", ARG_NONE},
    {"--fp16-unet", ARG_NONE}, {"--bf16-unet", ARG_NONE}, {"--fp8_e4m3fn-unet", ARG_NONE},
    {"--fp8_e5m2-unet", ARG_NONE}, {"--fp16-text-enc", ARG_NONE}, {"--fp32-text-enc", ARG_NONE},
    {"--force-upcast-attention", ARG_NONE}, {"--dont-upcast-attention", ARG_NONE},
    {"--use-split-cross-attention", ARG_NONE}, {"--use-quad-cross-attention", ARG_NONE},
    {"--use-pytorch-cross-attention", ARG_NONE}, {"--use-sage-attention", ARG_NONE},
    {"--use-flash-attention", ARG_NONE}, {"--disable-xformers", ARG_NONE}, {"--disable-smart-memory", ARG_NONE},
    {"--deterministic", ARG_NONE}, {"--force-channels-last", ARG_NONE}, {"--async-offload", ARG_NONE},
    {"--disable-ipex-optimize", ARG_NONE}, {"--supports-fp8-compute", ARG_NONE},
    {"--auto-launch", ARG_NONE}, {"--disable-auto-launch", ARG_NONE}, {"--windows-standalone-build", ARG_NONE},
    {"--disable-api-nodes", ARG_NONE}, {"--enable-compress-response-body", ARG_NONE},
    {"--cuda-device", ARG_ONE}, {"--cuda-malloc", ARG_NONE}, {"--disable-cuda-malloc", ARG_NONE},
    {"--directml", ARG_OPTIONAL}, {"--oneapi-device-selector", ARG_ONE}, {"--reserve-vram", ARG_ONE},
    {"--preview-method", ARG_ONE}, {"--preview-size", ARG_ONE}, {"--fast", ARG_OPTIONAL},
    {"--default-hashing-function", ARG_ONE}, {"--front-end-version", ARG_ONE}, {"--database-url", ARG_ONE},
    {"--whitelist-custom-nodes", ARG_MANY}, {"--cache-classic", ARG_NONE},
};

static const char help_text[] =
    "usage: comfyd serve [options]\n"
    "\n"
    "Starts a ComfyUI-compatible workflow server. The flags are ComfyUI's, with the same names.\n"
    "\n"
    "network:\n"
    "  --listen [IP[,IP...]]         addresses to listen on (default 127.0.0.1; bare: 0.0.0.0,::)\n"
    "  --port N                      port (default 8188)\n"
    "  --enable-cors-header [ORIGIN] send CORS headers (ORIGIN defaults to *); otherwise cross-origin\n"
    "                                requests to a loopback server are refused (ComfyUI's origin check)\n"
    "  --max-upload-size MB          largest request body (default 100)\n"
    "  --tls-keyfile F, --tls-certfile F\n"
    "                                not supported yet: refused with a message (put a TLS proxy in front)\n"
    "\n"
    "directories:\n"
    "  --base-directory D            holds models/, custom_nodes/, input/, output/, temp/, user/\n"
    "                                (default: the current directory)\n"
    "  --output-directory D          --input-directory D\n"
    "  --temp-directory D            temp files go to D/temp (cleared at start and stop)\n"
    "  --user-directory D            user data (must exist)\n"
    "  --extra-model-paths-config F [F ...]\n"
    "                                extra model folders (extra_model_paths.yaml format)\n"
    "  --front-end-root D            serve a web front end (e.g. ComfyUI's) from D\n"
    "\n"
    "execution:\n"
    "  --cache-classic               keep only what the current prompt uses (default)\n"
    "  --cache-lru N                 keep up to N node results across prompts\n"
    "  --cache-none                  cache nothing between prompts\n"
    "  --disable-all-custom-nodes    do not load packs from custom_nodes/\n"
    "  --disable-metadata            do not write the prompt into saved images\n"
    "  --multi-user                  per-user storage, chosen by the comfy-user header\n"
    "\n"
    "logging and process:\n"
    "  --verbose [LEVEL]             DEBUG, INFO (default), WARNING, ERROR, CRITICAL; bare: DEBUG\n"
    "  --log-stdout                  log to stdout instead of stderr\n"
    "  --dont-print-server           do not print the address at start\n"
    "  --quick-test-for-ci           exit right after start-up\n"
    "  --header-timeout SECONDS      a request's headers must arrive within this (default 10)\n"
    "  --idle-timeout SECONDS        idle keep-alive connections close after this (default 75)\n"
    "\n"
    "accepted for compatibility, no effect (no GPU in comfyd): --cpu, --gpu-only, --lowvram, --novram,\n"
    "--highvram, --normalvram, the --fp*/--bf16* precision flags, the attention flags, --cuda-device N,\n"
    "--directml [N], --reserve-vram GB, --preview-method M, --preview-size N, --fast, --auto-launch,\n"
    "--disable-auto-launch, --front-end-version V, --default-hashing-function F, --database-url URL,\n"
    "--whitelist-custom-nodes N..., --disable-api-nodes, --enable-compress-response-body.\n";

void cd_serve_options_print_help(void) { fputs(help_text, stdout); }

static int push(char ***list, size_t *n, const char *value) {
    char **l = realloc(*list, (*n + 1) * sizeof *l);
    if (!l) return -1;
    *list = l;
    if (!(l[*n] = strdup(value))) return -1;
    (*n)++;
    return 0;
}

static void free_list(char ***list, size_t *n) {
    for (size_t i = 0; i < *n; i++) free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

static int set_str(char **slot, const char *value) {
    free(*slot);
    *slot = strdup(value);
    return *slot ? 0 : -1;
}

/* Splits "a,b,c" into the listen list, replacing what was there. */
static int set_listen(cd_serve_options *o, const char *value) {
    free_list(&o->listen, &o->nlisten);
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[128];
        if (len == 0 || len >= sizeof item) return -1;
        memcpy(item, p, len);
        item[len] = '\0';
        if (push(&o->listen, &o->nlisten, item) < 0) return -1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static bool looks_like_flag(const char *s) { return s[0] == '-' && s[1] == '-'; }

int cd_serve_options_parse(cd_serve_options *o, int argc, char **argv, int first, char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    o->port = 8188;
    o->max_upload_mb = 100;
    o->log_level = CD_LOG_INFO;
    o->header_timeout_s = 10;
    o->idle_timeout_s = 75;
    o->handle_signals = true;
    o->argc = argc;
    o->argv = argv;
    if (set_listen(o, "127.0.0.1") < 0) goto oom;
    for (int i = first; i < argc; i++) {
        char *arg = argv[i];
        char name[64];
        const char *inline_value = NULL;
        const char *eq = strchr(arg, '=');
        if (looks_like_flag(arg) && eq && (size_t)(eq - arg) < sizeof name) {
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = '\0';
            inline_value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
        }
        /* next_value: the flag's value, inline or the next argument. */
        const char *value = inline_value;
        bool has_next = i + 1 < argc && !looks_like_flag(argv[i + 1]);
#define TAKE_VALUE()                                                                                                   \
    do {                                                                                                               \
        if (!value) {                                                                                                  \
            if (!has_next) {                                                                                           \
                snprintf(err, errlen, "argument %s: expected one argument", name);                                     \
                return -1;                                                                                             \
            }                                                                                                          \
            value = argv[++i];                                                                                         \
        }                                                                                                              \
    } while (0)
#define TAKE_OPTIONAL()                                                                                                \
    do {                                                                                                               \
        if (!value && has_next) value = argv[++i];                                                                     \
    } while (0)
        long num;
        if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
            cd_serve_options_print_help();
            return 1;
        } else if (!strcmp(name, "--listen")) {
            TAKE_OPTIONAL();
            if (set_listen(o, value ? value : "0.0.0.0,::") < 0) {
                snprintf(err, errlen, "argument --listen: invalid address list '%s'", value);
                return -1;
            }
        } else if (!strcmp(name, "--port")) {
            TAKE_VALUE();
            if (parse_long(value, 0, 65535, &num) < 0) {
                snprintf(err, errlen, "argument --port: invalid int value: '%s'", value);
                return -1;
            }
            o->port = (int)num;
        } else if (!strcmp(name, "--base-directory")) {
            TAKE_VALUE();
            if (set_str(&o->base_dir, value) < 0) goto oom;
        } else if (!strcmp(name, "--output-directory")) {
            TAKE_VALUE();
            if (set_str(&o->output_dir, value) < 0) goto oom;
        } else if (!strcmp(name, "--input-directory")) {
            TAKE_VALUE();
            if (set_str(&o->input_dir, value) < 0) goto oom;
        } else if (!strcmp(name, "--temp-directory")) {
            TAKE_VALUE();
            if (set_str(&o->temp_dir, value) < 0) goto oom;
        } else if (!strcmp(name, "--user-directory")) {
            TAKE_VALUE();
            if (set_str(&o->user_dir, value) < 0) goto oom;
        } else if (!strcmp(name, "--front-end-root")) {
            TAKE_VALUE();
            if (set_str(&o->front_end_root, value) < 0) goto oom;
        } else if (!strcmp(name, "--extra-model-paths-config")) {
            TAKE_VALUE();
            if (push(&o->extra_model_paths, &o->nextra_model_paths, value) < 0) goto oom;
            while (!inline_value && i + 1 < argc && !looks_like_flag(argv[i + 1]))
                if (push(&o->extra_model_paths, &o->nextra_model_paths, argv[++i]) < 0) goto oom;
        } else if (!strcmp(name, "--enable-cors-header")) {
            TAKE_OPTIONAL();
            if (set_str(&o->cors_origin, value ? value : "*") < 0) goto oom;
        } else if (!strcmp(name, "--max-upload-size")) {
            TAKE_VALUE();
            char *end;
            double mb = strtod(value, &end);
            if (end == value || *end || !(mb > 0) || !isfinite(mb) || mb > 1024 * 1024) {
                snprintf(err, errlen, "argument --max-upload-size: invalid float value: '%s'", value);
                return -1;
            }
            o->max_upload_mb = mb;
            o->max_upload_given = true;
        } else if (!strcmp(name, "--cache-lru")) {
            TAKE_VALUE();
            if (parse_long(value, 0, 1L << 30, &num) < 0) {
                snprintf(err, errlen, "argument --cache-lru: invalid int value: '%s'", value);
                return -1;
            }
            o->cache_mode = num > 0 ? CD_CACHE_LRU : CD_CACHE_CLASSIC;
            o->cache_lru = num;
        } else if (!strcmp(name, "--cache-none")) {
            o->cache_mode = CD_CACHE_NONE;
        } else if (!strcmp(name, "--disable-all-custom-nodes")) {
            o->disable_custom_nodes = true;
        } else if (!strcmp(name, "--multi-user")) {
            o->multi_user = true;
        } else if (!strcmp(name, "--disable-metadata")) {
            o->disable_metadata = true;
        } else if (!strcmp(name, "--quick-test-for-ci")) {
            o->quick_test_for_ci = true;
        } else if (!strcmp(name, "--dont-print-server")) {
            o->dont_print_server = true;
        } else if (!strcmp(name, "--log-stdout")) {
            o->log_stdout = true;
        } else if (!strcmp(name, "--verbose")) {
            TAKE_OPTIONAL();
            if (cd_log_level_parse(value ? value : "DEBUG", &o->log_level) < 0) {
                snprintf(err, errlen,
                         "argument --verbose: invalid choice: '%s' (choose from 'DEBUG', 'INFO', 'WARNING', 'ERROR', "
                         "'CRITICAL')",
                         value);
                return -1;
            }
        } else if (!strcmp(name, "--header-timeout") || !strcmp(name, "--idle-timeout")) {
            TAKE_VALUE();
            if (parse_long(value, 1, 86400, &num) < 0) {
                snprintf(err, errlen, "argument %s: expected seconds between 1 and 86400, got '%s'", name, value);
                return -1;
            }
            if (name[2] == 'h') o->header_timeout_s = (unsigned)num;
            else o->idle_timeout_s = (unsigned)num;
        } else if (!strcmp(name, "--tls-keyfile") || !strcmp(name, "--tls-certfile")) {
            snprintf(err, errlen,
                     "%s: TLS is not supported by comfyd yet; serve plain HTTP on loopback and put a TLS-terminating "
                     "proxy (nginx, caddy) in front",
                     name);
            return -1;
        } else {
            bool known = false;
            for (size_t k = 0; k < sizeof ignored / sizeof ignored[0]; k++) {
                if (strcmp(name, ignored[k].name) != 0) continue;
                known = true;
                if (ignored[k].kind == ARG_ONE) TAKE_VALUE();
                else if (ignored[k].kind == ARG_OPTIONAL) TAKE_OPTIONAL();
                else if (ignored[k].kind == ARG_MANY) {
                    TAKE_VALUE();
                    while (!inline_value && i + 1 < argc && !looks_like_flag(argv[i + 1])) i++;
                }
                break;
            }
            if (!known) {
                snprintf(err, errlen, "unrecognized arguments: %s (see comfyd serve --help)", arg);
                return -1;
            }
        }
#undef TAKE_VALUE
#undef TAKE_OPTIONAL
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

void cd_serve_options_free(cd_serve_options *o) {
    free_list(&o->listen, &o->nlisten);
    free_list(&o->extra_model_paths, &o->nextra_model_paths);
    free(o->base_dir);
    free(o->output_dir);
    free(o->input_dir);
    free(o->temp_dir);
    free(o->user_dir);
    free(o->cors_origin);
    free(o->front_end_root);
}
