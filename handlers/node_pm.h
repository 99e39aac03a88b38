/* kiln — package.json's packageManager field (corepack semantics) and the release line of
 * pnpm and yarn a lockfile implies.
 *
 * `"packageManager": "pnpm@9.15.0+sha512.<hex>"` names the manager, an exact release and
 * optionally the hash corepack checks: for pnpm and yarn 1 the hash of the npm registry's
 * tarball, for Yarn 2+ that of the release's single file (bin/yarn.js of
 * @yarnpkg/cli-dist). kiln fetches the release through job/toolchain and refuses it when
 * the hash differs. Without the field, package.json engines.pnpm / engines.yarn (a range,
 * handlers/node) or else the lockfile picks the release line: pnpm-lock.yaml's
 * lockfileVersion (9.x: pnpm 9, 6.x: 8, 5.4: 7, 5.3: 6), yarn.lock's __metadata version for
 * Yarn 2+ (8 and later: 4, 5-7: 3, 4: 2); the newest release of that line is used. */
#ifndef KILN_HANDLERS_NODE_PM_H
#define KILN_HANDLERS_NODE_PM_H

#include "utils/error.h"

typedef struct kiln_node_pm_field {
    char *manager; /* "pnpm", "yarn" (1.x), "yarn-berry" (2+), "bun", "npm" */
    char *version; /* the exact release, "9.15.0" */
    char *hash;    /* "sha512.<hex>" (sha1, sha224, sha256, sha512; lowercase hex) or NULL */
} kiln_node_pm_field_t;

/* Parses a packageManager value. Returns 1 and fills *out (strings malloc'ed) for one of the
 * managers above; 0 for another name (the field is then not kiln's business); -1 with err
 * naming the field when the value is not NAME@EXACT_VERSION[+ALGO.HEX]. */
int kiln_node_pm_parse(const char *field, kiln_node_pm_field_t *out, kiln_error_t *err);
void kiln_node_pm_field_release(kiln_node_pm_field_t *f);

/* The package managers' own configuration a project may hold besides package.json and the
 * lockfile, which the install needs (copied into the deps stage when present): pnpm's
 * workspace settings and pnpmfile, yarn's rc files, Berry's releases, plugins and patches, a
 * patches/ dir (pnpm patchedDependencies, patch-package), .npmrc, bunfig.toml. A directory
 * ends with '/' (copied to its own path). NULL-terminated. */
extern const char *const kiln_node_pm_config_files[];

/* The pnpm major (a range, static string) of pnpm-lock.yaml's text; "9" when it names
 * none kiln knows. */
const char *kiln_node_pm_pnpm_line(const char *lock);

/* The Yarn 2+ major (a range, static string) of a Berry yarn.lock's __metadata version;
 * "4" when there is none. */
const char *kiln_node_pm_berry_line(const char *lock);

#endif
