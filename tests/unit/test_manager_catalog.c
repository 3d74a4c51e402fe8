/* Catalog parsing (ComfyUI-Manager's custom-node-list.json, extension-node-map.json,
 * model-list.json), entry keys and lookups, the model folder rules, and pack manifests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/path.h"
#include "manager/catalog.h"
#include "manager/packs.h"

static json_t *parse_nodes(const char *text) {
    char err[256];
    return cd_catalog_parse_nodes(text, strlen(text), err, sizeof err);
}

static void node_list(void **state) {
    (void)state;
    json_t *n = parse_nodes("{\"custom_nodes\": ["
                            "{\"id\": \"a\", \"files\": [\"https://github.com/x/A-Pack.git\"]},"
                            "{\"files\": [\"https://github.com/x/b-pack/\"], \"title\": \"B\"},"
                            "{\"id\": \"c\", \"files\": []},"
                            "{\"id\": 3, \"files\": [\"u\"]},"
                            "{\"id\": \"d\", \"files\": [5]},"
                            "\"not an object\"]}");
    assert_non_null(n);
    assert_int_equal(json_array_size(n), 2); /* only the valid entries */
    char *k = cd_catalog_entry_key(json_array_get(n, 0));
    assert_string_equal(k, "a");
    free(k);
    k = cd_catalog_entry_key(json_array_get(n, 1));
    assert_string_equal(k, "b-pack"); /* last segment, without "/" */
    free(k);
    cd_catalog cat = {.nodes = n, .ext_map = json_object(), .models = json_array()};
    assert_ptr_equal(cd_catalog_find(&cat, "a"), json_array_get(n, 0));
    assert_ptr_equal(cd_catalog_find(&cat, "https://github.com/x/A-Pack"), json_array_get(n, 0));
    assert_ptr_equal(cd_catalog_find(&cat, "b-pack"), json_array_get(n, 1));
    assert_null(cd_catalog_find(&cat, "zzz"));
    assert_true(cd_catalog_url_listed(&cat, "https://github.com/x/A-Pack"));
    assert_true(cd_catalog_url_listed(&cat, "https://github.com/x/b-pack.git"));
    assert_false(cd_catalog_url_listed(&cat, "https://github.com/x/A-Pack2"));
    assert_false(cd_catalog_url_listed(&cat, "https://github.com/evil/A-Pack"));
    json_decref(cat.ext_map);
    json_decref(cat.models);
    json_decref(n);

    assert_null(parse_nodes("{\"nodes\": []}"));
    assert_null(parse_nodes("[1,2]"));
    assert_null(parse_nodes("{not json"));
    json_t *empty = parse_nodes("{\"custom_nodes\": []}");
    assert_int_equal(json_array_size(empty), 0);
    json_decref(empty);
}

static void ext_map_and_models(void **state) {
    (void)state;
    char err[256];
    const char *map = "{\"https://github.com/x/a\": [[\"NodeA\", \"NodeB\"], {\"title_aux\": \"A\"}],"
                      " \"https://github.com/x/b\": [[\"NodeC\"]], \"bad\": [\"x\"], \"bad2\": 3}";
    json_t *m = cd_catalog_parse_ext_map(map, strlen(map), err, sizeof err);
    assert_non_null(m);
    assert_int_equal(json_object_size(m), 2);
    assert_true(json_is_object(json_array_get(json_object_get(m, "https://github.com/x/b"), 1)));
    json_decref(m);

    const char *models = "{\"models\": [{\"name\": \"a\", \"type\": \"lora\", \"base\": \"SD1.5\", \"save_path\": \"default\","
                         " \"filename\": \"a.safetensors\", \"url\": \"https://h/a\"}, {\"name\": \"no url\", \"save_path\": \"x\","
                         " \"filename\": \"b\"}]}";
    json_t *ml = cd_catalog_parse_models(models, strlen(models), err, sizeof err);
    assert_int_equal(json_array_size(ml), 1);
    cd_catalog cat = {.nodes = json_array(), .ext_map = json_object(), .models = ml};
    assert_non_null(cd_catalog_find_model(&cat, "default", "SD1.5", "a.safetensors"));
    assert_null(cd_catalog_find_model(&cat, "default", "SDXL", "a.safetensors"));
    assert_null(cd_catalog_find_model(&cat, "loras", "SD1.5", "a.safetensors"));
    json_decref(cat.nodes);
    json_decref(cat.ext_map);
    json_decref(ml);
}

static char *folder(const char *type, const char *save_path, const char *filename) {
    json_t *e = json_pack("{s:s, s:s, s:s}", "type", type, "save_path", save_path, "filename", filename);
    char *f = cd_catalog_model_folder(e);
    json_decref(e);
    return f;
}

static void model_folders(void **state) {
    (void)state;
    static const char *cases[][4] = {
        {"checkpoint", "default", "m.safetensors", "checkpoints"},
        {"LoRA", "default", "m.safetensors", "loras"},
        {"upscale", "default", "m.pth", "upscale_models"},
        {"unet", "default", "m", "diffusion_models"},
        {"something", "default", "m", "etc"},
        {"lora", "loras/sd15", "m", "loras/sd15"},
        {"lora", "../../etc/passwd", "m", "etc"},
        {"lora", "/abs", "m", "etc"},
        {"lora", "a\\b", "m", "etc"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *f = folder(cases[i][0], cases[i][1], cases[i][2]);
        assert_non_null(f);
        assert_string_equal(f, cases[i][3]);
        free(f);
    }
    /* a file name is a plain name */
    assert_null(folder("lora", "loras", "../x"));
    assert_null(folder("lora", "loras", "a/b"));
    assert_null(folder("lora", "loras", "c:x"));
    assert_null(folder("lora", "loras", ".."));
    assert_null(folder("lora", "loras", ""));
}

static void channel_from_directory(void **state) {
    (void)state;
    char dir[] = "/tmp/cd-chan-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *p = cd_path_join(dir, "custom-node-list.json");
    FILE *f = fopen(p, "w");
    fputs("{\"custom_nodes\": [{\"id\": \"local\", \"files\": [\"packs/local\"], \"install_type\": \"copy\"}]}", f);
    fclose(f);
    cd_catalog *cat = NULL;
    char err[256];
    assert_int_equal(cd_catalog_load(dir, &cat, err, sizeof err), 0);
    assert_int_equal(json_array_size(cat->nodes), 1);
    assert_int_equal(json_object_size(cat->ext_map), 0); /* optional files */
    assert_int_equal(json_array_size(cat->models), 0);
    char *r = cd_catalog_resolve_file(cat, "packs/local");
    char *want = cd_path_join(dir, "packs/local");
    assert_string_equal(r, want);
    free(r);
    free(want);
    r = cd_catalog_resolve_file(cat, "../escape");
    assert_string_equal(r, "../escape"); /* not joined: it would leave the channel */
    free(r);
    cd_catalog_free(cat);
    assert_int_equal(cd_catalog_load(p, &cat, err, sizeof err), 0); /* the list file itself */
    assert_int_equal(json_array_size(cat->nodes), 1);
    cd_catalog_free(cat);
    unlink(p);
    free(p);
    assert_int_equal(cd_catalog_load(dir, &cat, err, sizeof err), -1);
    assert_non_null(strstr(err, "custom-node-list.json"));
    rmdir(dir);
}

static void manifests(void **state) {
    (void)state;
    cd_pack_manifest m;
    char err[256];
    const char *ok = "{\"id\": \"my-pack_1.x\", \"version\": \"1.2.3\", \"description\": \"d\", \"abi\": 2}";
    assert_int_equal(cd_pack_manifest_parse(ok, strlen(ok), &m, err, sizeof err), 0);
    assert_string_equal(m.id, "my-pack_1.x");
    assert_string_equal(m.version, "1.2.3");
    assert_int_equal(m.abi, 2);
    const char *minimal = "{\"id\": \"p\"}";
    assert_int_equal(cd_pack_manifest_parse(minimal, strlen(minimal), &m, err, sizeof err), 0);
    assert_int_equal(m.abi, 0);
    const char *bad[] = {"{\"id\": \"../x\"}", "{\"id\": \".hidden\"}", "{\"id\": \"a/b\"}", "{\"id\": \"\"}",
                         "{\"version\": \"1\"}", "{\"id\": \"p\", \"abi\": \"2\"}", "{\"id\": \"p\", \"abi\": 0}",
                         "{\"id\": \"p\", \"version\": 1}", "[]", "nope"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cd_pack_manifest_parse(bad[i], strlen(bad[i]), &m, err, sizeof err), -1);
    assert_true(cd_pack_name_is_valid("ComfyUI-Impact-Pack"));
    assert_false(cd_pack_name_is_valid(".disabled"));
    assert_false(cd_pack_name_is_valid("a b"));
}

static void build_time_limit(void **state) {
    (void)state;
    char dir[] = "/tmp/cd-build-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *log = cd_path_join(dir, "log");
    assert_int_equal(cd_pack_run("echo hi", dir, log, 10, NULL), 0);
    assert_int_equal(cd_pack_run("exit 3", dir, log, 10, NULL), 3);
    /* the time limit kills the whole process group, children included */
    assert_int_equal(cd_pack_run("sleep 30 & sleep 30", dir, log, 1, NULL), -2);
    FILE *f = fopen(log, "r");
    char buf[512] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    assert_non_null(strstr(buf, "hi"));
    assert_non_null(strstr(buf, "time limit reached"));
    volatile int cancel = 1;
    assert_int_equal(cd_pack_run("sleep 30", dir, log, 60, &cancel), -2);
    /* no sources, no library: nothing to load */
    char err[256];
    assert_int_equal(cd_pack_build(dir, "/nonexistent", 5, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "neither"));
    cd_path_remove_tree(dir);
    free(log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(node_list),        cmocka_unit_test(ext_map_and_models), cmocka_unit_test(model_folders),
        cmocka_unit_test(channel_from_directory), cmocka_unit_test(manifests),   cmocka_unit_test(build_time_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
