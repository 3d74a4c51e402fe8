/* `comfyd run FILE`: runs one API-format workflow in-process, without a server. Progress goes
 * to the terminal (a bar on a TTY, plain lines otherwise); outputs are listed at the end; the
 * exit code says whether it worked: 0 success, 1 the workflow failed or was invalid, 2 usage. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/path.h"
#include "base/str.h"
#include "cli/commands.h"
#include "engine/call.h"
#include "engine/executor.h"
#include "engine/registry.h"
#include "engine/validate.h"
#include "nodes/builtin.h"
#include "server/workflow_convert.h"

typedef struct {
    bool tty;
    char *output_dir, *input_dir, *temp_dir;
    size_t done, total;
    bool quiet;
} run_view;

static void usage(FILE *out) {
    fputs("usage: comfyd run WORKFLOW.json [options]\n"
          "\n"
          "Runs a workflow in this process and prints where its outputs went: the API format\n"
          "(what POST /prompt takes, with or without the {\"prompt\": ...} wrapper) or the format\n"
          "the ComfyUI frontend saves (converted with the node definitions).\n"
          "\n"
          "options:\n"
          "  --output-directory D   where output nodes write (default ./output)\n"
          "  --input-directory D    where loaders read (default ./input)\n"
          "  --base-directory D     holds custom_nodes/ (default: the current directory)\n"
          "  --set NODE.INPUT=VALUE override an input; VALUE is JSON, or a plain string\n"
          "  --disable-all-custom-nodes\n"
          "  --quiet                no progress, only errors and outputs\n",
          out);
}

static void on_event(void *ctx, const char *type, json_t *data, const char *sid) {
    (void)sid;
    run_view *v = ctx;
    if (v->quiet) {
        json_decref(data);
        return;
    }
    if (!strcmp(type, "executing")) {
        const char *node = json_string_value(json_object_get(data, "node"));
        if (node) {
            v->done++;
            if (v->tty) {
                int width = 30, filled = v->total ? (int)(width * (v->done > v->total ? v->total : v->done) / v->total) : 0;
                fprintf(stderr, "\r[%.*s%*s] node %-12s", filled, "##############################", width - filled, "",
                        node);
            } else {
                fprintf(stderr, "running node %s\n", node);
            }
        }
    } else if (!strcmp(type, "progress") && !v->tty) {
        fprintf(stderr, "  progress %g/%g\n", json_number_value(json_object_get(data, "value")),
                json_number_value(json_object_get(data, "max")));
    }
    json_decref(data);
}

static const char *on_directory(void *ctx, const char *type) {
    run_view *v = ctx;
    if (!strcmp(type, "output")) return v->output_dir;
    if (!strcmp(type, "input")) return v->input_dir;
    if (!strcmp(type, "temp")) return v->temp_dir;
    return NULL;
}

/* --set 5.seed=42: JSON when it parses, else the text as a string. */
static int apply_set(json_t *prompt, const char *spec) {
    const char *dot = strchr(spec, '.'), *eq = strchr(spec, '=');
    if (!dot || !eq || eq < dot) return -1;
    char *node = strndup(spec, (size_t)(dot - spec));
    char *input = strndup(dot + 1, (size_t)(eq - dot - 1));
    json_t *n = json_object_get(prompt, node);
    int rc = -1;
    if (json_is_object(n)) {
        json_t *inputs = json_object_get(n, "inputs");
        if (!inputs) json_object_set_new(n, "inputs", inputs = json_object());
        json_t *val = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
        if (!val) val = json_string(eq + 1);
        json_object_set_new(inputs, input, val);
        rc = 0;
    }
    free(node);
    free(input);
    return rc;
}

/* ComfyUI's text for a rejected prompt: the error, then each node's errors. */
static void print_validation_error(const cd_validation *v) {
    fprintf(stderr, "invalid prompt: %s", json_string_value(json_object_get(v->error, "message")));
    const char *details = json_string_value(json_object_get(v->error, "details"));
    if (details && details[0]) fprintf(stderr, ": %s", details);
    fputc('\n', stderr);
    const char *id;
    json_t *ne;
    json_object_foreach(v->node_errors, id, ne) {
        fprintf(stderr, "  node %s (%s):\n", id, json_string_value(json_object_get(ne, "class_type")));
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(ne, "errors"), i, e) {
            fprintf(stderr, "    - %s: %s\n", json_string_value(json_object_get(e, "message")),
                    json_string_value(json_object_get(e, "details")));
        }
    }
}

int cd_cmd_run(int argc, char **argv) {
    const char *file = NULL, *out_dir = "output", *in_dir = "input", *base = ".";
    bool no_custom = false, quiet = false;
    json_t *sets = json_array();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            json_decref(sets);
            return 0;
        } else if (!strcmp(a, "--output-directory") && i + 1 < argc) out_dir = argv[++i];
        else if (!strcmp(a, "--input-directory") && i + 1 < argc) in_dir = argv[++i];
        else if (!strcmp(a, "--base-directory") && i + 1 < argc) base = argv[++i];
        else if (!strcmp(a, "--set") && i + 1 < argc) json_array_append_new(sets, json_string(argv[++i]));
        else if (!strcmp(a, "--disable-all-custom-nodes")) no_custom = true;
        else if (!strcmp(a, "--quiet")) quiet = true;
        else if (a[0] != '-' && !file) file = a;
        else {
            fprintf(stderr, "comfyd run: unexpected argument '%s'\n\n", a);
            usage(stderr);
            json_decref(sets);
            return 2;
        }
    }
    if (!file) {
        usage(stderr);
        json_decref(sets);
        return 2;
    }
    json_error_t jerr;
    json_t *doc = json_load_file(file, 0, &jerr), *ui_doc = NULL;
    if (!doc) {
        fprintf(stderr, "comfyd run: %s: %s (line %d)\n", file, jerr.text, jerr.line);
        json_decref(sets);
        return 1;
    }
    json_t *prompt = NULL;
    if (cd_workflow_is_ui_format(doc)) {
        /* The format the ComfyUI frontend saves: converted with the node definitions below. */
        ui_doc = doc;
    } else {
        prompt = json_object_get(doc, "prompt") ? json_object_get(doc, "prompt") : doc;
        json_incref(prompt);
        json_decref(doc);
    }
    cd_log_setup(CD_LOG_WARNING, false);
    cd_registry *reg = cd_registry_new();
    for (const cd_builtin_pack *p = cd_builtin_packs; p->init; p++) cd_registry_add_pack(reg, p->name, p->module, p->init);
    char *base_abs = cd_path_absolute(base);
    if (!no_custom && base_abs) {
        char *cn = cd_path_join(base_abs, "custom_nodes");
        if (cn) cd_registry_load_dir(reg, cn);
        free(cn);
    }
    free(base_abs);
    if (ui_doc) {
        char err[512];
        if (cd_workflow_to_api(reg, ui_doc, &prompt, err, sizeof err) != 0) {
            fprintf(stderr, "comfyd run: %s: cannot convert the workflow: %s\n", file, err);
            json_decref(ui_doc);
            json_decref(sets);
            cd_registry_free(reg);
            return 1;
        }
        json_decref(ui_doc);
    }
    size_t i;
    json_t *s;
    json_array_foreach(sets, i, s) {
        if (apply_set(prompt, json_string_value(s)) < 0) {
            fprintf(stderr, "comfyd run: --set %s: want NODE.INPUT=VALUE with an existing node id\n", json_string_value(s));
            json_decref(sets);
            json_decref(prompt);
            cd_registry_free(reg);
            return 2;
        }
    }
    json_decref(sets);

    int code = 1;
    run_view view = {.tty = isatty(2), .quiet = quiet, .total = json_object_size(prompt)};
    view.output_dir = cd_path_absolute(out_dir);
    view.input_dir = cd_path_absolute(in_dir);
    char *temp_parent = cd_path_absolute(".");
    view.temp_dir = temp_parent ? cd_path_join(temp_parent, "temp") : NULL;
    free(temp_parent);
    /* Validation sees the directories too (LoadImage checks that its file exists). */
    cd_call_env validate_env = {.ctx = &view, .directory = on_directory};
    cd_registry_set_call_env(reg, &validate_env);
    cd_validation v;
    if (cd_validate_prompt(reg, prompt, NULL, &v) < 0) {
        fprintf(stderr, "comfyd run: out of memory\n");
        goto out_reg;
    }
    if (v.error) {
        print_validation_error(&v);
        cd_validation_clear(&v);
        goto out_reg;
    }
    cd_path_mkdirs(view.output_dir, 0755);
    cd_event_sink sink = {.ctx = &view, .event = on_event, .directory = on_directory};
    cd_executor *ex = cd_executor_new(reg, CD_CACHE_POLICY_NONE, 0, &sink);
    json_t *outputs = json_array();
    for (size_t k = 0; k < v.n_outputs; k++) json_array_append_new(outputs, json_string(v.outputs[k]));
    char pid[37];
    cd_str_uuid4(pid);
    json_t *extra = json_pack("{s:s}", "client_id", "comfyd-run");
    cd_exec_request req = {.prompt_id = pid, .prompt = prompt, .extra_data = extra, .outputs = outputs};
    cd_exec_result res;
    if (ex && cd_executor_run(ex, &req, &res) == 0) {
        if (view.tty && !quiet) fputc('\n', stderr);
        if (res.success) {
            code = 0;
            const char *id;
            json_t *ui;
            json_object_foreach(res.outputs, id, ui) {
                char *text = cd_json_dumps(ui);
                printf("node %s: %s\n", id, text ? text : "");
                free(text);
            }
            fprintf(stderr, "done: %zu node(s) run; outputs in %s\n", res.executed_count, view.output_dir);
        } else if (res.interrupted) {
            fprintf(stderr, "interrupted\n");
        } else if (res.error) {
            /* exception_message ends with ComfyUI's newline: printed without it */
            const char *msg = json_string_value(json_object_get(res.error, "exception_message"));
            size_t len = msg ? strlen(msg) : 0;
            while (len && msg[len - 1] == '\n') len--;
            fprintf(stderr, "error in node %s (%s): %s: %.*s\n", json_string_value(json_object_get(res.error, "node_id")),
                    json_string_value(json_object_get(res.error, "node_type")),
                    json_string_value(json_object_get(res.error, "exception_type")), (int)len, msg ? msg : "");
        }
        cd_exec_result_clear(&res);
    }
    cd_executor_free(ex);
    json_decref(outputs);
    json_decref(extra);
    free(view.output_dir);
    free(view.input_dir);
    free(view.temp_dir);
    cd_validation_clear(&v);
out_reg:
    cd_registry_free(reg);
    json_decref(prompt);
    return code;
}
