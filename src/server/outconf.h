/* kiln server — output confinement: where a build request's outputs may write.
 *
 * For every request, whoever the tenant (checked by the job spec, job/spec.h, when the request
 * is parsed; 400 naming the field):
 *   - outputs[].type is one of local, oci, docker, tar, function (files: written into the
 *     build's artifacts directory), registry, image (pushes when push is true; registry always
 *     pushes) or s3, and takes only its own keys;
 *   - a file output's dest is a relative path of plain segments ([A-Za-z0-9._+@-], no '.',
 *     '..', empty segment, leading '/', '%' or '\'); it is written under KILN_OUTCONF_DIR of
 *     the build's scratch directory, which becomes its artifacts directory, and no file
 *     output's path lies inside another's (a directory one writes may hold the image's
 *     symlinks; writing beneath it could follow one out);
 *   - every reference that is pushed (a pushing output's name, every tag) is a valid image
 *     reference, and an s3 dest is s3://BUCKET[/KEY/PREFIX] with plain key segments (no '.',
 *     '..', empty segment, '%', '\', '?', '#', non-ASCII).
 * Against a tenant's rules (kiln_outconf_check; 403 naming the field and the rule):
 *   - a pushed reference, normalised as the registry client does (docker.io for a bare
 *     name, library/ for an official one, index.docker.io and registry-1.docker.io are
 *     docker.io, host lower-cased, host:port compared exactly), must lie under a registry
 *     prefix: "HOST/NS/" covers the repositories below NS, "HOST/NS/APP" that repository and
 *     those below it, "HOST/" the whole registry; "NS/" is docker.io's. Prefixes match whole
 *     path segments: "acme/" never covers "acmex/app";
 *   - an s3 dest must lie under an s3 prefix "s3://BUCKET/KEY/PREFIX/" (whole key segments;
 *     kiln writes DEST/FILE for each file, so "s3://b/acme" is inside "s3://b/acme/");
 *   - a notify target must be one of the tenant's notify targets, exactly (they carry the
 *     server's AWS credentials to a queue or topic; there is no safe prefix of a queue URL).
 * A NULL list places no restriction (the single-tenant forms); an empty one allows nothing. */
#ifndef KILN_SERVER_OUTCONF_H
#define KILN_SERVER_OUTCONF_H

#include <jansson.h>

#include "utils/error.h"

/* The directory (relative to the build's scratch directory) file outputs are written into:
 * the job keeps it as the build's artifacts directory. */
#define KILN_OUTCONF_DIR "kiln-out"

typedef struct kiln_outconf_rules {
    const char *tenant; /* the tenant's name, for messages */
    json_t *registry;   /* registry prefixes (strings), NULL = any registry */
    json_t *s3;         /* s3:// prefixes (strings), NULL = any bucket */
    json_t *notify;     /* exact sqs:// / sns:// targets, NULL = any */
} kiln_outconf_rules_t;

/* Every push, upload and notification of a request the job codec validated (its shape is
 * job/spec's: kiln_request_from_json) against the tenant's rules. On failure *status is 403
 * (outside the rules; 400 for a reference that does not parse) and err names the field, the
 * destination and the rule that would allow it; *status is left alone on success. */
int kiln_outconf_check(json_t *request, const kiln_outconf_rules_t *rules, unsigned *status,
                       kiln_error_t *err);

/* Validates a tenant's rules (each prefix parses; notify targets are sqs:// or sns://);
 * err names the list and index ("outputs.registry[1]"). */
int kiln_outconf_rules_check(const kiln_outconf_rules_t *rules, kiln_error_t *err);

/* 1 when the pushed reference lies under one of prefixes (NULL: any), 0 when outside (err
 * says why), -1 when ref is not an image reference (err names it). */
int kiln_outconf_registry_allowed(const char *ref, json_t *prefixes, kiln_error_t *err);

/* The same for an s3:// output destination against s3 prefixes. */
int kiln_outconf_s3_allowed(const char *url, json_t *prefixes, kiln_error_t *err);

/* (a file output's dest: kiln_job_file_dest_check; the types written as files into the
 * artifacts directory: kiln_job_output_type_is_file, job/spec.h) */

#endif
