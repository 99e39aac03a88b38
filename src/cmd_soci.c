/* kiln soci — SOCI index manifest v2 tools: `kiln soci verify REF` reads a SOCI-enabled
 * image back (from a registry, all platforms, or an OCI layout) and checks every zTOC
 * against its layer span by span (oci/soci.h). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "oci/registry.h"
#include "oci/soci.h"
#include "src/cli_registry.h"
#include "src/commands.h"
#include "utils/cleanup.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: kiln soci verify [options] IMAGE\n\n"
                 "Checks a SOCI-enabled image (built with kiln build --soci, or soci convert):\n"
                 "its image index links a SOCI index v2 and an image manifest both ways, and\n"
                 "every zTOC decodes and matches its layer: each span's digest, each span\n"
                 "inflated from its checkpoint alone, every tar entry's offset and metadata.\n"
                 "IMAGE is a registry reference (pulled into the store, all platforms),\n"
                 "oci:DIR[:TAG] or docker-archive:FILE.\n\n" KILN_CLI_REGISTRY_HELP);
}

int kiln_cmd_soci(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, KILN_CLI_REGISTRY_LONGOPTS, {NULL, 0, NULL, 0}};
    kiln_cli_registry_t cr;
    kiln_registry_t *r = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_descriptor_t top = {0};
    kiln_soci_verify_stats_t st = {0};
    _cleanup_free_ char *from = NULL;
    char ds[KILN_DIGEST_STR_MAX];
    int c, rc = KILN_EXIT_FAIL;

    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            usage(stdout);
            return KILN_EXIT_OK;
        }
        kiln_cli_usage_error("soci", "expected the subcommand verify");
        return KILN_EXIT_USAGE;
    }
    argc--;
    argv++;
    kiln_cli_registry_init(&cr);
    c = kiln_cli_registry_getopt(&cr, "soci verify", argc, argv, "h", opts, usage, NULL, NULL);
    if (c == 1)
        return kiln_cli_registry_end(&cr, NULL, NULL, KILN_EXIT_OK);
    if (c != 0 || argc - optind != 1) {
        if (c == 0)
            kiln_cli_usage_error("soci verify", "expected one image");
        return kiln_cli_registry_end(&cr, NULL, NULL, KILN_EXIT_USAGE);
    }
    if (kiln_cli_registry_client(&cr, &r, &err) < 0 || kiln_cli_registry_store(&cr, &s, &err) < 0 ||
        kiln_cli_source_to_store(&cr, r, s, argv[optind], 0, &top, &from, &err) < 0)
        goto out;
    if (kiln_soci_verify(s, &top.digest, &st, &err) < 0) {
        kiln_error_prefix(&err, "%s", argv[optind]);
        goto out;
    }
    printf("%s %s: SOCI index v2 verified: %zu index%s, %zu zTOC%s, %zu span%s, %zu tar "
           "entr%s; %zu layer%s without a zTOC\n",
           argv[optind], kiln_digest_str(&top.digest, ds), st.indexes, st.indexes == 1 ? "" : "es",
           st.ztocs, st.ztocs == 1 ? "" : "s", st.spans, st.spans == 1 ? "" : "s", st.files,
           st.files == 1 ? "y" : "ies", st.layers_without_ztoc,
           st.layers_without_ztoc == 1 ? "" : "s");
    rc = KILN_EXIT_OK;
out:
    kiln_descriptor_clear(&top);
    return kiln_cli_registry_finish(&cr, r, s, rc, &err);
}
