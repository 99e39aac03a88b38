/* kiln — where a lazy blob (oci/store_lazy) comes from, and its fetch: a fully cached build
 * on a fresh root names the layers of its S3 layer cache and of a registry base image
 * without downloading them; the store records each with a source string made here, and the
 * process's fetcher (set by main) downloads one when its bytes are needed. */
#ifndef KILN_ENGINE_REMOTE_LAZY_H
#define KILN_ENGINE_REMOTE_LAZY_H

#include <stdbool.h>

#include "engine/remote_store.h"
#include "oci/registry.h"
#include "oci/store.h"
#include "oci/store_lazy.h"

/* The source of a layer of S3 cache rs, malloc'ed: "s3 <spec>", or "s3-ns NAME <spec>" for
 * a namespace's cache (its prefix under kiln-ns/NAME; the record is that namespace's own and
 * its fetch refuses a store handle of another: oci/store_lazy). */
char *kiln_remote_lazy_s3_source(const kiln_rstore_t *rs);
/* The source of a layer of registry image pinned ("NAME@sha256:..."): "registry PINNED", or
 * "registry-insecure PINNED" when its host was reached over plain HTTP. malloc'ed. */
char *kiln_remote_lazy_registry_source(const char *pinned, bool insecure);

/* The registry settings to record with a lazy blob of registry image pinned that reg reached
 * (oci/registry_settings: its mirrors, plain-HTTP hosts, CAs; never credentials), compact
 * JSON, malloc'ed; NULL when reg uses the defaults for that registry. */
char *kiln_remote_lazy_registry_via(kiln_registry_t *reg, const char *pinned);

/* kiln_store_fetch_fn: blob d (l->size bytes) from l->source into s, digest and size checked
 * by the store; an S3 source is read with the process's AWS credentials, a registry one with
 * the settings the recording build used (l->via: its mirrors, plain-HTTP hosts and CAs, over
 * the default registries config; plain HTTP also when the source says so) and the
 * credentials the process finds for those hosts. -1 with err naming the blob and the source
 * (or what in the settings is refused). */
int kiln_remote_lazy_fetch(kiln_store_t *s, const kiln_digest_t *d, const kiln_store_lazy_t *l,
                           kiln_error_t *err);

#endif
