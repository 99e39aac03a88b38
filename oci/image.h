/* kiln — image JSON (jansson): OCI image config, manifest and index, and the
 * Docker v2 schema 2 manifest, manifest list and config when reading.
 *
 * Documents are plain json_t trees. Parsing validates what kiln relies on
 * (media types, descriptors with valid digests and sizes, config rootfs and
 * types of the well-known fields) under a size cap, with errors naming the
 * field. Writing is canonical: sorted keys, compact, UTF-8 — the exact bytes
 * kiln_image_serialize returns are what get hashed and stored, so the same
 * document always has the same digest. */
#ifndef KILN_OCI_IMAGE_H
#define KILN_OCI_IMAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "oci/digest.h"
#include "oci/store.h"
#include "utils/error.h"

#define KILN_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define KILN_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define KILN_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define KILN_MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define KILN_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define KILN_MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define KILN_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define KILN_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define KILN_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define KILN_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define KILN_MT_DOCKER_LAYER_FOREIGN "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

/* Caps on documents read from outside. */
#define KILN_IMAGE_MANIFEST_MAX (4u * 1024 * 1024)
#define KILN_IMAGE_CONFIG_MAX (8u * 1024 * 1024)

/* Kinds of JSON document kiln understands. */
typedef enum kiln_doc_kind {
    KILN_DOC_UNKNOWN = 0,
    KILN_DOC_MANIFEST, /* OCI manifest or Docker v2s2 manifest */
    KILN_DOC_INDEX,    /* OCI index or Docker manifest list */
    KILN_DOC_CONFIG,   /* OCI or Docker image config */
} kiln_doc_kind_t;

/* A content descriptor. media_type is bounded (RFC 6838: 127 + '/' + 127).
 * annotations and platform are owned json objects, or NULL. */
typedef struct kiln_descriptor {
    char media_type[256];
    kiln_digest_t digest;
    uint64_t size;
    json_t *annotations;
    json_t *platform;
} kiln_descriptor_t;

/* A parsed manifest; `json` is the whole document (owned). */
typedef struct kiln_manifest {
    char media_type[256]; /* declared mediaType, or the OCI one when absent */
    kiln_descriptor_t config;
    kiln_descriptor_t *layers;
    size_t n_layers;
    json_t *json;
} kiln_manifest_t;

/* A parsed index / manifest list; `json` is the whole document (owned). */
typedef struct kiln_index {
    char media_type[256];
    kiln_descriptor_t *manifests;
    size_t n_manifests;
    json_t *json;
} kiln_index_t;

/* Releases the json members of a descriptor (not the struct itself). */
void kiln_descriptor_clear(kiln_descriptor_t *d);
/* Deep copy (json members are reference-counted copies). */
void kiln_descriptor_copy(kiln_descriptor_t *dst, const kiln_descriptor_t *src);
/* Reads a descriptor object; `what` names it in errors (e.g. "layers[2]"). */
int kiln_descriptor_from_json(const json_t *j, const char *what, kiln_descriptor_t *out,
                              kiln_error_t *err);
/* A new json object for the descriptor (mediaType, digest, size, annotations?, platform?). */
json_t *kiln_descriptor_to_json(const kiln_descriptor_t *d);

/* Loads JSON text with a cap (EFBIG past it) and a clear error with line and
 * column on a syntax error. `what` names the document in errors. */
int kiln_image_load_json(const char *buf, size_t len, size_t cap, const char *what, json_t **out,
                         kiln_error_t *err);

/* Which kind of document this is, from mediaType or, when it is absent, from
 * its shape (manifests[] → index, layers+config → manifest, rootfs → config). */
kiln_doc_kind_t kiln_image_doc_kind(const json_t *doc);

/* Parses and validates a manifest (OCI or Docker v2s2). */
int kiln_image_parse_manifest(const char *buf, size_t len, kiln_manifest_t **out,
                              kiln_error_t *err);
void kiln_manifest_free(kiln_manifest_t *m);

/* Parses and validates an index (OCI or Docker manifest list). */
int kiln_image_parse_index(const char *buf, size_t len, kiln_index_t **out, kiln_error_t *err);
void kiln_index_free(kiln_index_t *ix);

/* Parses and validates an image config (OCI or Docker): architecture and os
 * strings, rootfs.type == "layers", rootfs.diff_ids digests, config field types. */
int kiln_image_parse_config(const char *buf, size_t len, json_t **out, kiln_error_t *err);

/* Validates a document against what kiln checks for the given media type
 * (one of the KILN_MT_* manifest/index/config types). For tests and tools. */
int kiln_image_validate(const char *media_type, const char *buf, size_t len, kiln_error_t *err);

/* Picks the manifest for os/arch (variant may be NULL) in an index; returns
 * its position, or -1 with an error listing the available platforms. */
int kiln_image_index_select(const kiln_index_t *ix, const char *os, const char *arch,
                            const char *variant, kiln_error_t *err);

/* --- building documents ------------------------------------------------- */

/* A new config:
 * {"architecture","os","config":{},"rootfs":{"type":"layers","diff_ids":[]},"history":[]}. */
json_t *kiln_image_config_new(const char *arch, const char *os);
/* The "config" object of an image config (created when absent). Borrowed. */
json_t *kiln_image_config_obj(json_t *cfg);
/* Sets "created" (RFC 3339, UTC, seconds) from t. */
int kiln_image_config_set_created(json_t *cfg, time_t t, kiln_error_t *err);
/* Sets/replaces "NAME=value" in config.Env (the name is the part before '='). */
int kiln_image_config_set_env(json_t *cfg, const char *name_eq_value, kiln_error_t *err);
/* Sets Entrypoint / Cmd / Shell from a NULL-terminated argv; argv NULL removes the key. */
void kiln_image_config_set_entrypoint(json_t *cfg, const char *const *argv);
void kiln_image_config_set_cmd(json_t *cfg, const char *const *argv);
void kiln_image_config_set_shell(json_t *cfg, const char *const *argv);
/* Sets a string field of config: "WorkingDir", "User", "StopSignal" (NULL removes). */
void kiln_image_config_set_string(json_t *cfg, const char *key, const char *value);
/* Adds "port/proto" to ExposedPorts ("80" becomes "80/tcp"); checks port 1..65535, tcp|udp|sctp. */
int kiln_image_config_add_port(json_t *cfg, const char *port, kiln_error_t *err);
/* Adds a path to Volumes. */
void kiln_image_config_add_volume(json_t *cfg, const char *path);
/* Sets Labels[key] = value. */
void kiln_image_config_set_label(json_t *cfg, const char *key, const char *value);
/* Appends an OnBuild trigger. */
void kiln_image_config_add_onbuild(json_t *cfg, const char *instruction);
/* Sets Healthcheck (an object: Test, Interval, Timeout, StartPeriod, Retries); steals hc. */
void kiln_image_config_set_healthcheck(json_t *cfg, json_t *hc);
/* Appends a rootfs diff_id. */
void kiln_image_config_add_diff_id(json_t *cfg, const kiln_digest_t *diff_id);
/* Appends a history entry; created_by/comment may be NULL; created (0 = omit). */
int kiln_image_config_add_history(json_t *cfg, time_t created, const char *created_by,
                                  const char *comment, int empty_layer, kiln_error_t *err);

/* A new manifest {"schemaVersion":2,"mediaType":OCI manifest,"config":…,"layers":[…]};
 * annotations may be NULL (borrowed). */
json_t *kiln_image_manifest_new(const kiln_descriptor_t *config, const kiln_descriptor_t *layers,
                                size_t n_layers, const json_t *annotations);
/* A new empty OCI index {"schemaVersion":2,"mediaType":OCI index,"manifests":[]}. */
json_t *kiln_image_index_new(void);
/* Appends a descriptor to index.manifests. */
void kiln_image_index_add(json_t *index, const kiln_descriptor_t *d);

/* Serializes canonically (sorted keys, compact) and hashes: *out malloc'ed
 * (NUL-terminated), *len, *digest (any may be NULL except out/len). */
int kiln_image_serialize(const json_t *doc, char **out, size_t *len, kiln_digest_t *digest,
                         kiln_error_t *err);

/* Serializes doc and puts it in the store; fills *desc (media_type, digest, size). */
int kiln_image_store_put(kiln_store_t *s, const json_t *doc, const char *media_type,
                         kiln_descriptor_t *desc, kiln_error_t *err);

#endif
