/* kiln — image references, parsed and normalised the way docker does.
 *
 *   alpine                      → docker.io/library/alpine:latest
 *   host:5000/ns/app:v1         → registry "host:5000", repository "ns/app", tag "v1"
 *   app@sha256:<64 hex>         → digest only (no default tag)
 *   app:v1@sha256:<64 hex>      → tag and digest (the digest wins when pulling)
 */
#ifndef KILN_OCI_REFERENCE_H
#define KILN_OCI_REFERENCE_H

#include "utils/error.h"

#define KILN_REFERENCE_MAX 4096
#define KILN_REFERENCE_NAME_MAX 255

typedef struct kiln_reference {
    char *registry;   /* "docker.io", "ghcr.io", "127.0.0.1:5000" */
    char *repository; /* "library/alpine", "ns/app" */
    char *tag;        /* NULL when only a digest was given */
    char *digest;     /* "sha256:<hex>" or NULL */
} kiln_reference_t;

/* Parses `s` into `out` (normalised: default registry, "library/" prefix, tag
 * "latest" when neither tag nor digest is given). Returns -1 with a message
 * naming the reference and what is wrong with it. */
int kiln_reference_parse(const char *s, kiln_reference_t *out, kiln_error_t *err);

/* Releases the strings of a reference (the struct itself is the caller's). */
void kiln_reference_free(kiln_reference_t *r);

/* Deep copy. */
void kiln_reference_copy(kiln_reference_t *dst, const kiln_reference_t *src);

/* "registry/repository[:tag][@digest]", malloc'ed. */
char *kiln_reference_format(const kiln_reference_t *r);

/* "registry/repository", malloc'ed. */
char *kiln_reference_name(const kiln_reference_t *r);

/* The host[:port] to contact for a registry name: "registry-1.docker.io" for
 * docker.io, the name itself otherwise. */
const char *kiln_reference_endpoint(const char *registry);

/* True when `s` is a well-formed digest ("sha256:" + 64 lowercase hex, or
 * "sha512:" + 128). */
int kiln_reference_digest_valid(const char *s);

/* True when the n bytes at s are a registry name as a reference's first component may be:
 * DNS labels (or a bracketed IPv6 address) with an optional :port. */
int kiln_reference_domain_valid(const char *s, size_t n);

/* NULL when the n bytes at s are a repository path ("ns/app": '/'-separated components of
 * lowercase letters and digits joined by '.', '_', '__' or dashes), else what is wrong. */
const char *kiln_reference_path_check(const char *s, size_t n);

/* True when `s` is a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}). */
int kiln_reference_tag_valid(const char *s);

#endif
