/* kiln — what the SBOM's package-database readers (export/sbom_read.c) and the document
 * (export/sbom.c) share. Internal to export/sbom*.c: the public interface is export/sbom.h
 * (kiln_sbom_wanted, kiln_sbom_add_file and kiln_sbom_add_go are the readers'). */
#ifndef KILN_EXPORT_SBOM_READ_H
#define KILN_EXPORT_SBOM_READ_H

#include "export/sbom.h"

/* The file name of path (after its last '/'). */
const char *kiln_sbom_base_name(const char *path);

/* Adds a package of type (deb, npm, pypi, golang) found in source (the database's path),
 * listed once per purl, with its checksum (hex SHA-256, or NULL); a package without a name or
 * version is skipped. -1 past KILN_SBOM_PACKAGES_MAX, naming source. */
int kiln_sbom_add_pkg(kiln_sbom_t *sb, const char *type, const char *name, const char *version,
                      const char *license, const char *arch, const char *source, const char *sha256,
                      kiln_error_t *err);

/* The distribution (os-release ID) the deb packages' purls are named under. */
void kiln_sbom_set_distro(kiln_sbom_t *sb, const char *id);

#endif
