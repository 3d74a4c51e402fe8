/* Fuzzes prompt validation and execution with the built-in nodes: the input is a prompt's JSON
 * (what POST /prompt carries under "prompt"). An accepted prompt is executed, so the string,
 * regex and math nodes see fuzzed values too. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/log.h"
#include "engine/executor.h"
#include "engine/validate.h"
#include "nodes/builtin.h"

static cd_registry *reg;
static cd_executor *ex;

static void drop(void *ctx, const char *type, json_t *data, const char *sid) {
    (void)ctx;
    (void)type;
    (void)sid;
    json_decref(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!reg) {
        cd_log_setup(CD_LOG_ERROR, false);
        reg = cd_registry_new();
        for (const cd_builtin_pack *p = cd_builtin_packs; p->init; p++)
            cd_registry_add_pack(reg, p->name, p->module, p->init);
        cd_event_sink sink = {.event = drop};
        ex = cd_executor_new(reg, CD_CACHE_POLICY_LRU, 64, &sink);
    }
    json_t *prompt = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!prompt) return 0;
    cd_validation v;
    if (cd_validate_prompt(reg, prompt, NULL, &v) == 0) {
        if (!v.error && v.n_outputs) {
            json_t *outputs = json_array();
            for (size_t i = 0; i < v.n_outputs; i++) json_array_append_new(outputs, json_string(v.outputs[i]));
            json_t *extra = json_pack("{s:s}", "client_id", "fuzz");
            cd_exec_request req = {.prompt_id = "fuzz", .prompt = prompt, .extra_data = extra, .outputs = outputs};
            cd_exec_result res;
            if (cd_executor_run(ex, &req, &res) == 0) cd_exec_result_clear(&res);
            json_decref(outputs);
            json_decref(extra);
        }
        cd_validation_clear(&v);
    }
    json_decref(prompt);
    return 0;
}
