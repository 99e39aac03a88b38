/* kiln — command-line plumbing shared by pull, push, copy, login and remote
 * inspect: the registry flags, the progress printer, and image locations
 * ("docker://REF" or REF, "oci:DIR[:TAG]", "docker-archive:FILE"). */
#ifndef KILN_SRC_CLI_REGISTRY_H
#define KILN_SRC_CLI_REGISTRY_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "oci/registry.h"
#include "oci/store.h"
#include "utils/error.h"

/* Long-option ids (above any short option character). */
enum {
    KILN_OPT_MIRROR = 1000,
    KILN_OPT_INSECURE,
    KILN_OPT_CA,
    KILN_OPT_REGCONFIG,
    KILN_OPT_RETRIES,
    KILN_OPT_BACKOFF,
    KILN_OPT_STALL,
    KILN_OPT_PARALLEL,
    KILN_OPT_PROGRESS,
    KILN_OPT_PLATFORM,
    KILN_OPT_ROOT,
    KILN_OPT_ECR_CREATE, /* push and copy only: --ecr-create-repository */
};

#define KILN_CLI_REGISTRY_LONGOPTS                                                                 \
    {"registry-mirror", required_argument, NULL, KILN_OPT_MIRROR},                                 \
        {"insecure-registry", required_argument, NULL, KILN_OPT_INSECURE},                         \
        {"registry-ca", required_argument, NULL, KILN_OPT_CA},                                     \
        {"registry-config", required_argument, NULL, KILN_OPT_REGCONFIG},                          \
        {"retries", required_argument, NULL, KILN_OPT_RETRIES},                                    \
        {"retry-backoff-ms", required_argument, NULL, KILN_OPT_BACKOFF},                           \
        {"stall-timeout", required_argument, NULL, KILN_OPT_STALL},                                \
        {"parallel", required_argument, NULL, KILN_OPT_PARALLEL},                                  \
        {"progress", required_argument, NULL, KILN_OPT_PROGRESS},                                  \
        {"platform", required_argument, NULL, KILN_OPT_PLATFORM},                                  \
    {                                                                                              \
        "root", required_argument, NULL, KILN_OPT_ROOT                                             \
    }

#define KILN_CLI_REGISTRY_HELP                                                                     \
    "  --registry-mirror SRC=HOST[/PREFIX]  try HOST before registry SRC (repeatable)\n"           \
    "  --insecure-registry HOST[:PORT]      plain http / unverified TLS for that host\n"           \
    "  --registry-ca FILE                   extra CA certificates (PEM)\n"                         \
    "  --registry-config FILE               mirrors/insecure/ca file (default\n"                   \
    "                                       $KILN_REGISTRIES_CONFIG or "                           \
    "/etc/kiln/registries.json)\n"                                                                 \
    "  --retries N  --retry-backoff-ms MS  --stall-timeout SECONDS  --parallel N\n"                \
    "  --progress auto|plain|json|none      progress on stderr (default auto)\n"                   \
    "  --platform OS/ARCH[/VARIANT]         default linux/amd64\n"                                 \
    "  --root DIR                           the blob store (default: kiln's store)\n"

/* --ecr-create-repository, for the commands that push (not in the common set). */
#define KILN_CLI_ECR_CREATE_LONGOPT                                                                \
    {                                                                                              \
        "ecr-create-repository", no_argument, NULL, KILN_OPT_ECR_CREATE                            \
    }
#define KILN_CLI_ECR_CREATE_HELP                                                                   \
    "  --ecr-create-repository              create the destination repository first when\n"        \
    "                                       its registry is ECR (or uses ecr-login)\n"

/* An `other` callback for kiln_cli_registry_getopt() that takes
 * --ecr-create-repository (ud: int *, set to 1) and refuses anything else. */
int kiln_cli_ecr_create_opt(int c, const char *arg, void *ud);

typedef enum {
    KILN_PROGRESS_AUTO,
    KILN_PROGRESS_PLAIN,
    KILN_PROGRESS_JSON,
    KILN_PROGRESS_NONE
} kiln_progress_mode_t;

typedef struct kiln_cli_registry {
    kiln_registry_opts_t opts;
    char **mirrors;  /* NULL-terminated */
    char **insecure; /* NULL-terminated */
    kiln_progress_mode_t progress;
    int tty;
    struct {
        char digest[20];
        uint64_t size, done;
    } live[16]; /* blobs in flight, drawn as live lines on a terminal */
    int nlive, drawn;
    char os[32], arch[32], variant[32];
    const char *root;
} kiln_cli_registry_t;

/* Defaults (environment included). */
void kiln_cli_registry_init(kiln_cli_registry_t *cr);
void kiln_cli_registry_free(kiln_cli_registry_t *cr);
/* The end of a registry command: its store closed, its client and options freed (any may
 * be NULL / unset); returns rc. */
int kiln_cli_registry_end(kiln_cli_registry_t *cr, kiln_registry_t *r, kiln_store_t *s, int rc);
/* kiln_cli_registry_end of a command that ran: rc KILN_EXIT_FAIL reports err first
 * (kiln_cli_fail), KILN_EXIT_USAGE was reported where it was found. Returns rc. */
int kiln_cli_registry_finish(kiln_cli_registry_t *cr, kiln_registry_t *r, kiln_store_t *s, int rc,
                             const kiln_error_t *err);

/* Handles one registry option; returns 1 when it was one, 0 when not, -1 on a
 * bad value (message printed for command cmd). */
int kiln_cli_registry_opt(kiln_cli_registry_t *cr, const char *cmd, int c, const char *arg);

/* Parses argv with getopt_long: registry options are handled here, -h/--help
 * prints usage to stdout, anything else goes to other(c, optarg, ud) (which
 * returns 0 when it took the option, -1 when it is a usage error; may be
 * NULL). Returns 0 to go on (operands from optind), 1 after printing help,
 * -1 on a bad option. */
int kiln_cli_registry_getopt(kiln_cli_registry_t *cr, const char *cmd, int argc, char **argv,
                             const char *shortopts, const struct option *opts,
                             void (*usage)(FILE *out),
                             int (*other)(int c, const char *arg, void *ud), void *ud);

/* A client configured from the flags (progress printer installed). */
int kiln_cli_registry_client(kiln_cli_registry_t *cr, kiln_registry_t **out, kiln_error_t *err);

/* Opens the store (--root or the default). */
int kiln_cli_registry_store(kiln_cli_registry_t *cr, kiln_store_t **out, kiln_error_t *err);

/* Pull options from the platform flag. */
void kiln_cli_registry_pull_opts(const kiln_cli_registry_t *cr, kiln_registry_pull_opts_t *po);

/* Prints a remote image's description (like `skopeo inspect`) as JSON on
 * stdout; raw prints the manifest bytes as served. The body of `kiln inspect
 * REF` for registry references. Returns the exit status. */
int kiln_cli_inspect_remote(kiln_cli_registry_t *cr, const char *ref, int raw);

/* True when the last argument of `kiln inspect` names a registry image
 * (docker://REF or a bare REF, not oci:/docker-archive:/store:). */
int kiln_cli_inspect_is_remote(const char *arg);

/* `kiln inspect [registry flags] [--raw] REF` for registry references. */
int kiln_cli_inspect_remote_main(int argc, char **argv);

/* Kinds of image location on the command line. */
typedef enum { KILN_LOC_REGISTRY, KILN_LOC_OCI, KILN_LOC_ARCHIVE } kiln_loc_kind_t;

/* Classifies "docker://REF", "oci:DIR[:TAG]", "docker-archive:FILE" or a bare
 * REF; *rest points into s past the prefix. */
kiln_loc_kind_t kiln_cli_location(const char *s, const char **rest);

/* The top-level descriptor (manifest or index, as listed in index.json) of
 * the image tagged `tag` in the OCI layout at dir; tag NULL = the only one. */
int kiln_cli_layout_top(const char *dir, const char *tag, kiln_descriptor_t *out,
                        kiln_error_t *err);

/* Resolves a push/copy source into the store: "oci:DIR[:TAG]" (imported),
 * "docker-archive:FILE" (read), a registry reference (pulled, all platforms),
 * or, for push, an image pinned in the store as "image/<full reference>".
 * *top is the image's top-level descriptor in the store; *from is the
 * "registry/repository" it came from when it came from a registry (else NULL). */
int kiln_cli_source_to_store(kiln_cli_registry_t *cr, kiln_registry_t *r, kiln_store_t *s,
                             const char *src, int from_store_ok, kiln_descriptor_t *top,
                             char **from, kiln_error_t *err);

#endif
