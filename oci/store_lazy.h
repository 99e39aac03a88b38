/* kiln — lazy blobs: a blob an image or cache entry of the store names, not downloaded yet,
 * with where it comes from (containerd's distribution-source labels, kept per blob).
 *
 *   <root>/lazy/<hex>  {"size": N, "usize": U, "source": "s3 ..." | "registry ...",
 *                       "registry": {...}}
 *
 * ("registry": how the recording build reached a registry source, oci/registry_settings:
 * its mirrors, plain-HTTP hosts and CAs, never credentials.)
 *
 * A fully cached build on a fresh root names layers of its remote layer cache and of a
 * registry base image without fetching their bytes; it records each such blob here. When
 * anything needs the bytes (kiln_store_open_blob / kiln_store_read_blob: an unpack, a push
 * to a registry that lacks it, `kiln save`, `kiln run`, an export) the process's fetcher
 * (kiln_store_set_fetcher; kiln's is engine/remote_lazy) downloads the blob into the store,
 * its digest and size checked by the store writer, before the open returns. kiln_store_has
 * says 0 for a lazy blob (its bytes are not here); kiln_store_lazy_get tells it is named.
 * Prune keeps the record of every reachable lazy blob (and counts it, not as a dangling
 * ref) and drops the others. Only kiln writes here (the root is 0700).
 *
 * Cache namespaces (tenants sharing one root; utils/cachens): a store handle given the
 * build's namespace (kiln_store_set_namespace) keeps that namespace's records apart, in
 * <root>/ns/NAME/lazy/<hex>, each with the namespace's own source (its S3 prefix, its
 * registry image read with its credentials), and sees no other record. Such a record lets the
 * namespace name the blob (a cache hit, an image written); its bytes are used only once
 * fetched from that source, digest and size checked, and the blob marked as the namespace's
 * (<root>/ns/NAME/blobs/<hex>): kiln_store_open_blob fetches it first even when the shared
 * store holds the bytes already (another namespace's), so one tenant's record never gives
 * another tenant bytes it could not have fetched itself. */
#ifndef KILN_OCI_STORE_LAZY_H
#define KILN_OCI_STORE_LAZY_H

#include <stdbool.h>
#include <stdint.h>

#include "oci/digest.h"
#include "oci/store.h"
#include "utils/error.h"
#include "utils/netpolicy.h"

/* A registry source: "registry NAME@DIGEST" (or "registry-insecure ...": plain HTTP allowed
 * for its host), NAME = "registry/repository". */
#define KILN_STORE_LAZY_REGISTRY "registry "
#define KILN_STORE_LAZY_REGISTRY_INSECURE "registry-insecure "

/* Longest source string a record keeps, and longest registry settings (compact JSON). */
#define KILN_STORE_LAZY_SOURCE_MAX 2048
#define KILN_STORE_LAZY_VIA_MAX 4096

typedef struct kiln_store_lazy {
    uint64_t size;  /* the blob's size (checked when fetched) */
    uint64_t usize; /* a layer's uncompressed size when known, else 0 */
    char source[KILN_STORE_LAZY_SOURCE_MAX];
    char via[KILN_STORE_LAZY_VIA_MAX]; /* the registry settings (compact JSON), or "" */
} kiln_store_lazy_t;

/* Records blob d (size bytes) as fetchable from source (via: the registry settings to reach
 * it with, a compact JSON object from oci/registry_settings, or NULL); nothing when the blob
 * is in the store already (for a namespace: and its own). Not synced: a crash may lose the
 * record or leave it unreadable, never make it name other bytes (see store_lazy.c); the next
 * build naming the blob records it again. -1 with err. */
int kiln_store_lazy_note(kiln_store_t *s, const kiln_digest_t *d, uint64_t size, uint64_t usize,
                         const char *source, const char *via, kiln_error_t *err);

/* Makes the handle's lazy records and blob uses those of cache namespace ns (NULL: nothing):
 * opens <root>/ns/NS/lazy and <root>/ns/NS/blobs (utils/cachens). -1 with err (also for a
 * handle given another namespace already). */
int kiln_store_set_namespace(kiln_store_t *s, const char *ns, kiln_error_t *err);
/* The handle's namespace, or NULL. */
const char *kiln_store_namespace(const kiln_store_t *s);
/* Whether the handle's namespace fetched (verified) or built blob d: true without a
 * namespace. A use keeps the mark fresh for gc. */
bool kiln_store_ns_knows(kiln_store_t *s, const kiln_digest_t *d);
/* Marks blob d as fetched (verified) or built by the handle's namespace (nothing without). */
void kiln_store_ns_note(kiln_store_t *s, const kiln_digest_t *d);

/* 1 and *out when d is recorded as lazy (whether or not it has been fetched since), 0 when
 * not, -1 with err for a record that cannot be read. */
int kiln_store_lazy_get(kiln_store_t *s, const kiln_digest_t *d, kiln_store_lazy_t *out,
                        kiln_error_t *err);
/* The same for a root directory fd (prune). */
int kiln_store_lazy_get_at(int root_fd, const kiln_digest_t *d, kiln_store_lazy_t *out,
                           kiln_error_t *err);
/* Parses a record's len bytes (a positive integer "size", an optional non-negative integer
 * "usize", a "source" string shorter than KILN_STORE_LAZY_SOURCE_MAX, an optional "registry"
 * object shorter than KILN_STORE_LAZY_VIA_MAX as compact JSON) into *out, written only on
 * success: 0, or -1 when it is not such a record. */
int kiln_store_lazy_parse(const char *body, size_t len, kiln_store_lazy_t *out);

/* 1 and *out when d is lazy and its bytes are not usable yet by the handle (not in the root,
 * or, for a namespace, not fetched by it: an open would fetch it); else 0. */
int kiln_store_lazy_pending(kiln_store_t *s, const kiln_digest_t *d, kiln_store_lazy_t *out);

/* When d is lazy (not in the root) with a registry source: 1 and its image's NAME
 * ("registry/repository") in name (len bytes), so a push to that registry can mount it from
 * there without reading it; else 0. */
int kiln_store_lazy_registry_name(kiln_store_t *s, const kiln_digest_t *d, char *name, size_t len);
/* The same for a source string: 1 and NAME (shorter than len) when it is a registry's source
 * "registry[-insecure] NAME@DIGEST", else 0. */
int kiln_store_lazy_source_name(const char *source, char *name, size_t len);

/* Fetches blob d of l->size bytes from l->source (reached through l->via) into store s
 * (kiln_store_writer_new with the digest and size expected); -1 with err naming the blob and
 * the source. */
typedef int (*kiln_store_fetch_fn)(kiln_store_t *s, const kiln_digest_t *d,
                                   const kiln_store_lazy_t *l, kiln_error_t *err);
/* Sets the process's fetcher (NULL: lazy blobs cannot be opened; the error says so). */
void kiln_store_set_fetcher(kiln_store_fetch_fn fn);
/* The address policy of the handle's lazy fetches from a registry source (the source and
 * the mirrors of the record's settings alike): whoever asks for the bytes decides where they
 * may come from, not the build that recorded them (a host that resolved to a public address
 * then may resolve to a private one now; an --allow-address of the recording build is not
 * the next one's). A build sets its registry policy (engine/build.c), kept for the outputs
 * written with the handle after it; without one the registry client's default applies, as
 * for the CLI's own registry access. The handle keeps a copy of p (NULL: the default). Set it
 * before the handle is shared with other threads: the fetches read it unlocked. */
void kiln_store_set_fetch_policy(kiln_store_t *s, const kiln_netpolicy_t *p);
/* The handle's fetch policy, or NULL for the default. Valid until the next set or the close. */
const kiln_netpolicy_t *kiln_store_fetch_policy(const kiln_store_t *s);

/* Called by kiln_store_open_blob when d is neither in the root nor in an additional store:
 * 1 when it was lazy and is now fetched into the store, 0 when it is not lazy, -1 with err
 * (the fetch failed, or no fetcher: the message names the blob, its source and what
 * fetches it). */
int kiln_store_lazy_fetch(kiln_store_t *s, const kiln_digest_t *d, kiln_error_t *err);

/* Called by kiln_store_open_blob for a handle with a namespace: when d is in the root but
 * not the namespace's and the namespace records it as lazy, fetches it from the record's
 * source (the bytes here are not proof that the namespace may read them) and marks it: 1;
 * 0 when there is nothing to prove, -1 with err naming the blob and its source. */
int kiln_store_lazy_prove(kiln_store_t *s, const kiln_digest_t *d, kiln_error_t *err);

#endif
