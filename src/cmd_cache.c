/* kiln cache gc — deletes the blobs of a remote (S3) build cache that no manifest names
 * (engine/remote_gc: a grace period and two sightings keep concurrent writers safe), or
 * bounds a registry cache image and rewrites it without what it evicts (engine/regcache). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/regcache.h"
#include "engine/remote_gc.h"
#include "src/cli_registry.h"
#include "src/commands.h"
#include "utils/cachens.h"

static void cache_usage_to(FILE *out)
{
    fprintf(out,
            "Usage: kiln cache gc --cache-to type=s3,bucket=B[,prefix=P][,region=R][,endpoint=URL]"
            " [options]\n"
            "       kiln cache gc --cache-to type=registry,ref=REF[,max-size=SIZE] [options]\n\n"
            "S3: deletes the blobs under s3://B/P/blobs/ that no cache mount manifest (P/mounts/)\n"
            "and no layer index (P/layers.json) names. A blob goes only when it is older than the\n"
            "grace period AND an earlier `kiln cache gc`, at least the grace period ago, already\n"
            "found it unnamed (noted in P/gc.json): run it periodically (e.g. daily). The grace\n"
            "period must exceed your longest build plus its save, so a concurrent writer's blobs\n"
            "are never deleted before its manifest names them.\n\n"
            "Registry: checks the cache image REF, leaves out its least recently saved cache\n"
            "mounts until their packs total max-size at most (default %llu GiB, as a build's\n"
            "--cache-to does at save) and the packs nothing names, pushes the rewritten image to\n"
            "REF and deletes the old manifest where the registry allows DELETE. Blobs are never\n"
            "deleted: those no manifest references go at the registry's own garbage collection\n"
            "(e.g. `registry garbage-collect`, ECR lifecycle policies).\n\n"
            "  --cache-to SPEC          the cache (as given to kiln build --cache-to)\n"
            "  --cache-namespace NAME   S3: the tenant whose cache it is (kiln-ns/NAME/P)\n"
            "  --grace SECONDS          S3: default %d (one day)\n"
            "  --dry-run                only report what would be deleted\n" KILN_CLI_REGISTRY_HELP,
            KILN_REGCACHE_DEFAULT_MAX >> 30, KILN_RCACHE_GC_DEFAULT_GRACE);
}

static void cache_usage(void)
{
    cache_usage_to(stdout);
}

/* kiln cache gc of a registry cache image (engine/regcache.h). */
static int registry_gc(kiln_cli_registry_t *cr, const kiln_rcache_spec_t *spec, int dry_run)
{
    kiln_regcache_gc_stats_t st;
    kiln_registry_t *r = NULL;
    kiln_error_t err = {0};
    int rc = KILN_EXIT_FAIL;

    if (kiln_cli_registry_client(cr, &r, &err) < 0 ||
        kiln_regcache_gc(r, spec->ref, spec->max_size, dry_run, &st, &err) < 0)
        goto out;
    printf("%zu cache mounts (%.1f MB of packs): %zu %s, %zu packs %s, %.1f MB kept (max-size "
           "%.1f MB)%s\n",
           st.ids, (double)st.before / 1e6, st.evicted, dry_run ? "would be left out" : "left out",
           st.packs_dropped, dry_run ? "would be dropped" : "dropped", (double)st.after / 1e6,
           (double)(spec->max_size ? spec->max_size : KILN_REGCACHE_DEFAULT_MAX) / 1e6,
           !st.rewritten         ? (dry_run ? "" : "; nothing to rewrite")
           : st.old_deleted == 1 ? "; rewritten, the old manifest deleted"
                                 : "; rewritten, the old manifest left to the registry (it "
                                   "refused DELETE): its blobs go at the registry's own garbage "
                                   "collection");
    rc = KILN_EXIT_OK;
out:
    return kiln_cli_registry_finish(cr, r, NULL, rc, &err);
}

/* The cache gc's own options for kiln_cli_registry_getopt (ud: its state). */
typedef struct gc_args {
    kiln_rcache_gc_opts_t o;
    const char *to;
} gc_args_t;

enum { O_TO = 256, O_NS, O_GRACE, O_DRY };

static int gc_opt(int c, const char *arg, void *ud)
{
    gc_args_t *a = ud;
    kiln_error_t err = {0};
    char *end = NULL;
    switch (c) {
    case O_TO:
        a->to = arg;
        return 0;
    case O_NS:
        if (kiln_cachens_check(arg, &err) < 0) {
            kiln_cli_usage_error("cache gc", "--cache-namespace: %s", err.msg);
            return -1;
        }
        a->o.ns = arg;
        return 0;
    case O_GRACE:
        a->o.grace = strtoll(arg, &end, 10);
        if (*arg == '\0' || *end != '\0' || a->o.grace < 0) {
            kiln_cli_usage_error("cache gc", "--grace needs seconds (>= 0), not '%s'", arg);
            return -1;
        }
        return 0;
    case O_DRY:
        a->o.dry_run = 1;
        return 0;
    default:
        return -1;
    }
}

static int cache_gc(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"cache-to", required_argument, NULL, O_TO},
        {"cache-namespace", required_argument, NULL, O_NS},
        {"grace", required_argument, NULL, O_GRACE},
        {"dry-run", no_argument, NULL, O_DRY},
        KILN_CLI_REGISTRY_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    gc_args_t a = {.o = {.grace = KILN_RCACHE_GC_DEFAULT_GRACE}};
    kiln_rcache_gc_stats_t st;
    kiln_rcache_spec_t spec = {0};
    kiln_cli_registry_t cr;
    kiln_error_t err = {0};
    int c, ret;

    kiln_cli_registry_init(&cr);
    c = kiln_cli_registry_getopt(&cr, "cache gc", argc, argv, "h", opts, cache_usage_to, gc_opt,
                                 &a);
    if (c != 0)
        return kiln_cli_registry_end(&cr, NULL, NULL, c == 1 ? KILN_EXIT_OK : KILN_EXIT_USAGE);
    if (optind < argc) {
        kiln_cli_usage_error("cache gc", "unexpected argument '%s'", argv[optind]);
        return kiln_cli_registry_end(&cr, NULL, NULL, KILN_EXIT_USAGE);
    }
    if (a.to == NULL) {
        kiln_cli_usage_error("cache gc", "--cache-to type=s3,bucket=B[,prefix=P] or "
                                         "type=registry,ref=REF is needed");
        return kiln_cli_registry_end(&cr, NULL, NULL, KILN_EXIT_USAGE);
    }
    if (kiln_rcache_spec_parse(a.to, 0, &spec, &err) < 0)
        return kiln_cli_registry_finish(&cr, NULL, NULL, KILN_EXIT_FAIL, &err);
    if (strcmp(spec.type, "registry") == 0) {
        ret = registry_gc(&cr, &spec, a.o.dry_run);
        kiln_rcache_spec_clear(&spec);
        return ret;
    }
    kiln_cli_registry_end(&cr, NULL, NULL, KILN_EXIT_OK);
    ret = kiln_rcache_gc(&spec, &a.o, &st, &err);
    kiln_rcache_spec_clear(&spec);
    if (ret < 0)
        return kiln_cli_fail(&err);
    printf("%zu manifests, %zu blobs: %zu named, %zu unnamed but younger than the grace period, "
           "%zu unnamed (noted: deleted by a later gc), %zu %s (%.1f MB)\n",
           st.manifests, st.blobs, st.referenced, st.young, st.marked, st.deleted,
           a.o.dry_run ? "would be deleted" : "deleted", (double)st.deleted_bytes / 1e6);
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
