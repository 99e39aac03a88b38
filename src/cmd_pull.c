/* kiln pull — fetch an image from a registry into the store, and optionally
 * write it out as an OCI layout or unpack its filesystem. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/imagestore.h"
#include "oci/layout.h"
#include "oci/registry.h"
#include "oci/unpack.h"
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

/* Unpacking while pulling: a thread applies layer i as soon as it is in the
 * store (layers are applied in order; later ones keep downloading meanwhile). */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kiln_store_t *s;
    const char *rootfs;
    kiln_digest_t *layers;
    int *ready;
    size_t n;
    int have_manifest;
    int aborted;
    int failed;
    kiln_error_t err;
} unpack_pipe_t;

static void pipe_on_manifest(void *ud, const kiln_manifest_t *m)
{
    unpack_pipe_t *p = ud;
    pthread_mutex_lock(&p->lock);
    p->layers = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->layers));
    p->ready = kiln_xzalloc((m->n_layers + 1) * sizeof(*p->ready));
    for (size_t i = 0; i < m->n_layers; i++)
        p->layers[i] = m->layers[i].digest;
    p->n = m->n_layers;
    p->have_manifest = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void pipe_on_blob(void *ud, const kiln_digest_t *d)
{
    unpack_pipe_t *p = ud;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++)
        if (kiln_digest_equal(&p->layers[i], d))
            p->ready[i] = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void *pipe_worker(void *arg)
{
    unpack_pipe_t *p = arg;
    kiln_unpack_opts_t uo;
    size_t i = 0;

    kiln_unpack_opts_init(&uo);
    for (;;) {
        _cleanup_close_ int fd = -1;
        char ds[KILN_DIGEST_STR_MAX];
        kiln_digest_t d;
        pthread_mutex_lock(&p->lock);
        while (!p->aborted && (!p->have_manifest || (i < p->n && !p->ready[i])))
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->aborted || i >= p->n) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        d = p->layers[i];
        pthread_mutex_unlock(&p->lock);
        uo.expect_digest = &d;
        if (kiln_store_open_blob(p->s, &d, &fd, NULL, &p->err) < 0 ||
            kiln_layer_unpack(fd, p->rootfs, &uo, NULL, &p->err) < 0) {
            kiln_error_prefix(&p->err, "unpacking layer %zu (%s)", i, kiln_digest_str(&d, ds));
            p->failed = 1;
            return NULL;
        }
        i++;
    }
}

/* Pulls ref and unpacks its layers into a fresh directory next to dest,
 * renamed into place at the end (dest must not exist or be an empty
 * directory); on failure nothing is left at dest. */
static int pull_unpacked(kiln_registry_t *r, kiln_store_t *s, const char *ref,
                         kiln_registry_pull_opts_t *po, kiln_registry_image_t *img,
                         const char *dest, kiln_error_t *err)
{
    _cleanup_free_ char *parent = kiln_xstrdup(dest);
    _cleanup_free_ char *tmp = NULL;
    char *slash = strrchr(parent, '/');
    unpack_pipe_t p = {.s = s};
    pthread_t th;
    struct stat st;
    int rc;

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
    if (kiln_fs_mkdir_p(parent, 0755, err) < 0 ||
        kiln_fs_mkdtemp(parent, ".kiln-unpack-", &tmp, err) < 0)
        return -1;
    chmod(tmp, 0755);
    p.rootfs = tmp;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    po->on_manifest = pipe_on_manifest;
    po->on_blob = pipe_on_blob;
    po->hook_ud = &p;
    if (pthread_create(&th, NULL, pipe_worker, &p) != 0) {
        kiln_fs_rm_rf(tmp, NULL);
        return kiln_error_set(err, EAGAIN, "starting the unpack thread");
    }
    rc = kiln_registry_pull(r, s, ref, po, img, err);
    pthread_mutex_lock(&p.lock);
    if (rc < 0)
        p.aborted = 1;
    else /* everything is in the store now, whatever the hooks saw */
        for (size_t i = 0; i < p.n; i++)
            p.ready[i] = 1;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.lock);
    pthread_join(th, NULL);
    if (rc == 0 && p.failed) {
        if (err != NULL)
            *err = p.err;
        rc = -1;
    }
    if (rc == 0 && rename(tmp, dest) < 0)
        rc = kiln_error_set(err, errno, "rename %s to %s", tmp, dest);
    if (rc < 0)
        kiln_fs_rm_rf(tmp, NULL);
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    free(p.layers);
    free(p.ready);
    return rc;
}

/* -o/--output for kiln_cli_registry_getopt; ud holds the type and dest slots. */
static int output_opt(int c, const char *arg, void *ud)
{
    char ***out = ud;
    if (c != 'o')
        return -1;
    if (parse_output(arg, out[0], out[1]) < 0 ||
        (strcmp(*out[0], "oci") != 0 && strcmp(*out[0], "local") != 0)) {
        kiln_cli_usage_error("pull", "--output wants type=oci|local,dest=PATH");
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
    {
        char **out[2] = {&otype, &odest};
        c = kiln_cli_registry_getopt(&cr, "pull", argc, argv, "o:h", opts, usage, output_opt, out);
        if (c == 1) {
            kiln_cli_registry_free(&cr);
            return KILN_EXIT_OK;
        }
        if (c != 0)
            goto usage_fail;
    }
    if (optind != argc - 1) {
        kiln_cli_usage_error("pull", "expected exactly one image reference");
        goto usage_fail;
    }
    if (kiln_cli_registry_client(&cr, &r, &err) < 0 || kiln_cli_registry_store(&cr, &s, &err) < 0)
        goto fail;
    kiln_cli_registry_pull_opts(&cr, &po);
    if (otype != NULL && strcmp(otype, "local") == 0) {
        if (pull_unpacked(r, s, argv[optind], &po, &img, odest, &err) < 0)
            goto fail;
    } else if (kiln_registry_pull(r, s, argv[optind], &po, &img, &err) < 0) {
        goto fail;
    }
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
    }
    if (strchr(argv[optind], '@') == NULL &&
        kiln_imagestore_tag(s, (const char *const *)&argv[optind], 1, &img.manifest.digest, &err) <
            0) /* docker pull NAME: the platform's image is named NAME in kiln's store */
        goto fail;
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
