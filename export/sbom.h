/* kiln — the image's software bill of materials (`kiln build --sbom`): an SPDX 2.3 JSON
 * document of the packages recorded in the image's package databases, read from the layers
 * of the final image as stored (never from a mounted or extracted tree, so no link is ever
 * followed: a database reached only through a symlink is not read). Databases read:
 *   var/lib/dpkg/status                         Debian packages (installed ones)
 *   .../node_modules/[@scope/]NAME/package.json  npm packages as installed
 *   .../package-lock.json, pnpm-lock.yaml, yarn.lock (outside node_modules)
 *   .../NAME-VER.dist-info/METADATA              Python distributions
 *   any executable that is a Go binary            its build information (export/sbom_go):
 *                                                 the Go release, main module and deps
 * Layers apply in order with OCI whiteouts; a package is listed once per purl. */
#ifndef KILN_EXPORT_SBOM_H
#define KILN_EXPORT_SBOM_H

#include <jansson.h>
#include <stddef.h>

#include "oci/image.h"
#include "oci/store.h"
#include "utils/error.h"

typedef struct kiln_sbom kiln_sbom_t;

/* Caps on what is read: one database file, and the packages kept. */
#define KILN_SBOM_FILE_MAX (32u << 20)
#define KILN_SBOM_PACKAGES_MAX 100000u

kiln_sbom_t *kiln_sbom_new(void);
void kiln_sbom_free(kiln_sbom_t *sb);

/* 1 when path (relative to the image's root, no leading '/') is a package database read. */
int kiln_sbom_wanted(const char *path);

/* Parses one package database found at path (as kiln_sbom_wanted accepts); a file that is
 * not one is ignored. A malformed database is skipped, never an error (an image may hold
 * anything); -1 only when a cap is exceeded, naming the path. */
int kiln_sbom_add_file(kiln_sbom_t *sb, const char *path, const char *data, size_t len,
                       kiln_error_t *err);

/* Adds the packages of a Go binary at path from its build information blob (as
 * export/sbom_go finds it: from the magic on): pkg:golang/stdlib@VERSION, the main module and
 * each dependency (a replaced one as its replacement) with its h1 sum as a SHA256 checksum.
 * A blob that does not parse is skipped; -1 only past the package cap. */
int kiln_sbom_add_go(kiln_sbom_t *sb, const char *path, const unsigned char *blob, size_t len,
                     kiln_error_t *err);

/* Reads the package databases of the image whose layers (bottom first) are in store.
 * Fails naming the layer that cannot be read. */
int kiln_sbom_scan_layers(kiln_sbom_t *sb, kiln_store_t *store, const kiln_descriptor_t *layers,
                          size_t n, kiln_error_t *err);

/* The packages found. */
size_t kiln_sbom_count(const kiln_sbom_t *sb);

/* The SPDX 2.3 document: the image (name, manifest digest "sha256:HEX" or NULL) described,
 * containing each package (sorted by purl). created: an RFC 3339 UTC time. */
json_t *kiln_sbom_spdx(const kiln_sbom_t *sb, const char *name, const char *digest,
                       const char *created);

#endif
