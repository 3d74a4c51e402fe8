#include "engine/engine.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "engine/history.h"
#include "engine/jobs.h"
#include "engine/queue.h"
#include "engine/validate.h"

struct cd_engine {
    const cd_registry *reg;
    cd_executor *executor;
    cd_queue *queue;
    cd_history *history;
    cd_event_sink sink;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock; /* guards number and the /free flags */
    long long number;
    bool flag_unload, flag_free;
    /* The last accepted POST /prompt body whose validation is repeatable, as received, with
     * what validating it gave: a client that submits the very same bytes again (re-queueing a
     * workflow) skips parsing and validation. Loop thread only. */
    struct {
        char *text;
        size_t len;
        json_t *body;         /* parsed, its prompt validated (converted) and shared by the queue */
        json_t *node_errors;
        json_t *outputs;      /* array of output ids */
    } memo;
};

static void memo_clear(cd_engine *e) {
    free(e->memo.text);
    json_decref(e->memo.body);
    json_decref(e->memo.node_errors);
    json_decref(e->memo.outputs);
    memset(&e->memo, 0, sizeof e->memo);
}

const cd_registry *cd_engine_registry(const cd_engine *e) { return e->reg; }

static void emit(cd_engine *e, const char *type, json_t *data, const char *sid) {
    if (e->sink.event) e->sink.event(e->sink.ctx, type, data, sid);
    else json_decref(data);
}

static void broadcast_status(cd_engine *e) {
    emit(e, "status", json_pack("{s:{s:{s:i}}}", "status", "exec_info", "queue_remaining", cd_queue_remaining(e->queue)),
         NULL);
}

cd_engine *cd_engine_new(const cd_registry *reg, const cd_engine_config *cfg, const cd_event_sink *sink, char *err,
                         size_t errlen) {
    cd_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->reg = reg;
    if (sink) e->sink = *sink;
    pthread_mutex_init(&e->lock, NULL);
    e->executor = cd_executor_new(reg, cfg->cache_policy, cfg->cache_lru_size, sink);
    e->queue = cd_queue_new();
    e->history = cd_history_open(cfg->history_db, cfg->history_max ? cfg->history_max : 10000, err, errlen);
    if (!e->executor || !e->queue || !e->history) {
        if (!err[0]) snprintf(err, errlen, "out of memory");
        cd_engine_free(e);
        return NULL;
    }
    return e;
}

static void apply_free_flags(cd_engine *e) {
    pthread_mutex_lock(&e->lock);
    bool free_mem = e->flag_free;
    e->flag_free = e->flag_unload = false;
    pthread_mutex_unlock(&e->lock);
    if (free_mem) {
        cd_executor_reset_caches(e->executor);
        cd_info("free: caches cleared");
    }
}

/* The history entry of §6.3 for a finished prompt. */
static json_t *history_entry(const cd_queue_item *it, cd_exec_result *res) {
    json_t *extra = json_deep_copy(it->extra_data);
    json_object_del(extra, "auth_token_comfy_org");
    json_object_del(extra, "api_key_comfy_org");
    json_t *num = it->number_is_float ? json_real(it->number) : json_integer((json_int_t)it->number);
    json_t *prompt = json_pack("[o, s, O, o, O]", num, it->prompt_id, it->prompt, extra, it->outputs);
    json_t *status = json_pack("{s:s, s:b, s:O}", "status_str", res->success ? "success" : "error", "completed",
                               res->success, "messages", res->messages);
    return json_pack("{s:o, s:O, s:o, s:O}", "prompt", prompt, "outputs", res->outputs, "status", status, "meta",
                     res->meta);
}

/* What finished prompts leave (their graphs, evicted cache entries, stored history trees) is
 * freed once the queue has been empty this long: freeing a large graph takes milliseconds,
 * and a client that submits its next prompt right after the last one finished should not wait
 * for it. Under a steady stream of prompts it is freed regardless once it holds this many
 * nodes or prompts (the executor keeps at most 16 runs). */
#define IDLE_COLLECT_MS 5
#define MAX_UNCOLLECTED 16
#define MAX_UNCOLLECTED_NODES 100000

/* Returns true when the history writer is still busy (more to collect once it is done). */
static bool collect(cd_engine *e) {
    cd_executor_collect(e->executor);
    return cd_history_collect(e->history);
}

static void *worker(void *arg) {
    cd_engine *e = arg;
    int uncollected = 0;
    pthread_setname_np(pthread_self(), "comfyd-exec"); /* what top -H and perf show */
    for (;;) {
        apply_free_flags(e);
        cd_queue_item *it;
        int got = cd_queue_take(e->queue, &it, uncollected ? IDLE_COLLECT_MS : -1);
        if (got < 0) break;
        if (got == 0) { /* idle for a while, or woken for /free (the flags are applied at the top) */
            /* while the history writer works, keep looking in: it leaves trees to drop */
            if (uncollected) uncollected = collect(e) ? 1 : 0;
            continue;
        }
        broadcast_status(e);
        cd_exec_request req = {.prompt_id = it->prompt_id, .prompt = it->prompt, .extra_data = it->extra_data,
                               .outputs = it->outputs};
        cd_exec_result res;
        if (cd_executor_run(e->executor, &req, &res) < 0) {
            cd_error("prompt %s: could not start (out of memory)", it->prompt_id);
            memset(&res, 0, sizeof res);
            res.outputs = json_object();
            res.messages = json_array();
            res.meta = json_object();
        }
        cd_info("prompt %s: %s (%zu node(s) run, %zu cached)", it->prompt_id,
                res.success ? "done" : res.interrupted ? "interrupted" : "failed", res.executed_count, res.cached_count);
        const char *client = json_string_value(json_object_get(it->extra_data, "client_id"));
        char *client_id = client ? strdup(client) : NULL;
        char *prompt_id = strdup(it->prompt_id);
        cd_history_add(e->history, it->prompt_id, history_entry(it, &res));
        cd_exec_result_clear(&res);
        cd_queue_done(e->queue);
        broadcast_status(e);
        /* Last: clients treat this as "done, history ready". */
        if (client_id) emit(e, "executing", json_pack("{s:n, s:s}", "node", "prompt_id", prompt_id), client_id);
        free(client_id);
        free(prompt_id);
        if (++uncollected >= MAX_UNCOLLECTED || cd_executor_uncollected_nodes(e->executor) > MAX_UNCOLLECTED_NODES) {
            collect(e);
            uncollected = 0;
        }
    }
    return NULL;
}

int cd_engine_start(cd_engine *e) {
    if (pthread_create(&e->thread, NULL, worker, e) != 0) return -1;
    e->thread_started = true;
    return 0;
}

void cd_engine_free(cd_engine *e) {
    if (!e) return;
    if (e->thread_started) {
        cd_executor_interrupt(e->executor);
        cd_queue_close(e->queue);
        pthread_join(e->thread, NULL);
    }
    cd_executor_free(e->executor);
    cd_queue_free(e->queue);
    cd_history_close(e->history);
    memo_clear(e);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* ---- POST /prompt ---- */

static json_t *error_reply(const char *type, const char *message, const char *details) {
    return json_pack("{s:{s:s, s:s, s:s, s:{}}, s:{}}", "error", "type", type, "message", message, "details", details,
                     "extra_info", "node_errors");
}

/* hit: the memo, whose body this is (validation skipped); else NULL. remember: where to say
 * that the body was accepted with a repeatable validation (may be NULL). */
static int submit(cd_engine *e, json_t *body, bool hit, json_t **reply, bool *remember) {
    /* The counter moves even when the request then fails, as in ComfyUI. */
    pthread_mutex_lock(&e->lock);
    long long counter = e->number++;
    pthread_mutex_unlock(&e->lock);
    json_t *num_j = json_is_object(body) ? json_object_get(body, "number") : NULL;
    double number;
    bool is_float = false;
    if (num_j && json_is_number(num_j)) {
        number = json_number_value(num_j);
        is_float = true;
    } else if (num_j && cd_json_bigint_text(num_j)) {
        number = strtod(cd_json_bigint_text(num_j), NULL); /* float(int) */
        is_float = true;
    } else if (num_j && json_is_string(num_j)) {
        char *end;
        number = strtod(json_string_value(num_j), &end);
        if (*end || end == json_string_value(num_j) || isnan(number)) {
            *reply = error_reply("invalid_prompt", "Invalid number", json_string_value(num_j));
            return 400;
        }
        is_float = true;
    } else {
        bool front = json_is_object(body) && json_is_true(json_object_get(body, "front"));
        number = front ? (double)-counter : (double)counter;
    }
    json_t *prompt = json_is_object(body) ? json_object_get(body, "prompt") : NULL;
    if (!prompt) {
        *reply = error_reply("no_prompt", "No prompt provided", "No prompt provided");
        return 400;
    }
    char *prompt_id;
    json_t *pid = json_object_get(body, "prompt_id");
    if (pid) prompt_id = cd_validate_py_str(pid); /* ComfyUI: str(prompt_id) */
    else {
        prompt_id = malloc(37);
        if (prompt_id) cd_str_uuid4(prompt_id);
    }
    if (!prompt_id) {
        *reply = error_reply("internal_error", "out of memory", "");
        return 500;
    }
    cd_validation v = {0};
    /* Validation converts values in place. The body is the caller's to drop after this call,
     * so its prompt object is taken over rather than copied (a copy of a 5,000-node prompt
     * costs more than validating it). Once validated it is never changed again, so queue
     * items and history entries of identical submissions share it. */
    json_t *copy = json_incref(prompt);
    if (hit) {
        v.node_errors = json_incref(e->memo.node_errors);
    } else if (!copy ||
               cd_validate_prompt(e->reg, copy, json_object_get(body, "partial_execution_targets"), &v) < 0) {
        json_decref(copy);
        free(prompt_id);
        *reply = error_reply("internal_error", "out of memory", "");
        return 500;
    }
    if (v.error) {
        *reply = json_pack("{s:O, s:O}", "error", v.error, "node_errors", v.node_errors);
        cd_validation_clear(&v);
        json_decref(copy);
        free(prompt_id);
        return 400;
    }
    if (json_is_true(json_object_get(body, "validate_only"))) {
        /* comfyd's own field: the answer a submission would get, and nothing queued (the hub
         * validates a prompt this way before it holds it in its admission queue). */
        json_t *num = is_float ? json_real(number) : json_integer((json_int_t)number);
        *reply = json_pack("{s:s, s:o, s:O, s:b}", "prompt_id", prompt_id, "number", num, "node_errors",
                           v.node_errors, "validate_only", 1);
        cd_validation_clear(&v);
        json_decref(copy);
        free(prompt_id);
        return 200;
    }
    if (remember) *remember = !hit && v.repeatable;
    cd_queue_item *it = calloc(1, sizeof *it);
    json_t *extra = json_object_get(body, "extra_data");
    it->number = number;
    it->number_is_float = is_float;
    it->prompt_id = prompt_id;
    it->prompt = copy;
    it->extra_data = json_is_object(extra) ? json_deep_copy(extra) : json_object();
    json_t *client = json_object_get(body, "client_id");
    if (client) json_object_set(it->extra_data, "client_id", client);
    /* ComfyUI 0.8 stamps every accepted prompt (milliseconds): the jobs API sorts by it. */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    json_object_set_new(it->extra_data, "create_time", json_integer((json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000));
    if (hit) {
        it->outputs = json_copy(e->memo.outputs);
    } else {
        it->outputs = json_array();
        for (size_t i = 0; i < v.n_outputs; i++) json_array_append_new(it->outputs, json_string(v.outputs[i]));
    }
    json_t *num_reply = is_float ? json_real(number) : json_integer((json_int_t)number);
    *reply = json_pack("{s:s, s:o, s:O}", "prompt_id", prompt_id, "number", num_reply, "node_errors", v.node_errors);
    if (remember && *remember) {
        json_decref(e->memo.node_errors);
        json_decref(e->memo.outputs);
        e->memo.node_errors = json_incref(v.node_errors);
        e->memo.outputs = json_copy(it->outputs);
    }
    cd_validation_clear(&v);
    cd_queue_put(e->queue, it);
    broadcast_status(e);
    return 200;
}

int cd_engine_submit(cd_engine *e, json_t *body, json_t **reply) { return submit(e, body, false, reply, NULL); }

int cd_engine_submit_text(cd_engine *e, const char *text, size_t len, json_t **reply) {
    if (e->memo.text && len == e->memo.len && !memcmp(text, e->memo.text, len))
        return submit(e, e->memo.body, true, reply, NULL);
    json_t *body = len ? cd_json_parse(text, len, JSON_DECODE_ANY, NULL) : json_object();
    if (!body) return -1;
    bool remember = false;
    int status = submit(e, body, false, reply, &remember);
    if (remember) {
        char *copy = malloc(len ? len : 1);
        if (copy) {
            memcpy(copy, text, len);
            free(e->memo.text);
            json_decref(e->memo.body);
            e->memo.text = copy;
            e->memo.len = len;
            e->memo.body = json_incref(body);
        } else {
            memo_clear(e);
        }
    }
    json_decref(body);
    return status;
}

/* ---- the rest ---- */

int cd_engine_queue_remaining(cd_engine *e) { return cd_queue_remaining(e->queue); }
json_t *cd_engine_queue(cd_engine *e) { return cd_queue_snapshot(e->queue); }

void cd_engine_queue_clear(cd_engine *e) {
    cd_queue_clear(e->queue);
    broadcast_status(e);
}

void cd_engine_queue_delete(cd_engine *e, const char *prompt_id) {
    if (cd_queue_delete(e->queue, prompt_id)) broadcast_status(e);
}

bool cd_engine_interrupt(cd_engine *e, const char *prompt_id) {
    if (prompt_id && !cd_queue_is_running(e->queue, prompt_id)) {
        cd_info("interrupt: prompt %s is not running; nothing to do", prompt_id);
        return false;
    }
    cd_executor_interrupt(e->executor);
    return true;
}

void cd_engine_free_memory(cd_engine *e, bool unload_models, bool free_memory) {
    pthread_mutex_lock(&e->lock);
    e->flag_unload |= unload_models;
    e->flag_free |= free_memory;
    pthread_mutex_unlock(&e->lock);
    cd_queue_wake(e->queue);
}

json_t *cd_engine_history(cd_engine *e, long max_items, long offset) { return cd_history_list(e->history, max_items, offset); }
json_t *cd_engine_history_get(cd_engine *e, const char *id) { return cd_history_get(e->history, id); }
void cd_engine_history_delete(cd_engine *e, const char *id) { cd_history_delete(e->history, id); }
void cd_engine_history_clear(cd_engine *e) { cd_history_clear(e->history); }

/* ---- jobs ---- */

/* Appends the jobs of one /queue list (running or pending) to out. */
static int queue_jobs(json_t *out, const json_t *items, const char *status) {
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item) {
        json_t *job = cd_job_from_queue_item(item, status);
        if (!job || json_array_append_new(out, job) < 0) return -1;
    }
    return 0;
}

json_t *cd_engine_jobs(cd_engine *e, const cd_jobs_query *q) {
    /* gathered as ComfyUI does: running, pending (queue order), then the history */
    json_t *all = json_array();
    json_t *snap = q->statuses & (CD_JOB_PENDING | CD_JOB_IN_PROGRESS) ? cd_queue_snapshot(e->queue) : NULL;
    int rc = all ? 0 : -1;
    if (!rc && (q->statuses & CD_JOB_IN_PROGRESS))
        rc = queue_jobs(all, json_object_get(snap, "queue_running"), "in_progress");
    if (!rc && (q->statuses & CD_JOB_PENDING)) rc = queue_jobs(all, json_object_get(snap, "queue_pending"), "pending");
    json_decref(snap);
    if (!rc && (q->statuses & (CD_JOB_COMPLETED | CD_JOB_FAILED))) {
        json_t *done = cd_history_jobs(e->history, q->statuses);
        rc = done ? json_array_extend(all, done) : -1;
        json_decref(done);
    }
    json_t *page = rc ? NULL : cd_jobs_page(all, q);
    json_decref(all);
    return page;
}

json_t *cd_engine_job(cd_engine *e, const char *prompt_id) {
    json_t *found = cd_history_get(e->history, prompt_id);
    json_t *entry = json_object_get(found, prompt_id);
    json_t *job = entry ? cd_job_from_history(prompt_id, entry, true) : NULL;
    json_decref(found);
    if (job || entry) return job;
    json_t *snap = cd_queue_snapshot(e->queue);
    static const struct {
        const char *list, *status;
    } lists[] = {{"queue_running", "in_progress"}, {"queue_pending", "pending"}};
    for (size_t k = 0; k < 2 && !job; k++) {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(snap, lists[k].list), i, item) {
            const char *id = json_string_value(json_array_get(item, 1));
            if (id && !strcmp(id, prompt_id)) {
                job = cd_job_from_queue_item(item, lists[k].status);
                break;
            }
        }
    }
    json_decref(snap);
    return job;
}
