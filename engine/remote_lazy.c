/* kiln — lazy blobs' sources and fetch (see remote_lazy.h). */
#include "engine/remote_lazy.h"

#include <string.h>

#include "oci/reference.h"
#include "oci/registry.h"
#include "oci/store_lazy.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define S3_PREFIX "s3 "
#define REG_PREFIX KILN_STORE_LAZY_REGISTRY
#define REG_INSECURE_PREFIX KILN_STORE_LAZY_REGISTRY_INSECURE

char *kiln_remote_lazy_s3_source(const kiln_rstore_t *rs)
{
    const char *spec = kiln_rstore_spec(rs);
    return spec ? kiln_xasprintf(S3_PREFIX "%s", spec) : NULL;
}

char *kiln_remote_lazy_registry_source(const char *pinned, bool insecure)
{
    return kiln_xasprintf("%s%s", insecure ? REG_INSECURE_PREFIX : REG_PREFIX, pinned);
}

static int fetch_s3(kiln_store_t *s, const kiln_digest_t *d, uint64_t size, const char *spec,
                    kiln_error_t *err)
{
    kiln_rcache_spec_t sp = {0};
    kiln_rstore_t *rs = NULL;
    kiln_http_t *http = NULL;
    int r = -1;
    if (kiln_rcache_spec_parse(spec, 0, &sp, err) < 0 || strcmp(sp.type, "s3") != 0 ||
        kiln_rstore_open(&sp, NULL, &rs, err) < 0)
        goto out;
    http = kiln_http_new();
    r = kiln_rstore_blob_to_store(rs, http, d, size, s, err);
out:
    kiln_http_free(http);
    kiln_rstore_free(rs);
    kiln_rcache_spec_clear(&sp);
    return r;
}

/* Pulls the image pinned (its blobs the store lacks: every lazy layer of it at once, as a
 * push, save or run needs them all) and checks that it gave d. */
static int fetch_registry(kiln_store_t *s, const kiln_digest_t *d, const char *pinned,
                          bool insecure, kiln_error_t *err)
{
    kiln_reference_t ref = {0};
    kiln_registry_opts_t o;
    kiln_registry_t *reg = NULL;
    kiln_registry_image_t ri = {0};
    const char *hosts[2] = {NULL, NULL};
    int r = -1;
    if (kiln_reference_parse(pinned, &ref, err) < 0 || ref.digest == NULL) {
        if (ref.registry && !ref.digest)
            kiln_error_set(err, 0, "%s names no digest", pinned);
        goto out;
    }
    kiln_registry_opts_init(&o);
    hosts[0] = ref.registry;
    if (insecure)
        o.insecure = hosts;
    if (kiln_registry_new(&o, &reg, err) < 0 ||
        kiln_registry_pull(reg, s, pinned, NULL, &ri, err) < 0)
        goto out;
    if (kiln_store_has(s, d, NULL) != 1) {
        kiln_error_set(err, 0, "image %s has no blob sha256:%s", pinned, d->hex);
        goto out;
    }
    r = 0;
out:
    kiln_registry_image_clear(&ri);
    kiln_registry_free(reg);
    kiln_reference_free(&ref);
    return r;
}

int kiln_remote_lazy_fetch(kiln_store_t *s, const kiln_digest_t *d, uint64_t size,
                           const char *source, kiln_error_t *err)
{
    if (strncmp(source, S3_PREFIX, strlen(S3_PREFIX)) == 0)
        return fetch_s3(s, d, size, source + strlen(S3_PREFIX), err);
    if (strncmp(source, REG_INSECURE_PREFIX, strlen(REG_INSECURE_PREFIX)) == 0)
        return fetch_registry(s, d, source + strlen(REG_INSECURE_PREFIX), true, err);
    if (strncmp(source, REG_PREFIX, strlen(REG_PREFIX)) == 0)
        return fetch_registry(s, d, source + strlen(REG_PREFIX), false, err);
    return kiln_error_set(err, 0, "unknown source \"%s\"", source);
}
