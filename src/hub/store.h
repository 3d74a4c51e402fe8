/* The hub's store: everything the hub knows lives here, never only in memory, so that a hub
 * killed at any moment loses nothing it acknowledged. Users, sessions and API tokens, projects,
 * the hosts instances run on, their instances, failed-login counters and the audit log.
 *
 * This header is the interface; store_sqlite.c is the embedded backend (SQLite in WAL mode) and
 * store_pg.c the same operations on a PostgreSQL server, both with the numbered migrations of
 * store_schema.c. cd_store_open picks one from the COMFYD_HUB_STORE setting; callers then go
 * through the backend's table (st->ops) and the cd_store_* wrappers below.
 *
 * Calls are synchronous and short (one statement or one small transaction); the hub makes them
 * on its loop thread. Every call returns 0, CD_STORE_NOT_FOUND, CD_STORE_CONFLICT (a unique
 * name taken), or CD_STORE_ERROR with a message that cd_store_error() tells until the next
 * call. Times are Unix milliseconds. Strings are copied into the records' fixed arrays, which
 * are sized for the limits the API enforces (names of 64 bytes, paths of 1 KiB). */
#ifndef CD_HUB_STORE_H
#define CD_HUB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CD_STORE_NOT_FOUND (-2)
#define CD_STORE_CONFLICT (-3)
#define CD_STORE_ERROR (-1)

typedef enum { CD_ROLE_STUDENT = 0, CD_ROLE_TEACHER = 1, CD_ROLE_ADMIN = 2 } cd_role;

typedef struct {
    int64_t id;
    char name[65];
    char password_hash[128]; /* libsodium's argon2id string (crypto_pwhash_STRBYTES) */
    cd_role role;
    bool disabled;
    int64_t created_at;
} cd_store_user;

/* A session (cookie) or an API token (Bearer). Only the SHA-256 of the secret is stored. */
typedef enum { CD_TOKEN_SESSION = 0, CD_TOKEN_API = 1 } cd_token_kind;
typedef struct {
    char hash[65]; /* lowercase hex of SHA-256(secret) */
    int64_t user_id;
    cd_token_kind kind;
    char name[65]; /* API tokens: what the user called it */
    int64_t created_at;
    int64_t expires_at; /* 0: never */
} cd_store_token;

typedef struct {
    int64_t id;
    int64_t owner_id;
    char name[129];
    int64_t created_at, updated_at;
    char pin[65]; /* a host's name or a label its instance must run on; "" (NULL in the store): any host */
} cd_store_project;

/* A machine instances run on (besides the implicit "local", which the settings describe). The
 * launcher says how instances are started there: "ssh" (OpenSSH with the operator's key). */
typedef struct {
    int64_t id;
    char name[65];
    char address[65];    /* IP literal: instances listen on it and the hub connects to it */
    char launcher[17];   /* "ssh" */
    char ssh_target[129]; /* [user@]host as ssh takes it */
    int ssh_port;
    char ssh_key[1024];   /* identity file ("" : ssh's default) */
    char ssh_options[1024]; /* extra -o Key=Value, one per line */
    char command[1024];   /* the instance command template there ("" : the hub's) */
    char base_dir[1024];  /* instance directories there ("" : the hub's) */
    int port_min, port_max;
    int max_instances;   /* 0: as many as the port range holds */
    char labels[257];    /* comma-separated, e.g. "gpu,a100" */
    bool disabled;       /* no new instances are placed there */
    int64_t created_at;
} cd_store_host;

/* One instance per project (project_id is unique): where it runs and how it is. */
typedef struct {
    int64_t id;
    int64_t project_id;
    int64_t user_id;    /* the project owner when it was started (the seed's second check) */
    char host[65];      /* the launcher's host: "local" for child processes of the hub */
    char address[65];   /* what the hub connects to: COMFYUI_LISTEN, "127.0.0.1" */
    int port;           /* 0 when none */
    int pid;            /* 0 when none */
    char status[17];    /* stopped, starting, online, offline, crashed, failed */
    char reason[512];   /* why it is stopped, offline or failed ("" when nothing to say) */
    char base_dir[1024];
    char log_path[1024];
    int64_t started_at, last_seen_at, last_activity_at;
    int crash_count;    /* crashes in a row since it was last online for a while */
    char hub[65];       /* the hub that supervises it ("" : a hub alone on its store) */
} cd_store_instance;

typedef struct {
    int64_t id;
    int64_t at;
    int64_t user_id; /* 0: nobody logged in (a failed login) */
    char username[65];
    char action[33];  /* login, login_failed, logout, user_create, user_update, user_delete,
                         token_create, project_create, project_update, project_delete,
                         open, stop, instance_exit, ... */
    char target[129]; /* what it acted on: "user 3", "project 7" */
    char detail[512];
    char ip[65];
} cd_store_audit;

/* A prompt held by the admission queue (part 3): from its acceptance until it ended. States:
 * queued (waiting for a slot), dispatching (being sent to its instance: on a restart, the
 * instance is asked whether it has it), running, done, failed, cancelled. */
typedef struct {
    int64_t seq; /* arrival order */
    char prompt_id[129];
    int64_t user_id, project_id;
    int priority; /* 1: goes first (teachers, front: true) */
    char state[16];
    char client_id[129];
    int64_t created_at, dispatched_at, finished_at;
    char reason[512];
    char hub[65]; /* while dispatching or running: the hub that sent it and watches it ("" : a hub alone) */
} cd_store_prompt;

/* A hub sharing the store with others (several hubs on one PostgreSQL): it beats every second. */
typedef struct {
    char id[65];
    int64_t started_at, last_seen_at;
} cd_store_hub;

typedef struct cd_store cd_store;

/* The backend's table. Lists return a malloc'd array (caller frees) and its length. */
typedef struct {
    const char *name; /* "sqlite", "postgres" */
    void (*close)(cd_store *st);
    const char *(*error)(const cd_store *st);

    int (*user_create)(cd_store *st, cd_store_user *u); /* sets u->id; CONFLICT on a taken name */
    int (*user_get)(cd_store *st, int64_t id, cd_store_user *out);
    int (*user_by_name)(cd_store *st, const char *name, cd_store_user *out);
    int (*user_list)(cd_store *st, cd_store_user **out, size_t *n); /* by id */
    int (*user_update)(cd_store *st, const cd_store_user *u);       /* every field but id, created_at */
    /* Deletes the user with their tokens, projects and instance records. */
    int (*user_delete)(cd_store *st, int64_t id);
    int (*user_count)(cd_store *st, int64_t *n);

    int (*token_create)(cd_store *st, const cd_store_token *t);
    /* The token of that hash, if it has not expired at `now`. */
    int (*token_get)(cd_store *st, const char *hash, int64_t now, cd_store_token *out);
    int (*token_delete)(cd_store *st, const char *hash);
    /* Removes every token of a user of that kind (a disabled user, a password reset). */
    int (*token_delete_user)(cd_store *st, int64_t user_id, cd_token_kind kind);
    /* Removes tokens that expired before now. */
    int (*token_prune)(cd_store *st, int64_t now);

    int (*project_create)(cd_store *st, cd_store_project *p); /* sets id and the times */
    int (*project_get)(cd_store *st, int64_t id, cd_store_project *out);
    /* owner_id 0: every project. By id. */
    int (*project_list)(cd_store *st, int64_t owner_id, cd_store_project **out, size_t *n);
    int (*project_update)(cd_store *st, const cd_store_project *p); /* name, pin, updated_at */
    /* Deletes the project and its instance record. */
    int (*project_delete)(cd_store *st, int64_t id);

    /* Hosts: create sets h->id (CONFLICT on a taken name); update changes every field but id
     * and created_at; list is by id. */
    int (*host_create)(cd_store *st, cd_store_host *h);
    int (*host_get)(cd_store *st, int64_t id, cd_store_host *out);
    int (*host_list)(cd_store *st, cd_store_host **out, size_t *n);
    int (*host_update)(cd_store *st, const cd_store_host *h);
    int (*host_delete)(cd_store *st, int64_t id);

    /* Inserts or replaces the record of i->project_id; sets i->id (kept across replaces).
     * last_activity_at never goes back (another hub may have recorded a later use).
     * PostgreSQL, several hubs: CONFLICT when the record names another hub and a process (that
     * hub has taken it over), so that two hubs never both write one instance's record. */
    int (*instance_put)(cd_store *st, cd_store_instance *i);
    int (*instance_get)(cd_store *st, int64_t id, cd_store_instance *out);
    int (*instance_by_project)(cd_store *st, int64_t project_id, cd_store_instance *out);
    int (*instance_list)(cd_store *st, cd_store_instance **out, size_t *n); /* by id */

    /* Failed logins per user name (names that do not exist count too, so that the delay does
     * not tell which names exist). */
    int (*login_failures_get)(cd_store *st, const char *name, int *count, int64_t *last_at);
    int (*login_failures_set)(cd_store *st, const char *name, int count, int64_t last_at);
    int (*login_failures_clear)(cd_store *st, const char *name);

    int (*audit_add)(cd_store *st, cd_store_audit *a); /* sets a->id */
    /* Newest first: at most limit entries with id < before_id (before_id 0: from the newest). */
    int (*audit_list)(cd_store *st, int64_t before_id, size_t limit, cd_store_audit **out, size_t *n);

    /* The admission queue. add sets p->seq (CONFLICT: that prompt_id is taken); body is the JSON
     * text the instance gets. */
    int (*prompt_add)(cd_store *st, cd_store_prompt *p, const char *body);
    int (*prompt_get)(cd_store *st, const char *prompt_id, cd_store_prompt *out);
    /* The body (malloc'd, caller frees). */
    int (*prompt_body)(cd_store *st, const char *prompt_id, char **body);
    /* Queued, dispatching and running prompts, by seq. */
    int (*prompt_list_active)(cd_store *st, cd_store_prompt **out, size_t *n);
    /* Moves a prompt to state with a reason at time at (dispatched_at for dispatching/running,
     * finished_at for done/failed/cancelled). Several hubs: NOT_FOUND for a prompt out for
     * another hub than the one set_hub named. */
    int (*prompt_set_state)(cd_store *st, const char *prompt_id, const char *state, const char *reason, int64_t at);
    /* Moves a prompt from state `from` to `to` (the times as prompt_set_state sets them, the
     * reason cleared) only if it is in `from`: the atomic claim with which one of several hubs
     * sharing a database would take a prompt to dispatch. CONFLICT when it is in another state,
     * or (PostgreSQL) another transaction holds its row, without waiting for that one (SKIP
     * LOCKED); NOT_FOUND when there is no such prompt. A queue write: it joins a batch. */
    int (*prompt_claim)(cd_store *st, const char *prompt_id, const char *from, const char *to, int64_t at);

    /* Several hubs on one database: PostgreSQL only (NULL in the SQLite backend, whose file
     * one hub owns). set_hub names this hub: the queue's and instances' changes it commits are
     * announced to the other hubs with NOTIFY (channels comfyd_queue and comfyd_instances, the
     * hub's id as payload; store_listen.h hears them). */
    void (*set_hub)(cd_store *st, const char *hub_id);
    /* Records that the hub is alive at now (inserting it, with started_at, the first time). */
    int (*hub_beat)(cd_store *st, const char *hub_id, int64_t started_at, int64_t now);
    int (*hub_list)(cd_store *st, cd_store_hub **out, size_t *n);
    /* Takes queued prompts for free slots, in the queue's order, for hub: the priority ones by
     * seq, then one per user in turn from the user after the shared turn's last one, a user with
     * max_per_user prompts out skipped (0: no limit), until max_running prompts are dispatching
     * or running across all hubs. One transaction under a lock that every hub's dispatch takes,
     * committed (and durable) before it returns: each prompt is taken by exactly one hub and
     * the limit holds across them. Commits an open batch first. Returns the prompts taken (now
     * dispatching, hub set) and the turn's last user. */
    int (*prompt_dispatch)(cd_store *st, const char *hub_id, int max_running, int max_per_user, int64_t now,
                           cd_store_prompt **out, size_t *n, int64_t *last_user);
    /* Gives the prompts out of a silent hub to another (dispatching and running ones): returns
     * those this call moved, so that of two hubs taking over at once each gets its own. */
    int (*prompt_take_over)(cd_store *st, const char *from_hub, const char *to_hub, cd_store_prompt **out,
                            size_t *n);
    /* The round-robin's last user, as the last dispatch of any hub left it. */
    int (*queue_turn)(cd_store *st, int64_t *last_user);
    /* Moves the project's instance record from a silent hub to another: 0, or NOT_FOUND when it
     * is no longer that hub's (another took it first). */
    int (*instance_take_over)(cd_store *st, int64_t project_id, const char *from_hub, const char *to_hub);
    /* Records a use of the project's instance through another hub than its supervisor's (its
     * idle time counts from the latest use through any hub). */
    int (*instance_touch)(cd_store *st, int64_t project_id, int64_t at);

    /* Group commit (the admission queue's writes of a loop turn): the writes between begin and
     * commit are one transaction. Its commit is atomic and survives the process being killed,
     * but is not yet on disk: that takes a sync, which covers every commit before it, so many
     * turns share one. A write that fails inside it (a CONFLICT) leaves the others in; rollback
     * drops them all. Writes of other kinds (accounts, projects, instances) made while a batch
     * is open commit it first, and are on disk when they return, as always. begin in a batch and
     * commit outside one do nothing. */
    int (*batch_begin)(cd_store *st);
    int (*batch_commit)(cd_store *st);
    void (*batch_rollback)(cd_store *st);
    /* Makes every commit so far durable. Uses no connection: may run on any thread, while the
     * owner thread goes on. Returns 0 or a negative errno. */
    int (*sync)(cd_store *st);
} cd_store_ops;

struct cd_store {
    const cd_store_ops *ops;
};

/* Opens (creating if needed) the SQLite store at path and brings its schema up to date by
 * running the migrations it has not run yet, each in its own transaction. Returns 0 and the
 * store, or CD_STORE_ERROR with a message in err. */
int cd_store_sqlite_open(const char *path, cd_store **out, char *err, size_t errlen);
/* The schema version a store opened by this binary has (the number of migrations). */
int cd_store_sqlite_schema_version(void);

/* Connects to the PostgreSQL database of a libpq connection URI (postgres://… or
 * postgresql://…) and brings its schema up to date as the SQLite store does; the version is in
 * its table schema_version, and of several hubs opening one new database at once one migrates.
 * Returns 0 and the store, or CD_STORE_ERROR with a message in err. */
int cd_store_pg_open(const char *uri, cd_store **out, char *err, size_t errlen);

/* The store a COMFYD_HUB_STORE value names: "sqlite:PATH", a PostgreSQL connection URI, or ""
 * for the default, DATA_DIR/hub.sqlite3 (data_dir must then exist). Returns 0 and the store,
 * or CD_STORE_ERROR with a message in err (an unknown scheme included). */
int cd_store_open(const char *spec, const char *data_dir, cd_store **out, char *err, size_t errlen);
/* What to log about the store spec names: the SQLite path, or the URI without its password.
 * Writes into out (truncated to outlen). */
void cd_store_describe(const char *spec, const char *data_dir, char *out, size_t outlen);

static inline void cd_store_close(cd_store *st) {
    if (st) st->ops->close(st);
}
static inline const char *cd_store_error(const cd_store *st) {
    return st->ops->error(st);
}

const char *cd_role_name(cd_role role);
/* "admin", "teacher", "student" → 0 and *out; else -1. */
int cd_role_parse(const char *name, cd_role *out);

#endif
