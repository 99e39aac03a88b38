/* kiln — where a lazy blob (oci/store_lazy) comes from, and its fetch: a fully cached build
 * on a fresh root names the layers of its S3 layer cache and of a registry base image
 * without downloading them; the store records each with a source string made here, and the
 * process's fetcher (set by main) downloads one when its bytes are needed. */
#ifndef KILN_ENGINE_REMOTE_LAZY_H
#define KILN_ENGINE_REMOTE_LAZY_H

#include <stdbool.h>

#include "engine/remote_store.h"
#include "oci/store.h"

/* The source of a layer of S3 cache rs, malloc'ed: "s3 <spec>", or "s3-ns NAME <spec>" for
 * a namespace's cache (its prefix under kiln-ns/NAME; the record is that namespace's own and
 * its fetch refuses a store handle of another: oci/store_lazy). */
char *kiln_remote_lazy_s3_source(const kiln_rstore_t *rs);
/* The source of a layer of registry image pinned ("NAME@sha256:..."): "registry PINNED", or
 * "registry-insecure PINNED" when its host was reached over plain HTTP. malloc'ed. */
char *kiln_remote_lazy_registry_source(const char *pinned, bool insecure);

/* kiln_store_fetch_fn: blob d (size bytes) from source into s, digest and size checked by
 * the store; an S3 source is read with the process's AWS credentials, a registry one with
 * the default registries config (and plain HTTP when the source says so). -1 with err naming
 * the blob and the source. */
int kiln_remote_lazy_fetch(kiln_store_t *s, const kiln_digest_t *d, uint64_t size,
                           const char *source, kiln_error_t *err);

#endif
