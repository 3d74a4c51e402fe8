/* The statements both store backends prepare (store_sqlite.c, store_pg.c: each spells their SQL
 * in its own dialect), and the columns their SELECTs return, in the one order the row readers of
 * both expect. */
#ifndef CD_HUB_STORE_STATEMENTS_H
#define CD_HUB_STORE_STATEMENTS_H

enum {
    USER_CREATE, USER_GET, USER_BY_NAME, USER_LIST, USER_UPDATE, USER_DELETE, USER_COUNT,
    TOKEN_CREATE, TOKEN_GET, TOKEN_DELETE, TOKEN_DELETE_USER, TOKEN_PRUNE,
    PROJECT_CREATE, PROJECT_GET, PROJECT_LIST_ALL, PROJECT_LIST_OWNER, PROJECT_UPDATE, PROJECT_DELETE,
    HOST_CREATE, HOST_GET, HOST_LIST, HOST_UPDATE, HOST_DELETE,
    INSTANCE_PUT, INSTANCE_GET, INSTANCE_BY_PROJECT, INSTANCE_LIST,
    FAILURES_GET, FAILURES_SET, FAILURES_CLEAR,
    AUDIT_ADD, AUDIT_LIST,
    PROMPT_ADD, PROMPT_GET, PROMPT_BODY, PROMPT_ACTIVE, PROMPT_STATE, PROMPT_CLAIM,
    N_STMT
};

#define USER_COLS "id, name, password_hash, role, disabled, created_at"
#define TOKEN_COLS "hash, user_id, kind, name, created_at, expires_at"
#define PROJECT_COLS "id, owner_id, name, created_at, updated_at, pin"
#define HOST_COLS                                                                                          \
    "id, name, address, launcher, ssh_target, ssh_port, ssh_key, ssh_options, command, base_dir, port_min, " \
    "port_max, max_instances, labels, disabled, created_at"
#define INSTANCE_COLS                                                                          \
    "id, project_id, user_id, host, address, port, pid, status, reason, base_dir, log_path, " \
    "started_at, last_seen_at, last_activity_at, crash_count, hub"
#define AUDIT_COLS "id, at, user_id, username, action, target, detail, ip"
#define PROMPT_COLS \
    "seq, prompt_id, user_id, project_id, priority, state, client_id, created_at, dispatched_at, finished_at, reason, " \
    "hub"

#endif
