/* The hub's store on PostgreSQL (store.h), through libpq: one connection owned by the loop
 * thread, the schema of store_schema.c brought up to date at open, and every operation a
 * statement prepared once per connection. It behaves as store_sqlite.c does, operation for
 * operation (tests/unit/test_hub_store.c runs the same cases on both); where the two databases
 * differ, the comments below say how this file makes them agree.
 *
 * Values always travel as parameters of prepared statements, never inside SQL text. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "hub/store.h"
#include "hub/store_schema.h"
#include "hub/store_statements.h"

/* The same statements as store_sqlite.c's, in PostgreSQL's spelling ($n), with a type on a
 * parameter used where the server could not infer one. Every order is by an integer, and text
 * equality is byte-wise under every deterministic collation, so "Ann" and "ann" stay two names
 * as in SQLite. */
/* Statements only this backend has: several hubs on one database (store.h). */
enum {
    HUB_BEAT = N_STMT, HUB_LIST, Q_TURN, Q_DISPATCH, Q_TAKE_OVER, INSTANCE_TAKE_OVER, INSTANCE_TOUCH, N_PG_STMT
};

static const char *const stmt_sql[N_PG_STMT] = {
    [USER_CREATE] = "INSERT INTO users (name, password_hash, role, disabled, created_at)"
                    " VALUES ($1, $2, $3, $4, $5) RETURNING id",
    [USER_GET] = "SELECT " USER_COLS " FROM users WHERE id = $1",
    [USER_BY_NAME] = "SELECT " USER_COLS " FROM users WHERE name = $1",
    [USER_LIST] = "SELECT " USER_COLS " FROM users ORDER BY id",
    [USER_UPDATE] = "UPDATE users SET name = $1, password_hash = $2, role = $3, disabled = $4 WHERE id = $5",
    [USER_DELETE] = "DELETE FROM users WHERE id = $1",
    [USER_COUNT] = "SELECT count(*) FROM users",
    [TOKEN_CREATE] = "INSERT INTO tokens (" TOKEN_COLS ") VALUES ($1, $2, $3, $4, $5, $6)",
    [TOKEN_GET] = "SELECT " TOKEN_COLS " FROM tokens WHERE hash = $1 AND (expires_at = 0 OR expires_at > $2)",
    [TOKEN_DELETE] = "DELETE FROM tokens WHERE hash = $1",
    [TOKEN_DELETE_USER] = "DELETE FROM tokens WHERE user_id = $1 AND kind = $2",
    [TOKEN_PRUNE] = "DELETE FROM tokens WHERE expires_at > 0 AND expires_at <= $1",
    [PROJECT_CREATE] = "INSERT INTO projects (owner_id, name, created_at, updated_at, pin)"
                       " VALUES ($1, $2, $3, $4, $5) RETURNING id",
    [PROJECT_GET] = "SELECT " PROJECT_COLS " FROM projects WHERE id = $1",
    [PROJECT_LIST_ALL] = "SELECT " PROJECT_COLS " FROM projects ORDER BY id",
    [PROJECT_LIST_OWNER] = "SELECT " PROJECT_COLS " FROM projects WHERE owner_id = $1 ORDER BY id",
    [PROJECT_UPDATE] = "UPDATE projects SET name = $1, updated_at = $2, pin = $4 WHERE id = $3",
    [PROJECT_DELETE] = "DELETE FROM projects WHERE id = $1",
    [HOST_CREATE] = "INSERT INTO hosts (name, address, launcher, ssh_target, ssh_port, ssh_key, ssh_options, command,"
                    " base_dir, port_min, port_max, max_instances, labels, disabled, created_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
    [HOST_GET] = "SELECT " HOST_COLS " FROM hosts WHERE id = $1",
    [HOST_LIST] = "SELECT " HOST_COLS " FROM hosts ORDER BY id",
    [HOST_UPDATE] = "UPDATE hosts SET name = $1, address = $2, launcher = $3, ssh_target = $4, ssh_port = $5,"
                    " ssh_key = $6, ssh_options = $7, command = $8, base_dir = $9, port_min = $10, port_max = $11,"
                    " max_instances = $12, labels = $13, disabled = $14 WHERE id = $15",
    [HOST_DELETE] = "DELETE FROM hosts WHERE id = $1",
    [INSTANCE_PUT] =
        "INSERT INTO instances (project_id, user_id, host, address, port, pid, status, reason, base_dir,"
        " log_path, started_at, last_seen_at, last_activity_at, crash_count, hub)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        " ON CONFLICT (project_id) DO UPDATE SET user_id = excluded.user_id, host = excluded.host,"
        " address = excluded.address, port = excluded.port, pid = excluded.pid, status = excluded.status,"
        " reason = excluded.reason, base_dir = excluded.base_dir, log_path = excluded.log_path,"
        " started_at = excluded.started_at, last_seen_at = excluded.last_seen_at,"
        " last_activity_at = GREATEST(instances.last_activity_at, excluded.last_activity_at), crash_count = excluded.crash_count, hub = excluded.hub"
        /* several hubs: a record another hub has taken over (its process alive) is not this one's to write */
        " WHERE instances.hub = excluded.hub OR instances.hub = '' OR instances.pid = 0"
        " RETURNING id",
    [INSTANCE_GET] = "SELECT " INSTANCE_COLS " FROM instances WHERE id = $1",
    [INSTANCE_BY_PROJECT] = "SELECT " INSTANCE_COLS " FROM instances WHERE project_id = $1",
    [INSTANCE_LIST] = "SELECT " INSTANCE_COLS " FROM instances ORDER BY id",
    [FAILURES_GET] = "SELECT count, last_at FROM login_failures WHERE name = $1",
    [FAILURES_SET] = "INSERT INTO login_failures (name, count, last_at) VALUES ($1, $2, $3)"
                     " ON CONFLICT (name) DO UPDATE SET count = excluded.count, last_at = excluded.last_at",
    [FAILURES_CLEAR] = "DELETE FROM login_failures WHERE name = $1",
    [AUDIT_ADD] = "INSERT INTO audit (at, user_id, username, action, target, detail, ip)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    [AUDIT_LIST] = "SELECT " AUDIT_COLS " FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
    /* DO NOTHING rather than an error: in PostgreSQL a failed statement aborts its whole
     * transaction, and inside a group commit that would take the batch's other prompts with it,
     * where SQLite drops only the failed statement. No row back means the prompt_id is taken. */
    [PROMPT_ADD] = "INSERT INTO prompts (prompt_id, user_id, project_id, priority, state, client_id, body, created_at)"
                   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (prompt_id) DO NOTHING RETURNING seq",
    [PROMPT_GET] = "SELECT " PROMPT_COLS " FROM prompts WHERE prompt_id = $1",
    [PROMPT_BODY] = "SELECT body FROM prompts WHERE prompt_id = $1",
    [PROMPT_ACTIVE] = "SELECT " PROMPT_COLS " FROM prompts WHERE state IN ('queued', 'dispatching', 'running')"
                      " ORDER BY seq",
    [PROMPT_STATE] = "UPDATE prompts SET state = $2::text, reason = $3::text,"
                     " dispatched_at = CASE WHEN $2::text = 'queued' THEN 0"
                     " WHEN $2::text IN ('dispatching', 'running') AND dispatched_at = 0"
                     " THEN $4::bigint ELSE dispatched_at END,"
                     " finished_at = CASE WHEN $2::text IN ('done', 'failed', 'cancelled') THEN $4::bigint"
                     " ELSE finished_at END,"
                     " hub = CASE WHEN $2::text = 'queued' THEN '' ELSE hub END"
                     " WHERE prompt_id = $1::text"
                     /* several hubs: a prompt out for another hub (taken over from this one while
                      * it was silent) is that hub's to move; $5 is this hub's id ('' : any) */
                     " AND ($5::text = '' OR hub = '' OR hub = $5::text)",
    /* The row is locked before it is changed, and a row another transaction holds (another hub
     * claiming it) is skipped rather than waited for: this hub's loop never blocks on another. */
    [PROMPT_CLAIM] = "UPDATE prompts SET state = $3::text, reason = '',"
                     " dispatched_at = CASE WHEN $3::text = 'queued' THEN 0"
                     " WHEN $3::text IN ('dispatching', 'running') AND dispatched_at = 0"
                     " THEN $4::bigint ELSE dispatched_at END,"
                     " finished_at = CASE WHEN $3::text IN ('done', 'failed', 'cancelled') THEN $4::bigint"
                     " ELSE finished_at END"
                     " WHERE seq = (SELECT seq FROM prompts WHERE prompt_id = $1::text AND state = $2::text"
                     " FOR UPDATE SKIP LOCKED)",
    [HUB_BEAT] = "INSERT INTO hubs (id, started_at, last_seen_at) VALUES ($1, $2, $3)"
                 " ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, last_seen_at = excluded.last_seen_at",
    [HUB_LIST] = "SELECT id, started_at, last_seen_at FROM hubs ORDER BY id",
    [Q_TURN] = "SELECT last_user FROM queue_turn WHERE id = 1",
    /* migration 5's function: the whole dispatch in one round trip, committed with it */
    [Q_DISPATCH] = "SELECT * FROM comfyd_dispatch($1, $2, $3, $4)",
    [Q_TAKE_OVER] = "UPDATE prompts SET hub = $2 WHERE hub = $1 AND state IN ('dispatching', 'running')"
                    " RETURNING " PROMPT_COLS,
    [INSTANCE_TAKE_OVER] = "UPDATE instances SET hub = $3 WHERE project_id = $1 AND hub = $2",
    [INSTANCE_TOUCH] = "UPDATE instances SET last_activity_at = $2 WHERE project_id = $1 AND last_activity_at < $2",
};

typedef struct {
    cd_store base; /* first, so that a cd_store * is one of these */
    PGconn *conn;
    char err[512];
    bool batch_open; /* a group commit's transaction is under way */
    char hub[65];    /* this hub's id, the payload of its notifications ("" : none sent) */
    bool queue_changed; /* the open batch changed the queue: NOTIFY before its COMMIT */
} pg_store;

static pg_store *S(cd_store *st) {
    return (pg_store *)st;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libpq's messages end with a newline; ours do not. */
static void set_err(char *err, size_t errlen, const char *what, const char *msg) {
    snprintf(err, errlen, "%s%s%s", what ? what : "", what ? ": " : "", msg && *msg ? msg : "unknown error");
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = '\0';
}

/* ---- Parameters ---- */

#define MAX_PARAMS 16

/* A statement's parameters as text, the format every parameter is sent in. A string that must
 * be changed to be sent (no terminator within its array, bytes that are not UTF-8) is copied. */
typedef struct {
    const char *v[MAX_PARAMS];
    char num[MAX_PARAMS][24];
    char *owned[MAX_PARAMS];
    int n;
    bool oom;
} params;

static void p_free(params *p) {
    for (int i = 0; i < p->n; i++) free(p->owned[i]);
}

static void p_int(params *p, int64_t v) {
    snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

/* The length of the valid UTF-8 sequence at s (of at most len bytes), or 0 when there is none:
 * no overlong forms, no surrogates, nothing past U+10FFFF, as PostgreSQL checks. */
static size_t utf8_seq(const unsigned char *s, size_t len) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!n || n > len) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && s[1] < 0xa0) return 0; /* overlong */
    if (c == 0xed && s[1] > 0x9f) return 0; /* surrogate */
    if (c == 0xf0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xf4 && s[1] > 0x8f) return 0; /* past U+10FFFF */
    return n;
}

static bool utf8_valid(const char *s, size_t len) {
    for (size_t i = 0, k; i < len; i += k)
        if (!(k = utf8_seq((const unsigned char *)s + i, len - i))) return false;
    return true;
}

/* SQLite keeps any bytes in TEXT; a UTF-8 database refuses a value that is not UTF-8 and the
 * whole write with it. Such bytes reach the store in practice (a log line cut to fit `reason`
 * in the middle of a character), so each byte that starts no valid character becomes '?': the
 * write succeeds, the length stays, and valid text is untouched. */
static void utf8_repair(char *s, size_t len) {
    for (size_t i = 0, k; i < len; i += k)
        if (!(k = utf8_seq((const unsigned char *)s + i, len - i))) {
            s[i] = '?';
            k = 1;
        }
}

/* At most cap bytes of s (a record's array may be full with no terminator). */
static void p_text_n(params *p, const char *s, size_t cap) {
    size_t len = strnlen(s, cap);
    int i = p->n++;
    p->owned[i] = NULL;
    if (len < cap && utf8_valid(s, len)) {
        p->v[i] = s;
        return;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        p->oom = true;
        p->v[i] = "";
        return;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    utf8_repair(copy, len);
    p->owned[i] = copy;
    p->v[i] = copy;
}
#define P_ARRAY(p, field) p_text_n((p), (field), sizeof(field))

static void p_text(params *p, const char *s) {
    p_text_n(p, s, SIZE_MAX);
}

/* SQL NULL: libpq sends a parameter whose value pointer is NULL as one. */
static void p_null(params *p) {
    int i = p->n++;
    p->owned[i] = NULL;
    p->v[i] = NULL;
}

/* ---- Results ---- */

typedef void (*row_reader)(const PGresult *r, int row, void *out);

static int64_t col_i64(const PGresult *r, int row, int col) {
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int col_int(const PGresult *r, int row, int col) {
    return (int)strtol(PQgetvalue(r, row, col), NULL, 10);
}

/* Cut to fit as SQLite's backend does: a longer value in the database is never an overflow. */
static void col_text(const PGresult *r, int row, int col, char *dst, size_t cap) {
    snprintf(dst, cap, "%s", PQgetvalue(r, row, col));
}
#define COL_TEXT(r, row, col, field) col_text((r), (row), (col), (field), sizeof(field))

/* ---- Connection, statements and migrations ---- */

static void log_notice(void *arg, const char *message) {
    (void)arg;
    cd_debug("store: postgres: %s", message);
}

/* A statement with no parameters and no rows wanted (transaction control, migrations). */
static int exec_simple(PGconn *conn, const char *sql, char *err, size_t errlen) {
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : CD_STORE_ERROR;
    if (rc) set_err(err, errlen, NULL, r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
    PQclear(r);
    return rc;
}

static int prepare_all(pg_store *s, char *err, size_t errlen) {
    for (int i = 0; i < N_PG_STMT; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        PGresult *r = PQprepare(s->conn, name, stmt_sql[i], 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) set_err(err, errlen, stmt_sql[i], r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
        PQclear(r);
        if (!ok) return CD_STORE_ERROR;
    }
    return 0;
}

/* Acknowledged writes must survive a crash of the server, so a commit waits for its WAL flush.
 * That is the server's default; a server set to synchronous_commit = off is overruled for this
 * session, and a stronger setting (remote_apply, for replicas) is kept. */
static int session_settings(pg_store *s, char *err, size_t errlen) {
    PGresult *r = PQexec(s->conn, "SELECT current_setting('synchronous_commit')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        set_err(err, errlen, "reading synchronous_commit", PQresultErrorMessage(r));
        PQclear(r);
        return CD_STORE_ERROR;
    }
    bool off = !strcmp(PQgetvalue(r, 0, 0), "off");
    PQclear(r);
    if (off && exec_simple(s->conn, "SET synchronous_commit = on", err, errlen)) return CD_STORE_ERROR;
    /* Several hubs: a hub stopped or stuck with a group commit open would hold its rows' locks
     * (its prompts) and keep the others, which take them over, waiting forever. A batch is
     * committed within a loop turn or two, so one idle in its transaction for 5 s is stuck: the
     * server ends its session (the batch is lost; its prompts were not answered yet, and get a
     * 500; the hub connects again). */
    return exec_simple(s->conn, "SET idle_in_transaction_session_timeout = '5s'", err, errlen);
}

/* Taken for the length of each migration's transaction, so that of two hubs opening one new
 * database at once, one runs the migration and the other then finds it done. Advisory locks
 * are per database: hubs on other databases of the server do not wait. ("comfyd" + 1) */
#define MIGRATION_LOCK_KEY "7164207397838061569"

/* The first column of the one row sql gives, as text, or NULL with a message. */
static char *query_value(PGconn *conn, const char *sql, char *err, size_t errlen) {
    PGresult *r = PQexec(conn, sql);
    char *value = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) value = strdup(PQgetvalue(r, 0, 0));
    if (!value) set_err(err, errlen, sql, PQresultStatus(r) == PGRES_TUPLES_OK ? "no row" : PQresultErrorMessage(r));
    PQclear(r);
    return value;
}

/* The table is looked for before it is created so that, once the schema is there, a hub whose
 * role may only read and write rows (no CREATE in the schema) opens the store too. */
static int schema_version_read(PGconn *conn, int *version, char *err, size_t errlen) {
    char *exists = query_value(conn, "SELECT to_regclass('schema_version') IS NOT NULL", err, errlen);
    if (!exists) return CD_STORE_ERROR;
    bool create = strcmp(exists, "t") != 0;
    free(exists);
    if (create && exec_simple(conn,
                              "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                              "INSERT INTO schema_version (version) VALUES (0)",
                              err, errlen))
        return CD_STORE_ERROR;
    char *v = query_value(conn, "SELECT version FROM schema_version", err, errlen);
    if (!v) return CD_STORE_ERROR;
    *version = atoi(v);
    free(v);
    return 0;
}

/* Runs the next migration if there is one, with the version bump, in one transaction. */
static int migrate_step(PGconn *conn, bool *done, char *err, size_t errlen) {
    int version = 0, n = cd_store_schema_version();
    if (exec_simple(conn, "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")", err, errlen) ||
        schema_version_read(conn, &version, err, errlen))
        goto rollback;
    if (version > n) {
        snprintf(err, errlen, "store schema version %d is newer than this comfyd knows (%d)", version, n);
        goto rollback;
    }
    *done = version == n;
    if (!*done) {
        char *sql = cd_store_schema_migration(version, CD_DIALECT_POSTGRES);
        if (!sql) {
            snprintf(err, errlen, "out of memory");
            goto rollback;
        }
        int rc = *sql ? exec_simple(conn, sql, err, errlen) : 0; /* empty in this dialect: PQexec refuses "" */
        free(sql);
        if (rc || exec_simple(conn, "UPDATE schema_version SET version = version + 1", err, errlen)) goto rollback;
    }
    if (exec_simple(conn, "COMMIT", err, errlen)) goto rollback;
    return 0;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
    return CD_STORE_ERROR;
}

static int migrate(PGconn *conn, char *err, size_t errlen) {
    bool done = false;
    while (!done)
        if (migrate_step(conn, &done, err, errlen)) return CD_STORE_ERROR;
    return 0;
}

/* A connection the server dropped (a restart, an administrator's pg_terminate_backend) is made
 * again before the next operation, with its statements; the operation that saw it drop failed.
 * Not inside a group commit: its writes went with the connection, and its commit must fail. */
static int reconnect_if_lost(pg_store *s) {
    if (PQstatus(s->conn) != CONNECTION_BAD || s->batch_open) return 0;
    cd_warn("store: the connection to PostgreSQL was lost; connecting again");
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        set_err(s->err, sizeof s->err, "connecting to PostgreSQL again", PQerrorMessage(s->conn));
        return CD_STORE_ERROR;
    }
    if (session_settings(s, s->err, sizeof s->err) || prepare_all(s, s->err, sizeof s->err)) return CD_STORE_ERROR;
    return 0;
}

/* ---- Running statements ---- */

static void batch_end(pg_store *s);

/* As in store_sqlite.c: writes answered for at once commit an open group commit first and then
 * commit on their own; the admission queue's writes join the group commit. */
static bool commits_alone(int which) {
    switch (which) {
    case USER_CREATE: case USER_UPDATE: case USER_DELETE:
    case TOKEN_CREATE: case TOKEN_DELETE: case TOKEN_DELETE_USER: case TOKEN_PRUNE:
    case PROJECT_CREATE: case PROJECT_UPDATE: case PROJECT_DELETE:
    case HOST_CREATE: case HOST_UPDATE: case HOST_DELETE:
    case INSTANCE_PUT: case FAILURES_SET: case FAILURES_CLEAR: case AUDIT_ADD: case HUB_BEAT:
    case INSTANCE_TAKE_OVER: case INSTANCE_TOUCH:
        return true;
    default:
        return false;
    }
}

static int fail_result(pg_store *s, const PGresult *r) {
    set_err(s->err, sizeof s->err, NULL, r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && !strcmp(state, "23505")) return CD_STORE_CONFLICT;  /* unique_violation */
    if (state && !strcmp(state, "23503")) return CD_STORE_NOT_FOUND; /* the user or project it names */
    return CD_STORE_ERROR;
}

static int not_found(pg_store *s) {
    snprintf(s->err, sizeof s->err, "not found");
    return CD_STORE_NOT_FOUND;
}

/* Runs statement `which` with p (which it frees). Returns its result, or NULL with the error's
 * code in *rc; the previous operation's message is forgotten. */
static PGresult *exec_stmt(pg_store *s, int which, params *p, int *rc) {
    if (s->batch_open && commits_alone(which)) batch_end(s);
    s->err[0] = '\0';
    *rc = 0;
    if (p->oom) {
        p_free(p);
        snprintf(s->err, sizeof s->err, "out of memory");
        *rc = CD_STORE_ERROR;
        return NULL;
    }
    if (reconnect_if_lost(s)) {
        p_free(p);
        *rc = CD_STORE_ERROR;
        return NULL;
    }
    char name[16];
    snprintf(name, sizeof name, "s%d", which);
    PGresult *r = PQexecPrepared(s->conn, name, p->n, p->v, NULL, NULL, 0);
    p_free(p);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    *rc = fail_result(s, r);
    PQclear(r);
    return NULL;
}

/* A statement without rows; NOT_FOUND if it was to change a row and changed none. */
static int run(pg_store *s, int which, params *p, bool must_change) {
    int rc;
    PGresult *r = exec_stmt(s, which, p, &rc);
    if (!r) return rc;
    if (must_change && !strcmp(PQcmdTuples(r), "0")) rc = not_found(s);
    PQclear(r);
    return rc;
}

/* An insert RETURNING its id; no row back is what `none` says (an upsert that did nothing). */
static int insert(pg_store *s, int which, params *p, int64_t *id, int none) {
    int rc;
    PGresult *r = exec_stmt(s, which, p, &rc);
    if (!r) return rc;
    if (PQntuples(r) == 1) {
        *id = col_i64(r, 0, 0);
    } else {
        rc = none;
        snprintf(s->err, sizeof s->err, "%s", none == CD_STORE_CONFLICT ? "taken" : "the insert returned no row");
    }
    PQclear(r);
    return rc;
}

static int one_row(pg_store *s, int which, params *p, row_reader read, void *out) {
    int rc;
    PGresult *r = exec_stmt(s, which, p, &rc);
    if (!r) return rc;
    if (PQntuples(r) > 0) read(r, 0, out);
    else rc = not_found(s);
    PQclear(r);
    return rc;
}

/* Every row, in a malloc'd array (NULL when there is none, as SQLite's backend gives). */
static int rows(pg_store *s, int which, params *p, row_reader read, size_t size, void **out, size_t *n) {
    int rc;
    *out = NULL;
    *n = 0;
    PGresult *r = exec_stmt(s, which, p, &rc);
    if (!r) return rc;
    int count = PQntuples(r);
    char *arr = count ? calloc((size_t)count, size) : NULL;
    if (count && !arr) {
        PQclear(r);
        snprintf(s->err, sizeof s->err, "out of memory");
        return CD_STORE_ERROR;
    }
    for (int i = 0; i < count; i++) read(r, i, arr + (size_t)i * size);
    PQclear(r);
    *out = arr;
    *n = (size_t)count;
    return 0;
}

/* ---- Users ---- */

static void read_user(const PGresult *r, int row, void *out) {
    cd_store_user *u = out;
    memset(u, 0, sizeof *u);
    u->id = col_i64(r, row, 0);
    COL_TEXT(r, row, 1, u->name);
    COL_TEXT(r, row, 2, u->password_hash);
    /* The CHECK constraint keeps anything else out; student would be the least it could do. */
    if (cd_role_parse(PQgetvalue(r, row, 3), &u->role)) u->role = CD_ROLE_STUDENT;
    u->disabled = col_int(r, row, 4) != 0;
    u->created_at = col_i64(r, row, 5);
}

/* $1..$4, shared by create and update. */
static void p_user(params *p, const cd_store_user *u) {
    P_ARRAY(p, u->name);
    P_ARRAY(p, u->password_hash);
    p_text(p, cd_role_name(u->role));
    p_int(p, u->disabled ? 1 : 0);
}

static int pg_user_create(cd_store *st, cd_store_user *u) {
    params p = {0};
    if (!u->created_at) u->created_at = now_ms();
    p_user(&p, u);
    p_int(&p, u->created_at);
    return insert(S(st), USER_CREATE, &p, &u->id, CD_STORE_ERROR);
}

static int pg_user_get(cd_store *st, int64_t id, cd_store_user *out) {
    params p = {0};
    p_int(&p, id);
    return one_row(S(st), USER_GET, &p, read_user, out);
}

static int pg_user_by_name(cd_store *st, const char *name, cd_store_user *out) {
    params p = {0};
    p_text(&p, name);
    return one_row(S(st), USER_BY_NAME, &p, read_user, out);
}

static int pg_user_list(cd_store *st, cd_store_user **out, size_t *n) {
    params p = {0};
    void *arr;
    int r = rows(S(st), USER_LIST, &p, read_user, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

static int pg_user_update(cd_store *st, const cd_store_user *u) {
    params p = {0};
    p_user(&p, u);
    p_int(&p, u->id);
    return run(S(st), USER_UPDATE, &p, true);
}

/* Tokens, projects and (through projects) instance records go by ON DELETE CASCADE, in this
 * one statement's transaction. */
static int pg_user_delete(cd_store *st, int64_t id) {
    params p = {0};
    p_int(&p, id);
    return run(S(st), USER_DELETE, &p, true);
}

static void read_count(const PGresult *r, int row, void *out) {
    *(int64_t *)out = col_i64(r, row, 0);
}

static int pg_user_count(cd_store *st, int64_t *n) {
    params p = {0};
    return one_row(S(st), USER_COUNT, &p, read_count, n);
}

/* ---- Tokens ---- */

static const char *kind_name(cd_token_kind kind) {
    return kind == CD_TOKEN_API ? "api" : "session";
}

static void read_token(const PGresult *r, int row, void *out) {
    cd_store_token *t = out;
    memset(t, 0, sizeof *t);
    COL_TEXT(r, row, 0, t->hash);
    t->user_id = col_i64(r, row, 1);
    t->kind = !strcmp(PQgetvalue(r, row, 2), "api") ? CD_TOKEN_API : CD_TOKEN_SESSION;
    COL_TEXT(r, row, 3, t->name);
    t->created_at = col_i64(r, row, 4);
    t->expires_at = col_i64(r, row, 5);
}

static int pg_token_create(cd_store *st, const cd_store_token *t) {
    params p = {0};
    P_ARRAY(&p, t->hash);
    p_int(&p, t->user_id);
    p_text(&p, kind_name(t->kind));
    P_ARRAY(&p, t->name);
    p_int(&p, t->created_at ? t->created_at : now_ms());
    p_int(&p, t->expires_at);
    return run(S(st), TOKEN_CREATE, &p, false);
}

static int pg_token_get(cd_store *st, const char *hash, int64_t now, cd_store_token *out) {
    params p = {0};
    p_text(&p, hash);
    p_int(&p, now);
    return one_row(S(st), TOKEN_GET, &p, read_token, out);
}

static int pg_token_delete(cd_store *st, const char *hash) {
    params p = {0};
    p_text(&p, hash);
    return run(S(st), TOKEN_DELETE, &p, true);
}

/* Having nothing to remove is not an error for the two bulk removals. */
static int pg_token_delete_user(cd_store *st, int64_t user_id, cd_token_kind kind) {
    params p = {0};
    p_int(&p, user_id);
    p_text(&p, kind_name(kind));
    return run(S(st), TOKEN_DELETE_USER, &p, false);
}

static int pg_token_prune(cd_store *st, int64_t now) {
    params p = {0};
    p_int(&p, now);
    return run(S(st), TOKEN_PRUNE, &p, false);
}

/* ---- Projects ---- */

static void read_project(const PGresult *r, int row, void *out) {
    cd_store_project *pr = out;
    memset(pr, 0, sizeof *pr);
    pr->id = col_i64(r, row, 0);
    pr->owner_id = col_i64(r, row, 1);
    COL_TEXT(r, row, 2, pr->name);
    pr->created_at = col_i64(r, row, 3);
    pr->updated_at = col_i64(r, row, 4);
    COL_TEXT(r, row, 5, pr->pin); /* NULL reads as "" */
}

/* "" is stored as NULL: no pin, as in store_sqlite.c. */
static void p_pin(params *p, const char *pin, size_t cap) {
    if (pin[0]) p_text_n(p, pin, cap);
    else p_null(p);
}

static int pg_project_create(cd_store *st, cd_store_project *pr) {
    params p = {0};
    if (!pr->created_at) pr->created_at = now_ms();
    if (!pr->updated_at) pr->updated_at = pr->created_at;
    p_int(&p, pr->owner_id);
    P_ARRAY(&p, pr->name);
    p_int(&p, pr->created_at);
    p_int(&p, pr->updated_at);
    p_pin(&p, pr->pin, sizeof pr->pin);
    return insert(S(st), PROJECT_CREATE, &p, &pr->id, CD_STORE_ERROR);
}

static int pg_project_get(cd_store *st, int64_t id, cd_store_project *out) {
    params p = {0};
    p_int(&p, id);
    return one_row(S(st), PROJECT_GET, &p, read_project, out);
}

/* Two statements rather than "owner_id = $1 OR $1 = 0", which would keep the index unused. */
static int pg_project_list(cd_store *st, int64_t owner_id, cd_store_project **out, size_t *n) {
    params p = {0};
    if (owner_id) p_int(&p, owner_id);
    void *arr;
    int r = rows(S(st), owner_id ? PROJECT_LIST_OWNER : PROJECT_LIST_ALL, &p, read_project, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

static int pg_project_update(cd_store *st, const cd_store_project *pr) {
    params p = {0};
    P_ARRAY(&p, pr->name);
    p_int(&p, pr->updated_at ? pr->updated_at : now_ms());
    p_int(&p, pr->id);
    p_pin(&p, pr->pin, sizeof pr->pin);
    return run(S(st), PROJECT_UPDATE, &p, true);
}

static int pg_project_delete(cd_store *st, int64_t id) {
    params p = {0};
    p_int(&p, id);
    return run(S(st), PROJECT_DELETE, &p, true);
}

/* ---- Hosts ---- */

static void read_host(const PGresult *r, int row, void *out) {
    cd_store_host *h = out;
    memset(h, 0, sizeof *h);
    h->id = col_i64(r, row, 0);
    COL_TEXT(r, row, 1, h->name);
    COL_TEXT(r, row, 2, h->address);
    COL_TEXT(r, row, 3, h->launcher);
    COL_TEXT(r, row, 4, h->ssh_target);
    h->ssh_port = col_int(r, row, 5);
    COL_TEXT(r, row, 6, h->ssh_key);
    COL_TEXT(r, row, 7, h->ssh_options);
    COL_TEXT(r, row, 8, h->command);
    COL_TEXT(r, row, 9, h->base_dir);
    h->port_min = col_int(r, row, 10);
    h->port_max = col_int(r, row, 11);
    h->max_instances = col_int(r, row, 12);
    COL_TEXT(r, row, 13, h->labels);
    h->disabled = col_int(r, row, 14) != 0;
    h->created_at = col_i64(r, row, 15);
}

/* $1..$14, shared by create and update. */
static void p_host(params *p, const cd_store_host *h) {
    P_ARRAY(p, h->name);
    P_ARRAY(p, h->address);
    P_ARRAY(p, h->launcher);
    P_ARRAY(p, h->ssh_target);
    p_int(p, h->ssh_port);
    P_ARRAY(p, h->ssh_key);
    P_ARRAY(p, h->ssh_options);
    P_ARRAY(p, h->command);
    P_ARRAY(p, h->base_dir);
    p_int(p, h->port_min);
    p_int(p, h->port_max);
    p_int(p, h->max_instances);
    P_ARRAY(p, h->labels);
    p_int(p, h->disabled ? 1 : 0);
}

/* A name already taken is CONFLICT (unique_violation), as in SQLite. */
static int pg_host_create(cd_store *st, cd_store_host *h) {
    params p = {0};
    if (!h->created_at) h->created_at = now_ms();
    p_host(&p, h);
    p_int(&p, h->created_at);
    return insert(S(st), HOST_CREATE, &p, &h->id, CD_STORE_ERROR);
}

static int pg_host_get(cd_store *st, int64_t id, cd_store_host *out) {
    params p = {0};
    p_int(&p, id);
    return one_row(S(st), HOST_GET, &p, read_host, out);
}

static int pg_host_list(cd_store *st, cd_store_host **out, size_t *n) {
    params p = {0};
    void *arr;
    int r = rows(S(st), HOST_LIST, &p, read_host, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

/* Every column but created_at. */
static int pg_host_update(cd_store *st, const cd_store_host *h) {
    params p = {0};
    p_host(&p, h);
    p_int(&p, h->id);
    return run(S(st), HOST_UPDATE, &p, true);
}

static int pg_host_delete(cd_store *st, int64_t id) {
    params p = {0};
    p_int(&p, id);
    return run(S(st), HOST_DELETE, &p, true);
}

/* ---- Telling the other hubs ----
 *
 * A hub that changed the queue or an instance says so on a channel, with its id as payload, so
 * that the others read the store again at once rather than at their next poll (store_listen.c
 * hears it). A NOTIFY inside a transaction is delivered at its COMMIT, and not at all if it
 * rolls back; PostgreSQL folds the same one sent twice in a transaction into one. */
static void notify(pg_store *s, const char *channel) {
    if (!s->hub[0]) return;
    const char *values[2] = {channel, s->hub};
    PGresult *r = PQexecParams(s->conn, "SELECT pg_notify($1, $2)", 2, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) cd_warn("store: cannot notify %s: %s", channel, PQresultErrorMessage(r));
    PQclear(r);
}

static void queue_written(pg_store *s) {
    if (s->batch_open) s->queue_changed = true;
    else notify(s, "comfyd_queue");
}

static void pg_set_hub(cd_store *st, const char *hub_id) {
    snprintf(S(st)->hub, sizeof S(st)->hub, "%s", hub_id ? hub_id : "");
}

/* ---- Instances ---- */

static void read_instance(const PGresult *r, int row, void *out) {
    cd_store_instance *i = out;
    memset(i, 0, sizeof *i);
    i->id = col_i64(r, row, 0);
    i->project_id = col_i64(r, row, 1);
    i->user_id = col_i64(r, row, 2);
    COL_TEXT(r, row, 3, i->host);
    COL_TEXT(r, row, 4, i->address);
    i->port = col_int(r, row, 5);
    i->pid = col_int(r, row, 6);
    COL_TEXT(r, row, 7, i->status);
    COL_TEXT(r, row, 8, i->reason);
    COL_TEXT(r, row, 9, i->base_dir);
    COL_TEXT(r, row, 10, i->log_path);
    i->started_at = col_i64(r, row, 11);
    i->last_seen_at = col_i64(r, row, 12);
    i->last_activity_at = col_i64(r, row, 13);
    i->crash_count = col_int(r, row, 14);
    COL_TEXT(r, row, 15, i->hub);
}

static int pg_instance_put(cd_store *st, cd_store_instance *i) {
    params p = {0};
    p_int(&p, i->project_id);
    p_int(&p, i->user_id);
    P_ARRAY(&p, i->host);
    P_ARRAY(&p, i->address);
    p_int(&p, i->port);
    p_int(&p, i->pid);
    P_ARRAY(&p, i->status);
    P_ARRAY(&p, i->reason);
    P_ARRAY(&p, i->base_dir);
    P_ARRAY(&p, i->log_path);
    p_int(&p, i->started_at);
    p_int(&p, i->last_seen_at);
    p_int(&p, i->last_activity_at);
    p_int(&p, i->crash_count);
    P_ARRAY(&p, i->hub);
    int rc = insert(S(st), INSTANCE_PUT, &p, &i->id, CD_STORE_CONFLICT);
    if (rc == CD_STORE_CONFLICT)
        snprintf(S(st)->err, sizeof S(st)->err, "the instance of project %lld is another hub's",
                 (long long)i->project_id);
    if (rc == 0) notify(S(st), "comfyd_instances"); /* it committed alone (commits_alone) */
    return rc;
}

static int pg_instance_get(cd_store *st, int64_t id, cd_store_instance *out) {
    params p = {0};
    p_int(&p, id);
    return one_row(S(st), INSTANCE_GET, &p, read_instance, out);
}

static int pg_instance_by_project(cd_store *st, int64_t project_id, cd_store_instance *out) {
    params p = {0};
    p_int(&p, project_id);
    return one_row(S(st), INSTANCE_BY_PROJECT, &p, read_instance, out);
}

static int pg_instance_list(cd_store *st, cd_store_instance **out, size_t *n) {
    params p = {0};
    void *arr;
    int r = rows(S(st), INSTANCE_LIST, &p, read_instance, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

/* ---- Failed logins ---- */

typedef struct {
    int *count;
    int64_t *last_at;
} failures_out;

static void read_failures(const PGresult *r, int row, void *out) {
    failures_out *f = out;
    *f->count = col_int(r, row, 0);
    *f->last_at = col_i64(r, row, 1);
}

/* A name never seen has failed 0 times: not an error, the caller asks this of every login. */
static int pg_login_failures_get(cd_store *st, const char *name, int *count, int64_t *last_at) {
    params p = {0};
    p_text(&p, name);
    failures_out f = {count, last_at};
    int r = one_row(S(st), FAILURES_GET, &p, read_failures, &f);
    if (r != CD_STORE_NOT_FOUND) return r;
    S(st)->err[0] = '\0';
    *count = 0;
    *last_at = 0;
    return 0;
}

static int pg_login_failures_set(cd_store *st, const char *name, int count, int64_t last_at) {
    params p = {0};
    p_text(&p, name);
    p_int(&p, count);
    p_int(&p, last_at);
    return run(S(st), FAILURES_SET, &p, false);
}

/* Every successful login clears; a name with nothing to clear is the usual case. */
static int pg_login_failures_clear(cd_store *st, const char *name) {
    params p = {0};
    p_text(&p, name);
    return run(S(st), FAILURES_CLEAR, &p, false);
}

/* ---- Audit ---- */

static void read_audit(const PGresult *r, int row, void *out) {
    cd_store_audit *a = out;
    memset(a, 0, sizeof *a);
    a->id = col_i64(r, row, 0);
    a->at = col_i64(r, row, 1);
    a->user_id = col_i64(r, row, 2);
    COL_TEXT(r, row, 3, a->username);
    COL_TEXT(r, row, 4, a->action);
    COL_TEXT(r, row, 5, a->target);
    COL_TEXT(r, row, 6, a->detail);
    COL_TEXT(r, row, 7, a->ip);
}

static int pg_audit_add(cd_store *st, cd_store_audit *a) {
    params p = {0};
    if (!a->at) a->at = now_ms();
    p_int(&p, a->at);
    p_int(&p, a->user_id);
    P_ARRAY(&p, a->username);
    P_ARRAY(&p, a->action);
    P_ARRAY(&p, a->target);
    P_ARRAY(&p, a->detail);
    P_ARRAY(&p, a->ip);
    return insert(S(st), AUDIT_ADD, &p, &a->id, CD_STORE_ERROR);
}

static int pg_audit_list(cd_store *st, int64_t before_id, size_t limit, cd_store_audit **out, size_t *n) {
    params p = {0};
    p_int(&p, before_id > 0 ? before_id : INT64_MAX);
    p_int(&p, limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit);
    void *arr;
    int r = rows(S(st), AUDIT_LIST, &p, read_audit, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

/* ---- The admission queue ---- */

static void read_prompt(const PGresult *r, int row, void *out) {
    cd_store_prompt *pr = out;
    memset(pr, 0, sizeof *pr);
    pr->seq = col_i64(r, row, 0);
    COL_TEXT(r, row, 1, pr->prompt_id);
    pr->user_id = col_i64(r, row, 2);
    pr->project_id = col_i64(r, row, 3);
    pr->priority = col_int(r, row, 4);
    COL_TEXT(r, row, 5, pr->state);
    COL_TEXT(r, row, 6, pr->client_id);
    pr->created_at = col_i64(r, row, 7);
    pr->dispatched_at = col_i64(r, row, 8);
    pr->finished_at = col_i64(r, row, 9);
    COL_TEXT(r, row, 10, pr->reason);
    COL_TEXT(r, row, 11, pr->hub);
}

static int pg_prompt_add(cd_store *st, cd_store_prompt *pr, const char *body) {
    params p = {0};
    if (!pr->created_at) pr->created_at = now_ms();
    P_ARRAY(&p, pr->prompt_id);
    p_int(&p, pr->user_id);
    p_int(&p, pr->project_id);
    p_int(&p, pr->priority);
    P_ARRAY(&p, pr->state);
    P_ARRAY(&p, pr->client_id);
    p_text(&p, body);
    p_int(&p, pr->created_at);
    int rc = insert(S(st), PROMPT_ADD, &p, &pr->seq, CD_STORE_CONFLICT);
    if (rc == 0) queue_written(S(st));
    if (rc == CD_STORE_CONFLICT)
        snprintf(S(st)->err, sizeof S(st)->err, "prompt_id \"%.*s\" is taken", 128, pr->prompt_id);
    return rc;
}

static int pg_prompt_get(cd_store *st, const char *prompt_id, cd_store_prompt *out) {
    params p = {0};
    p_text(&p, prompt_id);
    return one_row(S(st), PROMPT_GET, &p, read_prompt, out);
}

static void read_body(const PGresult *r, int row, void *out) {
    *(char **)out = strdup(PQgetvalue(r, row, 0));
}

static int pg_prompt_body(cd_store *st, const char *prompt_id, char **body) {
    params p = {0};
    p_text(&p, prompt_id);
    *body = NULL;
    int r = one_row(S(st), PROMPT_BODY, &p, read_body, body);
    if (r == 0 && !*body) {
        snprintf(S(st)->err, sizeof S(st)->err, "out of memory");
        return CD_STORE_ERROR;
    }
    return r;
}

static int pg_prompt_list_active(cd_store *st, cd_store_prompt **out, size_t *n) {
    params p = {0};
    void *arr;
    int r = rows(S(st), PROMPT_ACTIVE, &p, read_prompt, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

static int pg_prompt_set_state(cd_store *st, const char *prompt_id, const char *state, const char *reason,
                               int64_t at) {
    params p = {0};
    p_text(&p, prompt_id);
    p_text(&p, state);
    p_text(&p, reason ? reason : "");
    p_int(&p, at ? at : now_ms());
    p_text(&p, S(st)->hub);
    int rc = run(S(st), PROMPT_STATE, &p, true);
    if (rc == 0) queue_written(S(st));
    return rc;
}

/* Nothing changed: the prompt is in another state or held by another transaction (CONFLICT),
 * or does not exist. The look that tells them apart does not wait for a lock either. */
static int pg_prompt_claim(cd_store *st, const char *prompt_id, const char *from, const char *to, int64_t at) {
    params p = {0};
    p_text(&p, prompt_id);
    p_text(&p, from);
    p_text(&p, to);
    p_int(&p, at ? at : now_ms());
    int r = run(S(st), PROMPT_CLAIM, &p, true);
    if (r == 0) queue_written(S(st));
    if (r != CD_STORE_NOT_FOUND) return r;
    cd_store_prompt got;
    r = pg_prompt_get(st, prompt_id, &got);
    if (r != 0) return r;
    if (!strcmp(got.state, from))
        snprintf(S(st)->err, sizeof S(st)->err, "prompt %.128s is being taken by another hub", prompt_id);
    else
        snprintf(S(st)->err, sizeof S(st)->err, "prompt %.128s is %s, not %.32s", prompt_id, got.state, from);
    return CD_STORE_CONFLICT;
}

/* ---- Group commit ----
 *
 * The batch is one transaction, as in SQLite. Its COMMIT waits for the server's WAL flush (the
 * session runs with synchronous_commit on), so a commit that returned is already durable and
 * sync has nothing left to do: it returns 0 at once, on whatever thread.
 *
 * Why not commit with synchronous_commit = off and flush in sync, as store_sqlite.c does with
 * its fdatasync? PostgreSQL has no call that flushes the WAL for a client: sync would need a
 * second connection and a transaction that writes (a commit only waits for the flush when it
 * wrote something), i.e. a row updated on every sync; and the commit would be visible to other
 * connections (other hubs, later) before it is durable. Committing synchronously costs the loop
 * the server's flush per batch, not per prompt: the prompts that arrive meanwhile gather into
 * the next batch, and the server itself groups the flushes of concurrent commits. */

/* Idempotent: begin in a batch and commit outside one do nothing. */
static int pg_batch_begin(cd_store *st) {
    pg_store *s = S(st);
    if (s->batch_open) return 0;
    s->err[0] = '\0';
    if (reconnect_if_lost(s) || exec_simple(s->conn, "BEGIN", s->err, sizeof s->err)) return CD_STORE_ERROR;
    s->batch_open = true;
    return 0;
}

/* A transaction that failed inside (a statement error aborts it in PostgreSQL) answers COMMIT
 * with ROLLBACK and no error: that is a failed commit too. */
static int pg_batch_commit(cd_store *st) {
    pg_store *s = S(st);
    if (!s->batch_open) return 0;
    if (s->queue_changed) notify(s, "comfyd_queue");
    s->queue_changed = false;
    s->batch_open = false;
    PGresult *r = PQexec(s->conn, "COMMIT");
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = CD_STORE_ERROR;
        set_err(s->err, sizeof s->err, "commit", r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
    } else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        rc = CD_STORE_ERROR;
        snprintf(s->err, sizeof s->err, "commit: the transaction had failed and was rolled back");
    }
    PQclear(r);
    if (rc && PQtransactionStatus(s->conn) != PQTRANS_IDLE) PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}

static void pg_batch_rollback(cd_store *st) {
    pg_store *s = S(st);
    if (!s->batch_open) return;
    s->batch_open = false;
    s->queue_changed = false;
    PQclear(PQexec(s->conn, "ROLLBACK"));
}

static int pg_sync(cd_store *st) {
    (void)st; /* every commit was flushed before it returned (above) */
    return 0;
}

static void batch_end(pg_store *s) {
    if (pg_batch_commit(&s->base) < 0) cd_error("store: cannot commit the queue's changes: %s", s->err);
}

/* ---- Several hubs ---- */

static int pg_hub_beat(cd_store *st, const char *hub_id, int64_t started_at, int64_t now) {
    params p = {0};
    p_text(&p, hub_id);
    p_int(&p, started_at);
    p_int(&p, now);
    return run(S(st), HUB_BEAT, &p, false);
}

static void read_hub(const PGresult *r, int row, void *out) {
    cd_store_hub *h = out;
    memset(h, 0, sizeof *h);
    COL_TEXT(r, row, 0, h->id);
    h->started_at = col_i64(r, row, 1);
    h->last_seen_at = col_i64(r, row, 2);
}

static int pg_hub_list(cd_store *st, cd_store_hub **out, size_t *n) {
    params p = {0};
    void *arr;
    int r = rows(S(st), HUB_LIST, &p, read_hub, sizeof **out, &arr, n);
    *out = arr;
    return r;
}

static void read_i64(const PGresult *r, int row, void *out) {
    *(int64_t *)out = PQgetisnull(r, row, 0) ? -1 : col_i64(r, row, 0);
}

static int pg_queue_turn(cd_store *st, int64_t *last_user) {
    params p = {0};
    return one_row(S(st), Q_TURN, &p, read_i64, last_user);
}

/* One statement: the function commits with it (durably: synchronous_commit is on), so a prompt
 * it returned is this hub's even if the hub dies the next moment. */
static int pg_prompt_dispatch(cd_store *st, const char *hub_id, int max_running, int max_per_user, int64_t now,
                              cd_store_prompt **out, size_t *n, int64_t *last_user) {
    pg_store *s = S(st);
    *out = NULL;
    *n = 0;
    if (s->batch_open) batch_end(s);
    params p = {0};
    p_text(&p, hub_id);
    p_int(&p, max_running);
    p_int(&p, max_per_user);
    p_int(&p, now);
    int rc;
    PGresult *r = exec_stmt(s, Q_DISPATCH, &p, &rc);
    if (!r) return rc;
    int count = PQntuples(r);
    cd_store_prompt *arr = count ? calloc((size_t)count, sizeof *arr) : NULL;
    if (count && !arr) {
        PQclear(r);
        snprintf(s->err, sizeof s->err, "out of memory");
        return CD_STORE_ERROR;
    }
    for (int i = 0; i < count; i++) read_prompt(r, i, &arr[i]);
    if (count) *last_user = col_i64(r, 0, 12);
    PQclear(r);
    *out = arr;
    *n = (size_t)count;
    return 0;
}

static int pg_prompt_take_over(cd_store *st, const char *from_hub, const char *to_hub, cd_store_prompt **out,
                               size_t *n) {
    params p = {0};
    p_text(&p, from_hub);
    p_text(&p, to_hub);
    void *arr;
    int r = rows(S(st), Q_TAKE_OVER, &p, read_prompt, sizeof **out, &arr, n);
    *out = arr;
    if (r == 0 && *n) queue_written(S(st));
    return r;
}

static int pg_instance_take_over(cd_store *st, int64_t project_id, const char *from_hub, const char *to_hub) {
    params p = {0};
    p_int(&p, project_id);
    p_text(&p, from_hub);
    p_text(&p, to_hub);
    int rc = run(S(st), INSTANCE_TAKE_OVER, &p, true);
    if (rc == 0) notify(S(st), "comfyd_instances");
    return rc;
}

static int pg_instance_touch(cd_store *st, int64_t project_id, int64_t at) {
    params p = {0};
    p_int(&p, project_id);
    p_int(&p, at);
    return run(S(st), INSTANCE_TOUCH, &p, false); /* no word to the others: the owner reads it when it matters */
}

/* ---- The table ---- */

static void pg_close(cd_store *st) {
    pg_store *s = S(st);
    if (s->batch_open) pg_batch_rollback(st);
    PQfinish(s->conn);
    free(s);
}

static const char *pg_error(const cd_store *st) {
    return ((const pg_store *)st)->err;
}

static const cd_store_ops pg_ops = {
    .name = "postgres",
    .close = pg_close,
    .error = pg_error,
    .user_create = pg_user_create,
    .user_get = pg_user_get,
    .user_by_name = pg_user_by_name,
    .user_list = pg_user_list,
    .user_update = pg_user_update,
    .user_delete = pg_user_delete,
    .user_count = pg_user_count,
    .token_create = pg_token_create,
    .token_get = pg_token_get,
    .token_delete = pg_token_delete,
    .token_delete_user = pg_token_delete_user,
    .token_prune = pg_token_prune,
    .project_create = pg_project_create,
    .project_get = pg_project_get,
    .project_list = pg_project_list,
    .project_update = pg_project_update,
    .project_delete = pg_project_delete,
    .host_create = pg_host_create,
    .host_get = pg_host_get,
    .host_list = pg_host_list,
    .host_update = pg_host_update,
    .host_delete = pg_host_delete,
    .instance_put = pg_instance_put,
    .instance_get = pg_instance_get,
    .instance_by_project = pg_instance_by_project,
    .instance_list = pg_instance_list,
    .login_failures_get = pg_login_failures_get,
    .login_failures_set = pg_login_failures_set,
    .login_failures_clear = pg_login_failures_clear,
    .audit_add = pg_audit_add,
    .audit_list = pg_audit_list,
    .prompt_add = pg_prompt_add,
    .prompt_get = pg_prompt_get,
    .prompt_body = pg_prompt_body,
    .prompt_list_active = pg_prompt_list_active,
    .prompt_set_state = pg_prompt_set_state,
    .prompt_claim = pg_prompt_claim,
    .set_hub = pg_set_hub,
    .hub_beat = pg_hub_beat,
    .hub_list = pg_hub_list,
    .prompt_dispatch = pg_prompt_dispatch,
    .prompt_take_over = pg_prompt_take_over,
    .queue_turn = pg_queue_turn,
    .instance_take_over = pg_instance_take_over,
    .instance_touch = pg_instance_touch,
    .batch_begin = pg_batch_begin,
    .batch_commit = pg_batch_commit,
    .batch_rollback = pg_batch_rollback,
    .sync = pg_sync,
};

/* The URI's own settings win over these defaults (a connect_timeout of its own, say), except
 * the encoding: the store sends and expects UTF-8. */
static PGconn *connect_to(const char *uri) {
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", "client_encoding", NULL};
    const char *const values[] = {"10", "comfyd hub", uri, "UTF8", NULL};
    return PQconnectdbParams(keys, values, 1);
}

int cd_store_pg_open(const char *uri, cd_store **out, char *err, size_t errlen) {
    *out = NULL;
    pg_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return CD_STORE_ERROR;
    }
    s->base.ops = &pg_ops;
    s->conn = connect_to(uri);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        set_err(err, errlen, "connecting to PostgreSQL", s->conn ? PQerrorMessage(s->conn) : "out of memory");
        pg_close(&s->base);
        return CD_STORE_ERROR;
    }
    PQsetNoticeProcessor(s->conn, log_notice, NULL);
    if (session_settings(s, err, errlen) || migrate(s->conn, err, errlen) || prepare_all(s, err, errlen)) {
        pg_close(&s->base);
        return CD_STORE_ERROR;
    }
    *out = &s->base;
    return 0;
}
