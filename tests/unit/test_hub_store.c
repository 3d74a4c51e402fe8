/* The hub's store (hub/store.h) on both backends: every case runs on SQLite (a real file per
 * test) and on PostgreSQL (a new database per test): migrations and reopening, every operation
 * with its NOT_FOUND and CONFLICT cases (hosts and projects' pins included), the cascades, audit
 * paging, the group commit, the migration of a version-2 store to hosts, and what is particular
 * to each (SQLite's WAL mode and a file an earlier comfyd left at version 3; PostgreSQL's
 * concurrent migrations and lost connections).
 *
 * The PostgreSQL server: COMFYD_TEST_PG_URL when set (a URI whose user may create databases),
 * else a throw-away server this test starts with tests/pg/start.sh and stops at the end.
 * COMFYD_TEST_PG=skip runs the SQLite cases only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hub/store.h"
#include "hub/store_schema.h"

typedef enum { SQLITE, POSTGRES } backend;

/* The backend the cases run on now (main runs the group once per backend), and the server. */
static backend B;
static char pg_base[512]; /* the URI of the server's maintenance database */
static int pg_db_counter;

typedef struct {
    char dir[64];
    char path[96];     /* SQLite: the file */
    char db[64];       /* PostgreSQL: the database */
    char uri[700];     /* PostgreSQL: the store's URI */
    cd_store *st;
} fixture;

/* Another connection, as another process (or hub) would see the store. */
typedef struct {
    sqlite3 *db;
    PGconn *pg;
} raw;

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void uri_with_db(char *out, size_t outlen, const char *db) {
    snprintf(out, outlen, "%s%sdbname=%s", pg_base, strchr(pg_base, '?') ? "&" : "?", db);
}

static PGconn *pg_connect(const char *uri) {
    PGconn *c = PQconnectdb(uri);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("connect %s: %s", uri, PQerrorMessage(c));
    return c;
}

static void pg_exec(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* verb "CREATE" or "DROP". Test code: the names are the test's own, never a user's value. */
static void pg_database(const char *verb, const char *db) {
    char sql[256];
    snprintf(sql, sizeof sql, "%s DATABASE %s", verb, db);
    PGconn *c = pg_connect(pg_base);
    pg_exec(c, sql);
    PQfinish(c);
}

static void open_store(fixture *f) {
    char err[256] = "";
    int r = B == SQLITE ? cd_store_sqlite_open(f->path, &f->st, err, sizeof err)
                        : cd_store_pg_open(f->uri, &f->st, err, sizeof err);
    if (r) fail_msg("open %s: %s", B == SQLITE ? f->path : f->uri, err);
    assert_non_null(f->st);
    assert_string_equal(f->st->ops->name, B == SQLITE ? "sqlite" : "postgres");
}

static void reopen_store(fixture *f) {
    cd_store_close(f->st);
    f->st = NULL;
    open_store(f);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    if (B == SQLITE) {
        snprintf(f->dir, sizeof f->dir, "/tmp/cd-hubstore-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "%s/hub.db", f->dir);
    } else {
        snprintf(f->db, sizeof f->db, "cd_store_test_%d_%d", (int)getpid(), ++pg_db_counter);
        pg_database("CREATE", f->db);
        uri_with_db(f->uri, sizeof f->uri, f->db);
    }
    open_store(f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    cd_store_close(f->st);
    if (B == SQLITE) {
        const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
            char p[128];
            snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
            unlink(p);
        }
        assert_int_equal(rmdir(f->dir), 0); /* nothing else was left behind */
    } else {
        pg_database("DROP", f->db); /* fails if a connection was left open */
    }
    free(f);
    return 0;
}

static raw raw_open(const fixture *f) {
    raw r = {0};
    if (B == SQLITE)
        assert_int_equal(sqlite3_open_v2(f->path, &r.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
    else
        r.pg = pg_connect(f->uri);
    return r;
}

static void raw_close(raw r) {
    if (r.db) sqlite3_close(r.db);
    if (r.pg) PQfinish(r.pg);
}

static void raw_exec(raw r, const char *sql) {
    if (r.pg) {
        pg_exec(r.pg, sql);
        return;
    }
    char *msg = NULL;
    if (sqlite3_exec(r.db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
}

static int64_t raw_int(raw r, const char *sql) {
    if (r.pg) {
        PGresult *res = PQexec(r.pg, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
            fail_msg("%s: %s", sql, PQresultErrorMessage(res));
        int64_t v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        return v;
    }
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(r.db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* Where each backend keeps its schema version. */
static const char *version_sql(void) {
    return B == SQLITE ? "PRAGMA user_version" : "SELECT version FROM schema_version";
}

static int64_t add_user(cd_store *st, const char *name, cd_role role) {
    cd_store_user u = {0};
    snprintf(u.name, sizeof u.name, "%s", name);
    snprintf(u.password_hash, sizeof u.password_hash, "$argon2id$v=19$%s", name);
    u.role = role;
    assert_int_equal(st->ops->user_create(st, &u), 0);
    assert_true(u.id > 0);
    return u.id;
}

static int64_t add_project(cd_store *st, int64_t owner, const char *name) {
    cd_store_project p = {.owner_id = owner};
    snprintf(p.name, sizeof p.name, "%s", name);
    assert_int_equal(st->ops->project_create(st, &p), 0);
    assert_true(p.id > 0);
    return p.id;
}

static void add_token(cd_store *st, const char *hash, int64_t user, cd_token_kind kind, int64_t expires) {
    cd_store_token t = {.user_id = user, .kind = kind, .created_at = 10, .expires_at = expires};
    snprintf(t.hash, sizeof t.hash, "%s", hash);
    snprintf(t.name, sizeof t.name, "name of %s", hash);
    assert_int_equal(st->ops->token_create(st, &t), 0);
}

static cd_store_instance make_instance(int64_t project, int64_t user, int n) {
    cd_store_instance i;
    memset(&i, 0, sizeof i);
    i.project_id = project;
    i.user_id = user;
    snprintf(i.host, sizeof i.host, "host%d", n);
    snprintf(i.address, sizeof i.address, "127.0.0.%d", n);
    i.port = 8000 + n;
    i.pid = 4000 + n;
    snprintf(i.status, sizeof i.status, "%s", n % 2 ? "online" : "crashed");
    snprintf(i.reason, sizeof i.reason, "reason %d", n);
    snprintf(i.base_dir, sizeof i.base_dir, "/srv/comfyd/projects/%d", n);
    snprintf(i.log_path, sizeof i.log_path, "/srv/comfyd/logs/%d.log", n);
    i.started_at = 1700000000000 + n;
    i.last_seen_at = 1700000001000 + n;
    i.last_activity_at = 1700000002000 + n;
    i.crash_count = n;
    return i;
}

static void assert_instance_equal(const cd_store_instance *a, const cd_store_instance *b) {
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->project_id, b->project_id);
    assert_int_equal(a->user_id, b->user_id);
    assert_string_equal(a->host, b->host);
    assert_string_equal(a->address, b->address);
    assert_int_equal(a->port, b->port);
    assert_int_equal(a->pid, b->pid);
    assert_string_equal(a->status, b->status);
    assert_string_equal(a->reason, b->reason);
    assert_string_equal(a->base_dir, b->base_dir);
    assert_string_equal(a->log_path, b->log_path);
    assert_int_equal(a->started_at, b->started_at);
    assert_int_equal(a->last_seen_at, b->last_seen_at);
    assert_int_equal(a->last_activity_at, b->last_activity_at);
    assert_int_equal(a->crash_count, b->crash_count);
}

static void test_migrations_and_reopen(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    assert_true(cd_store_sqlite_schema_version() >= 1);
    raw db = raw_open(f);
    assert_int_equal(raw_int(db, version_sql()), cd_store_sqlite_schema_version());
    const char *tables = B == SQLITE ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ("
                                     : "SELECT count(*) FROM information_schema.tables WHERE"
                                       " table_schema = current_schema() AND table_name IN (";
    char sql[512];
    snprintf(sql, sizeof sql, "%s'users', 'tokens', 'projects', 'instances', 'login_failures', 'audit', 'prompts',"
             " 'hosts')",
             tables);
    assert_int_equal(raw_int(db, sql), 8);
    /* the shared dispatch's indexes: on PostgreSQL only (a SQLite hub would only pay to keep
     * them, migration 7); prompts_active is read by both */
    const char *indexes = B == SQLITE ? "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ("
                                      : "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
                                        " AND indexname IN (";
    snprintf(sql, sizeof sql, "%s'prompts_queued', 'prompts_out', 'prompts_priority')", indexes);
    assert_int_equal(raw_int(db, sql), B == SQLITE ? 0 : 3);
    snprintf(sql, sizeof sql, "%s'prompts_active')", indexes);
    assert_int_equal(raw_int(db, sql), 1);
    raw_close(db);
    char *seventh = cd_store_schema_migration(6, CD_DIALECT_POSTGRES);
    assert_string_equal(seventh, ""); /* empty there, and skipped */
    free(seventh);

    int64_t uid = add_user(st, "ann", CD_ROLE_TEACHER);
    int64_t pid = add_project(st, uid, "Landscapes");
    cd_store_instance in = make_instance(pid, uid, 1);
    assert_int_equal(st->ops->instance_put(st, &in), 0);
    reopen_store(f);
    st = f->st;

    cd_store_user u;
    assert_int_equal(st->ops->user_get(st, uid, &u), 0);
    assert_string_equal(u.name, "ann");
    assert_int_equal(u.role, CD_ROLE_TEACHER);
    cd_store_project p;
    assert_int_equal(st->ops->project_get(st, pid, &p), 0);
    assert_string_equal(p.name, "Landscapes");
    cd_store_instance got;
    assert_int_equal(st->ops->instance_by_project(st, pid, &got), 0);
    assert_instance_equal(&got, &in);
    db = raw_open(f);
    assert_int_equal(raw_int(db, version_sql()), cd_store_sqlite_schema_version());
    raw_close(db);
}

static void test_newer_version_refused(void **state) {
    fixture *f = *state;
    cd_store_close(f->st);
    f->st = NULL;
    raw db = raw_open(f);
    char sql[64];
    snprintf(sql, sizeof sql, B == SQLITE ? "PRAGMA user_version = %d" : "UPDATE schema_version SET version = %d",
             cd_store_sqlite_schema_version() + 1);
    raw_exec(db, sql);
    raw_close(db);

    char err[256] = "", want[256];
    cd_store dummy = {0};
    cd_store *st = &dummy; /* must be reset to NULL */
    int rc = B == SQLITE ? cd_store_sqlite_open(f->path, &st, err, sizeof err)
                         : cd_store_pg_open(f->uri, &st, err, sizeof err);
    assert_int_equal(rc, CD_STORE_ERROR);
    assert_null(st);
    snprintf(want, sizeof want, "store schema version %d is newer than this comfyd knows (%d)",
             cd_store_sqlite_schema_version() + 1, cd_store_sqlite_schema_version());
    assert_string_equal(err, want);
    db = raw_open(f); /* left as it was */
    assert_int_equal(raw_int(db, version_sql()), cd_store_sqlite_schema_version() + 1);
    raw_close(db);
}

static void test_open_error(void **state) {
    (void)state;
    char err[256] = "";
    cd_store *st = NULL;
    if (B == SQLITE) {
        assert_int_equal(cd_store_sqlite_open("/nonexistent-dir-cd/hub.db", &st, err, sizeof err), CD_STORE_ERROR);
    } else {
        assert_int_equal(cd_store_pg_open("postgresql:///hub?host=/nonexistent-dir-cd", &st, err, sizeof err),
                         CD_STORE_ERROR);
        assert_non_null(strstr(err, "connecting to PostgreSQL"));
    }
    assert_null(st);
    assert_non_null(strstr(err, "/nonexistent-dir-cd"));
}

static void test_users(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t n = -1;
    assert_int_equal(st->ops->user_count(st, &n), 0);
    assert_int_equal(n, 0);

    int64_t before = wall_ms();
    cd_store_user a = {.role = CD_ROLE_ADMIN};
    snprintf(a.name, sizeof a.name, "alice");
    snprintf(a.password_hash, sizeof a.password_hash, "$argon2id$hash-a");
    assert_int_equal(st->ops->user_create(st, &a), 0);
    assert_true(a.id > 0);
    assert_true(a.created_at >= before && a.created_at <= wall_ms());
    assert_string_equal(cd_store_error(st), "");

    cd_store_user dup = {.role = CD_ROLE_STUDENT};
    snprintf(dup.name, sizeof dup.name, "alice");
    assert_int_equal(st->ops->user_create(st, &dup), CD_STORE_CONFLICT);
    assert_string_not_equal(cd_store_error(st), "");
    int64_t b_id = add_user(st, "Alice", CD_ROLE_STUDENT); /* names are case-sensitive */
    assert_true(b_id > a.id);
    assert_string_equal(cd_store_error(st), "");

    cd_store_user u;
    assert_int_equal(st->ops->user_get(st, a.id, &u), 0);
    assert_int_equal(u.id, a.id);
    assert_string_equal(u.name, "alice");
    assert_string_equal(u.password_hash, "$argon2id$hash-a");
    assert_int_equal(u.role, CD_ROLE_ADMIN);
    assert_false(u.disabled);
    assert_int_equal(u.created_at, a.created_at);
    assert_int_equal(st->ops->user_by_name(st, "Alice", &u), 0);
    assert_int_equal(u.id, b_id);
    assert_int_equal(u.role, CD_ROLE_STUDENT);
    assert_int_equal(st->ops->user_by_name(st, "ALICE", &u), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->user_get(st, 9999, &u), CD_STORE_NOT_FOUND);

    cd_store_user upd = a;
    snprintf(upd.name, sizeof upd.name, "alice2");
    snprintf(upd.password_hash, sizeof upd.password_hash, "$argon2id$hash-new");
    upd.role = CD_ROLE_TEACHER;
    upd.disabled = true;
    upd.created_at = 5; /* not updated */
    assert_int_equal(st->ops->user_update(st, &upd), 0);
    assert_int_equal(st->ops->user_get(st, a.id, &u), 0);
    assert_string_equal(u.name, "alice2");
    assert_string_equal(u.password_hash, "$argon2id$hash-new");
    assert_int_equal(u.role, CD_ROLE_TEACHER);
    assert_true(u.disabled);
    assert_int_equal(u.created_at, a.created_at);
    snprintf(upd.name, sizeof upd.name, "Alice");
    assert_int_equal(st->ops->user_update(st, &upd), CD_STORE_CONFLICT);
    upd.id = 9999;
    snprintf(upd.name, sizeof upd.name, "ghost");
    assert_int_equal(st->ops->user_update(st, &upd), CD_STORE_NOT_FOUND);
    assert_string_not_equal(cd_store_error(st), "");

    cd_store_user *list = NULL;
    size_t len = 0;
    assert_int_equal(st->ops->user_list(st, &list, &len), 0);
    assert_int_equal(len, 2);
    assert_int_equal(list[0].id, a.id);
    assert_string_equal(list[0].name, "alice2");
    assert_int_equal(list[1].id, b_id);
    assert_string_equal(list[1].name, "Alice");
    free(list);
    assert_int_equal(st->ops->user_count(st, &n), 0);
    assert_int_equal(n, 2);

    assert_int_equal(st->ops->user_delete(st, a.id), 0);
    assert_int_equal(st->ops->user_delete(st, a.id), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->user_get(st, a.id, &u), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->user_delete(st, b_id), 0);
    assert_int_equal(st->ops->user_list(st, &list, &len), 0);
    assert_int_equal(len, 0);
    assert_null(list);
    /* Ids are not reused after a delete. */
    assert_true(add_user(st, "carol", CD_ROLE_STUDENT) > b_id);
}

/* A field filled to the brim without a terminator is stored whole, and a longer value in the file
 * is cut to fit when read: neither overflows (ASan watches). */
static void test_strings_truncated(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    cd_store_user u = {.role = CD_ROLE_STUDENT};
    memset(u.name, 'n', sizeof u.name);
    memset(u.password_hash, 'h', sizeof u.password_hash);
    assert_int_equal(st->ops->user_create(st, &u), 0);
    raw db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT length(name) FROM users"), sizeof u.name);
    raw_exec(db, B == SQLITE ? "UPDATE users SET password_hash = printf('%.300c', 'x')"
                             : "UPDATE users SET password_hash = repeat('x', 300)");
    raw_close(db);
    cd_store_user got;
    assert_int_equal(st->ops->user_get(st, u.id, &got), 0);
    assert_int_equal(strlen(got.name), sizeof got.name - 1);
    assert_int_equal(strlen(got.password_hash), sizeof got.password_hash - 1);
    assert_int_equal(got.password_hash[0], 'x');
}

static void test_tokens(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t ann = add_user(st, "ann", CD_ROLE_STUDENT);
    int64_t bob = add_user(st, "bob", CD_ROLE_STUDENT);
    add_token(st, "s1", ann, CD_TOKEN_SESSION, 1000);
    add_token(st, "s2", ann, CD_TOKEN_SESSION, 5000);
    add_token(st, "a1", ann, CD_TOKEN_API, 0);
    add_token(st, "b1", bob, CD_TOKEN_SESSION, 0);

    cd_store_token t;
    assert_int_equal(st->ops->token_get(st, "s1", 999, &t), 0);
    assert_string_equal(t.hash, "s1");
    assert_int_equal(t.user_id, ann);
    assert_int_equal(t.kind, CD_TOKEN_SESSION);
    assert_string_equal(t.name, "name of s1");
    assert_int_equal(t.created_at, 10);
    assert_int_equal(t.expires_at, 1000);
    assert_int_equal(st->ops->token_get(st, "s1", 1000, &t), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->token_get(st, "a1", INT64_MAX, &t), 0);
    assert_int_equal(t.kind, CD_TOKEN_API);
    assert_int_equal(t.expires_at, 0);
    assert_int_equal(st->ops->token_get(st, "nope", 0, &t), CD_STORE_NOT_FOUND);

    cd_store_token dup = {.user_id = bob, .kind = CD_TOKEN_API};
    snprintf(dup.hash, sizeof dup.hash, "s1");
    assert_int_equal(st->ops->token_create(st, &dup), CD_STORE_CONFLICT);
    cd_store_token orphan = {.user_id = 9999, .kind = CD_TOKEN_API};
    snprintf(orphan.hash, sizeof orphan.hash, "orphan");
    assert_int_equal(st->ops->token_create(st, &orphan), CD_STORE_NOT_FOUND);
    orphan.user_id = bob; /* created_at 0: stamped with the time */
    int64_t before = wall_ms();
    assert_int_equal(st->ops->token_create(st, &orphan), 0);
    assert_int_equal(st->ops->token_get(st, "orphan", 0, &t), 0);
    assert_true(t.created_at >= before && t.created_at <= wall_ms());

    assert_int_equal(st->ops->token_delete(st, "a1"), 0);
    assert_int_equal(st->ops->token_delete(st, "a1"), CD_STORE_NOT_FOUND);
    add_token(st, "a2", ann, CD_TOKEN_API, 0);

    /* Sessions of ann only: her API token and bob's session stay. */
    assert_int_equal(st->ops->token_delete_user(st, ann, CD_TOKEN_SESSION), 0);
    assert_int_equal(st->ops->token_get(st, "s2", 0, &t), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->token_get(st, "a2", 0, &t), 0);
    assert_int_equal(st->ops->token_get(st, "b1", 0, &t), 0);
    assert_int_equal(st->ops->token_delete_user(st, ann, CD_TOKEN_SESSION), 0); /* nothing left: fine */

    add_token(st, "old", bob, CD_TOKEN_SESSION, 2000);
    add_token(st, "edge", bob, CD_TOKEN_SESSION, 3000);
    add_token(st, "new", bob, CD_TOKEN_SESSION, 3001);
    assert_int_equal(st->ops->token_prune(st, 3000), 0);
    raw db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM tokens WHERE hash IN ('old', 'edge')"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM tokens"), 4); /* a2, b1, orphan, new */
    raw_close(db);
    assert_int_equal(st->ops->token_get(st, "new", 3000, &t), 0);
}

static void test_projects(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t ann = add_user(st, "ann", CD_ROLE_TEACHER);
    int64_t bob = add_user(st, "bob", CD_ROLE_STUDENT);

    int64_t before = wall_ms();
    cd_store_project p1 = {.owner_id = ann};
    snprintf(p1.name, sizeof p1.name, "Portraits");
    assert_int_equal(st->ops->project_create(st, &p1), 0);
    assert_true(p1.id > 0);
    assert_true(p1.created_at >= before && p1.created_at <= wall_ms());
    assert_int_equal(p1.updated_at, p1.created_at);
    cd_store_project p2 = {.owner_id = bob, .created_at = 111, .updated_at = 222};
    snprintf(p2.name, sizeof p2.name, "Bob's");
    assert_int_equal(st->ops->project_create(st, &p2), 0);
    int64_t p3 = add_project(st, ann, "Landscapes");
    cd_store_project orphan = {.owner_id = 9999};
    assert_int_equal(st->ops->project_create(st, &orphan), CD_STORE_NOT_FOUND);

    cd_store_project p;
    assert_int_equal(st->ops->project_get(st, p2.id, &p), 0);
    assert_int_equal(p.id, p2.id);
    assert_int_equal(p.owner_id, bob);
    assert_string_equal(p.name, "Bob's");
    assert_int_equal(p.created_at, 111);
    assert_int_equal(p.updated_at, 222);
    assert_int_equal(st->ops->project_get(st, 9999, &p), CD_STORE_NOT_FOUND);

    cd_store_project *list = NULL;
    size_t n = 0;
    assert_int_equal(st->ops->project_list(st, ann, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, p1.id);
    assert_string_equal(list[0].name, "Portraits");
    assert_int_equal(list[1].id, p3);
    free(list);
    assert_int_equal(st->ops->project_list(st, 0, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].id, p1.id);
    assert_int_equal(list[1].id, p2.id);
    assert_int_equal(list[2].id, p3);
    free(list);
    assert_int_equal(st->ops->project_list(st, 9999, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_null(list);

    cd_store_project upd = p2;
    snprintf(upd.name, sizeof upd.name, "Renamed");
    upd.updated_at = 333;
    upd.owner_id = ann;   /* not updated */
    upd.created_at = 999; /* not updated */
    assert_int_equal(st->ops->project_update(st, &upd), 0);
    assert_int_equal(st->ops->project_get(st, p2.id, &p), 0);
    assert_string_equal(p.name, "Renamed");
    assert_int_equal(p.updated_at, 333);
    assert_int_equal(p.owner_id, bob);
    assert_int_equal(p.created_at, 111);
    upd.id = 9999;
    assert_int_equal(st->ops->project_update(st, &upd), CD_STORE_NOT_FOUND);

    assert_int_equal(st->ops->project_delete(st, p2.id), 0);
    assert_int_equal(st->ops->project_get(st, p2.id, &p), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->project_delete(st, p2.id), CD_STORE_NOT_FOUND);
}

static void test_instances(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t ann = add_user(st, "ann", CD_ROLE_TEACHER);
    int64_t pa = add_project(st, ann, "a");
    int64_t pb = add_project(st, ann, "b");

    cd_store_instance i1 = make_instance(pa, ann, 1);
    assert_int_equal(st->ops->instance_put(st, &i1), 0);
    assert_true(i1.id > 0);
    cd_store_instance got;
    assert_int_equal(st->ops->instance_get(st, i1.id, &got), 0);
    assert_instance_equal(&got, &i1);

    /* Replaced in place: same id whatever the caller had in it, every field new. */
    cd_store_instance again = make_instance(pa, 0, 2);
    again.id = 12345;
    again.port = 0;
    again.pid = 0;
    again.reason[0] = '\0';
    assert_int_equal(st->ops->instance_put(st, &again), 0);
    assert_int_equal(again.id, i1.id);
    assert_int_equal(st->ops->instance_by_project(st, pa, &got), 0);
    assert_instance_equal(&got, &again);
    assert_string_equal(got.status, "crashed");
    assert_int_equal(got.user_id, 0);

    cd_store_instance i2 = make_instance(pb, ann, 3);
    assert_int_equal(st->ops->instance_put(st, &i2), 0);
    assert_true(i2.id > i1.id);
    cd_store_instance *list = NULL;
    size_t n = 0;
    assert_int_equal(st->ops->instance_list(st, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_instance_equal(&list[0], &again);
    assert_instance_equal(&list[1], &i2);
    free(list);

    assert_int_equal(st->ops->instance_get(st, 9999, &got), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->instance_by_project(st, 9999, &got), CD_STORE_NOT_FOUND);
    cd_store_instance orphan = make_instance(9999, ann, 4);
    assert_int_equal(st->ops->instance_put(st, &orphan), CD_STORE_NOT_FOUND);
}

static void test_cascades(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t ann = add_user(st, "ann", CD_ROLE_STUDENT);
    int64_t bob = add_user(st, "bob", CD_ROLE_STUDENT);
    int64_t pa1 = add_project(st, ann, "a1");
    int64_t pa2 = add_project(st, ann, "a2");
    int64_t pb1 = add_project(st, bob, "b1");
    int64_t pb2 = add_project(st, bob, "b2");
    cd_store_instance ins[] = {make_instance(pa1, ann, 1), make_instance(pa2, ann, 2),
                               make_instance(pb1, bob, 3), make_instance(pb2, bob, 4)};
    for (size_t i = 0; i < 4; i++) assert_int_equal(st->ops->instance_put(st, &ins[i]), 0);
    add_token(st, "ta", ann, CD_TOKEN_SESSION, 0);
    add_token(st, "ta2", ann, CD_TOKEN_API, 0);
    add_token(st, "tb", bob, CD_TOKEN_SESSION, 0);

    assert_int_equal(st->ops->user_delete(st, ann), 0);
    cd_store_token t;
    assert_int_equal(st->ops->token_get(st, "ta", 0, &t), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->token_get(st, "ta2", 0, &t), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->token_get(st, "tb", 0, &t), 0);
    cd_store_project p;
    assert_int_equal(st->ops->project_get(st, pa1, &p), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->project_get(st, pa2, &p), CD_STORE_NOT_FOUND);
    cd_store_instance got;
    assert_int_equal(st->ops->instance_get(st, ins[0].id, &got), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->instance_by_project(st, pa2, &got), CD_STORE_NOT_FOUND);

    assert_int_equal(st->ops->project_delete(st, pb1), 0);
    assert_int_equal(st->ops->instance_get(st, ins[2].id, &got), CD_STORE_NOT_FOUND);
    cd_store_instance *list = NULL;
    size_t n = 0;
    assert_int_equal(st->ops->instance_list(st, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_instance_equal(&list[0], &ins[3]);
    free(list);
    cd_store_project *projects = NULL;
    assert_int_equal(st->ops->project_list(st, 0, &projects, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(projects[0].id, pb2);
    free(projects);
}

static void test_login_failures(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int count = -1;
    int64_t last = -1;
    assert_int_equal(st->ops->login_failures_get(st, "nobody", &count, &last), 0);
    assert_int_equal(count, 0);
    assert_int_equal(last, 0);
    assert_string_equal(cd_store_error(st), "");

    assert_int_equal(st->ops->login_failures_set(st, "ann", 3, 1234), 0);
    assert_int_equal(st->ops->login_failures_get(st, "ann", &count, &last), 0);
    assert_int_equal(count, 3);
    assert_int_equal(last, 1234);
    assert_int_equal(st->ops->login_failures_set(st, "ann", 4, 5678), 0);
    assert_int_equal(st->ops->login_failures_set(st, "Ann", 1, 1), 0);
    assert_int_equal(st->ops->login_failures_get(st, "ann", &count, &last), 0);
    assert_int_equal(count, 4);
    assert_int_equal(last, 5678);

    assert_int_equal(st->ops->login_failures_clear(st, "ann"), 0);
    assert_int_equal(st->ops->login_failures_get(st, "ann", &count, &last), 0);
    assert_int_equal(count, 0);
    assert_int_equal(last, 0);
    assert_int_equal(st->ops->login_failures_get(st, "Ann", &count, &last), 0);
    assert_int_equal(count, 1);
    assert_int_equal(st->ops->login_failures_clear(st, "never-seen"), 0);
}

static void test_audit(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    cd_store_audit *list = NULL;
    size_t n = 7;
    assert_int_equal(st->ops->audit_list(st, 0, 10, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_null(list);

    int64_t ids[25];
    int64_t before = wall_ms();
    for (int i = 0; i < 25; i++) {
        cd_store_audit a = {.at = i % 2 ? 1000 + i : 0, .user_id = i};
        snprintf(a.username, sizeof a.username, "user%d", i);
        snprintf(a.action, sizeof a.action, "%s", i ? "open" : "login_failed");
        snprintf(a.target, sizeof a.target, "project %d", i);
        snprintf(a.detail, sizeof a.detail, "detail %d", i);
        snprintf(a.ip, sizeof a.ip, "10.0.0.%d", i);
        assert_int_equal(st->ops->audit_add(st, &a), 0);
        assert_true(i == 0 || a.id > ids[i - 1]);
        if (i % 2 == 0) assert_true(a.at >= before && a.at <= wall_ms());
        else assert_int_equal(a.at, 1000 + i);
        ids[i] = a.id;
    }

    assert_int_equal(st->ops->audit_list(st, 0, 10, &list, &n), 0);
    assert_int_equal(n, 10);
    for (size_t k = 0; k < n; k++) assert_int_equal(list[k].id, ids[24 - k]);
    assert_int_equal(list[0].user_id, 24);
    assert_string_equal(list[0].username, "user24");
    assert_string_equal(list[0].action, "open");
    assert_string_equal(list[0].target, "project 24");
    assert_string_equal(list[0].detail, "detail 24");
    assert_string_equal(list[0].ip, "10.0.0.24");
    assert_int_equal(list[1].at, 1023);
    int64_t next = list[n - 1].id;
    free(list);

    assert_int_equal(st->ops->audit_list(st, next, 10, &list, &n), 0);
    assert_int_equal(n, 10);
    for (size_t k = 0; k < n; k++) assert_int_equal(list[k].id, ids[14 - k]);
    next = list[n - 1].id;
    free(list);

    assert_int_equal(st->ops->audit_list(st, next, 10, &list, &n), 0);
    assert_int_equal(n, 5);
    for (size_t k = 0; k < n; k++) assert_int_equal(list[k].id, ids[4 - k]);
    assert_string_equal(list[4].action, "login_failed");
    assert_int_equal(list[4].user_id, 0);
    free(list);

    assert_int_equal(st->ops->audit_list(st, ids[0], 10, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_null(list);
    assert_int_equal(st->ops->audit_list(st, 0, 0, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(st->ops->audit_list(st, 0, 1000, &list, &n), 0);
    assert_int_equal(n, 25);
    free(list);
}

static void test_wal_mode(void **state) {
    fixture *f = *state;
    add_user(f->st, "ann", CD_ROLE_STUDENT); /* a write, so that the log exists */
    raw r = raw_open(f);
    sqlite3 *db = r.db;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    /* The other connection sees the committed row while the store still has the file open. */
    assert_int_equal(raw_int(r, "SELECT count(*) FROM users WHERE name = 'ann'"), 1);
    sqlite3_close(db);
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(access(wal, F_OK), 0);
}

static cd_store_prompt make_prompt(const char *id, int64_t user, int64_t project) {
    cd_store_prompt p = {.user_id = user, .project_id = project};
    snprintf(p.prompt_id, sizeof p.prompt_id, "%s", id);
    snprintf(p.state, sizeof p.state, "queued");
    return p;
}

/* The admission queue's group commit: one transaction, a conflict inside it leaves the others,
 * other writes commit it first, rollback drops it, sync flushes. */
static void test_prompt_batches(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t u = add_user(st, "ann", CD_ROLE_STUDENT), pr = add_project(st, u, "p");
    raw db = raw_open(f);

    assert_int_equal(st->ops->batch_begin(st), 0);
    assert_int_equal(st->ops->batch_begin(st), 0); /* joins */
    cd_store_prompt a = make_prompt("a", u, pr), b = make_prompt("b", u, pr), dup = make_prompt("a", u, pr);
    assert_int_equal(st->ops->prompt_add(st, &a, "{\"prompt\": {}}"), 0);
    assert_int_equal(st->ops->prompt_add(st, &dup, "{}"), CD_STORE_CONFLICT);
    assert_int_equal(st->ops->prompt_add(st, &b, "{}"), 0);
    assert_true(b.seq > a.seq);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM prompts"), 0); /* not committed yet */
    cd_store_prompt got;
    assert_int_equal(st->ops->prompt_get(st, "b", &got), 0); /* the store sees its own */
    assert_int_equal(st->ops->batch_commit(st), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM prompts"), 2);
    assert_int_equal(st->ops->batch_commit(st), 0); /* nothing open: nothing to do */
    assert_int_equal(st->ops->sync(st), 0);

    /* a write of another kind commits the open batch before itself */
    assert_int_equal(st->ops->batch_begin(st), 0);
    assert_int_equal(st->ops->prompt_set_state(st, "a", "running", "", 5), 0);
    add_user(st, "ben", CD_ROLE_STUDENT);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM prompts WHERE state = 'running'"), 1);
    assert_int_equal(st->ops->batch_commit(st), 0);

    /* rollback */
    assert_int_equal(st->ops->batch_begin(st), 0);
    cd_store_prompt c = make_prompt("c", u, pr);
    assert_int_equal(st->ops->prompt_add(st, &c, "{}"), 0);
    st->ops->batch_rollback(st);
    assert_int_equal(st->ops->prompt_get(st, "c", &got), CD_STORE_NOT_FOUND);
    raw_close(db);

    /* what was committed is there after a reopen */
    reopen_store(f);
    cd_store_prompt *list = NULL;
    size_t n = 0;
    assert_int_equal(f->st->ops->prompt_list_active(f->st, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].prompt_id, "a");
    assert_string_equal(list[0].state, "running");
    free(list);
}

/* The claim: a prompt moves only from the state the caller saw; the times follow the state. */
static void test_prompt_claim(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t u = add_user(st, "ann", CD_ROLE_STUDENT), pr = add_project(st, u, "p");
    cd_store_prompt a = make_prompt("a", u, pr), got;
    assert_int_equal(st->ops->prompt_add(st, &a, "{}"), 0);
    assert_int_equal(st->ops->prompt_set_state(st, "a", "queued", "waited", 1), 0);

    assert_int_equal(st->ops->prompt_claim(st, "a", "queued", "dispatching", 50), 0);
    assert_int_equal(st->ops->prompt_get(st, "a", &got), 0);
    assert_string_equal(got.state, "dispatching");
    assert_int_equal(got.dispatched_at, 50);
    assert_string_equal(got.reason, "");
    assert_int_equal(st->ops->prompt_claim(st, "a", "queued", "dispatching", 60), CD_STORE_CONFLICT);
    assert_non_null(strstr(cd_store_error(st), "dispatching"));
    assert_int_equal(st->ops->prompt_claim(st, "nope", "queued", "dispatching", 60), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->prompt_claim(st, "a", "dispatching", "running", 70), 0);
    assert_int_equal(st->ops->prompt_claim(st, "a", "running", "done", 80), 0);
    assert_int_equal(st->ops->prompt_get(st, "a", &got), 0);
    assert_int_equal(got.dispatched_at, 50); /* kept from the first dispatch */
    assert_int_equal(got.finished_at, 80);

    /* in a batch, as the queue's other writes */
    raw db = raw_open(f);
    cd_store_prompt b = make_prompt("b", u, pr);
    assert_int_equal(st->ops->prompt_add(st, &b, "{}"), 0);
    assert_int_equal(st->ops->batch_begin(st), 0);
    assert_int_equal(st->ops->prompt_claim(st, "b", "queued", "dispatching", 90), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM prompts WHERE state = 'dispatching'"), 0);
    assert_int_equal(st->ops->batch_commit(st), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM prompts WHERE state = 'dispatching'"), 1);
    raw_close(db);
}

/* Two hubs on one database: a prompt one of them is claiming (its transaction open) is CONFLICT
 * for the other at once, without waiting; once claimed it stays the first one's. */
static void test_pg_claim_across_hubs(void **state) {
    fixture *f = *state;
    cd_store *one = f->st, *two = NULL;
    char err[256] = "";
    if (cd_store_pg_open(f->uri, &two, err, sizeof err)) fail_msg("second hub: %s", err);
    int64_t u = add_user(one, "ann", CD_ROLE_STUDENT), pr = add_project(one, u, "p");
    cd_store_prompt x = make_prompt("x", u, pr), y = make_prompt("y", u, pr);
    assert_int_equal(one->ops->prompt_add(one, &x, "{}"), 0);
    assert_int_equal(one->ops->prompt_add(one, &y, "{}"), 0);

    assert_int_equal(one->ops->batch_begin(one), 0);
    assert_int_equal(one->ops->prompt_claim(one, "x", "queued", "dispatching", 10), 0);
    int64_t t0 = wall_ms();
    assert_int_equal(two->ops->prompt_claim(two, "x", "queued", "dispatching", 11), CD_STORE_CONFLICT);
    assert_true(wall_ms() - t0 < 2000); /* skipped, not waited for */
    assert_non_null(strstr(cd_store_error(two), "another hub"));
    assert_int_equal(two->ops->prompt_claim(two, "y", "queued", "dispatching", 12), 0);
    assert_int_equal(one->ops->batch_commit(one), 0);

    assert_int_equal(two->ops->prompt_claim(two, "x", "queued", "dispatching", 13), CD_STORE_CONFLICT);
    cd_store_prompt got;
    assert_int_equal(two->ops->prompt_get(two, "x", &got), 0);
    assert_int_equal(got.dispatched_at, 10);
    assert_int_equal(one->ops->prompt_get(one, "y", &got), 0);
    assert_string_equal(got.state, "dispatching");
    assert_int_equal(got.dispatched_at, 12);
    cd_store_close(two);
}

/* Several hubs' dispatch (store.h prompt_dispatch): the limit holds across two connections,
 * priority prompts go first, then one per user in turn from the shared turn, a user at its
 * running limit is skipped; a silent hub's prompts and instances go to one other hub only. */
static void test_pg_shared_dispatch(void **state) {
    fixture *f = *state;
    cd_store *one = f->st, *two = NULL;
    char err[256] = "";
    if (cd_store_pg_open(f->uri, &two, err, sizeof err)) fail_msg("second hub: %s", err);
    int64_t ann = add_user(one, "ann", CD_ROLE_STUDENT), bob = add_user(one, "bob", CD_ROLE_STUDENT);
    int64_t tom = add_user(one, "tom", CD_ROLE_TEACHER);
    int64_t pa = add_project(one, ann, "a"), pb = add_project(one, bob, "b"), pt = add_project(one, tom, "t");
    const struct { const char *id; int64_t user, project; int priority; } queue[] = {
        {"a1", ann, pa, 0}, {"a2", ann, pa, 0}, {"a3", ann, pa, 0}, {"b1", bob, pb, 0}, {"b2", bob, pb, 0},
        {"t1", tom, pt, 1},
    };
    for (size_t i = 0; i < sizeof queue / sizeof queue[0]; i++) {
        cd_store_prompt p = make_prompt(queue[i].id, queue[i].user, queue[i].project);
        p.priority = queue[i].priority;
        assert_int_equal((i % 2 ? two : one)->ops->prompt_add(i % 2 ? two : one, &p, "{}"), 0);
    }
    cd_store_prompt *got = NULL;
    size_t n = 0;
    int64_t turn = -1;
    /* three slots: the teacher's first, then ann and bob in turn */
    assert_int_equal(one->ops->prompt_dispatch(one, "hub-1", 3, 0, 100, &got, &n, &turn), 0);
    assert_int_equal(n, 3);
    assert_string_equal(got[0].prompt_id, "t1");
    assert_string_equal(got[1].prompt_id, "a1");
    assert_string_equal(got[2].prompt_id, "b1");
    assert_string_equal(got[0].state, "dispatching");
    assert_string_equal(got[0].hub, "hub-1");
    assert_int_equal(turn, bob);
    free(got);
    /* the limit is across hubs: the other one finds no slot */
    assert_int_equal(two->ops->prompt_dispatch(two, "hub-2", 3, 0, 101, &got, &n, &turn), 0);
    assert_int_equal(n, 0);
    free(got);
    /* a slot frees: the next in turn after bob is ann */
    assert_int_equal(one->ops->prompt_set_state(one, "t1", "done", "", 102), 0);
    assert_int_equal(two->ops->prompt_dispatch(two, "hub-2", 3, 0, 103, &got, &n, &turn), 0);
    assert_int_equal(n, 1);
    assert_string_equal(got[0].prompt_id, "a2");
    assert_string_equal(got[0].hub, "hub-2");
    free(got);
    /* per-user limit 1: ann and bob each have one out, so nothing more even with room */
    assert_int_equal(one->ops->prompt_set_state(one, "a1", "done", "", 104), 0);
    assert_int_equal(one->ops->prompt_dispatch(one, "hub-1", 10, 1, 105, &got, &n, &turn), 0);
    assert_int_equal(n, 0);
    free(got);
    assert_int_equal(one->ops->prompt_dispatch(one, "hub-1", 10, 2, 106, &got, &n, &turn), 0);
    assert_int_equal(n, 2); /* b2, then a3: from the turn (ann) on, bob comes first */
    assert_string_equal(got[0].prompt_id, "b2");
    assert_string_equal(got[1].prompt_id, "a3");
    free(got);

    /* hub-1 goes silent: its prompts out go to whichever hub asks first, once */
    assert_int_equal(two->ops->prompt_take_over(two, "hub-1", "hub-2", &got, &n), 0);
    assert_int_equal(n, 3); /* b1, b2, a3 (a1 and t1 are done) */
    free(got);
    assert_int_equal(one->ops->prompt_take_over(one, "hub-1", "hub-3", &got, &n), 0);
    assert_int_equal(n, 0);
    free(got);
    cd_store_instance in = make_instance(pa, ann, 1);
    snprintf(in.hub, sizeof in.hub, "hub-1");
    assert_int_equal(one->ops->instance_put(one, &in), 0);
    assert_int_equal(two->ops->instance_take_over(two, pa, "hub-1", "hub-2"), 0);
    assert_int_equal(one->ops->instance_take_over(one, pa, "hub-1", "hub-3"), CD_STORE_NOT_FOUND);
    cd_store_instance back;
    assert_int_equal(one->ops->instance_by_project(one, pa, &back), 0);
    assert_string_equal(back.hub, "hub-2");

    /* beats: both hubs are listed with their times */
    assert_int_equal(one->ops->hub_beat(one, "hub-1", 5, 200), 0);
    assert_int_equal(two->ops->hub_beat(two, "hub-2", 6, 210), 0);
    assert_int_equal(one->ops->hub_beat(one, "hub-1", 5, 220), 0);
    cd_store_hub *hubs = NULL;
    assert_int_equal(two->ops->hub_list(two, &hubs, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(hubs[0].id, "hub-1");
    assert_int_equal(hubs[0].last_seen_at, 220);
    assert_int_equal(hubs[1].started_at, 6);
    free(hubs);
    cd_store_close(two);
}

/* Bytes that are not UTF-8 (a log line cut to fit `reason` inside a character) are stored on
 * both: SQLite keeps them as they are; PostgreSQL, which refuses them, gets '?' for each byte
 * that starts no character, at the same length, the valid text untouched. */
static void test_text_not_utf8(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t u = add_user(st, "ann", CD_ROLE_STUDENT), pr = add_project(st, u, "p");
    cd_store_instance in = make_instance(pr, u, 1);
    snprintf(in.reason, sizeof in.reason, "cut \xe4\xb8\xad\xe6\x96"); /* 中, then two bytes of 文 */
    snprintf(in.host, sizeof in.host, "h\xff");
    assert_int_equal(st->ops->instance_put(st, &in), 0);
    cd_store_instance got;
    assert_int_equal(st->ops->instance_get(st, in.id, &got), 0);
    assert_string_equal(got.reason, B == SQLITE ? "cut \xe4\xb8\xad\xe6\x96" : "cut \xe4\xb8\xad??");
    assert_string_equal(got.host, B == SQLITE ? "h\xff" : "h?");
    assert_string_equal(got.status, in.status);
}

/* COMFYD_HUB_STORE picks the backend; the log shows where, without a password. */
static void test_store_open_spec(void **state) {
    fixture *f = *state;
    int64_t u = add_user(f->st, "ann", CD_ROLE_STUDENT);
    cd_store_close(f->st);
    f->st = NULL;
    char spec[800], err[256] = "";
    cd_store *st = NULL;
    if (B == SQLITE) {
        snprintf(spec, sizeof spec, "sqlite:%s", f->path);
    } else { /* both schemes, the short one here */
        assert_true(!strncmp(f->uri, "postgresql://", 13));
        snprintf(spec, sizeof spec, "postgres://%s", f->uri + 13);
    }
    assert_int_equal(cd_store_open(spec, "/nonexistent-dir-cd", &st, err, sizeof err), 0);
    assert_string_equal(st->ops->name, B == SQLITE ? "sqlite" : "postgres");
    cd_store_user got;
    assert_int_equal(st->ops->user_get(st, u, &got), 0);
    assert_string_equal(got.name, "ann");
    cd_store_close(st);
    open_store(f);

    assert_int_equal(cd_store_open("mysql://db/hub", f->dir, &st, err, sizeof err), CD_STORE_ERROR);
    assert_null(st);
    assert_string_equal(err, "COMFYD_HUB_STORE: \"mysql://db/hub\" is neither sqlite:PATH nor a postgres:// URI");
    assert_int_equal(cd_store_open("sqlite:", f->dir, &st, err, sizeof err), CD_STORE_ERROR);
    if (B == SQLITE) { /* the default: DATA_DIR/hub.sqlite3 */
        assert_int_equal(cd_store_open("", f->dir, &st, err, sizeof err), 0);
        assert_string_equal(st->ops->name, "sqlite");
        cd_store_close(st);
        char p[128];
        snprintf(p, sizeof p, "%s/hub.sqlite3", f->dir);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        const char *suffixes[] = {"", "-wal", "-shm"};
        for (size_t i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/hub.sqlite3%s", f->dir, suffixes[i]);
            unlink(p);
        }
    }

    char where[256];
    cd_store_describe("", "/srv/hub", where, sizeof where);
    assert_string_equal(where, "/srv/hub/hub.sqlite3");
    cd_store_describe("sqlite:/var/lib/hub.db", "/srv/hub", where, sizeof where);
    assert_string_equal(where, "/var/lib/hub.db");
    cd_store_describe("postgres://ann:s3cret@db.example:5433/hub", "", where, sizeof where);
    assert_string_equal(where, "postgres://ann:***@db.example:5433/hub");
    cd_store_describe("postgresql://ann@db/hub?password=s3cret&sslmode=require", "", where, sizeof where);
    assert_string_equal(where, "postgresql://ann@db/hub?password=***&sslmode=require");
    cd_store_describe("postgresql:///hub?host=/run/pg", "", where, sizeof where);
    assert_string_equal(where, "postgresql:///hub?host=/run/pg");
}

typedef struct {
    const char *uri;
    pthread_barrier_t *start;
    int rc;
    char err[256];
} opener;

static void *open_at_once(void *arg) {
    opener *o = arg;
    cd_store *st = NULL;
    pthread_barrier_wait(o->start);
    o->rc = cd_store_pg_open(o->uri, &st, o->err, sizeof o->err);
    cd_store_close(st);
    return NULL;
}

/* Hubs opening one new database at once: each migration runs once (under an advisory lock),
 * every hub opens it. */
static void test_pg_concurrent_migrations(void **state) {
    fixture *f = *state;
    char db[96], uri[800];
    snprintf(db, sizeof db, "%s_race", f->db);
    pg_database("CREATE", db);
    uri_with_db(uri, sizeof uri, db);
    enum { N = 4 };
    pthread_t t[N];
    opener o[N];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        o[i] = (opener){.uri = uri, .start = &start};
        assert_int_equal(pthread_create(&t[i], NULL, open_at_once, &o[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < N; i++)
        if (o[i].rc) fail_msg("hub %d: %s", i, o[i].err);
    PGconn *c = pg_connect(uri);
    raw r = {.pg = c};
    assert_int_equal(raw_int(r, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(raw_int(r, "SELECT version FROM schema_version"), cd_store_sqlite_schema_version());
    PQfinish(c);
    pg_database("DROP", db);
}

static void terminate_store_connection(raw db) {
    /* OFFSET 0 keeps the filter apart from the call, which must never see this connection */
    assert_int_equal(raw_int(db, "SELECT count(*) FROM (SELECT pid FROM pg_stat_activity"
                                 " WHERE datname = current_database() AND application_name = 'comfyd hub'"
                                 " AND pid <> pg_backend_pid() OFFSET 0) s WHERE pg_terminate_backend(pid, 5000)"),
                     1);
}

/* The server drops the store's connection (a restart, an administrator): the operation that
 * finds it gone fails, the next one connects again. A group commit under way is lost with the
 * connection, and its commit says so rather than answering 0. */
static void test_pg_connection_lost(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t u = add_user(st, "ann", CD_ROLE_STUDENT), pr = add_project(st, u, "p");
    raw db = raw_open(f);

    terminate_store_connection(db);
    cd_store_user got;
    assert_int_equal(st->ops->user_get(st, u, &got), CD_STORE_ERROR);
    assert_string_not_equal(cd_store_error(st), "");
    assert_int_equal(st->ops->user_get(st, u, &got), 0);
    assert_string_equal(got.name, "ann");

    assert_int_equal(st->ops->batch_begin(st), 0);
    cd_store_prompt a = make_prompt("a", u, pr), b = make_prompt("b", u, pr);
    assert_int_equal(st->ops->prompt_add(st, &a, "{}"), 0);
    terminate_store_connection(db);
    assert_int_equal(st->ops->prompt_add(st, &b, "{}"), CD_STORE_ERROR);
    assert_int_equal(st->ops->batch_commit(st), CD_STORE_ERROR);
    assert_string_not_equal(cd_store_error(st), "");
    cd_store_prompt p;
    assert_int_equal(st->ops->prompt_get(st, "a", &p), CD_STORE_NOT_FOUND);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM prompts"), 0);
    assert_int_equal(st->ops->prompt_add(st, &a, "{}"), 0); /* and the store goes on */
    assert_int_equal(raw_int(db, "SELECT count(*) FROM prompts"), 1);
    raw_close(db);
}

/* Once the schema is there, a hub whose role may only read and write rows opens the store and
 * works (no CREATE in the schema, not the tables' owner). Needs a server user that may create
 * roles: skipped otherwise. */
static void test_pg_role_without_create(void **state) {
    fixture *f = *state;
    char role[96], sql[700], uri[900];
    snprintf(role, sizeof role, "%s_dml", f->db);
    raw db = raw_open(f);
    PGresult *r = PQexec(db.pg, "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user");
    bool may = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    if (!may) {
        raw_close(db);
        skip();
    }
    snprintf(sql, sizeof sql,
             "CREATE ROLE %s LOGIN; REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
             " GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s;"
             " GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %s",
             role, role, role);
    raw_exec(db, sql);
    snprintf(uri, sizeof uri, "%s&user=%s", f->uri, role);
    char err[256] = "";
    cd_store *st = NULL;
    int rc = cd_store_pg_open(uri, &st, err, sizeof err);
    if (rc) fail_msg("open as %s: %s", role, err);
    int64_t u = add_user(st, "ann", CD_ROLE_STUDENT);
    assert_true(add_project(st, u, "p") > 0);
    cd_store_close(st);
    snprintf(sql, sizeof sql, "DROP OWNED BY %s; DROP ROLE %s", role, role);
    raw_exec(db, sql);
    raw_close(db);
}

static cd_store_host make_host(const char *name, int n) {
    cd_store_host h;
    memset(&h, 0, sizeof h);
    snprintf(h.name, sizeof h.name, "%s", name);
    snprintf(h.address, sizeof h.address, "10.0.0.%d", n);
    snprintf(h.launcher, sizeof h.launcher, "ssh");
    snprintf(h.ssh_target, sizeof h.ssh_target, "comfy@gpu%d.lan", n);
    h.ssh_port = 2200 + n;
    snprintf(h.ssh_key, sizeof h.ssh_key, "/etc/comfyd/key%d", n);
    snprintf(h.ssh_options, sizeof h.ssh_options, "StrictHostKeyChecking=yes\nConnectTimeout=%d", n);
    snprintf(h.command, sizeof h.command, "comfyd serve --listen {listen} --port {port}");
    snprintf(h.base_dir, sizeof h.base_dir, "/srv/gpu%d", n);
    h.port_min = 9000 + n * 10;
    h.port_max = 9009 + n * 10;
    h.max_instances = n;
    snprintf(h.labels, sizeof h.labels, "gpu,a100-%d", n);
    h.disabled = n % 2 == 0;
    return h;
}

static void assert_host_equal(const cd_store_host *a, const cd_store_host *b) {
    assert_int_equal(a->id, b->id);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->address, b->address);
    assert_string_equal(a->launcher, b->launcher);
    assert_string_equal(a->ssh_target, b->ssh_target);
    assert_int_equal(a->ssh_port, b->ssh_port);
    assert_string_equal(a->ssh_key, b->ssh_key);
    assert_string_equal(a->ssh_options, b->ssh_options);
    assert_string_equal(a->command, b->command);
    assert_string_equal(a->base_dir, b->base_dir);
    assert_int_equal(a->port_min, b->port_min);
    assert_int_equal(a->port_max, b->port_max);
    assert_int_equal(a->max_instances, b->max_instances);
    assert_string_equal(a->labels, b->labels);
    assert_int_equal(a->disabled, b->disabled);
    assert_int_equal(a->created_at, b->created_at);
}

static void test_hosts(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t before = wall_ms();
    cd_store_host a = make_host("gpu1", 1), b = make_host("gpu2", 2);
    assert_int_equal(st->ops->host_create(st, &a), 0);
    assert_true(a.id > 0);
    assert_true(a.created_at >= before && a.created_at <= wall_ms());
    assert_int_equal(st->ops->host_create(st, &b), 0);
    cd_store_host dup = make_host("gpu1", 3);
    assert_int_equal(st->ops->host_create(st, &dup), CD_STORE_CONFLICT);

    cd_store_host got;
    assert_int_equal(st->ops->host_get(st, b.id, &got), 0);
    assert_host_equal(&got, &b);
    assert_int_equal(st->ops->host_get(st, 9999, &got), CD_STORE_NOT_FOUND);
    reopen_store(f); /* what was acknowledged is there after a restart */
    st = f->st;
    cd_store_host *list = NULL;
    size_t n = 0;
    assert_int_equal(st->ops->host_list(st, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_host_equal(&list[0], &a);
    assert_host_equal(&list[1], &b);
    free(list);

    cd_store_host upd = make_host("gpu1-renamed", 5);
    upd.id = a.id;
    upd.created_at = 42; /* not updated */
    assert_int_equal(st->ops->host_update(st, &upd), 0);
    assert_int_equal(st->ops->host_get(st, a.id, &got), 0);
    upd.created_at = a.created_at;
    assert_host_equal(&got, &upd);
    snprintf(upd.name, sizeof upd.name, "gpu2");
    assert_int_equal(st->ops->host_update(st, &upd), CD_STORE_CONFLICT);
    upd.id = 9999;
    snprintf(upd.name, sizeof upd.name, "gpu9");
    assert_int_equal(st->ops->host_update(st, &upd), CD_STORE_NOT_FOUND);

    assert_int_equal(st->ops->host_delete(st, a.id), 0);
    assert_int_equal(st->ops->host_delete(st, a.id), CD_STORE_NOT_FOUND);
    assert_int_equal(st->ops->host_list(st, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, b.id);
    free(list);
    /* a new host never takes a deleted one's id */
    cd_store_host c = make_host("gpu3", 3);
    assert_int_equal(st->ops->host_create(st, &c), 0);
    assert_true(c.id > b.id);
}

static void test_project_pin(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    int64_t ann = add_user(st, "ann", CD_ROLE_STUDENT);
    cd_store_project p = {.owner_id = ann};
    snprintf(p.name, sizeof p.name, "pinned");
    snprintf(p.pin, sizeof p.pin, "gpu");
    assert_int_equal(st->ops->project_create(st, &p), 0);
    int64_t plain = add_project(st, ann, "anywhere");
    cd_store_project got;
    assert_int_equal(st->ops->project_get(st, p.id, &got), 0);
    assert_string_equal(got.pin, "gpu");
    assert_int_equal(st->ops->project_get(st, plain, &got), 0);
    assert_string_equal(got.pin, "");
    /* no pin is NULL in the store, not an empty name */
    raw db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM projects WHERE pin IS NULL"), 1);
    raw_close(db);

    snprintf(got.name, sizeof got.name, "anywhere");
    snprintf(got.pin, sizeof got.pin, "gpu2");
    assert_int_equal(st->ops->project_update(st, &got), 0);
    cd_store_project again;
    assert_int_equal(st->ops->project_get(st, plain, &again), 0);
    assert_string_equal(again.pin, "gpu2");
    got.pin[0] = '\0';
    assert_int_equal(st->ops->project_update(st, &got), 0);
    assert_int_equal(st->ops->project_get(st, plain, &again), 0);
    assert_string_equal(again.pin, "");
    db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM projects WHERE pin IS NULL"), 1);
    raw_close(db);
}

/* A host's or a pin's array full to the last byte (no terminator) is stored whole, and a value
 * longer than the array in the store is cut to fit when read, as for users. */
static void test_host_strings_truncated(void **state) {
    fixture *f = *state;
    cd_store *st = f->st;
    cd_store_host h = make_host("x", 1);
    memset(h.name, 'n', sizeof h.name);
    memset(h.labels, 'l', sizeof h.labels);
    memset(h.ssh_options, 'o', sizeof h.ssh_options);
    assert_int_equal(st->ops->host_create(st, &h), 0);
    int64_t ann = add_user(st, "ann", CD_ROLE_STUDENT);
    cd_store_project p = {.owner_id = ann};
    snprintf(p.name, sizeof p.name, "p");
    memset(p.pin, 'p', sizeof p.pin);
    assert_int_equal(st->ops->project_create(st, &p), 0);
    raw db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT length(name) FROM hosts"), sizeof h.name);
    assert_int_equal(raw_int(db, "SELECT length(labels) FROM hosts"), sizeof h.labels);
    assert_int_equal(raw_int(db, "SELECT length(ssh_options) FROM hosts"), sizeof h.ssh_options);
    assert_int_equal(raw_int(db, "SELECT length(pin) FROM projects"), sizeof p.pin);
    raw_exec(db, B == SQLITE ? "UPDATE hosts SET address = printf('%.300c', 'a')"
                             : "UPDATE hosts SET address = repeat('a', 300)");
    raw_close(db);
    cd_store_host got;
    assert_int_equal(st->ops->host_get(st, h.id, &got), 0);
    assert_int_equal(strlen(got.name), sizeof got.name - 1);
    assert_int_equal(strlen(got.labels), sizeof got.labels - 1);
    assert_int_equal(strlen(got.ssh_options), sizeof got.ssh_options - 1);
    assert_int_equal(strlen(got.address), sizeof got.address - 1);
    assert_int_equal(got.address[0], 'a');
    cd_store_project pg;
    assert_int_equal(st->ops->project_get(st, p.id, &pg), 0);
    assert_int_equal(strlen(pg.pin), sizeof pg.pin - 1);
    assert_int_equal(pg.pin[0], 'p');
}

/* Migration 3 as comfyd released it for SQLite (hosts and projects.pin, before the PostgreSQL
 * backend), character for character: store_schema.c's SQLite expansion must stay this text,
 * and a file an earlier comfyd brought to version 3 with it opens and works. */
static const char released_migration_3[] =
    "CREATE TABLE hosts ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  address TEXT NOT NULL,"
    "  launcher TEXT NOT NULL CHECK (launcher IN ('ssh')),"
    "  ssh_target TEXT NOT NULL,"
    "  ssh_port INTEGER NOT NULL,"
    "  ssh_key TEXT NOT NULL,"
    "  ssh_options TEXT NOT NULL,"
    "  command TEXT NOT NULL,"
    "  base_dir TEXT NOT NULL,"
    "  port_min INTEGER NOT NULL,"
    "  port_max INTEGER NOT NULL,"
    "  max_instances INTEGER NOT NULL,"
    "  labels TEXT NOT NULL,"
    "  disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),"
    "  created_at INTEGER NOT NULL);"
    "ALTER TABLE projects ADD COLUMN pin TEXT;";

/* What migrations 4 and later (several hubs) added, taken away again: a store as version 3 left
 * it (migration 5's function is created or replaced, and stays). */
#define UNDO_MIGRATION_4                                                                        \
    "DROP INDEX IF EXISTS prompts_out; DROP INDEX IF EXISTS prompts_priority; DROP TABLE hubs;"        \
    " DROP TABLE queue_turn; DROP INDEX IF EXISTS prompts_queued;"                                 \
    " ALTER TABLE prompts DROP COLUMN hub; ALTER TABLE instances DROP COLUMN hub"

static void test_sqlite_released_schema_3(void **state) {
    fixture *f = *state;
    char *sql = cd_store_schema_migration(2, CD_DIALECT_SQLITE);
    assert_non_null(sql);
    assert_string_equal(sql, released_migration_3);
    free(sql);

    int64_t ann = add_user(f->st, "ann", CD_ROLE_STUDENT);
    cd_store_close(f->st);
    f->st = NULL;
    raw db = raw_open(f); /* as the earlier comfyd left it: version 3 by the released text */
    raw_exec(db, UNDO_MIGRATION_4);
    raw_exec(db, "DROP TABLE hosts; ALTER TABLE projects DROP COLUMN pin; PRAGMA user_version = 2");
    raw_exec(db, released_migration_3);
    raw_exec(db, "PRAGMA user_version = 3");
    raw_exec(db, "INSERT INTO projects (owner_id, name, created_at, updated_at, pin) VALUES (1, 'old', 1, 1, 'gpu')");
    raw_close(db);
    open_store(f);
    cd_store *st = f->st;
    cd_store_project *list = NULL;
    size_t n = 0;
    assert_int_equal(st->ops->project_list(st, ann, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].pin, "gpu");
    free(list);
    cd_store_host h = make_host("gpu1", 1), got;
    assert_int_equal(st->ops->host_create(st, &h), 0);
    assert_int_equal(st->ops->host_get(st, h.id, &got), 0);
    assert_host_equal(&got, &h);
    db = raw_open(f);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), cd_store_schema_version());
    raw_close(db);
}

/* A store written by the schema before hosts (version 2) gains the table and the column, and
 * its projects keep no pin. */
static void test_migration_to_hosts(void **state) {
    fixture *f = *state;
    int64_t ann = add_user(f->st, "ann", CD_ROLE_STUDENT);
    int64_t pid = add_project(f->st, ann, "old");
    cd_store_close(f->st);
    f->st = NULL;
    raw db = raw_open(f);
    raw_exec(db, UNDO_MIGRATION_4);
    raw_exec(db, B == SQLITE ? "DROP TABLE hosts; ALTER TABLE projects DROP COLUMN pin; PRAGMA user_version = 2"
                             : "DROP TABLE hosts; ALTER TABLE projects DROP COLUMN pin;"
                               " UPDATE schema_version SET version = 2");
    raw_close(db);
    open_store(f);
    db = raw_open(f);
    assert_int_equal(raw_int(db, version_sql()), cd_store_sqlite_schema_version());
    assert_int_equal(raw_int(db, "SELECT count(*) FROM hosts"), 0);
    raw_close(db);
    cd_store_project p;
    assert_int_equal(f->st->ops->project_get(f->st, pid, &p), 0);
    assert_string_equal(p.name, "old");
    assert_string_equal(p.pin, "");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define COMMON_TESTS                          \
    T(test_migrations_and_reopen),            \
    T(test_newer_version_refused),            \
    cmocka_unit_test(test_open_error),        \
    T(test_users),                            \
    T(test_strings_truncated),                \
    T(test_tokens),                           \
    T(test_projects),                         \
    T(test_instances),                        \
    T(test_cascades),                         \
    T(test_login_failures),                   \
    T(test_audit),                            \
    T(test_prompt_batches),                   \
    T(test_prompt_claim),                     \
    T(test_text_not_utf8),                    \
    T(test_store_open_spec),                  \
    T(test_hosts),                            \
    T(test_project_pin),                      \
    T(test_host_strings_truncated),           \
    T(test_migration_to_hosts)

/* A server of the test's own, in a directory that stop_server removes. */
static int start_server(char *dir, size_t dirlen) {
    snprintf(dir, dirlen, "/tmp/cd-pg-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s/tests/pg/start.sh' '%s'", CD_SOURCE_DIR, dir);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    bool got = fgets(pg_base, sizeof pg_base, p) != NULL;
    int status = pclose(p);
    pg_base[strcspn(pg_base, "\n")] = '\0';
    return got && status == 0 && pg_base[0] ? 0 : -1;
}

static void stop_server(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s/tests/pg/stop.sh' '%s'", CD_SOURCE_DIR, dir);
    if (system(cmd) != 0) fprintf(stderr, "hub_store: %s failed\n", cmd);
}

int main(void) {
    const struct CMUnitTest sqlite_tests[] = {COMMON_TESTS, T(test_wal_mode), T(test_sqlite_released_schema_3)};
    const struct CMUnitTest pg_tests[] = {COMMON_TESTS, T(test_pg_concurrent_migrations), T(test_pg_connection_lost),
                                           T(test_pg_role_without_create), T(test_pg_claim_across_hubs),
                                           T(test_pg_shared_dispatch)};
    B = SQLITE;
    int failed = cmocka_run_group_tests_name("hub_store_sqlite", sqlite_tests, NULL, NULL);

    const char *mode = getenv("COMFYD_TEST_PG"), *url = getenv("COMFYD_TEST_PG_URL");
    if (mode && !strcmp(mode, "skip")) {
        fprintf(stderr, "hub_store: COMFYD_TEST_PG=skip: the PostgreSQL cases did not run\n");
        return failed;
    }
    char dir[64] = "";
    if (url && *url) {
        snprintf(pg_base, sizeof pg_base, "%s", url);
    } else if (start_server(dir, sizeof dir) < 0) {
        fprintf(stderr, "hub_store: cannot start a PostgreSQL server (tests/pg/start.sh); set COMFYD_TEST_PG_URL,"
                        " or COMFYD_TEST_PG=skip\n");
        if (dir[0]) stop_server(dir);
        return 1;
    }
    B = POSTGRES;
    failed += cmocka_run_group_tests_name("hub_store_postgres", pg_tests, NULL, NULL);
    if (dir[0]) stop_server(dir);
    return failed;
}
