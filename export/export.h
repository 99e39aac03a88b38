/* kiln — exporters: one per output type (registry, OCI layout, docker archive, tar, local
 * directory, S3 static site, function zip) behind one interface. An output is the text of
 * `-o type=T,key=value,...` (buildx's syntax); each type checks its options up front
 * (through the job spec, job/spec.h, before any work) and writes a built image (kiln_export_run),
 * reporting what it wrote as typed results (kiln_export_result_t) through a callback: library code
 * never prints, the caller turns the results into events or terminal lines. */
#ifndef KILN_EXPORT_EXPORT_H
#define KILN_EXPORT_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "oci/digest.h"
#include "oci/image.h"
#include "oci/store.h"
#include "utils/error.h"

struct kiln_registry;
struct kiln_netpolicy;

/* ---- the options of one output (`type=oci,dest=out,tar=true`) ---- */

typedef struct kiln_export_kv {
    char *key;
    char *value;
} kiln_export_kv_t;

typedef struct kiln_export_opts {
    char *type;           /* value of type= (required) */
    kiln_export_kv_t *kv; /* the other pairs, in order */
    size_t n;
    char *spec; /* the text parsed (kiln_export_parse), or NULL */
} kiln_export_opts_t;

/* Parses "type=oci,dest=out,tar=true": comma-separated key=value pairs, a value may be
 * double-quoted to hold commas. Fails (EINVAL) on a missing type, an empty key, a pair
 * without '=', a repeated key or an unterminated quote. */
int kiln_export_opts_parse(const char *spec, kiln_export_opts_t *out, kiln_error_t *err);
void kiln_export_opts_free(kiln_export_opts_t *o);

/* The value of key, or NULL. */
const char *kiln_export_opts_get(const kiln_export_opts_t *o, const char *key);
/* A boolean key (true/false/1/0, absent = def); error on anything else. */
int kiln_export_opts_get_bool(const kiln_export_opts_t *o, const char *key, int def, int *out,
                              kiln_error_t *err);
/* Fails naming the first key not in the NULL-terminated allowed list. */
int kiln_export_opts_check_keys(const kiln_export_opts_t *o, const char *const *allowed,
                                kiln_error_t *err);

/* ---- what an exporter writes from, and what it reports ---- */

/* The built image handed to the exporters. The filesystem (local, tar, s3, function) is the
 * layers applied in order. */
typedef struct kiln_export_image {
    kiln_store_t *store;
    const kiln_descriptor_t *manifest;
    const kiln_descriptor_t *layers;
    size_t n_layers;
    const char *const *tags; /* -t names: pushed by registry, named in oci/docker */
    size_t n_tags;
} kiln_export_image_t;

typedef struct kiln_export_result {
    const char *type;                  /* the output type ("registry", "oci", "s3", ...) */
    const char *location;              /* dest path, pushed reference or s3:// URL */
    const char *digest;                /* the image's manifest digest (image outputs), else NULL */
    uint64_t bytes;                    /* bytes written or uploaded (0 when not counted) */
    size_t files, uploaded, unchanged; /* s3: files found, uploaded, unchanged */
    int failed;       /* s3: reported also when the upload failed part way (what was done) */
    const char *note; /* registry: what --soci did (the SOCI index, or why there is none) */
} kiln_export_result_t;

typedef void (*kiln_export_result_fn)(void *ud, const kiln_export_result_t *r);

/* Creates the ECR repositories of refs (--ecr-create-repository); the CLI's, which talks to
 * AWS and reports what it did. */
typedef int (*kiln_export_ecr_fn)(const char *const *refs, size_t n, kiln_error_t *err);

/* What the exporters share for one build's outputs. */
typedef struct kiln_export_ctx {
    const char *tmp_dir;           /* parent of private temp directories (ROOT/build/tmp) */
    const char *const *insecure;   /* registries reached over http, NULL-terminated, or NULL */
    const char *registry_config;   /* docker config file for credentials, or NULL */
    struct kiln_netpolicy *policy; /* addresses a push may reach (borrowed) */
    int ecr_create;                /* default of ecr-create-repository= */
    /* the server's API: the request's tags are pushed beside a registry output's name=
     * (buildx's rule, and the CLI's: name= alone when given, the -t names otherwise) */
    int tags_with_name;
    int soci;               /* default of soci= (--soci) */
    int64_t soci_min_layer; /* default of soci-min-layer-size= when has_soci_min_layer */
    int has_soci_min_layer;
    kiln_export_ecr_fn ecr_create_fn;
    const char *function_handler; /* type=function: set for a function plan, else the */
    const char *function_runtime; /* type is not available */
    int function;
    kiln_export_result_fn result;
    /* called before each output is written with what it does: "pushing" (to a registry),
     * "uploading" (to S3) or "exporting" (files, an image layout or archive); may be NULL */
    void (*phase)(void *ud, const char *phase);
    void *phase_ud;
    void *result_ud;
    uint64_t pushed;                /* blob bytes uploaded to registries so far */
    struct kiln_registry *registry; /* opened by the first push; freed by kiln_export_ctx_clear */
} kiln_export_ctx_t;

void kiln_export_ctx_clear(kiln_export_ctx_t *ctx);

/* "s3://BUCKET[/KEY/PREFIX[/]]" split into the bucket and the key prefix without its
 * trailing '/' (both malloc'ed), or -1 naming what is malformed: the bucket follows S3's
 * naming rules; a key segment is printable ASCII without % \ ? # and never '.' or '..' (an
 * HTTP client or proxy may fold those, and '%' forms would decode into them). The check of
 * every type=s3 dest (and of a server's s3 prefixes). */
int kiln_export_s3_split(const char *url, char **bucket, char **key, kiln_error_t *err);

/* ---- the registry of exporters ---- */

typedef struct kiln_exporter {
    const char *name;        /* the type= value */
    int file;                /* written as files (needs dest=) */
    const char *const *keys; /* options besides type, NULL-terminated */
    /* checks the options beyond their names (dest present, values); may be NULL */
    int (*validate)(const kiln_export_opts_t *o, kiln_error_t *err);
    /* writes img as this output; reports each thing written through ctx->result */
    int (*run)(kiln_export_ctx_t *ctx, const kiln_export_image_t *img, const kiln_export_opts_t *o,
               kiln_error_t *err);
} kiln_exporter_t;

/* The exporter of type name (local, oci, docker, tar, function, registry, image, s3), or
 * NULL. */
const kiln_exporter_t *kiln_exporter_find(const char *name);
/* "local, oci, docker, ..." for messages. */
extern const char kiln_exporter_names[];

/* 1 when an output option is a boolean (tar, push, ecr-create-repository, full). */
int kiln_export_key_is_bool(const char *key);

/* Parses one output spec (an s3 one through the S3 output parser, whose values may hold
 * commas), into o. */
int kiln_export_parse(const char *spec, kiln_export_opts_t *o, kiln_error_t *err);

/* Writes img as the output spec; results go to ctx->result. Nothing half-written is left at
 * a file destination on failure. */
int kiln_export_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img, const char *spec,
                    kiln_error_t *err);

/* ---- helpers the exporters share ---- */

/* Writes the image's filesystem (its layers applied in order) into dest, created when
 * missing. Links are written as links, never followed. */
int kiln_export_filesystem(const kiln_export_image_t *img, const char *dest, kiln_error_t *err);

/* The filesystem in a fresh private directory under tmp_dir (*dir: the caller removes it);
 * on failure nothing is left. */
int kiln_export_filesystem_tmp(const kiln_export_image_t *img, const char *tmp_dir,
                               const char *prefix, char **dir, kiln_error_t *err);

/* Writes a Lambda deployment package: the files of dir zipped into zip (sorted, fixed
 * timestamps) and function.json (handler, runtime, zip name, sha256) beside it. */
int kiln_export_write_function(const char *dir, const char *handler, const char *runtime,
                               const char *zip, kiln_error_t *err);

#endif
