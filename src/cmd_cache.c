/* kiln cache gc — deletes the blobs of a remote (S3) build cache that no manifest names
 * (engine/remote_gc: a grace period and two sightings keep concurrent writers safe). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/remote_gc.h"
#include "src/commands.h"
#include "utils/cachens.h"

static void cache_usage(void)
{
    printf("Usage: kiln cache gc --cache-to type=s3,bucket=B[,prefix=P][,region=R][,endpoint=URL]"
           " [options]\n\n"
           "Deletes the blobs under s3://B/P/blobs/ that no cache mount manifest (P/mounts/) and\n"
           "no layer index (P/layers.json) names. A blob goes only when it is older than the\n"
           "grace period AND an earlier `kiln cache gc`, at least the grace period ago, already\n"
           "found it unnamed (noted in P/gc.json): run it periodically (e.g. daily). The grace\n"
           "period must exceed your longest build plus its save, so a concurrent writer's blobs\n"
           "are never deleted before its manifest names them.\n\n"
           "  --cache-to SPEC          the cache (as given to kiln build --cache-to)\n"
           "  --cache-namespace NAME   the tenant whose cache it is (kiln-ns/NAME/P)\n"
           "  --grace SECONDS          default %d (one day)\n"
           "  --dry-run                only report what would be deleted\n",
           KILN_RCACHE_GC_DEFAULT_GRACE);
}

static int cache_gc(int argc, char **argv)
{
    enum { O_TO = 256, O_NS, O_GRACE, O_DRY };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"cache-to", required_argument, NULL, O_TO},
        {"cache-namespace", required_argument, NULL, O_NS},
        {"grace", required_argument, NULL, O_GRACE},
        {"dry-run", no_argument, NULL, O_DRY},
        {NULL, 0, NULL, 0},
    };
    kiln_rcache_gc_opts_t o = {.grace = KILN_RCACHE_GC_DEFAULT_GRACE};
    kiln_rcache_gc_stats_t st;
    kiln_rcache_spec_t spec = {0};
    kiln_error_t err = {0};
    const char *to = NULL;
    int c, ret;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'h':
            cache_usage();
            return KILN_EXIT_OK;
        case O_TO:
            to = optarg;
            break;
        case O_NS:
            if (kiln_cachens_check(optarg, &err) < 0)
                return kiln_cli_usage_error("cache gc", "--cache-namespace: %s", err.msg);
            o.ns = optarg;
            break;
        case O_GRACE:
            o.grace = strtoll(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || o.grace < 0)
                return kiln_cli_usage_error("cache gc", "--grace needs seconds (>= 0), not '%s'",
                                            optarg);
            break;
        case O_DRY:
            o.dry_run = 1;
            break;
        default:
            return kiln_cli_bad_option("cache gc", c, argv, opts);
        }
    }
    if (optind < argc)
        return kiln_cli_usage_error("cache gc", "unexpected argument '%s'", argv[optind]);
    if (to == NULL)
        return kiln_cli_usage_error("cache gc", "--cache-to type=s3,bucket=B[,prefix=P] is needed");
    if (kiln_rcache_spec_parse(to, 0, &spec, &err) < 0)
        return kiln_cli_fail(&err);
    ret = kiln_rcache_gc(&spec, &o, &st, &err);
    kiln_rcache_spec_clear(&spec);
    if (ret < 0)
        return kiln_cli_fail(&err);
    printf("%zu manifests, %zu blobs: %zu named, %zu unnamed but younger than the grace period, "
           "%zu unnamed (noted: deleted by a later gc), %zu %s (%.1f MB)\n",
           st.manifests, st.blobs, st.referenced, st.young, st.marked, st.deleted,
           o.dry_run ? "would be deleted" : "deleted", (double)st.deleted_bytes / 1e6);
    return KILN_EXIT_OK;
}

int kiln_cmd_cache(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "gc") == 0)
        return cache_gc(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        cache_usage();
        return KILN_EXIT_OK;
    }
    return kiln_cli_usage_error("cache", "want a subcommand: gc");
}
