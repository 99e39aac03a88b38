/* kiln — git sources over libgit2.
 *
 * Every repository is fetched into a bare mirror under the cache directory
 * (one per URL, credentials stripped), so the next build only fetches what is
 * new; a branch, tag or commit is then checked out (without .git) into a work
 * directory, with submodules checked out recursively the same way.
 *
 * Credentials, in order: userinfo in the URL; KILN_GIT_TOKEN_<HOST> (host
 * upper-cased, other characters as '_'); a per-host line "HOST TOKEN" or
 * "HOST USER:PASSWORD" in the credentials file; KILN_GIT_TOKEN; for ssh, the
 * ssh agent. They are never logged: every URL in a message is redacted. */
#ifndef KILN_UTILS_GIT_H
#define KILN_UTILS_GIT_H

#include <stdbool.h>

#include "utils/error.h"

typedef struct kiln_git_opts {
    const char *cache_dir;        /* where the bare mirrors live (created if missing) */
    char *const *env;             /* "KEY=VALUE" list for KILN_GIT_TOKEN*; NULL = none */
    const char *credentials_file; /* per-host credentials; NULL = none */
} kiln_git_opts_t;

/* True when `s` looks like a git URL rather than a local path: scheme://…
 * (http, https, git, ssh, file) or scp-like user@host:path. */
bool kiln_git_is_url(const char *s);

/* Splits "URL#REF" into a URL and a ref (NULL when there is no '#'). */
void kiln_git_split_ref(const char *spec, char **url, char **ref);

/* Returns a copy of `url` with any userinfo replaced by "***" (or the text
 * unchanged when it has none). Use it wherever a URL may be shown. */
char *kiln_git_redact(const char *url);

/* Fetches `url` into its mirror and checks out `ref` (branch, tag, full or
 * abbreviated commit SHA; NULL = the remote's default branch) into `dest`,
 * which must not exist yet, with submodules. Sets *commit (40 hex, malloc'ed)
 * to the commit checked out. Errors name the redacted URL and the ref. */
int kiln_git_checkout(const char *url, const char *ref, const kiln_git_opts_t *opts,
                      const char *dest, char **commit, kiln_error_t *err);

#endif
