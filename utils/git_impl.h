/* kiln — what the parts of the git source share (git.c checks out; git_url, git_mirror and
 * git_stream each do one part of it). Not for use outside utils/git*.c. */
#ifndef KILN_UTILS_GIT_IMPL_H
#define KILN_UTILS_GIT_IMPL_H

#include <git2.h>
#include <stdbool.h>

#include "utils/error.h"
#include "utils/git.h"
#include "utils/netpolicy.h"

/* Largest credentials file and .gitmodules read. */
#define KILN_GIT_SMALL_FILE_CAP (256 * 1024)

/* Copies `text`, replacing the userinfo of every "scheme://user[:pw]@" in it with `repl`
 * (NULL = drop it and its '@'). */
char *kiln_git_scrub_userinfo(const char *text, const char *repl);
/* Fills err from libgit2's last error, with URLs in it redacted; returns -1. */
int kiln_git_fail(kiln_error_t *err, const char *what, const char *url, const char *ref);
/* The address policy for a URL: the operator's own URL outside server mode refuses only
 * link-local and metadata addresses; everything else is public plus the allowlist. */
int kiln_git_url_policy(const kiln_git_policy_t *gp, bool operator_url, kiln_netpolicy_t **out,
                        kiln_error_t *err);
/* Whether url may be fetched under gp; -1 naming it and what would allow it. sm_name and
 * sm_raw name the submodule and its .gitmodules URL (NULL for the repository itself);
 * local_parent says the repository holding that .gitmodules is itself local. */
int kiln_git_check_url(const kiln_git_policy_t *gp, const char *url, const char *sm_name,
                       const char *sm_raw, bool local_parent, kiln_error_t *err);

/* Registers the policed stream (again after each git_libgit2_init: the registry is cleared
 * when libgit2 shuts down). */
int kiln_git_stream_register(kiln_error_t *err);
/* The policy this thread's connections must pass (NULL outside a fetch: link-local and
 * metadata addresses are still refused). */
void kiln_git_stream_set_policy(const kiln_netpolicy_t *policy);

/* The deadline of this thread's checkout: timeout_s seconds from now (0: none). While it is
 * set, connections, reads and writes of the policed stream and the wait for a mirror's lock
 * end at it. */
void kiln_git_deadline_set(unsigned timeout_s);
/* Milliseconds left before the deadline (0 when it has passed), or -1 when none is set. */
int kiln_git_deadline_left_ms(void);
/* The libgit2 error of an operation (what: "read from HOST") that hit the deadline; -1. */
int kiln_git_deadline_error(const char *what);

/* The mirror directory for a URL: <cache>/<sha256 of the URL without userinfo>.git */
char *kiln_git_mirror_path(const char *cache, const char *url);

/* Opens (or creates, temp + rename) the mirror of url in opts->cache_dir and fetches into it
 * under policy; *lockfd receives the held lock on the mirror. */
int kiln_git_mirror_open(const char *url, const kiln_git_opts_t *opts,
                         const kiln_netpolicy_t *policy, git_repository **out, int *lockfd,
                         kiln_error_t *err);

/* A commit to check out: the mirror it is in (its lock held), the commit, its tree, its id. */
typedef struct kiln_git_target {
    git_repository *repo;
    git_commit *commit;
    git_tree *tree;
    int lockfd;
    char sha[GIT_OID_HEXSZ + 1];
} kiln_git_target_t;

/* What both checkouts (fresh and kept) start with: dest made (0755, may exist), the mirror of
 * url opened and fetched into under policy, ref resolved (NULL = HEAD, then refs/heads/REF,
 * refs/tags/REF, then a commit SHA, full or abbreviated) to its commit and tree. -1 with err
 * naming dest, or the ref and the URL (redacted); *t is then empty. */
int kiln_git_target_open(const char *url, const char *ref, const kiln_git_opts_t *opts,
                         const kiln_netpolicy_t *policy, const char *dest, kiln_git_target_t *t,
                         kiln_error_t *err);
/* Frees the target and releases the mirror's lock. */
void kiln_git_target_close(kiln_git_target_t *t);

/* What a checkout does once its session is open (see kiln_git_session). */
typedef int (*kiln_git_session_fn)(void *ctx, const kiln_netpolicy_t *policy, kiln_error_t *err);

/* Checks url against opts' source policy, then runs fn with libgit2 initialised, kiln's
 * policed transports registered and opts->timeout_s's deadline set; fn's result (its
 * positive one too), or -1 with err naming the URL when the policy refuses it. */
int kiln_git_session(const char *url, const kiln_git_opts_t *opts, kiln_git_session_fn fn,
                     void *ctx, kiln_error_t *err);

#endif
