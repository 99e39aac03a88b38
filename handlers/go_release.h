/* kiln — Go releases: the one table of the Go toolchains kiln fetches (from
 * the Go module proxy's golang.org/toolchain module) with the checksum each
 * download must match, Go version names ("1.23", "1.21rc1", "1.27.3") and
 * their order, and the choice of the release a go.mod builds with.
 *
 * Go's own rule decides: the go and toolchain lines of go.mod are minimums
 * (a newer Go builds an older module with that module's language version),
 * so kiln's default release builds every module that asks for it or for
 * less; a module asking for more gets the nearest release of the table that
 * satisfies it, or an error naming the line and what is available. Update the
 * table (and the default) when a release is added. */
#ifndef KILN_HANDLERS_GO_RELEASE_H
#define KILN_HANDLERS_GO_RELEASE_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

typedef struct kiln_go_release {
    const char *version; /* "1.27.3" */
    const char *h1;      /* the module zip's dirhash ("h1:<base64>"), as go.sum writes it */
} kiln_go_release_t;

/* The table, newest first, terminated by a NULL version. */
extern const kiln_go_release_t kiln_go_releases[];

/* The release kiln builds with when go.mod asks for no newer one. */
#define KILN_GO_DEFAULT_RELEASE "1.27.3"

/* The entry of an exact release ("1.27.3"), or NULL. */
const kiln_go_release_t *kiln_go_release_find(const char *version);

/* True when s is a Go version name: 1.N, 1.N.P, 1.NrcK or 1.NbetaK (numbers of at
 * most 4 digits; nothing else, so it can go into a URL or a path). */
bool kiln_go_version_valid(const char *s);
/* True for an exact release (1.N.P, or 1.N for Go before 1.21). */
bool kiln_go_version_is_release(const char *s);
/* Orders two valid version names as Go does: 1.21 < 1.21beta1 < 1.21rc1 < 1.21.0 < 1.21.1. */
int kiln_go_version_cmp(const char *a, const char *b);

/* What decides the release: the go.mod lines (version NULL when absent) and an
 * override (KILN_GO_VERSION or kiln.json goVersion, named by override_src). */
typedef struct kiln_go_request {
    const char *go;        /* the go line's version, "1.23" */
    int go_line;           /* its line number in go.mod */
    const char *toolchain; /* the toolchain line's version without "go", "1.24.2" */
    int toolchain_line;
    const char *override; /* "1.27.3" or "go1.27.3" */
    const char *override_src;
} kiln_go_request_t;

/* Chooses the release (*version, malloc'ed, "1.27.3"), and says why (*why,
 * malloc'ed: which line asked for what) and where it came from (*source,
 * malloc'ed: "go.mod line 3", "KILN_GO_VERSION", "default"). Fails with a
 * message naming the request, what decided it and the releases available. */
int kiln_go_select(const kiln_go_request_t *rq, char **version, char **why, char **source,
                   kiln_error_t *err);

/* "go1.27.4, go1.27.3, …": the table's releases, for messages (malloc'ed). */
char *kiln_go_available(void);

#endif
