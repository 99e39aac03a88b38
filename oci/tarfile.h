/* kiln — reading tar archives with libarchive: the shared plumbing of the OCI
 * archive and docker-archive readers. */
#ifndef KILN_OCI_TARFILE_H
#define KILN_OCI_TARFILE_H

#include <archive.h>
#include <archive_entry.h>
#include <stddef.h>

#include "utils/error.h"

/* Opens a tar file (any compression libarchive detects) for one streaming
 * pass. Free with archive_read_free(). */
int kiln_tarfile_open(const char *path, struct archive **out, kiln_error_t *err);

/* The current entry's path without leading "./" components. */
const char *kiln_tarfile_name(struct archive_entry *e);

/* Reads the current entry's data into memory (NUL-terminated, malloc'ed),
 * failing (EFBIG) past cap bytes. With json_only, an entry whose first
 * non-blank byte is not '{' is skipped without being held: returns 0.
 * Returns 1 when *out was filled, -1 on error. */
int kiln_tarfile_read_entry(struct archive *a, const char *name, size_t cap, int json_only,
                            char **out, size_t *len, kiln_error_t *err);

#endif
