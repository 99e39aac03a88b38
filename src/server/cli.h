/* kiln server — option helpers shared by `kiln serve` and `kiln worker`. */
#ifndef KILN_SERVER_CLI_H
#define KILN_SERVER_CLI_H

#include <jansson.h>

#include "src/server/limits.h"
#include "utils/error.h"

/* Where server builds may read FROM oci: layouts when the config names no
 * policy.oci_dirs: $KILN_IMAGES_DIR, else kiln's own image directory. */
#define KILN_SERVER_DEFAULT_OCI_DIR "/var/cache/kiln/images"

/* Parses a non-negative integer; -1 when it is not one. */
long long kiln_server_parse_num(const char *s);

/* The program builds run with: opt, else $KILN_BUILD_COMMAND, else this very binary
 * (malloc'ed). */
char *kiln_server_build_cmd(const char *opt);

/* Appends a copy of s to the NULL-terminated list *v holding *n entries. */
void kiln_server_strv_add(char ***v, unsigned *n, const char *s);

/* An operator's `--allow-address` (or policy.allow_addresses entry): checks
 * spec and adds "--allow-address=SPEC" to the build options. Returns -1
 * naming spec when it is not CIDR[:PORT]. */
int kiln_server_allow_address(char ***opts, unsigned *n, const char *spec, kiln_error_t *err);

/* How the builds of a server or worker are confined: refuses an operator's
 * --build-option choosing chroot isolation (that is `isolation`'s job: the
 * server config's "policy": {"isolation"}, or kiln worker --isolation), and adds
 * "--isolation=chroot" to the build options when isolation is "chroot".
 * `where` names the setting in the error. */
int kiln_server_isolation(char ***opts, unsigned *n, const char *isolation, const char *where,
                          kiln_error_t *err);

/* The build options of the server config's source policy (policy may be
 * NULL; kiln serve and kiln worker --config alike): "--allow-address=" for each
 * policy.allow_addresses entry (checked at load), "--allow-http-git" when
 * policy.allow_http_git is true, and
 * "--oci-dir=DIR" for each policy.oci_dirs entry (the default directory when
 * there is no such key), "--additional-store=DIR" for each policy.additional_stores entry. */
void kiln_server_policy_options(const json_t *policy, char ***opts, unsigned *n);
/* "--additional-store=DIR" for each policy.additional_stores entry (policy may be NULL): what
 * `kiln worker --config` takes of the policy. */
void kiln_server_store_options(const json_t *policy, char ***opts, unsigned *n);

/* Completes the build limits policy of a server or worker: p holds the command line's
 * --build-* and --max-build-* values; limits and max_limits are the config's (may be NULL);
 * timeout is --build-timeout (timeout_set: given on the command line, so it wins over the
 * config's wall_time). runs_builds: this process runs builds, so the built-in defaults
 * fill what nothing set. Fails naming the setting in conflict. */
int kiln_server_limits_policy(kiln_limits_policy_t *p, json_t *limits, json_t *max_limits,
                              int timeout_set, uint64_t timeout, int runs_builds,
                              kiln_error_t *err);

#endif
