/* Node packs on disk. A comfyd pack is a folder in custom_nodes/ with a manifest,
 * comfyd-pack.json: {"id", "version", "description", "abi"} (abi: the CD_NODE_ABI_VERSION it is
 * written for), and either a built shared library (*.so at its top level, which is what the
 * engine loads) or C sources with a Makefile, a CMakeLists.txt or only *.c files, built here
 * against include/comfyd/node.h with a time limit and the log kept in .comfyd-build.log.
 *
 * Disabled packs follow ComfyUI-Manager's layout: custom_nodes/.disabled/<name> (the older
 * custom_nodes/<name>.disabled is recognised too). The engine skips both. */
#ifndef CD_MANAGER_PACKS_H
#define CD_MANAGER_PACKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CD_PACK_MANIFEST "comfyd-pack.json"
#define CD_PACK_BUILD_LOG ".comfyd-build.log"

typedef struct {
    char id[128];
    char version[64];
    char description[512];
    int abi; /* 0 when absent */
} cd_pack_manifest;

/* Parses manifest text. id must be a plain name ([A-Za-z0-9._-], not starting with '.');
 * abi, when present, a positive integer. Returns 0 or -1 with a message. */
int cd_pack_manifest_parse(const char *text, size_t len, cd_pack_manifest *out, char *err, size_t errlen);
/* Reads dir/comfyd-pack.json: 0, 1 when there is none, -1 when it is invalid. */
int cd_pack_manifest_read(const char *dir, cd_pack_manifest *out, char *err, size_t errlen);
/* True when name is a plain folder name for custom_nodes/. */
bool cd_pack_name_is_valid(const char *name);

/* Builds the pack in dir when it has sources (see the file comment). include_dir holds
 * comfyd/node.h. Fails when the build fails, takes longer than timeout_s (its processes are
 * killed), or leaves no *.so at the top of dir. The build's output goes to
 * dir/.comfyd-build.log; on failure its last lines are in err. */
int cd_pack_build(const char *dir, const char *include_dir, int timeout_s, const volatile int *cancel, char *err,
                  size_t errlen);

/* Runs argv-less shell command cmd in dir with output appended to log_path, within timeout_s.
 * Returns the exit status (0 success), -2 on timeout or cancel, -1 when it could not start. */
int cd_pack_run(const char *cmd, const char *dir, const char *log_path, int timeout_s, const volatile int *cancel);

/* Where the pack `name` is: the active folder custom_nodes/<name> (*enabled true) or a
 * disabled copy. Returns a new absolute path or NULL. */
char *cd_packs_locate(const char *custom_nodes_dir, const char *name, bool *enabled);

/* Every pack folder, active and disabled, as /customnode/installed shows them:
 * {name: {"ver", "cnr_id", "aux_id", "enabled"}} plus our fields "path" (relative to
 * custom_nodes), "git" (bool) and "url" (origin, when git). New object. */
json_t *cd_packs_installed(const char *custom_nodes_dir);

#endif
