/* kiln — the image store's index under a kiln root (see imagestore.h): read, looked up, and
 * changed under its lock by one atomic rename. */
#include "oci/imagestore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "oci/imagesize.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

static char *index_path(const char *root)
{
    return kiln_xasprintf("%s/images/index.json", root);
}

int kiln_imagestore_load(const char *root, kiln_imagestore_index_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *path = index_path(root);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    kiln_error_t e = {0};

    if (kiln_fs_read_file(path, KILN_IMAGESTORE_INDEX_MAX, &buf, &len, &e) < 0) {
        if (e.code == ENOENT) {
            memset(out, 0, sizeof(*out));
            return 0;
        }
        *err = e;
        return kiln_error_prefix(err, "image store %s", path);
    }
    if (kiln_imagestore_index_parse(buf, len, out, err) < 0)
        return kiln_error_prefix(err, "%s", path);
    return 0;
}

/* Takes the writers' lock of the index: the fd to close in *fd. */
static int lock_index(const char *root, int *fd, kiln_error_t *err)
{
    _cleanup_free_ char *dir = kiln_xasprintf("%s/images", root);
    _cleanup_free_ char *path = kiln_xasprintf("%s/lock", dir);
    int lfd;

    if (kiln_fs_mkdir_p(dir, 0700, err) < 0)
        return -1;
    lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0)
        return kiln_error_set(err, errno, "opening %s", path);
    while (flock(lfd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            close(lfd);
            return kiln_error_set(err, errno, "locking %s", path);
        }
    }
    *fd = lfd;
    return 0;
}

/* Under the lock: reads the index, lets fn change it, writes it back (temp + rename) when fn
 * returns 1; 0 leaves the file alone, <0 fails. */
static int update(kiln_store_t *s,
                  int (*fn)(kiln_imagestore_index_t *ix, void *ud, kiln_error_t *err), void *ud,
                  kiln_error_t *err)
{
    const char *root = kiln_store_root(s);
    _cleanup_close_ int lfd = -1;
    _cleanup_free_ char *path = index_path(root);
    _cleanup_free_ char *text = NULL;
    kiln_imagestore_index_t ix = {0};
    int r;

    if (lock_index(root, &lfd, err) < 0 || kiln_imagestore_load(root, &ix, err) < 0)
        return -1;
    r = fn(&ix, ud, err);
    if (r > 0) {
        text = kiln_imagestore_index_dump(&ix);
        r = kiln_fs_write_file_atomic(path, text, strlen(text), 0600, err);
        if (r < 0)
            kiln_error_prefix(err, "image store %s", path);
    }
    kiln_imagestore_index_clear(&ix);
    return r < 0 ? -1 : 0;
}

int kiln_imagestore_lookup(kiln_store_t *s, const char *name, kiln_imagestore_entry_t *out,
                           kiln_error_t *err)
{
    _cleanup_free_ char *full = NULL;
    kiln_imagestore_index_t ix = {0};
    const kiln_imagestore_entry_t *e;

    if (kiln_imagestore_normalize(name, &full, err) < 0 ||
        kiln_imagestore_load(kiln_store_root(s), &ix, err) < 0)
        return -1;
    e = kiln_imagestore_index_find(&ix, full);
    if (e != NULL) {
        *out = (kiln_imagestore_entry_t){.name = kiln_xstrdup(e->name),
                                         .digest = e->digest,
                                         .size = e->size,
                                         .size_unknown = e->size_unknown,
                                         .created = e->created ? kiln_xstrdup(e->created) : NULL,
                                         .tagged = e->tagged};
    }
    kiln_imagestore_index_clear(&ix);
    return e != NULL;
}

/* What a tag writes: the names (full) and the entry they share. */
typedef struct tag_job {
    char **names;
    size_t n;
    kiln_imagestore_entry_t entry;
} tag_job_t;

static int do_tag(kiln_imagestore_index_t *ix, void *ud, kiln_error_t *err)
{
    tag_job_t *t = ud;

    int r = 1;

    for (size_t i = 0; i < t->n && r > 0; i++) {
        t->entry.name = t->names[i]; /* borrowed: index_set copies it */
        if (kiln_imagestore_index_set(ix, &t->entry, err) < 0)
            r = -1;
    }
    t->entry.name = NULL;
    return r;
}

/* The manifest d in the store, parsed (*m, *config: its config's JSON). */
static int read_image(kiln_store_t *s, const kiln_digest_t *d, kiln_manifest_t **m, json_t **config,
                      size_t *mlen, kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL, *cfg = NULL;
    size_t len = 0, clen = 0;
    char ds[KILN_DIGEST_STR_MAX];

    if (kiln_store_read_blob(s, d, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0)
        return -1;
    if (kiln_image_parse_manifest(body, len, m, err) < 0)
        return kiln_error_prefix(err, "image %s", kiln_digest_str(d, ds));
    if (kiln_store_read_blob(s, &(*m)->config.digest, KILN_IMAGE_CONFIG_MAX, &cfg, &clen, err) <
            0 ||
        kiln_image_parse_config(cfg, clen, config, err) < 0) {
        kiln_manifest_free(*m);
        *m = NULL;
        return kiln_error_prefix(err, "image %s", kiln_digest_str(d, ds));
    }
    *mlen = len;
    return 0;
}

/* The created time and unpacked size of the image of manifest d, for `kiln images`: the
 * size only when every layer's is known without decompressing it. */
static int describe(kiln_store_t *s, const kiln_digest_t *d, kiln_imagestore_entry_t *e,
                    kiln_error_t *err)
{
    _cleanup_json_ json_t *config = NULL;
    kiln_manifest_t *m = NULL;
    kiln_image_size_t sz;
    kiln_descriptor_t md = {.digest = *d};
    const char *created;

    if (read_image(s, d, &m, &config, &md.size, err) < 0)
        return -1;
    /* a layer that cannot be measured (not a tar stream) still lets the image be named: its
     * size is shown as 0 */
    if (kiln_image_size_noted(s, &md, &m->config.digest, m->layers, m->n_layers, &sz, NULL) < 0)
        sz = (kiln_image_size_t){0};
    created = kiln_json_get_string(config, "created");
    e->digest = *d;
    e->size = sz.uncompressed;
    e->size_unknown = sz.unmemoized > 0;
    e->created = created ? kiln_xstrdup(created) : NULL;
    e->tagged = (int64_t)time(NULL);
    kiln_manifest_free(m);
    return 0;
}

/* What kiln_imagestore_measure writes: the size of the entries naming digest with none. */
typedef struct size_job {
    kiln_digest_t digest;
    uint64_t size;
} size_job_t;

static int do_size(kiln_imagestore_index_t *ix, void *ud, kiln_error_t *err)
{
    size_job_t *j = ud;
    int changed = 0;
    (void)err;
    for (size_t i = 0; i < ix->n; i++)
        if (ix->entries[i].size_unknown && kiln_digest_equal(&ix->entries[i].digest, &j->digest)) {
            ix->entries[i].size = j->size;
            ix->entries[i].size_unknown = 0;
            changed = 1;
        }
    return changed;
}

int kiln_imagestore_measure(kiln_store_t *s, const kiln_digest_t *d, uint64_t *size,
                            kiln_error_t *err)
{
    _cleanup_json_ json_t *config = NULL;
    kiln_manifest_t *m = NULL;
    kiln_image_size_t sz;
    kiln_descriptor_t md = {.digest = *d};
    size_job_t j = {.digest = *d};
    int r;

    if (read_image(s, d, &m, &config, &md.size, err) < 0)
        return -1;
    r = kiln_image_size(s, &md, &m->config.digest, m->layers, m->n_layers, &sz, err);
    kiln_manifest_free(m);
    if (r < 0)
        return -1;
    j.size = sz.uncompressed;
    /* best effort: a root this user cannot write (or a busy lock's failure) still gets the
     * size shown, measured again next time */
    (void)update(s, do_size, &j, NULL);
    *size = sz.uncompressed;
    return 0;
}

int kiln_imagestore_tag(kiln_store_t *s, const char *const *names, size_t n,
                        const kiln_digest_t *manifest, kiln_error_t *err)
{
    tag_job_t t = {.names = kiln_xzalloc((n ? n : 1) * sizeof(char *)), .n = n};
    int r = -1;

    for (size_t i = 0; i < n; i++)
        if (kiln_imagestore_normalize(names[i], &t.names[i], err) < 0)
            goto out;
    if (describe(s, manifest, &t.entry, err) < 0)
        goto out;
    r = update(s, do_tag, &t, err);
out:
    for (size_t i = 0; i < n; i++)
        free(t.names[i]);
    free(t.names);
    kiln_imagestore_entry_clear(&t.entry);
    return r;
}

typedef struct untag_job {
    char **names;
    size_t n;
    kiln_digest_t *digests;
} untag_job_t;

static int do_untag(kiln_imagestore_index_t *ix, void *ud, kiln_error_t *err)
{
    untag_job_t *u = ud;

    /* all or nothing: an unknown name fails before any is removed */
    for (size_t i = 0; i < u->n; i++) {
        const kiln_imagestore_entry_t *e = kiln_imagestore_index_find(ix, u->names[i]);
        if (e == NULL)
            return kiln_error_set(
                err, 0, "no image named %s in kiln's store (kiln images lists them)", u->names[i]);
        if (u->digests)
            u->digests[i] = e->digest;
    }
    for (size_t i = 0; i < u->n; i++)
        kiln_imagestore_index_remove(ix, u->names[i]);
    return 1;
}

int kiln_imagestore_untag(kiln_store_t *s, const char *const *names, size_t n,
                          kiln_digest_t *digests, kiln_error_t *err)
{
    untag_job_t u = {
        .names = kiln_xzalloc((n ? n : 1) * sizeof(char *)), .n = n, .digests = digests};
    int r = -1;

    for (size_t i = 0; i < n; i++)
        if (kiln_imagestore_normalize(names[i], &u.names[i], err) < 0)
            goto out;
    r = update(s, do_untag, &u, err);
out:
    for (size_t i = 0; i < n; i++)
        free(u.names[i]);
    free(u.names);
    return r;
}

int kiln_imagestore_foreach(const char *root,
                            int (*fn)(const char *name, const kiln_digest_t *d, void *ud), void *ud,
                            kiln_error_t *err)
{
    kiln_imagestore_index_t ix = {0};
    int r = 0;

    if (kiln_imagestore_load(root, &ix, err) < 0)
        return -1;
    for (size_t i = 0; i < ix.n && r >= 0; i++)
        r = fn(ix.entries[i].name, &ix.entries[i].digest, ud);
    kiln_imagestore_index_clear(&ix);
    return r;
}
