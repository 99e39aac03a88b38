/* kiln gc — keeps a build server's disk bounded (see src/server/gc.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "src/commands.h"
#include "src/server/cli.h"
#include "src/server/db.h"
#include "src/server/gc.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

static void gc_usage(void)
{
    printf("Usage: kiln gc --root SERVER_ROOT [options]\n\n"
           "Removes what a build server no longer needs, oldest first: logs of finished builds,\n"
           "uploaded contexts no queued build uses, leftover scratch and secret files; with\n"
           "--kiln-root also git mirrors and RUN cache mounts, then unreferenced blobs\n"
           "(kiln prune). `kiln serve` runs the same collection every --gc-interval.\n\n"
           "  --root DIR           the server's --root (default /var/lib/kiln/server)\n"
           "  --kiln-root DIR      the kiln root of its builds\n"
           "  --max-age HOURS      remove entries older than this (default 168, 0 = no limit)\n"
           "  --logs-max MIB       keep at most this much of logs (default 0 = no limit)\n"
           "  --contexts-max MIB   … of uploaded contexts\n"
           "  --artifacts-max MIB  … of files builds kept (static sites, function packages)\n"
           "  --git-max MIB        … of git mirrors\n"
           "  --cache-max MIB      … of RUN cache mounts\n"
           "  --dry-run            only report\n");
}

int kiln_cmd_gc(int argc, char **argv)
{
    enum { O_ROOT = 256, O_KROOT, O_AGE, O_LOGS, O_CTX, O_ARTS, O_GIT, O_CACHE, O_DRY };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"root", required_argument, NULL, O_ROOT},
        {"kiln-root", required_argument, NULL, O_KROOT},
        {"max-age", required_argument, NULL, O_AGE},
        {"logs-max", required_argument, NULL, O_LOGS},
        {"contexts-max", required_argument, NULL, O_CTX},
        {"artifacts-max", required_argument, NULL, O_ARTS},
        {"git-max", required_argument, NULL, O_GIT},
        {"cache-max", required_argument, NULL, O_CACHE},
        {"dry-run", no_argument, NULL, O_DRY},
        {NULL, 0, NULL, 0},
    };
    const char *root = "/var/lib/kiln/server";
    long long age = 168, logs = 0, ctx = 0, arts = 0, git = 0, cache = 0;
    kiln_gc_opts_t o = {0};
    kiln_gc_stats_t st;
    kiln_error_t err = {0};
    _cleanup_free_ char *db_path = NULL, *self = NULL;
    kiln_db_t *db = NULL;
    int c, ret;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        long long *num = NULL;
        switch (c) {
        case 'h':
            gc_usage();
            return KILN_EXIT_OK;
        case O_ROOT:
            root = optarg;
            break;
        case O_KROOT:
            o.kiln_root = optarg;
            break;
        case O_DRY:
            o.dry_run = 1;
            break;
        case O_AGE:
            num = &age;
            break;
        case O_LOGS:
            num = &logs;
            break;
        case O_CTX:
            num = &ctx;
            break;
        case O_ARTS:
            num = &arts;
            break;
        case O_GIT:
            num = &git;
            break;
        case O_CACHE:
            num = &cache;
            break;
        default:
            return KILN_EXIT_USAGE;
        }
        if (num && (*num = kiln_server_parse_num(optarg)) < 0)
            return kiln_cli_usage_error("gc", "option '%s' needs a non-negative number",
                                        argv[optind - 1]);
    }
    if (optind < argc)
        return kiln_cli_usage_error("gc", "unexpected argument '%s'", argv[optind]);
    db_path = kiln_xasprintf("%s/kiln.db", root);
    if (kiln_db_open(db_path, &db, &err) < 0)
        return kiln_cli_fail(&err);
    self = kiln_server_build_cmd(NULL);
    o.server_root = root;
    o.db = db;
    o.prune_cmd = self;
    o.max_age_s = (double)age * 3600;
    o.logs_max = (uint64_t)logs << 20;
    o.contexts_max = (uint64_t)ctx << 20;
    o.artifacts_max = (uint64_t)arts << 20;
    o.git_max = (uint64_t)git << 20;
    o.cache_max = (uint64_t)cache << 20;
    ret = kiln_gc_run(&o, &st, &err);
    kiln_db_close(db);
    if (ret < 0)
        return kiln_cli_fail(&err);
    printf("%s %u entries, %.1f MiB%s\n", o.dry_run ? "would remove" : "removed", st.removed,
           (double)st.freed_bytes / (1 << 20),
           st.prune_status > 0 ? " (blob store busy or prune failed; see gc.log)" : "");
    return KILN_EXIT_OK;
}
