/* kiln — pruning the store (see store.h): under the exclusive lock, marks every blob a ref
 * reaches (index -> manifests -> config and layers) and the unpacked layer trees their configs
 * list, then removes the temp files, the unmarked blobs and the unlisted trees. */
#include "oci/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/additional_store.h"
#include "oci/image.h"
#include "oci/imagestore.h"
#include "oci/store_impl.h"
#include "oci/store_lazy.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

/* An open-addressing set of digests (the marked blobs) plus a work stack. */
typedef struct mark_set {
    kiln_digest_t *slots;
    unsigned char *used;
    size_t cap, n;
    kiln_digest_t *stack;
    size_t stack_n, stack_cap;
} mark_set_t;

static size_t mark_hash(const kiln_digest_t *d, size_t cap)
{
    size_t h = 0;
    for (int i = 0; i < 16; i++)
        h = h * 16 + (size_t)(d->hex[i] <= '9' ? d->hex[i] - '0' : d->hex[i] - 'a' + 10);
    return h & (cap - 1);
}

static int mark_contains(const mark_set_t *m, const kiln_digest_t *d)
{
    for (size_t i = mark_hash(d, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->used[i])
            return 0;
        if (kiln_digest_equal(&m->slots[i], d))
            return 1;
    }
}

static void mark_insert_slot(mark_set_t *m, const kiln_digest_t *d)
{
    size_t i = mark_hash(d, m->cap);
    while (m->used[i])
        i = (i + 1) & (m->cap - 1);
    m->used[i] = 1;
    m->slots[i] = *d;
    m->n++;
}

/* Adds d; pushes it on the work stack when it is new. */
static void mark_add(mark_set_t *m, const kiln_digest_t *d)
{
    if (mark_contains(m, d))
        return;
    if ((m->n + 1) * 2 > m->cap) {
        mark_set_t bigger = {0};
        bigger.cap = m->cap * 2;
        bigger.slots = kiln_xzalloc(bigger.cap * sizeof(*bigger.slots));
        bigger.used = kiln_xzalloc(bigger.cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->used[i])
                mark_insert_slot(&bigger, &m->slots[i]);
        free(m->slots);
        free(m->used);
        m->slots = bigger.slots;
        m->used = bigger.used;
        m->cap = bigger.cap;
    }
    mark_insert_slot(m, d);
    if (m->stack_n == m->stack_cap) {
        m->stack_cap = m->stack_cap ? m->stack_cap * 2 : 64;
        m->stack = kiln_xrealloc(m->stack, m->stack_cap * sizeof(*m->stack));
    }
    m->stack[m->stack_n++] = *d;
}

static int mark_ref(const char *name, const kiln_digest_t *d, void *ud)
{
    mark_add(ud, d);
    return 0;
}

/* Adds an image config's rootfs.diff_ids to the set of unpacked layer trees to keep. */
static void mark_diff_ids(mark_set_t *lowers, json_t *cfg)
{
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    for (size_t i = 0; lowers != NULL && i < json_array_size(ids); i++) {
        kiln_digest_t c;
        if (kiln_digest_parse(json_string_value(json_array_get(ids, i)), &c, NULL) == 0)
            mark_add(lowers, &c);
    }
    if (lowers != NULL)
        lowers->stack_n = 0; /* a set only: nothing to walk */
}

/* Marks what the blob open on fd (a manifest or index, or anything else; fd closed) refers
 * to; the diff_ids of a config go to lowers. */
static void mark_children(mark_set_t *m, mark_set_t *lowers, int fd_in)
{
    _cleanup_close_ int fd = fd_in;
    _cleanup_free_ char *data = NULL;
    _cleanup_json_ json_t *doc = NULL;
    char head[64];
    ssize_t got;
    size_t k = 0;
    size_t len;
    json_t *arr;
    size_t i;

    /* only JSON objects can reference other blobs; skip leading whitespace */
    if (fd < 0 || (got = pread(fd, head, sizeof(head), 0)) <= 0)
        return;
    while (k < (size_t)got && strchr(" \t\r\n", head[k]) != NULL)
        k++;
    if (k == (size_t)got || head[k] != '{')
        return;
    if (kiln_fs_read_fd(fd, KILN_IMAGE_MANIFEST_MAX, &data, &len, NULL) < 0)
        return;
    if (kiln_json_loadb(data, len, KILN_IMAGE_MANIFEST_MAX, "blob", &doc, NULL) < 0)
        return;
    switch (kiln_image_doc_kind(doc)) {
    case KILN_DOC_MANIFEST: {
        kiln_digest_t c;
        json_t *cfg = json_object_get(doc, "config");
        if (kiln_digest_parse(kiln_json_get_string(cfg, "digest"), &c, NULL) == 0)
            mark_add(m, &c);
        arr = json_object_get(doc, "layers");
        break;
    }
    case KILN_DOC_INDEX:
        arr = json_object_get(doc, "manifests");
        break;
    case KILN_DOC_CONFIG:
        mark_diff_ids(lowers, doc);
        return;
    default:
        return;
    }
    for (i = 0; i < json_array_size(arr); i++) {
        kiln_digest_t c;
        if (kiln_digest_parse(kiln_json_get_string(json_array_get(arr, i), "digest"), &c, NULL) ==
            0)
            mark_add(m, &c);
    }
}

/* Removes every entry of the tmp directory (all stale under the exclusive lock). */
static int prune_tmp(int tmp_fd, int dry_run, kiln_store_prune_stats_t *st, kiln_error_t *err)
{
    _cleanup_closedir_ DIR *dir = kiln_store_opendir(tmp_fd, "store tmp directory", err);
    struct dirent *de;

    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (!dry_run && kiln_fs_rm_rf_at(tmp_fd, de->d_name, err) < 0)
            return -1;
        st->tmp_removed++;
    }
    return 0;
}

/* Removes the unpacked layer trees of <root>/build/lowers (named by diff_id hex) that no
 * kept image config lists, and stale temp trees there; a missing directory is fine. */
static int prune_lowers(const char *root, const mark_set_t *lowers, int dry_run,
                        kiln_store_prune_stats_t *st, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_xasprintf("%s/build/lowers", root);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_closedir_ DIR *dir = NULL;
    struct dirent *de;

    if (fd < 0)
        return errno == ENOENT ? 0 : kiln_error_set(err, errno, "open %s", path);
    if ((dir = kiln_store_opendir(fd, "unpacked layers directory", err)) == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        kiln_digest_t d;
        char hex[65];
        /* "<diff_id hex>.blob-<blob hex>": the build engine's marker that a blob
         * holds that tree; it goes with its tree */
        bool marker = strlen(de->d_name) > 64 && strncmp(de->d_name + 64, ".blob-", 6) == 0;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(hex, sizeof(hex), "%.64s", de->d_name);
        if (kiln_digest_parse_hex(marker ? hex : de->d_name, &d, NULL) == 0 &&
            mark_contains(lowers, &d))
            continue;
        if (!dry_run && kiln_fs_rm_rf_at(fd, de->d_name, err) < 0)
            return kiln_error_prefix(err, "%s", path);
        if (!marker)
            st->lowers_removed++;
    }
    return 0;
}

/* Removes the lazy blob records (oci/store_lazy) in the directory fd of blobs no ref reaches,
 * of those in the root now (fetched) when fetched_goes (not for a namespace's: the bytes of
 * another namespace are no proof for it), and stale temp records. */
static int prune_lazy_dir(int fd, int blobs_fd, const mark_set_t *m, bool fetched_goes, int dry_run,
                          kiln_store_prune_stats_t *st, kiln_error_t *err)
{
    _cleanup_closedir_ DIR *dir = kiln_store_opendir(fd, "lazy blob records", err);
    struct dirent *de;
    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        kiln_digest_t d;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (kiln_digest_parse_hex(de->d_name, &d, NULL) == 0 && mark_contains(m, &d) &&
            (!fetched_goes || faccessat(blobs_fd, d.hex, F_OK, AT_SYMLINK_NOFOLLOW) < 0))
            continue;
        if (!dry_run && unlinkat(fd, de->d_name, 0) < 0 && errno != ENOENT)
            return kiln_error_set(err, errno, "remove lazy blob record %s", de->d_name);
        st->lazy_removed++;
    }
    return 0;
}

/* Opens <root>/ns (the cache namespaces, utils/cachens) without following a link: the fd, or
 * -1 when there is none. */
static int open_ns(int root_fd)
{
    return openat(root_fd, "ns", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Whether a cache namespace records d as lazy (<root>/ns/NAME/lazy/<hex>). */
static bool ns_lazy_has(int root_fd, const kiln_digest_t *d)
{
    _cleanup_close_ int nsfd = open_ns(root_fd);
    _cleanup_closedir_ DIR *dir = nsfd < 0 ? NULL : kiln_store_opendir(nsfd, "namespaces", NULL);
    struct dirent *de;
    while (dir != NULL && (de = readdir(dir)) != NULL) {
        _cleanup_free_ char *rel = NULL;
        if (de->d_name[0] == '.')
            continue;
        rel = kiln_xasprintf("%s/lazy/%s", de->d_name, d->hex);
        if (faccessat(nsfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            return true;
    }
    return false;
}

/* prune_lazy_dir on <root>/lazy and on every namespace's records; a missing directory is
 * fine. */
static int prune_lazy(int root_fd, int blobs_fd, const mark_set_t *m, int dry_run,
                      kiln_store_prune_stats_t *st, kiln_error_t *err)
{
    _cleanup_close_ int fd =
        openat(root_fd, "lazy", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int nsfd = open_ns(root_fd);
    _cleanup_closedir_ DIR *dir = NULL;
    struct dirent *de;
    if (fd < 0 && errno != ENOENT)
        return kiln_error_set(err, errno, "open lazy blob records");
    if (fd >= 0 && prune_lazy_dir(fd, blobs_fd, m, true, dry_run, st, err) < 0)
        return -1;
    if (nsfd < 0 || (dir = kiln_store_opendir(nsfd, "namespaces", err)) == NULL)
        return nsfd < 0 ? 0 : -1;
    while ((de = readdir(dir)) != NULL) {
        _cleanup_close_ int ns = -1, lz = -1;
        if (de->d_name[0] == '.')
            continue;
        ns = openat(nsfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        lz = ns < 0 ? -1 : openat(ns, "lazy", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (lz >= 0 && prune_lazy_dir(lz, blobs_fd, m, false, dry_run, st, err) < 0)
            return kiln_error_prefix(err, "namespace %s", de->d_name);
    }
    return 0;
}

/* Removes unmarked blobs. */
static int prune_blobs(int blobs_fd, const mark_set_t *m, int dry_run, kiln_store_prune_stats_t *st,
                       kiln_error_t *err)
{
    _cleanup_closedir_ DIR *dir = kiln_store_opendir(blobs_fd, "store blobs directory", err);
    struct dirent *de;

    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        kiln_digest_t d;
        struct stat sb;

        if (kiln_digest_parse_hex(de->d_name, &d, NULL) < 0)
            continue;
        if (mark_contains(m, &d)) {
            st->blobs_kept++;
            continue;
        }
        if (fstatat(blobs_fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
            st->bytes_freed += (uint64_t)sb.st_size;
        if (!dry_run && unlinkat(blobs_fd, de->d_name, 0) < 0 && errno != ENOENT)
            return kiln_error_set(err, errno, "remove blob sha256:%s", d.hex);
        st->blobs_removed++;
    }
    return 0;
}

int kiln_store_prune(const char *root, int wait, int dry_run, kiln_store_prune_stats_t *stats,
                     kiln_error_t *err)
{
    return kiln_store_prune_with(root, NULL, 0, wait, dry_run, stats, err);
}

/* A blob the root lacks: 1 with *fd when an additional store has it (read-only: prune never
 * changes a store), else 0. */
static int in_additional(kiln_astore_t *const *as, size_t n, const kiln_digest_t *d, int *fd)
{
    for (size_t i = 0; i < n; i++)
        if (kiln_astore_open_blob(as[i], d, fd, NULL, NULL) == 1)
            return 1;
    return 0;
}

int kiln_store_prune_with(const char *root, kiln_astore_t *const *additional, size_t n_additional,
                          int wait, int dry_run, kiln_store_prune_stats_t *stats, kiln_error_t *err)
{
    _cleanup_close_ int root_fd = -1;
    kiln_store_prune_stats_t st = {0};
    mark_set_t m = {0};
    mark_set_t lowers = {0};
    _cleanup_close_ int gate = -1;
    _cleanup_close_ int lfd = -1;
    _cleanup_close_ int blobs_fd = -1;
    _cleanup_close_ int tmp_fd = -1;
    _cleanup_close_ int refs_fd = -1;
    int ret = -1;

    if (root == NULL || root[0] == '\0')
        return kiln_error_set(err, 0, "prune: no store root given");
    if (kiln_fs_mkdir_p(root, 0700, err) < 0)
        return kiln_error_prefix(err, "blob store %s", root);
    gate = kiln_store_open_lock(root, "gate", err);
    if (gate < 0)
        return -1;
    lfd = kiln_store_open_lock(root, "lock", err);
    if (lfd < 0)
        return -1;
    /* close the gate first: new builds wait, running ones finish */
    if (kiln_store_flock(gate, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0 ||
        kiln_store_flock(lfd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
        if (errno == EWOULDBLOCK)
            return kiln_error_set(err, EBUSY,
                                  "blob store %s is in use by a running build or pull; retry "
                                  "later",
                                  root);
        return kiln_error_set(err, errno, "blob store %s: lock", root);
    }
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return kiln_error_set(err, errno, "blob store %s", root);
    if ((blobs_fd = kiln_store_open_subdir(root, "blobs/sha256", err)) < 0 ||
        (tmp_fd = kiln_store_open_subdir(root, "tmp", err)) < 0 ||
        (refs_fd = kiln_store_open_subdir(root, "refs", err)) < 0)
        return -1;

    m.cap = 1024;
    m.slots = kiln_xzalloc(m.cap * sizeof(*m.slots));
    m.used = kiln_xzalloc(m.cap);
    lowers.cap = 256;
    lowers.slots = kiln_xzalloc(lowers.cap * sizeof(*lowers.slots));
    lowers.used = kiln_xzalloc(lowers.cap);
    /* the image store's names pin their images as refs do (an unreadable index fails) */
    if (kiln_store_refs_walk(refs_fd, mark_ref, &m, err) < 0 ||
        kiln_imagestore_foreach(root, mark_ref, &m, err) < 0)
        goto out;
    while (m.stack_n > 0) {
        kiln_digest_t d = m.stack[--m.stack_n];
        kiln_store_lazy_t lz;
        int fd = openat(blobs_fd, d.hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && in_additional(additional, n_additional, &d, &fd) == 1) {
            st.blobs_in_additional++; /* its children may be anywhere too */
        } else if (fd < 0) {
            if (kiln_store_lazy_get_at(root_fd, &d, &lz, NULL) == 1 || ns_lazy_has(root_fd, &d))
                st.blobs_lazy++; /* fetched when needed: not missing */
            else
                st.refs_dangling++;
            continue;
        }
        mark_children(&m, &lowers, fd);
    }
    if (prune_tmp(tmp_fd, dry_run, &st, err) < 0 ||
        prune_lazy(root_fd, blobs_fd, &m, dry_run, &st, err) < 0 ||
        prune_blobs(blobs_fd, &m, dry_run, &st, err) < 0 ||
        prune_lowers(root, &lowers, dry_run, &st, err) < 0)
        goto out;
    if (!dry_run)
        fsync(blobs_fd);
    if (stats != NULL)
        *stats = st;
    ret = 0;
out:
    free(m.slots);
    free(m.used);
    free(m.stack);
    free(lowers.slots);
    free(lowers.used);
    free(lowers.stack);
    return ret;
}
