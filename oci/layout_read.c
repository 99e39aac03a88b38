/* kiln — OCI image layouts read (see layout.h): `oci:DIR[:TAG]` references, a directory
 * layout or an archive (its JSON capped), the image a tag names resolved (index -> manifest ->
 * config, each checked against its digest), and its blobs imported into the store. */
#include "oci/layout.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/tarfile.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

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
    if (kiln_json_get_string(desc.annotations, KILN_ANNOT_CONTAINERD_NAME))
        img->full_name =
            kiln_xstrdup(kiln_json_get_string(desc.annotations, KILN_ANNOT_CONTAINERD_NAME));
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

int kiln_layout_list(const char *path, char ***names, size_t *n, kiln_error_t *err)
{
    layout_src_t src = {.path = path};
    _cleanup_free_ char *data = NULL;
    kiln_index_t *ix = NULL;
    struct stat st;
    size_t len;
    char **v;

    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        src.archive = 1;
        if (src_load_archive(&src, err) < 0) {
            src_free(&src);
            return kiln_error_prefix(err, "resolve %s", path);
        }
    }
    if (src_read(&src, "index.json", KILN_IMAGE_MANIFEST_MAX, &data, &len, err) < 0 ||
        kiln_image_parse_index(data, len, &ix, err) < 0) {
        src_free(&src);
        return kiln_error_prefix(err, "OCI layout %s: index.json", path);
    }
    src_free(&src);
    v = kiln_xzalloc((ix->n_manifests + 1) * sizeof(char *));
    for (size_t i = 0; i < ix->n_manifests; i++) {
        const json_t *ann = ix->manifests[i].annotations;
        const char *cn = kiln_json_get_string(ann, KILN_ANNOT_CONTAINERD_NAME);
        const char *rn = kiln_json_get_string(ann, KILN_ANNOT_REF_NAME);
        v[i] = cn ? kiln_xstrdup(cn) : rn ? kiln_xstrdup(rn) : NULL;
    }
    *n = ix->n_manifests;
    *names = v;
    kiln_index_free(ix);
    return 0;
}

void kiln_layout_image_free(kiln_layout_image_t *img)
{
    if (img == NULL)
        return;
    free(img->dir);
    free(img->name);
    free(img->full_name);
    kiln_descriptor_clear(&img->manifest_desc);
    kiln_manifest_free(img->manifest);
    if (img->config)
        json_decref(img->config);
    free(img);
}

/* Copies one blob of the layout into the store, verifying digest and size. The layout
 * still has it after a crash: no fsync, and a blob in the store of another size (cut short
 * by a crash) is copied again. */
static int import_blob(kiln_store_t *s, const char *dir, const kiln_descriptor_t *d,
                       kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    kiln_store_writer_t *w;
    kiln_sink_t sink;
    uint64_t have = 0;

    if (kiln_store_has(s, &d->digest, &have) && have == d->size)
        return 0;
    if (kiln_layout_open_blob(dir, &d->digest, &fd, NULL, err) < 0 ||
        kiln_store_writer_new(s, &d->digest, (int64_t)d->size, &w, err) < 0)
        return -1;
    kiln_store_writer_no_sync(w);
    sink = kiln_store_writer_sink(w);
    if (kiln_sink_copy_fd(&sink, fd, err) < 0) {
        kiln_store_writer_abort(w);
        return kiln_error_prefix(err, "OCI layout %s", dir);
    }
    if (kiln_store_writer_commit(w, NULL, NULL, err) < 0)
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
                kiln_store_writer_no_sync(w); /* the archive still has it */
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
