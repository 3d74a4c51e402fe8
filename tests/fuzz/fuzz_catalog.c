/* Fuzzes the manager's parsers of untrusted catalog data: custom-node-list.json entries (and
 * their keys and lookups), extension-node-map.json, model-list.json (and the models/ folder
 * each entry resolves to), and a pack's comfyd-pack.json manifest. The same input is given to
 * each parser. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/path.h"
#include "manager/archive.h"
#include "manager/catalog.h"
#include "manager/packs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    char err[256];
    json_t *nodes = cd_catalog_parse_nodes(text, size, err, sizeof err);
    json_t *models = cd_catalog_parse_models(text, size, err, sizeof err);
    json_t *map = cd_catalog_parse_ext_map(text, size, err, sizeof err);
    cd_catalog cat = {.nodes = nodes ? nodes : json_array(), .ext_map = map ? map : json_object(),
                      .models = models ? models : json_array()};
    size_t i;
    json_t *e;
    json_array_foreach(cat.nodes, i, e) {
        char *k = cd_catalog_entry_key(e);
        if (k) {
            cd_catalog_find(&cat, k);
            free(k);
        }
        const char *f = json_string_value(json_array_get(json_object_get(e, "files"), 0));
        if (f) {
            cd_catalog_url_listed(&cat, f);
            cd_archive_entry_is_safe(f);
        }
    }
    json_array_foreach(cat.models, i, e) {
        char *folder = cd_catalog_model_folder(e);
        /* whatever the entry says, the folder stays under models/ */
        if (folder && (folder[0] == '/' || !cd_path_rel_is_safe(folder))) abort();
        free(folder);
        cd_catalog_find_model(&cat, json_string_value(json_object_get(e, "save_path")),
                              json_string_value(json_object_get(e, "base")), json_string_value(json_object_get(e, "filename")));
    }
    json_decref(cat.nodes);
    json_decref(cat.models);
    json_decref(cat.ext_map);
    cd_pack_manifest m;
    if (cd_pack_manifest_parse(text, size, &m, err, sizeof err) == 0 && !cd_pack_name_is_valid(m.id)) abort();
    return 0;
}
