#include "manager/gitops.h"

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cd_git_init(void) { git_libgit2_init(); }
void cd_git_shutdown(void) { git_libgit2_shutdown(); }

static void git_err(char *err, size_t errlen, const char *what) {
    const git_error *e = git_error_last();
    snprintf(err, errlen, "%s: %s", what, e && e->message ? e->message : "unknown git error");
}

static int transfer_cb(const git_indexer_progress *stats, void *payload) {
    (void)stats;
    const volatile int *cancel = payload;
    return cancel && *cancel ? -1 : 0;
}

/* Peels the reference `name` to its commit. */
static int lookup_peeled(git_repository *repo, const char *name, git_object **out) {
    git_reference *ref = NULL;
    if (git_reference_lookup(&ref, repo, name) < 0) return -1;
    int rc = git_reference_peel(out, ref, GIT_OBJECT_COMMIT);
    git_reference_free(ref);
    return rc < 0 ? -1 : 0;
}

/* A tag, then an origin branch, a local branch, then a (possibly short) commit id. Not
 * git_revparse_single: libgit2 1.5 leaks a PCRE2 match block each time a name is not found
 * (its "describe" pattern), and the server would leak on every install. */
static int resolve_ref(git_repository *repo, const char *ref, git_object **out) {
    char name[512];
    const char *prefixes[] = {"refs/tags/", "refs/remotes/origin/", "refs/heads/"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s%s", prefixes[i], ref);
        if (lookup_peeled(repo, name, out) == 0) return 0;
    }
    size_t n = strlen(ref);
    if (n < 4 || n > GIT_OID_HEXSZ || strspn(ref, "0123456789abcdefABCDEF") != n) return -1;
    git_oid oid;
    if (git_oid_fromstrn(&oid, ref, n) < 0) return -1;
    return git_object_lookup_prefix(out, repo, &oid, n, GIT_OBJECT_COMMIT) < 0 ? -1 : 0;
}

static int checkout_detached(git_repository *repo, git_object *commit, char *err, size_t errlen) {
    git_checkout_options co;
    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    co.checkout_strategy = GIT_CHECKOUT_FORCE;
    if (git_checkout_tree(repo, commit, &co) < 0 || git_repository_set_head_detached(repo, git_object_id(commit)) < 0) {
        git_err(err, errlen, "checkout");
        return -1;
    }
    return 0;
}

int cd_git_clone(const char *url, const char *dest, const char *ref, const volatile int *cancel, char *err,
                 size_t errlen) {
    git_clone_options opts;
    git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
    opts.fetch_opts.callbacks.transfer_progress = transfer_cb;
    opts.fetch_opts.callbacks.payload = (void *)(uintptr_t)cancel;
    git_repository *repo = NULL;
    if (git_clone(&repo, url, dest, &opts) < 0) {
        if (cancel && *cancel) snprintf(err, errlen, "cancelled");
        else git_err(err, errlen, "git clone");
        return -1;
    }
    int rc = 0;
    if (ref && *ref) {
        git_object *obj = NULL;
        if (resolve_ref(repo, ref, &obj) < 0) {
            snprintf(err, errlen, "git: no tag, branch or commit '%s' in %s", ref, url);
            rc = -1;
        } else {
            rc = checkout_detached(repo, obj, err, errlen);
            git_object_free(obj);
        }
    }
    git_repository_free(repo);
    return rc;
}

int cd_git_head(const char *dir, char out[41]) {
    git_repository *repo = NULL;
    if (git_repository_open(&repo, dir) < 0) return -1;
    git_oid oid;
    int rc = git_reference_name_to_id(&oid, repo, "HEAD");
    if (rc == 0) git_oid_tostr(out, 41, &oid);
    git_repository_free(repo);
    return rc < 0 ? -1 : 0;
}

char *cd_git_origin_url(const char *dir) {
    git_repository *repo = NULL;
    if (git_repository_open(&repo, dir) < 0) return NULL;
    git_remote *remote = NULL;
    char *url = NULL;
    if (git_remote_lookup(&remote, repo, "origin") == 0) {
        const char *u = git_remote_url(remote);
        if (u) url = strdup(u);
        git_remote_free(remote);
    }
    git_repository_free(repo);
    return url;
}

int cd_git_check_update(const char *dir, const char *ref, char target[41], char *err, size_t errlen) {
    git_repository *repo = NULL;
    if (git_repository_open(&repo, dir) < 0) {
        git_err(err, errlen, "not a git checkout");
        return -1;
    }
    int rc = -1;
    git_remote *remote = NULL;
    git_object *obj = NULL;
    if (git_remote_lookup(&remote, repo, "origin") < 0) {
        git_err(err, errlen, "no origin");
        goto out;
    }
    git_fetch_options fo;
    git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
    if (git_remote_fetch(remote, NULL, &fo, NULL) < 0) {
        git_err(err, errlen, "git fetch");
        goto out;
    }
    if (ref && *ref) {
        if (resolve_ref(repo, ref, &obj) < 0) {
            snprintf(err, errlen, "git: no tag, branch or commit '%s'", ref);
            goto out;
        }
    } else {
        /* origin's default branch: origin/HEAD, else main, else master */
        const char *cands[] = {"refs/remotes/origin/HEAD", "refs/remotes/origin/main", "refs/remotes/origin/master"};
        for (size_t i = 0; i < 3 && !obj; i++)
            if (lookup_peeled(repo, cands[i], &obj) < 0) obj = NULL;
        if (!obj) {
            snprintf(err, errlen, "git: origin has no default branch");
            goto out;
        }
    }
    git_oid head;
    if (git_reference_name_to_id(&head, repo, "HEAD") < 0) {
        git_err(err, errlen, "HEAD");
        goto out;
    }
    git_oid_tostr(target, 41, git_object_id(obj));
    rc = git_oid_equal(&head, git_object_id(obj)) ? 0 : 1;
out:
    git_object_free(obj);
    git_remote_free(remote);
    git_repository_free(repo);
    return rc;
}

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer: libgit2 1.5 (Debian 12) leaks a PCRE2 match block whenever an internal regex
 * search finds nothing (git_regexp_search returns before pcre2_match_data_free), e.g. in
 * git_remote_create during every clone. Not ours to fix; without this every install would
 * "leak". Only allocations made inside libpcre2 are exempted. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libpcre2-8.so\n"; }
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "print_suppressions=0"; }
#endif
