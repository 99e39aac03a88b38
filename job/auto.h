/* kiln — the auto-detected build path, the orchestration before the engine: resolve a
 * source (local directory or git URL#REF, optional --subdir), detect or load its plan
 * (handlers/), fetch its toolchain (job/toolchain), render it (handlers/render) into the
 * Dockerfile the engine runs, and after the build write a function output's zip. */
#ifndef KILN_JOB_AUTO_H
#define KILN_JOB_AUTO_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/statcache.h"
#include "handlers/detect.h"
#include "handlers/plan.h"
#include "utils/error.h"
#include "utils/git.h"

/* Where kept work trees live under the kiln root (kiln_auto_source_opts_t.keep_tree). */
#define KILN_AUTO_WORKTREES "build/worktrees"

typedef struct kiln_auto_source_opts {
    const char *root; /* kiln root (mirror cache, work dirs); NULL = $KILN_ROOT or /var/lib/kiln */
    const char *subdir;                  /* path inside the source to build, or NULL */
    char *const *env;                    /* environment for KILN_GIT_TOKEN* / KILN_ROOT */
    const kiln_git_policy_t *git_policy; /* what a git source may fetch; NULL = the default */
    const char *cache_namespace;         /* git mirrors of this namespace (utils/cachens) */
    int64_t stat_cache_max;              /* engine/statcache cap: 0 default, <0 none */
    /* the credential ("TOKEN" or "USER:PASSWORD") for the URL's own host, or NULL: how a
     * server hands a URL's userinfo over (read from a file, never on a command line) */
    const char *credential;
    unsigned checkout_timeout; /* a git checkout's bound in seconds (utils/git), 0 none */
    /* a git source is checked out in place into a tree kept per (namespace, repository)
     * under ROOT/build/worktrees (a server's builds: only changed files are written); one
     * held by another build at the moment is checked out afresh instead */
    bool keep_tree;
} kiln_auto_source_opts_t;

typedef struct kiln_auto_source {
    char *dir;      /* the tree to build (subdir applied) */
    char *top;      /* the whole source tree (subdir not applied) */
    char *subdir;   /* the subdir applied, or NULL */
    char *checkout; /* temp checkout removed by release, or NULL for a local dir */
    char *commit;   /* git: the exact commit checked out, else NULL */
    /* git: that commit's author (name) and message as utils/git reads them (capped), or NULL */
    char *author, *message;
    char *display; /* the source as it may be shown (URL userinfo redacted) */
    /* git: the stat cache identity of the tree ("git REPO SUBDIR"), whose entries the
     * checkout brought up to date (kiln_auto_notes_start); else NULL */
    char *context_id;
    /* git: what the checkout did to that stat cache (noted files, hashes kept by blob id);
     * noted is 0 when the cache could not be used */
    kiln_statcache_stats_t notes;
    /* the kept tree's lock (held until release) + 1, or 0 when the tree is not a kept one */
    int kept_lock;
    /* a line for the build log on what was refused on the way (an upload's notes file that
     * could not be used), or NULL */
    char *warning;
} kiln_auto_source_t;

/* The stat cache identity of a git source's build context: the repository (userinfo
 * redacted) and the subdirectory, whatever the ref, so every checkout of it shares one
 * stat cache. Malloc'ed. */
char *kiln_auto_git_context_id(const char *url, const char *subdir);

/* A git checkout noting the files it writes in the stat cache (engine/statcache), so the
 * build after it reads only the files whose blob changed since the last checkout. */
typedef struct kiln_auto_notes {
    kiln_statcache_t *sc;
    char *prefix; /* DEST[/SUBDIR]: files under it are noted by their path below it */
    size_t plen;
    /* an in-place checkout of a kept tree wrote only the changed files: the others keep
     * their entries (no entry is dropped at finish; the build's own walk drops the gone) */
    bool partial;
} kiln_auto_notes_t;

/* Opens the stat cache of context_id in the namespace ns (NULL: the CLI's) under the kiln
 * root, for a checkout into dest whose build context is dest/subdir (subdir NULL or ""
 * for dest), and hooks it into g (on_file). -1 with err when the cache cannot be used:
 * nothing is hooked (the build then hashes the files itself). */
int kiln_auto_notes_start(kiln_auto_notes_t *n, const char *root, const char *ns,
                          const char *context_id, int64_t max, const char *dest, const char *subdir,
                          kiln_git_opts_t *g, kiln_error_t *err);

/* After the checkout succeeded: every file of the context was written, so entries of files
 * it no longer has are dropped; saves the cache and fills *st (may be NULL). Frees n's
 * cache (kiln_auto_notes_free). -1 with err when it could not be saved. */
int kiln_auto_notes_finish(kiln_auto_notes_t *n, kiln_statcache_stats_t *st, kiln_error_t *err);

/* Releases n without saving (a failed checkout). */
void kiln_auto_notes_free(kiln_auto_notes_t *n);

/* Resolves `spec` (a directory, or a git URL with optional #REF) into a tree
 * on disk. Errors name the redacted URL. */
int kiln_auto_source_prepare(const char *spec, const kiln_auto_source_opts_t *opts,
                             kiln_auto_source_t *src, kiln_error_t *err);
void kiln_auto_source_release(kiln_auto_source_t *src);

/* The kiln root from opts / KILN_ROOT / the default, malloc'ed. */
char *kiln_auto_root(const char *root, char *const *env);

/* True when `kiln build SPEC` takes the auto-detected path: a git URL, a plan
 * file, or a directory (after subdir) without a Dockerfile. */
/* Detects the plan of a prepared source. When its subdir is a package of a Node
 * workspace at the top (handlers/workspace), the plan builds it from the top and
 * src->dir becomes the top: the build context is the repository root. */
int kiln_auto_detect(kiln_auto_source_t *src, const kiln_detect_opts_t *d, kiln_plan_t **plan,
                     kiln_error_t *err);

bool kiln_auto_wanted(const char *spec, const char *subdir, const char *plan_file);

/* The output kind an --output spec asks for ("type=function" → function; type=local or s3
 * → the static site when the plan makes one; anything else → image), given the plan's
 * own outputs `natural`. */
kiln_plan_output_t kiln_auto_output_kind(const char *spec, unsigned natural);

typedef struct kiln_auto_build_opts {
    const char *root;      /* kiln root (NULL = $KILN_ROOT or default) */
    const char *subdir;    /* --subdir */
    const char *plan_file; /* run exactly this plan (JSON from `kiln plan`) */
    const char *image_prefix;
    char *const *env;
    const char *const *outputs; /* the --output specs ("type=local,dest=…") */
    size_t n_outputs;
    const char *const *secrets; /* the --secret specs ("id=ID,src=FILE") */
    size_t n_secrets;
    const kiln_git_policy_t *git_policy; /* what a git source may fetch; NULL = the default */
    const char *cache_namespace;         /* git mirrors of this namespace (utils/cachens) */
    int64_t stat_cache_max;              /* engine/statcache cap: 0 default, <0 none */
} kiln_auto_build_opts_t;

/* An auto-detected build, ready for the Dockerfile engine. */
typedef struct kiln_auto_build {
    kiln_auto_source_t src;
    kiln_plan_t *plan;
    char *dockerfile;        /* rendered text; NULL when the source has its own Dockerfile */
    char *target;            /* stage to build */
    char *context;           /* "node=DIR" (toolchain) or NULL */
    kiln_plan_output_t kind; /* what the build produces */
    char *default_output;    /* the natural --output when none was given */
} kiln_auto_build_t;

/* Resolves the source, detects (or loads) the plan, fetches its toolchain and
 * renders the Dockerfile for the kind of output asked for. */
int kiln_auto_build_prepare(const char *spec, const kiln_auto_build_opts_t *o,
                            kiln_auto_build_t *ab, kiln_error_t *err);
void kiln_auto_build_release(kiln_auto_build_t *ab);

#endif
