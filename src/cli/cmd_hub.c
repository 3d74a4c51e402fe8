/* comfyd hub: the platform (src/hub/). */
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "cli/commands.h"
#include "hub/config.h"
#include "hub/hub.h"

int cd_cmd_hub(int argc, char **argv) {
    cd_hub_config cfg;
    char err[1024] = "";
    int rc = cd_hub_config_load(&cfg, argc, argv, 2, stdout, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "comfyd hub: error: %s\n", err[0] ? err : "out of memory");
        cd_hub_config_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    /* Instances inherit the environment and run custom nodes: the password stays with the hub. */
    unsetenv("COMFYD_ADMIN_PASSWORD");
    cd_log_setup(cfg.log_level, false);
    int code = cd_hub_run(&cfg);
    cd_hub_config_free(&cfg);
    return code;
}
