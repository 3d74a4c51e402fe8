/* The server feature flags: GET /features and the WebSocket feature_flags reply. */
#ifndef CD_SERVER_FEATURES_H
#define CD_SERVER_FEATURES_H

#include <jansson.h>

#include "server/instance.h"

/* A new object: {"supports_preview_metadata": true, "max_upload_size": N}. N is an integer by
 * default and a float when --max-upload-size was given, as in ComfyUI (MB * 1024 * 1024 with
 * Python's int/float distinction). */
json_t *cd_features_json(const cd_instance *inst);

#endif
