/* kiln — the content-addressed blob store opened and read (see store.h for the layout and
 * the lock protocol): the root's directories, the shared lock with its gate, and blobs looked
 * up, opened and read back checked against their digest. Writing is store_writer.c, refs
 * store_refs.c, pruning store_prune.c. */
#include "oci/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/additional_store.h"
#include "oci/image.h"
#include "oci/store_impl.h"
#include "oci/store_lazy.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"
#include "utils/netpolicy.h"

char *kiln_store_default_root(void)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");

    if (geteuid() == 0)
        return kiln_xstrdup("/var/lib/kiln");
    if (xdg != NULL && xdg[0] == '/')
        return kiln_xasprintf("%s/kiln", xdg);
    if (home != NULL && home[0] == '/')
        return kiln_xasprintf("%s/.local/share/kiln", home);
    return NULL;
}

/* Opens (creating) directory `name` under root as an O_PATH-less dir fd. */
int kiln_store_open_subdir(const char *root, const char *name, kiln_error_t *err)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, name);
    int fd;

    if (kiln_fs_mkdir_p(p, 0700, err) < 0)
        return kiln_error_prefix(err, "blob store %s", root);
    fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "blob store: open %s", p);
    return fd;
}

/* Takes flock `op` on fd, retrying on EINTR. */
int kiln_store_flock(int fd, int op)
{
    int r;
    do
        r = flock(fd, op);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Opens <root>/<name> (creating it): "lock" or the "gate" that keeps a
 * waiting prune from being starved by ever-overlapping builds. */
int kiln_store_open_lock(const char *root, const char *name, kiln_error_t *err)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, name);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return kiln_error_set(err, errno, "blob store: open lock file %s", p);
    return fd;
}

/* Stores this process holds open, by lock file identity: a second handle on
 * a store the process already holds skips the gate (a prune waiting behind
 * the first handle would otherwise deadlock a nested open). */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    dev_t dev;
    ino_t ino;
    unsigned n;
} open_roots[32];

/* Counts a handle on (dev, ino) (delta +1/-1); returns how many there were before. */
static unsigned held_count(dev_t dev, ino_t ino, int delta)
{
    unsigned before = 0;
    size_t i, free_slot = sizeof(open_roots) / sizeof(open_roots[0]);

    pthread_mutex_lock(&open_mu);
    for (i = 0; i < sizeof(open_roots) / sizeof(open_roots[0]); i++) {
        if (open_roots[i].n > 0 && open_roots[i].dev == dev && open_roots[i].ino == ino)
            break;
        if (open_roots[i].n == 0 && free_slot == sizeof(open_roots) / sizeof(open_roots[0]))
            free_slot = i;
    }
    if (i == sizeof(open_roots) / sizeof(open_roots[0]) && delta > 0 &&
        free_slot < sizeof(open_roots) / sizeof(open_roots[0])) {
        i = free_slot;
        open_roots[i].dev = dev;
        open_roots[i].ino = ino;
        open_roots[i].n = 0;
    }
    if (i < sizeof(open_roots) / sizeof(open_roots[0])) {
        before = open_roots[i].n;
        if (delta > 0 || open_roots[i].n > 0)
            open_roots[i].n = (unsigned)((int)open_roots[i].n + delta);
    }
    pthread_mutex_unlock(&open_mu);
    return before;
}

int kiln_store_open(const char *root, kiln_store_t **out, kiln_error_t *err)
{
    struct stat lst;
    _cleanup_close_ int gate = -1;
    kiln_store_t *s;

    if (root == NULL || root[0] == '\0')
        return kiln_error_set(err, 0, "blob store: no root directory given");
    if (kiln_fs_mkdir_p(root, 0700, err) < 0)
        return kiln_error_prefix(err, "blob store %s", root);
    s = kiln_xzalloc(sizeof(*s));
    s->root = kiln_xstrdup(root);
    s->lock_fd = s->blobs_fd = s->tmp_fd = s->refs_fd = s->lazy_fd = -1;
    s->ns_lazy_fd = s->ns_blobs_fd = -1;
    pthread_mutex_init(&s->sync_mu, NULL);
    gate = kiln_store_open_lock(root, "gate", err);
    if (gate < 0)
        goto fail;
    s->lock_fd = kiln_store_open_lock(root, "lock", err);
    if (s->lock_fd < 0)
        goto fail;
    if (fstat(s->lock_fd, &lst) < 0) {
        kiln_error_set(err, errno, "blob store %s: lock", root);
        goto fail;
    }
    s->lock_dev = lst.st_dev;
    s->lock_ino = lst.st_ino;
    s->counted = 1;
    /* pass the gate (held exclusively by a waiting prune) unless this process
     * already holds the store, then hold "lock" shared for the handle's life */
    if ((held_count(lst.st_dev, lst.st_ino, +1) == 0 && kiln_store_flock(gate, LOCK_SH) < 0) ||
        kiln_store_flock(s->lock_fd, LOCK_SH) < 0) {
        kiln_error_set(err, errno, "blob store %s: lock", root);
        goto fail;
    }
    close(steal_fd(&gate));
    if ((s->blobs_fd = kiln_store_open_subdir(root, "blobs/sha256", err)) < 0 ||
        (s->tmp_fd = kiln_store_open_subdir(root, "tmp", err)) < 0 ||
        (s->refs_fd = kiln_store_open_subdir(root, "refs", err)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    kiln_store_close(s);
    return -1;
}

void kiln_store_close(kiln_store_t *s)
{
    if (s == NULL)
        return;
    kiln_closep(&s->blobs_fd);
    kiln_closep(&s->tmp_fd);
    kiln_closep(&s->refs_fd);
    kiln_closep(&s->lazy_fd);
    kiln_closep(&s->ns_lazy_fd);
    kiln_closep(&s->ns_blobs_fd);
    free(s->ns);
    kiln_netpolicy_free(s->fetch_policy);
    kiln_closep(&s->lock_fd); /* closing drops the flock */
    if (s->counted)
        held_count(s->lock_dev, s->lock_ino, -1);
    for (size_t i = 0; i < s->n_additional; i++)
        kiln_astore_free(s->additional[i]);
    /* blobs written deferred that no ref names: nothing needs them durable */
    for (size_t i = 0; i < s->n_pending; i++)
        close(s->pending[i]);
    free(s->pending);
    pthread_mutex_destroy(&s->sync_mu);
    free(s->root);
    free(s);
}

const char *kiln_store_root(const kiln_store_t *s)
{
    return s->root;
}

char *kiln_store_blob_path(const kiln_store_t *s, const kiln_digest_t *d)
{
    return kiln_xasprintf("%s/blobs/sha256/%s", s->root, d->hex);
}

int kiln_store_attach_additional(kiln_store_t *s, const char *dir, kiln_error_t *err)
{
    kiln_astore_t *a = NULL;

    if (s->n_additional >= sizeof(s->additional) / sizeof(s->additional[0]))
        return kiln_error_set(err, E2BIG, "additional store %s: at most %zu stores", dir,
                              sizeof(s->additional) / sizeof(s->additional[0]));
    if (kiln_astore_open(dir, &a, err) < 0)
        return -1;
    s->additional[s->n_additional++] = a;
    return 0;
}

kiln_astore_t *const *kiln_store_additional(const kiln_store_t *s, size_t *n)
{
    *n = s->n_additional;
    return s->additional;
}

/* Blob d from the first additional store holding it: 1 with *fd, else 0. */
static int additional_blob(kiln_store_t *s, const kiln_digest_t *d, int *fd, uint64_t *size)
{
    for (size_t i = 0; i < s->n_additional; i++)
        if (kiln_astore_open_blob(s->additional[i], d, fd, size, NULL) == 1)
            return 1;
    return 0;
}

int kiln_store_in_additional(kiln_store_t *s, const kiln_digest_t *d)
{
    struct stat st;
    int fd;

    if (s->n_additional == 0 ||
        (fstatat(s->blobs_fd, d->hex, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)))
        return 0;
    if (additional_blob(s, d, &fd, NULL) == 0)
        return 0;
    close(fd);
    return 1;
}

int kiln_store_has(kiln_store_t *s, const kiln_digest_t *d, uint64_t *size)
{
    struct stat st;
    int fd;

    if (fstatat(s->blobs_fd, d->hex, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
        if (additional_blob(s, d, &fd, size) == 0)
            return 0;
        close(fd);
        return 1;
    }
    if (size != NULL)
        *size = (uint64_t)st.st_size;
    return 1;
}

int kiln_store_open_blob(kiln_store_t *s, const kiln_digest_t *d, int *fd, uint64_t *size,
                         kiln_error_t *err)
{
    struct stat st;
    _cleanup_close_ int f = -1;

    /* a namespace's lazy blob is fetched from its own source before its first use, even when
     * the bytes are here already (another namespace's): store_lazy.h */
    if (s->ns != NULL && kiln_store_lazy_prove(s, d, err) < 0)
        return -1;
    f = openat(s->blobs_fd, d->hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f < 0) {
        int e = errno;
        int r;
        if (additional_blob(s, d, fd, size) == 1)
            return 0;
        /* a lazy blob (store_lazy.h) is fetched now, its digest checked by the store */
        r = kiln_store_lazy_fetch(s, d, err);
        if (r < 0)
            return -1;
        if (r == 1)
            f = openat(s->blobs_fd, d->hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (f < 0)
            return kiln_error_set(err, e, "blob sha256:%s not in store %s", d->hex, s->root);
    }
    if (fstat(f, &st) < 0)
        return kiln_error_set(err, errno, "blob sha256:%s: stat", d->hex);
    if (size != NULL)
        *size = (uint64_t)st.st_size;
    *fd = steal_fd(&f);
    return 0;
}

int kiln_store_read_blob(kiln_store_t *s, const kiln_digest_t *d, size_t cap, char **out,
                         size_t *len, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *data = NULL;
    kiln_digest_t got;
    size_t n;

    if (cap == 0)
        cap = KILN_STORE_READ_DEFAULT_CAP;
    if (kiln_store_open_blob(s, d, &fd, NULL, err) < 0)
        return -1;
    if (kiln_fs_read_fd(fd, cap, &data, &n, err) < 0)
        return kiln_error_prefix(err, "blob sha256:%s", d->hex);
    kiln_digest_bytes(data, n, &got);
    if (!kiln_digest_equal(&got, d))
        return kiln_error_set(err, EIO,
                              "blob sha256:%s in store %s is corrupt (content hashes to "
                              "sha256:%s)",
                              d->hex, s->root, got.hex);
    *out = steal_pointer(&data);
    *len = n;
    return 0;
}
