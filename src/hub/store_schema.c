/* The migrations of the hub's store (store_schema.h), in both dialects. */
#include "hub/store_schema.h"

#include <string.h>

#include "base/buf.h"

/* What differs between the dialects, and nothing else:
 *   {id}    a key that is never reused: SQLite's AUTOINCREMENT (its plain rowid may reuse the
 *           largest id after a delete); PostgreSQL's identity column (a sequence never goes back).
 *   {int}   a 64-bit integer: SQLite's INTEGER already is one; PostgreSQL's is 32 bits.
 *   {clustered} a table keyed by its text primary key alone: SQLite's WITHOUT ROWID; PostgreSQL
 *           has no such choice and needs nothing. */
typedef struct {
    const char *word, *sqlite, *postgres;
} dialect_word;

static const dialect_word words[] = {
    {"{id}", "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"},
    {"{int}", "INTEGER", "BIGINT"},
    {"{clustered}", " WITHOUT ROWID", ""},
    /* {postgres}…{/postgres}: text for PostgreSQL alone (SQLite has no server-side functions);
     * {sqlite}…{/sqlite}: for SQLite alone. A migration may be empty in one dialect. */
    {"{postgres}", "", ""},
    {"{/postgres}", "", ""},
    {"{sqlite}", "", ""},
    {"{/sqlite}", "", ""},
};

/* Ids are never reused so that a stale reference (an audit line, a URL, an instance's user_id)
 * never comes to mean a newer user or project. Roles and token kinds are spelled out, as the API
 * spells them, so the database reads without this source at hand. */
static const char *const migrations[] = {
    /* 1: the first schema. */
    "CREATE TABLE users ("
    "  id {id},"
    "  name TEXT NOT NULL UNIQUE," /* byte-wise: "Ann" and "ann" are two users */
    "  password_hash TEXT NOT NULL,"
    "  role TEXT NOT NULL CHECK (role IN ('student', 'teacher', 'admin')),"
    "  disabled {int} NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),"
    "  created_at {int} NOT NULL);"
    "CREATE TABLE tokens ("
    "  hash TEXT PRIMARY KEY,"
    "  user_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('session', 'api')),"
    "  name TEXT NOT NULL DEFAULT '',"
    "  created_at {int} NOT NULL,"
    "  expires_at {int} NOT NULL DEFAULT 0){clustered};"
    /* The cascade from users and token_delete_user look tokens up by user. */
    "CREATE INDEX tokens_user ON tokens(user_id, kind);"
    "CREATE INDEX tokens_expiry ON tokens(expires_at) WHERE expires_at > 0;"
    "CREATE TABLE projects ("
    "  id {id},"
    "  owner_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  created_at {int} NOT NULL,"
    "  updated_at {int} NOT NULL);"
    "CREATE INDEX projects_owner ON projects(owner_id, id);"
    /* user_id has no foreign key: it records who started the instance (0 allowed), and the
     * record goes with its project, which goes with its owner. */
    "CREATE TABLE instances ("
    "  id {id},"
    "  project_id {int} NOT NULL UNIQUE REFERENCES projects(id) ON DELETE CASCADE,"
    "  user_id {int} NOT NULL,"
    "  host TEXT NOT NULL,"
    "  address TEXT NOT NULL,"
    "  port INTEGER NOT NULL,"
    "  pid INTEGER NOT NULL,"
    "  status TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  base_dir TEXT NOT NULL,"
    "  log_path TEXT NOT NULL,"
    "  started_at {int} NOT NULL,"
    "  last_seen_at {int} NOT NULL,"
    "  last_activity_at {int} NOT NULL,"
    "  crash_count INTEGER NOT NULL);"
    "CREATE TABLE login_failures ("
    "  name TEXT PRIMARY KEY,"
    "  count INTEGER NOT NULL,"
    "  last_at {int} NOT NULL){clustered};"
    /* No foreign key: the log outlives the users it names. Paging walks the id. */
    "CREATE TABLE audit ("
    "  id {id},"
    "  at {int} NOT NULL,"
    "  user_id {int} NOT NULL,"
    "  username TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  target TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  ip TEXT NOT NULL);",
    /* 2: the admission queue. Finished prompts stay (history of who ran what, and a prompt_id
     * is never reused); the partial index keeps the active ones quick to find. */
    "CREATE TABLE prompts ("
    "  seq {id},"
    "  prompt_id TEXT NOT NULL UNIQUE,"
    "  user_id {int} NOT NULL,"
    "  project_id {int} NOT NULL,"
    "  priority INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  client_id TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_at {int} NOT NULL,"
    "  dispatched_at {int} NOT NULL DEFAULT 0,"
    "  finished_at {int} NOT NULL DEFAULT 0,"
    "  reason TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX prompts_active ON prompts(seq) WHERE state IN ('queued', 'dispatching', 'running');",
    /* 3: hosts other than the implicit local one, and a project's pin to a host or a label
     * (NULL: placed on any host). ssh_options holds one Key=Value per line. */
    "CREATE TABLE hosts ("
    "  id {id},"
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
    "  disabled {int} NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),"
    "  created_at {int} NOT NULL);"
    "ALTER TABLE projects ADD COLUMN pin TEXT;",
    /* 4: several hubs on one database (PostgreSQL). Each hub beats in hubs; a prompt out at an
     * instance names the hub that sent it and watches it, an instance the hub that supervises
     * it ("" on a hub alone), so that the others take them over when it goes silent. The turn
     * of the round-robin is shared, and the queued prompts are found by user in order. */
    "CREATE TABLE hubs ("
    "  id TEXT PRIMARY KEY,"
    "  started_at {int} NOT NULL,"
    "  last_seen_at {int} NOT NULL){clustered};"
    "CREATE TABLE queue_turn ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  last_user {int} NOT NULL);"
    "INSERT INTO queue_turn (id, last_user) VALUES (1, 0);"
    "ALTER TABLE prompts ADD COLUMN hub TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE instances ADD COLUMN hub TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX prompts_queued ON prompts(user_id, seq) WHERE state = 'queued';",
    /* 5: several hubs' dispatch as one function on the server (store.h prompt_dispatch), so
     * that it is one round trip from a hub rather than ten. PostgreSQL only: a SQLite file has
     * one hub, which chooses in memory. Under the lock every hub's dispatch takes: count the
     * prompts out across all hubs, take the priority ones by seq, then one per user in turn
     * from the user after the shared turn, skipping a user at p_per_user (0: no limit), until
     * p_max are out; returns the prompts taken (PROMPT_COLS, then the turn). */
    "{postgres}"
    "CREATE OR REPLACE FUNCTION comfyd_dispatch(p_hub TEXT, p_max BIGINT, p_per_user BIGINT, p_now BIGINT)"
    " RETURNS TABLE (r_seq BIGINT, r_prompt_id TEXT, r_user_id BIGINT, r_project_id BIGINT, r_priority INTEGER,"
    "  r_state TEXT, r_client_id TEXT, r_created_at BIGINT, r_dispatched_at BIGINT, r_finished_at BIGINT,"
    "  r_reason TEXT, r_hub TEXT, r_turn BIGINT)"
    " LANGUAGE plpgsql AS $$\n"
    "DECLARE\n"
    "  v_running BIGINT; v_turn BIGINT; v_cursor BIGINT; v_user BIGINT; v_skipped BIGINT := -1;\n"
    "  v_seq BIGINT; v_taken BIGINT[] := ARRAY[]::BIGINT[]; v_start BIGINT;\n"
    "BEGIN\n"
    "  PERFORM pg_advisory_xact_lock(7164207397838061570);\n"
    "  SELECT count(*) INTO v_running FROM prompts p WHERE p.state IN ('dispatching', 'running');\n"
    "  SELECT q.last_user INTO v_turn FROM queue_turn q WHERE q.id = 1;\n"
    "  v_start := v_turn;\n"
    "  FOR v_seq, v_user IN SELECT p.seq, p.user_id FROM prompts p\n"
    "      WHERE p.state = 'queued' AND p.priority <> 0 ORDER BY p.seq LIMIT 64 LOOP\n"
    "    EXIT WHEN v_running >= p_max;\n"
    "    CONTINUE WHEN p_per_user > 0 AND (SELECT count(*) FROM prompts o WHERE o.user_id = v_user\n"
    "      AND o.state IN ('dispatching', 'running')) >= p_per_user;\n"
    "    UPDATE prompts p SET state = 'dispatching', hub = p_hub, reason = '',\n"
    "      dispatched_at = CASE WHEN p.dispatched_at = 0 THEN p_now ELSE p.dispatched_at END\n"
    "      WHERE p.seq = v_seq AND p.state = 'queued';\n"
    "    IF FOUND THEN v_running := v_running + 1; v_taken := v_taken || v_seq; END IF;\n"
    "  END LOOP;\n"
    "  v_cursor := v_turn;\n"
    "  WHILE v_running < p_max LOOP\n"
    "    SELECT min(p.user_id) INTO v_user FROM prompts p\n"
    "      WHERE p.state = 'queued' AND p.priority = 0 AND p.user_id > v_cursor;\n"
    "    IF v_user IS NULL THEN\n"
    "      EXIT WHEN v_cursor = 0;\n"
    "      v_cursor := 0;\n"
    "      CONTINUE;\n"
    "    END IF;\n"
    "    EXIT WHEN v_user = v_skipped;\n"
    "    v_cursor := v_user;\n"
    "    IF p_per_user > 0 AND (SELECT count(*) FROM prompts o WHERE o.user_id = v_user\n"
    "        AND o.state IN ('dispatching', 'running')) >= p_per_user THEN\n"
    "      IF v_skipped < 0 THEN v_skipped := v_user; END IF;\n"
    "      CONTINUE;\n"
    "    END IF;\n"
    "    SELECT p.seq INTO v_seq FROM prompts p\n"
    "      WHERE p.state = 'queued' AND p.priority = 0 AND p.user_id = v_user ORDER BY p.seq LIMIT 1;\n"
    "    CONTINUE WHEN v_seq IS NULL;\n"
    "    UPDATE prompts p SET state = 'dispatching', hub = p_hub, reason = '',\n"
    "      dispatched_at = CASE WHEN p.dispatched_at = 0 THEN p_now ELSE p.dispatched_at END\n"
    "      WHERE p.seq = v_seq AND p.state = 'queued';\n"
    "    IF FOUND THEN\n"
    "      v_running := v_running + 1; v_taken := v_taken || v_seq; v_turn := v_user; v_skipped := -1;\n"
    "    END IF;\n"
    "  END LOOP;\n"
    "  IF v_turn <> v_start THEN UPDATE queue_turn SET last_user = v_turn WHERE id = 1; END IF;\n"
    "  IF cardinality(v_taken) > 0 THEN PERFORM pg_notify('comfyd_queue', p_hub); END IF;\n"
    "  RETURN QUERY SELECT p.seq, p.prompt_id, p.user_id, p.project_id, p.priority, p.state, p.client_id,\n"
    "    p.created_at, p.dispatched_at, p.finished_at, p.reason, p.hub, v_turn\n"
    "    FROM prompts p WHERE p.seq = ANY (v_taken) ORDER BY array_position(v_taken, p.seq);\n"
    "END\n"
    "$$;"
    "{/postgres}",
    /* 6: what every dispatch looks at, found without reading the queue's thousands waiting
     * (prompts_active holds those too): the prompts out at instances (counted across all hubs,
     * and per user) and the queued priority prompts (teachers', front: true; few). */
    ("CREATE INDEX prompts_out ON prompts(user_id) WHERE state IN ('dispatching', 'running');"
     "CREATE INDEX prompts_priority ON prompts(seq) WHERE state = 'queued' AND priority <> 0;"),
    /* 7: a SQLite file has one hub, which keeps the queue in memory and reads these three never
     * (only comfyd_dispatch on PostgreSQL does); each cost every enqueued prompt a page write
     * more (prompts_queued: one region per user) and every dispatch and end two. */
    ("{sqlite}"
     "DROP INDEX IF EXISTS prompts_queued; DROP INDEX IF EXISTS prompts_out; DROP INDEX IF EXISTS prompts_priority;"
     "{/sqlite}"),
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int cd_store_schema_version(void) {
    return N_MIGRATIONS;
}

static const dialect_word *word_at(const char *p) {
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strncmp(p, words[i].word, strlen(words[i].word))) return &words[i];
    return NULL;
}

char *cd_store_schema_migration(int i, cd_store_dialect dialect) {
    if (i < 0 || i >= N_MIGRATIONS) return NULL;
    /* the other dialect's own text is skipped up to its closing word */
    const char *other_open = dialect == CD_DIALECT_SQLITE ? "{postgres}" : "{sqlite}";
    const char *other_close = dialect == CD_DIALECT_SQLITE ? "{/postgres}" : "{/sqlite}";
    cd_buf b = {0};
    for (const char *p = migrations[i]; *p;) {
        const dialect_word *w = *p == '{' ? word_at(p) : NULL;
        if (w && !strcmp(w->word, other_open)) {
            const char *end = strstr(p, other_close);
            p = end ? end + strlen(other_close) : p + strlen(p);
            continue;
        }
        int rc = w ? cd_buf_append_str(&b, dialect == CD_DIALECT_SQLITE ? w->sqlite : w->postgres)
                   : cd_buf_append(&b, p, 1);
        if (rc < 0) {
            cd_buf_free(&b);
            return NULL;
        }
        p += w ? strlen(w->word) : 1;
    }
    return cd_buf_take(&b);
}
