/* kiln — writing an additional image store (`kiln store add DIR IMAGE...`): an image of the
 * blob store copied in (blobs checked against their digests) and its layers unpacked bottom
 * up into one plain tree (each diff_id checked), in temp files and directories of DIR/tmp
 * renamed into place under DIR/lock (see oci/additional_store.h for the layout). */
#include "oci/additional_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/unpack.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

#define IMAGES_MAX (4u * 1024 * 1024)

/* Makes the store's fixed files and directories (what is there is kept). */
static int make_layout(const char *dir, kiln_error_t *err)
{
    const char *subs[] = {"blobs/sha256", "chains", "empty", "tmp"};
    _cleanup_free_ char *marker = kiln_xasprintf("%s/" KILN_ASTORE_MARKER, dir);

    if (kiln_fs_mkdir_p(dir, 0755, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        _cleanup_free_ char *p = kiln_xasprintf("%s/%s", dir, subs[i]);
        if (kiln_fs_mkdir_p(p, 0755, err) < 0)
            return -1;
    }
    if (access(marker, F_OK) == 0)
        return 0;
    return kiln_fs_write_file_atomic(marker, KILN_ASTORE_VERSION, strlen(KILN_ASTORE_VERSION), 0644,
                                     err);
}

/* Copies blob d of s into DIR/blobs/sha256 (temp file, digest checked, renamed in) unless a
 * file of its size is there. */
static int copy_blob(kiln_store_t *s, const char *dir, const kiln_digest_t *d, kiln_error_t *err)
{
    _cleanup_free_ char *dst = kiln_xasprintf("%s/blobs/sha256/%s", dir, d->hex);
    _cleanup_free_ char *tmp = kiln_xasprintf("%s/tmp/blob-%s-XXXXXX", dir, d->hex);
    _cleanup_close_ int in = -1, out = -1;
    uint64_t size = 0;
    kiln_sha256_t h;
    kiln_digest_t got;
    struct stat st;
    char buf[1 << 16];
    ssize_t n;

    if (kiln_store_open_blob(s, d, &in, &size, err) < 0)
        return -1;
    if (lstat(dst, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size)
        return 0;
    out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0)
        return kiln_error_set(err, errno, "create %s", tmp);
    if (kiln_sha256_init(&h, err) < 0)
        goto fail;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        kiln_sha256_update(&h, buf, (size_t)n);
        if (kiln_fs_write_all(out, buf, (size_t)n, err) < 0) {
            kiln_sha256_dispose(&h);
            goto fail;
        }
    }
    kiln_sha256_final(&h, &got);
    if (n < 0) {
        kiln_error_set(err, errno, "read blob sha256:%s", d->hex);
        goto fail;
    }
    if (!kiln_digest_equal(&got, d)) {
        kiln_error_set(err, EIO, "blob sha256:%s hashes to sha256:%s", d->hex, got.hex);
        goto fail;
    }
    if (fchmod(out, 0644) < 0 || rename(tmp, dst) < 0) {
        kiln_error_set(err, errno, "rename %s", dst);
        goto fail;
    }
    return 0;
fail:
    unlink(tmp);
    return -1;
}

/* The layers of manifest m with the diff_ids of config body cfg, bottom up. */
static int image_layers(const kiln_manifest_t *m, const char *cfg, size_t cfg_len,
                        kiln_astore_layer_t **out, kiln_error_t *err)
{
    json_t *c = NULL, *ids;
    kiln_astore_layer_t *v;

    if (kiln_image_parse_config(cfg, cfg_len, &c, err) < 0)
        return -1;
    ids = json_object_get(json_object_get(c, "rootfs"), "diff_ids");
    if (json_array_size(ids) != m->n_layers) {
        json_decref(c);
        return kiln_error_set(err, EINVAL, "the config lists %zu diff_ids for %zu layers",
                              json_array_size(ids), m->n_layers);
    }
    v = kiln_xzalloc((m->n_layers + 1) * sizeof(*v));
    for (size_t i = 0; i < m->n_layers; i++) {
        v[i].digest = m->layers[i].digest;
        if (kiln_digest_parse(json_string_value(json_array_get(ids, i)), &v[i].diff_id, err) < 0) {
            free(v);
            json_decref(c);
            return -1;
        }
    }
    json_decref(c);
    *out = v;
    return 0;
}

/* Unpacks the layers (bottom up, each diff_id checked) from the blobs of s into one tree,
 * renamed to DIR/chains/<id>, then writes its metadata. */
static int add_chain(const char *dir, kiln_store_t *s, const kiln_manifest_t *m,
                     const kiln_astore_layer_t *layers, const kiln_digest_t *id, kiln_error_t *err)
{
    _cleanup_free_ char *tmpdir = kiln_xasprintf("%s/tmp", dir);
    _cleanup_free_ char *tree = kiln_xasprintf("%s/chains/%s", dir, id->hex);
    _cleanup_free_ char *meta = kiln_xasprintf("%s/chains/%s.json", dir, id->hex);
    _cleanup_free_ char *tmp = NULL, *body = NULL;
    char ds[KILN_DIGEST_STR_MAX];
    json_t *j, *ls;
    size_t len;
    int r;

    if (kiln_fs_mkdtemp(tmpdir, "chain-", &tmp, err) < 0)
        return -1;
    if (chmod(tmp, 0755) < 0) {
        kiln_error_set(err, errno, "chmod %s", tmp);
        goto fail;
    }
    for (size_t i = 0; i < m->n_layers; i++) {
        _cleanup_close_ int fd = -1;
        kiln_unpack_opts_t o;
        if (kiln_store_open_blob(s, &layers[i].digest, &fd, NULL, err) < 0)
            goto fail;
        kiln_unpack_opts_init(&o);
        o.expect_diff_id = &layers[i].diff_id;
        o.allow_devices = 1; /* the operator's image, as a pull -o type=local */
        if (kiln_layer_unpack(fd, tmp, &o, NULL, err) < 0) {
            kiln_error_prefix(err, "layer %zu (%s)", i, kiln_digest_str(&layers[i].digest, ds));
            goto fail;
        }
    }
    /* a tree left by an add that stopped before its metadata was written is replaced */
    if (kiln_fs_rm_rf(tree, err) < 0)
        goto fail;
    {
        /* the tree on disk before its name (and later its metadata) says it is complete */
        _cleanup_close_ int tfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (tfd < 0 || syncfs(tfd) < 0) {
            kiln_error_set(err, errno, "sync %s", tmp);
            goto fail;
        }
    }
    if (rename(tmp, tree) < 0) {
        kiln_error_set(err, errno, "rename %s", tree);
        goto fail;
    }
    free(steal_pointer(&tmp));
    j = json_object();
    ls = json_array();
    json_object_set_new(j, "chain_id", json_string(kiln_digest_str(id, ds)));
    for (size_t i = 0; i < m->n_layers; i++) {
        json_t *l = json_object();
        json_object_set_new(l, "digest", json_string(kiln_digest_str(&layers[i].digest, ds)));
        json_object_set_new(l, "diff_id", json_string(kiln_digest_str(&layers[i].diff_id, ds)));
        json_object_set_new(l, "size", json_integer((json_int_t)m->layers[i].size));
        json_object_set_new(l, "media_type", json_string(m->layers[i].media_type));
        json_array_append_new(ls, l);
    }
    json_object_set_new(j, "layers", ls);
    r = kiln_json_dump_canonical(j, &body, &len, err);
    json_decref(j);
    if (r < 0 || kiln_fs_write_file_atomic(meta, body, len, 0644, err) < 0)
        return -1;
    return 0;
fail:
    if (tmp != NULL)
        kiln_fs_rm_rf(tmp, NULL);
    return -1;
}

/* Lists name -> manifest (chain) in DIR/images.json, replacing an entry of the same name. */
static int list_image(const char *dir, const char *name, const kiln_digest_t *md,
                      const kiln_digest_t *id, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_xasprintf("%s/images.json", dir);
    _cleanup_free_ char *data = NULL, *body = NULL;
    char ds[KILN_DIGEST_STR_MAX];
    json_t *j = NULL, *v, *keep, *e;
    size_t len, i;
    int r;

    if (kiln_fs_read_file(path, IMAGES_MAX, &data, &len, NULL) == 0)
        (void)kiln_json_loadb(data, len, IMAGES_MAX, path, &j, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_object();
    }
    v = json_object_get(j, "images");
    keep = json_array();
    json_array_foreach(v, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (json_is_object(e) && (n == NULL || strcmp(n, name) != 0))
            json_array_append(keep, e);
    }
    e = json_object();
    json_object_set_new(e, "name", json_string(name));
    json_object_set_new(e, "manifest", json_string(kiln_digest_str(md, ds)));
    json_object_set_new(e, "chain_id", json_string(kiln_digest_str(id, ds)));
    json_array_append_new(keep, e);
    json_object_set_new(j, "images", keep);
    r = kiln_json_dump_canonical(j, &body, &len, err);
    json_decref(j);
    if (r < 0)
        return -1;
    return kiln_fs_write_file_atomic(path, body, len, 0644, err);
}

int kiln_astore_add_image(const char *dir, kiln_store_t *s, const kiln_digest_t *md,
                          const char *name, unsigned flags, kiln_digest_t *chain, kiln_error_t *err)
{
    _cleanup_free_ char *mbody = NULL, *cbody = NULL, *lockp = NULL;
    _cleanup_close_ int lock = -1;
    kiln_astore_layer_t *layers = NULL;
    kiln_manifest_t *m = NULL;
    kiln_astore_t *a = NULL;
    kiln_digest_t id;
    char ds[KILN_DIGEST_STR_MAX];
    size_t mlen, clen;
    char *probe = NULL;
    int ret = -1, r;

    kiln_digest_str(md, ds);
    if (dir[0] != '/')
        return kiln_error_set(err, EINVAL, "additional store %s: must be an absolute path", dir);
    /* the store is checked as a build would check it before anything is added to it */
    if (make_layout(dir, err) < 0 || kiln_astore_open(dir, &a, err) < 0)
        return -1;
    lockp = kiln_xasprintf("%s/lock", kiln_astore_dir(a));
    lock = open(lockp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) < 0) {
        kiln_error_set(err, errno, "lock %s", lockp);
        goto out;
    }
    if (kiln_store_read_blob(s, md, KILN_IMAGE_MANIFEST_MAX, &mbody, &mlen, err) < 0 ||
        kiln_image_parse_manifest(mbody, mlen, &m, err) < 0 ||
        kiln_store_read_blob(s, &m->config.digest, KILN_IMAGE_CONFIG_MAX, &cbody, &clen, err) < 0 ||
        image_layers(m, cbody, clen, &layers, err) < 0)
        goto out;
    if (m->n_layers == 0) {
        kiln_error_set(err, EINVAL, "the image has no layers");
        goto out;
    }
    kiln_astore_chain_id(layers, m->n_layers, &id);
    if (copy_blob(s, kiln_astore_dir(a), &m->config.digest, err) < 0)
        goto out;
    for (size_t i = 0; i < m->n_layers && !(flags & KILN_ASTORE_NO_BLOBS); i++)
        if (copy_blob(s, kiln_astore_dir(a), &layers[i].digest, err) < 0)
            goto out;
    if (copy_blob(s, kiln_astore_dir(a), md, err) < 0)
        goto out;
    r = kiln_astore_chain(a, layers, m->n_layers, &probe, NULL);
    free(probe);
    if (r != 1 && add_chain(kiln_astore_dir(a), s, m, layers, &id, err) < 0)
        goto out;
    if (list_image(kiln_astore_dir(a), name ? name : ds, md, &id, err) < 0)
        goto out;
    if (chain != NULL)
        *chain = id;
    ret = 0;
out:
    free(layers);
    kiln_manifest_free(m);
    kiln_astore_free(a);
    if (ret < 0)
        kiln_error_prefix(err, "adding %s to additional store %s", name ? name : ds, dir);
    return ret;
}
