#include "engine/history.h"

#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "engine/jobs.h"

/* One entry. Until the writer has stored it, it is the JSON tree the executor made; from then
 * on, the text that went into SQLite, which readers parse. A finished 5,000-node prompt is a
 * 700 KB text but several MB of tree, and up to max_items entries are kept: as text, memory
 * stays proportional to what the database holds, and a new prompt's tree reuses the memory of
 * the ones before it. */
/* A prompt graph's text, shared by the entries of a workflow that runs again and again (one
 * copy, not one per entry). References are counted under the history's lock. */
typedef struct graph_text {
    int refs;
    size_t len;
    char text[];
} graph_text;

/* Where an entry's text leaves its prompt graph out: a JSON string holding a NUL, which no
 * client's text can (base/json.h). */
#define GRAPH_MARK "\"\\u0000P\""
#define GRAPH_MARK_LEN 9

typedef struct item {
    char *id;
    json_t *entry; /* NULL once it is text */
    char *text;    /* with GRAPH_MARK in the graph's place when graph is set */
    size_t len;
    graph_text *graph;
    /* The entry's job for /api/jobs (engine/jobs.h), never changed once set: made when the
     * entry is added, read back from its column, or, for an entry stored before there was one,
     * made when first listed (and then stored). Small, so listing the jobs of a long history
     * parses no entries. */
    json_t *job;
    int refs; /* the list's, and a queued write's */
} item;

/* A change to write to SQLite. */
typedef struct op {
    enum { OP_PUT, OP_DELETE, OP_CLEAR, OP_JOB } kind;
    char *id;
    json_t *entry; /* OP_PUT: a reference; entries are not changed once added */
    item *it;      /* OP_PUT: the entry's item (a reference), to turn into text once stored;
                    * OP_JOB: the item whose job is stored */
    json_t *job;   /* OP_PUT, OP_JOB: the item's job when queued (a reference), or NULL */
    item *dead;    /* writer: the item, when the op held its last reference (freed unlocked) */
    struct op *next;
} op;

struct cd_history {
    pthread_mutex_t lock;
    item **items; /* completion order */
    size_t n, cap, max;
    sqlite3 *db;
    /* The SQLite writes happen on a thread of their own, in the order they were made: the
     * memory copy is what readers see at once (clients read the history as soon as the
     * prompt's last event arrives), and serialising a large prompt for the database then
     * costs the executor nothing. Closing writes whatever is still queued. */
    pthread_t writer;
    bool writer_started, stopping;
    bool writing; /* the writer holds a batch of ops */
    pthread_cond_t wake;
    pthread_cond_t idle; /* signalled when a batch is done (cd_history_sync) */
    op *ops_head, *ops_tail;
    /* Writer thread only: the last prompt graph serialised, and its text. Clients re-queue
     * the same workflow; its (validated, shared) graph object is then serialised once, and
     * a graph of the same text is kept once. */
    json_t *graph;
    graph_text *graph_text;
    /* References the writer is done with, dropped by cd_history_collect on the executor's
     * thread: they may be the last ones to a prompt's tree, which the loop thread allocated,
     * and freeing it from a low-priority thread would hold the allocator's lock that the loop
     * needs to parse the next prompt. Guarded by lock. */
    json_t **release;
    size_t n_release, cap_release;
};

/* Hands a reference over to cd_history_collect (lock held). Dropped at once when the list
 * cannot grow. */
static void release_later(cd_history *h, json_t *j) {
    if (!j) return;
    if (h->n_release == h->cap_release) {
        size_t cap = h->cap_release ? h->cap_release * 2 : 16;
        json_t **r = realloc(h->release, cap * sizeof *r);
        if (!r) {
            json_decref(j);
            return;
        }
        h->release = r;
        h->cap_release = cap;
    }
    h->release[h->n_release++] = j;
}

static void db_exec(cd_history *h, const char *sql) {
    char *msg = NULL;
    if (h->db && sqlite3_exec(h->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cd_warn("history: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
    }
}

static void sql_delete(cd_history *h, const char *id) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "DELETE FROM history WHERE prompt_id = ?", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

/* Stores the job of an entry stored before jobs were (OP_JOB). */
static void sql_set_job(cd_history *h, const char *id, const json_t *job) {
    char *text = job ? cd_json_dumps_compact(job, 0) : NULL;
    sqlite3_stmt *st;
    if (text && sqlite3_prepare_v2(h->db, "UPDATE history SET job = ? WHERE prompt_id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    free(text);
}

/* Lock held: drops a reference; returns g when that was the last one, for the caller to free
 * once it has let go of the lock (the writer runs at idle priority: it must not do more under
 * the lock than it has to). */
static graph_text *graph_drop(graph_text *g) { return g && --g->refs == 0 ? g : NULL; }

static void graph_unref(graph_text *g) { free(graph_drop(g)); }

/* The writer's current graph text becomes that of graph (lock taken for the counts). */
static void set_current_graph(cd_history *h, json_t *graph) {
    char *text = cd_json_dumps_compact(graph, 0);
    size_t len = text ? strlen(text) : 0;
    graph_text *g = NULL, *dead = NULL;
    bool same = false;
    pthread_mutex_lock(&h->lock);
    graph_text *cur = h->graph_text;
    same = text && cur && cur->len == len && !memcmp(cur->text, text, len);
    pthread_mutex_unlock(&h->lock);
    if (text && !same && (g = malloc(sizeof *g + len + 1))) { /* made outside the lock */
        g->refs = 1;
        g->len = len;
        memcpy(g->text, text, len + 1);
    }
    pthread_mutex_lock(&h->lock);
    release_later(h, h->graph);
    h->graph = json_incref(graph);
    if (!same) {
        dead = graph_drop(h->graph_text);
        h->graph_text = g;
    }
    pthread_mutex_unlock(&h->lock);
    free(dead);
    free(text);
}

/* The entry as JSON text. A large prompt graph (entry.prompt[2]) is left out, GRAPH_MARK in its
 * place, and *graph gets its shared text (a reference); otherwise *graph is NULL. */
static char *entry_text(cd_history *h, const json_t *entry, graph_text **graph_out) {
    *graph_out = NULL;
    json_t *prompt = json_object_get(entry, "prompt");
    json_t *graph = json_array_get(prompt, 2);
    if (!json_is_object(graph) || json_object_size(graph) < 32) return cd_json_dumps_compact(entry, 0);
    if (graph != h->graph) set_current_graph(h, graph);
    json_t *shallow = json_copy((json_t *)entry), *p = json_copy(prompt);
    char *text = NULL;
    if (shallow && p && h->graph_text && json_array_set_new(p, 2, json_stringn("\0P", 2)) == 0 &&
        json_object_set(shallow, "prompt", p) == 0)
        text = cd_json_dumps_compact(shallow, 0);
    json_decref(p);
    json_decref(shallow);
    if (!text || !strstr(text, GRAPH_MARK)) {
        free(text);
        return cd_json_dumps_compact(entry, 0);
    }
    pthread_mutex_lock(&h->lock);
    h->graph_text->refs++;
    *graph_out = h->graph_text;
    pthread_mutex_unlock(&h->lock);
    return text;
}

/* The whole text of an entry: text with graph's text in place of GRAPH_MARK (new string). */
static char *splice_graph(const char *text, size_t len, const graph_text *graph) {
    const char *mark = graph ? strstr(text, GRAPH_MARK) : NULL;
    if (!mark) return strndup(text, len);
    size_t head = (size_t)(mark - text), tail = len - head - GRAPH_MARK_LEN;
    char *out = malloc(head + graph->len + tail + 1);
    if (!out) return NULL;
    memcpy(out, text, head);
    memcpy(out + head, graph->text, graph->len);
    memcpy(out + head + graph->len, mark + GRAPH_MARK_LEN, tail);
    out[head + graph->len + tail] = '\0';
    return out;
}

/* Stores the entry; returns its text (the caller's, GRAPH_MARK and *graph as entry_text
 * gives them) when it was stored, else NULL. */
static char *sql_put(cd_history *h, const char *id, const json_t *entry, const json_t *job, graph_text **graph) {
    char *text = entry_text(h, entry, graph);
    char *whole = text ? splice_graph(text, strlen(text), *graph) : NULL;
    char *job_text = job ? cd_json_dumps_compact(job, 0) : NULL; /* none: made again when listed */
    sqlite3_stmt *st;
    bool stored = false;
    if (whole && sqlite3_prepare_v2(h->db, "INSERT OR REPLACE INTO history (prompt_id, entry, job) VALUES (?, ?, ?)",
                                    -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, whole, -1, SQLITE_STATIC);
        if (job_text) sqlite3_bind_text(st, 3, job_text, -1, SQLITE_STATIC);
        else sqlite3_bind_null(st, 3);
        stored = sqlite3_step(st) == SQLITE_DONE;
        if (!stored) cd_warn("history: cannot store %s: %s", id, sqlite3_errmsg(h->db));
        sqlite3_finalize(st);
    } else {
        cd_warn("history: cannot store %s", id);
    }
    free(job_text);
    free(whole);
    if (stored) return text;
    free(text);
    pthread_mutex_lock(&h->lock);
    graph_unref(*graph);
    pthread_mutex_unlock(&h->lock);
    *graph = NULL;
    return NULL;
}

/* Lock held: drops a reference; returns the item when that was the last one (its graph then
 * dropped too, and set only when it is to be freed), for item_free. */
static item *item_drop(item *it) {
    if (!it || --it->refs > 0) return NULL;
    it->graph = graph_drop(it->graph);
    return it;
}

/* Frees what item_drop gave (no lock needed). */
static void item_free(item *it) {
    if (!it) return;
    free(it->id);
    json_decref(it->entry);
    json_decref(it->job);
    free(it->text);
    free(it->graph);
    free(it);
}

/* Lock held. */
static void item_unref(item *it) { item_free(item_drop(it)); }

/* The entry as a new tree, for a reader (lock held); NULL when its text does not parse. */
static json_t *item_entry(const item *it) {
    if (it->entry) return json_deep_copy(it->entry);
    if (!it->graph) return cd_json_parse(it->text, it->len, 0, NULL);
    char *whole = splice_graph(it->text, it->len, it->graph);
    json_t *e = whole ? cd_json_parse(whole, strlen(whole), 0, NULL) : NULL;
    free(whole);
    return e;
}

static void op_free(op *o) {
    free(o->id);
    json_decref(o->entry);
    json_decref(o->job);
    item_unref(o->it); /* lock held, or the writer gone: refs are counted under it */
    free(o);
}

/* Queues a write (lock held). Without a database, nothing to do. */
static void enqueue(cd_history *h, int kind, const char *id, item *it) {
    if (!h->db) return;
    op *o = calloc(1, sizeof *o);
    if (!o || (id && !(o->id = strdup(id)))) {
        free(o);
        cd_warn("history: out of memory; a change is not saved");
        return;
    }
    o->kind = kind;
    if (it) {
        o->entry = json_incref(it->entry);
        o->job = json_incref(it->job);
        o->it = it;
        it->refs++;
    }
    if (h->ops_tail) h->ops_tail->next = o;
    else h->ops_head = o;
    h->ops_tail = o;
    pthread_cond_signal(&h->wake);
}

static void db_delete(cd_history *h, const char *id) { enqueue(h, OP_DELETE, id, NULL); }

static void *writer_main(void *arg) {
    cd_history *h = arg;
    /* Background work: serialising a large prompt for the database must not take a core from
     * the executor or the loop while a prompt's events are still going out. SCHED_IDLE runs it
     * when they leave a core free (any thread may lower its own priority); where that is not
     * available, nice 10 (Linux applies it to the calling thread alone). Failure changes
     * nothing but speed; readers see an entry at once either way. */
    struct sched_param idle = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0)
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
    pthread_setname_np(pthread_self(), "comfyd-history");
    pthread_mutex_lock(&h->lock);
    for (;;) {
        h->writing = false;
        pthread_cond_broadcast(&h->idle);
        while (!h->ops_head && !h->stopping) pthread_cond_wait(&h->wake, &h->lock);
        h->writing = h->ops_head != NULL;
        op *list = h->ops_head;
        h->ops_head = h->ops_tail = NULL;
        if (!list && h->stopping) break;
        pthread_mutex_unlock(&h->lock);
        /* One transaction for whatever gathered meanwhile. */
        db_exec(h, "BEGIN");
        for (op *o = list; o; o = o->next) {
            if (o->kind == OP_PUT) {
                graph_text *graph = NULL;
                char *text = sql_put(h, o->id, o->entry, o->job, &graph);
                pthread_mutex_lock(&h->lock);
                if (text && o->it->entry) { /* from now on the entry is its text */
                    o->it->text = text;
                    o->it->len = strlen(text);
                    o->it->graph = graph;
                    json_decref(o->it->entry);
                    o->it->entry = NULL;
                    text = NULL;
                    graph = NULL;
                }
                graph_text *dead = graph_drop(graph);
                pthread_mutex_unlock(&h->lock);
                free(dead);
                free(text);
            } else if (o->kind == OP_JOB) {
                sql_set_job(h, o->id, o->job);
            } else if (o->kind == OP_DELETE) {
                sql_delete(h, o->id);
            } else {
                db_exec(h, "DELETE FROM history");
            }
        }
        db_exec(h, "COMMIT");
        pthread_mutex_lock(&h->lock);
        for (op *o = list; o; o = o->next) {
            release_later(h, o->entry);
            o->entry = NULL;
            o->dead = item_drop(o->it);
            o->it = NULL;
        }
        pthread_mutex_unlock(&h->lock);
        while (list) { /* what the ops held last, freed without the lock */
            op *next = list->next;
            item_free(list->dead);
            op_free(list);
            list = next;
        }
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static void drop_at(cd_history *h, size_t i) {
    item_unref(h->items[i]);
    memmove(&h->items[i], &h->items[i + 1], (h->n - i - 1) * sizeof *h->items);
    h->n--;
}

static ssize_t find(cd_history *h, const char *id) {
    for (size_t i = h->n; i-- > 0;)
        if (!strcmp(h->items[i]->id, id)) return (ssize_t)i;
    return -1;
}

/* Appends an item for id holding entry (taken over) or a copy of text; NULL when out of
 * memory (entry then dropped). */
static item *append(cd_history *h, const char *id, json_t *entry, const char *text, size_t len) {
    item *it = calloc(1, sizeof *it);
    if (it) {
        it->refs = 1;
        it->id = strdup(id);
        it->entry = entry;
        if (text && (it->text = malloc(len + 1))) {
            memcpy(it->text, text, len);
            it->text[len] = '\0';
            it->len = len;
        }
    }
    if (it && h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        item **items = realloc(h->items, cap * sizeof *items);
        if (items) {
            h->items = items;
            h->cap = cap;
        }
    }
    if (!it || !it->id || (!entry && !it->text) || h->n == h->cap) {
        if (it) item_unref(it);
        else json_decref(entry);
        return NULL;
    }
    h->items[h->n++] = it;
    return it;
}

cd_history *cd_history_open(const char *db_path, size_t max_items, char *err, size_t errlen) {
    cd_history *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    pthread_cond_init(&h->idle, NULL);
    h->max = max_items;
    if (!db_path) return h;
    if (sqlite3_open_v2(db_path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open history database %s: %s", db_path, h->db ? sqlite3_errmsg(h->db) : "?");
        cd_history_close(h);
        return NULL;
    }
    sqlite3_busy_timeout(h->db, 2000);
    db_exec(h, "PRAGMA journal_mode=WAL");
    db_exec(h, "PRAGMA synchronous=NORMAL");
    db_exec(h, "CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
               "prompt_id TEXT UNIQUE NOT NULL, entry TEXT NOT NULL, job TEXT)");
    sqlite3_stmt *st;
    /* A database from before the jobs API has no job column: added, NULL in its rows. */
    if (sqlite3_prepare_v2(h->db, "SELECT job FROM history LIMIT 0", -1, &st, NULL) == SQLITE_OK) sqlite3_finalize(st);
    else db_exec(h, "ALTER TABLE history ADD COLUMN job TEXT");
    if (sqlite3_prepare_v2(h->db, "SELECT prompt_id, entry, job FROM history ORDER BY seq", -1, &st, NULL) == SQLITE_OK) {
        /* Kept as the stored text, parsed when read: starting up does not parse them all.
         * Their jobs are small and parsed now. */
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *id = (const char *)sqlite3_column_text(st, 0);
            const char *text = (const char *)sqlite3_column_text(st, 1);
            const char *job = (const char *)sqlite3_column_text(st, 2);
            item *it = id && text ? append(h, id, NULL, text, (size_t)sqlite3_column_bytes(st, 1)) : NULL;
            if (it && job) {
                it->job = cd_json_parse(job, (size_t)sqlite3_column_bytes(st, 2), 0, NULL);
                if (!json_is_object(it->job)) {
                    json_decref(it->job);
                    it->job = NULL; /* made again from the entry */
                }
            }
        }
        sqlite3_finalize(st);
    }
    while (h->n > h->max) {
        db_delete(h, h->items[0]->id);
        drop_at(h, 0);
    }
    if (pthread_create(&h->writer, NULL, writer_main, h) != 0) {
        snprintf(err, errlen, "cannot start the history writer thread");
        cd_history_close(h);
        return NULL;
    }
    h->writer_started = true;
    return h;
}

void cd_history_close(cd_history *h) {
    if (!h) return;
    if (h->writer_started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->writer, NULL); /* writes what is still queued */
    }
    while (h->ops_head) {
        op *next = h->ops_head->next;
        op_free(h->ops_head);
        h->ops_head = next;
    }
    json_decref(h->graph);
    graph_unref(h->graph_text);
    for (size_t i = 0; i < h->n_release; i++) json_decref(h->release[i]);
    free(h->release);
    for (size_t i = 0; i < h->n; i++) item_unref(h->items[i]);
    free(h->items);
    if (h->db) sqlite3_close(h->db);
    pthread_cond_destroy(&h->wake);
    pthread_cond_destroy(&h->idle);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void cd_history_sync(cd_history *h) {
    pthread_mutex_lock(&h->lock);
    while (h->writer_started && (h->ops_head || h->writing)) pthread_cond_wait(&h->idle, &h->lock);
    pthread_mutex_unlock(&h->lock);
}

bool cd_history_collect(cd_history *h) {
    pthread_mutex_lock(&h->lock);
    json_t **list = h->release;
    size_t n = h->n_release;
    h->release = NULL;
    h->n_release = h->cap_release = 0;
    bool busy = h->ops_head || h->writing;
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < n; i++) json_decref(list[i]);
    free(list);
    return busy;
}

void cd_history_add(cd_history *h, const char *prompt_id, json_t *entry) {
    json_t *job = cd_job_from_history(prompt_id, entry, false); /* NULL (no memory): made when listed */
    pthread_mutex_lock(&h->lock);
    ssize_t old = find(h, prompt_id);
    if (old >= 0) drop_at(h, (size_t)old);
    /* ComfyUI drops the oldest once there are more than max entries. */
    while (h->n >= h->max + 1 && h->n > 0) {
        db_delete(h, h->items[0]->id);
        drop_at(h, 0);
    }
    item *it = append(h, prompt_id, entry, NULL, 0);
    if (it) {
        it->job = job;
        job = NULL;
        enqueue(h, OP_PUT, prompt_id, it);
    } else {
        cd_warn("history: out of memory; prompt %s is not recorded", prompt_id);
    }
    pthread_mutex_unlock(&h->lock);
    json_decref(job);
}

json_t *cd_history_list(cd_history *h, long max_items, long offset) {
    json_t *out = json_object();
    pthread_mutex_lock(&h->lock);
    long len = (long)h->n;
    if (offset < 0 && max_items >= 0) offset = len - max_items;
    long taken = 0;
    for (long i = 0; i < len; i++) {
        if (i < offset) continue;
        if (max_items >= 0 && taken >= max_items) break;
        json_t *entry = item_entry(h->items[i]);
        if (entry) json_object_set_new(out, h->items[i]->id, entry);
        taken++;
    }
    pthread_mutex_unlock(&h->lock);
    return out;
}

json_t *cd_history_jobs(cd_history *h, unsigned statuses) {
    json_t *out = json_array();
    if (!out) return NULL;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n; i++) {
        item *it = h->items[i];
        if (!it->job) {
            /* stored before jobs were: made from the whole entry once, then kept and stored */
            json_t *entry = item_entry(it);
            it->job = entry ? cd_job_from_history(it->id, entry, false) : NULL;
            json_decref(entry);
            if (it->job) enqueue(h, OP_JOB, it->id, it);
        }
        if (!it->job) continue; /* an entry that does not parse is no job, as it is no history */
        if (!(cd_job_status_bit(json_string_value(json_object_get(it->job, "status"))) & statuses)) continue;
        if (json_array_append(out, it->job) < 0) {
            json_decref(out);
            out = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return out;
}

json_t *cd_history_get(cd_history *h, const char *prompt_id) {
    json_t *out = json_object();
    pthread_mutex_lock(&h->lock);
    ssize_t i = find(h, prompt_id);
    json_t *entry = i >= 0 ? item_entry(h->items[i]) : NULL;
    if (entry) json_object_set_new(out, prompt_id, entry);
    pthread_mutex_unlock(&h->lock);
    return out;
}

void cd_history_delete(cd_history *h, const char *prompt_id) {
    pthread_mutex_lock(&h->lock);
    ssize_t i = find(h, prompt_id);
    if (i >= 0) {
        drop_at(h, (size_t)i);
        db_delete(h, prompt_id);
    }
    pthread_mutex_unlock(&h->lock);
}

void cd_history_clear(cd_history *h) {
    pthread_mutex_lock(&h->lock);
    while (h->n) drop_at(h, h->n - 1);
    enqueue(h, OP_CLEAR, NULL, NULL);
    pthread_mutex_unlock(&h->lock);
}

size_t cd_history_count(cd_history *h) {
    pthread_mutex_lock(&h->lock);
    size_t n = h->n;
    pthread_mutex_unlock(&h->lock);
    return n;
}
