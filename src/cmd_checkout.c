/* kiln checkout — fetch a git source (through kiln's mirror cache) or copy
 * nothing for a local one, check out a branch, tag or commit with its
 * submodules into DEST, and print the exact commit. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "src/build/auto.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/git.h"
#include "utils/mem.h"
#include "utils/netpolicy.h"

extern char **environ;

int kiln_cmd_checkout(int argc, char **argv)
{
    enum { O_ALLOW_ADDR = 256, O_HTTP_GIT, O_SERVER_MODE };
    static const struct option opts[] = {{"root", required_argument, NULL, 'r'},
                                         {"allow-address", required_argument, NULL, O_ALLOW_ADDR},
                                         {"allow-http-git", no_argument, NULL, O_HTTP_GIT},
                                         {"server-mode", no_argument, NULL, O_SERVER_MODE},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *allow[KILN_NETPOLICY_MAX_RULES];
    const char *root_opt = NULL, *cf;
    _cleanup_free_ char *root = NULL, *cache = NULL, *creds = NULL, *url = NULL, *ref = NULL;
    _cleanup_free_ char *commit = NULL;
    kiln_git_opts_t g = {.env = environ};
    kiln_error_t err = {0};
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            root_opt = optarg;
            break;
        case O_ALLOW_ADDR:
            if (kiln_netpolicy_validate(optarg, &err) < 0)
                return kiln_cli_usage_error("checkout", "--allow-address: %s", err.msg);
            if (g.policy.n_allow_addresses >= KILN_NETPOLICY_MAX_RULES)
                return kiln_cli_usage_error("checkout", "too many --allow-address");
            allow[g.policy.n_allow_addresses++] = optarg;
            break;
        case O_HTTP_GIT:
            g.policy.allow_http = 1;
            break;
        case O_SERVER_MODE:
            g.policy.server_mode = 1;
            break;
        case 'h':
            printf("Usage: kiln checkout [options] GIT_URL[#REF] DEST\n\n"
                   "Fetches the repository into the mirror cache under the kiln root, checks\n"
                   "out REF (branch, tag or commit; default branch when absent) with its\n"
                   "submodules into DEST (which must not exist) and prints the commit.\n"
                   "Credentials: KILN_GIT_TOKEN, KILN_GIT_TOKEN_<HOST>, KILN_GIT_CREDENTIALS\n"
                   "(lines \"HOST TOKEN\" or \"HOST USER:PASSWORD\"), the ssh agent.\n\n"
                   "Options:\n"
                   "      --root DIR               kiln root (mirror cache)\n"
                   "      --allow-address CIDR[:PORT]  let submodules (and, with --server-mode,\n"
                   "                               the repository) reach this non-public\n"
                   "                               address range (repeatable)\n"
                   "      --allow-http-git         allow plain http:// and git:// remotes\n"
                   "      --server-mode            the URL is a tenant's: https:// and ssh://\n"
                   "                               only (no file://, local paths, helpers),\n"
                   "                               public addresses plus --allow-address\n");
            return KILN_EXIT_OK;
        default:
            return kiln_cli_usage_error("checkout", "unknown option");
        }
    }
    if (optind != argc - 2)
        return kiln_cli_usage_error("checkout", "expected GIT_URL[#REF] and DEST");
    if (!kiln_git_is_url(argv[optind]))
        return kiln_cli_usage_error("checkout", "not a git URL: %s", argv[optind]);
    root = kiln_auto_root(root_opt, environ);
    cache = kiln_xasprintf("%s/git", root);
    cf = kiln_env_get(environ, "KILN_GIT_CREDENTIALS");
    creds = cf ? kiln_xstrdup(cf) : kiln_xasprintf("%s/git-credentials", root);
    g.cache_dir = cache;
    g.credentials_file = creds;
    g.policy.allow_addresses = allow;
    kiln_git_split_ref(argv[optind], &url, &ref);
    if (kiln_git_checkout(url, ref, &g, argv[optind + 1], &commit, &err) < 0)
        return kiln_cli_fail(&err);
    printf("%s\n", commit);
    return KILN_EXIT_OK;
}
