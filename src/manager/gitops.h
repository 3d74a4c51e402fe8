/* The git side of pack installs (libgit2): clone (optionally pinned to a tag, branch or
 * commit), the commit checked out, the origin URL, and whether origin has something newer. */
#ifndef CD_MANAGER_GITOPS_H
#define CD_MANAGER_GITOPS_H

#include <stddef.h>

/* Process-wide libgit2 set-up (reference-counted, any thread). */
void cd_git_init(void);
void cd_git_shutdown(void);

/* Clones url into dest (which must not exist or be empty), with submodules left alone. With
 * ref, checks out that tag, branch or commit (detached). cancel (may be NULL) is polled during
 * the transfer. Returns 0 or -1 with a message. */
int cd_git_clone(const char *url, const char *dest, const char *ref, const volatile int *cancel, char *err,
                 size_t errlen);
/* The 40-hex commit of HEAD. Returns 0 or -1. */
int cd_git_head(const char *dir, char out[41]);
/* origin's URL (caller frees), or NULL. */
char *cd_git_origin_url(const char *dir);
/* Fetches origin and compares HEAD with what an update would check out: ref when given, else
 * origin's default branch. Returns 1 (newer commit in target), 0 (up to date) or -1. */
int cd_git_check_update(const char *dir, const char *ref, char target[41], char *err, size_t errlen);

#endif
