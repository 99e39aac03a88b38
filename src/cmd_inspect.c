/* kiln inspect — print an image's manifest and config as JSON. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/docker_archive.h"
#include "oci/image.h"
#include "oci/imagestore.h"
#include "oci/layout.h"
#include "oci/store.h"
#include "src/cli_output.h"
#include "src/cli_registry.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln inspect [--root DIR] IMAGE\n"
            "\n"
            "Prints {\"reference\", \"digest\", \"mediaType\", \"manifest\", \"config\"} as JSON\n"
            "(digest and mediaType are the manifest's). IMAGE is one of:\n"
            "  oci:DIR[:TAG]            an OCI image layout (TAG: its ref.name; may be\n"
            "                           omitted when the layout holds one image)\n"
            "  oci-archive:FILE[:TAG]   an OCI archive (oci:FILE works too)\n"
            "  docker-archive:FILE[:N]  a `docker save` tarball (image N, default 0);\n"
            "                           adds \"repoTags\"\n"
            "  store:NAME               a ref in kiln's blob store (see --root)\n"
            "  [docker://]REF           a registry image (see the registry options of\n"
            "                           `kiln pull -h`; --raw prints the manifest as served)\n"
            "\n"
            "Options:\n"
            "  --root DIR   blob store root (default /var/lib/kiln as root,\n"
            "               $XDG_DATA_HOME/kiln or ~/.local/share/kiln otherwise)\n"
            "  -h, --help   this help\n");
}

/* Prints the result object to stdout. */
static int print_json(json_t *j)
{
    if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
        return KILN_EXIT_FAIL;
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? KILN_EXIT_OK : KILN_EXIT_FAIL;
}

static json_t *result(const char *ref, const kiln_descriptor_t *md, json_t *manifest,
                      json_t *config)
{
    char ds[KILN_DIGEST_STR_MAX];
    json_t *j = json_object();

    json_object_set_new(j, "reference", json_string(ref));
    json_object_set_new(j, "digest", json_string(kiln_digest_str(&md->digest, ds)));
    json_object_set_new(j, "mediaType", json_string(md->media_type));
    json_object_set(j, "manifest", manifest);
    json_object_set(j, "config", config);
    return j;
}

static int inspect_layout(const char *ref, kiln_error_t *err)
{
    _cleanup_free_ char *dir = NULL;
    _cleanup_free_ char *tag = NULL;
    kiln_layout_image_t *img = NULL;
    _cleanup_json_ json_t *j = NULL;

    if (kiln_layout_parse_ref(ref, &dir, &tag, err) < 0 ||
        kiln_layout_resolve(dir, tag, &img, err) < 0)
        return kiln_cli_fail(err);
    j = result(ref, &img->manifest_desc, img->manifest->json, img->config);
    kiln_layout_image_free(img);
    return print_json(j);
}

static int inspect_docker_archive(const char *ref, kiln_error_t *err)
{
    _cleanup_free_ char *file = strdup(ref + strlen("docker-archive:"));
    kiln_docker_archive_image_t *img = NULL;
    _cleanup_json_ json_t *j = NULL;
    size_t index = 0;
    char *colon = file ? strrchr(file, ':') : NULL;

    if (file == NULL)
        return KILN_EXIT_FAIL;
    if (colon != NULL && colon[1] != '\0' && strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
        strlen(colon + 1) < 6) {
        index = strtoul(colon + 1, NULL, 10);
        *colon = '\0';
    }
    if (kiln_docker_archive_read(file, index, NULL, &img, err) < 0)
        return kiln_cli_fail(err);
    j = result(ref, &img->manifest_desc, img->manifest, img->config);
    json_object_set(j, "repoTags", img->repo_tags);
    kiln_docker_archive_image_free(img);
    return print_json(j);
}

/* Reads the blob d; when it is an index (a multi-platform image), follows it
 * to its linux/amd64 (or only) manifest, updating d. */
static int read_store_manifest(kiln_store_t *s, kiln_digest_t *d, char **data, size_t *len,
                               kiln_error_t *err)
{
    for (int depth = 0; depth < 3; depth++) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_json_ json_t *doc = NULL;
        kiln_index_t *ix = NULL;
        size_t n;
        int k;

        if (kiln_store_read_blob(s, d, KILN_IMAGE_MANIFEST_MAX, &buf, &n, err) < 0 ||
            kiln_json_loadb(buf, n, KILN_IMAGE_MANIFEST_MAX, "manifest", &doc, err) < 0)
            return -1;
        if (kiln_image_doc_kind(doc) != KILN_DOC_INDEX) {
            *data = steal_pointer(&buf);
            *len = n;
            return 0;
        }
        if (kiln_image_parse_index(buf, n, &ix, err) < 0)
            return -1;
        k = ix->n_manifests == 1 ? 0 : kiln_image_index_select(ix, "linux", "amd64", NULL, err);
        if (k >= 0)
            *d = ix->manifests[k].digest;
        kiln_index_free(ix);
        if (k < 0)
            return -1;
    }
    return kiln_error_set(err, 0, "indexes nested too deeply");
}

static int inspect_store(const char *ref, const char *opt_root, kiln_error_t *err)
{
    _cleanup_free_ char *root = NULL;
    _cleanup_free_ char *data = NULL;
    _cleanup_free_ char *cdata = NULL;
    _cleanup_json_ json_t *config = NULL;
    _cleanup_json_ json_t *j = NULL;
    kiln_store_t *s = NULL;
    kiln_manifest_t *m = NULL;
    kiln_descriptor_t md = {0};
    size_t len = 0, clen = 0;
    int r;

    if (kiln_cli_store_root(opt_root, &root, err) < 0 || kiln_cli_store_open(root, &s, err) < 0)
        return kiln_cli_fail(err);
    r = kiln_store_ref_get(s, ref + strlen("store:"), &md.digest, err);
    if (r == 0) {
        /* a name of the image store (kiln images) */
        kiln_imagestore_entry_t e = {0};
        if (kiln_imagestore_lookup(s, ref + strlen("store:"), &e, NULL) == 1) {
            md.digest = e.digest;
            r = 1;
        }
        kiln_imagestore_entry_clear(&e);
    }
    if (r == 0)
        kiln_error_set(err, ENOENT, "no ref '%s' in store %s", ref + strlen("store:"), root);
    if (r <= 0 || read_store_manifest(s, &md.digest, &data, &len, err) < 0 ||
        kiln_image_parse_manifest(data, len, &m, err) < 0 ||
        kiln_store_read_blob(s, &m->config.digest, KILN_IMAGE_CONFIG_MAX, &cdata, &clen, err) < 0 ||
        kiln_image_parse_config(cdata, clen, &config, err) < 0) {
        kiln_manifest_free(m);
        kiln_store_close(s);
        return kiln_cli_fail(err);
    }
    kiln_store_close(s);
    md.size = len;
    snprintf(md.media_type, sizeof(md.media_type), "%s", m->media_type);
    j = result(ref, &md, m->json, config);
    kiln_manifest_free(m);
    return print_json(j);
}

/* Hidden: validates FILE as MEDIATYPE (for the schema conformance tests). */
static int validate_json(const char *media_type, const char *file, kiln_error_t *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len;

    if (kiln_fs_read_file(file, KILN_IMAGE_CONFIG_MAX, &data, &len, err) < 0 ||
        kiln_image_validate(media_type, data, len, err) < 0)
        return kiln_cli_fail(err);
    return KILN_EXIT_OK;
}

int kiln_cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"root", required_argument, NULL, 'r'},
                                         {"validate-json", required_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *root = NULL, *validate = NULL, *ref;
    kiln_error_t err = {0};
    int c;

    /* registry references (docker://REF or a bare REF) are inspected remotely;
     * --validate-json takes a file path, never a reference */
    for (c = 1; c < argc && strncmp(argv[c], "--validate-json", 15) != 0; c++)
        ;
    if (argc >= 2 && c == argc && strncmp(argv[argc - 1], "oci-archive:", 12) != 0 &&
        kiln_cli_inspect_is_remote(argv[argc - 1]))
        return kiln_cli_inspect_remote_main(argc, argv);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            root = optarg;
            break;
        case 'V':
            validate = optarg;
            break;
        case 'h':
            usage(stdout);
            return KILN_EXIT_OK;
        default:
            return kiln_cli_usage_error("inspect", "unknown option");
        }
    }
    if (optind != argc - 1)
        return kiln_cli_usage_error("inspect", "expected exactly one IMAGE");
    ref = argv[optind];
    if (validate != NULL)
        return validate_json(validate, ref, &err);
    if (strncmp(ref, "oci:", 4) == 0 || strncmp(ref, "oci-archive:", 12) == 0)
        return inspect_layout(ref, &err);
    if (strncmp(ref, "docker-archive:", 15) == 0)
        return inspect_docker_archive(ref, &err);
    if (strncmp(ref, "store:", 6) == 0)
        return inspect_store(ref, root, &err);
    return kiln_cli_usage_error(
        "inspect", "'%s': expected oci:DIR[:TAG], docker-archive:FILE or store:NAME", ref);
}
