/* kiln push — upload an image to one or more registry references. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "oci/imagestore.h"
#include "oci/layout.h"
#include "oci/registry.h"
#include "src/cli_registry.h"
#include "src/commands.h"
#include "src/ecr_login.h"
#include "utils/cleanup.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: kiln push [options] SOURCE REF [REF…]\n"
                 "       kiln push [options] NAME[:TAG]\n\n"
                 "Pushes an image to every REF (several tags in one go) and prints its digest;\n"
                 "an image named in kiln's store (kiln images) alone goes to its own name.\n"
                 "SOURCE is oci:DIR[:TAG], docker-archive:FILE, or an image in kiln's "
                 "store.\n\n" KILN_CLI_ECR_CREATE_HELP KILN_CLI_REGISTRY_HELP);
}

int kiln_cmd_push(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         KILN_CLI_ECR_CREATE_LONGOPT,
                                         KILN_CLI_REGISTRY_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    kiln_cli_registry_t cr;
    kiln_registry_t *r = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_descriptor_t top = {0};
    kiln_digest_t pushed;
    _cleanup_free_ char *from = NULL;
    _cleanup_free_ char *dir = NULL;
    _cleanup_free_ char *tag = NULL;
    char ds[KILN_DIGEST_STR_MAX];
    const char *rest;
    char *single[2];
    int c, rc = KILN_EXIT_USAGE, ecr_create = 0; /* usage until the operands are checked */

    kiln_cli_registry_init(&cr);
    c = kiln_cli_registry_getopt(&cr, "push", argc, argv, "h", opts, usage, kiln_cli_ecr_create_opt,
                                 &ecr_create);
    if (c == 1)
        return kiln_cli_registry_end(&cr, NULL, NULL, KILN_EXIT_OK);
    if (c != 0)
        goto out;
    if (argc - optind < 1) {
        kiln_cli_usage_error("push", "expected an image (and destination references)");
        goto out;
    }
    rc = KILN_EXIT_FAIL;
    if (argc - optind == 1) {
        /* docker push NAME: an image named in kiln's store goes to the registry its name says */
        kiln_imagestore_entry_t e = {0};
        int found;
        if (kiln_cli_registry_store(&cr, &s, &err) < 0 ||
            (found = kiln_imagestore_lookup(s, argv[optind], &e, &err)) < 0)
            goto out;
        kiln_imagestore_entry_clear(&e);
        if (found == 0) {
            kiln_error_set(&err, 0,
                           "no image named %s in kiln's store (kiln images lists them; kiln push "
                           "SOURCE REF pushes an OCI layout, archive or registry image)",
                           argv[optind]);
            goto out;
        }
        single[0] = argv[optind];
        single[1] = argv[optind];
        argv = single;
        argc = 2;
        optind = 0;
    }
    for (int i = optind + 1; i < argc; i++) {
        kiln_reference_t ref = {0};
        if (strncmp(argv[i], "docker://", 9) == 0)
            argv[i] += 9;
        if (kiln_reference_parse(argv[i], &ref, &err) < 0)
            goto out; /* the store a bare name opened is closed too */
        kiln_reference_free(&ref);
    }
    if (kiln_cli_registry_client(&cr, &r, &err) < 0)
        goto out;
    if (ecr_create && kiln_cli_ecr_create_repositories((const char *const *)argv + optind + 1,
                                                       (size_t)(argc - optind - 1), &err) < 0)
        goto out;
    if (kiln_cli_location(argv[optind], &rest) == KILN_LOC_OCI) {
        /* straight from the layout: nothing is copied into the store */
        kiln_blob_source_t src;
        if (kiln_layout_parse_ref(argv[optind], &dir, &tag, &err) < 0 ||
            kiln_cli_layout_top(dir, tag, &top, &err) < 0)
            goto out;
        src = kiln_registry_source_layout(dir);
        if (kiln_registry_push(r, &src, &top, (const char *const *)argv + optind + 1,
                               (size_t)(argc - optind - 1), NULL, &pushed, &err) < 0)
            goto out;
    } else {
        kiln_blob_source_t src;
        if ((s == NULL && kiln_cli_registry_store(&cr, &s, &err) < 0) ||
            kiln_cli_source_to_store(&cr, r, s, argv[optind], 1, &top, &from, &err) < 0)
            goto out;
        src = kiln_registry_source_store(s);
        if (kiln_registry_push(r, &src, &top, (const char *const *)argv + optind + 1,
                               (size_t)(argc - optind - 1), from, &pushed, &err) < 0)
            goto out;
    }
    printf("%s\n", kiln_digest_str(&pushed, ds));
    rc = KILN_EXIT_OK;
out:
    kiln_descriptor_clear(&top);
    return kiln_cli_registry_finish(&cr, r, s, rc, &err);
}
