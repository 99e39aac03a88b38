/* kiln build — its options as parsed from the command line, shared by the command
 * (src/cmd_build.c), the job spec they make (src/build_spec.c) and what the build reports
 * (src/build_report.c). */
#ifndef KILN_SRC_BUILD_OPTS_H
#define KILN_SRC_BUILD_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/build.h"
#include "oci/compress.h"
#include "src/server/limits.h"

#define MAX_LIST 256

typedef struct kiln_build_opts {
    const char *file, *target, *root, *digest_file, *metadata_file, *network, *isolation;
    const char *subdir, *plan_file, *ssh;
    const char *add_hosts[MAX_LIST], *ulimits[MAX_LIST]; /* --add-host, --ulimit */
    size_t n_add_hosts, n_ulimits;
    uint64_t shm_size; /* --shm-size; 0: the default */
    const char *cache_from[MAX_LIST], *labels[MAX_LIST], *mirrors[MAX_LIST + 1];
    size_t n_mirrors;
    const char *registry_config;
    size_t n_labels;
    size_t n_cache_from;
    char *cache_to;
    int cache_to_max;
    uint64_t cache_to_max_size; /* registry cache: max-size=, 0: the default */
    char *cache_repo_ref;
    /* type=s3 --cache-from / --cache-to (engine/remote_store.h), as given */
    const char *remote_cache_from[MAX_LIST];
    size_t n_remote_cache_from;
    const char *remote_cache_to;
    const char *tags[MAX_LIST], *args[MAX_LIST], *contexts[MAX_LIST], *secrets[MAX_LIST],
        *outputs[MAX_LIST], *insecure[MAX_LIST + 1], *notify[MAX_LIST], *allow_addrs[MAX_LIST],
        *oci_dirs[MAX_LIST], *additional_stores[MAX_LIST];
    size_t n_tags, n_args, n_contexts, n_secrets, n_outputs, n_insecure, n_notify, n_allow_addrs,
        n_oci_dirs, n_additional_stores;
    int server_mode, allow_http_git;
    const char *cache_namespace; /* internal: the tenant's caches (utils/cachens) */
    const char *context_id;      /* internal: the stat cache identity of the context */
    int64_t stat_cache_max;      /* engine/statcache: 0 default, <0 none */
    /* internal: the repository and commit the server checked out into the context */
    const char *source_repo, *source_commit;
    /* internal: who asked for the build, for the completion event (kiln job run) */
    const char *source_branch, *tenant, *trigger;
    const char *build_id;
    int events_fd;         /* internal (kiln job run): typed events as JSON lines here; -1 none */
    unsigned entitlements; /* --allow */
    int push, no_cache, ecr_create;
    int sbom, provenance;     /* --sbom, --provenance */
    int soci;                 /* --soci: soci=true on every output that pushes */
    long long soci_min_layer; /* --soci-min-layer-size SIZE (-1: not given) */
    kiln_limit_values_t limits;
    int64_t sde;
    kiln_compression_t compression;
    int compression_level; /* --compression-level; -1: the compression's default */
    int compression_given; /* --compression was given */
    kiln_build_progress_t progress;
    int progress_given; /* --progress or -q given (else auto: tty on a terminal, else plain) */
    int help;           /* -h: the usage was printed */
    /* kiln build: the progress view the job's events go to (src/progress), or NULL (kiln job
     * run: the events as before); the failure the job reported, shown by the view at the end */
    struct kiln_progress *renderer;
    char *fail_text;
    int fail_in_build, fail_user_terms;
} kiln_build_opts_t;

/* The defaults of kiln build's options. */
void kiln_build_opts_init(kiln_build_opts_t *o);

/* Parses kiln build's options of argv (from argv[1]; getopt's optind is then the first
 * operand) into *o (kiln_build_opts_init'ed): KILN_EXIT_OK, or the status of a usage error
 * (reported). -h prints the usage and sets o->help. Also how `kiln job run` reads the
 * operator's --build-option values. */
int kiln_build_opts_parse(int argc, char **argv, kiln_build_opts_t *o);

/* Releases what parsing allocated (cache references). */
void kiln_build_opts_clear(kiln_build_opts_t *o);

#endif
