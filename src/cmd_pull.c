/* kiln pull — fetch an image from a registry into the store, and optionally
 * write it out as an OCI layout or unpack its filesystem. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/layer_read.h"
#include "oci/layout.h"
#include "oci/registry.h"
#include "src/cli_registry.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: kiln pull [options] REF\n\n"
                 "Pulls REF (e.g. alpine:3.19, host:5000/ns/app@sha256:…) into kiln's store and\n"
                 "prints its digest.\n\n"
                 "  -o, --output type=oci,dest=DIR    also write an OCI layout (DIR[:TAG] ok)\n"
                 "  -o, --output type=local,dest=DIR  also unpack the image's filesystem into "
                 "DIR\n" KILN_CLI_REGISTRY_HELP);
}

/* Parses "type=T,dest=D" into malloc'ed parts. */
static int parse_output(const char *spec, char **type, char **dest)
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
        } else {
            return -1;
        }
    }
    return *type != NULL && *dest != NULL ? 0 : -1;
}

/* Unpacks the layers of a pulled image, in order, into a fresh directory next
 * to dest, then renames it into place (dest must not exist or be empty). */
static int unpack_to(kiln_store_t *s, const kiln_registry_image_t *img, const char *dest,
                     kiln_error_t *err)
{
    _cleanup_free_ char *parent = kiln_xstrdup(dest);
    _cleanup_free_ char *tmp = NULL;
    char *slash = strrchr(parent, '/');
    kiln_unpack_opts_t uo;
    struct stat st;

    if (slash == parent)
        parent[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else {
        free(parent);
        parent = kiln_xstrdup(".");
    }
    if (stat(dest, &st) == 0 && (!S_ISDIR(st.st_mode) || rmdir(dest) < 0))
        return kiln_error_set(err, EEXIST, "%s exists and is not an empty directory", dest);
    if (kiln_fs_mkdir_p(parent, 0755, err) < 0)
        return -1;
    if (kiln_fs_mkdtemp(parent, ".kiln-unpack-", &tmp, err) < 0)
        return -1;
    chmod(tmp, 0755);
    kiln_unpack_opts_init(&uo);
    for (size_t i = 0; i < img->parsed->n_layers; i++) {
        _cleanup_close_ int fd = -1;
        char ds[KILN_DIGEST_STR_MAX];
        uo.expect_digest = &img->parsed->layers[i].digest;
        if (kiln_store_open_blob(s, &img->parsed->layers[i].digest, &fd, NULL, err) < 0 ||
            kiln_layer_unpack(fd, tmp, &uo, NULL, err) < 0) {
            kiln_error_prefix(err, "unpacking layer %zu (%s)", i,
                              kiln_digest_str(&img->parsed->layers[i].digest, ds));
            kiln_fs_rm_rf(tmp, NULL);
            return -1;
        }
    }
    if (rename(tmp, dest) < 0) {
        kiln_error_set(err, errno, "rename %s to %s", tmp, dest);
        kiln_fs_rm_rf(tmp, NULL);
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
    _cleanup_free_ char *otype = NULL;
    _cleanup_free_ char *odest = NULL;
    char ds[KILN_DIGEST_STR_MAX];
    int c, rc = KILN_EXIT_FAIL;

    kiln_cli_registry_init(&cr);
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        int k = kiln_cli_registry_opt(&cr, "pull", c, optarg);
        if (k < 0)
            goto usage_fail;
        if (k > 0)
            continue;
        if (c == 'h') {
            usage(stdout);
            kiln_cli_registry_free(&cr);
            return KILN_EXIT_OK;
        }
        if (c == 'o') {
            if (parse_output(optarg, &otype, &odest) < 0 ||
                (strcmp(otype, "oci") != 0 && strcmp(otype, "local") != 0)) {
                kiln_cli_usage_error("pull", "--output wants type=oci|local,dest=PATH");
                goto usage_fail;
            }
            continue;
        }
        goto usage_fail;
    }
    if (optind != argc - 1) {
        kiln_cli_usage_error("pull", "expected exactly one image reference");
        goto usage_fail;
    }
    if (kiln_cli_registry_client(&cr, &r, &err) < 0 || kiln_cli_registry_store(&cr, &s, &err) < 0)
        goto fail;
    kiln_cli_registry_pull_opts(&cr, &po);
    if (kiln_registry_pull(r, s, argv[optind], &po, &img, &err) < 0)
        goto fail;
    if (otype != NULL && strcmp(otype, "oci") == 0) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ char *tag = NULL;
        _cleanup_free_ char *name = NULL;
        kiln_reference_t ref = {0};
        if (kiln_layout_parse_ref(odest, &dir, &tag, &err) < 0)
            goto fail;
        kiln_reference_parse(argv[optind], &ref, NULL);
        name = kiln_xasprintf("%s/%s:%s", ref.registry, ref.repository,
                              tag       ? tag
                              : ref.tag ? ref.tag
                                        : "latest");
        kiln_reference_free(&ref);
        /* a layout gets the selected platform's manifest: that is what was fetched */
        if (kiln_layout_write(s, dir, 0, &img.manifest, name, &err) < 0)
            goto fail;
    } else if (otype != NULL && unpack_to(s, &img, odest, &err) < 0) {
        goto fail;
    }
    printf("%s\n", kiln_digest_str(&img.top.digest, ds));
    rc = KILN_EXIT_OK;
    goto out;
usage_fail:
    kiln_cli_registry_free(&cr);
    return KILN_EXIT_USAGE;
fail:
    rc = kiln_cli_fail(&err);
out:
    kiln_registry_image_clear(&img);
    kiln_store_close(s);
    kiln_registry_free(r);
    kiln_cli_registry_free(&cr);
    return rc;
}
