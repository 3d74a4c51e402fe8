/* The built-in node packs, registered at start-up before custom_nodes/. Each pack is a file
 * (or a few) in this folder that uses only include/comfyd/node.h. */
#ifndef CD_NODES_BUILTIN_H
#define CD_NODES_BUILTIN_H

#include "comfyd/node.h"

typedef struct {
    const char *name;   /* pack name, for logs */
    const char *module; /* default python_module for its nodes */
    cd_pack_init_fn init;
} cd_builtin_pack;

/* NULL-terminated (init == NULL) table. */
extern const cd_builtin_pack cd_builtin_packs[];

#endif
