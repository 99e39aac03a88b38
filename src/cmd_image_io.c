/* kiln save / load — images of kiln's store to and from a docker-archive (docker save's
 * tarball) or an OCI archive (oci/docker_archive, oci/layout), their names kept in the
 * image store (oci/imagestore). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci/docker_archive.h"
#include "oci/imagestore.h"
#include "oci/layout.h"
#include "oci/tarfile.h"
#include "src/cmd_image.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

/* The descriptor of a manifest in the store (its media type read from the document). */
static int manifest_desc(kiln_store_t *s, const kiln_digest_t *d, kiln_descriptor_t *out,
                         kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    _cleanup_json_ json_t *j = NULL;
    size_t len = 0;
    const char *mt;

    if (kiln_store_read_blob(s, d, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0 ||
        kiln_image_load_json(body, len, KILN_IMAGE_MANIFEST_MAX, "manifest", &j, err) < 0)
        return -1;
    if (kiln_image_doc_kind(j) != KILN_DOC_MANIFEST)
        return kiln_error_set(err, 0, "%s is not an image manifest", d->hex);
    mt = kiln_json_get_string(j, "mediaType");
    memset(out, 0, sizeof(*out));
    snprintf(out->media_type, sizeof(out->media_type), "%s", mt ? mt : KILN_MT_OCI_MANIFEST);
    out->digest = *d;
    out->size = len;
    return 0;
}

/* Writes the images names[] name to out: an OCI archive with an index.json entry per name, or
 * a docker-archive with a manifest.json entry per image listing its names (RepoTags). */
static int save_images(kiln_store_t *s, const char *const *names, size_t n, int oci,
                       const char *out, kiln_error_t *err)
{
    kiln_descriptor_t *tops = kiln_xzalloc(n * sizeof(*tops));
    char **full = kiln_xzalloc(n * sizeof(char *));   /* each name's full form, or NULL */
    char ***tags = kiln_xzalloc(n * sizeof(char **)); /* per image: its RepoTags */
    kiln_descriptor_t *imgs = kiln_xzalloc(n * sizeof(*imgs));
    size_t n_imgs = 0;
    int r = -1;

    for (size_t i = 0; i < n; i++) {
        kiln_digest_t d;
        size_t k;
        if (kiln_cli_image_resolve(s, names[i], &d, err) < 0 ||
            manifest_desc(s, &d, &tops[i], err) < 0)
            goto out;
        /* a digest names no tag */
        if (strncmp(names[i], "sha256:", 7) != 0 &&
            kiln_imagestore_normalize(names[i], &full[i], err) < 0)
            goto out;
        for (k = 0; k < n_imgs && !kiln_digest_equal(&imgs[k].digest, &d); k++)
            ;
        if (k == n_imgs) {
            kiln_descriptor_copy(&imgs[n_imgs], &tops[i]);
            tags[n_imgs] = kiln_xzalloc((n + 1) * sizeof(char *));
            n_imgs++;
        }
        if (full[i] != NULL) {
            _cleanup_free_ char *repo = NULL, *tag = NULL;
            size_t t = 0;
            while (tags[k][t] != NULL)
                t++;
            kiln_imagestore_familiar(full[i], &repo, &tag);
            tags[k][t] = kiln_xasprintf("%s:%s", repo, tag);
        }
    }
    r = oci ? kiln_layout_write_archive_multi(s, out, tops, (const char *const *)full, n, NULL,
                                              NULL, 0, err)
            : kiln_docker_archive_write_multi(s, out, imgs, (const char *const *const *)tags,
                                              n_imgs, err);
out:
    for (size_t i = 0; i < n; i++) {
        kiln_descriptor_clear(&tops[i]);
        kiln_descriptor_clear(&imgs[i]);
        free(full[i]);
        for (size_t t = 0; tags[i] != NULL && tags[i][t] != NULL; t++)
            free(tags[i][t]);
        free(tags[i]);
    }
    free(tops), free(full), free(tags), free(imgs);
    return r;
}

/* Copies the file at path to stdout. */
static int copy_to_stdout(const char *path, kiln_error_t *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[65536];
    ssize_t n;

    if (fd < 0)
        return kiln_error_set(err, errno, "opening %s", path);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_set(err, errno, "reading %s", path);
        if (kiln_fs_write_all(STDOUT_FILENO, buf, (size_t)n, err) < 0)
            return kiln_error_prefix(err, "writing the archive to stdout");
    }
    return 0;
}

static void save_usage(FILE *out)
{
    fprintf(out, "Usage: kiln save [OPTIONS] [-o FILE] NAME[:TAG]...\n\n"
                 "Writes the images of kiln's store NAME names to FILE (several images share\n"
                 "their common layers), named as given.\n\n"
                 "  -o, --output FILE     the archive (written whole, then renamed into place;\n"
                 "                        default: stdout when it is not a terminal)\n"
                 "      --format FORMAT   docker (default: docker load's tarball, also an OCI\n"
                 "                        archive) or oci (an OCI image layout archive)\n"
                 "      --root DIR        kiln root (default: kiln's store)\n");
}

int kiln_cmd_save(int argc, char **argv)
{
    static const char *const formats[] = {"docker", "oci", NULL};
    kiln_cli_image_opts_t o = {.cmd = "save",
                               .usage = save_usage,
                               .value = "output",
                               .formats = formats,
                               .format = "docker"};
    _cleanup_free_ char *store_tmp = NULL, *tmpdir = NULL, *tmp_out = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    const char *out;
    int rc = kiln_cli_image_getopt(&o, argc, argv);

    if (rc >= 0)
        return rc;
    out = o.value_arg;
    if (out == NULL && isatty(STDOUT_FILENO))
        return kiln_cli_usage_error("save", "-o FILE is needed (or stdout redirected to a file)");
    if (optind >= argc)
        return kiln_cli_usage_error("save", "expected at least one image NAME");
    if (kiln_cli_image_store_open(o.root, &s, &err) < 0)
        return kiln_cli_fail(&err);
    /* docker save > FILE: written whole in the store's tmp/, then copied to stdout */
    store_tmp = kiln_xasprintf("%s/tmp", kiln_store_root(s));
    if (out == NULL && kiln_fs_mkdtemp(store_tmp, "save-", &tmpdir, &err) < 0) {
        kiln_store_close(s);
        return kiln_cli_fail(&err);
    }
    if (tmpdir != NULL)
        out = tmp_out = kiln_xasprintf("%s/image.tar", tmpdir);
    rc = save_images(s, (const char *const *)argv + optind, (size_t)(argc - optind),
                     strcmp(o.format, "oci") == 0, out, &err) < 0 ||
                 (tmp_out != NULL && copy_to_stdout(tmp_out, &err) < 0)
             ? kiln_cli_fail(&err)
             : KILN_EXIT_OK;
    if (tmpdir != NULL)
        kiln_fs_rm_rf(tmpdir, NULL);
    kiln_store_close(s);
    return rc;
}

/* 1 when the tar at path has a top-level manifest.json (a docker-archive), 0 when not. */
static int is_docker_archive(const char *path, kiln_error_t *err)
{
    struct archive *a = NULL;
    struct archive_entry *e;
    int r, found = 0;

    if (kiln_tarfile_open(path, &a, err) < 0)
        return -1;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK)
        if (strcmp(kiln_tarfile_name(e), "manifest.json") == 0) {
            found = 1;
            break;
        }
    if (r != ARCHIVE_OK && r != ARCHIVE_EOF)
        kiln_error_set(err, 0, "%s: %s", path, archive_error_string(a));
    archive_read_free(a);
    return r != ARCHIVE_OK && r != ARCHIVE_EOF ? -1 : found;
}

/* Names a loaded image with each of names (NULL-free list of n), printing what docker load
 * prints; an image without names is printed by its digest. */
static int name_loaded(kiln_store_t *s, const kiln_digest_t *d, const char *const *names, size_t n,
                       kiln_error_t *err)
{
    char ds[KILN_DIGEST_STR_MAX];

    kiln_digest_str(d, ds);
    if (n == 0) {
        printf("Loaded image: %s\n", ds);
        return 0;
    }
    if (kiln_imagestore_tag(s, names, n, d, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        printf("Loaded image: %s (%s)\n", names[i], ds);
    return 0;
}

static int load_docker(kiln_store_t *s, const char *path, kiln_error_t *err)
{
    size_t count = 0;

    if (kiln_docker_archive_count(path, &count, err) < 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        kiln_docker_archive_image_t *img = NULL;
        const char *names[256];
        size_t n = 0;
        int r;
        if (kiln_docker_archive_read(path, i, s, &img, err) < 0)
            return -1;
        for (size_t k = 0; k < json_array_size(img->repo_tags) && n < 256; k++) {
            const char *t = json_string_value(json_array_get(img->repo_tags, k));
            size_t tl = t ? strlen(t) : 0;
            /* a name with control or non-ASCII bytes is never echoed back (it could forge
             * lines of a log): refused by its position */
            for (size_t c = 0; c < tl && t != NULL; c++)
                if ((unsigned char)t[c] < 0x21 || (unsigned char)t[c] > 0x7e)
                    t = NULL;
            if (t == NULL) {
                kiln_docker_archive_image_free(img);
                return kiln_error_set(
                    err, 0,
                    "docker-archive %s: RepoTags[%zu] is not an image name (a string of "
                    "printable ASCII)",
                    path, k);
            }
            names[n++] = t;
        }
        r = name_loaded(s, &img->manifest_desc.digest, names, n, err);
        kiln_docker_archive_image_free(img);
        if (r < 0)
            return kiln_error_prefix(err, "docker-archive %s", path);
    }
    return 0;
}

/* One image of an OCI archive (tag: its entry's name, NULL for the only one) into the store,
 * named by its full name when the entry has one. */
static int load_oci_one(kiln_store_t *s, const char *path, const char *tag, kiln_error_t *err)
{
    kiln_layout_image_t *img = NULL;
    const char *name;
    int r;

    if (kiln_layout_resolve(path, tag, &img, err) < 0)
        return -1;
    /* the full name is containerd's annotation; a ref.name alone is only a tag */
    name = img->full_name;
    if (name == NULL && img->name != NULL && strchr(img->name, '/') != NULL)
        name = img->name;
    r = kiln_layout_import(s, img, err);
    if (r == 0)
        r = name_loaded(s, &img->manifest_desc.digest, name ? &name : NULL, name ? 1 : 0, err);
    kiln_layout_image_free(img);
    return r;
}

static int load_oci(kiln_store_t *s, const char *path, kiln_error_t *err)
{
    char **names = NULL;
    size_t n = 0;
    int r = 0;

    if (kiln_layout_list(path, &names, &n, err) < 0)
        return -1;
    if (n <= 1)
        r = load_oci_one(s, path, NULL, err);
    for (size_t i = 0; n > 1 && i < n && r == 0; i++) {
        if (names[i] == NULL)
            r = kiln_error_set(err, 0, "OCI archive %s: entry %zu of index.json has no name", path,
                               i);
        else
            r = load_oci_one(s, path, names[i], err);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return r;
}

/* Copies stdin into a new file under the store's tmp/ (which prune clears only while no
 * one holds the store); its path in *path. */
static int stdin_to_file(kiln_store_t *s, char **path, kiln_error_t *err)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/tmp/load-XXXXXX", kiln_store_root(s));
    _cleanup_close_ int fd = mkostemp(p, O_CLOEXEC);
    char buf[65536];
    ssize_t n;

    if (fd < 0)
        return kiln_error_set(err, errno, "creating %s", p);
    while ((n = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || kiln_fs_write_all(fd, buf, (size_t)n, err) < 0) {
            if (n < 0)
                kiln_error_set(err, errno, "reading the archive from stdin");
            unlink(p);
            return -1;
        }
    }
    *path = steal_pointer(&p);
    return 0;
}

static void load_usage(FILE *out)
{
    fprintf(out, "Usage: kiln load [OPTIONS] [-i FILE]\n\n"
                 "Reads the images of a docker-archive (docker save) or an OCI archive into\n"
                 "kiln's store, named as the archive names them.\n\n"
                 "  -i, --input FILE   the archive (default: stdin)\n"
                 "      --root DIR     kiln root (default: kiln's store)\n");
}

int kiln_cmd_load(int argc, char **argv)
{
    kiln_cli_image_opts_t o = {.cmd = "load", .usage = load_usage, .value = "input"};
    _cleanup_free_ char *tmp = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    const char *in;
    int docker, rc = kiln_cli_image_getopt(&o, argc, argv);

    if (rc >= 0)
        return rc;
    in = o.value_arg;
    if (optind != argc)
        return kiln_cli_usage_error("load", "expected -i FILE (or the archive on stdin) only");
    if (kiln_cli_image_store_open(o.root, &s, &err) < 0)
        return kiln_cli_fail(&err);
    /* docker load < FILE: stdin is kept in a temp file of the store (read in several passes) */
    if ((in == NULL || strcmp(in, "-") == 0) && stdin_to_file(s, &tmp, &err) < 0) {
        kiln_store_close(s);
        return kiln_cli_fail(&err);
    }
    if (tmp != NULL)
        in = tmp;
    docker = is_docker_archive(in, &err);
    rc = docker < 0 || (docker ? load_docker(s, in, &err) : load_oci(s, in, &err)) < 0
             ? kiln_cli_fail(&err)
             : KILN_EXIT_OK;
    if (tmp != NULL)
        unlink(tmp);
    kiln_store_close(s);
    return rc;
}
