/* kiln — the typed job: everything one build needs, from whoever asked for it (the API's
 * request body, a queue message, `kiln build` flags), checked completely before any work
 * starts so that a bad output, reference, URL or limit is refused up front, naming its
 * field ("field 'outputs[1].type': ...").
 *
 * A spec holds secrets by reference only (a name, or for the CLI a file or environment
 * variable to read it from): their values travel beside it (job/codec.h), never in it, so a
 * spec can be logged, stored and sent to a builder as it is.
 *
 * Two trust levels: a spec marked `local` comes from the person running kiln on their own
 * machine (CLI flags, `kiln job run --spec`): it may name a context directory, a plan file,
 * a Dockerfile anywhere, secret files and environment variables, and outputs at any path. A
 * spec that is not local (an API request, a queue message) may name none of these. */
#ifndef KILN_JOB_SPEC_H
#define KILN_JOB_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "export/export.h"
#include "job/limits.h"
#include "utils/error.h"

/* The secret holding a git source's credential (a URL's userinfo or source.token): not a
 * valid name for a build's own secrets; handed only to the checkout. */
#define KILN_JOB_GIT_SECRET ".git"

/* Bounds of what a spec may hold (each checked, naming the field). */
#define KILN_JOB_STR_MAX 4096
#define KILN_JOB_SECRET_MAX 65536
#define KILN_JOB_MAP_MAX 256
#define KILN_JOB_LIST_MAX 64
#define KILN_JOB_OUTPUTS_MAX 16
/* A job's git checkout: its default timeout and the longest one a spec may ask for. */
#define KILN_JOB_CHECKOUT_TIMEOUT 600
#define KILN_JOB_CHECKOUT_TIMEOUT_MAX 7200

typedef enum kiln_job_source_kind {
    KILN_JOB_SOURCE_NONE = 0,
    KILN_JOB_SOURCE_GIT,     /* a git URL (credential taken out), ref/commit/subdir */
    KILN_JOB_SOURCE_CONTEXT, /* an uploaded context id ("ctx-<hex>") */
    KILN_JOB_SOURCE_DIR,     /* a directory on this machine (local specs only; "-": stdin) */
} kiln_job_source_kind_t;

/* "K=V" of a build argument or environment entry; value NULL: take K from the environment
 * (local specs only). */
typedef struct kiln_job_kv {
    char *key;
    char *value;
} kiln_job_kv_t;

/* A secret by reference: its id, and for local specs where to read it. */
typedef struct kiln_job_secret {
    char *id;
    char *src; /* a file (local only), or NULL */
    char *env; /* an environment variable (local only), or NULL */
} kiln_job_secret_t;

typedef enum kiln_job_value_kind {
    KILN_JOB_VALUE_STRING = 0,
    KILN_JOB_VALUE_BOOL,
    KILN_JOB_VALUE_INT,
} kiln_job_value_kind_t;

/* One output option besides its type; value is its text ("true", "42", "dir"), kind how
 * the JSON gave it (kept so the JSON form round-trips). */
typedef struct kiln_job_opt {
    char *key;
    char *value;
    kiln_job_value_kind_t kind;
} kiln_job_opt_t;

typedef struct kiln_job_output {
    char *type; /* local, oci, docker, tar, function, registry, image, s3 */
    kiln_job_opt_t *opts;
    size_t n_opts;
} kiln_job_output_t;

typedef struct kiln_job_spec {
    int local; /* see above */

    /* ids, set by whoever accepted the job (the server, the CLI), never by a tenant */
    char *build_id;
    char *tenant;
    char *repo;   /* the repository, without credentials */
    char *commit; /* the full commit SHA once resolved */
    char *branch;
    char *trigger; /* "api", "webhook", "cli", ... */

    /* source */
    kiln_job_source_kind_t source_kind;
    char *source; /* URL, context id or directory */
    char *ref;    /* git branch/tag */
    char *source_commit;
    char *subdir;
    /* seconds a git checkout may wait on the network and its mirror's lock (0: the
     * default of whoever runs the job, KILN_JOB_CHECKOUT_TIMEOUT for kiln job run) */
    long long source_timeout;

    /* what to build */
    char *dockerfile; /* a path (relative to the source unless local), "-" = stdin (local) */
    char *plan;       /* a plan file (local only), instead of detection */
    char *target;
    char *platform; /* NULL or "linux/amd64" */
    kiln_job_kv_t *build_args;
    size_t n_build_args;
    kiln_job_kv_t *env; /* the API's "env": build arguments too */
    size_t n_env;
    kiln_job_secret_t *secrets;
    size_t n_secrets;
    char **allow; /* entitlements by name, NULL-terminated */
    size_t n_allow;
    kiln_job_limits_t limits;
    long long timeout_seconds; /* 0 = none */

    /* where it goes */
    kiln_job_output_t *outputs;
    size_t n_outputs;
    char **tags; /* NULL-terminated */
    size_t n_tags;
    char **notify; /* sqs:// / sns:// targets, NULL-terminated */
    size_t n_notify;

    /* cache */
    int no_cache;
    char **cache_from; /* registry cache images, NULL-terminated */
    size_t n_cache_from;
    char *cache_to;
    int cache_to_max;
    /* a registry cache's max-size= (JSON "cache.max_size"), 0: the default */
    uint64_t cache_to_max_size;
    /* remote caches in S3 ("type=s3,bucket=B,prefix=P,...", engine/remote_store.h): the layer
     * cache and the RUN cache mounts; JSON "cache.remote_from" / "cache.remote_to" (a
     * "type=s3,..." string in "cache.from" / "cache.to" lands here too) */
    char **remote_cache_from; /* NULL-terminated */
    size_t n_remote_cache_from;
    char *remote_cache_to;
    /* set by whoever runs the job (the server), never by a tenant: the cache namespace
     * (the tenant's caches are its own) and the stat cache identity of the context (the
     * repository + subdirectory, the same for every checkout of it) */
    char *cache_namespace;
    char *context_id;

    /* how the image is made (job/options.h: validated and coded there) */
    kiln_job_kv_t *labels; /* image labels */
    size_t n_labels;
    kiln_job_kv_t *contexts; /* named build contexts: DIR (local only) or docker-image://REF */
    size_t n_contexts;
    char *compression;     /* "gzip" (NULL: the default), "zstd", "none" */
    int compression_level; /* when has_compression_level: gzip 0..12, zstd 1..19 */
    int has_compression_level;
    long long source_date_epoch; /* when has_source_date_epoch: timestamps of the image */
    int has_source_date_epoch;
    char *network;   /* the default network of RUN steps: default, none, host */
    char *isolation; /* local only: auto, sandbox, chroot */
    char *ssh;       /* local only: the SSH agent socket for RUN --mount=type=ssh */
    /* docker build's step flags (sandbox/stepopts.h), each part of a RUN step's cache key */
    char **add_hosts; /* local only: "HOST:IP" lines of the RUN steps' /etc/hosts */
    size_t n_add_hosts;
    char **ulimits; /* "NAME=SOFT[:HARD]" set in each RUN step */
    size_t n_ulimits;
    long long shm_size; /* bytes of the RUN steps' /dev/shm; 0: 64 MiB */
    int sbom;           /* an SPDX SBOM beside the file outputs (job/attest.h) */
    int provenance;     /* an in-toto SLSA provenance beside the file outputs */
    int soci;           /* every output that pushes pushes a SOCI-enabled image (oci/soci.h) */
    long long soci_min_layer_size; /* when has_soci_min_layer_size: layers smaller get no zTOC */
    int has_soci_min_layer_size;
    char **registry_mirrors; /* "SRC=HOST[/PREFIX]", NULL-terminated; not in a request */
    size_t n_registry_mirrors;
    char **insecure_registries; /* HOST[:PORT] reached over plain HTTP; not in a request */
    size_t n_insecure_registries;
} kiln_job_spec_t;

/* Releases n key/value pairs and the array. */
void kiln_job_kv_free(kiln_job_kv_t *kv, size_t n);

/* Releases everything a spec holds (the struct itself is the caller's) and zeroes it. */
void kiln_job_spec_clear(kiln_job_spec_t *s);

/* Appends to a spec (copies the strings). Outputs: parse "type=oci,dest=out" with the CLI's
 * parser or the codec and add options with kiln_job_output_add_opt. */
void kiln_job_spec_add_str(char ***list, size_t *n, const char *s);
kiln_job_output_t *kiln_job_spec_add_output(kiln_job_spec_t *s, const char *type);
void kiln_job_output_add_opt(kiln_job_output_t *o, const char *key, const char *value,
                             kiln_job_value_kind_t kind);
void kiln_job_spec_add_kv(kiln_job_kv_t **list, size_t *n, const char *key, const char *value);
kiln_job_secret_t *kiln_job_spec_add_secret(kiln_job_spec_t *s, const char *id);

/* Adds one output given as `kiln build --output` text ("type=oci,dest=out"; an s3 one as
 * the S3 output parser reads it, whose values may hold commas) to s. -1 with err when the
 * text does not parse; its type and options are checked by kiln_job_spec_validate. */
int kiln_job_spec_add_output_text(kiln_job_spec_t *s, const char *arg, kiln_error_t *err);

/* The value of an output option, or NULL. */
const char *kiln_job_output_get(const kiln_job_output_t *o, const char *key);

/* An output type is its exporter (export/export.h): its name, whether it is written as files
 * (and so needs a dest), its options besides "type" (NULL-terminated) and its own checks. */
typedef kiln_exporter_t kiln_job_output_type_t;

/* The output type called name (local, oci, docker, tar, function, registry, image, s3), or
 * NULL. */
const kiln_job_output_type_t *kiln_job_output_type_find(const char *name);

/* 1 when an output option is a boolean (tar, push, ecr-create-repository, full). */
int kiln_job_output_key_is_bool(const char *key);

/* 1 when type names an output written as files (local, oci, docker, tar, function). */
int kiln_job_output_type_is_file(const char *type);

/* 0 when dest is where a spec that is not local may write a file output: a relative path
 * of plain segments ([A-Za-z0-9._+@-], no '.', '..' or empty segment, at most 32 deep),
 * else -1 saying why. */
int kiln_job_file_dest_check(const char *dest, kiln_error_t *err);

/* 1 when the output pushes to a registry (registry; image with push=true). */
int kiln_job_output_pushes(const kiln_job_output_t *o);
/* 1 when one of the spec's outputs pushes. */
int kiln_job_spec_pushes(const kiln_job_spec_t *s);

/* Checks the whole spec: ids, source (URL scheme, ref, commit, subdir), paths, names of
 * build arguments and secrets, entitlements, limits, every output (known type, its own
 * options, booleans, a dest where one is needed, a name or tag for a push, an s3:// dest,
 * pushed names and tags valid references), notify targets and cache references. Fails on
 * the first problem with "field 'NAME': what is wrong". */
int kiln_job_spec_validate(const kiln_job_spec_t *s, kiln_error_t *err);

/* Fills err with "field 'FIELD': WHAT" (WHAT formatted); returns -1. */
int kiln_job_field_err(kiln_error_t *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Text a person or a tenant gave: not empty, at most max bytes, no control characters;
 * fails naming the field. */
int kiln_job_check_plain(const char *s, const char *field, size_t max, kiln_error_t *err);

/* The repository key for a git URL: lower-cased host, no trailing ".git" or "/". */
char *kiln_job_repo_key(const char *url);

#endif
