/* kiln — the build information the Go linker writes into every Go binary (Go 1.18 and newer):
 * the `.go.buildinfo` blob, found in an executable's bytes by its 16-byte aligned magic
 * "\xff Go buildinf:", whose header says the pointer size and flags, followed (flag 2: the
 * strings are inline) by two length-prefixed (uvarint) strings: the Go version ("go1.23.4")
 * and the module information `go version -m` prints, framed by 16 sentinel bytes:
 *   path\tMAIN/PACKAGE
 *   mod\tMODULE\tVERSION[\tSUM]
 *   dep\tMODULE\tVERSION[\tSUM]
 *   =>\tREPLACEMENT\tVERSION[\tSUM]     (replaces the line before)
 *   build\tKEY=VALUE
 * Binaries of Go before 1.18 keep pointers into their data instead: not read (skipped).
 * Every byte is an image's, so hostile: lengths and counts are capped, a module path or
 * version with a control character or a tab refuses the whole blob. */
#ifndef KILN_EXPORT_SBOM_GO_H
#define KILN_EXPORT_SBOM_GO_H

#include <stddef.h>

#include "utils/error.h"

#define KILN_GO_BUILDINFO_MAGIC "\xff Go buildinf:"
#define KILN_GO_BUILDINFO_MAGIC_LEN 14
#define KILN_GO_BUILDINFO_HEADER 32
/* caps: the version string, the module information, the modules listed */
#define KILN_GO_VERSION_MAX 256u
#define KILN_GO_MODINFO_MAX (1u << 20)
#define KILN_GO_DEPS_MAX 10000u
/* the most bytes a blob can span from its magic: the header, two uvarints, the strings */
#define KILN_GO_BUILDINFO_MAX                                                                      \
    (KILN_GO_BUILDINFO_HEADER + 20u + KILN_GO_VERSION_MAX + KILN_GO_MODINFO_MAX)

typedef struct kiln_go_module {
    char *path, *version;
    char *sum; /* "h1:BASE64" or NULL */
} kiln_go_module_t;

typedef struct kiln_go_buildinfo {
    char *go_version; /* "go1.23.4" */
    char *path;       /* the main package, or NULL */
    kiln_go_module_t main;
    kiln_go_module_t *deps; /* each replaced one as its replacement */
    size_t n_deps;
    size_t len; /* the bytes of the blob read, from the magic on */
} kiln_go_buildinfo_t;

/* Parses the blob at data (which starts with the magic; len: the bytes available). 1 when it
 * is a Go 1.18+ blob and *out is filled, 0 when it is not one kiln reads (another magic, the
 * pointer form, truncated), -1 with err naming what is malformed. */
int kiln_go_buildinfo_parse(const unsigned char *data, size_t len, kiln_go_buildinfo_t *out,
                            kiln_error_t *err);

void kiln_go_buildinfo_clear(kiln_go_buildinfo_t *bi);

/* The hex SHA-256 of an "h1:BASE64" sum (the dirhash of the module), malloc'ed, or NULL when
 * sum is not one. */
char *kiln_go_sum_hex(const char *sum);

/* An executable's bytes as they stream past, looking for the blob at 16-byte aligned offsets:
 * feed each chunk in order; once found (kiln_go_scan_found) the blob's bytes are kept. */
typedef struct kiln_go_scan {
    unsigned char *buf; /* the unscanned tail of what was fed, or the blob being collected */
    size_t n, cap;
    size_t off; /* the file offset of buf[0] */
    int state;  /* 0 before the ELF magic is checked, 1 scanning, 2 collecting, 3 done, 4 not ELF */
    size_t want; /* collecting: the bytes wanted from the magic on */
    kiln_go_buildinfo_t info;
} kiln_go_scan_t;

/* Feeds the next len bytes of the file. -1 only when a blob is malformed past doubt (err). */
int kiln_go_scan_feed(kiln_go_scan_t *s, const void *data, size_t len, kiln_error_t *err);

/* At the end of the file: 1 when a blob was found (s->info), else 0. */
int kiln_go_scan_finish(kiln_go_scan_t *s, kiln_error_t *err);

/* 1 once nothing more needs feeding (found, or not an ELF file). */
int kiln_go_scan_done(const kiln_go_scan_t *s);

void kiln_go_scan_clear(kiln_go_scan_t *s);

#endif
