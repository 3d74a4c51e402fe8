/* A real hub in the fuzzing process, started once: an admin (user 1) with an API token, a
 * student (user 2) and the student's project 1, whose instance is not running. */
#ifndef CD_FUZZ_HUB_HARNESS_H
#define CD_FUZZ_HUB_HARNESS_H

#include <uv.h>

typedef struct {
    uv_loop_t *loop;
    int port;
    const char *token; /* the admin's */
} fuzz_hub;

const fuzz_hub *fuzz_hub_start(void);

#endif
