/* kiln copy — copy an image between registries, OCI layouts and docker archives. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/docker_archive.h"
#include "oci/layout.h"
#include "oci/registry.h"
#include "oci/soci.h"
#include "oci/zstd_chunked.h"
#include "src/cli_registry.h"
#include "src/commands.h"
#include "src/ecr_login.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/size.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln copy [options] SOURCE DEST\n\n"
            "Copies an image. Each side is docker://REF (or a bare REF), oci:DIR[:TAG] or\n"
            "docker-archive:FILE. Registry to registry copies every platform of an index\n"
            "(the digest is kept); other destinations get the --platform image.\n"
            "Prints the digest of what was written.\n\n" KILN_CLI_ECR_CREATE_HELP
            "  --soci                               to a registry: the image made SOCI-enabled\n"
            "                                       (SOCI index v2, every platform; lazy\n"
            "                                       loading on Fargate; the digest changes)\n"
            "  --soci-min-layer-size SIZE           layers smaller get no zTOC "
            "(10MiB)\n"
            "  --zstd-chunked                       the --platform image with every layer\n"
            "                                       zstd:chunked (TOC + annotations: podman,\n"
            "                                       CRI-O partial pulls; the digest "
            "changes)\n" KILN_CLI_REGISTRY_HELP);
}

enum { O_SOCI = 2000, O_SOCI_MIN, O_ZSTD_CHUNKED };

typedef struct copy_flags {
    int ecr_create, soci, zstd_chunked;
    kiln_soci_opts_t so;
} copy_flags_t;

/* --soci, --soci-min-layer-size, and --ecr-create-repository. */
static int copy_opt(int c, const char *arg, void *ud)
{
    copy_flags_t *f = ud;
    kiln_error_t err = {0};
    uint64_t n;

    if (c == O_SOCI) {
        f->soci = 1;
        return 0;
    }
    if (c == O_ZSTD_CHUNKED) {
        f->zstd_chunked = 1;
        return 0;
    }
    if (c == O_SOCI_MIN) {
        if (kiln_size_parse(arg, &n, &err) < 0 || n > (uint64_t)1 << 40) {
            kiln_cli_usage_error("copy", "--soci-min-layer-size %s: not a byte size", arg);
            return -1;
        }
        f->so.min_layer = (int64_t)n;
        return 0;
    }
    return kiln_cli_ecr_create_opt(c, arg, &f->ecr_create);
}

/* The manifest for the chosen platform when top is an index (read from the store). */
static int platform_manifest(kiln_store_t *s, const kiln_cli_registry_t *cr,
                             const kiln_descriptor_t *top, kiln_descriptor_t *out,
                             kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    kiln_index_t *ix = NULL;
    int k;

    if (strcmp(top->media_type, KILN_MT_OCI_INDEX) != 0 &&
        strcmp(top->media_type, KILN_MT_DOCKER_LIST) != 0) {
        kiln_descriptor_copy(out, top);
        return 0;
    }
    if (kiln_store_read_blob(s, &top->digest, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0 ||
        kiln_image_parse_index(body, len, &ix, err) < 0)
        return -1;
    k = kiln_image_index_select(ix, cr->os, cr->arch, cr->variant[0] ? cr->variant : NULL, err);
    if (k >= 0)
        kiln_descriptor_copy(out, &ix->manifests[k]);
    kiln_index_free(ix);
    return k < 0 ? -1 : 0;
}

int kiln_cmd_copy(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        KILN_CLI_ECR_CREATE_LONGOPT,
        {"soci", no_argument, NULL, O_SOCI},
        {"soci-min-layer-size", required_argument, NULL, O_SOCI_MIN},
        {"zstd-chunked", no_argument, NULL, O_ZSTD_CHUNKED},
        KILN_CLI_REGISTRY_LONGOPTS,
        {NULL, 0, NULL, 0}};
    kiln_cli_registry_t cr;
    kiln_registry_t *r = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_descriptor_t top = {0}, man = {0};
    kiln_digest_t written;
    _cleanup_free_ char *from = NULL;
    char ds[KILN_DIGEST_STR_MAX];
    const char *src, *dst, *srest, *drest;
    kiln_loc_kind_t sk, dk;
    copy_flags_t f = {.so = {.min_layer = -1, .build_tool = "kiln " KILN_VERSION}};
    kiln_soci_result_t sr = {0};
    int c, rc = KILN_EXIT_USAGE, ecr_create; /* usage until the operands are checked */

    kiln_cli_registry_init(&cr);
    c = kiln_cli_registry_getopt(&cr, "copy", argc, argv, "h", opts, usage, copy_opt, &f);
    ecr_create = f.ecr_create;
    if (c == 1)
        return kiln_cli_registry_end(&cr, NULL, NULL, KILN_EXIT_OK);
    if (c != 0)
        goto out;
    if (argc - optind != 2) {
        kiln_cli_usage_error("copy", "expected SOURCE and DEST");
        goto out;
    }
    src = argv[optind];
    dst = argv[optind + 1];
    sk = kiln_cli_location(src, &srest);
    dk = kiln_cli_location(dst, &drest);
    if (ecr_create && dk != KILN_LOC_REGISTRY) {
        kiln_cli_usage_error("copy", "--ecr-create-repository needs a registry destination");
        goto out;
    }
    if (f.soci && dk != KILN_LOC_REGISTRY) {
        kiln_cli_usage_error("copy", "--soci needs a registry destination");
        goto out;
    }
    if (f.soci && f.zstd_chunked) {
        kiln_cli_usage_error("copy", "--soci indexes gzip layers only: choose --soci (gzip, "
                                     "Fargate's lazy loading) or --zstd-chunked");
        goto out;
    }
    rc = KILN_EXIT_FAIL;
    if (kiln_cli_registry_client(&cr, &r, &err) < 0)
        goto out;
    if (sk == KILN_LOC_OCI && dk == KILN_LOC_REGISTRY && !f.soci && !f.zstd_chunked) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ char *tag = NULL;
        kiln_blob_source_t bs;
        if (kiln_layout_parse_ref(src, &dir, &tag, &err) < 0 ||
            kiln_cli_layout_top(dir, tag, &top, &err) < 0)
            goto out;
        bs = kiln_registry_source_layout(dir);
        if (ecr_create && kiln_cli_ecr_create_repositories(&drest, 1, &err) < 0)
            goto out;
        if (kiln_registry_push(r, &bs, &top, &drest, 1, NULL, &written, &err) < 0)
            goto out;
        goto done;
    }
    if (kiln_cli_registry_store(&cr, &s, &err) < 0 ||
        kiln_cli_source_to_store(&cr, r, s, src, 0, &top, &from, &err) < 0)
        goto out;
    if (f.zstd_chunked) { /* the platform's image, every layer rewritten: a new digest */
        kiln_descriptor_t pm = {0}, conv = {0};
        if (platform_manifest(s, &cr, &top, &pm, &err) < 0 ||
            kiln_zstd_chunked_convert(s, &pm, 0, &conv, &err) < 0) {
            kiln_descriptor_clear(&pm);
            goto out;
        }
        kiln_descriptor_clear(&pm);
        kiln_descriptor_clear(&top);
        top = conv;
    }
    if (dk == KILN_LOC_REGISTRY) {
        kiln_blob_source_t bs = kiln_registry_source_store(s);
        if (ecr_create && kiln_cli_ecr_create_repositories(&drest, 1, &err) < 0)
            goto out;
        if (f.soci) { /* the SOCI-enabled image is what goes (a new digest) */
            if (kiln_soci_convert(s, &top, &f.so, &sr, &err) < 0)
                goto out;
            if (sr.ztocs)
                fprintf(stderr,
                        "%s: SOCI index v2 with %zu zTOC%s (%zu layer%s below the "
                        "threshold)\n",
                        drest, sr.ztocs, sr.ztocs == 1 ? "" : "s", sr.skipped,
                        sr.skipped == 1 ? "" : "s");
            else
                fprintf(stderr, "%s: no SOCI index: every layer is below the threshold\n", drest);
            kiln_descriptor_clear(&top);
            top = sr.top;
        }
        if (kiln_registry_push(r, &bs, &top, &drest, 1, from, &written, &err) < 0)
            goto out;
    } else if (dk == KILN_LOC_OCI) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ char *tag = NULL;
        _cleanup_free_ char *name = NULL;
        if (kiln_layout_parse_ref(dst, &dir, &tag, &err) < 0)
            goto out;
        if (from != NULL) {
            kiln_reference_t ref = {0};
            kiln_reference_parse(srest, &ref, NULL);
            name = kiln_xasprintf("%s:%s", from, tag ? tag : ref.tag ? ref.tag : "latest");
            kiln_reference_free(&ref);
        } else if (tag != NULL) {
            name = kiln_xasprintf("localhost/image:%s", tag);
        }
        /* the whole index when every platform is here (registry sources), else one */
        if (from != NULL) {
            kiln_descriptor_copy(&man, &top);
        } else if (platform_manifest(s, &cr, &top, &man, &err) < 0) {
            goto out;
        }
        if (kiln_layout_write(s, dir, 0, &man, name, &err) < 0)
            goto out;
        written = man.digest;
    } else {
        const char *tags[2] = {NULL, NULL};
        _cleanup_free_ char *tagname = NULL;
        if (from != NULL) {
            kiln_reference_t ref = {0};
            kiln_reference_parse(srest, &ref, NULL);
            tagname = kiln_xasprintf("%s:%s", from, ref.tag ? ref.tag : "latest");
            kiln_reference_free(&ref);
            tags[0] = tagname;
        }
        if (platform_manifest(s, &cr, &top, &man, &err) < 0 ||
            kiln_docker_archive_write(s, drest, &man, tags, &err) < 0)
            goto out;
        written = man.digest;
    }
done:
    printf("%s\n", kiln_digest_str(&written, ds));
    rc = KILN_EXIT_OK;
out:
    kiln_descriptor_clear(&top);
    kiln_descriptor_clear(&man);
    return kiln_cli_registry_finish(&cr, r, s, rc, &err);
}
