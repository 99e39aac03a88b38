/* kiln — the Dockerfile build engine as a library call.
 *
 * kiln_build_run() parses the Dockerfile, works out the stages the target
 * needs, and runs them: FROM resolves scratch, an earlier stage, an
 * `oci:DIR[:TAG]` layout or a registry image; RUN runs in the sandbox over the
 * unpacked lower layers (cached per diff_id under the kiln root) with a fresh
 * upper dir; COPY/ADD build their layer straight from the context (or another
 * stage / named context) without a sandbox; the other instructions change the
 * image config and add BuildKit-style history.
 *
 * Cache: each step's key is sha256(parent step's key, the expanded
 * instruction, the build args it uses, for COPY/ADD the content of its
 * context sources, and for COPY --from / RUN bind mounts of a stage that
 * stage's key and the paths, as BuildKit does: a hit reads nothing of the
 * stage, a miss merges only those paths from its layers). A hit restores
 * the layer and config from the local cache index (store refs
 * "cache/<key>"); a miss does not stop later steps being looked up. The
 * result image (config + manifest) is in the store. */
#ifndef KILN_ENGINE_BUILD_H
#define KILN_ENGINE_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "oci/compress.h"
#include "oci/image.h"
#include "oci/store.h"
#include "sandbox/stepopts.h"
#include "utils/error.h"
#include "utils/netpolicy.h"

typedef enum kiln_build_progress {
    KILN_PROGRESS_PLAIN = 0,
    KILN_PROGRESS_TTY,
    KILN_PROGRESS_JSON,
    KILN_PROGRESS_QUIET,
} kiln_build_progress_t;

struct kiln_step_event;

typedef struct kiln_build_request {
    const char *context_dir;     /* the build context directory */
    const char *dockerfile_path; /* NULL: CONTEXT/Dockerfile (ignored when text is given) */
    const char *dockerfile_text; /* Dockerfile content given directly (e.g. `-f -`) */
    size_t dockerfile_len;
    const char *target;            /* stage name/index to build, NULL = the last stage */
    const char *const *build_args; /* "K=V" or "K" (take from environment) */
    size_t n_build_args;
    const char *const *contexts; /* named contexts "NAME=DIR" */
    size_t n_contexts;
    const char *const *secrets; /* "id=ID,src=FILE" or "id=ID,env=VAR" */
    size_t n_secrets;
    const char *const *insecure_registries; /* NULL-terminated or NULL */
    const char *ssh_socket;                 /* SSH agent socket for RUN --mount=type=ssh, or NULL */
    /* Registry cache: images whose cache entries are imported before the
     * build (missing ones are skipped with a warning), and where to push this
     * build's entries (cache_to_max: every stage's steps, else the target's). */
    const char *const *cache_from;
    size_t n_cache_from;
    const char *cache_to;
    int cache_to_max;
    /* the registry cache's bound (engine/regcache.h), 0: KILN_REGCACHE_DEFAULT_MAX */
    uint64_t cache_to_max_size;
    /* Remote caches in S3 ("type=s3,bucket=B[,prefix=P][,region=R][,endpoint=URL]
     * [,max-size=N][,mode=max]", engine/remote_store.h): the layer cache and every RUN
     * --mount=type=cache id are restored from the first of remote_cache_from holding them
     * and saved to remote_cache_to after a successful build, per namespace. */
    const char *const *remote_cache_from;
    size_t n_remote_cache_from;
    const char *remote_cache_to;
    const char *const *mirrors;  /* NULL-terminated "SRC=HOST[/PREFIX]" registry mirrors, or NULL */
    const char *registry_config; /* registries config file (mirrors/insecure/ca), or NULL */
    const char *const *labels;   /* "K=V" labels added to the final image */
    size_t n_labels;
    int no_cache;
    int64_t source_date_epoch; /* -1: none */
    kiln_compression_t compression;
    int compression_level; /* -1 default */
    const char *network;   /* default network for RUN: "default", "none", "host" */
    const char *isolation; /* "auto" (NULL), "sandbox", "chroot", "none" */
    unsigned entitlements; /* KILN_ENTITLEMENT_* granted (engine/entitlement.h) */
    /* Limits of every RUN step (0 = none): memory in bytes (cgroup, else RLIMIT_AS),
     * processes (pids cgroup, else RLIMIT_NPROC), CPU seconds (RLIMIT_CPU). */
    uint64_t memory_limit;
    uint64_t pids_limit;
    uint64_t cpu_time_limit;
    /* Bytes each RUN step may write to its root (checked while it runs and at its end; no
     * file larger: sandbox.h limits.disk), 0 = none. */
    uint64_t disk_limit;
    /* docker build's --ulimit, --add-host ("IP\tHOST\n" lines) and --shm-size for every RUN
     * step (sandbox/stepopts.h); each is part of a RUN step's cache key when set */
    const kiln_ulimit_t *ulimits;
    size_t n_ulimits;
    const char *const *extra_hosts;
    size_t n_extra_hosts;
    uint64_t shm_size;
    /* Address policy (utils/netpolicy): "CIDR[:PORT]" entries that open
     * non-public destinations to RUN steps on the nat network and to
     * host-side fetches (ADD URLs, git, registries named by the Dockerfile). */
    const char *const *allow_addresses;
    size_t n_allow_addresses;
    /* Set for builds a server runs for a tenant: sources and registries are
     * untrusted input (no file:// or local git sources, registries under the
     * public-only policy, FROM oci: only from oci_dirs). */
    int server_mode;
    int allow_http_git;          /* plain http:// git remotes allowed */
    const char *const *oci_dirs; /* where FROM oci: may read in server mode */
    size_t n_oci_dirs;
    /* The cache namespace (utils/cachens, checked valid): RUN cache mounts,
     * the stat cache and step cache entries of this build are those of the
     * namespace only; NULL = the shared historical ones (CLI builds). A server
     * passes the build's tenant. Registry cache imports land in it too. */
    const char *cache_namespace;
    /* The stat cache (engine/statcache) of the build context is that of this
     * identity (a server passes "git <repo> <subdir>", so every checkout of the
     * repository shares it); NULL = the context's canonical path. */
    /* another ignore file of the context whose patterns follow .dockerignore's
     * (".kilnignore" for an auto build), or NULL */
    const char *ignore_file;
    const char *context_id;
    /* The total cap of the namespace's stat cache in bytes: 0 the default
     * (KILN_STATCACHE_DEFAULT_MAX), negative no stat cache. */
    int64_t stat_cache_max;
    /* The caller's environment ("K=V", NULL-terminated; NULL = none): build args given
     * without a value, RUN --mount=type=secret,env= sources and SOURCE_DATE_EPOCH are
     * looked up here. The engine never reads the process environment itself. */
    char *const *env;
    kiln_build_progress_t progress;
    /* Log lines (without newline) go here; NULL = dropped (the library never prints). */
    void (*log)(void *ctx, const char *line);
    /* Step events (engine/events.h: start, end, cache hit, a step's output) typed, instead
     * of as log lines; NULL = as log lines (progress decides their form). */
    void (*event)(void *ctx, const struct kiln_step_event *ev);
    void *log_ctx;
} kiln_build_request_t;

typedef struct kiln_build_step_time {
    char *name; /* "[stage 1/3] RUN make" */
    double seconds;
    int cached;
} kiln_build_step_time_t;

/* What a FROM (or COPY --from=IMAGE) image resolved to: a registry image as its normalised
 * reference "registry/repository[:tag]" or an "oci:DIR[:TAG]" layout as written, and the
 * digest of what that named ("sha256:HEX": the index of a multi-platform image, as buildx
 * records it, else the manifest). */
typedef struct kiln_build_base {
    char *ref;
    char *digest;
} kiln_build_base_t;

/* At most this many distinct base images are recorded (a Dockerfile has at most
 * MAX_STAGES FROMs, plus COPY --from images). */
#define KILN_BUILD_BASES_MAX 256

typedef struct kiln_build_result {
    kiln_descriptor_t manifest; /* the image manifest, in the store */
    kiln_digest_t config_digest;
    /* Layers of the target image (top last), for local export. */
    kiln_descriptor_t *layers;
    size_t n_layers;
    kiln_build_step_time_t *steps;
    size_t n_steps;
    /* every image a FROM or COPY --from of the build resolved, once each, in the order
     * first resolved (its provenance's resolvedDependencies) */
    kiln_build_base_t *bases;
    size_t n_bases;
    /* after a failure, what kind it was when the engine knows (else NULL):
     * KILN_BUILD_FAIL_DISK_LIMIT, KILN_BUILD_FAIL_NO_SPACE */
    const char *fail_code;
    /* after a failure: the exit status of the RUN step that failed, or 0 */
    int fail_exit_status;
} kiln_build_result_t;

/* A step wrote more than the request's disk_limit. */
#define KILN_BUILD_FAIL_DISK_LIMIT "disk_limit"
/* The machine's disk ran full: a RUN step failed with the filesystem of its writes full, or
 * kiln's own write failed with ENOSPC/EDQUOT. */
#define KILN_BUILD_FAIL_NO_SPACE "no_space"

/* Builds. On failure err reads "Dockerfile:LINE: …" for Dockerfile problems
 * or names the step that failed (a failing RUN gives its exit code). */
int kiln_build_run(const kiln_build_request_t *req, kiln_store_t *store, kiln_build_result_t *res,
                   kiln_error_t *err);

void kiln_build_result_clear(kiln_build_result_t *res);

typedef enum kiln_build_fetch {
    KILN_BUILD_FETCH_URL = 0,  /* ADD URLs */
    KILN_BUILD_FETCH_REGISTRY, /* FROM images, cache import/export, pushes of the result */
} kiln_build_fetch_t;

/* The address policy for a build's host-side fetches of kind what: ADD URLs
 * public + the allowlist; registries all but link-local and metadata for an
 * operator's build, public + the allowlist in server mode. Fails naming a
 * bad allowlist entry. */
int kiln_build_netpolicy(const kiln_build_request_t *req, kiln_build_fetch_t what,
                         kiln_netpolicy_t **out, kiln_error_t *err);

#endif
