#include "manager/packs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/path.h"
#include "base/str.h"
#include "manager/gitops.h"

extern char **environ;

bool cd_pack_name_is_valid(const char *name) {
    if (!name || !*name || name[0] == '.' || strlen(name) > 120) return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') return false;
    return true;
}

static void copy_field(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

int cd_pack_manifest_parse(const char *text, size_t len, cd_pack_manifest *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) {
        snprintf(err, errlen, CD_PACK_MANIFEST ": invalid JSON at line %d: %s", je.line, je.text);
        return -1;
    }
    int rc = -1;
    json_t *id = json_object_get(root, "id"), *ver = json_object_get(root, "version"),
           *desc = json_object_get(root, "description"), *abi = json_object_get(root, "abi");
    if (!json_is_object(root)) snprintf(err, errlen, CD_PACK_MANIFEST ": not an object");
    else if (!json_is_string(id) || !cd_pack_name_is_valid(json_string_value(id)))
        snprintf(err, errlen, CD_PACK_MANIFEST ": \"id\" must be a plain name ([A-Za-z0-9._-])");
    else if (ver && !json_is_string(ver)) snprintf(err, errlen, CD_PACK_MANIFEST ": \"version\" must be a string");
    else if (desc && !json_is_string(desc)) snprintf(err, errlen, CD_PACK_MANIFEST ": \"description\" must be a string");
    else if (abi && (!json_is_integer(abi) || json_integer_value(abi) < 1 || json_integer_value(abi) > 1000000))
        snprintf(err, errlen, CD_PACK_MANIFEST ": \"abi\" must be a positive integer");
    else {
        copy_field(out->id, sizeof out->id, json_string_value(id));
        copy_field(out->version, sizeof out->version, ver ? json_string_value(ver) : "");
        copy_field(out->description, sizeof out->description, desc ? json_string_value(desc) : "");
        out->abi = abi ? (int)json_integer_value(abi) : 0;
        rc = 0;
    }
    json_decref(root);
    return rc;
}

int cd_pack_manifest_read(const char *dir, cd_pack_manifest *out, char *err, size_t errlen) {
    char *p = cd_path_join(dir, CD_PACK_MANIFEST);
    FILE *f = p ? fopen(p, "rb") : NULL;
    free(p);
    if (!f) return 1;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return cd_pack_manifest_parse(buf, n, out, err, errlen);
}

static bool has_file(const char *dir, const char *name) {
    char *p = cd_path_join(dir, name);
    struct stat st;
    bool r = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return r;
}

/* Counts top-level files ending in suffix. */
static int count_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && cd_str_ends_with_ci(e->d_name, suffix)) n++;
    closedir(d);
    return n;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cd_pack_run(const char *cmd, const char *dir, const char *log_path, int timeout_s, const volatile int *cancel) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    /* Its own process group, so that a timeout kills make and the compilers it started. */
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGCHLD);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) return -1;
    int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
    for (;;) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        if (w < 0 && errno != EINTR) return -1;
        if (now_ms() > deadline || (cancel && *cancel)) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            FILE *lf = fopen(log_path, "a");
            if (lf) {
                fprintf(lf, "\n[comfyd] %s: killed\n", cancel && *cancel ? "cancelled" : "time limit reached");
                fclose(lf);
            }
            return -2;
        }
        usleep(20000);
    }
}

/* The last few lines of a file, for an error message. */
static void log_tail(const char *path, char *out, size_t cap) {
    out[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    long take = n > 600 ? 600 : n;
    fseek(f, n - take, SEEK_SET);
    size_t got = fread(out, 1, cap - 1 < (size_t)take ? cap - 1 : (size_t)take, f);
    out[got] = 0;
    fclose(f);
}

/* 'text' with single quotes escaped, for sh. */
static void sh_quote(cd_buf *b, const char *s) {
    cd_buf_append_str(b, "'");
    for (; *s; s++) {
        if (*s == '\'') cd_buf_append_str(b, "'\\''");
        else cd_buf_append(b, s, 1);
    }
    cd_buf_append_str(b, "'");
}

int cd_pack_build(const char *dir, const char *include_dir, int timeout_s, const volatile int *cancel, char *err,
                  size_t errlen) {
    bool make = has_file(dir, "Makefile") || has_file(dir, "makefile") || has_file(dir, "GNUmakefile");
    bool cmake = !make && has_file(dir, "CMakeLists.txt");
    bool sources = !make && !cmake && count_suffix(dir, ".c") > 0;
    if (!make && !cmake && !sources) {
        if (count_suffix(dir, ".so") > 0) return 0; /* prebuilt */
        snprintf(err, errlen, "the pack has neither a built library (*.so) nor sources to build");
        return -1;
    }
    cd_buf cmd = CD_BUF_INIT;
    cd_buf_append_str(&cmd, "COMFYD_INCLUDE=");
    sh_quote(&cmd, include_dir);
    cd_buf_append_str(&cmd, "; export COMFYD_INCLUDE; CC=${CC:-cc}; export CC; CFLAGS=\"-O2 -fPIC -I$COMFYD_INCLUDE\"; export CFLAGS; ");
    if (make) {
        cd_buf_append_str(&cmd, "make -j2");
    } else if (cmake) {
        cd_buf_append_str(&cmd, "cmake -S . -B .comfyd-build -DCMAKE_BUILD_TYPE=Release "
                                "-DCMAKE_C_FLAGS=\"-I$COMFYD_INCLUDE\" -DCOMFYD_INCLUDE=\"$COMFYD_INCLUDE\" "
                                "-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=\"$PWD\" && cmake --build .comfyd-build -j2");
    } else {
        cd_buf_append_str(&cmd, "$CC $CFLAGS -shared -o pack.so *.c");
    }
    char *log = cd_path_join(dir, CD_PACK_BUILD_LOG);
    if (!cmd.data || !log) {
        cd_buf_free(&cmd);
        free(log);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    unlink(log);
    FILE *lf = fopen(log, "w");
    if (lf) {
        fprintf(lf, "[comfyd] %s\n", cmd.data);
        fclose(lf);
    }
    int rc = cd_pack_run(cmd.data, dir, log, timeout_s, cancel);
    cd_buf_free(&cmd);
    int ret = 0;
    if (rc != 0) {
        char tail[640];
        log_tail(log, tail, sizeof tail);
        if (rc == -2 && cancel && *cancel) snprintf(err, errlen, "build cancelled: %s", tail);
        else if (rc == -2) snprintf(err, errlen, "build stopped after %d s (time limit): %s", timeout_s, tail);
        else if (rc == -1) snprintf(err, errlen, "cannot start the build: %s", strerror(errno));
        else snprintf(err, errlen, "build failed (exit %d): %s", rc, tail);
        ret = -1;
    } else if (count_suffix(dir, ".so") == 0) {
        snprintf(err, errlen, "the build made no shared library (*.so) at the top of the pack");
        ret = -1;
    }
    free(log);
    return ret;
}

char *cd_packs_locate(const char *custom_nodes_dir, const char *name, bool *enabled) {
    if (!cd_pack_name_is_valid(name)) return NULL;
    char *p = cd_path_join(custom_nodes_dir, name);
    if (p && cd_path_is_dir(p)) {
        *enabled = true;
        return p;
    }
    free(p);
    *enabled = false;
    cd_buf b = CD_BUF_INIT;
    cd_buf_printf(&b, "%s/.disabled/%s", custom_nodes_dir, name);
    if (b.data && cd_path_is_dir(b.data)) return cd_buf_take(&b);
    cd_buf_reset(&b);
    cd_buf_printf(&b, "%s/%s.disabled", custom_nodes_dir, name);
    if (b.data && cd_path_is_dir(b.data)) return cd_buf_take(&b);
    /* .disabled/<name>@<version> (ComfyUI-Manager's versioned copies) */
    cd_buf_reset(&b);
    cd_buf_printf(&b, "%s/.disabled", custom_nodes_dir);
    DIR *d = b.data ? opendir(b.data) : NULL;
    char *found = NULL;
    struct dirent *e;
    size_t nl = strlen(name);
    while (d && !found && (e = readdir(d))) {
        if (!strncmp(e->d_name, name, nl) && e->d_name[nl] == '@') {
            cd_buf f = CD_BUF_INIT;
            cd_buf_printf(&f, "%s/%s", b.data, e->d_name);
            found = cd_buf_take(&f);
        }
    }
    if (d) closedir(d);
    cd_buf_free(&b);
    return found;
}

static void add_pack(json_t *out, const char *custom_nodes_dir, const char *rel, const char *name, bool enabled) {
    char *dir = cd_path_join(custom_nodes_dir, rel);
    if (!dir || !cd_path_is_dir(dir)) {
        free(dir);
        return;
    }
    cd_pack_manifest m;
    char err[256];
    bool has_manifest = cd_pack_manifest_read(dir, &m, err, sizeof err) == 0;
    char head[41] = "";
    bool git = cd_git_head(dir, head) == 0;
    char *url = git ? cd_git_origin_url(dir) : NULL;
    const char *ver = git ? head : has_manifest && m.version[0] ? m.version : "unknown";
    json_t *o = json_pack("{s:s, s:s, s:n, s:b, s:s, s:b}", "ver", ver, "cnr_id", "", "aux_id", "enabled", enabled,
                          "path", rel, "git", git);
    if (url) json_object_set_new(o, "url", json_string(url));
    if (has_manifest) {
        json_object_set_new(o, "version", json_string(m.version));
        json_object_set_new(o, "description", json_string(m.description));
    }
    /* An active copy wins over a disabled one of the same name. */
    json_t *prev = json_object_get(out, name);
    if (!prev || (enabled && !json_is_true(json_object_get(prev, "enabled")))) json_object_set_new(out, name, o);
    else json_decref(o);
    free(url);
    free(dir);
}

json_t *cd_packs_installed(const char *custom_nodes_dir) {
    json_t *out = json_object();
    DIR *d = opendir(custom_nodes_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "__pycache__")) continue;
        size_t n = strlen(e->d_name);
        if (n > 9 && !strcmp(e->d_name + n - 9, ".disabled")) {
            char *name = strndup(e->d_name, n - 9);
            if (name) add_pack(out, custom_nodes_dir, e->d_name, name, false);
            free(name);
        } else {
            add_pack(out, custom_nodes_dir, e->d_name, e->d_name, true);
        }
    }
    if (d) closedir(d);
    char *dis = cd_path_join(custom_nodes_dir, ".disabled");
    d = dis ? opendir(dis) : NULL;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *name = strdup(e->d_name);
        if (!name) continue;
        char *at = strchr(name, '@');
        if (at) *at = 0;
        char rel[512];
        snprintf(rel, sizeof rel, ".disabled/%s", e->d_name);
        add_pack(out, custom_nodes_dir, rel, name, false);
        free(name);
    }
    if (d) closedir(d);
    free(dis);
    return out;
}
