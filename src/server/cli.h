/* kiln server — option helpers shared by `kiln serve` and `kiln worker`. */
#ifndef KILN_SERVER_CLI_H
#define KILN_SERVER_CLI_H

#include "utils/error.h"

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

#endif
