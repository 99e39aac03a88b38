/* kiln — the registry client: Distribution API v2 over libcurl.
 *
 * What it does for a caller (the CLI, the Dockerfile engine for FROM, the
 * build outputs):
 *   - kiln_registry_pull: resolve a reference (mirrors first, then the source
 *     registry), pick the platform, download every missing blob into the
 *     shared store in parallel (digest and size verified, Range resume), store
 *     the manifests, and say what it got.
 *   - kiln_registry_push: upload an image (manifest or index) from the store or
 *     an OCI layout to one or more references: HEAD, cross-repo mount,
 *     monolithic or chunked upload, manifest PUT last.
 *   - kiln_registry_inspect_raw: fetch a manifest (no blobs).
 *
 * Transport: retries with exponential backoff and jitter on connection errors,
 * 408, 429 (Retry-After honoured) and 5xx; a stalled transfer (no progress for
 * stall_timeout_s) counts as a connection error. Auth: anonymous, Basic and
 * Bearer tokens (cached until expires_in, one refresh on 401), credentials
 * from docker's config.json (see oci/docker_config.h). Secrets never appear in
 * errors or progress events.
 *
 * Registries config file (JSON; --registry-config FILE, else $KILN_REGISTRIES_CONFIG,
 * else /etc/kiln/registries.json when it exists):
 *   {"mirrors":  {"docker.io": ["mirror.example:5000", "cache.example/dockerhub"]},
 *    "insecure": ["127.0.0.1:5000"],
 *    "ca":       "/path/to/extra-ca.pem"}
 * Mirrors given on the command line are tried before those of the file. */
#ifndef KILN_OCI_REGISTRY_H
#define KILN_OCI_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "oci/docker_config.h"
#include "oci/image.h"
#include "oci/pull_stream.h"
#include "oci/reference.h"
#include "oci/store.h"
#include "utils/error.h"
#include "utils/netpolicy.h"

typedef struct kiln_registry kiln_registry_t;

typedef enum {
    KILN_REGISTRY_EV_RESOLVED = 1, /* manifest found: ref, digest, host */
    KILN_REGISTRY_EV_BLOB_START,   /* a blob transfer begins: digest, size */
    KILN_REGISTRY_EV_BLOB_PROGRESS,
    KILN_REGISTRY_EV_BLOB_DONE,
    KILN_REGISTRY_EV_BLOB_SKIPPED, /* already in the store / already in the registry */
    KILN_REGISTRY_EV_BLOB_MOUNTED, /* cross-repository mount */
    KILN_REGISTRY_EV_RETRY,        /* a request is retried: message says why */
    KILN_REGISTRY_EV_FALLBACK,     /* a mirror failed, trying the next endpoint */
    KILN_REGISTRY_EV_MANIFEST_PUT, /* a manifest was pushed: ref, digest */
} kiln_registry_ev_kind_t;

typedef struct kiln_registry_event {
    kiln_registry_ev_kind_t kind;
    const char *ref;     /* image reference or NULL */
    const char *digest;  /* "sha256:…" or NULL */
    const char *host;    /* endpoint host or NULL */
    const char *message; /* human detail or NULL (never a secret) */
    uint64_t size;       /* total bytes when known */
    uint64_t done;       /* bytes transferred so far */
} kiln_registry_event_t;

typedef void (*kiln_registry_progress_fn)(void *ud, const kiln_registry_event_t *ev);

/* Per-host CAs when KILN_CERTS_DIR is not set: DIR/HOST[:PORT]/ca.crt. */
#define KILN_REGISTRY_DEFAULT_CERTS_DIR "/etc/docker/certs.d"

typedef struct kiln_registry_opts {
    int retries;             /* extra attempts per request (KILN_REGISTRY_RETRIES, 4) */
    unsigned backoff_ms;     /* first backoff (KILN_REGISTRY_BACKOFF_MS, 500) */
    unsigned max_backoff_ms; /* backoff cap (KILN_REGISTRY_MAX_BACKOFF_MS, 20000) */
    unsigned
        stall_timeout_s; /* no progress this long = failure (KILN_REGISTRY_STALL_TIMEOUT, 60) */
    unsigned connect_timeout_s;  /* (KILN_REGISTRY_CONNECT_TIMEOUT, 15) */
    unsigned parallel;           /* concurrent blob transfers (KILN_REGISTRY_PARALLEL, 4) */
    uint64_t chunk_size;         /* PATCH chunk (KILN_REGISTRY_CHUNK_SIZE, 32 MiB, ≥ 5 MiB) */
    uint64_t monolithic_max;     /* blobs smaller go in one PUT (5 MiB) */
    const char *const *insecure; /* NULL-terminated "HOST[:PORT]" list, or NULL */
    const char *const *mirrors;  /* NULL-terminated "SRC=HOST[:PORT][/PREFIX]" list, or NULL */
    const char *ca_file;         /* extra CA bundle (PEM) trusted for every host, or NULL */
    const char *certs_dir;       /* per-host CAs: DIR/HOST[:PORT]/ca.crt (KILN_CERTS_DIR,
                                    /etc/docker/certs.d) */
    const char *config_file;     /* registries config (see above), or NULL for the default */
    /* Address policy for every connection (copied): NULL = all addresses but
     * link-local and metadata ones, which are refused whatever the policy. */
    const kiln_netpolicy_t *policy;
    kiln_registry_progress_fn progress;
    void *progress_ud;
} kiln_registry_opts_t;

/* Fills opts with the defaults, then the KILN_REGISTRY_* / KILN_CERTS_DIR
 * environment overrides. */
void kiln_registry_opts_init(kiln_registry_opts_t *opts);

/* A client. Strings in opts are copied. Fails on a bad mirror spec or an
 * unreadable/invalid registries config file. */
int kiln_registry_new(const kiln_registry_opts_t *opts, kiln_registry_t **out, kiln_error_t *err);
void kiln_registry_free(kiln_registry_t *r);

/* Registers a built-in credential provider for credential helper `name`
 * (e.g. "ecr-login"): config.json credHelpers naming it call fn instead of
 * running docker-credential-<name>. Same as kiln_docker_config_set_provider. */
int kiln_registry_set_cred_provider(const char *name, kiln_cred_provider_fn fn, void *ud);

/* What kiln_registry_pull fetched. */
typedef struct kiln_registry_image {
    kiln_descriptor_t top;      /* what the reference names: an index or a manifest */
    kiln_descriptor_t manifest; /* the selected platform's manifest (== top when not an index) */
    kiln_manifest_t *parsed;    /* its config and layer descriptors */
    char *name;                 /* "registry/repository" of the source */
    char *host;                 /* the endpoint that served it (a mirror or the source) */
    size_t streamed; /* layers streamed only (po->stream_only): the image is not in the store */
} kiln_registry_image_t;

void kiln_registry_image_clear(kiln_registry_image_t *img);

typedef struct kiln_registry_pull_opts {
    const char *os;      /* default "linux" */
    const char *arch;    /* default "amd64" */
    const char *variant; /* or NULL */
    int all_platforms;   /* fetch every manifest of an index (for copy) */
    /* Optional hooks, e.g. to unpack layers while later ones still download:
     * on_manifest runs once the selected platform's manifest is known, before
     * any blob is fetched; on_blob runs (on any download thread) each time a
     * blob of it is complete in the store (fetched or already there). */
    void (*on_manifest)(void *ud, const kiln_manifest_t *m);
    void (*on_blob)(void *ud, const kiln_digest_t *d);
    /* Whether a blob already in the store may be used without fetching it
     * (NULL: always). When it says no, the blob is downloaded and verified
     * again: the registry has to serve its bytes (how a build of one tenant
     * shows it may use a blob another tenant's build stored). */
    int (*may_reuse)(void *ud, const kiln_digest_t *d);
    /* A layer it returns nonzero for is not fetched (NULL: every layer is), e.g. a registry
     * cache's cache mount packs, fetched only when a step mounts them. */
    int (*skip_layer)(void *ud, const kiln_descriptor_t *d);
    /* Optional: called (on the download thread) for each blob that is fetched, before its
     * first byte, with a stream of its bytes as they arrive (oci/pull_stream: take a
     * reference to keep it), so it can be unpacked while it downloads. Pulled blobs are
     * committed without fsync (they can be fetched again). */
    void (*on_blob_stream)(void *ud, kiln_blob_stream_t *bs);
    /* Optional, with on_blob_stream: a layer to fetch it returns nonzero for is streamed only:
     * its stream is in memory (kiln_blob_stream_memory: the download pauses while its one
     * reader is behind; it must read it to the end or abandon it), hashed on the way and
     * never written to the store; the stream's end says whether its digest and size matched
     * (on_blob is not called for it). The image is then not in the store: its manifests are
     * not stored nor its reference pinned (out->streamed counts those layers). */
    int (*stream_only)(void *ud, const kiln_descriptor_t *d);
    void *hook_ud;
} kiln_registry_pull_opts_t;

/* Pulls `ref` into the store: manifests and every blob of the selected
 * platform (or of all of them). Blobs already in the store are skipped
 * (unless po->may_reuse says otherwise). On
 * failure nothing is pinned and no partial blob is left in the store. */
int kiln_registry_pull(kiln_registry_t *r, kiln_store_t *s, const char *ref,
                       const kiln_registry_pull_opts_t *po, kiln_registry_image_t *out,
                       kiln_error_t *err);

/* Where push reads blobs from: the store or an OCI layout directory. */
typedef struct kiln_blob_source {
    int (*open)(void *ctx, const kiln_digest_t *d, int *fd, uint64_t *size, kiln_error_t *err);
    void *ctx;
    /* Optional: 1 and the "registry/repository" blob d can be mounted from without reading it
     * (a lazy blob of the store, oci/store_lazy), else 0; a push to that registry tries a
     * cross-repository mount before open fetches it. */
    int (*origin)(void *ctx, const kiln_digest_t *d, char *name, size_t len);
} kiln_blob_source_t;

kiln_blob_source_t kiln_registry_source_store(kiln_store_t *s);
/* ctx is the layout directory path (borrowed). */
kiln_blob_source_t kiln_registry_source_layout(const char *dir);

/* Pushes the image whose top-level manifest or index is `top` to every
 * reference in refs (n of them; tags of one or several repositories). Blobs
 * the registry has are skipped; when mount_from ("registry/repository", may
 * be NULL) is on the same registry a cross-repository mount is tried first.
 * Manifests are PUT only after all their blobs are confirmed. The digest of
 * the pushed top-level document in *pushed (may be NULL). */
int kiln_registry_push(kiln_registry_t *r, const kiln_blob_source_t *src,
                       const kiln_descriptor_t *top, const char *const *refs, size_t n,
                       const char *mount_from, kiln_digest_t *pushed, kiln_error_t *err);

/* PUTs the manifest (or index) bytes as ref (a tag, or its own digest), one request, to the
 * destination itself (never a mirror); everything it names must be in the repository already
 * (pushed by digest before: kiln_registry_push to NAME@DIGEST). -1 with err naming ref. */
int kiln_registry_put_manifest(kiln_registry_t *r, const char *ref, const char *body, size_t len,
                               const char *media_type, kiln_error_t *err);

/* Whether the registry of reference ref is one of r's insecure ones (plain HTTP allowed): 1
 * or 0 (also for a reference that does not parse). */
int kiln_registry_is_insecure(kiln_registry_t *r, const char *ref);

/* Fetches the manifest or index `ref` names (mirrors first), verified against
 * the digest asked for / announced. *body malloc'ed; media type and digest out. */
int kiln_registry_get_manifest(kiln_registry_t *r, const char *ref, char **body, size_t *len,
                               char media_type[256], kiln_digest_t *digest, kiln_error_t *err);

/* Deletes the manifest digest from the repository of ref (DELETE /v2/NAME/manifests/DIGEST,
 * on the source registry, not a mirror): 1 deleted, 0 when the registry does not allow it
 * (405 with deletes turned off, 401/403, 404), -1 with err on anything else. Its blobs stay
 * until the registry's own garbage collection. */
int kiln_registry_delete_manifest(kiln_registry_t *r, const char *ref, const kiln_digest_t *digest,
                                  kiln_error_t *err);

/* Fetches blob d (its digest and size) of ref's repository into the store (verified;
 * mirrors first). */
int kiln_registry_pull_blob(kiln_registry_t *r, kiln_store_t *s, const char *ref,
                            const kiln_descriptor_t *d, kiln_error_t *err);

/* Fetches a blob (e.g. a config) into memory, verified, at most cap bytes. */
int kiln_registry_get_blob(kiln_registry_t *r, const char *ref, const kiln_digest_t *d, size_t cap,
                           char **body, size_t *len, kiln_error_t *err);

/* Checks that the credentials work for registry (`kiln login`): GET /v2/
 * with the given user and password. */
int kiln_registry_check_login(kiln_registry_t *r, const char *registry, const char *user,
                              const char *password, kiln_error_t *err);

#endif
