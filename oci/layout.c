/* kiln — OCI image layouts written (see layout.h): an image's blobs collected from the store
 * (index -> manifests -> config and layers), then a directory layout (blobs first, index.json
 * merged, oci-layout last; a new layout that fails part way removed) or an archive (a temp file
 * renamed into place). Reading a layout is layout_read.c. */
#include "oci/layout.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/store_lazy.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

#define LAYOUT_HEADER "{\"imageLayoutVersion\":\"1.0.0\"}"
#define MAX_BLOBS 100000

char *kiln_layout_tag_of(const char *name)
{
    const char *slash, *colon;

    if (name == NULL || strchr(name, '@') != NULL)
        return NULL;
    slash = strrchr(name, '/');
    colon = strrchr(slash ? slash : name, ':');
    return kiln_xstrdup(colon ? colon + 1 : "latest");
}

/* --- collecting the blobs of an image ------------------------------------- */

typedef struct blob_list {
    kiln_digest_t *d;
    uint64_t *size;
    size_t n, cap;
} blob_list_t;

static void blobs_free(blob_list_t *l)
{
    free(l->d);
    free(l->size);
}

/* Appends a blob unless already listed. */
static int blobs_add(blob_list_t *l, const kiln_digest_t *d, uint64_t size, kiln_error_t *err)
{
    for (size_t i = 0; i < l->n; i++)
        if (kiln_digest_equal(&l->d[i], d))
            return 0;
    if (l->n >= MAX_BLOBS)
        return kiln_error_set(err, E2BIG, "image has more than %d blobs", MAX_BLOBS);
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->d = kiln_xrealloc(l->d, l->cap * sizeof(*l->d));
        l->size = kiln_xrealloc(l->size, l->cap * sizeof(*l->size));
    }
    l->d[l->n] = *d;
    l->size[l->n] = size;
    l->n++;
    return 0;
}

/* Lists d and, when it is a manifest or index, everything it references
 * (depth-limited: index → manifests → config + layers). */
static int collect_blobs(kiln_store_t *s, const kiln_digest_t *d, uint64_t size, int depth,
                         blob_list_t *l, kiln_error_t *err)
{
    _cleanup_free_ char *data = NULL;
    _cleanup_json_ json_t *doc = NULL;
    size_t len, i;
    char ds[KILN_DIGEST_STR_MAX];

    if (blobs_add(l, d, size, err) < 0)
        return -1;
    if (kiln_store_read_blob(s, d, KILN_IMAGE_MANIFEST_MAX, &data, &len, err) < 0 ||
        kiln_json_loadb(data, len, KILN_IMAGE_MANIFEST_MAX, kiln_digest_str(d, ds), &doc, err) < 0)
        return -1;
    switch (kiln_image_doc_kind(doc)) {
    case KILN_DOC_MANIFEST: {
        kiln_manifest_t *m = NULL;
        if (kiln_image_parse_manifest(data, len, &m, err) < 0)
            return kiln_error_prefix(err, "%s", kiln_digest_str(d, ds));
        int r = blobs_add(l, &m->config.digest, m->config.size, err);
        for (i = 0; r == 0 && i < m->n_layers; i++)
            r = blobs_add(l, &m->layers[i].digest, m->layers[i].size, err);
        kiln_manifest_free(m);
        return r;
    }
    case KILN_DOC_INDEX: {
        kiln_index_t *ix = NULL;
        int r = 0;
        if (depth > 2)
            return kiln_error_set(err, ELOOP, "%s: indexes nested too deeply",
                                  kiln_digest_str(d, ds));
        if (kiln_image_parse_index(data, len, &ix, err) < 0)
            return kiln_error_prefix(err, "%s", kiln_digest_str(d, ds));
        for (i = 0; r == 0 && i < ix->n_manifests; i++)
            r = collect_blobs(s, &ix->manifests[i].digest, ix->manifests[i].size, depth + 1, l,
                              err);
        kiln_index_free(ix);
        return r;
    }
    default:
        return kiln_error_set(err, 0, "%s is neither an image manifest nor an index",
                              kiln_digest_str(d, ds));
    }
}

/* The index.json descriptor of the image: top + name annotations. */
static json_t *top_descriptor(const kiln_descriptor_t *top, const char *name, const char *tag)
{
    json_t *j = kiln_descriptor_to_json(top);
    json_t *ann = json_object_get(j, "annotations");

    if (name == NULL)
        return j;
    if (ann == NULL) {
        ann = json_object();
        json_object_set_new(j, "annotations", ann);
    }
    json_object_set_new(ann, KILN_ANNOT_CONTAINERD_NAME, json_string(name));
    if (tag != NULL)
        json_object_set_new(ann, KILN_ANNOT_REF_NAME, json_string(tag));
    return j;
}

/* --- directory layout --------------------------------------------------------- */

/* Copies blob d from the store to dst_dir/<hex> via a temp file, verifying. */
static int copy_blob(kiln_store_t *s, const kiln_digest_t *d, const char *dst_dir,
                     kiln_error_t *err)
{
    _cleanup_close_ int in = -1;
    _cleanup_close_ int out = -1;
    _cleanup_free_ char *tmp = kiln_xasprintf("%s/.tmp-%s-XXXXXX", dst_dir, d->hex);
    _cleanup_free_ char *dst = kiln_xasprintf("%s/%s", dst_dir, d->hex);
    kiln_sha256_t h;
    kiln_digest_t got;
    char buf[65536];
    ssize_t n;

    if (kiln_store_open_blob(s, d, &in, NULL, err) < 0)
        return -1;
    out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0)
        return kiln_error_set(err, errno, "create %s", tmp);
    if (kiln_sha256_init(&h, err) < 0)
        goto fail;
    for (;;) {
        n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            kiln_error_set(err, errno, "read blob sha256:%s", d->hex);
            goto fail_hash;
        }
        if (n == 0)
            break;
        kiln_sha256_update(&h, buf, (size_t)n);
        if (kiln_fs_write_all(out, buf, (size_t)n, err) < 0)
            goto fail_hash;
    }
    kiln_sha256_final(&h, &got);
    if (!kiln_digest_equal(&got, d)) {
        kiln_error_set(err, EIO, "blob sha256:%s in the store is corrupt", d->hex);
        goto fail;
    }
    if (fchmod(out, 0644) < 0 || fsync(out) < 0 || rename(tmp, dst) < 0) {
        kiln_error_set(err, errno, "write %s", dst);
        goto fail;
    }
    return 0;
fail_hash:
    kiln_sha256_dispose(&h);
fail:
    unlink(tmp);
    return -1;
}

/* Puts blob d into dst_dir (hardlink from the store, else a verified copy). Returns 1 when
 * it was already there, 0 when placed now. */
static int place_blob(kiln_store_t *s, const kiln_digest_t *d, const char *dst_dir,
                      kiln_error_t *err)
{
    _cleanup_free_ char *src = kiln_store_blob_path(s, d);
    _cleanup_free_ char *dst = kiln_xasprintf("%s/%s", dst_dir, d->hex);
    struct stat st;

    /* a cache namespace's lazy blob is fetched from its own source first, even when the
     * store holds the bytes (another namespace's): oci/store_lazy */
    if (kiln_store_lazy_prove(s, d, err) < 0)
        return -1;
    if (lstat(dst, &st) == 0 && S_ISREG(st.st_mode)) {
        uint64_t size;
        if (kiln_store_has(s, d, &size) && (uint64_t)st.st_size == size)
            return 1; /* already there (content-addressed) */
    }
    if (link(src, dst) == 0)
        return 0;
    if (errno == EEXIST)
        unlink(dst);
    return copy_blob(s, d, dst_dir, err);
}

/* Merges the new entry into an existing index.json (dropping the entry with
 * the same tag or name), or starts a new index. */
static int merged_index(const char *dir, json_t *entry, const char *name, const char *tag,
                        json_t **out, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_xasprintf("%s/index.json", dir);
    _cleanup_free_ char *data = NULL;
    json_t *ix = NULL, *ms, *e;
    size_t len, i;

    if (access(path, F_OK) == 0) {
        if (kiln_fs_read_file(path, KILN_IMAGE_MANIFEST_MAX, &data, &len, err) < 0 ||
            kiln_json_loadb(data, len, KILN_IMAGE_MANIFEST_MAX, path, &ix, err) < 0)
            return -1;
        if (kiln_image_doc_kind(ix) != KILN_DOC_INDEX ||
            !json_is_array(json_object_get(ix, "manifests"))) {
            json_decref(ix);
            return kiln_error_set(err, 0, "%s is not an OCI image index", path);
        }
    } else {
        ix = kiln_image_index_new();
    }
    ms = json_object_get(ix, "manifests");
    for (i = json_array_size(ms); i-- > 0;) {
        json_t *ann;
        const char *rn, *cn;
        e = json_array_get(ms, i);
        ann = json_object_get(e, "annotations");
        rn = kiln_json_get_string(ann, KILN_ANNOT_REF_NAME);
        cn = kiln_json_get_string(ann, KILN_ANNOT_CONTAINERD_NAME);
        /* same tag or name: replaced; an untagged copy of the same image: dropped */
        if ((tag != NULL && rn != NULL && strcmp(rn, tag) == 0) ||
            (name != NULL && cn != NULL && strcmp(cn, name) == 0) ||
            (rn == NULL && cn == NULL && tag == NULL && name == NULL &&
             json_equal(json_object_get(e, "digest"), json_object_get(entry, "digest"))))
            json_array_remove(ms, i);
    }
    json_array_append(ms, entry);
    *out = ix;
    return 0;
}

/* Undoes a fresh layout that failed part way (a full disk, a write error): the blobs this
 * call placed (made[i]; not those another writer had put there) and the directories, when
 * empty, go, so no half-made layout is left behind. */
static void undo_fresh_layout(const char *dir, const blob_list_t *l, const char *made,
                              size_t placed)
{
    _cleanup_free_ char *sha = kiln_xasprintf("%s/blobs/sha256", dir);
    _cleanup_free_ char *blobs = kiln_xasprintf("%s/blobs", dir);

    for (size_t i = 0; i < placed; i++) {
        _cleanup_free_ char *b = kiln_xasprintf("%s/%s", sha, l->d[i].hex);
        if (made[i])
            unlink(b);
    }
    rmdir(sha);
    rmdir(blobs);
}

static int write_dir_layout(kiln_store_t *s, const char *dir, const blob_list_t *l, json_t *entry,
                            const char *name, const char *tag, kiln_error_t *err)
{
    _cleanup_free_ char *blobs = kiln_xasprintf("%s/blobs/sha256", dir);
    _cleanup_free_ char *hdr = kiln_xasprintf("%s/oci-layout", dir);
    _cleanup_free_ char *ixp = kiln_xasprintf("%s/index.json", dir);
    _cleanup_free_ char *buf = NULL;
    _cleanup_json_ json_t *ix = NULL;
    _cleanup_close_ int lock = -1; /* closing drops the flock */
    _cleanup_free_ char *made = kiln_xzalloc(l->n + 1);
    size_t len, placed = 0;
    int fresh = access(hdr, F_OK) != 0, rc;

    if (kiln_fs_mkdir_p(blobs, 0755, err) < 0)
        return -1;
    if (!fresh) {
        /* adding to an existing layout: it must be one we can write to */
        _cleanup_free_ char *old = NULL;
        size_t olen;
        if (kiln_fs_read_file(hdr, 4096, &old, &olen, err) < 0 ||
            kiln_image_validate("application/vnd.oci.layout.header.v1+json", old, olen, err) < 0)
            return kiln_error_prefix(err, "OCI layout %s", dir);
    }
    /* blobs first, index next, a new layout's header last: a reader never sees an entry
     * without its blobs, and a failure leaves no directory that claims to be a layout */
    for (; placed < l->n; placed++) {
        if ((rc = place_blob(s, &l->d[placed], blobs, err)) < 0)
            goto fail;
        made[placed] = rc == 0;
    }
    /* two writers adding to one layout must not lose each other's entry:
     * the read-modify-write of index.json holds a lock on the directory */
    lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock < 0 || flock(lock, LOCK_EX) < 0) {
        kiln_error_set(err, errno, "lock");
        goto fail;
    }
    if (merged_index(dir, entry, name, tag, &ix, err) < 0 ||
        kiln_json_dump_canonical(ix, &buf, &len, err) < 0 ||
        kiln_fs_write_file_atomic(ixp, buf, len, 0644, err) < 0)
        goto fail;
    if (fresh &&
        kiln_fs_write_file_atomic(hdr, LAYOUT_HEADER, strlen(LAYOUT_HEADER), 0644, err) < 0) {
        unlink(ixp);
        goto fail;
    }
    return 0;
fail:
    if (fresh)
        undo_fresh_layout(dir, l, made, placed);
    return kiln_error_prefix(err, "OCI layout %s", dir);
}

/* --- archives ------------------------------------------------------------------ */

/* Adds one entry header to a tar (regular file or directory, mtime 0, root). */
static int tar_header(struct archive *a, const char *path, int64_t size, int dir, kiln_error_t *err)
{
    struct archive_entry *e = archive_entry_new();
    int r;

    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, dir ? 0755 : 0644);
    archive_entry_set_size(e, dir ? 0 : size);
    archive_entry_set_mtime(e, 0, 0);
    r = archive_write_header(a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK)
        return kiln_error_set(err, 0, "tar: write header of %s: %s", path, archive_error_string(a));
    return 0;
}

static int tar_data(struct archive *a, const char *path, const void *buf, size_t len,
                    kiln_error_t *err)
{
    const char *p = buf;
    while (len > 0) {
        la_ssize_t n = archive_write_data(a, p, len);
        if (n <= 0)
            return kiln_error_set(err, 0, "tar: write %s: %s", path, archive_error_string(a));
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Adds a small in-memory file to a tar. */
static int tar_add_bytes(struct archive *a, const char *path, const void *buf, size_t len,
                         kiln_error_t *err)
{
    if (tar_header(a, path, (int64_t)len, 0, err) < 0)
        return -1;
    return tar_data(a, path, buf, len, err);
}

/* Streams blob d from the store into the tar as blobs/sha256/<hex>. */
static int tar_add_blob(struct archive *a, kiln_store_t *s, const kiln_digest_t *d,
                        kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    char path[100];
    char buf[65536];
    uint64_t size, done = 0;
    ssize_t n;

    snprintf(path, sizeof(path), "blobs/sha256/%s", d->hex);
    if (kiln_store_open_blob(s, d, &fd, &size, err) < 0 ||
        tar_header(a, path, (int64_t)size, 0, err) < 0)
        return -1;
    while (done < size) {
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return kiln_error_set(err, n < 0 ? errno : EIO, "read blob sha256:%s", d->hex);
        if ((uint64_t)n > size - done)
            n = (ssize_t)(size - done);
        if (tar_data(a, path, buf, (size_t)n, err) < 0)
            return -1;
        done += (uint64_t)n;
    }
    return 0;
}

/* Writes an OCI archive (plus an optional extra top-level file) to path via a
 * temp file renamed into place. */
static int write_archive(kiln_store_t *s, const char *path, const blob_list_t *l,
                         const json_t *index, const char *extra_name, const char *extra,
                         size_t extra_len, kiln_error_t *err)
{
    _cleanup_free_ char *tmp = kiln_xasprintf("%s.tmp-XXXXXX", path);
    _cleanup_free_ char *ixbuf = NULL;
    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    struct archive *a = NULL;
    size_t ixlen;
    int ret = -1;

    if (fd < 0)
        return kiln_error_set(err, errno, "create %s", tmp);
    if (kiln_json_dump_canonical(index, &ixbuf, &ixlen, err) < 0)
        goto out;
    a = archive_write_new();
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        kiln_error_set(err, 0, "tar: %s", archive_error_string(a));
        goto out;
    }
    if (tar_header(a, "blobs/", 0, 1, err) < 0 || tar_header(a, "blobs/sha256/", 0, 1, err) < 0)
        goto out;
    for (size_t i = 0; i < l->n; i++)
        if (tar_add_blob(a, s, &l->d[i], err) < 0)
            goto out;
    if (tar_add_bytes(a, "oci-layout", LAYOUT_HEADER, strlen(LAYOUT_HEADER), err) < 0 ||
        tar_add_bytes(a, "index.json", ixbuf, ixlen, err) < 0)
        goto out;
    if (extra_name != NULL && tar_add_bytes(a, extra_name, extra, extra_len, err) < 0)
        goto out;
    if (archive_write_close(a) != ARCHIVE_OK) {
        kiln_error_set(err, 0, "tar: close: %s", archive_error_string(a));
        goto out;
    }
    if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
        kiln_error_set(err, errno, "write %s", path);
        goto out;
    }
    ret = 0;
out:
    if (a != NULL)
        archive_write_free(a);
    if (ret < 0) {
        unlink(tmp);
        kiln_error_prefix(err, "archive %s", path);
    }
    return ret;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Shared by the layout and docker-archive writers: collects the image's
 * blobs and its index.json entry. */
static int prepare(kiln_store_t *s, const kiln_descriptor_t *top, const char *name, blob_list_t *l,
                   json_t **entry, char **tag, kiln_error_t *err)
{
    if (collect_blobs(s, &top->digest, top->size, 0, l, err) < 0)
        return -1;
    *tag = kiln_layout_tag_of(name);
    *entry = top_descriptor(top, name, *tag);
    return 0;
}

int kiln_layout_write(kiln_store_t *s, const char *path, int tar, const kiln_descriptor_t *top,
                      const char *name, kiln_error_t *err)
{
    blob_list_t l = {0};
    _cleanup_json_ json_t *entry = NULL;
    _cleanup_free_ char *tag = NULL;
    int ret;

    if (path == NULL || path[0] == '\0')
        return kiln_error_set(err, 0, "OCI layout: no destination given");
    if (prepare(s, top, name, &l, &entry, &tag, err) < 0) {
        blobs_free(&l);
        return kiln_error_prefix(err, "OCI layout %s", path);
    }
    if (tar || ends_with(path, ".tar")) {
        _cleanup_json_ json_t *ix = kiln_image_index_new();
        json_array_append(json_object_get(ix, "manifests"), entry);
        ret = write_archive(s, path, &l, ix, NULL, NULL, 0, err);
    } else {
        ret = write_dir_layout(s, path, &l, entry, name, tag, err);
    }
    blobs_free(&l);
    return ret;
}

int kiln_layout_write_archive_extra(kiln_store_t *s, const char *path, const kiln_descriptor_t *top,
                                    const char *name, const char *extra_name, const char *extra,
                                    size_t extra_len, kiln_error_t *err)
{
    return kiln_layout_write_archive_multi(s, path, top, &name, 1, extra_name, extra, extra_len,
                                           err);
}

int kiln_layout_write_archive_multi(kiln_store_t *s, const char *path,
                                    const kiln_descriptor_t *tops, const char *const *names,
                                    size_t n, const char *extra_name, const char *extra,
                                    size_t extra_len, kiln_error_t *err)
{
    blob_list_t l = {0};
    _cleanup_json_ json_t *ix = kiln_image_index_new();
    int ret;

    /* one index.json entry per image, the blobs they share written once */
    for (size_t i = 0; i < n; i++) {
        _cleanup_json_ json_t *entry = NULL;
        _cleanup_free_ char *tag = NULL;
        if (prepare(s, &tops[i], names[i], &l, &entry, &tag, err) < 0) {
            blobs_free(&l);
            return kiln_error_prefix(err, "archive %s", path);
        }
        json_array_append(json_object_get(ix, "manifests"), entry);
    }
    ret = write_archive(s, path, &l, ix, extra_name, extra, extra_len, err);
    blobs_free(&l);
    return ret;
}
