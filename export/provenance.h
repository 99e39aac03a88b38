/* kiln — the image's build provenance (`kiln build --provenance`): an in-toto v1 statement
 * whose subject is the image manifest, with a SLSA v1 provenance predicate (buildx's
 * defaults in kiln's terms): the source (repository and commit when known), the Dockerfile
 * and target, the build args with the values of those that look like credentials left out,
 * the secrets' ids only, the base images by digest, and the builder (kiln and its version). */
#ifndef KILN_EXPORT_PROVENANCE_H
#define KILN_EXPORT_PROVENANCE_H

#include <jansson.h>
#include <stddef.h>

#define KILN_PROVENANCE_BUILD_TYPE "https://kiln.dev/provenance/build/v1"
#define KILN_PROVENANCE_BUILDER "https://kiln.dev/kiln@" KILN_VERSION

typedef struct kiln_provenance_in {
    const char *name;                /* the subject's name (the first -t, or "image") */
    const char *digest;              /* the image manifest "sha256:HEX" */
    const char *source;              /* the context: a directory or git URL as given */
    const char *repo;                /* repository without credentials, or NULL */
    const char *commit;              /* full commit SHA, or NULL */
    const char *dockerfile, *target; /* or NULL */
    const char *const *build_args;   /* "K=V" or "K" */
    size_t n_build_args;
    const char *const *secret_ids; /* --secret ids: never their values */
    size_t n_secret_ids;
    /* "REF@sha256:HEX" of each FROM image: REF "registry/repository[:tag]" or "oci:DIR[:TAG]" */
    const char *const *base_images;
    size_t n_base_images;
    const char *invocation_id;      /* the build id */
    const char *started, *finished; /* RFC 3339 UTC, or NULL */
} kiln_provenance_in_t;

/* 1 when a build arg's name reads as a credential (TOKEN, SECRET, PASSWORD, PASSWD, KEY,
 * CREDENTIAL, AUTH, PRIVATE in any case): its value is left out of the provenance. */
int kiln_provenance_arg_is_secret(const char *name);

/* The statement. Never fails (jansson aborts on memory). */
json_t *kiln_provenance_statement(const kiln_provenance_in_t *in);

#endif
