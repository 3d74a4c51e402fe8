/* The hub's store in SQLite (store.h): one database file in WAL mode whose schema is brought up
 * to date at open by the numbered migrations of store_schema.c, and every operation a statement
 * prepared once at open and kept until close. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "hub/store.h"
#include "hub/store_schema.h"
#include "hub/store_statements.h"

#define N_MIGRATIONS cd_store_schema_version()

/* Inserts say RETURNING id rather than reading last_insert_rowid, which the upsert does not set
 * when it updates; one way for all of them. */
static const char *const stmt_sql[N_STMT] = {
    [USER_CREATE] = "INSERT INTO users (name, password_hash, role, disabled, created_at)"
                    " VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
    [USER_GET] = "SELECT " USER_COLS " FROM users WHERE id = ?1",
    [USER_BY_NAME] = "SELECT " USER_COLS " FROM users WHERE name = ?1",
    [USER_LIST] = "SELECT " USER_COLS " FROM users ORDER BY id",
    [USER_UPDATE] = "UPDATE users SET name = ?1, password_hash = ?2, role = ?3, disabled = ?4 WHERE id = ?5",
    [USER_DELETE] = "DELETE FROM users WHERE id = ?1",
    [USER_COUNT] = "SELECT count(*) FROM users",
    [TOKEN_CREATE] = "INSERT INTO tokens (" TOKEN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens WHERE hash = ?1 AND (expires_at = 0 OR expires_at > ?2)",
    [TOKEN_DELETE] = "DELETE FROM tokens WHERE hash = ?1",
    [TOKEN_DELETE_USER] = "DELETE FROM tokens WHERE user_id = ?1 AND kind = ?2",
    /* <= so that a token token_get no longer returns is one prune removes. */
    [TOKEN_PRUNE] = "DELETE FROM tokens WHERE expires_at > 0 AND expires_at <= ?1",
    [PROJECT_CREATE] = "INSERT INTO projects (owner_id, name, created_at, updated_at, pin)"
                       " VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
    [PROJECT_GET] = "SELECT " PROJECT_COLS " FROM projects WHERE id = ?1",
    [PROJECT_LIST_ALL] = "SELECT " PROJECT_COLS " FROM projects ORDER BY id",
    [PROJECT_LIST_OWNER] = "SELECT " PROJECT_COLS " FROM projects WHERE owner_id = ?1 ORDER BY id",
    [PROJECT_UPDATE] = "UPDATE projects SET name = ?1, updated_at = ?2, pin = ?4 WHERE id = ?3",
    [PROJECT_DELETE] = "DELETE FROM projects WHERE id = ?1",
    [HOST_CREATE] = "INSERT INTO hosts (name, address, launcher, ssh_target, ssh_port, ssh_key, ssh_options, command,"
                    " base_dir, port_min, port_max, max_instances, labels, disabled, created_at)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) RETURNING id",
    [HOST_GET] = "SELECT " HOST_COLS " FROM hosts WHERE id = ?1",
    [HOST_LIST] = "SELECT " HOST_COLS " FROM hosts ORDER BY id",
    [HOST_UPDATE] = "UPDATE hosts SET name = ?1, address = ?2, launcher = ?3, ssh_target = ?4, ssh_port = ?5,"
                    " ssh_key = ?6, ssh_options = ?7, command = ?8, base_dir = ?9, port_min = ?10, port_max = ?11,"
                    " max_instances = ?12, labels = ?13, disabled = ?14 WHERE id = ?16",
    [HOST_DELETE] = "DELETE FROM hosts WHERE id = ?1",
    [INSTANCE_PUT] =
        "INSERT INTO instances (project_id, user_id, host, address, port, pid, status, reason, base_dir,"
        " log_path, started_at, last_seen_at, last_activity_at, crash_count, hub)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        " ON CONFLICT (project_id) DO UPDATE SET user_id = excluded.user_id, host = excluded.host,"
        " address = excluded.address, port = excluded.port, pid = excluded.pid, status = excluded.status,"
        " reason = excluded.reason, base_dir = excluded.base_dir, log_path = excluded.log_path,"
        " started_at = excluded.started_at, last_seen_at = excluded.last_seen_at,"
        " last_activity_at = max(last_activity_at, excluded.last_activity_at), crash_count = excluded.crash_count, hub = excluded.hub"
        " RETURNING id",
    [INSTANCE_GET] = "SELECT " INSTANCE_COLS " FROM instances WHERE id = ?1",
    [INSTANCE_BY_PROJECT] = "SELECT " INSTANCE_COLS " FROM instances WHERE project_id = ?1",
    [INSTANCE_LIST] = "SELECT " INSTANCE_COLS " FROM instances ORDER BY id",
    [FAILURES_GET] = "SELECT count, last_at FROM login_failures WHERE name = ?1",
    [FAILURES_SET] = "INSERT INTO login_failures (name, count, last_at) VALUES (?1, ?2, ?3)"
                     " ON CONFLICT (name) DO UPDATE SET count = excluded.count, last_at = excluded.last_at",
    [FAILURES_CLEAR] = "DELETE FROM login_failures WHERE name = ?1",
    [AUDIT_ADD] = "INSERT INTO audit (at, user_id, username, action, target, detail, ip)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
    [AUDIT_LIST] = "SELECT " AUDIT_COLS " FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    [PROMPT_ADD] = "INSERT INTO prompts (prompt_id, user_id, project_id, priority, state, client_id, body, created_at)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING seq",
    [PROMPT_GET] = "SELECT " PROMPT_COLS " FROM prompts WHERE prompt_id = ?1",
    [PROMPT_BODY] = "SELECT body FROM prompts WHERE prompt_id = ?1",
    [PROMPT_ACTIVE] = "SELECT " PROMPT_COLS " FROM prompts WHERE state IN ('queued', 'dispatching', 'running')"
                      " ORDER BY seq",
    [PROMPT_STATE] = "UPDATE prompts SET state = ?2, reason = ?3,"
                     " dispatched_at = CASE WHEN ?2 = 'queued' THEN 0"
                     " WHEN ?2 IN ('dispatching', 'running') AND dispatched_at = 0"
                     " THEN ?4 ELSE dispatched_at END,"
                     " finished_at = CASE WHEN ?2 IN ('done', 'failed', 'cancelled') THEN ?4 ELSE finished_at END"
                     " WHERE prompt_id = ?1",
    /* One writer at a time: the state read in WHERE is the one the update replaces. */
    [PROMPT_CLAIM] = "UPDATE prompts SET state = ?3, reason = '',"
                     " dispatched_at = CASE WHEN ?3 = 'queued' THEN 0"
                     " WHEN ?3 IN ('dispatching', 'running') AND dispatched_at = 0"
                     " THEN ?4 ELSE dispatched_at END,"
                     " finished_at = CASE WHEN ?3 IN ('done', 'failed', 'cancelled') THEN ?4 ELSE finished_at END"
                     " WHERE prompt_id = ?1 AND state = ?2",
};

typedef struct {
    cd_store base; /* first, so that a cd_store * is one of these */
    sqlite3 *db;
    sqlite3_stmt *q[N_STMT];
    char err[512];
    bool batch_open; /* a group commit's transaction is under way */
    char *wal_path;  /* what sync flushes */
} sq_store;

typedef void (*row_reader)(sqlite3_stmt *q, void *out);

static sq_store *S(cd_store *st) {
    return (sq_store *)st;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Opening: pragmas and migrations ---- */

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return CD_STORE_ERROR;
}

/* The first column of the first row of a pragma, as text. */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t outlen, char *err, size_t errlen) {
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
        sqlite3_finalize(q);
        return CD_STORE_ERROR;
    }
    const unsigned char *t = sqlite3_column_text(q, 0);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
    sqlite3_finalize(q);
    return 0;
}

static int pragma_expect(sqlite3 *db, const char *sql, const char *want, char *err, size_t errlen) {
    char got[32];
    if (pragma_text(db, sql, got, sizeof got, err, errlen)) return CD_STORE_ERROR;
    if (!strcmp(got, want)) return 0;
    snprintf(err, errlen, "%s gave \"%s\", not \"%s\"", sql, got, want);
    return CD_STORE_ERROR;
}

/* FULL rather than NORMAL: in WAL mode NORMAL already keeps every commit through a killed process,
 * but a power cut could lose the last ones. The hub commits rarely (logins, starts, audit lines),
 * so an fsync per commit costs little and buys that too. Without foreign keys the cascades that
 * user_delete and project_delete rely on would silently not happen, so that one is read back. */
static int open_db(sq_store *s, const char *path, char *err, size_t errlen) {
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return CD_STORE_ERROR;
    }
    sqlite3_extended_result_codes(s->db, 1);
    if (exec(s->db, "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL", err,
             errlen))
        return CD_STORE_ERROR;
    return pragma_expect(s->db, "PRAGMA foreign_keys", "1", err, errlen);
}

/* Runs the next migration if there is one, in a transaction that also bumps user_version. The
 * version is read inside the (write-locked) transaction so that two hubs opening one new file
 * at once do not both run the same migration. */
static int migrate_step(sqlite3 *db, bool *done, char *err, size_t errlen) {
    char v[32], bump[64];
    if (exec(db, "BEGIN IMMEDIATE", err, errlen)) return CD_STORE_ERROR;
    if (pragma_text(db, "PRAGMA user_version", v, sizeof v, err, errlen)) goto rollback;
    int version = atoi(v);
    if (version > N_MIGRATIONS) {
        snprintf(err, errlen, "store schema version %d is newer than this comfyd knows (%d)", version,
                 N_MIGRATIONS);
        goto rollback;
    }
    *done = version == N_MIGRATIONS;
    if (!*done) {
        char *sql = cd_store_schema_migration(version, CD_DIALECT_SQLITE);
        if (!sql) {
            snprintf(err, errlen, "out of memory");
            goto rollback;
        }
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", version + 1);
        int rc = exec(db, sql, err, errlen) || exec(db, bump, err, errlen);
        free(sql);
        if (rc) goto rollback;
    }
    if (exec(db, "COMMIT", err, errlen)) goto rollback;
    return 0;
rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return CD_STORE_ERROR;
}

static int migrate(sqlite3 *db, char *err, size_t errlen) {
    bool done = false;
    while (!done)
        if (migrate_step(db, &done, err, errlen)) return CD_STORE_ERROR;
    return 0;
}

/* After the migrations, so that a file from a newer comfyd is refused before anything in it
 * changes. The mode is stored in the file: this is a no-op on every open but the first. An
 * in-memory database (":memory:", for tests) has no file to keep a log beside and stays "memory". */
static int set_wal(sqlite3 *db, char *err, size_t errlen) {
    char mode[32];
    if (pragma_text(db, "PRAGMA journal_mode = WAL", mode, sizeof mode, err, errlen)) return CD_STORE_ERROR;
    if (!strcmp(mode, "wal") || !strcmp(mode, "memory")) return 0;
    snprintf(err, errlen, "cannot use WAL mode (journal_mode is \"%s\")", mode);
    return CD_STORE_ERROR;
}

static int prepare_all(sq_store *s, char *err, size_t errlen) {
    for (int i = 0; i < N_STMT; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL) == SQLITE_OK)
            continue;
        snprintf(err, errlen, "preparing \"%s\": %s", stmt_sql[i], sqlite3_errmsg(s->db));
        return CD_STORE_ERROR;
    }
    return 0;
}

/* ---- Running statements ---- */

static void batch_end(sq_store *s);

/* Writes that are answered for at once (accounts, projects, instances, the audit log) are on
 * disk before their caller answers: an open group commit is committed before them, and they
 * commit on their own. The admission queue's writes join the group commit. */
static bool commits_alone(int which) {
    switch (which) {
    case USER_CREATE: case USER_UPDATE: case USER_DELETE:
    case TOKEN_CREATE: case TOKEN_DELETE: case TOKEN_DELETE_USER: case TOKEN_PRUNE:
    case PROJECT_CREATE: case PROJECT_UPDATE: case PROJECT_DELETE:
    case HOST_CREATE: case HOST_UPDATE: case HOST_DELETE:
    case INSTANCE_PUT: case FAILURES_SET: case FAILURES_CLEAR: case AUDIT_ADD:
        return true;
    default:
        return false;
    }
}

/* The statement of an operation; the previous operation's message is forgotten. */
static sqlite3_stmt *use(sq_store *s, int which) {
    if (s->batch_open && commits_alone(which)) batch_end(s);
    s->err[0] = '\0';
    return s->q[which];
}

/* Resetting ends the statement's read transaction, which would otherwise hold back WAL
 * checkpoints; clearing drops the pointers into the caller's records. */
static int finish(sqlite3_stmt *q, int r) {
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return r;
}

static int fail(sq_store *s) {
    snprintf(s->err, sizeof s->err, "%s", sqlite3_errmsg(s->db));
    switch (sqlite3_extended_errcode(s->db)) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: return CD_STORE_CONFLICT;
    case SQLITE_CONSTRAINT_FOREIGNKEY: return CD_STORE_NOT_FOUND; /* the user or project it names */
    default: return CD_STORE_ERROR;
    }
}

static int not_found(sq_store *s) {
    snprintf(s->err, sizeof s->err, "not found");
    return CD_STORE_NOT_FOUND;
}

/* A statement without rows; NOT_FOUND if it was to change a row and changed none. */
static int run(sq_store *s, sqlite3_stmt *q, bool must_change) {
    int r = sqlite3_step(q) == SQLITE_DONE ? 0 : fail(s);
    if (r == 0 && must_change && sqlite3_changes(s->db) == 0) r = not_found(s);
    return finish(q, r);
}

/* An insert RETURNING id. It is stepped to the end: an autocommit statement commits there, and a
 * commit that fails must be seen here rather than lost in a reset. */
static int insert(sq_store *s, sqlite3_stmt *q, int64_t *id) {
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) return finish(q, rc == SQLITE_DONE ? not_found(s) : fail(s));
    *id = sqlite3_column_int64(q, 0);
    return finish(q, sqlite3_step(q) == SQLITE_DONE ? 0 : fail(s));
}

static int one_row(sq_store *s, sqlite3_stmt *q, row_reader read, void *out) {
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) read(q, out);
    return finish(q, rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? not_found(s) : fail(s));
}

static int rows(sq_store *s, sqlite3_stmt *q, row_reader read, size_t size, void **out, size_t *n) {
    char *arr = NULL;
    size_t len = 0, cap = 0;
    int rc;
    *out = NULL;
    *n = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            char *grown = realloc(arr, cap * size);
            if (!grown) {
                free(arr);
                snprintf(s->err, sizeof s->err, "out of memory");
                return finish(q, CD_STORE_ERROR);
            }
            arr = grown;
        }
        read(q, arr + len++ * size);
    }
    if (rc != SQLITE_DONE) {
        free(arr);
        return finish(q, fail(s));
    }
    *out = arr;
    *n = len;
    return finish(q, 0);
}

/* A record's array may be full with no terminator; never read past it. SQLITE_STATIC is safe
 * because finish() clears the bindings before the operation returns. */
static void bind_array(sqlite3_stmt *q, int idx, const char *s, size_t cap) {
    sqlite3_bind_text(q, idx, s, (int)strnlen(s, cap), SQLITE_STATIC);
}
#define BIND_ARRAY(q, idx, field) bind_array((q), (idx), (field), sizeof(field))

static void bind_str(sqlite3_stmt *q, int idx, const char *s) {
    sqlite3_bind_text(q, idx, s, -1, SQLITE_STATIC);
}

static void col_text(sqlite3_stmt *q, int col, char *dst, size_t cap) {
    const unsigned char *t = sqlite3_column_text(q, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}
#define COL_TEXT(q, col, field) col_text((q), (col), (field), sizeof(field))

/* ---- Users ---- */

static void read_user(sqlite3_stmt *q, void *out) {
    cd_store_user *u = out;
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(q, 0);
    COL_TEXT(q, 1, u->name);
    COL_TEXT(q, 2, u->password_hash);
    /* The CHECK constraint keeps anything else out; student would be the least it could do. */
    if (cd_role_parse((const char *)sqlite3_column_text(q, 3), &u->role)) u->role = CD_ROLE_STUDENT;
    u->disabled = sqlite3_column_int(q, 4) != 0;
    u->created_at = sqlite3_column_int64(q, 5);
}

/* ?1..?4, shared by create and update. */
static void bind_user(sqlite3_stmt *q, const cd_store_user *u) {
    BIND_ARRAY(q, 1, u->name);
    BIND_ARRAY(q, 2, u->password_hash);
    bind_str(q, 3, cd_role_name(u->role));
    sqlite3_bind_int(q, 4, u->disabled ? 1 : 0);
}

static int sq_user_create(cd_store *st, cd_store_user *u) {
    sqlite3_stmt *q = use(S(st), USER_CREATE);
    if (!u->created_at) u->created_at = now_ms();
    bind_user(q, u);
    sqlite3_bind_int64(q, 5, u->created_at);
    return insert(S(st), q, &u->id);
}

static int sq_user_get(cd_store *st, int64_t id, cd_store_user *out) {
    sqlite3_stmt *q = use(S(st), USER_GET);
    sqlite3_bind_int64(q, 1, id);
    return one_row(S(st), q, read_user, out);
}

static int sq_user_by_name(cd_store *st, const char *name, cd_store_user *out) {
    sqlite3_stmt *q = use(S(st), USER_BY_NAME);
    bind_str(q, 1, name);
    return one_row(S(st), q, read_user, out);
}

static int sq_user_list(cd_store *st, cd_store_user **out, size_t *n) {
    void *arr;
    int r = rows(S(st), use(S(st), USER_LIST), read_user, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

static int sq_user_update(cd_store *st, const cd_store_user *u) {
    sqlite3_stmt *q = use(S(st), USER_UPDATE);
    bind_user(q, u);
    sqlite3_bind_int64(q, 5, u->id);
    return run(S(st), q, true);
}

/* Tokens, projects and (through projects) instance records go by ON DELETE CASCADE, all in this
 * one statement's transaction. */
static int sq_user_delete(cd_store *st, int64_t id) {
    sqlite3_stmt *q = use(S(st), USER_DELETE);
    sqlite3_bind_int64(q, 1, id);
    return run(S(st), q, true);
}

static void read_count(sqlite3_stmt *q, void *out) {
    *(int64_t *)out = sqlite3_column_int64(q, 0);
}

static int sq_user_count(cd_store *st, int64_t *n) {
    return one_row(S(st), use(S(st), USER_COUNT), read_count, n);
}

/* ---- Tokens ---- */

static const char *kind_name(cd_token_kind kind) {
    return kind == CD_TOKEN_API ? "api" : "session";
}

static void read_token(sqlite3_stmt *q, void *out) {
    cd_store_token *t = out;
    memset(t, 0, sizeof *t);
    COL_TEXT(q, 0, t->hash);
    t->user_id = sqlite3_column_int64(q, 1);
    const unsigned char *kind = sqlite3_column_text(q, 2);
    t->kind = kind && !strcmp((const char *)kind, "api") ? CD_TOKEN_API : CD_TOKEN_SESSION;
    COL_TEXT(q, 3, t->name);
    t->created_at = sqlite3_column_int64(q, 4);
    t->expires_at = sqlite3_column_int64(q, 5);
}

static int sq_token_create(cd_store *st, const cd_store_token *t) {
    sqlite3_stmt *q = use(S(st), TOKEN_CREATE);
    BIND_ARRAY(q, 1, t->hash);
    sqlite3_bind_int64(q, 2, t->user_id);
    bind_str(q, 3, kind_name(t->kind));
    BIND_ARRAY(q, 4, t->name);
    sqlite3_bind_int64(q, 5, t->created_at ? t->created_at : now_ms());
    sqlite3_bind_int64(q, 6, t->expires_at);
    return run(S(st), q, false);
}

static int sq_token_get(cd_store *st, const char *hash, int64_t now, cd_store_token *out) {
    sqlite3_stmt *q = use(S(st), TOKEN_GET);
    bind_str(q, 1, hash);
    sqlite3_bind_int64(q, 2, now);
    return one_row(S(st), q, read_token, out);
}

static int sq_token_delete(cd_store *st, const char *hash) {
    sqlite3_stmt *q = use(S(st), TOKEN_DELETE);
    bind_str(q, 1, hash);
    return run(S(st), q, true);
}

/* Having nothing to remove is not an error for the two bulk removals. */
static int sq_token_delete_user(cd_store *st, int64_t user_id, cd_token_kind kind) {
    sqlite3_stmt *q = use(S(st), TOKEN_DELETE_USER);
    sqlite3_bind_int64(q, 1, user_id);
    bind_str(q, 2, kind_name(kind));
    return run(S(st), q, false);
}

static int sq_token_prune(cd_store *st, int64_t now) {
    sqlite3_stmt *q = use(S(st), TOKEN_PRUNE);
    sqlite3_bind_int64(q, 1, now);
    return run(S(st), q, false);
}

/* ---- Projects ---- */

static void read_project(sqlite3_stmt *q, void *out) {
    cd_store_project *p = out;
    memset(p, 0, sizeof *p);
    p->id = sqlite3_column_int64(q, 0);
    p->owner_id = sqlite3_column_int64(q, 1);
    COL_TEXT(q, 2, p->name);
    p->created_at = sqlite3_column_int64(q, 3);
    p->updated_at = sqlite3_column_int64(q, 4);
    COL_TEXT(q, 5, p->pin);
}

/* "" is stored as NULL: no pin. */
static void bind_pin(sqlite3_stmt *q, int idx, const char *pin, size_t cap) {
    if (pin[0]) bind_array(q, idx, pin, cap);
    else sqlite3_bind_null(q, idx);
}

static int sq_project_create(cd_store *st, cd_store_project *p) {
    sqlite3_stmt *q = use(S(st), PROJECT_CREATE);
    if (!p->created_at) p->created_at = now_ms();
    if (!p->updated_at) p->updated_at = p->created_at;
    sqlite3_bind_int64(q, 1, p->owner_id);
    BIND_ARRAY(q, 2, p->name);
    sqlite3_bind_int64(q, 3, p->created_at);
    sqlite3_bind_int64(q, 4, p->updated_at);
    bind_pin(q, 5, p->pin, sizeof p->pin);
    return insert(S(st), q, &p->id);
}

static int sq_project_get(cd_store *st, int64_t id, cd_store_project *out) {
    sqlite3_stmt *q = use(S(st), PROJECT_GET);
    sqlite3_bind_int64(q, 1, id);
    return one_row(S(st), q, read_project, out);
}

/* Two statements rather than "owner_id = ?1 OR ?1 = 0", which would keep the index unused. */
static int sq_project_list(cd_store *st, int64_t owner_id, cd_store_project **out, size_t *n) {
    sqlite3_stmt *q = use(S(st), owner_id ? PROJECT_LIST_OWNER : PROJECT_LIST_ALL);
    if (owner_id) sqlite3_bind_int64(q, 1, owner_id);
    void *arr;
    int r = rows(S(st), q, read_project, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

static int sq_project_update(cd_store *st, const cd_store_project *p) {
    sqlite3_stmt *q = use(S(st), PROJECT_UPDATE);
    BIND_ARRAY(q, 1, p->name);
    sqlite3_bind_int64(q, 2, p->updated_at ? p->updated_at : now_ms());
    sqlite3_bind_int64(q, 3, p->id);
    bind_pin(q, 4, p->pin, sizeof p->pin);
    return run(S(st), q, true);
}

static int sq_project_delete(cd_store *st, int64_t id) {
    sqlite3_stmt *q = use(S(st), PROJECT_DELETE);
    sqlite3_bind_int64(q, 1, id);
    return run(S(st), q, true);
}

/* ---- Hosts ---- */

static void read_host(sqlite3_stmt *q, void *out) {
    cd_store_host *h = out;
    memset(h, 0, sizeof *h);
    h->id = sqlite3_column_int64(q, 0);
    COL_TEXT(q, 1, h->name);
    COL_TEXT(q, 2, h->address);
    COL_TEXT(q, 3, h->launcher);
    COL_TEXT(q, 4, h->ssh_target);
    h->ssh_port = sqlite3_column_int(q, 5);
    COL_TEXT(q, 6, h->ssh_key);
    COL_TEXT(q, 7, h->ssh_options);
    COL_TEXT(q, 8, h->command);
    COL_TEXT(q, 9, h->base_dir);
    h->port_min = sqlite3_column_int(q, 10);
    h->port_max = sqlite3_column_int(q, 11);
    h->max_instances = sqlite3_column_int(q, 12);
    COL_TEXT(q, 13, h->labels);
    h->disabled = sqlite3_column_int(q, 14) != 0;
    h->created_at = sqlite3_column_int64(q, 15);
}

/* The columns create and update share, ?1 to ?14. */
static void bind_host(sqlite3_stmt *q, const cd_store_host *h) {
    BIND_ARRAY(q, 1, h->name);
    BIND_ARRAY(q, 2, h->address);
    BIND_ARRAY(q, 3, h->launcher);
    BIND_ARRAY(q, 4, h->ssh_target);
    sqlite3_bind_int(q, 5, h->ssh_port);
    BIND_ARRAY(q, 6, h->ssh_key);
    BIND_ARRAY(q, 7, h->ssh_options);
    BIND_ARRAY(q, 8, h->command);
    BIND_ARRAY(q, 9, h->base_dir);
    sqlite3_bind_int(q, 10, h->port_min);
    sqlite3_bind_int(q, 11, h->port_max);
    sqlite3_bind_int(q, 12, h->max_instances);
    BIND_ARRAY(q, 13, h->labels);
    sqlite3_bind_int(q, 14, h->disabled ? 1 : 0);
}

static int sq_host_create(cd_store *st, cd_store_host *h) {
    sqlite3_stmt *q = use(S(st), HOST_CREATE);
    if (!h->created_at) h->created_at = now_ms();
    bind_host(q, h);
    sqlite3_bind_int64(q, 15, h->created_at);
    return insert(S(st), q, &h->id);
}

static int sq_host_get(cd_store *st, int64_t id, cd_store_host *out) {
    sqlite3_stmt *q = use(S(st), HOST_GET);
    sqlite3_bind_int64(q, 1, id);
    return one_row(S(st), q, read_host, out);
}

static int sq_host_list(cd_store *st, cd_store_host **out, size_t *n) {
    void *arr;
    int r = rows(S(st), use(S(st), HOST_LIST), read_host, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

static int sq_host_update(cd_store *st, const cd_store_host *h) {
    sqlite3_stmt *q = use(S(st), HOST_UPDATE);
    bind_host(q, h);
    sqlite3_bind_int64(q, 16, h->id);
    return run(S(st), q, true);
}

static int sq_host_delete(cd_store *st, int64_t id) {
    sqlite3_stmt *q = use(S(st), HOST_DELETE);
    sqlite3_bind_int64(q, 1, id);
    return run(S(st), q, true);
}

/* ---- Instances ---- */

static void read_instance(sqlite3_stmt *q, void *out) {
    cd_store_instance *i = out;
    memset(i, 0, sizeof *i);
    i->id = sqlite3_column_int64(q, 0);
    i->project_id = sqlite3_column_int64(q, 1);
    i->user_id = sqlite3_column_int64(q, 2);
    COL_TEXT(q, 3, i->host);
    COL_TEXT(q, 4, i->address);
    i->port = sqlite3_column_int(q, 5);
    i->pid = sqlite3_column_int(q, 6);
    COL_TEXT(q, 7, i->status);
    COL_TEXT(q, 8, i->reason);
    COL_TEXT(q, 9, i->base_dir);
    COL_TEXT(q, 10, i->log_path);
    i->started_at = sqlite3_column_int64(q, 11);
    i->last_seen_at = sqlite3_column_int64(q, 12);
    i->last_activity_at = sqlite3_column_int64(q, 13);
    i->crash_count = sqlite3_column_int(q, 14);
    COL_TEXT(q, 15, i->hub);
}

static int sq_instance_put(cd_store *st, cd_store_instance *i) {
    sqlite3_stmt *q = use(S(st), INSTANCE_PUT);
    sqlite3_bind_int64(q, 1, i->project_id);
    sqlite3_bind_int64(q, 2, i->user_id);
    BIND_ARRAY(q, 3, i->host);
    BIND_ARRAY(q, 4, i->address);
    sqlite3_bind_int(q, 5, i->port);
    sqlite3_bind_int(q, 6, i->pid);
    BIND_ARRAY(q, 7, i->status);
    BIND_ARRAY(q, 8, i->reason);
    BIND_ARRAY(q, 9, i->base_dir);
    BIND_ARRAY(q, 10, i->log_path);
    sqlite3_bind_int64(q, 11, i->started_at);
    sqlite3_bind_int64(q, 12, i->last_seen_at);
    sqlite3_bind_int64(q, 13, i->last_activity_at);
    sqlite3_bind_int(q, 14, i->crash_count);
    BIND_ARRAY(q, 15, i->hub);
    return insert(S(st), q, &i->id);
}

static int sq_instance_get(cd_store *st, int64_t id, cd_store_instance *out) {
    sqlite3_stmt *q = use(S(st), INSTANCE_GET);
    sqlite3_bind_int64(q, 1, id);
    return one_row(S(st), q, read_instance, out);
}

static int sq_instance_by_project(cd_store *st, int64_t project_id, cd_store_instance *out) {
    sqlite3_stmt *q = use(S(st), INSTANCE_BY_PROJECT);
    sqlite3_bind_int64(q, 1, project_id);
    return one_row(S(st), q, read_instance, out);
}

static int sq_instance_list(cd_store *st, cd_store_instance **out, size_t *n) {
    void *arr;
    int r = rows(S(st), use(S(st), INSTANCE_LIST), read_instance, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

/* ---- Failed logins ---- */

typedef struct {
    int *count;
    int64_t *last_at;
} failures_out;

static void read_failures(sqlite3_stmt *q, void *out) {
    failures_out *f = out;
    *f->count = sqlite3_column_int(q, 0);
    *f->last_at = sqlite3_column_int64(q, 1);
}

/* A name never seen has failed 0 times: not an error, the caller asks this of every login. */
static int sq_login_failures_get(cd_store *st, const char *name, int *count, int64_t *last_at) {
    sqlite3_stmt *q = use(S(st), FAILURES_GET);
    bind_str(q, 1, name);
    failures_out f = {count, last_at};
    int r = one_row(S(st), q, read_failures, &f);
    if (r != CD_STORE_NOT_FOUND) return r;
    S(st)->err[0] = '\0';
    *count = 0;
    *last_at = 0;
    return 0;
}

static int sq_login_failures_set(cd_store *st, const char *name, int count, int64_t last_at) {
    sqlite3_stmt *q = use(S(st), FAILURES_SET);
    bind_str(q, 1, name);
    sqlite3_bind_int(q, 2, count);
    sqlite3_bind_int64(q, 3, last_at);
    return run(S(st), q, false);
}

/* Every successful login clears; a name with nothing to clear is the usual case. */
static int sq_login_failures_clear(cd_store *st, const char *name) {
    sqlite3_stmt *q = use(S(st), FAILURES_CLEAR);
    bind_str(q, 1, name);
    return run(S(st), q, false);
}

/* ---- Audit ---- */

static void read_audit(sqlite3_stmt *q, void *out) {
    cd_store_audit *a = out;
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(q, 0);
    a->at = sqlite3_column_int64(q, 1);
    a->user_id = sqlite3_column_int64(q, 2);
    COL_TEXT(q, 3, a->username);
    COL_TEXT(q, 4, a->action);
    COL_TEXT(q, 5, a->target);
    COL_TEXT(q, 6, a->detail);
    COL_TEXT(q, 7, a->ip);
}

static int sq_audit_add(cd_store *st, cd_store_audit *a) {
    sqlite3_stmt *q = use(S(st), AUDIT_ADD);
    if (!a->at) a->at = now_ms();
    sqlite3_bind_int64(q, 1, a->at);
    sqlite3_bind_int64(q, 2, a->user_id);
    BIND_ARRAY(q, 3, a->username);
    BIND_ARRAY(q, 4, a->action);
    BIND_ARRAY(q, 5, a->target);
    BIND_ARRAY(q, 6, a->detail);
    BIND_ARRAY(q, 7, a->ip);
    return insert(S(st), q, &a->id);
}

static int sq_audit_list(cd_store *st, int64_t before_id, size_t limit, cd_store_audit **out, size_t *n) {
    sqlite3_stmt *q = use(S(st), AUDIT_LIST);
    sqlite3_bind_int64(q, 1, before_id > 0 ? before_id : INT64_MAX);
    sqlite3_bind_int64(q, 2, limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit);
    void *arr;
    int r = rows(S(st), q, read_audit, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

/* ---- The admission queue ---- */

static void read_prompt(sqlite3_stmt *q, void *out) {
    cd_store_prompt *p = out;
    memset(p, 0, sizeof *p);
    p->seq = sqlite3_column_int64(q, 0);
    COL_TEXT(q, 1, p->prompt_id);
    p->user_id = sqlite3_column_int64(q, 2);
    p->project_id = sqlite3_column_int64(q, 3);
    p->priority = sqlite3_column_int(q, 4);
    COL_TEXT(q, 5, p->state);
    COL_TEXT(q, 6, p->client_id);
    p->created_at = sqlite3_column_int64(q, 7);
    p->dispatched_at = sqlite3_column_int64(q, 8);
    p->finished_at = sqlite3_column_int64(q, 9);
    COL_TEXT(q, 10, p->reason);
    COL_TEXT(q, 11, p->hub);
}

static int sq_prompt_add(cd_store *st, cd_store_prompt *p, const char *body) {
    sqlite3_stmt *q = use(S(st), PROMPT_ADD);
    if (!p->created_at) p->created_at = now_ms();
    BIND_ARRAY(q, 1, p->prompt_id);
    sqlite3_bind_int64(q, 2, p->user_id);
    sqlite3_bind_int64(q, 3, p->project_id);
    sqlite3_bind_int(q, 4, p->priority);
    BIND_ARRAY(q, 5, p->state);
    BIND_ARRAY(q, 6, p->client_id);
    bind_str(q, 7, body);
    sqlite3_bind_int64(q, 8, p->created_at);
    return insert(S(st), q, &p->seq);
}

static int sq_prompt_get(cd_store *st, const char *prompt_id, cd_store_prompt *out) {
    sqlite3_stmt *q = use(S(st), PROMPT_GET);
    bind_str(q, 1, prompt_id);
    return one_row(S(st), q, read_prompt, out);
}

static void read_body(sqlite3_stmt *q, void *out) {
    const char *text = (const char *)sqlite3_column_text(q, 0);
    *(char **)out = strdup(text ? text : "");
}

static int sq_prompt_body(cd_store *st, const char *prompt_id, char **body) {
    sqlite3_stmt *q = use(S(st), PROMPT_BODY);
    bind_str(q, 1, prompt_id);
    *body = NULL;
    int r = one_row(S(st), q, read_body, body);
    if (r == 0 && !*body) {
        snprintf(S(st)->err, sizeof S(st)->err, "out of memory");
        return CD_STORE_ERROR;
    }
    return r;
}

static int sq_prompt_list_active(cd_store *st, cd_store_prompt **out, size_t *n) {
    sqlite3_stmt *q = use(S(st), PROMPT_ACTIVE);
    void *arr;
    int r = rows(S(st), q, read_prompt, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

static int sq_prompt_set_state(cd_store *st, const char *prompt_id, const char *state, const char *reason,
                               int64_t at) {
    sqlite3_stmt *q = use(S(st), PROMPT_STATE);
    bind_str(q, 1, prompt_id);
    bind_str(q, 2, state);
    bind_str(q, 3, reason ? reason : "");
    sqlite3_bind_int64(q, 4, at ? at : now_ms());
    return run(S(st), q, true);
}

/* Nothing changed: the prompt is in another state (CONFLICT) or does not exist. */
static int sq_prompt_claim(cd_store *st, const char *prompt_id, const char *from, const char *to, int64_t at) {
    sqlite3_stmt *q = use(S(st), PROMPT_CLAIM);
    bind_str(q, 1, prompt_id);
    bind_str(q, 2, from);
    bind_str(q, 3, to);
    sqlite3_bind_int64(q, 4, at ? at : now_ms());
    int r = run(S(st), q, true);
    if (r != CD_STORE_NOT_FOUND) return r;
    cd_store_prompt p;
    r = sq_prompt_get(st, prompt_id, &p);
    if (r != 0) return r;
    snprintf(S(st)->err, sizeof S(st)->err, "prompt %.128s is %s, not %.32s", prompt_id, p.state, from);
    return CD_STORE_CONFLICT;
}

/* ---- Group commit ---- */

/* Idempotent: begin in a batch and commit outside one do nothing. */
static int sq_batch_begin(cd_store *st) {
    sq_store *s = S(st);
    if (s->batch_open) return 0;
    /* NORMAL: the commit writes the WAL without waiting for the disk; sync does that after */
    if (exec(s->db, "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE", s->err, sizeof s->err) < 0) {
        sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
        return CD_STORE_ERROR;
    }
    s->batch_open = true;
    return 0;
}

static int sq_batch_commit(cd_store *st) {
    sq_store *s = S(st);
    if (!s->batch_open) return 0;
    s->batch_open = false;
    int rc = exec(s->db, "COMMIT", s->err, sizeof s->err);
    if (rc < 0) {
        char keep[sizeof s->err];
        snprintf(keep, sizeof keep, "%s", s->err);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        snprintf(s->err, sizeof s->err, "%s", keep);
    }
    sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    return rc < 0 ? CD_STORE_ERROR : 0;
}

static void sq_batch_rollback(cd_store *st) {
    if (!S(st)->batch_open) return;
    S(st)->batch_open = false;
    sqlite3_exec(S(st)->db, "ROLLBACK; PRAGMA synchronous = FULL", NULL, NULL, NULL);
}

/* fdatasync of the write-ahead log through a descriptor of our own: a commit is appended there,
 * so this makes every commit before it durable (checkpoints sync the log first themselves). */
static int sq_sync(cd_store *st) {
    int fd = open(S(st)->wal_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -errno; /* no log: every commit is checkpointed */
    int rc = fdatasync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static void batch_end(sq_store *s) {
    if (sq_batch_commit(&s->base) < 0) cd_error("store: cannot commit the queue's changes: %s", s->err);
}

/* ---- The table ---- */

static void sq_close(cd_store *st) {
    sq_store *s = S(st);
    for (int i = 0; i < N_STMT; i++) sqlite3_finalize(s->q[i]);
    sqlite3_close(s->db);
    free(s->wal_path);
    free(s);
}

static const char *sq_error(const cd_store *st) {
    return ((const sq_store *)st)->err;
}

static const cd_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .error = sq_error,
    .user_create = sq_user_create,
    .user_get = sq_user_get,
    .user_by_name = sq_user_by_name,
    .user_list = sq_user_list,
    .user_update = sq_user_update,
    .user_delete = sq_user_delete,
    .user_count = sq_user_count,
    .token_create = sq_token_create,
    .token_get = sq_token_get,
    .token_delete = sq_token_delete,
    .token_delete_user = sq_token_delete_user,
    .token_prune = sq_token_prune,
    .project_create = sq_project_create,
    .project_get = sq_project_get,
    .project_list = sq_project_list,
    .project_update = sq_project_update,
    .project_delete = sq_project_delete,
    .host_create = sq_host_create,
    .host_get = sq_host_get,
    .host_list = sq_host_list,
    .host_update = sq_host_update,
    .host_delete = sq_host_delete,
    .instance_put = sq_instance_put,
    .instance_get = sq_instance_get,
    .instance_by_project = sq_instance_by_project,
    .instance_list = sq_instance_list,
    .login_failures_get = sq_login_failures_get,
    .login_failures_set = sq_login_failures_set,
    .login_failures_clear = sq_login_failures_clear,
    .audit_add = sq_audit_add,
    .audit_list = sq_audit_list,
    .prompt_add = sq_prompt_add,
    .prompt_get = sq_prompt_get,
    .prompt_body = sq_prompt_body,
    .prompt_list_active = sq_prompt_list_active,
    .prompt_set_state = sq_prompt_set_state,
    .prompt_claim = sq_prompt_claim,
    .batch_begin = sq_batch_begin,
    .batch_commit = sq_batch_commit,
    .batch_rollback = sq_batch_rollback,
    .sync = sq_sync,
};

int cd_store_sqlite_schema_version(void) {
    return cd_store_schema_version();
}

int cd_store_sqlite_open(const char *path, cd_store **out, char *err, size_t errlen) {
    *out = NULL;
    sq_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return CD_STORE_ERROR;
    }
    s->base.ops = &sqlite_ops;
    size_t n = strlen(path) + sizeof "-wal";
    if (!(s->wal_path = malloc(n))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return CD_STORE_ERROR;
    }
    snprintf(s->wal_path, n, "%s-wal", path);
    if (open_db(s, path, err, errlen) || migrate(s->db, err, errlen) || set_wal(s->db, err, errlen) ||
        prepare_all(s, err, errlen)) {
        sq_close(&s->base);
        return CD_STORE_ERROR;
    }
    *out = &s->base;
    return 0;
}
