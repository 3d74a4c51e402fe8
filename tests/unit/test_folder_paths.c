/* The model folder registry and extra_model_paths.yaml: base_path (absolute, relative to the
 * YAML, ~ and $VARS), is_default, multi-line values, relative paths without base_path, legacy
 * names, new folders, errors; and get_full_path's confinement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/path.h"
#include "server/folder_paths.h"

static char tmp[64];

static int setup(void **state) {
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/cd-fp-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    cd_path_remove_tree(tmp);
    return 0;
}

static char *write_yaml(const char *name, const char *text) {
    char *p = cd_path_join(tmp, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static cd_folder_paths *registry(void) {
    char *models = cd_path_join(tmp, "models"), *cn = cd_path_join(tmp, "custom_nodes"), *out = cd_path_join(tmp, "output");
    cd_folder_paths *fp = cd_folder_paths_new(models, cn, out);
    free(models);
    free(cn);
    free(out);
    assert_non_null(fp);
    return fp;
}

static void assert_dir(const cd_folder_paths *fp, const char *name, size_t i, const char *expect_rel) {
    size_t n;
    const char *const *dirs = cd_folder_paths_dirs(fp, name, &n);
    if (i >= n) fail_msg("%s has %zu dirs, wanted index %zu", name, n, i);
    char want[512];
    if (expect_rel[0] == '/') snprintf(want, sizeof want, "%s", expect_rel);
    else snprintf(want, sizeof want, "%s/%s", tmp, expect_rel);
    assert_string_equal(dirs[i], want);
}

static void sections_base_paths_and_multiline(void **state) {
    (void)state;
    setenv("CD_FP_TEST_DIR", "envdir", 1);
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "comfyui:\n"
             "  base_path: %s/shared\n"
             "  checkpoints: |\n"
             "    models/checkpoints\n"
             "\n"
             "    other/../more_ckpts\n"
             "  unet: models/unet\n"
             "  my_things: things\n"
             "relative_base:\n"
             "  base_path: rel_base\n"
             "  loras: loras\n"
             "no_base:\n"
             "  vae: vae_here\n"
             "  clip: /abs/clip\n"
             "env:\n"
             "  base_path: ${CD_FP_TEST_DIR}/x\n"
             "  upscale_models: up\n"
             "defaults:\n"
             "  is_default: true\n"
             "  base_path: def\n"
             "  checkpoints: first\n"
             "empty_section:\n",
             tmp);
    char *p = write_yaml("extra.yaml", yaml);
    cd_folder_paths *fp = registry();
    char err[256] = "";
    assert_int_equal(cd_folder_paths_load_yaml(fp, p, err, sizeof err), 0);
    /* checkpoints: the is_default path first, then models/checkpoints and output/checkpoints,
     * then the YAML's two lines in order. */
    assert_dir(fp, "checkpoints", 0, "def/first");
    assert_dir(fp, "checkpoints", 1, "models/checkpoints");
    assert_dir(fp, "checkpoints", 2, "output/checkpoints");
    assert_dir(fp, "checkpoints", 3, "shared/models/checkpoints");
    assert_dir(fp, "checkpoints", 4, "shared/more_ckpts");
    size_t n;
    cd_folder_paths_dirs(fp, "diffusion_models", &n);
    assert_dir(fp, "diffusion_models", n - 1, "shared/models/unet"); /* unet is diffusion_models */
    assert_dir(fp, "my_things", 0, "shared/things");
    assert_dir(fp, "loras", 2, "rel_base/loras"); /* base_path relative to the YAML's folder */
    assert_dir(fp, "vae", 2, "vae_here");           /* no base_path: the YAML's folder */
    cd_folder_paths_dirs(fp, "text_encoders", &n);
    assert_dir(fp, "text_encoders", n - 1, "/abs/clip");
    assert_dir(fp, "upscale_models", 1, "envdir/x/up");
    json_t *names = cd_folder_paths_names(fp);
    assert_string_equal(json_string_value(json_array_get(names, json_array_size(names) - 1)), "my_things");
    json_decref(names);
    cd_folder_paths_free(fp);
    free(p);
}

static void is_default_moves_a_known_path_first(void **state) {
    (void)state;
    cd_folder_paths *fp = registry();
    char *models_ckpt = cd_path_join(tmp, "models/checkpoints");
    char yaml[512];
    snprintf(yaml, sizeof yaml, "a:\n  is_default: yes\n  checkpoints: %s/output/checkpoints\n", tmp);
    char *p = write_yaml("d.yaml", yaml);
    char err[256];
    assert_int_equal(cd_folder_paths_load_yaml(fp, p, err, sizeof err), 0);
    size_t n;
    cd_folder_paths_dirs(fp, "checkpoints", &n);
    assert_int_equal(n, 2);
    assert_dir(fp, "checkpoints", 0, "output/checkpoints");
    assert_dir(fp, "checkpoints", 1, "models/checkpoints");
    free(models_ckpt);
    free(p);
    cd_folder_paths_free(fp);
}

static void errors_have_messages(void **state) {
    (void)state;
    static const struct {
        const char *yaml, *why;
    } cases[] = {
        {"a: [unclosed\n", "extra.yaml:"},
        {"- a\n- b\n", "mapping"},
        {"s:\n  checkpoints: [a, b]\n", "checkpoints"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = write_yaml("extra.yaml", cases[i].yaml);
        cd_folder_paths *fp = registry();
        char err[256] = "";
        assert_int_equal(cd_folder_paths_load_yaml(fp, p, err, sizeof err), -1);
        if (!strstr(err, cases[i].why)) fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].why);
        cd_folder_paths_free(fp);
        free(p);
    }
    cd_folder_paths *fp = registry();
    char err[256] = "";
    assert_int_equal(cd_folder_paths_load_yaml(fp, "/nonexistent/x.yaml", err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    char *p = write_yaml("empty.yaml", "");
    assert_int_equal(cd_folder_paths_load_yaml(fp, p, err, sizeof err), 0);
    free(p);
    cd_folder_paths_free(fp);
}

static void find_stays_inside_the_folder(void **state) {
    (void)state;
    char *dir = cd_path_join(tmp, "models/checkpoints/sub");
    assert_int_equal(cd_path_mkdirs(dir, 0755), 0);
    char *file = cd_path_join(dir, "m.safetensors");
    FILE *f = fopen(file, "w");
    fputs("x", f);
    fclose(f);
    char *secret = cd_path_join(tmp, "secret.safetensors");
    f = fopen(secret, "w");
    fputs("x", f);
    fclose(f);
    cd_folder_paths *fp = registry();
    char *found = cd_folder_paths_find(fp, "checkpoints", "sub/m.safetensors");
    assert_string_equal(found, file);
    free(found);
    found = cd_folder_paths_find(fp, "checkpoints", "/sub/./x/../m.safetensors");
    assert_string_equal(found, file);
    free(found);
    assert_null(cd_folder_paths_find(fp, "checkpoints", "../../secret.safetensors"));
    assert_null(cd_folder_paths_find(fp, "checkpoints", "sub"));
    assert_null(cd_folder_paths_find(fp, "nope", "sub/m.safetensors"));
    cd_folder_paths_free(fp);
    free(dir);
    free(file);
    free(secret);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(sections_base_paths_and_multiline, setup, teardown),
        cmocka_unit_test_setup_teardown(is_default_moves_a_known_path_first, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_have_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(find_stays_inside_the_folder, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
