/* The supervisor (see supervisor.h). Each project that ever had an instance in this hub's life
 * has a slot: the mirror of its store record plus what only a running hub has (the watched
 * process, the requests waiting for a start, a timer). A slot moves through phases:
 *
 *   IDLE      no process (never started, stopped, failed, or waiting out a restart delay)
 *   CHECKING  a process runs; an open (or the adoption at start) asks /system_stats whether
 *             it is healthy before anyone is told to use it
 *   STARTING  a process was started and /system_stats has not answered yet
 *   RUNNING   it answered; the heartbeat keeps probing it
 *   STOPPING  SIGTERM sent, SIGKILL after the grace period; the exit ends it
 *
 * Everything happens on the loop thread. A probe carries the slot's epoch (bumped whenever a
 * process starts or is adopted), so an answer about an old process is ignored. */
#include "hub/supervisor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/path.h"
#include "hub/peers.h"
#include "net/http_client.h"

typedef enum { PH_IDLE, PH_CHECKING, PH_STARTING, PH_RUNNING, PH_STOPPING } phase;

typedef struct waiter {
    cd_sup_open_cb cb;
    void *user;
    struct waiter *next;
} waiter;

typedef struct stopper {
    cd_sup_done_cb cb;
    void *user;
    struct stopper *next;
} stopper;

typedef struct slot {
    cd_supervisor *sup;
    cd_store_instance rec; /* what the store holds for this project */
    char owner_name[65];
    char pin[65];  /* the project's pin when it was last opened: restarts go where it says */
    cd_host *host; /* where the process runs (set while proc is) */
    phase ph;
    cd_proc *proc;
    waiter *waiters;
    stopper *stoppers;
    uv_timer_t timer; /* start polls, restart delays, the stop grace period */
    unsigned epoch;
    int polls;             /* start polls so far */
    int port_attempts;     /* starts that exited at once on a port found taken, in a row */
    bool wanted;           /* in use: restart it when it crashes */
    bool restart_after_stop;
    bool beat_in_flight;
    char fail_reason[512]; /* set when a stop is really a failure (start-up timeout) */
    /* Who the instance is, as its /system_stats "argv" must say: the value its command passes
     * after --base-directory (the instance directory, one per project), or after --port when the
     * command has no --base-directory. Anything else answering on the port (a stale instance of
     * another project, another program) is not taken for it. ident_flag NULL: nothing to check. */
    const char *ident_flag;
    char ident[1024];
    char not_ours[400]; /* the last start probe's answer came from another process: why it is not ours */
    char stop_reason[256];
    int64_t start_deadline, next_beat, online_since;
    struct slot *next;
} slot;

/* Where another hub's instance of a project answers, as its record said a moment ago (several
 * hubs: asked for every proxied request, so not read from the store each time). */
#define FOREIGN_SLOTS 64
#define FOREIGN_TTL_MS 1000
typedef struct {
    int64_t project_id;
    char address[65];
    int port;
    bool ok;
    int64_t at;
    int64_t touched_at; /* a use through this hub last written to the store */
} foreign_target;

/* A remote process the hub let go of while it may still run, unseen, holding its port and GPU:
 * its host became unreachable (on_host_down), or its ssh session ended in a way that does not
 * say the instance ended (a link that broke). Once the host answers again it gets SIGTERM and,
 * after the grace period, SIGKILL, both through the launcher's guarded kill (only a pid whose
 * command line still names that port is signalled). Kept in memory only: a hub restarted in the
 * meantime forgets them. */
typedef struct orphan {
    cd_supervisor *sup;
    cd_host *host; /* the registry never frees a host while the hub runs */
    int pid, port;
    int64_t project_id;
    bool in_flight; /* a kill is under way */
    bool termed;    /* SIGTERM landed: SIGKILL at next_try if it is still there */
    int64_t next_try;
    struct orphan *next;
} orphan;

struct cd_supervisor {
    cd_supervisor_config c;
    orphan *orphans;
    foreign_target foreign[FOREIGN_SLOTS];
    bool recheck_due; /* another hub changed instances: are all of ours still ours? */
    slot *slots;
    uv_timer_t tick; /* once a second: heartbeats, idle stops, log rotation, host checks */
    int inflight; /* probes under way */
    bool shutting_down;
    cd_sup_done_cb shutdown_cb;
    void *shutdown_user;
    int handles_open;
};

static void begin_start(slot *s);
static void begin_stop(slot *s, const char *reason);
static void check_health(slot *s);
static void shutdown_progress(cd_supervisor *sup);
static void remember_orphan(slot *s);

/* Copies as much of src as fits (reasons are cut, never overflow). */
static void copy_cut(char *dst, size_t n, const char *src) {
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the record ---- */

static void set_status(slot *s, const char *status, const char *reason_fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_status(slot *s, const char *status, const char *reason_fmt, ...) {
    snprintf(s->rec.status, sizeof s->rec.status, "%s", status);
    va_list ap;
    va_start(ap, reason_fmt);
    vsnprintf(s->rec.reason, sizeof s->rec.reason, reason_fmt, ap);
    va_end(ap);
}

/* Writes the record, then tells the hub. The store comes first: what the hub announced it
 * must find again after a crash. */
static void save(slot *s) {
    cd_supervisor *sup = s->sup;
    snprintf(s->rec.hub, sizeof s->rec.hub, "%s", sup->c.hub_id ? sup->c.hub_id : "");
    int rc = sup->c.store->ops->instance_put(sup->c.store, &s->rec);
    if (rc == CD_STORE_CONFLICT) {
        sup->recheck_due = true; /* another hub took it over: the tick lets go of it */
        return;
    }
    if (rc < 0)
        cd_error("hub: cannot store the instance of project %lld: %s", (long long)s->rec.project_id,
                 cd_store_error(sup->c.store));
    if (sup->c.on_change) sup->c.on_change(&s->rec, sup->c.user);
}

static void audit(slot *s, const char *action, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void audit(slot *s, const char *action, const char *fmt, ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (s->sup->c.on_audit) s->sup->c.on_audit(action, s->rec.project_id, detail, s->sup->c.user);
}

/* ---- slots ---- */

static void timer_closed(uv_handle_t *h) {
    slot *s = h->data;
    cd_supervisor *sup = s->sup;
    free(s);
    sup->handles_open--;
    shutdown_progress(sup);
}

static slot *find_slot(cd_supervisor *sup, int64_t project_id) {
    for (slot *s = sup->slots; s; s = s->next)
        if (s->rec.project_id == project_id) return s;
    return NULL;
}

static slot *get_slot(cd_supervisor *sup, int64_t project_id) {
    slot *s = find_slot(sup, project_id);
    if (s) return s;
    s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->sup = sup;
    if (sup->c.store->ops->instance_by_project(sup->c.store, project_id, &s->rec) != 0) {
        memset(&s->rec, 0, sizeof s->rec);
        s->rec.project_id = project_id;
        set_status(s, "stopped", "%s", "");
    }
    uv_timer_init(sup->c.loop, &s->timer);
    s->timer.data = s;
    sup->handles_open++;
    s->next = sup->slots;
    sup->slots = s;
    return s;
}

static void notify_waiters(slot *s, int status, const char *message, bool reused) {
    waiter *w = s->waiters;
    s->waiters = NULL;
    while (w) {
        waiter *next = w->next;
        w->cb(status, message, status == 0 ? &s->rec : NULL, reused, w->user);
        free(w);
        w = next;
    }
}

static int add_waiter(slot *s, cd_sup_open_cb cb, void *user) {
    waiter *w = calloc(1, sizeof *w);
    if (!w) return -1;
    w->cb = cb;
    w->user = user;
    /* appended, so that waiters are answered in the order they came */
    waiter **tail = &s->waiters;
    while (*tail) tail = &(*tail)->next;
    *tail = w;
    return 0;
}

static void run_stoppers(slot *s) {
    stopper *st = s->stoppers;
    s->stoppers = NULL;
    while (st) {
        stopper *next = st->next;
        st->cb(st->user);
        free(st);
        st = next;
    }
}

int cd_supervisor_running(const cd_supervisor *sup) {
    int n = 0;
    for (const slot *s = sup->slots; s; s = s->next) n += s->proc != NULL;
    return n;
}

int cd_supervisor_running_on(const cd_supervisor *sup, const cd_host *h) {
    int n = 0;
    for (const slot *s = sup->slots; s; s = s->next) n += s->proc != NULL && s->host == h;
    return n;
}

static int host_load(const cd_host *h, void *sup) { return cd_supervisor_running_on(sup, h); }

static cd_launcher *launcher_of(const slot *s) { return s->proc->launcher; }

/* ---- probes ---- */

typedef enum { PROBE_START, PROBE_CHECK, PROBE_BEAT, PROBE_IDLE } probe_kind;
typedef struct {
    slot *s;
    unsigned epoch;
    probe_kind kind;
} probe;

static void on_probe(const char *error, const cd_http_client_response *res, void *user);

static void send_probe(slot *s, probe_kind kind) {
    cd_supervisor *sup = s->sup;
    probe *p = malloc(sizeof *p);
    if (!p) return;
    *p = (probe){s, s->epoch, kind};
    cd_http_client_request req = {
        .host = s->rec.address,
        .port = s->rec.port,
        .target = kind == PROBE_IDLE ? "/queue" : "/system_stats",
        .timeout_ms = (unsigned)sup->c.cfg->heartbeat_timeout_ms,
        .max_response_bytes = 4u << 20,
    };
    if (kind == PROBE_BEAT || kind == PROBE_IDLE) s->beat_in_flight = true;
    sup->inflight++;
    if (cd_http_fetch(sup->c.loop, &req, on_probe, p) < 0) on_probe("cannot connect", NULL, p);
}

/* The number of prompts an instance holds, from its GET /queue; -1 when it cannot tell. */
static int queue_size(const cd_http_client_response *res) {
    json_t *q = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
    if (!json_is_object(q)) {
        json_decref(q);
        return -1;
    }
    int n = (int)(json_array_size(json_object_get(q, "queue_running")) + json_array_size(json_object_get(q, "queue_pending")));
    json_decref(q);
    return n;
}

/* ---- whose answer: the instance's identity in /system_stats ---- */

/* The value argv gives flag, as "flag value" or "flag=value"; NULL when it does not. */
static const char *argv_value(const char *const *argv, size_t argc, const char *flag) {
    size_t fl = strlen(flag);
    for (size_t i = 0; i < argc; i++) {
        if (!argv[i]) continue;
        if (!strcmp(argv[i], flag) && i + 1 < argc && argv[i + 1]) return argv[i + 1];
        if (!strncmp(argv[i], flag, fl) && argv[i][fl] == '=') return argv[i] + fl + 1;
    }
    return NULL;
}

/* Remembers who the instance started with argv is (see slot.ident). */
static void set_identity(slot *s, char *const *argv) {
    static const char *const flags[] = {"--base-directory", "--port"};
    size_t argc = 0;
    while (argv[argc]) argc++;
    s->ident_flag = NULL;
    s->ident[0] = '\0';
    for (size_t f = 0; f < sizeof flags / sizeof flags[0] && !s->ident_flag; f++) {
        const char *v = argv_value((const char *const *)argv, argc, flags[f]);
        if (!v) continue;
        s->ident_flag = flags[f];
        copy_cut(s->ident, sizeof s->ident, v);
    }
}

/* Whether a 200 from /system_stats is the instance's own: its system.argv (comfyd serve and
 * Python ComfyUI both report their argv there) names the same --base-directory (or --port).
 * Otherwise why not, in why. */
static bool answer_is_ours(const slot *s, const cd_http_client_response *res, char *why, size_t whylen) {
    if (!s->ident_flag) return true;
    json_t *doc = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
    json_t *argv = json_object_get(json_object_get(doc, "system"), "argv");
    bool ours = false;
    if (!json_is_array(argv)) {
        snprintf(why, whylen, "port %d answers GET /system_stats without system.argv: not this instance",
                 s->rec.port);
    } else {
        size_t n = json_array_size(argv);
        const char **words = calloc(n + 1, sizeof *words);
        for (size_t i = 0; words && i < n; i++) words[i] = json_string_value(json_array_get(argv, i));
        const char *v = words ? argv_value(words, n, s->ident_flag) : NULL;
        ours = v && !strcmp(v, s->ident);
        if (!ours && v)
            snprintf(why, whylen, "port %d answers as another instance (its %s is %.200s)", s->rec.port, s->ident_flag,
                     v);
        else if (!ours)
            snprintf(why, whylen, "port %d answers as another program (its argv has no %s)", s->rec.port,
                     s->ident_flag);
        free(words);
    }
    json_decref(doc);
    return ours;
}

static void start_poll_later(slot *s);

static void probe_start_result(slot *s, bool ok, const char *why) {
    cd_supervisor *sup = s->sup;
    /* A remote instance says its pid on its first line; without it, it could not be stopped. */
    if (ok && !cd_proc_pid(s->proc)) ok = false, why = "its pid is not known yet";
    if (ok) {
        int64_t now = now_ms();
        s->rec.pid = cd_proc_pid(s->proc);
        s->port_attempts = 0;
        set_status(s, "online", "%s", "");
        s->rec.last_seen_at = now;
        s->online_since = now;
        s->next_beat = now + (int64_t)sup->c.cfg->heartbeat_interval_s * 1000;
        s->ph = PH_RUNNING;
        save(s);
        cd_info("hub: instance of project %lld online on port %d (pid %d)", (long long)s->rec.project_id, s->rec.port,
                s->rec.pid);
        notify_waiters(s, 0, NULL, false);
        return;
    }
    if (now_ms() >= s->start_deadline) {
        if (s->not_ours[0])
            snprintf(s->fail_reason, sizeof s->fail_reason, "%s; this instance did not answer within %d s",
                     s->not_ours, sup->c.cfg->startup_timeout_s);
        else
            snprintf(s->fail_reason, sizeof s->fail_reason,
                     "did not answer GET /system_stats within %d s (%s); see its log", sup->c.cfg->startup_timeout_s,
                     why);
        begin_stop(s, s->fail_reason);
        return;
    }
    start_poll_later(s);
}

static void probe_check_result(slot *s, bool ok, const char *why) {
    if (ok) {
        int64_t now = now_ms();
        bool was_online = !strcmp(s->rec.status, "online");
        set_status(s, "online", "%s", "");
        s->rec.last_seen_at = now;
        if (!s->online_since) s->online_since = now;
        s->next_beat = now + (int64_t)s->sup->c.cfg->heartbeat_interval_s * 1000;
        s->ph = PH_RUNNING;
        save(s);
        if (!was_online) cd_info("hub: instance of project %lld online again", (long long)s->rec.project_id);
        notify_waiters(s, 0, NULL, true);
        return;
    }
    /* Not healthy: replace it, for whoever is waiting. */
    cd_info("hub: instance of project %lld does not answer (%s): replacing it", (long long)s->rec.project_id, why);
    s->restart_after_stop = s->waiters != NULL;
    char reason[512];
    snprintf(reason, sizeof reason, "did not answer GET /system_stats (%s); replaced", why);
    begin_stop(s, reason);
}

static void probe_beat_result(slot *s, bool ok, const char *why) {
    int64_t now = now_ms();
    s->next_beat = now + (int64_t)s->sup->c.cfg->heartbeat_interval_s * 1000;
    if (ok) {
        bool changed = strcmp(s->rec.status, "online") != 0;
        set_status(s, "online", "%s", "");
        s->rec.last_seen_at = now;
        if (changed) cd_info("hub: instance of project %lld online again", (long long)s->rec.project_id);
        save(s);
    } else if (strcmp(s->rec.status, "offline") != 0) {
        set_status(s, "offline", "no answer to GET /system_stats within %d ms (%s)", s->sup->c.cfg->heartbeat_timeout_ms,
                   why);
        cd_warn("hub: instance of project %lld offline: %s", (long long)s->rec.project_id, s->rec.reason);
        save(s);
    }
}

static void probe_idle_result(slot *s, const cd_http_client_response *res) {
    int held = res && res->status == 200 ? queue_size(res) : -1;
    if (held != 0) {
        /* Busy, or it cannot tell: not idle. */
        s->rec.last_activity_at = now_ms();
        return;
    }
    audit(s, "idle_stop", "no prompt and no request for %d s", s->sup->c.cfg->idle_stop_s);
    s->wanted = false;
    char reason[128];
    snprintf(reason, sizeof reason, "stopped after %d s without use", s->sup->c.cfg->idle_stop_s);
    begin_stop(s, reason);
}

static void on_probe(const char *error, const cd_http_client_response *res, void *user) {
    probe *p = user;
    slot *s = p->s;
    cd_supervisor *sup = s->sup;
    sup->inflight--;
    bool current = p->epoch == s->epoch && !sup->shutting_down;
    if (p->kind == PROBE_BEAT || p->kind == PROBE_IDLE) s->beat_in_flight = false;
    bool ok = !error && res->status == 200;
    char why[400];
    if (error) snprintf(why, sizeof why, "%s", error);
    else snprintf(why, sizeof why, "status %d", res->status);
    /* A start or a health check takes only the instance's own answer; a heartbeat follows a
     * process whose exit is seen at once, so its port cannot pass to another one unnoticed. */
    if (current && ok && (p->kind == PROBE_START || p->kind == PROBE_CHECK) && !answer_is_ours(s, res, why, sizeof why))
        ok = false;
    if (current && p->kind == PROBE_START) {
        if (ok || error || res->status != 200) s->not_ours[0] = '\0';
        else copy_cut(s->not_ours, sizeof s->not_ours, why);
    }
    if (current) {
        if (p->kind == PROBE_START && s->ph == PH_STARTING) probe_start_result(s, ok, why);
        else if (p->kind == PROBE_CHECK && s->ph == PH_CHECKING) probe_check_result(s, ok, why);
        else if (p->kind == PROBE_BEAT && s->ph == PH_RUNNING) probe_beat_result(s, ok, why);
        else if (p->kind == PROBE_IDLE && s->ph == PH_RUNNING) probe_idle_result(s, error ? NULL : res);
    }
    free(p);
    shutdown_progress(sup);
}

static void on_start_poll(uv_timer_t *t) {
    slot *s = t->data;
    if (s->ph == PH_STARTING) send_probe(s, PROBE_START);
}

/* comfyd serve answers within milliseconds and a Python ComfyUI within tens of seconds: poll
 * soon at first, then once a second. */
static void start_poll_later(slot *s) {
    unsigned delay = s->polls < 4 ? 50u << s->polls : 1000;
    s->polls++;
    uv_timer_start(&s->timer, on_start_poll, delay, 0);
}

static void check_health(slot *s) {
    s->ph = PH_CHECKING;
    send_probe(s, PROBE_CHECK);
}

/* ---- exits ---- */

static void describe_exit(int64_t status, int sig, char *out, size_t n) {
    if (sig > 0) snprintf(out, n, "killed by signal %d (%s)", sig, strsignal(sig));
    else if (status >= 0) snprintf(out, n, "exited with code %lld", (long long)status);
    else snprintf(out, n, "exited");
}

/* The last non-empty line of a log, to say why a start failed without opening the file. */
static void log_last_line(const char *path, char *out, size_t n) {
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[1024];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t got = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (got <= 0) return;
    buf[got] = '\0';
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r' || buf[got - 1] == ' ')) buf[--got] = '\0';
    char *line = strrchr(buf, '\n');
    copy_cut(out, n, line ? line + 1 : buf);
}

static void on_restart_timer(uv_timer_t *t) {
    slot *s = t->data;
    if (s->ph == PH_IDLE && s->wanted && !s->sup->shutting_down) begin_start(s);
}

static void crashed(slot *s, const char *how) {
    cd_supervisor *sup = s->sup;
    int64_t now = now_ms();
    /* A crash after a minute online starts a new count: only crashes in a row stop restarts. */
    if (s->online_since && now - s->online_since > 60000) s->rec.crash_count = 0;
    s->rec.crash_count++;
    s->online_since = 0;
    audit(s, "instance_exit", "port %d pid %d %s", s->rec.port, s->rec.pid, how);
    s->rec.pid = 0;
    s->ph = PH_IDLE;
    if (s->waiters) {
        /* someone is opening it right now: start again at once */
        set_status(s, "offline", "%s", how);
        save(s);
        begin_start(s);
        return;
    }
    int max = sup->c.cfg->max_restarts;
    if (s->wanted && s->rec.crash_count <= max) {
        unsigned delay = 1000u << (s->rec.crash_count - 1 < 5 ? s->rec.crash_count - 1 : 5);
        set_status(s, "offline", "%s; restarting in %u s (attempt %d of %d)", how, delay / 1000, s->rec.crash_count, max);
        uv_timer_start(&s->timer, on_restart_timer, delay, 0);
    } else if (s->wanted) {
        set_status(s, "failed", "%s; crashed %d times in a row, not restarted (open it again to retry)", how,
                   s->rec.crash_count);
        s->wanted = false;
    } else {
        set_status(s, "offline", "%s", how);
    }
    cd_warn("hub: instance of project %lld %s", (long long)s->rec.project_id, s->rec.reason);
    save(s);
}

static bool port_is_free(const char *address, int port);

static void on_process_exit(cd_proc *p, int64_t status, int sig, void *user) {
    slot *s = user;
    char how[160];
    describe_exit(status, sig, how, sizeof how);
    /* An ssh session that ended without the instance's own exit code (ssh's 255, a signal to the
     * session, an adopted instance's watcher) may be a link that broke under a process that still
     * runs: it is stopped by its pid too (which does nothing if it is gone). Not after a stop of
     * ours. */
    if (s->ph != PH_STOPPING && s->host && s->host->launcher == &s->host->ssh.base &&
        (status == 255 || status < 0 || sig > 0))
        remember_orphan(s);
    s->proc = NULL;
    uv_timer_stop(&s->timer);
    s->epoch++;
    switch (s->ph) {
    case PH_STARTING: {
        /* The hub cannot ask another host whether a port is free: a start there that exits at
         * once (most often its port was taken) is tried again on the next port, twice. Here, a
         * port that was free when picked and is taken now went to someone else before the
         * instance could bind it (another hub on this machine picking the same one, a local port
         * of an outgoing connection): the same. */
        bool remote = s->host && s->host->launcher != &s->host->local;
        bool port_lost = s->host && !remote && !port_is_free(s->host->rec.address, s->rec.port);
        if ((remote || port_lost) && ++s->port_attempts < 3 && s->waiters && !s->sup->shutting_down) {
            cd_warn("hub: instance of project %lld %s during start-up on %s port %d; trying the next port",
                    (long long)s->rec.project_id, how, s->host->rec.name, s->rec.port);
            s->ph = PH_IDLE;
            begin_start(s);
            break;
        }
        s->port_attempts = 0;
        char last[300];
        log_last_line(s->rec.log_path, last, sizeof last);
        s->rec.pid = 0;
        s->ph = PH_IDLE;
        s->wanted = false;
        set_status(s, "failed", "%s during start-up%s%s", how, last[0] ? ": " : "", last);
        audit(s, "instance_failed", "%s", s->rec.reason);
        save(s);
        notify_waiters(s, 500, s->rec.reason, false);
        break;
    }
    case PH_STOPPING:
        s->rec.pid = 0;
        s->ph = PH_IDLE;
        if (s->fail_reason[0]) {
            set_status(s, "failed", "%s", s->fail_reason);
            audit(s, "instance_failed", "%s", s->fail_reason);
            save(s);
            notify_waiters(s, 500, s->rec.reason, false);
            s->fail_reason[0] = '\0';
        } else {
            set_status(s, "stopped", "%s", s->stop_reason);
            save(s);
        }
        run_stoppers(s);
        if (s->restart_after_stop && s->waiters && !s->sup->shutting_down) begin_start(s);
        s->restart_after_stop = false;
        break;
    default:
        crashed(s, how);
        break;
    }
    shutdown_progress(s->sup);
}

/* ---- starting ---- */

static bool port_is_free(const char *address, int port) {
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof *a4;
    } else if (inet_pton(AF_INET6, address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof *a6;
    } else {
        return false;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    /* As the instance will bind it (libuv sets SO_REUSEADDR): a port in TIME_WAIT is usable, a
     * port someone listens on is not. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bool ok = bind(fd, (struct sockaddr *)&ss, len) == 0;
    close(fd);
    return ok;
}

static bool port_taken_by_slot(cd_supervisor *sup, const cd_host *h, int port) {
    for (slot *s = sup->slots; s; s = s->next)
        if (s->proc && s->host == h && s->rec.port == port) return true;
    for (const orphan *o = sup->orphans; o; o = o->next) /* may still hold it */
        if (o->host == h && o->port == port) return true;
    return false;
}

/* Round-robin through the range from after the last port given out, so that a port whose
 * instance just died is not handed out again at once (browsers may still hold it). */
static int pick_port(cd_supervisor *sup, cd_host *h) {
    int min = h->rec.port_min, max = h->rec.port_max, span = max - min + 1;
    /* Only the hub's own machine can be asked whether a port is free; on another host, a port
     * something else holds makes that start fail, and the next start takes the next port. */
    bool here = h->launcher == &h->local;
    if (h->next_port < min || h->next_port > max) h->next_port = min;
    for (int i = 0; i < span; i++) {
        int port = min + (h->next_port - min + i) % span;
        if (port_taken_by_slot(sup, h, port) || (here && !port_is_free(h->rec.address, port))) continue;
        h->next_port = port + 1;
        return port;
    }
    return 0;
}

/* A link name -> target inside the instance directory, unless something is there already. */
static int ensure_link(const char *dir, const char *name, const char *target, char *err, size_t errlen) {
    char *path = cd_path_join(dir, name);
    if (!path) return -1;
    struct stat st;
    int rc = 0;
    if (lstat(path, &st) != 0 && symlink(target, path) != 0) {
        snprintf(err, errlen, "cannot link %s to %s: %s", path, target, strerror(errno));
        rc = -1;
    }
    free(path);
    return rc;
}

static int prepare_dir(slot *s, char *err, size_t errlen) {
    const cd_hub_config *cfg = s->sup->c.cfg;
    char rel[64];
    snprintf(rel, sizeof rel, "u%lld/p%lld", (long long)s->rec.user_id, (long long)s->rec.project_id);
    const char *base = s->host->rec.base_dir[0] ? s->host->rec.base_dir : cfg->instance_base_dir;
    char *dir = cd_path_join(base, rel);
    if (!dir) return -1;
    snprintf(s->rec.base_dir, sizeof s->rec.base_dir, "%s", dir);
    int rc = 0;
    if (s->host->launcher != &s->host->local) {
        /* another machine: the launcher creates it there; only the log stays here */
        if (cd_path_mkdirs(cfg->log_dir, 0755) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", cfg->log_dir, strerror(errno));
            rc = -1;
        }
        free(dir);
        return rc;
    }
    const char *dirs[] = {dir, cfg->custom_nodes_dir, cfg->models_dir, cfg->log_dir};
    for (size_t i = 0; i < 4 && rc == 0; i++) {
        if (cd_path_mkdirs(dirs[i], 0755) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", dirs[i], strerror(errno));
            rc = -1;
        }
    }
    if (rc == 0) rc = ensure_link(dir, "custom_nodes", cfg->custom_nodes_dir, err, errlen);
    if (rc == 0) rc = ensure_link(dir, "models", cfg->models_dir, err, errlen);
    free(dir);
    return rc;
}

static void start_failed(slot *s, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void start_failed(slot *s, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->rec.reason, sizeof s->rec.reason, fmt, ap);
    va_end(ap);
    snprintf(s->rec.status, sizeof s->rec.status, "%s", status == 503 ? "stopped" : "failed");
    s->ph = PH_IDLE;
    s->wanted = false;
    audit(s, "instance_failed", "%s", s->rec.reason);
    cd_warn("hub: cannot start the instance of project %lld: %s", (long long)s->rec.project_id, s->rec.reason);
    save(s);
    notify_waiters(s, status, s->rec.reason, false);
}

static void begin_start(slot *s) {
    cd_supervisor *sup = s->sup;
    const cd_hub_config *cfg = sup->c.cfg;
    uv_timer_stop(&s->timer);
    char err[512] = "";
    cd_host *h = cd_hosts_place(sup->c.hosts, s->pin, host_load, sup, err, sizeof err);
    if (!h) {
        start_failed(s, 503, "%s", err);
        return;
    }
    int port = pick_port(sup, h);
    if (!port && h->launcher == &h->local) {
        start_failed(s, 503, "no free port in COMFYUI_PORT_RANGE %d-%d", h->rec.port_min, h->rec.port_max);
        return;
    } else if (!port) {
        start_failed(s, 503, "no free port in host %s's range %d-%d", h->rec.name, h->rec.port_min, h->rec.port_max);
        return;
    }
    s->host = h;
    s->rec.port = port;
    snprintf(s->rec.host, sizeof s->rec.host, "%s", h->rec.name);
    snprintf(s->rec.address, sizeof s->rec.address, "%s", h->rec.address);
    if (prepare_dir(s, err, sizeof err) < 0) {
        start_failed(s, 500, "%s", err[0] ? err : "out of memory");
        return;
    }
    snprintf(s->rec.log_path, sizeof s->rec.log_path, "%s/comfy_u%lld_p%lld_%d.log", cfg->log_dir,
             (long long)s->rec.user_id, (long long)s->rec.project_id, port);
    bool here = h->launcher == &h->local;
    cd_hub_command_vars vars = {.listen = h->rec.address, .base_dir = s->rec.base_dir, .user = s->owner_name,
                                .port = port, .project = s->rec.project_id,
                                .template = h->rec.command[0] ? h->rec.command : NULL};
    char **argv = cd_hub_config_command_argv(cfg, &vars, err, sizeof err);
    if (!argv) {
        start_failed(s, 500, "%s", err[0] ? err : "out of memory");
        return;
    }
    set_identity(s, argv);
    s->not_ours[0] = '\0';
    cd_launch_spec spec = {.argv = argv, .cwd = here ? cfg->repo_path : NULL, .log_path = s->rec.log_path,
                           .make_dir = here ? NULL : s->rec.base_dir, .port = port};
    int rc = h->launcher->ops->spawn(h->launcher, &spec, on_process_exit, s, &s->proc, err, sizeof err);
    cd_hub_argv_free(argv);
    if (rc < 0) {
        s->proc = NULL;
        start_failed(s, 500, "%s", err);
        return;
    }
    int64_t now = now_ms();
    s->epoch++;
    s->polls = 0;
    s->ph = PH_STARTING;
    s->rec.pid = cd_proc_pid(s->proc);
    s->rec.started_at = now;
    s->rec.last_activity_at = now;
    s->start_deadline = now + (int64_t)cfg->startup_timeout_s * 1000;
    set_status(s, "starting", "%s", "");
    save(s);
    if (here) audit(s, "instance_start", "port %d pid %d", port, s->rec.pid);
    else audit(s, "instance_start", "host %s address %s port %d", h->rec.name, h->rec.address, port);
    cd_info("hub: starting the instance of project %lld on %s port %d (pid %d)", (long long)s->rec.project_id,
            h->rec.name, port, s->rec.pid);
    start_poll_later(s);
}

/* ---- stopping ---- */

static void on_grace_over(uv_timer_t *t) {
    slot *s = t->data;
    if (s->ph == PH_STOPPING && s->proc) {
        cd_warn("hub: instance of project %lld did not stop in time: SIGKILL", (long long)s->rec.project_id);
        launcher_of(s)->ops->kill(s->proc, SIGKILL);
    }
}

static void begin_stop(slot *s, const char *reason) {
    copy_cut(s->stop_reason, sizeof s->stop_reason, reason);
    if (!s->proc) {
        s->ph = PH_IDLE;
        return;
    }
    if (s->ph == PH_STOPPING) return;
    s->ph = PH_STOPPING;
    s->epoch++;
    uv_timer_stop(&s->timer);
    /* A start-up failure is not worth the grace period: nobody is using it. */
    unsigned grace = s->fail_reason[0] ? 0 : (unsigned)s->sup->c.cfg->stop_grace_s * 1000;
    if (launcher_of(s)->ops->kill(s->proc, grace ? SIGTERM : SIGKILL) < 0) {
        cd_warn("hub: cannot signal pid %d of project %lld", s->rec.pid, (long long)s->rec.project_id);
    }
    uv_timer_start(&s->timer, on_grace_over, grace, 0);
}

/* ---- the public operations ---- */

/* ---- several hubs (peers.h) ---- */

/* A record of a process that passed its start (or is starting): one to adopt or take over. */
static bool record_has_process(const cd_store_instance *r) {
    return r->pid > 0 &&
           (!strcmp(r->status, "starting") || !strcmp(r->status, "online") || !strcmp(r->status, "offline"));
}

/* The project's instance as another hub runs it, from the store: its record names another hub
 * and a process that passed its start. */
static bool foreign_record(cd_supervisor *sup, int64_t project_id, cd_store_instance *rec) {
    if (!sup->c.peers || sup->c.store->ops->instance_by_project(sup->c.store, project_id, rec) != 0) return false;
    return rec->hub[0] && strcmp(rec->hub, sup->c.hub_id) != 0 && rec->port > 0 && record_has_process(rec);
}

static int foreign_target_of(cd_supervisor *sup, int64_t project_id, char *host, size_t hostlen, int *port) {
    if (!sup->c.peers) return -1;
    int64_t now = now_ms();
    foreign_target *oldest = &sup->foreign[0], *t = NULL;
    for (int i = 0; i < FOREIGN_SLOTS && !t; i++) {
        if (sup->foreign[i].project_id == project_id) t = &sup->foreign[i];
        else if (sup->foreign[i].at < oldest->at) oldest = &sup->foreign[i];
    }
    if (!t || now - t->at >= FOREIGN_TTL_MS) {
        if (!t) t = oldest;
        cd_store_instance rec;
        *t = (foreign_target){.project_id = project_id, .at = now};
        t->ok = foreign_record(sup, project_id, &rec) && strcmp(rec.status, "starting") != 0;
        snprintf(t->address, sizeof t->address, "%s", rec.address);
        t->port = rec.port;
    }
    if (!t->ok) return -1;
    snprintf(host, hostlen, "%s", t->address);
    *port = t->port;
    return 0;
}

/* Stops watching the slot's process, which goes on running (someone else's now, or out of
 * reach): no restart, no stop. */
static void let_go(slot *s) {
    launcher_of(s)->ops->release(s->proc);
    s->proc = NULL;
    s->epoch++;
    uv_timer_stop(&s->timer);
    s->ph = PH_IDLE;
    s->wanted = false;
    s->restart_after_stop = false;
}

/* Another hub took over an instance this hub still watches (this hub was silent too long, a
 * stalled loop, a cut link): it is that hub's now, and this one lets it go rather than have two
 * supervisors restart it. */
static void let_go_of_taken(cd_supervisor *sup) {
    sup->recheck_due = false;
    cd_store_instance *list = NULL;
    size_t n = 0;
    if (sup->c.store->ops->instance_list(sup->c.store, &list, &n) < 0) return;
    for (slot *s = sup->slots; s; s = s->next) {
        cd_store_instance rec = {0};
        for (size_t i = 0; i < n && !rec.project_id; i++)
            if (list[i].project_id == s->rec.project_id) rec = list[i];
        if (!s->proc || !rec.project_id || !rec.hub[0] || !strcmp(rec.hub, sup->c.hub_id)) continue;
        cd_warn("hub: hub %s took over the instance of project %lld: letting it go", rec.hub,
                (long long)s->rec.project_id);
        let_go(s);
        s->rec = rec;
        notify_waiters(s, 503, "another hub took over the instance; open it again", false);
        run_stoppers(s);
    }
    free(list);
    shutdown_progress(sup);
}

void cd_supervisor_store_changed(cd_supervisor *sup) {
    if (!sup || !sup->c.peers) return;
    memset(sup->foreign, 0, sizeof sup->foreign);
    sup->recheck_due = true; /* at the next tick: other hubs' heartbeats change records every few seconds */
}

static void adopt_one(cd_supervisor *sup, const cd_store_instance *rec);

/* A record of a silent hub's instance becomes ours if the store gives it to us, and is adopted
 * like one of ours after a restart (asked whether it is healthy, replaced if not). */
static bool take_over_one(cd_supervisor *sup, const cd_store_instance *rec) {
    cd_store *st = sup->c.store;
    slot *s = find_slot(sup, rec->project_id);
    if (s && s->ph != PH_IDLE) return false; /* ours already runs (cannot be: the record would say so) */
    if (st->ops->instance_take_over(st, rec->project_id, rec->hub, sup->c.hub_id) != 0) return false;
    cd_info("hub: taking over the instance of project %lld (port %d) from hub %s", (long long)rec->project_id,
            rec->port, rec->hub);
    cd_store_instance mine = *rec;
    snprintf(mine.hub, sizeof mine.hub, "%s", sup->c.hub_id);
    if (s) s->rec = mine; /* an idle slot read the old record */
    adopt_one(sup, &mine);
    cd_supervisor_store_changed(sup);
    return true;
}

void cd_supervisor_take_over(cd_supervisor *sup, const char *hub_id) {
    if (!sup || !sup->c.peers || sup->shutting_down) return;
    cd_store_instance *list = NULL;
    size_t n = 0;
    if (sup->c.store->ops->instance_list(sup->c.store, &list, &n) < 0) return;
    for (size_t i = 0; i < n; i++)
        if (record_has_process(&list[i]) && !strcmp(list[i].hub, hub_id)) take_over_one(sup, &list[i]);
    free(list);
}

/* An open of a project whose instance another hub runs: used where it is while that hub lives,
 * taken over when it went silent. Returns true when that answered the open. */
static bool open_foreign(cd_supervisor *sup, const cd_store_project *p, cd_sup_open_cb cb, void *user) {
    slot *s = find_slot(sup, p->id);
    cd_store_instance rec;
    if ((s && s->ph != PH_IDLE) || !foreign_record(sup, p->id, &rec)) return false;
    if (!cd_hub_peers_alive(sup->c.peers, rec.hub)) {
        if (!take_over_one(sup, &rec)) return false;
        s = find_slot(sup, p->id);
        if (!s || add_waiter(s, cb, user) < 0) cb(500, "out of memory", NULL, false, user);
        return true; /* the adoption's health check answers */
    }
    if (!strcmp(rec.status, "starting")) {
        cb(503, "the instance is starting on another hub; try again in a moment", NULL, false, user);
        return true;
    }
    cb(0, NULL, &rec, true, user);
    return true;
}

void cd_supervisor_open(cd_supervisor *sup, const cd_store_project *p, const cd_store_user *owner, cd_sup_open_cb cb,
                        void *user) {
    if (sup->shutting_down) {
        cb(503, "the hub is stopping", NULL, false, user);
        return;
    }
    if (open_foreign(sup, p, cb, user)) return;
    slot *s = get_slot(sup, p->id);
    if (!s || add_waiter(s, cb, user) < 0) {
        cb(500, "out of memory", NULL, false, user);
        return;
    }
    snprintf(s->owner_name, sizeof s->owner_name, "%s", owner->name);
    snprintf(s->pin, sizeof s->pin, "%s", p->pin);
    s->wanted = true;
    s->rec.last_activity_at = now_ms();
    /* The record belongs to the project's owner (the seed's second check): a record left by
     * another owner (a project handed over) is not reused. */
    bool other_owner = s->rec.user_id != owner->id;
    s->rec.user_id = owner->id;
    switch (s->ph) {
    case PH_CHECKING:
    case PH_STARTING:
        return; /* the start or check under way answers this open too */
    case PH_STOPPING:
        s->restart_after_stop = true;
        return;
    case PH_RUNNING:
        if (other_owner) {
            s->restart_after_stop = true;
            begin_stop(s, "owner changed; replaced");
        } else {
            check_health(s);
        }
        return;
    case PH_IDLE:
        if (s->rec.crash_count > sup->c.cfg->max_restarts || !strcmp(s->rec.status, "failed")) s->rec.crash_count = 0;
        begin_start(s);
        return;
    }
}

void cd_supervisor_cancel(cd_supervisor *sup, void *user) {
    for (slot *s = sup->slots; s; s = s->next) {
        for (waiter **w = &s->waiters; *w;) {
            if ((*w)->user == user) {
                waiter *gone = *w;
                *w = gone->next;
                free(gone);
            } else {
                w = &(*w)->next;
            }
        }
    }
}

void cd_supervisor_stop(cd_supervisor *sup, int64_t project_id, const char *reason, cd_sup_done_cb cb, void *user) {
    slot *s = find_slot(sup, project_id);
    if (!s) {
        if (cb) cb(user);
        return;
    }
    cd_store_instance other;
    if (!s->proc && s->ph == PH_IDLE && foreign_record(sup, project_id, &other) &&
        cd_hub_peers_alive(sup->c.peers, other.hub)) {
        /* not ours to stop, nor to mark stopped: the hub that runs it stops it */
        cd_warn("hub: the instance of project %lld is run by hub %s; it stops it", (long long)project_id, other.hub);
        if (cb) cb(user);
        return;
    }
    s->wanted = false;
    s->restart_after_stop = false;
    notify_waiters(s, 503, "the instance was stopped while it started", false);
    if (!s->proc) {
        uv_timer_stop(&s->timer); /* a restart that was waiting */
        if (strcmp(s->rec.status, "stopped") != 0 || s->rec.pid) {
            s->rec.pid = 0;
            set_status(s, "stopped", "%s", reason);
            save(s);
        }
        if (cb) cb(user);
        return;
    }
    if (cb) {
        stopper *st = calloc(1, sizeof *st);
        if (st) {
            st->cb = cb;
            st->user = user;
            st->next = s->stoppers;
            s->stoppers = st;
        } else {
            cb(user);
        }
    }
    begin_stop(s, reason);
}

int cd_supervisor_target(cd_supervisor *sup, int64_t project_id, char *host, size_t hostlen, int *port) {
    slot *s = find_slot(sup, project_id);
    if (!s || !s->proc || (s->ph != PH_RUNNING && s->ph != PH_CHECKING))
        return foreign_target_of(sup, project_id, host, hostlen, port);
    snprintf(host, hostlen, "%s", s->rec.address);
    *port = s->rec.port;
    return 0;
}

void cd_supervisor_touch(cd_supervisor *sup, int64_t project_id) {
    slot *s = find_slot(sup, project_id);
    int64_t now = now_ms();
    if (s && s->proc) {
        s->rec.last_activity_at = now;
        return;
    }
    /* another hub's instance: its idle time is that hub's to watch, so it hears of this use
     * through the store, often enough for its idle stop and not for every request */
    if (!sup->c.peers) return;
    int64_t every = sup->c.cfg->idle_stop_s > 0 ? (int64_t)sup->c.cfg->idle_stop_s * 1000 / 4 : 30000;
    if (every > 30000) every = 30000;
    for (int i = 0; i < FOREIGN_SLOTS; i++) {
        foreign_target *t = &sup->foreign[i];
        if (t->project_id != project_id || !t->ok || now - t->touched_at < every) continue;
        t->touched_at = now;
        if (sup->c.store->ops->instance_touch(sup->c.store, project_id, now) < 0)
            cd_warn("hub: cannot record a use of project %lld's instance: %s", (long long)project_id,
                    cd_store_error(sup->c.store));
        return;
    }
}

/* ---- housekeeping: heartbeats, idle stops, log rotation ---- */

/* copytruncate: the instance appends to its log through an O_APPEND descriptor the hub cannot
 * reopen for it, so the file is copied aside and truncated in place. */
static void rotate_log(const char *path, int keep) {
    char from[1100], to[1100];
    for (int i = keep - 1; i >= 1; i--) {
        snprintf(from, sizeof from, "%s.%d", path, i);
        snprintf(to, sizeof to, "%s.%d", path, i + 1);
        rename(from, to);
    }
    snprintf(to, sizeof to, "%s.1", path);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (in >= 0 && out >= 0) {
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0)
            if (write(out, buf, (size_t)n) != n) break;
        if (truncate(path, 0) < 0) cd_warn("hub: cannot truncate %s: %s", path, strerror(errno));
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
}

/* Several hubs: a use through another hub is in the store's record (instance_touch). */
static void used_through_others(slot *s) {
    cd_supervisor *sup = s->sup;
    cd_store_instance rec;
    if (sup->c.peers && sup->c.store->ops->instance_by_project(sup->c.store, s->rec.project_id, &rec) == 0 &&
        rec.last_activity_at > s->rec.last_activity_at)
        s->rec.last_activity_at = rec.last_activity_at;
}

static void housekeep(slot *s, int64_t now) {
    const cd_hub_config *cfg = s->sup->c.cfg;
    if (s->ph != PH_RUNNING) return;
    struct stat st;
    if (s->rec.log_path[0] && stat(s->rec.log_path, &st) == 0 && st.st_size > cfg->log_max_bytes)
        rotate_log(s->rec.log_path, cfg->log_keep);
    if (s->beat_in_flight) return;
    if (cfg->idle_stop_s > 0 && now - s->rec.last_activity_at >= (int64_t)cfg->idle_stop_s * 1000)
        used_through_others(s);
    if (cfg->idle_stop_s > 0 && now - s->rec.last_activity_at >= (int64_t)cfg->idle_stop_s * 1000)
        send_probe(s, PROBE_IDLE);
    else if (now >= s->next_beat)
        send_probe(s, PROBE_BEAT);
}

/* ---- remote processes let go of (see orphan) ---- */

static void remember_orphan(slot *s) {
    cd_supervisor *sup = s->sup;
    int pid = s->proc ? cd_proc_pid(s->proc) : s->rec.pid;
    if (pid <= 0 || !s->host || s->host->launcher != &s->host->ssh.base) return;
    for (orphan *o = sup->orphans; o; o = o->next)
        if (o->host == s->host && o->pid == pid) return;
    orphan *o = calloc(1, sizeof *o);
    if (!o) return;
    *o = (orphan){.sup = sup, .host = s->host, .pid = pid, .port = s->rec.port, .project_id = s->rec.project_id,
                  .next = sup->orphans};
    sup->orphans = o;
    cd_info("hub: pid %d on host %s (port %d, project %lld) may still run: it is stopped once the host answers",
            pid, s->host->rec.name, o->port, (long long)o->project_id);
}

static void forget_orphan(cd_supervisor *sup, orphan *gone) {
    for (orphan **o = &sup->orphans; *o; o = &(*o)->next) {
        if (*o == gone) {
            *o = gone->next;
            free(gone);
            return;
        }
    }
}

static void on_orphan_signalled(int result, const char *why, void *user) {
    orphan *o = user;
    cd_supervisor *sup = o->sup;
    o->in_flight = false;
    const char *host = o->host->rec.name;
    if (result < 0) { /* the host is not back after all: the next check's turn */
        o->next_try = now_ms() + (int64_t)sup->c.cfg->heartbeat_interval_s * 1000;
        cd_warn("hub: cannot stop pid %d on host %s yet: %s", o->pid, host, why);
    } else if (result > 0 && !o->termed) {
        cd_info("hub: sent SIGTERM to pid %d on host %s (port %d), let go of while the host was unreachable", o->pid,
                host, o->port);
        o->termed = true;
        o->next_try = now_ms() + (int64_t)sup->c.cfg->stop_grace_s * 1000;
    } else {
        if (result > 0) cd_warn("hub: pid %d on host %s did not stop in time: SIGKILL", o->pid, host);
        else if (!o->termed) cd_info("hub: pid %d on host %s (port %d) is gone already", o->pid, host, o->port);
        else cd_info("hub: pid %d on host %s (port %d) stopped", o->pid, host, o->port);
        forget_orphan(sup, o);
    }
}

static void orphans_tick(cd_supervisor *sup, int64_t now) {
    for (orphan *o = sup->orphans; o; o = o->next) {
        if (o->in_flight || !o->host->reachable || now < o->next_try) continue;
        o->in_flight = true;
        if (cd_launcher_ssh_signal(&o->host->ssh, o->pid, o->port, o->termed ? SIGKILL : SIGTERM, on_orphan_signalled,
                                   o) < 0) {
            o->in_flight = false;
            o->next_try = now + 1000;
        }
    }
}

static void on_tick(uv_timer_t *t) {
    cd_supervisor *sup = t->data;
    int64_t now = now_ms();
    for (slot *s = sup->slots; s; s = s->next) housekeep(s, now);
    cd_hosts_tick(sup->c.hosts, now);
    orphans_tick(sup, now);
    if (sup->recheck_due && !sup->shutting_down) let_go_of_taken(sup);
}

/* A host that cannot be reached: its instances can neither be reached nor stopped. They are let
 * go (their ssh sessions ended) and marked offline with the reason, so that proxied requests and
 * running prompts fail with it rather than wait; a later open places the project again. */
static void on_host_down(cd_host *h, const char *why, void *user) {
    cd_supervisor *sup = user;
    for (slot *s = sup->slots; s; s = s->next) {
        if (!s->proc || s->host != h) continue;
        remember_orphan(s);
        let_go(s);
        set_status(s, "offline", "host %s unreachable: %s", h->rec.name, why);
        audit(s, "host_down", "%s", s->rec.reason);
        cd_warn("hub: instance of project %lld offline: %s", (long long)s->rec.project_id, s->rec.reason);
        save(s);
        notify_waiters(s, 503, s->rec.reason, false);
        run_stoppers(s);
    }
    shutdown_progress(sup);
}

/* ---- adoption at start ---- */

static void adopt_one(cd_supervisor *sup, const cd_store_instance *rec) {
    bool had_process = rec->pid > 0 && (!strcmp(rec->status, "starting") || !strcmp(rec->status, "online") ||
                                        !strcmp(rec->status, "offline"));
    if (!had_process) return;
    slot *s = get_slot(sup, rec->project_id);
    if (!s) return;
    cd_store_user owner;
    if (sup->c.store->ops->user_get(sup->c.store, rec->user_id, &owner) == 0)
        snprintf(s->owner_name, sizeof s->owner_name, "%s", owner.name);
    cd_store_project project; /* its pin: a restart after a crash goes where the pin says */
    if (sup->c.store->ops->project_get(sup->c.store, rec->project_id, &project) == 0)
        snprintf(s->pin, sizeof s->pin, "%s", project.pin);
    /* An instance on another host is adopted on its record's word and then asked through its
     * address, like any adoption: a bad answer replaces it (and kills the pid over ssh). */
    cd_host *h = cd_hosts_find(sup->c.hosts, rec->host);
    cd_launcher *l = h ? h->launcher : NULL;
    if (!l || !l->ops->is_instance(l, rec->pid, rec->port) ||
        l->ops->adopt(l, rec->pid, rec->port, on_process_exit, s, &s->proc) < 0) {
        s->proc = NULL;
        s->rec.pid = 0;
        set_status(s, "stopped", "%s", h ? "not running when the hub started" : "its host is no longer configured");
        save(s);
        return;
    }
    s->host = h;
    /* Who it is, from the command as it would start it now: the health check asks it. */
    char err[256];
    cd_hub_command_vars vars = {.listen = h->rec.address, .base_dir = rec->base_dir, .user = s->owner_name,
                                .port = rec->port, .project = rec->project_id,
                                .template = h->rec.command[0] ? h->rec.command : NULL};
    char **argv = cd_hub_config_command_argv(sup->c.cfg, &vars, err, sizeof err);
    if (argv) set_identity(s, argv);
    else s->ident_flag = NULL;
    cd_hub_argv_free(argv);
    /* Ours and alive: ask it whether it is healthy; a bad answer replaces it. */
    s->wanted = true;
    s->epoch++;
    s->rec.last_activity_at = now_ms();
    audit(s, "instance_adopt", "port %d pid %d", rec->port, rec->pid);
    cd_info("hub: adopting the instance of project %lld (port %d, pid %d)", (long long)rec->project_id, rec->port,
            rec->pid);
    check_health(s);
}

int cd_supervisor_new(const cd_supervisor_config *c, cd_supervisor **out, char *err, size_t errlen) {
    cd_supervisor *sup = calloc(1, sizeof *sup);
    if (!sup) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sup->c = *c;
    cd_hosts_set_listener(c->hosts, on_host_down, sup);
    uv_timer_init(c->loop, &sup->tick);
    sup->tick.data = sup;
    sup->handles_open = 1;
    uv_timer_start(&sup->tick, on_tick, 1000, 1000);
    cd_store_instance *list = NULL;
    size_t n = 0;
    if (c->store->ops->instance_list(c->store, &list, &n) < 0) {
        snprintf(err, errlen, "cannot read the instances: %s", cd_store_error(c->store));
        *out = sup;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const cd_store_instance *rec = &list[i];
        bool others = c->peers && rec->hub[0] && strcmp(rec->hub, c->hub_id) != 0;
        if (!others) adopt_one(sup, rec);
        else if (record_has_process(rec) && !cd_hub_peers_alive(c->peers, rec->hub)) take_over_one(sup, rec);
        /* else: that hub's, or nothing runs */
    }
    free(list);
    *out = sup;
    return 0;
}

/* ---- shutdown ---- */

static void tick_closed(uv_handle_t *h) {
    cd_supervisor *sup = h->data;
    sup->handles_open--;
    shutdown_progress(sup);
}

/* Called after anything that may have been the last thing shutdown waited for. Once no process
 * runs and no probe is out, the handles are closed; once they are closed, the caller hears. */
static void shutdown_progress(cd_supervisor *sup) {
    if (!sup->shutting_down) return;
    if (cd_supervisor_running(sup) > 0 || sup->inflight > 0) return;
    if (sup->handles_open > 0) {
        if (!uv_is_closing((uv_handle_t *)&sup->tick)) {
            uv_close((uv_handle_t *)&sup->tick, tick_closed);
            for (slot *s = sup->slots; s; s = s->next) uv_close((uv_handle_t *)&s->timer, timer_closed);
            sup->slots = NULL; /* freed as their timers close */
        }
        return;
    }
    cd_sup_done_cb cb = sup->shutdown_cb;
    sup->shutdown_cb = NULL;
    if (cb) cb(sup->shutdown_user);
}

/* Several hubs, another of them alive: this hub's instances are left running for it (a rolling
 * restart of the hubs stops no one's work); the hub's leaving beat (peers.c) lets it take them
 * over at once, as it would those of a hub gone silent. */
static void leave_running(slot *s) {
    cd_info("hub: leaving the instance of project %lld (port %d, pid %d) running for the other hubs",
            (long long)s->rec.project_id, s->rec.port, s->rec.pid);
    let_go(s);
}

void cd_supervisor_shutdown(cd_supervisor *sup, cd_sup_done_cb cb, void *user) {
    sup->shutting_down = true;
    sup->shutdown_cb = cb;
    sup->shutdown_user = user;
    uv_timer_stop(&sup->tick);
    bool hand_over = sup->c.peers && cd_hub_peers_others_alive(sup->c.peers);
    for (slot *s = sup->slots; s; s = s->next) {
        notify_waiters(s, 503, "the hub is stopping", false);
        s->wanted = false;
        s->restart_after_stop = false;
        if (s->proc && hand_over && s->ph == PH_RUNNING) leave_running(s);
        else if (s->proc) begin_stop(s, "the hub stopped");
        else uv_timer_stop(&s->timer);
    }
    shutdown_progress(sup);
}

void cd_supervisor_free(cd_supervisor *sup) {
    if (!sup) return;
    for (orphan *o = sup->orphans, *next; o; o = next) { /* none has a kill under way: the hosts are idle */
        next = o->next;
        free(o);
    }
    free(sup);
}
