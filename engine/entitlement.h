/* kiln — build entitlements, as in BuildKit: what a Dockerfile may ask for
 * only when whoever started the build allows it (`kiln build --allow NAME`,
 * the server's `"allow"` request field where its config grants it).
 *
 *   network.host       RUN --network=host: the step shares the host's network
 *   security.insecure  RUN --security=insecure: every capability of the
 *                      step's user namespace, no seccomp filter
 *
 * Every RUN of the Dockerfile is checked before any step runs, so a refused
 * build has run nothing. */
#ifndef KILN_ENGINE_ENTITLEMENT_H
#define KILN_ENGINE_ENTITLEMENT_H

#include <stdbool.h>

#include "handlers/dockerfile/parser.h"
#include "utils/error.h"

enum {
    KILN_ENTITLEMENT_NETWORK_HOST = 1u << 0,
    KILN_ENTITLEMENT_SECURITY_INSECURE = 1u << 1,
};
#define KILN_ENTITLEMENT_COUNT 2

/* "network.host" / "security.insecure" of one bit; NULL for anything else. */
const char *kiln_entitlement_name(unsigned bit);

/* Adds the entitlements of a comma-separated list ("network.host,security.insecure")
 * to *set. Fails naming an unknown entry. */
int kiln_entitlement_parse(const char *list, unsigned *set, kiln_error_t *err);

/* What a RUN instruction asks for through its flags. */
typedef struct kiln_run_security {
    const char *network; /* --network value (default, none, host), NULL when absent */
    bool insecure;       /* --security=insecure */
} kiln_run_security_t;

/* Reads and checks the --network / --security flags of RUN node n against the
 * granted entitlements. `chroot`: steps run without a user namespace, where
 * insecure would be host root. Fails with "Dockerfile:LINE: RUN --network=host
 * needs the network.host entitlement: …". */
int kiln_entitlement_check_run(const kiln_df_node_t *n, unsigned granted, bool chroot,
                               kiln_run_security_t *out, kiln_error_t *err);

/* kiln_entitlement_check_run on every RUN of the Dockerfile (an ONBUILD RUN
 * is checked in the build that runs it). */
int kiln_entitlement_check_dockerfile(const kiln_dockerfile_t *df, unsigned granted, bool chroot,
                                      kiln_error_t *err);

#endif
