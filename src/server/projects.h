/* The project store: ComfyTavern's projects (manager-and-tavern.md B.2) as folders on disk, and
 * the shared workflow library. No HTTP here; routes_projects.c maps these calls to routes.
 *
 * Layout under the instance's base directory (ComfyTavern keeps one tree per user under
 * userData/<uid>/; an instance serves one user, so the per-user level is dropped):
 *
 *   projects/<projectId>/project.json
 *   projects/<projectId>/workflows/<workflowId>.json
 *   projects/.recycle_bin/<projectId>_<epochms>/                 deleted projects (moved)
 *   projects/.recycle_bin/<projectId>/workflows/<wfId>_<ms>.json deleted workflows (moved)
 *   projects/.lock                                               see below
 *   library/workflows/<workflowId>.json                          the shared library, where
 *                                                                ComfyTavern's shared://library/workflows/ lives
 *
 * Unlike ComfyTavern, a workflow's file is named after its id, not its sanitized name: lookups
 * need no directory scan and a rename never moves the file. Names stay unique per project.
 *
 * Every write goes to a temp file in the same directory, is fsynced, renamed over the target and
 * the directory fsynced, so a crash leaves either the old or the new file, never a torn one.
 * Temp files start with '.', which no listing or lookup ever picks up; cd_projects_init sweeps
 * away those that a crash left behind.
 *
 * Mutations hold an exclusive flock() on projects/.lock across read-check-write, so that an
 * If-Match check and the write it guards are one step even when requests run on several
 * thread-pool threads (or several processes share the directory). Reads take no lock.
 *
 * Every function is blocking (file I/O): call it from the thread pool (cd_offload). They return
 * 0 or a negative cd_projects_error with a message in err. */
#ifndef CD_SERVER_PROJECTS_H
#define CD_SERVER_PROJECTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    CD_PROJECTS_OK = 0,
    CD_PROJECTS_EINVAL = -1, /* bad id, bad body: 400 */
    CD_PROJECTS_ENOENT = -2, /* 404 */
    CD_PROJECTS_EEXIST = -3, /* duplicate id or name: 409 */
    CD_PROJECTS_ESTALE = -4, /* If-Match did not match: 412 */
    CD_PROJECTS_EIO = -5,    /* 500 */
} cd_projects_error;

/* The HTTP status for an error code (200 for 0). */
int cd_projects_status(int rc);

/* A strong entity tag: the quoted hex SHA-256 of the bytes. */
#define CD_PROJECTS_ETAG_SIZE 67
void cd_projects_etag(const void *data, size_t len, char out[CD_PROJECTS_ETAG_SIZE]);
/* Does an If-Match header value ("*", or a comma-separated list of tags) match etag? NULL or
 * empty if_match matches everything. Weak tags (W/"…") never match (RFC 9110 strong comparison). */
bool cd_projects_etag_matches(const char *if_match, const char *etag);

/* Ids name folders and files: 1–128 bytes of valid UTF-8 with no control characters, none of
 * / \ ? < > : * | " %, not starting with '.' or ending with '.' or a space. */
bool cd_projects_id_is_valid(const char *id);
/* ComfyTavern's id from a name: sanitize-filename with '_' replacing what is not allowed.
 * Returns a new string (caller frees); it may still be invalid (empty, "." …): check it. */
char *cd_projects_id_from_name(const char *name);


/* A stored document as bytes (the body to send as is) and its tag. Free with
 * cd_projects_doc_free. */
typedef struct {
    char *text;
    size_t len;
    char etag[CD_PROJECTS_ETAG_SIZE];
} cd_projects_doc;
void cd_projects_doc_free(cd_projects_doc *doc);

/* Creates projects/ and library/workflows/ under base_dir and removes the temp files of writes
 * a crash interrupted. */
int cd_projects_init(const char *base_dir, char *err, size_t errlen);

/* ---- projects (base_dir is the instance's base directory) ---- */
/* [metadata…] of every valid project, sorted by id (*out is a new reference). */
int cd_projects_list(const char *base_dir, json_t **out, char *err, size_t errlen);
/* body {name, description?, id?}: the id is body.id or derived from the name. */
int cd_projects_create(const char *base_dir, const json_t *body, cd_projects_doc *out, char *err, size_t errlen);
int cd_projects_get_meta(const char *base_dir, const char *id, cd_projects_doc *out, char *err, size_t errlen);
/* Merges patch (without id/createdAt, which must equal the stored ones when given) into the
 * metadata and refreshes updatedAt. if_match may be NULL. */
int cd_projects_update_meta(const char *base_dir, const char *id, const json_t *patch, const char *if_match,
                            cd_projects_doc *out, char *err, size_t errlen);
/* Moves the project to the recycle bin. if_match (NULL: any) is checked against project.json. */
int cd_projects_delete(const char *base_dir, const char *id, const char *if_match, char *err, size_t errlen);

/* ---- workflows of a project ---- */
/* [{id, name, description?, updatedAt?, creationMethod?, referencedWorkflows?, format}] */
int cd_projects_list_workflows(const char *base_dir, const char *pid, json_t **out, char *err, size_t errlen);
/* body: a workflow object with a name (and an optional id). */
int cd_projects_create_workflow(const char *base_dir, const char *pid, const json_t *body, cd_projects_doc *out,
                                char *err, size_t errlen);
int cd_projects_get_workflow(const char *base_dir, const char *pid, const char *wid, cd_projects_doc *out, char *err,
                             size_t errlen);
int cd_projects_put_workflow(const char *base_dir, const char *pid, const char *wid, const json_t *body,
                             const char *if_match, cd_projects_doc *out, char *err, size_t errlen);
int cd_projects_delete_workflow(const char *base_dir, const char *pid, const char *wid, const char *if_match,
                                char *err, size_t errlen);

/* ---- the shared library ---- */
int cd_projects_library_list(const char *base_dir, json_t **out, char *err, size_t errlen);
int cd_projects_library_get(const char *base_dir, const char *wid, cd_projects_doc *out, char *err, size_t errlen);

/* What a stored workflow holds: "ui" (ComfyUI's nodes + links), "tavern" (nodes + edges), "api"
 * (a "prompt" member in /prompt's format) or "unknown". */
const char *cd_projects_workflow_format(const json_t *wf);

#endif
