/* kiln pull — fetch an image from a registry into the store, and optionally
 * write it out as an OCI layout or unpack its filesystem. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/imagestore.h"
#include "oci/layout.h"
#include "oci/pull_unpack.h"
#include "oci/registry.h"
#include "src/cli_registry.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln pull [options] REF\n\n"
            "Pulls REF (e.g. alpine:3.19, host:5000/ns/app@sha256:…) into kiln's store and\n"
            "prints its digest.\n\n"
            "  -o, --output type=oci,dest=DIR    also write an OCI layout (DIR[:TAG] ok)\n"
            "  -o, --output type=local,dest=DIR[,store=true]\n"
            "                                    unpack the image's filesystem into DIR as it\n"
            "                                    downloads; its layers are not kept (nor the\n"
            "                                    image named in the store) unless "
            "store=true\n" KILN_CLI_REGISTRY_HELP);
}

/* Parses "type=T,dest=D[,store=BOOL]" into malloc'ed parts (*store: 1 for true). */
static int parse_output(const char *spec, char **type, char **dest, int *store)
{
    _cleanup_free_ char *copy = kiln_xstrdup(spec);
    char *save = NULL;
    for (char *kv = strtok_r(copy, ",", &save); kv != NULL; kv = strtok_r(NULL, ",", &save)) {
        if (strncmp(kv, "type=", 5) == 0) {
            free(*type);
            *type = kiln_xstrdup(kv + 5);
        } else if (strncmp(kv, "dest=", 5) == 0) {
            free(*dest);
            *dest = kiln_xstrdup(kv + 5);
        } else if (strcmp(kv, "store=true") == 0 || strcmp(kv, "store=false") == 0) {
            *store = kv[6] == 't';
        } else {
            return -1;
        }
    }
    return *type != NULL && *dest != NULL ? 0 : -1;
}

/* What -o says. */
typedef struct {
    char *type;
    char *dest;
    int store; /* type=local: keep the blobs (store=true) */
} output_t;

/* -o/--output for kiln_cli_registry_getopt; ud is the output_t. */
static int output_opt(int c, const char *arg, void *ud)
{
    output_t *o = ud;
    if (c != 'o')
        return -1;
    if (parse_output(arg, &o->type, &o->dest, &o->store) < 0 ||
        (strcmp(o->type, "oci") != 0 && strcmp(o->type, "local") != 0) ||
        (o->store && strcmp(o->type, "local") != 0)) {
        kiln_cli_usage_error("pull", "--output wants type=oci,dest=PATH or "
                                     "type=local,dest=PATH[,store=true|false]");
        return -1;
    }
    return 0;
}

int kiln_cmd_pull(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         KILN_CLI_REGISTRY_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    kiln_cli_registry_t cr;
    kiln_registry_t *r = NULL;
    kiln_store_t *s = NULL;
    kiln_registry_image_t img = {0};
    kiln_registry_pull_opts_t po;
    kiln_error_t err = {0};
    output_t o = {0};
    char ds[KILN_DIGEST_STR_MAX];
    int c, rc = KILN_EXIT_USAGE; /* until the operands are checked */

    kiln_cli_registry_init(&cr);
    c = kiln_cli_registry_getopt(&cr, "pull", argc, argv, "o:h", opts, usage, output_opt, &o);
    if (c == 1) { /* --help */
        free(o.type);
        free(o.dest);
        return kiln_cli_registry_end(&cr, NULL, NULL, KILN_EXIT_OK);
    }
    if (c != 0)
        goto out;
    if (optind != argc - 1) {
        kiln_cli_usage_error("pull", "expected exactly one image reference");
        goto out;
    }
    rc = KILN_EXIT_FAIL;
    if (kiln_cli_registry_client(&cr, &r, &err) < 0 || kiln_cli_registry_store(&cr, &s, &err) < 0)
        goto out;
    kiln_cli_registry_pull_opts(&cr, &po);
    if (o.type != NULL && strcmp(o.type, "local") == 0) {
        if (kiln_pull_unpacked(r, s, argv[optind], &po, &img, o.dest, o.store, &err) < 0)
            goto out;
    } else if (kiln_registry_pull(r, s, argv[optind], &po, &img, &err) < 0) {
        goto out;
    }
    if (o.type != NULL && strcmp(o.type, "oci") == 0) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ char *tag = NULL;
        _cleanup_free_ char *name = NULL;
        kiln_reference_t ref = {0};
        if (kiln_layout_parse_ref(o.dest, &dir, &tag, &err) < 0)
            goto out;
        kiln_reference_parse(argv[optind], &ref, NULL);
        name = kiln_xasprintf("%s/%s:%s", ref.registry, ref.repository,
                              tag       ? tag
                              : ref.tag ? ref.tag
                                        : "latest");
        kiln_reference_free(&ref);
        /* a layout gets the selected platform's manifest: that is what was fetched */
        if (kiln_layout_write(s, dir, 0, &img.manifest, name, &err) < 0)
            goto out;
    }
    if (strchr(argv[optind], '@') == NULL && img.streamed == 0 &&
        kiln_imagestore_tag(s, (const char *const *)&argv[optind], 1, &img.manifest.digest, &err) <
            0) /* docker pull NAME: the platform's image is named NAME in kiln's store */
        goto out;
    printf("%s\n", kiln_digest_str(&img.top.digest, ds));
    rc = KILN_EXIT_OK;
out:
    free(o.type);
    free(o.dest);
    kiln_registry_image_clear(&img);
    return kiln_cli_registry_finish(&cr, r, s, rc, &err);
}
