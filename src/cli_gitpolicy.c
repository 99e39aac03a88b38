/* kiln — git source policy options (see cli_gitpolicy.h). */
#include "src/cli_gitpolicy.h"

#include <string.h>

#include "src/commands.h"

int kiln_cli_gitpolicy_opt(kiln_cli_gitpolicy_t *gp, const char *cmd, int c, const char *arg)
{
    kiln_error_t err = {0};

    switch (c) {
    case KILN_CLI_O_ALLOW_ADDRESS:
        if (kiln_netpolicy_validate(arg, &err) < 0) {
            kiln_cli_usage_error(cmd, "--allow-address: %s", err.msg);
            return -1;
        }
        if (gp->policy.n_allow_addresses >= KILN_NETPOLICY_MAX_RULES) {
            kiln_cli_usage_error(cmd, "too many --allow-address");
            return -1;
        }
        gp->allow[gp->policy.n_allow_addresses++] = arg;
        gp->policy.allow_addresses = gp->allow;
        return 1;
    case KILN_CLI_O_ALLOW_HTTP_GIT:
        gp->policy.allow_http = 1;
        return 1;
    case KILN_CLI_O_SERVER_MODE:
        gp->policy.server_mode = 1;
        return 1;
    default:
        return 0;
    }
}

int kiln_cli_gitpolicy_arg(kiln_cli_gitpolicy_t *gp, const char *cmd, const char *opt)
{
    if (strcmp(opt, "--server-mode") == 0)
        return kiln_cli_gitpolicy_opt(gp, cmd, KILN_CLI_O_SERVER_MODE, NULL);
    if (strcmp(opt, "--allow-http-git") == 0)
        return kiln_cli_gitpolicy_opt(gp, cmd, KILN_CLI_O_ALLOW_HTTP_GIT, NULL);
    if (strncmp(opt, "--allow-address=", 16) == 0)
        return kiln_cli_gitpolicy_opt(gp, cmd, KILN_CLI_O_ALLOW_ADDRESS, opt + 16);
    return 0;
}
