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

/* Which sources a checkout may fetch, and from where.
 *
 * Transports: https:// and ssh:// (scp-like user@host:path too); plain
 * http:// (and git://) only with allow_http. With server_mode every URL, the
 * repository's and each submodule's, must be one of these: file://, local
 * paths, `transport::address` helpers and anything else are refused. Without
 * it (an operator's own build) the repository's URL may be any of them, and
 * so may its submodules' when the repository itself is local; a submodule of
 * a remote repository must be a network URL as above, so a repository cannot
 * make kiln read the host's files (other mirrors in the cache, for one).
 *
 * Addresses (utils/netpolicy): every connection is checked on the address
 * it goes to, after DNS, for each candidate address. Server mode: public +
 * allow_addresses for the repository and submodules. Otherwise: the
 * operator's URL anything but link-local/metadata, submodules public +
 * allow_addresses. */
typedef struct kiln_git_policy {
    int server_mode;
    int allow_http;
    const char *const *allow_addresses; /* "CIDR[:PORT]" */
    size_t n_allow_addresses;
} kiln_git_policy_t;

typedef struct kiln_git_opts {
    const char *cache_dir;        /* where the bare mirrors live (created if missing) */
    char *const *env;             /* "KEY=VALUE" list for KILN_GIT_TOKEN*; NULL = none */
    const char *credentials_file; /* per-host credentials; NULL = none */
    /* a credential ("TOKEN" or "USER:PASSWORD") for credential_host only (the source URL's
     * own host[:port]), e.g. a build server's URL userinfo kept off the command line;
     * it comes before every other source; NULL = none */
    const char *credential;
    const char *credential_host;
    kiln_git_policy_t policy;
    /* Called after each regular file a checkout writes (submodules' too): the directory
     * path it is in, its name, the open file and its blob id (20 bytes); NULL = none. */
    void (*on_file)(void *ctx, const char *dir, const char *name, int fd, const unsigned char *oid);
    void *on_file_ctx;
    /* Seconds the whole checkout may wait on the network and on the mirror's lock (every
     * connection, read and write, submodules' too, against one deadline); 0 = no bound. A
     * checkout past it fails saying so ("... no answer within the checkout's timeout"). */
    unsigned timeout_s;
} kiln_git_opts_t;

typedef enum kiln_git_transport {
    KILN_GIT_HTTPS = 0,
    KILN_GIT_SSH,   /* ssh://, git+ssh://, ssh+git://, [user@]host:path */
    KILN_GIT_HTTP,  /* plain http:// */
    KILN_GIT_PLAIN, /* git:// (unauthenticated, unencrypted) */
    KILN_GIT_LOCAL, /* file://, an absolute or relative path */
    KILN_GIT_OTHER, /* transport::address, unknown schemes */
} kiln_git_transport_t;

/* The host[:port] of a URL (scheme:// or scp-like), without userinfo; malloc'ed, "" when
 * none. */
char *kiln_git_url_host(const char *url);

/* How libgit2 (or git) would reach url. */
kiln_git_transport_t kiln_git_url_transport(const char *url);

/* True when `s` looks like a git URL rather than a local path: scheme://…
 * (http, https, git, ssh, file) or scp-like user@host:path. */
bool kiln_git_is_url(const char *s);

/* Splits "URL#REF" into a URL and a ref (NULL when there is no '#'). */
void kiln_git_split_ref(const char *spec, char **url, char **ref);

/* Returns a copy of `url` with any userinfo replaced by "***" (or the text
 * unchanged when it has none). Use it wherever a URL may be shown. */
char *kiln_git_redact(const char *url);

/* Caps on what kiln_git_commit_info copies from a commit (bytes). */
#define KILN_GIT_AUTHOR_MAX 200
#define KILN_GIT_MESSAGE_MAX 1000

/* The author's name and the message of commit sha (40 hex) of url, read from the mirror a
 * checkout of url (with the same opts->cache_dir) fetched it into: nothing is fetched. Each
 * cut at a character boundary to KILN_GIT_AUTHOR_MAX / KILN_GIT_MESSAGE_MAX bytes, trailing
 * newlines dropped; NULL when empty. Both malloc'ed. -1 naming the commit and the URL
 * (redacted) when it cannot be read. */
int kiln_git_commit_info(const char *url, const kiln_git_opts_t *opts, const char *sha,
                         char **author, char **message, kiln_error_t *err);

/* The git working tree dir is in (dir or a parent): its HEAD commit (40 hex) and its
 * "origin" remote's URL, credentials redacted (NULL when it has none), both malloc'ed, for
 * the provenance of a build of a local directory (as buildx records a context's git
 * information). 0 when dir is in no repository or HEAD names no commit (nothing set), 1 when
 * found. Never fetches. */
int kiln_git_dir_info(const char *dir, char **url, char **commit);

/* Fetches `url` into its mirror and checks out `ref` (branch, tag, full or
 * abbreviated commit SHA; NULL = the remote's default branch) into `dest`,
 * which must not exist yet, with submodules. Sets *commit (40 hex, malloc'ed)
 * to the commit checked out. Errors name the redacted URL and the ref. */
int kiln_git_checkout(const char *url, const char *ref, const kiln_git_opts_t *opts,
                      const char *dest, char **commit, kiln_error_t *err);

/* Like kiln_git_checkout, but brings `dest`, a tree kept across builds (it may exist, with
 * a previous commit's files), to `ref` in place: only files whose content differs are
 * written, everything untracked or ignored is removed (whatever a previous build left), and
 * the index (index_path, outside dest) records what was written. The caller holds the
 * tree's lock. 1 when the commit has submodules (check out afresh instead); -1 with err
 * naming the redacted URL and the ref (the tree may then be half-updated: remove it). */
int kiln_git_checkout_kept(const char *url, const char *ref, const kiln_git_opts_t *opts,
                           const char *dest, const char *index_path, char **commit,
                           kiln_error_t *err);

#endif
