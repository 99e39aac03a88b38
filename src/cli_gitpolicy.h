/* kiln — the git source policy options shared by `kiln checkout` and
 * `kiln plan` (utils/git.h explains the policy):
 *   --allow-address CIDR[:PORT]  non-public addresses git may reach (repeatable)
 *   --allow-http-git             plain http:// and git:// remotes
 *   --server-mode                a tenant's URL (checkout only: set by the server) */
#ifndef KILN_SRC_CLI_GITPOLICY_H
#define KILN_SRC_CLI_GITPOLICY_H

#include <getopt.h>

#include "utils/git.h"
#include "utils/netpolicy.h"

enum {
    KILN_CLI_O_ALLOW_ADDRESS = 0x4100,
    KILN_CLI_O_ALLOW_HTTP_GIT,
    KILN_CLI_O_SERVER_MODE,
};

#define KILN_CLI_GITPOLICY_LONGOPTS                                                                \
    {"allow-address", required_argument, NULL, KILN_CLI_O_ALLOW_ADDRESS},                          \
        {"allow-http-git", no_argument, NULL, KILN_CLI_O_ALLOW_HTTP_GIT},                          \
    {                                                                                              \
        "server-mode", no_argument, NULL, KILN_CLI_O_SERVER_MODE                                   \
    }

#define KILN_CLI_GITPOLICY_HELP                                                                    \
    "      --allow-address CIDR[:PORT]  let git reach this non-public range: submodules,\n"        \
    "                             and with --server-mode the repository (repeatable)\n"            \
    "      --allow-http-git       allow plain http:// and git:// remotes\n"

typedef struct kiln_cli_gitpolicy {
    kiln_git_policy_t policy;
    const char *allow[KILN_NETPOLICY_MAX_RULES];
} kiln_cli_gitpolicy_t;

/* Handles option c of getopt_long for cmd: 1 when it was one of these,
 * 0 when not, -1 after reporting a usage error. */
int kiln_cli_gitpolicy_opt(kiln_cli_gitpolicy_t *gp, const char *cmd, int c, const char *arg);

/* The same for one whole option as a server hands its build options over ("--server-mode",
 * "--allow-http-git", "--allow-address=CIDR"): 1 when it was one of these, 0 when not (an
 * option of the build alone), -1 after reporting a usage error. */
int kiln_cli_gitpolicy_arg(kiln_cli_gitpolicy_t *gp, const char *cmd, const char *opt);

#endif
