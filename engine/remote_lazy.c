/* kiln — lazy blobs' sources and fetch (see remote_lazy.h). */
#include "engine/remote_lazy.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "oci/reference.h"
#include "oci/registry.h"
#include "oci/registry_settings.h"
#include "oci/store_lazy.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define S3_PREFIX "s3 "
#define S3_NS_PREFIX "s3-ns "
#define REG_PREFIX KILN_STORE_LAZY_REGISTRY
#define REG_INSECURE_PREFIX KILN_STORE_LAZY_REGISTRY_INSECURE

char *kiln_remote_lazy_s3_source(const kiln_rstore_t *rs)
{
    const char *ns = kiln_rstore_ns(rs);
    if (ns != NULL) /* a namespace name is one path component: no space */
        return kiln_xasprintf(S3_NS_PREFIX "%s %s", ns, kiln_rstore_spec(rs));
    return kiln_xasprintf(S3_PREFIX "%s", kiln_rstore_spec(rs));
}

char *kiln_remote_lazy_registry_source(const char *pinned, bool insecure)
{
    return kiln_xasprintf("%s%s", insecure ? REG_INSECURE_PREFIX : REG_PREFIX, pinned);
}

char *kiln_remote_lazy_registry_via(kiln_registry_t *reg, const char *pinned)
{
    kiln_reference_t ref = {0};
    json_t *j = NULL;
    char *text = NULL;
    if (kiln_reference_parse(pinned, &ref, NULL) == 0)
        j = kiln_registry_settings_for(reg, ref.registry);
    if (j != NULL)
        text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    kiln_reference_free(&ref);
    return text;
}

/* Blob d of the S3 cache spec (of namespace ns, or NULL) into s. The endpoint is the
 * operator's (the remote cache kiln was configured with), not a tenant's input: the HTTP
 * client's own policy applies, not the handle's fetch policy. */
static int fetch_s3(kiln_store_t *s, const kiln_digest_t *d, uint64_t size, const char *ns,
                    const char *spec, kiln_error_t *err)
{
    kiln_rcache_spec_t sp = {0};
    kiln_rstore_t *rs = NULL;
    kiln_http_t *http = NULL;
    int r = -1;
    if (kiln_rcache_spec_parse(spec, 0, &sp, err) < 0 || strcmp(sp.type, "s3") != 0 ||
        kiln_rstore_open(&sp, ns, &rs, err) < 0)
        goto out;
    http = kiln_http_new();
    r = kiln_rstore_blob_to_store(rs, http, d, size, s, err);
out:
    kiln_http_free(http);
    kiln_rstore_free(rs);
    kiln_rcache_spec_clear(&sp);
    return r;
}

/* "NAME SPEC" of a namespace's S3 source: fetched under that namespace's prefix, and only for
 * a store handle of that very namespace (a record is never another tenant's source). */
static int fetch_s3_ns(kiln_store_t *s, const kiln_digest_t *d, uint64_t size, const char *src,
                       kiln_error_t *err)
{
    const char *sp = strchr(src, ' ');
    const char *mine = kiln_store_namespace(s);
    _cleanup_free_ char *ns = NULL;
    if (sp == NULL)
        return kiln_error_set(err, 0, "source names no cache");
    ns = kiln_xstrndup(src, (size_t)(sp - src));
    if (mine == NULL || strcmp(ns, mine) != 0)
        return kiln_error_set(err, EPERM, "a source of cache namespace %s, not of %s", ns,
                              mine ? mine : "this build (none)");
    return fetch_s3(s, d, size, ns, sp + 1, err);
}

/* kiln_registry_pull hooks of a fetch (ud: the store): a blob the store's namespace has not
 * fetched itself is downloaded again, every blob fetched is marked as the namespace's, and
 * only the blobs the root names lazily are fetched (not a cache image's packs). */
static int pull_may_reuse(void *ud, const kiln_digest_t *d)
{
    return kiln_store_ns_knows(ud, d);
}

static void pull_on_blob(void *ud, const kiln_digest_t *d)
{
    kiln_store_ns_note(ud, d);
}

static int pull_skip(void *ud, const kiln_descriptor_t *d)
{
    kiln_store_lazy_t l;
    return kiln_store_has(ud, &d->digest, NULL) != 1 &&
           kiln_store_lazy_get(ud, &d->digest, &l, NULL) != 1;
}

/* Pulls the image pinned (its blobs the store lacks: every lazy layer of it at once, as a
 * push, save or run needs them all) through the recording build's settings (via, or "") and
 * checks that it gave d. Every connection, to a recorded mirror too, follows the handle's
 * fetch policy (the asker's, not the recorder's: a refused address fails the fetch naming
 * it, and the store writer leaves no partial blob). */
static int fetch_registry(kiln_store_t *s, const kiln_digest_t *d, const char *pinned,
                          bool insecure, const char *via, kiln_error_t *err)
{
    kiln_reference_t ref = {0};
    kiln_registry_settings_t st = {0};
    json_t *vj = NULL;
    kiln_registry_opts_t o;
    kiln_registry_t *reg = NULL;
    kiln_registry_image_t ri = {0};
    const char *hosts[2] = {NULL, NULL};
    kiln_registry_pull_opts_t po = {.may_reuse = pull_may_reuse,
                                    .on_blob = pull_on_blob,
                                    .skip_layer = pull_skip,
                                    .hook_ud = s};
    int r = -1;
    if (kiln_reference_parse(pinned, &ref, err) < 0 || ref.digest == NULL) {
        if (ref.registry && !ref.digest)
            kiln_error_set(err, 0, "%s names no digest", pinned);
        goto out;
    }
    kiln_registry_opts_init(&o);
    if (*via != '\0' && ((vj = json_loads(via, 0, NULL)) == NULL ||
                         kiln_registry_settings_opts(vj, ref.registry, &o, &st, err) < 0)) {
        if (vj == NULL)
            kiln_error_set(err, EINVAL, "registry settings: not JSON");
        goto out;
    }
    o.policy = kiln_store_fetch_policy(s); /* NULL: the client's default */
    hosts[0] = ref.registry;
    if (insecure && o.insecure == NULL)
        o.insecure = hosts;
    if (kiln_registry_new(&o, &reg, err) < 0 ||
        kiln_registry_pull(reg, s, pinned, &po, &ri, err) < 0)
        goto out;
    if (kiln_store_has(s, d, NULL) != 1) {
        kiln_error_set(err, 0, "image %s has no blob sha256:%s", pinned, d->hex);
        goto out;
    }
    r = 0;
out:
    kiln_registry_image_clear(&ri);
    kiln_registry_free(reg);
    kiln_registry_settings_clear(&st);
    json_decref(vj);
    kiln_reference_free(&ref);
    return r;
}

int kiln_remote_lazy_fetch(kiln_store_t *s, const kiln_digest_t *d, const kiln_store_lazy_t *l,
                           kiln_error_t *err)
{
    const char *source = l->source;
    if (strncmp(source, S3_PREFIX, strlen(S3_PREFIX)) == 0)
        return fetch_s3(s, d, l->size, NULL, source + strlen(S3_PREFIX), err);
    if (strncmp(source, S3_NS_PREFIX, strlen(S3_NS_PREFIX)) == 0)
        return fetch_s3_ns(s, d, l->size, source + strlen(S3_NS_PREFIX), err);
    if (strncmp(source, REG_INSECURE_PREFIX, strlen(REG_INSECURE_PREFIX)) == 0)
        return fetch_registry(s, d, source + strlen(REG_INSECURE_PREFIX), true, l->via, err);
    if (strncmp(source, REG_PREFIX, strlen(REG_PREFIX)) == 0)
        return fetch_registry(s, d, source + strlen(REG_PREFIX), false, l->via, err);
    return kiln_error_set(err, 0, "unknown source \"%s\"", source);
}
