#include "hub/admission.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "engine/validate.h"
#include "hub/instance_watch.h"
#include "hub/metrics.h"
#include "hub/peers.h"
#include "hub/proxy.h"
#include "hub/supervisor.h"
#include "hub/syncer.h"
#include "net/http_client.h"
#include "net/upstream_fetch.h"

#define TICK_MS 250
#define ANNOUNCE_EVERY_MS 250
#define LOST_AFTER 3 /* ticks a dispatched prompt may be in neither the queue nor the history */

/* A prompt the hub holds (queued, dispatching or running): the store's row and what only a
 * running hub knows. */
typedef struct held {
    cd_store_prompt p;
    int misses;          /* ticks seen in neither the instance's queue nor its history */
    bool interrupt_sent; /* past the time limit */
    bool checking;       /* a look-up of this prompt is under way */
    bool recheck;        /* ... and its instance said meanwhile that its queue changed */
    bool sending;        /* its POST /prompt is under way: the instance may not show it yet */
    int last_position;   /* last announced to its user's WebSockets */
    bool to_send;        /* dispatching: sent once that state is committed */
    bool foreign;        /* several hubs: out at an instance for another hub, which watches it */
    bool listed;         /* seen in the store's list by the refresh under way */
    bool committed;      /* ... which it is: a hub killed from now on finds it dispatching */
    /* Its submission is not answered yet (the answer waits for the disk flush): it is not sent
     * before, so that a client always has its prompt_id before the prompt's events can come. */
    bool unanswered;
    struct held *next;   /* by seq */
} held;

/* Whether the instance at an address is comfyd serve (it knows validate_only), as its
 * /system_stats said a moment ago: asked once a minute rather than for every prompt. */
#define KINDS 64
#define KIND_TTL_MS 60000
typedef struct {
    char address[80]; /* "host:port" */
    bool comfyd;
    int64_t at;
} instance_kind;

/* How many prompts of a user wait and run: asked for every submission and dispatch, so kept
 * as counts rather than found by walking a queue of thousands. */
typedef struct {
    int64_t user_id;
    int waiting, running;
    int submitting; /* accepted for a look, not held yet (validating, being stored) */
    /* The user's oldest queued prompt (NULL: none), so that choosing the next prompt to send
     * looks at each user once rather than at every prompt waiting (a walk over ten thousand
     * prompts of over a kilobyte each is a millisecond of cache misses per dispatch). */
    struct held *oldest_queued;
} user_counts;

typedef struct submit_ctx submit_ctx;

/* A submission whose prompt is stored, waiting for the sync to be answered. */
typedef struct pending_answer {
    submit_ctx *s;
    int rc;
    int64_t need; /* syncs that must have completed; 0 until its commit */
    struct held *h; /* the prompt held for it (NULL: none, or gone) */
} pending_answer;

/* Queue length and running prompts every CD_ADMISSION_SAMPLE_MS over the last hour. */
#define SAMPLES CD_ADMISSION_SERIES_MAX

struct cd_admission {
    cd_hub *hub;
    instance_kind kinds[KINDS];
    held *all, *last; /* by seq */
    int running;      /* dispatching + running */
    int waiting;
    int queued_priority; /* of those waiting, teachers' and front: true */
    user_counts *users;
    size_t nusers, capusers;
    int64_t last_served_user;
    uv_timer_t tick;
    /* Runs at the end of the loop turn in which prompts were accepted or moved: stores the
     * turn's prompts in one transaction (group commit) and tells users their new positions
     * once, however many prompts moved. */
    uv_check_t settle;
    uv_idle_t wake; /* while a settle is due: the loop does not sleep in poll before it */
    /* Positions change with every dispatch; pages hear the new ones at most every
     * ANNOUNCE_EVERY_MS (with thousands waiting, each dispatch moves every one of them). */
    uv_timer_t announce_timer;
    int64_t last_announce_at;
    submit_ctx **batch;
    size_t nbatch, capbatch;
    bool announce_due, pump_due, sends_due;
    /* Group commit: the turn's writes are committed without waiting for the disk, then one
     * fdatasync in the thread pool makes them durable; answers and sends wait for it, while
     * the loop goes on taking the next prompts (which the next sync covers). */
    bool writes_pending, sync_running;
    int64_t syncs_started, syncs_done;
    cd_syncer *syncer; /* runs the store's sync on a thread of its own */
    bool syncer_closing;
    int sync_rc;
    struct pending_answer *answers;
    size_t nanswers, capanswers;
    struct held **out; /* dispatching and running: what the instances' events are about */
    size_t nout, capout;
    struct held **sends; /* dispatched, waiting for their state to be on disk (few: the slots) */
    size_t nsends, capsends;
    cd_admission_sample samples[SAMPLES];
    size_t nsamples, sample_next;
    int64_t last_sample_at;
    int handles_open;
    cd_instance_watch *watch; /* the event streams of instances with prompts out */
    cd_upstream_pool *pool;   /* keep-alive connections to the instances */
    /* Several hubs on one store (peers.h): the queue above mirrors the store's, read again when
     * another hub says it changed it (at most every REFRESH_MS) and every SHARED_POLL_MS. */
    uv_timer_t refresh_timer;
    int64_t last_refresh_at, last_shared_pump_at;
    bool stopping;
    int inflight; /* fetches under way */
};

static int64_t now_ms(void) { return cd_hub_now_ms(); }

static bool is_active_running(const held *h) {
    return !strcmp(h->p.state, "running") || !strcmp(h->p.state, "dispatching");
}

/* Out at an instance for this hub, which watches it until it ends. */
static bool watched(const held *h) { return is_active_running(h) && !h->foreign; }

/* Several hubs share the store and its queue (peers.h). */
static bool shared(const cd_admission *a) { return a->hub->peers != NULL; }

/* Out for another hub: a record of a hub alone ("", from before several hubs) is anyone's. */
static bool out_elsewhere(const cd_store_prompt *p, const char *self) {
    bool out = !strcmp(p->state, "running") || !strcmp(p->state, "dispatching");
    return out && p->hub[0] && strcmp(p->hub, self) != 0;
}

#define REFRESH_MS 250 /* as often as positions are announced */
#define SHARED_POLL_MS 2000

static user_counts *counts_of(cd_admission *a, int64_t user_id, bool create) {
    for (size_t i = 0; i < a->nusers; i++)
        if (a->users[i].user_id == user_id) return &a->users[i];
    if (!create) return NULL;
    if (a->nusers == a->capusers) {
        size_t cap = a->capusers ? a->capusers * 2 : 16;
        user_counts *grown = realloc(a->users, cap * sizeof *grown);
        if (!grown) return NULL;
        a->users = grown;
        a->capusers = cap;
    }
    a->users[a->nusers] = (user_counts){.user_id = user_id};
    return &a->users[a->nusers++];
}

/* The list of prompts out at instances, a few (the slots), kept beside the queue of thousands. */
static void track_out(cd_admission *a, held *h, int delta) {
    if (delta < 0) {
        for (size_t i = 0; i < a->nout; i++)
            if (a->out[i] == h) {
                a->out[i] = a->out[--a->nout];
                return;
            }
        return;
    }
    if (a->nout == a->capout) {
        size_t cap = a->capout ? a->capout * 2 : 16;
        held **grown = realloc(a->out, cap * sizeof *grown);
        if (!grown) return; /* its end is then seen by the poll only */
        a->out = grown;
        a->capout = cap;
    }
    a->out[a->nout++] = h;
}

/* delta +1 when h enters the queue or a state, -1 when it leaves. */
/* The user's next queued prompt after h in the list (which is by seq on a hub alone). */
static held *next_queued_of(held *from, int64_t user_id) {
    for (held *h = from; h; h = h->next)
        if (h->p.user_id == user_id && !strcmp(h->p.state, "queued")) return h;
    return NULL;
}

static void count(cd_admission *a, held *h, int delta) {
    user_counts *u = counts_of(a, h->p.user_id, true);
    if (is_active_running(h)) {
        a->running += delta;
        if (u) u->running += delta;
        if (!h->foreign) track_out(a, h, delta);
    } else if (!strcmp(h->p.state, "queued")) {
        a->waiting += delta;
        a->queued_priority += h->p.priority ? delta : 0;
        if (!u) return;
        u->waiting += delta;
        /* h->next is still its successor when h was just taken out of the list */
        if (delta < 0 && u->oldest_queued == h) u->oldest_queued = next_queued_of(h->next, h->p.user_id);
        if (delta > 0 && (!u->oldest_queued || h->p.seq < u->oldest_queued->p.seq)) u->oldest_queued = h;
    }
}

static int user_running(cd_admission *a, int64_t user_id) {
    user_counts *u = counts_of(a, user_id, false);
    return u ? u->running : 0;
}

static int user_waiting(cd_admission *a, int64_t user_id) {
    user_counts *u = counts_of(a, user_id, false);
    return u ? u->waiting : 0;
}

static void append_held(cd_admission *a, held *h) {
    h->next = NULL;
    if (a->last) a->last->next = h;
    else a->all = h;
    a->last = h;
    count(a, h, +1);
}

static held *find(cd_admission *a, const char *prompt_id) {
    for (held *h = a->all; h; h = h->next)
        if (!strcmp(h->p.prompt_id, prompt_id)) return h;
    return NULL;
}

static void unlink_held(cd_admission *a, held *x) {
    held *before = NULL;
    for (held **pp = &a->all; *pp; before = *pp, pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            if (a->last == x) a->last = before;
            count(a, x, -1);
            return;
        }
}

/* ---- the order ---- */

/* Whether h may be dispatched now as far as its user's running limit goes. */
static bool user_may_run(cd_admission *a, const held *h, const int *extra_running) {
    int limit = a->hub->cfg->max_running_per_user;
    return limit <= 0 || user_running(a, h->p.user_id) + (extra_running ? *extra_running : 0) < limit;
}

static int by_user_then_seq(const void *x, const void *y) {
    const held *a = *(held *const *)x, *b = *(held *const *)y;
    if (a->p.user_id != b->p.user_id) return a->p.user_id < b->p.user_id ? -1 : 1;
    return (a->p.seq > b->p.seq) - (a->p.seq < b->p.seq);
}

/* Appends the pending prompts (sorted by user, then seq) to out in round-robin order: one per
 * user in turn, users by id, the first one after cursor (the user served last) leading. Linear
 * after the sort, so a queue of ten thousand costs a millisecond, not a second. */
static size_t interleave_users(held **pending, size_t np, int64_t cursor, held **out) {
    size_t nusers = 0;
    for (size_t i = 0; i < np; i++) nusers += i == 0 || pending[i]->p.user_id != pending[i - 1]->p.user_id;
    size_t *next = calloc(nusers ? nusers : 1, sizeof *next), *end = calloc(nusers ? nusers : 1, sizeof *end);
    size_t *turn = calloc(nusers ? nusers : 1, sizeof *turn);
    if (!next || !end || !turn) {
        free(next), free(end), free(turn);
        return 0;
    }
    size_t u = 0;
    for (size_t i = 0; i < np; i++)
        if (i == 0 || pending[i]->p.user_id != pending[i - 1]->p.user_id) {
            next[u] = i;
            if (u) end[u - 1] = i;
            u++;
        }
    if (nusers) end[nusers - 1] = np;
    size_t lead = 0; /* the first user after cursor, else the first */
    while (lead < nusers && pending[next[lead]]->p.user_id <= cursor) lead++;
    if (lead == nusers) lead = 0;
    /* the users in turn order, dropping each one whose prompts are all placed */
    for (size_t i = 0; i < nusers; i++) turn[i] = (lead + i) % nusers;
    size_t k = 0, active = nusers;
    while (active > 0) {
        size_t still = 0;
        for (size_t i = 0; i < active; i++) {
            size_t t = turn[i];
            out[k++] = pending[next[t]++];
            if (next[t] < end[t]) turn[still++] = t;
        }
        active = still;
    }
    free(next), free(end), free(turn);
    return k;
}

/* The queued prompts in the order they would be dispatched, from now: the priority ones by
 * arrival, then one per user in turn, starting after the user served last. Returns a malloc'd
 * array of n pointers. */
static held **dispatch_order(cd_admission *a, size_t *n) {
    size_t count = 0;
    for (held *h = a->all; h; h = h->next) count += !strcmp(h->p.state, "queued");
    *n = 0;
    held **out = calloc(count ? count : 1, sizeof *out), **pending = calloc(count ? count : 1, sizeof *pending);
    if (!out || !pending) {
        free(out);
        free(pending);
        return NULL;
    }
    size_t k = 0, np = 0;
    for (held *h = a->all; h; h = h->next)
        if (!strcmp(h->p.state, "queued")) {
            if (h->p.priority) out[k++] = h;
            else pending[np++] = h; /* by seq */
        }
    qsort(pending, np, sizeof *pending, by_user_then_seq);
    k += interleave_users(pending, np, a->last_served_user, out + k);
    free(pending);
    *n = k;
    return out;
}

/* ---- telling users where they stand ---- */

static void announce_positions(cd_admission *a, int64_t only_user, bool force) {
    cd_hub_proxy_refresh_status(a->hub->proxy);
    if (cd_hub_proxy_idle(a->hub->proxy)) return; /* no page listens: spare ordering the whole queue */
    size_t n;
    held **order = dispatch_order(a, &n);
    if (!order) return;
    for (size_t i = 0; i < n; i++) {
        held *h = order[i];
        int position = (int)i + 1;
        if ((only_user && h->p.user_id != only_user) || (!force && h->last_position == position)) continue;
        if (!cd_hub_proxy_listening(a->hub->proxy, h->p.user_id, h->p.project_id)) continue; /* told on connect */
        h->last_position = position;
        json_t *msg = json_pack("{s:s, s:{s:s, s:s, s:i, s:i, s:i, s:i}}", "type", "comfyd.queue", "data", "prompt_id",
                                h->p.prompt_id, "state", "queued", "position", position, "ahead", position - 1,
                                "max_concurrent", a->hub->cfg->max_concurrent, "processing_count", a->running);
        char *text = msg ? cd_json_dumps_compact(msg, 0) : NULL;
        json_decref(msg);
        if (text) cd_hub_proxy_notify(a->hub->proxy, h->p.user_id, h->p.project_id, text);
        free(text);
    }
    free(order);
}

/* A prompt left the queue (sent to its instance, cancelled, failed): position 0 and its state,
 * so that a page showing its place can stop. */
static void tell_left_queue(cd_admission *a, const held *h) {
    if (!cd_hub_proxy_listening(a->hub->proxy, h->p.user_id, h->p.project_id)) return;
    json_t *msg = json_pack("{s:s, s:{s:s, s:s, s:i, s:i, s:i, s:i}}", "type", "comfyd.queue", "data", "prompt_id",
                            h->p.prompt_id, "state", h->p.state, "position", 0, "ahead", 0, "max_concurrent",
                            a->hub->cfg->max_concurrent, "processing_count", a->running);
    char *text = msg ? cd_json_dumps_compact(msg, 0) : NULL;
    if (text) cd_hub_proxy_notify(a->hub->proxy, h->p.user_id, h->p.project_id, text);
    free(text);
    json_decref(msg);
}

int cd_admission_held_count(cd_admission *a, int64_t user_id, int64_t project_id) {
    int n = 0;
    for (held *h = a ? a->all : NULL; h; h = h->next)
        n += h->p.user_id == user_id && h->p.project_id == project_id && !strcmp(h->p.state, "queued");
    return n;
}

void cd_admission_announce(cd_admission *a, int64_t user_id) {
    if (a && cd_admission_enabled(a)) announce_positions(a, user_id, true);
}

static void on_announce_timer(uv_timer_t *t) {
    cd_admission *a = t->data;
    a->announce_due = false;
    a->last_announce_at = now_ms();
    announce_positions(a, 0, false);
}

/* ---- state changes ---- */

static void write_soon(cd_admission *a);
static void settle_soon(cd_admission *a);

static void set_state(cd_admission *a, held *h, const char *state, const char *reason) {
    int64_t now = now_ms();
    bool was_queued = !strcmp(h->p.state, "queued");
    count(a, h, -1);
    snprintf(h->p.state, sizeof h->p.state, "%s", state);
    snprintf(h->p.reason, sizeof h->p.reason, "%s", reason ? reason : "");
    /* as the store keeps them: the first dispatch, the end */
    if (is_active_running(h) && !h->p.dispatched_at) h->p.dispatched_at = now;
    if (!strcmp(state, "queued")) h->p.dispatched_at = 0;
    if (!strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled")) h->p.finished_at = now;
    if (!strcmp(state, "dispatching") && h->p.created_at)
        cd_hub_metrics_dispatch_wait(a->hub->metrics, (double)(now - h->p.created_at) / 1000.0);
    if (h->p.finished_at == now && h->p.dispatched_at && strcmp(state, "cancelled") != 0)
        cd_hub_metrics_prompt_duration(a->hub->metrics, (double)(now - h->p.dispatched_at) / 1000.0);
    cd_store *st = a->hub->store;
    write_soon(a);
    if (st->ops->prompt_set_state(st, h->p.prompt_id, state, h->p.reason, now) < 0)
        cd_error("hub: cannot store prompt %s as %s: %s", h->p.prompt_id, state, cd_store_error(st));
    count(a, h, +1);
    if (was_queued && strcmp(state, "queued") != 0 && h->last_position) tell_left_queue(a, h);
}

static void forget_send(cd_admission *a, held *h) {
    h->to_send = false;
    for (size_t i = 0; i < a->nsends; i++)
        if (a->sends[i] == h) {
            a->sends[i] = a->sends[--a->nsends];
            return;
        }
}

/* h goes before its answer (cancelled meanwhile): the answer no longer points at it. */
static void forget_answer_of(cd_admission *a, held *h) {
    for (size_t i = 0; h->unanswered && i < a->nanswers; i++)
        if (a->answers[i].h == h) a->answers[i].h = NULL;
    h->unanswered = false;
}

static void finish(cd_admission *a, held *h, const char *state, const char *reason) {
    forget_send(a, h);
    forget_answer_of(a, h);
    set_state(a, h, state, reason);
    if (strcmp(state, "done") != 0) cd_info("hub: prompt %s %s: %s", h->p.prompt_id, state, reason ? reason : "");
    unlink_held(a, h);
    free(h);
}

static void pump_soon(cd_admission *a);
static void refresh(cd_admission *a);
static void on_settle(uv_check_t *c);
static void start_sync(cd_admission *a);

/* ---- dispatching ---- */

typedef struct {
    cd_admission *a;
    char prompt_id[129];
    bool counts_miss; /* a history look-up after the instance's queue lacked it */
} fetch_ctx;

static fetch_ctx *fetch_ctx_new(cd_admission *a, const char *prompt_id) {
    fetch_ctx *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->a = a;
    snprintf(f->prompt_id, sizeof f->prompt_id, "%s", prompt_id);
    a->inflight++;
    return f;
}

#define REFUSED "the instance refused it"

/* The ComfyUI error the instance answered, as the reason of a failed prompt. */
static void error_reason(const cd_http_client_response *res, char *out, size_t n) {
    json_t *j = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    snprintf(out, n, REFUSED " (%d): %s", res->status, msg ? msg : "no reason given");
    json_decref(j);
}

json_t *cd_admission_refused_entry(cd_admission *a, const char *prompt_id, int64_t user_id, int64_t project_id) {
    cd_store *st = a->hub->store;
    cd_store_prompt p;
    if (st->ops->prompt_get(st, prompt_id, &p) != 0 || p.user_id != user_id || p.project_id != project_id ||
        strcmp(p.state, "failed") != 0 || strncmp(p.reason, REFUSED, strlen(REFUSED)) != 0)
        return NULL;
    char *text = NULL;
    st->ops->prompt_body(st, prompt_id, &text);
    json_t *body = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_t *extra = json_deep_copy(json_object_get(body, "extra_data"));
    if (!extra) extra = json_object();
    if (p.client_id[0]) json_object_set_new(extra, "client_id", json_string(p.client_id));
    json_t *prompt = json_incref(json_object_get(body, "prompt"));
    if (!prompt) prompt = json_object();
    json_t *entry = json_pack(
        "{s:[I, s, o, o, []], s:{}, s:{s:s, s:b, s:[[s, {s:s, s:I}], [s, {s:s, s:s, s:s, s:I}]]}, s:{}}", "prompt",
        (json_int_t)p.seq, p.prompt_id, prompt, extra, "outputs", "status", "status_str",
        "error", "completed", 0, "messages", "execution_start", "prompt_id", p.prompt_id, "timestamp",
        (json_int_t)p.dispatched_at, "execution_error", "prompt_id", p.prompt_id, "exception_message", p.reason,
        "exception_type", "prompt_refused", "timestamp", (json_int_t)p.finished_at, "meta");
    json_decref(body);
    return entry;
}

/* A prompt the instance refused when it was sent (an instance that cannot validate first, such
 * as Python ComfyUI): its user's pages hear it as ComfyUI's execution_error, as if it had failed
 * at its start. The first node the instance named, if any, is the culprit. */
static void tell_refused(cd_admission *a, const held *h, const cd_http_client_response *res, const char *reason) {
    json_t *j = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
    const char *node_id = NULL;
    json_t *node_error = NULL;
    json_object_foreach(json_object_get(j, "node_errors"), node_id, node_error) break;
    const char *type = json_string_value(json_object_get(json_object_get(j, "error"), "type"));
    json_t *msg = json_pack("{s:s, s:{s:s, s:s?, s:s?, s:[], s:s, s:s, s:[], s:{}, s:{}, s:I}}", "type",
                            "execution_error", "data", "prompt_id", h->p.prompt_id, "node_id", node_id, "node_type",
                            json_string_value(json_object_get(node_error, "class_type")), "executed",
                            "exception_message", reason, "exception_type", type ? type : "prompt_refused",
                            "traceback", "current_inputs", "current_outputs", "timestamp", (json_int_t)now_ms());
    char *text = msg ? cd_json_dumps_compact(msg, 0) : NULL;
    if (text) cd_hub_proxy_notify(a->hub->proxy, h->p.user_id, h->p.project_id, text);
    free(text);
    json_decref(msg);
    json_decref(j);
}

static void on_dispatched(const char *error, const cd_http_client_response *res, void *user) {
    fetch_ctx *f = user;
    cd_admission *a = f->a;
    a->inflight--;
    held *h = find(a, f->prompt_id);
    free(f);
    if (h) h->sending = false;
    if (!h || strcmp(h->p.state, "dispatching") != 0) return;
    if (!error && res->status == 200) {
        set_state(a, h, "running", "");
    } else if (!error) {
        char reason[400];
        error_reason(res, reason, sizeof reason);
        tell_refused(a, h, res, reason);
        finish(a, h, "failed", reason);
    } else {
        /* the request may or may not have arrived: the next tick asks the instance */
        cd_warn("hub: sending prompt %s: %s; asking its instance", h->p.prompt_id, error);
    }
    pump_soon(a);
}

/* The stored body with our prompt_id in it (the client's was kept as it was). */
static char *dispatch_body(cd_admission *a, const held *h) {
    char *text = NULL;
    cd_store *st = a->hub->store;
    if (st->ops->prompt_body(st, h->p.prompt_id, &text) < 0) return NULL;
    return text;
}

/* Taken from the queue: its slot is counted at once, and it is sent once "dispatching" is
 * committed (send_dispatched), so that a hub killed in between knows to ask the instance first.
 * It does not wait for the disk flush that answers wait for: a commit survives the process being
 * killed, and only a power cut of the hub's machine in the millisecond before the flush could
 * send it again (see commit_writes). */
static bool room_for_a_send(cd_admission *a) {
    if (a->nsends < a->capsends) return true;
    size_t cap = a->capsends ? a->capsends * 2 : 16;
    held **grown = realloc(a->sends, cap * sizeof *grown);
    if (!grown) return false;
    a->sends = grown;
    a->capsends = cap;
    return true;
}

/* h goes out once committed and answered (send_dispatched). */
static bool send_later(cd_admission *a, held *h, bool committed) {
    if (!room_for_a_send(a)) return false;
    h->to_send = true;
    h->committed = committed;
    a->sends[a->nsends++] = h;
    a->sends_due = true;
    return true;
}

static bool dispatch(cd_admission *a, held *h) {
    if (!room_for_a_send(a)) return false; /* stays queued: a later pump tries again */
    set_state(a, h, "dispatching", "");
    a->last_served_user = h->p.priority ? a->last_served_user : h->p.user_id;
    return send_later(a, h, false);
}

static void send_one(cd_admission *a, held *h) {
    forget_send(a, h);
    char host[65];
    int port;
    if (cd_supervisor_target(a->hub->sup, h->p.project_id, host, sizeof host, &port) < 0) {
        finish(a, h, "failed", "its instance is not running");
        return;
    }
    char *body = dispatch_body(a, h);
    fetch_ctx *f = body ? fetch_ctx_new(a, h->p.prompt_id) : NULL;
    if (!f) {
        free(body);
        finish(a, h, "failed", "out of memory");
        return;
    }
    cd_supervisor_touch(a->hub->sup, h->p.project_id);
    cd_instance_watch_want(a->watch, h->p.project_id, host, port); /* to hear when it ends */
    cd_http_client_request r = {
        .method = "POST",
        .host = host,
        .port = port,
        .target = "/prompt",
        .headers = "Content-Type: application/json\r\n",
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = 60000,
    };
    h->sending = true;
    if (cd_upstream_fetch(a->pool, &r, on_dispatched, f) < 0) on_dispatched("cannot connect", NULL, f);
    free(body);
}

/* The user's oldest queued prompt that is not a priority one, from h on. */
static held *next_queued_plain(held *h) {
    while (h && h->p.priority) h = next_queued_of(h->next, h->p.user_id);
    return h;
}

/* Whether x comes before y in the first round of the round-robin: users after the one served
 * last first, by id, then the others by id; a user's oldest prompt first. */
static bool turn_before(const cd_admission *a, const held *x, const held *y) {
    bool x_after = x->p.user_id > a->last_served_user, y_after = y->p.user_id > a->last_served_user;
    if (x_after != y_after) return x_after;
    if (x->p.user_id != y->p.user_id) return x->p.user_id < y->p.user_id;
    return x->p.seq < y->p.seq;
}

/* The first prompt of dispatch_order whose user may run one more, in one pass without sorting:
 * it is what runs when a slot frees, so it must be quick with thousands waiting. */
static held *pick_next(cd_admission *a) {
    for (held *h = a->queued_priority ? a->all : NULL; h; h = h->next) /* few: walked */
        if (h->p.priority && !strcmp(h->p.state, "queued") && user_may_run(a, h, NULL)) return h; /* by arrival */
    held *best = NULL;
    for (size_t i = 0; i < a->nusers; i++) {
        held *h = a->users[i].oldest_queued;
        if (h && h->p.priority) h = next_queued_plain(h); /* the priority ones were looked at above */
        if (!h || !user_may_run(a, h, NULL)) continue;
        if (!best || turn_before(a, h, best)) best = h;
    }
    return best;
}

/* Sends the dispatched prompts whose state is on disk (see commit_writes). */
static void send_dispatched(cd_admission *a) {
    if (!a->sends_due) return;
    a->sends_due = false;
    for (size_t i = 0; i < a->nsends;) {
        held *h = a->sends[i];
        if (h->committed && !h->unanswered && !a->stopping) send_one(a, h); /* takes it out */
        else {
            a->sends_due = true;
            i++;
        }
    }
    if (a->writes_pending) settle_soon(a); /* what sending changed (an instance gone) */
}

static void wake_noop(uv_idle_t *i) {}

static void settle_soon(cd_admission *a) {
    if (a->handles_open && !a->stopping) {
        uv_check_start(&a->settle, on_settle);
        uv_idle_start(&a->wake, wake_noop);
    }
}

/* The writes of a loop turn go into one transaction, committed at its end (on_settle). */
static void write_soon(cd_admission *a) {
    cd_store *st = a->hub->store;
    if (st->ops->batch_begin(st) < 0) cd_warn("hub: cannot begin a store transaction: %s", cd_store_error(st));
    a->writes_pending = true;
    settle_soon(a);
}

static void commit_writes(cd_admission *a, bool now);

static void pump_soon(cd_admission *a) {
    a->pump_due = true;
    settle_soon(a);
}

/* A prompt the store's dispatch gave this hub: ours to send and watch from now. */
static held *take_dispatched(cd_admission *a, const cd_store_prompt *row) {
    held *h = find(a, row->prompt_id);
    if (!h) {
        if (!(h = calloc(1, sizeof *h))) return NULL;
        h->p = *row;
        append_held(a, h);
        return h;
    }
    bool was_shown = !strcmp(h->p.state, "queued") && h->last_position;
    count(a, h, -1);
    h->p = *row;
    h->foreign = false;
    h->misses = 0;
    count(a, h, +1);
    if (h->p.created_at)
        cd_hub_metrics_dispatch_wait(a->hub->metrics, (double)(now_ms() - h->p.created_at) / 1000.0);
    if (was_shown) tell_left_queue(a, h);
    return h;
}

/* Several hubs: the store picks the prompts for the free slots across all of them, in the
 * queue's order, under a lock every hub's dispatch takes (store.h prompt_dispatch). The commit
 * is durable when it returns, so the prompts go out at once. */
static void pump_shared(cd_admission *a) {
    int64_t now = now_ms();
    /* the mirror counts every hub's prompts out: while it says full, the hub that frees a slot
     * dispatches (its own pump), and a poll now and then covers a missed word */
    if (a->running >= a->hub->cfg->max_concurrent && now - a->last_shared_pump_at < SHARED_POLL_MS) return;
    a->last_shared_pump_at = now;
    commit_writes(a, true); /* what this turn accepted takes part, and a failed commit is dropped */
    cd_store *st = a->hub->store;
    cd_store_prompt *rows = NULL;
    size_t n = 0;
    int64_t turn = a->last_served_user;
    if (st->ops->prompt_dispatch(st, a->hub->id, a->hub->cfg->max_concurrent, a->hub->cfg->max_running_per_user, now,
                                 &rows, &n, &turn) < 0) {
        cd_warn("hub: cannot dispatch from the shared queue: %s", cd_store_error(st));
        return;
    }
    a->last_served_user = turn;
    for (size_t i = 0; i < n; i++) {
        held *h = take_dispatched(a, &rows[i]);
        if (!h) continue;
        if (!h->unanswered) send_one(a, h); /* committed: the function committed it */
        else if (!send_later(a, h, true)) cd_error("hub: out of memory: prompt %s waits for its check", h->p.prompt_id);
    }
    free(rows);
    if (n) a->announce_due = true;
}

static void pump(cd_admission *a) {
    a->pump_due = false;
    if (a->stopping) return;
    if (shared(a)) {
        pump_shared(a);
        return;
    }
    bool changed = false;
    while (a->running < a->hub->cfg->max_concurrent) {
        held *pick = pick_next(a);
        if (!pick || !dispatch(a, pick)) break;
        changed = true;
    }
    if (changed) a->announce_due = true;
}

/* ---- watching what runs ---- */

static void check_again(cd_admission *a, held *h);

static void on_history(const char *error, const cd_http_client_response *res, void *user) {
    fetch_ctx *f = user;
    cd_admission *a = f->a;
    a->inflight--;
    held *h = find(a, f->prompt_id);
    bool counts_miss = f->counts_miss;
    free(f);
    if (!h) return;
    h->checking = false;
    bool again = h->recheck;
    h->recheck = false;
    if (error || res->status != 200) return; /* the instance is down or busy: next tick */
    json_t *j = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
    json_t *entry = json_object_get(j, h->p.prompt_id);
    if (!entry && again) {
        /* The instance's end message can come before its history has the prompt (comfyd serve
         * and ComfyUI both send execution_success first); the status message that follows
         * came while this look-up was under way. Ask again now rather than at the next tick
         * (up to a quarter of a second of a slot left empty). */
        json_decref(j);
        check_again(a, h);
        return;
    }
    if (entry) {
        json_t *status = json_object_get(entry, "status");
        const char *s = json_string_value(json_object_get(status, "status_str"));
        bool ok = s && !strcmp(s, "success");
        bool interrupted = false;
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(status, "messages"), i, m) {
            const char *kind = json_string_value(json_array_get(m, 0));
            if (kind && !strcmp(kind, "execution_interrupted")) interrupted = true;
        }
        finish(a, h, ok ? "done" : "failed",
               ok ? "" : h->interrupt_sent ? "it ran past COMFY_PROMPT_TIMEOUT_SECONDS and was interrupted"
                  : interrupted             ? "interrupted"
                                            : "it failed in its instance (see its history)");
        pump_soon(a);
    } else if (counts_miss && !h->to_send && !h->sending && ++h->misses >= LOST_AFTER) {
        if (!strcmp(h->p.state, "dispatching")) {
            /* it never reached the instance: safe to send again */
            set_state(a, h, "queued", "");
            h->misses = 0;
        } else {
            finish(a, h, "failed", "its instance no longer knows it (restarted?)");
        }
        pump_soon(a);
    }
    json_decref(j);
}

static void check_history(cd_admission *a, held *h, const char *host, int port, bool counts_miss) {
    char target[200];
    snprintf(target, sizeof target, "/history/%s", h->p.prompt_id);
    fetch_ctx *f = fetch_ctx_new(a, h->p.prompt_id);
    if (!f) return;
    f->counts_miss = counts_miss;
    h->checking = true;
    cd_http_client_request r = {.host = host, .port = port, .target = target, .timeout_ms = 5000};
    if (cd_upstream_fetch(a->pool, &r, on_history, f) < 0) on_history("cannot connect", NULL, f);
}

static void check_again(cd_admission *a, held *h) {
    char host[65];
    int port;
    if (!a->stopping && cd_supervisor_target(a->hub->sup, h->p.project_id, host, sizeof host, &port) == 0)
        check_history(a, h, host, port, false);
}

typedef struct {
    cd_admission *a;
    int64_t project_id;
    char host[65];
    int port;
} queue_ctx;

/* The prompt ids an instance holds (running or pending). */
static bool queue_has(json_t *q, const char *prompt_id) {
    const char *lists[] = {"queue_running", "queue_pending"};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(q, lists[l]), i, item) {
            const char *id = json_string_value(json_array_get(item, 1));
            if (id && !strcmp(id, prompt_id)) return true;
        }
    }
    return false;
}

static void on_queue(const char *error, const cd_http_client_response *res, void *user) {
    queue_ctx *qc = user;
    cd_admission *a = qc->a;
    a->inflight--;
    json_t *q = !error && res->status == 200 ? json_loadb(res->body.data, res->body.len, 0, NULL) : NULL;
    for (held *h = a->all, *next; q && h; h = next) {
        next = h->next;
        /* one not sent yet, or on its way, is in no queue of the instance: that is no loss */
        if (h->p.project_id != qc->project_id || !watched(h) || h->checking || h->to_send || h->sending)
            continue;
        if (queue_has(q, h->p.prompt_id)) {
            h->misses = 0;
            if (!strcmp(h->p.state, "dispatching")) set_state(a, h, "running", "");
        } else {
            check_history(a, h, qc->host, qc->port, true);
        }
    }
    json_decref(q);
    free(qc);
}

static void interrupt_overdue(cd_admission *a, held *h, const char *host, int port, int64_t now) {
    int64_t limit = (int64_t)a->hub->cfg->prompt_timeout_s * 1000;
    if (h->interrupt_sent || strcmp(h->p.state, "running") != 0 || now - h->p.dispatched_at < limit) return;
    h->interrupt_sent = true;
    char body[200];
    snprintf(body, sizeof body, "{\"prompt_id\": \"%s\"}", h->p.prompt_id);
    fetch_ctx *f = fetch_ctx_new(a, h->p.prompt_id);
    if (!f) return;
    cd_http_client_request r = {.method = "POST", .host = host, .port = port, .target = "/interrupt",
                                .body = body, .body_len = strlen(body), .timeout_ms = 5000};
    cd_warn("hub: prompt %s ran past %d s: interrupting it", h->p.prompt_id, a->hub->cfg->prompt_timeout_s);
    if (cd_upstream_fetch(a->pool, &r, on_dispatched, f) < 0) on_dispatched("cannot connect", NULL, f);
}

static void take_sample(cd_admission *a, int64_t now) {
    if (now - a->last_sample_at < CD_ADMISSION_SAMPLE_MS) return;
    a->last_sample_at = now;
    a->samples[a->sample_next] = (cd_admission_sample){now, a->waiting, a->running};
    a->sample_next = (a->sample_next + 1) % SAMPLES;
    if (a->nsamples < SAMPLES) a->nsamples++;
}

size_t cd_admission_series(const cd_admission *a, cd_admission_sample *out, size_t max) {
    size_t n = a->nsamples < max ? a->nsamples : max;
    for (size_t i = 0; i < n; i++) /* oldest first */
        out[i] = a->samples[(a->sample_next + SAMPLES - a->nsamples + (a->nsamples - n) + i) % SAMPLES];
    return n;
}

static void on_tick(uv_timer_t *t) {
    cd_admission *a = t->data;
    int64_t now = now_ms();
    take_sample(a, now);
    if (a->sync_rc < 0 && !a->sync_running) start_sync(a); /* the last one failed */
    /* one /queue per project that has prompts out, then /history for those it no longer holds */
    int64_t seen[64];
    size_t nseen = 0;
    for (held *h = a->all, *next; h; h = next) {
        next = h->next;
        if (!watched(h)) continue;
        char host[65];
        int port;
        if (cd_supervisor_target(a->hub->sup, h->p.project_id, host, sizeof host, &port) < 0) {
            cd_store_instance rec;
            char reason[600] = "its instance stopped";
            if (a->hub->store->ops->instance_by_project(a->hub->store, h->p.project_id, &rec) == 0 && rec.reason[0])
                snprintf(reason, sizeof reason, "its instance stopped: %s", rec.reason);
            finish(a, h, "failed", reason);
            continue;
        }
        interrupt_overdue(a, h, host, port, now);
        cd_instance_watch_want(a->watch, h->p.project_id, host, port);
        bool done = false;
        for (size_t i = 0; i < nseen && !done; i++) done = seen[i] == h->p.project_id;
        if (done || nseen == 64) continue;
        seen[nseen++] = h->p.project_id;
        queue_ctx *qc = calloc(1, sizeof *qc);
        if (!qc) continue;
        *qc = (queue_ctx){a, h->p.project_id, "", port};
        snprintf(qc->host, sizeof qc->host, "%s", host);
        a->inflight++;
        cd_http_client_request r = {.host = host, .port = port, .target = "/queue", .timeout_ms = 5000};
        if (cd_upstream_fetch(a->pool, &r, on_queue, qc) < 0) on_queue("cannot connect", NULL, qc);
    }
    cd_instance_watch_sweep(a->watch);
    /* the poll covers a missed notification; alone on the store, nobody else changes it */
    if (shared(a) && now - a->last_refresh_at >= SHARED_POLL_MS && cd_hub_peers_others_alive(a->hub->peers))
        refresh(a);
    pump_soon(a);
}

/* The instance's queue changed: did one of our prompts there end? Its history says at once. */
static void on_instance_changed(int64_t project_id, void *user) {
    cd_admission *a = user;
    char host[65];
    int port;
    if (a->stopping || cd_supervisor_target(a->hub->sup, project_id, host, sizeof host, &port) < 0) return;
    for (size_t i = a->nout; i-- > 0;) { /* backwards: a failed look-up may take a->out[i] out */
        held *h = a->out[i];
        if (h->p.project_id != project_id) continue;
        if (h->checking) h->recheck = true; /* its answer may predate this change */
        else check_history(a, h, host, port, false);
    }
}

/* ---- several hubs: the shared queue ---- */

static int by_prompt_id(const void *x, const void *y) {
    return strcmp((*(held *const *)x)->p.prompt_id, (*(held *const *)y)->p.prompt_id);
}

/* The counts and the list of prompts out, from the list itself. */
static void recount(cd_admission *a) {
    a->waiting = a->running = a->queued_priority = 0;
    a->nout = 0;
    for (size_t i = 0; i < a->nusers; i++) {
        a->users[i].waiting = a->users[i].running = 0;
        a->users[i].oldest_queued = NULL;
    }
    for (held *h = a->all; h; h = h->next) count(a, h, +1);
}

/* Reads the store's queue (every hub's prompts) into the list: what another hub accepted,
 * dispatched, cancelled or finished. The prompts this hub watches keep what it knows of them.
 * Ten thousand prompts take a few milliseconds: one read, a sort, a look-up each. */
static void refresh(cd_admission *a) {
    a->last_refresh_at = now_ms();
    cd_store *st = a->hub->store;
    cd_store_prompt *rows = NULL;
    size_t n = 0;
    if (st->ops->prompt_list_active(st, &rows, &n) < 0) {
        cd_warn("hub: cannot read the shared queue: %s", cd_store_error(st));
        return;
    }
    int64_t turn;
    if (st->ops->queue_turn(st, &turn) == 0) a->last_served_user = turn;
    size_t nold = 0;
    for (held *h = a->all; h; h = h->next) nold++;
    held **index = malloc((nold ? nold : 1) * sizeof *index);
    if (!index) {
        free(rows);
        return;
    }
    size_t k = 0;
    for (held *h = a->all; h; h = h->next) {
        h->listed = false;
        index[k++] = h;
    }
    qsort(index, nold, sizeof *index, by_prompt_id);
    held *head = NULL, *tail = NULL;
    for (size_t i = 0; i < n; i++) {
        held key, *kp = &key;
        memcpy(key.p.prompt_id, rows[i].prompt_id, sizeof key.p.prompt_id);
        held **found = bsearch(&kp, index, nold, sizeof *index, by_prompt_id);
        held *h = found ? *found : calloc(1, sizeof *h);
        if (!h) continue;
        bool ours = found && watched(h) && !out_elsewhere(&rows[i], a->hub->id);
        if (!ours) {
            h->p = rows[i];
            h->foreign = out_elsewhere(&h->p, a->hub->id);
        }
        h->listed = true;
        h->next = NULL;
        if (tail) tail->next = h;
        else head = h;
        tail = h;
    }
    /* Not in the store's list: ended elsewhere (cancelled, done), unless this hub watches it. */
    for (size_t i = 0; i < nold; i++) {
        held *h = index[i];
        if (h->listed) continue;
        if (watched(h) || h->to_send || h->sending || h->unanswered) {
            h->next = NULL;
            if (tail) tail->next = h;
            else head = h;
            tail = h;
        } else {
            free(h);
        }
    }
    free(index);
    free(rows);
    a->all = head;
    a->last = tail;
    recount(a);
    a->announce_due = true;
    pump_soon(a);
}

static void on_refresh_timer(uv_timer_t *t) {
    cd_admission *a = t->data;
    if (!a->stopping) refresh(a);
}

void cd_admission_store_changed(cd_admission *a) {
    if (!a || !shared(a) || a->stopping || uv_is_active((uv_handle_t *)&a->refresh_timer)) return;
    int64_t wait = a->last_refresh_at + REFRESH_MS - now_ms();
    uv_timer_start(&a->refresh_timer, on_refresh_timer, wait > 0 ? (uint64_t)wait : 0, 0);
}

void cd_admission_take_over(cd_admission *a, const char *hub_id) {
    if (!a || !shared(a) || a->stopping) return;
    cd_store *st = a->hub->store;
    commit_writes(a, true);
    cd_store_prompt *rows = NULL;
    size_t n = 0;
    if (st->ops->prompt_take_over(st, hub_id, a->hub->id, &rows, &n) < 0) {
        cd_warn("hub: cannot take over the prompts of hub %s: %s", hub_id, cd_store_error(st));
        return;
    }
    /* as after a restart: the instance's queue and history tell what became of each */
    for (size_t i = 0; i < n; i++) take_dispatched(a, &rows[i]);
    if (n) cd_info("hub: took over %zu prompt(s) of hub %s", n, hub_id);
    free(rows);
    pump_soon(a);
}

/* ---- submitting ---- */

static void prompt_error(cd_http_req *req, int status, const char *type, const char *message) {
    cd_hub_json(req, status,
                json_pack("{s:{s:s, s:s, s:s, s:{}}, s:{}}", "error", "type", type, "message", message, "details",
                          "", "extra_info", "node_errors"));
}

struct submit_ctx {
    cd_admission *a;
    cd_http_req *req; /* NULL once the client went away (the prompt is still held) */
    cd_store_prompt p;
    char *body;
    bool counted; /* in its user's submitting count */
};

static void submit_aborted(cd_http_req *req, void *arg) { ((submit_ctx *)arg)->req = NULL; }

static void submit_free(submit_ctx *s) {
    user_counts *u = s->counted ? counts_of(s->a, s->p.user_id, false) : NULL;
    if (u) u->submitting--;
    if (s->req) cd_http_req_on_abort(s->req, NULL, NULL);
    free(s->body);
    free(s);
}

static void answer(submit_ctx *s, int rc, const char *store_error) {
    cd_http_req *req = s->req;
    if (req) cd_http_req_on_abort(req, NULL, NULL);
    s->req = NULL;
    if (!req) { /* the client went away: its prompt is held and runs all the same */
    } else if (rc == CD_STORE_CONFLICT) {
        prompt_error(req, 400, "invalid_prompt", "a prompt with this prompt_id was already submitted");
    } else if (rc != 0) {
        prompt_error(req, 500, "internal_error", store_error ? store_error : "cannot store the prompt");
    } else {
        cd_hub_json(req, 200, json_pack("{s:s, s:I, s:{}}", "prompt_id", s->p.prompt_id, "number", (json_int_t)s->p.seq,
                                        "node_errors"));
    }
    submit_free(s);
}

static void add_answer(cd_admission *a, submit_ctx *s, int rc, held *h) {
    if (a->nanswers == a->capanswers) {
        size_t cap = a->capanswers ? a->capanswers * 2 : 64;
        pending_answer *grown = realloc(a->answers, cap * sizeof *grown);
        if (!grown) {
            answer(s, CD_STORE_ERROR, "out of memory");
            return;
        }
        a->answers = grown;
        a->capanswers = cap;
    }
    a->answers[a->nanswers++] = (pending_answer){s, rc, 0, h};
    if (h) h->unanswered = true;
}

/* The prompts accepted in this loop turn go into the turn's transaction and into the queue (so
 * that one may be dispatched at once); they are answered once the transaction is on disk. */
static void store_batch(cd_admission *a) {
    cd_store *st = a->hub->store;
    size_t n = a->nbatch;
    submit_ctx **batch = a->batch;
    a->batch = NULL;
    a->nbatch = a->capbatch = 0;
    write_soon(a);
    for (size_t i = 0; i < n; i++) {
        submit_ctx *sc = batch[i];
        int rc = st->ops->prompt_add(st, &sc->p, sc->body);
        held *h = rc == 0 ? calloc(1, sizeof *h) : NULL;
        if (rc == 0 && !h) rc = CD_STORE_ERROR; /* its row goes when its user cancels; it is never answered 200 */
        if (h) {
            h->p = sc->p;
            append_held(a, h);
        }
        add_answer(a, sc, rc, h);
    }
    free(batch);
    a->announce_due = true;
    a->pump_due = true;
}

/* Validated (or not validatable): stored at the end of this loop turn with the others. */
static void hold(submit_ctx *s) {
    cd_admission *a = s->a;
    snprintf(s->p.state, sizeof s->p.state, "queued");
    if (a->nbatch == a->capbatch) {
        size_t cap = a->capbatch ? a->capbatch * 2 : 32;
        submit_ctx **grown = realloc(a->batch, cap * sizeof *grown);
        if (!grown) {
            answer(s, CD_STORE_ERROR, "out of memory");
            return;
        }
        a->batch = grown;
        a->capbatch = cap;
    }
    a->batch[a->nbatch++] = s;
    settle_soon(a);
    if (!a->handles_open || a->stopping) on_settle(&a->settle);
}

/* ---- making the turn's writes durable ---- */

static void release_synced(cd_admission *a);

static int run_sync(void *arg) {
    cd_admission *a = arg;
    return a->hub->store->ops->sync(a->hub->store); /* touches no connection: any thread */
}

static void start_sync(cd_admission *a);
static void close_syncer_when_done(cd_admission *a);

static void after_sync(int rc, void *user) {
    cd_admission *a = user;
    a->inflight--;
    a->sync_running = false;
    a->sync_rc = rc;
    if (rc < 0) {
        /* nothing is known to be on disk: what waits keeps waiting, and the tick tries again */
        cd_error("hub: cannot sync the store to disk: %s; trying again", strerror(-rc));
        a->syncs_started--;
        close_syncer_when_done(a);
        return;
    }
    a->syncs_done = a->syncs_started;
    release_synced(a);
    commit_writes(a, false); /* what gathered meanwhile (starts the next sync) */
    bool more = false;
    for (size_t i = 0; i < a->nanswers && !more; i++) more = a->answers[i].need > a->syncs_done;

    if (more && !a->sync_running) start_sync(a);
    close_syncer_when_done(a);
}

static void start_sync(cd_admission *a) {
    a->sync_running = true;
    a->syncs_started++;
    a->inflight++;
    cd_syncer_request(a->syncer);
}

static void syncer_closed(void *user) {
    cd_admission *a = user;
    a->syncer = NULL;
    a->handles_open--;
}

/* Stopping: once no sync is under way (and none is wanted), the thread ends. */
static void close_syncer_when_done(cd_admission *a) {
    if (!a->stopping || a->sync_running || !a->syncer || a->syncer_closing) return;
    a->syncer_closing = true;
    cd_syncer_close(a->syncer, syncer_closed);
}

/* The number of syncs after which what was just committed is on disk. */
static int64_t after_next_sync(cd_admission *a) {
    int64_t need = a->syncs_started + 1; /* one under way began before this commit */
    if (!a->sync_running) start_sync(a);
    return need;
}

/* A failed commit took the turn's new prompts with it: out of the queue, and a 500. */
static void drop_uncommitted(cd_admission *a) {
    for (size_t i = 0; i < a->nanswers; i++) {
        pending_answer *pa = &a->answers[i];
        if (pa->need || pa->rc != 0) continue;
        held *h = pa->h;
        pa->h = NULL;
        if (h) {
            forget_send(a, h);
            unlink_held(a, h);
            free(h);
        }
        pa->rc = CD_STORE_ERROR;
        pa->need = -1; /* answered at once */
    }
}

/* A failed commit took the turn's dispatches with it: back in the queue, as the store has them
 * (the tick's pump tries again; not at once, which would spin while the store fails). */
static void undo_uncommitted_sends(cd_admission *a) {
    for (size_t i = a->nsends; i-- > 0;) {
        held *h = a->sends[i];
        if (h->committed) continue;
        forget_send(a, h);
        count(a, h, -1);
        snprintf(h->p.state, sizeof h->p.state, "queued");
        h->p.dispatched_at = 0;
        count(a, h, +1);
    }
}

/* Commits the writes so far, unless a sync is under way, nothing is to be sent and now is false:
 * then they wait in the open transaction for its end (after_sync), gathering more; so each sync
 * covers one large transaction, not many small ones. Answers wait for the sync after their
 * commit. Dispatched prompts go out once committed, without waiting for the flush: the slot's
 * next prompt is what the dispatch delay measures, and a commit already survives kill -9 (the
 * flush only guards against a power cut of the hub's machine, after which a prompt sent in its
 * last millisecond would be sent again). */
static void commit_writes(cd_admission *a, bool now) {
    bool sends_waiting = false;
    for (size_t i = 0; i < a->nsends && !sends_waiting; i++) sends_waiting = !a->sends[i]->committed;
    if (!a->writes_pending || (a->sync_running && !now && !sends_waiting)) return;
    a->writes_pending = false;
    cd_store *st = a->hub->store;
    bool ok = st->ops->batch_commit(st) == 0;
    if (!ok) {
        cd_error("hub: cannot store the queue's changes: %s", cd_store_error(st));
        drop_uncommitted(a);
        undo_uncommitted_sends(a);
    }
    int64_t need = after_next_sync(a);
    for (size_t i = 0; i < a->nanswers; i++)
        if (!a->answers[i].need) a->answers[i].need = need;
    for (size_t i = 0; i < a->nsends; i++) a->sends[i]->committed = true;
    if (a->nsends) {
        a->sends_due = true;
        send_dispatched(a);
    }
    if (!ok) release_synced(a);
}

/* Answers and sends whose writes are on disk now. */
static void release_synced(cd_admission *a) {
    size_t kept = 0;
    pending_answer *list = a->answers;
    size_t n = a->nanswers;
    a->answers = NULL;
    a->nanswers = a->capanswers = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i].need < 0 || (list[i].need && list[i].need <= a->syncs_done)) {
            if (list[i].h) list[i].h->unanswered = false; /* may go out now */
            answer(list[i].s, list[i].rc, list[i].rc ? cd_store_error(a->hub->store) : NULL);
        } else {
            list[kept++] = list[i];
        }
    }
    if (kept) { /* still waiting: put back in front of any added meanwhile (none: single thread) */
        a->answers = list;
        a->nanswers = a->capanswers = kept;
    } else {
        free(list);
    }
    send_dispatched(a);
}

/* The end of a loop turn: new prompts stored, free slots filled, the turn's changes committed
 * in one transaction, and a sync under way whose end lets the answers and sends go. */
static void on_settle(uv_check_t *c) {
    cd_admission *a = c->data;
    uv_check_stop(c);
    uv_idle_stop(&a->wake);
    if (a->nbatch) store_batch(a);
    if (a->pump_due) pump(a);
    commit_writes(a, false);
    if (a->announce_due && !uv_is_active((uv_handle_t *)&a->announce_timer) && a->handles_open && !a->stopping) {
        int64_t wait = a->last_announce_at + ANNOUNCE_EVERY_MS - now_ms();
        uv_timer_start(&a->announce_timer, on_announce_timer, wait > 0 ? (uint64_t)wait : 0, 0);
    }
}

static void on_validated(const char *error, const cd_http_client_response *res, void *user) {
    submit_ctx *s = user;
    s->a->inflight--;
    if (!s->req) { /* the client went away before it was accepted: nothing was promised */
        submit_free(s);
        return;
    }
    if (error) {
        cd_http_req *req = s->req;
        cd_http_req_on_abort(req, NULL, NULL);
        s->req = NULL;
        char msg[300];
        snprintf(msg, sizeof msg, "the instance did not answer the validation: %s", error);
        prompt_error(req, 502, "instance_unavailable", msg);
        submit_free(s);
        return;
    }
    json_t *j = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
    bool validated = json_is_true(json_object_get(j, "validate_only"));
    json_decref(j);
    if (res->status != 200 || !validated) {
        /* 400: ComfyUI's validation errors, passed as they are. A 200 without validate_only
         * cannot happen: the kind of instance was checked first. */
        cd_http_req *req = s->req;
        cd_http_req_on_abort(req, NULL, NULL);
        s->req = NULL;
        cd_http_respond(req, res->status == 200 ? 500 : res->status, "application/json; charset=utf-8",
                        res->body.data ? res->body.data : "", res->body.len);
        submit_free(s);
        return;
    }
    hold(s);
}

static instance_kind *kind_slot(cd_admission *a, const char *host, int port, bool for_write) {
    char address[80];
    snprintf(address, sizeof address, "%s:%d", host, port);
    instance_kind *oldest = &a->kinds[0];
    for (int i = 0; i < KINDS; i++) {
        if (!strcmp(a->kinds[i].address, address)) return &a->kinds[i];
        if (a->kinds[i].at < oldest->at) oldest = &a->kinds[i];
    }
    if (!for_write) return NULL;
    snprintf(oldest->address, sizeof oldest->address, "%s", address);
    return oldest;
}

static void validate_or_hold(submit_ctx *s, bool comfyd);

/* Only comfyd serve knows validate_only: anything else would run the prompt at once. */
static void on_kind(const char *error, const cd_http_client_response *res, void *user) {
    submit_ctx *s = user;
    json_t *j = !error && res->status == 200 ? json_loadb(res->body.data, res->body.len, 0, NULL) : NULL;
    bool comfyd = json_is_string(json_object_get(json_object_get(j, "system"), "comfyd_version"));
    json_decref(j);
    char host[65];
    int port;
    if (j && cd_supervisor_target(s->a->hub->sup, s->p.project_id, host, sizeof host, &port) == 0) {
        instance_kind *k = kind_slot(s->a, host, port, true);
        k->comfyd = comfyd;
        k->at = now_ms();
    }
    validate_or_hold(s, comfyd);
}

static void validate_or_hold(submit_ctx *s, bool comfyd) {
    if (!comfyd || !s->req) {
        s->a->inflight--;
        if (!s->req) submit_free(s);
        else hold(s); /* errors of the graph surface when it runs */
        return;
    }
    char host[65];
    int port;
    if (cd_supervisor_target(s->a->hub->sup, s->p.project_id, host, sizeof host, &port) < 0) {
        on_validated("the instance stopped", NULL, s);
        return;
    }
    /* s->body is a compact JSON object without validate_only (submit made it so): the flag goes
     * in front as text, which spares parsing and writing the whole prompt once more */
    size_t len = strlen(s->body);
    char *text = malloc(len + sizeof "{\"validate_only\":true,");
    if (text) {
        bool empty = len == 2; /* "{}" */
        snprintf(text, len + sizeof "{\"validate_only\":true,", "{\"validate_only\":true%s%s", empty ? "" : ",",
                 s->body + 1);
    }
    cd_http_client_request r = {.method = "POST", .host = host, .port = port, .target = "/prompt",
                                .headers = "Content-Type: application/json\r\n", .body = text,
                                .body_len = text ? strlen(text) : 0, .timeout_ms = 60000};
    if (!text || cd_upstream_fetch(s->a->pool, &r, on_validated, s) < 0) on_validated("cannot connect", NULL, s);
    free(text);
}

/* A client's own prompt_id goes into the hub's requests to instances (/history/{id}): letters,
 * digits and "-_.:~" only, at most 128 (ComfyUI takes any string; UUIDs, what clients send,
 * pass), so that it can never end a request line or leave its path. */
static bool prompt_id_ok(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 128) return false;
    for (const char *c = id; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("-_.:~", *c)) return false;
    return true;
}

void cd_admission_submit(cd_admission *a, cd_http_req *req, const cd_hub_caller *caller, const cd_store_project *p,
                         const cd_store_user *owner, const char *body, size_t len) {
    json_t *j = len ? cd_json_parse(body, len, 0, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        prompt_error(req, 400, "invalid_json", "The request body is not valid JSON");
        return;
    }
    if (!json_is_object(json_object_get(j, "prompt"))) {
        json_decref(j);
        prompt_error(req, 400, "no_prompt", "No prompt provided");
        return;
    }
    user_counts *uc = counts_of(a, caller->user.id, false);
    /* those still being validated count too: a burst of parallel submissions is no way past it */
    if (user_waiting(a, caller->user.id) + (uc ? uc->submitting : 0) >= a->hub->cfg->max_waiting_per_user) {
        json_decref(j);
        char msg[200];
        snprintf(msg, sizeof msg, "you have %d prompts waiting already; wait for some to run",
                 a->hub->cfg->max_waiting_per_user);
        prompt_error(req, 429, "too_many_prompts", msg);
        return;
    }
    char host[65];
    int port;
    if (cd_supervisor_target(a->hub->sup, p->id, host, sizeof host, &port) < 0) {
        json_decref(j);
        prompt_error(req, 503, "instance_not_running", "the project's instance is not running: open it first");
        return;
    }
    submit_ctx *s = calloc(1, sizeof *s);
    if (!s) {
        json_decref(j);
        prompt_error(req, 500, "internal_error", "out of memory");
        return;
    }
    s->a = a;
    s->req = req;
    s->p.user_id = caller->user.id;
    json_t *pid = json_object_get(j, "prompt_id");
    char *given = pid ? cd_validate_py_str(pid) : NULL;
    if (given && *given && !prompt_id_ok(given)) {
        free(given);
        free(s);
        json_decref(j);
        prompt_error(req, 400, "invalid_prompt", "prompt_id may hold letters, digits and - _ . : ~ (at most 128)");
        return;
    }
    if (given && *given) snprintf(s->p.prompt_id, sizeof s->p.prompt_id, "%s", given);
    else cd_str_uuid4(s->p.prompt_id);
    free(given);
    json_object_set_new(j, "prompt_id", json_string(s->p.prompt_id));
    json_object_del(j, "validate_only");
    bool elevated = caller->user.role >= CD_ROLE_TEACHER;
    s->p.priority = elevated; /* teachers' prompts go first; front: true is theirs only */
    if (!elevated) json_object_del(j, "front");
    const char *client = json_string_value(json_object_get(j, "client_id"));
    snprintf(s->p.client_id, sizeof s->p.client_id, "%s", client ? client : "");
    s->p.project_id = p->id;
    (void)owner;
    s->body = cd_json_dumps_compact(j, 0);
    json_decref(j);
    if (!s->body) {
        free(s);
        prompt_error(req, 500, "internal_error", "out of memory");
        return;
    }
    cd_http_req_on_abort(req, submit_aborted, s);
    user_counts *counts = counts_of(a, s->p.user_id, true);
    if (counts) {
        counts->submitting++;
        s->counted = true;
    }
    a->inflight++;
    instance_kind *k = kind_slot(a, host, port, false);
    if (k && now_ms() - k->at < KIND_TTL_MS) {
        validate_or_hold(s, k->comfyd);
        return;
    }
    cd_http_client_request r = {.host = host, .port = port, .target = "/system_stats", .timeout_ms = 10000};
    if (cd_upstream_fetch(a->pool, &r, on_kind, s) < 0) on_kind("cannot connect", NULL, s);
}

/* ---- what users see ---- */

json_t *cd_admission_pending_items(cd_admission *a, int64_t user_id, int64_t project_id) {
    json_t *arr = json_array();
    size_t n;
    held **order = dispatch_order(a, &n);
    for (size_t i = 0; order && i < n; i++) {
        held *h = order[i];
        if (h->p.user_id != user_id || h->p.project_id != project_id) continue;
        char *text = NULL;
        a->hub->store->ops->prompt_body(a->hub->store, h->p.prompt_id, &text);
        json_t *body = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        json_t *extra = json_deep_copy(json_object_get(body, "extra_data"));
        if (!extra) extra = json_object();
        if (h->p.client_id[0]) json_object_set_new(extra, "client_id", json_string(h->p.client_id));
        /* [number, prompt_id, prompt, extra_data, outputs], numbered after what the instance has */
        json_array_append_new(arr, json_pack("[I, s, O, o, []]", (json_int_t)h->p.seq, h->p.prompt_id,
                                             json_object_get(body, "prompt"), extra));
        json_decref(body);
    }
    free(order);
    return arr;
}

int cd_admission_cancel(cd_admission *a, const cd_hub_caller *c, int64_t project_id, json_t *ids, bool clear) {
    int n = 0;
    for (held *h = a->all, *next; h; h = next) {
        next = h->next;
        if (h->p.project_id != project_id || strcmp(h->p.state, "queued") != 0) continue;
        if (h->p.user_id != c->user.id && c->user.role < CD_ROLE_TEACHER) continue;
        bool match = clear;
        size_t i;
        json_t *id;
        json_array_foreach(ids, i, id) match = match || (json_is_string(id) && !strcmp(json_string_value(id), h->p.prompt_id));
        if (!match) continue;
        /* another hub may be taking it this very moment: only one of the two wins */
        if (shared(a) && a->hub->store->ops->prompt_claim(a->hub->store, h->p.prompt_id, "queued", "cancelled",
                                                          now_ms()) != 0)
            continue;
        char reason[100];
        snprintf(reason, sizeof reason, "cancelled by %s", c->user.name);
        if (h->p.user_id != c->user.id) {
            char target[160];
            snprintf(target, sizeof target, "prompt %s", h->p.prompt_id);
            cd_hub_audit(a->hub, NULL, &c->user, "prompt_cancel", target, "of user %lld", (long long)h->p.user_id);
        }
        finish(a, h, "cancelled", reason);
        n++;
    }
    if (n) {
        a->announce_due = true;
        settle_soon(a);
    }
    return n;
}

json_t *cd_admission_stats_get(cd_admission *a, cd_admission_stats *out) {
    json_t *users = json_object();
    out->waiting = a->waiting;
    out->running = a->running;
    for (size_t i = 0; i < a->nusers; i++) {
        if (!a->users[i].waiting) continue;
        cd_store_user su;
        char name[80];
        if (a->hub->store->ops->user_get(a->hub->store, a->users[i].user_id, &su) == 0)
            snprintf(name, sizeof name, "%s", su.name);
        else snprintf(name, sizeof name, "user %lld", (long long)a->users[i].user_id);
        json_object_set_new(users, name, json_integer(a->users[i].waiting));
    }
    return users;
}

cd_admission_entry *cd_admission_list(cd_admission *a, size_t *n) {
    size_t total = 0, nq, k = 0;
    for (held *h = a->all; h; h = h->next) total++;
    held **order = dispatch_order(a, &nq);
    cd_admission_entry *out = calloc(total ? total : 1, sizeof *out);
    if (!out || !order) {
        free(order);
        free(out);
        *n = 0;
        return NULL;
    }
    for (held *h = a->all; h; h = h->next)
        if (is_active_running(h)) out[k++] = (cd_admission_entry){h->p, 0};
    for (size_t i = 0; i < nq; i++) out[k++] = (cd_admission_entry){order[i]->p, (int)i + 1};
    free(order);
    *n = k;
    return out;
}

bool cd_admission_find(cd_admission *a, const char *prompt_id, cd_admission_entry *out) {
    held *h = find(a, prompt_id);
    if (!h) return false;
    out->p = h->p;
    out->position = 0;
    if (strcmp(h->p.state, "queued") != 0) return true;
    size_t n;
    held **order = dispatch_order(a, &n);
    for (size_t i = 0; order && i < n; i++)
        if (order[i] == h) out->position = (int)i + 1;
    free(order);
    return true;
}

int cd_admission_max_concurrent(const cd_admission *a) { return a->hub->cfg->max_concurrent; }

void cd_admission_counts(const cd_admission *a, int *waiting, int *running) {
    *waiting = a->waiting;
    *running = a->running;
}

/* ---- life ---- */

cd_admission *cd_admission_new(cd_hub *hub, char *err, size_t errlen) {
    cd_admission *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->hub = hub;
    a->pool = cd_upstream_pool_new(hub->loop, 32);
    if (!a->pool || !(a->watch = cd_instance_watch_new(hub->loop, on_instance_changed, a))) {
        snprintf(err, errlen, "out of memory");
        cd_upstream_pool_free(a->pool);
        free(a);
        return NULL;
    }
    if (!(a->syncer = cd_syncer_new(hub->loop, run_sync, a, after_sync, a))) {
        snprintf(err, errlen, "cannot start the store's sync thread");
        cd_instance_watch_free(a->watch);
        cd_upstream_pool_free(a->pool);
        free(a);
        return NULL;
    }
    a->handles_open = 1; /* the syncer's */
    cd_store_prompt *list = NULL;
    size_t n = 0;
    if (hub->store->ops->prompt_list_active(hub->store, &list, &n) < 0) {
        snprintf(err, errlen, "cannot read the admission queue: %s", cd_store_error(hub->store));
        cd_syncer_close(a->syncer, NULL);
        cd_instance_watch_free(a->watch);
        cd_upstream_pool_free(a->pool);
        free(a);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        held *h = calloc(1, sizeof *h);
        if (!h) break;
        h->p = list[i];
        /* several hubs: those out for another hub are its to watch */
        h->foreign = hub->peers && out_elsewhere(&h->p, hub->id);
        append_held(a, h);
    }
    free(list);
    if (n) cd_info("hub: %zu prompt(s) in the admission queue (%d sent to instances)", n, a->running);
    uv_timer_init(hub->loop, &a->tick);
    uv_check_init(hub->loop, &a->settle);
    uv_idle_init(hub->loop, &a->wake);
    uv_timer_init(hub->loop, &a->announce_timer);
    uv_timer_init(hub->loop, &a->refresh_timer);
    a->tick.data = a->settle.data = a->wake.data = a->announce_timer.data = a->refresh_timer.data = a;
    a->handles_open += 5;
    a->last_refresh_at = now_ms();
    /* the first tick waits for the adopted instances to answer their health check */
    if (hub->cfg->max_concurrent > 0) uv_timer_start(&a->tick, on_tick, 1000, TICK_MS);
    return a;
}

bool cd_admission_enabled(const cd_admission *a) { return a && a->hub->cfg->max_concurrent > 0; }

static void handle_closed(uv_handle_t *h) {
    cd_admission *a = h->data;
    a->handles_open--;
}

void cd_admission_stop(cd_admission *a) {
    if (!a || a->stopping) return;
    a->stopping = true;
    if (a->nbatch) store_batch(a); /* accepted prompts are stored, and answered after the sync */
    uv_timer_stop(&a->tick);
    uv_check_stop(&a->settle);
    uv_idle_stop(&a->wake);
    commit_writes(a, true);
    uv_close((uv_handle_t *)&a->tick, handle_closed);
    uv_close((uv_handle_t *)&a->settle, handle_closed);
    uv_close((uv_handle_t *)&a->wake, handle_closed);
    uv_close((uv_handle_t *)&a->announce_timer, handle_closed);
    uv_close((uv_handle_t *)&a->refresh_timer, handle_closed);
    cd_instance_watch_close_all(a->watch);
    cd_upstream_pool_shut(a->pool);
    close_syncer_when_done(a);
}

bool cd_admission_idle(const cd_admission *a) { return !a || (a->handles_open == 0 && a->inflight == 0 && cd_instance_watch_idle(a->watch)); }

void cd_admission_free(cd_admission *a) {
    if (!a) return;
    while (a->all) {
        held *h = a->all;
        a->all = h->next;
        free(h);
    }
    if (a->syncer && !a->syncer_closing) cd_syncer_close(a->syncer, NULL); /* never stopped */
    cd_instance_watch_free(a->watch);
    cd_upstream_pool_free(a->pool);
    free(a->users);
    free(a->batch);
    free(a->answers);
    free(a->sends);
    free(a->out);
    free(a);
}
