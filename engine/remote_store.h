/* kiln — where a remote build cache lives: `--cache-to/--cache-from type=s3,...` parsed,
 * and the objects of such a cache in its bucket.
 *
 *   type=s3,bucket=B[,prefix=P][,region=R][,endpoint=URL][,max-size=SIZE][,mode=min|max]
 *   type=registry,ref=REF[,mode=min|max][,max-size=SIZE]
 *
 * Layout under s3://B/<base>, base = P, or kiln-ns/<namespace>/P for a namespaced (tenant)
 * build, so a tenant's keys never reach another's whatever prefix it asks for:
 *
 *   <base>/blobs/sha256/<hex>        content-addressed blobs (cache mount packs, layers)
 *   <base>/mounts/<sha256 of id>.json the manifest of cache mount `id` (engine/cachemanifest)
 *   <base>/layers.json               the layer cache: step cache entries and their layers
 *
 * Blobs are written before the manifest or index naming them and never changed by kiln (only
 * `kiln cache gc` deletes blobs nothing names, see engine/remote_gc.h), and each manifest is one
 * PutObject (atomic in S3): a reader sees the previous or the next complete manifest, never one
 * whose blobs are missing; of two writers of one cache id the last complete one wins. */
#ifndef KILN_ENGINE_REMOTE_STORE_H
#define KILN_ENGINE_REMOTE_STORE_H

#include <stdint.h>

#include "oci/digest.h"
#include "oci/store.h"
#include "utils/aws/s3_object.h"
#include "utils/error.h"
#include "utils/http.h"

typedef struct kiln_rcache_spec {
    char *type; /* "s3" or "registry" */
    char *bucket, *prefix, *region, *endpoint;
    char *ref;         /* registry */
    uint64_t max_size; /* a cache mount's bound (file bytes), 0: KILN_CM_DEFAULT_MAX_SIZE */
    int mode_max;      /* mode=max: every stage's steps in the layer cache */
} kiln_rcache_spec_t;

/* Parses a --cache-from/--cache-to value. A bare reference is type=registry,ref=. In
 * server_mode endpoint= is refused (the operator's AWS_ENDPOINT_URL_S3 is used: a tenant
 * never chooses the address kiln connects to). -1 with err naming the bad field. */
int kiln_rcache_spec_parse(const char *spec, int server_mode, kiln_rcache_spec_t *out,
                           kiln_error_t *err);
void kiln_rcache_spec_clear(kiln_rcache_spec_t *s);
/* "s3://B/P" or the registry reference, for messages (malloc'ed). */
char *kiln_rcache_spec_name(const kiln_rcache_spec_t *s);

typedef struct kiln_rstore kiln_rstore_t;

/* An S3 cache of spec for namespace ns (NULL: none). -1 with err. */
int kiln_rstore_open(const kiln_rcache_spec_t *spec, const char *ns, kiln_rstore_t **out,
                     kiln_error_t *err);
void kiln_rstore_free(kiln_rstore_t *rs);
/* "s3://B/<base>" (valid while rs is). */
const char *kiln_rstore_name(const kiln_rstore_t *rs);
/* The spec that opens rs again with its namespace ("type=s3,bucket=B,prefix=P[,region=R]
 * [,endpoint=URL]"; valid while rs is): a lazy blob's source (engine/remote_lazy). */
const char *kiln_rstore_spec(const kiln_rstore_t *rs);
/* The cache namespace rs was opened for (valid while rs is), or NULL. */
const char *kiln_rstore_ns(const kiln_rstore_t *rs);
/* The key prefix <base> ("" or "a/b") and the bucket's addressing (valid while rs is). */
const char *kiln_rstore_base(const kiln_rstore_t *rs);
const kiln_s3_target_t *kiln_rstore_target(const kiln_rstore_t *rs);

/* The object <base>/rel: 1 and *buf (at most cap bytes), 0 when missing, -1 with err. */
int kiln_rstore_get(kiln_rstore_t *rs, kiln_http_t *http, const char *rel, size_t cap, char **buf,
                    size_t *len, kiln_error_t *err);
/* Writes <base>/rel from memory (one PutObject). */
int kiln_rstore_put(kiln_rstore_t *rs, kiln_http_t *http, const char *rel, const void *buf,
                    size_t len, kiln_error_t *err);
/* Blob d (exactly size bytes, at most KILN_CM_PACK_MAX, digest checked) into *buf. */
int kiln_rstore_get_blob(kiln_rstore_t *rs, kiln_http_t *http, const kiln_digest_t *d,
                         uint64_t size, char **buf, kiln_error_t *err);
/* Uploads blob d from memory (mem) or from fd's size bytes (multipart when large). */
int kiln_rstore_put_blob(kiln_rstore_t *rs, kiln_http_t *http, const kiln_digest_t *d,
                         const void *mem, int fd, uint64_t size, kiln_error_t *err);
/* Whether blob d is there: 1, 0, -1 with err. */
int kiln_rstore_has_blob(kiln_rstore_t *rs, kiln_http_t *http, const kiln_digest_t *d,
                         kiln_error_t *err);
/* Copies blob d (size bytes, any size: fetched in ranges) into the store, its digest
 * checked by the store. */
int kiln_rstore_blob_to_store(kiln_rstore_t *rs, kiln_http_t *http, const kiln_digest_t *d,
                              uint64_t size, kiln_store_t *store, kiln_error_t *err);

#endif
