/* kiln store — additional (read-only) image stores (oci/additional_store.h): `kiln store add
 * DIR IMAGE...` pulls each image (a registry reference or oci:DIR[:TAG]) into the kiln root
 * and adds its blobs and unpacked layers to DIR; `kiln store ls DIR` lists what DIR holds
 * after checking it as a build would. Also the operator's list of stores from
 * $KILN_ADDITIONAL_STORES and `kiln --additional-store DIR`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/additional_store.h"
#include "oci/layout.h"
#include "src/cli_registry.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

#define ENV_NAME "KILN_ADDITIONAL_STORES"

int kiln_cli_additional_store_push(const char *dir)
{
    const char *old = getenv(ENV_NAME);
    _cleanup_free_ char *v = NULL;

    if (dir[0] != '/' || strchr(dir, ':') != NULL)
        return -1;
    v = old && *old ? kiln_xasprintf("%s:%s", old, dir) : kiln_xstrdup(dir);
    return setenv(ENV_NAME, v, 1);
}

int kiln_cli_additional_stores_env(const char **list, size_t *n, size_t max)
{
    const char *env = getenv(ENV_NAME);
    char *save = NULL, *copy;

    if (env == NULL || *env == '\0')
        return 0;
    copy = kiln_xstrdup(env); /* the list points into it for the life of the process */
    for (char *p = strtok_r(copy, ":", &save); p != NULL; p = strtok_r(NULL, ":", &save)) {
        if (p[0] != '/' || *n >= max)
            return -1;
        list[(*n)++] = p;
    }
    return 0;
}

int kiln_cli_store_open(const char *root, kiln_store_t **out, kiln_error_t *err)
{
    const char *list[KILN_ASTORE_MAX];
    size_t n = 0;

    if (kiln_store_open(root, out, err) < 0)
        return -1;
    if (kiln_cli_additional_stores_env(list, &n, KILN_ASTORE_MAX) < 0)
        fprintf(stderr, "kiln: WARNING: KILN_ADDITIONAL_STORES: each store must be an absolute "
                        "path (DIR[:DIR...]); the others are used\n");
    for (size_t i = 0; i < n; i++) {
        kiln_error_t aerr = {0};
        if (kiln_store_attach_additional(*out, list[i], &aerr) < 0)
            fprintf(stderr, "kiln: WARNING: %s; going on without it\n", aerr.msg);
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln store add [options] DIR IMAGE...\n"
            "       kiln store ls DIR\n\n"
            "An additional image store: a read-only directory of images already unpacked\n"
            "(containers/storage's additionalimagestores). A kiln root given it with\n"
            "`kiln --additional-store DIR`, `kiln build --additional-store DIR`,\n"
            "$KILN_ADDITIONAL_STORES (DIR[:DIR...]) or the server config's\n"
            "policy.additional_stores takes an image's blobs and its unpacked layers from it\n"
            "instead of downloading and unpacking them (FROM matched by digest and diff_ids).\n"
            "DIR and the directories above it must be owned by root or kiln's user and not\n"
            "writable by others.\n\n"
            "add: pulls each IMAGE (a registry reference or oci:DIR[:TAG]) into the kiln root\n"
            "     (--root) and adds its blobs and layers (unpacked into one tree, each\n"
            "     diff_id checked) to DIR, atomically; prints each image's chain id.\n"
            "ls:  checks DIR as a build does and lists its images.\n\n"
            "Options:\n"
            "  --no-blobs                           leave the layer blobs out (a store half\n"
            "                                       the size; builds download them in the\n"
            "                                       background for the image they write,\n"
            "                                       never unpack them)\n" KILN_CLI_REGISTRY_HELP);
}

/* The platform manifest of image into the store (pulled or imported): *md. */
static int fetch(kiln_cli_registry_t *cr, kiln_registry_t **r, kiln_store_t *s, const char *image,
                 kiln_digest_t *md, kiln_error_t *err)
{
    const char *rest = NULL;

    if (kiln_cli_location(image, &rest) == KILN_LOC_OCI) {
        _cleanup_free_ char *dir = NULL, *tag = NULL;
        kiln_layout_image_t *img = NULL;
        int ret;
        if (kiln_layout_parse_ref(image, &dir, &tag, err) < 0 ||
            kiln_layout_resolve(dir, tag, &img, err) < 0)
            return -1;
        ret = kiln_layout_import(s, img, err);
        if (ret == 0)
            *md = img->manifest_desc.digest;
        kiln_layout_image_free(img);
        return ret;
    }
    if (kiln_cli_location(image, &rest) != KILN_LOC_REGISTRY)
        return kiln_error_set(err, 0, "%s: a registry reference or oci:DIR[:TAG] is needed", image);
    {
        kiln_registry_pull_opts_t po;
        kiln_registry_image_t ri = {0};
        if (*r == NULL && kiln_cli_registry_client(cr, r, err) < 0)
            return -1;
        kiln_cli_registry_pull_opts(cr, &po);
        if (kiln_registry_pull(*r, s, rest, &po, &ri, err) < 0)
            return -1;
        *md = ri.manifest.digest;
        kiln_registry_image_clear(&ri);
    }
    return 0;
}

/* --no-blobs for kiln_cli_registry_getopt (ud: the add's flags). */
static int no_blobs_opt(int c, const char *arg, void *ud)
{
    (void)arg;
    if (c != 'B')
        return -1;
    *(unsigned *)ud |= KILN_ASTORE_NO_BLOBS;
    return 0;
}

static int store_add(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"no-blobs", no_argument, NULL, 'B'},
                                         KILN_CLI_REGISTRY_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    kiln_cli_registry_t cr;
    kiln_registry_t *r = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    unsigned flags = 0;
    const char *dir;
    int c, rc = KILN_EXIT_USAGE; /* until the operands are checked */

    kiln_cli_registry_init(&cr);
    c = kiln_cli_registry_getopt(&cr, "store add", argc, argv, "h", opts, usage, no_blobs_opt,
                                 &flags);
    if (c == 1)
        return kiln_cli_registry_end(&cr, NULL, NULL, KILN_EXIT_OK);
    if (c != 0)
        goto out;
    if (argc - optind < 2) {
        kiln_cli_usage_error("store add", "expected DIR and at least one IMAGE");
        goto out;
    }
    dir = argv[optind];
    if (dir[0] != '/') {
        kiln_cli_usage_error("store add", "%s: DIR must be an absolute path", dir);
        goto out;
    }
    rc = KILN_EXIT_FAIL;
    if (kiln_cli_registry_store(&cr, &s, &err) < 0)
        goto out;
    for (int i = optind + 1; i < argc; i++) {
        kiln_digest_t md, id;
        char ds[KILN_DIGEST_STR_MAX];
        if (fetch(&cr, &r, s, argv[i], &md, &err) < 0 ||
            kiln_astore_add_image(dir, s, &md, argv[i], flags, &id, &err) < 0)
            goto out;
        printf("%s %s\n", kiln_digest_str(&id, ds), argv[i]);
    }
    rc = KILN_EXIT_OK;
out:
    return kiln_cli_registry_finish(&cr, r, s, rc, &err);
}

static int store_ls(int argc, char **argv)
{
    kiln_astore_t *a = NULL;
    kiln_error_t err = {0};
    _cleanup_free_ char *path = NULL, *data = NULL;
    json_t *j = NULL, *e;
    size_t len, i;

    if (argc != 2 || argv[1][0] != '/')
        return kiln_cli_usage_error("store ls", "expected one absolute DIR");
    if (kiln_astore_open(argv[1], &a, &err) < 0)
        return kiln_cli_fail(&err);
    path = kiln_xasprintf("%s/images.json", kiln_astore_dir(a));
    kiln_astore_free(a);
    if (kiln_fs_read_file(path, 4u << 20, &data, &len, NULL) < 0)
        return KILN_EXIT_OK; /* nothing added yet */
    if (kiln_json_loadb(data, len, 4u << 20, path, &j, &err) < 0)
        return kiln_cli_fail(&err);
    json_array_foreach(json_object_get(j, "images"), i, e)
    {
        printf("%s %s %s\n", json_string_value(json_object_get(e, "chain_id")),
               json_string_value(json_object_get(e, "manifest")),
               json_string_value(json_object_get(e, "name")));
    }
    json_decref(j);
    return KILN_EXIT_OK;
}

int kiln_cmd_store(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "add") == 0)
        return store_add(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "ls") == 0)
        return store_ls(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return KILN_EXIT_OK;
    }
    usage(stderr);
    return KILN_EXIT_USAGE;
}
