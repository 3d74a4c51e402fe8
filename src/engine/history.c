#include "engine/history.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"

typedef struct {
    char *id;
    json_t *entry;
} item;

struct cd_history {
    pthread_mutex_t lock;
    item *items; /* completion order */
    size_t n, cap, max;
    sqlite3 *db;
};

static void db_exec(cd_history *h, const char *sql) {
    char *msg = NULL;
    if (h->db && sqlite3_exec(h->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cd_warn("history: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
    }
}

static void db_delete(cd_history *h, const char *id) {
    if (!h->db) return;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "DELETE FROM history WHERE prompt_id = ?", -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

static void drop_at(cd_history *h, size_t i) {
    free(h->items[i].id);
    json_decref(h->items[i].entry);
    memmove(&h->items[i], &h->items[i + 1], (h->n - i - 1) * sizeof *h->items);
    h->n--;
}

static ssize_t find(cd_history *h, const char *id) {
    for (size_t i = h->n; i-- > 0;)
        if (!strcmp(h->items[i].id, id)) return (ssize_t)i;
    return -1;
}

static int append(cd_history *h, const char *id, json_t *entry) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        item *it = realloc(h->items, cap * sizeof *it);
        if (!it) return -1;
        h->items = it;
        h->cap = cap;
    }
    h->items[h->n].id = strdup(id);
    h->items[h->n].entry = entry;
    h->n++;
    return 0;
}

cd_history *cd_history_open(const char *db_path, size_t max_items, char *err, size_t errlen) {
    cd_history *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
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
               "prompt_id TEXT UNIQUE NOT NULL, entry TEXT NOT NULL)");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "SELECT prompt_id, entry FROM history ORDER BY seq", -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *id = (const char *)sqlite3_column_text(st, 0);
            json_t *entry = cd_json_loadb_bigint((const char *)sqlite3_column_text(st, 1),
                                                 (size_t)sqlite3_column_bytes(st, 1), 0, NULL);
            if (id && entry) append(h, id, entry);
            else json_decref(entry);
        }
        sqlite3_finalize(st);
    }
    while (h->n > h->max) {
        db_delete(h, h->items[0].id);
        drop_at(h, 0);
    }
    return h;
}

void cd_history_close(cd_history *h) {
    if (!h) return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->items[i].id);
        json_decref(h->items[i].entry);
    }
    free(h->items);
    if (h->db) sqlite3_close(h->db);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void cd_history_add(cd_history *h, const char *prompt_id, json_t *entry) {
    char *text = h->db ? cd_json_dumps_compact(entry, 0) : NULL;
    pthread_mutex_lock(&h->lock);
    ssize_t old = find(h, prompt_id);
    if (old >= 0) drop_at(h, (size_t)old);
    /* ComfyUI drops the oldest once there are more than max entries. */
    while (h->n >= h->max + 1 && h->n > 0) {
        db_delete(h, h->items[0].id);
        drop_at(h, 0);
    }
    if (append(h, prompt_id, entry) < 0) json_decref(entry);
    if (text) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(h->db, "INSERT OR REPLACE INTO history (prompt_id, entry) VALUES (?, ?)", -1, &st,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, prompt_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) != SQLITE_DONE) cd_warn("history: cannot store %s: %s", prompt_id, sqlite3_errmsg(h->db));
            sqlite3_finalize(st);
        }
    }
    pthread_mutex_unlock(&h->lock);
    free(text);
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
        json_object_set_new(out, h->items[i].id, json_deep_copy(h->items[i].entry));
        taken++;
    }
    pthread_mutex_unlock(&h->lock);
    return out;
}

json_t *cd_history_get(cd_history *h, const char *prompt_id) {
    json_t *out = json_object();
    pthread_mutex_lock(&h->lock);
    ssize_t i = find(h, prompt_id);
    if (i >= 0) json_object_set_new(out, prompt_id, json_deep_copy(h->items[i].entry));
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
    db_exec(h, "DELETE FROM history");
    pthread_mutex_unlock(&h->lock);
}

size_t cd_history_count(cd_history *h) {
    pthread_mutex_lock(&h->lock);
    size_t n = h->n;
    pthread_mutex_unlock(&h->lock);
    return n;
}
