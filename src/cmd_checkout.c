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

extern char **environ;

int kiln_cmd_checkout(int argc, char **argv)
{
    static const struct option opts[] = {{"root", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
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
        case 'h':
            printf("Usage: kiln checkout [--root DIR] GIT_URL[#REF] DEST\n\n"
                   "Fetches the repository into the mirror cache under the kiln root, checks\n"
                   "out REF (branch, tag or commit; default branch when absent) with its\n"
                   "submodules into DEST (which must not exist) and prints the commit.\n"
                   "Credentials: KILN_GIT_TOKEN, KILN_GIT_TOKEN_<HOST>, KILN_GIT_CREDENTIALS\n"
                   "(lines \"HOST TOKEN\" or \"HOST USER:PASSWORD\"), the ssh agent.\n");
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
    kiln_git_split_ref(argv[optind], &url, &ref);
    if (kiln_git_checkout(url, ref, &g, argv[optind + 1], &commit, &err) < 0)
        return kiln_cli_fail(&err);
    printf("%s\n", commit);
    return KILN_EXIT_OK;
}
