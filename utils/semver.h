/* kiln — semantic versions and node-semver ranges.
 *
 * Ranges follow npm's node-semver grammar: comparators (`<`, `<=`, `>`,
 * `>=`, `=`), x-ranges (`1.x`, `1.2.*`, `*`, a bare partial `1.2`), tilde
 * (`~1.2.3`), caret (`^0.2.3`, `^0.0.x`), hyphen ranges (`1.2 - 2.3.4`),
 * space-separated intersections and `||` unions. A prerelease version
 * (`1.2.3-rc.1`) satisfies a range only when a comparator of the matching
 * set names a prerelease of the same major.minor.patch (npm's rule), so a
 * range never picks an unstable release by accident. A leading `v` or `=` on a
 * version is accepted (`v20.1.0`, as .nvmrc files write it); build metadata
 * (`+…`) is ignored. */
#ifndef KILN_UTILS_SEMVER_H
#define KILN_UTILS_SEMVER_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

#define KILN_SEMVER_PRE_MAX 64
#define KILN_SEMVER_RANGE_MAX 256

typedef struct kiln_semver {
    unsigned long major, minor, patch;
    char pre[KILN_SEMVER_PRE_MAX]; /* "" for a release */
} kiln_semver_t;

/* Parses a full version "1.2.3[-pre][+build]"; -1 (err names it) otherwise. */
int kiln_semver_parse(const char *s, kiln_semver_t *v, kiln_error_t *err);
/* <0, 0, >0 by semver precedence (prerelease identifiers compared as npm does). */
int kiln_semver_cmp(const kiln_semver_t *a, const kiln_semver_t *b);
/* Checks that `range` parses; -1 with err naming the range and the bad part. */
int kiln_semver_range_check(const char *range, kiln_error_t *err);
/* 1 when `version` (a full version string) satisfies `range`, 0 when not, -1
 * when either does not parse. */
int kiln_semver_satisfies(const char *range, const char *version);
/* The highest of `versions` that satisfies `range` (NULL when none; entries
 * that are not versions are skipped), or NULL with err set when the range does
 * not parse. */
const char *kiln_semver_max_satisfying(const char *range, const char *const *versions, size_t n,
                                       kiln_error_t *err);

#endif
