#include "hub/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "hub/admission.h"

static const double buckets[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800};
#define NB (sizeof buckets / sizeof buckets[0])

typedef struct {
    unsigned long long counts[NB]; /* not cumulative; summed when written */
    unsigned long long count;
    double sum;
} histogram;

struct cd_hub_metrics {
    histogram wait, duration;
    unsigned long long proxy[6]; /* 1xx..5xx by index, 0: other */
};

cd_hub_metrics *cd_hub_metrics_new(void) { return calloc(1, sizeof(cd_hub_metrics)); }
void cd_hub_metrics_free(cd_hub_metrics *m) { free(m); }

static void observe(histogram *h, double v) {
    for (size_t i = 0; i < NB; i++)
        if (v <= buckets[i]) {
            h->counts[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void cd_hub_metrics_dispatch_wait(cd_hub_metrics *m, double s) { if (m) observe(&m->wait, s); }
void cd_hub_metrics_prompt_duration(cd_hub_metrics *m, double s) { if (m) observe(&m->duration, s); }

void cd_hub_metrics_proxy_status(cd_hub_metrics *m, int status) {
    if (m) m->proxy[status >= 100 && status < 600 ? status / 100 : 0]++;
}

static void write_histogram(cd_buf *b, const char *name, const char *help, const histogram *h) {
    cd_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (size_t i = 0; i < NB; i++) {
        cum += h->counts[i];
        cd_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[i], cum);
    }
    cd_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, h->count, name, h->sum, name,
                  h->count);
}

/* Label values are user and status names: escape what Prometheus' format would misread. */
static void write_label(cd_buf *b, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') cd_buf_append(b, "\\", 1);
        if (*v == '\n') {
            cd_buf_append_str(b, "\\n");
            continue;
        }
        cd_buf_append(b, v, 1);
    }
}

static void handle_metrics(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    cd_hub_metrics *m = hub->metrics;
    cd_buf b = CD_BUF_INIT;
    cd_admission_stats st = {0};
    json_t *per_user = cd_admission_stats_get(hub->admission, &st);
    cd_buf_printf(&b,
                  "# HELP comfyd_queue_waiting Prompts waiting in the hub's admission queue.\n"
                  "# TYPE comfyd_queue_waiting gauge\ncomfyd_queue_waiting %d\n"
                  "# HELP comfyd_queue_running Prompts sent to instances and not finished.\n"
                  "# TYPE comfyd_queue_running gauge\ncomfyd_queue_running %d\n"
                  "# HELP comfyd_queue_max_concurrent COMFY_MAX_CONCURRENT.\n"
                  "# TYPE comfyd_queue_max_concurrent gauge\ncomfyd_queue_max_concurrent %d\n"
                  "# HELP comfyd_queue_user_waiting Prompts waiting, per user.\n"
                  "# TYPE comfyd_queue_user_waiting gauge\n",
                  st.waiting, st.running, hub->cfg->max_concurrent);
    const char *user;
    json_t *n;
    json_object_foreach(per_user, user, n) {
        cd_buf_append_str(&b, "comfyd_queue_user_waiting{user=\"");
        write_label(&b, user);
        cd_buf_printf(&b, "\"} %lld\n", (long long)json_integer_value(n));
    }
    json_decref(per_user);
    write_histogram(&b, "comfyd_dispatch_wait_seconds", "Time from a prompt's acceptance to its dispatch.", &m->wait);
    write_histogram(&b, "comfyd_prompt_duration_seconds", "Time from a prompt's dispatch to its end.", &m->duration);
    cd_buf_append_str(&b, "# HELP comfyd_instances Instances by status.\n# TYPE comfyd_instances gauge\n");
    cd_store_instance *list = NULL;
    size_t count = 0;
    hub->store->ops->instance_list(hub->store, &list, &count);
    static const char *const statuses[] = {"starting", "online", "offline", "stopped", "failed"};
    for (size_t s = 0; s < 5; s++) {
        int k = 0;
        for (size_t i = 0; i < count; i++) k += !strcmp(list[i].status, statuses[s]);
        cd_buf_printf(&b, "comfyd_instances{status=\"%s\"} %d\n", statuses[s], k);
    }
    free(list);
    cd_buf_append_str(&b, "# HELP comfyd_proxy_responses_total Answers through /comfyui/..., by status class.\n"
                          "# TYPE comfyd_proxy_responses_total counter\n");
    for (int i = 1; i <= 5; i++) cd_buf_printf(&b, "comfyd_proxy_responses_total{code=\"%dxx\"} %llu\n", i, m->proxy[i]);
    cd_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    cd_buf_free(&b);
}

void cd_hub_metrics_register(cd_hub *hub) { cd_router_add(hub->router, "GET", "/metrics", handle_metrics, hub); }
