/* Prompt history: prompt_id -> entry (API reference §6.3), in completion order, at most
 * max_items entries, kept in memory and in SQLite so that it survives a restart. Shared by
 * the executor (add) and the loop thread (read, delete); a mutex guards it. */
#ifndef CD_ENGINE_HISTORY_H
#define CD_ENGINE_HISTORY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct cd_history cd_history;

/* db_path NULL: memory only (comfyd run, tests). Returns NULL with err filled on failure. */
cd_history *cd_history_open(const char *db_path, size_t max_items, char *err, size_t errlen);
void cd_history_close(cd_history *h);

void cd_history_add(cd_history *h, const char *prompt_id, json_t *entry); /* entry consumed */
/* Drops what the writer thread is done with (stored entries' trees): call it from a thread of
 * normal priority between prompts (the executor does). Returns true while the writer still has
 * work, which will leave more to drop: call it again later. */
bool cd_history_collect(cd_history *h);
/* Waits until every change made so far is in the database (and stored entries are text). */
void cd_history_sync(cd_history *h);
/* GET /history semantics: max_items < 0 and offset < 0 mean absent (§3.8). New reference. */
json_t *cd_history_list(cd_history *h, long max_items, long offset);
/* The jobs (engine/jobs.h, as listed: no outputs) of the entries whose status is among
 * `statuses` (CD_JOB_* bits), oldest first. The array is new; its jobs are shared and never
 * change. NULL when out of memory. */
json_t *cd_history_jobs(cd_history *h, unsigned statuses);
/* {prompt_id: entry} or {} (new reference). */
json_t *cd_history_get(cd_history *h, const char *prompt_id);
void cd_history_delete(cd_history *h, const char *prompt_id);
void cd_history_clear(cd_history *h);
size_t cd_history_count(cd_history *h);

#endif
