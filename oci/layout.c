/* kiln — OCI image layout v1 (directory and archive) writer and reader. */
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

#include "oci/tarfile.h"
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
    blob_list_t l = {0};
    _cleanup_json_ json_t *entry = NULL;
    _cleanup_json_ json_t *ix = kiln_image_index_new();
    _cleanup_free_ char *tag = NULL;
    int ret;

    if (prepare(s, top, name, &l, &entry, &tag, err) < 0) {
        blobs_free(&l);
        return kiln_error_prefix(err, "archive %s", path);
    }
    json_array_append(json_object_get(ix, "manifests"), entry);
    ret = write_archive(s, path, &l, ix, extra_name, extra, extra_len, err);
    blobs_free(&l);
    return ret;
}

/* --- reading ------------------------------------------------------------------- */

int kiln_layout_parse_ref(const char *ref, char **dir, char **tag, kiln_error_t *err)
{
    const char *p = ref, *colon, *slash;

    if (strncmp(p, "oci:", 4) == 0)
        p += 4;
    else if (strncmp(p, "oci-archive:", 12) == 0)
        p += 12;
    if (*p == '\0')
        return kiln_error_set(err, 0, "'%.200s': missing layout directory", ref);
    colon = strrchr(p, ':');
    slash = strrchr(p, '/');
    if (colon != NULL && (slash == NULL || colon > slash) && colon != p) {
        if (colon[1] == '\0')
            return kiln_error_set(err, 0, "'%.200s': empty tag", ref);
        *dir = kiln_xstrndup(p, (size_t)(colon - p));
        *tag = kiln_xstrdup(colon + 1);
        return 0;
    }
    *dir = kiln_xstrdup(p);
    *tag = NULL;
    return 0;
}

int kiln_layout_open_blob(const char *dir, const kiln_digest_t *d, int *fd, uint64_t *size,
                          kiln_error_t *err)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/blobs/sha256/%s", dir, d->hex);
    struct stat st;
    int f = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (f < 0)
        return kiln_error_set(err, errno, "OCI layout %s: blob sha256:%s", dir, d->hex);
    if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(f);
        return kiln_error_set(err, 0, "OCI layout %s: blob sha256:%s is not a file", dir, d->hex);
    }
    if (size != NULL)
        *size = (uint64_t)st.st_size;
    *fd = f;
    return 0;
}

/* Where a layout is read from: a directory, or an OCI archive whose JSON
 * files (index.json, oci-layout, manifests, configs: every entry whose content
 * starts with '{') were loaded into memory in one pass. */
#define ARCHIVE_JSON_TOTAL_MAX (64u * 1024 * 1024)

typedef struct layout_src {
    const char *path;
    int archive;
    char **names;
    char **data;
    size_t *lens;
    size_t n;
} layout_src_t;

static void src_free(layout_src_t *src)
{
    for (size_t i = 0; i < src->n; i++) {
        free(src->names[i]);
        free(src->data[i]);
    }
    free(src->names);
    free(src->data);
    free(src->lens);
}

/* Loads the JSON entries of an OCI archive. */
static int src_load_archive(layout_src_t *src, kiln_error_t *err)
{
    struct archive *a = NULL;
    struct archive_entry *e;
    size_t total = 0;
    int r;

    if (kiln_tarfile_open(src->path, &a, err) < 0)
        return -1;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = kiln_tarfile_name(e);
        char *data = NULL;
        size_t len = 0;
        int got;

        if (archive_entry_filetype(e) != AE_IFREG ||
            (strcmp(name, "index.json") != 0 && strcmp(name, "oci-layout") != 0 &&
             strncmp(name, "blobs/sha256/", 13) != 0))
            continue;
        got = kiln_tarfile_read_entry(a, name, KILN_IMAGE_CONFIG_MAX, 1, &data, &len, err);
        if (got < 0) {
            archive_read_free(a);
            return -1;
        }
        if (got == 0)
            continue;
        total += len;
        if (total > ARCHIVE_JSON_TOTAL_MAX) {
            free(data);
            archive_read_free(a);
            return kiln_error_set(err, EFBIG, "archive %s holds more than %u bytes of JSON",
                                  src->path, ARCHIVE_JSON_TOTAL_MAX);
        }
        src->names = kiln_xrealloc(src->names, (src->n + 1) * sizeof(char *));
        src->data = kiln_xrealloc(src->data, (src->n + 1) * sizeof(char *));
        src->lens = kiln_xrealloc(src->lens, (src->n + 1) * sizeof(size_t));
        src->names[src->n] = kiln_xstrdup(name);
        src->data[src->n] = data;
        src->lens[src->n] = len;
        src->n++;
    }
    if (r != ARCHIVE_EOF)
        kiln_error_set(err, 0, "archive %s: %s", src->path, archive_error_string(a));
    archive_read_free(a);
    return r == ARCHIVE_EOF ? 0 : -1;
}

/* Reads a file of the layout (relative path), capped. */
static int src_read(const layout_src_t *src, const char *rel, size_t cap, char **out, size_t *len,
                    kiln_error_t *err)
{
    if (!src->archive) {
        _cleanup_free_ char *p = kiln_xasprintf("%s/%s", src->path, rel);
        return kiln_fs_read_file(p, cap, out, len, err);
    }
    for (size_t i = 0; i < src->n; i++) {
        if (strcmp(src->names[i], rel) != 0)
            continue;
        if (src->lens[i] > cap)
            return kiln_error_set(err, EFBIG, "%s: larger than %zu bytes", rel, cap);
        /* a copy of the bytes (they may hold NULs: no string functions) */
        *out = kiln_xmalloc(src->lens[i] + 1);
        memcpy(*out, src->data[i], src->lens[i]);
        (*out)[src->lens[i]] = '\0';
        *len = src->lens[i];
        return 0;
    }
    return kiln_error_set(err, ENOENT, "archive %s has no JSON entry %s", src->path, rel);
}

/* Reads a small blob of the layout and checks its digest and size. */
static int read_layout_blob(const layout_src_t *src, const kiln_descriptor_t *desc, size_t cap,
                            char **out, size_t *len, kiln_error_t *err)
{
    _cleanup_free_ char *data = NULL;
    char rel[80];
    kiln_digest_t got;
    size_t n;
    const char *dir = src->path;

    snprintf(rel, sizeof(rel), "blobs/sha256/%s", desc->digest.hex);
    if (src_read(src, rel, cap, &data, &n, err) < 0)
        return kiln_error_prefix(err, "OCI layout %s: blob sha256:%s", dir, desc->digest.hex);
    kiln_digest_bytes(data, n, &got);
    if (!kiln_digest_equal(&got, &desc->digest))
        return kiln_error_set(err, EIO,
                              "OCI layout %s: blob sha256:%s does not match its digest (content "
                              "is sha256:%s)",
                              dir, desc->digest.hex, got.hex);
    if (n != desc->size)
        return kiln_error_set(err, EIO, "OCI layout %s: blob sha256:%s is %zu bytes, not %llu", dir,
                              desc->digest.hex, n, (unsigned long long)desc->size);
    *out = steal_pointer(&data);
    *len = n;
    return 0;
}

/* Picks the index entry for tag (or the only one). */
static int pick_entry(const kiln_index_t *ix, const char *dir, const char *tag, kiln_error_t *err)
{
    int found = -1;
    char names[512] = "";
    size_t used = 0;

    for (size_t i = 0; i < ix->n_manifests; i++) {
        const json_t *ann = ix->manifests[i].annotations;
        const char *rn = kiln_json_get_string(ann, KILN_ANNOT_REF_NAME);
        const char *cn = kiln_json_get_string(ann, KILN_ANNOT_CONTAINERD_NAME);
        if (tag != NULL && ((rn && strcmp(rn, tag) == 0) || (cn && strcmp(cn, tag) == 0)))
            return (int)i;
        if (used < sizeof(names))
            used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "",
                                     rn ? rn : "(untagged)");
        found = (int)i;
    }
    if (tag != NULL)
        return kiln_error_set(err, 0, "OCI layout %s: no image tagged '%s' (has: %s)", dir, tag,
                              names[0] ? names : "none");
    if (ix->n_manifests == 0)
        return kiln_error_set(err, 0, "OCI layout %s: index.json lists no image", dir);
    if (ix->n_manifests > 1)
        return kiln_error_set(err, 0,
                              "OCI layout %s holds %zu images (%s): name one as oci:DIR:TAG", dir,
                              ix->n_manifests, names);
    return found;
}

/* Resolves tag in a layout source (directory or loaded archive). */
static int resolve_src(const layout_src_t *src, const char *tag, kiln_layout_image_t **out,
                       kiln_error_t *err)
{
    const char *dir = src->path;
    _cleanup_free_ char *data = NULL;
    kiln_index_t *ix = NULL;
    kiln_layout_image_t *img = NULL;
    kiln_descriptor_t desc = {0};
    size_t len;
    int i;

    if (src_read(src, "oci-layout", 4096, &data, &len, err) < 0)
        return kiln_error_prefix(err, "%s is not an OCI image layout", dir);
    if (kiln_image_validate("application/vnd.oci.layout.header.v1+json", data, len, err) < 0)
        return kiln_error_prefix(err, "OCI layout %s", dir);
    free(steal_pointer(&data));
    if (src_read(src, "index.json", KILN_IMAGE_MANIFEST_MAX, &data, &len, err) < 0 ||
        kiln_image_parse_index(data, len, &ix, err) < 0)
        return kiln_error_prefix(err, "OCI layout %s: index.json", dir);
    i = pick_entry(ix, dir, tag, err);
    if (i < 0)
        goto fail;
    kiln_descriptor_copy(&desc, &ix->manifests[i]);
    img = kiln_xzalloc(sizeof(*img));
    img->dir = kiln_xstrdup(dir);
    img->archive = src->archive;
    if (kiln_json_get_string(desc.annotations, KILN_ANNOT_REF_NAME))
        img->name = kiln_xstrdup(kiln_json_get_string(desc.annotations, KILN_ANNOT_REF_NAME));
    kiln_index_free(steal_pointer(&ix));
    /* an image index inside the layout: choose linux/amd64 or its only manifest */
    for (int depth = 0; strcmp(desc.media_type, KILN_MT_OCI_INDEX) == 0 ||
                        strcmp(desc.media_type, KILN_MT_DOCKER_LIST) == 0;
         depth++) {
        kiln_index_t *sub = NULL;
        int k;
        free(steal_pointer(&data));
        if (depth > 2) {
            kiln_error_set(err, ELOOP, "OCI layout %s: indexes nested too deeply", dir);
            goto fail;
        }
        if (read_layout_blob(src, &desc, KILN_IMAGE_MANIFEST_MAX, &data, &len, err) < 0 ||
            kiln_image_parse_index(data, len, &sub, err) < 0)
            goto fail;
        k = sub->n_manifests == 1 ? 0 : kiln_image_index_select(sub, "linux", "amd64", NULL, err);
        if (k < 0) {
            kiln_index_free(sub);
            goto fail;
        }
        kiln_descriptor_clear(&desc);
        kiln_descriptor_copy(&desc, &sub->manifests[k]);
        kiln_index_free(sub);
    }
    free(steal_pointer(&data));
    if (read_layout_blob(src, &desc, KILN_IMAGE_MANIFEST_MAX, &data, &len, err) < 0 ||
        kiln_image_parse_manifest(data, len, &img->manifest, err) < 0)
        goto fail;
    free(steal_pointer(&data));
    if (read_layout_blob(src, &img->manifest->config, KILN_IMAGE_CONFIG_MAX, &data, &len, err) <
            0 ||
        kiln_image_parse_config(data, len, &img->config, err) < 0)
        goto fail;
    img->manifest_desc = desc;
    *out = img;
    return 0;
fail:
    kiln_descriptor_clear(&desc);
    kiln_index_free(ix);
    kiln_layout_image_free(img);
    return kiln_error_prefix(err, "resolve %s%s%s", dir, tag ? ":" : "", tag ? tag : "");
}

int kiln_layout_resolve(const char *path, const char *tag, kiln_layout_image_t **out,
                        kiln_error_t *err)
{
    layout_src_t src = {.path = path};
    struct stat st;
    int r;

    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        src.archive = 1;
        if (src_load_archive(&src, err) < 0) {
            src_free(&src);
            return kiln_error_prefix(err, "resolve %s", path);
        }
    }
    r = resolve_src(&src, tag, out, err);
    src_free(&src);
    return r;
}

void kiln_layout_image_free(kiln_layout_image_t *img)
{
    if (img == NULL)
        return;
    free(img->dir);
    free(img->name);
    kiln_descriptor_clear(&img->manifest_desc);
    kiln_manifest_free(img->manifest);
    if (img->config)
        json_decref(img->config);
    free(img);
}

/* Copies one blob of the layout into the store, verifying digest and size. */
static int import_blob(kiln_store_t *s, const char *dir, const kiln_descriptor_t *d,
                       kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;

    if (kiln_store_has(s, &d->digest, NULL))
        return 0;
    if (kiln_layout_open_blob(dir, &d->digest, &fd, NULL, err) < 0)
        return -1;
    if (kiln_store_put_fd(s, fd, &d->digest, (int64_t)d->size, NULL, NULL, err) < 0)
        return kiln_error_prefix(err, "OCI layout %s", dir);
    return 0;
}

/* Imports from an OCI archive: one pass, streaming the needed blobs into the
 * store with their expected digests and sizes. */
static int import_archive(kiln_store_t *s, const kiln_layout_image_t *img, kiln_error_t *err)
{
    const kiln_manifest_t *m = img->manifest;
    size_t n = m->n_layers + 2, i, missing = 0;
    const kiln_descriptor_t **want = kiln_xzalloc(n * sizeof(*want));
    struct archive *a = NULL;
    struct archive_entry *e;
    int r, ret = -1;

    for (i = 0; i < m->n_layers; i++)
        want[i] = &m->layers[i];
    want[m->n_layers] = &m->config;
    want[m->n_layers + 1] = &img->manifest_desc;
    if (kiln_tarfile_open(img->dir, &a, err) < 0)
        goto out;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = kiln_tarfile_name(e);
        if (strncmp(name, "blobs/sha256/", 13) != 0 || archive_entry_filetype(e) != AE_IFREG)
            continue;
        for (i = 0; i < n; i++) {
            kiln_store_writer_t *w = NULL;
            char buf[65536];
            la_ssize_t k;
            if (want[i] == NULL || strcmp(name + 13, want[i]->digest.hex) != 0)
                continue;
            if (!kiln_store_has(s, &want[i]->digest, NULL)) {
                if (kiln_store_writer_new(s, &want[i]->digest, (int64_t)want[i]->size, &w, err) < 0)
                    goto out;
                while ((k = archive_read_data(a, buf, sizeof(buf))) > 0)
                    if (kiln_store_writer_write(w, buf, (size_t)k, err) < 0)
                        break;
                if (k != 0) {
                    if (k < 0)
                        kiln_error_set(err, 0, "%s: %s", name, archive_error_string(a));
                    kiln_store_writer_abort(w);
                    goto out;
                }
                if (kiln_store_writer_commit(w, NULL, NULL, err) < 0)
                    goto out;
            }
            for (size_t j = i; j < n; j++) /* the same blob may be listed twice */
                if (want[j] != NULL && kiln_digest_equal(&want[j]->digest, &want[i]->digest) &&
                    j != i)
                    want[j] = NULL;
            want[i] = NULL;
            break;
        }
    }
    if (r != ARCHIVE_EOF) {
        kiln_error_set(err, 0, "%s", archive_error_string(a));
        goto out;
    }
    for (i = 0; i < n; i++)
        if (want[i] != NULL && !kiln_store_has(s, &want[i]->digest, NULL))
            missing++;
    if (missing > 0) {
        kiln_error_set(err, 0, "%zu blob(s) of the image are missing from the archive", missing);
        goto out;
    }
    ret = 0;
out:
    if (a != NULL)
        archive_read_free(a);
    free(want);
    if (ret < 0)
        kiln_error_prefix(err, "OCI archive %s", img->dir);
    return ret;
}

int kiln_layout_import(kiln_store_t *s, const kiln_layout_image_t *img, kiln_error_t *err)
{
    const kiln_manifest_t *m = img->manifest;

    if (img->archive)
        return import_archive(s, img, err);
    for (size_t i = 0; i < m->n_layers; i++)
        if (import_blob(s, img->dir, &m->layers[i], err) < 0)
            return -1;
    if (import_blob(s, img->dir, &m->config, err) < 0 ||
        import_blob(s, img->dir, &img->manifest_desc, err) < 0)
        return -1;
    return 0;
}
