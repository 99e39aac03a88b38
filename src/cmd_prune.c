/* kiln prune — remove blobs no image or cache entry references. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "oci/additional_store.h"
#include "oci/store.h"
#include "src/cli_output.h"
#include "src/commands.h"
#include "utils/cleanup.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: kiln prune [--root DIR] [--cache-max-age HOURS] [--dry-run] [--no-wait]\n"
                 "                  [--additional-store DIR]...\n"
                 "\n"
                 "Removes every blob of the store that no ref (image or cache entry) reaches,\n"
                 "stale temp files, and the unpacked layer trees builds keep for layers no\n"
                 "kept image lists. Waits until no build or pull uses the store.\n"
                 "Prints what it freed to stderr.\n"
                 "\n"
                 "Options:\n"
                 "  --root DIR   blob store root (default /var/lib/kiln as root,\n"
                 "               $XDG_DATA_HOME/kiln or ~/.local/share/kiln otherwise)\n"
                 "  --cache-max-age HOURS\n"
                 "               first drop build cache entries not used for this long,\n"
                 "               and the pins of build results as old (images named in\n"
                 "               kiln's store, kiln images, stay until kiln rmi)\n"
                 "  --dry-run    only report what would be removed\n"
                 "  --no-wait    fail at once when a build holds the store\n"
                 "  --additional-store DIR\n"
                 "               an additional image store the root's images use (repeatable;\n"
                 "               also $KILN_ADDITIONAL_STORES): blobs found there are not\n"
                 "               missing; nothing in a store is ever removed\n"
                 "  -h, --help   this help\n");
}

int kiln_cmd_prune(int argc, char **argv)
{
    static const struct option opts[] = {{"root", required_argument, NULL, 'r'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         {"no-wait", no_argument, NULL, 'W'},
                                         {"cache-max-age", required_argument, NULL, 'A'},
                                         {"additional-store", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *stores[KILN_ASTORE_MAX];
    kiln_astore_t *as[KILN_ASTORE_MAX];
    size_t n_stores = 0, n_as = 0;
    _cleanup_free_ char *root = NULL;
    const char *opt_root = NULL;
    kiln_store_prune_stats_t st = {0};
    kiln_error_t err = {0};
    int c, dry = 0, wait = 1;
    double cache_age = -1;
    unsigned expired = 0;
    char *end;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            opt_root = optarg;
            break;
        case 'n':
            dry = 1;
            break;
        case 'W':
            wait = 0;
            break;
        case 'A':
            errno = 0;
            cache_age = strtod(optarg, &end);
            if (errno || end == optarg || *end || cache_age < 0 || cache_age > 1e6)
                return kiln_cli_usage_error(
                    "prune", "--cache-max-age: '%s' is not a number of hours", optarg);
            break;
        case 'S':
            if (optarg[0] != '/' || n_stores >= KILN_ASTORE_MAX)
                return kiln_cli_usage_error("prune",
                                            "--additional-store: an absolute path (at "
                                            "most %d stores)",
                                            KILN_ASTORE_MAX);
            stores[n_stores++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return KILN_EXIT_OK;
        default:
            return kiln_cli_usage_error("prune", "unknown option");
        }
    }
    if (optind < argc)
        return kiln_cli_usage_error("prune", "unexpected argument '%s'", argv[optind]);
    if (kiln_cli_store_root(opt_root, &root, &err) < 0)
        return kiln_cli_fail(&err);
    if (cache_age >= 0) {
        kiln_store_t *store = NULL;
        int r = kiln_store_open(root, &store, &err);
        unsigned results = 0;
        if (r == 0)
            r = kiln_store_refs_expire(store, "cache/", cache_age * 3600, dry, &expired, &err);
        /* every build pins its result ("build/<hex>") until a name (-t) keeps it instead:
         * unnamed results age out with the cache */
        if (r == 0)
            r = kiln_store_refs_expire(store, "build/", cache_age * 3600, dry, &results, &err);
        kiln_store_close(store);
        if (r < 0)
            return kiln_cli_fail(&err);
        fprintf(stderr, "%s %u build cache entr%s unused for %g hour(s)\n",
                dry ? "would drop" : "dropped", expired, expired == 1 ? "y" : "ies", cache_age);
        fprintf(stderr, "%s %u build result pin(s) older than %g hour(s) (named images stay)\n",
                dry ? "would drop" : "dropped", results, cache_age);
    }
    /* the operator's stores, as builds see them: an image built from one names its blobs */
    if (n_stores == 0 && kiln_cli_additional_stores_env(stores, &n_stores, KILN_ASTORE_MAX) < 0)
        return kiln_cli_usage_error("prune", "KILN_ADDITIONAL_STORES: each store must be an "
                                             "absolute path (DIR[:DIR...])");
    for (size_t i = 0; i < n_stores; i++) {
        kiln_error_t aerr = {0};
        if (kiln_astore_open(stores[i], &as[n_as], &aerr) < 0)
            fprintf(stderr, "kiln: WARNING: %s; its blobs count as missing\n", aerr.msg);
        else
            n_as++;
    }
    c = kiln_store_prune_with(root, as, n_as, wait, dry, &st, &err);
    for (size_t i = 0; i < n_as; i++)
        kiln_astore_free(as[i]);
    if (c < 0)
        return kiln_cli_fail(&err);
    {
        char extra[200] = "";
        if (st.blobs_lazy || st.blobs_in_additional)
            snprintf(extra, sizeof(extra),
                     "; %llu blob(s) not downloaded (fetched when needed), %llu in additional "
                     "stores",
                     (unsigned long long)st.blobs_lazy, (unsigned long long)st.blobs_in_additional);
        fprintf(stderr,
                "%s %llu blob(s), %llu bytes; kept %llu blob(s); %s %llu temp file(s); %s %llu "
                "unpacked layer tree(s)%s%s\n",
                dry ? "would remove" : "removed", (unsigned long long)st.blobs_removed,
                (unsigned long long)st.bytes_freed, (unsigned long long)st.blobs_kept,
                dry ? "would remove" : "removed", (unsigned long long)st.tmp_removed,
                dry ? "would remove" : "removed", (unsigned long long)st.lowers_removed,
                st.refs_dangling ? "; some refs point at missing blobs" : "", extra);
    }
    return KILN_EXIT_OK;
}
