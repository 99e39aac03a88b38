/* kiln checkout — fetch a git source (through kiln's mirror cache) or copy
 * nothing for a local one, check out a branch, tag or commit with its
 * submodules into DEST, and print the exact commit. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/statcache.h"
#include "job/auto.h"
#include "job/source.h"
#include "src/cli_gitpolicy.h"
#include "src/commands.h"
#include "utils/cachens.h"
#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/git.h"
#include "utils/mem.h"

extern char **environ;

int kiln_cmd_checkout(int argc, char **argv)
{
    static const struct option opts[] = {{"root", required_argument, NULL, 'r'},
                                         {"credential-file", required_argument, NULL, 'c'},
                                         /* internal: the tenant's mirrors (utils/cachens) */
                                         {"cache-namespace", required_argument, NULL, 'n'},
                                         /* internal: note the files in the stat cache of
                                          * this context identity (kiln serve) */
                                         {"context-id", required_argument, NULL, 'i'},
                                         {"context-subdir", required_argument, NULL, 's'},
                                         {"stat-cache-max", required_argument, NULL, 'x'},
                                         KILN_CLI_GITPOLICY_LONGOPTS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    kiln_cli_gitpolicy_t gp = {0};
    const char *root_opt = NULL, *cf, *cred_file = NULL, *ns = NULL;
    const char *context_id = NULL, *subdir = NULL;
    int64_t sc_max = 0;
    kiln_auto_notes_t note = {0};
    _cleanup_free_ char *root = NULL, *cache = NULL, *creds = NULL, *url = NULL, *ref = NULL;
    _cleanup_free_ char *commit = NULL, *cred = NULL, *cred_host = NULL;
    kiln_git_opts_t g = {.env = environ};
    kiln_error_t err = {0};
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            root_opt = optarg;
            break;
        case 'c':
            cred_file = optarg;
            break;
        case 'n':
            if (kiln_cachens_check(optarg, &err) < 0)
                return kiln_cli_usage_error("checkout", "--cache-namespace: %s", err.msg);
            ns = optarg;
            break;
        case 'i':
            if (optarg[0] == '\0' || strlen(optarg) > KILN_STATCACHE_ID_MAX)
                return kiln_cli_usage_error("checkout", "--context-id: 1 to %d bytes",
                                            KILN_STATCACHE_ID_MAX);
            context_id = optarg;
            break;
        case 's':
            subdir = optarg;
            break;
        case 'x':
            if (kiln_statcache_parse_max(optarg, &sc_max, &err) < 0)
                return kiln_cli_usage_error("checkout", "--stat-cache-max: %s", err.msg);
            break;
        case 'h':
            printf(
                "Usage: kiln checkout [options] GIT_URL[#REF] DEST\n\n"
                "Fetches the repository into the mirror cache under the kiln root, checks\n"
                "out REF (branch, tag or commit; default branch when absent) with its\n"
                "submodules into DEST (which must not exist) and prints the commit.\n"
                "Credentials: KILN_GIT_TOKEN, KILN_GIT_TOKEN_<HOST>, KILN_GIT_CREDENTIALS\n"
                "(lines \"HOST TOKEN\" or \"HOST USER:PASSWORD\"), the ssh agent.\n\n"
                "Options:\n"
                "      --root DIR             kiln root (mirror cache)\n"
                "      --credential-file FILE the credential for the URL's own host: TOKEN or\n"
                "                             USER:PASSWORD (how kiln serve hands a URL's\n"
                "                             userinfo over without putting it on a command "
                "line)\n" KILN_CLI_GITPOLICY_HELP
                "      --server-mode          the URL is a tenant's (set by kiln serve/worker):\n"
                "                             https:// and ssh:// only (no file://, local\n"
                "                             paths, helpers), public addresses plus\n"
                "                             --allow-address\n");
            return KILN_EXIT_OK;
        default:
            switch (kiln_cli_gitpolicy_opt(&gp, "checkout", c, optarg)) {
            case 1:
                continue;
            case 0:
                return kiln_cli_usage_error("checkout", "unknown option");
            default:
                return KILN_EXIT_USAGE;
            }
        }
    }
    if (optind != argc - 2)
        return kiln_cli_usage_error("checkout", "expected GIT_URL[#REF] and DEST");
    if (!kiln_git_is_url(argv[optind]))
        return kiln_cli_usage_error("checkout", "not a git URL: %s", argv[optind]);
    root = kiln_auto_root(root_opt, environ);
    if (kiln_cachens_path(root, ns, KILN_CACHENS_GIT, &cache, &err) < 0)
        return kiln_cli_fail(&err);
    cf = kiln_env_get(environ, "KILN_GIT_CREDENTIALS");
    creds = cf ? kiln_xstrdup(cf) : kiln_xasprintf("%s/git-credentials", root);
    g.cache_dir = cache;
    g.credentials_file = creds;
    g.policy = gp.policy;
    kiln_git_split_ref(argv[optind], &url, &ref);
    if (cred_file) {
        if (kiln_job_source_read_credential(cred_file, &cred, &err) < 0) {
            kiln_error_prefix(&err, "--credential-file");
            return kiln_cli_fail(&err);
        }
        cred_host = kiln_git_url_host(url);
        g.credential = cred;
        g.credential_host = cred_host;
    }
    if (context_id && sc_max == 0 && kiln_env_get(environ, "KILN_STAT_CACHE_MAX") &&
        kiln_statcache_parse_max(kiln_env_get(environ, "KILN_STAT_CACHE_MAX"), &sc_max, &err) < 0)
        return kiln_cli_usage_error("checkout", "KILN_STAT_CACHE_MAX: %s", err.msg);
    if (context_id && kiln_auto_notes_start(&note, root, ns, context_id, sc_max, argv[optind + 1],
                                            subdir, &g, &err) < 0)
        fprintf(stderr, "kiln checkout: no stat cache: %s\n", err.msg);
    if (kiln_git_checkout(url, ref, &g, argv[optind + 1], &commit, &err) < 0) {
        kiln_auto_notes_free(&note);
        return kiln_cli_fail(&err);
    }
    if (note.sc) {
        kiln_statcache_stats_t s;
        kiln_error_t serr = {0};
        if (kiln_auto_notes_finish(&note, &s, &serr) < 0)
            fprintf(stderr, "kiln checkout: %s\n", serr.msg);
        fprintf(stderr, "stat cache: %llu files noted, %llu kept their hash\n",
                (unsigned long long)s.noted, (unsigned long long)s.kept);
    }
    printf("%s\n", commit);
    return KILN_EXIT_OK;
}
