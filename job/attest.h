/* kiln — a build's attestations (`--sbom`, `--provenance`, spec fields "sbom" and
 * "provenance"): the SPDX document (export/sbom) and the in-toto SLSA provenance
 * (export/provenance) of the built image, written beside its file outputs as buildx does:
 * inside a type=local dest (DEST/sbom.spdx.json, DEST/provenance.json), beside the others
 * (DEST.sbom.spdx.json, DEST.provenance.json for oci, docker and tar). */
#ifndef KILN_JOB_ATTEST_H
#define KILN_JOB_ATTEST_H

#include <jansson.h>

#include "engine/build.h"
#include "job/spec.h"
#include "oci/store.h"
#include "utils/error.h"

#define KILN_ATTEST_SBOM_FILE "sbom.spdx.json"
#define KILN_ATTEST_PROVENANCE_FILE "provenance.json"
/* the most referrers one fallback tag's index lists (a subject's referrers, merged) */
#define KILN_ATTEST_REFERRERS_MAX 256u

typedef struct kiln_job_attest {
    json_t *sbom;       /* or NULL when not asked */
    json_t *provenance; /* or NULL when not asked */
    size_t packages;    /* in the SBOM */
} kiln_job_attest_t;

typedef struct kiln_job_attest_in {
    const kiln_job_spec_t *spec;
    kiln_store_t *store;
    const kiln_build_result_t *res;
    const char *build_id;
    const char *repo, *commit; /* the source checked out, when known (else the spec's) */
    const char *started;       /* RFC 3339 UTC */
} kiln_job_attest_in_t;

/* Makes the documents the spec asks for. Fails naming the layer that cannot be read. */
int kiln_job_attest_make(const kiln_job_attest_in_t *in, kiln_job_attest_t *out, kiln_error_t *err);

/* Writes the documents beside the file output spec (an output that is not a file, or
 * written to stdout, gets none). *written: the SBOM's path when one was written (malloc'ed,
 * or NULL). Fails naming the path. */
int kiln_job_attest_write(const kiln_job_attest_t *a, const char *output, char **written,
                          kiln_error_t *err);

/* Attaches the documents to the image (manifest subject) in each pushed reference's
 * repository as OCI 1.1 referrers: one artifact manifest per document (artifactType
 * application/spdx+json, application/vnd.in-toto+json; an empty config; subject the image),
 * pushed with the fallback tag scheme's index REPO:sha256-HEX listing them, which a registry
 * without the referrers API (docker-registry 2.8) serves and one with it ignores. An index
 * already at that tag is merged: its descriptors stay (their manifests fetched back, at most
 * KILN_ATTEST_REFERRERS_MAX in all: the oldest left out past it; an index listing more is
 * refused), this build's are added, each digest listed once. ro: the
 * registry client's options. *tag_ref: the last index reference pushed (malloc'ed). Fails naming
 * the reference. */
struct kiln_registry_opts;
int kiln_job_attest_push(const kiln_job_attest_t *a, kiln_store_t *store,
                         const kiln_descriptor_t *subject, const char *const *refs, size_t n,
                         const struct kiln_registry_opts *ro, char **tag_ref, kiln_error_t *err);

void kiln_job_attest_clear(kiln_job_attest_t *a);

/* now, or SOURCE_DATE_EPOCH's time when set, as RFC 3339 UTC into buf */
void kiln_job_attest_time(const kiln_job_spec_t *s, char buf[32]);

#endif
